"""GPU decoding: ``decode_device="cuda"`` gives the CPU decode's samples; without
a device it decodes on the CPU with one warning for the whole process."""
from __future__ import annotations

import warnings

import av
import numpy as np
import pytest

from yt8m.extractor import hwdecode
from yt8m.extractor.decode import DecodeError, sample_frames
from tests.media import timecodes


@pytest.fixture
def fresh_probe():
    hwdecode._reset_for_tests()
    yield
    hwdecode._reset_for_tests()


def test_without_a_device_the_cpu_decodes_with_one_warning(video_factory, fresh_probe, monkeypatch):
    monkeypatch.setattr(hwdecode, "_probe", lambda device: f"no usable {device} device (test)")
    a = video_factory("a.mp4", fps=10, duration_s=3)
    b = video_factory("b.mkv", codec="libx265", fps=10, duration_s=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [sample_frames(v.path, size=64, decode_device="cuda") for v in (a, b, a)]
    device_warnings = [w for w in caught if issubclass(w.category, hwdecode.DecodeDeviceWarning)]
    assert len(device_warnings) == 1
    message = str(device_warnings[0].message)
    assert "cuda" in message and "CPU" in message and "once per process" in message
    for video, result in zip((a, b, a), results):
        assert result.stats.device == "cpu" and "cuda" in result.stats.device_note
        np.testing.assert_array_equal(result.frames, sample_frames(video.path, size=64).frames)
        assert result.warnings == []
    assert timecodes(results[0].frames) == [0, 10, 20]


def test_the_probe_runs_once(video_factory, fresh_probe, monkeypatch):
    calls = []

    def probe(device):
        calls.append(device)
        return "absent (test)"

    monkeypatch.setattr(hwdecode, "_probe", probe)
    video = video_factory("c.mp4", fps=5, duration_s=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3):
            sample_frames(video.path, size=32, decode_device="cuda")
    assert calls == ["cuda"]


def test_this_machine_without_cuda_falls_back(video_factory, fresh_probe):
    if hwdecode.device_problem("cuda") is None:
        pytest.skip("a CUDA device is present: test_cuda_frames_equal_cpu_frames covers it")
    video = video_factory("d.mp4", fps=5, duration_s=2)
    with pytest.warns(hwdecode.DecodeDeviceWarning):
        result = sample_frames(video.path, size=32, decode_device="cuda")
    assert result.stats.device == "cpu" and "cuda" in result.stats.device_note
    np.testing.assert_array_equal(result.frames, sample_frames(video.path, size=32).frames)


def test_bad_device(video_factory):
    video = video_factory("e.mp4", fps=5, duration_s=1)
    with pytest.raises(DecodeError, match="decode_device") as e:
        sample_frames(video.path, decode_device="tpu")
    assert e.value.kind == "bad_argument"


@pytest.mark.parametrize("layout", ["nv12", "nv21"])
def test_device_layouts_repack_losslessly(video_factory, layout):
    # What a GPU decoder hands back (semi-planar) is repacked to what the CPU
    # decoder gives before the RGB conversion: the same RGB comes out.
    video = video_factory("f.mp4", width=96, height=64, fps=5, duration_s=1)
    with av.open(video.path) as container:
        frame = next(container.decode(video=0))
    device_like = frame.reformat(format=layout)
    repacked = hwdecode.software_frame(device_like)
    assert repacked.format.name == "yuv420p"
    for plane_a, plane_b in zip(frame.to_ndarray(), repacked.to_ndarray()):
        np.testing.assert_array_equal(plane_a, plane_b)
    np.testing.assert_array_equal(
        frame.reformat(width=32, height=32, format="rgb24").to_ndarray(),
        repacked.reformat(width=32, height=32, format="rgb24").to_ndarray())


@pytest.mark.skipif(hwdecode.device_problem("cuda") is not None,
                    reason=f"no CUDA device here ({hwdecode.device_problem('cuda')})")
@pytest.mark.parametrize("codec,name", [("libx264", "h264.mp4"), ("libx265", "hevc.mkv"),
                                        ("libvpx-vp9", "vp9.webm"), ("libsvtav1", "av1.mkv")])
def test_cuda_frames_equal_cpu_frames(video_factory, codec, name):
    video = video_factory(name, codec=codec, width=320, height=240, fps=25, duration_s=4, rotation=90)
    gpu = sample_frames(video.path, size=64, decode_device="cuda", thumbnails=2)
    cpu = sample_frames(video.path, size=64)
    np.testing.assert_array_equal(gpu.times, cpu.times)
    np.testing.assert_array_equal(gpu.frames, cpu.frames)
    np.testing.assert_array_equal(gpu.thumbnails.images,
                                  sample_frames(video.path, size=64, thumbnails=2).thumbnails.images)
    if codec in ("libx264", "libx265"):
        assert gpu.stats.device == "cuda", gpu.stats


def test_a_device_decode_error_decodes_again_on_the_cpu(video_factory, tmp_path, monkeypatch,
                                                        fresh_probe):
    # Stand-in for a GPU decoder that fails part way: the decode is marked as
    # running on "cuda" (it runs on the CPU here) and the stream turns to garbage.
    from tests.media import corrupt_packets
    from yt8m.extractor.decode import FrameStream
    original = FrameStream._open

    def open_as_cuda(self, threads):
        original(self, threads)
        if self._use_device == "cuda":
            self.stats.device = "cuda"

    monkeypatch.setattr(hwdecode, "_probe", lambda device: "absent (test)")
    monkeypatch.setattr(FrameStream, "_open", open_as_cuda)
    video = video_factory("good.mkv", fps=10, duration_s=6)
    path = corrupt_packets(video.path, str(tmp_path / "half.mkv"), from_packet=25)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = sample_frames(path, size=32, decode_device="cuda")
    cpu = sample_frames(path, size=32)
    assert result.stats.device == "cpu" and "decoded on the CPU" in result.stats.device_note
    np.testing.assert_array_equal(result.frames, cpu.frames)
    assert [w.kind for w in result.warnings] == [w.kind for w in cpu.warnings] == ["partial_decode"]
