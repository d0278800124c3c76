"""pipeline.fit: the train-split fits do not depend on the order videos arrive in."""
from __future__ import annotations

import pickle

import apache_beam as beam
import numpy as np
import pytest

from pipeline.fit import OrderedCombine
from pipeline.runner import pipeline_options


def _fit(items, kind, tmp_path, name):
    path = tmp_path / f"{name}.pkl"

    def save(result):
        path.write_bytes(pickle.dumps(result))

    with beam.Pipeline(options=pipeline_options([])) as p:
        _ = (p | beam.Create(items, reshuffle=True) | OrderedCombine(kind, buckets=3)
             | beam.Map(save))
    return pickle.loads(path.read_bytes())


def test_ordered_combine_is_bitwise_independent_of_input_order(tmp_path):
    from compression.pca import MomentsCombiner
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
