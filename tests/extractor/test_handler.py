"""InceptionModelHandler: direct calls and inside RunInference on the FnApiRunner."""
from __future__ import annotations

import numpy as np
import pytest

from yt8m.extractor.handler import InceptionModelHandler
from yt8m.extractor.weights import WeightsError

ATOL = 1e-4


def test_run_inference_returns_one_vector_per_frame(random_model, frames4, random_features):
    handler = InceptionModelHandler("random", batch_size=4)
    model = handler.load_model()
    assert model is random_model  # loaded through the per-process cache
    out = handler.run_inference(list(frames4[:3]), model)
    assert len(out) == 3 and all(v.shape == (2048,) and v.dtype == np.float32 for v in out)
    np.testing.assert_allclose(np.stack(out), random_features[:3], atol=ATOL)
    assert handler.run_inference([], model) == []


def test_batching_and_sharing_settings():
    handler = InceptionModelHandler("random", batch_size=16)
    assert handler.batch_elements_kwargs() == {"min_batch_size": 16, "max_batch_size": 16}
    assert handler.share_model_across_processes() is False
    assert InceptionModelHandler("random", batch_size=8, min_batch_size=2,
                                 share_model_across_processes=True
                                 ).share_model_across_processes() is True
    assert handler.info["random"] is True and handler.info["source"] == "random"
    assert handler.get_num_bytes([np.zeros((299, 299, 3), np.uint8)] * 2) == 2 * 299 * 299 * 3


