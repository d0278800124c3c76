"""Collects every benchmark's figures, writes results.json and the README table.

Each ``benchmarks/<room>_bench.py`` module exposes ``run(quick: bool) ->
list[dict]``; each dict is one figure measured as a ratio against a reference
measured in the same run (shared machines are noisy; ratios cancel the noise):

    {"name", "value", "unit", "reference", "reference_value", "ratio",
     "target", "met"}

``target`` is a human-readable condition on ``ratio`` (for example ">= 0.85");
``met`` is True/False, or None when the figure could not be measured (its
``reference`` then says why).
"""
from __future__ import annotations

import importlib
import json
import os
import platform
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Iterable, Optional

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results.json"
README = ROOT / "README.md"
TABLE_START = "<!-- perf-table:start -->"
TABLE_END = "<!-- perf-table:end -->"
COST_START = "<!-- cost-model:start -->"
COST_END = "<!-- cost-model:end -->"

# Run order: cheap first, so --quick reports something early.
MODULES = ["compression_bench", "vocab_bench", "trainer_bench", "decode_bench",
           "extract_bench", "audio_bench", "build_bench", "reliability_bench",
           "explorer_bench", "scale_bench"]

# The names every run must report (issue: benchmarks harness).
REQUIRED = [
    "extract_vs_limit", "extract_vs_frame_loop", "decode_vs_ffmpeg_h264_720p",
    "decode_vs_ffmpeg_h264_1080p", "decode_vs_ffmpeg_hevc", "decode_vs_ffmpeg_vp9",
    "pca_fit_vs_blas", "encode_vs_matmul", "quantizer_mse_vs_uniform", "vocab_rows_per_s_1m",
    "vocab_peak_mb_1m", "trainer_logistic_vs_sklearn_hit1", "trainer_moe_vs_logistic_map",
    "build_50_videos_frames_per_s", "extract_peak_mb_4k_10min",
]
FIELDS = ("name", "value", "unit", "reference", "reference_value", "ratio", "target", "met")

# Paper scale for the cost model.
PAPER_VIDEOS = 8_264_650
PAPER_FRAMES = 1.9e9
GPU_WORKER_VCPUS = 8   # e.g. a g2-standard-8 (1 x L4) Dataflow worker


def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()}
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
        info["memory_gb"] = round(kb / 2**20, 1)
    except OSError:
        pass
    return info


def versions() -> dict:
    out = {}
    for name in ("apache_beam", "tensorflow", "keras", "av", "numpy", "sklearn", "scipy"):
        try:
            out[name] = importlib.import_module(name).__version__
        except Exception:  # noqa: BLE001 - a missing library is reported, not fatal
            out[name] = None
    return out


def normalise(fig: dict, module: str) -> dict:
    missing = [k for k in ("name", "value", "ratio") if k not in fig]
    if missing:
        raise ValueError(f"benchmark {module} returned a figure without {missing}: {fig}")
    out = {k: fig.get(k) for k in FIELDS}
    for k, v in fig.items():
        if k not in out:
            out[k] = v
    out["module"] = module
    return out


def run_modules(modules: Iterable[str], quick: bool, log=print) -> list[dict]:
    figures: list[dict] = []
    for mod in modules:
        t0 = time.perf_counter()
        log(f"[benchmarks] {mod} ({'quick' if quick else 'full'}) ...")
        m = importlib.import_module(f"benchmarks.{mod}")
        try:
            figs = m.run(quick=quick)
        except Exception as e:  # noqa: BLE001 - one broken benchmark must not hide the rest
            traceback.print_exc()
            figs = [{"name": f"{mod}_error", "value": None, "unit": "", "ratio": None,
                     "reference": f"benchmark raised {type(e).__name__}: {e}",
                     "reference_value": None, "target": "runs", "met": False}]
        for f in figs:
            f.setdefault("seconds", None)
            f.setdefault("mode", "quick" if quick else "full")
            figures.append(normalise(f, mod))
        log(f"[benchmarks] {mod}: {len(figs)} figures in {time.perf_counter() - t0:.0f} s")
    return figures


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.3f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def table(figures: list[dict]) -> str:
    lines = ["| figure | value | unit | reference | ratio | target | met |",
             "|---|---|---|---|---|---|---|"]
    for f in figures:
        met = f.get("met")
        met_s = "n/a" if met is None else ("**yes**" if met else "**NO**")
        ref = str(f.get("reference") or "").replace("|", "/")
        lines.append(f"| `{f['name']}` | {_fmt(f.get('value'))} | {f.get('unit') or ''} | "
                     f"{ref} | {_fmt(f.get('ratio'))} | {f.get('target') or ''} | {met_s} |")
    return "\n".join(lines)


