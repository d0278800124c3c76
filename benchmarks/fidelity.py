"""What a cheaper precision or another resize does to the features, seen through the codec.

Used by ``extract_bench`` (CPU) and ``extract_gpu`` (the GPU script).

``precision_fidelity``: a PCA (``n_components``) and a Lloyd 8-bit quantizer
are fit on the float32 features of one set of frames (``fit`` videos); the
features of other frames (``heldout`` videos, other contents and seeds) are
computed in every precision, whitened and coded exactly as the pipeline does
(``compression.codec``: float16 cache rounding, whitening, quantizer). For
each precision: the whitened feature MSE against float32 over the
quantizer's own MSE (the rule's figure, ``extractor.precision.RULE``), the
MSE the coded values add, and the fraction of coded bytes that differ.

``resize_fidelity``: decoded frames of several resolutions and aspects, once
scaled by swscale to 299x299 (the decoder's bilinear) and once at full size
through the 2015 graph's own ``ResizeBilinear``: the pixel difference, and
the feature difference through a network (the synthetic graph with the
released graph's preprocessing ops, and Inception-v3 fed both inputs).

Frames come from synthetic videos (``extractor.synth`` plus 1/f "natural"
noise textures) written once under ``benchmarks/_work/fidelity``.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

WORK = Path(__file__).resolve().parent / "_work" / "fidelity"
SAMPLE_FPS = 4.0   # samples per second of the fidelity videos (written at 8 fps)
VIDEO_FPS = 8

# (width, height) cycled over the videos: landscape, 4:3, portrait, small.
SIZES = ((640, 360), (480, 360), (360, 640), (320, 240), (426, 240), (1280, 720))
SYNTH_CONTENTS = ("red_circle", "green_square", "blue_triangle", "yellow_ring", "white_cross",
                  "stripes", "checker", "diagonal", "rings", "hstripes")


# --------------------------------------------------------------------------- videos
def natural_content(seed: int, alpha: float = 1.0):
    """A drifting 1/f^alpha colour noise field (natural images' spectrum) with a moving
    shape: smooth regions and edges at every scale, unlike the flat synthetic shapes."""
    from yt8m.extractor import synth
    cache: dict = {}

    def field(h, w):
        if (h, w) not in cache:
            rng = np.random.default_rng(seed)
            H, W = h + 64, w + 64
            fy = np.fft.fftfreq(H)[:, None]
            fx = np.fft.rfftfreq(W)[None, :]
            amp = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / max(H, W)) ** alpha
            chans = []
            for _ in range(3):
                spec = amp * np.exp(2j * np.pi * rng.random(amp.shape))
                img = np.fft.irfft2(spec, s=(H, W))
                chans.append((img - img.mean()) / (img.std() + 1e-9))
            x = np.stack(chans, -1)
            mix = rng.normal(0, 1, (3, 3)) * 0.4 + np.eye(3)  # correlated channels
            cache[(h, w)] = np.clip(128 + 45 * (x @ mix), 0, 255).astype(np.uint8)
        return cache[(h, w)]

    shape = synth.moving_shape(("circle", "square", "triangle", "ring")[seed % 4],
                               tuple(int(c) for c in np.random.default_rng(seed + 1).integers(
                                   0, 256, 3)), (0, 0, 0), 3.0 + seed % 3, 0.15)

    def content(i, t, h, w):
        f = field(h, w)
        dy, dx = int(32 + 30 * math.sin(0.7 * t + seed)), int(32 + 30 * math.cos(0.5 * t))
        img = f[dy:dy + h, dx:dx + w].copy()
        s = shape(i, t, h, w)
        mask = np.any(s != 0, axis=-1)
        img[mask] = s[mask]
        return img

    return content


def fidelity_video(index: int, seconds: float, role: str) -> str:
    """A cached fidelity video: ``index`` picks size, content and seed; ``role`` (fit or
    heldout) keeps the two sets disjoint (other seeds, other contents first)."""
    from yt8m.extractor import synth
    WORK.mkdir(parents=True, exist_ok=True)
    offset = 0 if role == "fit" else 1000
    k = index + offset
    w, h = SIZES[k % len(SIZES)]
    path = WORK / f"{role}_{index:02d}_{w}x{h}_{seconds:g}s.mp4"
    if not path.exists():
        if (k + (role == "heldout")) % 2 == 0:
            content = natural_content(seed=k)
        else:
            content = synth.make_content(SYNTH_CONTENTS[(k // 2) % len(SYNTH_CONTENTS)])
        tmp = path.with_name(f"tmp-{os.getpid()}-{path.name}")
        synth.write_video(tmp, content, width=w, height=h, fps=VIDEO_FPS, duration_s=seconds,
                          options={"preset": "veryfast", "crf": "23"})
        os.replace(tmp, path)
    return str(path)


def frames_of(role: str, n_frames: int, seconds: float = 20.0) -> np.ndarray:
    """``n_frames`` decoded 299x299 frames from as many ``role`` videos as it takes."""
    from yt8m.extractor.decode import sample_frames
    per_video = int(seconds * SAMPLE_FPS)
    out, have, i = [], 0, 0
    while have < n_frames:
        f = sample_frames(fidelity_video(i, seconds, role), fps=SAMPLE_FPS).frames
        out.append(f[:n_frames - have])
        have += len(out[-1])
        i += 1
        if i > 4 * math.ceil(n_frames / per_video) + 4:
            raise RuntimeError(f"fidelity videos give too few frames ({have} of {n_frames})")
    return np.concatenate(out)


# --------------------------------------------------------------------------- precision
def predict_in_batches(model, frames: np.ndarray, batch: int = 32) -> np.ndarray:
    return np.concatenate([model.predict(frames[i:i + batch])
                           for i in range(0, len(frames), batch)])


def fit_codec(raw_fit: np.ndarray, n_components: int):
    """PCA-whitening and Lloyd 8-bit quantizer fit on float32 features, as a build does."""
    from yt8m.compression import PCAWhitening, Quantizer
    from yt8m.compression.codec import round_like_cache, whiten_frames
    pca = PCAWhitening.fit([round_like_cache(raw_fit).astype(np.float32)],
                           n_components=n_components)
    quantizer = Quantizer.fit([whiten_frames(raw_fit, pca)])
    return pca, quantizer


def coded_error(raw_ref: np.ndarray, raw_other: Optional[np.ndarray], pca, quantizer) -> dict:
    """How far ``raw_other`` is from ``raw_ref`` after whitening and 8-bit coding.

    ``raw_other=None``: how far the float16 cache rounding alone moves ``raw_ref``
    (``raw_ref`` whitened unrounded, against the codec's path): the error every
    build already accepts, for scale.
    """
    from yt8m.compression.codec import whiten_frames
    z = whiten_frames(raw_ref, pca)
    if raw_other is None:
        zp = pca.transform(np.asarray(raw_ref, np.float32))
        raw_other = raw_ref.astype(np.float16).astype(np.float32)
    else:
        zp = whiten_frames(raw_other, pca)
    q, qp = quantizer.encode(z), quantizer.encode(zp)
    quant_mse = float(np.mean((quantizer.decode(q) - z) ** 2))
    feat_mse = float(np.mean((zp - z) ** 2))
    coded_mse = float(np.mean((quantizer.decode(qp) - z) ** 2))
    # Where the error sits: whitening divides each component by its standard
    # deviation, so the low-variance components magnify a small raw error.
    quarters = [float(np.mean((zp[:, idx] - z[:, idx]) ** 2) / quant_mse)
                for idx in np.array_split(np.arange(z.shape[1]), 4)]
    return {"quantizer_mse": quant_mse, "whitened_mse": feat_mse,
            "mse_ratio": feat_mse / quant_mse, "mse_ratio_by_quarter": quarters,
            "coded_added_mse_ratio": (coded_mse - quant_mse) / quant_mse,
            "byte_diff": float(np.mean(q != qp)),
            "raw_rel_error": float(np.linalg.norm(raw_other - raw_ref)
                                   / max(np.linalg.norm(raw_ref), 1e-30))}


def precision_fidelity(weights: str = "random", *, n_components: int = 1024,
                       n_fit: int = 1280, n_heldout: int = 256,
                       precisions: Sequence[str] = ("bfloat16", "float16"),
                       fit_frames: Optional[np.ndarray] = None,
                       heldout_frames: Optional[np.ndarray] = None,
                       batch: int = 32, max_chunk: int = 256,
                       rebatch: Optional[int] = 8) -> dict:
    """The rule's figures for each precision (see the module docstring)."""
    from yt8m.extractor.weights import load_feature_model
    t0 = time.perf_counter()
    fit = frames_of("fit", n_fit) if fit_frames is None else fit_frames
    held = frames_of("heldout", n_heldout) if heldout_frames is None else heldout_frames
    m32 = load_feature_model(weights, max_chunk=max_chunk)
    raw_fit = predict_in_batches(m32, fit, batch)
    pca, quantizer = fit_codec(raw_fit, n_components)
    raw = {"float32": predict_in_batches(m32, held, batch)}
    for p in precisions:
        model = load_feature_model(weights, precision=p, max_chunk=max_chunk)
        raw[p] = predict_in_batches(model, held, batch)
    if rebatch:
        # The float32 noise floor: the same network at another batch size (other
        # kernels, other summation orders).
        raw["float32_rebatched"] = predict_in_batches(m32, held, rebatch)
    by_precision = {p: coded_error(raw["float32"], raw[p], pca, quantizer)
                    for p in raw if p != "float32"}
    by_precision["float16_cache_rounding"] = coded_error(raw["float32"], None, pca, quantizer)
    return {"weights": weights, "n_components": n_components, "n_fit": len(fit),
            "n_heldout": len(held), "by_precision": by_precision,
            "seconds": time.perf_counter() - t0, "pca": pca, "quantizer": quantizer,
            "model": m32, "raw_fit": raw_fit}


def fidelity_figure(precision: str, result: dict, device: str) -> dict:
    """One figure per precision; the references (``float32_rebatched``, the noise floor,
    and ``float16_cache_rounding``, the cache's own rounding) have no target."""
    from yt8m.extractor import precision as P
    f = result["by_precision"][precision]
    rule = precision in P.PRECISIONS
    return {"name": f"precision_fidelity_{precision}_{device}", "value": f["whitened_mse"],
            "unit": "MSE (whitened)",
            "reference": (f"8-bit Lloyd quantizer's own MSE on the same {result['n_heldout']} "
                          f"held-out frames (PCA {result['n_components']} fit on "
                          f"{result['n_fit']} other frames, weights {result['weights']}); "
                          f"coded bytes differing from float32's: {f['byte_diff']:.4f}; "
                          f"added coded MSE {f['coded_added_mse_ratio']:.4f} x quantizer MSE; "
                          f"raw relative error {f['raw_rel_error']:.4f}"),
            "reference_value": f["quantizer_mse"], "ratio": f["mse_ratio"],
            "target": f"<= {P.MAX_MSE_RATIO:g}" if rule else "info",
            "met": f["mse_ratio"] <= P.MAX_MSE_RATIO if rule else None,
            "byte_diff": f["byte_diff"], "coded_added_mse_ratio": f["coded_added_mse_ratio"],
            "mse_ratio_by_quarter": f["mse_ratio_by_quarter"],
            "raw_rel_error": f["raw_rel_error"], "n_components": result["n_components"],
            "weights": result["weights"]}


# --------------------------------------------------------------------------- resize
RESIZE_SIZES = ((1920, 1080), (1280, 720), (640, 360), (360, 640), (640, 480), (176, 144))


def resize_videos(frames_per_video: int) -> list[tuple[str, int, int]]:
    from yt8m.extractor import synth
    WORK.mkdir(parents=True, exist_ok=True)
    out = []
    seconds = frames_per_video / SAMPLE_FPS
    for k, (w, h) in enumerate(RESIZE_SIZES):
        path = WORK / f"resize_{k}_{w}x{h}_{seconds:g}s.mp4"
        if not path.exists():
            content = (natural_content(seed=500 + k) if k % 2 == 0
                       else synth.make_content(SYNTH_CONTENTS[k % len(SYNTH_CONTENTS)]))
            tmp = path.with_name(f"tmp-{os.getpid()}-{path.name}")
            synth.write_video(tmp, content, width=w, height=h, fps=VIDEO_FPS,
                              duration_s=seconds, options={"preset": "veryfast", "crf": "20"})
            os.replace(tmp, path)
        out.append((str(path), w, h))
    return out


def resize_fidelity(frames_per_video: int = 4, graph_path: Optional[str] = None,
                    keras_model=None) -> dict:
    """swscale-299 frames against the 2015 graph's own resize of the full frames."""
    import tensorflow as tf

    from yt8m.extractor.decode import sample_frames
    from yt8m.extractor.weights import load_feature_model
    from yt8m.extractor.yt8m_graph import original_preprocess, synthetic_graph_def
    if graph_path is None:
        WORK.mkdir(parents=True, exist_ok=True)
        graph_path = str(WORK / "synthetic_classify_image_graph_def.pb")
        Path(graph_path).write_bytes(synthetic_graph_def(seed=1).SerializeToString())
    graph = load_feature_model(f"yt8m-graph:{graph_path}", cache=False)
    rows, keras_pairs = [], []
    for path, w, h in resize_videos(frames_per_video):
        full = sample_frames(path, fps=SAMPLE_FPS, size=None).frames
        small = sample_frames(path, fps=SAMPLE_FPS, size=299).frames
        n = min(len(full), len(small))
        full, small = full[:n], small[:n]
        x_graph = original_preprocess(full)                                # (x-128)/128
        x_sws = (small.astype(np.float32) - 128.0) / 128.0
        pix_rms = float(np.sqrt(np.mean((x_graph - x_sws) ** 2)) * 128.0)  # grey levels
        f_graph, f_sws = graph.predict(full), graph.predict(small)
        rel = float(np.linalg.norm(f_sws - f_graph) / np.linalg.norm(f_graph))
        row = {"size": f"{w}x{h}", "frames": n, "pixel_rms": pix_rms, "graph_feature_rel": rel}
        if keras_model is not None:
            # Inception-v3 fed both 299x299 inputs, each in Keras's [-1, 1] scaling.
            kg = keras_model(tf.constant((x_graph * 128.0 + 128.0) / 127.5 - 1.0)).numpy()
            ks = keras_model(tf.constant(small.astype(np.float32) / 127.5 - 1.0)).numpy()
            row["inception_feature_rel"] = float(np.linalg.norm(ks - kg) / np.linalg.norm(kg))
            keras_pairs.append((kg, ks))
        rows.append(row)
    out = {"rows": rows, "graph": graph_path,
           "pixel_rms": float(np.mean([r["pixel_rms"] for r in rows])),
           "graph_feature_rel": float(np.mean([r["graph_feature_rel"] for r in rows]))}
    if keras_pairs:
        kg = np.concatenate([p[0] for p in keras_pairs])
        ks = np.concatenate([p[1] for p in keras_pairs])
        out["inception_feature_rel"] = float(np.linalg.norm(ks - kg) / np.linalg.norm(kg))
    return out
