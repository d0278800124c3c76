"""extractor.decode on bad inputs: each is a DecodeError of the right kind whose
message names the file and says what to do, or (partial decodes) the frames
decoded so far with a warning, as docs/decoding.md states."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from yt8m.extractor.decode import DecodeError, DecodeTimeout, sample_frames
from tests.media import (corrupt_packets, retime_packets, timecodes, truncate_file, write_audio_only,
                         write_random_bytes, write_still_image, write_text)

SIZE = 32


def fails(uri, kind, *words, **kwargs):
    with pytest.raises(DecodeError) as e:
        sample_frames(uri, size=SIZE, **kwargs)
    assert e.value.kind == kind, str(e.value)
    message = str(e.value)
    assert str(uri) in message
    for word in words:
        assert word in message, message
    return e.value


def test_missing_file(tmp_path):
    fails(str(tmp_path / "nope.mp4"), "missing", "not found", "manifest")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode; "
                    "the remote test below covers permission errors")
def test_unreadable_local_file(video_factory):
    video = video_factory("locked.mp4", fps=5, duration_s=1)
    os.chmod(video.path, 0)
    try:
        fails(video.path, "permission", "permission denied", "readable")
    finally:
        os.chmod(video.path, 0o644)


def test_unreadable_remote_file(video_factory, remote_fs):
    video = video_factory("remote/locked.mp4", fps=5, duration_s=1)
    remote_fs.root = os.path.dirname(video.path)
    uri = remote_fs.uri("locked.mp4")
    remote_fs.faults[uri] = {"permission": True}
    fails(uri, "permission", "permission denied", "read access")


def test_missing_remote_file(remote_fs):
    fails(remote_fs.uri("nope.mp4"), "missing", "not found")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    fails(str(path), "empty", "0 bytes")


def test_empty_remote_file(remote_fs):
    with open(os.path.join(remote_fs.root, "empty.webm"), "wb"):
        pass
    fails(remote_fs.uri("empty.webm"), "empty", "0 bytes")


@pytest.mark.parametrize("maker,name", [(write_random_bytes, "random.mp4"),
                                        (write_text, "notes.mp4")])
def test_not_a_video(tmp_path, maker, name):
    path = maker(str(tmp_path / name))
    fails(path, "not_video", "cannot read this as a video", "remove it from the manifest")


def test_directory(tmp_path):
    fails(str(tmp_path), "not_video", "directory")


def test_truncated_mp4_without_index(video_factory, tmp_path):
    # mp4 writes its index (moov) at the end: cut, nothing can be read.
    video = video_factory("whole.mp4", fps=10, duration_s=3)
    path = truncate_file(video.path, str(tmp_path / "cut.mp4"), 0.6)
    fails(path, "not_video", "truncated")


def test_truncated_mkv_keeps_frames_and_warns(video_factory, tmp_path):
    video = video_factory("whole.mkv", fps=10, duration_s=8)
    path = truncate_file(video.path, str(tmp_path / "cut.mkv"), 0.5)
    result = sample_frames(path, size=SIZE)
    whole = sample_frames(video.path, size=SIZE)
    n = len(result)
    assert 1 <= n < len(whole) == 8
    # The kept samples are exactly those of the whole file.
    assert timecodes(result.frames) == timecodes(whole.frames)[:n] == [10 * k for k in range(n)]
    assert [w.kind for w in result.warnings] == ["truncated"]
    assert "truncated" in result.warnings[0].message
    fails(path, "truncated", "declares", "re-download", on_error="fail")


def test_audio_only(tmp_path):
    path = write_audio_only(str(tmp_path / "song.m4a"))
    fails(path, "no_video_stream", "no video stream", "audio")


@pytest.mark.parametrize("name,fmt", [("picture.png", "png"), ("picture.mp4", "jpg")])
def test_still_image(tmp_path, name, fmt):
    path = write_still_image(str(tmp_path / name), image_format=fmt)
    fails(path, "still_image", "still image", "not a video")


def test_zero_decodable_frames(video_factory, tmp_path):
    video = video_factory("good.mkv", fps=10, duration_s=2)
    path = corrupt_packets(video.path, str(tmp_path / "garbage.mkv"), from_packet=0)
    fails(path, "no_frames", "no frame", "corrupt")


def test_stream_that_fails_part_way_keeps_decoded_frames(video_factory, tmp_path):
    # Packets from 2.5 s on are garbage: the frames before are kept, with a warning.
    video = video_factory("good.mkv", fps=10, duration_s=6)
    path = corrupt_packets(video.path, str(tmp_path / "half.mkv"), from_packet=25)
    result = sample_frames(path, size=SIZE)
    assert timecodes(result.frames) == [0, 10, 20]
    np.testing.assert_allclose(result.times, [0, 1, 2])
    assert [w.kind for w in result.warnings] == ["partial_decode"]
    assert "decoding stopped" in result.warnings[0].message
    fails(path, "read_error", "decoding failed", on_error="fail")


def test_connection_dropping_part_way(video_factory, remote_fs):
    video = video_factory("remote/long.mkv", fps=10, duration_s=20)
    remote_fs.root = os.path.dirname(video.path)
    uri = remote_fs.uri("long.mkv")
    whole = sample_frames(uri, size=SIZE)
    remote_fs.faults[uri] = {"fail_after": os.path.getsize(video.path) // 2}
    result = sample_frames(uri, size=SIZE)
    n = len(result)
    assert 3 <= n < len(whole) == 20
    np.testing.assert_array_equal(result.frames, whole.frames[:n])
    assert result.warnings[0].kind == "partial_decode"
    assert "ConnectionResetError" in result.warnings[0].message
    assert "kept" in result.warnings[0].message
    fails(uri, "read_error", "ConnectionResetError", "retry", on_error="fail")
    # Failing before anything was decoded is an error whatever on_error says.
    remote_fs.faults[uri] = {"fail_after": 100}
    fails(uri, "read_error", "ConnectionResetError")


def test_timeout_stops_a_slow_remote_read(video_factory, remote_fs):
    video = video_factory("remote/slow.mkv", fps=10, duration_s=20)
    remote_fs.root = os.path.dirname(video.path)
    uri = remote_fs.uri("slow.mkv")
    # Each read sleeps longer than the whole budget: the second read finds the
    # deadline passed, however loaded the machine is.
    remote_fs.faults[uri] = {"delay_s": 0.3}
    error = fails(uri, "timeout", "timeout_s=0.1", timeout_s=0.1)
    assert isinstance(error, DecodeTimeout)


def test_timeout_between_packets_of_a_local_file(video_factory):
    video = video_factory("local.mkv", fps=10, duration_s=3)
    error = fails(video.path, "timeout", "stopped", timeout_s=0.0)
    assert isinstance(error, DecodeTimeout)
    assert len(sample_frames(video.path, size=SIZE, timeout_s=60.0)) == 3


def test_copy_with_wrong_extension_still_decodes(video_factory, tmp_path):
    # FFmpeg probes content, not names: a WebM named .mp4 is a good video.
    video = video_factory("real.webm", codec="libvpx-vp9", fps=5, duration_s=2.2)
    path = str(tmp_path / "misnamed.mp4")
    shutil.copy(video.path, path)
    assert timecodes(sample_frames(path, size=64).frames) == [0, 5, 10]


def test_non_monotonic_timestamps_skip_the_frame_that_goes_back(video_factory, tmp_path):
    video = video_factory("intra.mkv", fps=10, duration_s=2, options={"g": "1", "bframes": "0"})
    # Packet 4 claims 1.0 s after packet 3 claimed 1.5 s.
    path = retime_packets(video.path, str(tmp_path / "nonmono.mkv"),
                          [0.0, 0.1, 0.2, 1.5, 1.0, 2.0, 2.1, 3.0, 3.3, 3.9])
    result = sample_frames(path, size=64)
    assert timecodes(result.frames) == [0, 2, 5, 7]
    np.testing.assert_allclose(result.source_times, [0.0, 0.2, 2.0, 3.0], atol=2e-3)
    assert [w.kind for w in result.warnings] == ["non_monotonic"]
    assert result.warnings[0].message == ("1 frames had timestamps earlier than the frame before "
                                          "them (non-monotonic) and were skipped")
