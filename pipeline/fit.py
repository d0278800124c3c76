"""The build's fit stage: PCA and quantizer on the train split, through compression's Beam shell.

The maths and its determinism live in ``compression`` (``compression.beam.
FitPCAAndQuantizer`` over ``compression.exact_moments``' exact, order-
independent sums and ``compression.quantize``'s exact histogram): the fitted
PCA and codebook depend only on the set of train videos, whatever the runner,
bundling, arrival order or retries, so a resumed build writes the same bytes
as an uninterrupted one. Per-worker memory is bounded by the fit's
``bucket_frames`` and ``unit_rows`` and by D, not by the number of videos
(docs/pipeline.md, "Scale").

This module only adapts the build's ``VideoFeatures`` to that transform: keep
the train split, pair each video's id with its raw frames. With fewer than two
train frames both outputs are None ("nothing to fit"): every video then fails
to encode and the build publishes only failures.jsonl (see
``pipeline.launch.publish_build``).
"""
from __future__ import annotations

import apache_beam as beam

from yt8m.compression.beam import FitPCAAndQuantizer
from yt8m.records import VideoFeatures


def train_frames(vf: VideoFeatures, split: str):
    """``VideoFeatures`` -> ``(video_id, raw frames)`` when the video is in ``split``."""
    if vf.video.split == split:
        yield vf.video_id, vf.features


def held_out_frames(vf: VideoFeatures):
    """``VideoFeatures`` -> ``(video_id, split, raw frames)`` for the quality report."""
    yield vf.video_id, vf.video.split, vf.features


class FitCompression(beam.PTransform):
    """``VideoFeatures`` -> ``{"pca": PCollection[PCAWhitening], "quantizer": ...}`` (one element each).

    The PCA is fit on every frame of the train split; the quantizer (``lloyd``)
    on the same frames once whitened, ``uniform`` reads no frames.
    """

    def __init__(self, n_components: int = 1024, quantizer: str = "lloyd",
                 train_split: str = "train"):
        super().__init__()
        if quantizer not in ("lloyd", "uniform"):
            raise ValueError(f"--quantizer must be 'lloyd' or 'uniform', got {quantizer!r}")
        if not isinstance(n_components, int) or n_components < 1:
            raise ValueError(f"n_components must be an integer >= 1, got {n_components!r}")
        self.n_components, self.quantizer, self.train_split = n_components, quantizer, train_split

    def expand(self, features):
        train = features | "TrainFrames" >> beam.FlatMap(train_frames, self.train_split)
        return train | "FitPCAAndQuantizer" >> FitPCAAndQuantizer(self.n_components,
                                                                  self.quantizer)
