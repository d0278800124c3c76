"""The original YouTube-8M frame network: the Inception 2015-12-05 frozen graph.

The released features came from ``classify_image_graph_def.pb`` fed one
decoded RGB frame, uint8 ``(H, W, 3)`` of any size, at ``DecodeJpeg:0``; the
graph itself casts it to float, adds a batch dimension, resizes it with
``ResizeBilinear`` to 299x299 (TensorFlow's original bilinear: no half-pixel
offset, no antialiasing), scales it to ``(x - 128) / 128`` and returns the
2048-d ``pool_3/_reshape:0``. :func:`graph_fn` runs the graph exactly so, on
frames at their decoded size; :func:`original_preprocess` is that
preprocessing alone (for measuring what a different resize changes), and
:func:`synthetic_graph_def` a small random graph with the same tensor names
and the same preprocessing ops, for tests and benchmarks (nothing is
downloaded).
"""
from __future__ import annotations

import numpy as np

GRAPH_INPUT = "DecodeJpeg:0"
GRAPH_OUTPUT = "pool_3/_reshape:0"
GRAPH_RESIZE = 299          # what ResizeBilinear in the 2015 graph resizes to
GRAPH_MEAN, GRAPH_STD = 128.0, 128.0
FEATURE_DIM = 2048


class GraphError(ValueError):
    """A file that is not the YouTube-8M extractor's frozen graph."""


def read_graph_def(path: str):
    import tensorflow as tf
    from apache_beam.io.filesystems import FileSystems
    graph_def = tf.compat.v1.GraphDef()
    try:
        with FileSystems.open(path) as fh:
            graph_def.ParseFromString(fh.read())
    except Exception as e:
        raise GraphError(f"{path!r} is not a frozen GraphDef ({type(e).__name__}: {e}); pass "
                         f"yt8m-graph:/path/to/classify_image_graph_def.pb") from e
    return graph_def


def graph_fn(path: str):
    """The frozen graph as a ``tf.function`` over a uint8 batch ``(N, H, W, 3)``.

    The graph was built for one decoded frame (``DecodeJpeg:0`` has no batch
    dimension), so the batch is mapped frame by frame inside one
    ``tf.function`` (no Python loop, no session); H and W may be anything, the
    graph resizes. Each frame runs through the graph alone, so its features do
    not depend on the other frames of the batch.
    """
    import tensorflow as tf
    graph_def = read_graph_def(path)

    def _import(frame):
        out, = tf.compat.v1.import_graph_def(graph_def, input_map={GRAPH_INPUT: frame},
                                             return_elements=[GRAPH_OUTPUT], name="")
        return out

    try:
        wrapped = tf.compat.v1.wrap_function(_import, [tf.TensorSpec([None, None, 3], tf.uint8)])
    except Exception as e:
        raise GraphError(f"graph {path!r} does not have the YouTube-8M extractor's tensors "
                         f"{GRAPH_INPUT} -> {GRAPH_OUTPUT} ({type(e).__name__}: {e}); pass the "
                         f"Inception 2015-12-05 classify_image_graph_def.pb") from e

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    def fn(frames):
        return tf.map_fn(lambda f: tf.reshape(wrapped(f), [FEATURE_DIM]), frames,
                         fn_output_signature=tf.TensorSpec([FEATURE_DIM], tf.float32))

    fn.wrapped_graph = wrapped
    return fn


def original_preprocess(frames: np.ndarray, size: int = GRAPH_RESIZE) -> np.ndarray:
    """What the 2015 graph computes from a decoded frame before its first convolution.

    ``frames`` uint8 ``(H, W, 3)`` or ``(N, H, W, 3)`` -> float32
    ``(N, size, size, 3)``: ``ResizeBilinear`` with ``align_corners=False,
    half_pixel_centers=False`` (the op's behaviour in 2015), then
    ``(x - 128) / 128``.
    """
    import tensorflow as tf
    x = np.asarray(frames)
    if x.ndim == 3:
        x = x[None]
    y = tf.raw_ops.ResizeBilinear(images=tf.cast(x, tf.float32), size=[size, size],
                                  align_corners=False, half_pixel_centers=False)
    return ((y - GRAPH_MEAN) / GRAPH_STD).numpy()


def synthetic_graph_def(seed: int = 1, output_name: str = "pool_3/_reshape",
                        resize: int = GRAPH_RESIZE):
    """A small random GraphDef with the released graph's tensor names and preprocessing.

    ``DecodeJpeg/contents`` (string) -> ``DecodeJpeg`` (uint8 HxWx3) -> ``Cast``
    -> ``ExpandDims`` -> ``ResizeBilinear`` to ``resize`` x ``resize``
    (``align_corners=False``, no half-pixel centres, as in 2015) -> ``Sub`` 128
    -> ``Mul`` 1/128 -> a 5x5/4 conv (16), a 3x3/2 conv (64), 4x4 average
    pooling, a 1x1 conv to 2048 (ReLUs between) -> mean pool ``pool_3`` ->
    ``output_name`` (1, 2048). He-scaled weights from ``seed``; a few
    milliseconds per frame on a CPU.
    """
    import tensorflow as tf
    rng = np.random.default_rng(seed)

    def he(shape):
        fan_in = int(np.prod(shape[:-1]))
        return tf.constant((rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(
            np.float32))

    g = tf.Graph()
    with g.as_default():
        contents = tf.compat.v1.placeholder(tf.string, [], name="DecodeJpeg/contents")
        img = tf.io.decode_jpeg(contents, channels=3, name="DecodeJpeg")
        x = tf.cast(img, tf.float32, name="Cast")
        x = tf.expand_dims(x, 0, name="ExpandDims")
        x = tf.raw_ops.ResizeBilinear(images=x, size=tf.constant([resize, resize], tf.int32),
                                      align_corners=False, half_pixel_centers=False,
                                      name="ResizeBilinear")
        x = tf.subtract(x, GRAPH_MEAN, name="Sub")
        x = tf.multiply(x, 1.0 / GRAPH_STD, name="Mul")
        x = tf.nn.relu(tf.nn.conv2d(x, he((5, 5, 3, 16)), 4, "VALID"))
        x = tf.nn.relu(tf.nn.conv2d(x, he((3, 3, 16, 64)), 2, "VALID"))
        x = tf.nn.avg_pool2d(x, 4, 4, "VALID")
        x = tf.nn.relu(tf.nn.conv2d(x, he((1, 1, 64, FEATURE_DIM)), 1, "VALID"))
        x = tf.reduce_mean(x, axis=[1, 2], keepdims=True, name="pool_3")
        tf.reshape(x, [-1, FEATURE_DIM], name=output_name)
    return g.as_graph_def()
