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
  top-k: create / add a video / merge / extract), with their frames as
  float16 (as the cache stores them: 4,096 x 2,048 frames is 16 MB).

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
    frames: Optional[np.ndarray] = None                     # (len(keys), D) float16
    seen: dict = dataclasses.field(default_factory=dict)    # split -> frames seen
    inputs_seen: int = 0


@dataclasses.dataclass(frozen=True)
class FrameSample:
    """The sampled frames (float16, in key order) and what was seen."""
    frames: np.ndarray          # (n, D) float16
    keys: tuple                 # ((split, video_id, frame index), ...) in order
    seen: dict                  # split -> held-out frames seen (all, not only sampled)

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])


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

    def add_input(self, acc: SampleAccumulator, video_id, split: str, frames
                  ) -> SampleAccumulator:
        """Adds one video's frames; videos of splits not in ``splits`` are ignored."""
        acc.inputs_seen += 1
        if split not in self.splits:
            return acc
        x = cache_values(frames, f"video {video_id!r}")
        acc.seen[split] = acc.seen.get(split, 0) + len(x)
        if not len(x):
            return acc
        rank = self.splits.index(split)
        h = frame_hashes(video_id, len(x))
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
        new = [(rank, int(h[i]), vid, int(i)) for i in keep]
        self._keep(acc, new, x[keep])
        return acc

    def _keep(self, acc: SampleAccumulator, keys: list, frames: np.ndarray) -> None:
        if acc.frames is not None and frames.shape[1] != acc.frames.shape[1]:
            raise ValueError(f"held-out frames of {frames.shape[1]} dimensions after "
                             f"{acc.frames.shape[1]}-dimensional ones; every video must come "
                             f"from the same feature model.")
        all_keys = acc.keys + keys
        all_frames = frames if acc.frames is None else np.concatenate([acc.frames, frames])
        order = sorted(range(len(all_keys)), key=all_keys.__getitem__)[:self.max_frames]
        acc.keys = [all_keys[i] for i in order]
        acc.frames = all_frames[order]

    def merge_accumulators(self, accumulators: Iterable[SampleAccumulator]
                           ) -> SampleAccumulator:
        out = SampleAccumulator()
        for a in accumulators:
            out.inputs_seen += a.inputs_seen
            for split, n in a.seen.items():
                out.seen[split] = out.seen.get(split, 0) + n
            if a.keys:
                self._keep(out, list(a.keys), a.frames)
        return out

    def compact(self, acc: SampleAccumulator) -> SampleAccumulator:
        return acc

    def extract_output(self, acc: SampleAccumulator) -> FrameSample:
        d = acc.frames.shape[1] if acc.frames is not None else 0
        frames = acc.frames if acc.frames is not None else np.zeros((0, d), np.float16)
        keys = tuple((self.splits[r], vid.decode("utf-8", "replace"), i)
                     for r, _, vid, i in acc.keys)
        seen = {s: int(acc.seen.get(s, 0)) for s in self.splits}
        return FrameSample(frames, keys, seen)
