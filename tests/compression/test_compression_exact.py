"""Exact, order-independent sums and the PCA moments built on them: any order,
partition or pickling of the same inputs gives the same bits (np.array_equal)."""
import pickle
from fractions import Fraction

import numpy as np
import pytest

from yt8m.compression import PCAWhitening
from yt8m.compression.exact import ExactSum, on_grid
from yt8m.compression.exact_moments import (FrameStatsCombiner, ScatterCombiner, bucket_count,
                                            bucket_of, exact_moments)

F16_MAX = 65504.0
F16_TINY = 2.0 ** -24           # the smallest float16 subnormal


def _orders(n, seed=0, count=4):
    rng = np.random.default_rng(seed)
    yield list(range(n))
    yield list(range(n))[::-1]
    for _ in range(count):
        yield list(rng.permutation(n))


def _sum_in_pieces(terms, order, pieces, make):
    """Adds ``terms`` in ``order`` into ``pieces`` accumulators, pickles them
    (as Beam ships them) and merges them in reverse."""
    accs = []
    for chunk in np.array_split(np.array(order, dtype=int), pieces):
        acc = make()
        for i in chunk:
            acc.add(terms[i])
        accs.append(pickle.loads(pickle.dumps(acc)))
    out = make()
    for acc in accs[::-1]:
        out.merge(acc)
    return out


# ---- ExactSum -------------------------------------------------------------------------
def _f16_products(rng, n):
    vals = np.array([0.0, F16_TINY, -F16_TINY, 3 * F16_TINY, F16_MAX, -F16_MAX, 1.0, -0.5,
                     2.0 ** -14, 1000.5], np.float16)
    a = rng.choice(vals, size=(n, 6)).astype(np.float64)
    b = rng.standard_normal((n, 6)).astype(np.float16).astype(np.float64)
    return list(a * b)                  # exact in float64, multiples of 2**-48


def _wide(rng, n):
    t = rng.standard_normal((n, 6)) * 10.0 ** rng.integers(-12, 16, (n, 6))
    return list(np.floor(t * 2.0 ** 48) / 2.0 ** 48)


def _cancelling(rng, n):
    big = 2.0 ** 70
    return [np.array([big, -big, F16_TINY ** 2, 1.0, -1.0, 0.0]) * (-1) ** i for i in range(n)]


TERM_SETS = {
    "float16 products with extremes": _f16_products,
    "magnitudes 1e-12 .. 1e16": _wide,
    "cancelling 2**70 terms around tiny ones": _cancelling,
    "zeros": lambda rng, n: [np.zeros(6)] * n,
}


@pytest.mark.parametrize("name", list(TERM_SETS))
@pytest.mark.parametrize("pieces", [1, 3, 8])
def test_exact_sum_is_the_exact_total_in_any_order_and_partition(name, pieces):
    rng = np.random.default_rng(7)
    terms = TERM_SETS[name](rng, 120)
    make = lambda: ExactSum(6, -96, parts=5, bits=42)  # noqa: E731  (2**-96: squares of 2**-48)
    ref = _sum_in_pieces(terms, range(len(terms)), 1, make)
    want = [sum(Fraction(float(t[j])) for t in terms) for j in range(6)]
    assert [ref.fractions(j) for j in range(6)] == want
    for order in _orders(len(terms)):
        got = _sum_in_pieces(terms, order, pieces, make)
        assert got == ref
        assert np.array_equal(got.value(), ref.value())
    # The float64 value is the exact total rounded (to nearest, within one ulp).
    np.testing.assert_allclose(ref.value(), [float(w) for w in want], rtol=2.3e-16, atol=0)


def test_exact_sum_add_at_bins_exactly_and_independently_of_chunking():
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 5, 4000)
    vals = np.floor(rng.standard_normal(4000) * 2.0 ** 40) * 2.0 ** -20
    a = ExactSum(5, -20, parts=3, bits=32).add_at(idx, vals)
    b = ExactSum(5, -20, parts=3, bits=32)
    for part in np.array_split(rng.permutation(4000), 7):
        b.add_at(idx[part], vals[part])
    assert a == b
    for k in range(5):
        assert a.fractions(k) == sum(Fraction(float(v)) for v in vals[idx == k])


def test_terms_off_the_grid_round_down_the_same_way_in_any_order():
    terms = [np.array([0.1 * i, -0.3 * i]) for i in range(50)]
    assert not on_grid(terms[1], -8)
    sums = [_sum_in_pieces(terms, o, 3, lambda: ExactSum(2, -8, 2)).value() for o in _orders(50)]
    assert all(np.array_equal(s, sums[0]) for s in sums)
    np.testing.assert_allclose(sums[0], [0.1 * 1225, -0.3 * 1225], atol=50 * 2.0 ** -8)


