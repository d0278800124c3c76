"""Synthetic videos written with PyAV: for tests, benchmarks and the ``demo`` corpus.

``write_video(path, content=..., codec=..., ...)`` encodes frames produced by a
*content function* ``content(index, t, height, width) -> uint8 (height, width, 3)``
(RGB, the picture as it should be *displayed*) into any of the containers and
codecs the project must read: libx264, libx265, libvpx-vp9, libsvtav1 in mp4,
mkv, webm or mov; constant or variable frame rate, a non-zero first timestamp,
rotation metadata (a display matrix) and an optional audio track.

Every generator here can stamp a *timecode band* on the top of the frame: a
red start cell, ``bits`` black/white cells holding the frame index (MSB first)
and a blue end cell. ``read_timecode(rgb)`` reads it back from a decoded frame
(of any size the band survives), so a test knows exactly which source frame a
sampler kept, and, because the band is only found on top and left-to-right,
that the frame came out upright.

Named content generators (``CONTENTS``) draw classes a small classifier can
tell apart (moving shapes of different form and colour, textures); the demo
corpus is built from them.
"""
from __future__ import annotations

import dataclasses
import fractions
import math
import os
from typing import Callable, Sequence

import av
import numpy as np

Content = Callable[[int, float, int, int], np.ndarray]

CODECS = ("libx264", "libx265", "libvpx-vp9", "libsvtav1")
CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".webm": "webm", ".mov": "mov"}
# WebM only carries VP8/VP9/AV1 video and Vorbis/Opus audio.
_WEBM_VIDEO = ("libvpx-vp9", "libsvtav1")

# Encoder settings: good enough quality that an 8-bit timecode survives, fast,
# and with B-frames where the codec has them (so that decode order differs from
# presentation order, as in real files), and quiet logs.
_ENCODER_OPTIONS: dict[str, dict[str, str]] = {
    "libx264": {"preset": "veryfast", "crf": "18"},
    "libx265": {"preset": "ultrafast", "crf": "18", "x265-params": "log-level=error"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "crf": "20", "b:v": "0"},
    "libsvtav1": {"preset": "12", "crf": "25"},
}

# Encoding time base: fine enough for any frame time a test writes; muxers
# then pick their own (mp4: a timescale, matroska: milliseconds).
TIME_BASE = fractions.Fraction(1, 90000)

_RED = np.array([230, 20, 20], np.uint8)
_BLUE = np.array([20, 20, 230], np.uint8)


@dataclasses.dataclass(frozen=True)
class SynthVideo:
    """What was written: enough for a test to compute the exact expected samples.

    ``frame_times`` are the presentation times in seconds as encoded (the first is
    ``start_s``); ``end_s`` is when the last frame stops being shown (its time
    plus its duration). ``width``/``height`` are the displayed (upright) size;
    the stored picture is rotated by ``-rotation`` when ``rotation`` is 90/270.
    """

    path: str
    codec: str
    container: str
    width: int
    height: int
    frame_times: tuple[float, ...]
    end_s: float
    rotation: int
    audio: bool

    @property
    def duration_s(self) -> float:
        """Displayed length: from the first frame's time to the end of the last."""
        return self.end_s - self.frame_times[0]

    @property
    def relative_times(self) -> tuple[float, ...]:
        start = self.frame_times[0]
        return tuple(t - start for t in self.frame_times)


# --------------------------------------------------------------------------- timecode


def draw_timecode(img: np.ndarray, index: int, bits: int = 10, band: float = 0.5) -> np.ndarray:
    """Stamps frame ``index`` on the top ``band`` fraction of ``img`` (in place; returned).

    Cells span the full width: red, ``bits`` bits (white = 1), blue. ``index`` is
    taken modulo ``2**bits``.
    """
    h, w = img.shape[:2]
    rows = max(1, int(round(h * band)))
    edges = np.linspace(0, w, bits + 3).round().astype(int)
    code = index % (1 << bits)
    for c in range(bits + 2):
        x0, x1 = edges[c], edges[c + 1]
        if c == 0:
            colour = _RED
        elif c == bits + 1:
            colour = _BLUE
        else:
            colour = 255 if (code >> (bits - c)) & 1 else 0
        img[:rows, x0:x1] = colour
    return img


