"""Running the jobs: check the inputs, run the pipeline, publish what it staged, marker last.

``run_build(BuildConfig)`` (``build`` and ``resplit``) and
``run_extract(ExtractConfig)`` (``extract``) follow the same steps:

1. check the inputs before any work (a missing file or an empty manifest is
   an error naming the input; nothing in OUT changes);
2. run the pipeline (``pipeline.build.BuildDataset``,
   ``pipeline.extract.ExtractVideos``); it writes only into the staging
   folder ``OUT/.tmp/<job>/`` and the feature cache, so a kill or a crash
   leaves OUT as it was;
3. publish: delete the previous run's marker (``dataset_info.json``,
   ``model.json``), move the staged shards and files into OUT by rename
   (``pipeline.io``), write the marker last, remove the staging folder. A kill
   while publishing leaves whole files and no marker; the rerun publishes again.

``build_and_report`` is the ``build``/``resplit`` command once its flags are
parsed: it runs the build, prints the closing summary and returns the exit status.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Optional

import apache_beam as beam

from yt8m import counters, fs
from yt8m.extractor.weights import weights_info
from yt8m.pipeline import io as pio
from yt8m.pipeline import audio as audio_lib
from yt8m.pipeline import report
from yt8m.pipeline.artifacts import ARTIFACT_FILES, ARTIFACTS_DIR, FIT_JSON
from yt8m.pipeline.build import SELECTION_DIR, BuildDataset, cache_dir_of
from yt8m.pipeline.config import (EXIT_BAD_INPUT, EXIT_NOTHING_WRITTEN, EXIT_OK,
                                  FRAME_SAMPLING, BuildConfig, ExtractConfig, UsageError)
from yt8m.pipeline.extract import ExtractVideos, artifacts_layout, record_prefixes
from yt8m.pipeline.progress import ProgressMonitor
from yt8m.pipeline.runner import is_local, pipeline_options
from yt8m.pipeline.write import COUNTS_JSON, FAILURES_JSONL
from yt8m.trainer.train import train_on_build
from yt8m.vocab.manifest import iter_manifest

BUILD_JOB = "build"
EXTRACT_JOB = "extract"
INPUTS_DIR = "inputs"                  # below the staging folder -> OUT/private/inputs
PUBLISHED_INPUTS = ("private", "inputs")
MODEL_JSON = "model.json"
# flag/field -> the copy's name in OUT/private/inputs/
INPUT_NAMES = {"videos": "manifest", "entities": "entities", "ratings": "ratings"}

RANDOM_NOTICE = """
******************************************************************************
*  --weights random: these features come from an UNTRAINED network.          *
*  They are for tests and smoke runs only; model.json records random: true. *
******************************************************************************
"""


class BuildError(Exception):
    """The build as a whole cannot go on (the pipeline failed, nothing to write)."""


@dataclass
class BuildOutcome:
    result: object            # beam PipelineResult
    info: dict                # the content of dataset_info.json
    train_metrics: Optional[dict] = None


@dataclass
class ExtractOutcome:
    result: object            # beam PipelineResult
    summary: dict             # succeeded, failed, output_dir


def _run(p: beam.Pipeline, what: str, progress_dir: Optional[str] = None):
    with ProgressMonitor(progress_dir):
        result = p.run()
        state = result.wait_until_finish()
    if str(state) not in ("DONE", "PipelineState.DONE"):
        raise BuildError(f"the {what} pipeline ended in state {state}; nothing was published "
                         f"(rerun the same command: cached features are kept)")
    return result


# ---------------------------------------------------------------------------
# build and resplit
# ---------------------------------------------------------------------------
def resolve_model_info(cfg: BuildConfig) -> dict:
    """The feature model's identity, without building the network (fails fast)."""
    if cfg.model_info:
        return dict(cfg.model_info)
    # `auto` precision is resolved here, once per run: the cache key, model.json
    # and dataset_info.json all carry the resolved value.
    info = dict(weights_info(cfg.weights, precision=cfg.precision))
    info["sampling"] = dict(FRAME_SAMPLING)
    return info


def check_build_inputs(cfg: BuildConfig) -> None:
    for flag, path in (("--videos", cfg.videos), ("--entities", cfg.entities),
                       ("--ratings", cfg.ratings)):
        if path is not None and not fs.exists(path):
            raise FileNotFoundError(f"{flag} {path!r} does not exist: pass the path of an "
                                    f"existing file (local or gs://)")
    # An empty manifest is a mistake in the inputs, not a build with nothing
    # to write: say so before a pipeline starts (one row is read, not the file).
    if next(iter(iter_manifest(cfg.videos)), None) is None:
        raise ValueError(f"--videos {cfg.videos!r} has no data rows (an empty file or only a "
                         f"header): pass a manifest with one row per video (video_id, uri, "
                         f"views, duration_s, entities)")


