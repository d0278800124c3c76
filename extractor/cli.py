"""``run_pipeline.py extract``: Inception-v3 frame features for the videos of a manifest.

    python run_pipeline.py extract --videos MANIFEST --output_dir OUT
        [--weights W] [--batch_size N] (--no_compress | --artifacts DIR [--quantizer uniform])
        [--fps 1] [--max_seconds 360] [--decode_timeout_s S] [--on_decode_error keep|fail]
        [--num_shards K] [--precision P] [--decode_device cpu|cuda] [--thumbnails N]
        [--input_range R] [Beam flags]

MANIFEST is the vocab room's CSV/JSONL manifest; ``video_id,uri`` suffice
(``labels``, integer indices separated by ``;``, are copied when given).

This module parses the flags into a ``pipeline.config.ExtractConfig``; the
run is the build's own extraction, encoding and writing
(``pipeline.extract.ExtractVideos``), staged under ``OUT/.tmp/extract/`` and
published by ``pipeline.launch.run_extract``, ``model.json`` last. Outputs in OUT:

* ``--no_compress``: ``features-SSSSS-of-NNNNN.tfrecord``, raw float features
  (``pipeline.schema.encode_raw_feature_example``).
* ``--artifacts DIR``: the compressed YouTube-8M layout,
  ``frame-SSSSS-of-NNNNN.tfrecord`` and ``video-SSSSS-of-NNNNN.tfrecord``
  (``compression.codec.encode_frames`` with the PCA and quantizer of a build's
  ``artifacts/`` folder, or of the released ``mean.npy``/``eigenvecs.npy``/
  ``eigenvals.npy`` with ``--quantizer uniform``).
* ``failures.jsonl``: one ``FailureRecord`` (``video_id``, ``uri``, ``stage``,
  ``kind``, ``error``) per video that could not be used, sorted by video id;
  ``model.json``: the weights info, sampling settings and the run's counts.

Exit status: 0 when the run completed and at least one video succeeded; 1 when
every video failed (there is nothing to use; failures.jsonl says why); 2 for
bad arguments or inputs.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from yt8m.pipeline import audio as audio_lib
from yt8m import fs
from yt8m.extractor.weights import WeightsError
from yt8m.pipeline import report
from yt8m.pipeline.config import ExtractConfig, UsageError, add_decode_flags, check_thumbnails

EXIT_OK = 0
EXIT_NOTHING_EXTRACTED = 1
EXIT_BAD_INPUT = 2


def _launcher():
    # The launcher imports the pipeline's stages and, with them, TensorFlow:
    # only after the flags are parsed, so that --help and flag errors are instant.
    from yt8m.pipeline import launch
    return launch


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
                   help="retired: the same as --precision float16")
    add_decode_flags(p, 0)
    p.add_argument("--input_range", choices=("symmetric", "unit", "uint8"),
                   help="override the input scaling the weights source gets by default")
    audio_lib.add_arguments(p)
    return p


def parse(argv: Sequence[str]) -> ExtractConfig:
    """The ``ExtractConfig`` of these flags; ``UsageError`` for invalid values."""
    ns, beam_args = build_parser().parse_known_args(list(argv))
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
    precision = ns.precision
    if ns.mixed_precision:
        if precision not in ("float32", "float16"):
            raise UsageError(f"--mixed_precision (float16) contradicts --precision {precision}: "
                             f"pass --precision only")
        precision = "float16"
    try:
        check_thumbnails(ns.thumbnails)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return ExtractConfig(videos=ns.videos, output_dir=ns.output_dir, weights=ns.weights,
                         batch_size=ns.batch_size, artifacts=ns.artifacts,
                         quantizer=ns.quantizer, fps=ns.fps, max_seconds=ns.max_seconds,
                         decode_timeout_s=ns.decode_timeout_s,
                         on_decode_error=ns.on_decode_error, num_shards=ns.num_shards,
                         input_range=ns.input_range, beam_args=list(beam_args),
                         thumbnails=ns.thumbnails, decode_device=ns.decode_device,
                         precision=precision,
                         audio=ns.audio, audio_weights=ns.audio_weights, audio_pca=ns.audio_pca)


def run(argv: Optional[Sequence[str]] = None, test_pipeline=None):
    """Run the extract pipeline; returns ``(PipelineResult, summary dict)``."""
    outcome = _launcher().run_extract(parse(list(argv or [])), test_pipeline=test_pipeline)
    return outcome.result, outcome.summary


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
        return EXIT_BAD_INPUT
    ok, bad = summary["succeeded"], summary["failed"]
    print(report.extract_summary(ok, bad, fs.join(summary["output_dir"], "failures.jsonl")))
    if ok == 0:
        print(f"run_pipeline.py extract: error: {report.extract_failed_message(bad)}",
              file=sys.stderr)
        return EXIT_NOTHING_EXTRACTED
    return EXIT_OK
