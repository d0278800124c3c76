"""Raters, task hand-out and ratings: every rule of the rating workflow, on the database.

Entity tasks (paper section 3.1, Figure 4a): each catalog entity gets scores
from 3 distinct raters. Video tasks (section 3.5): each sampled test video
gets the entities present according to 3 distinct raters.

Hand-out: a task has exactly 3 slots. A rater asking for work gets a slot of
the first task (in a seeded order) that has a free slot and that they have not
had, so tasks are completed one after the other, a task can never get a
fourth rater, and no task waits for its third while raters work on later
ones. A slot is leased for ``lease_s`` seconds: a rater who walks away does
not block a task forever (an expired lease is handed to the next rater who
asks, and its first holder can then no longer submit it). Claiming is a
conditional UPDATE (``WHERE state is free``): of two concurrent requests for
the same slot exactly one changes the row, the other moves on to the next
slot. A rater who asks again while holding a slot gets that slot back.

Submitting: only the rater holding a slot can submit it, once; the slot and
the rating are written in one transaction, and a unique key on
(task, rater) forbids a second rating even under concurrent requests.

Errors are ``TaskError`` subclasses carrying an HTTP status (404 unknown task,
409 conflict, 422 invalid input, 401/403 authentication) and a message that
says what to do; a failed request writes nothing.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import secrets
import time
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from sqlalchemy import and_, case, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from yt8m.explorer import db as D
from yt8m.vocab.rules import h64

DEFAULT_LEASE_S = 1800.0
SCORES = {
    1: "Any layperson could",
    2: "Any layperson after studying examples, wikipedia, etc could",
    3: "Experts in some field can",
    4: "Not possible without non-visual knowledge",
    5: "Non-visual",
}
QUESTION = ("How difficult is it to identify this entity in images or videos "
            "(without audio, titles, comments, etc)?")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MAX_MARKS = 200


class TaskError(Exception):
    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(TaskError):
    status = 404


class Conflict(TaskError):
    status = 409


class Invalid(TaskError):
    status = 422


class Unauthorized(TaskError):
    status = 401


class Forbidden(TaskError):
    status = 403


@dataclass(frozen=True)
class Rater:
    id: int
    name: str
    is_admin: bool


def hash_token(token: str) -> str:
    """Tokens are 192 random bits: a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def task_rank(kind: str, key: str, seed: int = 0) -> int:
    """The seeded hand-out order of a task (a signed 63-bit integer, for any database)."""
    return h64(f"{kind}_task", key, seed) >> 1


