"""Pure functions on ratings: majorities, the ground truth against raters, Fleiss' kappa.

Paper section 3.5: 3 raters per sampled test video mark every entity present;
the ground truth (the annotation system's labels) is then measured against
them: precision 78.8% (ground-truth labels the raters confirm) and recall
14.5% (the raters' entities the ground truth has). Raters' agreement is
Fleiss' kappa (Fleiss 1971): chance-corrected agreement of a fixed number of
raters per item over categories.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np


def majority(marks: Sequence[Iterable], min_votes: Optional[int] = None) -> set:
    """Entities marked by at least ``min_votes`` raters (default: a strict majority)."""
    n = len(marks)
    need = n // 2 + 1 if min_votes is None else int(min_votes)
    votes: dict = {}
    for m in marks:
        for e in set(m):
            votes[e] = votes.get(e, 0) + 1
    return {e for e, v in votes.items() if v >= need}


def precision_recall(truth: Mapping[str, set], human: Mapping[str, set]) -> dict:
    """The ground truth measured against the raters, pooled over videos (micro averages).

    ``precision``: of the ground-truth labels, the share the raters mark
    present; ``recall``: of the entities the raters mark present, the share
    the ground truth has. Both over the videos in ``human``. Also the
    per-video (macro) means, over videos where each is defined.
    """
    tp = n_truth = n_human = 0
    per_p, per_r = [], []
    for vid, h in human.items():
        t = set(truth.get(vid, ()))
        h = set(h)
        both = len(t & h)
        tp += both
        n_truth += len(t)
        n_human += len(h)
        if t:
            per_p.append(both / len(t))
        if h:
            per_r.append(both / len(h))
    return {
        "videos": len(human),
        "truth_labels": n_truth,
        "human_labels": n_human,
        "agreed": tp,
        "precision": tp / n_truth if n_truth else None,
        "recall": tp / n_human if n_human else None,
        "precision_per_video_mean": float(np.mean(per_p)) if per_p else None,
        "recall_per_video_mean": float(np.mean(per_r)) if per_r else None,
    }


def fleiss_kappa(counts) -> dict:
    """Fleiss' kappa of an ``(items, categories)`` table of rater counts.

    Every row must sum to the same number of raters n >= 2. Returns
    ``kappa``, ``observed`` (mean pairwise agreement P-bar), ``expected``
    (P-bar_e), ``items``, ``raters``. ``kappa`` is None when chance agreement
    is total (every rating in one category: kappa is undefined there).
    """
    table = np.asarray(counts, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] == 0:
        return {"kappa": None, "observed": None, "expected": None, "items": 0, "raters": 0}
    n_items = table.shape[0]
    per_item = table.sum(axis=1)
    n = per_item[0]
    if n < 2 or not np.all(per_item == n):
        raise ValueError(f"Fleiss' kappa needs the same number (>= 2) of raters per item; "
                         f"got {sorted(set(per_item.astype(int).tolist()))}")
    p_j = table.sum(axis=0) / (n_items * n)
    p_i = (np.square(table).sum(axis=1) - n) / (n * (n - 1))
    observed = float(p_i.mean())
    expected = float(np.square(p_j).sum())
    kappa = None if math.isclose(expected, 1.0) else (observed - expected) / (1.0 - expected)
    return {"kappa": kappa, "observed": observed, "expected": expected, "items": n_items,
            "raters": int(n)}


def score_table(scores: Mapping[str, Sequence[int]], raters: int = 3) -> np.ndarray:
    """Fleiss' table of entity scores 1-5: entities with exactly ``raters`` ratings."""
    rows = []
    for values in scores.values():
        if len(values) != raters:
            continue
        row = [0] * 5
        for s in values:
            row[int(s) - 1] += 1
        rows.append(row)
    return np.asarray(rows, dtype=np.int64).reshape(-1, 5)


def mark_table(videos: Mapping[str, Mapping]) -> np.ndarray:
    """Fleiss' table of video marks: one binary item per (video, entity) shown or marked.

    ``videos``: ``{video_id: {"candidates": [...], "raters": {name: [marked...]}}}``
    with the same number of raters each. An entity a rater did not mark counts
    as "absent" for them.
    """
    rows = []
    for v in videos.values():
        marks = [set(m) for m in v["raters"].values()]
        items = set(v.get("candidates") or ())
        for m in marks:
            items |= m
        for e in sorted(items):
            present = sum(e in m for m in marks)
            rows.append([present, len(marks) - present])
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)


def mean_score(values: Sequence[int]) -> Fraction:
    return Fraction(sum(int(v) for v in values), len(values))


def specificity(mean: Fraction, max_mean_rating: float = 2.5) -> str:
    """The vocab stage's bucket of a mean score, or ``not visual`` above the threshold."""
    from yt8m.vocab.rules import specificity as bucket, to_fraction
    if mean > to_fraction(max_mean_rating):
        return "not visual"
    return bucket(mean, max_mean_rating)
