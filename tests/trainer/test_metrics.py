"""trainer.metrics against hand-computed cases and a literal transcription of equations 8-10."""
from __future__ import annotations

import numpy as np
import pytest

from yt8m.trainer import metrics as M


def brute_force_map(predictions, labels):
    """Equations 8-10 written out: every threshold tau_j = j / 10000."""
    taus = np.arange(1, 10001) / 10000.0
    aps = []
    for c in range(predictions.shape[1]):
        y = np.round(predictions[:, c], 4)
        g = labels[:, c].astype(float)
        if g.sum() == 0:
            continue
        at = y[None, :] >= taus[:, None]                       # I(y_t >= tau_j)
        retrieved = at.sum(axis=1)
        tp = (at * g[None, :]).sum(axis=1)
        precision = np.where(retrieved > 0, tp / np.maximum(retrieved, 1), 0.0)   # eq. 8
        recall = tp / g.sum()                                                     # eq. 9
        recall_next = np.append(recall[1:], 0.0)
        aps.append(float((precision * (recall - recall_next)).sum()))             # eq. 10
    return float(np.mean(aps))


def test_map_hand_computed_with_ties_and_zero_scores():
    # Class 0: scores 0.9 (pos), 0.5 (neg), 0.5 (pos), 0.0 (pos, never retrieved).
    # tau at 0.9: P = 1, recall 1/3; tau at 0.5: P = 2/3, recall += 1/3.
    # AP = 1 * 1/3 + 2/3 * 1/3 = 5/9.
    # Class 1: one positive ranked first of two non-zero scores: AP = 1.
    # Class 2: no positive: left out of the mean.
    p = np.array([[0.9, 0.8, 0.1], [0.5, 0.2, 0.3], [0.5, 0.0, 0.2], [0.0, 0.0, 0.9]])
    y = np.array([[1, 1, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0]])
    ap = M.average_precisions(p, y)
    assert ap[0] == pytest.approx(5 / 9)
    assert ap[1] == pytest.approx(1.0)
    assert np.isnan(ap[2])
    assert M.mean_average_precision(p, y) == pytest.approx((5 / 9 + 1) / 2)
    assert M.mean_average_precision(p, y) == pytest.approx(brute_force_map(p, y))


def test_map_rounds_into_1e4_buckets():
    # 0.50004 and 0.49996 round to the same bucket: the negative ranked
    # "above" the positive ties with it, so AP = P(0.5) = 1/2, not 1.
    p = np.array([[0.50004], [0.49996]])
    y = np.array([[0], [1]])
    assert M.mean_average_precision(p, y) == pytest.approx(0.5)
    # A score below half a bucket rounds to 0 and is never retrieved.
    assert M.mean_average_precision(np.array([[0.00004]]), np.array([[1]])) == 0.0


def test_map_all_zero_scores_and_no_positives():
    y = np.array([[1, 0], [0, 1]])
    assert M.mean_average_precision(np.zeros((2, 2)), y) == 0.0
    assert np.isnan(M.mean_average_precision(np.random.default_rng(0).random((3, 2)),
                                             np.zeros((3, 2))))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_matches_brute_force_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    n, c = 40, 5
    # Coarse scores make ties and zeros frequent.
    p = np.round(rng.random((n, c)) * rng.choice([1, 0], size=(n, c), p=[0.8, 0.2]), 2)
    y = (rng.random((n, c)) < 0.3).astype(int)
    y[:, 4] = 0  # a class without positives
    assert M.mean_average_precision(p, y) == pytest.approx(brute_force_map(p, y), abs=1e-12)


def test_hit_at_k_ties_count_against_the_model_and_unlabelled_rows_miss():
    p = np.array([[0.9, 0.5, 0.1],    # label 0 ranked 1: hit@1
                  [0.5, 0.5, 0.1],    # label 1 tied for first: rank 2, miss@1, hit@2
                  [0.2, 0.3, 0.4],    # label 0 ranked 3: miss@1, miss@2
                  [0.9, 0.1, 0.0]])   # no labels: always a miss
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    assert M.hit_at_k(p, y, 1) == pytest.approx(1 / 4)
    assert M.hit_at_k(p, y, 2) == pytest.approx(2 / 4)
    assert M.hit_at_k(p, y, 3) == pytest.approx(3 / 4)
    # Constant scores hit nothing while k < C.
    assert M.hit_at_k(np.zeros((2, 3)), np.eye(3)[:2], 1) == 0.0


def test_perr_hand_computed_rows_without_labels_left_out():
    p = np.array([[0.9, 0.8, 0.1, 0.0],   # labels {0, 2}: top-2 = {0, 1}: 1/2
                  [0.1, 0.2, 0.3, 0.4],   # label {3}: top-1 = {3}: 1
                  [0.5, 0.5, 0.5, 0.5],   # label {1}: all tied, rank 4 > 1: 0
                  [0.9, 0.8, 0.7, 0.6]])  # no labels: left out
    y = np.array([[1, 0, 1, 0], [0, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]])
    assert M.precision_at_equal_recall_rate(p, y) == pytest.approx((0.5 + 1 + 0) / 3)
    assert np.isnan(M.precision_at_equal_recall_rate(p, np.zeros_like(y)))


def test_gap_hand_computed():
    p = np.array([[0.9, 0.8, 0.1], [0.7, 0.3, 0.2]])
    y = np.array([[1, 0, 1], [0, 1, 0]])
    # top_k=2 pooled: 0.9(+) 0.8(-) 0.7(-) 0.3(+); M = 3 (0.1's positive is cut).
    # GAP = (1/1 + 2/4) / 3 = 0.5
    assert M.global_average_precision(p, y, top_k=2) == pytest.approx(0.5)
    # top_k=3 keeps the third positive: + 3/6.
    assert M.global_average_precision(p, y, top_k=3) == pytest.approx((1 + 0.5 + 0.5) / 3)


def test_gap_ties_are_one_group():
    # Two tied predictions, one positive: precision at the group's end, 1/2,
    # whichever order the sort gives them.
    p = np.array([[0.5, 0.5]])
    assert M.global_average_precision(p, np.array([[1, 0]]), top_k=2) == pytest.approx(0.5)
    assert M.global_average_precision(p, np.array([[0, 1]]), top_k=2) == pytest.approx(0.5)


def test_accumulator_over_batches_equals_one_shot():
    rng = np.random.default_rng(3)
    p = np.round(rng.random((60, 7)), 3)
    y = (rng.random((60, 7)) < 0.25).astype(int)
    acc = M.EvaluationAccumulator(7, hit_ks=(1, 5), top_k=4)
    for lo in range(0, 60, 13):
        acc.add(p[lo:lo + 13], y[lo:lo + 13])
    whole = M.evaluate(p, y, hit_ks=(1, 5), top_k=4)
    got = acc.result()
    for k in ("map", "hit_at_1", "hit_at_5", "perr", "gap"):
        assert got[k] == pytest.approx(whole[k]), k
    assert got["num_examples"] == 60


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="same shape"):
        M.mean_average_precision(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        M.hit_at_k(np.array([[np.nan, 0.1]]), np.array([[1, 0]]), 1)
    acc = M.EvaluationAccumulator(3, hit_ks=(1,))
    with pytest.raises(ValueError, match="Hit@5 was not tracked"):
        acc.hit_at_k(5)
