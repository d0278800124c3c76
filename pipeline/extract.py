"""``ExtractVideos``: ``extract`` as one Beam pipeline, made of the build's own stages.

    manifest --ReadVideos--> Video (first line of each id), FailureRecord (bad rows, duplicates)
        --Features (pipeline.features.CachedOrExtract, no cache)--> VideoFeatures, FailureRecord
        --Encode (pipeline.encode.EncodeVideos: compressed with a build's or the
                  released PCA and quantizer, or raw)--> records
        --Write (pipeline.write.WriteDataset)--> staged shards, failures.jsonl, counts.json

The extraction, encoding and writing are the build's transforms, so
``extract --artifacts OUT/artifacts`` gives the very bytes ``build`` wrote for
the same video. Everything is staged under ``OUT/.tmp/extract/``;
``pipeline.launch.run_extract`` publishes it and writes ``model.json`` last.
"""
from __future__ import annotations

from typing import Optional

import apache_beam as beam

from yt8m import compression, fs
from yt8m.pipeline import io as pio
from yt8m.pipeline.config import ExtractConfig, UsageError
from yt8m.pipeline.encode import EncodeVideos
from yt8m.pipeline.features import CachedOrExtract
from yt8m.pipeline.write import WriteDataset
from yt8m.records import FailureRecord, Video
from yt8m.vocab.manifest import iter_manifest

RELEASED_PCA_FILES = ("mean.npy", "eigenvecs.npy", "eigenvals.npy")


# ---------------------------------------------------------------------------
# Manifest -> Videos (inside the pipeline, so a huge manifest is streamed)
# ---------------------------------------------------------------------------
def manifest_videos(path: str):
    """Manifest rows as ``Video``s (no split), or ``manifest`` failures for malformed rows."""
    for row in iter_manifest(path, require_metadata=False):
        if row.ok:
            yield Video(row.video_id, row.uri, labels=row.labels, line=row.line)
        else:
            yield beam.pvalue.TaggedOutput("failures", FailureRecord(
                row.video_id, row.uri, "manifest", "malformed_row",
                f"{path} line {row.line}: {row.error}"))


def first_of_duplicates(kv):
    """One video per id (its first manifest line); later lines become failures."""
    vid, videos = kv
    videos = sorted(videos, key=lambda v: v.line)
    yield videos[0]
    for v in videos[1:]:
        yield beam.pvalue.TaggedOutput("failures", v.failure(
            "manifest", "duplicate_id",
            f"duplicate video_id {vid!r} on line {v.line} (first on line {videos[0].line}, "
            f"which is the one extracted); remove the duplicate"))


class ReadVideos(beam.PTransform):
    """Pipeline root -> ``{"videos": Video, "failures": FailureRecord}`` from a manifest."""

    def __init__(self, manifest: str):
        super().__init__()
        if not manifest:
            raise ValueError("ReadVideos needs the manifest's path")
        self.manifest = manifest

    def expand(self, root):
        rows = (root
                | "ManifestPath" >> beam.Create([self.manifest])
                | "ReadManifest" >> beam.FlatMap(manifest_videos).with_outputs(
                    "failures", main="videos"))
        unique = (rows.videos
                  | "KeyById" >> beam.Map(lambda v: (v.video_id, v))
                  | "GroupById" >> beam.GroupByKey()
                  | "DropDuplicates" >> beam.FlatMap(first_of_duplicates).with_outputs(
                      "failures", main="videos"))
        failures = (rows.failures, unique.failures) | "ManifestFailures" >> beam.Flatten()
        return {"videos": unique.videos, "failures": failures}


# ---------------------------------------------------------------------------
# Compression artifacts: a build's, or the released YouTube-8M PCA
# ---------------------------------------------------------------------------
def artifacts_layout(artifacts: str, quantizer: Optional[str]) -> str:
    """'build' (pca.npz + quantizer.npz) or 'released' (the YouTube-8M PCA files)."""
    if fs.exists(fs.join(artifacts, "pca.npz")):
        if quantizer is None and not fs.exists(fs.join(artifacts, "quantizer.npz")):
            raise UsageError(f"--artifacts {artifacts!r} has pca.npz but no quantizer.npz: "
                             f"pass a build's complete artifacts/ folder, or --quantizer uniform")
        return "build"
    if all(fs.exists(fs.join(artifacts, f)) for f in RELEASED_PCA_FILES):
        if quantizer != "uniform":
            raise UsageError(f"--artifacts {artifacts!r} holds the released YouTube-8M PCA "
                             f"({', '.join(RELEASED_PCA_FILES)}), which comes without a "
                             f"quantizer: add --quantizer uniform")
        return "released"
    raise UsageError(f"--artifacts {artifacts!r} holds neither pca.npz (a build's artifacts/ "
                     f"folder) nor {', '.join(RELEASED_PCA_FILES)} (the released YouTube-8M "
                     f"PCA): pass one of those folders, or --no_compress for raw features")


def load_pca(artifacts: str, quantizer: Optional[str]) -> compression.PCAWhitening:
    if artifacts_layout(artifacts, quantizer) == "build":
        return compression.PCAWhitening.load(fs.join(artifacts, "pca.npz"))
    return compression.PCAWhitening.from_yt8m(artifacts)


def load_quantizer(artifacts: str, quantizer: Optional[str]) -> compression.Quantizer:
    if quantizer == "uniform":
        return compression.Quantizer.uniform()
    return compression.Quantizer.load(fs.join(artifacts, "quantizer.npz"))


def record_prefixes(compressed: bool) -> dict:
    """``extract``'s shard prefixes by record tag: flat in OUT, no split."""
    kinds = pio.RECORD_KINDS if compressed else (pio.RAW_KIND,)
    return {pio.record_tag(k): k for k in kinds}


# ---------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------
class ExtractVideos(beam.PTransform):
    """Pipeline root -> ``extract``'s outputs, staged under ``staging`` (module docstring)."""

    def __init__(self, config: ExtractConfig, staging: str, audio=None):
        super().__init__()
        # compression.audio.AudioCompression when audio features are written.
        self.audio = audio
        if not staging:
            raise ValueError("ExtractVideos needs a staging folder (OUT/.tmp/extract)")
        self.config, self.staging = config, staging

    def expand(self, root):
        c = self.config
        read = root | "ReadVideos" >> ReadVideos(c.videos)
        # No cache here: the thumbnails (if asked for) go below OUT/thumbnails/.
        feats = read["videos"] | "Features" >> CachedOrExtract(
            c.extraction(), thumbnails_dir=c.output_dir)
        if c.compressed:
            # Loaded once, at the start of the run, and handed to the encoder as
            # side inputs, exactly as a build hands it the PCA it has just fit.
            pca = (root | "PCAPath" >> beam.Create([c.artifacts])
                   | "LoadPCA" >> beam.Map(load_pca, c.quantizer))
            quant = (root | "QuantizerPath" >> beam.Create([c.artifacts])
                     | "LoadQuantizer" >> beam.Map(load_quantizer, c.quantizer))
            encoded = feats["features"] | "Encode" >> EncodeVideos(pca, quant, splits=(None,),
                                                                   audio=self.audio)
        else:
            encoded = feats["features"] | "Encode" >> EncodeVideos(raw=True, splits=(None,))
        failures = ((read["failures"], feats["failures"], encoded["failures"])
                    | "AllFailures" >> beam.Flatten())
        return ({"records": encoded["records"], "written": encoded["written"],
                 "failures": failures}
                | "Write" >> WriteDataset(self.staging, record_prefixes(c.compressed),
                                          c.num_shards))