@pytest.mark.parametrize("term,error,match", [
    (np.array([np.nan, 0.0]), ValueError, "NaN, Inf or beyond"),
    (np.array([np.inf, 0.0]), ValueError, "NaN, Inf or beyond"),
    (np.array([2.0 ** 70, 0.0]), ValueError, r"beyond the exact range"),
    (np.zeros(3), ValueError, "shape"),
])
def test_exact_sum_rejects_what_it_cannot_hold(term, error, match):
    acc = ExactSum(2, -8, parts=2, bits=32)    # terms below 2**56, totals below 2**76
    with pytest.raises(error, match=match):
        acc.add(term)


def test_exact_sum_overflow_and_grid_mismatch_are_errors():
    acc = ExactSum(1, 0, parts=1, bits=40)    # totals below 2**52
    acc.add([2.0 ** 39])
    with pytest.raises(OverflowError, match="beyond the exact range"):
        for _ in range(2 ** 13):
            acc.add([2.0 ** 39])
    with pytest.raises(ValueError, match="different grids"):
        ExactSum(2, 0, 2).merge(ExactSum(2, -1, 2))
    with pytest.raises(ValueError, match="parts"):
        ExactSum(2, 0, 0)


# ---- the PCA's exact moments -------------------------------------------------------------
D = 12


def _relu(rng, n, d=D):
    mix = np.random.default_rng(99).standard_normal((d, d)) / np.sqrt(d)
    return np.maximum(rng.standard_normal((n, d)) @ mix + 0.3, 0.0).astype(np.float32)


def _videos_relu(rng):
    return [(f"vid{i:03d}", _relu(rng, int(rng.integers(0, 40)))) for i in range(40)]


def _videos_extremes(rng):
    vals = np.array([0.0, F16_TINY, -F16_TINY, 2.0 ** -15, F16_MAX, -F16_MAX, -1.5, 3.0, 1e-9],
                    np.float32)     # 1e-9 rounds to float16 0, like the cache does
    return [(f"x{i}", rng.choice(vals, size=(int(rng.integers(1, 9)), D))) for i in range(30)]


def _videos_offset(rng):
    # Far from the origin: 60000 + a few float16 steps (32 apart).
    return [(f"o{i}", (60000.0 + 32.0 * rng.integers(-3, 4, (6, D))).astype(np.float32))
            for i in range(25)]


def _videos_single_frames(rng):
    return [(f"s{i:02d}", _relu(rng, 1)[0]) for i in range(60)]     # (D,) vectors


VIDEO_SETS = {"relu features": _videos_relu, "float16 extremes": _videos_extremes,
              "far from the origin": _videos_offset, "single frames": _videos_single_frames}
# (unit_rows, bucket_frames): one big unit; small units; buckets so small that
# most go video by video (the memory bound's fallback).
LAYOUTS = [(4096, 16384), (7, 60), (5, 8)]


def _as_cached(videos):
    return np.concatenate([np.atleast_2d(f).astype(np.float16).astype(np.float64)
                           for _, f in videos])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", list(VIDEO_SETS))
def test_moments_depend_only_on_the_set_of_videos(name, layout):
    videos = VIDEO_SETS[name](np.random.default_rng(5))
    ref, stats = exact_moments(videos, *layout)
    for order in _orders(len(videos), count=3):
        got, _ = exact_moments([videos[i] for i in order], *layout)
        assert got.count == ref.count
        assert np.array_equal(got.mean, ref.mean) and np.array_equal(got.scatter, ref.scatter)
    x = _as_cached(videos)
    assert ref.count == stats.count == len(x)
    np.testing.assert_allclose(ref.mean, x.mean(axis=0), rtol=1e-15, atol=0)
    np.testing.assert_allclose(ref.covariance(), np.cov(x.T), rtol=1e-9,
                               atol=1e-12 * np.abs(np.cov(x.T)).max())


def test_the_fitted_pca_is_bit_identical_for_any_order():
    videos = _videos_relu(np.random.default_rng(11))
    fits = []
    for order in _orders(len(videos), count=2):
        m, _ = exact_moments([videos[i] for i in order], 9, 50)
        fits.append(PCAWhitening.from_moments(m, 8, allow_rank_deficient=True))
    for f in fits[1:]:
        for a in ("mean", "eigenvecs", "eigenvals"):
            assert np.array_equal(getattr(f, a), getattr(fits[0], a))


