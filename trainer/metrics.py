"""Evaluation metrics of the YouTube-8M paper (section 5.1) and challenges, in NumPy.

``predictions`` and ``labels`` are ``(N, C)`` arrays: N videos, C classes;
scores are expected in ``[0, 1]`` (probabilities), labels are 0/1 (any value
> 0 counts as a positive).

* :func:`mean_average_precision`: equations 8-10 (scores rounded into 1e-4
  buckets, only non-zero scores retrieved, unweighted mean over the classes
  that have at least one positive).
* :func:`hit_at_k`: equation 11.
* :func:`precision_at_equal_recall_rate`: PERR (the unnumbered equation after 11).
* :func:`global_average_precision`: GAP of the YouTube-8M Kaggle challenges.

All of them are also available incrementally through
:class:`EvaluationAccumulator`, whose memory does not grow with N for mAP,
Hit@k and PERR (per-class bucket histograms, per-video counters), so a whole
validate split can be evaluated batch by batch.

Ties. The paper leaves ranks of tied scores open; these functions never break
ties by position, so results do not depend on class order:

* mAP: ties are inherent (a threshold retrieves every score of its bucket).
* Hit@k and PERR: the rank of class e is the number of classes scoring at
  least as high as e (ties count against the model), so a constant score
  vector hits nothing when C > k.
* GAP: tied predictions form one group that is retrieved together (the
  precision at the group's end applies to all its positives), as with the
  thresholds of equation 8. Ties at the top-k cut of a video are the one
  place order matters: the lower class index is kept.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

MAP_BUCKETS = 10000  # equation 10: tau_j = j / 10000, j = 1..10000


def _check(predictions, labels) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(predictions, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 2 or y.shape != p.shape:
        raise ValueError(f"predictions {p.shape} and labels {y.shape} must both be (N, C) "
                         f"arrays of the same shape")
    if not np.all(np.isfinite(p)):
        raise ValueError("predictions contain NaN or Inf: check the model's output "
                         "(a diverged training run produces these)")
    return p, (y > 0)


def _kth_largest(p: np.ndarray, k: np.ndarray | int) -> np.ndarray:
    """Per row, the (k+1)-th largest score (index k of the descending sort).

    Returns -inf where a row has no (k+1)-th score (k >= C). A class is within
    the top k (ties counted against it) iff its score is strictly above this.
    """
    n, c = p.shape
    k = np.broadcast_to(np.asarray(k, dtype=np.int64), (n,))
    out = np.full(n, -np.inf)
    inside = k < c
    if np.all(k == k[0]) and inside.all():
        # One k for every row: a partition is O(C) per row instead of a sort.
        kk = int(k[0])
        out[:] = -np.partition(-p, kk, axis=1)[:, kk]
        return out
    desc = -np.sort(-p, axis=1)
    rows = np.nonzero(inside)[0]
    out[rows] = desc[rows, k[rows]]
    return out


class EvaluationAccumulator:
    """Streaming mAP, Hit@k, PERR and GAP over batches of ``(n, C)`` arrays.

    Memory: two ``(C, 10001)`` int32 histograms for mAP, ``top_k`` scores per
    video for GAP, a few counters for the rest.
    """

    def __init__(self, num_classes: int, hit_ks: Sequence[int] = (1, 5), top_k: int = 20):
        if num_classes <= 0:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if top_k <= 0 or any(k <= 0 for k in hit_ks):
            raise ValueError(f"top_k ({top_k}) and hit_ks ({list(hit_ks)}) must be positive")
        self.num_classes = int(num_classes)
        self.hit_ks = tuple(int(k) for k in hit_ks)
        self.top_k = int(top_k)
        self._bins = MAP_BUCKETS + 1
        # int32 keeps 3862 classes at ~300 MB for both histograms; a bucket
        # count is at most N videos.
        self._retrieved = np.zeros(self.num_classes * self._bins, np.int32)
        self._retrieved_pos = np.zeros(self.num_classes * self._bins, np.int32)
        self._positives = np.zeros(self.num_classes, np.int64)
        self._hits = {k: 0 for k in self.hit_ks}
        self._perr_sum = 0.0
        self._perr_rows = 0
        self._rows = 0
        self._gap_scores: list[np.ndarray] = []
        self._gap_labels: list[np.ndarray] = []

    @property
    def num_examples(self) -> int:
        return self._rows

    def add(self, predictions, labels) -> None:
        p, y = _check(predictions, labels)
        n, c = p.shape
        if c != self.num_classes:
            raise ValueError(f"got {c} classes in a batch, the accumulator was made for "
                             f"{self.num_classes}")
        if n == 0:
            return
        self._rows += n
        num_labels = y.sum(axis=1)

        # mAP: bucket b = round(score * 1e4); equation 8's indicator y_t >= tau_j
        # becomes b >= j on integers, so rounding is the only float step.
        buckets = np.clip(np.rint(p * MAP_BUCKETS), 0, MAP_BUCKETS).astype(np.int64)
        flat = (np.arange(c, dtype=np.int64)[None, :] * self._bins + buckets).ravel()
        keep = buckets.ravel() > 0  # bucket 0 is never retrieved (tau_1 = 1e-4)
        np.add.at(self._retrieved, flat[keep], 1)
        np.add.at(self._retrieved_pos, flat[keep & y.ravel()], 1)
        self._positives += y.sum(axis=0)

        # Hit@k (equation 11): a hit when some label scores strictly above the
        # (k+1)-th largest score. Rows without labels count as misses.
        for k in self.hit_ks:
            cut = _kth_largest(p, k)
            self._hits[k] += int(np.any(y & (p > cut[:, None]), axis=1).sum())

        # PERR: retrieve |G_v| classes; rows without labels are left out.
        has = num_labels > 0
        if has.any():
            ph, yh, gh = p[has], y[has], num_labels[has]
            cut = _kth_largest(ph, gh)
            found = (yh & (ph > cut[:, None])).sum(axis=1)
            self._perr_sum += float((found / gh).sum())
            self._perr_rows += int(has.sum())

        # GAP: the top_k (score, label) pairs of each video. A stable sort on
        # the negated scores keeps the lower class index at a tie on the cut.
        k = min(self.top_k, c)
        idx = np.argsort(-p, axis=1, kind="stable")[:, :k]
        self._gap_scores.append(np.take_along_axis(p, idx, axis=1).ravel())
        self._gap_labels.append(np.take_along_axis(y, idx, axis=1).ravel())

    # -- results -----------------------------------------------------------
    def average_precisions(self) -> np.ndarray:
        """Per-class AP (equation 10); NaN for classes without positives."""
        bins = self._bins
        retrieved_all = self._retrieved.reshape(self.num_classes, bins)
        pos_all = self._retrieved_pos.reshape(self.num_classes, bins)
        ap = np.full(self.num_classes, np.nan)
        # Blocks of classes bound the temporary (block, 10000) arrays.
        for lo in range(0, self.num_classes, 256):
            hi = min(lo + 256, self.num_classes)
            retrieved = retrieved_all[lo:hi, 1:].astype(np.int64)  # tau_1..tau_10000
            pos = pos_all[lo:hi, 1:].astype(np.int64)
            # Cumulative counts from the top bucket down: sum over t of I(b_t >= j).
            n_at = np.cumsum(retrieved[:, ::-1], axis=1)[:, ::-1]
            tp_at = np.cumsum(pos[:, ::-1], axis=1)[:, ::-1]
            precision = tp_at / np.maximum(n_at, 1)  # P = 0 where nothing is retrieved
            g = self._positives[lo:hi]
            # R(tau_j) - R(tau_{j+1}) = (positives in bucket j) / G, R(tau_10001) = 0.
            with np.errstate(divide="ignore", invalid="ignore"):
                block = (precision * pos).sum(axis=1) / g
            ap[lo:hi] = np.where(g > 0, block, np.nan)
        return ap

    def mean_average_precision(self) -> float:
        ap = self.average_precisions()
        valid = ~np.isnan(ap)
        return float(ap[valid].mean()) if valid.any() else float("nan")

    def hit_at_k(self, k: int) -> float:
        if k not in self._hits:
            raise ValueError(f"Hit@{k} was not tracked; make the accumulator with hit_ks "
                             f"including {k} (tracked: {list(self.hit_ks)})")
        return self._hits[k] / self._rows if self._rows else float("nan")

    def precision_at_equal_recall_rate(self) -> float:
        return self._perr_sum / self._perr_rows if self._perr_rows else float("nan")

    def global_average_precision(self) -> float:
        total_pos = int(self._positives.sum())
        if not self._gap_scores or total_pos == 0:
            return float("nan")
        return _grouped_average_precision(np.concatenate(self._gap_scores),
                                          np.concatenate(self._gap_labels), total_pos)

    def result(self) -> dict:
        """``map``, ``hit_at_K`` for each tracked K, ``perr``, ``gap``, ``num_examples``."""
        out = {"map": self.mean_average_precision()}
        for k in self.hit_ks:
            out[f"hit_at_{k}"] = self.hit_at_k(k)
        out["perr"] = self.precision_at_equal_recall_rate()
        out["gap"] = self.global_average_precision()
        out["num_examples"] = self._rows
        out["num_classes_with_positives"] = int((self._positives > 0).sum())
        return out


def _grouped_average_precision(scores: np.ndarray, labels: np.ndarray, num_positives: int) -> float:
    """AP of one ranked list where tied scores are retrieved as one group."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order].astype(np.int64)
    # The last position of each run of equal scores closes a group.
    ends = np.nonzero(np.append(s[1:] != s[:-1], True))[0]
    tp = np.cumsum(y)[ends]
    retrieved = ends + 1
    new_pos = np.diff(np.concatenate([[0], tp]))
    return float((tp / retrieved * new_pos).sum() / num_positives)


