"""Readers: our build's files, the released layout (with audio), raw features, and the
section 4.2 features."""
from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from tests.trainer import synth
from yt8m.trainer import data as D


def _spec(level, info, layout="ours", **kw):
    return D.InputSpec(level=level, record_kind=info.kind, layout=layout, num_classes=kw.pop("num_classes", 6),
                       rgb_dim=info.rgb_dim, **kw)


def _all(ds):
    out = {"ids": [], "labels": [], "x": [], "n": []}
    for inputs, labels, ids in ds:
        out["ids"] += [i.decode() for i in ids.numpy()]
        out["labels"].append(labels.numpy())
        if "features" in inputs:
            out["x"].append(inputs["features"].numpy())
        else:
            out["x"] += list(inputs["frames"].numpy())
            out["n"] += list(inputs["num_frames"].numpy())
    out["labels"] = np.concatenate(out["labels"])
    return out


def test_inspect_tells_the_layouts_apart(build_dir, released_dir, tmp_path):
    out, _ = build_dir
    rel, _ = released_dir
    assert D.inspect_records([f"{out}/frame/train-00000-of-00002.tfrecord"]) == D.RecordInfo("frame", 16, 0, True)
    assert D.inspect_records([f"{out}/video/test-00000-of-00002.tfrecord"]) == D.RecordInfo("video", 16, 0, False)
    assert D.inspect_records([f"{rel}/frame/train0000.tfrecord"]) == D.RecordInfo("frame", 1024, 128, True)
    assert D.inspect_records([f"{rel}/video/train0000.tfrecord"]) == D.RecordInfo("video", 1024, 128, True)
    synth.write_raw_features(str(tmp_path / "raw.tfrecord"))
    assert D.inspect_records([str(tmp_path / "raw.tfrecord")]).kind == "raw"


def test_our_frame_files_dequantize_with_the_levels_table(build_dir):
    out, info = build_dir
    files = D.glob_files(f"{out}/frame/validate-*.tfrecord")
    rec = D.inspect_records(files)
    spec = _spec("frame", rec, quantizer_path=f"{out}/artifacts/quantizer.npz", max_frames=5)
    got = _all(D.make_dataset(files, spec, batch_size=7))
    assert len(got["ids"]) == 40
    levels = info["quant"]["levels"]
    for vid, frames, n, lab in zip(got["ids"], got["x"], got["n"], got["labels"]):
        q = info["videos"][vid]["q"][:5]                      # capped at max_frames
        assert n == len(q)
        np.testing.assert_array_equal(frames[:n], levels[q])
        assert not frames[n:].any()                           # padding
        assert sorted(np.nonzero(lab)[0]) == info["videos"][vid]["labels"]


def test_dequantizer_agrees_with_the_compression_quantizer(build_dir):
    out, _ = build_dir
    Quantizer = D._compression_class("Quantizer")
    if Quantizer is None or not hasattr(Quantizer, "load"):
        pytest.skip("compression.Quantizer is not available in this tree")
    q = np.arange(256, dtype=np.uint8).reshape(16, 16)
    ours = D.Dequantizer.from_npz(f"{out}/artifacts/quantizer.npz")(tf.constant(q)).numpy()
    np.testing.assert_array_equal(ours, Quantizer.load(f"{out}/artifacts/quantizer.npz").decode(q))


def test_per_dimension_codebooks():
    levels = np.stack([np.linspace(-1, 1, 256), np.linspace(0, 5, 256)]).astype(np.float32)
    q = np.array([[0, 255], [128, 3]], np.uint8)
    got = D.Dequantizer(levels, "test")(tf.constant(q)).numpy()
    np.testing.assert_allclose(got, [[levels[0, 0], levels[1, 255]], [levels[0, 128], levels[1, 3]]])


def test_our_video_files(build_dir):
    out, info = build_dir
    files = D.glob_files(f"{out}/video/train-*.tfrecord")
    rec = D.inspect_records(files)
    got = _all(D.make_dataset(files, _spec("video", rec), batch_size=32))
    assert len(got["ids"]) == 120
    x = np.concatenate(got["x"])
    levels = info["quant"]["levels"]
    for vid, row in zip(got["ids"], x):
        np.testing.assert_allclose(row, levels[info["videos"][vid]["q"]].mean(0), rtol=1e-5, atol=1e-6)


