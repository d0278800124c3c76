"""The raw-feature cache: OUT/cache/, one float16 file per video.

A build extracts each video once. As soon as a video's 2048-d frame features
are complete they are written to the cache, so that a rerun after a crash or a
kill and ``resplit`` decode nothing already done.

Layout and format (documented in docs/pipeline.md):

* ``OUT/cache/<hh>/<safe_id>-<model>-<fp>.npz``: ``hh`` is the first two hex
  digits of SHA-256(video_id) (so that one folder never holds millions of
  files, and all entries of a video share a folder); ``model`` the first 8 hex
  digits of the model fingerprint (SHA-256 of the model's identity: the
  weights info of ``extractor.weights.weights_info`` (name, source, sha256,
  random seed, input range, precision) and the frame sampling (fps, cap));``fp`` the first 24 hex digits of SHA-256
  over (video_id, uri, size in bytes, modification time, model fingerprint).
  A video that changed on disk, or other weights, gets another file, never a
  stale hit. ``resplit`` finds a video's entries by ``<safe_id>-<model>-*``
  without touching the video file.
* The ``.npz`` holds ``features`` float16 ``(F, 2048)`` (Inception's pooled
  ReLU activations are in [0, ~20]; float16 keeps 3 significant digits, far
  below the 8-bit quantization step, and halves the size), ``frame_times``
  float64 ``(F,)`` and ``meta`` (a JSON string: video_id, uri, size, mtime,
  model, decode_warnings: the decoder's ``DecodeWarning``s as
  ``{"kind", "message"}``, e.g. frames kept after a partial decode; an entry
  that holds a bare message reads back as kind ``other``).
* Every file is written through ``yt8m.fs.atomic_write`` with its temporary
  file in ``OUT/.tmp/cache/``: a kill never leaves a half-written entry, and a
  retried bundle rewrites identical bytes (same name, same content).

Everything downstream uses the float16-rounded values (``as_cached``), so a
build resumed from the cache gives the same bytes as an uninterrupted one.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

from yt8m import fs
from yt8m.records import DecodeWarning

CACHE_DTYPE = np.float16
FINGERPRINT_HEX = 24
# Fields of the model's ``info`` that only say where the weights are: the
# sha256 identifies the content (a hub handle without one keeps its path).
LOCATION_KEYS = ("spec", "path")
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,80}$")


class CacheError(Exception):
    """A cache entry exists but cannot be used (corrupt, or for another video)."""


def model_identity(info: Mapping) -> dict:
    """The part of a feature model's ``info`` that decides its outputs."""
    if not info:
        raise ValueError("model info is empty: the cache needs the model's name, source and "
                         "weights sha256 (extractor.weights.load_feature_model(...).info)")
    keep_location = info.get("sha256") is None and info.get("source") != "random"
    return {k: v for k, v in info.items() if keep_location or k not in LOCATION_KEYS}


def model_fingerprint(info: Mapping) -> str:
    blob = json.dumps(model_identity(info), sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:FINGERPRINT_HEX]


@dataclass(frozen=True)
class FileStamp:
    """What identifies a video file's content cheaply: its size and mtime."""
    uri: str
    size: int
    mtime: float


def stat_video(uri: str) -> Optional[FileStamp]:
    """Size and modification time through FileSystems; None if it cannot be listed."""
    # A missing or unlistable file is a cache miss; the extractor then
    # reports why it cannot be read.
    found = fs.match(uri)
    if not found:
        return None
    meta = found[0]
    return FileStamp(uri=uri, size=int(meta.size_in_bytes),
                     mtime=float(getattr(meta, "last_updated_in_seconds", 0.0) or 0.0))


def fingerprint(video_id: str, stamp: FileStamp, model_fp: str) -> str:
    blob = json.dumps({"video_id": video_id, "uri": stamp.uri, "size": stamp.size,
                       # mtime to the microsecond: filesystems report floats.
                       "mtime": round(stamp.mtime, 6), "model": model_fp},
                      sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:FINGERPRINT_HEX]


