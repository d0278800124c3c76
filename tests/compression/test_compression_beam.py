"""The Beam shells on the FnApiRunner: the same artifacts, bit for bit, however
the input is ordered, bundled or split into PCollections; equal to the NumPy
core's result bit for bit and to a plain NumPy fit to float tolerance."""
import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from yt8m.compression import HistogramCombiner, PCAWhitening, Quantizer
from yt8m.compression.beam import (FitPCA, FitPCAAndQuantizer, FitQuantizer,
                                   HeldOutQualityReport)
from yt8m.compression.codec import whiten_frames
from yt8m.compression.exact_moments import exact_moments
from yt8m.compression.heldout import FrameSampleCombiner
from yt8m.compression.quality import sample_report
from yt8m.pipeline.runner import pipeline_options

D, K = 16, 8
LAYOUT = {"unit_rows": 13, "bucket_frames": 90}   # several buckets and units, one large


@pytest.fixture
def data(rng, relu_features):
    # A decaying spectrum, so that a plain fit's eigenvectors are well defined.
    mix = rng.standard_normal((D, D)) * (0.8 ** np.arange(D))[:, None]
    sizes = [1, 5, 40, 0, 17, 120, 3, 60, 9, 33, 2, 75, 11, 6, 28]
    train = [(f"tr{i:02d}", relu_features(rng, n, D, mix).astype(np.float32))
             for i, n in enumerate(sizes)]
    train.append(("tr-vector", relu_features(rng, 1, D, mix)[0].astype(np.float32)))
    held = [(f"ho{i:02d}", "validate" if i % 3 else "test",
             relu_features(rng, 7, D, mix).astype(np.float32)) for i in range(12)]
    held.append(("tr00", "train", train[0][1]))
    return train, held


def _core(train, held, method="lloyd", max_frames=50):
    """The NumPy core alone: what the shells must reproduce bit for bit."""
    moments, stats = exact_moments(train, **LAYOUT)
    pca = PCAWhitening.from_moments(moments, K, 1e-4, allow_rank_deficient=True)
    if method == "uniform":
        quantizer = Quantizer.uniform()
    else:
        hc = HistogramCombiner()
        acc = hc.create_accumulator()
        for _, f in train:
            hc.add_input(acc, whiten_frames(np.atleast_2d(f), pca))
        quantizer = Quantizer.from_histogram(hc.extract_output(acc))
    sc = FrameSampleCombiner(max_frames)
    sacc = sc.create_accumulator()
    for vid, split, f in held:
        sc.add_input(sacc, vid, split, f)
    return pca, quantizer, sample_report(sc.extract_output(sacc), pca, quantizer)


def _equal_pca(want):
    def check(got):
        assert len(got) == 1
        for a in ("mean", "eigenvecs", "eigenvals"):
            assert np.array_equal(getattr(got[0], a), getattr(want, a)), a
        assert got[0].info["n_frames"] == want.info["n_frames"]
    return check


def _equal_quantizer(want):
    def check(got):
        assert len(got) == 1 and got[0].method == want.method
        assert np.array_equal(got[0].levels, want.levels)
        assert np.array_equal(got[0].boundaries, want.boundaries)
    return check


def _equal_report(want):
    def check(got):
        assert got == [want]
    return check


def test_fits_and_report_are_bit_identical_however_the_input_arrives(data):
    train, held = data
    pca, lloyd, report = _core(train, held)
    _, uniform, uniform_report = _core(train, held, "uniform")
    thirds = [train[i::3] for i in range(3)]
    with TestPipeline(options=pipeline_options([])) as p:
        variants = {
            "InOrder": p | "TrainInOrder" >> beam.Create(train, reshuffle=False),
            "Reversed": (p | "TrainReversed" >> beam.Create(train[::-1])
                         | "Spread" >> beam.Reshuffle()),
            "ThreeSources": ([p | f"Third{i}" >> beam.Create(t) for i, t in enumerate(thirds)]
                             | "Join" >> beam.Flatten() | "Respread" >> beam.Reshuffle()),
        }
        heldout = p | "HeldOut" >> beam.Create(held[::-1]) | "SpreadHeldOut" >> beam.Reshuffle()
        for name, frames in variants.items():
            fit = frames | f"Fit{name}" >> FitPCAAndQuantizer(K, "lloyd", **LAYOUT)
            assert_that(fit["pca"], _equal_pca(pca), label=f"PCA{name}")
            assert_that(fit["quantizer"], _equal_quantizer(lloyd), label=f"Lloyd{name}")
            rep = heldout | f"Quality{name}" >> HeldOutQualityReport(
                fit["pca"], fit["quantizer"], max_frames=50)
            assert_that(rep, _equal_report(report), label=f"Report{name}")
        fit_u = variants["Reversed"] | "FitUniform" >> FitPCAAndQuantizer(K, "uniform",
                                                                          **LAYOUT)
        assert_that(fit_u["quantizer"], _equal_quantizer(uniform), label="Uniform")
        rep_u = heldout | "QualityUniform" >> HeldOutQualityReport(
            fit_u["pca"], fit_u["quantizer"], max_frames=50)
        assert_that(rep_u, _equal_report(uniform_report), label="ReportUniform")
    assert report["n_frames"] == 50 and set(report["methods"]) == {"lloyd", "uniform"}


