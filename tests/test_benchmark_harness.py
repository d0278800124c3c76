"""The benchmark harness: figure format, results.json, and the README table agreeing with it."""
from __future__ import annotations

import json
import sys
import types

import pytest

from benchmarks import harness


def _fig(name, ratio, met=True):
    return {"name": name, "value": ratio * 10, "unit": "frames/s", "reference": "ref",
            "reference_value": 10.0, "ratio": ratio, "target": ">= 1", "met": met}


def test_run_modules_collects_figures_and_survives_a_broken_benchmark(monkeypatch):
    good = types.ModuleType("benchmarks.fake_good_bench")
    good.run = lambda quick: [_fig("a", 1.5), _fig("b", 0.5, met=False)]
    bad = types.ModuleType("benchmarks.fake_bad_bench")

    def boom(quick):
        raise RuntimeError("no ffmpeg")
    bad.run = boom
    monkeypatch.setitem(sys.modules, "benchmarks.fake_good_bench", good)
    monkeypatch.setitem(sys.modules, "benchmarks.fake_bad_bench", bad)
    figs = harness.run_modules(["fake_good_bench", "fake_bad_bench"],
                               quick=True, log=lambda *_: None)
    assert [f["name"] for f in figs] == ["a", "b", "fake_bad_bench_error"]
    assert figs[2]["met"] is False and "no ffmpeg" in figs[2]["reference"]
    assert all(set(harness.FIELDS) <= set(f) for f in figs)


def test_a_figure_without_a_ratio_is_rejected():
    with pytest.raises(ValueError, match="ratio"):
        harness.normalise({"name": "x", "value": 1}, "m")


def test_table_says_plainly_whether_each_target_is_met():
    t = harness.table([_fig("fast", 2.0), _fig("slow", 0.5, met=False),
                       {**_fig("gpu", 1.0), "met": None}])
    rows = t.splitlines()[2:]
    assert "**yes**" in rows[0] and "**NO**" in rows[1] and "n/a" in rows[2]


def test_readme_update_replaces_only_the_marked_blocks(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{harness.TABLE_START}\nold\n{harness.TABLE_END}\nmiddle\n"
                      f"{harness.COST_START}\nold\n{harness.COST_END}\nend\n")
    results = {"date": "2026-01-01", "mode": "quick", "elapsed_s": 12.0,
               "machine": {"cpus": 2, "processor": "x86_64"},
               "figures": [_fig("build_50_videos_frames_per_s", 1.0)]}
    results["cost_model"] = harness.cost_model(results["figures"])
    harness.update_readme(results, readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and "middle" in text and text.endswith("end\n")
    assert "old" not in text
    assert "`build_50_videos_frames_per_s`" in text
    hours = harness.PAPER_FRAMES / 10.0 / 3600
    assert f"{hours:,.0f} worker-hours" in text


def test_committed_results_agree_with_the_readme_table():
    if not harness.RESULTS.exists():
        pytest.skip("benchmarks/results.json not written yet: run python -m benchmarks")
    results = json.loads(harness.RESULTS.read_text())
    readme = harness.README.read_text()
    block = readme.split(harness.TABLE_START)[1].split(harness.TABLE_END)[0]
    assert harness.table(results["figures"]) in block
    names = {f["name"] for f in results["figures"]}
    assert not [n for n in harness.REQUIRED if n not in names], "a required figure is missing"
