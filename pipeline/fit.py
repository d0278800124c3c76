"""Fitting PCA and quantizer on the train split so that the result is bit-for-bit reproducible.

compression's accumulators (float64 moments, histograms) merge in any order
to float tolerance. That is not enough for the build's guarantee that a
resumed build writes the same bytes as an uninterrupted one: a rerun feeds
cached and freshly extracted videos to the fit in another order, the PCA moves
in the last bits, and a whitened value lying on a quantizer boundary (common
for the near-zero directions of small builds) changes its code.

``OrderedCombine`` therefore makes the order part of the data: frames are keyed
by ``video_id`` into a fixed number of buckets (by hash), each bucket adds its
videos in ``video_id`` order with compression's own NumPy combiner, and the
bucket accumulators are merged in bucket order. The result depends only on the
set of train videos, whatever the runner, bundling or retries. Cost: one
shuffle of the train features (as float16-rounded float32) and, at the end,
``buckets`` accumulators in one worker. A bucket with fewer frames than the
combiner's chunk (2048) ships its buffered frames; a larger one its (D, D)
float64 scatter (34 MB for D = 2048, so 16 large buckets hold ~540 MB).

With fewer than two train frames there is nothing to fit: ``pca_from_moments``
and ``quantizer_from_histogram`` return None and the build reports it.

``FitCompression`` is the build's fit stage built from these pieces.
"""
from __future__ import annotations

import hashlib

import apache_beam as beam
import numpy as np

from yt8m.compression.codec import whiten_frames
from yt8m.compression.pca import MomentsCombiner, PCAWhitening
from yt8m.compression.quantize import HistogramCombiner, Quantizer

DEFAULT_BUCKETS = 16


def _bucket(video_id: str, buckets: int) -> int:
    return int.from_bytes(hashlib.sha256(video_id.encode("utf-8")).digest()[:4], "big") % buckets


def _make_combiner(kind: str):
    if kind == "moments":
        return MomentsCombiner()
    if kind == "histogram":
        return HistogramCombiner()
    raise ValueError(f"unknown combiner kind {kind!r}: 'moments' or 'histogram'")


def _accumulate_bucket(kv, kind):
    bucket, items = kv
    combiner = _make_combiner(kind)
    acc = combiner.create_accumulator()
    for video_id, x in sorted(items, key=lambda t: t[0]):
        acc = combiner.add_input(acc, x, name=f"video {video_id!r}")
    # No ``compact`` here: a moments accumulator holding fewer frames than its
    # chunk (2048) ships those frames (n x D), not a (D, D) scatter of 34 MB.
    # With 16 buckets the scatters were copied several times on the way to the
    # final merge (peak memory grew with the number of buckets filled, i.e.
    # with the number of videos). Buffered rows are folded in at the merge, in
    # bucket order, so the result still depends only on the set of videos.
    return bucket, acc


def _merge_in_order(accs, kind):
    combiner = _make_combiner(kind)
    ordered = [a for _, a in sorted(accs, key=lambda t: t[0])]
    merged = combiner.merge_accumulators(ordered) if ordered else combiner.create_accumulator()
    return combiner.extract_output(merged)


class OrderedCombine(beam.PTransform):
    """``(video_id, array)`` -> one element: the combiner's output, independent of arrival order.

    ``kind``: ``moments`` (compression.pca.MomentsCombiner -> Moments) or
    ``histogram`` (compression.quantize.HistogramCombiner -> Histogram).
    """

    def __init__(self, kind: str, buckets: int = DEFAULT_BUCKETS):
        super().__init__()
        _make_combiner(kind)  # validates the kind now, not on a worker
        if not isinstance(buckets, int) or buckets < 1:
            raise ValueError(f"buckets must be a positive integer, got {buckets!r}")
        self.kind, self.buckets = kind, buckets

    def expand(self, keyed):
        kind, buckets = self.kind, self.buckets
        per_bucket = (keyed
                      | "ToBucket" >> beam.Map(lambda kv: (_bucket(kv[0], buckets), kv))
                      | "GroupBucket" >> beam.GroupByKey()
                      | "AccumulateInIdOrder" >> beam.Map(_accumulate_bucket, kind))
        return (per_bucket
                | "GatherBuckets" >> beam.combiners.ToList()
                | "MergeInBucketOrder" >> beam.Map(_merge_in_order, kind))


