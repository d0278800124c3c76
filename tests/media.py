"""Test-video helpers shared by every room's tests.

- Writing videos: ``write_video`` and the content generators come from
  ``extractor.synth`` (re-exported here), so tests and the demo make the same files.
- ``expected_samples``: an independent, plain reference for the sampling rule
  (the last frame whose time is <= t, for t < min(end, cap)), computed from
  what ``write_video`` says it wrote.
- ``FakeRemoteFileSystem``: a Beam ``FileSystem`` under the scheme
  ``yt8mtest://`` backed by a local folder, to read "remote" URIs through
  ``FileSystems`` without a network; it can inject faults (permission denied,
  a connection that drops after N bytes, slow reads).
- Broken inputs: ``corrupt_packets`` (a stream that decodes for a while, then
  garbage), ``retime_packets`` (non-monotonic timestamps), ``swap_timestamps``
  (two pictures' timestamps exchanged in a stream with B-frames),
  ``damage_payload`` (slice data damaged, headers intact), ``corrupt_audio``,
  ``truncate_file``, ``write_audio_only``, ``write_still_image``,
  ``write_random_bytes``, ``write_text``; ``remux`` copies streams into another
  container (an MPEG-TS file carries H.264/HEVC as Annex B byte streams).
- ``decode_both`` and ``assert_same_samples``: a full decode and a decode that
  skips unneeded packets of the same file, and the check that they agree.
"""
from __future__ import annotations

import dataclasses
import fractions
import io
import os
import time
from typing import Sequence

import av
import numpy as np
from apache_beam.io.localfilesystem import LocalFileSystem

from yt8m.extractor.synth import (  # noqa: F401  (re-exported for tests)
    CODECS,
    CONTENTS,
    SynthVideo,
    cfr_times,
    draw_timecode,
    make_content,
    moving_shape,
    read_timecode,
    texture,
    timecode,
    with_timecode,
    write_video,
)


def expected_samples(video: SynthVideo, fps: float = 1.0,
                     max_seconds: float = 360.0) -> list[tuple[float, int]]:
    """(sample time, index of the source frame shown) for every sample of ``video``.

    Exact rational arithmetic on the times as written (microsecond-rounded), so
    a frame at exactly t = 1 s is the one shown at t = 1.
    """
    def q(x: float) -> fractions.Fraction:
        return fractions.Fraction(round(x * 1_000_000), 1_000_000)

    start = q(video.frame_times[0])
    rel = [q(t) - start for t in video.frame_times]
    end = q(video.end_s) - start
    rate = fractions.Fraction(fps).limit_denominator(1_000_000)
    cap = min(end, fractions.Fraction(max_seconds).limit_denominator(1_000_000))
    out = []
    k = 0
    while k / rate < cap:
        t = k / rate
        index = max(i for i, r in enumerate(rel) if r <= t)
        out.append((float(t), index))
        k += 1
    return out


def corrupt_packets(src: str, dst: str, from_packet: int = 0, seed: int = 0) -> str:
    """Remuxes ``src``'s video into ``dst`` with the payload of every packet from
    ``from_packet`` on replaced by random bytes (timestamps kept): a stream
    that decodes for a while and then fails (or never decodes, from 0)."""
    rng = np.random.default_rng(seed)
    with av.open(src) as inp, av.open(dst, "w") as out:
        stream = inp.streams.video[0]
        ostream = out.add_stream_from_template(stream, opaque=True)
        n = 0
        for packet in inp.demux(stream):
            if packet.size == 0:  # the demuxer's end-of-stream marker
                continue
            if n >= from_packet:
                bad = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
                bad.pts, bad.dts, bad.duration = packet.pts, packet.dts, packet.duration
                bad.time_base, bad.is_keyframe = packet.time_base, packet.is_keyframe
                packet = bad
            packet.stream = ostream
            out.mux(packet)
            n += 1
    return dst


def retime_packets(src: str, dst: str, times: Sequence[float]) -> str:
    """Remuxes the first ``len(times)`` video packets of ``src`` (an intra-only
    stream without B-frames, e.g. x264 with ``{"g": "1", "bframes": "0"}``) into
    ``dst`` with the given presentation times, in the given order (decode
    timestamps stay increasing): non-monotonic timestamps when ``times`` is."""
    with av.open(src) as inp, av.open(dst, "w") as out:
        stream = inp.streams.video[0]
        ostream = out.add_stream_from_template(stream)
        packets = [p for p in inp.demux(stream) if p.size]
        if len(packets) < len(times):
            raise ValueError(f"{src} has {len(packets)} packets, fewer than {len(times)} times")
        step = min(b - a for a, b in zip(sorted(times), sorted(times)[1:])) / 2 if len(times) > 1 else 0.1
        for n, (packet, t) in enumerate(zip(packets, times)):
            packet.pts = round(t / packet.time_base)
            packet.dts = round((min(times) + n * step) / packet.time_base)
            packet.stream = ostream
            out.mux(packet)
    return dst