def cost_model(figures: list[dict]) -> Optional[dict]:
    """Worker-hours to rebuild the paper's 1.9 B frames, from measured frames/s."""
    by = {f["name"]: f for f in figures}
    out = {"frames": PAPER_FRAMES, "videos": PAPER_VIDEOS}
    cpu = by.get("extract_frames_per_s_cpu") or by.get("build_50_videos_frames_per_s")
    if cpu and cpu.get("value"):
        fps = float(cpu["value"])
        out["cpu_worker"] = {"frames_per_s": fps, "source": cpu["name"],
                             "worker_hours": PAPER_FRAMES / fps / 3600.0,
                             "bound_by": "Inception-v3 inference (model time per frame "
                                         "exceeds decode time per frame on CPU)"}
    gpu = by.get("extract_frames_per_s_gpu")
    if gpu and gpu.get("value"):
        fps = float(gpu["value"])
        out["gpu_worker"] = {"frames_per_s": fps, "source": gpu["name"],
                             "worker_hours": PAPER_FRAMES / fps / 3600.0,
                             "bound_by": gpu.get("bound_by", "decoding on the worker's CPUs")}
    dec = by.get("decode_frames_per_s_cpu")
    if dec and dec.get("value") and "gpu_worker" not in out:
        # No GPU measured: estimate a GPU worker as bound by decoding on its vCPUs
        # (one decode thread per vCPU, measured per-thread rate); the network on
        # the GPU is far faster (Keras' published Inception-v3 figure: ~4,600
        # images/s on an A100), so it does not bound the worker.
        per_thread = float(dec["value"])
        fps = per_thread * GPU_WORKER_VCPUS
        out["gpu_worker"] = {"frames_per_s": fps, "source": f"{dec['name']} x "
                             f"{GPU_WORKER_VCPUS} vCPUs (estimate, GPU not measured)",
                             "worker_hours": PAPER_FRAMES / fps / 3600.0,
                             "bound_by": "decoding on the worker's vCPUs (720p H.264, "
                                         "measured per thread here); the GPU idles most of "
                                         "the time"}
    post = by.get("post_extraction_s_per_video")
    if post and post.get("value"):
        # Fit + encode + write, measured per video of few frames at the largest
        # simulated size (benchmarks/scale_bench.py); scaled by frames per video
        # (the work is per frame) to the paper's 230 frames per video.
        per_frame = float(post["value"]) / float(post.get("frames_per_video") or 5)
        frames_per_video = PAPER_FRAMES / PAPER_VIDEOS
        out["post_extraction"] = {
            "s_per_video": per_frame * frames_per_video, "source": post["name"],
            "worker_hours": per_frame * PAPER_FRAMES / 3600.0,
            "memory": (f"per-worker peak {by['scale_peak_mb_ratio']['value']}x from the "
                       f"smallest to the largest size (scale_peak_mb_ratio, "
                       f"{by['scale_peak_mb_ratio'].get('note', '')})"
                       if "scale_peak_mb_ratio" in by else "peak memory not measured"),
            "note": "extrapolated linearly from the scale simulation; one 2-core process"}
    return out if len(out) > 2 else None


def replace_between(text: str, start: str, end: str, body: str) -> str:
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"README has no {start} ... {end} block")
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text)


