"""Histogram accumulator, Lloyd-Max, the table encoder and the released uniform convention."""
import pickle
from fractions import Fraction

import numpy as np
import pytest

from yt8m.compression import HistogramCombiner, Quantizer, lloyd_max
from yt8m.compression.quantize import _TableEncoder, uniform_levels


@pytest.fixture
def gauss(rng):
    return rng.standard_normal(200_000)


# ---- the histogram ----------------------------------------------------------------
@pytest.mark.parametrize("per_dimension", [False, True])
@pytest.mark.parametrize("pieces", [1, 3, 17])
def test_histogram_merges_in_any_order_equal_one_pass(rng, pieces, per_dimension):
    x = rng.standard_normal((900, 5)) * 3.0  # some values beyond the range R = 8
    combiner = HistogramCombiner(value_range=8.0, n_bins=512, per_dimension=per_dimension)
    one = combiner.extract_output(combiner.add_input(combiner.create_accumulator(), x))
    accs = []
    for piece in np.array_split(x, pieces):
        acc = combiner.add_input(combiner.create_accumulator(), piece)
        accs.append(pickle.loads(pickle.dumps(acc)))
    accs.insert(1, combiner.create_accumulator())
    merged = combiner.extract_output(combiner.merge_accumulators(accs[::-1]))
    np.testing.assert_array_equal(merged.counts, one.counts)
    np.testing.assert_allclose(merged.sums, one.sums, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged.sumsq, one.sumsq, rtol=1e-12, atol=1e-12)
    assert merged.counts.shape == ((5 if per_dimension else 1), 514)
    # Tallies: under/overflow hold exactly the values beyond [-8, 8], with their sums.
    flat = x if per_dimension else x.reshape(-1, 1)
    np.testing.assert_array_equal(merged.counts[:, 0], (flat < -8).sum(axis=0))
    np.testing.assert_array_equal(merged.counts[:, -1], (flat >= 8).sum(axis=0))
    np.testing.assert_allclose(merged.sums[:, -1], np.where(flat >= 8, flat, 0).sum(axis=0))
    assert merged.total == x.size


HISTOGRAM_VALUES = {
    "gaussian, some beyond R": lambda rng: (rng.standard_normal((600, 5)) * 3.0),
    "float32 whitened-like": lambda rng: rng.standard_normal((600, 5)).astype(np.float32),
    "extremes": lambda rng: rng.choice(
        np.array([0.0, -0.0, 1e-300, -1e-300, 5e-324, 8.0, -8.0, np.nextafter(8.0, 0),
                  -np.nextafter(8.0, 0), 65504.0, -65504.0, 1e18, -1e18, 0.5, -7.25]),
        size=(600, 5)),
    "one repeated value": lambda rng: np.full((600, 5), 0.123456789),
}


@pytest.mark.parametrize("per_dimension", [False, True])
@pytest.mark.parametrize("name", list(HISTOGRAM_VALUES))
def test_histogram_is_bit_identical_for_any_order_batching_and_merge(rng, name, per_dimension):
    x = HISTOGRAM_VALUES[name](rng)
    combiner = HistogramCombiner(value_range=8.0, n_bins=1024, per_dimension=per_dimension)
    one = combiner.extract_output(combiner.add_input(combiner.create_accumulator(), x))
    order_rng = np.random.default_rng(0)
    for pieces in (2, 7, 31):
        rows = order_rng.permutation(len(x))
        accs = [pickle.loads(pickle.dumps(combiner.add_input(combiner.create_accumulator(),
                                                             x[part])))
                for part in np.array_split(rows, pieces)]
        order_rng.shuffle(accs)
        got = combiner.extract_output(combiner.merge_accumulators(
            [combiner.merge_accumulators(accs[:3]), combiner.create_accumulator()]
            + accs[3:]))
        for a in ("counts", "sums", "sumsq"):
            assert np.array_equal(getattr(got, a), getattr(one, a)), (a, pieces)
    # Against a plain float64 histogram of the same values: same counts, sums
    # within the fixed-point grid (1/2**26 of a bin), tails exact.
    flat = x.reshape(-1, 5 if per_dimension else 1).astype(np.float64)
    for j in range(flat.shape[1]):
        v = flat[:, j]
        idx = np.clip(np.floor((v + 8.0) * 64.0), -1, 1024).astype(int) + 1
        np.testing.assert_array_equal(one.counts[j], np.bincount(idx, minlength=1026))
        plain = np.bincount(idx, weights=v, minlength=1026)
        bound = np.bincount(idx, minlength=1026) * 2.0 ** -32 + 1e-12 * np.abs(plain)
        assert np.all(np.abs(one.sums[j] - plain) <= bound), np.abs(one.sums[j] - plain).max()
        for t in (0, -1):
            tail = v[idx == (0 if t == 0 else 1025)]
            assert one.sums[j, t] == float(sum(Fraction(float(y)) for y in tail))


