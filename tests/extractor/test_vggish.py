"""VGGish: the Keras network against the TF1 reference graph, and every weights source
loaded back from artifacts the tests write (a full-size random network; nothing downloads)."""
from __future__ import annotations

import hashlib
import logging

import numpy as np
import pytest

from tests.extractor import audio_support as S
from yt8m.extractor import logmel as L
from yt8m.extractor import vggish as V
from yt8m.extractor.weights import WeightsError

# Same weights, another graph or trace: float32 reassociation only (embeddings ~ +-10).
ATOL = 2e-3


@pytest.fixture(scope="module")
def model():
    return S.random_model()


@pytest.fixture(scope="module")
def examples():
    return S.examples8()


@pytest.fixture(scope="module")
def embeddings():
    return S.random_embeddings()


@pytest.fixture(scope="module")
def released(model):
    """The random network's weights under the released names."""
    return V.released_weights(model.keras_model)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return tmp_path_factory.mktemp("vggish_files")


@pytest.fixture(scope="module")
def v1_checkpoint(released, files):
    return S.write_tf1_checkpoint(released, str(files / "vggish_model.ckpt"), "V1")


def _close(a, b):
    np.testing.assert_allclose(a, b, atol=ATOL, rtol=1e-4)


# --------------------------------------------------------------------------- the network
def test_released_names_and_shapes():
    assert V.released_variable_names() == S.RELEASED_NAMES
    shapes = V.released_shapes()
    assert list(shapes) == S.RELEASED_NAMES
    assert shapes["vggish/conv1/weights"] == (3, 3, 1, 64)
    assert shapes["vggish/conv4/conv4_2/weights"] == (3, 3, 512, 512)
    assert shapes["vggish/fc1/fc1_1/weights"] == (6 * 4 * 512, 4096)
    assert shapes["vggish/fc2/weights"] == (4096, 128)
    net = V.vggish()
    assert tuple(net.input.shape) == (None, 96, 64, 1) and tuple(net.output.shape) == (None, 128)
    assert net.count_params() == sum(int(np.prod(s)) for s in shapes.values()) == 72_141_184
    assert net.get_layer("fc2").activation.__name__ == "linear"


