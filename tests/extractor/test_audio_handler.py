"""VGGishModelHandler: direct calls and inside RunInference on the FnApiRunner."""
from __future__ import annotations

import numpy as np
import pytest

from tests.extractor import audio_support as S
from yt8m.extractor.audio_handler import AudioKey, VGGishModelHandler, keyed_examples
from yt8m.extractor.weights import WeightsError

ATOL = 2e-3


def test_run_inference_returns_one_embedding_per_example():
    handler = VGGishModelHandler("random", batch_size=4)
    model = handler.load_model()
    assert model is S.random_model()  # loaded through the per-process cache
    out = handler.run_inference(list(S.examples8()[:3]), model)
    assert len(out) == 3 and all(v.shape == (128,) and v.dtype == np.float32 for v in out)
    np.testing.assert_allclose(np.stack(out), S.random_embeddings()[:3], atol=ATOL, rtol=1e-4)
    assert handler.run_inference([], model) == []


def test_short_batches_are_padded_to_one_shape():
    shapes = []

    class Recorder:
        def predict(self, x):
            shapes.append(x.shape)
            return np.repeat(x[:, :1, :1].reshape(len(x), 1), 128, axis=1)

    handler = VGGishModelHandler("random", batch_size=4)
    batch = [np.full((96, 64), float(i), np.float32) for i in range(6)]
    out = handler.run_inference(batch, Recorder())
    assert shapes == [(4, 96, 64), (4, 96, 64)]                 # 6 = 4 + 2 padded to 4
    assert [float(v[0]) for v in out] == [0, 1, 2, 3, 4, 5]      # padding outputs dropped


def test_settings_and_info():
    handler = VGGishModelHandler("random", batch_size=16)
    assert handler.batch_elements_kwargs() == {"min_batch_size": 16, "max_batch_size": 16}
    assert handler.share_model_across_processes() is False
    assert VGGishModelHandler("random", share_model_across_processes=True
                              ).share_model_across_processes() is True
    assert handler.info["random"] is True and handler.info["name"] == "vggish"
    assert handler.get_num_bytes([np.zeros((96, 64), np.float32)] * 2) == 2 * 96 * 64 * 4
    with pytest.raises(ValueError, match="no inference_args"):
        handler.validate_inference_args({"training": True})


@pytest.mark.parametrize("kwargs, needle", [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 4, "min_batch_size": 5}, "min_batch_size"),
])
def test_bad_batch_settings_are_rejected(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        VGGishModelHandler("random", **kwargs)


def test_missing_weights_fail_at_construction():
    with pytest.raises(WeightsError, match="does not exist"):
        VGGishModelHandler("/nonexistent/vggish_model.ckpt")


def test_keyed_examples():
    keyed = keyed_examples("v", S.examples8()[:3])
    assert [k for k, _ in keyed] == [AudioKey("v", i, 3) for i in range(3)]
    with pytest.raises(ValueError, match="96, 64"):
        keyed_examples("v", np.zeros((2, 10, 10), np.float32))


def test_keyed_run_inference_in_a_test_pipeline():
    import apache_beam as beam
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that

    ex, emb = S.examples8(), S.random_embeddings()
    elements = keyed_examples("v1", ex[:3]) + keyed_examples("v2", ex[3:5])
    expected = {AudioKey("v1", i, 3): emb[i] for i in range(3)}
    expected.update({AudioKey("v2", i, 2): emb[3 + i] for i in range(2)})

    def check(results):
        got = dict(results)
        assert set(got) == set(expected)
        for key, vec in got.items():
            np.testing.assert_allclose(vec, expected[key], atol=ATOL, rtol=1e-4)

    with TestPipeline(runner="FnApiRunner") as p:
        out = (p | beam.Create(elements)
               | RunInference(KeyedModelHandler(VGGishModelHandler("random", batch_size=2))))
        assert_that(out, check)
