"""``BuildDataset``: the dataset build (and resplit) as one Beam pipeline, composed of the stages.

    manifest --Select (vocab.select.SelectVideos)--> Video, ExcludedRow
        --Features (pipeline.features.CachedOrExtract)--> VideoFeatures, FailureRecord
        --Fit (pipeline.fit.FitCompression)--> PCA (train frames) -> quantizer (whitened train frames)
        --Encode (pipeline.encode.EncodeVideos; PCA, quantizer as side inputs)--> records per split
        --Write (pipeline.write.WriteDataset, pipeline.artifacts.WriteArtifacts)--> staged files

Everything goes under the staging folder ``OUT/.tmp/build/`` (the selection's
files in its ``selection/`` folder); ``pipeline.launch`` runs the pipeline and
publishes the staged files into OUT. This module only composes the stages:
each is a labelled composite ``PTransform`` in its own module.
"""
from __future__ import annotations

from typing import Optional

import apache_beam as beam

from yt8m import fs
from yt8m.pipeline import io as pio
from yt8m.pipeline.artifacts import WriteArtifacts
from yt8m.pipeline.config import DEFAULT_QUALITY_FRAMES, BuildConfig
from yt8m.pipeline.encode import EncodeVideos
from yt8m.pipeline.features import CachedOrExtract
from yt8m.pipeline.fit import FitCompression
from yt8m.pipeline.progress import ProgressLog
from yt8m.pipeline.write import WriteDataset
from yt8m.vocab.select import SelectVideos

SELECTION_DIR = "selection"   # the selection's files, below the staging folder


def cache_dir_of(config: BuildConfig) -> str:
    """The feature cache a build reads and writes (resplit: its source's)."""
    return config.cache_dir or fs.join(config.output_dir, "cache")


class BuildDataset(beam.PTransform):
    """Pipeline root -> the whole dataset, staged under ``staging``.

    Returns the dict of the stages' PCollections (for tests and composition):
    ``selected``, ``excluded``, ``features``, ``pca``, ``quantizer``,
    ``records``, ``written``, ``failures``, ``counts``.
    """

    def __init__(self, config: BuildConfig, staging: str, model_info: dict,
                 progress_dir: Optional[str] = None,
                 quality_frames: int = DEFAULT_QUALITY_FRAMES):
        super().__init__()
        if not model_info:
            raise ValueError("BuildDataset needs the feature model's info (name, source, "
                             "sha256, random) for the cache and artifacts/model.json")
        if not staging:
            raise ValueError("BuildDataset needs a staging folder (OUT/.tmp/build)")
        self.config, self.staging = config, staging
        self.model_info, self.progress_dir = model_info, progress_dir
        self.quality_frames = quality_frames

    def expand(self, root):
        c, staging, progress_dir = self.config, self.staging, self.progress_dir
        sel = root | "Select" >> SelectVideos(c.videos, c.entities, c.ratings, c.vocab,
                                              output_dir=fs.join(staging, SELECTION_DIR))
        _ = (sel.selected
             | "CountSelected" >> beam.combiners.Count.Globally()
             | "ProgressTotal" >> beam.Map(
                 lambda n: ProgressLog(progress_dir).record("total", n)))
        feats = sel.selected | "Features" >> CachedOrExtract(
            c.extraction(self.model_info), cache_dir=cache_dir_of(c),
            tmp_dir=fs.join(pio.tmp_root(c.output_dir), "cache"), model_info=self.model_info,
            progress_dir=progress_dir, source_name=c.resplit_from or "")
        features = feats["features"]
        fitted = features | "Fit" >> FitCompression(c.n_components, c.quantizer)
        encoded = features | "Encode" >> EncodeVideos(fitted["pca"], fitted["quantizer"])
        failures = ((feats["failures"], encoded["failures"])
                    | "AllFailures" >> beam.Flatten())
        _ = features | "Artifacts" >> WriteArtifacts(staging, fitted["pca"],
                                                     fitted["quantizer"], self.quality_frames)
        counts = ({"records": encoded["records"], "written": encoded["written"],
                   "failures": failures, "excluded": sel.excluded,
                   "accounting": sel.accounting}
                  | "Write" >> WriteDataset(staging, pio.dataset_prefixes(), c.num_shards))
        return {"selected": sel.selected, "excluded": sel.excluded, "features": features,
                "pca": fitted["pca"], "quantizer": fitted["quantizer"],
                "records": encoded["records"], "written": encoded["written"],
                "failures": failures, "counts": counts}
