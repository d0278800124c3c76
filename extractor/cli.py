"""``run_pipeline.py extract``: Inception-v3 frame features for the videos of a manifest.

    python run_pipeline.py extract --videos MANIFEST --output_dir OUT
        [--weights W] [--batch_size N] (--no_compress | --artifacts DIR [--quantizer uniform])
        [--fps 1] [--max_seconds 360] [--decode_timeout_s S] [--on_decode_error keep|fail]
        [--num_shards K] [--mixed_precision] [--input_range R] [Beam flags]

MANIFEST is the vocab room's CSV/JSONL manifest; ``video_id,uri`` suffice
(``labels``, integer indices separated by ``;``, are copied when given).

Outputs in OUT (each appears whole: Beam's file sinks write to a temp folder
and rename; small files are written beside and renamed):

* ``--no_compress``: ``features-SSSSS-of-NNNNN.tfrecord``, raw float features
  (``pipeline.schema.encode_raw_feature_example``).
* ``--artifacts DIR``: the compressed YouTube-8M layout,
  ``frame-SSSSS-of-NNNNN.tfrecord`` and ``video-SSSSS-of-NNNNN.tfrecord``
  (``compression.codec.encode_frames`` with the PCA and quantizer of a build's
  ``artifacts/`` folder, or of the released ``mean.npy``/``eigenvecs.npy``/
  ``eigenvals.npy`` with ``--quantizer uniform``).
* ``failures.jsonl``: one ``{"video_id", "uri", "stage", "error"}`` per video
  that could not be used (sorted by video id), ``model.json``: the weights
  info and sampling settings.

Exit status: 0 when the run completed and at least one video succeeded; 1 when
every video failed (there is nothing to use; failures.jsonl says why); 2 for
bad arguments or inputs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from typing import Optional, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

from yt8m.extractor.weights import WeightsError
from yt8m.pipeline import schema
from yt8m.pipeline.runner import pipeline_options


NAMESPACE = "yt8m"
SUCCEEDED = "extract_cli_succeeded"
FAILED = "extract_cli_failed"
SHARD_TEMPLATE = "-SSSSS-of-NNNNN"
SUFFIX = ".tfrecord"
RELEASED_PCA_FILES = ("mean.npy", "eigenvecs.npy", "eigenvals.npy")

RANDOM_NOTICE = """
******************************************************************************
*  --weights random: these features come from an UNTRAINED network.          *
*  They are for tests and smoke runs only; model.json records random: true. *
******************************************************************************
"""


class UsageError(ValueError):
    """Bad flags or inputs; the message says what to pass."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_pipeline.py extract",
        description="Extract Inception-v3 frame features (1 frame/s, first 360 s) for the "
                    "videos of a manifest. Unknown flags go to Beam's PipelineOptions.")
    p.add_argument("--videos", required=True, help="manifest (CSV or JSONL) with video_id,uri")
    p.add_argument("--output_dir", required=True, help="output folder (local or gs://)")
    p.add_argument("--weights", default="imagenet",
                   help="imagenet | a .keras/.h5 file | a TF-Hub handle or SavedModel dir | "
                        "yt8m-graph:classify_image_graph_def.pb | random (tests only)")
    p.add_argument("--batch_size", type=int, default=32, help="frames per model call")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--no_compress", action="store_true",
                      help="write raw float features (features-*.tfrecord)")
    mode.add_argument("--artifacts", metavar="DIR",
                      help="a build's artifacts/ folder (pca.npz, quantizer.npz) or the "
                           "released YouTube-8M PCA (mean.npy, eigenvecs.npy, eigenvals.npy)")
    p.add_argument("--quantizer", choices=("uniform",),
                   help="with --artifacts: use the uniform 8-bit quantizer of the released "
                        "dataset (required for the released PCA files)")
    p.add_argument("--fps", type=float, default=1.0, help="sampled frames per second")
    p.add_argument("--max_seconds", type=float, default=360.0,
                   help="sample only the first N seconds")
    p.add_argument("--decode_timeout_s", type=float, default=None,
                   help="give up on a video whose decode takes longer (reported as a failure)")
    p.add_argument("--on_decode_error", choices=("keep", "fail"), default="keep",
                   help="a video that fails part way: keep the frames decoded before the "
                        "error (with a warning) or report it as a failure")
    p.add_argument("--num_shards", type=int, default=0,
                   help="output shards per kind (0: the runner decides)")
    p.add_argument("--mixed_precision", action="store_true",
                   help="run Keras weights in mixed_float16 (GPUs)")
    p.add_argument("--input_range", choices=("symmetric", "unit", "uint8"),
                   help="override the input scaling the weights source gets by default")
    return p


