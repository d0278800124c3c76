"""Scale simulation: the build's post-extraction stages on synthetic features, at growing sizes.

What grows with the dataset after extraction is the fit (PCA moments and the
codebook's histogram over every train frame), the quality report's sample, the
encoding and the writing of records, failures and counts. This module runs
exactly those stages of ``BuildDataset`` (``pipeline.fit.FitCompression``,
``pipeline.encode.EncodeVideos``, ``pipeline.artifacts.WriteArtifacts``,
``pipeline.write.WriteDataset``) on the local runner, fed by a source that
makes each video's float16-rounded (F, 2048) features from its id (no
decoding, no network: what a build reads from a warm cache). Each size runs in
a child process; its peak RSS (``os.wait4``'s ``ru_maxrss``) is the memory of
the one process that runs every stage, i.e. of a worker. The child checks that
counts.json accounts for every input video.

Figures: ``scale_peak_mb_<n>``, ``scale_s_per_video_<n>`` per size, and the
flatness ratios between the largest and the smallest size (targets: peak
memory <= 1.5x, time per video <= 1.25x), plus ``post_extraction_s_per_video``
(the largest size's time per video, read by the README's cost model).
Quick: 200 / 600 / 1,800 videos of 4 frames; full: 1,000 / 5,000 / 20,000.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUICK_SIZES = (200, 600, 1800)
FULL_SIZES = (1000, 5000, 20000)
FRAMES = 4
N_CLASSES = 50
D = 2048


def _split_of(video_id: str) -> str:
    h = int.from_bytes(hashlib.sha256(video_id.encode()).digest()[:4], "big") % 10
    return "train" if h < 7 else ("validate" if h < 9 else "test")


MODEL = {"name": "inception_v3", "source": "random", "spec": "random", "path": None,
         "sha256": None, "random": True, "seed": 0}


def _label_of(video_id: str) -> int:
    h = int.from_bytes(hashlib.sha256(("label:" + video_id).encode()).digest()[:4], "big")
    # Zipf-like: a few frequent classes, a long tail.
    return int((h / 2 ** 32) ** 3 * N_CLASSES)


def _video_id(i: int) -> str:
    return f"syn{i:08d}"


def write_cache(n: int, frames: int, cache_dir: str, tmp_dir: str) -> None:
    """The synthetic cache: ``n`` entries of float16 ``(frames, 2048)`` features, made from
    each video's index (a fixed low-rank structure plus noise, so the PCA has signal)."""
    import numpy as np

    from yt8m import fs
    from yt8m.pipeline import cache as cache_lib

    model_fp = cache_lib.model_fingerprint(MODEL)
    basis = np.random.default_rng(0).normal(size=(64, D)).astype(np.float32)
    for i in range(n):
        vid = _video_id(i)
        rng = np.random.default_rng(i + 1)
        coeff = rng.normal(size=(frames, 64)).astype(np.float32)
        x = coeff @ basis * 0.05 + rng.normal(scale=0.01, size=(frames, D))
        path = cache_lib.entry_path(cache_dir, vid, model_fp, f"{i:024x}")
        blob = cache_lib.serialize_entry(vid, x, np.arange(frames, dtype=np.float64),
                                         {"uri": f"synthetic://{vid}", "decode_warnings": []})
        fs.atomic_write(path, blob, tmp_dir)


def _child(n: int, frames: int, out: str, cache_dir: str) -> None:
    """Runs the post-extraction stages of a build from the cache on ``n`` videos (resplit's
    path: ``CachedOrExtract`` without extraction); prints a JSON line."""
    sys.path.insert(0, str(ROOT))
    import apache_beam as beam

    from yt8m import fs
    from yt8m.pipeline import io as pio
    from yt8m.pipeline.artifacts import WriteArtifacts
    from yt8m.pipeline.encode import EncodeVideos
    from yt8m.pipeline.features import CachedOrExtract
    from yt8m.pipeline.fit import FitCompression
    from yt8m.pipeline.runner import pipeline_options
    from yt8m.pipeline.write import WriteDataset
    from yt8m.records import Video

    def video(i: int) -> Video:
        vid = _video_id(i)
        return Video(vid, f"synthetic://{vid}", split=_split_of(vid), labels=(_label_of(vid),))

    staging = fs.join(out, ".tmp", "build")
    t0 = time.perf_counter()
    with beam.Pipeline(options=pipeline_options([])) as p:
        videos = (p | "Ids" >> beam.Create(list(range(n)))
                  | "Reshuffle" >> beam.Reshuffle()
                  | "Videos" >> beam.Map(video))
        looked = videos | "Features" >> CachedOrExtract(
            None, cache_dir=cache_dir, tmp_dir=fs.join(out, ".tmp", "cache"), model_info=MODEL,
            source_name="the synthetic cache")
        features = looked["features"]
        fitted = features | "Fit" >> FitCompression(1024, "lloyd")
        encoded = features | "Encode" >> EncodeVideos(fitted["pca"], fitted["quantizer"])
        _ = features | "Artifacts" >> WriteArtifacts(staging, fitted["pca"], fitted["quantizer"])
        failures = ((looked["failures"], encoded["failures"])
                    | "AllFailures" >> beam.Flatten())
        _ = ({"records": encoded["records"], "written": encoded["written"],
              "failures": failures}
             | "Write" >> WriteDataset(staging, pio.dataset_prefixes()))
    elapsed = time.perf_counter() - t0
    counts = json.loads(Path(staging, "counts.json").read_text())
    print(json.dumps({"n": n, "elapsed_s": elapsed, "counts": counts}))


