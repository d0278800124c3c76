"""What a job wrote, excluded and lost, counted without gathering: counts.json.

``Counts`` is the pure core: it adds ``WrittenVideo``s, ``FailureRecord``s and
``ExcludedRow``s one at a time and merges with other ``Counts`` in any order,
holding only totals: videos and frames per split, rows per exclusion reason,
videos per failure reason, and the decode-warning summary (videos per warning
kind, messages with their numbers masked, and the first ``EXAMPLES`` videos by
id with their warnings). Its size does not grow with the number of videos:
reasons are a fixed vocabulary (``stage: kind``, the selection's rules), and
masked messages are the decoder's templates (numbers masked; FFmpeg's reasons
are a fixed set of strings). ``CountsFn`` is its thin Beam ``CombineFn``.

``Counts.to_dict(selection)`` is counts.json, which ``pipeline.launch`` reads
back to write dataset_info.json (``pipeline.report``).
"""
from __future__ import annotations

import heapq
import re
from typing import Iterable, Optional

import apache_beam as beam

from yt8m.records import ExcludedRow, FailureRecord, WrittenVideo

EXAMPLES = 5          # videos with decode warnings shown by id
TOP_REASONS = 5       # most frequent warning messages shown
REASON_CHARS = 160
ALL_VIDEOS = "all"    # the "split" of videos without one (extract)


def mask_numbers(message: str) -> str:
    """A warning message as a countable reason: "stopped at 2.000 s" -> "stopped at N s"."""
    return re.sub(r"\d+(\.\d+)?", "N", str(message))[:REASON_CHARS]


def _first_by_id(examples: list) -> list:
    return heapq.nsmallest(EXAMPLES, examples, key=lambda e: e[0])


def _add(counts: dict, key, n: int = 1) -> None:
    counts[key] = counts.get(key, 0) + n


class Counts:
    """Mergeable counts of one job's outcome (see the module docstring)."""

    def __init__(self):
        self.splits: dict = {}            # split -> [videos, frames]
        self.failure_reasons: dict = {}   # "stage: kind" -> videos
        self.excluded_reasons: dict = {}  # selection rule -> rows
        self.warned_videos = 0
        self.warnings = 0
        self.warning_kinds: dict = {}     # kind -> videos
        self.warning_reasons: dict = {}   # masked message -> messages
        self.examples: list = []          # (video_id, [warning dicts]), the smallest ids

    def add(self, item) -> "Counts":
        if isinstance(item, WrittenVideo):
            c = self.splits.setdefault(item.split or ALL_VIDEOS, [0, 0])
            c[0] += 1
            c[1] += int(item.frames)
            if item.decode_warnings:
                self._add_warnings(item)
        elif isinstance(item, FailureRecord):
            _add(self.failure_reasons, item.reason)
        elif isinstance(item, ExcludedRow):
            _add(self.excluded_reasons, item.reason)
        else:
            raise TypeError(f"Counts adds WrittenVideo, FailureRecord and ExcludedRow records, "
                            f"got {type(item).__name__}")
        return self

    def _add_warnings(self, item: WrittenVideo) -> None:
        self.warned_videos += 1
        self.warnings += len(item.decode_warnings)
        for kind in {w.kind for w in item.decode_warnings}:
            _add(self.warning_kinds, kind)
        for w in item.decode_warnings:
            _add(self.warning_reasons, mask_numbers(w.message))
        example = (str(item.video_id), [w.to_dict() for w in item.decode_warnings])
        self.examples = _first_by_id(self.examples + [example])

    def merge(self, other: "Counts") -> "Counts":
        for split, (videos, frames) in other.splits.items():
            c = self.splits.setdefault(split, [0, 0])
            c[0] += videos
            c[1] += frames
        for mine, theirs in ((self.failure_reasons, other.failure_reasons),
                             (self.excluded_reasons, other.excluded_reasons),
                             (self.warning_kinds, other.warning_kinds),
                             (self.warning_reasons, other.warning_reasons)):
            for key, n in theirs.items():
                _add(mine, key, n)
        self.warned_videos += other.warned_videos
        self.warnings += other.warnings
        self.examples = _first_by_id(self.examples + other.examples)
        return self

    @classmethod
    def of(cls, items: Iterable) -> "Counts":
        counts = cls()
        for item in items:
            counts.add(item)
        return counts

    @property
    def written(self) -> int:
        return sum(v for v, _ in self.splits.values())

    @property
    def failed(self) -> int:
        return sum(self.failure_reasons.values())

    @property
    def excluded(self) -> int:
        return sum(self.excluded_reasons.values())

    def decode_warnings(self) -> dict:
        """dataset_info.json's ``decode_warnings``: the written videos that decoded with warnings."""
        top = sorted(self.warning_reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS]
        return {"videos": self.warned_videos, "warnings": self.warnings,
                "by_kind": dict(sorted(self.warning_kinds.items())),
                "top_reasons": [{"reason": r, "count": n} for r, n in top],
                "examples": [{"video_id": vid, "warnings": ws} for vid, ws in self.examples]}

    def to_dict(self, selection: Optional[dict] = None) -> dict:
        """counts.json; ``selection``: the vocab room's accounting (a build), else None."""
        out = {"written": self.written, "failed": self.failed, "excluded": self.excluded,
               "splits": {s: {"videos": v, "frames": f}
                          for s, (v, f) in sorted(self.splits.items())},
               "failure_reasons": dict(sorted(self.failure_reasons.items())),
               "excluded_reasons": dict(sorted(self.excluded_reasons.items())),
               "decode_warnings": self.decode_warnings(),
               "manifest_rows": None, "selection": {}}
        if selection is not None:
            out["manifest_rows"] = int(selection["rows"]["total"])
            # The selection's own figures (rows by reason, split sizes, entities),
            # minus what dataset_info.json already holds (flags, inputs).
            out["selection"] = {k: v for k, v in selection.items()
                                if k not in ("config", "inputs")}
        return out


class CountsFn(beam.CombineFn):
    """``Counts`` as a Beam combiner: written videos, failures and excluded rows in, one out."""

    def create_accumulator(self) -> Counts:
        return Counts()

    def add_input(self, acc: Counts, item) -> Counts:
        return acc.add(item)

    def merge_accumulators(self, accs) -> Counts:
        accs = iter(accs)
        merged = next(accs, None) or Counts()
        for acc in accs:
            merged.merge(acc)
        return merged

    def extract_output(self, acc: Counts) -> Counts:
        return acc
