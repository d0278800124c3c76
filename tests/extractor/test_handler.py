"""InceptionModelHandler: direct calls and inside RunInference on the FnApiRunner."""
from __future__ import annotations

import numpy as np
import pytest

from extractor.handler import InceptionModelHandler
from extractor.weights import WeightsError

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