@pytest.mark.parametrize("kwargs, needle", [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 4, "min_batch_size": 5}, "min_batch_size"),
])
def test_bad_batch_settings_are_rejected(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        InceptionModelHandler("random", **kwargs)


def test_missing_weights_fail_at_construction():
    with pytest.raises(WeightsError, match="does not exist"):
        InceptionModelHandler("/nonexistent/weights.keras")


def test_inference_args_are_refused():
    with pytest.raises(ValueError, match="no inference_args"):
        InceptionModelHandler("random").validate_inference_args({"training": True})


def test_keyed_run_inference_on_fnapi_runner(frames4, random_features):
    import apache_beam as beam
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that

    keyed = [(("v1", 0), frames4[0]), (("v1", 1), frames4[1]), (("v2", 0), frames4[2])]
    expected = {("v1", 0): random_features[0], ("v1", 1): random_features[1],
                ("v2", 0): random_features[2]}

    def check(results):
        got = dict(results)
        assert set(got) == set(expected)
        for key, vec in got.items():
            np.testing.assert_allclose(vec, expected[key], atol=ATOL)

    with TestPipeline(runner="FnApiRunner") as p:
        out = (p | beam.Create(keyed)
               | RunInference(KeyedModelHandler(InceptionModelHandler("random", batch_size=2))))
        assert_that(out, check)


class _ShapeRecorder:
    """A stand-in network: records each input shape; feature = the frame's first 2048 bytes."""

    def __init__(self):
        self.shapes = []

    def predict(self, frames):
        self.shapes.append(frames.shape)
        return frames.reshape(len(frames), -1)[:, :2048].astype(np.float32)


@pytest.mark.parametrize("n, calls", [(1, 1), (3, 1), (4, 1), (9, 3)])
def test_network_always_sees_full_batches_and_padding_is_dropped(frames4, n, calls):
    handler = InceptionModelHandler("random", batch_size=4)
    model = _ShapeRecorder()
    batch = [frames4[i % 4] for i in range(n)]
    out = handler.run_inference(batch, model)
    assert model.shapes == [(4, 299, 299, 3)] * calls
    assert len(out) == n
    np.testing.assert_array_equal(
        np.stack(out), np.stack(batch).reshape(n, -1)[:, :2048].astype(np.float32))


def test_features_do_not_depend_on_batch_neighbours(random_model, frames4,
                                                    random_features):
    """A frame's features are bitwise equal alone, in a partial batch and in full batches."""
    handler = InceptionModelHandler("random", batch_size=4)
    f = frames4
    alone = handler.run_inference([f[0]], random_model)[0]
    partial = handler.run_inference([f[1], f[0]], random_model)[1]
    full = handler.run_inference([f[2], f[3], f[1], f[0]], random_model)[3]
    other = handler.run_inference([f[0], f[3], f[3], f[2]], random_model)[0]
    for name, vec in (("partial", partial), ("full", full), ("other neighbours", other)):
        assert np.array_equal(vec, alone), (
            f"{name}: max |diff| {np.abs(vec - alone).max()} vs the frame run alone")
    # And they are the network's features of that frame.
    np.testing.assert_allclose(alone, random_features[0], atol=ATOL)


# --------------------------------------------------------------------------- precision
def test_precision_is_resolved_at_construction_and_loaded(monkeypatch):
    from yt8m.extractor import precision as P
    handler = InceptionModelHandler("random", batch_size=2, precision="bfloat16")
    assert handler.precision == "bfloat16" and handler.info["precision"] == "bfloat16"
    monkeypatch.setattr(P, "device_kind", lambda **kw: "cpu")
    assert InceptionModelHandler("random", precision="auto").info["precision"] == "float32"
    with pytest.warns(DeprecationWarning):
        legacy = InceptionModelHandler("random", mixed_precision=True)
    assert legacy.precision == "float16"


def test_a_worker_unlike_the_launcher_runs_the_recorded_precision(monkeypatch, caplog):
    """`auto` is resolved once where the pipeline is built; workers follow the record."""
    import logging

    from yt8m.extractor import precision as P
    from yt8m.extractor import weights as W
    monkeypatch.setattr(P, "device_kind", lambda **kw: "cpu")
    handler = InceptionModelHandler("random", precision="auto")
    assert handler.precision == "float32"
    monkeypatch.setattr(P, "device_kind", lambda **kw: "cpu-bf16")
    monkeypatch.setattr(P, "VALIDATED", (P.Validation("bfloat16", "cpu-bf16", 0.01, 0.01, "t"),))
    loaded = []
    monkeypatch.setattr(W, "load_feature_model",
                        lambda spec, **kw: loaded.append(kw["precision"]) or "model")
    with caplog.at_level(logging.WARNING, logger="yt8m.extractor.handler"):
        assert handler.load_model() == "model"
    assert loaded == ["float32"]
    assert any("runs float32 as recorded" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- frame sizes
def test_fixed_size_weights_refuse_other_frame_sizes(random_model, frames4):
    handler = InceptionModelHandler("random", batch_size=2)
    assert handler.input_size == 299
    with pytest.raises(ValueError, match="decode with size=299"):
        handler.run_inference([frames4[0], frames4[1, :120, :160]], random_model)


def test_frame_weight_counts_299x299_equivalents():
    handler = InceptionModelHandler("random")
    assert handler.frame_weight(np.zeros((299, 299, 3), np.uint8)) == 1
    assert handler.frame_weight(np.zeros((48, 64, 3), np.uint8)) == 1
    assert handler.frame_weight(np.zeros((1080, 1920, 3), np.uint8)) == 24


def test_graph_handler_takes_mixed_decoded_sizes_in_one_batch(graph_file, graph_reference):
    """yt8m-graph: frames of any sizes share a batch, no padding, results in order, and a
    frame's features are bitwise the same alone or among other frames."""
    path, gd = graph_file
    handler = InceptionModelHandler(f"yt8m-graph:{path}", batch_size=4)
    assert handler.input_size is None and handler.precision == "float32"
    model = handler.load_model()
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, shape, dtype=np.uint8)
              for shape in ((90, 160, 3), (299, 299, 3), (90, 160, 3), (240, 180, 3),
                            (37, 50, 3))]
    calls = []
    real_predict = model.predict

    class Spy:
        def predict(self, x):
            calls.append(x.shape)
            return real_predict(x)

    out = handler.run_inference(frames, Spy())
    assert len(out) == 5 and all(v.shape == (2048,) for v in out)
    ref = np.concatenate([graph_reference(gd, f[None]) for f in frames])
    np.testing.assert_allclose(np.stack(out), ref, atol=1e-5)
    assert sorted(calls) == sorted([(2, 90, 160, 3), (1, 299, 299, 3), (1, 240, 180, 3),
                                    (1, 37, 50, 3)])
    alone = handler.run_inference([frames[2]], model)[0]
    assert np.array_equal(alone, out[2])
