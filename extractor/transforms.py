"""``ExtractFeatures``: ``Video``s -> per-frame Inception-v3 features, as one Beam transform.

Input: ``yt8m.records.Video`` elements. Outputs: ``VideoFeatures`` (the video,
float32 ``(F, 2048)`` features, float64 frame times, the decoder's
``DecodeWarning``s) and ``FailureRecord``s. Steps (each labelled):

1. ``DecodeFrames`` (``DecodeVideoFn``): ``extractor.decode.sample_frames`` on
   each video; emits, in one stream, a ``VideoMeta`` record per video (frame
   times, warnings, the ``Video``) followed by its frames keyed
   ``FrameKey(video_id, index, count)``, and, for a video that cannot be read,
   a ``FailureRecord`` (stage ``decode``, the decoder's ``kind``).
   Decoding runs in a background thread one video ahead, so the next video is
   decoded while the network works on the current batch (FFmpeg and
   TensorFlow both release the GIL).
2. ``RunInference`` with ``VideoStreamHandler(InceptionModelHandler)``: frames
   from many videos share batches of ``batch_size`` (meta records ride along,
   weighing nothing); a batch whose inference raises becomes ``stage: "model"``
   failures for its videos instead of stopping the pipeline.
3. ``AssembleVideo`` (``AssembleVideoFn``): frames ordered by index ->
   ``VideoFeatures``.

There is no shuffle and no multi-input ``Flatten`` after decoding (a runner may
execute a ``Flatten`` as a stage boundary): the three steps form one chain that
fuses into one stage, and ``count`` in each frame's key tells the assembler
when a video is whole. So each video is emitted (and cached downstream) as soon
as its last frame leaves the network, not after all inference; a build killed
part way keeps what it finished. A video's frames never span bundles (bundles
split between input videos).

Counters (``yt8m.counters``): ``extract_videos_decoded``,
``extract_frames_decoded``, ``extract_decode_failures``,
``extract_model_failures``, ``extract_videos_done``, ``extract_frames_done``.
"""
from __future__ import annotations

import collections
import concurrent.futures
import logging
from typing import NamedTuple, Optional

import apache_beam as beam
import numpy as np
from apache_beam import pvalue
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.utils.windowed_value import WindowedValue

from yt8m import counters
from yt8m.extractor import logmel
from yt8m.extractor.audio_handler import AudioKey, VGGishModelHandler
from yt8m.extractor.decode import DEVICES, THUMBNAIL_SIZE, DecodeError, sample_frames
from yt8m.extractor.handler import InceptionModelHandler
from yt8m.extractor.vggish import EMBEDDING_DIM
from yt8m.records import DecodeWarning, FailureRecord, Video, VideoFeatures

log = logging.getLogger(__name__)

FAILURES = "failures"


class FrameKey(NamedTuple):
    """Key of one sampled frame through ``RunInference``.

    ``count`` (the video's number of sampled frames) travels with every frame
    so that the assembler knows when a video is complete without a shuffle.
    """
    video_id: str
    index: int
    count: int


class VideoMeta(NamedTuple):
    """Key of a video's meta record, which travels in the frames' stream ahead of them."""
    video_id: str


class BatchFailure(NamedTuple):
    """Stands in for a frame's features when its inference batch raised."""
    error: str


