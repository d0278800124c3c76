"""``ExtractFeatures``: videos -> per-frame Inception-v3 features, as one Beam transform.

Steps (each labelled):

1. ``DecodeFrames`` (``DecodeVideoFn``): ``extractor.decode.sample_frames`` on
   each video; emits every sampled frame keyed ``(video_id, frame_index)``,
   one ``meta`` record per video (frame times, frame count, the video's other
   fields) and, for a video that cannot be read, a failure record
   ``{"video_id", "uri", "stage": "decode", "error", "kind"}``. Decoding runs
   in a background thread one video ahead, so the next video is decoded while
   the network works on the current batch (FFmpeg and TensorFlow both release
   the GIL).
2. ``RunInference``: ``KeyedModelHandler(InceptionModelHandler)`` batches frames
   from many videos to the network; a batch that fails becomes ``stage:
   "model"`` failures for its videos instead of stopping the pipeline.
3. ``GroupByVideo`` + ``AssembleVideo``: a ``CoGroupByKey`` per video, frames
   ordered by index -> ``(video_id, {"features": float32 (F, 2048),
   "frame_times": float64 (F,), "decode_warnings": [...], **other fields})``.

Counters (namespace ``yt8m``): ``extract_videos_decoded``,
``extract_frames_decoded``, ``extract_decode_failures``,
``extract_model_failures``, ``extract_videos_done``, ``extract_frames_done``.
"""
from __future__ import annotations

import collections
import concurrent.futures
import logging
from typing import Any, NamedTuple, Optional

import apache_beam as beam
import numpy as np
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.utils.windowed_value import WindowedValue

from extractor.handler import InceptionModelHandler

log = logging.getLogger(__name__)

NAMESPACE = "yt8m"
FAILURES = "failures"
META = "meta"


def failure_record(video: Any, stage: str, error: str, kind: Optional[str] = None) -> dict:
    """The project's failure record for one video (one line of failures.jsonl)."""
    video = video if isinstance(video, dict) else {}
    rec = {"video_id": video.get("video_id"), "uri": video.get("uri"), "stage": stage,
           "error": error}
    if kind:
        rec["kind"] = kind
    return rec


