"""The GPU benchmark: one prepared script, bounded in time.

    python -m benchmarks --gpu [--max-seconds 420] [--results PATH] [--quick]
    python -m benchmarks --gpu --dry-run [--results PATH]   # the same logic on CPU, tiny

Measures, on one GPU, in this order (each step is skipped, and says so, when
the time left does not cover its estimate, so the whole run stays under
``--max-seconds`` plus one step's overrun):

1. ``gpu_model_{float32,float16,bfloat16}_b{64,128,256,512}``: model-alone
   frames/s of Keras Inception-v3 (random weights) per precision and batch
   size, each over float32 at the same batch (float32's over float32 at the
   smallest batch).
2. ``precision_fidelity_{float16,bfloat16,float32_rebatched}_gpu``: the
   precision rule's figure on the GPU (``benchmarks/fidelity.py``): the
   ``extractor.precision.VALIDATED`` entry for GPUs must agree with it.
3. ``gpu_decode_nvdec_vs_cpu``: sampled frames/s of ``sample_frames`` with
   ``decode_device="cuda"`` (NVDEC through PyAV's hwaccel) over the CPU
   decoder on the same 1080p H.264 file; recorded as not measured, with the
   reason, when the decoder has no ``decode_device`` parameter, falls back to
   the CPU (``SampledFrames.stats.device``) or fails.
4. ``extract_frames_per_s_gpu``: end-to-end ``ExtractFeatures`` frames/s over
   the smaller of the decoder's sampled frames/s and the model's frames/s in
   the same setting (precision ``auto``, batch 64); target >= 0.85. Its
   ``bound_by`` says which of the two limits a GPU worker (the README's cost
   model reads this figure).

Figures are merged into ``benchmarks/results.json`` (other modules' figures
are kept; this module's earlier ones are replaced), written atomically.
Without a GPU the script stops at once with exit status 2 and says what to
do; ``--dry-run`` runs every step on CPU with a tiny Keras model, tiny batches
and tiny videos (figures then go to ``--results`` only if given).

The benchmark videos are written under ``benchmarks/_work`` on first use
(about a minute on 16 cores); carry that folder to skip it.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Optional

import numpy as np

MODULE = "extract_gpu"
DEFAULT_MAX_SECONDS = 420.0
E2E_TARGET = 0.85
WEIGHTS = "random"



class NoGPU(RuntimeError):
    """No GPU visible to TensorFlow."""


class Deadline:
    """Time left of the run's budget, counted from ``start`` (default: when it is made).

    Counted from the run, not from this module's import: a process that imported
    the module long before (a test session, the harness) still gets its budget."""

    def __init__(self, seconds: float, start: Optional[float] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.seconds, self.clock = float(seconds), clock
        self.start = clock() if start is None else start

    def left(self) -> float:
        return self.seconds - (self.clock() - self.start)

    def fits(self, estimate_s: float) -> bool:
        return self.left() >= estimate_s


def settings(dry_run: bool, quick: bool) -> dict:
    """What each step measures. Dry run: tiny everything (any machine)."""
    if dry_run:
        return {"batch_sizes": (2, 4), "precisions": ("float32", "float16", "bfloat16"),
                "min_iters": 1, "time_per_config_s": 0.2, "build_s": 5, "config_s": 3,
                "fidelity": {"n_components": 8, "n_fit": 24, "n_heldout": 8, "batch": 4,
                             "rebatch": 2, "video_seconds": 3.0},
                "fidelity_s": 40, "decode_video": ("tiny", 3.0), "decode_s": 20,
                "e2e_videos": 2, "e2e_batch": 4, "e2e_s": 40}
    return {"batch_sizes": (64, 128) if quick else (64, 128, 256, 512),
            "precisions": ("float32", "float16", "bfloat16"),
            "min_iters": 3, "time_per_config_s": 1.0 if quick else 2.0, "build_s": 25,
            "config_s": 10,
            "fidelity": ({"n_components": 256, "n_fit": 384, "n_heldout": 64, "batch": 64,
                          "rebatch": 16, "video_seconds": 20.0} if quick else
                         {"n_components": 1024, "n_fit": 1280, "n_heldout": 256, "batch": 256,
                          "rebatch": 64, "video_seconds": 20.0}),
            "fidelity_s": 60 if quick else 120, "decode_video": ("h264_1080p", 20.0),
            "decode_s": 60, "e2e_videos": 4, "e2e_batch": 64, "e2e_s": 60}


# --------------------------------------------------------------------------- bookkeeping
class Run:
    """Collects figures; runs steps within the deadline; records skips and errors."""

    def __init__(self, deadline: Deadline, mode: str, log=print):
        self.deadline, self.mode, self.log = deadline, mode, log
        self.figures: list[dict] = []
        self.skipped: list[str] = []
        self.errors: list[str] = []

    def add(self, fig: dict) -> None:
        fig.setdefault("mode", self.mode)
        self.figures.append(fig)

    def not_measured(self, name: str, why: str, unit: str = "", target: str = "info") -> None:
        self.add({"name": name, "value": None, "unit": unit, "reference": f"not measured: {why}",
                  "reference_value": None, "ratio": None, "target": target, "met": None})

    def step(self, label: str, estimate_s: float, names: list[str], fn: Callable[[], None]
             ) -> bool:
        """Run ``fn`` if ``estimate_s`` fits in the time left, else record ``names`` as
        skipped. An exception is recorded (figures ``names`` not measured, with it)."""
        left = self.deadline.left()
        if left < estimate_s:
            why = (f"skipped by the time budget: step '{label}' needs ~{estimate_s:.0f} s, "
                   f"{max(left, 0):.0f} s left of {self.deadline.seconds:.0f} s")
            self.skipped.append(why)
            self.log(f"[gpu] {why}")
            for n in names:
                self.not_measured(n, why)
            return False
        t0 = time.monotonic()
        self.log(f"[gpu] {label} (~{estimate_s:.0f} s, {left:.0f} s left) ...")
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - one failed step must not hide the others
            traceback.print_exc()
            why = f"step '{label}' raised {type(e).__name__}: {e}"
            self.errors.append(why)
            have = {f["name"] for f in self.figures}
            for n in names:
                if n not in have:
                    self.not_measured(n, why)
            return False
        self.log(f"[gpu] {label}: {time.monotonic() - t0:.1f} s")
        return True


# --------------------------------------------------------------------------- the machine
def gpu_names() -> list[str]:
    import tensorflow as tf
    return [d.name for d in tf.config.list_physical_devices("GPU")]


def require_gpu() -> list[str]:
    import tensorflow as tf
    names = gpu_names()
    if names:
        return names
    if not tf.test.is_built_with_cuda():
        hint = ("this TensorFlow build has no CUDA support: install tensorflow[and-cuda] "
                "(the CUDA libraries as pip packages)")
    else:
        hint = ("TensorFlow was built with CUDA but finds no GPU: check nvidia-smi, the "
                "driver, and CUDA_VISIBLE_DEVICES")
    raise NoGPU(f"no GPU visible to TensorFlow (tf.config.list_physical_devices('GPU') is "
                f"empty); {hint}. Run this on a GPU machine, or pass --dry-run to check the "
                f"script on CPU with a tiny model.")


def tiny_weights(directory: str) -> str:
    """A tiny Keras model with Inception's conv -> batch norm -> ReLU blocks and a
    2048-d average pool, saved as .keras (the dry run's stand-in for Inception-v3)."""
    import keras
    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 5, strides=4, use_bias=False)(inp)
    x = keras.layers.BatchNormalization(scale=False)(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.Conv2D(2048, 3, strides=4, activation="relu")(x)
    model = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(x))
    path = os.path.join(directory, "tiny_feature_model.keras")
    model.save(path)
    return path


