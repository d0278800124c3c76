"""pipeline.fit: the train-split fits do not depend on the order videos arrive in."""
from __future__ import annotations

import pickle

import apache_beam as beam
import numpy as np
import pytest

from yt8m.pipeline.fit import OrderedCombine
from yt8m.pipeline.runner import pipeline_options


def _fit(items, kind, tmp_path, name):
    path = tmp_path / f"{name}.pkl"

    def save(result):
        path.write_bytes(pickle.dumps(result))

    with beam.Pipeline(options=pipeline_options([])) as p:
        _ = (p | beam.Create(items, reshuffle=True) | OrderedCombine(kind, buckets=3)
             | beam.Map(save))
    return pickle.loads(path.read_bytes())


def test_ordered_combine_is_bitwise_independent_of_input_order(tmp_path):
    from yt8m.compression.pca import MomentsCombiner
    rng = np.random.default_rng(0)
    items = [(f"v{i:02d}", rng.normal(size=(int(rng.integers(1, 6)), 16)).astype(np.float32))
             for i in range(20)]
    a = _fit(items, "moments", tmp_path, "a")
    b = _fit(items[::-1], "moments", tmp_path, "b")
    assert a.count == b.count == sum(len(x) for _, x in items)
    assert a.mean.tobytes() == b.mean.tobytes() and a.scatter.tobytes() == b.scatter.tobytes()
    # ... and equal, to float tolerance, to compression's own single-process fit.
    c = MomentsCombiner()
    acc = c.create_accumulator()
    for _, x in items:
        acc = c.add_input(acc, x)
    ref = c.extract_output(acc)
    np.testing.assert_allclose(a.scatter, ref.scatter, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(a.mean, ref.mean, rtol=1e-12, atol=1e-12)


def test_ordered_combine_validates_arguments():
    with pytest.raises(ValueError, match="unknown combiner kind"):
        OrderedCombine("median")
    with pytest.raises(ValueError, match="buckets must be a positive integer"):
        OrderedCombine("moments", buckets=0)


def test_bucket_accumulators_ship_their_frames_not_a_full_scatter():
    # A bucket with fewer frames than a chunk must not ship a (D, D) float64
    # scatter (34 MB at D = 2048): 16 of them, copied on the way to the merge,
    # made the build's peak memory grow with the number of videos.
    from yt8m.pipeline.fit import _accumulate_bucket
    rng = np.random.default_rng(1)
    items = [(f"v{i}", rng.normal(size=(5, 2048)).astype(np.float32)) for i in range(4)]
    _, acc = _accumulate_bucket((0, items), "moments")
    shipped = len(pickle.dumps(acc))
    assert shipped < 20 * 2048 * 8 + 65536, shipped      # the 20 frames, not 2048 x 2048
    assert acc.pending_rows == 20


def test_too_few_train_frames_is_nothing_to_fit_not_an_error():
    from yt8m.compression.pca import MomentsCombiner
    from yt8m.pipeline.fit import pca_from_moments, quantizer_from_histogram, whiten
    c = MomentsCombiner()
    for n in (0, 1):
        acc = c.create_accumulator()
        if n:
            acc = c.add_input(acc, np.ones((1, 8), np.float32))
        assert pca_from_moments(c.extract_output(acc), 4) is None
    assert quantizer_from_histogram(None, "lloyd", None) is None
    assert quantizer_from_histogram(None, "uniform", None) is None
    assert list(whiten(("v", np.ones((2, 8), np.float32)), None)) == []
    # Two frames are enough: a (rank-deficient) PCA is fit.
    acc = c.add_input(c.create_accumulator(), np.arange(16, dtype=np.float32).reshape(2, 8))
    pca = pca_from_moments(c.extract_output(acc), 4)
    assert pca is not None and pca.n_components == 4
    assert len(list(whiten(("v", np.ones((3, 8), np.float32)), pca))[0][1]) == 3