class DecodeVideoFn(beam.DoFn):
    """Video dict -> keyed frames (main), ``meta`` per video, ``failures``.

    ``prefetch`` videos are decoded ahead in background threads (0: decode in
    ``process``). Results are emitted in input order; at most ``prefetch``
    decoded videos wait in memory, so memory stays bounded by a few videos'
    sampled frames (360 x 299 x 299 x 3 bytes = 97 MB at most each).
    """

    def __init__(self, fps: float = 1.0, max_seconds: float = 360.0, size: int = 299,
                 timeout_s: Optional[float] = None, on_error: str = "keep",
                 prefetch: int = 1):
        self.fps, self.max_seconds, self.size = fps, max_seconds, size
        self.timeout_s, self.on_error, self.prefetch = timeout_s, on_error, int(prefetch)

    def setup(self):
        self._decoded = Metrics.counter(NAMESPACE, "extract_videos_decoded")
        self._frames = Metrics.counter(NAMESPACE, "extract_frames_decoded")
        self._failed = Metrics.counter(NAMESPACE, "extract_decode_failures")
        self._pool = (concurrent.futures.ThreadPoolExecutor(
            max_workers=self.prefetch, thread_name_prefix="yt8m-decode")
            if self.prefetch > 0 else None)

    def start_bundle(self):
        self._pending: collections.deque = collections.deque()

    def process(self, video, window=beam.DoFn.WindowParam,
                timestamp=beam.DoFn.TimestampParam):
        if self._pool is None:
            yield from self._outputs(video, self._decode(video), timestamp, window)
        else:
            yield from self._submit(video, timestamp, window)

    def _submit(self, video, timestamp, window):
        self._pending.append((video, self._pool.submit(self._decode, video), timestamp, window))
        # Emit what is ready in order; block on the oldest only when more than
        # `prefetch` videos are in flight (that bounds memory).
        while self._pending and (len(self._pending) > self.prefetch
                                 or self._pending[0][1].done()):
            v, fut, ts, w = self._pending.popleft()
            yield from self._outputs(v, fut.result(), ts, w)

    def finish_bundle(self):
        while self._pending:
            v, fut, ts, w = self._pending.popleft()
            yield from self._outputs(v, fut.result(), ts, w)

    def teardown(self):
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _decode(self, video):
        """sample_frames, or the failure record; never raises (runs in a thread)."""
        from extractor.decode import DecodeError, sample_frames
        if not isinstance(video, dict) or not video.get("video_id") or not video.get("uri"):
            return failure_record(video, "decode",
                                  f"video record needs 'video_id' and 'uri', got {video!r}",
                                  "bad_argument")
        try:
            return sample_frames(video["uri"], fps=self.fps, max_seconds=self.max_seconds,
                                 size=self.size, timeout_s=self.timeout_s,
                                 on_error=self.on_error)
        except DecodeError as e:
            return failure_record(video, "decode", str(e), getattr(e, "kind", None))
        except Exception as e:  # noqa: BLE001 - a per-video problem never stops a build
            log.exception("unexpected error decoding %s", video.get("uri"))
            return failure_record(video, "decode",
                                  f"{video.get('uri')}: unexpected {type(e).__name__}: {e}",
                                  "unexpected")

    def _outputs(self, video, result, timestamp, window):
        def wv(value):
            return WindowedValue(value, timestamp, (window,))

        if isinstance(result, dict):  # a failure record
            self._failed.inc()
            yield pvalue.TaggedOutput(FAILURES, wv(result))
        else:
            yield from self._frame_outputs(video, result, wv)

    def _frame_outputs(self, video, result, wv):
        vid = video["video_id"]
        n = len(result)
        self._decoded.inc()
        self._frames.inc(n)
        passthrough = dict(video)
        yield pvalue.TaggedOutput(META, wv((vid, {
            "num_frames": n, "frame_times": np.asarray(result.times, np.float64),
            "decode_warnings": list(result.warnings), "video": passthrough})))
        for i in range(n):
            yield wv(((vid, i), result.frames[i]))


def _failed_batch_to_videos(failed):
    """RunInference dead letter ``(batch, exception)`` -> ``(video_id, error)`` per video."""
    batch, exc = failed
    error = f"model inference failed on a batch of {len(batch)} frames: " \
            f"{type(exc).__name__}: {exc}"
    for vid in sorted({key[0] for key, _ in batch}):
        yield vid, error


class AssembleVideoFn(beam.DoFn):
    """CoGroupByKey result -> ``(video_id, features dict)`` or a ``model`` failure."""

    def setup(self):
        self._done = Metrics.counter(NAMESPACE, "extract_videos_done")
        self._frames = Metrics.counter(NAMESPACE, "extract_frames_done")
        self._failed = Metrics.counter(NAMESPACE, "extract_model_failures")

    def process(self, joined):
        vid, groups = joined
        metas = list(groups[META])
        if metas:  # always, unless frames arrived without their video (nothing to report)
            yield from self._assemble(vid, metas[0], groups)

    def _assemble(self, vid, meta, groups):
        video = meta["video"]
        errors = sorted(set(groups["errors"]))
        # A retried bundle cannot duplicate GroupByKey inputs, but index by
        # frame anyway so that order comes from the index, never arrival.
        by_index = {int(i): np.asarray(f, np.float32) for i, f in groups["features"]}
        n = meta["num_frames"]
        if errors or sorted(by_index) != list(range(n)):
            self._failed.inc()
            error = "; ".join(errors) if errors else (
                f"got features for {len(by_index)} of {n} sampled frames")
            yield pvalue.TaggedOutput(FAILURES, failure_record(video, "model", error))
        else:
            yield self._features(vid, video, meta, by_index, n)

    def _features(self, vid, video, meta, by_index, n):
        features = (np.stack([by_index[i] for i in range(n)]) if n
                    else np.zeros((0, 2048), np.float32))
        self._done.inc()
        self._frames.inc(n)
        out = dict(video)
        out.update(features=features, frame_times=meta["frame_times"],
                   decode_warnings=meta["decode_warnings"])
        return vid, out


