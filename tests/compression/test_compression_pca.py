"""PCA moments accumulator and PCAWhitening: exactness, merges, degenerate input, files."""
import pickle

import numpy as np
import pytest

from yt8m.compression import MomentsCombiner, PCAWhitening

D = 24


@pytest.fixture
def data(rng, relu_features):
    return relu_features(rng, 400, D) * 3.0 + 5.0


# ---- the accumulator ---------------------------------------------------------------
SPLITS = {
    "one batch": [400],
    "video-sized": [37] * 10,
    "single vectors then a block": [1, 1, 1, 0, 1, 200],
    "uneven with empties": [0, 150, 0, 3, 97, 0],
}


@pytest.mark.parametrize("chunk_rows", [1, 16, 4096])
@pytest.mark.parametrize("split_name", list(SPLITS))
def test_moments_equal_numpy_for_any_split_chunking_pickling_and_merge_order(
        data, splitter, split_name, chunk_rows):
    combiner = MomentsCombiner(chunk_rows)
    pieces = splitter(data, SPLITS[split_name])
    # One accumulator per piece, pickled (as Beam ships them), merged in every order
    # of a few groupings.
    accs = []
    for piece in pieces:
        acc = combiner.create_accumulator()
        rows = piece[0] if len(piece) == 1 else piece  # single frames arrive as (D,)
        combiner.add_input(acc, rows)
        accs.append(pickle.loads(pickle.dumps(acc)))
    want_cov, want_mean = np.cov(data.T), data.mean(axis=0)
    rng = np.random.default_rng(0)
    orders = [list(range(len(accs))), list(range(len(accs)))[::-1]]
    orders += [list(rng.permutation(len(accs))) for _ in range(3)]
    for order in orders:
        copies = [pickle.loads(pickle.dumps(accs[i])) for i in order]
        half = len(copies) // 2
        left = combiner.merge_accumulators(copies[:half] or [combiner.create_accumulator()])
        right = combiner.merge_accumulators(copies[half:])
        moments = combiner.extract_output(combiner.merge_accumulators([right, left]))
        assert moments.count == len(data)
        np.testing.assert_allclose(moments.mean, want_mean, rtol=1e-12)
        np.testing.assert_allclose(moments.covariance(), want_cov, rtol=1e-10, atol=1e-12)


def test_empty_accumulators_are_neutral(data):
    combiner = MomentsCombiner(8)
    empty = combiner.extract_output(combiner.create_accumulator())
    assert empty.count == 0 and empty.mean.shape == (0,)
    full = combiner.add_input(combiner.create_accumulator(), data)
    merged = combiner.merge_accumulators(
        [combiner.create_accumulator(), full, combiner.create_accumulator()])
    np.testing.assert_allclose(combiner.extract_output(merged).covariance(), np.cov(data.T),
                               rtol=1e-10)
    assert combiner.merge_accumulators([]).count == 0


def test_moments_are_stable_far_from_the_origin(rng):
    # Raw sums would lose every digit of a unit variance at an offset of 1e7.
    x = rng.standard_normal((3000, 4)) + 1e7
    combiner = MomentsCombiner(64)
    acc = combiner.create_accumulator()
    for piece in np.array_split(x, 50):
        combiner.add_input(acc, piece)
    np.testing.assert_allclose(combiner.extract_output(acc).covariance(), np.cov(x.T),
                               rtol=1e-6, atol=1e-6)


def test_mismatched_dimensions_and_bad_arrays_are_named(data):
    combiner = MomentsCombiner()
    acc = combiner.add_input(combiner.create_accumulator(), data)
    with pytest.raises(ValueError, match=r"input #1.*25 dimensions.*had 24"):
        combiner.add_input(acc, np.zeros((3, 25)))
    with pytest.raises(ValueError, match="shape"):
        combiner.add_input(acc, np.zeros((2, 3, D)))
    with pytest.raises(ValueError, match="numeric"):
        combiner.add_input(acc, np.array([["a"] * D]))


