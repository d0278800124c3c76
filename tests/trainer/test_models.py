"""Each model trains on a tiny separable dataset and beats chance; saved models load back."""
from __future__ import annotations

import numpy as np
import pytest

from yt8m.trainer import metrics as M
from yt8m.trainer import models as MD
from yt8m.trainer import train as T

C, D, FRAMES = 5, 12, 6


def _dataset(n, seed, frames=False):
    """One label per video (chance Hit@1 = 1/C), class prototypes + noise."""
    rng = np.random.default_rng(seed)
    protos = np.random.default_rng(99).standard_normal((C, D)) * 1.5
    cls = rng.integers(0, C, n)
    y = np.eye(C, dtype=np.float32)[cls]
    if frames:
        x = protos[cls][:, None, :] + rng.standard_normal((n, FRAMES, D))
        nf = rng.integers(2, FRAMES + 1, n).astype(np.int32)
        for i, k in enumerate(nf):
            x[i, k:] = 0.0
        return x.astype(np.float32), y, nf
    x = protos[cls] + 0.7 * rng.standard_normal((n, D))
    x /= np.linalg.norm(x, axis=1, keepdims=True)   # the L2-normalised inputs of 4.2.2
    return x.astype(np.float32), y, None


SMALL = {"dbof": {"projection_size": 32, "hidden_size": 16, "train_frames": 4},
         "lstm": {"lstm_size": 8, "lstm_layers": 2},
         "frame_logistic": {"train_frames": 4},
         "moe": {"num_mixtures": 2}}


@pytest.mark.parametrize("name", list(MD.MODELS))
def test_model_beats_chance_and_round_trips(name, tmp_path):
    frames = MD.MODELS[name].level == "frame"
    x, y, nf = _dataset(300, 0, frames)
    xv, yv, nfv = _dataset(100, 1, frames)
    model, _ = T.train_arrays(name, x, y, num_frames=nf, epochs=4, seed=0, **SMALL.get(name, {}))
    p = T.predict_arrays(model, xv, nfv)
    assert p.shape == (100, C)
    assert np.all((p >= 0) & (p <= 1))
    hit1 = M.hit_at_k(p, yv, 1)
    assert hit1 > 2.0 / C, f"{name}: Hit@1 {hit1:.2f} is not above chance ({1 / C:.2f})"
    assert M.mean_average_precision(p, yv) > 0.5
    import keras
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    again = keras.models.load_model(path, compile=False)
    np.testing.assert_allclose(T.predict_arrays(again, xv, nfv), p, rtol=1e-5, atol=1e-6)


def test_moe_has_the_dummy_state_and_the_configured_experts():
    m = MD.create_model("moe", 3, 4, num_mixtures=4).build().model
    layer = m.get_layer("moe")
    assert layer.gate.kernel.shape == (4, 3 * 5)      # H + 1 gate states
    assert layer.experts.kernel.shape == (4, 3 * 4)
    # A gate that puts all mass on the dummy state says "no entity".
    layer.gate.bias.assign(np.tile([-30.0] * 4 + [30.0], 3).astype(np.float32))
    assert float(np.max(m.predict({"features": np.ones((2, 4), np.float32)}, verbose=0))) < 1e-6


def test_frame_masks_ignore_padding():
    m = MD.create_model("frame_logistic", 2, 3).build().model
    x = np.random.default_rng(0).standard_normal((1, 4, 3)).astype(np.float32)
    padded = x.copy()
    padded[0, 2:] = 100.0                               # garbage beyond num_frames
    a = m.predict({"frames": x[:, :2], "num_frames": np.array([2], np.int32)}, verbose=0)
    b = m.predict({"frames": padded, "num_frames": np.array([2], np.int32)}, verbose=0)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_unknown_names_and_parameters_are_clear_errors():
    with pytest.raises(ValueError, match="choose one of"):
        MD.get_model_class("svm")
    with pytest.raises(ValueError, match="num_mixtures"):
        MD.create_model("logistic", 3, 4, num_mixtures=2)