def test_frame_sums_and_unit_scatters_of_float16_extremes_are_exact():
    videos = _videos_extremes(np.random.default_rng(2))
    fs = FrameStatsCombiner()
    acc = fs.create_accumulator()
    for vid, f in videos:
        fs.add_input(acc, f, name=vid)
    x = _as_cached(videos)
    for j in range(D):
        assert acc.sums.fractions(j) == sum(Fraction(float(v)) for v in x[:, j])
    stats = fs.extract_output(acc)
    # One frame per unit: a unit holds the float64 products (x_i - c_i)(x_j - c_j)
    # (x - c is exact in float64; its products round there), and the units are
    # summed exactly.
    # (Single-frame videos and bucket_frames=1: every video is its own unit.)
    frames = [(f"{vid}-{i}", row) for vid, f in videos for i, row in enumerate(f)]
    sc = ScatterCombiner(stats.shift, unit_rows=1, bucket_frames=1)
    sacc = sc.create_accumulator()
    sc.add_bucket(sacc, frames)
    assert sacc.units == len(x) and sacc.large_buckets == 1
    xc = x - stats.shift
    iu = np.triu_indices(D)
    for flat in (0, 5, len(iu[0]) // 2, len(iu[0]) - 1):
        i, j = iu[0][flat], iu[1][flat]
        assert sacc.sums.fractions(flat) == sum(Fraction(float(p)) for p in xc[:, i] * xc[:, j])
    # Bigger units: the syrk results stay on the 2**-48 grid the sums assume.
    for unit in ScatterCombiner(stats.shift, unit_rows=64).bucket_units(videos):
        assert on_grid(unit.packed, -48)


@pytest.mark.parametrize("bad,match", [
    (np.nan, "NaN/Inf after float16 rounding"),
    (np.inf, "NaN/Inf after float16 rounding"),
    (70000.0, r"beyond \+-65504"),
    (-1e6, r"beyond \+-65504"),
])
def test_bad_frames_name_the_video(bad, match):
    f = np.ones((3, D), np.float32)
    f[1, 4] = bad
    videos = [("good", np.ones((2, D), np.float32)), ("broken-video", f)]
    with pytest.raises(ValueError, match=rf"video 'broken-video'.*frame\(s\) \[1\].*{match}"):
        exact_moments(videos)
    with pytest.raises(ValueError, match="broken-video"):
        list(ScatterCombiner(np.zeros(D)).bucket_units(videos))


def test_empty_inputs_and_neutral_merges():
    m, stats = exact_moments([])
    assert m.count == 0 and stats.count == 0
    m, stats = exact_moments([("a", np.zeros((0, D), np.float32))])
    assert m.count == 0 and stats.videos == 1
    fs, sc = FrameStatsCombiner(), ScatterCombiner()
    assert fs.merge_accumulators([]).frames == 0
    assert sc.merge_accumulators([sc.create_accumulator()] * 3).sums is None
    with pytest.raises(ValueError, match="needs the shift"):
        list(sc.bucket_units([("a", np.ones((2, D)))]))


def test_repeated_ids_and_mismatched_sizes():
    rng = np.random.default_rng(4)
    twice = [("same", _relu(rng, 5)), ("same", _relu(rng, 7)), ("other", _relu(rng, 3))]
    a, _ = exact_moments(twice, 4, 100)
    b, _ = exact_moments(twice[::-1], 4, 100)
    assert np.array_equal(a.scatter, b.scatter)
    with pytest.raises(ValueError, match=r"'bad'.*13 dimensions"):
        exact_moments([("ok", _relu(rng, 2)), ("bad", np.ones((2, D + 1), np.float32))])
    with pytest.raises(TypeError, match="str or bytes"):
        bucket_of(17, 4)
    with pytest.raises(ValueError, match="float16 values"):
        ScatterCombiner(np.full(D, 0.1))


def test_bucket_sizes_follow_the_frame_count():
    assert bucket_count(0) == 1 and bucket_count(10, 100) == 1
    assert bucket_count(1000, 100) == 20
    counts = np.bincount([bucket_of(f"v{i}", 20) for i in range(20000)], minlength=20)
    assert counts.min() > 800 and counts.max() < 1200      # spread evenly
    assert bucket_of("v1", 20) == bucket_of("v1", 20) == bucket_of(b"v1", 20)


def test_combiners_and_accumulators_pickle():
    videos = _videos_relu(np.random.default_rng(8))[:10]
    _, stats = exact_moments(videos)
    sc = pickle.loads(pickle.dumps(ScatterCombiner(stats.shift, 5, 30)))
    acc = sc.create_accumulator()
    sc.add_bucket(acc, videos)
    acc2 = pickle.loads(pickle.dumps(sc.compact(acc)))
    assert acc2.sums == acc.sums and acc2.frames == acc.frames == stats.count