class DecodeVideoFn(beam.DoFn):
    """``Video`` -> ``(VideoMeta, meta)`` then ``(FrameKey, frame)``s (main), ``failures``.

    ``prefetch`` videos are decoded ahead in background threads (0: decode in
    ``process``). Results are emitted in input order; at most ``prefetch``
    decoded videos wait in memory, so memory stays bounded by a few videos'
    sampled frames (360 x 299 x 299 x 3 bytes = 97 MB at most each).
    """

    def __init__(self, fps: float = 1.0, max_seconds: float = 360.0, size: int = 299,
                 timeout_s: Optional[float] = None, on_error: str = "keep",
                 prefetch: int = 1, thumbnails: int = 0,
                 thumbnail_size: int = THUMBNAIL_SIZE, decode_device: str = "cpu",
                 audio: Optional[str] = None):
        self.fps, self.max_seconds, self.size = fps, max_seconds, size
        self.timeout_s, self.on_error, self.prefetch = timeout_s, on_error, int(prefetch)
        self.thumbnails, self.thumbnail_size = int(thumbnails), int(thumbnail_size)
        self.decode_device = decode_device
        # None: no audio; "optional" / "required": see ExtractFeatures.
        self.audio = audio

    def setup(self):
        self._decoded = counters.counter(counters.EXTRACT_VIDEOS_DECODED)
        self._frames = counters.counter(counters.EXTRACT_FRAMES_DECODED)
        self._failed = counters.counter(counters.EXTRACT_DECODE_FAILURES)
        self._counters = counters.Counters()
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

    def _decode(self, video: Video):
        """sample_frames, or the FailureRecord; never raises (runs in a thread)."""
        if not isinstance(video, Video):
            return FailureRecord(None, None, "decode", "bad_argument",
                                 f"ExtractFeatures takes yt8m.records.Video elements, got "
                                 f"{type(video).__name__}: {video!r}")
        if not video.uri:
            return video.failure("decode", "bad_argument",
                                 f"video {video.video_id!r} has no uri: give every manifest "
                                 f"row the path or URI of its video file")
        try:
            result = sample_frames(video.uri, fps=self.fps, max_seconds=self.max_seconds,
                                   size=self.size, timeout_s=self.timeout_s,
                                   on_error=self.on_error, thumbnails=self.thumbnails,
                                   thumbnail_size=self.thumbnail_size,
                                   decode_device=self.decode_device,
                                   audio=self.audio is not None)
            if self.audio is None:
                return result
            return result, self._audio_examples(video, result)
        except DecodeError as e:
            return video.failure("decode", e.kind, str(e))
        except Exception as e:  # noqa: BLE001 - a per-video problem never stops a build
            log.exception("unexpected error decoding %s", video.uri)
            return video.failure("decode", "unexpected",
                                 f"{video.uri}: unexpected {type(e).__name__}: {e}")

    def _audio_examples(self, video: Video, result):
        """The video's log-mel examples (one per sample time), or why there are none:
        ``(examples or None, reason or None)``; a FailureRecord under ``required``."""
        track = result.audio
        if track is not None and track.status == "ok":
            try:
                return logmel.waveform_to_examples(track.waveform, result.times,
                                                   track.sample_rate).examples, None
            except logmel.AudioError as e:
                reason, message = "failed", f"log-mel examples: {e}"
        else:
            reason = track.status if track is not None else "absent"
            message = (track.message if track is not None and track.message
                       else "the file has no audio stream")
        if self.audio == "required":
            return video.failure("decode", f"audio_{reason}",
                                 f"{video.uri}: --audio required: {message}; pass --audio "
                                 f"optional to keep videos without usable sound")
        if reason == "absent":
            # A failed track already carries the decoder's "audio" warning.
            result.warnings.append(DecodeWarning(
                "audio", f"no audio features ({message}): zeros written"))
        return None, reason

    def _outputs(self, video, result, timestamp, window):
        def wv(value):
            return WindowedValue(value, timestamp, (window,))

        audio = (None, None)
        if isinstance(result, tuple):
            result, audio = result
            if isinstance(audio, FailureRecord):
                result = audio
        if isinstance(result, FailureRecord):
            self._failed.inc()
            yield pvalue.TaggedOutput(FAILURES, wv(result))
        else:
            yield from self._frame_outputs(video, result, wv, *audio)

    def _frame_outputs(self, video: Video, result, wv, examples=None, audio_reason=None):
        vid = video.video_id
        n = len(result)
        self._decoded.inc()
        self._frames.inc(n)
        self._count_stats(result.stats)
        thumbs = result.thumbnails
        meta = {"num_frames": n, "frame_times": np.asarray(result.times, np.float64),
                "decode_warnings": tuple(result.warnings), "video": video,
                "thumbnails": (None if thumbs is None or len(thumbs) == 0 else
                               (list(thumbs.images), [float(t) for t in thumbs.times]))}
        if self.audio is not None:
            meta["audio_examples"] = 0 if examples is None else len(examples)
            meta["audio_reason"] = audio_reason
            if examples is None:
                self._counters.inc(counters.audio_missing(audio_reason))
        # In the frames' stream, not a side output: see the module docstring.
        yield wv((VideoMeta(vid), meta))
        for i in range(n):
            yield wv((FrameKey(vid, i, n), result.frames[i]))
        if examples is not None:
            for i in range(len(examples)):
                yield wv((AudioKey(vid, i, len(examples)), examples[i]))


    def _count_stats(self, stats) -> None:
        """The video's ``DecodeStats`` summed into Beam counters (dataset_info ``decode``)."""
        c = self._counters
        c.inc(counters.DECODE_PACKETS, stats.packets)
        c.inc(counters.DECODE_PACKETS_DECODED, stats.packets_decoded)
        c.inc(counters.DECODE_PACKETS_SKIPPED, stats.packets_skipped)
        c.inc(counters.DECODE_FRAMES_DECODED, stats.frames_decoded_total or stats.frames_decoded)
        if stats.restarted:
            c.inc(counters.DECODE_RESTARTS)
        c.inc(counters.decode_device_videos(stats.device))
        if stats.device != self.decode_device:
            c.inc(counters.DECODE_DEVICE_FALLBACKS)


