"""The one place that knows the TFRecord layouts: encode and parse.

Three record kinds:

* frame-level (YouTube-8M schema): ``tf.train.SequenceExample`` with context
  ``id`` (bytes), ``labels`` (int64, absent for the test split) and feature
  list ``rgb``: one bytes feature of ``D`` uint8 per frame (D = 1024). The
  released files may also carry ``audio`` (128 uint8 per frame).
* video-level: ``tf.train.Example`` with ``id``, ``labels`` and ``mean_rgb``
  (float, D values) and, in released files, ``mean_audio``.
* raw features (``extract --no_compress``): ``tf.train.SequenceExample`` with
  context ``id``, ``labels`` (optional) and ``frame_times`` (float seconds),
  feature list ``rgb`` with one FloatList of 2048 per frame.

Encoding uses the protobuf classes only (no graph ops), so it is cheap inside
Beam DoFns; parsing into NumPy is here too, for tests and small tools. The
trainer's tf.data readers use the feature specs below.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.example import example_pb2, feature_pb2

RGB_QUANTIZED_DIM = 1024
RGB_RAW_DIM = 2048
AUDIO_DIM = 128

FRAME_RGB = "rgb"
FRAME_AUDIO = "audio"
VIDEO_MEAN_RGB = "mean_rgb"
VIDEO_MEAN_AUDIO = "mean_audio"


def _bytes_feature(values: Sequence[bytes]) -> feature_pb2.Feature:
    return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=list(values)))


def _int64_feature(values: Sequence[int]) -> feature_pb2.Feature:
    return feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=[int(v) for v in values]))


def _float_feature(values) -> feature_pb2.Feature:
    return feature_pb2.Feature(
        float_list=feature_pb2.FloatList(value=np.asarray(values, np.float32).ravel().tolist()))


def _serialize(message) -> bytes:
    # Features are protobuf maps, whose entries are serialized in hash-table
    # order: without ``deterministic`` the same record gives other bytes in
    # another process (string hashing is seeded per process), and a build's
    # bytes would depend on which worker wrote them. Sorted map keys only.
    return message.SerializeToString(deterministic=True)


def _as_bytes(video_id) -> bytes:
    return video_id if isinstance(video_id, bytes) else str(video_id).encode("utf-8")


# ---------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------
def encode_frame_example(video_id: str, quantized_rgb: np.ndarray,
                         labels: Optional[Sequence[int]] = None,
                         quantized_audio: Optional[np.ndarray] = None) -> bytes:
    """Frame-level SequenceExample; ``quantized_rgb`` is ``(F, D)`` uint8.

    ``labels=None`` leaves the ``labels`` key out (the test split).
    """
    q = np.asarray(quantized_rgb)
    if q.dtype != np.uint8 or q.ndim != 2:
        raise ValueError(f"quantized_rgb for {video_id!r} must be a 2-D uint8 array, "
                         f"got {q.dtype} {q.shape}")
    ctx = {"id": _bytes_feature([_as_bytes(video_id)])}
    if labels is not None:
        ctx["labels"] = _int64_feature(sorted(int(x) for x in labels))
    seq = example_pb2.SequenceExample(context=feature_pb2.Features(feature=ctx))
    fl = seq.feature_lists.feature_list[FRAME_RGB]
    for row in q:
        fl.feature.add().bytes_list.value.append(row.tobytes())
    if quantized_audio is not None:
        fa = seq.feature_lists.feature_list[FRAME_AUDIO]
        for row in np.asarray(quantized_audio, np.uint8):
            fa.feature.add().bytes_list.value.append(row.tobytes())
    return _serialize(seq)


def encode_video_example(video_id: str, mean_rgb: np.ndarray,
                         labels: Optional[Sequence[int]] = None,
                         mean_audio: Optional[np.ndarray] = None) -> bytes:
    """Video-level Example with ``mean_rgb`` (D floats)."""
    feats = {"id": _bytes_feature([_as_bytes(video_id)]),
             VIDEO_MEAN_RGB: _float_feature(mean_rgb)}
    if labels is not None:
        feats["labels"] = _int64_feature(sorted(int(x) for x in labels))
    if mean_audio is not None:
        feats[VIDEO_MEAN_AUDIO] = _float_feature(mean_audio)
    return _serialize(example_pb2.Example(features=feature_pb2.Features(feature=feats)))


def encode_raw_feature_example(video_id: str, features: np.ndarray,
                               frame_times: Sequence[float],
                               labels: Optional[Sequence[int]] = None) -> bytes:
    """Raw float features: ``features`` is ``(F, 2048)``, ``frame_times`` ``(F,)``."""
    x = np.asarray(features, np.float32)
    if x.ndim != 2 or len(frame_times) != x.shape[0]:
        raise ValueError(f"features {x.shape} and frame_times ({len(frame_times)}) "
                         f"disagree for {video_id!r}")
    ctx = {"id": _bytes_feature([_as_bytes(video_id)]),
           "frame_times": _float_feature(frame_times)}
    if labels is not None:
        ctx["labels"] = _int64_feature(sorted(int(x) for x in labels))
    seq = example_pb2.SequenceExample(context=feature_pb2.Features(feature=ctx))
    fl = seq.feature_lists.feature_list[FRAME_RGB]
    for row in x:
        fl.feature.add().float_list.value.extend(row.tolist())
    return _serialize(seq)


# ---------------------------------------------------------------------------
# Parsing into NumPy (tests, tools; the trainer has tf.data readers)
# ---------------------------------------------------------------------------
@dataclass
class FrameRecord:
    video_id: str
    labels: Optional[list[int]]          # None when the key is absent
    rgb: np.ndarray                      # (F, D) uint8 or float32 (raw)
    audio: Optional[np.ndarray] = None   # (F, 128) uint8 when present
    frame_times: Optional[np.ndarray] = None
    extra_context: dict = field(default_factory=dict)


@dataclass
class VideoRecord:
    video_id: str
    labels: Optional[list[int]]
    mean_rgb: np.ndarray
    mean_audio: Optional[np.ndarray] = None


def parse_frame_example(data: bytes) -> FrameRecord:
    """Parse a frame-level or raw-feature SequenceExample."""
    seq = example_pb2.SequenceExample.FromString(data)
    ctx = seq.context.feature
    video_id = ctx["id"].bytes_list.value[0].decode("utf-8")
    labels = list(ctx["labels"].int64_list.value) if "labels" in ctx else None
    frame_times = (np.asarray(ctx["frame_times"].float_list.value, np.float32)
                   if "frame_times" in ctx else None)

    def _rows(name):
        if name not in seq.feature_lists.feature_list:
            return None
        feats = seq.feature_lists.feature_list[name].feature
        if not feats:
            return np.zeros((0, 0), np.uint8)
        if feats[0].HasField("float_list"):
            return np.asarray([f.float_list.value for f in feats], np.float32)
        return np.stack([np.frombuffer(f.bytes_list.value[0], np.uint8) for f in feats])

    rgb = _rows(FRAME_RGB)
    if rgb is None:
        raise ValueError(f"record {video_id!r} has no '{FRAME_RGB}' feature list")
    return FrameRecord(video_id=video_id, labels=labels, rgb=rgb, audio=_rows(FRAME_AUDIO),
                       frame_times=frame_times)


def parse_video_example(data: bytes) -> VideoRecord:
    ex = example_pb2.Example.FromString(data)
    f = ex.features.feature
    return VideoRecord(
        video_id=f["id"].bytes_list.value[0].decode("utf-8"),
        labels=list(f["labels"].int64_list.value) if "labels" in f else None,
        mean_rgb=np.asarray(f[VIDEO_MEAN_RGB].float_list.value, np.float32),
        mean_audio=(np.asarray(f[VIDEO_MEAN_AUDIO].float_list.value, np.float32)
                    if VIDEO_MEAN_AUDIO in f else None),
    )


def read_records(pattern: str) -> list[bytes]:
    """All serialized records of the TFRecord files matching ``pattern`` (sorted)."""
    files = sorted(glob.glob(pattern))
    out: list[bytes] = []
    for path in files:
        out.extend(r.numpy() for r in tf.data.TFRecordDataset(path))
    return out
