"""Every weights source of extractor.weights loads, on artifacts the tests create."""
from __future__ import annotations

import hashlib
import logging

import numpy as np
import pytest

from yt8m.extractor import weights as W

ATOL = 1e-4  # same weights, another trace: float32 reassociation only


def _sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# --------------------------------------------------------------------------- random
def test_random_weights_are_seeded_flagged_and_warned(random_model, frames4, random_features,
                                                      caplog):
    assert random_features.shape == (4, 2048) and random_features.dtype == np.float32
    # He-scaled weights: ReLU features of order 1, different per frame.
    assert 0.05 < float(random_features.mean()) < 10
    assert np.abs(random_features[0] - random_features[1]).max() > 1e-3
    info = random_model.info
    assert info["random"] is True and info["source"] == "random" and info["sha256"] is None
    assert info["seed"] == 0
    with caplog.at_level(logging.WARNING, logger="yt8m.extractor.weights"):
        again = W.load_feature_model("random", cache=False)
    assert any("UNTRAINED" in r.getMessage() for r in caplog.records)
    # Rebuilt from the seed alone: the same features.
    np.testing.assert_allclose(again.predict(frames4[:1]), random_features[:1], atol=ATOL)


def test_bad_random_seed_is_a_clear_error():
    with pytest.raises(W.WeightsError, match="random:0"):
        W.parse_spec("random:abc")


# --------------------------------------------------------------------------- keras files
@pytest.fixture(scope="module")
def keras_files(random_model, weights_dir):
    """The random network saved in every Keras format."""
    from keras.src.legacy.saving import legacy_h5_format
    import h5py
    model = random_model._fn.keras_model
    paths = {"keras": weights_dir / "inception.keras", "h5": weights_dir / "inception.h5",
             "weights_h5": weights_dir / "inception.weights.h5",
             "legacy_weights": weights_dir / "notop_weights.h5"}
    model.save(paths["keras"])
    model.save(paths["h5"])
    model.save_weights(paths["weights_h5"])
    # The layout of Keras's published inception_v3_..._notop.h5 (weights only).
    with h5py.File(paths["legacy_weights"], "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return paths


# legacy_weights (the published file's layout) is loaded by the imagenet test below.
@pytest.mark.parametrize("kind", ["keras", "h5", "weights_h5"])
def test_keras_files_load_back_with_identical_outputs(keras_files, kind, frames4,
                                                      random_features):
    path = keras_files[kind]
    model = W.load_feature_model(str(path))
    np.testing.assert_allclose(model.predict(frames4[:2]), random_features[:2], atol=ATOL)
    info = model.info
    assert info["source"] == "keras-file" and info["random"] is False
    assert info["sha256"] == _sha256(path)
    assert info["input_range"] == "symmetric"


def test_imagenet_uses_keras_cache_file(monkeypatch, keras_files, frames4, random_features):
    """``imagenet`` loads whatever keras.utils.get_file returns (here: a local copy)."""
    import keras
    calls = []

    def fake_get_file(fname, origin, **kwargs):
        calls.append((fname, origin, kwargs))
        return str(keras_files["legacy_weights"])

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    model = W.load_feature_model("imagenet", cache=False)
    assert calls[0][0] == W.IMAGENET_FILE and calls[0][1] == W.IMAGENET_URL
    assert calls[0][2]["file_hash"] == W.IMAGENET_MD5
    np.testing.assert_allclose(model.predict(frames4[:1]), random_features[:1], atol=ATOL)


def test_imagenet_offline_says_what_to_pass(monkeypatch):
    import keras

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- "
                        "[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(W.WeightsError) as e:
        W.load_feature_model("imagenet", cache=False)
    msg = str(e.value)
    assert "--weights" in msg and W.IMAGENET_FILE in msg and "internet" in msg


@pytest.fixture(scope="module")
def tiny_classifier():
    """A small model shaped like Inception's head: 2048-d average pool, then a classifier."""
    import keras
    keras.utils.set_random_seed(3)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(2048, 3, strides=8, activation="relu", name="conv")(inp)
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = keras.layers.Dense(2048, name="predictions")(pooled)
    return keras.Model(inp, logits), keras.Model(inp, pooled)


def test_full_model_with_classifier_uses_its_pooling_layer(tiny_classifier, weights_dir,
                                                           frames4):
    import keras
    full, features = tiny_classifier
    # A classifier over 10 classes: the loader must take the 2048-d pooling layer.
    ten = keras.Model(full.inputs, keras.layers.Dense(10)(features.outputs[0]))
    path = weights_dir / "classifier.keras"
    ten.save(path)
    model = W.load_feature_model(str(path))
    expected = features(frames4[:2].astype("float32") / 127.5 - 1).numpy()
    np.testing.assert_allclose(model.predict(frames4[:2]), expected, atol=ATOL)


def test_model_without_2048_pooling_is_rejected(weights_dir):
    import keras
    inp = keras.Input((None, None, 3))
    out = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(16, 3)(inp))
    path = weights_dir / "tiny.keras"
    keras.Model(inp, out).save(path)
    with pytest.raises(W.WeightsError, match="2048-d global average pooling"):
        W.load_feature_model(str(path))