def _copy(packet, data: bytes | None = None, pts: int | None = None):
    """``packet`` with its payload and/or presentation time replaced."""
    out = av.Packet(bytes(packet) if data is None else data)
    out.pts = packet.pts if pts is None else pts
    out.dts, out.duration = packet.dts, packet.duration
    out.time_base, out.is_keyframe = packet.time_base, packet.is_keyframe
    return out


def remux(src: str, dst: str) -> str:
    """Copies every stream of ``src`` into ``dst`` (container from its extension)."""
    with av.open(src) as inp, av.open(dst, "w") as out:
        streams = {s.index: out.add_stream_from_template(s, opaque=True) for s in inp.streams}
        for packet in inp.demux():
            if packet.size:
                packet.stream = streams[packet.stream_index]
                out.mux(packet)
    return dst


def swap_timestamps(src: str, dst: str, at: Sequence[int]) -> str:
    """Remuxes ``src``'s video with, for each index in ``at``, the presentation
    times of the first two neighbouring packets from there on exchanged (where
    the container allows it: both still at or after both decode times): the
    timestamps then contradict the pictures' order, as a broken muxer writes."""
    with av.open(src) as inp, av.open(dst, "w") as out:
        stream = inp.streams.video[0]
        ostream = out.add_stream_from_template(stream, opaque=True)
        packets = [_copy(p) for p in inp.demux(stream) if p.size]
        for start in at:
            for a, b in zip(packets[start:], packets[start + 1:]):
                if None not in (a.dts, b.dts) and a.pts != b.pts and min(a.pts, b.pts) >= max(a.dts, b.dts):
                    a.pts, b.pts = b.pts, a.pts
                    break
            else:
                raise ValueError(f"no pair of packets from {start} on can exchange timestamps in {src}")
        for packet in packets:
            packet.stream = ostream
            out.mux(packet)
    return dst


def damage_payload(src: str, dst: str, packets: Sequence[int], seed: int = 0, keep: int = 40) -> str:
    """Remuxes ``src``'s video with bytes flipped in the listed packets past their
    first ``keep`` bytes: headers intact, slice data damaged."""
    rng = np.random.default_rng(seed)
    chosen = set(packets)
    with av.open(src) as inp, av.open(dst, "w") as out:
        stream = inp.streams.video[0]
        ostream = out.add_stream_from_template(stream, opaque=True)
        for n, packet in enumerate(p for p in inp.demux(stream) if p.size):
            if n in chosen and packet.size > keep + 8:
                data = bytearray(bytes(packet))
                for i in rng.integers(keep, len(data), 8):
                    data[i] ^= 0xFF
                packet = _copy(packet, bytes(data))
            packet.stream = ostream
            out.mux(packet)
    return dst


def corrupt_audio(src: str, dst: str, seed: int = 0) -> str:
    """Remuxes ``src`` with every audio packet's payload replaced by random bytes."""
    rng = np.random.default_rng(seed)
    with av.open(src) as inp, av.open(dst, "w") as out:
        streams = {s.index: out.add_stream_from_template(s, opaque=True) for s in inp.streams}
        for packet in inp.demux():
            if not packet.size:
                continue
            target = streams[packet.stream.index]
            if packet.stream.type == "audio":
                packet = _copy(packet, rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
            packet.stream = target
            out.mux(packet)
    return dst


def decode_both(path: str, **kwargs):
    """(full decode, decode skipping unneeded packets) of ``path``: ``sample_frames`` results."""
    from yt8m.extractor.decode import sample_frames
    full = sample_frames(path, skip_packets=False, **kwargs)
    skipping = sample_frames(path, skip_packets=True, **kwargs)
    return full, skipping


def assert_same_samples(full, skipping) -> None:
    """The skipping decode gave exactly the full decode's samples, times, end and warnings."""
    assert len(skipping) == len(full), (len(skipping), len(full))
    assert np.array_equal(skipping.times, full.times)
    assert np.array_equal(skipping.source_times, full.source_times)
    assert np.array_equal(skipping.frames, full.frames), \
        f"frames differ at samples {np.flatnonzero((skipping.frames != full.frames).reshape(len(full), -1).any(1))}"
    assert skipping.duration_s == full.duration_s
    assert [w.to_dict() for w in skipping.warnings] == [w.to_dict() for w in full.warnings]
    assert dataclasses.replace(skipping.info, uri="") == dataclasses.replace(full.info, uri="")


def truncate_file(src: str, dst: str, fraction: float = 0.5) -> str:
    """Copies the first ``fraction`` of ``src``'s bytes to ``dst`` (an interrupted download)."""
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data[: int(len(data) * fraction)])
    return dst