# ---- the fit ----------------------------------------------------------------------------
def test_fit_matches_eigh_of_numpy_cov_and_is_sign_normalised(data):
    k = 10
    pca = PCAWhitening.fit(np.array_split(data, 7), n_components=k, epsilon=1e-4)
    w, v = np.linalg.eigh(np.cov(data.T))
    w, v = w[::-1][:k], v[:, ::-1][:, :k]
    np.testing.assert_allclose(pca.eigenvals, w, rtol=1e-9)
    np.testing.assert_allclose(pca.mean, data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(np.abs(np.sum(pca.eigenvecs * v, axis=0)), 1.0, rtol=1e-8)
    biggest = pca.eigenvecs[np.argmax(np.abs(pca.eigenvecs), axis=0), np.arange(k)]
    assert np.all(biggest > 0)
    assert pca.info["n_frames"] == len(data) and pca.info["rank"] == D
    assert 0 < pca.info["explained_variance_ratio"] < 1


def test_fits_on_different_splits_are_identical(data):
    a = PCAWhitening.fit([data], n_components=8)
    b = PCAWhitening.fit(np.array_split(data[::-1], 13), n_components=8)
    np.testing.assert_allclose(a.eigenvecs, b.eigenvecs, atol=1e-9)


@pytest.mark.parametrize("epsilon", [1e-4, 0.5])
def test_whitened_train_features_have_identity_covariance(data, epsilon):
    pca = PCAWhitening.fit([data], n_components=12, epsilon=epsilon)
    y = pca.transform(data)
    assert y.dtype == np.float64 and y.shape == (len(data), 12)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-9)
    # Exactly diag(lambda / (lambda + epsilon)): the identity up to the regulariser.
    np.testing.assert_allclose(np.cov(y.T), np.diag(pca.eigenvals / (pca.eigenvals + epsilon)),
                               atol=1e-9)
    if epsilon < 1e-3:
        np.testing.assert_allclose(np.cov(y.T), np.eye(12), atol=1e-3)


def test_transform_follows_the_released_formula_and_inverts(data):
    pca = PCAWhitening.fit([data], n_components=D)
    x = data[:20]
    want = (x - pca.mean) @ pca.eigenvecs / np.sqrt(pca.eigenvals + pca.epsilon)
    np.testing.assert_allclose(pca.transform(x), want, rtol=1e-12)
    np.testing.assert_allclose(pca.inverse_transform(pca.transform(x)), x, rtol=1e-9)
    y32 = pca.transform(x.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, want, atol=2e-3)
    np.testing.assert_allclose(pca.transform(x[0]), want[0], rtol=1e-12)
    with pytest.raises(ValueError, match=r"\(n, 24\)"):
        pca.transform(np.zeros((2, 23)))


# ---- degenerate input ------------------------------------------------------------
def test_constant_dimension_outside_the_kept_components_is_fine(data):
    x = data.copy()
    x[:, 3] = 7.0
    pca = PCAWhitening.fit([x], n_components=D - 1)
    assert np.all(pca.eigenvals > 0)
    np.testing.assert_allclose(pca.eigenvecs[3], 0.0, atol=1e-9)


def test_constant_dimension_kept_needs_consent_then_is_a_zero_component(data):
    x = data.copy()
    x[:, 3] = 7.0
    with pytest.raises(ValueError, match=rf"span only {D - 1} dimensions.*allow_rank_deficient"):
        PCAWhitening.fit([x], n_components=D)
    pca = PCAWhitening.fit([x], n_components=D, allow_rank_deficient=True)
    assert pca.eigenvals[-1] == 0.0 and pca.info["rank"] == D - 1
    np.testing.assert_allclose(np.abs(pca.eigenvecs[:, -1]), np.eye(D)[3], atol=1e-9)
    np.testing.assert_allclose(pca.eigenvecs.T @ pca.eigenvecs, np.eye(D), atol=1e-9)
    assert np.isfinite(pca.transform(x)).all()


