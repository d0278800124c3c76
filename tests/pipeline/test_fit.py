"""pipeline.fit: the build's fit stage is compression's deterministic Beam fit on the train split.

The fit's maths and order-independence are tested in tests/compression; here:
the stage keeps only train frames, gives the same bytes whatever the arrival
order, agrees with the single-process fit, and turns "too few frames" into
"nothing to fit" rather than an error.
"""
from __future__ import annotations

import pickle

import apache_beam as beam
import numpy as np
import pytest

from yt8m.compression.pca import PCAWhitening
from yt8m.pipeline.fit import FitCompression, held_out_frames, train_frames
from yt8m.pipeline.runner import pipeline_options
from yt8m.records import Video, VideoFeatures

D = 16


def _features(n_videos, seed, splits=("train", "train", "validate")):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_videos):
        x = rng.normal(size=(int(rng.integers(1, 6)), D)).astype(np.float16).astype(np.float32)
        video = Video(f"v{i:03d}", f"/videos/v{i:03d}.mp4", split=splits[i % len(splits)])
        out.append(VideoFeatures(video, x, np.arange(len(x), dtype=np.float64)))
    return out


def _fit(items, tmp_path, name, quantizer="lloyd", k=4):
    path = tmp_path / f"{name}.pkl"

    def save(pca, q):
        path.write_bytes(pickle.dumps((pca, q)))

    with beam.Pipeline(options=pipeline_options([])) as p:
        fitted = (p | beam.Create(items, reshuffle=True) | FitCompression(k, quantizer))
        _ = fitted["pca"] | beam.Map(save, beam.pvalue.AsSingleton(fitted["quantizer"]))
    return pickle.loads(path.read_bytes())


def test_fit_is_bitwise_independent_of_arrival_order_and_uses_train_frames_only(tmp_path):
    items = _features(30, seed=0)
    pca_a, q_a = _fit(items, tmp_path, "a")
    pca_b, q_b = _fit(items[::-1], tmp_path, "b")
    assert pca_a.mean.tobytes() == pca_b.mean.tobytes()
    assert pca_a.eigenvecs.tobytes() == pca_b.eigenvecs.tobytes()
    assert q_a.levels.tobytes() == q_b.levels.tobytes()
    # The same PCA, to float tolerance, as a single-process fit of the train frames only.
    train = np.concatenate([vf.features for vf in items if vf.video.split == "train"])
    ref = PCAWhitening.fit([train.astype(np.float64)], n_components=4)
    np.testing.assert_allclose(pca_a.mean, ref.mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.abs(pca_a.eigenvals), np.abs(ref.eigenvals), rtol=1e-5,
                               atol=1e-6)


def test_uniform_quantizer_reads_no_frames_and_is_the_released_codebook(tmp_path):
    from yt8m.compression.quantize import Quantizer
    _, q = _fit(_features(10, seed=1), tmp_path, "u", quantizer="uniform")
    assert q.method == "uniform"
    assert q.levels.tobytes() == Quantizer.uniform().levels.tobytes()


def test_too_few_train_frames_is_nothing_to_fit_not_an_error(tmp_path):
    one = _features(1, seed=2, splits=("train",))
    one = [one[0].replace(features=one[0].features[:1])]
    pca, q = _fit(one + _features(3, seed=3, splits=("validate",)), tmp_path, "none")
    assert pca is None and q is None


def test_stage_helpers_route_frames_by_split():
    vf = _features(1, seed=4, splits=("validate",))[0]
    assert list(train_frames(vf, "train")) == []
    (vid, split, x), = list(held_out_frames(vf))
    assert (vid, split) == ("v000", "validate") and x is vf.features


@pytest.mark.parametrize("kwargs,match", [
    ({"quantizer": "median"}, "--quantizer"),
    ({"n_components": 0}, "n_components"),
])
def test_fit_stage_validates_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FitCompression(**kwargs)
