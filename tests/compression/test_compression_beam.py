"""The Beam CombineFns: directly (pickled, merged) and on the FnApiRunner."""
import pickle

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that

from yt8m.compression import PCAWhitening, Quantizer
from yt8m.compression.beam import FitPCA, FitQuantizer, PCAFitFn, QuantizerFitFn
from yt8m.compression.codec import whiten_frames
from yt8m.pipeline.runner import pipeline_options

D, K = 20, 8


@pytest.fixture
def videos(rng, relu_features):
    mix = rng.standard_normal((D, D)) / np.sqrt(D)
    sizes = [1, 5, 40, 0, 17, 120, 3, 60, 9, 33, 2, 75]
    frames = [relu_features(rng, n, D, mix) for n in sizes]
    frames.append(relu_features(rng, 1, D, mix)[0])  # a single (D,) vector
    return frames


def _as_batches(videos):
    return [np.atleast_2d(v) for v in videos]


def test_pca_fn_pickled_and_merged_equals_single_process(videos):
    fn = pickle.loads(pickle.dumps(PCAFitFn(n_components=K)))
    accs = []
    for part in (videos[:4], videos[4:9], videos[9:]):
        acc = fn.create_accumulator()
        for v in part:
            acc = fn.add_input(acc, v)
        accs.append(pickle.loads(pickle.dumps(fn.compact(acc))))
    got = fn.extract_output(fn.merge_accumulators(accs[::-1]))
    want = PCAWhitening.fit(_as_batches(videos), n_components=K)
    np.testing.assert_allclose(got.eigenvecs, want.eigenvecs, atol=1e-9)
    np.testing.assert_allclose(got.eigenvals, want.eigenvals, rtol=1e-9)


def test_quantizer_fn_uniform_and_arguments():
    fn = QuantizerFitFn(method="uniform")
    acc = fn.add_input(fn.create_accumulator(), np.ones((2, 3)))
    np.testing.assert_array_equal(fn.extract_output(acc).levels, Quantizer.uniform().levels)
    with pytest.raises(ValueError, match="method must be one of"):
        QuantizerFitFn(method="nope")
    with pytest.raises(ValueError, match="n_components"):
        PCAFitFn(n_components=0)
    with pytest.raises(ValueError, match="fanout"):
        FitPCA(fanout=0)


def test_fits_on_the_fnapi_runner_equal_the_single_process_fit(videos):
    want_pca = PCAWhitening.fit(_as_batches(videos), n_components=K)
    want_q = Quantizer.fit([whiten_frames(v, want_pca) for v in _as_batches(videos)])

    def pca_matches(got):
        assert len(got) == 1
        np.testing.assert_allclose(got[0].mean, want_pca.mean, rtol=1e-10)
        np.testing.assert_allclose(got[0].eigenvecs, want_pca.eigenvecs, atol=1e-8)
        np.testing.assert_allclose(got[0].eigenvals, want_pca.eigenvals, rtol=1e-8)

    def quantizer_matches(got):
        assert len(got) == 1 and got[0].method == "lloyd"
        np.testing.assert_allclose(got[0].levels, want_q.levels, atol=1e-6)
        np.testing.assert_allclose(got[0].boundaries, want_q.boundaries, atol=1e-6)
        assert got[0].info["n_values"] == want_q.info["n_values"]

    def is_uniform(got):
        assert len(got) == 1
        np.testing.assert_array_equal(got[0].levels, Quantizer.uniform().levels)

    with beam.Pipeline(options=pipeline_options([])) as p:
        # Reshuffle + fanout: several bundles, several accumulators, real merges.
        frames = (p | "Videos" >> beam.Create(videos, reshuffle=False)
                  | "Spread" >> beam.Reshuffle())
        pca = frames | "FitPCA" >> FitPCA(n_components=K, fanout=3)
        lloyd = frames | "FitLloyd" >> FitQuantizer(pca=pca, fanout=2)
        uniform = frames | "FitUniform" >> FitQuantizer(method="uniform")
        assert_that(pca, pca_matches, label="CheckPCA")
        assert_that(lloyd, quantizer_matches, label="CheckLloyd")
        assert_that(uniform, is_uniform, label="CheckUniform")
