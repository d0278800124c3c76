"""encode_frames / mean_rgb and the quality report."""
import json

import numpy as np
import pytest

from yt8m.compression import PCAWhitening, Quantizer
from yt8m.compression.codec import encode_frames, mean_rgb, whiten_frames
from yt8m.compression.quality import QualityCombiner, quality_report, write_quality_report

D, K = 32, 16


@pytest.fixture
def fitted(rng, relu_features):
    mix = rng.standard_normal((D, D)) / np.sqrt(D)
    train = relu_features(rng, 1500, D, mix).astype(np.float32)
    held = relu_features(rng, 400, D, mix).astype(np.float32)
    pca = PCAWhitening.fit([train], n_components=K)
    lloyd = Quantizer.fit([whiten_frames(train, pca)])
    return pca, lloyd, held


def test_encode_frames_is_the_float16_float32_path(fitted):
    pca, q, held = fitted
    codes = encode_frames(held, pca, q)
    assert codes.dtype == np.uint8 and codes.shape == (len(held), K)
    np.testing.assert_array_equal(codes, q.encode(pca.transform(held.astype(np.float16))))
    # The float64 reference path differs only for values within round-off of a boundary.
    ref = q.encode(pca.transform(held.astype(np.float16).astype(np.float64)))
    diff = np.abs(codes.astype(int) - ref.astype(int))
    assert diff.max() <= 1 and np.mean(diff) < 1e-2


def test_cache_round_trip_gives_identical_bytes(fitted):
    pca, q, held = fitted
    from_model = encode_frames(held, pca, q)
    from_cache = encode_frames(held.astype(np.float16), pca, q)
    from_f64 = encode_frames(held.astype(np.float64), pca, q)
    assert from_model.tobytes() == from_cache.tobytes() == from_f64.tobytes()


def test_encode_frames_errors_name_the_problem(fitted):
    pca, q, held = fitted
    with pytest.raises(ValueError, match=r"shape \(F, 32\).*\(4, 31\)"):
        encode_frames(np.zeros((4, 31), np.float32), pca, q)
    bad = held[:6].copy()
    bad[4, 0] = 1e6  # beyond float16's range
    with pytest.raises(ValueError, match=r"frame\(s\) \[4\].*65504"):
        encode_frames(bad, pca, q)
    assert encode_frames(np.zeros((0, D), np.float32), pca, q).shape == (0, K)


def test_mean_rgb_is_the_mean_of_dequantized_frames(fitted):
    pca, q, held = fitted
    codes = encode_frames(held, pca, q)
    m = mean_rgb(codes, q)
    assert m.dtype == np.float32 and m.shape == (K,)
    np.testing.assert_allclose(m, q.decode(codes).astype(np.float64).mean(axis=0), rtol=1e-6)
    with pytest.raises(ValueError, match="no mean"):
        mean_rgb(np.zeros((0, K), np.uint8), q)


def test_quality_report_side_by_side_and_json(fitted, tmp_path):
    pca, lloyd, held = fitted
    path = str(tmp_path / "artifacts" / "quality.json")
    report = write_quality_report(path, np.array_split(held, 3), pca, lloyd)
    with open(path) as f:
        assert json.load(f) == json.loads(json.dumps(report))
    assert report["n_frames"] == len(held) and report["n_components"] == K
    assert report["bytes_per_frame"] == {"before": D * 4, "after": K, "ratio": D * 4 / K}
    lm, um = report["methods"]["lloyd"], report["methods"]["uniform"]
    assert lm["mse"] < um["mse"] and lm["snr_db"] > um["snr_db"]
    assert report["lloyd_mse_over_uniform"] == pytest.approx(lm["mse"] / um["mse"])
    assert len(lm["per_dimension"]["mse"]) == K == len(um["per_dimension"]["snr_db"])
    # Uniform clips at [-2, 2]: recount on the whitened values the writers see.
    y = whiten_frames(held, pca)
    assert um["clipped_fraction"] == pytest.approx(np.mean(np.abs(y) > 2))
    assert um["clip_range"] == [-2.0, 2.0]
    want_mse = np.mean((lloyd.decode(lloyd.encode(y)) - y) ** 2)
    assert lm["mse"] == pytest.approx(want_mse, rel=1e-5)
    # The quantized reconstruction can only add error to the PCA truncation.
    assert lm["raw_relative_mse"] >= report["pca_only_raw_relative_mse"] > 0


def test_quality_accumulators_merge_like_one_pass(fitted):
    pca, lloyd, held = fitted
    combiner = QualityCombiner(pca, {"lloyd": lloyd, "uniform": Quantizer.uniform()})
    accs = [combiner.add_input(combiner.create_accumulator(), part)
            for part in np.array_split(held, 4)]
    merged = combiner.extract_output(
        combiner.merge_accumulators([combiner.create_accumulator()] + accs))
    one = quality_report(held, pca, lloyd)
    assert merged["methods"]["lloyd"]["mse"] == pytest.approx(one["methods"]["lloyd"]["mse"])
    assert merged["methods"]["uniform"]["clipped_fraction"] == pytest.approx(
        one["methods"]["uniform"]["clipped_fraction"])
    with pytest.raises(ValueError, match="no held-out frames"):
        quality_report([], pca, lloyd)


def test_a_uniform_build_reports_uniform_once(fitted):
    pca, _, held = fitted
    report = quality_report(held, pca, Quantizer.uniform())
    assert list(report["methods"]) == ["uniform"] and "lloyd_mse_over_uniform" not in report


def _float16_like(rng):
    """float32 arrays around float16's edges: every finite float16, each one
    float32 step away, tiny values and values near 65504."""
    h = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    exact = h[np.isfinite(h)].astype(np.float32)
    up = np.nextafter(exact, np.float32(np.inf))
    down = np.nextafter(exact, np.float32(-np.inf))
    tiny = np.array([2.0 ** -25, 3 * 2.0 ** -25, 2.0 ** -30, 1e-45, -1e-45, 2.0 ** -14 - 2.0 ** -24,
                     65504.0, 65505.0, 65519.99, 65520.0, 65536.0, 1e30], np.float32)
    noisy = (rng.standard_normal(50_000) * 10.0 ** rng.integers(-9, 5, 50_000)).astype(np.float32)
    return exact, np.concatenate([up, down, tiny, noisy, -noisy])


def test_float16_values_is_the_cache_rounding_bit_for_bit(rng):
    from yt8m.compression.codec import float16_values, is_float16_valued, round_like_cache
    exact, others = _float16_like(rng)
    assert is_float16_valued(exact) and float16_values(exact) is exact
    with np.errstate(over="ignore"):
        want = others.astype(np.float16).astype(np.float32)
    got = float16_values(others)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    # Element by element: valued exactly when the cache would store the value unchanged.
    sample = np.concatenate([exact[::257], others[::97]])
    with np.errstate(over="ignore"):
        keeps = [bool(np.isfinite(np.float16(v)) and np.float32(np.float16(v)).view(np.uint32)
                      == v.view(np.uint32)) for v in sample]
    assert [is_float16_valued(sample[i:i + 1]) for i in range(len(sample))] == keeps
    assert sum(keeps) > 200 and not all(keeps)
    f64 = others.astype(np.float64)
    assert np.array_equal(float16_values(f64), round_like_cache(f64).astype(np.float32))
