"""A build's artifacts, staged: artifacts/pca.npz, quantizer.npz, quality.json, and fit.json.

``WriteArtifacts`` saves the fitted PCA and quantizer (nothing when nothing
was fit), the quality report on held-out frames (``QualityReport``:
``compression.quality`` on the validate split's frames) and fit.json (what
the fit saw, read back into dataset_info.json). ``artifacts/model.json`` is
the launcher's (``pipeline.launch``), written when the run is published.
"""
from __future__ import annotations

import os
import tempfile
from typing import Optional

import apache_beam as beam
import numpy as np

from yt8m import fs
from yt8m.compression.quality import quality_report
from yt8m.pipeline import schema
from yt8m.pipeline.config import DEFAULT_QUALITY_FRAMES
from yt8m.records import VideoFeatures

ARTIFACTS_DIR = "artifacts"
FIT_JSON = "fit.json"
ARTIFACT_FILES = ("pca.npz", "quantizer.npz", "quality.json")


def _save_npz(obj, path: str) -> Optional[str]:
    """``obj.save`` into a local temp file, then an atomic copy to ``path`` (local or remote).

    Nothing when ``obj`` is None (nothing was fit: the build publishes no artifacts).
    """
    if obj is None:
        return None
    with tempfile.TemporaryDirectory() as d:
        local = os.path.join(d, os.path.basename(path))
        obj.save(local)
        fs.copy_file(local, path)
    return path


def fit_info(pca, quantizer) -> dict:
    """fit.json: the PCA's and the quantizer's fit figures (or why there are none)."""
    if pca is None or quantizer is None:
        return {"pca": None, "quantizer": None,
                "note": "nothing to fit: the train split has fewer than 2 frames"}
    return {"pca": dict(pca.info, n_components=int(pca.n_components)),
            "quantizer": dict(quantizer.info, method=quantizer.method)}


class WriteArtifacts(beam.PTransform):
    """Features + the fitted PCA and quantizer (one element each) -> staging/artifacts/, fit.json."""

    def __init__(self, staging: str, pca, quantizer,
                 quality_frames: int = DEFAULT_QUALITY_FRAMES):
        super().__init__()
        if not staging:
            raise ValueError("WriteArtifacts needs a staging folder")
        if pca is None or quantizer is None:
            raise ValueError("WriteArtifacts needs the fitted PCA and quantizer PCollections")
        self.staging, self.pca, self.quantizer = staging, pca, quantizer
        self.quality_frames = quality_frames

    def expand(self, features):
        folder = fs.join(self.staging, ARTIFACTS_DIR)
        _ = self.pca | "SavePCA" >> beam.Map(_save_npz, fs.join(folder, "pca.npz"))
        _ = self.quantizer | "SaveQuantizer" >> beam.Map(
            _save_npz, fs.join(folder, "quantizer.npz"))
        _ = features | "Quality" >> QualityReport(
            self.pca, self.quantizer, fs.join(folder, "quality.json"), self.quality_frames)
        fit_path = fs.join(self.staging, FIT_JSON)
        return self.pca | "FitInfo" >> beam.Map(
            lambda p_, q_: fs.write_json(fit_path, fit_info(p_, q_)),
            beam.pvalue.AsSingleton(self.quantizer))


class QualityReport(beam.PTransform):
    """quality.json (compression.quality) on held-out frames: the validate split's.

    The frames are a deterministic sample (videos in video_id order, at most
    ``max_frames``), so two builds of the same inputs report the same figures.
    """

    def __init__(self, pca, quantizer, path: str, max_frames: int):
        super().__init__()
        self.pca, self.quantizer, self.path, self.max_frames = pca, quantizer, path, max_frames

    def expand(self, features):
        max_frames, path = self.max_frames, self.path

        def held_out(vf: VideoFeatures):
            split = vf.video.split
            # validate frames are held out from both fits; fall back to test.
            if split in ("validate", "test"):
                yield (0 if split == "validate" else 1, vf.video_id, vf.features)

        def report(items, pca, quantizer):
            items = sorted(items, key=lambda t: (t[0], t[1]))
            frames, n = [], 0
            for _, _, f in items:
                if n >= max_frames:
                    break
                frames.append(f[: max_frames - n])
                n += len(frames[-1])
            x = np.concatenate(frames) if frames else np.zeros((0, schema.RGB_RAW_DIM),
                                                                np.float32)
            rep = (_quality(x, pca, quantizer) if pca is not None and quantizer is not None
                   else {"held_out_frames": 0, "note": "nothing was fit (no train frames)"})
            fs.write_json(path, rep)
            return path

        return (features
                | "HeldOut" >> beam.FlatMap(held_out)
                | "GatherHeldOut" >> beam.combiners.ToList()
                | "WriteQuality" >> beam.Map(report, beam.pvalue.AsSingleton(self.pca),
                                             beam.pvalue.AsSingleton(self.quantizer)))


def _quality(x, pca, quantizer) -> dict:
    """compression.quality's report (lloyd/chosen vs uniform) on held-out raw frames."""
    if len(x) == 0:
        return {"held_out_frames": 0,
                "note": "no validate or test frames to measure the quantization on"}
    return quality_report(x, pca, quantizer)
