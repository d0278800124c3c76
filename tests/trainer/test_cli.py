"""train / evaluate / predict end to end on generated build-shaped and released-layout data."""
from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from tests.trainer import synth
from yt8m.trainer import cli
from yt8m.trainer.tb import read_scalars
from yt8m.trainer.train import train_on_build

METRIC_KEYS = {"map", "hit_at_1", "hit_at_5", "perr", "gap", "examples_per_s"}


@pytest.fixture(scope="module")
def moe_run(build_dir, tmp_path_factory):
    out, _ = build_dir
    run = str(tmp_path_factory.mktemp("runs") / "moe")
    rc = cli.train_main(["--data_dir", out, "--model", "moe", "--output_dir", run, "--epochs", "4"])
    assert rc == 0
    return run


def test_train_writes_the_run_directory(moe_run, build_dir):
    out, info = build_dir
    for name in ("model.keras", "metrics.json", "predictions.csv", "run_config.json",
                 "feature_whitening.npz", "artifacts/quantizer.npz", "artifacts/pca.npz"):
        assert os.path.exists(os.path.join(moe_run, name)), name
    m = json.load(open(os.path.join(moe_run, "metrics.json")))
    assert METRIC_KEYS <= set(m)
    assert m["num_examples"] == 40 and m["split"] == "validate"
    # 6 separable classes, chance Hit@1 ~ 0.25: a trained MoE does far better
    assert m["hit_at_1"] > 0.6 and m["map"] > 0.6
    assert m["examples_per_s"] > 0
    # what the 4.2.2 normalisation chose from the data is on record
    wh = m["whitening"]
    assert wh["method"] == "oas" and 0.0 <= wh["shrinkage"] <= 1.0
    assert wh["components"] >= 1 and wh["train_videos"] > 0
    # challenge format, on the test split (no labels there)
    rows = list(csv.reader(open(os.path.join(moe_run, "predictions.csv"))))
    assert rows[0] == ["VideoId", "LabelConfidencePairs"]
    assert m["predictions_split"] == "test"
    test_ids = {v for v, d in info["videos"].items() if d["split"] == "test"}
    assert {r[0] for r in rows[1:]} == test_ids
    pairs = rows[1][1].split()
    labels, scores = [int(x) for x in pairs[0::2]], [float(x) for x in pairs[1::2]]
    assert sorted(labels) == list(range(6)) and scores == sorted(scores, reverse=True)
    # TensorBoard event files: per-epoch loss and the validation metrics
    assert len(read_scalars(os.path.join(moe_run, "logs", "train"))["epoch_loss"]) == 4
    assert read_scalars(os.path.join(moe_run, "logs", "validation"))["map"][0][1] == pytest.approx(m["map"])


def test_evaluate_reproduces_the_validate_metrics(moe_run, build_dir, tmp_path, capsys):
    out, _ = build_dir
    dest = str(tmp_path / "eval.json")
    assert cli.evaluate_main(["--model_dir", moe_run, "--data_dir", out, "--output", dest]) == 0
    got = json.load(open(dest))
    trained = json.load(open(os.path.join(moe_run, "metrics.json")))
    for k in ("map", "hit_at_1", "hit_at_5", "perr", "gap"):
        assert got[k] == pytest.approx(trained[k], abs=1e-6), k


def test_predict_names_entities_for_extracted_files(moe_run, build_dir, tmp_path):
    out, info = build_dir
    dest = str(tmp_path / "pred.csv")
    # extract --artifacts writes the build's frame-level layout
    rc = cli.predict_main(["--model_dir", moe_run, "--data_pattern", f"{out}/frame/validate-*",
                           "--vocabulary", f"{out}/vocabulary.csv", "--top_k", "2", "--output_file", dest])
    assert rc == 0
    rows = list(csv.DictReader(open(dest)))
    assert len(rows) == 80 and rows[0]["name"].startswith("Entity ")
    firsts = {r["video_id"]: int(r["index"]) for r in rows if r["rank"] == "1"}
    right = sum(firsts[v] in info["videos"][v]["labels"] for v in firsts)
    assert right / len(firsts) > 0.6