def test_histogram_values_beyond_its_exact_range_raise():
    combiner = HistogramCombiner()
    with pytest.raises(ValueError, match=r"video 'v7'.*beyond \+-2\*\*64"):
        combiner.add_input(combiner.create_accumulator(), np.array([1.0, -3e19]),
                           name="video 'v7'")


def test_empty_histogram_and_bad_inputs(rng):
    combiner = HistogramCombiner(n_bins=64)
    assert combiner.extract_output(combiner.create_accumulator()).total == 0
    with pytest.raises(ValueError, match="no values"):
        Quantizer.from_histogram(combiner.extract_output(combiner.create_accumulator()))
    acc = combiner.create_accumulator()
    with pytest.raises(ValueError, match=r"input #0.*NaN or Inf"):
        combiner.add_input(acc, np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="value_range"):
        HistogramCombiner(value_range=0)
    with pytest.raises(ValueError, match=r"Quantizer fit: batch 1 \(0-based\)"):
        Quantizer.fit([rng.standard_normal(10), np.array([np.inf])])


# ---- Lloyd-Max -------------------------------------------------------------------------
def test_lloyd_reaches_the_lloyd_max_gaussian_optimum(gauss):
    q = Quantizer.fit([gauss[:100_000], gauss[100_000:]], bits=8)
    assert q.info["converged"] and q.info["n_values"] == len(gauss)
    # Max (1960) / asymptotic Panter-Dite figure for 8-bit Gaussian: 4.1e-5 of the variance.
    assert 3.0e-5 < q.info["train_mse"] < 4.6e-5
    measured = np.mean((q.decode(q.encode(gauss)) - gauss) ** 2)
    np.testing.assert_allclose(measured, q.info["train_mse"], rtol=0.02)


def test_lloyd_levels_are_centroids_and_boundaries_midpoints(gauss):
    q = Quantizer.fit([gauss], bits=4)
    codes = q.encode(gauss)
    for i in range(16):
        np.testing.assert_allclose(q.levels[i], gauss[codes == i].mean(), atol=2e-3)
    np.testing.assert_allclose(q.boundaries, 0.5 * (q.levels[1:] + q.levels[:-1]), rtol=1e-6)


def test_lloyd_mse_far_below_uniform_on_held_out_gaussian(gauss, rng):
    lloyd = Quantizer.fit([gauss], method="lloyd")
    uniform = Quantizer.fit(None, method="uniform")
    held = rng.standard_normal(100_000)
    mse = lambda q: np.mean((q.decode(q.encode(held)) - held) ** 2)  # noqa: E731
    assert mse(lloyd) < 0.05 * mse(uniform)


@pytest.mark.parametrize("values,bits", [
    (np.repeat([0.0, 1.0, 2.5], 1000), 2),     # fewer distinct values than levels
    (np.full(500, 0.5), 8),                    # a constant
    (np.repeat([-20.0, 20.0], 50), 1),         # everything outside [-R, R]
])
def test_discrete_and_constant_data_are_reproduced_exactly(values, bits):
    q = Quantizer.fit([values], bits=bits)
    assert np.all(np.diff(q.levels) >= 0)
    np.testing.assert_allclose(q.decode(q.encode(values)), values, rtol=1e-6)
    assert q.info["train_mse"] < 1e-9


def test_lloyd_max_vectorises_over_rows(rng):
    x = np.stack([rng.standard_normal(20_000), rng.exponential(size=20_000)], axis=1)
    combiner = HistogramCombiner(n_bins=4096, per_dimension=True)
    res = lloyd_max(combiner.extract_output(combiner.add_input(combiner.create_accumulator(), x)),
                    n_levels=16)
    for j in range(2):
        single = HistogramCombiner(n_bins=4096)
        one = lloyd_max(single.extract_output(
            single.add_input(single.create_accumulator(), x[:, j])), n_levels=16)
        np.testing.assert_allclose(res.levels[j], one.levels[0], rtol=1e-9)
    # A 16-level codebook of unit-variance data: MSE near Max's 0.0095 for the Gaussian.
    assert 0.008 < res.mse[0] < 0.011 and np.isfinite(res.mse[1]) and res.mse[1] > 0


# ---- the encoder -----------------------------------------------------------------------
def _codebooks(gauss):
    crowded = np.sort(np.concatenate([np.zeros(200), np.linspace(-1, 1, 55)]))
    return {
        "lloyd": Quantizer.fit([gauss[:50_000]]).boundaries,
        "uniform": Quantizer.uniform().boundaries,
        "one boundary": np.array([0.25]),
        "duplicates": np.array([-1.0, 0.0, 0.0, 0.0, 1.0]),
        "crowded (searchsorted fallback)": crowded,
        "wide": np.array([-1e4, -1.0, 3.0, 1e4]),
    }


