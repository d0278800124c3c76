"""The features stage: ``Video``s -> ``VideoFeatures``, from the cache or extracted.

``CachedOrExtract`` is the one way every job gets features:

* ``build``: each video is looked up in the feature cache (``pipeline.cache``);
  the misses go through ``extractor.transforms.ExtractFeatures`` (RunInference)
  and are cached the moment their features are complete, rounded to float16
  as the cache stores them, so a resumed build sees the very values an
  uninterrupted one saw;
* ``resplit`` (``extraction=None``): the cache only; a video that is not in it
  becomes a ``cache`` failure, and no video file is opened;
* ``extract`` (``cache_dir=None``): every video is extracted and nothing is
  cached; the features are the network's float32 values.

Outputs: ``{"features": PCollection[VideoFeatures], "failures": PCollection[FailureRecord]}``.
Counters (``yt8m.counters``): cache hits, misses and corrupt entries, entries
written, videos and frames extracted, and the decode warnings of the videos
extracted in this run, by kind.
"""
from __future__ import annotations

import logging
from typing import Optional

import apache_beam as beam
import numpy as np

from yt8m import counters
from yt8m.extractor.transforms import ExtractFeatures
from yt8m.pipeline import cache as cache_lib
from yt8m.pipeline import thumbnails as thumbs_lib
from yt8m.pipeline.config import ExtractionSettings
from yt8m.pipeline.progress import ProgressLog
from yt8m.records import Video, VideoFeatures, warnings_from