def stage_inputs(cfg: BuildConfig, staging: str) -> dict:
    """Copy manifest, entities, ratings into the staging folder (-> OUT/private/inputs/)."""
    out = {}
    for key, name in INPUT_NAMES.items():
        src = getattr(cfg, key)
        if src is None:
            out[key] = None
            continue
        filename = name + (os.path.splitext(src)[1] or ".csv")
        fs.copy_file(src, fs.join(staging, INPUTS_DIR, filename))
        out[key] = {"source": src, "copy": "/".join(PUBLISHED_INPUTS + (filename,))}
    return out


def run_build(cfg: BuildConfig, test_pipeline=None) -> BuildOutcome:
    """Run a build (or a resplit) to the end and publish it; see the module docstring."""
    t0 = time.time()
    check_build_inputs(cfg)
    model_info = resolve_model_info(cfg)
    out = cfg.output_dir
    fs.mkdirs(out)
    staging = pio.staging_dir(out, BUILD_JOB)
    fs.delete(staging)
    inputs = stage_inputs(cfg, staging)
    options = pipeline_options(cfg.beam_args)
    # Progress goes through local files (see pipeline.progress): local runs only.
    progress_dir = (fs.join(staging, "progress")
                    if is_local(options) and not fs.is_remote(out) else None)
    p = test_pipeline if test_pipeline is not None else beam.Pipeline(options=options)
    _ = p | "BuildDataset" >> BuildDataset(cfg, staging, model_info, progress_dir)
    result = _run(p, "build", progress_dir if cfg.progress else None)
    info = publish_build(cfg, staging, model_info, inputs, t0, counters.read(result))
    metrics = None
    if cfg.train_model:
        metrics = train_baseline(out, cfg.train_model)
    return BuildOutcome(result=result, info=info, train_metrics=metrics)


def _publish_selection_and_inputs(staging: str, out: str) -> None:
    pio.publish_tree(fs.join(staging, SELECTION_DIR), out)
    pio.publish_tree(fs.join(staging, INPUTS_DIR), fs.join(out, *PUBLISHED_INPUTS))


def publish_build(cfg: BuildConfig, staging: str, model_info: dict, inputs: dict,
                  t0: float, counter_values: Optional[dict] = None) -> dict:
    """Move the staged dataset into OUT and write dataset_info.json last."""
    out = cfg.output_dir
    counts = fs.read_json(fs.join(staging, COUNTS_JSON))
    fit_path = fs.join(staging, FIT_JSON)
    fit = fs.read_json(fit_path) if fs.exists(fit_path) else {}
    # dataset_info.json vouches for a complete dataset: from here on this run
    # changes OUT, so the previous build's marker goes first.
    fs.delete(fs.join(out, pio.DATASET_INFO))
    if counts["written"] == 0:
        # Publish what explains it, then fail: there is no dataset to write.
        # The staged shards (empty) and artifacts stay out of OUT.
        pio.publish_files(staging, out, [FAILURES_JSONL])
        _publish_selection_and_inputs(staging, out)
        fs.delete(staging)
        raise BuildError(report.no_video_written_message(out, counts, fit))
    fs.write_json(fs.join(staging, ARTIFACTS_DIR, MODEL_JSON), model_info)
    artifacts = [f"{ARTIFACTS_DIR}/{name}" for name in ARTIFACT_FILES + (MODEL_JSON,)]
    sizes = pio.publish(staging, out, [FAILURES_JSONL, *artifacts])
    _publish_selection_and_inputs(staging, out)
    info = report.dataset_info(
        output_dir=out, counts=counts, sizes=sizes, fit=fit, flags=cfg.flags(),
        model_info=model_info, inputs=inputs, cache_dir=cache_dir_of(cfg),
        counter_values=counter_values or {}, entities=_count_vocabulary(out),
        resplit_from=cfg.resplit_from, elapsed_s=time.time() - t0,
        starter_code=build_starter_code(out, _count_vocabulary(out)))
    fs.write_json(fs.join(out, pio.DATASET_INFO), info)
    fs.delete(staging)
    return info


def build_starter_code(out: str, entities: Optional[int]) -> dict:
    """dataset_info.json's ``starter_code``, from the published quantizer and records."""
    from yt8m.compression.quantize import Quantizer
    from yt8m.pipeline.starter_code import starter_code_section
    qpath = fs.join(out, ARTIFACTS_DIR, "quantizer.npz")
    quantizer = Quantizer.load(qpath) if fs.exists(qpath) else None
    max_frames = int(FRAME_SAMPLING["fps"] * FRAME_SAMPLING["max_seconds"])
    return starter_code_section(out, quantizer, entities, max_frames)


def _count_vocabulary(out: str) -> Optional[int]:
    path = fs.join(out, "vocabulary.csv")
    if not fs.exists(path):
        return None
    return max(0, len([ln for ln in fs.read_text(path).splitlines() if ln.strip()]) - 1)