class Store:
    """The rating workflow on a ``db.Database``."""

    def __init__(self, database: D.Database, lease_s: float = DEFAULT_LEASE_S):
        if lease_s <= 0:
            raise ValueError(f"lease_s must be positive, got {lease_s}")
        self.db = database
        self.lease_s = float(lease_s)

    # -- raters -------------------------------------------------------------
    def add_rater(self, name: str, admin: bool = False) -> str:
        """Create a rater; returns the sign-in token (shown once: only its hash is stored)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise Invalid(f"rater name {name!r} is not valid: use 1-64 letters, digits and "
                          f"'_.@-', starting with a letter or digit")
        token = secrets.token_urlsafe(24)
        try:
            with self.db.write() as conn:
                conn.execute(insert(D.raters).values(name=name, token_hash=hash_token(token),
                                                     is_admin=bool(admin), active=True,
                                                     created_at=time.time()))
        except IntegrityError:
            raise Conflict(f"a rater named {name!r} exists already; choose another name "
                           f"(or 'raters token {name}' for a new sign-in link)") from None
        return token

    def new_token(self, name: str) -> str:
        """A fresh sign-in token for ``name`` (the old one stops working)."""
        token = secrets.token_urlsafe(24)
        with self.db.write() as conn:
            res = conn.execute(update(D.raters).where(D.raters.c.name == name)
                               .values(token_hash=hash_token(token), active=True))
            if res.rowcount != 1:
                raise NotFound(f"no rater named {name!r}; 'raters list' shows them")
        return token

    def revoke(self, name: str) -> None:
        with self.db.write() as conn:
            res = conn.execute(update(D.raters).where(D.raters.c.name == name)
                               .values(active=False))
            if res.rowcount != 1:
                raise NotFound(f"no rater named {name!r}; 'raters list' shows them")

    def raters(self) -> list[dict]:
        with self.db.read() as conn:
            rows = conn.execute(select(D.raters.c.id, D.raters.c.name, D.raters.c.is_admin,
                                       D.raters.c.active, D.raters.c.created_at)
                                .order_by(D.raters.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def rater_by_token(self, token: Optional[str]) -> Optional[Rater]:
        if not token or not isinstance(token, str) or len(token) > 200:
            return None
        with self.db.read() as conn:
            row = conn.execute(select(D.raters.c.id, D.raters.c.name, D.raters.c.is_admin)
                               .where(D.raters.c.token_hash == hash_token(token),
                                      D.raters.c.active.is_(True))).first()
        return Rater(row.id, row.name, bool(row.is_admin)) if row else None

    # -- task pools ---------------------------------------------------------
    def ensure_entity_tasks(self, kg_ids: Iterable[str], seed: int = 0) -> int:
        """Add 3 slots for every entity that has none yet; returns how many entities got them."""
        return self._ensure_slots(D.entity_slots, "kg_id", "entity", kg_ids, seed)

    def _ensure_slots(self, table, key: str, kind: str, keys: Iterable[str], seed: int) -> int:
        keys = list(dict.fromkeys(keys))
        with self.db.read() as conn:
            have = set(conn.execute(select(table.c[key]).where(table.c.slot == 0)).scalars())
        new = [k for k in keys if k not in have]
        for lo in range(0, len(new), 5000):
            rows = [{key: k, "slot": s, "rank": task_rank(kind, k, seed), "state": D.FREE,
                     "rater_id": None, "leased_at": None}
                    for k in new[lo:lo + 5000] for s in range(D.RATERS_PER_TASK)]
            with self.db.write() as conn:
                conn.execute(insert(table), rows)
        return len(new)

    def ensure_video_tasks(self, tasks: Sequence[tuple[str, int, list]]) -> int:
        """Add video tasks ``(video_id, rank, candidate kg_ids)`` not in the database yet.

        A task's candidate list is fixed when it is added: every rater of the
        video sees the same list, and a restart with other flags does not change
        the tasks already rated.
        """
        with self.db.read() as conn:
            have = set(conn.execute(select(D.video_tasks.c.video_id)).scalars())
        new = [t for t in tasks if t[0] not in have]
        now = time.time()
        for lo in range(0, len(new), 2000):
            part = new[lo:lo + 2000]
            with self.db.write() as conn:
                conn.execute(insert(D.video_tasks), [
                    {"video_id": v, "rank": int(rank), "candidates": json.dumps(list(c)),
                     "created_at": now} for v, rank, c in part])
                conn.execute(insert(D.video_slots), [
                    {"video_id": v, "slot": s, "rank": int(rank), "state": D.FREE,
                     "rater_id": None, "leased_at": None}
                    for v, rank, _ in part for s in range(D.RATERS_PER_TASK)])
        return len(new)

    def video_task(self, video_id: str) -> Optional[dict]:
        with self.db.read() as conn:
            row = conn.execute(select(D.video_tasks).where(
                D.video_tasks.c.video_id == video_id)).mappings().first()
        if row is None:
            return None
        return {"video_id": row["video_id"], "candidates": json.loads(row["candidates"])}

    def has_entity_task(self, kg_id: str) -> bool:
        with self.db.read() as conn:
            return conn.execute(select(D.entity_slots.c.kg_id).where(
                D.entity_slots.c.kg_id == kg_id).limit(1)).first() is not None

    # -- hand-out -----------------------------------------------------------
    def next_entity_task(self, rater: Rater, now: Optional[float] = None) -> Optional[str]:
        """The kg_id of the entity this rater should rate now (None: nothing left for them)."""
        return self._claim(D.entity_slots, "kg_id", rater, now)

    def next_video_task(self, rater: Rater, now: Optional[float] = None) -> Optional[str]:
        return self._claim(D.video_slots, "video_id", rater, now)

    def _claim(self, table, key: str, rater: Rater, now: Optional[float]) -> Optional[str]:
        now = time.time() if now is None else float(now)
        expired = now - self.lease_s
        c = table.c
        for _ in range(5):
            try:
                with self.db.write() as conn:
                    held = conn.execute(
                        select(c[key], c.slot).where(c.rater_id == rater.id, c.state == D.LEASED)
                        .order_by(c.rank, c.slot).limit(1)).first()
                    if held is not None:
                        # Asking again (a reload, a second tab) renews the held slot.
                        conn.execute(update(table).where(c[key] == held[0], c.slot == held[1],
                                                         c.rater_id == rater.id)
                                     .values(leased_at=now))
                        return held[0]
                    mine = select(c[key]).where(c.rater_id == rater.id)
                    free = (select(c[key], c.slot, c.rank)
                            .where(c.state == D.FREE, c[key].not_in(mine))
                            .order_by(c.rank, c.slot).limit(8))
                    stale = (select(c[key], c.slot, c.rank)
                             .where(c.state == D.LEASED, c.leased_at < expired,
                                    c[key].not_in(mine))
                             .order_by(c.rank, c.slot).limit(8))
                    found = sorted(list(conn.execute(free)) + list(conn.execute(stale)),
                                   key=lambda r: (r.rank, r.slot))
                    taken = set()
                    for row in found:
                        if row[0] in taken:
                            continue
                        res = conn.execute(
                            update(table)
                            .where(c[key] == row[0], c.slot == row.slot,
                                   or_(c.state == D.FREE,
                                       and_(c.state == D.LEASED, c.leased_at < expired)))
                            .values(state=D.LEASED, rater_id=rater.id, leased_at=now))
                        if res.rowcount == 1:
                            return row[0]
                        taken.add(row[0])
                    if not found:
                        return None
            except IntegrityError:
                # Two requests of one rater raced for two slots of one task: the
                # unique key refused the second; ask again.
                continue
        return None

    # -- submitting ---------------------------------------------------------
    def _finish_slot(self, conn, table, key: str, value: str, rater: Rater, what: str) -> None:
        c = table.c
        slot = conn.execute(select(c.slot, c.state).where(c[key] == value,
                                                          c.rater_id == rater.id)).first()
        if slot is None:
            known = conn.execute(select(c[key]).where(c[key] == value).limit(1)).first()
            if known is None:
                raise NotFound(f"no {what} task {value!r}: take a task from /rate")
            raise Conflict(f"the {what} task {value!r} is not assigned to you (never given to "
                           f"you, or your lease expired and another rater took it): take the "
                           f"next task")
        if slot.state == D.DONE:
            raise Conflict(f"you have already rated {what} {value!r}: each rater rates a task "
                           f"once")
        res = conn.execute(update(table).where(c[key] == value, c.slot == slot.slot,
                                               c.rater_id == rater.id, c.state == D.LEASED)
                           .values(state=D.DONE))
        if res.rowcount != 1:
            raise Conflict(f"you have already rated {what} {value!r}")

    def rate_entity(self, rater: Rater, kg_id, score, now: Optional[float] = None) -> None:
        """Record ``score`` (1-5, Figure 4a) of ``rater`` for ``kg_id``."""
        kg_id = _text(kg_id, "kg_id")
        score = parse_score(score)
        try:
            with self.db.write() as conn:
                self._finish_slot(conn, D.entity_slots, "kg_id", kg_id, rater, "entity")
                conn.execute(insert(D.entity_ratings).values(
                    kg_id=kg_id, rater_id=rater.id, score=score,
                    created_at=time.time() if now is None else now))
        except IntegrityError:
            raise Conflict(f"you have already rated entity {kg_id!r}") from None

    def rate_video(self, rater: Rater, video_id, kg_ids: Sequence, known: Optional[set] = None,
                   now: Optional[float] = None) -> None:
        """Record the entities ``rater`` marked present in ``video_id`` (possibly none).

        ``known``: the vocabulary's kg_ids; a mark outside it is refused.
        """
        video_id = _text(video_id, "video_id")
        if not isinstance(kg_ids, (list, tuple)):
            raise Invalid("kg_ids must be a list of entity ids")
        marks = []
        for k in kg_ids:
            k = _text(k, "kg_ids[]")
            if known is not None and k not in known:
                raise Invalid(f"{k!r} is not an entity of the vocabulary: mark entities from "
                              f"the list or from the search")
            if k not in marks:
                marks.append(k)
        if len(marks) > MAX_MARKS:
            raise Invalid(f"{len(marks)} entities marked; at most {MAX_MARKS}")
        try:
            with self.db.write() as conn:
                self._finish_slot(conn, D.video_slots, "video_id", video_id, rater, "video")
                conn.execute(insert(D.video_ratings).values(
                    video_id=video_id, rater_id=rater.id,
                    created_at=time.time() if now is None else now))
                if marks:
                    conn.execute(insert(D.video_marks), [
                        {"video_id": video_id, "rater_id": rater.id, "kg_id": k} for k in marks])
        except IntegrityError:
            raise Conflict(f"you have already rated video {video_id!r}") from None

    # -- progress -----------------------------------------------------------
    def progress(self) -> dict:
        """Per task kind: tasks by number of finished ratings; per rater: counts and leases."""
        out = {}
        with self.db.read() as conn:
            for kind, table, key in (("entities", D.entity_slots, "kg_id"),
                                     ("videos", D.video_slots, "video_id")):
                c = table.c
                done = func.sum(case((c.state == D.DONE, 1), else_=0))
                per = (select(c[key], done.label("done")).group_by(c[key])).subquery()
                hist = dict(conn.execute(select(per.c.done, func.count()).group_by(per.c.done))
                            .all())
                total = sum(hist.values())
                leased = conn.execute(select(func.count()).where(
                    c.state == D.LEASED)).scalar_one()
                out[kind] = {"tasks": total,
                             "by_ratings": {str(k): int(hist.get(k, 0))
                                            for k in range(D.RATERS_PER_TASK + 1)},
                             "complete": int(hist.get(D.RATERS_PER_TASK, 0)),
                             "ratings": int(sum(int(k or 0) * v for k, v in hist.items())),
                             "leased": int(leased)}
            per_rater = {}
            for r in conn.execute(select(D.raters.c.id, D.raters.c.name, D.raters.c.is_admin,
                                         D.raters.c.active)).all():
                per_rater[r.id] = {"name": r.name, "is_admin": bool(r.is_admin),
                                   "active": bool(r.active), "entities": 0, "videos": 0,
                                   "leased": 0, "last_at": None}
            for kind, table, ratings in (("entities", D.entity_slots, D.entity_ratings),
                                         ("videos", D.video_slots, D.video_ratings)):
                for rid, n, last in conn.execute(
                        select(ratings.c.rater_id, func.count(), func.max(ratings.c.created_at))
                        .group_by(ratings.c.rater_id)).all():
                    if rid in per_rater:
                        per_rater[rid][kind] = int(n)
                        prev = per_rater[rid]["last_at"]
                        per_rater[rid]["last_at"] = max(prev or 0.0, float(last or 0.0))
                for rid, n in conn.execute(select(table.c.rater_id, func.count())
                                           .where(table.c.state == D.LEASED)
                                           .group_by(table.c.rater_id)).all():
                    if rid in per_rater:
                        per_rater[rid]["leased"] += int(n)
        out["raters"] = list(per_rater.values())
        return out

    def rater_progress(self, rater: Rater) -> dict:
        with self.db.read() as conn:
            ents = conn.execute(select(func.count()).where(
                D.entity_ratings.c.rater_id == rater.id)).scalar_one()
            vids = conn.execute(select(func.count()).where(
                D.video_ratings.c.rater_id == rater.id)).scalar_one()
        return {"entities": int(ents), "videos": int(vids)}

    # -- reading ratings back -----------------------------------------------
    def entity_scores(self) -> dict[str, list[tuple[str, int]]]:
        """``{kg_id: [(rater name, score), ...]}`` of every entity rating."""
        out: dict[str, list] = {}
        with self.db.read() as conn:
            q = (select(D.entity_ratings.c.kg_id, D.raters.c.name, D.entity_ratings.c.score)
                 .join(D.raters, D.raters.c.id == D.entity_ratings.c.rater_id)
                 .order_by(D.entity_ratings.c.kg_id, D.raters.c.name))
            for kg, name, score in conn.execute(q):
                out.setdefault(kg, []).append((name, int(score)))
        return out

    def marks_of(self, video_id: str) -> dict[str, list]:
        """``{rater name: [kg_id, ...]}`` of one video's finished ratings."""
        out: dict[str, list] = {}
        with self.db.read() as conn:
            for (name,) in conn.execute(
                    select(D.raters.c.name).join(D.video_ratings,
                                                 D.video_ratings.c.rater_id == D.raters.c.id)
                    .where(D.video_ratings.c.video_id == video_id)):
                out[name] = []
            for name, kg in conn.execute(
                    select(D.raters.c.name, D.video_marks.c.kg_id)
                    .join(D.video_marks, D.video_marks.c.rater_id == D.raters.c.id)
                    .where(D.video_marks.c.video_id == video_id)
                    .order_by(D.video_marks.c.kg_id)):
                out.setdefault(name, []).append(kg)
        return out

    def video_marks(self) -> dict[str, dict]:
        """``{video_id: {"candidates": [...], "raters": {name: [kg_id, ...]}}}`` of rated videos."""
        out: dict[str, dict] = {}
        with self.db.read() as conn:
            cands = {v: json.loads(c) for v, c in conn.execute(
                select(D.video_tasks.c.video_id, D.video_tasks.c.candidates))}
            q = (select(D.video_ratings.c.video_id, D.raters.c.name, D.video_ratings.c.rater_id)
                 .join(D.raters, D.raters.c.id == D.video_ratings.c.rater_id))
            names = {}
            for vid, name, rid in conn.execute(q):
                out.setdefault(vid, {"candidates": cands.get(vid, []), "raters": {}})
                out[vid]["raters"][name] = []
                names[(vid, rid)] = name
            for vid, rid, kg in conn.execute(
                    select(D.video_marks.c.video_id, D.video_marks.c.rater_id,
                           D.video_marks.c.kg_id).order_by(D.video_marks.c.kg_id)):
                if (vid, rid) in names:
                    out[vid]["raters"][names[(vid, rid)]].append(kg)
        return out