def _counted(counts: dict) -> int:
    """Videos counts.json accounts for: written plus failed."""
    return int(counts.get("written", 0)) + int(counts.get("failed", 0))


def _run_size(n: int, frames: int) -> dict:
    """One size: its synthetic cache written here, the build in a child process (its own
    peak RSS from ``os.wait4``)."""
    out = tempfile.mkdtemp(prefix=f"scale_{n}_")
    try:
        cache_dir = os.path.join(out, "cache")
        t0 = time.perf_counter()
        write_cache(n, frames, cache_dir, os.path.join(out, "cache_tmp"))
        cache_s = time.perf_counter() - t0
        with open(os.path.join(out, "child.out"), "w+") as so, \
                open(os.path.join(out, "child.err"), "w+") as se:
            proc = subprocess.Popen([sys.executable, "-m", "benchmarks.scale_bench", "--child",
                                     str(n), str(frames), os.path.join(out, "build"), cache_dir],
                                    cwd=str(ROOT), stdout=so, stderr=se)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            so.seek(0), se.seek(0)
            stdout, stderr = so.read(), se.read()
        if proc.returncode != 0:
            raise RuntimeError(f"scale_bench child ({n} videos) failed:\n{stderr[-3000:]}")
        res = json.loads([ln for ln in stdout.splitlines() if ln.startswith("{")][-1])
        res["peak_mb"] = usage.ru_maxrss / 1024.0   # Linux: kilobytes
        res["cache_write_s"] = cache_s
        return res
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _fig(name, value, unit, reference, reference_value, ratio, target, met, **extra):
    return dict(name=name, value=value, unit=unit, reference=reference,
                reference_value=reference_value, ratio=ratio, target=target, met=met, **extra)


def run(quick: bool = False) -> list[dict]:
    sizes = QUICK_SIZES if quick else FULL_SIZES
    results = []
    for n in sizes:
        res = _run_size(n, FRAMES)
        counted = _counted(res["counts"])
        if counted != n:
            raise RuntimeError(f"scale_bench: counts.json accounts for {counted} of {n} videos "
                               f"({res['counts']})")
        results.append(res)
    figs = []
    for r in results:
        n = r["n"]
        figs.append(_fig(f"scale_peak_mb_{n}", round(r["peak_mb"], 1), "MB", None, None, None,
                         None, None, note=f"{n} videos x {FRAMES} frames, one worker process"))
        figs.append(_fig(f"scale_s_per_video_{n}", r["elapsed_s"] / n, "s/video", None, None,
                         None, None, None, note="fit + encode + artifacts + write"))
    lo, hi = results[0], results[-1]
    mem_ratio = hi["peak_mb"] / lo["peak_mb"]
    t_ratio = (hi["elapsed_s"] / hi["n"]) / (lo["elapsed_s"] / lo["n"])
    figs.append(_fig("scale_peak_mb_ratio", round(mem_ratio, 3), "x",
                     f"peak RSS at {lo['n']} videos", round(lo["peak_mb"], 1), round(mem_ratio, 3),
                     "<= 1.5", bool(mem_ratio <= 1.5),
                     note=f"{hi['n']} vs {lo['n']} videos ({hi['n'] // lo['n']}x the data)"))
    figs.append(_fig("scale_s_per_video_ratio", round(t_ratio, 3), "x",
                     f"s/video at {lo['n']} videos", lo["elapsed_s"] / lo["n"], round(t_ratio, 3),
                     "<= 1.25", bool(t_ratio <= 1.25),
                     note="time per video at the largest size over the smallest"))
    figs.append(_fig("post_extraction_s_per_video", hi["elapsed_s"] / hi["n"], "s/video",
                     None, None, None, None, None,
                     note=f"fit+encode+write per video at {hi['n']} videos of {FRAMES} frames, "
                          "one 2-core process; the cost model scales it by frames per video",
                     frames_per_video=FRAMES))
    return figs


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--child":
        _child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    else:
        print(json.dumps(run(quick="--full" not in sys.argv), indent=2))
