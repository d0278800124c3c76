"""The audio track, decoded in the same demux loop as the video frames.

``AudioDecoder`` takes a container's audio packets as the demuxer hands them
out (interleaved with the video's), decodes them, resamples them to
``rate`` Hz float32 with ``av.AudioResampler`` and averages the channels to
mono (as VGGish's own input code does: a plain mean, not FFmpeg's
downmix matrix), and places the samples on the video's time axis:

- t = 0 is the first video frame's presentation time (``set_origin``); audio
  before it is dropped;
- the first chunk is placed at its timestamp and the next ones follow it
  (decoded audio is continuous; container timestamps only round it), unless
  a chunk's timestamp is more than 40 ms past where it would go: that gap,
  like one before the first audio packet, stays zeros (silence padding;
  ``start_padding_s`` says how much was added at the start);
- the waveform stops at ``max_seconds`` (the video's cap) or where the audio
  ends, whichever comes first. Memory: one float32 buffer of at most
  ``max_seconds * rate`` samples (360 s at 16 kHz: 23 MB), grown as needed.

A decoding error ends the audio (status ``failed``, with the reason); it
never stops the video. ``AudioTrack`` is the result.
"""
from __future__ import annotations

import dataclasses
import fractions
import math

import av
import numpy as np

STATUSES = ("ok", "absent", "failed")


@dataclasses.dataclass
class AudioTrack:
    """The audio of one video, aligned with its samples.

    ``status``: ``ok``, ``absent`` (no audio stream) or ``failed`` (the track
    could not be decoded: ``message`` says why; ``waveform`` is None).
    ``waveform`` (n,) float32 mono at ``sample_rate`` Hz, index i at time
    i / sample_rate seconds from the first video frame. ``start_padding_s``:
    zeros placed before the first audio sample (the track started after the
    video); ``codec``: the audio decoder's name.
    """

    status: str
    sample_rate: int
    waveform: np.ndarray | None = None
    message: str | None = None
    codec: str | None = None
    start_padding_s: float = 0.0

    @property
    def duration_s(self) -> float:
        return 0.0 if self.waveform is None else self.waveform.shape[0] / self.sample_rate