def test_predict_on_raw_features_says_to_compress(moe_run, tmp_path, capsys):
    synth.write_raw_features(str(tmp_path / "raw.tfrecord"), raw_dim=32)
    rc = cli.predict_main(["--model_dir", moe_run, "--data_pattern", str(tmp_path / "raw.tfrecord")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "raw" in err and "--artifacts" in err


def test_frame_model_on_a_build_through_the_library(build_dir, tmp_path):
    out, _ = build_dir
    m = train_on_build(out, "dbof", str(tmp_path / "dbof"), epochs=3, projection_size=32,
                       hidden_size=16, train_frames=4)
    assert m["hit_at_1"] > 0.5 and m["model"] == "dbof"
    assert os.path.exists(tmp_path / "dbof" / "model.keras")


def test_released_layout_through_data_pattern(released_dir, tmp_path, capsys):
    rel, _ = released_dir
    run = str(tmp_path / "rel")
    # --num_classes is required with --data_pattern
    assert cli.train_main(["--data_pattern", f"{rel}/video/train*.tfrecord", "--model", "logistic",
                           "--output_dir", run]) == 2
    assert "--num_classes" in capsys.readouterr().err
    rc = cli.train_main(["--data_pattern", f"{rel}/video/train*.tfrecord", "--num_classes", "8",
                         "--model", "logistic", "--features", "rgb,audio", "--output_dir", run,
                         "--epochs", "3"])
    assert rc == 0
    m = json.load(open(os.path.join(run, "metrics.json")))
    assert m["num_examples"] == 20 and m["hit_at_1"] > 0.5      # validate found beside train
    assert json.load(open(os.path.join(run, "run_config.json")))["input_dim"] <= 1152
    # a frame-level model on the released frame files, rgb + audio
    run2 = str(tmp_path / "rel_frames")
    rc = cli.train_main(["--data_pattern", f"{rel}/frame/train*.tfrecord", "--num_classes", "8",
                         "--model", "frame_logistic", "--features", "rgb,audio", "--output_dir", run2,
                         "--epochs", "2", "--train_frames", "3"])
    assert rc == 0
    assert json.load(open(os.path.join(run2, "metrics.json")))["hit_at_1"] > 0.3


def test_bad_invocations_are_clear(build_dir, tmp_path, capsys):
    out, _ = build_dir
    assert cli.train_main(["--data_dir", out, "--model", "logistic", "--output_dir",
                           str(tmp_path / "x"), "--num_mixtures", "2"]) == 2
    assert "--num_mixtures does not apply" in capsys.readouterr().err
    assert cli.train_main(["--data_dir", str(tmp_path / "nowhere"), "--model", "logistic",
                           "--output_dir", str(tmp_path / "y")]) == 2
    assert "vocabulary" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.train_main(["--data_dir", out, "--model", "logistic", "--output_dir", "z", "--bogus"])


def test_mu_sigma_top5_features_on_a_build(build_dir, tmp_path):
    out, _ = build_dir
    m = train_on_build(out, "logistic", str(tmp_path / "stats"), epochs=8,
                       video_features="mu_sigma_top5", whiten_components=24)
    # 6 classes, ~1.5 labels per video: chance Hit@1 is about 0.25
    assert m["hit_at_1"] > 0.5
    cfg = json.load(open(tmp_path / "stats" / "run_config.json"))
    assert cfg["input_dim"] == 24 and cfg["input_spec"]["video_features"] == "mu_sigma_top5"


def test_a_label_beyond_num_classes_fails_with_the_fix(released_dir, tmp_path, capsys):
    rel, _ = released_dir
    rc = cli.train_main(["--data_pattern", f"{rel}/video/train*.tfrecord", "--num_classes", "3",
                         "--model", "logistic", "--output_dir", str(tmp_path / "r"), "--epochs", "1",
                         "--no_normalize"])
    assert rc == 2
    assert "--num_classes" in capsys.readouterr().err
