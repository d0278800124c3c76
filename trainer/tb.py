"""TensorBoard scalar logs written with TensorFlow alone.

``tf.summary.scalar`` and Keras' ``TensorBoard`` callback need the
``tensorboard`` package, which is not among the project's dependencies. The
event files are TensorFlow's own format, though: ``tf.summary.write`` with
the "scalars" plugin metadata produces exactly what ``tf.summary.scalar``
would, so ``tensorboard --logdir RUN/logs`` (installed wherever the logs are
viewed) reads them.
"""
from __future__ import annotations

import os
import time

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))


class ScalarWriter:
    """Scalars into ``logdir`` (one event file per writer)."""

    def __init__(self, logdir: str):
        os.makedirs(logdir, exist_ok=True)
        self.logdir = logdir
        self._writer = tf.summary.create_file_writer(logdir)

    def scalars(self, values: dict, step: int) -> None:
        with self._writer.as_default():
            for tag, value in values.items():
                if value is None:
                    continue
                tf.summary.write(tag, tf.constant(float(value), tf.float32), step=int(step),
                                 metadata=_SCALAR_METADATA)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class EpochLogger(keras.callbacks.Callback):
    """Per-epoch Keras logs (loss, ...) plus epoch seconds into ``logdir``."""

    def __init__(self, logdir: str):
        super().__init__()
        self.writer = ScalarWriter(logdir)
        self._t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        values = {f"epoch_{k}": v for k, v in (logs or {}).items()}
        values["epoch_seconds"] = time.perf_counter() - self._t0
        self.writer.scalars(values, epoch)

    def on_train_end(self, logs=None):
        self.writer.close()


def read_scalars(logdir: str) -> dict:
    """``{tag: [(step, value), ...]}`` of the event files in ``logdir`` (for checks)."""
    from tensorflow.core.util import event_pb2
    out: dict = {}
    for name in sorted(tf.io.gfile.listdir(logdir)):
        if "tfevents" not in name:
            continue
        for raw in tf.data.TFRecordDataset(os.path.join(logdir, name)):
            ev = event_pb2.Event.FromString(raw.numpy())
            for v in ev.summary.value:
                value = tf.make_ndarray(v.tensor) if v.HasField("tensor") else v.simple_value
                out.setdefault(v.tag, []).append((ev.step, float(value)))
    return out