# ---------------------------------------------------------------------------
# Manifest -> video dicts (inside the pipeline, so a huge manifest is streamed)
# ---------------------------------------------------------------------------
def _manifest_videos(path: str):
    """Manifest rows as video dicts, or failure records for malformed rows."""
    from yt8m.vocab.manifest import iter_manifest
    for row in iter_manifest(path, require_metadata=False):
        if row.ok:
            yield {"video_id": row.video_id, "uri": row.uri,
                   "labels": list(row.labels) if row.labels is not None else None,
                   "line": row.line}
        else:
            yield beam.pvalue.TaggedOutput("failures", {
                "video_id": row.video_id, "uri": row.uri, "stage": "manifest",
                "error": f"{path} line {row.line}: {row.error}"})


def _first_of_duplicates(kv):
    """One video per id (its first manifest line); later lines become failures."""
    vid, rows = kv
    rows = sorted(rows, key=lambda r: r["line"])
    yield rows[0]
    for r in rows[1:]:
        yield beam.pvalue.TaggedOutput("failures", {
            "video_id": vid, "uri": r["uri"], "stage": "manifest",
            "error": f"duplicate video_id {vid!r} on line {r['line']} (first on line "
                     f"{rows[0]['line']}, which is the one extracted); remove the duplicate"})


# ---------------------------------------------------------------------------
# Compression artifacts
# ---------------------------------------------------------------------------
def _join(base: str, *parts: str) -> str:
    return FileSystems.join(base, *parts)


def artifacts_layout(artifacts: str, quantizer: Optional[str]) -> str:
    """'build' (pca.npz + quantizer.npz) or 'released' (the YouTube-8M PCA files)."""
    if FileSystems.exists(_join(artifacts, "pca.npz")):
        if quantizer is None and not FileSystems.exists(_join(artifacts, "quantizer.npz")):
            raise UsageError(f"--artifacts {artifacts!r} has pca.npz but no quantizer.npz: "
                             f"pass a build's complete artifacts/ folder, or --quantizer uniform")
        return "build"
    if all(FileSystems.exists(_join(artifacts, f)) for f in RELEASED_PCA_FILES):
        if quantizer != "uniform":
            raise UsageError(f"--artifacts {artifacts!r} holds the released YouTube-8M PCA "
                             f"({', '.join(RELEASED_PCA_FILES)}), which comes without a "
                             f"quantizer: add --quantizer uniform")
        return "released"
    raise UsageError(f"--artifacts {artifacts!r} holds neither pca.npz (a build's artifacts/ "
                     f"folder) nor {', '.join(RELEASED_PCA_FILES)} (the released YouTube-8M "
                     f"PCA): pass one of those folders, or --no_compress for raw features")


def load_compression(artifacts: str, quantizer: Optional[str]):
    """(PCAWhitening, Quantizer) from ``artifacts`` (see ``artifacts_layout``)."""
    from yt8m import compression
    layout = artifacts_layout(artifacts, quantizer)
    if layout == "build":
        pca = compression.PCAWhitening.load(_join(artifacts, "pca.npz"))
    else:
        pca = compression.PCAWhitening.from_yt8m(artifacts)
    if quantizer == "uniform":
        quant = compression.Quantizer.fit(None, method="uniform")
    else:
        quant = compression.Quantizer.load(_join(artifacts, "quantizer.npz"))
    return pca, quant


class EncodeRawFn(beam.DoFn):
    """(video_id, features dict) -> raw-feature SequenceExample bytes."""

    def setup(self):
        self._ok = Metrics.counter(NAMESPACE, SUCCEEDED)

    def process(self, kv):
        vid, out = kv
        data = schema.encode_raw_feature_example(vid, out["features"], out["frame_times"],
                                                 out.get("labels"))
        self._ok.inc()
        yield data