def _frame_weight(element) -> int:
    """``BatchElements`` weight: frames count toward ``batch_size``, meta records do not."""
    return 1 if isinstance(element[0], FrameKey) else 0


class VideoStreamHandler(KeyedModelHandler):
    """``KeyedModelHandler`` over the decoder's stream of meta records and keyed frames.

    Frames go to the wrapped handler (at most ``batch_size`` per batch: meta
    records weigh 0 in ``BatchElements``); meta records pass through
    unchanged. A batch whose inference raises yields a ``BatchFailure`` for
    each of its frames, so the failure reaches the assembler in the same
    stream (a dead-letter output would need a ``Flatten``, a stage boundary).
    """

    def __init__(self, frame_handler: InceptionModelHandler):
        super().__init__(frame_handler)
        self._frame_handler = frame_handler

    def batch_elements_kwargs(self):
        return {**self._frame_handler.batch_elements_kwargs(), "element_size_fn": _frame_weight}

    def run_inference(self, batch, model, inference_args=None):
        frames = [frame for key, frame in batch if isinstance(key, FrameKey)]
        outs: list = []
        if frames:
            try:
                outs = list(self._frame_handler.run_inference(frames, model, inference_args))
                if len(outs) != len(frames):
                    raise RuntimeError(f"the model handler returned {len(outs)} results for "
                                       f"{len(frames)} frames")
            except Exception as e:  # noqa: BLE001 - a per-video problem never stops a build
                log.exception("inference failed on a batch of %d frames", len(frames))
                outs = [BatchFailure(f"model inference failed on a batch of {len(frames)} "
                                     f"frames: {type(e).__name__}: {e}")] * len(frames)
        it = iter(outs)
        return [(key, next(it) if isinstance(key, FrameKey) else value) for key, value in batch]

    def get_num_bytes(self, batch) -> int:
        return self._frame_handler.get_num_bytes(
            [frame for key, frame in batch if isinstance(key, FrameKey)])


def _audio_weight(element) -> int:
    """``BatchElements`` weight of the audio stage: audio examples count, the rest not."""
    return 1 if isinstance(element[0], AudioKey) else 0


