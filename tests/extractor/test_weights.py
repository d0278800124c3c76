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
    assert model.info["input_size"] is None and model.info["precision"] == "float32"


@pytest.fixture(scope="module")
def decoded_sizes(tmp_path_factory):
    """Decoded frames at their own sizes: landscape, portrait, 4:3 and tiny."""
    from yt8m.extractor.decode import sample_frames
    from yt8m.extractor.synth import make_content, write_video
    root = tmp_path_factory.mktemp("graph_sizes")
    out = {}
    for (w, h), content in (((320, 180), "stripes"), ((180, 320), "red_circle"),
                            ((160, 120), "checker"), ((64, 48), "rings")):
        v = write_video(root / f"{w}x{h}.mp4", make_content(content), width=w, height=h,
                        fps=5, duration_s=2.0)
        out[(h, w)] = sample_frames(str(v.path), size=None).frames
    return out


def test_yt8m_graph_takes_frames_at_their_decoded_size(graph_file, graph_reference,
                                                       decoded_sizes):
    """One frame, a batch of one size, or a list of mixed sizes: as the original session."""
    path, gd = graph_file
    model = W.load_feature_model(f"yt8m-graph:{path}")
    mixed = []
    for (h, w), frames in decoded_sizes.items():
        assert frames.shape[1:] == (h, w, 3)
        ref = graph_reference(gd, frames)
        np.testing.assert_allclose(model.predict(frames), ref, atol=1e-5)
        np.testing.assert_allclose(model.predict(frames[0]), ref[:1], atol=1e-5)
        mixed += [(frames[0], ref[0]), (frames[1], ref[1])]
    order = [0, 2, 4, 6, 1, 3, 5, 7]  # interleave the sizes
    got = model.predict([mixed[i][0] for i in order])
    np.testing.assert_allclose(got, np.stack([mixed[i][1] for i in order]), atol=1e-5)
    assert model.predict([]).shape == (0, 2048)
    with pytest.raises(ValueError, match="frame 1"):
        model.predict([mixed[0][0], mixed[0][0][..., 0]])


def test_synthetic_graph_preprocesses_like_the_2015_graph(graph_file, decoded_sizes):
    """ResizeBilinear (no half-pixel centres) + (x - 128) / 128: original_preprocess is it."""
    import tensorflow as tf

    from yt8m.extractor.yt8m_graph import original_preprocess
    _, gd = graph_file
    ops = [n.op for n in gd.node]
    assert ops[:7] == ["Placeholder", "DecodeJpeg", "Cast", "Const", "ExpandDims", "Const",
                       "ResizeBilinear"], ops[:7]
    resize = next(n for n in gd.node if n.op == "ResizeBilinear")
    assert not resize.attr["align_corners"].b and not resize.attr["half_pixel_centers"].b
    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.import_graph_def(gd, name="")
    frame = decoded_sizes[(180, 320)][0]
    with tf.compat.v1.Session(graph=g) as sess:
        net_input = sess.run("Mul:0", {"DecodeJpeg:0": frame})
    assert net_input.shape == (1, 299, 299, 3)
    np.testing.assert_allclose(original_preprocess(frame), net_input, atol=1e-6)


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
        random_model.predict(frames4[0, :, :, 0])
    # One frame (H, W, 3) is a batch of one.
    np.testing.assert_allclose(random_model.predict(frames4[0]), random_features[:1],
                               atol=ATOL)
    assert random_model.predict(frames4[:0]).shape == (0, 2048)
    chunked = W.FeatureModel(random_model._fn, random_model.info, max_chunk=3)
    np.testing.assert_allclose(chunked.predict(frames4), random_features, atol=ATOL)


@pytest.fixture(scope="module")
def conv_bn_file(weights_dir):
    """A small Keras model with Inception's conv -> batch norm -> ReLU blocks (non-trivial
    moving statistics, so folding them into the convolutions is exercised)."""
    import keras
    keras.utils.set_random_seed(5)
    inp = keras.Input((None, None, 3))
    x = inp
    for i, filters in enumerate((16, 32)):
        x = keras.layers.Conv2D(filters, 3, strides=3, use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(scale=False, epsilon=0.001, name=f"bn{i}")(x)
        x = keras.layers.Activation("relu")(x)
    x = keras.layers.Conv2D(2048, 1, activation="relu", name="conv_out")(x)
    model = keras.Model(inp, keras.layers.GlobalAveragePooling2D(name="avg_pool")(x))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.1, n).astype("float32"))
    path = weights_dir / "conv_bn.keras"
    model.save(path)
    return path