def write_audio_only(path: str, seconds: float = 1.0) -> str:
    """An AAC-only .m4a/.mp4 (no video stream)."""
    with av.open(path, "w") as out:
        stream = out.add_stream("aac", rate=48000)
        stream.layout = "mono"
        for i in range(int(seconds * 48000 / 1024) + 1):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 48000, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def write_still_image(path: str, width: int = 64, height: int = 48, image_format: str = "png") -> str:
    """A single picture (``png`` or ``jpg``) written at ``path`` whatever its extension."""
    frame = av.VideoFrame.from_ndarray(
        draw_timecode(np.zeros((height, width, 3), np.uint8), 0), format="rgb24")
    tmp = f"{path}.tmp.{image_format}"
    frame.save(tmp)
    os.replace(tmp, path)
    return path


def write_random_bytes(path: str, n: int = 50_000, seed: int = 0) -> str:
    with open(path, "wb") as f:
        f.write(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes())
    return path


def write_text(path: str, text: str = "this is not a video\n" * 100) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def timecodes(frames: Sequence, bits: int = 10, band: float = 0.5) -> list[int | None]:
    """The timecode of each decoded frame (None where no upright band is found)."""
    return [read_timecode(f, bits=bits, band=band) for f in frames]


class RootedPaths:
    """Maps ``SCHEME://NAME`` to ``root/NAME`` for the test FileSystems below.

    A mixin, not a FileSystem itself: Beam picks a FileSystem by its scheme
    among all subclasses, so only the concrete classes may subclass it.
    """

    SCHEME = ""
    root: str = "/nonexistent"

    @classmethod
    def scheme(cls):
        return cls.SCHEME

    @classmethod
    def uri(cls, name: str) -> str:
        return f"{cls.SCHEME}://{name}"

    def _local(self, path: str) -> str:
        prefix = f"{self.SCHEME}://"
        if not path.startswith(prefix):
            raise ValueError(f"not a {prefix} path: {path}")
        return os.path.join(self.root, path[len(prefix):])

    def exists(self, path):
        return os.path.exists(self._local(path))

    def size(self, path):
        return super().size(self._local(path))

    def metadata(self, path):
        return super().metadata(self._local(path))


class FakeRemoteFileSystem(RootedPaths, LocalFileSystem):
    """``yt8mtest://NAME`` -> ``FakeRemoteFileSystem.root/NAME`` through Beam's FileSystems.

    Faults, keyed by the URI: ``faults[uri] = {"permission": True}`` (open raises
    PermissionError), ``{"fail_after": n}`` (reads raise ConnectionResetError
    once n bytes were served), ``{"delay_s": s}`` (every read sleeps s seconds).
    Beam finds FileSystem subclasses by scheme, so defining the class registers it.
    """

    SCHEME = "yt8mtest"
    root: str = "/nonexistent"
    faults: dict[str, dict] = {}

    def open(self, path, mime_type="application/octet-stream", compression_type=None):
        fault = self.faults.get(path, {})
        if fault.get("permission"):
            raise PermissionError(f"403 Forbidden: no read access to {path}")
        raw = io.open(self._local(path), "rb")
        if fault:
            return _FaultyReader(raw, fault.get("fail_after"), fault.get("delay_s", 0.0))
        return raw


class WrappedReader(io.RawIOBase):
    """A seekable reader over ``raw``; subclasses change ``read`` to inject faults."""

    def __init__(self, raw):
        self._raw = raw

    def readable(self):
        return True

    def seekable(self):
        return True

    def read(self, n=-1):
        return self._raw.read(n)

    def readinto(self, b):
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def seek(self, offset, whence=io.SEEK_SET):
        return self._raw.seek(offset, whence)

    def tell(self):
        return self._raw.tell()

    def close(self):
        self._raw.close()
        super().close()


class _FaultyReader(WrappedReader):
    def __init__(self, raw, fail_after: int | None, delay_s: float):
        super().__init__(raw)
        self._fail_after, self._delay = fail_after, delay_s

    def read(self, n=-1):
        if self._delay:
            time.sleep(self._delay)
        if self._fail_after is not None and self._raw.tell() >= self._fail_after:
            raise ConnectionResetError("connection reset by peer (injected)")
        if self._fail_after is not None and n is not None and n >= 0:
            n = min(n, self._fail_after - self._raw.tell())
        return self._raw.read(n)
