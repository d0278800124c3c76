"""ExtractFeatures and DecodeVideoFn on the FnApiRunner, with good and broken videos."""
from __future__ import annotations

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from yt8m.extractor.decode import sample_frames
from yt8m.extractor.handler import InceptionModelHandler
from yt8m.extractor.transforms import (AssembleVideoFn, BatchFailure, DecodeVideoFn, ExtractFeatures,
                                  ExtractResult, FrameKey, VideoMeta)
from yt8m.records import FailureRecord, Video, VideoFeatures

ATOL = 1e-4


def _videos(v):
    return [Video("a", v["a"], labels=(3, 1), split="train"),
            Video("b", v["b"]),
            Video("bad", v["bad"]),
            Video("gone", v["missing"])]


def test_extract_features_good_and_broken_videos(extract_videos, random_model):
    v = extract_videos
    expected = {}
    for vid in ("a", "b"):
        s = sample_frames(v[vid])
        expected[vid] = (random_model.predict(s.frames), s.times)
    assert [len(expected[k][1]) for k in ("a", "b")] == [3, 2]

    def check_features(items):
        assert all(isinstance(x, VideoFeatures) for x in items)
        got = {x.video_id: x for x in items}
        assert sorted(got) == ["a", "b"]
        for vid, (feats, times) in expected.items():
            out = got[vid]
            assert out.features.dtype == np.float32 and out.features.shape == (
                len(times), 2048)
            np.testing.assert_allclose(out.features, feats, atol=ATOL)
            np.testing.assert_array_equal(out.frame_times, times)
            assert out.frame_times.dtype == np.float64
            assert out.video.uri == v[vid] and out.video_id == vid
        # The video travels with its features untouched.
        assert got["a"].video.labels == (3, 1) and got["a"].video.split == "train"

    def check_failures(records):
        assert all(isinstance(r, FailureRecord) for r in records)
        by_id = {r.video_id: r for r in records}
        assert sorted(by_id) == ["bad", "gone"]
        assert all(r.stage == "decode" for r in records)
        assert by_id["gone"].kind == "missing" and v["missing"] in by_id["gone"].error
        assert by_id["bad"].kind == "not_video" and by_id["bad"].uri == v["bad"]

    p = TestPipeline(runner="FnApiRunner")
    res = p | beam.Create(_videos(v)) | ExtractFeatures("random", batch_size=4)
    assert isinstance(res, ExtractResult) and res["features"] is res.features
    assert_that(res.features, check_features, label="CheckFeatures")
    assert_that(res.failures, check_failures, label="CheckFailures")
    result = p.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed
                for c in result.metrics().query()["counters"]
                if c.key.metric.namespace == "yt8m"}
    assert counters["extract_decode_failures"] == 2
    assert counters["extract_videos_done"] == 2 and counters["extract_frames_done"] == 5


class _FailOnDarkFrames(InceptionModelHandler):
    """Fault injection: inference raises for batches holding an all-dark frame."""

    def run_inference(self, batch, model, inference_args=None):
        if any(int(np.asarray(f).max()) < 30 for f in batch):
            raise RuntimeError("simulated accelerator fault")
        return super().run_inference(batch, model, inference_args)


def test_failed_inference_becomes_model_failures_for_its_videos(extract_videos, tmp_path):
    from yt8m.extractor.synth import write_video
    dark = write_video(tmp_path / "dark.mp4", lambda i, t, h, w: np.full((h, w, 3), 5, np.uint8),
                       width=32, height=32, fps=5, duration_s=2.0)
    videos = [Video("a", extract_videos["a"]), Video("dark", str(dark.path))]
    with TestPipeline(runner="FnApiRunner") as p:
        res = p | beam.Create(videos) | ExtractFeatures(
            model_handler=_FailOnDarkFrames("random", batch_size=1))
        assert_that(res.features | beam.Map(lambda vf: (vf.video_id, vf.features.shape)),
                    equal_to([("a", (3, 2048))]), label="CheckFeatures")
        assert_that(res.failures | beam.Map(lambda r: (r.video_id, r.stage, r.kind,
                                                       "simulated accelerator fault" in r.error)),
                    equal_to([("dark", "model", "inference", True)]), label="CheckFailures")


