"""The ratings database: schema (SQLAlchemy Core) and the engine, SQLite by default.

Everything raters produce lives here: raters and their hashed tokens, the
task slots (3 per entity and per rated video), the entity scores, the video
marks. The default is an embedded SQLite file in WAL mode (readers never wait
for the writer); a team points every server at one database with
``--db_url`` (any SQLAlchemy URL, e.g. ``postgresql+psycopg://...``).

Writes: every write is one transaction (``Database.write()``). On SQLite it
starts with ``BEGIN IMMEDIATE``, which takes the write lock at once: a
deferred transaction that reads, then writes, can fail with "database is
locked" when another writer commits in between, where an immediate one waits
(``busy_timeout``) for its turn. Task claims are conditional UPDATEs whose
row count says whether this request won the slot, and unique constraints
forbid a second rating by the same rater, so the same code is correct on a
server database under concurrent requests.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Column, Float, ForeignKey, Index,
                        Integer, MetaData, PrimaryKeyConstraint, String, Table, Text,
                        UniqueConstraint, create_engine, event)
from sqlalchemy.engine import Connection, Engine

SCHEMA_VERSION = "1"

# Slot states: a slot is free, held by a rater for ``lease_s`` seconds, or done.
FREE, LEASED, DONE = 0, 1, 2
RATERS_PER_TASK = 3

metadata = MetaData()

raters = Table(
    "raters", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
)


def _slots(name: str, key: str) -> Table:
    return Table(
        name, metadata,
        Column(key, String(255), nullable=False),
        Column("slot", Integer, nullable=False),
        Column("rank", BigInteger, nullable=False),     # hand-out order (seeded)
        Column("state", Integer, nullable=False, default=FREE),
        Column("rater_id", Integer, ForeignKey("raters.id"), nullable=True),
        Column("leased_at", Float, nullable=True),
        PrimaryKeyConstraint(key, "slot"),
        # One rater holds at most one slot of a task: 3 slots, 3 distinct raters.
        UniqueConstraint(key, "rater_id", name=f"{name}_one_per_rater"),
        CheckConstraint(f"slot >= 0 AND slot < {RATERS_PER_TASK}", name=f"{name}_slot_range"),
        Index(f"{name}_by_state", "state", "rank", "slot"),
        Index(f"{name}_by_rater", "rater_id", "state"),
    )


entity_slots = _slots("entity_slots", "kg_id")
video_slots = _slots("video_slots", "video_id")

entity_ratings = Table(
    "entity_ratings", metadata,
    Column("kg_id", String(255), nullable=False),
    Column("rater_id", Integer, ForeignKey("raters.id"), nullable=False),
    Column("score", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("kg_id", "rater_id"),
    CheckConstraint("score >= 1 AND score <= 5", name="entity_ratings_score_range"),
)

video_tasks = Table(
    "video_tasks", metadata,
    Column("video_id", String(255), primary_key=True),
    Column("rank", BigInteger, nullable=False),
    # JSON list of kg_ids in display order: every rater of the video sees this list.
    Column("candidates", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

video_ratings = Table(
    "video_ratings", metadata,
    Column("video_id", String(255), nullable=False),
    Column("rater_id", Integer, ForeignKey("raters.id"), nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("video_id", "rater_id"),
)

video_marks = Table(
    "video_marks", metadata,
    Column("video_id", String(255), nullable=False),
    Column("rater_id", Integer, ForeignKey("raters.id"), nullable=False),
    Column("kg_id", String(255), nullable=False),
    PrimaryKeyConstraint("video_id", "rater_id", "kg_id"),
)

settings = Table(
    "settings", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


def sqlite_url(path: str) -> str:
    return f"sqlite:///{os.path.abspath(path)}"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and explicit BEGINs."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)
    if url in ("sqlite://", "sqlite:///:memory:"):
        raise ValueError("an in-memory SQLite database is per connection: give a file "
                         "(--db PATH) so that every request sees the same ratings")
    path = url.split("sqlite:///", 1)[-1]
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    engine = create_engine(url, pool_size=20, max_overflow=30, pool_timeout=60,
                           connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_con, _record):
        # The driver must not open transactions on its own: the "begin" hook does.
        dbapi_con.isolation_level = None
        cur = dbapi_con.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection):
        immediate = conn.get_execution_options().get("yt8m_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """The engine plus the two ways of using it: ``read()`` and ``write()``."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = url.startswith("sqlite")

    def create(self) -> None:
        """Create the tables that do not exist yet (a new database, or an older one)."""
        metadata.create_all(self.engine)
        with self.write() as conn:
            row = conn.execute(settings.select().where(settings.c.key == "schema")).first()
            if row is None:
                conn.execute(settings.insert().values(key="schema", value=SCHEMA_VERSION))

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """One transaction (BEGIN IMMEDIATE on SQLite), committed, or rolled back on error."""
        with self.engine.connect() as conn:
            conn.execution_options(yt8m_write=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()