# --------------------------------------------------------------------------- steps
def model_speeds(run: Run, weights: str, cfg: dict, speeds: dict) -> None:
    """Step 1, per precision: build once, then each batch size within the deadline."""
    from yt8m.extractor.weights import load_feature_model
    sizes = cfg["batch_sizes"]
    rng = np.random.default_rng(0)
    for precision in cfg["precisions"]:
        names = [f"gpu_model_{precision}_b{bs}" for bs in sizes]
        holder: dict = {}

        def build():
            holder["model"] = load_feature_model(weights, precision=precision,
                                                 max_chunk=max(sizes))
        if not run.step(f"build {precision}", cfg["build_s"], names, build):
            continue
        model = holder["model"]
        for bs in sizes:
            def measure(bs=bs):
                x = rng.integers(0, 256, (bs, 299, 299, 3), dtype=np.uint8)
                model.predict(x)  # trace and autotune for this shape
                n, t0 = 0, time.perf_counter()
                while n < cfg["min_iters"] or time.perf_counter() - t0 < cfg[
                        "time_per_config_s"]:
                    model.predict(x)
                    n += 1
                speeds[(precision, bs)] = bs * n / (time.perf_counter() - t0)
            run.step(f"{precision} batch {bs}", cfg["config_s"],
                     [f"gpu_model_{precision}_b{bs}"], measure)
    base_bs = sizes[0]
    order = {p: i for i, p in enumerate(cfg["precisions"])}
    for (precision, bs), fps in sorted(speeds.items(), key=lambda kv: (order[kv[0][0]],
                                                                        kv[0][1])):
        ref_key = ("float32", bs) if precision != "float32" else ("float32", base_bs)
        ref = speeds.get(ref_key)
        run.add({"name": f"gpu_model_{precision}_b{bs}", "value": fps, "unit": "frames/s",
                 "reference": (f"float32 at batch {ref_key[1]}, same run" if ref else
                               f"float32 at batch {ref_key[1]} not measured"),
                 "reference_value": ref, "ratio": fps / ref if ref else None,
                 "target": "info", "met": None, "precision": precision, "batch_size": bs})