# ---------------------------------------------------------------------------
# Functional API
# ---------------------------------------------------------------------------
def _accumulate(predictions, labels, **kw) -> EvaluationAccumulator:
    p, y = _check(predictions, labels)
    acc = EvaluationAccumulator(p.shape[1], **kw)
    acc.add(p, y)
    return acc


def average_precisions(predictions, labels) -> np.ndarray:
    """Per-class average precision of equation 10 (NaN where a class has no positive)."""
    return _accumulate(predictions, labels, hit_ks=(1,)).average_precisions()


def mean_average_precision(predictions, labels) -> float:
    """Mean average precision, exactly equations 8-10 of the paper.

    For each class, scores are rounded to the nearest 1e-4 bucket; at each
    threshold tau_j = j / 10000 (j = 1..10000) the precision P(tau_j)
    (equation 8) and recall R(tau_j) (equation 9) count the scores at or above
    tau_j, so a score rounded to 0 is never retrieved (the "non-zero
    annotations") while its positive still counts in the recall's
    denominator. AP = sum_j P(tau_j) (R(tau_j) - R(tau_{j+1})) with
    R(tau_10001) = 0 (equation 10); scores above 1 fall in the top bucket.
    The result is the unweighted mean over classes with at least one positive
    (NaN when no class has one).
    """
    return _accumulate(predictions, labels, hit_ks=(1,)).mean_average_precision()


