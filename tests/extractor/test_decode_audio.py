"""The audio track, decoded in the same pass as the video: 16 kHz mono float32,
t = 0 at the first video frame, status ok / absent / failed."""
from __future__ import annotations

import numpy as np
import pytest

from yt8m.extractor.audio_track import AudioDecoder
from yt8m.extractor.decode import DecodeError, iter_frames, sample_frames
from tests.media import corrupt_audio, timecodes

RATE = 16000
# One compressed audio frame (AAC: 1024 samples at 48 kHz; Opus: 20 ms) at 16 kHz.
FRAME = 1024 * RATE // 48000 + 1


def peak_hz(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.shape[0])))
    return float(np.fft.rfftfreq(wave.shape[0], 1 / RATE)[spectrum.argmax()])


@pytest.mark.parametrize("name,kwargs", [
    ("aac.mp4", {}),
    ("aac.mkv", {}),
    ("opus.webm", {"codec": "libvpx-vp9"}),
    ("opus.mkv", {"audio_codec": "libopus"}),
    ("stereo.mp4", {"audio_channels": 2}),
])
def test_tone_length_and_pitch(video_factory, name, kwargs):
    video = video_factory(name, fps=25, duration_s=3.0, audio=True, **kwargs)
    result = sample_frames(video.path, size=32, audio=True)
    audio = result.audio
    assert audio.status == "ok" and audio.sample_rate == RATE and audio.message is None
    assert audio.waveform.dtype == np.float32 and audio.waveform.ndim == 1
    assert abs(audio.waveform.shape[0] - 3.0 * RATE) <= FRAME
    assert abs(peak_hz(audio.waveform[RATE // 4:]) - 440.0) < 3.0
    # A 0.2-amplitude sine: RMS 0.2 / sqrt(2) (stereo channels are averaged, not summed).
    assert abs(float(np.sqrt(np.mean(audio.waveform[RATE // 4:] ** 2))) - 0.2 / np.sqrt(2)) < 0.01
    assert result.warnings == [] and len(result) == 3


def test_other_pitch(video_factory):
    video = video_factory("1k.mkv", fps=25, duration_s=2.0, audio=True, audio_hz=1000.0)
    assert abs(peak_hz(sample_frames(video.path, size=32, audio=True).audio.waveform) - 1000.0) < 3.0


def test_silence(video_factory):
    video = video_factory("quiet.mp4", fps=25, duration_s=2.0, audio=True, audio_hz=0.0)
    audio = sample_frames(video.path, size=32, audio=True).audio
    assert audio.status == "ok" and abs(audio.waveform.shape[0] - 2 * RATE) <= FRAME
    assert float(np.abs(audio.waveform).max()) < 1e-4


def test_audio_starting_late_is_zero_padded(video_factory):
    video = video_factory("late.mp4", fps=25, duration_s=3.0, audio=True, audio_start_s=0.5)
    audio = sample_frames(video.path, size=32, audio=True).audio
    # The encoder's priming moves the first packet one frame earlier (and the
    # resampler's filter a few samples).
    assert 0.5 - (FRAME + 32) / RATE <= audio.start_padding_s <= 0.5
    pad = int(audio.start_padding_s * RATE)
    assert not audio.waveform[:pad].any()
    assert abs(peak_hz(audio.waveform[pad + RATE // 10:]) - 440.0) < 3.0
    assert abs(audio.waveform.shape[0] - 3.0 * RATE) <= FRAME


def test_time_zero_is_the_first_video_frame(video_factory):
    # Both tracks start at 2.5 s in the container: the waveform starts at once.
    video = video_factory("offset.mkv", fps=25, duration_s=2.0, start_s=2.5, audio=True)
    audio = sample_frames(video.path, size=32, audio=True).audio
    assert audio.start_padding_s <= FRAME / RATE
    assert float(np.abs(audio.waveform[: RATE // 10]).max()) > 0.1


def test_cap_bounds_the_waveform(video_factory):
    video = video_factory("capped.mkv", fps=10, duration_s=8.0, audio=True, gop=20)
    result = sample_frames(video.path, size=32, audio=True, max_seconds=2.5)
    assert len(result) == 3 and result.audio.waveform.shape[0] == int(2.5 * RATE)


def test_no_audio_stream(video_factory):
    video = video_factory("mute.mp4", fps=25, duration_s=2.0)
    result = sample_frames(video.path, size=32, audio=True)
    assert result.audio.status == "absent" and result.audio.waveform is None
    assert result.warnings == []
    assert sample_frames(video.path, size=32).audio is None   # not asked for


# (AAC: an Opus decoder turns nearly any bytes into sound, so garbage Opus
# packets decode, as noise.)
@pytest.mark.parametrize("name,kwargs", [("bad.mp4", {}), ("bad.mkv", {"codec": "libx265"})])
def test_corrupt_audio_track_keeps_the_video(video_factory, tmp_path, name, kwargs):
    video = video_factory("good_" + name, fps=25, duration_s=3.0, audio=True, **kwargs)
    path = corrupt_audio(video.path, str(tmp_path / name))
    result = sample_frames(path, size=64, audio=True)
    assert result.audio.status == "failed" and result.audio.waveform is None
    assert "audio" in result.audio.message or "decod" in result.audio.message
    assert [w.kind for w in result.warnings] == ["audio"]
    assert timecodes(result.frames) == [0, 25, 50]
    np.testing.assert_array_equal(result.frames, sample_frames(path, size=64).frames)


def test_audio_does_not_change_the_video(video_factory):
    video = video_factory("both.mkv", fps=25, duration_s=4.0, audio=True, gop=25)
    with_audio = sample_frames(video.path, size=32, audio=True, thumbnails=2)
    without = sample_frames(video.path, size=32, skip_packets=False)
    np.testing.assert_array_equal(with_audio.frames, without.frames)
    assert with_audio.stats.packets_skipped > 0 and with_audio.stats.audio_packets > 0
    with iter_frames(video.path, size=32, audio=True) as stream:
        assert len(list(stream)) == 4
    assert stream.audio.status == "ok"


def test_bad_audio_rate(video_factory):
    video = video_factory("r.mp4", fps=5, duration_s=1)
    with pytest.raises(DecodeError, match="audio_rate") as e:
        sample_frames(video.path, audio=True, audio_rate=10)
    assert e.value.kind == "bad_argument"


class _Stream:
    class codec_context:
        name = "test"


class _Frame:
    """Stands in for a resampled frame: ``to_ndarray`` (1, n), pts in 1/16000."""

    def __init__(self, n, pts):
        self._data = np.ones((1, n), np.float32)
        self.pts, self.time_base = pts, __import__("fractions").Fraction(1, RATE)

    def to_ndarray(self):
        return self._data


def test_memory_stays_within_the_cap():
    decoder = AudioDecoder(_Stream(), RATE, max_seconds=2.0)
    decoder.set_origin(0.0)
    for i in range(100):   # 10 s of audio offered, 2 s kept
        decoder._drain([_Frame(1600, i * 1600)])
    assert decoder._buf.shape[0] == 2 * RATE and decoder.full()
    track = decoder.finish()
    assert track.status == "ok" and track.waveform.shape[0] == 2 * RATE
    # A gap inside the track stays zeros; a chunk before t = 0 is dropped.
    decoder = AudioDecoder(_Stream(), RATE, max_seconds=10.0)
    decoder.set_origin(1.0)
    decoder._drain([_Frame(8000, 0), _Frame(8000, 16000), _Frame(1000, 40000)])
    wave = decoder.finish().waveform
    assert wave.shape[0] == 25000 and wave[:8000].all() and not wave[8000:24000].any()


def test_the_track_feeds_the_vggish_front_end(video_factory):
    # One example per sampled second, on real audio (extractor.logmel's contract).
    from yt8m.extractor.logmel import waveform_to_examples
    video = video_factory("vggish.mp4", fps=25, duration_s=4.0, audio=True)
    result = sample_frames(video.path, size=32, audio=True)
    examples = waveform_to_examples(result.audio.waveform, result.times, result.audio.sample_rate)
    assert len(examples) == len(result) == 4
    assert examples.complete.all()
    silent = waveform_to_examples(None, result.times)
    assert not (examples.examples == silent.examples).all()