def fidelity_step(run: Run, weights: str, cfg: dict, device: str, out: dict) -> None:
    from benchmarks import fidelity
    fc = dict(cfg["fidelity"])
    seconds = fc.pop("video_seconds")
    fit = fidelity.frames_of("fit", fc["n_fit"], seconds)
    held = fidelity.frames_of("heldout", fc["n_heldout"], seconds)
    res = fidelity.precision_fidelity(
        weights, n_components=fc["n_components"], fit_frames=fit, heldout_frames=held,
        precisions=("float16", "bfloat16"), batch=fc["batch"],
        max_chunk=max(cfg["batch_sizes"]), rebatch=fc["rebatch"])
    out.update(res)
    for p in res["by_precision"]:
        run.add(fidelity.fidelity_figure(p, res, device))


def decode_video(kind: str, seconds: float) -> str:
    if kind == "tiny":
        from yt8m.extractor import synth
        from benchmarks.decode_bench import WORK
        WORK.mkdir(parents=True, exist_ok=True)
        path = WORK / f"gpu_dry_run_{seconds:g}s.mp4"
        if not path.exists():
            tmp = path.with_name(f"tmp-{os.getpid()}-{path.name}")
            synth.write_video(tmp, synth.make_content("checker"), width=160, height=120,
                              fps=10, duration_s=seconds)
            os.replace(tmp, path)
        return str(path)
    from benchmarks.decode_bench import bench_video
    return bench_video(kind, seconds)


def has_decode_device() -> bool:
    from yt8m.extractor.decode import sample_frames
    return "decode_device" in inspect.signature(sample_frames).parameters


def decode_step(run: Run, cfg: dict, dry_run: bool, out: dict) -> None:
    """Step 3: CPU decode, then NVDEC when the decoder offers it."""
    from yt8m.extractor.decode import sample_frames
    path = decode_video(*cfg["decode_video"])
    out["path"] = path
    sample_frames(path)  # warm the file cache
    t0 = time.perf_counter()
    n = len(sample_frames(path))
    out["cpu"] = n / (time.perf_counter() - t0)
    name = "gpu_decode_nvdec_vs_cpu"
    if dry_run:
        run.not_measured(name, f"dry run (no GPU); CPU decode {out['cpu']:.1f} sampled "
                               f"frames/s", "sampled frames/s")
        return
    if not has_decode_device():
        run.not_measured(name, "extractor.decode.sample_frames has no decode_device "
                               f"parameter in this checkout; CPU decode {out['cpu']:.1f} "
                               f"sampled frames/s", "sampled frames/s")
        return
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the decoder's one fallback warning: read below
            first = sample_frames(path, decode_device="cuda")  # open the device, untimed
        used = getattr(getattr(first, "stats", None), "device", "cuda")
        if used != "cuda":
            # The decoder fell back to the CPU (no device, or it would not open the file).
            note = getattr(first.stats, "device_note", None) or "no reason given"
            run.not_measured(name, f"decode_device='cuda' decoded on {used}: {note}; CPU "
                                   f"decode {out['cpu']:.1f} sampled frames/s",
                             "sampled frames/s")
            return
        t0 = time.perf_counter()
        m = len(sample_frames(path, decode_device="cuda"))
        nvdec = m / (time.perf_counter() - t0)
    except Exception as e:  # noqa: BLE001 - NVDEC may be missing on a machine
        run.not_measured(name, f"sample_frames(decode_device='cuda') raised "
                               f"{type(e).__name__}: {e}", "sampled frames/s")
        return
    out["nvdec"] = nvdec
    run.add({"name": name, "value": nvdec, "unit": "sampled frames/s",
             "reference": f"CPU decoder, same file ({Path(path).name}, {n} samples)",
             "reference_value": out["cpu"], "ratio": nvdec / out["cpu"], "target": "info",
             "met": None})


