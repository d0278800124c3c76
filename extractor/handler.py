"""The Beam ``ModelHandler`` that runs the frame-feature network inside ``RunInference``.

Beam's own ``TFModelHandlerTensor`` loads with ``tf.keras.models.load_model``,
which under Keras 3 cannot open SavedModel folders, TF-Hub models or the
frozen YouTube-8M graph; this handler loads every weights source through
``extractor.weights.load_feature_model``. Use it keyed, so that features find
their frame again after batching::

    RunInference(KeyedModelHandler(InceptionModelHandler("imagenet", batch_size=32)))

with elements ``(key, uint8 (299, 299, 3))`` -> ``(key, float32 (2048,))``
(``ExtractFeatures`` keys frames by ``FrameKey(video_id, index, count)``).
"""
from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

import numpy as np
from apache_beam.ml.inference.base import ModelHandler

from yt8m import counters
from yt8m.extractor import weights as weights_lib


class InceptionModelHandler(ModelHandler[np.ndarray, np.ndarray, "weights_lib.FeatureModel"]):
    """Frames (uint8 HxWx3) -> 2048-d float32 features, batched by ``BatchElements``.

    ``batch_size`` fixes the batch the model sees (minimum and maximum of
    Beam's batching). The last, shorter batch of a bundle is padded to
    ``batch_size`` (its last frame repeated, the extra outputs dropped), so the
    network always runs on one shape and a frame's features do not depend on
    which frames shared its batch: an interrupted and resumed build gives the
    same bytes as an uninterrupted one at any batch size. The model is loaded once per worker process by RunInference;
    ``share_model_across_processes`` (off by default) makes Beam keep one copy
    per machine instead, for accelerators with little memory.
    """

    def __init__(self, weights: str = "imagenet", *, batch_size: int = 32,
                 min_batch_size: Optional[int] = None, mixed_precision: bool = False,
                 input_range: Optional[str] = None,
                 share_model_across_processes: bool = False,
                 max_batch_duration_secs: Optional[int] = None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        min_batch_size = batch_size if min_batch_size is None else min_batch_size
        if not 1 <= min_batch_size <= batch_size:
            raise ValueError(f"min_batch_size must be in [1, batch_size={batch_size}], "
                             f"got {min_batch_size!r}")
        # Fails here, at pipeline construction, for a missing file or a bad spec.
        self._info = weights_lib.weights_info(weights, input_range=input_range,
                                              mixed_precision=mixed_precision)
        super().__init__(min_batch_size=min_batch_size, max_batch_size=batch_size,
                         max_batch_duration_secs=max_batch_duration_secs)
        self.weights = weights
        self.batch_size = batch_size
        self.mixed_precision = bool(mixed_precision)
        self.input_range = input_range
        self._share = bool(share_model_across_processes)

    @property
    def info(self) -> dict:
        """What the weights are (``extractor.weights.weights_info``), without loading them."""
        return dict(self._info)

    def load_model(self) -> "weights_lib.FeatureModel":
        return weights_lib.load_feature_model(self.weights, mixed_precision=self.mixed_precision,
                                              input_range=self.input_range)

    def run_inference(self, batch: Sequence[np.ndarray], model: "weights_lib.FeatureModel",
                      inference_args: Optional[dict[str, Any]] = None) -> Iterable[np.ndarray]:
        if not batch:
            return []
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
