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

Cost: every frame must be decoded (inter-frame codecs), but only kept frames
are converted to RGB and scaled; decoding is threaded; packets are streamed, so
memory holds one decoded frame plus the kept (small) frames, whatever the
length or resolution of the video; decoding stops once ``max_seconds`` is
reached.

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
class SampledFrames:
    """All samples of one video.

    ``frames`` (F, size, size, 3) uint8 RGB; ``times`` (F,) float64 sample times
    in seconds (k / fps); ``source_times`` (F,) float64 presentation time of the
    frame shown at each sample; ``duration_s`` where the decoded stream ends
    (None when decoding stopped at ``max_seconds`` before the end);
    ``warnings`` anything the caller should record (partial decodes, suspected
    truncation, dropped out-of-order frames).
    """

    frames: np.ndarray
    times: np.ndarray
    source_times: np.ndarray
    duration_s: float | None
    info: VideoInfo
    warnings: list[DecodeWarning]
    decoded_frames: int

    def __len__(self) -> int:
        return int(self.times.shape[0])


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
    iteration ends, ``duration_s``, ``warnings`` and ``decoded_frames`` hold
    the totals. The container is closed when iteration ends or on ``close()``.
    """

    def __init__(self, uri: str, fps: float = 1.0, max_seconds: float = 360.0,
                 size: int | None = 299, *, interpolation: str = "BILINEAR",
                 threads: int = 0, timeout_s: float | None = None,
                 on_error: str = "keep"):
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
        self.uri = uri
        self.size = None if size is None else int(size)
        self.interpolation = interpolation
        self.on_error = on_error
        self.timeout_s = timeout_s
        self._deadline = None if timeout_s is None else time.monotonic() + float(timeout_s)
        self._rate = fractions.Fraction(fps).limit_denominator(1_000_000)
        # Number of sample times k / rate strictly below the cap.
        cap = fractions.Fraction(max_seconds).limit_denominator(1_000_000) if math.isfinite(max_seconds) else None
        self._kmax = math.ceil(cap * self._rate) if cap is not None else None
        self.warnings: list[DecodeWarning] = []
        self.duration_s: float | None = None
        self.decoded_frames = 0
        self._reader: _DeadlineReader | None = None
        self._container = None
        self._iter: Iterator[SampledFrame] | None = None
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
        try:
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
        from apache_beam.io.filesystem import CompressionTypes
        from apache_beam.io.filesystems import FileSystems

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

    def _generate(self) -> Iterator[SampledFrame]:
        if self._container is None:
            raise DecodeError(self.uri, "bad_argument", "this FrameStream is closed; open a new one")
        stream = self._stream
        tb = stream.time_base
        rate, kmax = self._rate, self._kmax
        k = 0                                 # next sample index
        first_pts = None
        pending = None                        # (frame, rel time as Fraction) shown now
        pending_rgb = None
        prev_rel = None
        last_interval = None
        rotation = None
        dropped = 0
        failure: BaseException | None = None
        done = False

        def emit_until(limit, inclusive=False):
            """Yields ``pending`` for every sample time below ``limit``."""
            nonlocal k, pending_rgb
            frame, rel = pending
            while (kmax is None or k < kmax) and (k / rate < limit or (inclusive and k / rate == limit)):
                if pending_rgb is None:
                    pending_rgb = self._convert(frame, rotation)
                yield SampledFrame(index=k, time=float(k / rate), source_time=float(rel), rgb=pending_rgb)
                k += 1
                if self._container is None:
                    raise DecodeError(self.uri, "bad_argument",
                                      "this FrameStream was closed while iterating; open a new one")

        try:
            for packet in self._container.demux(stream):
                if self._deadline is not None and time.monotonic() > self._deadline:
                    self._timeout()
                for frame in packet.decode():
                    self.decoded_frames += 1
                    if frame.pts is None:
                        # No timestamp: one interval after the previous frame.
                        if prev_rel is None:
                            rel = fractions.Fraction(0)
                        else:
                            rel = prev_rel + (last_interval or (1 / fractions.Fraction(self.info.average_rate or 25)))
                        pts_missing = True
                    else:
                        if first_pts is None:
                            first_pts = frame.pts
                        rel = (frame.pts - first_pts) * tb
                        pts_missing = False
                    if rotation is None:
                        rotation = _rotation(frame, self)
                    if pending is not None and rel < pending[1]:
                        dropped += 1  # out of presentation order: cannot be "the last frame <= t"
                        continue
                    if pts_missing and not any(w.kind == "missing_timestamps" for w in self.warnings):
                        self.warnings.append(DecodeWarning(
                            "missing_timestamps", "frames without timestamps were placed one frame "
                                                  "interval after the previous frame"))
                    if pending is not None:
                        if rel > pending[1]:
                            last_interval = rel - pending[1]
                        yield from emit_until(rel)
                    pending, pending_rgb, prev_rel = (frame, rel), None, rel
                    if kmax is not None and k >= kmax:
                        done = True
                        break
                if done:
                    break
        except DecodeError:
            raise
        except GeneratorExit:
            self.close()
            raise
        except (av.error.FFmpegError, OSError, ValueError) as e:
            failure = e
        reader = self._reader
        if reader is not None and failure is None:
            # The remote reader turns its failures into an end of file: recover the cause.
            if reader.timed_out:
                failure = TimeoutError("decode deadline passed")
            elif reader.error is not None:
                failure = reader.error

        try:
            if failure is not None:
                self._handle_failure(failure, pending)
            if dropped:
                self.warnings.append(DecodeWarning(
                    "non_monotonic", f"{dropped} frames had timestamps earlier than the frame "
                                     "before them (non-monotonic) and were skipped"))
            if pending is None:
                self._fail("no_frames", "the video stream has no decodable frame (corrupt or empty "
                                        "stream); re-encode it or remove it from the manifest")
            if not done:
                frame, rel = pending
                dur = _frame_duration(frame, last_interval, self.info.average_rate)
                end = rel + dur
                self.duration_s = float(end)
                yield from emit_until(end, inclusive=dur == 0)
                self._check_truncation(float(end), failure is not None)
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
                on_error: str = "keep") -> FrameStream:
    """Streams the samples of ``uri`` (see the module docstring for semantics).

    Opening errors raise ``DecodeError`` here; decoding errors while iterating.
    ``on_error``: what to do when reading or decoding fails after some frames
    were decoded, or the stream ends well before the container's declared
    duration: ``"keep"`` the samples up to the failure and add a warning, or
    ``"fail"`` with a DecodeError. ``timeout_s`` bounds the whole decode
    (checked between packets and on every remote read).
    """
    return FrameStream(uri, fps, max_seconds, size, interpolation=interpolation, threads=threads,
                       timeout_s=timeout_s, on_error=on_error)


def sample_frames(uri: str, fps: float = 1.0, max_seconds: float = 360.0, size: int | None = 299, *,
                  interpolation: str = "BILINEAR", threads: int = 0, timeout_s: float | None = None,
                  on_error: str = "keep", min_frames: int = 1) -> SampledFrames:
    """The frames shown at t = 0, 1/fps, 2/fps, ... for t < min(duration, max_seconds).

    Returns ``SampledFrames`` (``frames`` (F, size, size, 3) uint8 RGB, ``times``
    (F,) float64 seconds, ...). Raises ``DecodeError`` (kind ``too_short`` when
    fewer than ``min_frames`` samples come out). Memory: the kept frames, twice
    over while they are stacked, plus one decoded frame.

    ``timeout_s`` is a hard bound on the call: besides the deadline checked
    between packets and on every remote read, the decode runs in a watchdog
    thread (``_with_watchdog``), so a read or an FFmpeg call that never returns
    still ends in ``DecodeTimeout``.
    """
    if timeout_s is None:
        return _sample_frames(uri, fps, max_seconds, size, interpolation, threads, None,
                              on_error, min_frames)
    return _with_watchdog(uri, timeout_s, lambda: _sample_frames(
        uri, fps, max_seconds, size, interpolation, threads, timeout_s, on_error, min_frames))


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


def _sample_frames(uri, fps, max_seconds, size, interpolation, threads, timeout_s, on_error,
                   min_frames) -> SampledFrames:
    """``sample_frames`` without the watchdog (see there)."""
    stream = iter_frames(uri, fps, max_seconds, size, interpolation=interpolation, threads=threads,
                         timeout_s=timeout_s, on_error=on_error)
    with stream:
        samples = list(stream)
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
    )
