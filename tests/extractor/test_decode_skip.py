"""Skipping the packets no sample needs gives exactly a full decode's samples.

For every codec, container and timing the project reads (and for damaged
files), ``sample_frames`` with ``skip_packets=True`` must return the very
frames, times, end and warnings of ``skip_packets=False``; the statistics say
how much was skipped. ``extractor.skipping.SkipPlanner`` is also tested on
its own with made-up packet descriptions.
"""
from __future__ import annotations

import fractions
import os

import numpy as np
import pytest

from yt8m.extractor.bitstream import Unit
from yt8m.extractor.decode import sample_frames
from yt8m.extractor.skipping import SkipPlanner, min_window
from tests.media import (assert_same_samples, corrupt_packets, damage_payload, decode_both, remux,
                         retime_packets, swap_timestamps, timecodes, truncate_file, with_timecode)
from yt8m.extractor import synth

SIZE = 32
# Denser B-frame structures than the default test encodes (flat pictures code cheaply either way).
X264_MEDIUM = {"preset": "medium"}
X265_CLOSED = {"x265-params": "log-level=error:open-gop=0"}
VFR_TIMES = [0.0, 0.2, 0.95, 1.0, 1.5, 1.9, 4.5, 4.52, 4.54, 6.0] + [6.0 + 0.04 * i for i in range(1, 60)]


def content():
    return with_timecode(synth.texture("checker", cycles=5, speed=0.3))


def stats_add_up(result, full):
    s = result.stats
    assert s.packets == s.packets_decoded + s.packets_skipped == full.stats.packets
    assert s.frames_decoded <= full.stats.frames_decoded
    assert full.stats.packets_skipped == 0 and full.stats.skipping == "off"


# ----------------------------------------------------------------- the corpus

CORPUS = [
    # name, write_video arguments, at least this many packets skipped
    ("h264.mp4", dict(codec="libx264", fps=25, duration_s=6), 20),
    ("h264_medium.mkv", dict(codec="libx264", fps=30, duration_s=6, options=X264_MEDIUM), 20),
    ("h264_frame_threads.mov", dict(codec="libx264", fps=24, duration_s=6, encoder_threads="FRAME"), 10),
    ("h264_no_bframes.mp4", dict(codec="libx264", fps=25, duration_s=6, gop=50,
                                 options={"x264-params": "bframes=0"}), 20),
    ("h264_gop_1s.mkv", dict(codec="libx264", fps=25, duration_s=6, gop=25), 100),
    ("hevc.mp4", dict(codec="libx265", fps=25, duration_s=6), 20),
    ("hevc_open_gop.mkv", dict(codec="libx265", fps=25, duration_s=6, gop=25), 20),
    ("hevc_closed_gop.mkv", dict(codec="libx265", fps=30, duration_s=6, gop=40, options=X265_CLOSED), 40),
    ("vp9.webm", dict(codec="libvpx-vp9", fps=25, duration_s=6, gop=50), 20),
    ("vp9.mp4", dict(codec="libvpx-vp9", fps=15, duration_s=6, gop=20), 20),
    ("av1.mkv", dict(codec="libsvtav1", fps=25, duration_s=5), 10),
    ("av1.webm", dict(codec="libsvtav1", fps=12.5, duration_s=6, gop=25), 20),
    ("av1.mp4", dict(codec="libsvtav1", fps=10, duration_s=6), 5),
    ("vfr.mkv", dict(codec="libx264", frame_times=VFR_TIMES, last_frame_s=1.5), 5),
    ("vfr.mp4", dict(codec="libx264", frame_times=VFR_TIMES, last_frame_s=1.5), 5),
    ("vfr.webm", dict(codec="libvpx-vp9", frame_times=VFR_TIMES, last_frame_s=1.5, gop=20), 5),
    ("ntsc.mkv", dict(codec="libx264", fps=30000 / 1001, duration_s=5), 10),
    ("start_7.3.mkv", dict(codec="libx265", fps=25, duration_s=5, start_s=7.3), 10),
    ("start_2.webm", dict(codec="libvpx-vp9", fps=25, duration_s=5, start_s=2.0, gop=30), 10),
    ("rot90.mp4", dict(codec="libx264", fps=25, duration_s=5, rotation=90), 10),
    ("rot270.mov", dict(codec="libx265", fps=25, duration_s=5, rotation=270), 10),
    ("odd_33x17.mkv", dict(codec="libx264", fps=25, duration_s=5, width=33, height=17), 5),
    ("odd_31x19.webm", dict(codec="libsvtav1", fps=25, duration_s=5, width=31, height=19), 5),
    ("with_audio.mp4", dict(codec="libx264", fps=25, duration_s=5, audio=True), 10),
]