class EncodeCompressedFn(beam.DoFn):
    """(video_id, features dict) -> frame record (main) and video record (``video``).

    The PCA and quantizer are loaded once per worker in ``setup`` from the
    artifacts folder (not pickled into the pipeline graph).
    """

    def __init__(self, artifacts: str, quantizer: Optional[str]):
        self.artifacts, self.quantizer = artifacts, quantizer

    def setup(self):
        from yt8m.compression import codec
        self._codec = codec
        self._pca, self._quant = load_compression(self.artifacts, self.quantizer)
        self._ok = Metrics.counter(NAMESPACE, SUCCEEDED)

    def process(self, kv):
        vid, out = kv
        try:
            q = self._codec.encode_frames(out["features"], self._pca, self._quant)
            # The mean of the dequantized frames, as every writer computes it.
            mean_rgb = self._codec.mean_rgb(q, self._quant)
            frame = schema.encode_frame_example(vid, q, out.get("labels"))
            video = schema.encode_video_example(vid, mean_rgb, out.get("labels"))
        except Exception as e:  # noqa: BLE001 - a per-video problem never stops the run
            yield beam.pvalue.TaggedOutput("failures", {
                "video_id": vid, "uri": out.get("uri"), "stage": "encode",
                "error": f"compressing the features failed: {type(e).__name__}: {e}"})
        else:
            self._ok.inc()
            yield frame
            yield beam.pvalue.TaggedOutput("video", video)


def _count_failure(rec):
    Metrics.counter(NAMESPACE, FAILED).inc()
    return rec


def _failure_lines(records):
    for rec in sorted(records, key=lambda r: (str(r.get("video_id")), r.get("stage", ""))):
        yield json.dumps(rec, sort_keys=True, ensure_ascii=False, default=str)


def _write_tfrecords(pcoll, out: str, kind: str, num_shards: int, label: str):
    """WriteToTFRecord (temp files, then renamed into place), then drop stale shards."""
    written = pcoll | label >> beam.io.WriteToTFRecord(
        _join(out, kind), file_name_suffix=SUFFIX, num_shards=num_shards,
        shard_name_template=SHARD_TEMPLATE)
    return (written
            | f"{label}Names" >> beam.combiners.ToList()
            | f"{label}PruneStale" >> beam.Map(_prune_stale_shards, out, kind))


def _norm(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


def _prune_stale_shards(written: list, out: str, kind: str) -> list:
    """Delete ``kind`` shards left by an earlier run with another shard count.

    Runs after this write has finalized, so the folder only ever holds either
    the old complete set or the new one plus stale names that would otherwise
    mix into a reader's glob.
    """
    keep = {_norm(w) for w in written}
    try:
        found = FileSystems.match([_join(out, f"{kind}-?????-of-?????{SUFFIX}")])[0].metadata_list
    except Exception:  # noqa: BLE001 - Beam raises when a local pattern matches nothing
        found = []
    stale = [m.path for m in found if _norm(m.path) not in keep]
    if stale:
        FileSystems.delete(stale)
    return sorted(keep)


# ---------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------
def build_pipeline(p: beam.Pipeline, ns: argparse.Namespace) -> None:
    from yt8m.extractor.transforms import ExtractFeatures
    out = ns.output_dir
    rows = p | "ManifestPath" >> beam.Create([ns.videos]) | "ReadManifest" >> beam.FlatMap(
        _manifest_videos).with_outputs("failures", main="videos")
    unique = (rows.videos
              | "KeyById" >> beam.Map(lambda v: (v["video_id"], v))
              | "GroupById" >> beam.GroupByKey()
              | "DropDuplicates" >> beam.FlatMap(_first_of_duplicates).with_outputs(
                  "failures", main="videos"))
    extracted = unique.videos | "ExtractFeatures" >> ExtractFeatures(
        ns.weights, batch_size=ns.batch_size, fps=ns.fps, max_seconds=ns.max_seconds,
        decode_timeout_s=ns.decode_timeout_s, on_decode_error=ns.on_decode_error,
        mixed_precision=ns.mixed_precision,
        input_range=ns.input_range)
    failure_sets = [rows.failures, unique.failures, extracted.failures]
    if ns.no_compress:
        records = extracted.features | "EncodeRaw" >> beam.ParDo(EncodeRawFn())
        _write_tfrecords(records, out, "features", ns.num_shards, "WriteFeatures")
    else:
        enc = extracted.features | "EncodeCompressed" >> beam.ParDo(
            EncodeCompressedFn(ns.artifacts, ns.quantizer)).with_outputs(
                "video", "failures", main="frame")
        _write_tfrecords(enc.frame, out, "frame", ns.num_shards, "WriteFrames")
        _write_tfrecords(enc.video, out, "video", ns.num_shards, "WriteVideos")
        failure_sets.append(enc.failures)
    _ = (tuple(failure_sets)
         | "AllFailures" >> beam.Flatten()
         | "CountFailures" >> beam.Map(_count_failure)
         | "CollectFailures" >> beam.combiners.ToList()
         | "SortFailures" >> beam.FlatMap(_failure_lines)
         | "WriteFailures" >> beam.io.WriteToText(
             _join(out, "failures"), file_name_suffix=".jsonl", num_shards=1,
             shard_name_template=""))


def _counter_value(result, name: str) -> int:
    res = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE).with_name(name))
    return int(sum(c.committed or 0 for c in res["counters"]))


