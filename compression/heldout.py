"""A deterministic, bounded sample of held-out frames for the quality report.

The report (``compression.quality``) costs a whitening, two encodings and
three reconstructions per frame: over every validate frame of a large build
that is more work than the encoding itself. So it is computed on at most
``max_frames`` frames, chosen without a gather and without depending on the
order frames arrive in:

* every frame gets a key ``(split rank, h, video id, frame index)``: the
  split's position in ``splits`` (validate before test), then a 64-bit hash
  of ``(video id, frame index)`` (sha256 of the id, mixed with the index by
  splitmix64), then the id and index themselves (a tie-break that makes the
  key unique);
* ``FrameSampleCombiner`` keeps the ``max_frames`` smallest keys (a bounded
  top-k: create / add a video / merge / extract), with their frames' float16
  values (as the cache stores them) in float32: 4,096 x 2,048 frames is 32 MB.

On a runner the sample is taken in two passes, because a combiner's partial
result travels once per bundle: a 16 MB accumulator per bundle would grow with
the number of bundles (the data), in the local runner's memory and in
Dataflow's shuffle. ``SampleKeysCombiner`` first keeps only the keys (a key
needs the video id and the frame count, not the frames: a few hundred KB per
partial result) and gives the ``SampleCut``; ``frames_in_sample`` then names
the frames of a video that the cut keeps, and only those (at most
``max_frames`` in all) go to a ``FrameSampleCombiner``.

So the sample is a fixed function of the set of held-out videos: validate
frames spread over all validate videos, test frames only when validate has
fewer than ``max_frames``. The extracted ``FrameSample`` lists the frames in
key order, so the report computed on it is the same bit for bit.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Iterable, Optional, Sequence

import numpy as np

from yt8m.compression.exact_moments import cache_values, video_key

DEFAULT_MAX_FRAMES = 4096
DEFAULT_SPLITS = ("validate", "test")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def frame_hashes(video_id, n_frames: int) -> np.ndarray:
    """uint64 hashes of ``(video_id, i)`` for ``i < n_frames`` (splitmix64 of
    the id's sha256 plus the index): the same on every machine."""
    seed = np.uint64(int.from_bytes(
        hashlib.sha256(b"yt8m-heldout-sample\0" + video_key(video_id)).digest()[:8], "big"))
    z = seed + (np.arange(n_frames, dtype=np.uint64) + np.uint64(1)) * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@dataclasses.dataclass
class SampleAccumulator:
    keys: list = dataclasses.field(default_factory=list)   # sorted (rank, h, id, index)
    frames: Optional[np.ndarray] = None                     # (len(keys), D) float32
    seen: dict = dataclasses.field(default_factory=dict)    # split -> frames seen
    inputs_seen: int = 0
    # Added but not yet sorted in: [(keys, frames)], pruned once they reach
    # max_frames (one sort per max_frames frames, not one per video).
    pending: list = dataclasses.field(default_factory=list)
    pending_rows: int = 0


@dataclasses.dataclass(frozen=True)
class FrameSample:
    """The sampled frames (float16 values in float32, in key order) and what was seen."""
    frames: np.ndarray          # (n, D) float32
    keys: tuple                 # ((split, video_id, frame index), ...) in order
    seen: dict                  # split -> held-out frames seen (all, not only sampled)

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])


def _video_keys(video_id, rank: int, n_frames: int, worst: Optional[tuple] = None) -> list:
    """The keys of a video's frames (``rank``: its split's), only those <= ``worst`` if given."""
    h = frame_hashes(video_id, n_frames)
    keep = np.arange(n_frames)
    if worst is not None:
        worst_rank, worst_h = worst[:2]
        if rank > worst_rank:
            return []
        if rank == worst_rank:
            keep = np.flatnonzero(h <= np.uint64(worst_h))
    vid = video_key(video_id)
    return [(rank, int(h[i]), vid, int(i)) for i in keep]


