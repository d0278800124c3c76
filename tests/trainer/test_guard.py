"""The divergence guard: NaN or saturated/constant scores are an error, never a model."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from yt8m.trainer import cli
from yt8m.trainer import guard as G


def _health(p):
    h = G.ScoreHealth(p.shape[1])
    for lo in range(0, len(p), 3):       # batch by batch, as the evaluation feeds it
        h.add(p[lo:lo + 3])
    return h.verdict()


def test_healthy_scores_pass():
    rng = np.random.default_rng(0)
    assert _health(rng.uniform(size=(20, 5))).status == G.STATUS_OK
    # a confident model: saturated, but different videos get different classes
    p = np.full((10, 4), 1e-3)
    p[np.arange(10), np.arange(10) % 4] = 1.0
    assert _health(p).status == G.STATUS_OK


def test_nan_constant_and_saturated_scores_are_diverged():
    p = np.random.default_rng(1).uniform(size=(10, 5))
    p[4, 2] = np.nan
    v = _health(p)
    assert v.diverged and "NaN" in v.reason
    v = _health(np.tile([0.2, 0.7, 0.1], (8, 1)))
    assert v.diverged and "constants" in v.reason
    # the earlier failure: every video gets the same two classes at 1.000000
    p = np.random.default_rng(2).uniform(0, 0.5, size=(9, 6))
    p[:, 3] = 1.0
    p[:, 1] = 1.0 - 1e-7
    v = _health(p)
    assert v.diverged and "saturated" in v.reason
    assert G.loss_verdict([0.7, float("nan")]).diverged
    assert not G.loss_verdict([0.7, 0.5]).diverged


def test_a_run_made_to_diverge_fails_loudly_and_writes_no_model(build_dir, tmp_path, capsys):
    out, _ = build_dir
    run = str(tmp_path / "div")
    # An absurd step size on purpose: the weights blow up within an epoch.
    rc = cli.train_main(["--data_dir", out, "--model", "dbof", "--output_dir", run,
                         "--epochs", "2", "--optimizer", "sgd", "--learning_rate", "1e30",
                         "--projection_size", "16", "--hidden_size", "8", "--train_frames", "4"])
    assert rc != 0
    err = capsys.readouterr().err
    assert "DIVERGED" in err and "--learning_rate" in err
    m = json.load(open(os.path.join(run, "metrics.json")))
    assert m["status"] == G.STATUS_DIVERGED and m["diverged_reason"]
    assert "--learning_rate" in m["what_to_change"]
    assert not os.path.exists(os.path.join(run, "model.keras"))
    assert not os.path.exists(os.path.join(run, "predictions.csv"))
    assert not os.path.exists(os.path.join(run, "model.tmp.keras"))


def test_a_healthy_run_says_ok(build_dir, tmp_path):
    from yt8m.trainer.train import train_on_build
    m = train_on_build(build_dir[0], "logistic", str(tmp_path / "ok"), epochs=3)
    assert m["status"] == G.STATUS_OK and m["score_health"]["non_finite_videos"] == 0
    assert json.load(open(tmp_path / "ok" / "metrics.json"))["status"] == "ok"
