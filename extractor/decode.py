"""Frame sampling with PyAV: the frames shown at t = 0, 1/fps, 2/fps, ... seconds.

Semantics (docs/decoding.md has the full story):

- Times are presentation times counted from the first decoded frame's, so a
  stream whose first timestamp is not 0 starts at t = 0 like any other.
- The frame sampled at ``t`` is the last frame (in presentation order) whose
  time is ``<= t``. Comparisons are exact (rational time bases), so a frame at
  exactly 1.000 s is the one shown at t = 1.
- Samples are taken for ``t < min(duration, max_seconds)``, where ``duration``
  is where the decoded stream ends: the last frame's time plus its duration.
  The container's declared duration is never trusted for sampling (it can be
  missing or wrong); it is only compared with the decoded end to detect a
  truncated file.
- Frames come out upright (the display matrix's rotation is applied), RGB,
  scaled by swscale straight to ``size x size`` (aspect not kept, as the
  original YouTube-8M extractor fed Inception).

Cost: packets no sample needs are not decoded at all (``skip_packets``,
``extractor.skipping``: non-reference pictures no sample shows, and the
pictures between the last one a sample needs and the next key frame), with
samples identical to a full decode; only kept frames are converted to RGB
and scaled; decoding is threaded; packets are streamed, so memory holds one
decoded frame, a small window of compressed packets and the kept (small)
frames, whatever the length or resolution of the video; decoding stops once
``max_seconds`` is reached.

In the same pass, on request: a few small upright thumbnails from the
decoded frames of evenly spread samples (``thumbnails``), the audio track as
a 16 kHz mono waveform aligned with the samples (``audio``,
``extractor.audio_track``), and decoding on a GPU (``decode_device``,
``extractor.hwdecode``). ``SampledFrames.stats`` counts what was decoded and
skipped.

``iter_frames`` is the streaming form (a Beam DoFn can yield frames as they
come); ``sample_frames`` collects them into one ``SampledFrames``. Local paths
are opened by FFmpeg directly; any other URI (``gs://``, ``s3://``, ...) goes
through ``apache_beam.io.filesystems.FileSystems.open``.

Every failure is a ``DecodeError`` (a ``ValueError``) whose ``kind`` names the
problem (``KINDS``) and whose message names the input and what to do.
"""
from __future__ import annotations

import dataclasses
import fractions
import io
import math
import os
import re
import threading
import time
from typing import Iterator

import av
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from yt8m.extractor import hwdecode
from yt8m.extractor.audio_track import AudioDecoder, AudioTrack
from yt8m.extractor.bitstream import parser_for
from yt8m.extractor.skipping import SkipPlanner, min_window
from yt8m.records import DecodeWarning

# Failure kinds, stable strings a pipeline can count and report.
KINDS = (
    "missing",          # no file at the URI
    "permission",       # the file exists but cannot be read
    "empty",            # 0 bytes
    "not_video",        # FFmpeg cannot open it as a media file (random bytes, text, truncated header)
    "no_video_stream",  # a media file without video (audio only, or only cover art)
    "still_image",      # a single picture (PNG, JPEG, ...), not a video
    "no_frames",        # a video stream from which no frame could be decoded
    "too_short",        # fewer sampled frames than min_frames
    "truncated",        # decoded stream ends well before the declared duration (on_error="fail")
    "read_error",       # reading or decoding failed part way (on_error="fail")
    "timeout",          # the per-video deadline passed
    "bad_argument",     # a parameter of the call itself is wrong
)

# FFmpeg demuxers that read single pictures: a still image is not a video.
_IMAGE_DEMUXERS = ("image2",)

DEVICES = hwdecode.DEVICES
AUDIO_RATE = 16000        # VGGish's input rate
THUMBNAIL_SIZE = 160      # default longest side of a thumbnail, pixels


class DecodeError(ValueError):
    """A video could not be sampled; ``kind`` is one of ``KINDS``, ``uri`` the input."""

    def __init__(self, uri: str, kind: str, message: str):
        super().__init__(f"{uri}: {message}")
        self.uri = uri
        self.kind = kind


class DecodeTimeout(DecodeError):
    """The decode ran past its ``timeout_s`` deadline."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What the container says about the sampled video stream.

    ``rotation`` (and the swap of ``width``/``height`` it implies) is read from
    the first decoded frame's display matrix, so it is final once iteration has
    started; before that it is 0.
    """

    uri: str
    container: str
    codec: str
    width: int                # displayed (upright) size
    height: int
    rotation: int             # counter-clockwise degrees applied to make frames upright
    declared_duration_s: float | None
    average_rate: float | None


@dataclasses.dataclass(frozen=True)
class SampledFrame:
    """One sample: ``rgb`` (size, size, 3) uint8, shown at ``time`` seconds.

    ``source_time`` is the presentation time (from the first frame's) of the
    decoded frame shown then; ``index`` the sample number (``time = index / fps``).
    """

    index: int
    time: float
    source_time: float
    rgb: np.ndarray