@pytest.mark.parametrize("name,kwargs,skipped", CORPUS, ids=[c[0] for c in CORPUS])
def test_skipping_gives_the_full_decode(video_factory, name, kwargs, skipped):
    kwargs = {"width": 96, "height": 64, **kwargs}
    video = video_factory(name, content() if kwargs["width"] > 40 else None, **kwargs)
    full, fast = decode_both(video.path, size=SIZE)
    assert_same_samples(full, fast)
    stats_add_up(fast, full)
    assert fast.stats.skipping == "on" and fast.stats.restarted is None
    assert fast.stats.packets_skipped >= skipped, fast.stats
    assert fast.decoded_frames == fast.stats.frames_decoded < full.decoded_frames


@pytest.mark.parametrize("src,ext", [("libx264", "ts"), ("libx265", "ts")])
def test_annex_b_streams(video_factory, tmp_path, src, ext):
    # MPEG-TS carries H.264/HEVC as Annex B byte streams (start codes, in-band parameter sets).
    video = video_factory(f"{src}.mkv", content(), codec=src, width=96, height=64, fps=25,
                          duration_s=6, gop=50)
    path = remux(video.path, str(tmp_path / f"{src}.{ext}"))
    full, fast = decode_both(path, size=SIZE)
    assert_same_samples(full, fast)
    assert fast.stats.packets_skipped >= 20 and fast.stats.skip_stopped is None


@pytest.mark.parametrize("kwargs", [dict(fps=2.0, max_seconds=2.5), dict(fps=0.4), dict(fps=5.0),
                                    dict(max_seconds=3.0), dict(threads=1)])
def test_rates_caps_and_threads(video_factory, kwargs):
    video = video_factory("rates.mkv", content(), codec="libx264", width=96, height=64, fps=25,
                          duration_s=6, gop=40)
    full, fast = decode_both(video.path, size=SIZE, **kwargs)
    assert_same_samples(full, fast)
    if kwargs.get("fps", 1.0) < 5:
        assert fast.stats.packets_skipped > 0


def test_long_video_stops_at_the_cap(video_factory):
    video = video_factory("long.mkv", codec="libx264", fps=5, duration_s=40, gop=25)
    full, fast = decode_both(video.path, size=SIZE, max_seconds=20.5)
    assert_same_samples(full, fast)
    assert len(fast) == 21 and fast.duration_s is None
    # Reading stops at the cap (plus the look-ahead window), as decoding does.
    assert fast.stats.packets < full.stats.packets + 25
    assert fast.stats.frames_decoded < full.stats.frames_decoded


def test_samples_are_the_expected_frames_when_most_packets_are_skipped(video_factory):
    # One key frame a second, one sample a second: only the key frames are
    # decoded, and the last second (the last frame ends the video: it and the
    # pictures it depends on are decoded).
    video = video_factory("keys.mp4", codec="libx264", fps=25, duration_s=8, gop=25)
    result = sample_frames(video.path, size=64)
    assert timecodes(result.frames) == [25 * k for k in range(8)]
    assert result.stats.packets == 200 and result.stats.frames_decoded <= 7 + 25 + 2


def test_skipping_can_be_turned_off(video_factory):
    video = video_factory("off.mp4", codec="libx264", fps=25, duration_s=4)
    result = sample_frames(video.path, size=SIZE, skip_packets=False)
    assert result.stats.skipping == "off" and result.stats.packets_skipped == 0
    assert result.decoded_frames == result.stats.frames_decoded == result.stats.packets == 100


def test_codec_without_parser_is_decoded_fully(tmp_path):
    import av
    path = str(tmp_path / "mpeg4.mkv")
    with av.open(path, "w") as out:
        s = out.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.options = {"bf": "2"}
        for i in range(60):
            img = synth.draw_timecode(np.zeros((48, 64, 3), np.uint8), i)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    full, fast = decode_both(path, size=SIZE)
    assert_same_samples(full, fast)
    assert fast.stats.skipping == "unsupported" and fast.stats.packets_skipped == 0


def test_remote_reads_skip_too(video_factory, remote_fs):
    local = video_factory("remote/clip.mp4", content(), codec="libx264", width=96, height=64, fps=25,
                          duration_s=5, gop=25)
    remote_fs.root = os.path.dirname(local.path)
    fast = sample_frames(remote_fs.uri("clip.mp4"), size=SIZE)
    full = sample_frames(local.path, size=SIZE, skip_packets=False)
    assert_same_samples(full, fast)
    assert fast.stats.packets_skipped > 50


# ----------------------------------------------------------------- damaged files

DAMAGE_CODECS = [("libx264", "mkv"), ("libx265", "mkv"), ("libvpx-vp9", "webm"), ("libsvtav1", "mkv")]


