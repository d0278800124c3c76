"""A bounded load test on 127.0.0.1: 50 concurrent raters lose and duplicate nothing.

``serve`` runs in a child process (the real server: uvicorn, SQLite in WAL mode);
50 threads rate entity tasks over HTTP until 600 ratings are acknowledged or 180 s
pass. benchmarks/explorer_bench.py runs the same with 5,000 ratings for its figures.
"""
from __future__ import annotations

import pytest

from benchmarks import explorer_bench as B

pytestmark = pytest.mark.slow


def test_concurrent_raters_lose_and_duplicate_nothing(tmp_path):
    res = B.run_load(str(tmp_path), raters=50, ratings=600, time_limit_s=180)
    check = res["check"]
    assert not res["errors"], res["errors"][:5]
    assert check["acked"] >= 600 and not res["stopped_by_time"]
    assert check["stored"] == check["acked"]
    assert (check["lost"], check["duplicated"], check["unacknowledged_stored"]) == (0, 0, 0)
    assert check["max_ratings_per_entity"] <= 3
    assert len(res["latencies"]) >= check["acked"]


def test_the_load_test_only_targets_the_loopback_address():
    with pytest.raises(ValueError, match="loopback"):
        B.load("http://10.0.0.1:8080", ["t"], 1, 1)
    with pytest.raises(ValueError, match="loopback"):
        B.load("http://example.com:80", ["t"], 1, 1)