def e2e_step(run: Run, weights: str, cfg: dict, speeds: dict, decode: dict) -> None:
    """Step 4: ExtractFeatures end to end over the smaller of decode and model rates."""
    from benchmarks import extract_bench
    from yt8m.extractor.handler import InceptionModelHandler
    from yt8m.extractor.transforms import ExtractFeatures
    from yt8m.extractor.weights import load_feature_model
    kind, seconds = cfg["decode_video"]
    path = decode.get("path") or decode_video(kind, seconds)
    paths = [path] * cfg["e2e_videos"]  # distinct ids, the same file
    bs = cfg["e2e_batch"]
    handler = InceptionModelHandler(weights, batch_size=bs, precision="auto")
    precision = handler.precision
    model_fps = speeds.get((precision, bs))
    if model_fps is None:  # not measured in step 1: measure it here on the same shape
        model = load_feature_model(weights, precision=precision, max_chunk=bs)
        x = np.random.default_rng(1).integers(0, 256, (bs, 299, 299, 3), dtype=np.uint8)
        model.predict(x)
        t0 = time.perf_counter()
        for _ in range(3):
            model.predict(x)
        model_fps = 3 * bs / (time.perf_counter() - t0)
    use_nvdec = "nvdec" in decode and "decode_device" in inspect.signature(
        ExtractFeatures.__init__).parameters
    decode_fps = decode["nvdec"] if use_nvdec else decode.get("cpu")
    if decode_fps is None:
        from yt8m.extractor.decode import sample_frames
        t0 = time.perf_counter()
        decode_fps = len(sample_frames(path)) / (time.perf_counter() - t0)
    if use_nvdec:
        import apache_beam as beam

        from yt8m.pipeline.runner import pipeline_options
        videos = [{"video_id": f"v{i}", "uri": p} for i, p in enumerate(paths)]
        t0 = time.perf_counter()
        p = beam.Pipeline(options=pipeline_options([]))
        res = p | beam.Create(videos) | ExtractFeatures(model_handler=handler,
                                                        decode_device="cuda")
        _ = res.features | beam.Map(lambda kv: None)
        result = p.run()
        result.wait_until_finish()
        sec = time.perf_counter() - t0
        frames = sum(c.committed for c in result.metrics().query()["counters"]
                     if c.key.metric.name == "extract_frames_done")
    else:
        sec, frames = extract_bench.end_to_end(paths, bs, handler)
    e2e = frames / sec
    limit = min(decode_fps, model_fps)
    bound = "decoding" if decode_fps <= model_fps else "the model"
    run.add({"name": "extract_frames_per_s_gpu", "value": e2e, "unit": "frames/s",
             "reference": (f"min(decode {decode_fps:.1f} sampled frames/s "
                           f"({'NVDEC' if use_nvdec else 'CPU decoder, one thread'}), model "
                           f"{model_fps:.1f} frames/s ({precision}, batch {bs})); "
                           f"{frames} frames of {len(paths)} videos"),
             "reference_value": limit, "ratio": e2e / limit, "target": f">= {E2E_TARGET}",
             "met": e2e / limit >= E2E_TARGET,
             "bound_by": f"{bound} ({'NVDEC' if use_nvdec else 'CPU decode'}, "
                         f"{precision} model on the GPU)"})