def test_random_weights_are_seeded_flagged_and_warned(model, examples, embeddings, caplog):
    assert embeddings.shape == (8, 128) and embeddings.dtype == np.float32
    assert np.abs(embeddings[0] - embeddings[1]).max() > 1e-2     # examples tell apart
    assert (embeddings < 0).any() and (embeddings > 0).any()       # fc2 has no ReLU
    info = model.info
    assert info["random"] is True and info["source"] == "random" and info["sha256"] is None
    assert info["seed"] == 0 and info["name"] == "vggish" and info["embedding_dim"] == 128
    assert info["frontend"] == L.FRONTEND
    with caplog.at_level(logging.WARNING, logger="yt8m.extractor.vggish"):
        again = V.load_audio_model("random", cache=False)
    assert any("UNTRAINED" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(again.predict(examples[:2]), embeddings[:2])
    other = V.load_audio_model("random:1", cache=False)
    assert not np.allclose(other.predict(examples[:1]), embeddings[:1], atol=ATOL)


def test_keras_network_matches_the_tf1_reference_graph(v1_checkpoint, examples, embeddings):
    """The reference's graph (vggish_slim's ops, variables restored by name) gives
    the Keras network's embeddings: same layout, flatten order and activations."""
    ref = S.reference_embeddings(v1_checkpoint, examples)
    _close(ref, embeddings)


def test_predict_validates_and_handles_empty_and_chunks(model, examples, embeddings):
    assert model.predict(np.zeros((0, 96, 64), np.float32)).shape == (0, 128)
    _close(model.predict(examples[..., None]), embeddings)        # (N, 96, 64, 1) too
    chunked = V.AudioModel(model._fn, model.info, max_chunk=3)
    _close(chunked.predict(examples), embeddings)
    with pytest.raises(ValueError, match=r"\(N, 96, 64\)"):
        model.predict(np.zeros((2, 64, 96), np.float32))
    with pytest.raises(ValueError, match="NaN or Inf"):
        model.predict(np.full((1, 96, 64), np.nan, np.float32))


# --------------------------------------------------------------------------- checkpoints
def test_released_v1_checkpoint_loads_with_identical_outputs(v1_checkpoint, examples,
                                                             embeddings):
    m = V.load_audio_model(v1_checkpoint, cache=False)
    np.testing.assert_array_equal(m.predict(examples), embeddings)  # the same network
    assert m.info["source"] == "checkpoint" and m.info["random"] is False
    assert m.info["sha256"] == hashlib.sha256(open(v1_checkpoint, "rb").read()).hexdigest()


def test_v2_checkpoint_prefix_loads(released, files, examples, embeddings):
    prefix = S.write_tf1_checkpoint(released, str(files / "finetuned"), "V2")
    m = V.load_audio_model(f"ckpt:{prefix}", cache=False)
    np.testing.assert_array_equal(m.predict(examples[:2]), embeddings[:2])
    assert m.info["source"] == "checkpoint" and len(m.info["sha256"]) == 64
    assert V.audio_weights_info(f"ckpt:{prefix}")["sha256"] == m.info["sha256"]


def test_checkpoint_missing_variables_names_them(files):
    path = S.write_tf1_checkpoint({"vggish/conv1/weights": np.zeros((3, 3, 1, 64), np.float32),
                                   "other/thing": np.zeros(2, np.float32)},
                                  str(files / "partial.ckpt"))
    with pytest.raises(WeightsError, match="lacks the VGGish variables") as e:
        V.load_audio_model(path, cache=False)
    assert "vggish/conv1/biases" in str(e.value)


def test_checkpoint_with_wrong_shapes_is_rejected(files):
    wrong = {n: np.zeros((2,), np.float32) for n in S.RELEASED_NAMES}
    path = S.write_tf1_checkpoint(wrong, str(files / "wrong.ckpt"))
    with pytest.raises(WeightsError, match="wrong shape") as e:
        V.load_audio_model(path, cache=False)
    assert "vggish/conv1/weights: (2,) (expected (3, 3, 1, 64))" in str(e.value)


def test_garbage_checkpoint_is_a_clear_error(files):
    path = files / "garbage.ckpt"
    path.write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(WeightsError, match="could not read the TF checkpoint"):
        V.load_audio_model(str(path), cache=False)


# --------------------------------------------------------------------------- keras files
def test_keras_files_load_back_with_identical_outputs(model, files, examples, embeddings):
    net = model.keras_model
    path = files / "vggish.keras"
    net.save(path)
    m = V.load_audio_model(str(path), cache=False)
    np.testing.assert_array_equal(m.predict(examples), embeddings)
    assert m.info["source"] == "keras-file" and len(m.info["sha256"]) == 64
    weights_path = files / "vggish.weights.h5"
    net.save_weights(weights_path)
    np.testing.assert_array_equal(
        V.load_audio_model(str(weights_path), cache=False).predict(examples[:2]), embeddings[:2])


def test_keras_model_of_other_shapes_is_rejected(files):
    import keras
    inp = keras.Input((96, 64, 1))
    bad = keras.Model(inp, keras.layers.Dense(10)(keras.layers.Flatten()(inp)))
    path = files / "not_vggish.keras"
    bad.save(path)
    with pytest.raises(WeightsError, match="128-d embeddings"):
        V.load_audio_model(str(path), cache=False)


# --------------------------------------------------------------------------- SavedModels
def test_log_mel_saved_model_is_called_as_is(model, files, examples, embeddings):
    path = V.export_saved_model(model.keras_model, str(files / "vggish_log_mel"))
    m = V.load_audio_model(path, cache=False)
    assert m.info["source"] == "saved-model" and m.info["saved_model_call"] == "log_mel"
    assert m.keras_model is None                      # the SavedModel's own graph runs
    _close(m.predict(examples), embeddings)


def test_keras_export_with_a_4d_input_is_called_as_is(model, files, examples, embeddings):
    path = str(files / "vggish_keras_export")
    model.keras_model.export(path, verbose=False)
    m = V.load_audio_model(path, cache=False)
    assert m.info["saved_model_call"] == "log_mel"
    _close(m.predict(examples[:3]), embeddings[:3])


def test_hub_style_waveform_saved_model_uses_its_released_variables(released, files, examples,
                                                                    embeddings):
    """Like the published TF-Hub VGGish: __call__ takes a waveform and frames it at
    its own 0.96 s hop. Its variables run in the Keras network on our examples."""
    import tensorflow as tf
    path = str(files / "vggish_hub")
    module = S.hub_style_module(released)
    tf.saved_model.save(module, path)
    m = V.load_audio_model(path, cache=False)
    assert m.info["saved_model_call"] == "variables" and m.keras_model is not None
    np.testing.assert_array_equal(m.predict(examples), embeddings)
    # The module on one 0.975 s waveform = one example: its tf.signal front end and
    # graph agree with our log-mel and network.
    w = S.make_waveform(1.0, seed=21)[:L.EXAMPLE_SAMPLES]
    theirs = module(tf.constant(w)).numpy()
    assert theirs.shape == (1, 128)
    ours = m.predict(L.waveform_to_examples(w, [0.0]).examples)
    np.testing.assert_allclose(ours, theirs, atol=2e-2, rtol=1e-3)


def test_saved_model_without_log_mel_input_or_vggish_variables_is_rejected(files):
    import tensorflow as tf

    class Other(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.ones([3]), name="dense/kernel")

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def __call__(self, x):
            return x * self.w

    path = str(files / "other_model")
    tf.saved_model.save(Other(), path)
    with pytest.raises(WeightsError, match="no log-mel batch"):
        V.load_audio_model(path, cache=False)


def test_unreachable_hub_handle_says_to_pass_a_local_directory(monkeypatch):
    import tensorflow_hub as hub

    def offline(handle, *args, **kwargs):
        raise OSError(f"could not resolve {handle}: network is unreachable")

    monkeypatch.setattr(hub, "load", offline)
    with pytest.raises(WeightsError) as e:
        V.load_audio_model("https://tfhub.dev/google/vggish/1", cache=False)
    assert "local directory" in str(e.value) and "network is unreachable" in str(e.value)


# --------------------------------------------------------------------------- specs
@pytest.mark.parametrize("spec, needle", [
    ("", "empty"),
    ("random:x", "integer"),
    ("/nonexistent/vggish_model.ckpt", "does not exist"),
    ("ckpt:", "names no checkpoint"),
    ("/nonexistent/vggish.keras", "does not exist"),
    ("/nonexistent/dir", "not found"),
])
def test_bad_specs_say_what_to_pass(spec, needle):
    with pytest.raises(WeightsError, match=needle):
        V.parse_audio_spec(spec)


def test_spec_kinds(tmp_path):
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(WeightsError, match="no saved_model.pb"):
        V.parse_audio_spec(str(tmp_path / "empty_dir"))
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(WeightsError, match="unknown type"):
        V.parse_audio_spec(str(tmp_path / "model.bin"))
    assert V.parse_audio_spec("hub:https://tfhub.dev/google/vggish/1").source == "hub"
    assert V.parse_audio_spec("random:3").seed == 3


def test_cache_reuses_a_loaded_model(model):
    assert V.load_audio_model("random") is model