def read_timecode(rgb: np.ndarray, bits: int = 10, band: float = 0.5) -> int | None:
    """The frame index stamped by ``draw_timecode`` on an upright RGB frame, or None.

    None means no band was found where it belongs (top, red on the left, blue on
    the right): the frame is not one of ours, or it is rotated or mirrored.
    Each cell is read from its central part, so scaling and codec blur at the
    cell edges do not matter.
    """
    rgb = np.asarray(rgb)
    h, w = rgb.shape[:2]
    rows = max(1, int(round(h * band)))
    r0, r1 = rows // 4, max(rows // 4 + 1, (3 * rows) // 4)
    edges = np.linspace(0, w, bits + 3)
    cells = []
    for c in range(bits + 2):
        x0, x1 = edges[c], edges[c + 1]
        pad = (x1 - x0) / 4
        a, b = int(math.floor(x0 + pad)), int(math.ceil(x1 - pad))
        b = max(b, a + 1)
        cells.append(rgb[r0:r1, a:b].reshape(-1, 3).astype(np.float64).mean(axis=0))
    red, blue = cells[0], cells[-1]
    if not (red[0] > 150 and red[1] < 100 and red[2] < 100):
        return None
    if not (blue[2] > 150 and blue[0] < 100 and blue[1] < 100):
        return None
    value = 0
    for cell in cells[1:-1]:
        luma = float(cell.mean())
        if 60 < luma < 195:  # neither black nor white: not a timecode
            return None
        value = (value << 1) | int(luma >= 128)
    return value


# --------------------------------------------------------------------------- content


def timecode(bits: int = 10) -> Content:
    """Timecode band on top, and below it a grey level that also changes with the index."""

    def content(index: int, t: float, height: int, width: int) -> np.ndarray:
        img = np.empty((height, width, 3), np.uint8)
        img[:] = np.uint8(40 + (index * 37) % 176)
        return draw_timecode(img, index, bits)

    return content


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    y = (np.arange(height, dtype=np.float32) + 0.5) / height
    x = (np.arange(width, dtype=np.float32) + 0.5) / width
    return y[:, None], x[None, :]


def moving_shape(shape: str = "circle", colour: Sequence[int] = (220, 40, 40),
                 background: Sequence[int] = (30, 30, 30), period_s: float = 4.0,
                 radius: float = 0.22) -> Content:
    """A filled ``shape`` (circle, square, triangle, ring, cross) moving on a
    Lissajous path that repeats every ``period_s`` seconds."""
    if shape not in _SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose one of {sorted(_SHAPES)}")
    fg = np.asarray(colour, np.uint8)
    bg = np.asarray(background, np.uint8)

    def content(index: int, t: float, height: int, width: int) -> np.ndarray:
        y, x = _grid(height, width)
        phase = 2 * math.pi * t / period_s
        cy = 0.5 + 0.25 * math.sin(phase)
        cx = 0.5 + 0.25 * math.cos(2 * phase)
        mask = _SHAPES[shape]((y - cy) / radius, (x - cx) / radius)
        img = np.empty((height, width, 3), np.uint8)
        img[:] = bg
        img[mask] = fg
        return img

    return content


_SHAPES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "circle": lambda y, x: y * y + x * x <= 1.0,
    "square": lambda y, x: (np.abs(y) <= 0.85) & (np.abs(x) <= 0.85),
    "triangle": lambda y, x: (y <= 0.8) & (y >= -0.8) & (np.abs(x) <= (y + 0.8) * 0.6),
    "ring": lambda y, x: (y * y + x * x <= 1.0) & (y * y + x * x >= 0.4),
    "cross": lambda y, x: ((np.abs(y) <= 0.25) | (np.abs(x) <= 0.25)) & (np.abs(y) <= 1) & (np.abs(x) <= 1),
}


def texture(kind: str = "stripes", colour: Sequence[int] = (240, 200, 40),
            background: Sequence[int] = (20, 20, 60), cycles: float = 6.0,
            speed: float = 0.25) -> Content:
    """A drifting texture: ``stripes`` (vertical), ``hstripes``, ``checker``,
    ``diagonal`` or ``rings``; ``cycles`` repeats across the frame, moving at
    ``speed`` frame widths per second."""
    if kind not in _TEXTURES:
        raise ValueError(f"unknown texture {kind!r}; choose one of {sorted(_TEXTURES)}")
    fg = np.asarray(colour, np.uint8)
    bg = np.asarray(background, np.uint8)

    def content(index: int, t: float, height: int, width: int) -> np.ndarray:
        y, x = _grid(height, width)
        shift = speed * t
        mask = _TEXTURES[kind](y * cycles, (x + shift) * cycles)
        img = np.empty((height, width, 3), np.uint8)
        img[:] = bg
        img[np.broadcast_to(mask, (height, width))] = fg
        return img

    return content


