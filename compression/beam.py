"""Beam shells around compression's deterministic fits and quality sample.

The maths lives in the NumPy modules and is tested without a runner; these
composite transforms only arrange it (each step labelled, arguments checked
when the transform is built):

* ``FitPCA``: ``(video_id, raw frames (F, D))`` pairs of the train split ->
  a one-element PCollection holding the ``PCAWhitening`` (or None when there
  are fewer than ``min_frames`` frames). Steps: ``FrameStats`` (count and
  exact column sums of the frames rounded to float16 as the cache stores
  them: the mean and the shift; NaN/Inf name the video),
  ``KeyByBucket`` / ``GroupBuckets`` (hash buckets sized from the frame
  count), ``UnitScatters`` (per bucket: videos sorted by id, their frames'
  syrks in blocks of ``unit_rows`` rows accumulated into one (D, D) unit),
  ``SumScatters`` (exact sums, any order) and
  ``Eigendecomposition``. See ``compression.exact_moments``.
* ``FitQuantizer``: the same pairs plus the PCA PCollection -> a one-element
  PCollection holding the ``Quantizer`` (None when the PCA is None).
  ``lloyd``: every train frame is whitened exactly as ``codec.whiten_frames``
  whitens it and binned into an exact histogram (``HistogramCombiner``);
  ``uniform`` reads no frames.
* ``FitPCAAndQuantizer``: both, as ``{"pca": ..., "quantizer": ...}``.
* ``HeldOutQualityReport``: ``(video_id, split, raw frames)`` triples and the
  fitted PCollections -> a one-element PCollection holding the quality report
  dict (``compression.quality.sample_report``) on a deterministic bounded
  sample of held-out frames (``compression.heldout``), taken in two passes:
  ``SampleKeys`` (the smallest keys, from frame counts only) then
  ``FramesInSample`` / ``SampleFrames`` (the frames those keys name).

Every result depends only on the set of input videos (and the transforms'
arguments), not on the runner, bundling, arrival order or retries; per-worker
memory is bounded by ``bucket_frames``, ``unit_rows`` and D, not by the
number of videos. The one-element outputs are meant for
``beam.pvalue.AsSingleton``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import apache_beam as beam
import numpy as np

from yt8m import counters
from yt8m.compression import codec
from yt8m.compression.exact_moments import (DEFAULT_BUCKET_FRAMES, DEFAULT_UNIT_ROWS,
                                            FrameStatsCombiner, ScatterCombiner, bucket_count,
                                            bucket_of, cache_values)
from yt8m.compression.heldout import (DEFAULT_MAX_FRAMES, DEFAULT_SPLITS, FrameSampleCombiner,
                                      SampleCut, SampleKeysCombiner, frames_in_sample)
from yt8m.compression.pca import PCAWhitening
from yt8m.compression.quality import sample_report
from yt8m.compression.quantize import (DEFAULT_BINS, DEFAULT_MAX_ITER, DEFAULT_RANGE,
                                       HistogramCombiner, Quantizer, _check_method)

# Fewer train frames than this leave nothing to fit: a covariance needs two.
MIN_FIT_FRAMES = 2


def _positive_int(value, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive integer, got {value!r}.")
    return int(value)


# ---- CombineFns: thin delegations to the NumPy combiners ---------------------------------
class _FrameStatsFn(beam.CombineFn):
    """``(video_id, frames)`` -> ``FrameStats``."""

    def __init__(self):
        self._c = FrameStatsCombiner()

    def create_accumulator(self):
        return self._c.create_accumulator()

    def add_input(self, acc, element):
        vid, frames = element
        return self._c.add_input(acc, frames, name=f"video {vid!r}")

    def merge_accumulators(self, accumulators):
        return self._c.merge_accumulators(accumulators)

    def compact(self, acc):
        return self._c.compact(acc)

    def extract_output(self, acc):
        return self._c.extract_output(acc)


class _ScatterSumFn(beam.CombineFn):
    """``UnitScatter``s -> their exact sum (a normalised ``ScatterAccumulator``)."""

    def __init__(self):
        self._c = ScatterCombiner()

    def create_accumulator(self):
        return self._c.create_accumulator()

    def add_input(self, acc, unit):
        return self._c.add_input(acc, unit)

    def merge_accumulators(self, accumulators):
        return self._c.merge_accumulators(accumulators)

    def compact(self, acc):
        return self._c.compact(acc)

    def extract_output(self, acc):
        return self._c.compact(acc)


class _HistogramFn(beam.CombineFn):
    """``(video_id, whitened coefficients)`` -> exact ``Histogram``."""

    def __init__(self, value_range: float, n_bins: int):
        self._c = HistogramCombiner(value_range, n_bins)

    def create_accumulator(self):
        return self._c.create_accumulator()

    def add_input(self, acc, element):
        vid, y = element
        return self._c.add_input(acc, y, name=f"video {vid!r} (whitened)")

    def merge_accumulators(self, accumulators):
        return self._c.merge_accumulators(accumulators)

    def compact(self, acc):
        return self._c.compact(acc)

    def extract_output(self, acc):
        return self._c.extract_output(acc)


class _SampleKeysFn(beam.CombineFn):
    """``(video_id, split, frame count)`` -> ``SampleCut`` (the first pass: keys only)."""

    def __init__(self, max_frames: int, splits: Sequence[str]):
        self._c = SampleKeysCombiner(max_frames, splits)

    def create_accumulator(self):
        return self._c.create_accumulator()

    def add_input(self, acc, element):
        vid, split, n_frames = element
        return self._c.add_input(acc, vid, split, n_frames)

    def merge_accumulators(self, accumulators):
        return self._c.merge_accumulators(accumulators)

    def compact(self, acc):
        return acc

    def extract_output(self, acc):
        return self._c.extract_output(acc)


class _FrameSampleFn(beam.CombineFn):
    """``(video_id, split, frames, frame indices)`` of the cut -> ``FrameSample``."""

    def __init__(self, max_frames: int, splits: Sequence[str]):
        self._c = FrameSampleCombiner(max_frames, splits)

    def create_accumulator(self):
        return self._c.create_accumulator()

    def add_input(self, acc, element):
        vid, split, frames, indices = element
        return self._c.add_input(acc, vid, split, frames, indices)

    def merge_accumulators(self, accumulators):
        return self._c.merge_accumulators(accumulators)

    def compact(self, acc):
        return acc

    def extract_output(self, acc):
        return self._c.extract_output(acc)


# ---- DoFns and step functions --------------------------------------------------------------
def _key_by_bucket(kv, stats, bucket_frames: int):
    return bucket_of(kv[0], bucket_count(stats.count, bucket_frames)), kv


class _UnitScattersFn(beam.DoFn):
    """One bucket ``(bucket, [(video_id, frames), ...])`` -> its ``UnitScatter``s."""

    def __init__(self, unit_rows: int, bucket_frames: int):
        self.unit_rows, self.bucket_frames = unit_rows, bucket_frames

    def setup(self):
        self._combiner = None
        self._frames = counters.counter(counters.PCA_FIT_FRAMES)
        self._units = counters.counter(counters.PCA_FIT_UNITS)
        self._large = counters.counter(counters.PCA_FIT_LARGE_BUCKETS)

    def process(self, kv, stats):
        _, items = kv
        c = self._combiner
        if c is None or not np.array_equal(c.shift, stats.shift):
            # One combiner per worker: it keeps the syrk buffers between buckets.
            c = self._combiner = ScatterCombiner(stats.shift, self.unit_rows,
                                                 self.bucket_frames)
        info: dict = {}
        for unit in c.bucket_units(items, info):
            self._units.inc()
            self._frames.inc(unit.rows)
            yield unit
        if info.get("large"):
            self._large.inc()


def _fit_pca(stats, scatter, n_components: int, epsilon: float, allow_rank_deficient: bool,
             min_frames: int) -> Optional[PCAWhitening]:
    if stats.count < min_frames:
        return None
    moments = ScatterCombiner().extract_output(scatter, stats)
    pca = PCAWhitening.from_moments(moments, n_components, epsilon, allow_rank_deficient)
    pca.info["n_videos"] = int(stats.videos)
    return pca


class _WhitenFn(beam.DoFn):
    """``(video_id, raw)`` -> ``(video_id, whitened)`` exactly as ``encode_frames``
    whitens; nothing when no PCA was fit."""

    def setup(self):
        self._values = counters.counter(counters.QUANTIZER_FIT_VALUES)

    def process(self, kv, pca):
        if pca is None:
            return
        vid, frames = kv
        x = cache_values(frames, f"video {vid!r}")
        try:
            y = codec.whiten_frames(x, pca)
        except ValueError as e:
            raise ValueError(f"video {vid!r}: {e}") from e
        self._values.inc(y.size)
        yield vid, y


def _held_out_size(element):
    vid, split, frames = element
    return vid, split, len(frames)     # len() of cache-backed frames reads nothing


def _frames_in_sample(element, cut: SampleCut, splits: Sequence[str]):
    """The video's frames that the cut keeps (most videos: none, and nothing is read)."""
    vid, split, frames = element
    idx = frames_in_sample(vid, split, len(frames), cut, splits)
    if idx.size:
        yield vid, split, np.asarray(frames)[idx], idx