@dataclasses.dataclass
class DecodeStats:
    """What decoding one video took (the run whose samples are returned).

    ``packets`` video packets were read and decided on: ``packets_decoded``
    went to the decoder, ``packets_skipped`` were not needed by any sample.
    ``frames_decoded``: frames the decoder returned; ``frames_decoded_total``
    also counts a first run given up (``restarted``). ``skipping``: ``on``,
    ``off`` (``skip_packets=False``) or ``unsupported`` (a codec without a
    parser: everything is decoded); ``skip_stopped``: why skipping stopped
    part way (something the planner could not vouch for); ``restarted``: why
    the video was decoded again from the start with skipping off (a doubt
    that came after packets had been skipped). ``device``: what decoded
    (``cpu``/``cuda``); ``device_note``: why the requested device was not
    used. ``audio_packets``: audio packets decoded. ``seconds``: wall time.
    """

    packets: int = 0
    packets_decoded: int = 0
    packets_skipped: int = 0
    frames_decoded: int = 0
    frames_decoded_total: int = 0
    skipping: str = "off"
    skip_stopped: str | None = None
    restarted: str | None = None
    device: str = "cpu"
    device_note: str | None = None
    audio_packets: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Thumbnails:
    """Small upright RGB pictures of evenly spread samples.

    ``images`` (N, h, w, 3) uint8, longest side ``thumbnail_size``, the
    displayed aspect ratio kept; ``sample_indices`` (N,) which samples they
    show (the same decoded frames), ``times`` (N,) their sample times.
    """

    images: np.ndarray
    sample_indices: np.ndarray
    times: np.ndarray

    def __len__(self) -> int:
        return int(self.sample_indices.shape[0])


@dataclasses.dataclass
class SampledFrames:
    """All samples of one video.

    ``frames`` (F, size, size, 3) uint8 RGB; ``times`` (F,) float64 sample times
    in seconds (k / fps); ``source_times`` (F,) float64 presentation time of the
    frame shown at each sample; ``duration_s`` where the decoded stream ends
    (None when decoding stopped at ``max_seconds`` before the end);
    ``warnings`` anything the caller should record (partial decodes, suspected
    truncation, dropped out-of-order frames, an audio track that failed);
    ``decoded_frames`` frames decoded (all runs: the work done); ``stats`` the
    details (``DecodeStats``); ``thumbnails`` (``Thumbnails``) when asked for;
    ``audio`` (``extractor.audio_track.AudioTrack``) when asked for.
    """

    frames: np.ndarray
    times: np.ndarray
    source_times: np.ndarray
    duration_s: float | None
    info: VideoInfo
    warnings: list[DecodeWarning]
    decoded_frames: int
    stats: DecodeStats = dataclasses.field(default_factory=DecodeStats)
    thumbnails: Thumbnails | None = None
    audio: AudioTrack | None = None

    def __len__(self) -> int:
        return int(self.times.shape[0])