def test_released_layout_with_audio(released_dir):
    rel, info = released_dir
    frame_files = [f"{rel}/frame/train0000.tfrecord"]
    rec = D.inspect_records(frame_files)
    spec = _spec("frame", rec, layout="released", num_classes=8, feature_names=("rgb", "audio"),
                 audio_dim=128)
    got = _all(D.make_dataset(frame_files, spec, batch_size=16))
    assert len(got["ids"]) == 60
    for vid, frames, n in zip(got["ids"], got["x"], got["n"]):
        q = info[vid]["q"]
        # the released reader's rule: q * 4/255 + 4/512 - 2, rgb then audio
        np.testing.assert_allclose(frames[:n], synth.released_dequantize(q), atol=1e-6)
    video_files = [f"{rel}/video/train0000.tfrecord"]
    vrec = D.inspect_records(video_files)
    vspec = _spec("video", vrec, layout="released", num_classes=8, feature_names=("rgb", "audio"),
                  audio_dim=128)
    vgot = _all(D.make_dataset(video_files, vspec, batch_size=16))
    x = np.concatenate(vgot["x"])
    assert x.shape == (60, 1152)
    for vid, row in zip(vgot["ids"], x):
        np.testing.assert_allclose(row, synth.released_dequantize(info[vid]["q"]).mean(0), atol=1e-5)


def test_label_beyond_num_classes_is_a_clear_error(released_dir):
    rel, _ = released_dir
    files = [f"{rel}/video/train0000.tfrecord"]
    rec = D.inspect_records(files)
    spec = _spec("video", rec, layout="released", num_classes=3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_classes"):
        _all(D.make_dataset(files, spec, batch_size=64))


def test_video_statistics_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.random((7, 4)).astype(np.float32)
    got = D.video_statistics(tf.constant(np.vstack([x, np.zeros((3, 4), np.float32)])), 7).numpy()
    top5 = -np.sort(-x, axis=0)[:5]
    np.testing.assert_allclose(got, np.concatenate([x.mean(0), x.std(0), top5.ravel()]), rtol=1e-5)
    # fewer frames than 5: the smallest value repeats
    short = D.video_statistics(tf.constant(x[:2]), 2).numpy()
    srt = -np.sort(-x[:2], axis=0)
    np.testing.assert_allclose(short[8:], np.concatenate([srt, srt[[1, 1, 1]]]).ravel(), rtol=1e-6)
    assert not D.video_statistics(tf.zeros((0, 4)), 0).numpy().any()


def test_mu_sigma_top5_is_computed_in_reconstructed_relu_space(build_dir):
    out, info = build_dir
    files = D.glob_files(f"{out}/frame/validate-*.tfrecord")
    rec = D.inspect_records(files)
    spec = _spec("video", rec, video_features="mu_sigma_top5",
                 quantizer_path=f"{out}/artifacts/quantizer.npz", pca_path=f"{out}/artifacts/pca.npz")
    got = _all(D.make_dataset(files, spec, batch_size=64))
    x = np.concatenate(got["x"])
    assert x.shape == (40, 32 * 7)
    pca = info["pca"]
    vid = got["ids"][0]
    y = info["quant"]["levels"][info["videos"][vid]["q"]]
    relu = (y * np.sqrt(pca["eigenvals"] + 1e-4)) @ pca["eigenvecs"].T + pca["mean"]
    np.testing.assert_allclose(x[0][:32], relu.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(x[0][32:64], relu.std(0), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(x[0][64:96], relu.max(0), rtol=1e-4, atol=1e-4)
    # the in-graph inverse is compression.PCAWhitening's
    PCA = D._compression_class("PCAWhitening")
    if PCA is not None:
        np.testing.assert_allclose(D.PCAReconstruction.load(f"{out}/artifacts/pca.npz").inverse_transform(y),
                                   PCA.load(f"{out}/artifacts/pca.npz").inverse_transform(y.astype(np.float64)),
                                   rtol=1e-4, atol=1e-4)
    # without the PCA: a clear error, not statistics in the wrong space
    with pytest.raises(D.DataError, match="--pca"):
        D.make_dataset(files, _spec("video", rec, video_features="mu_sigma_top5",
                                    quantizer_path=f"{out}/artifacts/quantizer.npz"), batch_size=8)


def test_released_pca_directory(tmp_path):
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((2048, 1030)).astype(np.float32)   # (D, N); only the layout matters
    np.save(tmp_path / "mean.npy", rng.random((2048, 1)))
    np.save(tmp_path / "eigenvals.npy", rng.random((1030, 1)) + 0.5)
    np.save(tmp_path / "eigenvecs.npy", vecs.T)                         # one eigenvector per row
    pca = D.PCAReconstruction.load(str(tmp_path))
    assert (pca.in_dim, pca.out_dim) == (1024, 2048)
    np.testing.assert_allclose(pca.eigenvecs, vecs[:, :1024], atol=1e-6)


@pytest.mark.parametrize("with_compression", [True, False])
def test_feature_whitening_gives_identity_covariance_then_unit_norm(with_compression, monkeypatch):
    if not with_compression:
        monkeypatch.setattr(D, "_compression_class", lambda name: None)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 6)) @ rng.standard_normal((6, 6)) + 3.0
    w = D.FeatureWhitening.fit([x[:200], x[200:]], epsilon=0.0, shrinkage="none")
    y = (x - w.mean) @ w.matrix
    np.testing.assert_allclose(np.cov(y.T), np.eye(6), atol=1e-4)
    z = w(tf.constant(x, tf.float32)).numpy()
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
    # fewer videos than dimensions: only the directions with variance are kept
    w2 = D.FeatureWhitening.fit([rng.standard_normal((4, 10))], shrinkage="none")
    assert w2.out_dim == 3
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"fw_{os.getpid()}.npz")
    w2.save(path)
    np.testing.assert_allclose(D.FeatureWhitening.load(path).matrix, w2.matrix)
    os.remove(path)


