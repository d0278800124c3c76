"""Reading our builds the way the released YouTube-8M starter code reads them.

Written from the released format's description, not from its code: frame-level
records are SequenceExamples with context ``id`` (string) and ``labels``
(int64 list) and a sequence feature ``rgb`` (one bytes string per frame);
video-level records are Examples with ``id``, ``labels`` and ``mean_rgb``
(float list). Its ``Dequantize`` is uniform: ``bytes * 4/255 - 2 + 4/512``.

One default (Lloyd-Max) build and one ``--quantizer uniform`` build of the same
small corpus (module-scoped; random weights): the test checks what each build's
dataset_info.json ``starter_code`` section claims against what such a reader
gets: the uniform build reads back exactly, the default one does not, and
dataset_info.json says so.
"""
from __future__ import annotations

import glob
import json

import numpy as np
import pytest
import tensorflow as tf

from yt8m.compression.quantize import Quantizer
from yt8m.pipeline import schema
from yt8m.pipeline.starter_code import STARTER_MAX_FRAMES, STARTER_NUM_CLASSES, summary_line
from tests.pipeline.test_build import SPLITS, build_argv

DIM = 1024


def released_dequantize(byte_rows: np.ndarray) -> np.ndarray:
    """The released reader's Dequantize(max=2, min=-2), in float32 as TensorFlow does it."""
    x = tf.cast(byte_rows, tf.float32)
    return (x * (4.0 / 255.0) + (4.0 / 512.0 - 2.0)).numpy()


def parse_frame_like_starter(serialized: bytes):
    context, seq = tf.io.parse_single_sequence_example(
        serialized,
        context_features={"id": tf.io.FixedLenFeature([], tf.string),
                          "labels": tf.io.VarLenFeature(tf.int64)},
        sequence_features={"rgb": tf.io.FixedLenSequenceFeature([], dtype=tf.string)})
    rgb = tf.reshape(tf.io.decode_raw(seq["rgb"], tf.uint8), [-1, DIM])
    return (context["id"].numpy().decode(), sorted(tf.sparse.to_dense(context["labels"])
                                                   .numpy().tolist()), rgb.numpy())


def parse_video_like_starter(serialized: bytes):
    f = tf.io.parse_single_example(
        serialized,
        features={"id": tf.io.FixedLenFeature([], tf.string),
                  "labels": tf.io.VarLenFeature(tf.int64),
                  "mean_rgb": tf.io.FixedLenFeature([DIM], tf.float32)})
    return (f["id"].numpy().decode(), sorted(tf.sparse.to_dense(f["labels"]).numpy().tolist()),
            f["mean_rgb"].numpy())


def _records(out, kind, split):
    return schema.read_records(str(out / kind / f"{split}-*-of-*.tfrecord"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from yt8m.pipeline.demo import make_corpus
    folder = tmp_path_factory.mktemp("corpus")
    return make_corpus(str(folder), n_videos=8, duration_s=3.0, width=64, height=48, fps=5.0,
                       classes=["red_circle", "stripes"])


def _build(corpus, tmp_path_factory, name, *extra):
    from yt8m.pipeline.cli import build_main
    out = tmp_path_factory.mktemp(name) / "out"
    assert build_main(build_argv(corpus, out, *extra)) == 0
    return out


@pytest.fixture(scope="module")
def default_build(corpus, tmp_path_factory):
    return _build(corpus, tmp_path_factory, "default")


@pytest.fixture(scope="module")
def uniform_build(corpus, tmp_path_factory):
    return _build(corpus, tmp_path_factory, "uniform", "--quantizer", "uniform")


def starter_read_errors(out):
    """What a starter-code reader gets wrong: max |its dequantized frames - ours| over every
    frame record, and max |its frame mean - the stored mean_rgb| over every video; both
    layouts checked for ids, labels and frame counts against pipeline.schema's parse."""
    quantizer = Quantizer.load(str(out / "artifacts" / "quantizer.npz"))
    frame_err, mean_err, n = 0.0, 0.0, 0
    for split in SPLITS:
        ours = {r.video_id: r for r in map(schema.parse_frame_example,
                                           _records(out, "frame", split))}
        means = {}
        for rec in _records(out, "video", split):
            vid, labels, mean_rgb = parse_video_like_starter(rec)
            assert labels == sorted(ours[vid].labels or [])
            means[vid] = mean_rgb
        assert set(means) == set(ours)
        for rec in _records(out, "frame", split):
            vid, labels, rgb = parse_frame_like_starter(rec)
            mine = ours[vid]
            assert labels == sorted(mine.labels or []) and rgb.shape == mine.rgb.shape
            theirs = released_dequantize(rgb)
            frame_err = max(frame_err, float(np.max(np.abs(theirs - quantizer.decode(rgb)))))
            mean_err = max(mean_err, float(np.max(np.abs(theirs.mean(0) - means[vid]))))
            n += 1
    assert n > 0
    return frame_err, mean_err


def test_uniform_build_reads_back_exactly_and_says_so(uniform_build):
    info = json.loads((uniform_build / "dataset_info.json").read_text())
    sc = info["starter_code"]
    assert sc["layouts"]["frame"]["dequantized_correctly"] is True
    assert sc["layouts"]["video"]["dequantized_correctly"] is True
    frame_err, mean_err = starter_read_errors(uniform_build)
    assert frame_err == 0.0
    assert mean_err < 1e-5  # float32 mean of the same levels, summed in another order
    assert sc["layouts"]["frame"]["dequantize_max_error"] == 0.0


def test_default_build_is_misread_and_dataset_info_says_so(default_build):
    info = json.loads((default_build / "dataset_info.json").read_text())
    sc = info["starter_code"]
    frame_err, mean_err = starter_read_errors(default_build)
    # The claim: frame level not dequantized correctly, video level (floats) fine.
    assert sc["layouts"]["frame"]["dequantized_correctly"] is False
    assert sc["layouts"]["video"]["dequantized_correctly"] is True
    assert frame_err > 4.0 / 255.0  # more than one uniform step: not a rounding matter
    assert frame_err <= sc["layouts"]["frame"]["dequantize_max_error"] + 1e-6
    assert mean_err > 4.0 / 255.0
    assert "--quantizer uniform" in sc["layouts"]["frame"]["note"]


def test_limits_and_audio_are_stated(default_build):
    info = json.loads((default_build / "dataset_info.json").read_text())
    sc = info["starter_code"]
    assert info["entities"] >= 2
    assert sc["num_classes"] == {"limit": STARTER_NUM_CLASSES, "build": info["entities"],
                                 "within_limit": True}
    assert sc["max_frames"]["limit"] == STARTER_MAX_FRAMES
    assert sc["max_frames"]["build"] == 360 and sc["max_frames"]["within_limit"] is False
    assert sc["audio"] == {"frame": False, "video": False}
    line = summary_line(sc)
    assert "frame level NO" in line and "no audio" in line and "300" in line
    assert "frame level yes" in summary_line(
        {**sc, "layouts": {**sc["layouts"], "frame": {"dequantized_correctly": True}}})


def test_summary_prints_the_starter_code_line(default_build):
    from yt8m.pipeline.report import summary_text
    info = json.loads((default_build / "dataset_info.json").read_text())
    assert summary_line(info["starter_code"]) in summary_text(info).splitlines()
    assert glob.glob(str(default_build / "frame" / "train-*"))
