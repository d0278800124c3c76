"""A build's inputs with a warm synthetic feature cache: a real build that decodes nothing.

``make_inputs(folder, n)`` writes a manifest of ``n`` videos, an entity
catalog and rater scores (CSV, the build's input formats), one tiny stand-in
file per video (the cache's fingerprint stats the video file: size and mtime)
and, for each video, a cache entry in the cache's own format
(``pipeline.cache.FeatureCache.store``) for the ``--weights random`` model:
float16 ``(frames, 2048)`` features with a shared low-rank structure (the PCA
has signal), made from the video's index. A build of these inputs with
``--weights random`` then runs every stage (select, cache lookup, fit, encode,
write) for real and finds every video in the cache (``cache_hits``), so what
it costs is the post-extraction part of a build.

Every video passes the selection (views, duration and entity support are far
above the defaults), so the build must account for all ``n`` rows: written +
failed + excluded == n (``check_accounting``).
"""
from __future__ import annotations

import csv
import os
from typing import Optional

import numpy as np

WEIGHTS = "random"
N_ENTITIES = 40
FEATURE_DIM = 2048
RANK = 32


def model_info(weights: str = WEIGHTS) -> dict:
    """The model identity a build with ``--weights weights`` fingerprints the cache with."""
    from yt8m.pipeline.config import BuildConfig
    from yt8m.pipeline.launch import resolve_model_info
    cfg = BuildConfig(videos="-", entities="-", output_dir="-", weights=weights)
    return resolve_model_info(cfg)


def make_inputs(folder: str, n: int, frames: int = 5, seed: int = 0,
                cache_dir: Optional[str] = None) -> dict:
    """Writes the inputs (module docstring); returns their paths and the cache folder."""
    from yt8m.pipeline.cache import FeatureCache, model_fingerprint
    if n < 1 or frames < 1:
        raise ValueError(f"make_inputs needs n >= 1 videos and frames >= 1, got {n}, {frames}")
    videos_dir = os.path.join(folder, "videos")
    os.makedirs(videos_dir, exist_ok=True)
    out_dir = os.path.join(folder, "out")
    cache_dir = cache_dir or os.path.join(out_dir, "cache")
    info = model_info()
    fp = model_fingerprint(info)
    cache = FeatureCache(cache_dir, os.path.join(out_dir, ".tmp", "cache"))
    entities = [f"/m/syn{e:03d}" for e in range(N_ENTITIES)]
    rng0 = np.random.default_rng(seed)
    basis = rng0.normal(size=(RANK, FEATURE_DIM)).astype(np.float32)
    manifest = os.path.join(folder, "manifest.csv")
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["video_id", "uri", "views", "duration_s", "entities"])
        for i in range(n):
            vid = f"syn{i:07d}"
            uri = os.path.join(videos_dir, f"{vid}.mp4")
            with open(uri, "wb") as vf:
                vf.write(vid.encode())
            rng = np.random.default_rng([seed, i])
            # Two labels, Zipf-like on the first: every entity keeps many videos.
            labels = sorted({entities[int(rng.zipf(1.3) - 1) % N_ENTITIES],
                             entities[i % N_ENTITIES]})
            w.writerow([vid, uri, 10_000 + i, 120.0, ";".join(labels)])
            coeff = rng.normal(size=(frames, RANK)).astype(np.float32)
            x = np.abs(coeff @ basis * 0.1 + rng.normal(scale=0.05, size=(frames, FEATURE_DIM)))
            cache.store(vid, uri, fp, x.astype(np.float32),
                        np.arange(frames, dtype=np.float64), info)
    entities_csv = os.path.join(folder, "entities.csv")
    with open(entities_csv, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["kg_id", "name", "types", "vertical", "description", "wiki_url"])
        for e in entities:
            w.writerow([e, f"Synthetic {e[-3:]}", "Visual Object", "Science",
                        "A synthetic entity.", ""])
    ratings_csv = os.path.join(folder, "ratings.csv")
    with open(ratings_csv, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["kg_id", "rater_id", "score"])
        for e in entities:
            for r in range(3):
                w.writerow([e, f"r{r}", 1])   # mean <= 2.5: specific enough
    return {"videos": manifest, "entities": entities_csv, "ratings": ratings_csv,
            "output_dir": out_dir, "cache_dir": cache_dir}


def check_accounting(counts: dict, n: int) -> None:
    """Raises unless counts.json accounts for each of the ``n`` manifest rows once."""
    rows = counts.get("manifest_rows")
    total = int(counts["written"]) + int(counts["failed"]) + int(counts["excluded"])
    if rows != n or total != n:
        raise RuntimeError(
            f"the build accounts for {total} of {n} rows (manifest_rows {rows}): written "
            f"{counts['written']}, failed {counts['failed']} {counts['failure_reasons']}, "
            f"excluded {counts['excluded']} {counts['excluded_reasons']}")