def test_oas_shrinkage_matches_sklearn_and_follows_n_over_d():
    from sklearn.covariance import oas
    rng = np.random.default_rng(1)
    for n, d in ((50, 40), (400, 20), (30, 100)):
        x = rng.standard_normal((n, d)) * np.linspace(0.2, 3.0, d)
        cov_mle = np.cov(x.T, bias=True)
        _, expected = oas(x)
        got = D.oas_shrinkage(np.linalg.eigvalsh(cov_mle), n, d)
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-9)
    # isotropic noise, few videos for the dimension: nearly all shrinkage
    noise = rng.standard_normal((200, 128))
    assert D.FeatureWhitening.fit([noise]).shrinkage > 0.5
    # a structured spectrum on many videos: close to the paper's plain whitening
    big = rng.standard_normal((20000, 8)) * np.array([10, 5, 3, 2, 1, .5, .2, .1])
    w = D.FeatureWhitening.fit([big])
    assert w.shrinkage < 0.01 and w.info["method"] == "oas" and w.info["components"] == 8


def test_shrunk_whitening_keeps_a_weak_signal_that_plain_whitening_drowns(tmp_path):
    """Few videos, many noise dimensions: plain whitening blows up the
    smallest sample eigenvalues; the data-chosen shrinkage does not."""
    from sklearn.linear_model import LogisticRegression
    rng = np.random.default_rng(2)
    n, d, c = 300, 256, 10
    protos = rng.standard_normal((c, d))
    scale = np.linspace(0.5, 2.0, d)
    def make(m):
        y = rng.integers(0, c, m)
        return rng.standard_normal((m, d)) * scale + 0.5 * protos[y], y
    xt, yt = make(n)
    xv, yv = make(1000)
    acc = {}
    for mode in ("none", "oas"):
        w = D.FeatureWhitening.fit([xt], shrinkage=mode)
        ft = w(tf.constant(xt, tf.float32)).numpy()
        fv = w(tf.constant(xv, tf.float32)).numpy()
        acc[mode] = LogisticRegression(max_iter=500).fit(ft, yt).score(fv, yv)
    assert acc["oas"] > acc["none"] + 0.2, acc  # measured: 0.997 vs 0.626
    w = D.FeatureWhitening.fit([xt])
    path = str(tmp_path / "w.npz")
    w.save(path)
    back = D.FeatureWhitening.load(path)
    assert back.shrinkage == w.shrinkage and back.info == w.info
    np.testing.assert_allclose(back.matrix, w.matrix)
    with pytest.raises(ValueError, match="shrinkage"):
        D.FeatureWhitening.fit([xt], shrinkage="ledoit")


def test_whitening_shrinkage_is_chosen_from_the_data_and_saved(tmp_path):
    from sklearn.covariance import oas
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 40)) * np.linspace(0.5, 3.0, 40)
    # The spectrum-only OAS equals sklearn's (which uses the biased covariance).
    vals = np.linalg.eigvalsh(np.cov(x.T, bias=True))
    assert abs(D.oas_shrinkage(vals, 300, 40) - oas(x)[1]) < 1e-9
    # Few videos for the dimension: strong shrinkage; many: little.
    small = D.FeatureWhitening.fit([rng.standard_normal((60, 40))])
    large = D.FeatureWhitening.fit([rng.standard_normal((20000, 40)) * np.linspace(0.5, 3.0, 40)])
    assert small.info["method"] == "oas" and small.shrinkage > 0.5
    assert large.shrinkage < 0.05
    assert small.info["train_videos"] == 60 and small.info["components"] == small.out_dim
    path = str(tmp_path / "w.npz")
    small.save(path)
    back = D.FeatureWhitening.load(path)
    assert back.shrinkage == small.shrinkage and back.info == small.info
    np.testing.assert_allclose(back.matrix, small.matrix)