@dataclasses.dataclass(frozen=True)
class SampleCut:
    """Which held-out frames the sample keeps: every frame whose key is <= ``last``
    (every frame when ``last`` is None: fewer than ``max_frames`` were seen), and how
    many held-out frames each split had."""
    last: Optional[tuple]
    seen: dict


@dataclasses.dataclass
class KeysAccumulator:
    keys: list = dataclasses.field(default_factory=list)    # sorted, at most max_frames
    seen: dict = dataclasses.field(default_factory=dict)
    inputs_seen: int = 0
    pending: list = dataclasses.field(default_factory=list)  # not yet sorted in


class SampleKeysCombiner:
    """The first pass: the ``max_frames`` smallest frame keys, from ``(video_id, split,
    frame count)``; no frames, so partial results stay small whatever the data."""

    def __init__(self, max_frames: int = DEFAULT_MAX_FRAMES,
                 splits: Sequence[str] = DEFAULT_SPLITS):
        FrameSampleCombiner(max_frames, splits)   # the same argument checks
        self.max_frames, self.splits = int(max_frames), tuple(splits)

    def create_accumulator(self) -> KeysAccumulator:
        return KeysAccumulator()

    def add_input(self, acc: KeysAccumulator, video_id, split: str, n_frames: int
                  ) -> KeysAccumulator:
        acc.inputs_seen += 1
        if split not in self.splits or n_frames <= 0:
            return acc
        acc.seen[split] = acc.seen.get(split, 0) + int(n_frames)
        # The sorted keys' worst bounds what can still get in (pending keys only lower it).
        worst = acc.keys[-1] if len(acc.keys) >= self.max_frames else None
        acc.pending += _video_keys(video_id, self.splits.index(split), int(n_frames), worst)
        if len(acc.pending) >= self.max_frames:
            self._flush(acc)
        return acc

    def _flush(self, acc: KeysAccumulator) -> KeysAccumulator:
        if acc.pending:
            acc.keys = sorted(acc.keys + acc.pending)[:self.max_frames]
            acc.pending = []
        return acc

    def merge_accumulators(self, accumulators: Iterable[KeysAccumulator]) -> KeysAccumulator:
        out = KeysAccumulator()
        for a in accumulators:
            out.inputs_seen += a.inputs_seen
            for split, n in a.seen.items():
                out.seen[split] = out.seen.get(split, 0) + n
            out.pending += list(a.keys) + list(a.pending)
            if len(out.pending) >= self.max_frames:
                self._flush(out)
        return self._flush(out)

    def compact(self, acc: KeysAccumulator) -> KeysAccumulator:
        return self._flush(acc)

    def extract_output(self, acc: KeysAccumulator) -> SampleCut:
        self._flush(acc)
        last = acc.keys[-1] if len(acc.keys) >= self.max_frames else None
        return SampleCut(last, {s: int(acc.seen.get(s, 0)) for s in self.splits})


def frames_in_sample(video_id, split: str, n_frames: int, cut: SampleCut,
                     splits: Sequence[str] = DEFAULT_SPLITS) -> np.ndarray:
    """The indices of a video's frames that ``cut`` keeps (sorted; often none)."""
    splits = tuple(splits)
    if split not in splits or n_frames <= 0:
        return np.zeros(0, np.int64)
    if cut.last is None:
        return np.arange(int(n_frames))
    rank = splits.index(split)
    keys = _video_keys(video_id, rank, int(n_frames), cut.last)
    return np.array([k[3] for k in keys if k <= cut.last], np.int64)


