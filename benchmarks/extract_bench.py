"""Extraction speed and memory: decode -> resize -> Inception-v3, as the pipeline runs it.

Figures (``run(quick)``), all measured in one run on the same videos (720p
H.264 at 30 fps, the decode benchmark's cached files, 1 sampled frame/s):

* ``extract_vs_limit``: end-to-end frames/s of ``ExtractFeatures`` on the
  FnApiRunner (model already loaded, as on a warm worker) over the limit
  ``1 / (t_decode + t_model)``, where ``t_decode`` is the per-frame time of
  ``sample_frames`` alone (decode + scale to 299) and ``t_model`` the per-frame
  time of the network alone on the same frames in the same batches. Target
  >= 0.85. The decoder runs one video ahead in a thread, so the two overlap and
  the ratio can exceed 1.
* ``extract_vs_frame_loop``: end-to-end frames/s over a frame-at-a-time loop as
  the original YouTube-8M extractor ran it (every decoded frame converted to
  RGB at full size, the kept ones resized and fed to the network one per call).
  Target >= 3.
* ``extract_peak_mb_4k_10min``: peak RSS of a child process extracting a
  10-minute 3840x2160 video (360 frames through the network), over a 2048 MB
  budget. The video is generated cheaply (1 fps, x264 ultrafast) and cached in
  ``benchmarks/_work/``.
* ``extract_frames_per_s_cpu``: the end-to-end frames/s again, over the model
  alone (what a CPU worker sustains; the README's cost model uses it).
* ``extract_bfloat16_vs_float32_model``: model-alone frames/s in bfloat16 over
  float32 on the same frames and batches (interleaved repetitions, median
  ratio). Target >= 1.8 on a CPU with AMX/AVX512-BF16 (none elsewhere).
* ``extract_bfloat16_vs_float32_e2e``: the same ratio end to end
  (``ExtractFeatures`` on the same videos). Target >= 1.8 on such a CPU.
* ``precision_fidelity_{bfloat16,float16,float32_rebatched}_cpu``: the
  precision rule's figure (``extractor.precision.RULE``, see
  ``benchmarks/fidelity.py``): whitened feature MSE against float32 over the
  8-bit quantizer's own MSE, with the fraction of differing coded bytes.
  ``float32_rebatched`` (float32 at another batch size) is the noise floor.
* ``resize_swscale_vs_graph``: relative feature difference between frames
  scaled to 299 by swscale and the same frames resized by the 2015 graph's
  ``ResizeBilinear`` (through Inception-v3, several resolutions and aspects),
  with the pixel RMS and the synthetic graph's figure; no target.

The network uses seeded random weights (``random``): speed and memory do not
depend on the weight values, and nothing is downloaded. Fidelity does depend
on them: ``python -m benchmarks.extract_bench --fidelity --weights imagenet``
re-measures it with real weights.

``python -m benchmarks.extract_bench --gpu`` (or ``python -m benchmarks
--gpu``) runs the GPU script, ``benchmarks/extract_gpu.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WORK = Path(__file__).resolve().parent / "_work"
ROOT = Path(__file__).resolve().parent.parent
BATCH = 32
WEIGHTS = "random"
LIMIT_TARGET = 0.85
LOOP_TARGET = 3.0
PEAK_BUDGET_MB = 2048.0


# --------------------------------------------------------------------------- videos
def _videos(quick: bool) -> list[str]:
    from benchmarks.decode_bench import bench_video
    # Distinct lengths give distinct files (the decode benchmark caches by length).
    # Enough frames that the one partial (padded) batch of a run does not dominate:
    # real bundles hold thousands of frames. Quick: 3 batches; full: 6.
    lengths = (30, 32, 34) if quick else (60, 64, 68)
    return [bench_video("h264_720p", s) for s in lengths]


def video_4k_10min() -> str:
    """A 10-minute 3840x2160 H.264 video at 1 fps (cheap to write, as costly to decode
    per frame as any 4K file), cached under benchmarks/_work/."""
    from yt8m.extractor import synth
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "uhd_4k_600s_1fps.mp4"
    if not path.exists():
        tmp = path.with_name(f"tmp-{os.getpid()}-{path.name}")
        tex = synth.texture("checker", (230, 200, 60), (20, 30, 80), 12.0, 0.3)
        # A few distinct pictures, reused: drawing 600 4K frames would cost
        # minutes, and the decoder's cost does not depend on the picture.
        bases = [tex(i, float(i), 2160, 3840) for i in range(6)]

        def content(i, t, h, w):
            return synth.draw_timecode(bases[i % len(bases)].copy(), i, band=0.1)

        synth.write_video(tmp, content, width=3840, height=2160, fps=1, duration_s=600,
                          options={"preset": "ultrafast", "crf": "30"}, gop=30)
        os.replace(tmp, path)
    return str(path)


# --------------------------------------------------------------------------- timings
def _model():
    from yt8m.extractor.weights import load_feature_model
    model = load_feature_model(WEIGHTS)
    model.predict(np.zeros((BATCH, 299, 299, 3), np.uint8))  # trace + warm the kernels
    return model


def decode_alone(paths) -> tuple[float, list]:
    """Seconds of sample_frames over ``paths``, and the sampled frames."""
    from yt8m.extractor.decode import sample_frames
    start = time.perf_counter()
    samples = [sample_frames(p) for p in paths]
    return time.perf_counter() - start, samples


def model_alone(model, frames: np.ndarray, batch: int = BATCH) -> float:
    """Seconds of the network on ``frames`` in the batches the pipeline forms."""
    start = time.perf_counter()
    for i in range(0, len(frames), batch):
        model.predict(frames[i:i + batch])
    return time.perf_counter() - start


def end_to_end(paths, batch: int = BATCH, handler=None) -> tuple[float, int]:
    """Seconds and frames of ExtractFeatures over ``paths`` on the FnApiRunner
    (``handler``: a ready InceptionModelHandler, e.g. in another precision)."""
    import apache_beam as beam

    from yt8m import counters
    from yt8m.extractor.transforms import ExtractFeatures
    from yt8m.pipeline.runner import pipeline_options
    from yt8m.records import Video
    videos = [Video(f"v{i}", p) for i, p in enumerate(paths)]
    start = time.perf_counter()
    p = beam.Pipeline(options=pipeline_options([]))
    extract = (ExtractFeatures(WEIGHTS, batch_size=batch) if handler is None
               else ExtractFeatures(model_handler=handler))
    res = p | beam.Create(videos) | extract
    _ = res.features | beam.Map(lambda vf: None)
    result = p.run()
    result.wait_until_finish()
    seconds = time.perf_counter() - start
    frames = counters.read(result).get(counters.EXTRACT_FRAMES_DONE, 0)
    return seconds, int(frames)


def frame_loop(model, path: str, fps: float = 1.0, max_seconds: float = 360.0,
               max_frames: int | None = None) -> tuple[float, int]:
    """The original extractor's loop: decode every frame to full-size RGB, keep one per
    second by timestamp, resize it, run the network on that one frame."""
    import av
    import tensorflow as tf
    start = time.perf_counter()
    n = 0
    next_t = 0.0
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            rgb = frame.to_ndarray(format="rgb24")  # OpenCV converts every frame
            t = float(frame.time or 0.0)
            if t + 1e-9 < next_t:
                continue
            if t >= max_seconds or (max_frames is not None and n >= max_frames):
                break
            x = tf.image.resize(rgb[None], (299, 299)).numpy().astype(np.uint8)
            model.predict(x)
            n += 1
            next_t += 1.0 / fps
    return time.perf_counter() - start, n


def peak_rss_child(path: str, batch: int = BATCH) -> float:
    """Peak RSS (MB) of a fresh process extracting ``path`` end to end.

    The child reports its own ``ru_maxrss`` (kB on Linux): the high-water mark
    of everything it held, the network and TensorFlow included.
    """
    code = ("import resource; from benchmarks.extract_bench import end_to_end; "
            f"s, n = end_to_end([{path!r}], {batch}); "
            "print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                         capture_output=True, text=True)
    frames, peak_kb = (int(x) for x in out.stdout.strip().splitlines()[-1].split())
    if frames != 360:
        raise RuntimeError(f"the 4K run extracted {frames} frames, expected 360")
    return peak_kb / 1024.0


# --------------------------------------------------------------------------- precision
BF16_TARGET = 1.8


def precision_speeds(frames: np.ndarray, precisions=("float32", "bfloat16"),
                     reps: int = 3, batch: int = BATCH) -> dict:
    """Model-alone frames/s per precision on the same frames, repetitions interleaved
    (a shared machine's load hits every precision alike); the median per-repetition
    ratio of each precision over the first."""
    from yt8m.extractor.weights import load_feature_model
    models = {p: load_feature_model(WEIGHTS, precision=p) for p in precisions}
    for m in models.values():
        m.predict(frames[:batch])  # trace + warm
    rates: dict = {p: [] for p in precisions}
    for _ in range(reps):
        for p, m in models.items():
            rates[p].append(len(frames) / model_alone(m, frames, batch))
    base = precisions[0]
    out = {"frames_per_s": {p: float(np.median(r)) for p, r in rates.items()}, "reps": reps}
    out["ratio"] = {p: float(np.median(np.array(rates[p]) / np.array(rates[base])))
                    for p in precisions}
    return out


def precision_e2e(paths, precisions=("float32", "bfloat16"), reps: int = 1,
                  batch: int = BATCH) -> dict:
    """End-to-end frames/s per precision (ExtractFeatures, same videos), interleaved."""
    from yt8m.extractor.handler import InceptionModelHandler
    rates: dict = {p: [] for p in precisions}
    for _ in range(reps):
        for p in precisions:
            sec, n = end_to_end(paths, batch, InceptionModelHandler(
                WEIGHTS, batch_size=batch, precision=p))
            rates[p].append(n / sec)
    base = precisions[0]
    return {"frames_per_s": {p: float(np.median(r)) for p, r in rates.items()},
            "ratio": {p: float(np.median(np.array(rates[p]) / np.array(rates[base])))
                      for p in precisions}, "reps": reps}


def precision_figures(speed: dict, e2e: dict, n_frames: int) -> list[dict]:
    from yt8m.extractor.precision import device_kind
    kind = device_kind()
    has_bf16 = kind == "cpu-bf16"
    target = f">= {BF16_TARGET:g}" if has_bf16 else "info"
    note = ("" if has_bf16 else "; this CPU has no AMX/AVX512-BF16 (or oneDNN is off): "
            "no target")
    figs = []
    for name, res, what in (("extract_bfloat16_vs_float32_model", speed,
                             f"model alone, batch {BATCH}, {n_frames} decoded 720p frames, "
                             f"median of {speed['reps']} interleaved repetitions"),
                            ("extract_bfloat16_vs_float32_e2e", e2e,
                             f"ExtractFeatures end to end on the same videos, batch {BATCH}, "
                             f"median of {e2e['reps']}")):
        ratio = res["ratio"]["bfloat16"]
        figs.append({"name": name, "value": res["frames_per_s"]["bfloat16"],
                     "unit": "frames/s",
                     "reference": f"float32 {res['frames_per_s']['float32']:.2f} frames/s; "
                                  f"{what}{note}",
                     "reference_value": res["frames_per_s"]["float32"], "ratio": ratio,
                     "target": target, "met": (ratio >= BF16_TARGET) if has_bf16 else None})
    return figs


def resize_figure(res: dict) -> dict:
    """Headline: Inception-v3's relative feature difference (the graph's when no Keras
    network was given, e.g. --resize --weights yt8m-graph:PATH)."""
    key = "inception_feature_rel" if "inception_feature_rel" in res else "graph_feature_rel"
    net = "Inception-v3" if key == "inception_feature_rel" else f"graph {res['graph']}"
    rows = "; ".join(f"{r['size']}: {r[key]:.3f} (pixels {r['pixel_rms']:.1f})"
                     for r in res["rows"])
    return {"name": "resize_swscale_vs_graph", "value": res[key],
            "unit": "relative feature difference",
            "reference": (f"{net} on the 2015 graph's ResizeBilinear of the full frames vs "
                          f"swscale-299 frames; per size: {rows}; graph: "
                          f"{res['graph_feature_rel']:.3f}; mean pixel RMS "
                          f"{res['pixel_rms']:.1f} grey levels"),
            "reference_value": None, "ratio": res[key],
            "target": "info", "met": None, "rows": res["rows"]}


def fidelity_settings(quick: bool) -> dict:
    return ({"n_components": 256, "n_fit": 384, "n_heldout": 64} if quick
            else {"n_components": 1024, "n_fit": 1280, "n_heldout": 256})


# --------------------------------------------------------------------------- figures
def run(quick: bool = False) -> list[dict]:
    paths = _videos(quick)
    model = _model()
    # Warm the file cache and the pipeline code paths once, untimed.
    decode_alone(paths[:1])
    t_dec, samples = decode_alone(paths)
    frames = np.concatenate([s.frames for s in samples])
    n = len(frames)
    t_mod = model_alone(model, frames)
    limit = n / (t_dec + t_mod)
    t_e2e, n_e2e = end_to_end(paths)
    if n_e2e != n:
        raise RuntimeError(f"end-to-end extracted {n_e2e} frames, decode alone {n}")
    e2e = n_e2e / t_e2e
    loop_frames = 12 if quick else 30
    t_loop, n_loop = frame_loop(model, paths[0], max_frames=loop_frames)
    loop = n_loop / t_loop
    figures = [
        {"name": "extract_vs_limit", "value": e2e, "unit": "frames/s",
         "reference": f"1/(decode+resize {t_dec / n * 1e3:.0f} ms + model {t_mod / n * 1e3:.0f}"
                      f" ms per frame), {n} frames of {len(paths)} 720p videos, batch {BATCH}",
         "reference_value": limit, "ratio": e2e / limit, "target": f">= {LIMIT_TARGET}",
         "met": e2e / limit >= LIMIT_TARGET},
        {"name": "extract_vs_frame_loop", "value": e2e, "unit": "frames/s",
         "reference": f"frame-at-a-time loop (every frame to RGB, batch 1), {n_loop} frames",
         "reference_value": loop, "ratio": e2e / loop, "target": f">= {LOOP_TARGET:g}",
         "met": e2e / loop >= LOOP_TARGET},
        {"name": "decode_frames_per_s_cpu", "value": n / t_dec, "unit": "frames/s",
         "reference": "sampled 720p frames (decode + resize to 299) per second, one decode "
                      "thread; reference: end-to-end extraction",
         "reference_value": e2e, "ratio": (n / t_dec) / e2e, "target": "info", "met": None},
        {"name": "extract_frames_per_s_cpu", "value": e2e, "unit": "frames/s",
         "reference": "model alone on the same frames (batch 32)",
         "reference_value": n / t_mod, "ratio": e2e / (n / t_mod), "target": "info",
         "met": None},
    ]
    try:
        peak = peak_rss_child(video_4k_10min())
        figures.append({"name": "extract_peak_mb_4k_10min", "value": peak, "unit": "MB",
                        "reference": f"{PEAK_BUDGET_MB:.0f} MB budget (10-min 3840x2160 "
                                     f"H.264, 360 frames extracted)",
                        "reference_value": PEAK_BUDGET_MB, "ratio": peak / PEAK_BUDGET_MB,
                        "target": "< 1", "met": peak < PEAK_BUDGET_MB})
    except (subprocess.CalledProcessError, RuntimeError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        figures.append({"name": "extract_peak_mb_4k_10min", "value": None, "unit": "MB",
                        "reference": f"could not measure: {detail.strip()[-300:]}",
                        "reference_value": PEAK_BUDGET_MB, "ratio": None, "target": "< 1",
                        "met": False})
    # Precision: speed on the same frames and videos, then fidelity through the codec.
    speed = precision_speeds(frames, reps=3 if quick else 5)
    speed_e2e = precision_e2e(paths, reps=1 if quick else 2)
    figures += precision_figures(speed, speed_e2e, n)
    from benchmarks import fidelity
    fid = fidelity.precision_fidelity(WEIGHTS, **fidelity_settings(quick))
    figures += [fidelity.fidelity_figure(p, fid, "cpu") for p in fid["by_precision"]]
    res = fidelity.resize_fidelity(2 if quick else 4, keras_model=fid["model"]._fn.keras_model)
    figures.append(resize_figure(res))
    return figures


# --------------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.extract_bench",
                                description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small settings")
    p.add_argument("--fidelity", action="store_true",
                   help="only the precision fidelity figures (JSON), e.g. with real weights")
    p.add_argument("--resize", action="store_true",
                   help="only the swscale-vs-graph resize figures (JSON)")
    p.add_argument("--weights", default=WEIGHTS,
                   help="weights spec for --fidelity / --resize (default: random)")
    p.add_argument("--gpu", action="store_true",
                   help="the GPU script (benchmarks/extract_gpu.py; its flags follow)")
    args, rest = p.parse_known_args(argv)
    if args.gpu:
        from benchmarks import extract_gpu
        return extract_gpu.main(rest + (["--quick"] if args.quick else []))
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    from benchmarks import fidelity
    if args.fidelity or args.resize:
        out: dict = {}
        if args.fidelity:
            fid = fidelity.precision_fidelity(args.weights, **fidelity_settings(args.quick))
            out["fidelity"] = [fidelity.fidelity_figure(q, fid, "cpu")
                               for q in fid["by_precision"]]
        if args.resize:
            from yt8m.extractor.weights import YT8M_GRAPH_PREFIX, load_feature_model
            graph_path = keras_model = None
            if args.weights.startswith(YT8M_GRAPH_PREFIX):   # the real 2015 graph
                graph_path = args.weights[len(YT8M_GRAPH_PREFIX):]
            else:
                keras_model = getattr(load_feature_model(args.weights)._fn, "keras_model",
                                      None)
            out["resize"] = resize_figure(fidelity.resize_fidelity(
                2 if args.quick else 4, graph_path=graph_path, keras_model=keras_model))
        print(json.dumps(out, indent=2, default=float))
        return 0
    print(json.dumps(run(args.quick), indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