class AudioStreamHandler(KeyedModelHandler):
    """The audio twin of ``VideoStreamHandler``: runs VGGish on the stream's
    ``(AudioKey, (96, 64) example)`` elements and passes everything else (meta
    records, frame features) through unchanged, in the same fused stage. A
    batch whose inference raises yields a ``BatchFailure`` per example."""

    def __init__(self, audio_handler: VGGishModelHandler):
        super().__init__(audio_handler)
        self._audio_handler = audio_handler

    def batch_elements_kwargs(self):
        return {**self._audio_handler.batch_elements_kwargs(), "element_size_fn": _audio_weight}

    def run_inference(self, batch, model, inference_args=None):
        examples = [x for key, x in batch if isinstance(key, AudioKey)]
        outs: list = []
        if examples:
            try:
                outs = list(self._audio_handler.run_inference(examples, model, inference_args))
                if len(outs) != len(examples):
                    raise RuntimeError(f"the audio handler returned {len(outs)} results for "
                                       f"{len(examples)} examples")
            except Exception as e:  # noqa: BLE001 - a per-video problem never stops a build
                log.exception("audio inference failed on a batch of %d examples", len(examples))
                outs = [BatchFailure(f"audio inference failed on a batch of {len(examples)} "
                                     f"examples: {type(e).__name__}: {e}")] * len(examples)
        it = iter(outs)
        return [(key, next(it) if isinstance(key, AudioKey) else value) for key, value in batch]

    def get_num_bytes(self, batch) -> int:
        return self._audio_handler.get_num_bytes(
            [x for key, x in batch if isinstance(key, AudioKey)])


class _PendingVideo:
    """What the assembler holds for one video until its last frame is accounted for."""

    __slots__ = ("meta", "features", "lost", "errors", "count", "window", "timestamp",
                 "audio")

    def __init__(self, window, timestamp):
        self.meta: Optional[dict] = None
        self.features: dict = {}  # frame index -> float32 (2048,)
        self.lost: set = set()  # frame indices of failed batches
        self.errors: list = []
        self.count: Optional[int] = None
        self.window, self.timestamp = window, timestamp
        self.audio: dict = {}  # example index -> float32 (128,) or BatchFailure

    def complete(self) -> bool:
        return (self.meta is not None
                and len(self.features.keys() | self.lost) >= self.meta["num_frames"]
                and len(self.audio) >= self.meta.get("audio_examples", 0))


