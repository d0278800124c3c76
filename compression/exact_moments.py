"""The PCA's moments of float16 frame features, reproducible bit for bit.

``MomentsCombiner`` (compression.pca) merges float64 moments in arrival order,
so two runs that feed the same frames in another order agree only to float
tolerance; near-degenerate eigenvectors then rotate and whitened values near
a quantizer boundary change code. The classes here give moments that depend
only on the *set* of frames, whatever the order, partition, bundling or
retries, with memory that does not grow with the number of frames:

1. ``FrameStatsCombiner``: the frame count and the exact column sums of the
   frames as the cache stores them (float16 values, multiples of 2**-24:
   a video's column sums are exact in float64, and ``ExactSum`` adds them
   exactly). Their mean rounded to float16 is the *shift* ``c``.
2. Deterministic units. Videos are hashed into ``bucket_count`` buckets
   (``bucket_of``: sha256 of the id), sized from the frame count so that a
   bucket holds ``bucket_frames / 2`` frames on average. A bucket's videos
   are sorted by id and their frames, centred on ``c`` (exact in float64),
   go through BLAS ``syrk`` in blocks of ``unit_rows`` rows accumulating into
   one float64 (D, D) result: the unit. Its computation is fixed by the
   bucket's content, so its bits are too; its entries are multiples of
   2**-48 (products of multiples of 2**-24, and float64 rounding of such sums
   stays on that grid), so ``ExactSum`` adds the units' upper triangles
   exactly, in any order. A bucket holding more than ``bucket_frames`` frames
   (rare by construction: twice the mean) is not buffered: each of its
   videos is its own unit, which depends on the video only.
3. ``ScatterCombiner.extract_output``: ``scatter = S_c - n d d^T`` with
   ``d = mean - c`` (small, so no cancellation), as ``compression.pca.Moments``.

What is exact: the frame sums (the mean is their exact value rounded once),
and the sum of the units. What is not: the float64 arithmetic inside a unit
(a syrk), which is however the same computation on the same array whatever
the arrival order. Memory per worker: the buffered bucket (at most
``bucket_frames`` frames as float32: 128 MB at the defaults and D = 2048),
one block (``unit_rows`` x D float64: 64 MB), the (D, D) unit (32 MB) and the
exact sums (3 x D(D+1)/2 float64: 50 MB), whatever the number of videos.

Input frames are rounded to float16 exactly as ``codec.round_like_cache``
does (a no-op for frames read from the cache); NaN, Inf and values beyond
float16's +-65504 raise a ValueError naming the video. ``exact_moments`` runs
the three steps over an in-memory list (the reference for the Beam shell,
``compression.beam.FitPCA``).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from typing import Iterable, Iterator, Optional

import numpy as np
from scipy.linalg.blas import dsyrk

from yt8m.compression.codec import float16_values
from yt8m.compression.exact import ExactSum
from yt8m.compression.pca import Moments

# Rows per syrk block: 4096 x 2048 float64 is 64 MB.
DEFAULT_UNIT_ROWS = 4096
# Frames a bucket may hold in memory (float32: 128 MB at D = 2048) to be
# sorted by video id; buckets hold half of it on average, so that the exact
# addition of a bucket's (D, D) result costs a few percent of its syrks.
DEFAULT_BUCKET_FRAMES = 16384

FLOAT16_GRID = -24           # every float16 value is a multiple of 2**-24
PRODUCT_GRID = 2 * FLOAT16_GRID
# Column sums of float16 values stay exact in float64 for this many rows:
# |x| < 2**16 on a 2**-24 grid is 40 bits, 2**13 of them need 53.
_SUM_ROWS = 1 << 13


def cache_values(frames, what: str) -> np.ndarray:
    """Frames as the feature cache stores them: float16 values, as a float32
    (F, D) array (``codec.float16_values``: the frames themselves when they
    already are, as ``pipeline.cache.as_cached`` returns them).

    Raises a ValueError naming ``what`` for non-numeric or badly shaped input
    and for NaN/Inf after float16 rounding (raw NaN, Inf or beyond +-65504).
    """
    x = np.asarray(frames)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{what}: expected frame features of shape (F, D), got {x.shape}.")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{what}: expected numeric frame features, got dtype {x.dtype}.")
    x = float16_values(x)
    if x.size and not np.isfinite(x).all():
        rows = np.flatnonzero(~np.isfinite(x).all(axis=1))
        raise ValueError(f"{what}: frame(s) {rows[:5].tolist()}{' ...' if len(rows) > 5 else ''} "
                         f"({len(rows)} of {len(x)}) are NaN/Inf after float16 rounding (raw "
                         f"values NaN, Inf or beyond +-65504, float16's range, in which the "
                         f"feature cache stores them); the feature model's output is broken "
                         f"for this video: drop or re-extract it.")
    return x


def video_key(video_id) -> bytes:
    """The bytes a video id is hashed and sorted by (str as UTF-8, or bytes)."""
    if isinstance(video_id, str):
        return video_id.encode("utf-8")
    if isinstance(video_id, bytes):
        return video_id
    raise TypeError(f"video ids must be str or bytes, got {type(video_id).__name__} "
                    f"{video_id!r}.")


def bucket_count(total_frames: int, bucket_frames: int = DEFAULT_BUCKET_FRAMES) -> int:
    """Buckets for ``total_frames`` frames: about ``bucket_frames / 2`` frames
    each, so that a bucket rarely exceeds ``bucket_frames``."""
    if bucket_frames < 1:
        raise ValueError(f"bucket_frames must be >= 1, got {bucket_frames}.")
    return max(1, math.ceil(2 * int(total_frames) / int(bucket_frames)))


def bucket_of(video_id, n_buckets: int) -> int:
    """The bucket of a video: sha256 of its id (Python's ``hash`` is salted
    per process, so it would differ between workers)."""
    digest = hashlib.sha256(b"yt8m-pca-bucket\0" + video_key(video_id)).digest()
    return int.from_bytes(digest[:8], "big") % int(n_buckets)


# ---- 1. count and exact column sums --------------------------------------------------
@dataclasses.dataclass
class FrameStatsAccumulator:
    frames: int = 0
    videos: int = 0
    sums: Optional[ExactSum] = None       # (D,) on the 2**-24 grid
    inputs_seen: int = 0


@dataclasses.dataclass(frozen=True)
class FrameStats:
    """What ``FrameStatsCombiner.extract_output`` returns."""
    count: int            # frames
    videos: int           # inputs added (videos)
    mean: np.ndarray      # (D,) float64, the exact mean rounded once
    shift: np.ndarray     # (D,) float64 holding float16 values: the mean rounded to float16

    @property
    def dim(self) -> int:
        return self.mean.shape[0]


def _new_sums(d: int) -> ExactSum:
    # Terms: column sums of <= 2**13 float16 values, |.| < 2**29, on 2**-24.
    # Totals up to 2**70 (more than 2**54 frames of 65504).
    return ExactSum(d, FLOAT16_GRID, parts=2, bits=42)


class FrameStatsCombiner:
    """create / add (a video's frames) / merge / compact / extract -> ``FrameStats``."""

    def create_accumulator(self) -> FrameStatsAccumulator:
        return FrameStatsAccumulator()

    def add_input(self, acc: FrameStatsAccumulator, frames, name: Optional[str] = None
                  ) -> FrameStatsAccumulator:
        what = name or f"input #{acc.inputs_seen} (0-based, in the order added)"
        acc.inputs_seen += 1
        x = cache_values(frames, what)
        if acc.sums is not None and x.shape[1] != acc.sums.shape[0]:
            raise ValueError(f"{what}: frames have {x.shape[1]} dimensions, earlier inputs "
                             f"had {acc.sums.shape[0]}; every video must come from the same "
                             f"feature model.")
        acc.videos += 1
        if not len(x):
            return acc
        if acc.sums is None:
            acc.sums = _new_sums(x.shape[1])
        for start in range(0, len(x), _SUM_ROWS):
            acc.sums.add(x[start:start + _SUM_ROWS].sum(axis=0, dtype=np.float64), what)
        acc.frames += len(x)
        return acc

    def merge_accumulators(self, accumulators: Iterable[FrameStatsAccumulator]
                           ) -> FrameStatsAccumulator:
        out = FrameStatsAccumulator()
        for a in accumulators:
            out.frames += a.frames
            out.videos += a.videos
            out.inputs_seen += a.inputs_seen
            if a.sums is None:
                continue
            if out.sums is None:
                out.sums = a.sums.copy()
            elif out.sums.shape != a.sums.shape:
                raise ValueError(f"cannot merge frame sums of {out.sums.shape[0]}-dim and "
                                 f"{a.sums.shape[0]}-dim frames; every video must come from "
                                 f"the same feature model.")
            else:
                out.sums.merge(a.sums)
        return out

    def compact(self, acc: FrameStatsAccumulator) -> FrameStatsAccumulator:
        if acc.sums is not None:
            acc.sums.normalize()
        return acc

    def extract_output(self, acc: FrameStatsAccumulator) -> FrameStats:
        if acc.sums is None or not acc.frames:
            d = acc.sums.shape[0] if acc.sums is not None else 0
            return FrameStats(acc.frames, acc.videos, np.zeros(d), np.zeros(d))
        mean = acc.sums.value() / acc.frames
        shift = mean.astype(np.float16).astype(np.float64)
        return FrameStats(acc.frames, acc.videos, mean, shift)


# ---- 2. units and their exact scatter sums ----------------------------------------------
@dataclasses.dataclass(frozen=True)
class UnitScatter:
    """One unit's ``sum (x - c)(x - c)^T``: its upper triangle, packed row by
    row (``np.triu_indices`` order), float64."""
    rows: int
    packed: np.ndarray


@dataclasses.dataclass
class ScatterAccumulator:
    frames: int = 0
    units: int = 0
    sums: Optional[ExactSum] = None       # (D(D+1)/2,) on the 2**-48 grid
    large_buckets: int = 0                # buckets over bucket_frames, added video by video
    inputs_seen: int = 0


def _new_scatter(n_packed: int) -> ExactSum:
    # Unit entries: multiples of 2**-48 below 2**78 (2**44 rows of 2**34);
    # totals below 2**88: three 42-bit digits.
    return ExactSum(n_packed, PRODUCT_GRID, parts=3, bits=42)


def packed_size(d: int) -> int:
    return d * (d + 1) // 2


def dim_of_packed(n: int) -> int:
    d = int((math.isqrt(8 * n + 1) - 1) // 2)
    if packed_size(d) != n:
        raise ValueError(f"{n} is not the size of a packed upper triangle.")
    return d


@functools.lru_cache(maxsize=4)
def _triu(d: int) -> tuple:
    """Row and column indices of the upper triangle (``np.triu_indices``
    order) and their flat positions in a Fortran-ordered (d, d) array."""
    i, j = np.triu_indices(d)
    return i, j, i + j * d


def unpack(packed: np.ndarray, d: int) -> np.ndarray:
    """The symmetric (d, d) matrix of a packed upper triangle."""
    i, j, _ = _triu(d)
    full = np.empty((d, d))
    full[i, j] = packed
    full[j, i] = packed
    return full


class ScatterCombiner:
    """Exact sums of unit scatters. ``shift`` (the ``FrameStats.shift``) is
    needed to make units (``bucket_units``, ``add_bucket``); adding, merging
    and extracting unit results need nothing else.

    ``unit_rows``: rows per syrk block; ``bucket_frames``: the most frames a
    bucket may buffer to be sorted (see the module docstring). Both are part
    of the result's definition: the artifacts are reproducible for fixed values.
    """

    def __init__(self, shift=None, unit_rows: int = DEFAULT_UNIT_ROWS,
                 bucket_frames: int = DEFAULT_BUCKET_FRAMES):
        if int(unit_rows) < 1:
            raise ValueError(f"unit_rows must be >= 1, got {unit_rows}.")
        if int(bucket_frames) < 1:
            raise ValueError(f"bucket_frames must be >= 1, got {bucket_frames}.")
        self.shift = None if shift is None else np.asarray(shift, np.float64).reshape(-1)
        if self.shift is not None and not np.array_equal(
                self.shift, self.shift.astype(np.float16).astype(np.float64)):
            raise ValueError("ScatterCombiner: the shift must hold float16 values "
                             "(FrameStats.shift), so that x - shift stays on the 2**-24 grid.")
        self.unit_rows, self.bucket_frames = int(unit_rows), int(bucket_frames)
        self._scratch = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_scratch"] = None
        return state

    # ---- making units --------------------------------------------------------------
    def _buffers(self, d: int):
        if self._scratch is None or self._scratch["rows"].shape[1] != d:
            self._scratch = {
                "rows": np.empty((self.unit_rows, d)),
                "c": np.zeros((d, d), order="F"),
                # Flat positions of the upper triangle in the Fortran-ordered result.
                "flat": _triu(d)[2],
            }
        return self._scratch

    def _units_of(self, arrays: Iterable[np.ndarray]) -> Iterator[UnitScatter]:
        """One unit: the concatenation of ``arrays`` (float16 values), centred
        on the shift in float64 (exactly), in blocks of ``unit_rows`` rows whose
        syrks accumulate, in order, into one float64 (D, D) result."""
        if self.shift is None:
            raise ValueError("ScatterCombiner needs the shift (FrameStats.shift) to make units.")
        d = self.shift.shape[0]
        s = self._buffers(d)
        buf, total, filled = s["rows"], 0, 0

        def flush(rows):
            # rows.T is Fortran-ordered: syrk reads it in place and updates the
            # upper triangle of s["c"] (beta = 0 for the first block: the old
            # content is not read).
            s["c"] = dsyrk(1.0, rows.T, beta=1.0 if total else 0.0, c=s["c"], trans=0,
                           lower=0, overwrite_c=1)

        for x in arrays:
            start = 0
            while start < len(x):
                take = min(len(x) - start, self.unit_rows - filled)
                np.subtract(x[start:start + take], self.shift, out=buf[filled:filled + take])
                filled += take
                start += take
                if filled == self.unit_rows:
                    flush(buf)
                    total += filled
                    filled = 0
        if filled:
            flush(buf[:filled])
            total += filled
        if total:
            yield UnitScatter(total, s["c"].ravel(order="F")[s["flat"]])

    def _check_video(self, vid, frames) -> np.ndarray:
        what = f"video {vid!r}"
        x = cache_values(frames, what)
        if self.shift is not None and len(x) and x.shape[1] != self.shift.shape[0]:
            raise ValueError(f"{what}: frames have {x.shape[1]} dimensions, the frame "
                             f"statistics {self.shift.shape[0]}; every video must come from "
                             f"the same feature model.")
        return x

    def bucket_units(self, items: Iterable, info: Optional[dict] = None
                     ) -> Iterator[UnitScatter]:
        """The units of one bucket of ``(video_id, frames)`` items, in any order.

        Up to ``bucket_frames`` frames are buffered, sorted by video id (a
        repeated id by content) and make one unit; past that, every video of
        the bucket is its own unit, so the result depends on the bucket's
        content only. ``info`` (a dict), if given, gets ``large``: whether the
        bucket went video by video.
        """
        buffered, total, large = [], 0, False
        for vid, frames in items:
            x = self._check_video(vid, frames)
            if not len(x):
                continue
            if large:
                yield from self._units_of([x])
                continue
            buffered.append((video_key(vid), x))
            total += len(x)
            if total > self.bucket_frames:
                # Too many frames to hold: every video of this bucket is its
                # own unit (the decision depends on the bucket's content only).
                large = True
                for _, bx in buffered:
                    yield from self._units_of([bx])
                buffered = []
        if info is not None:
            info["large"] = large
        if buffered:
            yield from self._units_of(x for _, x in _sorted_videos(buffered))

    # ---- the combiner ----------------------------------------------------------------
    def create_accumulator(self) -> ScatterAccumulator:
        return ScatterAccumulator()

    def add_input(self, acc: ScatterAccumulator, unit: UnitScatter) -> ScatterAccumulator:
        """Adds one unit's scatter (exactly)."""
        acc.inputs_seen += 1
        packed = np.asarray(unit.packed, dtype=np.float64)
        if acc.sums is None:
            dim_of_packed(packed.shape[0])
            acc.sums = _new_scatter(packed.shape[0])
        elif packed.shape != acc.sums.shape:
            raise ValueError(f"a unit scatter of {packed.shape[0]} entries added to sums of "
                             f"{acc.sums.shape[0]}; every video must come from the same "
                             f"feature model.")
        acc.sums.add(packed, "unit scatter")
        acc.frames += int(unit.rows)
        acc.units += 1
        return acc

    def add_bucket(self, acc: ScatterAccumulator, items: Iterable) -> ScatterAccumulator:
        info: dict = {}
        for unit in self.bucket_units(items, info):
            self.add_input(acc, unit)
        acc.large_buckets += int(info.get("large", False))
        return acc

    def merge_accumulators(self, accumulators: Iterable[ScatterAccumulator]
                           ) -> ScatterAccumulator:
        out = ScatterAccumulator()
        for a in accumulators:
            out.frames += a.frames
            out.units += a.units
            out.large_buckets += a.large_buckets
            out.inputs_seen += a.inputs_seen
            if a.sums is None:
                continue
            if out.sums is None:
                out.sums = a.sums.copy()
            elif out.sums.shape != a.sums.shape:
                raise ValueError("cannot merge scatters of frames of different sizes; every "
                                 "video must come from the same feature model.")
            else:
                out.sums.merge(a.sums)
        return out

    def compact(self, acc: ScatterAccumulator) -> ScatterAccumulator:
        if acc.sums is not None:
            acc.sums.normalize()
        return acc

    def extract_output(self, acc: ScatterAccumulator, stats: FrameStats) -> Moments:
        """``Moments`` (count, mean, centred scatter) from the exact sums."""
        if acc.frames != stats.count:
            raise ValueError(f"the scatter saw {acc.frames} frames, the frame statistics "
                             f"{stats.count}: both passes must read the same frames.")
        d = stats.dim
        if not stats.count:
            return Moments(0, np.zeros(d), np.zeros((d, d)))
        scatter = unpack(acc.sums.value(), d)
        delta = stats.mean - stats.shift
        correction = np.multiply.outer(delta, delta)
        correction *= stats.count
        scatter -= correction
        return Moments(stats.count, stats.mean.copy(), scatter)


def _sorted_videos(buffered: list) -> list:
    """Buffered ``(key, frames)`` by key; a repeated key (the same id twice) by
    content, so that the order never depends on arrival."""
    keys = [k for k, _ in buffered]
    if len(set(keys)) == len(keys):
        return sorted(buffered, key=lambda kv: kv[0])

    def content(x):
        return (x.shape, hashlib.sha256(np.ascontiguousarray(x).tobytes()).digest())
    return sorted(buffered, key=lambda kv: (kv[0],) + content(kv[1]))


# ---- the whole computation, in memory (the reference for the Beam shell) ------------------
def exact_moments(videos, unit_rows: int = DEFAULT_UNIT_ROWS,
                  bucket_frames: int = DEFAULT_BUCKET_FRAMES) -> tuple[Moments, FrameStats]:
    """Moments of ``videos`` (a re-iterable of ``(video_id, frames)``), computed
    exactly as ``compression.beam.FitPCA`` computes them: bit for bit the same
    for any order of ``videos``."""
    videos = list(videos)
    fs = FrameStatsCombiner()
    sacc = fs.create_accumulator()
    for vid, frames in videos:
        fs.add_input(sacc, frames, name=f"video {vid!r}")
    stats = fs.extract_output(sacc)
    combiner = ScatterCombiner(stats.shift, unit_rows, bucket_frames)
    n = bucket_count(stats.count, bucket_frames)
    buckets: dict = {}
    for vid, frames in videos:
        buckets.setdefault(bucket_of(vid, n), []).append((vid, frames))
    acc = combiner.create_accumulator()
    for b in sorted(buckets):
        combiner.add_bucket(acc, buckets[b])
    return combiner.extract_output(acc, stats), stats