def test_batch_norm_folding_keeps_float32_outputs(conv_bn_file, frames4):
    import keras

    from yt8m.extractor.precision import fold_batch_norms
    model = keras.models.load_model(conv_bn_file)
    folded = fold_batch_norms(model)
    assert not [l for l in folded.layers if isinstance(l, keras.layers.BatchNormalization)]
    x = frames4[:2].astype("float32") / 127.5 - 1
    ref = model(x).numpy()
    np.testing.assert_allclose(folded(x).numpy(), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("precision, policy, max_rel", [
    ("bfloat16", "mixed_bfloat16", 0.03), ("float16", "mixed_float16", 0.005)])
def test_16_bit_precisions_are_close_to_float32_and_recorded(conv_bn_file, frames4,
                                                              precision, policy, max_rel):
    import keras
    ref_model = W.load_feature_model(str(conv_bn_file))
    assert ref_model.info["precision"] == "float32"
    ref = ref_model.predict(frames4)
    model = W.load_feature_model(str(conv_bn_file), precision=precision)
    assert model.info["precision"] == precision
    assert model is not ref_model  # the cache keys on the precision
    keras_model = model._fn.keras_model
    assert keras_model.get_layer("conv_out").dtype_policy.name == policy
    assert not [l for l in keras_model.layers if isinstance(l, keras.layers.BatchNormalization)]
    got = model.predict(frames4)
    assert got.dtype == np.float32
    rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    assert 0 < rel < max_rel, rel
    # The precision is part of what the cache fingerprint hashes.
    from yt8m.pipeline.cache import model_fingerprint
    assert model_fingerprint(model.info) != model_fingerprint(ref_model.info)


def test_inception_in_bfloat16_is_close_to_float32(random_model, frames4, random_features):
    model = W.load_feature_model("random", precision="bfloat16")
    assert model.info["precision"] == "bfloat16" and model.info["random"] is True
    got = model.predict(frames4[:2])
    rel = np.linalg.norm(got - random_features[:2]) / np.linalg.norm(random_features[:2])
    assert 0 < rel < 0.03, rel


def test_auto_precision_is_recorded_resolved(monkeypatch):
    from yt8m.extractor import precision as P
    monkeypatch.setattr(P, "device_kind", lambda **kw: "cpu")
    assert W.weights_info("random", precision="auto")["precision"] == "float32"
    monkeypatch.setattr(P, "device_kind", lambda **kw: "cpu-bf16")
    monkeypatch.setattr(P, "VALIDATED", (P.Validation("bfloat16", "cpu-bf16", 0.01, 0.01, "t"),))
    assert W.weights_info("random", precision="auto")["precision"] == "bfloat16"
    monkeypatch.setattr(P, "VALIDATED", (P.Validation("bfloat16", "cpu-bf16", 0.9, 0.5, "t"),))
    assert W.weights_info("random", precision="auto")["precision"] == "float32"


def test_retired_mixed_precision_flag_maps_or_fails_clearly():
    with pytest.warns(DeprecationWarning):
        assert W.weights_info("random", mixed_precision=True)["precision"] == "float16"
    assert W.weights_info("random", mixed_precision=False)["precision"] == "float32"
    with pytest.raises(W.WeightsError, match="contradicts"):
        W.weights_info("random", precision="bfloat16", mixed_precision=True)
    with pytest.raises(W.WeightsError, match="not one of"):
        W.weights_info("random", precision="half")


def test_16_bit_precision_is_refused_for_fixed_dtype_models(graph_file):
    path, _ = graph_file
    with pytest.raises(W.WeightsError, match="applies to Keras weights only"):
        W.load_feature_model(f"yt8m-graph:{path}", precision="bfloat16")
    with pytest.warns(DeprecationWarning), pytest.raises(W.WeightsError,
                                                         match="Keras weights only"):
        W.load_feature_model(f"yt8m-graph:{path}", mixed_precision=True)
    assert W.weights_info(f"yt8m-graph:{path}", precision="auto")["precision"] == "float32"


def test_cache_reuses_a_loaded_model_per_spec(random_model):
    assert W.load_feature_model("random") is random_model
