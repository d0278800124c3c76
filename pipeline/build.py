"""The dataset build as one Beam pipeline: ``BuildDataset`` and its stages.

    manifest --Select--> selected videos --CachedOrExtract--> raw features (float16-rounded)
        --FitCompression--> PCA (train frames) -> quantizer (whitened train frames)
        --EncodeSplits (PCA, quantizer as side inputs)--> frame/video records per split
        --WriteDataset--> staged TFRecords, artifacts, failures, counts

Each stage is a composite ``PTransform`` that validates its arguments and labels
its steps. The other rooms provide the pieces: ``vocab.select.SelectVideos``,
``extractor.transforms.ExtractFeatures``, ``compression.beam`` and
``compression.codec.encode_frames``; this module only composes them, keeps the
feature cache (pipeline.cache) and accounts for every manifest row.

``pipeline.cli.run(argv=None, test_pipeline=None) -> PipelineResult`` is the ``build``
entry point (flags: pipeline.cli); ``run_build(BuildConfig)`` the same from
Python; ``resplit`` reuses the same transform with extraction switched off.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from yt8m.pipeline import cache as cache_lib
from yt8m.pipeline import io as pio
from yt8m.pipeline import schema
from yt8m.pipeline.progress import ProgressLog

NAMESPACE = "yt8m"
DEFAULT_QUALITY_FRAMES = 4096
# How frames are sampled (paper section 3.3); part of the cache fingerprint.
FRAME_SAMPLING = {"fps": 1.0, "max_seconds": 360.0, "size": 299}


class BuildError(Exception):
    """The build as a whole cannot go on (bad inputs, nothing to write)."""


def _counter(name: str):
    return Metrics.counter(NAMESPACE, name)


def failure_record(video: dict, stage: str, error: str) -> dict:
    return {"video_id": video.get("video_id"), "uri": video.get("uri"),
            "stage": stage, "error": str(error)}


# Decode warnings by kind: (kind, words that identify it in the message of
# extractor.decode). Kinds are for counting; the messages themselves are kept.
WARNING_KINDS = (
    ("partial_decode", ("decoding stopped",)),
    ("truncated", ("truncated",)),
    ("non_monotonic", ("non-monotonic",)),
    ("missing_timestamps", ("without timestamps",)),
    ("rotation", ("display matrix", "display rotation")),
)


def warning_kind(warning) -> str:
    """A countable kind for one decode warning (``other`` when none matches)."""
    if getattr(warning, "kind", None):
        return warning.kind
    text = str(warning)
    for kind, words in WARNING_KINDS:
        if any(w in text for w in words):
            return kind
    return "other"


def decode_warnings_summary(written, top: int = 5) -> dict:
    """dataset_info.json's ``decode_warnings``: the written videos that decoded with warnings.

    ``videos`` (how many), ``warnings`` (how many messages), ``by_kind`` (videos per
    kind), ``top_reasons`` (the most frequent messages, numbers masked so that
    "stopped at 2.000 s" and "stopped at 3.000 s" count as one) and ``examples``
    (the first videos by id with their messages).
    """
    import re
    warned = sorted((w for w in written if w.get("decode_warnings")),
                    key=lambda w: str(w["video_id"]))
    by_kind: dict = {}
    reasons: dict = {}
    n_warnings = 0
    for w in warned:
        msgs = list(w["decode_warnings"])
        n_warnings += len(msgs)
        for kind in {warning_kind(m) for m in msgs}:
            by_kind[kind] = by_kind.get(kind, 0) + 1
        for m in msgs:
            r = re.sub(r"\d+(\.\d+)?", "N", str(m))[:160]
            reasons[r] = reasons.get(r, 0) + 1
    top_reasons = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return {"videos": len(warned), "warnings": n_warnings,
            "by_kind": dict(sorted(by_kind.items())),
            "top_reasons": [{"reason": r, "count": n} for r, n in top_reasons],
            "examples": [{"video_id": w["video_id"], "warnings": list(w["decode_warnings"])}
                         for w in warned[:top]]}


def failure_reason(rec: dict) -> str:
    """A short, countable reason for a failure: its stage and kind (or the error's start)."""
    if rec.get("kind"):
        return f"{rec.get('stage', '?')}: {rec['kind']}"
    err = str(rec.get("error", "")).split(":")[0].split("(")[0].strip()
    return f"{rec.get('stage', '?')}: {err[:60]}"


# ---------------------------------------------------------------------------
# Stage 1: selection (vocab room)
# ---------------------------------------------------------------------------
class SelectStage(beam.PTransform):
    """Manifest -> selected video dicts, excluded rows; writes the vocabulary files.

    Returns a dict of PCollections: ``selected`` (``{"video_id", "uri", "split",
    "labels", "duration_s"}``), ``excluded`` (rows with a ``reason``) and
    ``accounting`` (one dict: the vocab room's accounting, whose ``rows.total``
    counts every manifest row its reader read, each either selected or excluded;
    the manifest is read once, by the selection).
    """

    def __init__(self, videos: str, entities: str, ratings: Optional[str], output_dir: str,
                 config):
        super().__init__()
        for name, value in (("videos", videos), ("entities", entities),
                            ("output_dir", output_dir)):
            if not value:
                raise ValueError(f"SelectStage needs {name}")
        self.videos, self.entities, self.ratings = videos, entities, ratings
        self.output_dir, self.config = output_dir, config

    def expand(self, root):
        from yt8m.vocab.select import SelectVideos
        sel = root | "SelectVideos" >> SelectVideos(
            self.videos, self.entities, self.ratings, self.config,
            output_dir=self.output_dir)
        return {"selected": sel.selected, "excluded": sel.excluded,
                "accounting": sel.accounting}


# ---------------------------------------------------------------------------
# Stage 2: features from the cache, or decoded and extracted (extractor room)
# ---------------------------------------------------------------------------
class LookupCacheFn(beam.DoFn):
    """Attach cached features to a video, or pass it on to extraction.

    Outputs: main ``(video_id, video)`` with ``features``/``frame_times`` for a
    hit; ``missing`` videos (with ``cache_path``) for extraction; ``failures``
    when extraction is off (resplit) and the video is not cached.
    """
    MISSING = "missing"
    FAILURES = "failures"

    def __init__(self, cache_dir: str, tmp_dir: str, model_fp: str,
                 progress_dir: Optional[str], extract: bool, source_name: str = ""):
        self.cache_dir, self.tmp_dir, self.model_fp = cache_dir, tmp_dir, model_fp
        self.progress_dir, self.extract, self.source_name = progress_dir, extract, source_name

    def setup(self):
        self.cache = cache_lib.FeatureCache(self.cache_dir, self.tmp_dir)
        self.progress = ProgressLog(self.progress_dir)
        self.hits, self.misses = _counter("cache_hits"), _counter("cache_misses")
        self.corrupt = _counter("cache_corrupt_entries")
        self.not_cached = _counter("failed_not_in_cache")

    def process(self, video):
        vid = video["video_id"]
        if self.extract:
            path = self.cache.path_for(vid, video.get("uri") or "", self.model_fp)
            candidates = [path] if path else []
        else:
            # resplit: the video file is never touched; take the entry of this
            # video and model, the newest if the file changed between builds.
            candidates = self.cache.entries_for(vid, self.model_fp)
        entry = None
        for cand in candidates:
            try:
                entry = self.cache.load(cand, vid)
            except cache_lib.CacheError:
                self.corrupt.inc()
                entry = None
            if entry is not None:
                break
        if entry is not None:
            self.hits.inc()
            self.progress.record("cached", len(entry["features"]))
            # The decode warnings were stored with the features: a cached video
            # reports the same warnings as when it was extracted.
            warnings = list((entry.get("meta") or {}).get("decode_warnings") or [])
            yield (vid, dict(video, features=entry["features"],
                             frame_times=entry["frame_times"], cache_path=entry["path"],
                             decode_warnings=warnings))
            return
        self.misses.inc()
        if self.extract:
            yield beam.pvalue.TaggedOutput(self.MISSING, dict(video, cache_path=candidates[0]
                                                              if candidates else None))
        else:
            self.not_cached.inc()
            self.progress.record("failed")
            yield beam.pvalue.TaggedOutput(self.FAILURES, failure_record(
                video, "cache", f"not in the feature cache of {self.source_name}: resplit "
                                f"decodes nothing; run build on a manifest with this video "
                                f"to extract it"))


class StoreCacheFn(beam.DoFn):
    """Join extracted features with their video, write the cache entry, round to float16.

    The video's ``decode_warnings`` (frames kept after a partial decode, a
    suspected truncation, skipped out-of-order frames...) go into the entry's
    metadata, are counted (``videos_with_decode_warnings``,
    ``decode_warnings_{kind}``) and travel on with the features to the counts.
    """

    def __init__(self, cache_dir: str, tmp_dir: str, model_fp: str, model_info: dict,
                 progress_dir: Optional[str]):
        self.cache_dir, self.tmp_dir, self.model_fp = cache_dir, tmp_dir, model_fp
        self.model_info, self.progress_dir = model_info, progress_dir

    def setup(self):
        self.cache = cache_lib.FeatureCache(self.cache_dir, self.tmp_dir)
        self.progress = ProgressLog(self.progress_dir)
        self.stored = _counter("cache_entries_written")
        self.unstorable = _counter("cache_entries_not_storable")
        self.extracted = _counter("videos_extracted")
        self.frames = _counter("frames_extracted")
        self.warned = _counter("videos_with_decode_warnings")

    def process(self, kv):
        vid, out = kv
        # ExtractFeatures passes the video's own fields through (split, labels,
        # cache_path) next to its features.
        video = {k: v for k, v in out.items()
                 if k not in ("features", "frame_times", "decode_warnings")}
        raw = np.asarray(out["features"], np.float32)
        times = np.asarray(out["frame_times"], np.float64)
        warnings = [str(w) for w in out.get("decode_warnings") or []]
        path = video.get("cache_path")
        if path:
            meta = dict(self._meta(video), decode_warnings=warnings)
            data = cache_lib.serialize_entry(vid, raw, times, meta)
            cache_lib.atomic_write_bytes(path, data, self.tmp_dir)
        else:
            path = self.cache.store(vid, video.get("uri") or "", self.model_fp, raw, times,
                                    self.model_info, decode_warnings=warnings)
        if warnings:
            self.warned.inc()
            for kind in sorted({warning_kind(w) for w in warnings}):
                _counter(f"decode_warnings_{kind}").inc()
        if path:
            self.stored.inc()
        else:
            self.unstorable.inc()
        self.extracted.inc()
        self.frames.inc(len(raw))
        self.progress.record("extracted", len(raw))
        yield (vid, dict(video, features=cache_lib.as_cached(raw), frame_times=times,
                         cache_path=path, decode_warnings=warnings))

    def _meta(self, video):
        stamp = cache_lib.stat_video(video.get("uri") or "")
        return {"uri": video.get("uri"), "size": stamp.size if stamp else None,
                "mtime": stamp.mtime if stamp else None,
                "model": cache_lib.model_identity(self.model_info)}


class CachedOrExtract(beam.PTransform):
    """Selected videos -> ``{"features": (video_id, video+features), "failures": ...}``.

    Cached videos are read back; the rest go through
    ``extractor.transforms.ExtractFeatures`` (RunInference) and are cached as
    soon as their features are complete. With ``extract=False`` (resplit)
    nothing is decoded: uncached videos become failures.
    """

    def __init__(self, cache_dir: str, tmp_dir: str, model_info: dict, *,
                 weights: Optional[str] = None, batch_size: int = 32,
                 decode_timeout_s: Optional[float] = None, extract: bool = True,
                 progress_dir: Optional[str] = None, source_name: str = ""):
        super().__init__()
        if extract and not weights:
            raise ValueError("CachedOrExtract needs --weights to extract features")
        if batch_size < 1:
            raise ValueError(f"--batch_size must be >= 1, got {batch_size}")
        if decode_timeout_s is not None and decode_timeout_s <= 0:
            raise ValueError(f"--decode_timeout_s must be > 0 seconds, got {decode_timeout_s}")
        self.cache_dir, self.tmp_dir = cache_dir, tmp_dir
        self.model_info = dict(model_info)
        self.model_fp = cache_lib.model_fingerprint(model_info)
        self.weights, self.batch_size = weights, batch_size
        self.decode_timeout_s, self.extract = decode_timeout_s, extract
        self.progress_dir, self.source_name = progress_dir, source_name

    def expand(self, selected):
        looked = selected | "LookupCache" >> beam.ParDo(
            LookupCacheFn(self.cache_dir, self.tmp_dir, self.model_fp, self.progress_dir,
                          self.extract, self.source_name)
        ).with_outputs(LookupCacheFn.MISSING, LookupCacheFn.FAILURES, main="hits")
        if not self.extract:
            return {"features": looked.hits, "failures": looked[LookupCacheFn.FAILURES]}
        extracted, ext_failures = self._extract(looked[LookupCacheFn.MISSING])
        fresh = (extracted
                 | "StoreCache" >> beam.ParDo(StoreCacheFn(
                     self.cache_dir, self.tmp_dir, self.model_fp, self.model_info,
                     self.progress_dir)))
        progress_dir = self.progress_dir
        failures = ext_failures | "CountExtractFailures" >> beam.Map(
            _note_failure, progress_dir)
        features = (looked.hits, fresh) | "AllFeatures" >> beam.Flatten()
        return {"features": features, "failures": failures}

    def _extract(self, missing):
        from yt8m.extractor.transforms import ExtractFeatures
        sampling = self.model_info.get("sampling") or FRAME_SAMPLING
        out = missing | "ExtractFeatures" >> ExtractFeatures(
            self.weights, batch_size=self.batch_size, fps=sampling["fps"],
            max_seconds=sampling["max_seconds"], size=sampling["size"],
            decode_timeout_s=self.decode_timeout_s)
        return out.features, out.failures


def _note_failure(rec, progress_dir):
    _counter(f"failed_{rec.get('stage', 'unknown')}").inc()
    ProgressLog(progress_dir).record("failed")
    return rec


# ---------------------------------------------------------------------------
# Stage 3: fit PCA and quantizer on the train split (compression room)
# ---------------------------------------------------------------------------
class FitCompression(beam.PTransform):
    """Features -> ``{"pca": PCollection[PCAWhitening], "quantizer": ...}`` (one element each).

    The PCA is fit on every frame of the train split; the quantizer on the same
    frames once whitened (``uniform`` needs no data but goes the same way).
    Both use compression's NumPy combiners in a fixed order (pipeline.fit).
    With fewer than two train frames both elements are None ("nothing to
    fit"): every video then fails to encode and the build publishes only
    failures.jsonl (see ``publish_build``).
    """

    def __init__(self, n_components: int = 1024, quantizer: str = "lloyd",
                 train_split: str = "train"):
        super().__init__()
        if quantizer not in ("lloyd", "uniform"):
            raise ValueError(f"--quantizer must be 'lloyd' or 'uniform', got {quantizer!r}")
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        self.n_components, self.quantizer, self.train_split = n_components, quantizer, train_split

    def expand(self, features):
        from yt8m.pipeline.fit import (OrderedCombine, pca_from_moments, quantizer_from_histogram,
                                  whiten)
        split, k = self.train_split, self.n_components
        train = (features
                 | "TrainOnly" >> beam.Filter(lambda kv: kv[1]["split"] == split)
                 | "TrainFrames" >> beam.Map(lambda kv: (kv[0], kv[1]["features"])))
        # compression's accumulators, merged in video_id order (pipeline.fit):
        # the artifacts depend on the train set only, so a resumed build
        # writes the same bytes as an uninterrupted one.
        pca = (train
               | "PCAMoments" >> OrderedCombine("moments")
               | "FitPCA" >> beam.Map(pca_from_moments, k))
        quant = (train
                 # The codebook is fit on exactly the coefficients encode_frames sees.
                 | "Whiten" >> beam.FlatMap(whiten, beam.pvalue.AsSingleton(pca))
                 | "WhitenedHistogram" >> OrderedCombine("histogram")
                 | "FitQuantizer" >> beam.Map(quantizer_from_histogram, self.quantizer,
                                              beam.pvalue.AsSingleton(pca)))
        return {"pca": pca, "quantizer": quant}


# ---------------------------------------------------------------------------
# Stage 4: encode every split
# ---------------------------------------------------------------------------
class EncodeVideoFn(beam.DoFn):
    """Raw features -> frame-level and video-level records, tagged by kind and split."""

    def setup(self):
        self.frames = _counter("frames_written")
        self.failed = _counter("failed_encode")

    def process(self, kv, pca, quantizer):
        from yt8m.compression.codec import encode_frames, mean_rgb as video_mean
        vid, video = kv
        split = video["split"]
        if pca is None or quantizer is None:
            # The fit had nothing to fit (no train frames): say so per video,
            # so that the accounting still balances and failures.jsonl explains.
            self.failed.inc()
            yield beam.pvalue.TaggedOutput("failures", dict(failure_record(
                video, "encode", "no PCA and quantizer to encode with: the train split has "
                "fewer than 2 frames (every train video was excluded or failed; see the other "
                "lines of failures.jsonl and excluded.csv, and check --split)"),
                kind="no_train_frames"))
            return
        try:
            feats = video["features"]
            if len(feats) == 0:
                raise ValueError("no frames were extracted")
            q = encode_frames(feats, pca, quantizer)
            mean_rgb = video_mean(q, quantizer)
            # Test labels are never published: the records of the test split
            # carry no labels key (they live in OUT/private/ only).
            labels = None if split == "test" else list(video.get("labels") or [])
            frame = schema.encode_frame_example(vid, q, labels)
            vrec = schema.encode_video_example(vid, mean_rgb, labels)
        except Exception as e:  # noqa: BLE001 - one video never stops the build
            self.failed.inc()
            yield beam.pvalue.TaggedOutput("failures", failure_record(
                video, "encode", f"{type(e).__name__}: {e}"))
            return
        self.frames.inc(len(q))
        _counter(f"videos_written_{split}").inc()
        yield beam.pvalue.TaggedOutput(f"frame_{split}", frame)
        yield beam.pvalue.TaggedOutput(f"video_{split}", vrec)
        yield beam.pvalue.TaggedOutput("written", {
            "video_id": vid, "split": split, "frames": int(len(q)),
            "decode_warnings": list(video.get("decode_warnings") or [])})


class EncodeSplits(beam.PTransform):
    """Features + fitted artifacts (side inputs) -> records per kind and split."""

    def __init__(self, pca, quantizer, splits: Sequence[str] = pio.SPLITS):
        super().__init__()
        if pca is None or quantizer is None:
            raise ValueError("EncodeSplits needs the fitted PCA and quantizer PCollections")
        self.pca, self.quantizer, self.splits = pca, quantizer, tuple(splits)

    def expand(self, features):
        tags = [f"{k}_{s}" for k in pio.RECORD_KINDS for s in self.splits]
        out = features | "EncodeVideos" >> beam.ParDo(
            EncodeVideoFn(), beam.pvalue.AsSingleton(self.pca),
            beam.pvalue.AsSingleton(self.quantizer)).with_outputs(
            *tags, "failures", "written")
        result = {t: out[t] for t in tags}
        result["failures"] = out.failures
        result["written"] = out.written
        return result


# ---------------------------------------------------------------------------
# Stage 5: write (into the staging folder; pipeline.io.publish moves it to OUT)
# ---------------------------------------------------------------------------
def _save_npz(obj, path: str) -> Optional[str]:
    """``obj.save`` into a local temp file, then an atomic copy to ``path`` (local or remote).

    Nothing when ``obj`` is None (nothing was fit: the build publishes no artifacts).
    """
    import tempfile
    if obj is None:
        return None
    with tempfile.TemporaryDirectory() as d:
        local = os.path.join(d, os.path.basename(path))
        obj.save(local)
        with open(local, "rb") as fh:
            pio.atomic_write(path, fh.read())
    return path


def _counts_render(selection, excluded, failures, written):
    """counts.json: the vocab room's ``selection`` accounting (one dict) and the records."""
    manifest_rows = selection["rows"]["total"]
    by_split: dict = {}
    for w in written:
        c = by_split.setdefault(w["split"], {"videos": 0, "frames": 0})
        c["videos"] += 1
        c["frames"] += w["frames"]
    exc_reasons: dict = {}
    for e in excluded:
        r = e.get("reason", "?") if isinstance(e, dict) else getattr(e, "reason", "?")
        exc_reasons[r] = exc_reasons.get(r, 0) + 1
    fail_reasons: dict = {}
    for f in failures:
        r = failure_reason(f)
        fail_reasons[r] = fail_reasons.get(r, 0) + 1
    return {"manifest_rows": int(manifest_rows), "excluded": len(excluded),
            "failed": len(failures), "written": len(written), "splits": by_split,
            "excluded_reasons": exc_reasons, "failure_reasons": fail_reasons,
            "decode_warnings": decode_warnings_summary(written),
            # The selection's own figures (rows by reason, split sizes, entities),
            # minus what dataset_info.json already holds (flags, inputs).
            "selection": {k: v for k, v in selection.items() if k not in ("config", "inputs")}}


class WriteDataset(beam.PTransform):
    """Write records, artifacts, failures and counts under ``staging``."""

    def __init__(self, staging: str, num_shards: int = 0, splits: Sequence[str] = pio.SPLITS,
                 quality_frames: int = DEFAULT_QUALITY_FRAMES):
        super().__init__()
        if not staging:
            raise ValueError("WriteDataset needs a staging folder")
        self.staging, self.num_shards, self.splits = staging, num_shards, tuple(splits)
        self.quality_frames = quality_frames

    def expand(self, parts):
        staging = self.staging
        for kind in pio.RECORD_KINDS:
            for split in self.splits:
                tag = f"{kind}_{split}"
                _ = parts["encoded"][tag] | f"Write{kind.title()}{split.title()}" >> \
                    pio.WriteRecords(pio.join(staging, kind, split), self.num_shards)
        failures = parts["failures"]
        _ = failures | "WriteFailures" >> pio.WriteSingleFile(
            pio.join(staging, "failures.jsonl"), pio.jsonl_render,
            sort_key=lambda r: (str(r.get("video_id")), r.get("stage", "")))
        _ = parts["pca"] | "SavePCA" >> beam.Map(
            _save_npz, pio.join(staging, "artifacts", "pca.npz"))
        _ = parts["quantizer"] | "SaveQuantizer" >> beam.Map(
            _save_npz, pio.join(staging, "artifacts", "quantizer.npz"))
        _ = parts["features"] | "Quality" >> QualityReport(
            parts["pca"], parts["quantizer"], pio.join(staging, "artifacts", "quality.json"),
            self.quality_frames)
        fit_path = pio.join(staging, "fit.json")
        _ = parts["pca"] | "FitInfo" >> beam.Map(
            lambda p_, q_: pio.atomic_write(fit_path, pio.json_text(_fit_info(p_, q_))),
            beam.pvalue.AsSingleton(parts["quantizer"]))
        excluded_list = parts["excluded"] | "GatherExcluded" >> beam.combiners.ToList()
        failures_list = failures | "GatherFailures" >> beam.combiners.ToList()
        written_list = parts["written"] | "GatherWritten" >> beam.combiners.ToList()
        counts_path = pio.join(staging, "counts.json")
        return (parts["accounting"]
                | "Counts" >> beam.Map(
                    _counts_render, beam.pvalue.AsSingleton(excluded_list),
                    beam.pvalue.AsSingleton(failures_list),
                    beam.pvalue.AsSingleton(written_list))
                | "WriteCounts" >> beam.Map(
                    lambda c: pio.atomic_write(counts_path, pio.json_text(c))))


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

        def held_out(kv):
            vid, v = kv
            # validate frames are held out from both fits; fall back to test.
            if v["split"] in ("validate", "test"):
                yield (0 if v["split"] == "validate" else 1, vid, v["features"])

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
            pio.atomic_write(path, pio.json_text(rep))
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
    from yt8m.compression.quality import quality_report
    return quality_report(x, pca, quantizer)


def _fit_info(pca, quantizer) -> dict:
    if pca is None or quantizer is None:
        return {"pca": None, "quantizer": None,
                "note": "nothing to fit: the train split has fewer than 2 frames"}
    return {"pca": dict(getattr(pca, "info", {}) or {}, n_components=int(pca.n_components)),
            "quantizer": dict(getattr(quantizer, "info", {}) or {}, method=quantizer.method)}


# ---------------------------------------------------------------------------
# The whole build
# ---------------------------------------------------------------------------
@dataclass
class BuildConfig:
    """Everything a build needs; ``pipeline.cli`` fills it from flags."""
    videos: str
    entities: str
    output_dir: str
    ratings: Optional[str] = None
    vocab: object = None                  # vocab.config.VocabConfig
    weights: str = "imagenet"
    batch_size: int = 32
    quantizer: str = "lloyd"
    n_components: int = schema.RGB_QUANTIZED_DIM
    decode_timeout_s: Optional[float] = None
    num_shards: int = 0
    train_model: Optional[str] = None
    progress: bool = True
    # resplit: read features from this build's cache, decode nothing.
    resplit_from: Optional[str] = None
    cache_dir: Optional[str] = None       # default OUT/cache
    model_info: Optional[dict] = None     # default: from the weights
    beam_args: list = field(default_factory=list)

    def flags(self) -> dict:
        d = dataclasses.asdict(self)
        d["vocab"] = self.vocab.to_dict() if hasattr(self.vocab, "to_dict") else self.vocab
        d.pop("model_info", None)
        return d


class BuildDataset(beam.PTransform):
    """Pipeline root -> the whole dataset, staged under ``staging``.

    Returns the dict of the stages' PCollections (for tests and composition).
    """

    def __init__(self, config: BuildConfig, staging: str, model_info: dict,
                 progress_dir: Optional[str] = None):
        super().__init__()
        if not model_info:
            raise ValueError("BuildDataset needs the feature model's info (name, source, "
                             "sha256, random) for the cache and artifacts/model.json")
        self.config, self.staging = config, staging
        self.model_info, self.progress_dir = model_info, progress_dir

    def expand(self, root):
        c = self.config
        out = c.output_dir
        cache_dir = c.cache_dir or pio.join(out, "cache")
        sel = root | "Select" >> SelectStage(c.videos, c.entities, c.ratings, out, c.vocab)
        progress_dir = self.progress_dir
        _ = (sel["selected"] | "CountSelected" >> beam.combiners.Count.Globally()
             | "ProgressTotal" >> beam.Map(lambda n: ProgressLog(progress_dir).record(
                 "total", n)))
        feats = sel["selected"] | "Features" >> CachedOrExtract(
            cache_dir, pio.join(pio.tmp_root(out), "cache"), self.model_info,
            weights=c.weights, batch_size=c.batch_size, decode_timeout_s=c.decode_timeout_s,
            extract=c.resplit_from is None, progress_dir=progress_dir,
            source_name=c.resplit_from or "")
        fitted = feats["features"] | "Fit" >> FitCompression(c.n_components, c.quantizer)
        encoded = feats["features"] | "Encode" >> EncodeSplits(
            fitted["pca"], fitted["quantizer"])
        failures = ((feats["failures"], encoded["failures"])
                    | "AllFailures" >> beam.Flatten())
        parts = {"encoded": encoded, "failures": failures, "pca": fitted["pca"],
                 "quantizer": fitted["quantizer"], "features": feats["features"],
                 "excluded": sel["excluded"], "written": encoded["written"],
                 "accounting": sel["accounting"]}
        counts = parts | "Write" >> WriteDataset(self.staging, c.num_shards)
        return dict(parts, counts=counts)


# ---------------------------------------------------------------------------
# Launching: inputs, pipeline, publishing, dataset_info.json
# ---------------------------------------------------------------------------
@dataclass
class BuildOutcome:
    result: object            # beam PipelineResult
    info: dict                # the content of dataset_info.json
    train_metrics: Optional[dict] = None


INPUT_NAMES = {"videos": "manifest", "entities": "entities", "ratings": "ratings"}


def resplit_config(source: str, source_info: dict, output_dir: str, vocab, *,
                   quantizer: str = "lloyd", num_shards: int = 0,
                   train_model: Optional[str] = None, progress: bool = True,
                   beam_args: Sequence[str] = ()) -> BuildConfig:
    """A BuildConfig that selects anew from ``source``'s copied inputs and cache."""
    if not source_info:
        raise ValueError(f"--from {source!r} holds no dataset_info.json: pass the "
                         f"--output_dir of a finished build")
    if pio.join(output_dir, "") == pio.join(source, ""):
        raise ValueError(f"--output_dir must differ from --from ({source}): resplit writes "
                         f"a new dataset and reads the old one's cache")
    inputs = source_info.get("inputs", {})
    copies = {k: pio.join(source, v["copy"]) for k, v in inputs.items() if v}
    for k in ("videos", "entities"):
        if k not in copies:
            raise ValueError(f"--from {source!r}: dataset_info.json lists no copied {k} "
                             f"input (private/inputs/); rebuild it with this version")
    model_info = source_info.get("model")
    if not model_info:
        raise ValueError(f"--from {source!r}: dataset_info.json names no feature model")
    cache_dir = source_info.get("cache_dir") or pio.join(source, "cache")
    return BuildConfig(videos=copies["videos"], entities=copies["entities"],
                       ratings=copies.get("ratings"), output_dir=output_dir, vocab=vocab,
                       weights=model_info.get("spec") or "", quantizer=quantizer,
                       num_shards=num_shards, train_model=train_model, progress=progress,
                       resplit_from=source, cache_dir=cache_dir, model_info=model_info,
                       beam_args=list(beam_args))


def resolve_model_info(cfg: BuildConfig) -> dict:
    """The feature model's identity, without building the network (fails fast)."""
    if cfg.model_info:
        return dict(cfg.model_info)
    from yt8m.extractor.weights import weights_info
    info = dict(weights_info(cfg.weights))
    info["sampling"] = dict(FRAME_SAMPLING)
    return info


def _check_inputs(cfg: BuildConfig) -> None:
    from apache_beam.io.filesystems import FileSystems
    for flag, path in (("--videos", cfg.videos), ("--entities", cfg.entities),
                       ("--ratings", cfg.ratings)):
        if path is not None and not FileSystems.exists(path):
            raise FileNotFoundError(f"{flag} {path!r} does not exist: pass the path of an "
                                    f"existing file (local or gs://)")
    # An empty manifest is a mistake in the inputs, not a build with nothing
    # to write: say so before a pipeline starts (one row is read, not the file).
    from yt8m.vocab.manifest import iter_manifest
    if next(iter(iter_manifest(cfg.videos)), None) is None:
        raise ValueError(f"--videos {cfg.videos!r} has no data rows (an empty file or only a "
                         f"header): pass a manifest with one row per video (video_id, uri, "
                         f"views, duration_s, entities)")


def _copy_inputs(cfg: BuildConfig) -> dict:
    """Copy manifest, entities, ratings into OUT/private/inputs/ (for resplit)."""
    out = {}
    for key, name in INPUT_NAMES.items():
        src = getattr(cfg, key)
        if src is None:
            out[key] = None
            continue
        ext = os.path.splitext(src)[1] or ".csv"
        rel = pio.join("private", "inputs", name + ext)
        dst = pio.join(cfg.output_dir, rel)
        if pio.join(src, "") != pio.join(dst, ""):
            pio.copy_file(src, dst)
        out[key] = {"source": src, "copy": rel}
    return out


def _versions() -> dict:
    import importlib
    vers = {"python": platform.python_version()}
    for name in ("apache_beam", "tensorflow", "keras", "av", "numpy", "sklearn"):
        try:
            vers[name] = importlib.import_module(name).__version__
        except Exception:  # noqa: BLE001 - reported as missing, not fatal
            vers[name] = None
    try:
        from importlib.metadata import version
        vers["yt8m_builder"] = version("yt8m-builder")
    except Exception:  # noqa: BLE001 - running from a source tree
        vers["yt8m_builder"] = None
    return vers


def _local_options(cfg: BuildConfig):
    from yt8m.pipeline.runner import is_local, pipeline_options
    opts = pipeline_options(cfg.beam_args)
    return opts, is_local(opts)


def run_build(cfg: BuildConfig, test_pipeline=None) -> BuildOutcome:
    """Run a build (or a resplit) to the end and publish it; see the module docstring."""
    t0 = time.time()
    _check_inputs(cfg)
    model_info = resolve_model_info(cfg)
    out = cfg.output_dir
    pio.mkdirs(out)
    # dataset_info.json marks a complete dataset. From here on this run changes
    # OUT (vocabulary files, inputs, then the shards), so a previous build's
    # marker goes first: a kill part way must not leave it vouching for a mix.
    pio.delete_tree(pio.join(out, "dataset_info.json"))
    staging = pio.join(pio.tmp_root(out), "build")
    pio.delete_tree(staging)
    inputs = _copy_inputs(cfg)

    options, local = _local_options(cfg)
    progress_dir = None
    if local and "://" not in out:
        progress_dir = os.path.join(pio.tmp_root(out), "build", "progress")
    from yt8m.pipeline.progress import ProgressMonitor
    p = test_pipeline if test_pipeline is not None else beam.Pipeline(options=options)
    _ = p | "BuildDataset" >> BuildDataset(cfg, staging, model_info, progress_dir)
    with ProgressMonitor(progress_dir if cfg.progress else None):
        result = p.run()
        state = result.wait_until_finish()
    if str(state) not in ("DONE", "PipelineState.DONE"):
        raise BuildError(f"the pipeline ended in state {state}; nothing was published "
                         f"(rerun the same command: cached features are kept)")
    info = publish_build(cfg, staging, model_info, inputs, t0, _counters(result))
    metrics = None
    if cfg.train_model:
        metrics = train_baseline(out, cfg.train_model)
    return BuildOutcome(result=result, info=info, train_metrics=metrics)


def _counters(result) -> dict:
    """The build's Beam counters (committed values where the runner has them)."""
    from apache_beam.metrics.metric import MetricsFilter
    try:
        res = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    except Exception:  # noqa: BLE001 - some runners report no metrics
        return {}
    out: dict = {}
    for c in res.get("counters", []):
        value = c.committed if c.committed is not None else c.attempted
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(value or 0)
    return out


def publish_build(cfg: BuildConfig, staging: str, model_info: dict, inputs: dict,
                  t0: float, counters: Optional[dict] = None) -> dict:
    """Move the staged dataset into OUT and write dataset_info.json last."""
    out = cfg.output_dir
    counts = json.loads(pio.read_text(pio.join(staging, "counts.json")))
    if counts["written"] == 0:
        # Publish what explains it, then fail: there is no dataset to write.
        # Only failures.jsonl moves (the staged shards, empty, stay out of OUT);
        # the vocabulary files were written by the selection stage.
        pio.publish_files(staging, out, ["failures.jsonl"])
        message = no_video_written_message(out, counts, _read_fit(staging))
        pio.delete_tree(staging)
        raise BuildError(message)
    small = ["failures.jsonl", "artifacts/pca.npz", "artifacts/quantizer.npz",
             "artifacts/quality.json"]
    pio.atomic_write(pio.join(staging, "artifacts", "model.json"), pio.json_text(model_info))
    small.append("artifacts/model.json")
    sizes = pio.publish(staging, out, small)
    splits = {}
    for split in pio.SPLITS:
        c = counts["splits"].get(split, {"videos": 0, "frames": 0})
        splits[split] = {"videos": c["videos"], "frames": c["frames"],
                         "frame_bytes": sizes[("frame", split)]["bytes"],
                         "video_bytes": sizes[("video", split)]["bytes"],
                         "bytes": sizes[("frame", split)]["bytes"]
                         + sizes[("video", split)]["bytes"],
                         "shards": sizes[("frame", split)]["files"]}
    total = counts["written"] + counts["excluded"] + counts["failed"]
    n_entities = _count_vocabulary(out)
    counters = counters or {}
    fit = json.loads(pio.read_text(pio.join(staging, "fit.json")))
    feature_sources = {"hits": counters.get("cache_hits", 0),
                       "extracted": counters.get("videos_extracted", 0),
                       "frames_extracted": counters.get("frames_extracted", 0)}
    info = {
        "output_dir": out,
        "splits": splits,
        "entities": n_entities,
        "accounting": {"manifest_rows": counts["manifest_rows"], "written": counts["written"],
                       "excluded": counts["excluded"], "failed": counts["failed"],
                       "total": total, "balanced": total == counts["manifest_rows"]},
        "excluded_reasons": counts["excluded_reasons"],
        "failure_reasons": counts["failure_reasons"],
        "decode_warnings": counts.get("decode_warnings", {}),
        "selection": counts.get("selection", {}),
        "flags": cfg.flags(),
        "versions": _versions(),
        "model": model_info,
        "weights": {k: model_info.get(k) for k in ("spec", "source", "sha256", "random")},
        "inputs": inputs,
        "cache_dir": cfg.cache_dir or pio.join(out, "cache"),
        "fit": fit,
        "cache": feature_sources,
        "counters": dict(sorted(counters.items())),
        "resplit_from": cfg.resplit_from,
        "elapsed_s": round(time.time() - t0, 3),
    }
    pio.atomic_write(pio.join(out, "dataset_info.json"), pio.json_text(info))
    pio.delete_tree(staging)
    return info


def _read_fit(staging: str) -> dict:
    try:
        return json.loads(pio.read_text(pio.join(staging, "fit.json")))
    except Exception:  # noqa: BLE001 - the message then just omits the fit
        return {}


def no_video_written_message(out: str, counts: dict, fit: dict) -> str:
    """Why a build wrote nothing, pointing at the files that say why per video."""
    reasons = sorted(counts.get("failure_reasons", {}).items(), key=lambda kv: (-kv[1], kv[0]))
    top = ", ".join(f"{r} {n}" for r, n in reasons[:3])
    msg = (f"no video could be written: {counts['failed']} selected videos failed"
           f"{f' ({top})' if top else ''}: see {pio.join(out, 'failures.jsonl')} for each "
           f"video's reason; {counts['excluded']} rows were excluded by the selection rules "
           f"(see {pio.join(out, 'excluded.csv')})")
    if fit and fit.get("pca") is None:
        msg += ("; no train frames to fit the PCA on, so nothing could be encoded (fix or "
                "replace the failed videos, or check --split and --min_videos_per_entity)")
    return msg


def _count_vocabulary(out: str) -> Optional[int]:
    path = pio.join(out, "vocabulary.csv")
    try:
        text = pio.read_text(path)
    except Exception:  # noqa: BLE001 - reported as unknown rather than failing the publish
        return None
    return max(0, len([ln for ln in text.splitlines() if ln.strip()]) - 1)


def train_baseline(out: str, model: str) -> Optional[dict]:
    """``build --train MODEL``: the trainer's baseline on the dataset just written."""
    from yt8m.trainer.train import train_on_build
    return train_on_build(out, model, pio.join(out, f"train_{model}"))
