"""Divergence is an error, not a model.

A training run whose loss became NaN/Inf, or whose model scores every
validate video the same way (constant outputs, or the same top class with a
saturated sigmoid at 1.0), has not learned anything: it must not be written
as a success. :class:`ScoreHealth` watches the validate scores batch by batch
(memory independent of N) and :meth:`ScoreHealth.verdict` says whether they
look diverged and why; :func:`loss_verdict` does the same for the losses.
NumPy only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

STATUS_OK = "ok"
STATUS_DIVERGED = "diverged"

# float32 sigmoid reaches exactly 1.0 at logits >= ~17: a score this close to
# 1 for every video's top class is a saturated output, not a confident model.
SATURATED = 1.0 - 1e-6
# Scores that vary less than this across all videos are constants.
CONSTANT_SPREAD = 1e-6


@dataclass
class Verdict:
    status: str                 # STATUS_OK or STATUS_DIVERGED
    reason: Optional[str] = None

    @property
    def diverged(self) -> bool:
        return self.status == STATUS_DIVERGED


def advice(learning_rate: float, batch_size: int) -> str:
    """What to change, for the console and metrics.json."""
    return (f"lower --learning_rate (now {learning_rate:g}; try {learning_rate / 10:g}), raise "
            f"--batch_size (now {batch_size}), and keep the 4.2.2 normalisation on (no "
            f"--no_normalize)")


def loss_verdict(losses: Sequence[float]) -> Verdict:
    bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
    if bad:
        return Verdict(STATUS_DIVERGED, f"the training loss became {losses[bad[0]]} at epoch "
                                        f"{bad[0] + 1} (losses {list(losses)})")
    return Verdict(STATUS_OK)


class ScoreHealth:
    """Streaming check of a model's ``(N, C)`` scores for divergence."""

    def __init__(self, num_classes: int):
        self.num_classes = int(num_classes)
        self.n = 0
        self.non_finite = 0
        self.saturated_top = 0              # videos whose best score >= SATURATED
        self.top_counts = np.zeros(self.num_classes, np.int64)
        self.lo = np.full(self.num_classes, np.inf)
        self.hi = np.full(self.num_classes, -np.inf)

    def add(self, scores) -> None:
        p = np.asarray(scores, np.float64)
        if p.ndim != 2 or p.shape[1] != self.num_classes:
            raise ValueError(f"scores {p.shape} must be (N, {self.num_classes})")
        if not len(p):
            return
        finite = np.isfinite(p).all(axis=1)
        self.non_finite += int((~finite).sum())
        self.n += len(p)
        p = p[finite]
        if not len(p):
            return
        top = p.argmax(axis=1)
        self.top_counts += np.bincount(top, minlength=self.num_classes)
        self.saturated_top += int((p.max(axis=1) >= SATURATED).sum())
        self.lo = np.minimum(self.lo, p.min(axis=0))
        self.hi = np.maximum(self.hi, p.max(axis=0))

    def summary(self) -> dict:
        ok = self.n - self.non_finite
        return {"videos": self.n, "non_finite_videos": self.non_finite,
                "saturated_top_fraction": self.saturated_top / ok if ok else None,
                "top1_classes": int(np.count_nonzero(self.top_counts)),
                "max_score_spread": float((self.hi - self.lo).max()) if ok else None}

    def verdict(self) -> Verdict:
        if self.non_finite:
            return Verdict(STATUS_DIVERGED, f"{self.non_finite} of {self.n} validate videos got "
                                            f"NaN/Inf scores")
        if self.n < 2:
            return Verdict(STATUS_OK)     # nothing to compare across videos
        spread = float((self.hi - self.lo).max())
        if spread < CONSTANT_SPREAD:
            return Verdict(STATUS_DIVERGED, f"the model gives all {self.n} validate videos the "
                                            f"same scores (spread {spread:.3g}): it predicts "
                                            f"constants")
        one_top = int(np.count_nonzero(self.top_counts)) == 1
        if one_top and self.num_classes > 1 and self.saturated_top == self.n:
            cls = int(self.top_counts.argmax())
            return Verdict(STATUS_DIVERGED, f"every validate video gets class {cls} on top with a "
                                            f"saturated score (>= {SATURATED}): the outputs "
                                            f"saturated")
        return Verdict(STATUS_OK)


__all__ = ["ScoreHealth", "Verdict", "loss_verdict", "advice", "STATUS_OK", "STATUS_DIVERGED"]