def test_the_fit_agrees_with_a_plain_numpy_fit(data):
    train, held = data
    pca, lloyd, _ = _core(train, held)
    x = np.concatenate([np.atleast_2d(f) for _, f in train]).astype(np.float16)
    x = x.astype(np.float64)
    w, v = np.linalg.eigh(np.cov(x.T))
    w, v = w[::-1][:K], v[:, ::-1][:, :K]
    np.testing.assert_allclose(pca.mean, x.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(pca.eigenvals, w, rtol=1e-10)
    np.testing.assert_allclose(np.abs(np.sum(pca.eigenvecs * v, axis=0)), 1.0, rtol=1e-8)
    plain = Quantizer.fit([whiten_frames(x, pca)])
    np.testing.assert_allclose(lloyd.levels, plain.levels, atol=1e-5)
    assert lloyd.info["n_values"] == plain.info["n_values"] == len(x) * K


def test_too_few_train_frames_is_nothing_to_fit(data):
    _, held = data
    one_frame = [("only", np.ones((1, D), np.float32)), ("empty", np.zeros((0, D), np.float32))]

    def is_none(got):
        assert got == [None]

    def says_nothing_fit(got):
        assert len(got) == 1 and "nothing was fit" in got[0]["note"]

    with TestPipeline(options=pipeline_options([])) as p:
        empty = p | "NoTrain" >> beam.Create([], reshuffle=False).with_output_types(tuple)
        one = p | "OneFrame" >> beam.Create(one_frame)
        heldout = p | "HeldOut" >> beam.Create(held)
        for name, frames in (("Empty", empty), ("One", one)):
            fit = frames | f"Fit{name}" >> FitPCAAndQuantizer(K)
            assert_that(fit["pca"], is_none, label=f"NoPCA{name}")
            assert_that(fit["quantizer"], is_none, label=f"NoQuantizer{name}")
            rep = heldout | f"Quality{name}" >> HeldOutQualityReport(fit["pca"],
                                                                     fit["quantizer"])
            assert_that(rep, says_nothing_fit, label=f"NoReport{name}")


def test_a_broken_video_stops_the_fit_naming_it():
    bad = np.ones((3, D), np.float32)
    bad[2, 0] = np.inf
    with pytest.raises(Exception, match=r"video 'broken'.*NaN/Inf after float16 rounding"):
        with TestPipeline(options=pipeline_options([])) as p:
            _ = (p | beam.Create([("fine", np.ones((4, D), np.float32)), ("broken", bad)])
                 | FitPCA(K))


@pytest.mark.parametrize("make,match", [
    (lambda: FitPCA(n_components=0), "n_components"),
    (lambda: FitPCA(epsilon=-1.0), "epsilon"),
    (lambda: FitPCA(min_frames=1), "min_frames"),
    (lambda: FitPCA(unit_rows=0), "unit_rows"),
    (lambda: FitPCA(bucket_frames=2.5), "bucket_frames"),
    (lambda: FitQuantizer(None), "needs the fitted PCA"),
    (lambda: FitQuantizer(object(), method="nope"), "method must be one of"),
    (lambda: FitQuantizer(object(), n_bins=1), "n_bins"),
    (lambda: FitPCAAndQuantizer(quantizer="median"), "method must be one of"),
    (lambda: HeldOutQualityReport(None, None), "needs the fitted PCA"),
    (lambda: HeldOutQualityReport(object(), object(), max_frames=0), "max_frames"),
])
def test_arguments_are_checked_when_the_transform_is_built(make, match):
    with pytest.raises(ValueError, match=match):
        make()