def _report(sample, cut: SampleCut, pca, quantizer, splits):
    # The second pass saw only the sampled frames: the split totals are the cut's.
    return sample_report(dataclasses.replace(sample, seen=dict(cut.seen)), pca, quantizer,
                         splits)


def _fit_quantizer(pca, hist, bits: int, max_iter: int) -> Optional[Quantizer]:
    if pca is None:
        return None
    return Quantizer.from_histogram(hist, bits, max_iter)


class _CountHeldOutFn(beam.DoFn):
    """Passes elements through, counting the held-out frames the sampler sees."""

    def __init__(self, splits: Sequence[str]):
        self.splits = tuple(splits)

    def setup(self):
        self._frames = counters.counter(counters.QUALITY_HELDOUT_FRAMES)

    def process(self, element):
        if element[1] in self.splits:
            self._frames.inc(len(element[2]))
        yield element


# ---- the composite transforms ---------------------------------------------------------------
class FitPCA(beam.PTransform):
    """``(video_id, raw frames float32 (F, D))`` -> one-element PCollection of
    ``Optional[PCAWhitening]``.

    ``n_components``: kept components; ``epsilon``: the whitening's
    regulariser; ``allow_rank_deficient`` (default True, as a build needs for
    small train splits): fewer than ``n_components`` varying directions give
    zero-variance components instead of an error; ``min_frames``: fewer train
    frames give None ("nothing to fit"). ``unit_rows`` and ``bucket_frames``
    bound the memory (see ``compression.exact_moments``) and are part of the
    result's definition: keep them fixed between builds that must agree.
    """

    def __init__(self, n_components: int = 1024, epsilon: float = 1e-4,
                 allow_rank_deficient: bool = True, min_frames: int = MIN_FIT_FRAMES,
                 unit_rows: int = DEFAULT_UNIT_ROWS,
                 bucket_frames: int = DEFAULT_BUCKET_FRAMES, label: Optional[str] = None):
        super().__init__(label)
        where = "FitPCA"
        self.n_components = _positive_int(n_components, "n_components", where)
        if not (isinstance(epsilon, (int, float, np.floating)) and math.isfinite(epsilon)
                and epsilon >= 0):
            raise ValueError(f"{where}: epsilon must be a finite number >= 0, got {epsilon!r}.")
        self.epsilon = float(epsilon)
        self.allow_rank_deficient = bool(allow_rank_deficient)
        self.min_frames = _positive_int(min_frames, "min_frames", where)
        if self.min_frames < MIN_FIT_FRAMES:
            raise ValueError(f"{where}: min_frames must be >= {MIN_FIT_FRAMES} (a covariance "
                             f"needs two frames), got {min_frames!r}.")
        self.unit_rows = _positive_int(unit_rows, "unit_rows", where)
        self.bucket_frames = _positive_int(bucket_frames, "bucket_frames", where)

    def expand(self, train):
        # Both passes round the frames to float16 values (a check only, for
        # frames from the cache) and name a video whose frames are NaN/Inf.
        stats = train | "FrameStats" >> beam.CombineGlobally(_FrameStatsFn())
        scatter = (train
                   | "KeyByBucket" >> beam.Map(_key_by_bucket, beam.pvalue.AsSingleton(stats),
                                               self.bucket_frames)
                   | "GroupBuckets" >> beam.GroupByKey()
                   | "UnitScatters" >> beam.ParDo(
                       _UnitScattersFn(self.unit_rows, self.bucket_frames),
                       beam.pvalue.AsSingleton(stats))
                   | "SumScatters" >> beam.CombineGlobally(_ScatterSumFn()))
        return stats | "Eigendecomposition" >> beam.Map(
            _fit_pca, beam.pvalue.AsSingleton(scatter), self.n_components, self.epsilon,
            self.allow_rank_deficient, self.min_frames)


