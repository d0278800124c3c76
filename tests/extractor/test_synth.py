"""extractor.synth: the synthetic videos are what they claim to be (checked with
PyAV directly, not through extractor.decode)."""
from __future__ import annotations

import av
import numpy as np
import pytest

from yt8m.extractor import synth


def test_timecode_round_trip_and_orientation():
    for index in (0, 1, 513, 1023):
        img = synth.draw_timecode(np.zeros((48, 64, 3), np.uint8), index)
        assert synth.read_timecode(img) == index
        # Rotated or mirrored frames are not read as a (wrong) index.
        assert synth.read_timecode(np.rot90(img)) is None
        assert synth.read_timecode(img[::-1]) is None
        assert synth.read_timecode(img[:, ::-1]) is None
    assert synth.read_timecode(np.full((48, 64, 3), 128, np.uint8)) is None


def test_content_generators_are_distinct_and_move():
    frames = {name: synth.make_content(name)(0, 0.0, 36, 48) for name in synth.CONTENTS}
    for frame in frames.values():
        assert frame.shape == (36, 48, 3) and frame.dtype == np.uint8
    names = sorted(frames)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(frames[a].astype(int) - frames[b].astype(int)).mean() > 10, (a, b)
    circle = synth.make_content("red_circle")
    assert not np.array_equal(circle(0, 0.0, 36, 48), circle(10, 1.0, 36, 48))
    stamped = synth.with_timecode(circle)(77, 3.1, 64, 96)
    assert synth.read_timecode(stamped, band=0.25) == 77
    with pytest.raises(ValueError, match="unknown content"):
        synth.make_content("dragon")


def _packets_info(path):
    with av.open(path) as c:
        v = c.streams.video[0]
        times = sorted(float(p.pts * p.time_base) for p in c.demux(v) if p.pts is not None)
        kinds = sorted(s.type for s in c.streams)
        return times, kinds, v.codec_context.width, v.codec_context.height, v.codec_context.name


@pytest.mark.parametrize("codec,name,audio", [("libx264", "a.mp4", True), ("libx265", "a.mov", False),
                                              ("libvpx-vp9", "a.webm", True), ("libsvtav1", "a.mkv", False)])
def test_written_times_codec_and_streams(tmp_path, codec, name, audio):
    times = [0.0, 0.5, 0.6, 2.0, 2.25]
    video = synth.write_video(tmp_path / name, codec=codec, frame_times=times, start_s=3.0, audio=audio)
    got, kinds, w, h, decoder = _packets_info(video.path)
    np.testing.assert_allclose(got, [3.0 + t for t in times], atol=1e-3)
    assert kinds == (["audio", "video"] if audio else ["video"])
    assert (w, h) == (64, 48)
    assert video.end_s == pytest.approx(3.0 + 2.25 + 0.25)
    assert video.duration_s == pytest.approx(2.5)
    assert {"libx264": "h264", "libx265": "hevc", "libvpx-vp9": "vp9"}.get(codec, "av1") in decoder or \
        decoder == "libdav1d"


def test_rotation_is_stored_as_display_matrix(tmp_path):
    video = synth.write_video(tmp_path / "r.mp4", fps=5, duration_s=0.4, rotation=90)
    with av.open(video.path) as c:
        frame = next(c.decode(video=0))
    assert (frame.width, frame.height) == (48, 64)  # stored sideways
    assert frame.rotation == 90
    upright = np.rot90(frame.to_ndarray(format="rgb24"), 1)
    assert synth.read_timecode(upright) == 0


def test_odd_sizes_pick_a_pixel_format_the_codec_accepts(tmp_path):
    video = synth.write_video(tmp_path / "odd.mkv", codec="libx264", width=33, height=17, fps=5, duration_s=0.4)
    with av.open(video.path) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv444p"


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="WebM cannot carry"):
        synth.write_video(tmp_path / "a.webm", codec="libx264")
    with pytest.raises(ValueError, match="container"):
        synth.write_video(tmp_path / "a.avi")
    with pytest.raises(ValueError, match="increasing"):
        synth.write_video(tmp_path / "a.mkv", frame_times=[0, 1, 1])
    with pytest.raises(ValueError, match="rotation"):
        synth.write_video(tmp_path / "a.mkv", rotation=45)
    with pytest.raises(ValueError, match="codec"):
        synth.write_video(tmp_path / "a.mkv", codec="mpeg2video")


def test_libx265_refuses_odd_and_tiny_sizes_instead_of_corrupting_memory(tmp_path):
    from yt8m.extractor import synth
    for width, height in ((35, 21), (40, 24)):
        with pytest.raises(ValueError, match="even width >= 64"):
            synth.write_video(tmp_path / "odd.mkv", None, codec="libx265", width=width,
                              height=height, fps=5, duration_s=1)
    assert not (tmp_path / "odd.mkv").exists()