# --------------------------------------------------------------------------- SavedModel / hub
def test_hub_style_saved_model_loads_back_with_identical_outputs(random_model, weights_dir,
                                                                 frames4, random_features):
    path = weights_dir / "hub_feature_vector"
    W.export_hub_feature_vector(random_model._fn.keras_model, str(path))
    model = W.load_feature_model(str(path))
    assert model.info["source"] == "saved-model" and model.info["input_range"] == "unit"
    assert model.info["sha256"] and len(model.info["sha256"]) == 64
    np.testing.assert_allclose(model.predict(frames4[:2]), random_features[:2], atol=ATOL)


def test_keras_export_saved_model_with_its_input_range(tiny_classifier, weights_dir, frames4):
    """Keras's model.export() keeps the model's own [-1, 1] scaling: say so with input_range."""
    keras_model, features = tiny_classifier
    path = weights_dir / "keras_export"
    keras_model.export(str(path), verbose=False)
    model = W.load_feature_model(str(path), input_range="symmetric")
    logits = keras_model(frames4[:2].astype("float32") / 127.5 - 1).numpy()
    np.testing.assert_allclose(model.predict(frames4[:2]), logits, atol=ATOL)
    # The default for a SavedModel is TF-Hub's [0, 1]: a different input, other outputs.
    assert not np.allclose(W.load_feature_model(str(path)).predict(frames4[:1]), logits[:1],
                           atol=ATOL)


def test_unreachable_hub_handle_says_to_pass_a_local_directory(monkeypatch):
    import tensorflow_hub as hub

    def offline(handle, *args, **kwargs):
        raise OSError(f"could not resolve {handle}: network is unreachable")

    monkeypatch.setattr(hub, "load", offline)
    with pytest.raises(W.WeightsError) as e:
        W.load_feature_model("https://tfhub.dev/google/imagenet/inception_v3/feature_vector/5",
                             cache=False)
    assert "local directory" in str(e.value) and "network is unreachable" in str(e.value)


def test_directory_without_saved_model_is_rejected(tmp_path):
    (tmp_path / "empty_model").mkdir()
    with pytest.raises(W.WeightsError, match="no saved_model.pb"):
        W.parse_spec(str(tmp_path / "empty_model"))


def test_corrupt_saved_model_is_a_clear_error(tmp_path):
    d = tmp_path / "corrupt"
    d.mkdir()
    (d / "saved_model.pb").write_bytes(b"\x00garbage")
    with pytest.raises(W.WeightsError, match="not a loadable SavedModel"):
        W.load_feature_model(str(d), cache=False)