def train_baseline(out: str, model: str) -> Optional[dict]:
    """``build --train MODEL``: the trainer's baseline on the dataset just written."""
    return train_on_build(out, model, fs.join(out, f"train_{model}"))


def build_and_report(cfg: BuildConfig, stream=None) -> int:
    """Run a build, print its summary (or why it failed) on ``stream``; the exit status."""
    stream = stream if stream is not None else sys.stderr
    try:
        outcome = run_build(cfg)
    except BuildError as e:
        print(f"error: {e}", file=stream)
        return EXIT_NOTHING_WRITTEN
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=stream)
        return EXIT_BAD_INPUT
    print(report.summary_text(outcome.info), file=stream)
    if outcome.train_metrics is not None:
        print("baseline (validate): " + json.dumps(outcome.train_metrics, sort_keys=True),
              file=stream)
    return EXIT_OK


# ---------------------------------------------------------------------------
# extract
# ---------------------------------------------------------------------------
def check_extract_inputs(cfg: ExtractConfig) -> None:
    if not fs.exists(cfg.videos):
        raise UsageError(f"--videos {cfg.videos!r} does not exist: pass a CSV or JSONL "
                         f"manifest with video_id,uri columns")
    if cfg.artifacts:
        if not fs.exists(cfg.artifacts):
            raise UsageError(f"--artifacts {cfg.artifacts!r} does not exist: pass a build's "
                             f"artifacts/ folder or the released YouTube-8M PCA folder")
        artifacts_layout(cfg.artifacts, cfg.quantizer)


def run_extract(cfg: ExtractConfig, test_pipeline=None) -> ExtractOutcome:
    """Run ``extract`` and publish its outputs, model.json last; see the module docstring."""
    check_extract_inputs(cfg)
    info = weights_info(cfg.weights, input_range=cfg.input_range, precision=cfg.precision,
                        mixed_precision=cfg.mixed_precision)
    if info["random"]:
        print(RANDOM_NOTICE, file=sys.stderr)
    plan, audio_codec = audio_lib.finish_plan(
        audio_lib.resolve_audio(cfg.audio, cfg.audio_weights), cfg.audio_pca, cfg.compressed)
    if plan.notice:
        print(plan.notice, file=sys.stderr)
    cfg = audio_lib.with_plan(cfg, plan)
    out = cfg.output_dir
    fs.mkdirs(out)
    staging = pio.staging_dir(out, EXTRACT_JOB)
    fs.delete(staging)
    p = test_pipeline if test_pipeline is not None else beam.Pipeline(
        options=pipeline_options(cfg.beam_args))
    _ = p | "ExtractVideos" >> ExtractVideos(cfg, staging, audio=audio_codec)
    result = _run(p, "extract")
    counts = fs.read_json(fs.join(staging, COUNTS_JSON))
    summary = {"succeeded": counts["written"], "failed": counts["failed"], "output_dir": out}
    model_json = dict(info)
    model_json["sampling"] = {"fps": cfg.fps, "max_seconds": cfg.max_seconds,
                              "size": FRAME_SAMPLING["size"]}
    model_json["extract"] = {"videos": cfg.videos, "batch_size": cfg.batch_size,
                             "compressed": cfg.compressed, "artifacts": cfg.artifacts,
                             "quantizer": cfg.quantizer, "succeeded": summary["succeeded"],
                             "failed": summary["failed"],
                             "precision": info.get("precision"),
                             "decode_device": cfg.decode_device}
    values = counters.read(result)
    model_json["decode"] = report.decode_section(values, cfg.decode_device)
    model_json["thumbnails"] = report.thumbnails_section(values, cfg.thumbnails, out)
    model_json["audio"] = audio_info(plan, audio_codec)
    publish_extract(staging, out, cfg.compressed, model_json)
    return ExtractOutcome(result=result, summary=summary)


def audio_info(plan, audio_codec) -> dict:
    """What dataset_info.json / model.json record under ``audio``: the plan, the
    VGGish weights' identity and the post-processing."""
    d = plan.to_info()
    if plan.enabled:
        from yt8m.extractor.vggish import audio_weights_info
        d["model"] = audio_weights_info(plan.weights)
        d["compression"] = audio_codec.info() if audio_codec is not None else None
    return d


def publish_extract(staging: str, out: str, compressed: bool, model_json: dict) -> None:
    """Move extract's staged shards and failures.jsonl into OUT; model.json last."""
    fs.delete(fs.join(out, MODEL_JSON))
    pio.publish(staging, out, [FAILURES_JSONL],
                prefixes=list(record_prefixes(compressed).values()))
    fs.write_json(fs.join(out, MODEL_JSON), model_json)
    fs.delete(staging)
