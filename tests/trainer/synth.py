"""Tiny generated datasets for the trainer's tests, in both layouts.

* :func:`write_build`: a build-shaped OUT directory (frame/ and video/
  TFRecords of every split, artifacts/quantizer.npz and pca.npz,
  vocabulary.csv) with small dimensions (raw 32 -> 16 by default), written
  through ``pipeline.schema``'s encoders.
* :func:`write_released`: files in the released YouTube-8M layout (1024-d
  rgb + 128-d audio, uniform quantization in [-2, 2]).

Classes are separable: each class has a prototype direction in the raw
(ReLU) space; a video's frames are the ReLU of the sum of its classes'
prototypes plus noise.
"""
from __future__ import annotations

import csv
import os

import numpy as np
import tensorflow as tf

from yt8m.pipeline import schema


def _labels(rng, num_classes, n):
    out = []
    for _ in range(n):
        k = 1 + int(rng.random() < 0.5)
        out.append(sorted(rng.choice(num_classes, size=k, replace=False).tolist()))
    return out


def _frames(rng, protos, labels, n_frames, noise=0.3):
    base = protos[labels].sum(axis=0)
    return np.maximum(base[None, :] + noise * rng.standard_normal((n_frames, protos.shape[1])), 0.0)


def _write(path, records):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as w:
        for r in records:
            w.write(r)


def make_artifacts(rng, raw_dim, dim, protos):
    """A PCA (raw_dim -> dim, whitening) and a non-uniform 256-level quantizer."""
    sample = np.maximum(protos[rng.integers(0, len(protos), 2000)] +
                        0.3 * rng.standard_normal((2000, raw_dim)), 0)
    mean = sample.mean(0)
    vals, vecs = np.linalg.eigh(np.cov(sample.T))
    order = np.argsort(vals)[::-1][:dim]
    pca = {"mean": mean, "eigenvecs": vecs[:, order], "eigenvals": vals[order],
           "epsilon": np.float64(1e-4)}
    # Gaussian-quantile levels: denser near 0, like a Lloyd-Max codebook.
    from statistics import NormalDist
    levels = np.array([NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)], np.float32)
    boundaries = (0.5 * (levels[1:] + levels[:-1])).astype(np.float32)
    return pca, {"boundaries": boundaries, "levels": levels}


def compress(raw, pca, quant):
    y = (raw - pca["mean"]) @ pca["eigenvecs"] / np.sqrt(pca["eigenvals"] + pca["epsilon"])
    return np.searchsorted(quant["boundaries"], y, side="right").astype(np.uint8)


def write_build(out, *, num_classes=6, raw_dim=32, dim=16, sizes=None, frames=(3, 9),
                seed=0, shards=2):
    """Writes OUT; returns a dict with the generated arrays for checks."""
    rng = np.random.default_rng(seed)
    sizes = sizes or {"train": 120, "validate": 40, "test": 10}
    protos = 2.0 * np.abs(rng.standard_normal((num_classes, raw_dim))) * (
        rng.random((num_classes, raw_dim)) < 0.35)
    pca, quant = make_artifacts(rng, raw_dim, dim, protos)
    os.makedirs(f"{out}/artifacts", exist_ok=True)
    np.savez(f"{out}/artifacts/pca.npz", **pca)
    np.savez(f"{out}/artifacts/quantizer.npz", **quant)
    with open(f"{out}/vocabulary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Index", "TrainVideoCount", "KnowledgeGraphId", "Name", "WikiUrl", "Vertical1",
                    "Vertical2", "Vertical3", "WikiDescription", "Specificity"])
        for c in range(num_classes):
            w.writerow([c, 10, f"/m/0{c}", f"Entity {c}", "", "", "", "", "", ""])
    info = {"pca": pca, "quant": quant, "protos": protos, "videos": {}}
    for split, n in sizes.items():
        labels = _labels(rng, num_classes, n)
        frame_recs, video_recs = [], []
        for i, labs in enumerate(labels):
            vid = f"{split[:2]}{i:04d}"
            f = int(rng.integers(frames[0], frames[1] + 1))
            q = compress(_frames(rng, protos, labs, f), pca, quant)
            stored = None if split == "test" else labs
            frame_recs.append(schema.encode_frame_example(vid, q, stored))
            video_recs.append(schema.encode_video_example(vid, quant["levels"][q].mean(0), stored))
            info["videos"][vid] = {"labels": labs, "q": q, "split": split}
        for s in range(shards):
            name = f"{split}-{s:05d}-of-{shards:05d}.tfrecord"
            _write(f"{out}/frame/{name}", frame_recs[s::shards])
            _write(f"{out}/video/{name}", video_recs[s::shards])
    return info


def released_dequantize(q):
    return q.astype(np.float32) * (4.0 / 255.0) + (4.0 / 512.0 - 2.0)


def write_released(directory, *, num_classes=8, sizes=None, frames=(2, 6), seed=1):
    """Released layout: frame/{train,validate}0000.tfrecord (rgb 1024 + audio 128 bytes)
    and video/{split}0000.tfrecord (mean_rgb, mean_audio)."""
    rng = np.random.default_rng(seed)
    sizes = sizes or {"train": 60, "validate": 20}
    protos = rng.standard_normal((num_classes, 1024 + 128))
    info = {}
    for split, n in sizes.items():
        frame_recs, video_recs = [], []
        for i, labs in enumerate(_labels(rng, num_classes, n)):
            vid = f"R{split[0]}{i:03d}"
            f = int(rng.integers(frames[0], frames[1] + 1))
            x = np.clip(protos[labs].sum(0)[None] * 0.6 + 0.3 * rng.standard_normal((f, 1152)), -2, 2)
            q = np.clip(np.round((x + 2.0) * 255.0 / 4.0), 0, 255).astype(np.uint8)
            frame_recs.append(schema.encode_frame_example(vid, q[:, :1024], labs, q[:, 1024:]))
            deq = released_dequantize(q)
            video_recs.append(schema.encode_video_example(vid, deq[:, :1024].mean(0), labs,
                                                          deq[:, 1024:].mean(0)))
            info[vid] = {"labels": labs, "q": q}
        _write(f"{directory}/frame/{split}0000.tfrecord", frame_recs)
        _write(f"{directory}/video/{split}0000.tfrecord", video_recs)
    return info


def write_raw_features(path, *, n=3, raw_dim=2048, seed=2):
    """Raw-feature SequenceExamples as ``extract --no_compress`` writes them."""
    rng = np.random.default_rng(seed)
    recs = [schema.encode_raw_feature_example(f"x{i}", np.abs(rng.standard_normal((4, raw_dim))),
                                              [0.0, 1.0, 2.0, 3.0]) for i in range(n)]
    _write(path, recs)
