"""Audio post-processing: the released VGGish PCA + 8-bit quantization, and the fit mode."""
from __future__ import annotations

import numpy as np
import pytest

from yt8m.compression import audio as A
from yt8m.compression.pca import MomentsCombiner, PCAWhitening
from yt8m.compression.quantize import Quantizer


def _released_like(seed=0):
    """Arrays of the released file's shapes: an orthogonal matrix scaled per row
    (PCA with whitening folded in) and a mean column."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    scale = 1.0 / np.sqrt(np.linspace(4.0, 0.05, 128))
    return (q.T * scale[:, None]).astype(np.float32), rng.normal(0, 0.3, (128, 1)).astype(
        np.float32)


def _embeddings(n, seed=1):
    """float16-representable embeddings (the cache's rounding is then a no-op)."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((128, 128)) * 0.1
    e = rng.standard_normal((n, 128)) @ mix + rng.normal(0, 0.3, 128)
    return e.astype(np.float16).astype(np.float32)


@pytest.fixture
def pca_file(tmp_path):
    p, m = _released_like()
    path = tmp_path / "vggish_pca_params.npz"
    np.savez(path, pca_eigen_vectors=p, pca_means=m)
    return str(path), p, m


def _by_hand(e, p, m):
    """vggish_postprocess.Postprocessor.postprocess, written out: PCA, clip, truncate."""
    pca_applied = np.dot(p.astype(np.float64), (e.T.astype(np.float64) - m)).T
    clipped = np.clip(pca_applied, -2.0, 2.0)
    return pca_applied, ((clipped + 2.0) * (255.0 / 4.0)).astype(np.uint8)


# --------------------------------------------------------------------------- released
def test_released_pca_applies_the_reference_formula(pca_file):
    path, p, m = pca_file
    pca = A.load_vggish_pca(path)
    assert pca.dim == pca.n_components == 128 and pca.epsilon == 0.0
    e = _embeddings(50)
    y, _ = _by_hand(e, p, m)
    np.testing.assert_allclose(pca.transform(e), y, atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(A.AudioCompression.released(path).whiten(e), y, atol=2e-5,
                               rtol=1e-5)


def test_released_codes_match_the_reference_but_at_its_cell_edges(pca_file):
    """The reference truncates; the uniform quantizer (the readers' Dequantize levels)
    rounds to the nearest level. Codes agree except just below a reference cell
    edge (within 1/32640), where ours is one higher."""
    path, p, m = pca_file
    comp = A.AudioCompression.released(path)
    e = _embeddings(400, seed=2)
    y, ref = _by_hand(e, p, m)
    ours = comp.encode(e)
    assert ours.shape == (400, 128) and ours.dtype == np.uint8
    assert (np.abs(y) > 2).any()                       # clipping is exercised
    diff = ours.astype(int) - ref.astype(int)
    assert set(np.unique(diff)) <= {0, 1}
    # Where they differ, the value lies just below an edge -2 + 4 k / 255.
    scaled = (np.clip(y, -2, 2) + 2.0) * (255.0 / 4.0)
    gap = (np.ceil(scaled) - scaled) * (4.0 / 255.0)
    assert np.all(gap[diff == 1] < 1 / 32640 + 1e-5)
    assert (diff == 0).mean() > 0.998
    # The window itself, by construction: 1.5e-5 below every inner edge ours is one
    # higher, 5e-5 below it both agree.
    edges = -2.0 + 4.0 * np.arange(1, 255) / 255.0
    truncate = lambda v: ((np.clip(v, -2, 2) + 2.0) * (255.0 / 4.0)).astype(np.uint8)  # noqa: E731
    uni = Quantizer.uniform()
    np.testing.assert_array_equal(uni.encode(edges - 1.5e-5), truncate(edges - 1.5e-5) + 1)
    np.testing.assert_array_equal(uni.encode(edges - 5e-5), truncate(edges - 5e-5))
    # Far from the edges they are equal: values at the reference cells' centres.
    centres = -2.0 + (np.arange(256) + 0.5) * 4.0 / 255.0
    np.testing.assert_array_equal(Quantizer.uniform().encode(centres), np.arange(256))
    # Saturation: the ends map to 0 and 255 in both.
    np.testing.assert_array_equal(Quantizer.uniform().encode([-5.0, -2.0, 2.0, 7.0]),
                                  [0, 0, 255, 255])


def test_mean_audio_is_the_mean_of_the_readers_dequantization(pca_file):
    comp = A.AudioCompression.released(pca_file[0])
    q = comp.encode(_embeddings(7, seed=3))
    by_hand = (q.astype(np.float64) * 4.0 / 255.0 + 4.0 / 512.0 - 2.0).mean(axis=0)
    got = comp.mean(q)
    assert got.shape == (128,) and got.dtype == np.float32
    np.testing.assert_allclose(got, by_hand, atol=1e-6)


@pytest.mark.parametrize("arrays, needle", [
    ({"pca_eigen_vectors": np.eye(128, 64), "pca_means": np.zeros((128, 1))}, r"\(128, 128\)"),
    ({"pca_eigen_vectors": np.eye(128), "pca_means": np.zeros((64, 1))}, r"\(128, 1\)"),
    ({"pca_eigen_vectors": np.full((128, 128), np.nan), "pca_means": np.zeros((128, 1))},
     "NaN"),
    ({"pca_eigen_vectors": np.eye(128)}, "exactly the arrays"),
    ({"pca_eigen_vectors": np.eye(128), "pca_means": np.zeros((128, 1)), "extra": np.ones(1)},
     "exactly the arrays"),
])
def test_bad_released_files_are_clear_errors(tmp_path, arrays, needle):
    path = tmp_path / "bad_pca.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=needle) as e:
        A.load_vggish_pca(str(path))
    assert "bad_pca.npz" in str(e.value)


def test_missing_released_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        A.load_vggish_pca(str(tmp_path / "vggish_pca_params.npz"))


# --------------------------------------------------------------------------- fit
def test_fit_mode_whitens_the_train_embeddings():
    train = [_embeddings(700, seed=s) for s in (4, 5, 6)]
    comp = A.AudioCompression.fit(train)
    assert comp.mode == "fit" and comp.quantizer.method == "lloyd"
    y = comp.whiten(np.concatenate(train))
    np.testing.assert_allclose(np.cov(y, rowvar=False), np.eye(128), atol=0.02)
    q = comp.encode(train[0])
    assert q.shape == (700, 128) and q.dtype == np.uint8
    # Lloyd-Max beats the uniform codebook on whitened values.
    uni = A.AudioCompression("fit", comp.pca, Quantizer.uniform())
    y0 = comp.whiten(train[0])

    def mse(c):
        return float(np.mean((c.quantizer.decode(c.encode(train[0])) - y0) ** 2))

    assert mse(comp) < mse(uni)
    assert A.AudioCompression.fit(train, quantizer="uniform").quantizer.method == "uniform"


def test_fit_mode_equals_the_streaming_combiners_the_pipeline_uses():
    train = [_embeddings(300, seed=s) for s in (7, 8, 9, 10)]
    comp = A.AudioCompression.fit(train)
    comb = MomentsCombiner()
    acc = comb.create_accumulator()
    for b in train:
        comb.add_input(acc, b)
    pca = PCAWhitening.from_moments(comb.extract_output(acc), 128, allow_rank_deficient=True)
    np.testing.assert_allclose(pca.mean, comp.pca.mean, atol=1e-9)
    np.testing.assert_allclose(np.abs(pca.eigenvecs.T @ comp.pca.eigenvecs), np.eye(128),
                               atol=1e-6)


# --------------------------------------------------------------------------- artifacts
@pytest.mark.parametrize("mode", ["released", "fit"])
def test_artifacts_round_trip_to_the_same_bytes(tmp_path, pca_file, mode):
    comp = (A.AudioCompression.released(pca_file[0]) if mode == "released"
            else A.AudioCompression.fit([_embeddings(500, seed=11)]))
    pca_path, q_path = str(tmp_path / "audio_pca.npz"), str(tmp_path / "audio_quantizer.npz")
    comp.save(pca_path, q_path)
    back = A.AudioCompression.load(mode, pca_path, q_path)
    e = _embeddings(20, seed=12)
    np.testing.assert_array_equal(back.encode(e), comp.encode(e))
    assert back.info()["quantizer"] == comp.quantizer.method
    assert comp.info()["clip"] == ([-2.0, 2.0] if mode == "released" else
                                   list(comp.quantizer.clip_range))


def test_wrong_dimensions_and_modes_are_rejected(pca_file):
    pca = A.load_vggish_pca(pca_file[0])
    with pytest.raises(ValueError, match="one of"):
        A.AudioCompression("pca", pca, Quantizer.uniform())
    rgb_like = PCAWhitening(np.zeros(2048), np.eye(2048, 128), np.ones(128))
    with pytest.raises(ValueError, match="128 -> 128 PCA"):
        A.AudioCompression("fit", rgb_like, Quantizer.uniform())
    with pytest.raises(ValueError, match=r"\(F, 128\)"):
        A.AudioCompression("released", pca, Quantizer.uniform()).encode(np.zeros((3, 2048)))


def test_flag_values():
    assert A.mode_from_flag("fit") == "fit"
    assert A.mode_from_flag("released", "/x/vggish_pca_params.npz") == "released"
    with pytest.raises(ValueError, match="--audio_pca"):
        A.mode_from_flag("released")
    with pytest.raises(ValueError, match="released"):
        A.mode_from_flag("whatever")
