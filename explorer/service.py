"""The explorer's state: the build's sources, its index, the ratings store and the task pools.

``Explorer.prepare()`` makes the index (``explorer.index``: reused when the
build's files did not change) and adds the task pools that are missing:
entity tasks for the catalog's candidate entities, video tasks for a seeded
uniform sample of the test split. ``serve`` runs it in a background thread so
that the server answers at once (pages say "indexing" until it is done).
"""
from __future__ import annotations

import hashlib
import heapq
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Optional

from yt8m.explorer import db as D
from yt8m.explorer import source as S
from yt8m.explorer.index import Index, ensure_index
from yt8m.explorer.tasks import DEFAULT_LEASE_S, Store, candidates_for, task_rank

log = logging.getLogger("yt8m.explorer")

DEFAULT_VIDEO_TASKS = 8000   # the paper's human-rated set: "over 8000 videos"
DEFAULT_CANDIDATES = 10
DEFAULT_TOP_K = 5


@dataclass(frozen=True)
class Settings:
    data_dir: Optional[str] = None
    catalog: Optional[str] = None          # --entities: rate this catalog (default: the build's)
    predictions: Optional[str] = None      # a predictions CSV (predict's, or train's)
    db_url: Optional[str] = None
    index_path: Optional[str] = None
    lease_s: float = DEFAULT_LEASE_S
    video_tasks: int = DEFAULT_VIDEO_TASKS
    candidates: int = DEFAULT_CANDIDATES
    top_k: int = DEFAULT_TOP_K
    seed: int = 0

    def __post_init__(self):
        if self.video_tasks < 0:
            raise ValueError(f"--video_tasks must be >= 0, got {self.video_tasks}")
        if self.candidates < 1 or self.top_k < 0:
            raise ValueError(f"--candidates must be >= 1 and --top_k >= 0, got "
                             f"{self.candidates} and {self.top_k}")


def default_db_url(data_dir: Optional[str]) -> str:
    """OUT/private/explorer.sqlite: ratings of test videos are as private as test labels."""
    if not data_dir:
        raise ValueError("give --db PATH or --db_url URL (no --data_dir to keep the ratings in)")
    if "://" in data_dir and not data_dir.startswith("file://"):
        raise ValueError(f"{data_dir} is not a local folder: give --db PATH (a local SQLite "
                         f"file) or --db_url URL for the ratings database")
    return D.sqlite_url(os.path.join(data_dir, "private", "explorer.sqlite"))


def default_index_path(db_url: str, data_dir: Optional[str]) -> str:
    """Beside a SQLite ratings file; else in the user's cache folder. One per build."""
    key = hashlib.sha256((data_dir or "").encode("utf-8")).hexdigest()[:10]
    if db_url.startswith("sqlite:///"):
        base = db_url[len("sqlite:///"):]
        return f"{os.path.splitext(base)[0]}-index-{key}.sqlite"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "yt8m-explorer", f"index-{key}.sqlite")


def sample_test_videos(video_ids: Iterable[str], n: int, seed: int = 0) -> list[tuple[str, int]]:
    """A seeded uniform sample of ``n`` videos: the smallest ``task_rank("video", id)``.

    Depends on each id and the seed only, so a larger ``n`` extends a smaller
    one's sample, and adding test videos never removes a sampled one unless it
    falls below it in the order.
    """
    best = heapq.nsmallest(n, ((task_rank("video", v, seed), v) for v in video_ids))
    return [(v, rank) for rank, v in best]


class Explorer:
    """One build, its index and the ratings database, shared by every request."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.sources = S.Sources.locate(settings.data_dir, settings.catalog,
                                        settings.predictions)
        db_url = settings.db_url or default_db_url(settings.data_dir)
        self.db = D.Database(db_url)
        self.db.create()
        self.store = Store(self.db, lease_s=settings.lease_s)
        self.index_path = settings.index_path or default_index_path(db_url,
                                                                    self.sources.data_dir)
        self.index: Optional[Index] = None
        self.phase = "starting"
        self.progress_rows = 0
        self.error: Optional[str] = None
        self.prepared: dict = {}
        self._known: Optional[frozenset] = None
        self._thread: Optional[threading.Thread] = None

    # -- start-up -----------------------------------------------------------
    def prepare(self) -> dict:
        """Index the build and add missing task pools (blocking); returns what it did."""
        t0 = time.perf_counter()
        self.phase = "indexing"

        def progress(_what, n):
            self.progress_rows = n

        built = ensure_index(self.sources, self.index_path, progress)
        index = Index(self.index_path)
        self.phase = "tasks"
        entity_tasks = self.store.ensure_entity_tasks(index.catalog_candidates(),
                                                      self.settings.seed)
        video_tasks = self._ensure_video_tasks(index)
        self.index = index
        self.prepared = {"index": built, "entity_tasks_added": entity_tasks,
                         "video_tasks_added": video_tasks,
                         "seconds": time.perf_counter() - t0}
        self.phase = "ready"
        return self.prepared

    def start(self) -> threading.Thread:
        """``prepare`` in a daemon thread; its failure is kept in ``error`` for the pages."""
        def run():
            try:
                info = self.prepare()
                log.info("explorer ready: %s", info)
            except Exception as e:  # noqa: BLE001 - reported on every page, and logged
                self.error = f"{type(e).__name__}: {e}"
                self.phase = "failed"
                log.exception("explorer could not index %s", self.sources.data_dir)
        self._thread = threading.Thread(target=run, name="explorer-index", daemon=True)
        self._thread.start()
        return self._thread

    def wait(self, timeout: Optional[float] = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.ready

    @property
    def ready(self) -> bool:
        return self.phase == "ready" and self.index is not None

    def _ensure_video_tasks(self, index: Index) -> int:
        n = self.settings.video_tasks
        if n == 0 or not self.sources.test_labels:
            return 0
        sample = sample_test_videos(index.test_video_ids(), n, self.settings.seed)
        existing = {v for v, _ in sample if self.store.video_task(v) is not None}
        todo = [(v, r) for v, r in sample if v not in existing]
        if not todo:
            return 0
        predicted = {}
        if self.sources.predictions:
            predicted = S.read_predictions(self.sources.predictions, self.settings.top_k)
        vocabulary = index.kg_ids()
        kg_of = dict(zip(index.entity_ids(), vocabulary))
        rows = []
        for vid, rank in todo:
            truth = [kg_of[i] for i in index.test_label_ids(vid) if i in kg_of]
            pred = [kg_of.get(p) if isinstance(p, int) else p for p in predicted.get(vid, [])]
            pred = [p for p in pred if p]
            rows.append((vid, rank, candidates_for(vid, truth, pred, vocabulary,
                                                   total=self.settings.candidates,
                                                   seed=self.settings.seed)))
        return self.store.ensure_video_tasks(rows)

    # -- helpers for the pages ----------------------------------------------
    def known_kg_ids(self) -> frozenset:
        """The vocabulary's kg_ids (the entities a rater may mark in a video)."""
        if self._known is None and self.index is not None:
            self._known = frozenset(self.index.kg_ids())
        return self._known or frozenset()

    @property
    def cache_dir(self) -> Optional[str]:
        return self.sources.cache_dir

    def close(self) -> None:
        self.db.dispose()
