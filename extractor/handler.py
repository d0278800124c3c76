"""The Beam ``ModelHandler`` that runs the frame-feature network inside ``RunInference``.

Beam's own ``TFModelHandlerTensor`` loads with ``tf.keras.models.load_model``,
which under Keras 3 cannot open SavedModel folders, TF-Hub models or the
frozen YouTube-8M graph; this handler loads every weights source through
``extractor.weights.load_feature_model``. Use it keyed, so that features find
their frame again after batching::

    RunInference(KeyedModelHandler(InceptionModelHandler("imagenet", batch_size=32)))

with elements ``(key, uint8 (299, 299, 3))`` -> ``(key, float32 (2048,))``
(``ExtractFeatures`` keys frames by ``FrameKey(video_id, index, count)``).

``input_size`` says which frames the weights want: 299 for Keras/TF-Hub
sources (decode with ``size=299``; other sizes are refused), None for
``yt8m-graph:`` (decode with ``size=None``: frames at their decoded size, any
mix of sizes in a batch; the graph resizes each frame itself, as the original
extractor did). ``frame_weight`` is a frame's weight for ``BatchElements``
(1 for a 299x299 frame, its pixel count over 299 x 299 otherwise): a wrapper
that batches full-size frames by it (``element_size_fn``) keeps a batch's
memory that of ``batch_size`` 299x299 frames.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Iterable, Optional, Sequence

import numpy as np
from apache_beam.ml.inference.base import ModelHandler

from yt8m import counters
from yt8m.extractor import precision as precision_lib
from yt8m.extractor import weights as weights_lib

log = logging.getLogger(__name__)


class InceptionModelHandler(ModelHandler[np.ndarray, np.ndarray, "weights_lib.FeatureModel"]):
    """Frames (uint8 HxWx3) -> 2048-d float32 features, batched by ``BatchElements``.

    ``batch_size`` fixes the batch the model sees (minimum and maximum of
    Beam's batching). The last, shorter batch of a bundle is padded to
    ``batch_size`` (its last frame repeated, the extra outputs dropped), so the
    network always runs on one shape and a frame's features do not depend on
    which frames shared its batch: an interrupted and resumed build gives the
    same bytes as an uninterrupted one at any batch size. The model is loaded
    once per worker process by RunInference;
    ``share_model_across_processes`` (off by default) makes Beam keep one copy
    per machine instead, for accelerators with little memory.

    ``precision`` (``extractor.precision``: float32, bfloat16, float16, auto)
    is resolved when the handler is built and recorded in ``info``; workers
    load that precision. ``mixed_precision=True`` is its retired spelling for
    float16.
    """

    def __init__(self, weights: str = "imagenet", *, batch_size: int = 32,
                 min_batch_size: Optional[int] = None, precision: str = "float32",
                 input_range: Optional[str] = None,
                 share_model_across_processes: bool = False,
                 max_batch_duration_secs: Optional[int] = None,
                 mixed_precision: Optional[bool] = None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        min_batch_size = batch_size if min_batch_size is None else min_batch_size
        if not 1 <= min_batch_size <= batch_size:
            raise ValueError(f"min_batch_size must be in [1, batch_size={batch_size}], "
                             f"got {min_batch_size!r}")
        # Fails here, at pipeline construction, for a missing file or a bad spec.
        # `auto` is resolved here, once, on the machine that builds the
        # pipeline: workers load that precision, and info (model.json, the
        # cache fingerprint) records it.
        self._info = weights_lib.weights_info(weights, input_range=input_range,
                                              precision=precision,
                                              mixed_precision=mixed_precision)
        super().__init__(min_batch_size=min_batch_size, max_batch_size=batch_size,
                         max_batch_duration_secs=max_batch_duration_secs)
        self.weights = weights
        self.batch_size = batch_size
        self.requested_precision = "float16" if mixed_precision else precision
        self.precision = self._info["precision"]
        self.input_range = input_range
        self._share = bool(share_model_across_processes)

    @property
    def info(self) -> dict:
        """What the weights are (``extractor.weights.weights_info``), without loading them."""
        return dict(self._info)

    @property
    def input_size(self) -> Optional[int]:
        """The frame size the weights want (299), or None for frames at their decoded size."""
        return self._info.get("input_size")

    def frame_weight(self, frame) -> int:
        """``BatchElements`` weight of one frame: 1 per 299 x 299 pixels, at least 1."""
        shape = np.shape(frame)
        if len(shape) < 2:
            return 1
        return max(1, math.ceil(shape[0] * shape[1] / float(weights_lib.INPUT_SIZE ** 2)))

    def load_model(self) -> "weights_lib.FeatureModel":
        if self.requested_precision == "auto":
            here = precision_lib.resolve("auto")
            if self._info["source"] in weights_lib.KERAS_SOURCES and here != self.precision:
                log.warning("precision auto was resolved to %s where the pipeline was built; "
                            "this worker would pick %s but runs %s as recorded (model.json, "
                            "cache fingerprint); pass --precision explicitly for workers "
                            "unlike the launching machine", self.precision, here,
                            self.precision)
        return weights_lib.load_feature_model(self.weights, precision=self.precision,
                                              input_range=self.input_range)

    def run_inference(self, batch: Sequence[np.ndarray], model: "weights_lib.FeatureModel",
                      inference_args: Optional[dict[str, Any]] = None) -> Iterable[np.ndarray]:
        if not batch:
            return []
        batch = [np.asarray(f) for f in batch]
        if self.input_size is None:
            return self._run_any_size(batch, model)
        want = (self.input_size, self.input_size)
        bad = [f.shape for f in batch if f.shape[:2] != want]
        if bad:
            raise ValueError(f"weights {self.weights!r} take {want[0]}x{want[1]} frames, got "
                             f"a frame of shape {bad[0]}: decode with size={want[0]} "
                             f"(the handler's input_size)")
        frames = np.stack(batch)
        n, size = len(frames), self.batch_size
        # The network always sees exactly `batch_size` frames: oneDNN (and
        # cuDNN) pick kernels and reduction orders by input shape, so a frame's
        # features would otherwise depend on how many neighbours shared its
        # batch, and a resumed build (other batches) would differ from an
        # uninterrupted one in a few float16 values. Short batches are padded
        # by repeating their last frame; larger inputs (direct calls) go in
        # chunks of `batch_size`. The padding's outputs are dropped.
        chunks = []
        for start in range(0, n, size):
            chunk = frames[start:start + size]
            real = len(chunk)
            if real < size:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - real, axis=0)])
            chunks.append(np.asarray(model.predict(chunk))[:real])
        # Plain vectors, not PredictionResults: the frames need not travel on
        # with their features.
        return list(chunks[0] if len(chunks) == 1 else np.concatenate(chunks))

    def _run_any_size(self, batch, model) -> list:
        """Frames at their decoded size (``yt8m-graph:``): each size goes through the
        network as one array, no padding (the graph runs frame by frame, so a frame's
        features never depend on its neighbours), results in the batch's order."""
        out: list = [None] * len(batch)
        for _, idx in weights_lib.group_by_shape(batch).items():
            feats = np.asarray(model.predict(np.stack([batch[i] for i in idx])))
            for i, vec in zip(idx, feats):
                out[i] = vec
        return out

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        # The default pickles the whole batch just to measure it.
        return int(sum(np.asarray(x).nbytes for x in batch))

    def get_metrics_namespace(self) -> str:
        return counters.INFERENCE_NAMESPACE

    def share_model_across_processes(self) -> bool:
        return self._share

    def validate_inference_args(self, inference_args: Optional[dict[str, Any]]):
        if inference_args:
            raise ValueError(f"InceptionModelHandler takes no inference_args, got "
                             f"{sorted(inference_args)}")
