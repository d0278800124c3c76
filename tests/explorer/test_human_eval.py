"""trainer/human_eval.py: Table 4's metrics on human labels (the computation and its input)."""
from __future__ import annotations

import numpy as np
import pytest

from yt8m.trainer import metrics as M
from yt8m.trainer.human_eval import human_rated_metrics, read_human_labels


def test_metrics_match_trainer_metrics_on_the_rated_rows():
    rng = np.random.default_rng(0)
    scores = rng.random((40, 12))
    labels = [sorted(set(rng.integers(0, 12, size=rng.integers(0, 4)).tolist()))
              for _ in range(40)]
    got = human_rated_metrics(scores, labels)
    keep = [i for i, ls in enumerate(labels) if ls]
    y = np.zeros((len(keep), 12))
    for r, i in enumerate(keep):
        y[r, labels[i]] = 1
    assert got["num_examples"] == len(keep) and got["without_labels"] == 40 - len(keep)
    assert got["hit_at_1"] == pytest.approx(M.hit_at_k(scores[keep], y, 1))
    assert got["hit_at_5"] == pytest.approx(M.hit_at_k(scores[keep], y, 5))
    assert got["perr"] == pytest.approx(M.precision_at_equal_recall_rate(scores[keep], y))


def test_metrics_by_hand():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.4, 0.3]])
    got = human_rated_metrics(scores, [[0], [0, 2], []])
    # Video 1: label 0 ranked first (hit, PERR 1). Video 2: labels 0 and 2 vs top-2 {1, 0}:
    # Hit@1 misses, PERR 1/2. Video 3 has no human label: left out.
    assert got == {"num_examples": 2, "without_labels": 1, "perr": 0.75, "hit_at_1": 0.5,
                   "hit_at_5": 1.0}
    assert human_rated_metrics(scores, [[], [], []])["perr"] is None
    with pytest.raises(ValueError, match="vocabulary"):
        human_rated_metrics(scores, [[7], [], []])


def test_read_human_labels_checks_its_input(tmp_path):
    good = tmp_path / "h.csv"
    good.write_text("video_id,labels,kg_ids,raters\na,3;1,/m/x;/m/y,r1;r2;r3\nb,,,r1;r2;r3\n")
    assert read_human_labels(str(good)) == {"a": [1, 3], "b": []}
    for text, msg in (("video,labels\na,1\n", "columns"), ("video_id,labels\n,1\n", "empty"),
                      ("video_id,labels\na,x\n", "indices"), ("video_id,labels\na,1\na,2\n",
                                                              "twice")):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(ValueError, match=msg):
            read_human_labels(str(bad))
    with pytest.raises(FileNotFoundError, match="ratings export"):
        read_human_labels(str(tmp_path / "missing.csv"))