class _LoggingHandler(InceptionModelHandler):
    """Appends ``call <number of frames>`` to a side file after each inference batch."""

    def __init__(self, log_path, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.log_path = str(log_path)

    def run_inference(self, batch, model, inference_args=None):
        out = super().run_inference(batch, model, inference_args)
        with open(self.log_path, "a") as f:
            f.write(f"call {len(batch)}\n")
        return out


def _log_emission(vf, log_path):
    with open(log_path, "a") as f:
        f.write(f"emit {vf.video_id} {vf.num_frames}\n")
    return vf


def test_videos_are_emitted_as_soon_as_their_last_frame_is_inferred(extract_videos, tmp_path):
    """No shuffle after inference: a video leaves before the bundle's last batch has run."""
    log_path = tmp_path / "events.log"
    videos = [Video("a", extract_videos["a"]), Video("b", extract_videos["b"])]
    with TestPipeline(runner="FnApiRunner") as p:
        res = p | beam.Create(videos) | ExtractFeatures(
            model_handler=_LoggingHandler(log_path, "random", batch_size=2))
        emitted = res.features | "LogEmission" >> beam.Map(_log_emission, str(log_path))
        assert_that(emitted | beam.Map(lambda vf: (vf.video_id, vf.features.shape)),
                    equal_to([("a", (3, 2048)), ("b", (2, 2048))]))
    events = [e.split() for e in log_path.read_text().splitlines()]
    calls = [i for i, e in enumerate(events) if e[0] == "call"]
    emits = [i for i, e in enumerate(events) if e[0] == "emit"]
    assert len(calls) == 3 and len(emits) == 2, events  # 5 frames in batches of 2
    assert emits[0] < calls[-1], f"every video waited for all of the bundle's inference: {events}"
    # ... and none before its own frames: frames inferred so far >= frames emitted so far.
    for i in emits:
        inferred = sum(int(e[1]) for e in events[:i] if e[0] == "call")
        assert inferred >= sum(int(e[2]) for e in events[:i + 1] if e[0] == "emit"), events


def test_features_are_bitwise_equal_whatever_the_batch_neighbours(extract_videos, tmp_path):
    """A resumed build batches a video differently; its features must not change by a bit."""
    def run(vids):
        with TestPipeline(runner="FnApiRunner") as p:
            res = (p | beam.Create([Video(k, extract_videos[k]) for k in vids])
                   | ExtractFeatures("random", batch_size=4))
            _ = res.features | beam.Map(
                lambda vf: np.save(str(tmp_path / f"{len(vids)}_{vf.video_id}.npy"), vf.features))

    run(["a", "b"])  # b0 shares a batch with a's frames, b1 is padded
    run(["b"])  # b alone: one batch, half padding
    together, alone = np.load(tmp_path / "2_b.npy"), np.load(tmp_path / "1_b.npy")
    assert together.shape == alone.shape == (2, 2048)
    assert np.array_equal(together, alone), np.abs(together - alone).max()


def test_assembler_orders_frames_and_reports_incomplete_videos():
    """Out-of-order frames, a 0-frame video, and videos still incomplete at the bundle's end."""
    vec = lambda x: np.full(2048, x, np.float32)  # noqa: E731

    def meta(vid, n):
        return (VideoMeta(vid), {"num_frames": n, "frame_times": np.arange(n, dtype=np.float64),
                                 "decode_warnings": (),
                                 "video": Video(vid, vid + ".mp4")})

    elements = [(FrameKey("v", 1, 2), vec(1)), meta("v", 2), (FrameKey("v", 0, 2), vec(0)),
                meta("empty", 0),
                meta("half", 2), (FrameKey("half", 0, 2), vec(0)),
                (FrameKey("orphan", 0, 3), vec(0)),
                meta("lost", 2), (FrameKey("lost", 0, 2), vec(0)),
                (FrameKey("lost", 1, 2), BatchFailure("model inference failed: boom"))]
    with TestPipeline(runner="FnApiRunner") as p:
        out = (p | beam.Create([elements]) | beam.FlatMap(lambda xs: xs)
               | beam.ParDo(AssembleVideoFn()).with_outputs("failures", main="features"))
        assert_that(out.features | beam.Map(lambda vf: (vf.video_id, vf.features[:, 0].tolist(),
                                                        vf.video.uri)),
                    equal_to([("v", [0.0, 1.0], "v.mp4"), ("empty", [], "empty.mp4")]),
                    label="CheckFeatures")
        assert_that(out.failures | beam.Map(lambda r: (r.video_id, r.stage,
                                                       r.error.split(" by the end")[0])),
                    equal_to([("half", "model",
                               "video 'half': got features for 1 of 2 sampled frames"),
                              ("orphan", "model", "video 'orphan': got features for 1 of 3 "
                                                  "sampled frames and no decode record"),
                              ("lost", "model", "model inference failed: boom")]),
                    label="CheckFailures")


def _run_decode_only(videos, frames=None, failures=None, meta=None, **kwargs):
    """Runs DecodeVideoFn alone and checks its outputs.

    ``frames``: [(video_id, index)] in any order; ``failures``: [(video_id,
    kind)]; ``meta``: [(video_id, num_frames, frame_times)].
    """
    with TestPipeline(runner="FnApiRunner") as p:
        dec = p | beam.Create(videos) | beam.ParDo(DecodeVideoFn(**kwargs)).with_outputs(
            "failures", main="frames")
        assert_that(dec.frames | "Frames" >> beam.Filter(lambda kv: isinstance(kv[0], FrameKey))
                    | beam.Map(lambda kv: (kv[0].video_id, kv[0].index, kv[0].count,
                                           kv[1].shape)),
                    equal_to([(v, i, n, (299, 299, 3)) for v, i, n in frames or []]),
                    label="CheckFrames")
        assert_that(dec.failures | beam.Map(lambda r: (r.video_id, r.kind)),
                    equal_to(failures or []), label="CheckFailures")
        assert_that(dec.frames | "Meta" >> beam.Filter(lambda kv: isinstance(kv[0], VideoMeta))
                    | beam.Map(lambda kv: (kv[0].video_id, kv[1]["num_frames"],
                                           tuple(kv[1]["frame_times"]))),
                    equal_to(meta or []), label="CheckMeta")


@pytest.mark.parametrize("prefetch", [0, 2])
def test_decoder_outputs_inline_and_prefetching(extract_videos, prefetch):
    _run_decode_only(
        _videos(extract_videos), prefetch=prefetch,
        frames=[("a", 0, 3), ("a", 1, 3), ("a", 2, 3), ("b", 0, 2), ("b", 1, 2)],
        failures=[("bad", "not_video"), ("gone", "missing")],
        meta=[("a", 3, (0.0, 1.0, 2.0)), ("b", 2, (0.0, 1.0))])


def test_decode_timeout_and_bad_records_become_failures(extract_videos):
    videos = [Video("a", extract_videos["a"]), Video("no_uri", ""), "junk"]
    _run_decode_only(videos, timeout_s=1e-9,
                     failures=[("a", "timeout"), ("no_uri", "bad_argument"),
                               (None, "bad_argument")])


@pytest.mark.parametrize("kwargs, needle", [
    ({}, "exactly one of weights"),
    ({"weights": "random", "model_handler": InceptionModelHandler("random")},
     "exactly one of weights"),
    ({"weights": "random", "batch_size": 0}, "batch_size"),
    ({"weights": "random", "fps": 0}, "fps"),
    ({"weights": "random", "max_seconds": -1}, "max_seconds"),
    ({"weights": "random", "decode_timeout_s": 0}, "decode_timeout_s"),
    ({"weights": "random", "on_decode_error": "skip"}, "on_decode_error"),
    ({"weights": "random", "prefetch": -1}, "prefetch"),
    ({"weights": "/nonexistent/model.keras"}, "does not exist"),
])
def test_bad_arguments_are_rejected(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        ExtractFeatures(**kwargs)


def test_applies_to_a_pcollection_only():
    with pytest.raises(TypeError, match="PCollection of Video records"):
        ExtractFeatures("random").expand([Video("a", "a.mp4")])