class ExtractResult(NamedTuple):
    """``features``: ``(video_id, dict)``; ``failures``: failure records (dicts)."""
    features: beam.PCollection
    failures: beam.PCollection

    def __getitem__(self, key):  # also addressable as result["features"]
        if isinstance(key, str):
            return getattr(self, key)
        return tuple.__getitem__(self, key)


class ExtractFeatures(beam.PTransform):
    """Video dicts (``video_id``, ``uri``, any other fields) -> features and failures.

    Arguments: ``weights`` (a spec of ``extractor.weights``) or a ready
    ``model_handler``; ``batch_size`` frames per network call; ``fps`` and
    ``max_seconds`` of the sampling (paper: 1 and 360); ``decode_timeout_s``
    per video; ``on_decode_error`` ``"keep"`` (the frames decoded before a
    mid-stream error are kept, with a warning) or ``"fail"``;
    ``prefetch`` videos decoded ahead of the network.
    """

    def __init__(self, weights: Optional[str] = None, *, batch_size: int = 32,
                 fps: float = 1.0, max_seconds: float = 360.0, size: int = 299,
                 decode_timeout_s: Optional[float] = None, on_decode_error: str = "keep",
                 mixed_precision: bool = False, input_range: Optional[str] = None,
                 model_handler: Optional[InceptionModelHandler] = None, prefetch: int = 1,
                 label: Optional[str] = None):
        super().__init__(label)
        if (weights is None) == (model_handler is None):
            raise ValueError("ExtractFeatures needs exactly one of weights=SPEC (imagenet, a "
                             ".keras/.h5 file, a hub handle or SavedModel directory, "
                             "yt8m-graph:PATH, random) or model_handler=")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not (isinstance(fps, (int, float)) and fps > 0):
            raise ValueError(f"fps must be > 0 frames per second, got {fps!r}")
        if not (isinstance(max_seconds, (int, float)) and max_seconds > 0):
            raise ValueError(f"max_seconds must be > 0, got {max_seconds!r}")
        if decode_timeout_s is not None and not decode_timeout_s > 0:
            raise ValueError(f"decode_timeout_s must be > 0 seconds (or None), "
                             f"got {decode_timeout_s!r}")
        if on_decode_error not in ("keep", "fail"):
            raise ValueError(f"on_decode_error must be 'keep' or 'fail', got {on_decode_error!r}")
        if not isinstance(prefetch, int) or prefetch < 0:
            raise ValueError(f"prefetch must be an integer >= 0, got {prefetch!r}")
        self.model_handler = model_handler or InceptionModelHandler(
            weights, batch_size=batch_size, mixed_precision=mixed_precision,
            input_range=input_range)
        self.fps, self.max_seconds, self.size = float(fps), float(max_seconds), int(size)
        self.decode_timeout_s, self.on_decode_error = decode_timeout_s, on_decode_error
        self.prefetch = prefetch

    def expand(self, videos):
        if not isinstance(videos, beam.PCollection):
            raise TypeError(f"ExtractFeatures applies to a PCollection of video dicts, "
                            f"got {type(videos).__name__}")
        decoded = videos | "DecodeFrames" >> beam.ParDo(DecodeVideoFn(
            self.fps, self.max_seconds, self.size, self.decode_timeout_s,
            self.on_decode_error, self.prefetch)).with_outputs(FAILURES, META, main="frames")
        inferred, dead = (decoded.frames
                          | "RunInference" >> RunInference(
                              KeyedModelHandler(self.model_handler)).with_exception_handling())
        features = inferred | "KeyByVideo" >> beam.Map(lambda kv: (kv[0][0], (kv[0][1], kv[1])))
        errors = dead.failed_inferences | "FailedBatchToVideos" >> beam.FlatMap(
            _failed_batch_to_videos)
        assembled = ({"features": features, META: decoded[META], "errors": errors}
                     | "GroupByVideo" >> beam.CoGroupByKey()
                     | "AssembleVideo" >> beam.ParDo(AssembleVideoFn()).with_outputs(
                         FAILURES, main="features"))
        failures = ((decoded[FAILURES], assembled[FAILURES])
                    | "AllFailures" >> beam.Flatten())
        return ExtractResult(assembled.features, failures)
