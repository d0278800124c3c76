"""ExtractFeatures with audio: VGGish RunInference beside Inception in one fused
stage, on real AAC and Opus tracks made with PyAV, and videos without sound."""
from __future__ import annotations

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from tests.media import corrupt_audio
from yt8m.extractor.decode import sample_frames
from yt8m.extractor.logmel import waveform_to_examples
from yt8m.extractor.transforms import ExtractFeatures
from yt8m.extractor.vggish import load_audio_model
from yt8m.records import FailureRecord, Video


@pytest.fixture(scope="module")
def sound_videos(tmp_path_factory):
    from tests.media import write_video
    d = tmp_path_factory.mktemp("sound")
    aac = write_video(d / "aac.mp4", width=64, height=48, fps=10, duration_s=3.0, audio=True).path
    opus = write_video(d / "opus.mkv", width=64, height=48, fps=10, duration_s=2.0, audio=True,
                       audio_codec="libopus", audio_hz=1000.0).path
    mute = write_video(d / "mute.mp4", width=64, height=48, fps=10, duration_s=2.0).path
    broken = corrupt_audio(aac, str(d / "broken.mp4"))
    return {"aac": aac, "opus": opus, "mute": mute, "broken": broken}


class _Sink(beam.DoFn):
    """Collects a PCollection in this process (the FnApiRunner runs in it; the
    class is pickled by reference, so its dict is shared)."""
    got: dict = {}

    def __init__(self, name):
        self.name = name

    def process(self, x):
        _Sink.got.setdefault(self.name, []).append(x)


def _run(videos, audio, **kwargs):
    _Sink.got = {}
    p = TestPipeline(runner="FnApiRunner")
    res = (p | beam.Create([Video(k, v) for k, v in videos.items()])
           | ExtractFeatures("random", batch_size=4, audio=audio, **kwargs))
    _ = res.features | "Features" >> beam.ParDo(_Sink("features"))
    _ = res.failures | "Failures" >> beam.ParDo(_Sink("failures"))
    result = p.run()
    result.wait_until_finish()
    out = {"features": [], "failures": [], **_Sink.got}
    out["counters"] = {c.key.metric.name: c.committed
                       for c in result.metrics().query()["counters"]
                       if c.key.metric.namespace == "yt8m"}
    return out


def test_optional_writes_audio_for_sound_and_flagged_zeros_without(sound_videos):
    out = _run(sound_videos, "optional", audio_weights="random")
    got = {x.video_id: x for x in out["features"]}
    assert sorted(got) == ["aac", "broken", "mute", "opus"] and not out["failures"]
    model = load_audio_model("random")
    for vid in ("aac", "opus"):
        s = sample_frames(sound_videos[vid], audio=True)
        want = model.predict(waveform_to_examples(s.audio.waveform, s.times).examples)
        a = got[vid].audio
        assert a.dtype == np.float32 and a.shape == (len(got[vid].features), 128)
        np.testing.assert_allclose(a, want, atol=1e-4)
        assert not [w for w in got[vid].decode_warnings if w.kind == "audio"]
    assert not np.allclose(got["aac"].audio, got["opus"].audio[:1])
    for vid in ("mute", "broken"):
        v = got[vid]
        assert v.audio.shape == (len(v.features), 128) and not v.audio.any()
        assert [w.kind for w in v.decode_warnings].count("audio") == 1
    c = out["counters"]
    assert c["audio_videos_with_features"] == 2 and c["audio_examples_done"] == 5
    assert c["audio_missing_absent"] == 1 and c["audio_missing_failed"] == 1


def test_required_sends_videos_without_sound_to_failures(sound_videos):
    out = _run({k: sound_videos[k] for k in ("aac", "mute", "broken")}, "required",
               audio_weights="random")
    assert [x.video_id for x in out["features"]] == ["aac"]
    fails = {r.video_id: r for r in out["failures"]}
    assert sorted(fails) == ["broken", "mute"]
    assert all(isinstance(r, FailureRecord) and r.stage == "decode" for r in fails.values())
    assert fails["mute"].kind == "audio_absent" and fails["broken"].kind == "audio_failed"
    assert "--audio optional" in fails["mute"].error


def test_without_audio_weights_nothing_changes(sound_videos):
    out = _run({"aac": sound_videos["aac"]}, "optional")
    assert out["features"][0].audio is None and "audio_videos_with_features" not in out["counters"]


def test_bad_audio_mode():
    with pytest.raises(ValueError, match="audio must be 'optional' or 'required'"):
        ExtractFeatures("random", audio_weights="random", audio="off")
