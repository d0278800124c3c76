"""The explorer's index of a build: one SQLite file, built once, rebuilt only when a source changes.

Pages need the vocabulary, each entity's videos, each video's labels and the
counts per vertical and split. Those come from the build's CSV files (never
its TFRecords): ``vocabulary.csv``, ``splits.csv``, ``private/test_labels.csv``,
``failures.jsonl`` and the catalog. The index holds them in tables a page can
query in milliseconds, whatever the build's size.

Incremental: the index records each source file's ``[size, mtime]``. At start
the stamps are compared; a file group whose stamps match is reused (copied
from the previous index), a changed one is read again; when nothing changed
the previous index is opened as it is (no rebuild). The new index is written
to a temporary file and renamed over the old one, so a reader never sees a
half-built index and a kill leaves the old one intact.

Privacy is structural: train and validate labels are in ``labels``; test
labels only in ``test_labels``, which public queries never read (each query
that may touch it takes ``include_test`` and the app passes it only for
admins). Per-entity and per-vertical test counts are kept in their own
columns for the same reason.

The index is local (a SQLite file) even when the ratings database is a shared
server: it is derived data, per build and per machine.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from typing import Callable, Iterable, Optional

from yt8m.explorer import source as S
from yt8m.explorer.verticals import UNASSIGNED

INDEX_VERSION = 2
BATCH = 50_000

# Each group of tables is rebuilt from its files only, and reused when their stamps match.
GROUPS = {
    "dataset": ("vocabulary", "splits", "test_labels", "failures"),
    "catalog": ("catalog", "selection"),
}
TABLES = {
    "dataset": ("entities", "videos", "labels", "test_labels", "verticals"),
    "catalog": ("catalog",),
}

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE entities (
    idx INTEGER PRIMARY KEY, kg_id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    name_lc TEXT NOT NULL, wiki_url TEXT NOT NULL, v1 TEXT NOT NULL, v2 TEXT NOT NULL,
    v3 TEXT NOT NULL, description TEXT NOT NULL, specificity TEXT NOT NULL,
    train_count INTEGER NOT NULL, validate_count INTEGER NOT NULL, test_count INTEGER NOT NULL);
CREATE TABLE videos (vid INTEGER PRIMARY KEY, video_id TEXT NOT NULL UNIQUE, split TEXT NOT NULL);
CREATE TABLE labels (idx INTEGER NOT NULL, vid INTEGER NOT NULL, PRIMARY KEY (idx, vid))
    WITHOUT ROWID;
CREATE TABLE test_labels (idx INTEGER NOT NULL, vid INTEGER NOT NULL, PRIMARY KEY (idx, vid))
    WITHOUT ROWID;
CREATE TABLE verticals (name TEXT PRIMARY KEY, entities INTEGER NOT NULL,
    train_videos INTEGER NOT NULL, validate_videos INTEGER NOT NULL,
    test_videos INTEGER NOT NULL);
CREATE TABLE catalog (kg_id TEXT PRIMARY KEY, name TEXT NOT NULL, types TEXT NOT NULL,
    verticals TEXT NOT NULL, description TEXT NOT NULL, wiki_url TEXT NOT NULL,
    candidate INTEGER NOT NULL, position INTEGER NOT NULL);
"""
# Secondary indexes are made after the bulk inserts (faster than maintaining them).
INDEXES = """
CREATE INDEX IF NOT EXISTS labels_by_video ON labels (vid, idx);
CREATE INDEX IF NOT EXISTS test_labels_by_video ON test_labels (vid, idx);
CREATE INDEX IF NOT EXISTS videos_by_split ON videos (split, vid);
CREATE INDEX IF NOT EXISTS entities_by_name ON entities (name_lc);
CREATE INDEX IF NOT EXISTS catalog_by_position ON catalog (candidate, position);
"""


class IndexBuildError(RuntimeError):
    """The index cannot be built from the build's files (the message names the file)."""