class AssembleVideoFn(beam.DoFn):
    """``RunInference`` output -> ``VideoFeatures``, or ``model`` ``FailureRecord``s.

    Input: ``(VideoMeta, meta)``, ``(FrameKey, float32 (2048,))`` and
    ``(FrameKey, BatchFailure)``, in any order. Keeps, per bundle, what has
    arrived for each unfinished video and emits a video the moment its meta
    record and all its frames have arrived. Anything still incomplete at the
    end of the bundle becomes a ``stage: "model"`` failure: that only happens
    if a step that splits the fused stage was put between decoding and assembly.
    """

    def setup(self):
        self._done = counters.counter(counters.EXTRACT_VIDEOS_DONE)
        self._frames = counters.counter(counters.EXTRACT_FRAMES_DONE)
        self._failed = counters.counter(counters.EXTRACT_MODEL_FAILURES)
        self._with_audio = counters.counter(counters.AUDIO_VIDEOS_WITH_FEATURES)
        self._examples = counters.counter(counters.AUDIO_EXAMPLES_DONE)

    def start_bundle(self):
        self._pending: dict = {}
        # Ids emitted in this bundle: a later record for one (a duplicate id in
        # the input) must not open a video that can never complete.
        self._emitted: set = set()

    def process(self, element, window=beam.DoFn.WindowParam,
                timestamp=beam.DoFn.TimestampParam):
        key, value = element
        vid = key.video_id
        if vid in self._emitted:
            log.warning("video_id %r appears more than once in the input; only its first "
                        "copy is extracted (give every video a unique id)", vid)
            return
        video = self._pending.get(vid)
        if video is None:
            video = self._pending[vid] = _PendingVideo(window, timestamp)
        if isinstance(key, VideoMeta):
            if video.meta is None:
                video.meta = value
            else:
                log.warning("video_id %r appears more than once in the input; only its first "
                            "copy is extracted (give every video a unique id)", vid)
        elif isinstance(key, AudioKey):
            if isinstance(value, BatchFailure):
                video.errors.append(value.error)
            video.audio[int(key.index)] = value
        else:
            video.count = key.count
            if isinstance(value, BatchFailure):
                video.lost.add(int(key.index))
                video.errors.append(value.error)
            else:
                # Indexed by frame: order comes from the index, never from arrival.
                video.features[int(key.index)] = np.asarray(value, np.float32)
        if video.complete():
            del self._pending[vid]
            self._emitted.add(vid)
            yield self._assemble(vid, video)

    def finish_bundle(self):
        for vid, video in sorted(self._pending.items()):
            meta = video.meta or {"video": None, "num_frames": video.count}
            have = len(video.features)
            error = (f"video {vid!r}: got features for {have} of {meta['num_frames']} sampled "
                     f"frames{'' if video.meta else ' and no decode record'} by the end of "
                     f"the bundle; ExtractFeatures' decode, inference and assembly must run "
                     f"fused in one stage (do not put a Reshuffle or GroupByKey inside it)")
            if video.errors:
                error = "; ".join(sorted(set(video.errors))) + "; " + error
            self._failed.inc()
            record = (meta["video"].failure("model", "incomplete", error) if meta["video"]
                      else FailureRecord(vid, None, "model", "incomplete", error))
            yield pvalue.TaggedOutput(FAILURES, WindowedValue(
                record, video.timestamp, (video.window,)))
        self._pending.clear()

    def _assemble(self, vid, video: _PendingVideo):
        meta = video.meta
        n = meta["num_frames"]
        if video.errors or sorted(video.features) != list(range(n)):
            self._failed.inc()
            if video.errors:
                kind, error = "inference", "; ".join(sorted(set(video.errors)))
            else:
                kind, error = "incomplete", (f"got features for {len(video.features)} of {n} "
                                             f"sampled frames")
            return pvalue.TaggedOutput(FAILURES, meta["video"].failure("model", kind, error))
        features = (np.stack([video.features[i] for i in range(n)]) if n
                    else np.zeros((0, 2048), np.float32))
        audio = None
        if "audio_examples" in meta:
            m = meta["audio_examples"]
            if m and (m != n or sorted(video.audio) != list(range(n))):
                self._failed.inc()
                return pvalue.TaggedOutput(FAILURES, meta["video"].failure(
                    "model", "incomplete", f"got {len(video.audio)} audio embeddings for "
                    f"{m} examples and {n} sampled frames"))
            if m:
                audio = np.stack([np.asarray(video.audio[i], np.float32) for i in range(n)])
                self._with_audio.inc()
                self._examples.inc(m)
            else:
                # No usable sound (--audio optional): zeros, flagged by the video's
                # "audio" decode warning and counted by reason at decode time.
                audio = np.zeros((n, EMBEDDING_DIM), np.float32)
        self._done.inc()
        self._frames.inc(n)
        return VideoFeatures(meta["video"], features, meta["frame_times"],
                             decode_warnings=meta["decode_warnings"],
                             thumbnails=meta.get("thumbnails"), audio=audio)


class ExtractResult(NamedTuple):
    """``features``: ``VideoFeatures``; ``failures``: ``FailureRecord``s."""
    features: beam.PCollection
    failures: beam.PCollection

    def __getitem__(self, key):  # also addressable as result["features"]
        if isinstance(key, str):
            return getattr(self, key)
        return tuple.__getitem__(self, key)


