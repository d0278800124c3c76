"""The typed records that cross stage boundaries.

Data flows one way (docs/architecture.md):

    manifest row -> Video (selected) -> VideoFeatures (decoded + model) -> encoded records
                 \\-> ExcludedRow        \\-> FailureRecord (any stage)

Every stage takes and returns these types, never ad-hoc dicts, so a field
renamed in one room cannot silently vanish in another. They are plain frozen
dataclasses: Beam pickles them, and ``to_dict``/``from_dict`` give the JSON
forms written to failures.jsonl, the cache's metadata and dataset_info.json.

* ``DecodeWarning(kind, message)``: emitted by the decoder itself
  (``extractor.decode``); ``kind`` is one of ``DecodeWarning.KINDS`` and is
  what gets counted; ``message`` is for people and may be reworded freely.
* ``FailureRecord(video_id, uri, stage, kind, error)``: one line of
  failures.jsonl; ``stage`` one of ``STAGES``, ``kind`` a short stable word.
* ``Video``: a selected video (id, uri, split, label indices, ...).
* ``VideoFeatures``: a video with its raw frame features, sample times and
  decode warnings (and, for videos with sound, its audio features).
* ``WrittenVideo``: what the writer needs to count of an encoded video (its
  split, frames and decode warnings), without the features.
* ``ExcludedRow``: a manifest row the selection rules left out, and why.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping, Optional, Sequence

import numpy as np

# Where in the build a video failed.
STAGES = ("manifest", "select", "decode", "model", "cache", "encode", "write")


@dataclasses.dataclass(frozen=True)
class DecodeWarning:
    """Something the caller should know about a video that still decoded."""

    kind: str
    message: str

    KINDS = (
        "partial_decode",      # decoding stopped part way; the frames before were kept
        "truncated",           # the stream ends well before the declared duration
        "non_monotonic",       # frames with timestamps going back were skipped
        "missing_timestamps",  # frames without timestamps were placed one interval on
        "rotation",            # a display rotation that is not a multiple of 90 degrees
        "display_matrix",      # an unreadable display matrix (frames kept as stored)
        "audio",               # the audio track could not be used (video features kept)
        "other",
    )

    def __post_init__(self):
        if self.kind not in self.KINDS:
            raise ValueError(f"DecodeWarning kind {self.kind!r} is not one of {self.KINDS}")

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message}

    @classmethod
    def from_value(cls, value: Any) -> "DecodeWarning":
        """From a DecodeWarning, its dict form, or a bare message (kind ``other``)."""
        if isinstance(value, DecodeWarning):
            return value
        if isinstance(value, Mapping):
            kind = value.get("kind") or "other"
            return cls(kind if kind in cls.KINDS else "other", str(value.get("message", "")))
        return cls("other", str(value))


@dataclasses.dataclass(frozen=True)
class FailureRecord:
    """Why one video could not be written (one line of failures.jsonl)."""

    video_id: Optional[str]
    uri: Optional[str]
    stage: str
    kind: str
    error: str

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"FailureRecord stage {self.stage!r} is not one of {STAGES}")
        if not self.kind:
            raise ValueError("FailureRecord needs a kind (a short, countable word)")

    @property
    def reason(self) -> str:
        """The countable reason: ``stage: kind``."""
        return f"{self.stage}: {self.kind}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: Mapping) -> "FailureRecord":
        return cls(video_id=d.get("video_id"), uri=d.get("uri"), stage=d["stage"],
                   kind=d.get("kind") or "unknown", error=str(d.get("error", "")))

    def sort_key(self) -> tuple:
        """The order of failures.jsonl: by video id, then stage and kind."""
        return (str(self.video_id), self.stage, self.kind)


@dataclasses.dataclass(frozen=True)
class ExcludedRow:
    """A manifest row left out by a selection rule (one line of excluded.csv)."""

    video_id: Optional[str]
    line: Optional[int]
    reason: str
    detail: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Video:
    """A video going into extraction: a selected manifest row.

    ``labels``: sorted vocabulary indices (test videos carry them too; the
    writer keeps them out of the test split's records). ``split`` is None for
    ``extract``, which selects nothing.
    """

    video_id: str
    uri: str
    split: Optional[str] = None
    labels: Optional[tuple] = None
    duration_s: Optional[float] = None
    line: Optional[int] = None

    def __post_init__(self):
        if not self.video_id or not isinstance(self.video_id, str):
            raise ValueError(f"a Video needs a non-empty string video_id, got {self.video_id!r}")
        if self.labels is not None and not isinstance(self.labels, tuple):
            object.__setattr__(self, "labels", tuple(int(x) for x in self.labels))

    def failure(self, stage: str, kind: str, error: str) -> FailureRecord:
        return FailureRecord(self.video_id, self.uri, stage, kind, str(error))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["labels"] = None if self.labels is None else list(self.labels)
        return d


@dataclasses.dataclass(frozen=True, eq=False)
class VideoFeatures:
    """A video with its raw features.

    ``features`` float32 ``(F, 2048)`` (float16-rounded: what the cache
    stores), or in a build the array-like ``pipeline.cache.CachedFrames``
    (the same values, travelling as the cache entry's path: read them with
    ``np.asarray``), ``frame_times`` float64 ``(F,)`` seconds; ``audio`` float32
    ``(F, 128)`` or None (no audio features asked for, or none usable).
    """

    video: Video
    features: np.ndarray
    frame_times: np.ndarray
    decode_warnings: tuple = ()
    cache_path: Optional[str] = None
    audio: Optional[np.ndarray] = None
    # The decoder's thumbnails ``(images, times)`` until they are written
    # beside the cache (``pipeline.features``); None once written, or none asked.
    thumbnails: Optional[tuple] = None

    @property
    def video_id(self) -> str:
        return self.video.video_id

    @property
    def num_frames(self) -> int:
        return int(len(self.features))

    def replace(self, **changes) -> "VideoFeatures":
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class WrittenVideo:
    """An encoded video as the counts see it: ``split`` (None outside a build), frames, warnings."""

    video_id: str
    split: Optional[str]
    frames: int
    decode_warnings: tuple = ()


def warnings_from(values: Sequence[Any]) -> tuple:
    """A tuple of DecodeWarning from stored forms (dicts, messages)."""
    return tuple(DecodeWarning.from_value(v) for v in values or ())