class _Restart(Exception):
    """Decode the video again from the start, with skipping off (``reason``)."""

    def __init__(self, reason: str, cpu: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.cpu = cpu


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _is_local(uri: str) -> bool:
    # "scheme://..." goes through Beam's FileSystems (gs://, s3://, hdfs://, ...);
    # plain paths and file:// are opened by FFmpeg directly (no Python copy loop).
    return uri.startswith("file://") or not _SCHEME.match(uri)


def _local_path(uri: str) -> str:
    return uri[len("file://"):] if uri.startswith("file://") else uri


class _DeadlineReader(io.RawIOBase):
    """A Beam FileSystems stream for FFmpeg that checks the deadline on every read.

    A read failure or a passed deadline is recorded and shown to FFmpeg as the
    end of the file (an exception raised inside FFmpeg's read callback would
    only be logged and dropped by PyAV); the stream then reports the recorded
    cause once FFmpeg returns.
    """

    def __init__(self, raw, deadline: float | None):
        self._raw = raw
        self._deadline = deadline
        self.error: BaseException | None = None
        self.timed_out = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._raw.seekable() if hasattr(self._raw, "seekable") else True

    def read(self, n: int = -1) -> bytes:
        if self.error is not None or self.timed_out:
            return b""
        if self._deadline is not None and time.monotonic() > self._deadline:
            self.timed_out = True
            return b""
        try:
            return self._raw.read(n)
        except Exception as e:  # reported by FrameStream after FFmpeg sees the end
            self.error = e
            return b""

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


class FrameStream:
    """Iterator over the ``SampledFrame``s of one video; opened on construction.

    Use as ``with iter_frames(uri) as stream: for f in stream: ...``. After the
    iteration ends, ``duration_s``, ``warnings``, ``decoded_frames``,
    ``stats``, ``thumbnails`` and ``audio`` hold the totals. The container is
    closed when iteration ends or on ``close()``.
    """

    def __init__(self, uri: str, fps: float = 1.0, max_seconds: float = 360.0,
                 size: int | None = 299, *, interpolation: str = "BILINEAR",
                 threads: int = 0, timeout_s: float | None = None,
                 on_error: str = "keep", skip_packets: bool = True, decode_device: str = "cpu",
                 thumbnails: int = 0, thumbnail_size: int = THUMBNAIL_SIZE,
                 audio: bool = False, audio_rate: int = AUDIO_RATE):
        self._started = time.perf_counter()
        uri = os.fspath(uri)
        if not isinstance(uri, str) or not uri:
            raise DecodeError(str(uri), "bad_argument", "empty video URI; pass a path or a gs:// style URI")
        if not (fps > 0 and math.isfinite(fps)):
            raise DecodeError(uri, "bad_argument", f"fps must be a positive number, got {fps!r}")
        if not (max_seconds > 0):
            raise DecodeError(uri, "bad_argument", f"max_seconds must be > 0, got {max_seconds!r}")
        if size is not None and (int(size) != size or size < 1):
            raise DecodeError(uri, "bad_argument", f"size must be a positive integer or None, got {size!r}")
        if on_error not in ("keep", "fail"):
            raise DecodeError(uri, "bad_argument", f"on_error must be 'keep' or 'fail', got {on_error!r}")
        if decode_device not in DEVICES:
            raise DecodeError(uri, "bad_argument",
                              f"decode_device must be one of {DEVICES}, got {decode_device!r}")
        if isinstance(thumbnails, bool) or int(thumbnails) != thumbnails or thumbnails < 0:
            raise DecodeError(uri, "bad_argument",
                              f"thumbnails must be a whole number >= 0, got {thumbnails!r}")
        if int(thumbnail_size) != thumbnail_size or thumbnail_size < 1:
            raise DecodeError(uri, "bad_argument",
                              f"thumbnail_size must be a positive integer, got {thumbnail_size!r}")
        if int(audio_rate) != audio_rate or not 1000 <= audio_rate <= 384000:
            raise DecodeError(uri, "bad_argument",
                              f"audio_rate must be an integer rate in Hz (1000..384000), got {audio_rate!r}")
        self.uri = uri
        self.size = None if size is None else int(size)
        self.interpolation = interpolation
        self.on_error = on_error
        self.timeout_s = timeout_s
        self.skip_packets = bool(skip_packets)
        self.decode_device = decode_device
        self.thumbnail_count = int(thumbnails)
        self.thumbnail_size = int(thumbnail_size)
        self.audio_requested = bool(audio)
        self.audio_rate = int(audio_rate)
        self._max_seconds = float(max_seconds)
        self._deadline = None if timeout_s is None else time.monotonic() + float(timeout_s)
        self._rate = fractions.Fraction(fps).limit_denominator(1_000_000)
        # Number of sample times k / rate strictly below the cap.
        cap = fractions.Fraction(max_seconds).limit_denominator(1_000_000) if math.isfinite(max_seconds) else None
        self._kmax = math.ceil(cap * self._rate) if cap is not None else None
        self.warnings: list[DecodeWarning] = []
        self.duration_s: float | None = None
        self.decoded_frames = 0
        self.stats = DecodeStats()
        self.thumbnails: Thumbnails | None = None
        self.audio: AudioTrack | None = None
        self._reader: _DeadlineReader | None = None
        self._container = None
        self._audio_stream = None
        self._iter: Iterator[SampledFrame] | None = None
        self._threads = threads
        self._use_device = decode_device
        self._replay = False
        self._open(threads)

    # ------------------------------------------------------------------ opening

    def _open(self, threads: int) -> None:
        uri = self.uri
        if _is_local(uri):
            path = _local_path(uri)
            self._check_local(path)
            source = path
        else:
            source = self._open_remote(uri)
        accel = hwdecode.hwaccel_for(self._use_device)
        self.stats.device = self._use_device if accel is not None else "cpu"
        if self._use_device != "cpu" and accel is None:
            self.stats.device_note = hwdecode.device_problem(self._use_device)
        try:
            try:
                self._container = av.open(source, mode="r", metadata_errors="ignore", hwaccel=accel)
            except (av.error.FFmpegError, OSError, RuntimeError) as e:
                if accel is None or (isinstance(e, av.error.FileNotFoundError)):
                    raise
                # The device exists but would not decode this file: decode it on the CPU.
                self._container = None
                note = f"the {self._use_device} decoder could not open this file ({type(e).__name__}: {e})"
                hwdecode.warn_once(self._use_device, note, key=self._use_device + ":open")
                self.stats.device, self.stats.device_note = "cpu", note
                if self._reader is not None:
                    self._reader.seek(0)
                self._container = av.open(source, mode="r", metadata_errors="ignore")
        except av.error.FileNotFoundError:
            self._fail("missing", "file not found; check the manifest's uri")
        except (av.error.PermissionError, PermissionError):
            self._fail("permission", "permission denied; make the file readable by the pipeline's user")
        except (av.error.FFmpegError, OSError) as e:
            self._raise_read_problem(e, opening=True)
        container = self._container
        fmt = container.format.name
        streams = [s for s in container.streams.video
                   if not (s.disposition & av.stream.Disposition.attached_pic)]
        if not streams:
            kinds = sorted({s.type for s in container.streams}) or ["nothing"]
            extra = " (only cover art)" if container.streams.video else ""
            self._fail("no_video_stream",
                       f"no video stream in this {fmt} file{extra}; it holds {', '.join(kinds)}. "
                       "Remove it from the manifest or point the uri at the video file")
        if fmt in _IMAGE_DEMUXERS or fmt.endswith("_pipe"):
            self._fail("still_image",
                       f"a still image ({fmt.replace('_pipe', '')}), not a video; remove it from the manifest")
        # The video with the most pixels: some files carry a thumbnail track too.
        stream = max(streams, key=lambda s: (s.codec_context.width or 0) * (s.codec_context.height or 0))
        ctx = stream.codec_context
        # Frame + slice threads: FFmpeg decodes several frames at once.
        stream.thread_type = "AUTO"
        ctx.thread_count = int(threads)
        self._stream = stream
        declared = None
        if stream.duration is not None and stream.time_base is not None:
            declared = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            # The container's duration runs from its start time, which can be > 0.
            declared = (container.duration - (container.start_time or 0)) / av.time_base
        rate = stream.average_rate or stream.guessed_rate
        self.info = VideoInfo(uri=uri, container=fmt, codec=ctx.name, width=ctx.width, height=ctx.height,
                              rotation=0, declared_duration_s=declared,
                              average_rate=float(rate) if rate else None)
        if self.stats.device != "cpu" and not ctx.is_hwaccel:
            # No hardware decoder for this codec (or profile): FFmpeg's software one runs.
            self.stats.device = "cpu"
            self.stats.device_note = f"no {self._use_device} decoder for {ctx.name}"
        self._audio_stream = None
        if self.audio_requested and container.streams.audio:
            audio = list(container.streams.audio)
            default = [s for s in audio if s.disposition & av.stream.Disposition.default]
            self._audio_stream = (default or audio)[0]

    def _check_local(self, path: str) -> None:
        # Checked here (not left to FFmpeg) because FFmpeg reports a directory or
        # an empty file as "invalid data", which tells the user nothing.
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._fail("missing", "file not found; check the manifest's uri (and the working directory for relative paths)")
        except PermissionError:
            self._fail("permission", "permission denied on the path; make it readable by the pipeline's user")
        if os.path.isdir(path):
            self._fail("not_video", "is a directory, not a video file; point the manifest's uri at "
                                    "the video file, or remove it from the manifest")
        if st.st_size == 0:
            self._fail("empty", "the file is empty (0 bytes); re-download or remove it from the manifest")
        if not os.access(path, os.R_OK):
            self._fail("permission", "permission denied; make the file readable by the pipeline's user")

    def _open_remote(self, uri: str):
        try:
            if not FileSystems.exists(uri):
                self._fail("missing", "file not found; check the manifest's uri")
            raw = FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED)
        except DecodeError:
            raise
        except PermissionError:
            self._fail("permission", "permission denied; grant the pipeline's service account read access")
        except Exception as e:  # Beam wraps filesystem errors in BeamIOError and others
            text = str(e)
            if isinstance(e, FileNotFoundError) or "not found" in text.lower():
                self._fail("missing", f"file not found ({text}); check the manifest's uri")
            if "permission" in text.lower() or "403" in text:
                self._fail("permission", f"permission denied ({text}); grant read access")
            self._fail("read_error", f"cannot open through Beam's FileSystems: {type(e).__name__}: {text}")
        self._reader = _DeadlineReader(raw, self._deadline)
        # A zero-byte object: the same clear message as for a local file.
        try:
            head = self._reader.read(1)
            if self._reader.error is not None or self._reader.timed_out:
                self._raise_read_problem(self._reader.error or TimeoutError(), opening=True)
            self._reader.seek(0)
        except DecodeError:
            raise
        except Exception as e:
            self._raise_read_problem(e, opening=True)
        if not head:
            self._fail("empty", "the file is empty (0 bytes); re-upload or remove it from the manifest")
        return self._reader

    # ------------------------------------------------------------------ errors

    def _fail(self, kind: str, message: str):
        self.close()
        cls = DecodeTimeout if kind == "timeout" else DecodeError
        raise cls(self.uri, kind, message)

    def _raise_read_problem(self, e: BaseException, opening: bool):
        """Turns an error from FFmpeg or the reader into the DecodeError it means."""
        reader = self._reader
        if (reader is not None and reader.timed_out) or isinstance(e, TimeoutError):
            self._timeout()
        if reader is not None and reader.error is not None:
            err = reader.error
            if isinstance(err, PermissionError):
                self._fail("permission", f"permission denied while reading: {err}")
            self._fail("read_error", f"reading the file failed: {type(err).__name__}: {err}; "
                                     "retry, or check the storage system")
        if opening:
            if isinstance(e, (av.error.PermissionError, PermissionError)):
                self._fail("permission", "permission denied; make the file readable by the pipeline's user")
            self._fail("not_video",
                       f"FFmpeg cannot read this as a video ({_ffmpeg_reason(e)}): it is corrupt, "
                       "truncated before its index, or not a video at all; re-download it or remove "
                       "it from the manifest")
        self._fail("read_error", f"decoding failed: {_ffmpeg_reason(e)}")

    def _timeout(self):
        self._fail("timeout", f"decoding took longer than timeout_s={self.timeout_s:g} s and was stopped; "
                              "the file may be malformed, or raise the timeout for very long videos")

    # ------------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[SampledFrame]:
        if self._iter is None:
            self._iter = self._generate()
        return self._iter

    def __enter__(self) -> "FrameStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._container is not None:
            container, self._container = self._container, None
            container.close()
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.close()

    def _convert(self, frame: av.VideoFrame, rotation: int) -> np.ndarray:
        """RGB at the output size, upright. Only called for frames that are kept."""
        frame = hwdecode.software_frame(frame)
        size = self.size
        if size is None:
            rgb = frame.to_ndarray(format="rgb24")
        else:
            # One swscale pass: YUV -> RGB and scaling together.
            rgb = frame.reformat(width=size, height=size, format="rgb24",
                                 interpolation=self.interpolation).to_ndarray()
        if rotation:
            rgb = np.ascontiguousarray(np.rot90(rgb, rotation // 90))
        return rgb

    def _thumbnail(self, frame: av.VideoFrame, rotation: int) -> np.ndarray:
        """The decoded frame once more, small: longest side ``thumbnail_size``,
        the displayed aspect ratio (pixel aspect and rotation) kept, upright."""
        frame = hwdecode.software_frame(frame)
        sar = self._stream.sample_aspect_ratio
        sar = float(sar) if sar else 1.0
        stored_w, stored_h = frame.width * sar, frame.height
        up_w, up_h = (stored_h, stored_w) if rotation in (90, 270) else (stored_w, stored_h)
        side = self.thumbnail_size
        if up_w >= up_h:
            tw, th = side, max(1, round(side * up_h / up_w))
        else:
            tw, th = max(1, round(side * up_w / up_h)), side
        sw, sh = (th, tw) if rotation in (90, 270) else (tw, th)
        rgb = frame.reformat(width=sw, height=sh, format="rgb24",
                             interpolation=self.interpolation).to_ndarray()
        if rotation:
            rgb = np.ascontiguousarray(np.rot90(rgb, rotation // 90))
        return rgb

    def _generate(self) -> Iterator[SampledFrame]:
        if self._container is None:
            raise DecodeError(self.uri, "bad_argument", "this FrameStream is closed; open a new one")
        given = 0             # samples handed to the caller (a restart does not repeat them)
        skip = self.skip_packets
        frames_before = 0
        try:
            while True:
                run = _Run(self, skip=skip, resume_at=given)
                try:
                    for sample in run.samples():
                        given += 1
                        yield sample
                    break
                except _Restart as restart:
                    # Something the planner vouched for did not hold after packets
                    # had been skipped: decode everything again from the start.
                    # ``sample_frames`` collects by index and takes every sample
                    # again (``_replay``); a streaming caller only gets the rest.
                    if self._replay:
                        given = 0
                    frames_before += run.stats.frames_decoded
                    self.close()
                    skip = False
                    if restart.cpu:
                        self._use_device = "cpu"
                    self.warnings = []
                    self._open(self._threads)
                    self.stats.restarted = restart.reason
                    if restart.cpu:
                        self.stats.device_note = restart.reason + "; decoded on the CPU"
            stats = run.stats
            stats.restarted = self.stats.restarted
            stats.device, stats.device_note = self.stats.device, self.stats.device_note
            if self.stats.restarted:
                stats.skip_stopped = stats.skip_stopped or self.stats.restarted
            stats.frames_decoded_total = frames_before + stats.frames_decoded
            stats.seconds = time.perf_counter() - self._started
            self.stats = stats
            self.decoded_frames = stats.frames_decoded_total
        finally:
            self.close()

    def _handle_failure(self, failure: BaseException, pending) -> None:
        reader = self._reader
        if (reader is not None and reader.timed_out) or isinstance(failure, TimeoutError):
            self._timeout()
        if pending is None and (reader is None or reader.error is None):
            self._fail("no_frames", f"no frame of the video stream could be decoded "
                                    f"({_ffmpeg_reason(failure)}); the stream is corrupt: "
                                    "re-encode the file or remove it from the manifest")
        if pending is None or self.on_error == "fail":
            self._raise_read_problem(failure, opening=False)
        cause = (reader.error if reader is not None and reader.error is not None else failure)
        self.warnings.append(DecodeWarning(
            "partial_decode", f"decoding stopped at {float(pending[1]):.3f} s ({type(cause).__name__}: "
            f"{_ffmpeg_reason(cause)}); the frames decoded until then were kept"))

    def _check_truncation(self, end: float, already_warned: bool) -> None:
        declared = self.info.declared_duration_s
        if declared is None or already_warned:
            return
        limit = float(self._kmax / self._rate) if self._kmax is not None else math.inf
        wanted = min(declared, limit)
        # Tolerance: containers round, and audio tracks can outlast the video.
        if end < wanted - max(1.0, 0.05 * wanted):
            message = (f"the video stream ends at {end:.3f} s but the container declares "
                       f"{declared:.3f} s: the file is probably truncated")
            if self.on_error == "fail":
                self._fail("truncated", message + "; re-download it")
            self.warnings.append(DecodeWarning("truncated", message + "; the frames decoded were kept"))


class _ThumbnailPicker:
    """Thumbnails of evenly spread samples, in one pass of unknown length.

    Samples whose index is a multiple of ``stride`` are kept; the stride
    doubles whenever more than ``2 * count`` are held, so in the end it is
    the smallest power of two with at most ``2 * count`` multiples below the
    number of samples F. ``result`` then takes, for each of ``count`` equal
    parts of [0, F), the kept sample nearest its middle ((j + 1/2) F / count),
    the earlier one on a tie.
    """

    def __init__(self, count: int):
        self.count = count
        self.stride = 1
        self.kept: dict[int, tuple[float, np.ndarray]] = {}
        self.samples = 0

    def wants(self, k: int) -> bool:
        return k % self.stride == 0

    def add(self, k: int, t: float, image: np.ndarray) -> None:
        self.kept[k] = (t, image)
        while len(self.kept) > 2 * self.count:
            self.stride *= 2
            self.kept = {i: v for i, v in self.kept.items() if i % self.stride == 0}

    def result(self, samples: int) -> Thumbnails | None:
        keys = sorted(k for k in self.kept if k < samples)
        if not keys:
            return None
        if len(keys) > self.count:
            chosen = []
            for j in range(self.count):
                middle = fractions.Fraction(2 * j + 1, 2 * self.count) * samples
                best = min(keys, key=lambda k: (abs(k - middle), k))
                if best not in chosen:
                    chosen.append(best)
            keys = chosen
        return Thumbnails(images=np.stack([self.kept[k][1] for k in keys]),
                          sample_indices=np.array(keys, np.int64),
                          times=np.array([self.kept[k][0] for k in keys], np.float64))


class _Run:
    """One pass over a video: demux, decide (``SkipPlanner``), decode, sample.

    A pass that finds, after packets were skipped, something the planner
    could not vouch for raises ``_Restart``; ``FrameStream._generate`` then
    runs a second pass with skipping off that hands out only the samples the
    caller has not had yet.
    """

    def __init__(self, owner: FrameStream, skip: bool, resume_at: int):
        self.o = owner
        self.resume_at = resume_at
        self.stats = DecodeStats()
        stream = owner._stream
        self.stream = stream
        self.tb = stream.time_base
        self.planner = None
        if skip:
            parser = parser_for(stream.codec_context.name, stream.codec_context.extradata)
            if parser is None:
                self.stats.skipping = "unsupported"
            else:
                self.stats.skipping = "on"
                self.planner = SkipPlanner(parser, self.tb, owner._rate, owner._kmax,
                                           min_window=min_window(parser.reorder_depth()))
        self.thumbs = _ThumbnailPicker(owner.thumbnail_count) if owner.thumbnail_count else None
        self.audio = None
        if owner._audio_stream is not None:
            self.audio = AudioDecoder(owner._audio_stream, owner.audio_rate, owner._max_seconds)
        # Sampling state (as a full decode has it).
        self.k = 0
        self.first_pts = None
        self.pending = None           # (frame, rel time as Fraction) shown now
        self.pending_rgb = None
        self.prev_rel = None
        self.prev_pts = None          # pts of the frame shown before ``pending``
        self.last_interval = None
        self.rotation = None
        self.dropped = 0
        self.done = False
        self._audio_stop = None

    # ----------------------------------------------------------------- sampling

    def _emit_until(self, limit, inclusive=False) -> Iterator[SampledFrame]:
        """Yields ``pending`` for every sample time below ``limit``."""
        o, rate, kmax = self.o, self.o._rate, self.o._kmax
        frame, rel = self.pending
        while (kmax is None or self.k < kmax) and (self.k / rate < limit or (inclusive and self.k / rate == limit)):
            k = self.k
            t = float(k / rate)
            if self.thumbs is not None and self.thumbs.wants(k):
                self.thumbs.add(k, t, o._thumbnail(frame, self.rotation))
            if k >= self.resume_at:
                if self.pending_rgb is None:
                    self.pending_rgb = o._convert(frame, self.rotation)
                yield SampledFrame(index=k, time=t, source_time=float(rel), rgb=self.pending_rgb)
            self.k += 1
            if self.planner is not None:
                self.planner.emitted(self.k)
            if o._container is None:
                raise DecodeError(o.uri, "bad_argument",
                                  "this FrameStream was closed while iterating; open a new one")

    def _restart_if_needed(self) -> None:
        if self.planner is not None and self.planner.restart:
            raise _Restart(self.planner.restart)

    def _frames(self, frames) -> Iterator[SampledFrame]:
        """Samples for decoded ``frames`` (the rule of the module docstring)."""
        o, planner = self.o, self.planner
        for frame in frames:
            self.stats.frames_decoded += 1
            if planner is not None:
                planner.on_frame(frame.pts)
                if frame.is_corrupt:
                    planner.anomaly("the decoder reported a damaged frame")
                self._restart_if_needed()
            if frame.pts is None:
                # No timestamp: one interval after the previous frame.
                if self.prev_rel is None:
                    rel = fractions.Fraction(0)
                else:
                    rel = self.prev_rel + (self.last_interval or
                                           (1 / fractions.Fraction(o.info.average_rate or 25)))
                pts_missing = True
            else:
                if self.first_pts is None:
                    self.first_pts = frame.pts
                    if planner is not None:
                        planner.first_output(frame.pts)
                    if self.audio is not None:
                        self.audio.set_origin(float(frame.pts * self.tb))
                rel = (frame.pts - self.first_pts) * self.tb
                pts_missing = False
            if self.rotation is None:
                self.rotation = _rotation(frame, o)
            if self.pending is not None and rel < self.pending[1]:
                self.dropped += 1  # out of presentation order: cannot be "the last frame <= t"
                if planner is not None:
                    planner.anomaly("a frame came out earlier than the frame before it")
                    self._restart_if_needed()
                continue
            if pts_missing and not any(w.kind == "missing_timestamps" for w in o.warnings):
                o.warnings.append(DecodeWarning(
                    "missing_timestamps", "frames without timestamps were placed one frame "
                                          "interval after the previous frame"))
            if self.pending is not None:
                if planner is not None and not pts_missing and self.pending[0].pts is not None:
                    planner.check_interval(self.pending[0].pts, frame.pts)
                    self._restart_if_needed()
                if rel > self.pending[1]:
                    self.last_interval = rel - self.pending[1]
                yield from self._emit_until(rel)
                self.prev_pts = self.pending[0].pts
            self.pending, self.pending_rgb, self.prev_rel = (frame, rel), None, rel
            if o._kmax is not None and self.k >= o._kmax:
                self.done = True
                return

    def _decode(self, packet) -> Iterator[SampledFrame]:
        self.decoding = True
        frames = packet.decode()
        self.decoding = False
        yield from self._frames(frames)

    def _video_packet(self, packet) -> Iterator[SampledFrame]:
        planner = self.planner
        if planner is None:
            if packet.size:
                self.stats.packets += 1
                self.stats.packets_decoded += 1
            yield from self._decode(packet)
            return
        if packet.size == 0:   # the demuxer's end of stream: decode what is held, then flush
            decisions = planner.drain()
        else:
            decisions = planner.add(packet, bytes(packet), packet.pts)
            self._restart_if_needed()
        for item, send in decisions:
            self.stats.packets += 1
            if not send:
                self.stats.packets_skipped += 1
                continue
            self.stats.packets_decoded += 1
            yield from self._decode(item)
            if self.done:
                return
        if packet.size == 0:
            yield from self._decode(packet)

    def _past_audio_limit(self, packet) -> bool:
        """After the video reached its cap: whether reading may stop."""
        audio = self.audio
        if audio is None or not audio.active or audio.full():
            return True
        if packet.pts is None or self.first_pts is None:
            return False
        seconds = float(packet.pts * packet.time_base) - float(self.first_pts * self.tb)
        # Interleaving puts audio near its video; 5 s past the cap, it is over.
        return seconds > self.o._max_seconds + 5.0

    # ----------------------------------------------------------------- the pass

    def samples(self) -> Iterator[SampledFrame]:
        o, planner = self.o, self.planner
        if o._container is None:
            raise DecodeError(o.uri, "bad_argument", "this FrameStream is closed; open a new one")
        stream, astream = self.stream, o._audio_stream
        failure: BaseException | None = None
        failed_decoding = False
        self.decoding = False
        streams = [stream] if astream is None else [stream, astream]
        try:
            for packet in o._container.demux(*streams):
                if o._deadline is not None and time.monotonic() > o._deadline:
                    o._timeout()
                if astream is not None and packet.stream_index == astream.index:
                    if self.audio.active and not self._audio_done(packet):
                        self.stats.audio_packets += 1
                        self.audio.feed(packet)
                    if self.done and self._past_audio_limit(packet):
                        break
                    continue
                if self.done:
                    if self._past_audio_limit(packet):
                        break
                    continue
                yield from self._video_packet(packet)
                if self.done and astream is None:
                    break
        except (DecodeError, _Restart):
            raise
        except GeneratorExit:
            o.close()
            raise
        except (av.error.FFmpegError, OSError, ValueError) as e:
            failure = e
            failed_decoding = self.decoding
        reader = o._reader
        if reader is not None and failure is None:
            # The remote reader turns its failures into an end of file: recover the cause.
            if reader.timed_out:
                failure = TimeoutError("decode deadline passed")
            elif reader.error is not None:
                failure = reader.error
        if failure is not None and planner is not None:
            if o.stats.device != "cpu" and failed_decoding:
                raise _Restart(f"the {o.stats.device} decoder failed ({_ffmpeg_reason(failure)})", cpu=True)
            if planner.skipped:
                raise _Restart(f"reading or decoding failed after packets were skipped "
                               f"({_ffmpeg_reason(failure)})")
            if not failed_decoding and not self.done:
                # The packets held for look-ahead were read before the failure:
                # a full decode would have decoded them.
                try:
                    for item, send in planner.drain(decide=False):
                        self.stats.packets += 1
                        self.stats.packets_decoded += 1
                        yield from self._decode(item)
                        if self.done:
                            break
                except (av.error.FFmpegError, OSError, ValueError) as e:
                    failure = e
        elif failure is not None and o.stats.device != "cpu" and failed_decoding:
            raise _Restart(f"the {o.stats.device} decoder failed ({_ffmpeg_reason(failure)})", cpu=True)
        if planner is not None:
            self.stats.skip_stopped = planner.stopped

        if failure is not None:
            o._handle_failure(failure, self.pending)
        if self.dropped:
            o.warnings.append(DecodeWarning(
                "non_monotonic", f"{self.dropped} frames had timestamps earlier than the frame "
                                 "before them (non-monotonic) and were skipped"))
        if self.pending is None:
            o._fail("no_frames", "the video stream has no decodable frame (corrupt or empty "
                                 "stream); re-encode it or remove it from the manifest")
        if not self.done:
            frame, rel = self.pending
            if planner is not None and frame.pts is not None:
                planner.check_end(self.prev_pts, frame.pts,
                                  has_duration=bool(frame.duration and frame.time_base is not None))
                self._restart_if_needed()
            dur = _frame_duration(frame, self.last_interval, o.info.average_rate)
            end = rel + dur
            o.duration_s = float(end)
            yield from self._emit_until(end, inclusive=dur == 0)
            o._check_truncation(float(end), failure is not None)
        self._finish()

    def _audio_done(self, packet) -> bool:
        """An audio packet wholly past the cap need not be decoded."""
        if self.first_pts is None or packet.pts is None or packet.size == 0:
            return False
        if self._audio_stop is None:
            # In the audio stream's time base: the first frame's time + the cap + 1 s.
            if not math.isfinite(self.o._max_seconds):
                self._audio_stop = math.inf
            else:
                tb = self.o._audio_stream.time_base
                stop = (self.first_pts * self.tb + fractions.Fraction(self.o._max_seconds + 1.0)) / tb
                self._audio_stop = math.ceil(stop)
        return packet.pts > self._audio_stop

    def _finish(self) -> None:
        o = self.o
        if self.thumbs is not None:
            o.thumbnails = self.thumbs.result(self.k)
        if o.audio_requested:
            if self.audio is None:
                o.audio = AudioTrack("absent", o.audio_rate, None, "the file has no audio stream")
            else:
                o.audio = self.audio.finish()
                if o.audio.status == "failed":
                    o.warnings.append(DecodeWarning(
                        "audio", f"the audio track could not be used ({o.audio.message}); "
                                 "the video samples were kept"))


def _ffmpeg_reason(e: BaseException) -> str:
    # PyAV messages end with the file name we already print; keep the reason.
    text = getattr(e, "strerror", None) or str(e)
    return text.strip()


def _rotation(frame: av.VideoFrame, stream: FrameStream) -> int:
    """Counter-clockwise degrees (0/90/180/270) that make ``frame`` upright."""
    try:
        angle = frame.rotation
    except Exception:  # a malformed display matrix: show the picture as stored
        stream.warnings.append(DecodeWarning("display_matrix",
                                             "unreadable display matrix; frames kept as stored"))
        return 0
    angle = float(angle or 0)
    quarter = int(round(angle / 90.0)) % 4
    if abs(angle - round(angle / 90.0) * 90) > 1:
        stream.warnings.append(DecodeWarning(
            "rotation", f"display rotation {angle:g} degrees is not a multiple of 90; "
                        f"rounded to {quarter * 90}"))
    rotation = quarter * 90
    if rotation in (90, 270) and stream.info.rotation == 0:
        info = stream.info
        stream.info = dataclasses.replace(info, width=info.height, height=info.width, rotation=rotation)
    elif rotation:
        stream.info = dataclasses.replace(stream.info, rotation=rotation)
    return rotation


def _frame_duration(frame: av.VideoFrame, last_interval, average_rate) -> fractions.Fraction:
    """How long the last frame is shown: its own duration, else the previous
    frame interval, else one frame at the stream's average rate, else 0."""
    if frame.duration and frame.time_base is not None:
        return frame.duration * frame.time_base
    if last_interval:
        return last_interval
    if average_rate:
        return 1 / fractions.Fraction(average_rate).limit_denominator(1_000_000)
    return fractions.Fraction(0)


def iter_frames(uri: str, fps: float = 1.0, max_seconds: float = 360.0, size: int | None = 299, *,
                interpolation: str = "BILINEAR", threads: int = 0, timeout_s: float | None = None,
                on_error: str = "keep", skip_packets: bool = True, decode_device: str = "cpu",
                thumbnails: int = 0, thumbnail_size: int = THUMBNAIL_SIZE, audio: bool = False,
                audio_rate: int = AUDIO_RATE) -> FrameStream:
    """Streams the samples of ``uri`` (see the module docstring for semantics).

    Opening errors raise ``DecodeError`` here; decoding errors while iterating.
    ``on_error``: what to do when reading or decoding fails after some frames
    were decoded, or the stream ends well before the container's declared
    duration: ``"keep"`` the samples up to the failure and add a warning, or
    ``"fail"`` with a DecodeError. ``timeout_s`` bounds the whole decode
    (checked between packets and on every remote read).

    ``skip_packets`` (default True): leave undecoded the packets no sample
    needs (the samples are those of a full decode; False decodes everything,
    for comparison). ``decode_device``: ``"cpu"`` or ``"cuda"`` (FFmpeg's
    hardware decoding; without a device, the CPU, with one warning per
    process). ``thumbnails``: how many small upright RGB thumbnails of evenly
    spread samples to keep (longest side ``thumbnail_size``). ``audio``: also
    decode the audio track in the same pass (``audio_rate`` Hz mono float32).
    After the iteration: ``stream.stats``, ``stream.thumbnails``, ``stream.audio``.
    """
    return FrameStream(uri, fps, max_seconds, size, interpolation=interpolation, threads=threads,
                       timeout_s=timeout_s, on_error=on_error, skip_packets=skip_packets,
                       decode_device=decode_device, thumbnails=thumbnails,
                       thumbnail_size=thumbnail_size, audio=audio, audio_rate=audio_rate)


def sample_frames(uri: str, fps: float = 1.0, max_seconds: float = 360.0, size: int | None = 299, *,
                  interpolation: str = "BILINEAR", threads: int = 0, timeout_s: float | None = None,
                  on_error: str = "keep", min_frames: int = 1, skip_packets: bool = True,
                  decode_device: str = "cpu", thumbnails: int = 0,
                  thumbnail_size: int = THUMBNAIL_SIZE, audio: bool = False,
                  audio_rate: int = AUDIO_RATE) -> SampledFrames:
    """The frames shown at t = 0, 1/fps, 2/fps, ... for t < min(duration, max_seconds).

    Returns ``SampledFrames`` (``frames`` (F, size, size, 3) uint8 RGB, ``times``
    (F,) float64 seconds, ``stats``, ``thumbnails``, ``audio``, ...; the
    keyword arguments are those of ``iter_frames``). Raises ``DecodeError``
    (kind ``too_short`` when fewer than ``min_frames`` samples come out).
    Memory: the kept frames, twice over while they are stacked, plus one
    decoded frame, the look-ahead packets and the audio waveform if asked for.

    ``timeout_s`` is a hard bound on the call: besides the deadline checked
    between packets and on every remote read, the decode runs in a watchdog
    thread (``_with_watchdog``), so a read or an FFmpeg call that never returns
    still ends in ``DecodeTimeout``.
    """
    options = dict(interpolation=interpolation, threads=threads, on_error=on_error,
                   skip_packets=skip_packets, decode_device=decode_device, thumbnails=thumbnails,
                   thumbnail_size=thumbnail_size, audio=audio, audio_rate=audio_rate)
    if timeout_s is None:
        return _sample_frames(uri, fps, max_seconds, size, None, min_frames, options)
    return _with_watchdog(uri, timeout_s, lambda: _sample_frames(
        uri, fps, max_seconds, size, timeout_s, min_frames, options))


# How long after ``timeout_s`` the watchdog stops waiting: the decode's own
# deadline check normally fires first and gives the more precise message.
WATCHDOG_GRACE_S = 1.0


def _with_watchdog(uri: str, timeout_s: float, decode):
    """Runs ``decode()`` in a daemon thread; DecodeTimeout if it is still running
    ``timeout_s + WATCHDOG_GRACE_S`` seconds later.

    Why a thread: the deadline inside the decode is only checked between
    packets and before each read, so a read that blocks for ever (a stalled
    mount or storage client) or a hung FFmpeg call would block the caller, and
    with it the whole build. Python cannot interrupt that call; the watchdog
    abandons it instead. The abandoned thread is a daemon (it never keeps the
    process alive) and holds at most this video's frames; if its call ever
    returns, the passed deadline ends it at the next read or packet.
    """
    box: dict = {}

    def target():
        try:
            box["result"] = decode()
        except BaseException as e:  # re-raised in the caller's thread below
            box["error"] = e

    worker = threading.Thread(target=target, name="yt8m-decode-watchdog", daemon=True)
    worker.start()
    worker.join(float(timeout_s) + WATCHDOG_GRACE_S)
    if worker.is_alive():
        raise DecodeTimeout(uri, "timeout",
                            f"decoding took longer than timeout_s={timeout_s:g} s and was stopped "
                            "(a read or an FFmpeg call did not return); check the storage system "
                            "or the file, or raise the timeout for very long videos")
    if "error" in box:
        raise box["error"]
    return box["result"]


def _sample_frames(uri, fps, max_seconds, size, timeout_s, min_frames, options) -> SampledFrames:
    """``sample_frames`` without the watchdog (see there)."""
    stream = iter_frames(uri, fps, max_seconds, size, timeout_s=timeout_s, **options)
    stream._replay = True   # after a restart, every sample again from the full decode
    with stream:
        by_index = {s.index: s for s in stream}
    samples = [by_index[k] for k in sorted(by_index)]
    if len(samples) < max(1, min_frames):
        raise DecodeError(uri, "too_short",
                          f"only {len(samples)} frame(s) sampled at {fps:g} fps (video lasts "
                          f"{stream.duration_s or 0:.3f} s), fewer than min_frames={min_frames}")
    frames = np.stack([s.rgb for s in samples])
    return SampledFrames(
        frames=frames,
        times=np.array([s.time for s in samples], np.float64),
        source_times=np.array([s.source_time for s in samples], np.float64),
        duration_s=stream.duration_s,
        info=stream.info,
        warnings=list(stream.warnings),
        decoded_frames=stream.decoded_frames,
        stats=stream.stats,
        thumbnails=stream.thumbnails,
        audio=stream.audio,
    )
