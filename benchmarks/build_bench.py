"""Whole-build throughput: ``build`` on 1, 10 and 50 generated videos (random weights).

For each size, one ``run_pipeline.py build`` runs in a subprocess (its own peak RSS
comes from ``os.wait4``) on a fresh corpus of ``pipeline.demo.make_corpus``; the
larger builds are then rerun with every video cached. Measured in the same run:

* wall time, frames/s (frames written / wall time), peak memory;
* stage fractions of the cold build: ``inference`` (frames / the bare network's
  frames/s, measured here on the same batch size), ``extract_other`` (decode,
  batching and the per-video regroup: cold minus warm minus inference),
  ``select_fit_encode_write`` (the warm rerun, which extracts nothing);
* ``build_50_videos_frames_per_s``: the 50-video build's frames/s against the
  bare network on the same machine in the same run (ratio; the build cannot beat
  its model, so the ratio says how much the rest of the pipeline costs).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(__file__).resolve().parent / "_work" / "build"
BATCH = 16
VOCAB = ["--min_views", "0", "--min_duration_s", "0", "--min_videos_per_entity", "1"]


def _model_frames_per_s(n_frames: int = 64) -> float:
    """The bare network (random weights) on ``n_frames`` frames, batch ``BATCH``, warmed up."""
    import numpy as np

    from yt8m.extractor.weights import load_feature_model
    model = load_feature_model("random")
    x = np.random.default_rng(0).integers(0, 255, (BATCH, 299, 299, 3), dtype=np.uint8)
    model.predict(x)  # trace and warm up
    t0 = time.perf_counter()
    done = 0
    while done < n_frames:
        model.predict(x)
        done += BATCH
    return done / (time.perf_counter() - t0)


def _build(corpus, out: Path, extra=()) -> dict:
    """One build in a subprocess; wall time, peak RSS (MB) and dataset_info.json."""
    argv = [sys.executable, str(ROOT / "run_pipeline.py"), "build", "--videos", corpus.manifest,
            "--entities", corpus.entities, "--ratings", corpus.ratings, "--output_dir",
            str(out), "--weights", "random", "--batch_size", str(BATCH), "--no_progress",
            *VOCAB, *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=str(ROOT), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode("utf-8", "replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"build of {corpus.manifest} failed:\n{err[-3000:]}")
    info = json.loads((out / "dataset_info.json").read_text())
    return {"wall_s": wall, "peak_mb": usage.ru_maxrss / 1024.0, "info": info}


def _figure(name, value, unit, reference, reference_value, ratio, target, met, **extra):
    d = {"name": name, "value": value, "unit": unit, "reference": reference,
         "reference_value": reference_value, "ratio": ratio, "target": target, "met": met}
    d.update(extra)
    return d


def run(quick: bool = False) -> list[dict]:
    from yt8m.pipeline.demo import make_corpus
    duration = 4.0 if quick else 6.0
    sizes = (1, 10, 50)
    WORK.mkdir(parents=True, exist_ok=True)
    model_fps = _model_frames_per_s(32 if quick else 64)
    figures = []
    fifty = None
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        for n in sizes:
            corpus = make_corpus(os.path.join(tmp, f"c{n}"), n_videos=n, duration_s=duration,
                                 width=320, height=240, fps=25.0, n_broken=0, n_excluded=0)
            out = Path(tmp) / f"out{n}"
            cold = _build(corpus, out)
            frames = sum(s["frames"] for s in cold["info"]["splits"].values())
            fps = frames / cold["wall_s"]
            fig = {"videos": n, "frames": frames, "wall_s": round(cold["wall_s"], 2),
                   "frames_per_s": round(fps, 3), "peak_mb": round(cold["peak_mb"], 1)}
            if n > 1:
                warm = _build(corpus, out)
                assert warm["info"]["cache"]["extracted"] == 0, warm["info"]["cache"]
                infer = frames / model_fps
                rest = warm["wall_s"]
                fig["stage_fraction"] = {
                    "inference": round(min(1.0, infer / cold["wall_s"]), 3),
                    "extract_other": round(max(0.0, cold["wall_s"] - rest - infer)
                                           / cold["wall_s"], 3),
                    "select_fit_encode_write": round(min(1.0, rest / cold["wall_s"]), 3)}
                fig["warm_rerun_s"] = round(rest, 2)
            figures.append(_figure(
                f"build_{n}_videos_wall_s", round(cold["wall_s"], 2), "s",
                f"bare network time for the same {frames} frames", round(frames / model_fps, 2),
                round((frames / model_fps) / cold["wall_s"], 3),
                "informational", None, detail=fig))
            if n == 50:
                fifty = (fps, fig)
    fps, fig = fifty
    figures.append(_figure(
        "build_50_videos_frames_per_s", round(fps, 3), "frames/s",
        f"bare Inception-v3 (random weights, batch {BATCH}) frames/s, same run",
        round(model_fps, 3), round(fps / model_fps, 3), ">= 0.5",
        fps / model_fps >= 0.5, detail=fig,
        note="short videos: fixed per-build costs (Beam start, model load, fits) weigh more "
             "than on real 2-6 minute videos"))
    return figures


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    print(json.dumps(run(quick), indent=2))
