"""The GPU benchmark script's CPU-side logic: fail fast, time budget, dry run, merging."""
from __future__ import annotations

import json

import pytest

from benchmarks import extract_gpu as G
from benchmarks import harness


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(G, "gpu_names", lambda: [])


def test_without_a_gpu_it_stops_at_once_and_says_what_to_do(no_gpu, capsys, tmp_path):
    results = tmp_path / "results.json"
    assert G.main(["--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert "no GPU visible" in err and "--dry-run" in err
    assert not results.exists()
    # The harness's --gpu path is the same script.
    assert harness.main(["--gpu", "--results", str(results)]) == 2


def test_deadline_counts_from_its_start():
    now = [100.0]
    d = G.Deadline(10, start=95.0, clock=lambda: now[0])
    assert d.left() == 5.0 and d.fits(5.0) and not d.fits(5.1)
    now[0] = 120.0
    assert d.left() < 0 and not d.fits(0)


def test_steps_that_do_not_fit_are_skipped_and_reported():
    run, meta = G.run_all(dry_run=True, deadline=G.Deadline(0.0), log=lambda *a: None)
    assert run.figures, "every skipped figure is still reported"
    for f in run.figures:
        assert f["value"] is None and f["met"] is None
        assert "skipped by the time budget" in f["reference"], f
    names = {f["name"] for f in run.figures}
    assert {"gpu_model_float32_b2", "gpu_model_bfloat16_b4", "gpu_decode_nvdec_vs_cpu",
            "extract_frames_per_s_gpu"} <= names
    assert meta["skipped"] and not meta["errors"]


def test_a_failing_step_is_recorded_not_fatal():
    run = G.Run(G.Deadline(60), "dry-run", log=lambda *a: None)

    def boom():
        raise RuntimeError("CUDA_ERROR_OUT_OF_MEMORY")
    assert run.step("oom step", 1, ["fig_a"], boom) is False
    assert run.figures[0]["name"] == "fig_a" and run.figures[0]["value"] is None
    assert "CUDA_ERROR_OUT_OF_MEMORY" in run.figures[0]["reference"]
    assert run.errors and "oom step" in run.errors[0]


def test_nvdec_is_not_measured_when_the_decoder_lacks_it_or_fails(monkeypatch, tmp_path):
    from yt8m.extractor import decode
    cfg = G.settings(dry_run=True, quick=False)
    real = decode.sample_frames

    def without(path, fps=1.0, max_seconds=360.0, size=299, **kw):
        return real(path, fps, max_seconds, size)
    monkeypatch.setattr(decode, "sample_frames", without)
    run, out = G.Run(G.Deadline(60), "test", log=lambda *a: None), {}
    G.decode_step(run, cfg, dry_run=False, out=out)
    (fig,) = run.figures
    assert fig["value"] is None and "no decode_device parameter" in fig["reference"]
    assert out["cpu"] > 0

    def failing(path, fps=1.0, max_seconds=360.0, size=299, *, decode_device="cpu", **kw):
        if decode_device == "cuda":
            raise RuntimeError("no NVDEC on this machine")
        return real(path, fps, max_seconds, size)
    monkeypatch.setattr(decode, "sample_frames", failing)
    run = G.Run(G.Deadline(60), "test", log=lambda *a: None)
    G.decode_step(run, cfg, dry_run=False, out={})
    assert "no NVDEC on this machine" in run.figures[0]["reference"]


def test_nvdec_falling_back_to_the_cpu_is_not_reported_as_nvdec():
    """On a machine without a CUDA device the decoder decodes on the CPU: say so."""
    if not G.has_decode_device():
        pytest.skip("this checkout's decoder has no decode_device parameter")
    cfg = G.settings(dry_run=True, quick=False)
    run = G.Run(G.Deadline(60), "test", log=lambda *a: None)
    G.decode_step(run, cfg, dry_run=False, out={})
    (fig,) = run.figures
    if fig["value"] is not None:
        pytest.skip("this machine decodes with NVDEC")
    assert "decoded on cpu" in fig["reference"], fig["reference"]


def test_merge_keeps_other_modules_and_replaces_its_own(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"mode": "quick", "figures": [
        {"name": "pca_fit_vs_blas", "module": "compression_bench", "value": 1, "ratio": 1},
        {"name": "gpu_model_float32_b64", "module": G.MODULE, "value": 1, "ratio": 1}]}))
    new = [{"name": "gpu_model_float32_b64", "value": 2000.0, "ratio": 1.0, "unit": "frames/s",
            "reference": "r", "reference_value": 2000.0, "target": "info", "met": None}]
    G.merge_results(path, new, {"devices": ["/physical_device:GPU:0"]})
    got = json.loads(path.read_text())
    assert got["mode"] == "quick" and got["gpu"]["devices"] == ["/physical_device:GPU:0"]
    by = {(f["module"], f["name"]): f for f in got["figures"]}
    assert by[("compression_bench", "pca_fit_vs_blas")]["value"] == 1
    assert by[(G.MODULE, "gpu_model_float32_b64")]["value"] == 2000.0
    assert len(got["figures"]) == 2


def test_dry_run_measures_every_step_on_cpu(tmp_path):
    """The whole script on CPU with a tiny model: every figure measured or explained."""
    path = tmp_path / "results.json"
    assert G.main(["--dry-run", "--results", str(path), "--max-seconds", "600"]) == 0
    got = json.loads(path.read_text())
    by = {f["name"]: f for f in got["figures"]}
    for precision in ("float32", "float16", "bfloat16"):
        for bs in (2, 4):
            f = by[f"gpu_model_{precision}_b{bs}"]
            assert f["value"] > 0 and f["ratio"] > 0 and f["module"] == G.MODULE
    assert by["gpu_model_float32_b2"]["ratio"] == 1.0
    for name in ("precision_fidelity_float16_dry_run", "precision_fidelity_bfloat16_dry_run"):
        assert by[name]["value"] > 0 and 0 <= by[name]["byte_diff"] <= 1
        assert by[name]["met"] == (by[name]["ratio"] <= 0.1)
    assert by["gpu_decode_nvdec_vs_cpu"]["value"] is None
    assert "dry run" in by["gpu_decode_nvdec_vs_cpu"]["reference"]
    e2e = by["extract_frames_per_s_gpu"]
    assert e2e["value"] > 0 and e2e["reference_value"] > 0 and "bound_by" in e2e
    assert got["gpu"]["mode"] == "dry-run" and not got["gpu"]["errors"]
    assert got["gpu"]["elapsed_s"] < 600