@pytest.fixture
def damaged_source(video_factory):
    def make(codec, ext):
        return video_factory(f"src_{codec}.{ext}", content(), codec=codec, width=96, height=64, fps=25,
                             duration_s=8, gop=50).path
    return make


@pytest.mark.parametrize("codec,ext", DAMAGE_CODECS)
def test_truncated_file(damaged_source, tmp_path, codec, ext):
    path = truncate_file(damaged_source(codec, ext), str(tmp_path / f"cut.{ext}"), 0.55)
    full, fast = decode_both(path, size=SIZE)
    assert_same_samples(full, fast)
    assert [w.kind for w in fast.warnings] in (["truncated"], ["partial_decode"])


# (Matroska refuses to store random bytes as AV1: it parses AV1 packets.)
@pytest.mark.parametrize("codec,ext", DAMAGE_CODECS[:3])
def test_packets_turning_to_garbage(damaged_source, tmp_path, codec, ext):
    # From packet 120 on (after skipping has started) the payloads are random bytes.
    path = corrupt_packets(damaged_source(codec, ext), str(tmp_path / f"garbage.{ext}"), from_packet=120)
    full, fast = decode_both(path, size=SIZE)
    assert_same_samples(full, fast)
    assert fast.stats.skip_stopped is not None


@pytest.mark.parametrize("at", [10, 130], ids=["before_any_skip", "after_skips"])
@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_timestamps_contradicting_the_picture_order(damaged_source, tmp_path, codec, at):
    path = swap_timestamps(damaged_source(codec, "mkv"), str(tmp_path / "swapped.mkv"), [at])
    full, fast = decode_both(path, size=SIZE)
    assert_same_samples(full, fast)
    assert fast.stats.skip_stopped is not None
    if at > 100:   # skipping had begun: the video is decoded again in full
        assert fast.stats.restarted is not None and fast.stats.frames_decoded_total > fast.stats.frames_decoded


def test_non_monotonic_timestamps(video_factory, tmp_path):
    video = video_factory("intra.mkv", fps=10, duration_s=2, options={"g": "1", "bframes": "0"})
    path = retime_packets(video.path, str(tmp_path / "nonmono.mkv"),
                          [0.0, 0.1, 0.2, 1.5, 1.0, 2.0, 2.1, 3.0, 3.3, 3.9])
    full, fast = decode_both(path, size=SIZE)
    assert_same_samples(full, fast)
    assert [w.kind for w in fast.warnings] == ["non_monotonic"]


def test_damaged_slice_data_in_h264(damaged_source, tmp_path):
    # Headers intact, slice data damaged after skipping started: FFmpeg conceals
    # the damage and flags the frame, and the decode starts again in full.
    # (One decoder thread: with frame threads FFmpeg's concealment of damaged
    # slices itself varies from one decode to the next.)
    path = damage_payload(damaged_source("libx264", "mkv"), str(tmp_path / "damaged.mkv"),
                          range(120, 200, 5))
    full, fast = decode_both(path, size=SIZE, threads=1)
    assert_same_samples(full, fast)
    assert fast.stats.restarted == "the decoder reported a damaged frame"