def hit_at_k(predictions, labels, k: int = 1) -> float:
    """Hit@k, equation 11: the fraction of videos with a label among the top k.

    The rank of a class is the number of classes scoring at least as high
    (ties count against the model). Every row counts, as in equation 11, so a
    row without labels is a miss.
    """
    return _accumulate(predictions, labels, hit_ks=(int(k),)).hit_at_k(int(k))


def precision_at_equal_recall_rate(predictions, labels) -> float:
    """PERR (section 5.1): per video, the fraction of its |G_v| labels ranked
    within the top |G_v| (ties counted against the model), averaged over the
    videos that have at least one label (rows with no label are left out, as
    in the paper; NaN if no row has one)."""
    return _accumulate(predictions, labels, hit_ks=(1,)).precision_at_equal_recall_rate()


def global_average_precision(predictions, labels, top_k: int = 20) -> float:
    """GAP of the YouTube-8M challenges.

    The top ``top_k`` predictions of every video are pooled into one list
    sorted by score; GAP = sum_i P(i) * rel(i) / M where P(i) is the precision
    of the list down to i, rel(i) whether i is a true label and M the number
    of true labels of all videos (labels ranked below top_k lower the recall).
    Tied scores are retrieved as one group (see the module docstring).
    """
    return _accumulate(predictions, labels, hit_ks=(1,), top_k=top_k).global_average_precision()


def evaluate(predictions, labels, hit_ks: Iterable[int] = (1, 5), top_k: int = 20) -> dict:
    """All metrics at once: ``map``, ``hit_at_K``, ``perr``, ``gap``, ``num_examples``."""
    return _accumulate(predictions, labels, hit_ks=tuple(hit_ks), top_k=top_k).result()


def top_k_predictions(predictions: np.ndarray, k: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, scores)`` of the k best classes of each row, best first."""
    p = np.asarray(predictions)
    k = min(k, p.shape[1])
    idx = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(p, idx, axis=1)


__all__ = ["EvaluationAccumulator", "average_precisions", "mean_average_precision",
           "hit_at_k", "precision_at_equal_recall_rate", "global_average_precision",
           "evaluate", "top_k_predictions", "MAP_BUCKETS"]