def test_fewer_frames_than_components(data):
    few = data[:10]
    with pytest.raises(ValueError, match=r"10 frames span only 9 dimensions.*n_components=16"):
        PCAWhitening.fit([few], n_components=16)
    pca = PCAWhitening.fit([few], n_components=16, allow_rank_deficient=True)
    assert np.all(pca.eigenvals[9:] == 0) and np.all(pca.eigenvals[:9] > 0)
    np.testing.assert_allclose(pca.eigenvecs.T @ pca.eigenvecs, np.eye(16), atol=1e-9)
    # Training frames have no component in the null space.
    np.testing.assert_allclose(pca.transform(few)[:, 9:], 0.0, atol=1e-6)
    again = PCAWhitening.fit(np.array_split(few, 3), n_components=16, allow_rank_deficient=True)
    np.testing.assert_allclose(again.eigenvecs, pca.eigenvecs, atol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_name_the_batch_and_frame(data, bad):
    broken = data[:30].copy()
    broken[17, 2] = bad
    with pytest.raises(ValueError, match=r"batch 2 \(0-based\).*frame\(s\) \[17\]"):
        PCAWhitening.fit([data[:50], data[50:90], broken], n_components=4)


@pytest.mark.parametrize("batches,k,match", [
    ([], 4, "at least 2 frames"),
    ([np.ones((1, D))], 4, "at least 2 frames"),
    ("data", D + 1, r"n_components must be in \[1, 24\]"),
    ("data", 0, r"n_components must be in \[1, 24\]"),
])
def test_bad_fit_requests_are_clear_errors(data, batches, k, match):
    with pytest.raises(ValueError, match=match):
        PCAWhitening.fit([data] if batches == "data" else batches, n_components=k)


# ---- files --------------------------------------------------------------------------
def test_save_load_round_trip_with_exactly_the_keys(data, tmp_path):
    pca = PCAWhitening.fit([data], n_components=6, epsilon=1e-3)
    path = str(tmp_path / "sub" / "pca.npz")
    pca.save(path)
    with np.load(path) as z:
        assert sorted(z.files) == ["eigenvals", "eigenvecs", "epsilon", "mean"]
        assert z["eigenvecs"].shape == (D, 6) and z["epsilon"].shape == ()
    back = PCAWhitening.load(path)
    assert back.epsilon == 1e-3
    np.testing.assert_array_equal(back.transform(data), pca.transform(data))
    np.savez(tmp_path / "extra.npz", mean=pca.mean, eigenvecs=pca.eigenvecs,
             eigenvals=pca.eigenvals, epsilon=1e-3, junk=1)
    with pytest.raises(ValueError, match=r"exactly the arrays.*junk"):
        PCAWhitening.load(str(tmp_path / "extra.npz"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        PCAWhitening.load(str(tmp_path / "absent.npz"))


def test_from_yt8m_reads_the_released_layout(data, tmp_path):
    # The released files: mean (D, 1), eigenvals (N, 1), eigenvecs (N, D) one per row.
    w, v = np.linalg.eigh(np.cov(data.T))
    w, v = w[::-1], v[:, ::-1]
    np.save(tmp_path / "mean.npy", data.mean(axis=0)[:, None])
    np.save(tmp_path / "eigenvals.npy", w[:, None])
    np.save(tmp_path / "eigenvecs.npy", v.T)
    pca = PCAWhitening.from_yt8m(str(tmp_path), n_components=8)
    # What the released feature extractor computes.
    mean = np.load(tmp_path / "mean.npy")[:, 0]
    vecs = np.load(tmp_path / "eigenvecs.npy").T[:, :8]
    vals = np.load(tmp_path / "eigenvals.npy")[:8, 0]
    want = (data[:5] - mean) @ vecs / np.sqrt(vals + 1e-4)
    np.testing.assert_allclose(pca.transform(data[:5]), want, rtol=1e-12)
    np.save(tmp_path / "eigenvecs.npy", v[:, :8])  # columns layout: not the released one
    with pytest.raises(ValueError, match=r"eigenvecs.npy must be \(N, 24\)"):
        PCAWhitening.from_yt8m(str(tmp_path), n_components=8)


def test_constructor_validates_shapes():
    with pytest.raises(ValueError, match="eigenvecs must be"):
        PCAWhitening(np.zeros(4), np.zeros((3, 2)), np.ones(2))
    with pytest.raises(ValueError, match="must match"):
        PCAWhitening(np.zeros(4), np.zeros((4, 2)), np.ones(3))
    with pytest.raises(ValueError, match="epsilon > 0"):
        PCAWhitening(np.zeros(4), np.zeros((4, 2)), np.zeros(2), epsilon=0.0)