def test_connection_dropping_part_way(video_factory, remote_fs):
    video = video_factory("remote/long.mkv", content(), codec="libx264", width=96, height=64, fps=25,
                          duration_s=10, gop=50)
    remote_fs.root = os.path.dirname(video.path)
    uri = remote_fs.uri("long.mkv")
    remote_fs.faults[uri] = {"fail_after": os.path.getsize(video.path) * 2 // 3}
    full, fast = decode_both(uri, size=SIZE)
    assert_same_samples(full, fast)
    assert fast.warnings[0].kind == "partial_decode" and fast.stats.restarted is not None


def test_restart_in_the_streaming_form_repeats_no_sample(damaged_source, tmp_path):
    from yt8m.extractor.decode import iter_frames
    path = swap_timestamps(damaged_source("libx264", "mkv"), str(tmp_path / "swapped.mkv"), [130])
    with iter_frames(path, size=SIZE) as stream:
        indices = [f.index for f in stream]
    assert indices == list(range(len(indices))) and stream.stats.restarted


# ----------------------------------------------------------------- the planner alone


class FakeParser:
    """Hands out prepared ``Unit``s in order."""

    def __init__(self, units, reorder=0):
        self.units = iter(units)
        self.reorder = reorder

    def parse(self, data):
        return next(self.units)

    def reorder_depth(self):
        return self.reorder


def plan(units, pts, rate=1, fps=10, kmax=None, window=8, reorder=0, first=None):
    """Runs a planner over packets at ``pts`` (time base 1/fps) and returns the sent/skipped flags."""
    planner = SkipPlanner(FakeParser(units, reorder), fractions.Fraction(1, fps), fractions.Fraction(rate),
                          kmax, min_window=window, max_window=window)
    out = []
    for i, p in enumerate(pts):
        out += planner.add(i, b"x", p)
        if i == 0:
            planner.first_output(first if first is not None else p)
    out += planner.drain()
    assert [item for item, _ in out] == list(range(len(pts)))
    return [send for _, send in out], planner


def pic(poc, droppable=False, reset=False, period=1, output=True):
    return Unit(picture=True, output=output, droppable=droppable, reset=reset, poc=poc, period=period)


def test_planner_skips_droppable_pictures_no_sample_shows():
    # 10 frames/s, samples at whole seconds; every odd frame is droppable.
    n = 40
    units = [pic(i, droppable=bool(i % 2), reset=i == 0) for i in range(n)]
    sent, planner = plan(units, list(range(n)))
    skipped = [i for i, s in enumerate(sent) if not s]
    # Odd frames are never at a whole second; the last one has no successor
    # (it ends the video) and is decoded.
    assert skipped == [i for i in range(1, n - 1, 2)]
    assert planner.skipped == len(skipped) and planner.restart is None


def test_planner_keeps_a_droppable_picture_a_sample_shows():
    units = [pic(i, droppable=True) if i in (10, 15) else pic(i) for i in range(30)]
    sent, _ = plan(units, list(range(30)))
    assert sent[10] and not sent[15]          # frame 10 is on screen at t = 1 s


def test_planner_skips_a_tail_up_to_the_next_reset():
    # A reset every 10 frames (1 s), a sample every 2 s: odd seconds are tails.
    n = 60
    units = [pic(i % 10, reset=i % 10 == 0, period=i // 10) for i in range(n)]
    sent, _ = plan(units, list(range(n)), rate=fractions.Fraction(1, 2), window=16)
    skipped = {i for i, s in enumerate(sent) if not s}
    # Frames 1-9 follow the frame shown at t = 0 up to the reset at 10; 11-19
    # are the whole second second (the reset at 10 is not needed either).
    assert set(range(1, 10)) <= skipped and set(range(10, 20)) <= skipped
    assert sent[0] and sent[20] and sent[40]


def test_planner_waits_for_the_first_frame_and_decodes_the_end():
    units = [pic(i, droppable=i % 2 == 1) for i in range(30)]
    planner = SkipPlanner(FakeParser(units), fractions.Fraction(1, 10), fractions.Fraction(1), None,
                          min_window=4, max_window=4)
    out = []
    for i in range(30):
        out += planner.add(i, b"x", i)
    out += planner.drain()
    assert all(send for _, send in out)       # time 0 never became known


def test_planner_doubt_before_and_after_a_skip():
    units = [pic(i, droppable=i % 2 == 1) for i in range(30)]
    units[3] = Unit(doubt="unreadable")
    sent, planner = plan(units, list(range(30)))
    assert all(sent) and planner.stopped == "unreadable" and planner.restart is None
    units = [pic(i, droppable=i % 2 == 1) for i in range(30)]
    units[25] = Unit(doubt="unreadable")
    sent, planner = plan(units, list(range(30)))
    assert not all(sent) and planner.restart == "unreadable"


def test_planner_checks_timestamps_against_picture_order():
    units = [pic(i, droppable=i % 2 == 1) for i in range(30)]
    pts = list(range(30))
    pts[20], pts[21] = 21, 20                 # pictures 20 and 21 swapped in time
    _, planner = plan(units, pts)
    assert planner.restart == "timestamps do not follow the pictures' output order"
    # Reordered further than declared.
    order = [0, 5, 4, 3, 1, 2, 6, 7]      # picture 1 follows three later ones
    _, planner = plan([pic(p) for p in order], order, reorder=2)
    assert planner.stopped == "pictures are reordered more than the stream declares"


def test_planner_verifies_what_came_out():
    units = [pic(i, droppable=i % 2 == 1) for i in range(30)]
    planner = SkipPlanner(FakeParser(units), fractions.Fraction(1, 10), fractions.Fraction(1), None,
                          min_window=4, max_window=4)
    for i in range(20):
        planner.add(i, b"x", i)
        if i == 0:
            planner.first_output(0)
    assert planner.skipped
    # A skipped picture (odd) between frames 4 and 12 would be shown at t = 1.
    planner.check_interval(4, 12)
    assert planner.restart == "a skipped picture would have been shown at a sample"


def test_look_ahead_spans_a_sample_interval():
    units = [pic(i) for i in range(400)]
    planner = SkipPlanner(FakeParser(units), fractions.Fraction(1, 100), fractions.Fraction(1), None,
                          min_window=min_window(2))
    held = []
    for i in range(400):
        planner.add(i, b"x", i)
        held.append(len(planner._window))
    # 100 frames/s, one sample a second: 1.25 s of packets are held.
    assert max(held) == 126 and min_window(2) == 16 and min_window(8) == 24