class FitQuantizer(beam.PTransform):
    """``(video_id, raw frames)`` + ``pca`` (a one-element PCollection from
    ``FitPCA``) -> one-element PCollection of ``Optional[Quantizer]``.

    ``method="lloyd"``: Lloyd-Max (``bits``, ``max_iter``) on an exact
    histogram (``value_range``, ``n_bins``) of every train frame whitened as
    ``codec.whiten_frames`` whitens it. ``"uniform"``: the released codebook,
    no frames read. None when the PCA is None.
    """

    def __init__(self, pca, method: str = "lloyd", bits: int = 8,
                 value_range: float = DEFAULT_RANGE, n_bins: int = DEFAULT_BINS,
                 max_iter: int = DEFAULT_MAX_ITER, label: Optional[str] = None):
        super().__init__(label)
        if pca is None:
            raise ValueError("FitQuantizer needs the fitted PCA's PCollection (from FitPCA): "
                             "the codebook is fit on whitened frames.")
        self.pca = pca
        self.method, self.bits = _check_method(method, bits)
        self.max_iter = _positive_int(max_iter, "max_iter", "FitQuantizer")
        HistogramCombiner(value_range, n_bins)  # checks the histogram's arguments now
        self.value_range, self.n_bins = float(value_range), int(n_bins)

    def expand(self, train):
        if self.method == "uniform":
            return self.pca | "UniformCodebook" >> beam.Map(
                lambda p: None if p is None else Quantizer.uniform())
        hist = (train
                | "Whiten" >> beam.ParDo(_WhitenFn(), beam.pvalue.AsSingleton(self.pca))
                | "Histogram" >> beam.CombineGlobally(
                    _HistogramFn(self.value_range, self.n_bins)))
        return self.pca | "LloydMax" >> beam.Map(
            _fit_quantizer, beam.pvalue.AsSingleton(hist), self.bits, self.max_iter)