# Fewer train frames than this leave nothing to fit: a covariance needs two.
MIN_FIT_FRAMES = 2


def pca_from_moments(moments, n_components: int):
    """The PCA of the train frames' moments, or None ("nothing to fit").

    None when the train split has fewer than ``MIN_FIT_FRAMES`` frames (every
    train video excluded or failed): the build then encodes nothing and ends
    with "no video could be written", after publishing failures.jsonl, which
    says why each video failed. Raising here instead would stop the pipeline
    before failures.jsonl is staged.
    """
    if moments.count < MIN_FIT_FRAMES:
        return None
    # A small build has fewer train frames than components: the PCA keeps the
    # missing directions with eigenvalue 0 (a fixed basis, see compression.pca);
    # dataset_info.json's fit.pca.rank tells the user.
    return PCAWhitening.from_moments(moments, n_components=n_components,
                                     allow_rank_deficient=True)


def quantizer_from_histogram(hist, method: str, pca=None):
    """The quantizer (``lloyd`` from the whitened histogram, or ``uniform``); None when
    ``pca`` is None: without a PCA there is nothing to encode."""
    if pca is None:
        return None
    if method == "uniform":
        return Quantizer.uniform()
    return Quantizer.from_histogram(hist)


def whiten(kv, pca):
    """(video_id, raw) -> (video_id, whitened) exactly as encode_frames whitens.

    A generator (for ``beam.FlatMap``): nothing when no PCA was fit.
    """
    if pca is None:
        return
    vid, x = kv
    yield vid, np.asarray(whiten_frames(x, pca))


class FitCompression(beam.PTransform):
    """``VideoFeatures`` -> ``{"pca": PCollection[PCAWhitening], "quantizer": ...}`` (one element each).

    The PCA is fit on every frame of the train split; the quantizer on the same
    frames once whitened (``uniform`` needs no data but goes the same way).
    Both use compression's NumPy combiners in a fixed order (``OrderedCombine``).
    With fewer than two train frames both elements are None ("nothing to
    fit"): every video then fails to encode and the build publishes only
    failures.jsonl (see ``pipeline.launch.publish_build``).
    """

    def __init__(self, n_components: int = 1024, quantizer: str = "lloyd",
                 train_split: str = "train"):
        super().__init__()
        if quantizer not in ("lloyd", "uniform"):
            raise ValueError(f"--quantizer must be 'lloyd' or 'uniform', got {quantizer!r}")
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        self.n_components, self.quantizer, self.train_split = n_components, quantizer, train_split

    def expand(self, features):
        split, k = self.train_split, self.n_components
        train = (features
                 | "TrainOnly" >> beam.Filter(lambda vf: vf.video.split == split)
                 | "TrainFrames" >> beam.Map(lambda vf: (vf.video_id, vf.features)))
        # compression's accumulators, merged in video_id order (OrderedCombine):
        # the artifacts depend on the train set only, so a resumed build
        # writes the same bytes as an uninterrupted one.
        pca = (train
               | "PCAMoments" >> OrderedCombine("moments")
               | "FitPCA" >> beam.Map(pca_from_moments, k))
        quant = (train
                 # The codebook is fit on exactly the coefficients encode_frames sees.
                 | "Whiten" >> beam.FlatMap(whiten, beam.pvalue.AsSingleton(pca))
                 | "WhitenedHistogram" >> OrderedCombine("histogram")
                 | "FitQuantizer" >> beam.Map(quantizer_from_histogram, self.quantizer,
                                              beam.pvalue.AsSingleton(pca)))
        return {"pca": pca, "quantizer": quant}
