"""A build's artifacts, staged: artifacts/pca.npz, quantizer.npz, quality.json, and fit.json.

``WriteArtifacts`` saves the fitted PCA and quantizer (nothing when nothing
was fit), the quality report on held-out frames (``compression.beam.HeldOutQualityReport``:
a bounded, deterministic sample of the validate, then test, frames) and fit.json (what
the fit saw, read back into dataset_info.json). ``artifacts/model.json`` is
the launcher's (``pipeline.launch``), written when the run is published.
"""
from __future__ import annotations

import os
import tempfile
from typing import Optional

import apache_beam as beam

from yt8m import fs
from yt8m.compression.beam import HeldOutQualityReport
from yt8m.compression.quality import save_report
from yt8m.pipeline.config import DEFAULT_QUALITY_FRAMES
from yt8m.pipeline.fit import held_out_frames

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
        quality_path = fs.join(folder, "quality.json")
        # A bounded, deterministic sample of validate (then test) frames: the
        # report never gathers the held-out videos on one worker.
        _ = (features
             | "HeldOutFrames" >> beam.FlatMap(held_out_frames)
             | "Quality" >> HeldOutQualityReport(self.pca, self.quantizer,
                                                 max_frames=self.quality_frames)
             | "WriteQuality" >> beam.Map(lambda rep: save_report(quality_path, rep)))
        fit_path = fs.join(self.staging, FIT_JSON)
        return self.pca | "FitInfo" >> beam.Map(
            lambda p_, q_: fs.write_json(fit_path, fit_info(p_, q_)),
            beam.pvalue.AsSingleton(self.quantizer))