# --------------------------------------------------------------------------- results
def merge_results(path: Path, figures: list[dict], meta: dict) -> dict:
    """This module's figures into results.json: others' kept, ours replaced; atomic."""
    from benchmarks.harness import normalise
    old: dict = {}
    if path.exists():
        old = json.loads(path.read_text())
    kept = [f for f in old.get("figures", []) if f.get("module") != MODULE]
    old["figures"] = kept + [normalise(dict(f), MODULE) for f in figures]
    old.setdefault("date", time.strftime("%Y-%m-%d"))
    old["gpu"] = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(old, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return old


def run_all(*, dry_run: bool = False, quick: bool = False,
            max_seconds: float = DEFAULT_MAX_SECONDS, weights: Optional[str] = None,
            deadline: Optional[Deadline] = None, log=print) -> tuple[Run, dict]:
    """Every step within the deadline (by default ``max_seconds`` from this call);
    returns the Run and the run's metadata."""
    deadline = deadline or Deadline(max_seconds)
    devices = ["cpu (dry run)"] if dry_run else require_gpu()
    cfg = settings(dry_run, quick)
    mode = "dry-run" if dry_run else ("gpu-quick" if quick else "gpu")
    run = Run(deadline, mode, log)
    tmpdir = tempfile.mkdtemp(prefix="yt8m-gpu-bench-")
    if weights is None:
        weights = tiny_weights(tmpdir) if dry_run else WEIGHTS
    speeds: dict = {}
    decode: dict = {}
    fid: dict = {}
    model_speeds(run, weights, cfg, speeds)
    run.step("precision fidelity", cfg["fidelity_s"],
             [f"precision_fidelity_{p}_gpu" for p in ("float16", "bfloat16")],
             lambda: fidelity_step(run, weights, cfg, "gpu" if not dry_run else "dry_run",
                                   fid))
    run.step("decode: CPU vs NVDEC", cfg["decode_s"], ["gpu_decode_nvdec_vs_cpu"],
             lambda: decode_step(run, cfg, dry_run, decode))
    run.step("end to end", cfg["e2e_s"], ["extract_frames_per_s_gpu"],
             lambda: e2e_step(run, weights, cfg, speeds, decode))
    from benchmarks.harness import machine_info, versions
    meta = {"date": time.strftime("%Y-%m-%d"), "mode": mode, "devices": devices,
            "weights": weights if not dry_run else "tiny dry-run model",
            "elapsed_s": time.monotonic() - deadline.start, "budget_s": deadline.seconds,
            "skipped": run.skipped, "errors": run.errors, "machine": machine_info(),
            "versions": versions(), "decode_device_available": has_decode_device()}
    return run, meta


def main(argv=None) -> int:
    from benchmarks.harness import RESULTS, table
    p = argparse.ArgumentParser(prog="python -m benchmarks --gpu",
                                description=__doc__.split("\n")[0])
    p.add_argument("--dry-run", action="store_true",
                   help="run every step on CPU with a tiny model (checks the script)")
    p.add_argument("--quick", action="store_true", help="batch sizes 64 and 128 only, "
                   "smaller fidelity set")
    p.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                   help="time budget of the whole run; steps that do not fit are skipped")
    p.add_argument("--results", default=None,
                   help=f"results.json to merge the figures into (default {RESULTS}; "
                        f"a dry run writes only when this is given)")
    p.add_argument("--weights", default=None,
                   help="weights spec (default: random Inception-v3; dry run: a tiny model)")
    args = p.parse_args(argv)
    try:
        run, meta = run_all(dry_run=args.dry_run, quick=args.quick,
                            max_seconds=args.max_seconds, weights=args.weights)
    except NoGPU as e:
        print(f"python -m benchmarks --gpu: {e}", file=sys.stderr)
        return 2
    print(table(run.figures))
    for line in run.skipped + run.errors:
        print(f"  ! {line}")
    target = args.results or (None if args.dry_run else str(RESULTS))
    if target:
        merge_results(Path(target), run.figures, meta)
        print(f"{len(run.figures)} figures merged into {target} in {meta['elapsed_s']:.0f} s")
    else:
        print(f"{len(run.figures)} figures in {meta['elapsed_s']:.0f} s (dry run: not written;"
              f" pass --results PATH to write them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