class LookupCacheFn(beam.DoFn):
    """``Video`` -> ``VideoFeatures`` for a cache hit (main), else the video (``missing``).

    With ``extract=False`` (resplit) a video that is not cached is a
    ``FailureRecord`` (``failures``) instead: resplit decodes nothing.
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
        self.hits = counters.counter(counters.CACHE_HITS)
        self.misses = counters.counter(counters.CACHE_MISSES)
        self.corrupt = counters.counter(counters.CACHE_CORRUPT_ENTRIES)

    def process(self, video: Video):
        vid = video.video_id
        if self.extract:
            path = self.cache.path_for(vid, video.uri or "", self.model_fp)
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
            warnings = warnings_from((entry.get("meta") or {}).get("decode_warnings"))
            # By reference (``CachedFrames``): later steps read the entry, runners keep paths.
            yield VideoFeatures(video, cache_lib.CachedFrames.of(entry["path"], vid,
                                                                 entry["features"]),
                                entry["frame_times"], decode_warnings=warnings,
                                cache_path=entry["path"])
            return
        self.misses.inc()
        if self.extract:
            yield beam.pvalue.TaggedOutput(self.MISSING, video)
        else:
            self.progress.record("failed")
            yield beam.pvalue.TaggedOutput(self.FAILURES, video.failure(
                "cache", "not_cached",
                f"not in the feature cache of {self.source_name}: resplit decodes nothing; "
                f"run build on a manifest with this video to extract it"))


class StoreCacheFn(beam.DoFn):
    """Write an extracted video's cache entry; pass it on rounded to float16.

    The video's decode warnings (frames kept after a partial decode, a
    suspected truncation, skipped out-of-order frames...) go into the entry's
    metadata as their dicts and are counted by kind
    (``videos_with_decode_warnings``, ``decode_warnings_{kind}``).
    """

    def __init__(self, cache_dir: str, tmp_dir: str, model_fp: str, model_info: dict,
                 progress_dir: Optional[str]):
        self.cache_dir, self.tmp_dir, self.model_fp = cache_dir, tmp_dir, model_fp
        self.model_info, self.progress_dir = model_info, progress_dir

    def setup(self):
        self.cache = cache_lib.FeatureCache(self.cache_dir, self.tmp_dir)
        self.progress = ProgressLog(self.progress_dir)
        self.counters = counters.Counters()

    def process(self, vf: VideoFeatures):
        raw = np.asarray(vf.features, np.float32)
        times = np.asarray(vf.frame_times, np.float64)
        path = self.cache.store(vf.video_id, vf.video.uri or "", self.model_fp, raw, times,
                                self.model_info, decode_warnings=vf.decode_warnings)
        if vf.decode_warnings:
            self.counters.inc(counters.VIDEOS_WITH_DECODE_WARNINGS)
            for kind in sorted({w.kind for w in vf.decode_warnings}):
                self.counters.inc(counters.decode_warning(kind))
        self.counters.inc(counters.CACHE_ENTRIES_WRITTEN if path
                          else counters.CACHE_ENTRIES_NOT_STORABLE)
        self.counters.inc(counters.VIDEOS_EXTRACTED)
        self.counters.inc(counters.FRAMES_EXTRACTED, len(raw))
        self.progress.record("extracted", len(raw))
        yield vf.replace(features=cache_lib.CachedFrames.of(path, vf.video_id,
                                                           cache_lib.as_cached(raw)),
                         frame_times=times, cache_path=path)


class WriteThumbnailsFn(beam.DoFn):
    """Publish the thumbnails an extracted video's decode kept; pass the video on without them.

    They come from the frames decoded for the features (no second decode) and
    go to ``pipeline.thumbnails``' layout below ``dest_dir`` (a build: its
    feature cache; ``extract``: its output folder), one atomic write each. A
    failed write is counted and logged, never a lost video: the explorer shows
    a placeholder for a video without thumbnails.
    """

    def __init__(self, dest_dir: str, tmp_dir: Optional[str]):
        self.dest_dir, self.tmp_dir = dest_dir, tmp_dir

    def setup(self):
        self.counters = counters.Counters()

    def process(self, vf: VideoFeatures):
        if vf.thumbnails is None:
            self.counters.inc(counters.THUMBNAILS_VIDEOS_NONE)
            yield vf
            return
        images, times = vf.thumbnails
        try:
            path = thumbs_lib.write_thumbnails(
                self.dest_dir, vf.video_id, [thumbs_lib.shrink(im) for im in images], times,
                tmp_dir=self.tmp_dir)
        except (OSError, ValueError) as e:
            logging.warning("thumbnails of %s not written: %s", vf.video_id, e)
            self.counters.inc(counters.THUMBNAILS_WRITE_FAILURES)
            path = None
        if path:
            self.counters.inc(counters.THUMBNAILS_VIDEOS_WRITTEN)
            self.counters.inc(counters.THUMBNAILS_IMAGES_WRITTEN, len(images))
        # The pictures are not needed downstream: do not carry them to the fit.
        yield vf.replace(thumbnails=None)


def _note_extract_failure(record, progress_dir: Optional[str]):
    ProgressLog(progress_dir).record("failed")
    return record


class CachedOrExtract(beam.PTransform):
    """``Video``s -> ``{"features": VideoFeatures, "failures": FailureRecord}`` (module docstring).

    ``extraction``: how to extract (None: resplit, cache only). ``cache_dir``
    and ``tmp_dir``: the cache and its temp folder (None: no cache, extract
    only). ``model_info``: the feature model's identity (the cache fingerprint).
    """

    def __init__(self, extraction: Optional[ExtractionSettings], *,
                 cache_dir: Optional[str] = None, tmp_dir: Optional[str] = None,
                 model_info: Optional[dict] = None, progress_dir: Optional[str] = None,
                 source_name: str = "", thumbnails_dir: Optional[str] = None,
                 thumbnails_tmp_dir: Optional[str] = None):
        super().__init__()
        if extraction is None and cache_dir is None:
            raise ValueError("CachedOrExtract needs a cache to read (resplit) or extraction "
                             "settings (build, extract)")
        if cache_dir is not None and not (tmp_dir and model_info):
            raise ValueError("CachedOrExtract with a cache needs its temp folder "
                             "(OUT/.tmp/cache) and the feature model's info (name, source, "
                             "sha256, random)")
        self.extraction = extraction
        self.cache_dir, self.tmp_dir = cache_dir, tmp_dir
        self.model_info = dict(model_info or {})
        self.model_fp = cache_lib.model_fingerprint(model_info) if cache_dir else None
        self.progress_dir, self.source_name = progress_dir, source_name
        # Thumbnails (when the extraction asks for some) go beside the cache by
        # default; extract, which has no cache, names its output folder.
        self.thumbnails_dir = thumbnails_dir or cache_dir
        self.thumbnails_tmp_dir = thumbnails_tmp_dir or (tmp_dir if thumbnails_dir is None
                                                         else None)

    def expand(self, videos):
        if self.cache_dir is None:
            return self._extract(videos)
        looked = videos | "LookupCache" >> beam.ParDo(
            LookupCacheFn(self.cache_dir, self.tmp_dir, self.model_fp, self.progress_dir,
                          self.extraction is not None, self.source_name)
        ).with_outputs(LookupCacheFn.MISSING, LookupCacheFn.FAILURES, main="hits")
        if self.extraction is None:
            return {"features": looked.hits, "failures": looked[LookupCacheFn.FAILURES]}
        extracted = self._extract(looked[LookupCacheFn.MISSING])
        fresh = extracted["features"] | "StoreCache" >> beam.ParDo(StoreCacheFn(
            self.cache_dir, self.tmp_dir, self.model_fp, self.model_info, self.progress_dir))
        features = (looked.hits, fresh) | "AllFeatures" >> beam.Flatten()
        return {"features": features, "failures": extracted["failures"]}

    def _extract(self, videos):
        s = self.extraction
        out = videos | "ExtractFeatures" >> ExtractFeatures(
            s.weights, batch_size=s.batch_size, fps=s.fps, max_seconds=s.max_seconds,
            size=s.size, decode_timeout_s=s.decode_timeout_s, on_decode_error=s.on_decode_error,
            mixed_precision=s.mixed_precision, input_range=s.input_range,
            thumbnails=s.thumbnails, decode_device=s.decode_device, precision=s.precision,
            audio_weights=s.audio_weights,
            audio=s.audio_mode if s.audio_mode in ("optional", "required") else "optional")
        features = out.features
        if s.thumbnails:
            if not self.thumbnails_dir:
                raise ValueError("thumbnails were asked for but CachedOrExtract has no folder "
                                 "for them (thumbnails_dir, or a cache)")
            features = features | "WriteThumbnails" >> beam.ParDo(WriteThumbnailsFn(
                self.thumbnails_dir, self.thumbnails_tmp_dir))
        failures = out.failures | "NoteExtractFailures" >> beam.Map(
            _note_extract_failure, self.progress_dir)
        return {"features": features, "failures": failures}