_TEXTURES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "stripes": lambda y, x: np.broadcast_to(np.floor(x) % 2 == 0, (y.shape[0], x.shape[1])),
    "hstripes": lambda y, x: np.broadcast_to(np.floor(y) % 2 == 0, (y.shape[0], x.shape[1])),
    "checker": lambda y, x: (np.floor(y) + np.floor(x)) % 2 == 0,
    "diagonal": lambda y, x: np.floor(x + y) % 2 == 0,
    "rings": lambda y, x: np.floor(np.sqrt((y - y.mean()) ** 2 + (x - x.mean()) ** 2)) % 2 == 0,
}


def panorama(seed: int = 0, speed: float = 0.08, shapes: int = 3) -> Content:
    """Camera-like footage: a smooth random landscape (a few octaves of
    low-pass noise, seeded) that the camera pans across at ``speed`` frame
    widths per second, with ``shapes`` discs moving over it.

    Encoders treat it as they treat real footage (smooth motion, no
    high-frequency texture sliding by), so their B-frame and reference
    decisions are the usual ones; the benchmarks use it.
    """
    cache: dict[tuple[int, int], np.ndarray] = {}
    rng = np.random.default_rng(seed)
    colours = rng.integers(40, 230, (shapes, 3)).astype(np.uint8)
    phases = rng.uniform(0, 2 * math.pi, (shapes, 2))
    periods = rng.uniform(3.0, 9.0, shapes)

    def landscape(height: int, width: int) -> np.ndarray:
        key = (height, width)
        if key not in cache:
            big_h, big_w = 2 * height, 3 * width
            img = np.zeros((big_h, big_w, 3), np.float32)
            r = np.random.default_rng(seed)
            for octave, weight in ((4, 1.0), (12, 0.5), (36, 0.25), (108, 0.12)):
                grid = r.uniform(0, 1, (octave + 1, int(octave * big_w / big_h) + 2, 3)).astype(np.float32)
                ys = np.linspace(0, octave, big_h, dtype=np.float32)
                xs = np.linspace(0, grid.shape[1] - 1.001, big_w, dtype=np.float32)
                y0, x0 = ys.astype(int), xs.astype(int)
                fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
                y1, x1 = np.minimum(y0 + 1, grid.shape[0] - 1), x0 + 1
                top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x1] * fx
                bottom = grid[y1][:, x0] * (1 - fx) + grid[y1][:, x1] * fx
                img += weight * (top * (1 - fy) + bottom * fy)
            img = (img - img.min()) / (img.max() - img.min() + 1e-6)
            cache[key] = (30 + 195 * img).astype(np.uint8)
        return cache[key]

    def content(index: int, t: float, height: int, width: int) -> np.ndarray:
        land = landscape(height, width)
        span_x, span_y = land.shape[1] - width, land.shape[0] - height
        # Pan back and forth across the landscape (a triangle wave), drifting vertically.
        travel = (speed * width * t) % (2 * span_x) if span_x else 0
        x = int(travel if travel <= span_x else 2 * span_x - travel)
        y = int((0.5 + 0.4 * math.sin(2 * math.pi * t / 17.0)) * span_y)
        img = land[y:y + height, x:x + width].copy()
        yy, xx = _grid(height, width)
        for c, (py, px), period in zip(colours, phases, periods):
            cy = 0.5 + 0.3 * math.sin(2 * math.pi * t / period + py)
            cx = 0.5 + 0.35 * math.cos(2 * math.pi * t / period + px)
            img[(yy - cy) ** 2 + ((xx - cx) * width / height) ** 2 <= 0.012] = c
        return img

    return content


def with_timecode(content: Content, bits: int = 10, band: float = 0.25) -> Content:
    """``content`` with the frame index stamped on its top ``band`` fraction."""

    def stamped(index: int, t: float, height: int, width: int) -> np.ndarray:
        return draw_timecode(np.array(content(index, t, height, width), np.uint8), index, bits, band)

    return stamped


# Classes for the demo corpus: visually distinct (form, colour, texture), so a
# classifier on Inception features can learn them.
CONTENTS: dict[str, Callable[[], Content]] = {
    "red_circle": lambda: moving_shape("circle", (220, 40, 40)),
    "green_square": lambda: moving_shape("square", (40, 200, 60), (20, 20, 20), 5.0),
    "blue_triangle": lambda: moving_shape("triangle", (50, 80, 230), (235, 235, 225), 3.0),
    "yellow_ring": lambda: moving_shape("ring", (240, 220, 30), (40, 20, 70), 6.0),
    "white_cross": lambda: moving_shape("cross", (250, 250, 250), (120, 30, 30), 4.5),
    "stripes": lambda: texture("stripes"),
    "checker": lambda: texture("checker", (250, 250, 250), (10, 10, 10), 4.0, 0.1),
    "diagonal": lambda: texture("diagonal", (40, 220, 220), (90, 20, 20), 8.0),
    "rings": lambda: texture("rings", (250, 120, 20), (10, 60, 10), 5.0, 0.0),
    "hstripes": lambda: texture("hstripes", (200, 60, 200), (230, 230, 230), 5.0),
}


