"""The Beam ``ModelHandler`` that runs VGGish inside ``RunInference``.

Like ``extractor.handler.InceptionModelHandler`` for frames: the network is
loaded once per worker process through ``extractor.vggish.load_audio_model``
(every weights source: the released checkpoint, TF-Hub / SavedModel, .keras,
random), batches have one fixed shape, and it is used keyed, so that an
embedding finds its second again after batching::

    RunInference(KeyedModelHandler(VGGishModelHandler(ckpt, batch_size=32)))

with elements ``(AudioKey(video_id, index, count), float32 (96, 64))`` ->
``(key, float32 (128,))``. The examples come from
``extractor.logmel.waveform_to_examples`` (one per sampled second). On a GPU
worker the audio handler and the frame handler each hold their network in the
same process and share the device; VGGish needs ~290 MB of weights.
"""
from __future__ import annotations

from typing import Any, Iterable, NamedTuple, Optional, Sequence

import numpy as np
from apache_beam.ml.inference.base import ModelHandler

from yt8m import counters
from yt8m.extractor import vggish as vggish_lib


class AudioKey(NamedTuple):
    """Key of one audio example through ``RunInference`` (the audio twin of
    ``extractor.transforms.FrameKey``; a distinct type, so that one stream can
    carry frames and audio examples and each handler can tell its own)."""
    video_id: str
    index: int
    count: int


class VGGishModelHandler(ModelHandler[np.ndarray, np.ndarray, "vggish_lib.AudioModel"]):
    """Log-mel examples (float32 96 x 64) -> 128-d float32 embeddings.

    ``batch_size`` fixes the batch the network sees (minimum and maximum of
    Beam's batching); a shorter batch is padded to it by repeating its last
    example (the padding's outputs are dropped), so an embedding does not
    depend on which examples shared its batch (oneDNN and cuDNN choose kernels
    by shape) and a resumed build writes the same bytes as an uninterrupted
    one. ``share_model_across_processes`` keeps one copy per machine.
    """

    def __init__(self, weights: str, *, batch_size: int = 32,
                 min_batch_size: Optional[int] = None,
                 share_model_across_processes: bool = False,
                 max_batch_duration_secs: Optional[int] = None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        min_batch_size = batch_size if min_batch_size is None else min_batch_size
        if not 1 <= min_batch_size <= batch_size:
            raise ValueError(f"min_batch_size must be in [1, batch_size={batch_size}], "
                             f"got {min_batch_size!r}")
        # Fails here, at pipeline construction, for a missing file or a bad spec.
        self._info = vggish_lib.audio_weights_info(weights)
        super().__init__(min_batch_size=min_batch_size, max_batch_size=batch_size,
                         max_batch_duration_secs=max_batch_duration_secs)
        self.weights = weights
        self.batch_size = batch_size
        self._share = bool(share_model_across_processes)

    @property
    def info(self) -> dict:
        """What the weights are (``extractor.vggish.audio_weights_info``), without loading."""
        return dict(self._info)

    def load_model(self) -> "vggish_lib.AudioModel":
        return vggish_lib.load_audio_model(self.weights)

    def run_inference(self, batch: Sequence[np.ndarray], model: "vggish_lib.AudioModel",
                      inference_args: Optional[dict[str, Any]] = None) -> Iterable[np.ndarray]:
        if not batch:
            return []
        examples = vggish_lib.as_examples(np.stack(batch), "audio batch")
        n, size = len(examples), self.batch_size
        chunks = []
        for start in range(0, n, size):
            chunk = examples[start:start + size]
            real = len(chunk)
            if real < size:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - real, axis=0)])
            chunks.append(model.predict(chunk)[:real])
        return list(chunks[0] if len(chunks) == 1 else np.concatenate(chunks))

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return int(sum(np.asarray(x).nbytes for x in batch))

    def get_metrics_namespace(self) -> str:
        return counters.AUDIO_INFERENCE_NAMESPACE

    def share_model_across_processes(self) -> bool:
        return self._share

    def validate_inference_args(self, inference_args: Optional[dict[str, Any]]):
        if inference_args:
            raise ValueError(f"VGGishModelHandler takes no inference_args, got "
                             f"{sorted(inference_args)}")


def keyed_examples(video_id: str, examples: np.ndarray) -> list[tuple[AudioKey, np.ndarray]]:
    """A video's (F, 96, 64) examples as RunInference elements keyed by second."""
    x = vggish_lib.as_examples(examples, f"audio examples of {video_id!r}")
    return [(AudioKey(video_id, i, len(x)), x[i]) for i in range(len(x))]