class AudioDecoder:
    """Decodes one audio stream into an aligned mono waveform (module docstring)."""

    def __init__(self, stream, rate: int = 16000, max_seconds: float = 360.0):
        self.stream = stream
        self.rate = int(rate)
        self.limit = math.ceil(max_seconds * self.rate) if math.isfinite(max_seconds) else None
        ctx = stream.codec_context
        self.codec = ctx.name if ctx is not None else None
        self.error: str | None = None if ctx is not None else \
            f"no decoder for the audio codec {stream.codec.name if stream.codec else '?'}"
        self._resampler = None
        self._layout = None
        self._channels = 1
        self._origin: int | None = None     # first video frame, in output samples
        self._held: list[tuple[int | None, np.ndarray]] = []
        self._held_samples = 0
        self._buf = np.zeros(0, np.float32)
        self._end = 0                       # samples written up to here
        self._next: int | None = None       # where the next chunk goes when continuous
        self._jitter = self.rate // 25      # timestamp slack taken as continuity: 40 ms
        self._first: int | None = None      # first index written
        self.packets = 0

    @property
    def active(self) -> bool:
        return self.error is None

    def covered_s(self) -> float | None:
        """Seconds from t = 0 the waveform reaches (None before t = 0 is known)."""
        return None if self._origin is None else self._end / self.rate

    def full(self) -> bool:
        """Whether the waveform already reaches ``max_seconds``."""
        return self.limit is not None and self._origin is not None and self._end >= self.limit

    def set_origin(self, seconds: float) -> None:
        """t = 0: the first video frame's presentation time, in stream seconds."""
        if self._origin is not None:
            return
        self._origin = round(seconds * self.rate)
        held, self._held = self._held, []
        for index, data in held:
            self._place(index, data)

    def feed(self, packet) -> None:
        """Decodes one demuxed audio packet (or the demuxer's empty end packet)."""
        if self.error is not None:
            return
        self.packets += 1
        try:
            frames = packet.decode()
            for frame in frames:
                self._resample(frame)
            if packet.size == 0:  # end of stream: empty the resampler
                self._resample(None)
        except (av.error.FFmpegError, ValueError, MemoryError) as e:
            self.fail(f"decoding the {self.codec} audio failed: {type(e).__name__}: {e}")

    def fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
        self._held, self._buf = [], np.zeros(0, np.float32)

    def _resample(self, frame) -> None:
        if frame is not None:
            layout = (frame.format.name, frame.layout.name, frame.sample_rate)
            if self._resampler is not None and layout != self._layout:
                self._drain(self._resampler.resample(None))   # the format changed mid-stream
                self._resampler = None
            if self._resampler is None:
                # Packed float at the target rate, channels kept: averaged below.
                self._resampler = av.AudioResampler(format="flt", layout=frame.layout, rate=self.rate)
                self._layout = layout
                self._channels = len(frame.layout.channels)
        elif self._resampler is None:
            return
        self._drain(self._resampler.resample(frame))
        if frame is None:
            self._resampler = None

    def _drain(self, frames) -> None:
        for out in frames:
            data = out.to_ndarray().reshape(-1)
            if self._channels > 1:
                data = data.reshape(-1, self._channels).mean(axis=1, dtype=np.float32)
            index = None
            if out.pts is not None:
                tb = out.time_base
                if tb is not None and tb.numerator == 1 and tb.denominator == self.rate:
                    index = out.pts
                elif tb is not None:
                    index = round(out.pts * fractions.Fraction(tb) * self.rate)
            if self._origin is None:
                self._held.append((index, data))
                self._trim_held()
            else:
                self._place(index, data)

    def _trim_held(self) -> None:
        # Before the first video frame is known, keep at most ``limit`` samples.
        self._held_samples += self._held[-1][1].shape[0]
        if self.limit is None:
            return
        while self._held_samples > self.limit and len(self._held) > 1:
            self._held_samples -= self._held.pop(0)[1].shape[0]

    def _place(self, index: int | None, data: np.ndarray) -> None:
        if index is None:
            start = self._next if self._next is not None else 0
        else:
            start = index - self._origin
            if self._next is not None and start - self._next <= self._jitter:
                # Decoded audio is continuous: container timestamps (milliseconds
                # in Matroska) only round its position. A chunk goes right after
                # the previous one unless its timestamp says a real gap came first.
                start = self._next
        if start < 0:
            if -start >= data.shape[0]:
                self._next = start + data.shape[0]
                return
            data = data[-start:]
            start = 0
        if self.limit is not None:
            data = data[: max(0, self.limit - start)]
        n = data.shape[0]
        if n == 0:
            return
        end = start + n
        if end > self._buf.shape[0]:
            size = max(end, 2 * self._buf.shape[0], 16000)
            if self.limit is not None:
                size = min(size, self.limit)
            grown = np.zeros(size, np.float32)
            grown[: self._end] = self._buf[: self._end]
            self._buf = grown
        self._buf[start:end] = data
        if self._first is None or start < self._first:
            self._first = start
        self._end = max(self._end, end)
        self._next = end

    def finish(self) -> AudioTrack:
        if self.error is not None:
            return AudioTrack("failed", self.rate, None, self.error, self.codec)
        if self._origin is None:
            # No video frame was decoded: the video fails anyway.
            return AudioTrack("failed", self.rate, None, "no video frame to align the audio with",
                              self.codec)
        if self._end == 0:
            return AudioTrack("failed", self.rate, None,
                              "the audio stream gave no samples (empty or undecodable track)", self.codec)
        wave = self._buf[: self._end]
        if wave.shape[0] < self._buf.shape[0] // 2:
            wave = wave.copy()   # do not keep a mostly unused buffer alive
        return AudioTrack("ok", self.rate, wave, None, self.codec,
                          start_padding_s=(self._first or 0) / self.rate)