def safe_id(video_id: str) -> str:
    """A file-name-safe form of ``video_id`` (ids with other characters are hashed)."""
    if _SAFE_ID.match(video_id) and not video_id.startswith("."):
        return video_id
    return "h" + hashlib.sha256(video_id.encode("utf-8")).hexdigest()[:32]


def _bucket(video_id: str) -> str:
    return hashlib.sha256(video_id.encode("utf-8")).hexdigest()[:2]


def entry_path(cache_dir: str, video_id: str, model_fp: str, fp: str) -> str:
    return fs.join(cache_dir, _bucket(video_id),
                            f"{safe_id(video_id)}-{model_fp[:8]}-{fp}.npz")


def as_cached(features: np.ndarray) -> np.ndarray:
    """Features as every consumer sees them: rounded to float16, back in float32."""
    return np.asarray(features, np.float32).astype(CACHE_DTYPE).astype(np.float32)


def serialize_entry(video_id: str, features: np.ndarray, frame_times: np.ndarray,
                    meta: Mapping) -> bytes:
    feats = np.asarray(features)
    if feats.ndim != 2:
        raise ValueError(f"features for {video_id!r} must be (F, D), got {feats.shape}")
    buf = io.BytesIO()
    np.savez(buf, features=feats.astype(CACHE_DTYPE),
             frame_times=np.asarray(frame_times, np.float64),
             meta=np.array(json.dumps(dict(meta, video_id=video_id), sort_keys=True,
                                      default=str)))
    return buf.getvalue()


def deserialize_entry(data: bytes, video_id: Optional[str] = None) -> dict:
    """``{"features": float32 (F, 2048) float16-rounded, "frame_times", "meta"}``."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            feats = z["features"]
            times = z["frame_times"]
            meta = json.loads(str(z["meta"]))
    except Exception as e:  # noqa: BLE001 - any unreadable entry is one error kind
        raise CacheError(f"unreadable cache entry ({type(e).__name__}: {e})") from e
    if video_id is not None and meta.get("video_id") != video_id:
        raise CacheError(f"cache entry is for video {meta.get('video_id')!r}, "
                         f"not {video_id!r}")
    if feats.dtype != CACHE_DTYPE or feats.ndim != 2 or len(times) != len(feats):
        raise CacheError(f"cache entry has features {feats.dtype} {feats.shape} and "
                         f"{len(times)} frame times")
    return {"features": feats.astype(np.float32), "frame_times": times.astype(np.float64),
            "meta": meta}


class FeatureCache:
    """Read and write one build's cache folder (local or remote through FileSystems)."""

    def __init__(self, cache_dir: str, tmp_dir: str):
        if not cache_dir or not tmp_dir:
            raise ValueError("FeatureCache needs a cache folder and a temp folder "
                             "(OUT/cache and OUT/.tmp/cache)")
        self.cache_dir = cache_dir
        self.tmp_dir = tmp_dir

    def path_for(self, video_id: str, uri: str, model_fp: str) -> Optional[str]:
        """The entry's path for this file's current size/mtime; None if it cannot be stat'ed."""
        stamp = stat_video(uri)
        if stamp is None:
            return None
        return entry_path(self.cache_dir, video_id, model_fp,
                          fingerprint(video_id, stamp, model_fp))

    def entries_for(self, video_id: str, model_fp: str) -> list[str]:
        """Every entry of ``video_id`` made by this model, newest video file first.

        Used by ``resplit``, which must not touch the video files: when a file
        changed between builds there are several entries; the one of the most
        recently modified file wins.
        """
        pattern = fs.join(self.cache_dir, _bucket(video_id),
                                   f"{safe_id(video_id)}-{model_fp[:8]}-*.npz")
        found = [m.path for m in fs.match(pattern)]
        if len(found) <= 1:
            return found

        def mtime(path):
            try:
                return float(self.load(path, video_id)["meta"].get("mtime") or 0.0)
            except CacheError:
                return float("-inf")
        return sorted(found, key=lambda p: (-mtime(p), p))

    def load(self, path: str, video_id: Optional[str] = None) -> Optional[dict]:
        """The entry at ``path``, or None if there is none. Raises CacheError if corrupt."""
        if not fs.exists(path):
            return None
        entry = deserialize_entry(fs.read_bytes(path), video_id)
        entry["path"] = path
        return entry

    def store(self, video_id: str, uri: str, model_fp: str, features: np.ndarray,
              frame_times: np.ndarray, model_info: Mapping,
              decode_warnings: Sequence[DecodeWarning] = ()) -> Optional[str]:
        """Write the entry atomically; returns its path (None if the video cannot be stat'ed).

        ``decode_warnings`` (the decoder's ``DecodeWarning``s) are kept in ``meta`` as
        their dicts, so that a build reading the entry back reports them (by kind) as
        the build that extracted it did (``DecodeWarning.from_value`` reads them).
        """
        stamp = stat_video(uri)
        if stamp is None:
            return None
        path = entry_path(self.cache_dir, video_id, model_fp,
                          fingerprint(video_id, stamp, model_fp))
        meta = {"uri": uri, "size": stamp.size, "mtime": stamp.mtime,
                "model": model_identity(model_info),
                "decode_warnings": [DecodeWarning.from_value(w).to_dict()
                                    for w in decode_warnings]}
        fs.atomic_write(path, serialize_entry(video_id, features, frame_times, meta),
                        self.tmp_dir)
        return path