# --------------------------------------------------------------------------- frozen graph
def test_yt8m_graph_matches_the_original_session_run(graph_file, graph_reference, frames4):
    path, gd = graph_file
    model = W.load_feature_model(f"yt8m-graph:{path}")
    got = model.predict(frames4)
    np.testing.assert_allclose(got, graph_reference(gd, frames4), atol=1e-5)
    assert model.info["source"] == "yt8m-graph" and model.info["input_range"] == "uint8"
    assert model.info["sha256"] == _sha256(path)
    # No batch dimension in the graph: any frame size goes, frame by frame.
    assert model.predict(frames4[:2, :100, :120]).shape == (2, 2048)


def test_yt8m_graph_without_the_tensor_names_is_rejected(tmp_path, make_graph_def):
    path = tmp_path / "renamed.pb"
    path.write_bytes(make_graph_def(output_name="features").SerializeToString())
    with pytest.raises(W.WeightsError, match="pool_3/_reshape:0"):
        W.load_feature_model(f"yt8m-graph:{path}", cache=False)


def test_yt8m_graph_garbage_file_is_rejected(tmp_path):
    path = tmp_path / "junk.pb"
    path.write_bytes(b"\xff\xfe not a graph")
    with pytest.raises(W.WeightsError, match="not a frozen GraphDef"):
        W.load_feature_model(f"yt8m-graph:{path}", cache=False)


def test_yt8m_graph_scales_itself(graph_file):
    path, _ = graph_file
    with pytest.raises(W.WeightsError, match="leave input_range unset"):
        W.weights_info(f"yt8m-graph:{path}", input_range="unit")


# --------------------------------------------------------------------------- spec errors
@pytest.mark.parametrize("spec, needle", [
    ("", "empty weights spec"),
    ("/nonexistent/inception.h5", "does not exist"),
    ("/nonexistent/inception.keras", "does not exist"),
    ("yt8m-graph:/nonexistent/classify_image_graph_def.pb", "does not exist"),
    ("yt8m-graph:", "names no file"),
    ("imagenett", "not found"),
])
def test_bad_specs_say_what_to_pass(spec, needle):
    with pytest.raises(W.WeightsError) as e:
        W.load_feature_model(spec)
    assert needle in str(e.value)
    assert "--weights" in str(e.value) or "yt8m-graph:" in str(e.value)


def test_unknown_file_type_is_rejected(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"x")
    with pytest.raises(W.WeightsError, match="unknown type"):
        W.parse_spec(str(path))


def test_bad_input_range_is_rejected():
    with pytest.raises(W.WeightsError, match="input_range"):
        W.weights_info("random", input_range="zero_one")


# --------------------------------------------------------------------------- predict / precision
def test_predict_validates_input_and_handles_empty_and_chunking(random_model, frames4,
                                                                random_features):
    with pytest.raises(ValueError, match="uint8 RGB frames"):
        random_model.predict(frames4.astype(np.float32))
    with pytest.raises(ValueError, match="uint8 RGB frames"):
        random_model.predict(frames4[0])
    assert random_model.predict(frames4[:0]).shape == (0, 2048)
    chunked = W.FeatureModel(random_model._fn, random_model.info, max_chunk=3)
    np.testing.assert_allclose(chunked.predict(frames4), random_features, atol=ATOL)


def test_mixed_precision_is_close_to_float32(tiny_classifier, weights_dir, frames4):
    # The float16 clone is generic over Keras models; a small one keeps CPU time low.
    _, features = tiny_classifier
    path = weights_dir / "features_for_mp.keras"
    features.save(path)
    ref = W.load_feature_model(str(path)).predict(frames4[:2])
    model = W.load_feature_model(str(path), mixed_precision=True)
    assert model.info["mixed_precision"] is True
    assert model._fn.keras_model.layers[-1].dtype_policy.name == "mixed_float16"
    got = model.predict(frames4[:2])
    assert got.dtype == np.float32
    rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    assert 0 < rel < 0.02, rel


def test_mixed_precision_is_refused_for_fixed_dtype_models(graph_file):
    path, _ = graph_file
    with pytest.raises(W.WeightsError, match="mixed precision applies to Keras weights"):
        W.load_feature_model(f"yt8m-graph:{path}", mixed_precision=True)


def test_cache_reuses_a_loaded_model_per_spec(random_model):
    assert W.load_feature_model("random") is random_model