@pytest.mark.parametrize("name", ["lloyd", "uniform", "one boundary", "duplicates",
                                  "crowded (searchsorted fallback)", "wide"])
def test_table_encoder_equals_searchsorted(gauss, rng, name):
    b = np.asarray(_codebooks(gauss)[name], dtype=np.float32)
    enc = _TableEncoder(b)
    probes = np.concatenate([
        rng.standard_normal(50_000) * 3, b, np.nextafter(b, np.float32(-np.inf)),
        np.nextafter(b, np.float32(np.inf)), [-1e30, 1e30, 0.0, -0.0]]).astype(np.float32)
    want = np.searchsorted(b, probes, side="right")
    np.testing.assert_array_equal(enc(probes), want.astype(np.uint8))
    if name.startswith("crowded"):
        assert enc.table is None
    elif name in ("lloyd", "uniform"):
        assert enc.table is not None


def test_encode_keeps_shape_and_rejects_non_finite(rng):
    q = Quantizer.uniform()
    x = rng.standard_normal((3, 4, 5))
    codes = q.encode(x)
    assert codes.shape == x.shape and codes.dtype == np.uint8
    with pytest.raises(ValueError, match="NaN or Inf"):
        q.encode(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="uint8"):
        q.decode(np.array([1, 2]))


# ---- the released uniform convention ----------------------------------------------
def released_dequantize(feat, max_quantized_value=2, min_quantized_value=-2):
    """youtube-8m's utils.Dequantize, in NumPy float32 as TensorFlow computes it."""
    quantized_range = max_quantized_value - min_quantized_value
    scalar = np.float32(quantized_range / 255.0)
    bias = np.float32((quantized_range / 512.0) + min_quantized_value)
    return np.asarray(feat).astype(np.float32) * scalar + bias


def released_quantize(x, min_quantized_value=-2.0, max_quantized_value=2.0):
    """youtube-8m's feature_extractor quantize: rounds, which Dequantize does not expect."""
    x = np.clip(x, min_quantized_value, max_quantized_value)
    return np.round((x - min_quantized_value) * (255.0 / 4.0)).astype(np.uint8)


def test_uniform_decodes_exactly_like_the_released_dequantize():
    q = Quantizer.fit(None, method="uniform")
    codes = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(q.decode(codes), released_dequantize(codes))
    np.testing.assert_array_equal(uniform_levels(), released_dequantize(codes))
    assert q.clip_range == (-2.0, 2.0) and q.n_levels == 256


def test_uniform_encodes_to_the_nearest_released_level(rng):
    q = Quantizer.uniform()
    x = rng.uniform(-2.5, 2.5, 100_000).astype(np.float32)
    got = q.decode(q.encode(x))
    nearest = q.levels[np.argmin(np.abs(x[:, None] - q.levels[None, :]), axis=1)]
    np.testing.assert_allclose(np.abs(got - x), np.abs(nearest - x), atol=1e-6)
    assert q.encode(np.array([-9.0]))[0] == 0 and q.encode(np.array([9.0]))[0] == 255


def test_uniform_has_no_half_step_bias_unlike_the_release(rng):
    q = Quantizer.uniform()
    x = rng.uniform(-1.9, 1.9, 400_000).astype(np.float32)
    step = 4.0 / 255.0
    ours = np.mean(q.decode(q.encode(x)) - x)
    released = np.mean(released_dequantize(released_quantize(x)) - x)
    assert abs(ours) < step / 50
    assert abs(released - 4.0 / 512.0) < step / 50  # the release is off by ~half a step


def test_fit_arguments_are_checked():
    with pytest.raises(ValueError, match="needs the whitened train values"):
        Quantizer.fit(None, method="lloyd")
    with pytest.raises(ValueError, match="method must be one of"):
        Quantizer.fit(None, method="kmeans")
    with pytest.raises(ValueError, match="8-bit"):
        Quantizer.fit(None, method="uniform", bits=4)
    with pytest.raises(ValueError, match="bits must be"):
        Quantizer.fit([np.zeros(3)], bits=9)
    with pytest.raises(ValueError, match="sorted"):
        Quantizer([1.0, 0.0], [0.0, 0.5, 1.0])


# ---- files ----------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["lloyd", "uniform"])
def test_save_load_round_trip(gauss, tmp_path, method):
    q = Quantizer.fit([gauss] if method == "lloyd" else None, method=method)
    path = str(tmp_path / f"{method}.npz")
    q.save(path)
    with np.load(path) as z:
        assert sorted(z.files) == ["boundaries", "levels"]
        assert z["boundaries"].shape == (255,) and z["levels"].shape == (256,)
    back = Quantizer.load(path)
    assert back.method == method
    np.testing.assert_array_equal(back.encode(gauss[:1000]), q.encode(gauss[:1000]))
    np.testing.assert_array_equal(back.levels, q.levels)