def update_readme(results: dict, readme: Path = README) -> None:
    text = readme.read_text(encoding="utf-8")
    stamp = (f"_Measured {results['date']} on {results['machine'].get('cpus')} CPUs "
             f"({results['machine'].get('processor')}), mode `{results['mode']}`, "
             f"{results['elapsed_s']:.0f} s; from benchmarks/results.json._\n\n")
    text = replace_between(text, TABLE_START, TABLE_END, stamp + table(results["figures"]))
    cm = results.get("cost_model")
    if cm:
        lines = []
        for key, label in (("cpu_worker", "CPU-only worker (this machine's 2 cores)"),
                           ("gpu_worker", f"GPU worker ({GPU_WORKER_VCPUS} vCPUs + 1 GPU)")):
            if key in cm:
                w = cm[key]
                lines.append(f"- {label}: {w['frames_per_s']:.1f} frames/s "
                             f"(`{w['source']}`) -> {w['worker_hours']:,.0f} worker-hours for "
                             f"{PAPER_FRAMES:.2g} frames; bound by {w['bound_by']}.")
        if "post_extraction" in cm:
            w = cm["post_extraction"]
            lines.append(f"- After extraction (fit, encode, write; `{w['source']}`, "
                         f"{w['note']}): {w['s_per_video']:.2f} s per video of "
                         f"{PAPER_FRAMES / PAPER_VIDEOS:.0f} frames -> "
                         f"{w['worker_hours']:,.0f} worker-hours for {PAPER_VIDEOS:,} videos; "
                         f"{w['memory']}.")
        if lines:
            text = replace_between(text, COST_START, COST_END, "\n".join(lines))
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, readme)


def _modes(figures: list[dict]) -> str:
    """'quick', 'full', or e.g. 'quick; full for vocab_bench' after a --merge."""
    by_module: dict[str, str] = {}
    for f in figures:
        by_module.setdefault(f.get("module"), f.get("mode") or "quick")
    modes = set(by_module.values())
    if len(modes) <= 1:
        return modes.pop() if modes else "quick"
    full = sorted(m for m, mode in by_module.items() if mode == "full")
    return f"quick; full for {', '.join(full)}"


def main(argv: Optional[list[str]] = None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="finish in under 10 minutes on 2 cores")
    p.add_argument("--only", nargs="*", choices=MODULES,
                   help="run only these modules (e.g. compression_bench)")
    p.add_argument("--gpu", action="store_true",
                   help="the GPU script (benchmarks/extract_gpu.py): model frames/s for batch "
                        "sizes 64-512 in float32/float16/bfloat16, precision fidelity, NVDEC "
                        "vs CPU decode, end to end; merges its figures into results.json. "
                        "Its own flags follow (--dry-run, --max-seconds, --quick, --results, "
                        "--weights; see python -m benchmarks --gpu --help)")
    p.add_argument("--results", default=str(RESULTS), help="where to write results.json")
    p.add_argument("--no_readme", action="store_true", help="do not rewrite the README table")
    p.add_argument("--merge", action="store_true",
                   help="keep the figures of modules not run from the existing results.json "
                        "(with --only: refresh some modules' figures)")
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--gpu" in argv:
        # One prepared script with its own flags and time budget.
        from benchmarks import extract_gpu
        return extract_gpu.main([a for a in argv if a != "--gpu"])
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    modules = args.only or MODULES
    figures = run_modules(modules, args.quick)
    elapsed = time.perf_counter() - t0
    if args.merge and Path(args.results).exists():
        old = json.loads(Path(args.results).read_text())
        kept = [f for f in old.get("figures", []) if f.get("module") not in modules]
        figures = sorted(kept + figures, key=lambda f: (
            MODULES.index(f["module"]) if f.get("module") in MODULES else len(MODULES)))
        elapsed += float(old.get("elapsed_s") or 0.0)
    results = {"date": time.strftime("%Y-%m-%d"), "mode": _modes(figures),
               "elapsed_s": elapsed, "machine": machine_info(), "versions": versions(),
               "figures": figures}
    names = {f["name"] for f in figures}
    results["missing"] = [n for n in REQUIRED if n not in names]
    results["cost_model"] = cost_model(figures)
    Path(args.results).write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(table(figures))
    if results["missing"]:
        print(f"\nmissing figures: {', '.join(results['missing'])}")
    print(f"\n{len(figures)} figures in {elapsed:.0f} s -> {args.results}")
    if not args.no_readme and (args.merge or not args.only):
        update_readme(results)
        print(f"README table updated ({README})")
    return 0