def make_content(name: str) -> Content:
    """A named content generator from ``CONTENTS`` (or ``timecode``)."""
    if name == "timecode":
        return timecode()
    try:
        return CONTENTS[name]()
    except KeyError:
        raise ValueError(f"unknown content {name!r}; choose one of "
                         f"{sorted(CONTENTS) + ['timecode']}") from None


# --------------------------------------------------------------------------- writing


def cfr_times(fps: float, duration_s: float, start_s: float = 0.0) -> list[float]:
    """Frame times of a constant-rate video: ``start_s + i / fps`` for ``i / fps < duration_s``."""
    rate = fractions.Fraction(fps).limit_denominator(100000)
    n = math.ceil(fractions.Fraction(duration_s).limit_denominator(100000) * rate)
    return [start_s + float(i / rate) for i in range(n)]


def write_video(path: str | os.PathLike, content: Content | None = None, *,
                codec: str = "libx264", container: str | None = None,
                width: int = 64, height: int = 48, fps: float = 25.0,
                duration_s: float = 2.0, frame_times: Sequence[float] | None = None,
                start_s: float = 0.0, last_frame_s: float | None = None,
                rotation: int = 0, audio: bool = False, pix_fmt: str | None = None,
                options: dict[str, str] | None = None, gop: int | None = None,
                audio_codec: str | None = None, audio_hz: float = 440.0,
                audio_start_s: float = 0.0, audio_channels: int = 1,
                encoder_threads: str | None = None) -> SynthVideo:
    """Encodes a synthetic video at ``path``; returns what was written.

    - ``content(index, t, height, width)`` gives the upright RGB picture of frame
      ``index`` shown at ``t`` seconds (``t`` counted from the first frame);
      default: ``timecode()``.
    - Frame times: ``frame_times`` (seconds, increasing; variable frame rate) or
      ``fps`` x ``duration_s`` (constant rate); both shifted by ``start_s`` (a
      non-zero first timestamp). The last frame lasts ``last_frame_s`` (default:
      ``1 / fps`` or the last interval); the muxer stores it as a packet duration.
    - ``container``: mp4, matroska, webm or mov; default from the extension.
    - ``rotation``: counter-clockwise display rotation in degrees (0, 90, 180, 270),
      written as a display matrix; the picture is stored rotated the other way,
      so a reader that honours the matrix shows ``content`` upright.
    - ``pix_fmt``: default yuv420p; yuv444p for x264/x265 at odd sizes (their
      4:2:0 needs even sizes).
    - ``audio``: add a tone track: ``audio_hz`` Hz (0: silence), amplitude 0.2,
      ``audio_channels`` channels, starting ``audio_start_s`` after the first
      frame and ending with the video; ``audio_codec`` ``aac`` (default) or
      ``libopus`` (the default in WebM).
    - ``encoder_threads``: the encoder's thread type (``"FRAME"`` as the ffmpeg
      command line uses; default PyAV's, slice threads, with which libx264
      codes no B-frames).
    """
    path = os.fspath(path)
    if codec not in CODECS:
        raise ValueError(f"codec {codec!r} is not one of {CODECS}")
    ext = os.path.splitext(path)[1].lower()
    fmt = container or CONTAINERS.get(ext)
    if fmt is None:
        raise ValueError(f"cannot infer the container from {path!r}: use one of "
                         f"{sorted(CONTAINERS)} or pass container=")
    if fmt == "webm" and codec not in _WEBM_VIDEO:
        raise ValueError(f"WebM cannot carry {codec}; use one of {_WEBM_VIDEO}")
    if rotation % 90 or rotation % 360 not in (0, 90, 180, 270):
        raise ValueError(f"rotation must be a multiple of 90 degrees, got {rotation}")
    rotation %= 360
    if width < 1 or height < 1:
        raise ValueError(f"size must be positive, got {width}x{height}")
    if codec == "libx265" and (width % 2 or height % 2 or width < 64 or height < 48):
        # The libx265 in PyAV's FFmpeg build corrupts the heap (an abort, often
        # later in the process) on odd sizes and on tiny frames (seen at 34x22,
        # 40x24, 48x32 under MALLOC_CHECK_=3; 64x48 and larger were clean).
        raise ValueError(f"libx265 needs an even width >= 64 and an even height >= 48, got "
                         f"{width}x{height}: use another codec for odd or tiny sizes")
    content = content or timecode()

    if frame_times is None:
        times = cfr_times(fps, duration_s, start_s)
    else:
        times = [start_s + float(t) for t in frame_times]
    if not times:
        raise ValueError("a video needs at least one frame (duration_s too small or frame_times empty)")
    if any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError("frame_times must be strictly increasing")
    if last_frame_s is None:
        last_frame_s = (times[-1] - times[-2]) if frame_times is not None and len(times) > 1 else 1.0 / fps
    pts = [round(t / TIME_BASE) for t in times]
    durations = {p: q - p for p, q in zip(pts, pts[1:])}
    durations[pts[-1]] = max(1, round(last_frame_s / TIME_BASE))

    stored_w, stored_h = (height, width) if rotation in (90, 270) else (width, height)
    if pix_fmt is None:
        odd = stored_w % 2 or stored_h % 2
        pix_fmt = "yuv444p" if odd and codec in ("libx264", "libx265") else "yuv420p"
    if codec == "libsvtav1":
        # SVT-AV1 logs its whole configuration to stderr unless told otherwise.
        os.environ.setdefault("SVT_LOG", "1")

    out = av.open(path, "w", format=fmt)
    try:
        # The rate is a hint for the muxer (and the default packet duration);
        # the real times are in each frame's pts.
        rate = fractions.Fraction(fps).limit_denominator(100000)
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height = stored_w, stored_h
        stream.pix_fmt = pix_fmt
        stream.codec_context.time_base = TIME_BASE
        if encoder_threads:
            stream.codec_context.thread_type = encoder_threads
        opts = dict(_ENCODER_OPTIONS[codec])
        if gop:
            opts["g"] = str(gop)
        opts.update(options or {})
        stream.options = opts
        if rotation:
            stream.set_display_rotation(rotation)
        astream = None
        if audio:
            acodec = audio_codec or ("libopus" if fmt == "webm" else "aac")
            if audio_channels not in (1, 2):
                raise ValueError(f"audio_channels must be 1 or 2, got {audio_channels}")
            astream = out.add_stream(acodec, rate=48000)
            astream.layout = "mono" if audio_channels == 1 else "stereo"

        def mux(packets):
            for packet in packets:
                if packet.pts is not None and packet.stream is stream:
                    # Encoders emit decode order; durations are per presentation time.
                    packet.duration = durations.get(_to_tb(packet.pts, packet.time_base), packet.duration)
                out.mux(packet)

        def _to_tb(value, tb):
            return round(value * tb / TIME_BASE) if tb else value

        first = times[0]
        for i, (t, p) in enumerate(zip(times, pts)):
            img = np.asarray(content(i, t - first, height, width), np.uint8)
            if img.shape != (height, width, 3):
                raise ValueError(f"content returned shape {img.shape}, expected {(height, width, 3)}")
            if rotation:
                # Stored = upright rotated clockwise by ``rotation``, so that the
                # display rotation (counter-clockwise) restores it.
                img = np.ascontiguousarray(np.rot90(img, -rotation // 90))
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = p
            frame.time_base = TIME_BASE
            mux(stream.encode(frame))
        mux(stream.encode(None))
        if astream is not None:
            _write_tone(out, astream, times[0] + audio_start_s, times[-1] + last_frame_s, audio_hz,
                        audio_channels)
    finally:
        out.close()
    return SynthVideo(path=path, codec=codec, container=fmt, width=width, height=height,
                      frame_times=tuple(times), end_s=times[-1] + last_frame_s,
                      rotation=rotation, audio=audio)


def _write_tone(out, astream, start_s: float, end_s: float, hz: float = 440.0,
                channels: int = 1) -> None:
    """A ``hz`` Hz tone (0: silence) from ``start_s`` to ``end_s`` on ``astream``."""
    rate = astream.codec_context.sample_rate or 48000
    frame_size = astream.codec_context.frame_size or 960
    total = int((end_s - start_s) * rate)
    first = int(round(start_s * rate))
    layout = "mono" if channels == 1 else "stereo"
    for n0 in range(0, total, frame_size):
        n = np.arange(n0, n0 + frame_size)
        tone = (0.2 * np.sin(2 * math.pi * hz * n / rate)).astype(np.float32)
        samples = np.repeat(tone[None, :], channels, axis=0)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = first + n0
        frame.time_base = fractions.Fraction(1, rate)
        for packet in astream.encode(frame):
            out.mux(packet)
    for packet in astream.encode(None):
        out.mux(packet)