class FrameSampleCombiner:
    """Keeps the ``max_frames`` held-out frames with the smallest keys."""

    def __init__(self, max_frames: int = DEFAULT_MAX_FRAMES,
                 splits: Sequence[str] = DEFAULT_SPLITS):
        if not isinstance(max_frames, (int, np.integer)) or max_frames < 1:
            raise ValueError(f"max_frames must be a positive integer, got {max_frames!r}.")
        splits = tuple(splits)
        if not splits or len(set(splits)) != len(splits):
            raise ValueError(f"splits must be distinct split names in priority order, "
                             f"got {splits!r}.")
        self.max_frames, self.splits = int(max_frames), splits

    def create_accumulator(self) -> SampleAccumulator:
        return SampleAccumulator()

    def add_input(self, acc: SampleAccumulator, video_id, split: str, frames,
                  indices: Optional[Sequence[int]] = None) -> SampleAccumulator:
        """Adds one video's frames; videos of splits not in ``splits`` are ignored.

        ``indices``: the frames' positions in the video when ``frames`` holds only
        some of them (the second pass: ``frames_in_sample``); then ``seen`` counts
        only these, and the caller takes the split totals from the ``SampleCut``.
        """
        acc.inputs_seen += 1
        if split not in self.splits:
            return acc
        x = cache_values(frames, f"video {video_id!r}")
        acc.seen[split] = acc.seen.get(split, 0) + len(x)
        if not len(x):
            return acc
        rank = self.splits.index(split)
        if indices is None:
            idx = np.arange(len(x))
        else:
            idx = np.asarray(indices, np.int64)
            if idx.shape != (len(x),):
                raise ValueError(f"video {video_id!r}: {len(x)} frames but {idx.size} "
                                 f"frame indices")
        h = frame_hashes(video_id, int(idx.max()) + 1)[idx]
        keep = np.arange(len(x))
        if len(acc.keys) >= self.max_frames:
            worst_rank, worst_h = acc.keys[-1][:2]
            if rank > worst_rank:
                return acc
            if rank == worst_rank:
                keep = np.flatnonzero(h <= np.uint64(worst_h))
            if not keep.size:
                return acc
        vid = video_key(video_id)
        new = [(rank, int(h[i]), vid, int(idx[i])) for i in keep]
        self._keep(acc, new, x[keep])
        return acc

    def _keep(self, acc: SampleAccumulator, keys: list, frames: np.ndarray) -> None:
        have = acc.frames if acc.frames is not None else (
            acc.pending[0][1] if acc.pending else None)
        if have is not None and frames.shape[1] != have.shape[1]:
            raise ValueError(f"held-out frames of {frames.shape[1]} dimensions after "
                             f"{have.shape[1]}-dimensional ones; every video must come "
                             f"from the same feature model.")
        acc.pending.append((keys, frames))
        acc.pending_rows += len(keys)
        if acc.pending_rows >= self.max_frames:
            self._flush(acc)

    def _flush(self, acc: SampleAccumulator) -> SampleAccumulator:
        """Sorts the pending frames in and keeps the ``max_frames`` smallest keys."""
        if not acc.pending:
            return acc
        all_keys = list(acc.keys)
        pieces = [] if acc.frames is None else [acc.frames]
        for keys, frames in acc.pending:
            all_keys += keys
            pieces.append(frames)
        all_frames = np.concatenate(pieces)
        order = sorted(range(len(all_keys)), key=all_keys.__getitem__)[:self.max_frames]
        acc.keys = [all_keys[i] for i in order]
        acc.frames = all_frames[order]
        acc.pending, acc.pending_rows = [], 0
        return acc

    def merge_accumulators(self, accumulators: Iterable[SampleAccumulator]
                           ) -> SampleAccumulator:
        out = SampleAccumulator()
        for a in accumulators:
            out.inputs_seen += a.inputs_seen
            for split, n in a.seen.items():
                out.seen[split] = out.seen.get(split, 0) + n
            self._flush(a)
            if a.keys:
                self._keep(out, list(a.keys), a.frames)
        return self._flush(out)

    def compact(self, acc: SampleAccumulator) -> SampleAccumulator:
        return self._flush(acc)

    def extract_output(self, acc: SampleAccumulator) -> FrameSample:
        self._flush(acc)
        d = acc.frames.shape[1] if acc.frames is not None else 0
        frames = acc.frames if acc.frames is not None else np.zeros((0, d), np.float16)
        keys = tuple((self.splits[r], vid.decode("utf-8", "replace"), i)
                     for r, _, vid, i in acc.keys)
        seen = {s: int(acc.seen.get(s, 0)) for s in self.splits}
        return FrameSample(frames, keys, seen)
