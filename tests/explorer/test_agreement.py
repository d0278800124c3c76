"""explorer/agreement.py: majorities, the ground truth against raters, Fleiss' kappa."""
from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from yt8m.explorer import agreement as A

# Fleiss (1971)-style worked example (10 items, 14 raters, 5 categories), as given in
# the literature on Fleiss' kappa: P-bar = 0.378, P-bar_e = 0.213, kappa = 0.210.
EXAMPLE = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
           [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
           [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]


def test_fleiss_kappa_of_the_worked_example():
    k = A.fleiss_kappa(EXAMPLE)
    assert k["observed"] == pytest.approx(0.378, abs=5e-4)
    assert k["expected"] == pytest.approx(0.213, abs=5e-4)
    assert k["kappa"] == pytest.approx(0.210, abs=5e-4)
    assert (k["items"], k["raters"]) == (10, 14)


def _brute_force(table):
    """Kappa from first principles: agreeing ordered rater pairs, and chance from margins."""
    n = sum(table[0])
    agree = np.mean([sum(c * (c - 1) for c in row) / (n * (n - 1)) for row in table])
    p = np.array(table, float).sum(axis=0) / (len(table) * n)
    return (agree - (p ** 2).sum()) / (1 - (p ** 2).sum())


def test_fleiss_kappa_matches_first_principles_and_its_bounds():
    rng = np.random.default_rng(1)
    for _ in range(20):
        rows = []
        for _ in range(15):
            votes = rng.integers(0, 5, size=3)
            rows.append(np.bincount(votes, minlength=5).tolist())
        assert A.fleiss_kappa(rows)["kappa"] == pytest.approx(_brute_force(rows))
    perfect = [[3, 0, 0, 0, 0], [0, 3, 0, 0, 0], [0, 0, 0, 3, 0]]
    assert A.fleiss_kappa(perfect)["kappa"] == pytest.approx(1.0)
    assert A.fleiss_kappa([[3, 0], [3, 0]])["kappa"] is None     # undefined: no variation
    with pytest.raises(ValueError, match="same number"):
        A.fleiss_kappa([[3, 0], [2, 0]])
    assert A.fleiss_kappa([])["items"] == 0


def test_majority_of_three():
    assert A.majority([{"a", "b"}, {"a"}, {"c"}]) == {"a"}
    assert A.majority([{"a", "b"}, {"a", "b"}, set()]) == {"a", "b"}
    assert A.majority([set(), set(), set()]) == set()
    assert A.majority([["a", "a"], [], []]) == set()        # one rater's repeats are one vote


def test_precision_and_recall_of_the_ground_truth():
    truth = {"v1": {"a", "b"}, "v2": {"c"}, "v3": {"d"}}
    human = {"v1": {"a", "x", "y"}, "v2": {"c", "z"}, "v3": set()}
    r = A.precision_recall(truth, human)
    # 2 of 4 ground-truth labels confirmed; 2 of 5 rater labels in the ground truth.
    assert (r["agreed"], r["truth_labels"], r["human_labels"]) == (2, 4, 5)
    assert r["precision"] == pytest.approx(0.5) and r["recall"] == pytest.approx(0.4)
    assert r["precision_per_video_mean"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert A.precision_recall({}, {})["precision"] is None


def test_tables_from_ratings():
    t = A.score_table({"a": [1, 1, 2], "b": [5, 5, 5], "c": [1, 2]})
    assert t.tolist() == [[2, 1, 0, 0, 0], [0, 0, 0, 0, 3]]      # c is incomplete
    m = A.mark_table({"v": {"candidates": ["a", "b"],
                            "raters": {"r1": ["a"], "r2": ["a", "c"], "r3": []}}})
    assert m.tolist() == [[2, 1], [0, 3], [1, 2]]                 # a, b, c (found by search)


def test_specificity_buckets_follow_the_vocab_stage():
    assert A.specificity(A.mean_score([1, 1, 2])) == "coarse"
    assert A.specificity(A.mean_score([2, 2, 1])) == "medium"
    assert A.specificity(Fraction(5, 2)) == "fine"
    assert A.specificity(A.mean_score([3, 3, 2])) == "not visual"
    for scores in itertools.product(range(1, 6), repeat=3):
        assert A.specificity(A.mean_score(scores)) in {"coarse", "medium", "fine", "not visual"}