def _atomic_write_text(path: str, text: str) -> None:
    parent = path.rsplit("/", 1)[0]
    tmp = _join(parent, f".{uuid.uuid4().hex}.part")
    with FileSystems.create(tmp) as fh:
        fh.write(text.encode("utf-8"))
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def run(argv: Optional[Sequence[str]] = None, test_pipeline=None):
    """Run the extract pipeline; returns ``(PipelineResult, summary dict)``."""
    ns, beam_args = build_parser().parse_known_args(list(argv or []))
    _validate(ns)
    from yt8m.extractor.weights import weights_info
    info = weights_info(ns.weights, input_range=ns.input_range,
                        mixed_precision=ns.mixed_precision)
    if info["random"]:
        print(RANDOM_NOTICE, file=sys.stderr)
    if not FileSystems.exists(ns.output_dir):
        FileSystems.mkdirs(ns.output_dir)
    p = test_pipeline or beam.Pipeline(options=pipeline_options(beam_args))
    build_pipeline(p, ns)
    result = p.run()
    result.wait_until_finish()
    summary = {"succeeded": _counter_value(result, SUCCEEDED),
               "failed": _counter_value(result, FAILED), "output_dir": ns.output_dir}
    model_json = dict(info)
    model_json["sampling"] = {"fps": ns.fps, "max_seconds": ns.max_seconds, "size": 299}
    model_json["extract"] = {"videos": ns.videos, "batch_size": ns.batch_size,
                             "compressed": not ns.no_compress, "artifacts": ns.artifacts,
                             "quantizer": ns.quantizer, "succeeded": summary["succeeded"],
                             "failed": summary["failed"]}
    _atomic_write_text(_join(ns.output_dir, "model.json"),
                       json.dumps(model_json, indent=2, sort_keys=True, default=str) + "\n")
    return result, summary


def _validate(ns: argparse.Namespace) -> None:
    if ns.batch_size < 1:
        raise UsageError(f"--batch_size must be >= 1, got {ns.batch_size}")
    if not ns.fps > 0:
        raise UsageError(f"--fps must be > 0, got {ns.fps}")
    if not ns.max_seconds > 0:
        raise UsageError(f"--max_seconds must be > 0, got {ns.max_seconds}")
    if ns.decode_timeout_s is not None and not ns.decode_timeout_s > 0:
        raise UsageError(f"--decode_timeout_s must be > 0 seconds, got {ns.decode_timeout_s}")
    if ns.num_shards < 0:
        raise UsageError(f"--num_shards must be >= 0, got {ns.num_shards}")
    if ns.quantizer and not ns.artifacts:
        raise UsageError("--quantizer applies to --artifacts only (raw features are not "
                         "quantized): drop it, or pass --artifacts DIR")
    if not FileSystems.exists(ns.videos):
        raise UsageError(f"--videos {ns.videos!r} does not exist: pass a CSV or JSONL "
                         f"manifest with video_id,uri columns")
    if ns.artifacts:
        if not FileSystems.exists(ns.artifacts):
            raise UsageError(f"--artifacts {ns.artifacts!r} does not exist: pass a build's "
                             f"artifacts/ folder or the released YouTube-8M PCA folder")
        artifacts_layout(ns.artifacts, ns.quantizer)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        _, summary = run(argv)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2)
        return int(e.code or 0)
    except (UsageError, WeightsError) as e:
        # Only input problems found before the pipeline runs; a failure inside
        # the pipeline keeps its traceback.
        print(f"run_pipeline.py extract: error: {e}", file=sys.stderr)
        return 2
    ok, bad = summary["succeeded"], summary["failed"]
    print(f"extract: {ok} videos succeeded, {bad} failed"
          + (f" (see {_join(summary['output_dir'], 'failures.jsonl')})" if bad else ""))
    if ok == 0:
        print("run_pipeline.py extract: error: no video could be extracted, so there is "
              "nothing to use; failures.jsonl gives each video's reason" if bad else
              "run_pipeline.py extract: error: the manifest lists no videos", file=sys.stderr)
        return 1
    return 0

