"""Helpers for the audio tests: test audio, and VGGish as the TF1 reference defines it.

The reference half is written here from the reference's definition
(vggish_slim: conv 3x3 SAME + ReLU, max-pool 2x2 stride 2 SAME, slim.flatten,
fully connected, fc2 without activation; variables under their released
names), with TF1 graph ops in a Session, so that the Keras network and its
loaders are checked against something that does not share their code.
"""
from __future__ import annotations

import functools

import numpy as np

# The released checkpoint's variable scopes, written out by hand.
RELEASED_SCOPES = [
    "vggish/conv1", "vggish/conv2", "vggish/conv3/conv3_1", "vggish/conv3/conv3_2",
    "vggish/conv4/conv4_1", "vggish/conv4/conv4_2", "vggish/fc1/fc1_1", "vggish/fc1/fc1_2",
    "vggish/fc2",
]
RELEASED_NAMES = [f"{s}/{p}" for s in RELEASED_SCOPES for p in ("weights", "biases")]


def make_waveform(seconds: float, seed: int = 0, sample_rate: int = 16000) -> np.ndarray:
    """Tones that change every second plus a little noise, float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    second = np.floor(t).astype(int)
    freqs = rng.uniform(200, 4000, size=int(np.ceil(seconds)) + 1)
    w = 0.4 * np.sin(2 * np.pi * freqs[second] * t) + 0.05 * rng.standard_normal(n)
    return np.clip(w, -1, 1).astype(np.float32)


@functools.cache
def examples8() -> np.ndarray:
    """Eight log-mel examples (8 s of test audio), float32 (8, 96, 64)."""
    from yt8m.extractor.logmel import second_times, waveform_to_examples
    return waveform_to_examples(make_waveform(8.0, seed=3), second_times(8)).examples


def random_model():
    """The seeded random VGGish (built once per process by the loader's cache)."""
    from yt8m.extractor.vggish import load_audio_model
    return load_audio_model("random")


@functools.cache
def random_embeddings() -> np.ndarray:
    return random_model().predict(examples8())


def write_tf1_checkpoint(weights: dict, path: str, version: str = "V1") -> str:
    """A TF1 Saver checkpoint holding ``weights`` under their names (V1: one file,
    the released vggish_model.ckpt's format; V2: PATH.index + PATH.data-*), plus
    an unrelated variable, as training checkpoints have."""
    import tensorflow as tf
    v1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        variables, feeds, assigns = {}, {}, []
        for name, value in list(weights.items()) + [("global_step", np.int64(7))]:
            value = np.asarray(value)
            var = v1.get_variable(name, shape=value.shape, dtype=tf.as_dtype(value.dtype),
                                  initializer=v1.zeros_initializer(), use_resource=False)
            ph = v1.placeholder(var.dtype.base_dtype, value.shape)
            assigns.append(var.assign(ph))
            feeds[ph] = value
            variables[name] = var
        write_version = v1.train.SaverDef.V1 if version == "V1" else v1.train.SaverDef.V2
        saver = v1.train.Saver(variables, write_version=write_version)
        with v1.Session(graph=g) as sess:
            sess.run(assigns, feeds)
            saver.save(sess, path, write_meta_graph=False, write_state=False)
    return path


def reference_embeddings(checkpoint: str, examples: np.ndarray) -> np.ndarray:
    """VGGish as the reference runs it: a TF1 graph fed at vggish/input_features,
    variables restored by name from ``checkpoint``, read at vggish/embedding."""
    import tensorflow as tf
    v1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        x = v1.placeholder(tf.float32, (None, 96, 64), name="vggish/input_features")
        net = tf.reshape(x, [-1, 96, 64, 1])
        made = {}

        def params(scope, shape_w):
            w = v1.get_variable(f"{scope}/weights", shape_w, use_resource=False)
            b = v1.get_variable(f"{scope}/biases", shape_w[-1:], use_resource=False)
            made[f"{scope}/weights"], made[f"{scope}/biases"] = w, b
            return w, b

        def conv(net, scope, width):
            w, b = params(scope, [3, 3, int(net.shape[-1]), width])
            return tf.nn.relu(tf.nn.conv2d(net, w, [1, 1, 1, 1], "SAME") + b)

        def pool(net):
            return tf.nn.max_pool2d(net, [1, 2, 2, 1], [1, 2, 2, 1], "SAME")

        def fc(net, scope, width, relu=True):
            w, b = params(scope, [int(net.shape[-1]), width])
            y = tf.matmul(net, w) + b
            return tf.nn.relu(y) if relu else y

        net = pool(conv(net, "vggish/conv1", 64))
        net = pool(conv(net, "vggish/conv2", 128))
        net = pool(conv(conv(net, "vggish/conv3/conv3_1", 256), "vggish/conv3/conv3_2", 256))
        net = pool(conv(conv(net, "vggish/conv4/conv4_1", 512), "vggish/conv4/conv4_2", 512))
        net = tf.reshape(net, [-1, 6 * 4 * 512])  # slim.flatten of NHWC
        net = fc(fc(net, "vggish/fc1/fc1_1", 4096), "vggish/fc1/fc1_2", 4096)
        emb = tf.identity(fc(net, "vggish/fc2", 128, relu=False), name="vggish/embedding")
        saver = v1.train.Saver(made)
        with v1.Session(graph=g) as sess:
            saver.restore(sess, checkpoint)
            return sess.run(emb, {x: examples})


def hub_style_module(weights: dict):
    """A tf.Module shaped like the published TF-Hub VGGish: ``__call__`` takes a
    16 kHz waveform (N,) and returns (num_examples, 128), framing 0.96 s
    examples back to back with tf.signal (as the TF-Hub export does); its
    variables carry the released names."""
    import tensorflow as tf

    class HubVGGish(tf.Module):
        def __init__(self):
            super().__init__()
            self._variables = [tf.Variable(np.asarray(v, np.float32), name=n)
                               for n, v in weights.items()]
            self._by_name = {n: i for i, n in enumerate(weights)}

        def _var(self, name):
            return self._variables[self._by_name[name]]

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def __call__(self, waveform):
            stft = tf.abs(tf.signal.stft(waveform, 400, 160, fft_length=512,
                                         window_fn=tf.signal.hann_window))
            mel = tf.signal.linear_to_mel_weight_matrix(64, 257, 16000, 125.0, 7500.0)
            log_mel = tf.math.log(tf.matmul(stft, mel) + 0.01)
            net = tf.signal.frame(log_mel, 96, 96, axis=0)[..., None]
            for scope, pool_after in (("vggish/conv1", 1), ("vggish/conv2", 1),
                                 ("vggish/conv3/conv3_1", 0), ("vggish/conv3/conv3_2", 1),
                                 ("vggish/conv4/conv4_1", 0), ("vggish/conv4/conv4_2", 1)):
                net = tf.nn.relu(tf.nn.conv2d(net, self._var(f"{scope}/weights"), 1, "SAME")
                                 + self._var(f"{scope}/biases"))
                if pool_after:
                    net = tf.nn.max_pool2d(net, 2, 2, "SAME")
            net = tf.reshape(net, [-1, 6 * 4 * 512])
            for scope in ("vggish/fc1/fc1_1", "vggish/fc1/fc1_2"):
                net = tf.nn.relu(tf.matmul(net, self._var(f"{scope}/weights"))
                                 + self._var(f"{scope}/biases"))
            return tf.matmul(net, self._var("vggish/fc2/weights")) + self._var("vggish/fc2/biases")

    return HubVGGish()
