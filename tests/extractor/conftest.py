"""Fixtures for the extractor's model half: the random-weight network and files made from it.

Inception-v3 runs ~9 frames/s on 2 CPU cores, so the network is built once per
session (``extractor.weights`` also caches loaded models per process) and the
tests send only a few dozen frames through it in total.
"""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def random_model():
    from yt8m.extractor.weights import load_feature_model
    return load_feature_model("random")


@pytest.fixture(scope="session")
def frames4():
    """Four deterministic 299x299 RGB frames (smooth gradients plus noise)."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:299, 0:299]
    out = []
    for k in range(4):
        base = np.stack([(xx + 40 * k) % 256, (yy * (k + 1)) % 256, (xx + yy) % 256], -1)
        noise = rng.integers(0, 40, (299, 299, 3))
        out.append(np.clip(base + noise, 0, 255).astype(np.uint8))
    return np.stack(out)


@pytest.fixture(scope="session")
def random_features(random_model, frames4):
    """The random network's features of ``frames4`` (the reference for round trips)."""
    return random_model.predict(frames4)


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("weights")


def small_graph_def(seed: int = 1, output_name: str = "pool_3/_reshape"):
    """A small GraphDef with the original extractor's tensor names and preprocessing
    (``extractor.yt8m_graph.synthetic_graph_def``: DecodeJpeg -> Cast -> ExpandDims ->
    ResizeBilinear 299 -> (x - 128) / 128 -> small convs -> ``pool_3/_reshape``)."""
    from yt8m.extractor.yt8m_graph import synthetic_graph_def
    return synthetic_graph_def(seed, output_name)


def run_graph_like_original(graph_def, frames: np.ndarray) -> np.ndarray:
    """What the original extractor computed: a TF1 session fed one frame at DecodeJpeg:0."""
    import tensorflow as tf
    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=g) as sess:
        return np.concatenate([sess.run("pool_3/_reshape:0", {"DecodeJpeg:0": f})
                               for f in frames])


@pytest.fixture(scope="session")
def make_graph_def():
    return small_graph_def


@pytest.fixture(scope="session")
def graph_reference():
    return run_graph_like_original


@pytest.fixture(scope="session")
def graph_file(weights_dir):
    gd = small_graph_def()
    path = weights_dir / "classify_image_graph_def.pb"
    path.write_bytes(gd.SerializeToString())
    return path, gd


@pytest.fixture(scope="session")
def extract_videos(tmp_path_factory):
    """Two short good videos (3 and 2 samples at 1 fps) and two broken inputs."""
    from yt8m.extractor.synth import write_video
    root = tmp_path_factory.mktemp("extract_videos")
    good_a = write_video(root / "a.mp4", width=64, height=48, fps=10, duration_s=3.0)
    good_b = write_video(root / "b vidéo.mkv", width=80, height=60, fps=25, duration_s=2.0)
    bad = root / "bad.mp4"
    bad.write_bytes(b"this is not a video\n" * 50)
    return {"a": str(good_a.path), "b": str(good_b.path), "bad": str(bad),
            "missing": str(root / "missing.mp4"), "root": root}
