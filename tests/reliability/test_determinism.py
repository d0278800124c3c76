"""Determinism: two builds of the same inputs on CPU give the same dataset.

The second build of the shared hostile corpus (good, kept and failing videos,
bad rows) goes into a fresh OUT with its own cache, so every video is decoded
and extracted again. Guarantee: identical vocabulary, splits, exclusions and
failures; the same records in each split (byte for byte); PCA, quantizer and
quality report equal to float tolerance.
"""
from __future__ import annotations

import json

import numpy as np

from tests.reliability.conftest import (assert_same_dataset, build_in_process,
                                        cache_entries, read_info)


def test_two_builds_give_the_same_dataset(hostile, hostile_build, tmp_path):
    assert hostile_build.rc == 0, hostile_build.stderr
    out = tmp_path / "again"
    rc, err = build_in_process(hostile, out)
    assert rc == 0, err
    a, b = read_info(hostile_build.out), read_info(out)
    assert b["cache"]["hits"] == 0           # really extracted twice
    assert a["splits"] == b["splits"] and a["accounting"] == b["accounting"]
    assert a["failure_reasons"] == b["failure_reasons"]
    assert_same_dataset(hostile_build.out, out)
    qa = json.loads((hostile_build.out / "artifacts" / "quality.json").read_text())
    qb = json.loads((out / "artifacts" / "quality.json").read_text())
    _close(qa, qb, "quality.json")
    # The raw features behind them agree too (float16 cache entries).
    ea, eb = cache_entries(hostile_build.out), cache_entries(out)
    assert sorted(ea) == sorted(eb)
    for vid in ea:
        with np.load(ea[vid][0]) as x, np.load(eb[vid][0]) as y:
            np.testing.assert_allclose(x["features"].astype(np.float32),
                                       y["features"].astype(np.float32), rtol=1e-3, atol=1e-3)
            np.testing.assert_array_equal(x["frame_times"], y["frame_times"])


def _close(x, y, where):
    if isinstance(x, dict):
        assert sorted(x) == sorted(y), where
        for k in x:
            _close(x[k], y[k], f"{where}.{k}")
    elif isinstance(x, list):
        assert len(x) == len(y), where
        for i, (p, q) in enumerate(zip(x, y)):
            _close(p, q, f"{where}[{i}]")
    elif isinstance(x, float) and isinstance(y, (int, float)):
        assert np.isclose(x, y, rtol=1e-6, atol=1e-9), (where, x, y)
    else:
        assert x == y, (where, x, y)
