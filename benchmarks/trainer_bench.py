"""Trainer benchmark: the paper's baselines against scikit-learn, side by side in one run.

A generated video-level dataset (Zipf-distributed labels, 1.8 labels per
video on average, a few hundred classes, features carrying the classes'
signal), normalised as section 4.2.2 (PCA-whitened on train, L2) once, then:

* ``trainer_logistic_vs_sklearn_hit1``: our logistic model (Adagrad 1.0,
  batch 32, as in section 4.3) minus scikit-learn's one-vs-rest
  ``LogisticRegression`` in validate Hit@1; target >= -0.01.
* ``trainer_moe_vs_logistic_map`` / ``..._hit1``: MoE-2 over logistic, the
  paper's ordering; target >= 1.0.
* ``trainer_<model>_examples_per_s``: training throughput of every model,
  against scikit-learn's fit throughput on the same videos (informational;
  ours are steady-state epochs, the median after the first, which traces).
  Frame-level models see generated frame sequences of the same videos.

``python -m benchmarks.trainer_bench [--full]`` prints the figures.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from yt8m.trainer import data as D
from yt8m.trainer import metrics as M
from yt8m.trainer import train as T


def generate(n: int, num_classes: int, dim: int, seed: int, *, frames: int = 0,
             noise: float = 1.0, modes: int = 2, protos_seed: int = 1234):
    """``(x, y)``: x ``(n, dim)`` video features (or ``(n, frames, dim)``), y ``(n, C)``.

    Class c is drawn with probability proportional to 1/(c+1) (Zipf); a video
    has 1 + Poisson(0.8) distinct classes (mean ~1.8). Each class shows in
    ``modes`` visual styles (prototypes; an entity's videos rarely look one
    way); a video's features are the sum, over its classes, of one randomly
    chosen style's prototype, plus Gaussian noise.
    """
    rng = np.random.default_rng(seed)
    protos = (np.random.default_rng(protos_seed).standard_normal((num_classes, modes, dim))
              / np.sqrt(dim) * 3)
    zipf = 1.0 / np.arange(1, num_classes + 1)
    zipf /= zipf.sum()
    y = np.zeros((n, num_classes), np.float32)
    signal = np.zeros((n, dim))
    for i in range(n):
        k = min(1 + rng.poisson(0.8), num_classes)
        labels = rng.choice(num_classes, size=k, replace=False, p=zipf)
        y[i, labels] = 1.0
        signal[i] = protos[labels, rng.integers(0, modes, k)].sum(axis=0)
    if frames:
        x = signal[:, None, :] + noise * rng.standard_normal((n, frames, dim)) * np.sqrt(frames)
    else:
        x = signal + noise * rng.standard_normal((n, dim))
    return x.astype(np.float32), y


def _figure(name, value, unit, reference, reference_value, ratio, target, met, **extra):
    return {"name": name, "value": value, "unit": unit, "reference": reference,
            "reference_value": reference_value, "ratio": ratio, "target": target, "met": met,
            **extra}


def run(quick: bool = True) -> list[dict]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    n_train, n_val, classes, dim = (4000, 1500, 200, 64) if quick else (20000, 5000, 400, 128)
    epochs = 10 if quick else 10
    x, y = generate(n_train, classes, dim, seed=0)
    xv, yv = generate(n_val, classes, dim, seed=1)
    # Section 4.2.2 normalisation, fit on train, applied to both splits; both
    # learners see exactly these features.
    white = D.FeatureWhitening.fit([x])
    x, xv = white.transform_np(x), white.transform_np(xv)
    present = y.sum(0) > 0  # scikit-learn needs both outcomes per class; absent classes score 0

    t0 = time.perf_counter()
    sk = OneVsRestClassifier(LogisticRegression(max_iter=300), n_jobs=1).fit(x, y[:, present])
    sk_s = time.perf_counter() - t0
    p_sk = np.zeros_like(yv)
    p_sk[:, present] = sk.predict_proba(xv)
    sk_eval = M.evaluate(p_sk, yv)
    sk_eps = n_train / sk_s

    results, throughput = {}, {}
    for name in ("logistic", "moe", "hinge"):
        model, secs = T.train_arrays(name, x, y, epochs=epochs, seed=0)
        results[name] = M.evaluate(T.predict_arrays(model, xv), yv)
        throughput[name] = n_train / float(np.median(secs[1:]))  # steady state, no tracing

    ours, ref = results["logistic"]["hit_at_1"], sk_eval["hit_at_1"]
    figs = [_figure("trainer_logistic_vs_sklearn_hit1", ours - ref, "Hit@1 difference",
                    "scikit-learn OneVsRest LogisticRegression Hit@1 (same features)", ref,
                    ours / ref if ref else None, "value >= -0.01", bool(ours - ref >= -0.01),
                    ours_hit1=ours, ours_map=results["logistic"]["map"], sklearn_map=sk_eval["map"],
                    dataset=f"{n_train} train / {n_val} validate videos, {classes} Zipf classes, "
                            f"{dim}-d, {epochs} epochs")]
    for metric, label in (("map", "mAP"), ("hit_at_1", "Hit@1")):
        moe, log = results["moe"][metric], results["logistic"][metric]
        figs.append(_figure(f"trainer_moe_vs_logistic_{'map' if metric == 'map' else 'hit1'}",
                            moe / log if log else None, "ratio", f"logistic {label}", log,
                            moe / log if log else None, ">= 1.0", bool(log and moe / log >= 1.0),
                            moe_value=moe, hinge_value=results["hinge"][metric]))

    # Frame-level throughput on frame sequences of the same kind of videos.
    frames = 10 if quick else 30
    n_frames_videos = 150 if quick else 1000
    xf, yf = generate(n_frames_videos, classes, dim, seed=2, frames=frames)
    sizes = ({"dbof": {"projection_size": 1024, "hidden_size": 256}, "lstm": {"lstm_size": 128}}
             if quick else {"dbof": {}, "lstm": {}})
    for name in ("frame_logistic", "dbof", "lstm"):
        _, secs = T.train_arrays(name, xf, yf, epochs=3, seed=0, **sizes.get(name, {}))
        throughput[name] = n_frames_videos / float(np.median(secs[1:]))
    for name, eps in throughput.items():
        size = sizes.get(name) or "paper sizes"
        figs.append(_figure(f"trainer_{name}_examples_per_s", eps, "videos/s",
                            "scikit-learn OneVsRest LogisticRegression fit, videos/s", sk_eps,
                            eps / sk_eps, None, None, model_sizes=str(size),
                            frames_per_video=frames if name in ("frame_logistic", "dbof", "lstm") else None))
    return figs


if __name__ == "__main__":
    for f in run(quick="--full" not in sys.argv):
        print(f"{f['name']:<40} {f['value']:.4f} {f['unit']:<18} ref {f['reference_value']:.4f} "
              f"ratio {f['ratio'] if f['ratio'] is None else round(f['ratio'], 3)} "
              f"target {f['target']} met {f['met']}")
