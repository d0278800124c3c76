"""Beam wrappers around the compression accumulators.

``PCAFitFn`` and ``QuantizerFitFn`` are thin ``beam.CombineFn``s delegating to
``MomentsCombiner`` and ``HistogramCombiner`` (the maths lives there and is
tested without a runner). Inputs are ``(n, D)`` float arrays (a video's
frames) or single ``(D,)`` vectors. ``FitPCA`` and ``FitQuantizer`` are the
composite transforms a pipeline uses: each outputs a one-element PCollection
holding the fitted object, meant to be passed on with
``beam.pvalue.AsSingleton``.
"""
from __future__ import annotations

from typing import Optional

import apache_beam as beam
import numpy as np

from yt8m import counters
from yt8m.compression import codec
from yt8m.compression.pca import DEFAULT_CHUNK_ROWS, MomentsCombiner, PCAWhitening
from yt8m.compression.quantize import (DEFAULT_BINS, DEFAULT_MAX_ITER, DEFAULT_RANGE,
                                  HistogramCombiner, Quantizer, _check_method)

def _shape_rows(element) -> int:
    a = np.asarray(element)
    return a.shape[0] if a.ndim == 2 else 1


class PCAFitFn(beam.CombineFn):
    """Frames -> ``PCAWhitening`` (one streaming pass, mergeable moments)."""

    def __init__(self, n_components: int = 1024, epsilon: float = 1e-4,
                 allow_rank_deficient: bool = False, chunk_rows: int = DEFAULT_CHUNK_ROWS):
        if int(n_components) < 1:
            raise ValueError(f"PCAFitFn: n_components must be >= 1, got {n_components}.")
        if not epsilon >= 0:
            raise ValueError(f"PCAFitFn: epsilon must be >= 0, got {epsilon}.")
        self.n_components, self.epsilon = int(n_components), float(epsilon)
        self.allow_rank_deficient = bool(allow_rank_deficient)
        self._combiner = MomentsCombiner(chunk_rows)
        self._frames = counters.counter(counters.PCA_FIT_FRAMES)

    def create_accumulator(self):
        return self._combiner.create_accumulator()

    def add_input(self, acc, element):
        self._frames.inc(_shape_rows(element))
        return self._combiner.add_input(acc, element)

    def merge_accumulators(self, accumulators):
        return self._combiner.merge_accumulators(accumulators)

    def compact(self, acc):
        return self._combiner.compact(acc)

    def extract_output(self, acc) -> PCAWhitening:
        return PCAWhitening.from_moments(self._combiner.extract_output(acc),
                                         self.n_components, self.epsilon,
                                         self.allow_rank_deficient)


class QuantizerFitFn(beam.CombineFn):
    """Whitened coefficients -> ``Quantizer`` (Lloyd-Max on a fine histogram).

    ``method="uniform"`` ignores its inputs and returns the released codebook.
    """

    def __init__(self, method: str = "lloyd", bits: int = 8,
                 value_range: float = DEFAULT_RANGE, n_bins: int = DEFAULT_BINS,
                 max_iter: int = DEFAULT_MAX_ITER):
        self.method, self.bits = _check_method(method, bits)
        self.max_iter = int(max_iter)
        self._combiner = HistogramCombiner(value_range, n_bins)

    def create_accumulator(self):
        return self._combiner.create_accumulator()

    def add_input(self, acc, element):
        if self.method == "uniform":
            return acc
        return self._combiner.add_input(acc, element)

    def merge_accumulators(self, accumulators):
        return self._combiner.merge_accumulators(accumulators)

    def compact(self, acc):
        return acc

    def extract_output(self, acc) -> Quantizer:
        if self.method == "uniform":
            return Quantizer.uniform()
        return Quantizer.from_histogram(self._combiner.extract_output(acc), self.bits,
                                        self.max_iter)


class FitPCA(beam.PTransform):
    """PCollection of frame arrays -> one-element PCollection of ``PCAWhitening``.

    ``fanout`` (optional) adds an intermediate combine level, useful when one
    worker would otherwise merge thousands of (D, D) accumulators.
    """

    def __init__(self, n_components: int = 1024, epsilon: float = 1e-4,
                 allow_rank_deficient: bool = False, fanout: Optional[int] = None,
                 label: Optional[str] = None):
        super().__init__(label)
        self._fn = PCAFitFn(n_components, epsilon, allow_rank_deficient)
        if fanout is not None and int(fanout) < 1:
            raise ValueError(f"FitPCA: fanout must be >= 1, got {fanout}.")
        self._fanout = fanout

    def expand(self, frames):
        combine = beam.CombineGlobally(self._fn)
        if self._fanout:
            combine = combine.with_fanout(int(self._fanout))
        return frames | "CombineMoments" >> combine


class FitQuantizer(beam.PTransform):
    """PCollection of frame arrays -> one-element PCollection of ``Quantizer``.

    With ``pca`` (a one-element PCollection from ``FitPCA``) the inputs are raw
    frames, whitened exactly as ``codec.encode_frames`` whitens them (float16
    rounding, float32 projection), so the codebook fits the values it will
    encode; without it the inputs are already whitened coefficients.
    """

    def __init__(self, pca=None, method: str = "lloyd", bits: int = 8,
                 value_range: float = DEFAULT_RANGE, n_bins: int = DEFAULT_BINS,
                 fanout: Optional[int] = None, label: Optional[str] = None):
        super().__init__(label)
        self._pca = pca
        self._fn = QuantizerFitFn(method, bits, value_range, n_bins)
        if fanout is not None and int(fanout) < 1:
            raise ValueError(f"FitQuantizer: fanout must be >= 1, got {fanout}.")
        self._fanout = fanout

    def expand(self, frames):
        if self._fn.method == "uniform":
            # The released codebook needs no data: skip reading the frames.
            return (beam.pvalue.PBegin(frames.pipeline)
                    | "UniformCodebook" >> beam.Create([Quantizer.uniform()]))
        if self._pca is not None:
            frames = frames | "Whiten" >> beam.Map(
                lambda x, pca: codec.whiten_frames(np.atleast_2d(x), pca),
                pca=beam.pvalue.AsSingleton(self._pca))
        combine = beam.CombineGlobally(self._fn)
        if self._fanout:
            combine = combine.with_fanout(int(self._fanout))
        return frames | "CombineHistogram" >> combine