class ExtractFeatures(beam.PTransform):
    """``Video``s -> ``VideoFeatures`` and ``FailureRecord``s (see the module docstring).

    Arguments: ``weights`` (a spec of ``extractor.weights``) or a ready
    ``model_handler``; ``batch_size`` frames per network call; ``fps`` and
    ``max_seconds`` of the sampling (paper: 1 and 360); ``decode_timeout_s``
    per video; ``on_decode_error`` ``"keep"`` (the frames decoded before a
    mid-stream error are kept, with a warning) or ``"fail"``;
    ``prefetch`` videos decoded ahead of the network; ``thumbnails`` small
    upright pictures per video kept from the same decode (longest side
    ``thumbnail_size``; they ride on ``VideoFeatures.thumbnails``);
    ``decode_device`` ``"cpu"`` or ``"cuda"`` (``extractor.hwdecode``: without
    a device, the CPU with one warning per worker process); ``precision`` of
    the Keras weights (``extractor.precision``; already resolved, not ``auto``).
    """

    def __init__(self, weights: Optional[str] = None, *, batch_size: int = 32,
                 fps: float = 1.0, max_seconds: float = 360.0, size: int = 299,
                 decode_timeout_s: Optional[float] = None, on_decode_error: str = "keep",
                 mixed_precision: bool = False, input_range: Optional[str] = None,
                 model_handler: Optional[InceptionModelHandler] = None, prefetch: int = 1,
                 thumbnails: int = 0, thumbnail_size: int = THUMBNAIL_SIZE,
                 decode_device: str = "cpu", precision: Optional[str] = None,
                 label: Optional[str] = None, audio_weights: Optional[str] = None,
                 audio: str = "optional", audio_handler: Optional[VGGishModelHandler] = None):
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
        if isinstance(thumbnails, bool) or not isinstance(thumbnails, int) or thumbnails < 0:
            raise ValueError(f"thumbnails must be an integer >= 0, got {thumbnails!r}")
        if decode_device not in DEVICES:
            raise ValueError(f"decode_device must be one of {DEVICES}, got {decode_device!r}")
        if mixed_precision and precision not in (None, "float16"):
            raise ValueError(f"mixed_precision=True (float16) contradicts precision={precision!r}: "
                             f"pass precision only")
        self.model_handler = model_handler or InceptionModelHandler(
            weights, batch_size=batch_size, input_range=input_range,
            precision="float16" if mixed_precision else (precision or "float32"))
        self.fps, self.max_seconds, self.size = float(fps), float(max_seconds), int(size)
        self.decode_timeout_s, self.on_decode_error = decode_timeout_s, on_decode_error
        self.prefetch = prefetch
        self.thumbnails, self.thumbnail_size = thumbnails, int(thumbnail_size)
        self.decode_device = decode_device
        # Audio: VGGish embeddings per sampled second when audio weights (or a
        # handler) are given; "optional" or "required" says what a video
        # without usable sound becomes (zeros + warning, or a failure).
        if audio not in ("optional", "required"):
            raise ValueError(f"audio must be 'optional' or 'required' (no audio: pass no "
                             f"audio_weights), got {audio!r}")
        if audio_weights is not None and audio_handler is not None:
            raise ValueError("ExtractFeatures takes audio_weights= or audio_handler=, not both")
        self.audio_handler = audio_handler or (
            VGGishModelHandler(audio_weights, batch_size=batch_size)
            if audio_weights is not None else None)
        self.audio = audio if self.audio_handler is not None else None

    def expand(self, videos):
        if not isinstance(videos, beam.PCollection):
            raise TypeError(f"ExtractFeatures applies to a PCollection of Video records, "
                            f"got {type(videos).__name__}")
        decoded = videos | "DecodeFrames" >> beam.ParDo(DecodeVideoFn(
            self.fps, self.max_seconds, self.size, self.decode_timeout_s,
            self.on_decode_error, self.prefetch, self.thumbnails, self.thumbnail_size,
            self.decode_device, self.audio)).with_outputs(FAILURES, main="frames")
        # One chain, no Flatten or shuffle: decode, batching, inference and
        # assembly fuse into one stage (see the module docstring).
        inferred = (decoded.frames
                    | "RunInference" >> RunInference(VideoStreamHandler(self.model_handler)))
        if self.audio_handler is not None:
            inferred = inferred | "RunAudioInference" >> RunInference(
                AudioStreamHandler(self.audio_handler))
        assembled = (inferred
                     | "AssembleVideo" >> beam.ParDo(AssembleVideoFn()).with_outputs(
                         FAILURES, main="features"))
        failures = ((decoded[FAILURES], assembled[FAILURES])
                    | "AllFailures" >> beam.Flatten())
        return ExtractResult(assembled.features, failures)