def parse_score(value) -> int:
    """A Figure 4a score: an integer 1-5 (``"3"`` is accepted from forms); Invalid otherwise."""
    if isinstance(value, bool):
        raise Invalid("score must be an integer from 1 to 5")
    if isinstance(value, str):
        value = value.strip()
        if not re.fullmatch(r"[0-9]{1,2}", value):
            raise Invalid(f"score {value!r} is not an integer from 1 to 5")
        value = int(value)
    if not isinstance(value, int):
        raise Invalid(f"score {value!r} is not an integer from 1 to 5")
    if not 1 <= value <= 5:
        raise Invalid(f"score {value} is outside the 1-5 scale (1: any layperson could "
                      f"identify it ... 5: non-visual)")
    return value


def _text(value, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{field} is missing or empty")
    if len(value) > 255:
        raise Invalid(f"{field} is too long ({len(value)} characters)")
    return value.strip()


def candidates_for(video_id: str, truth: Sequence, predicted: Sequence, vocabulary: Sequence,
                   total: int = 10, min_random: int = 3, seed: int = 0) -> list:
    """The entities a rater is shown for a video: truth, predictions and random ones, shuffled.

    ``truth`` (the ground-truth labels) and ``predicted`` (a model's top
    predictions) are mixed with entities drawn uniformly from ``vocabulary``
    (at least ``min_random``, more to reach ``total``), and the list is
    shuffled by a generator seeded with the video id: nothing in the order
    or the markup tells which ones are the ground truth.
    """
    rng = random.Random(f"{seed}:{video_id}")
    chosen = list(dict.fromkeys([*truth, *predicted]))
    pool = [e for e in vocabulary if e not in set(chosen)]
    n_random = min(len(pool), max(min_random, total - len(chosen)))
    out = chosen + rng.sample(pool, n_random)
    rng.shuffle(out)
    return out