class FitPCAAndQuantizer(beam.PTransform):
    """``(video_id, raw frames)`` of the train split -> ``{"pca": PCollection,
    "quantizer": PCollection}``, one element each (None, None when the train
    split has fewer than 2 frames). ``quantizer``: ``lloyd`` or ``uniform``;
    the other arguments are ``FitPCA``'s."""

    def __init__(self, n_components: int = 1024, quantizer: str = "lloyd",
                 epsilon: float = 1e-4, unit_rows: int = DEFAULT_UNIT_ROWS,
                 bucket_frames: int = DEFAULT_BUCKET_FRAMES, label: Optional[str] = None):
        super().__init__(label)
        self.method, _ = _check_method(quantizer, 8)
        self._pca = FitPCA(n_components, epsilon, unit_rows=unit_rows,
                           bucket_frames=bucket_frames)

    def expand(self, train):
        pca = train | "FitPCA" >> self._pca
        quantizer = train | "FitQuantizer" >> FitQuantizer(pca, self.method)
        return {"pca": pca, "quantizer": quantizer}


class HeldOutQualityReport(beam.PTransform):
    """``(video_id, split, raw frames)`` -> one-element PCollection of the
    quality report dict (``compression.quality.sample_report``).

    Measured on the ``max_frames`` held-out frames of smallest hash of
    (video id, frame index), ``splits`` in priority order (validate, then
    test), chosen by a bounded top-k combiner: never a gather of the held-out
    videos. Other splits are ignored. ``pca`` and ``quantizer`` are the
    one-element PCollections of ``FitPCAAndQuantizer``.
    """

    def __init__(self, pca, quantizer, max_frames: int = DEFAULT_MAX_FRAMES,
                 splits: Sequence[str] = DEFAULT_SPLITS, label: Optional[str] = None):
        super().__init__(label)
        if pca is None or quantizer is None:
            raise ValueError("HeldOutQualityReport needs the fitted PCA and quantizer "
                             "PCollections (from FitPCAAndQuantizer).")
        FrameSampleCombiner(max_frames, splits)  # checks the arguments now
        self.pca, self.quantizer = pca, quantizer
        self.max_frames, self.splits = int(max_frames), tuple(splits)

    def expand(self, heldout):
        splits = self.splits
        counted = heldout | "CountHeldOut" >> beam.ParDo(_CountHeldOutFn(splits))
        # Two passes (compression.heldout): the keys, then the frames they keep.
        cut = (counted
               | "HeldOutSizes" >> beam.Map(_held_out_size)
               | "SampleKeys" >> beam.CombineGlobally(_SampleKeysFn(self.max_frames, splits)))
        sample = (counted
                  | "FramesInSample" >> beam.FlatMap(_frames_in_sample,
                                                     beam.pvalue.AsSingleton(cut), splits)
                  | "SampleFrames" >> beam.CombineGlobally(
                      _FrameSampleFn(self.max_frames, splits)))
        return sample | "Report" >> beam.Map(
            _report, beam.pvalue.AsSingleton(cut), beam.pvalue.AsSingleton(self.pca),
            beam.pvalue.AsSingleton(self.quantizer), splits)