class CachedFrames:
    """A video's frame features that travel between steps as the path of their cache entry.

    Why: a build's features are consumed by several steps (the PCA and quantizer
    fits, the encoding, the quality report) that wait for one another, so every
    runner must keep them between steps: the local FnApiRunner in memory, Dataflow
    in its shuffle. Both then hold the whole dataset's 2048-d frames (8 KB each).
    The cache already holds every frame, immutably (a new file or model is a new
    entry), so what travels is this object's pickle: the entry's path and the
    frame count, a few hundred bytes. Each step that looks at the frames
    (``np.asarray(frames)``) reads the entry back, once per step, and gets exactly
    the float16-rounded float32 values the step before saw.

    It is an array-like: ``np.asarray`` gives the ``(F, D)`` float32 array,
    ``len()`` the frame count without reading anything.
    """

    __slots__ = ("path", "video_id", "num_frames", "_array")

    def __init__(self, path: str, video_id: str, num_frames: int,
                 array: Optional[np.ndarray] = None):
        self.path, self.video_id, self.num_frames = path, video_id, int(num_frames)
        # The values as loaded or stored in this step, so the step itself reads nothing.
        self._array = array

    @classmethod
    def of(cls, path: Optional[str], video_id: str, features: np.ndarray):
        """``features`` by reference when they are in the cache at ``path``, else as they are."""
        if not path:
            return features
        return cls(path, video_id, len(features), np.asarray(features, np.float32))

    def load(self) -> np.ndarray:
        if self._array is None:
            if not fs.exists(self.path):
                raise CacheError(
                    f"the cache entry of video {self.video_id!r} ({self.path}) disappeared "
                    f"while the build was running; keep the cache folder in place until the "
                    f"build ends, then run the build again (it re-extracts what is missing)")
            x = deserialize_entry(fs.read_bytes(self.path), self.video_id)["features"]
            if len(x) != self.num_frames:
                raise CacheError(f"the cache entry of video {self.video_id!r} ({self.path}) "
                                 f"has {len(x)} frames, {self.num_frames} were cached")
            self._array = x
        return self._array

    def __array__(self, dtype=None, copy=None):
        x = self.load()
        return x if dtype is None else x.astype(dtype, copy=False)

    def __len__(self) -> int:
        return self.num_frames

    @property
    def shape(self) -> tuple:
        return tuple(self.load().shape)

    def __reduce__(self):
        # The frames stay behind: the receiving step reads them from the cache.
        return (CachedFrames, (self.path, self.video_id, self.num_frames))

    def __repr__(self) -> str:
        return f"CachedFrames({self.video_id!r}, {self.num_frames} frames, {self.path!r})"