def _read_stamps(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = dict(con.execute("SELECT key, value FROM meta").fetchall())
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return {}
    if rows.get("version") != str(INDEX_VERSION):
        return {}
    return json.loads(rows.get("stamps", "{}"))


def _stamps(sources: S.Sources) -> dict:
    files = sources.files()
    return {group: {name: [files[name], S.stamp(files[name])] for name in names}
            for group, names in GROUPS.items()}


def ensure_index(sources: S.Sources, path: str,
                 progress: Optional[Callable[[str, int], None]] = None) -> dict:
    """Make ``path`` the up-to-date index of ``sources``; returns what was done.

    ``{"rebuilt": [groups read again], "reused": [groups kept], "seconds": s}``.
    """
    t0 = time.perf_counter()
    want = _stamps(sources)
    have = _read_stamps(path)
    reuse = [g for g in GROUPS if have.get(g) == want[g]]
    rebuild = [g for g in GROUPS if g not in reuse]
    if not rebuild:
        return {"rebuilt": [], "reused": reuse, "seconds": time.perf_counter() - t0}
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.part")
    con = sqlite3.connect(tmp, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.executescript(SCHEMA)
        if reuse:
            con.execute("ATTACH DATABASE ? AS old", (path,))
        con.execute("BEGIN")
        if reuse:
            for group in reuse:
                for table in TABLES[group]:
                    con.execute(f"INSERT INTO main.{table} SELECT * FROM old.{table}")
        if "dataset" in rebuild:
            _build_dataset(con, sources, progress)
        if "catalog" in rebuild:
            _build_catalog(con, sources)
        con.executemany("INSERT INTO meta VALUES (?, ?)",
                        [("version", str(INDEX_VERSION)),
                         ("stamps", json.dumps(want, sort_keys=True)),
                         ("data_dir", sources.data_dir or ""),
                         ("built_at", str(time.time()))])
        con.execute("COMMIT")
        if reuse:
            con.execute("DETACH DATABASE old")
        con.executescript(INDEXES)
        con.execute("ANALYZE")
    except BaseException:
        con.close()
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    con.close()
    os.replace(tmp, path)
    # A crash of an earlier run may have left its temporary file behind.
    for name in os.listdir(folder):
        if name.startswith(f".{os.path.basename(path)}.") and name.endswith(".part"):
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass
    return {"rebuilt": rebuild, "reused": reuse, "seconds": time.perf_counter() - t0}


def _verticals_of(row: dict) -> list[str]:
    vs = [row.get(f"Vertical{i}", "").strip() for i in (1, 2, 3)]
    vs = [v for v in vs if v]
    return vs or [UNASSIGNED]


def _build_dataset(con: sqlite3.Connection, sources: S.Sources, progress) -> None:
    if not sources.vocabulary:
        return
    entities: dict[int, dict] = {}
    for row in S.read_csv(sources.vocabulary):
        try:
            idx = int(row["Index"])
        except (KeyError, ValueError):
            raise IndexBuildError(f"{sources.vocabulary}: row without a numeric Index ({row}); is "
                              f"it a build's vocabulary.csv?") from None
        entities[idx] = row
    verts_of = {i: _verticals_of(r) for i, r in entities.items()}
    counts = {i: {"train": 0, "validate": 0, "test": 0} for i in entities}
    vcounts: dict[str, dict] = {}
    for i, vs in verts_of.items():
        for v in vs:
            vcounts.setdefault(v, {"entities": 0, "train": 0, "validate": 0, "test": 0})
            vcounts[v]["entities"] += 1
    failed = S.failed_ids(sources.failures)

    def count_video(split: str, labels: Iterable[int]) -> None:
        seen = set()
        for i in labels:
            counts[i][split] += 1
            seen.update(verts_of[i])
        for v in seen:
            vcounts[v][split] += 1

    vid_of: dict[str, int] = {}
    videos, labels, n = [], [], 0
    for row in S.read_csv(sources.splits):
        video_id, split = row.get("video_id"), row.get("split")
        if not video_id or split not in ("train", "validate", "test") or video_id in failed:
            continue
        n += 1
        vid_of[video_id] = n
        videos.append((n, video_id, split))
        if split != "test":
            ids = [i for i in S.labels_of(row.get("labels", "")) if i in entities]
            labels.extend((i, n) for i in ids)
            count_video(split, ids)
        if len(videos) >= BATCH:
            con.executemany("INSERT INTO videos VALUES (?, ?, ?)", videos)
            con.executemany("INSERT OR IGNORE INTO labels VALUES (?, ?)", labels)
            videos, labels = [], []
            if progress:
                progress("videos", n)
    con.executemany("INSERT INTO videos VALUES (?, ?, ?)", videos)
    con.executemany("INSERT OR IGNORE INTO labels VALUES (?, ?)", labels)
    if sources.test_labels:
        test = []
        for row in S.read_csv(sources.test_labels):
            vid = vid_of.get(row.get("video_id", ""))
            if vid is None:
                continue
            ids = [i for i in S.labels_of(row.get("labels", "")) if i in entities]
            test.extend((i, vid) for i in ids)
            count_video("test", ids)
            if len(test) >= BATCH:
                con.executemany("INSERT OR IGNORE INTO test_labels VALUES (?, ?)", test)
                test = []
        con.executemany("INSERT OR IGNORE INTO test_labels VALUES (?, ?)", test)
    if progress:
        progress("videos", n)
    rows = []
    for i, r in sorted(entities.items()):
        vs = [r.get(f"Vertical{k}", "").strip() for k in (1, 2, 3)]
        name = r.get("Name", "") or r.get("KnowledgeGraphId", "")
        rows.append((i, r.get("KnowledgeGraphId", ""), name, name.lower(), r.get("WikiUrl", ""),
                     *vs, r.get("WikiDescription", ""), r.get("Specificity", ""),
                     counts[i]["train"], counts[i]["validate"], counts[i]["test"]))
    con.executemany("INSERT INTO entities VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    con.executemany("INSERT INTO verticals VALUES (?, ?, ?, ?, ?)",
                    [(v, c["entities"], c["train"], c["validate"], c["test"])
                     for v, c in sorted(vcounts.items())])


def _build_catalog(con: sqlite3.Connection, sources: S.Sources) -> None:
    if not sources.catalog:
        return
    from yt8m.vocab.catalog import read_entities
    from yt8m.vocab.config import VocabConfig
    from yt8m.vocab.rules import entity_reason
    config = VocabConfig()
    if sources.selection:
        try:
            with S.open_text(sources.selection) as fh:
                cfg = json.loads(fh.read()).get("config") or {}
            config = VocabConfig(type_whitelist=cfg.get("type_whitelist"),
                                 type_blacklist=cfg.get("type_blacklist"))
        except (ValueError, TypeError):
            pass  # an unreadable selection.json: every catalog entity is a candidate
    rows = []
    try:
        for pos, e in enumerate(read_entities(sources.catalog)):
            # Rule 1 (types) decides which entities raters see; rule 2 is what they decide.
            candidate = entity_reason(e.types, None, False, config) is None
            rows.append((e.kg_id, e.name or e.kg_id, ";".join(e.types), ";".join(e.verticals),
                         e.description, e.wiki_url, int(candidate), pos))
    except ValueError as err:
        raise IndexBuildError(str(err)) from err
    con.executemany("INSERT INTO catalog VALUES (?,?,?,?,?,?,?,?)", rows)


ENTITY_COLUMNS = ("idx", "kg_id", "name", "wiki_url", "v1", "v2", "v3", "description",
                  "specificity", "train_count", "validate_count", "test_count")


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Index:
    """Read-only queries on an index file; one SQLite connection per thread."""

    def __init__(self, path: str):
        if not os.path.exists(path):
            raise FileNotFoundError(f"no explorer index at {path}; 'serve' builds it")
        self.path = path
        self._local = threading.local()
        meta = dict(self._con().execute("SELECT key, value FROM meta").fetchall())
        self.data_dir = meta.get("data_dir") or None
        self._entity_ids: Optional[list] = None

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            con.row_factory = sqlite3.Row
            self._local.con = con
        return con

    def _all(self, sql: str, args=()) -> list[dict]:
        return [dict(r) for r in self._con().execute(sql, args).fetchall()]

    def _one(self, sql: str, args=()) -> Optional[dict]:
        r = self._con().execute(sql, args).fetchone()
        return dict(r) if r is not None else None

    # -- entities ---------------------------------------------------------
    @staticmethod
    def _public(e: Optional[dict], include_test: bool) -> Optional[dict]:
        if e is None:
            return None
        e = dict(e)
        e.pop("name_lc", None)
        e["verticals"] = [v for v in (e.pop("v1"), e.pop("v2"), e.pop("v3")) if v]
        if not include_test:
            e.pop("test_count", None)
        return e

    def num_entities(self) -> int:
        return self._con().execute("SELECT COUNT(*) FROM entities").fetchone()[0]

    def num_videos(self, include_test: bool = False) -> dict:
        rows = self._all("SELECT split, COUNT(*) AS n FROM videos GROUP BY split")
        out = {r["split"]: r["n"] for r in rows}
        return {s: out.get(s, 0) for s in ("train", "validate", "test")
                if include_test or s != "test"}

    def entity(self, kg_id: str, include_test: bool = False) -> Optional[dict]:
        return self._public(self._one("SELECT * FROM entities WHERE kg_id = ?", (kg_id,)),
                            include_test)

    def entity_by_idx(self, idx: int, include_test: bool = False) -> Optional[dict]:
        return self._public(self._one("SELECT * FROM entities WHERE idx = ?", (idx,)),
                            include_test)

    def entities_by_idx(self, ids: Iterable[int], include_test: bool = False) -> list[dict]:
        ids = list(ids)
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self._all(f"SELECT * FROM entities WHERE idx IN ({marks})", ids)
        by = {r["idx"]: r for r in rows}
        return [self._public(by[i], include_test) for i in ids if i in by]

    def entity_ids(self) -> list[int]:
        if self._entity_ids is None:
            self._entity_ids = [r[0] for r in
                                self._con().execute("SELECT idx FROM entities ORDER BY idx")]
        return self._entity_ids

    def kg_ids(self) -> list[str]:
        """Every entity's kg_id, by Index."""
        return [r[0] for r in self._con().execute("SELECT kg_id FROM entities ORDER BY idx")]

    def kg_to_idx(self, kg_ids: Iterable[str]) -> dict[str, int]:
        kg_ids = list(kg_ids)
        out = {}
        for lo in range(0, len(kg_ids), 500):
            part = kg_ids[lo:lo + 500]
            marks = ",".join("?" * len(part))
            for r in self._con().execute(
                    f"SELECT kg_id, idx FROM entities WHERE kg_id IN ({marks})", part):
                out[r[0]] = r[1]
        return out

    def search(self, query: str, limit: int = 20, offset: int = 0,
               include_test: bool = False) -> tuple[list[dict], int]:
        """Entities whose name contains ``query`` (case-insensitive), or whose kg_id is it.

        Order: exact name, then names starting with it, then by train videos.
        """
        q = (query or "").strip().lower()
        if not q:
            return [], 0
        pat = f"%{_like(q)}%"
        where = "name_lc LIKE ? ESCAPE '\\' OR kg_id = ?"
        total = self._con().execute(f"SELECT COUNT(*) FROM entities WHERE {where}",
                                    (pat, query.strip())).fetchone()[0]
        rows = self._all(
            f"SELECT * FROM entities WHERE {where} ORDER BY (kg_id = ?) DESC, (name_lc = ?) DESC, "
            f"(name_lc LIKE ? ESCAPE '\\') DESC, train_count DESC, idx LIMIT ? OFFSET ?",
            (pat, query.strip(), query.strip(), q, f"{_like(q)}%", int(limit), int(offset)))
        return [self._public(r, include_test) for r in rows], total

    # -- verticals --------------------------------------------------------
    def verticals(self, include_test: bool = False) -> dict[str, dict]:
        out = {}
        for r in self._all("SELECT * FROM verticals"):
            row = {"entities": r["entities"], "train_videos": r["train_videos"],
                   "validate_videos": r["validate_videos"]}
            if include_test:
                row["test_videos"] = r["test_videos"]
            out[r["name"]] = row
        return out

    def vertical_entities(self, name: str, limit: int = 50, offset: int = 0,
                          include_test: bool = False) -> tuple[list[dict], int]:
        if name == UNASSIGNED:
            where, args = "v1 = '' AND v2 = '' AND v3 = ''", ()
        else:
            where, args = "v1 = ? OR v2 = ? OR v3 = ?", (name, name, name)
        total = self._con().execute(f"SELECT COUNT(*) FROM entities WHERE {where}",
                                    args).fetchone()[0]
        rows = self._all(f"SELECT * FROM entities WHERE {where} "
                         f"ORDER BY train_count DESC, idx LIMIT ? OFFSET ?",
                         (*args, int(limit), int(offset)))
        return [self._public(r, include_test) for r in rows], total

    # -- videos -----------------------------------------------------------
    def entity_videos(self, idx: int, limit: int = 24, offset: int = 0,
                      include_test: bool = False) -> tuple[list[dict], int]:
        """The videos labelled ``idx`` (train and validate; test ones for admins only)."""
        if include_test:
            body = ("SELECT vid FROM labels WHERE idx = ? UNION ALL "
                    "SELECT vid FROM test_labels WHERE idx = ?")
            args: tuple = (idx, idx)
        else:
            body, args = "SELECT vid FROM labels WHERE idx = ?", (idx,)
        total = self._con().execute(f"SELECT COUNT(*) FROM ({body})", args).fetchone()[0]
        rows = self._all(f"SELECT v.video_id, v.split FROM ({body}) AS l "
                         f"JOIN videos v ON v.vid = l.vid ORDER BY l.vid LIMIT ? OFFSET ?",
                         (*args, int(limit), int(offset)))
        return rows, total

    def video(self, video_id: str, include_test: bool = False) -> Optional[dict]:
        """``{video_id, split, labels: [entity...]}``; a test video's labels only for admins."""
        row = self._one("SELECT vid, video_id, split FROM videos WHERE video_id = ?", (video_id,))
        if row is None:
            return None
        vid = row.pop("vid")
        if row["split"] == "test":
            ids = self.test_label_ids(vid) if include_test else None
        else:
            ids = [r[0] for r in self._con().execute(
                "SELECT idx FROM labels WHERE vid = ? ORDER BY idx", (vid,))]
        row["labels"] = None if ids is None else self.entities_by_idx(ids, include_test)
        return row

    def test_label_ids(self, vid_or_id) -> list[int]:
        """A test video's labels (private: for admins and for building rating tasks)."""
        vid = vid_or_id
        if isinstance(vid_or_id, str):
            r = self._one("SELECT vid FROM videos WHERE video_id = ?", (vid_or_id,))
            if r is None:
                return []
            vid = r["vid"]
        return [r[0] for r in self._con().execute(
            "SELECT idx FROM test_labels WHERE vid = ? ORDER BY idx", (vid,))]

    def test_video_ids(self) -> Iterable[str]:
        for r in self._con().execute("SELECT video_id FROM videos WHERE split = 'test' "
                                     "ORDER BY vid"):
            yield r[0]

    def split_of(self, video_id: str) -> Optional[str]:
        r = self._one("SELECT split FROM videos WHERE video_id = ?", (video_id,))
        return r["split"] if r else None

    # -- catalog ----------------------------------------------------------
    def catalog_size(self) -> int:
        return self._con().execute("SELECT COUNT(*) FROM catalog WHERE candidate = 1").fetchone()[0]

    def catalog_candidates(self) -> list[str]:
        """kg_ids the raters rate: the catalog's entities that pass the type rule, in file order."""
        return [r[0] for r in self._con().execute(
            "SELECT kg_id FROM catalog WHERE candidate = 1 ORDER BY position")]

    def catalog_entity(self, kg_id: str) -> Optional[dict]:
        r = self._one("SELECT kg_id, name, types, verticals, description, wiki_url, candidate "
                      "FROM catalog WHERE kg_id = ?", (kg_id,))
        if r is None:
            e = self.entity(kg_id)
            if e is None:
                return None
            return {"kg_id": kg_id, "name": e["name"], "types": [], "verticals": e["verticals"],
                    "description": e["description"], "wiki_url": e["wiki_url"], "candidate": 1}
        r["types"] = [t for t in r["types"].split(";") if t]
        r["verticals"] = [v for v in r["verticals"].split(";") if v]
        return r
