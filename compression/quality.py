"""The compression quality report saved beside the artifacts.

For held-out raw frames, each quantizer (``lloyd`` and ``uniform`` side by
side) is measured on exactly the values the writers encode
(``codec.whiten_frames``): mean squared error and SNR of the whitened
coefficients, overall and per dimension, the fraction of values outside the
quantizer's clip range, and the relative error of the reconstruction in the raw
2048-d space (PCA truncation included; the PCA-only figure is given too). The
statistics are sums, so ``QualityCombiner`` is mergeable like the fit
accumulators; ``quality_report`` runs it over an iterable of batches, and
``sample_report`` over a deterministic bounded sample of held-out frames
(``compression.heldout``), which is what a build reports.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Iterable, Mapping, Optional

import numpy as np

from yt8m import fs
from yt8m.compression import codec
from yt8m.compression.pca import PCAWhitening
from yt8m.compression.quantize import Quantizer


@dataclasses.dataclass
class QualityAccumulator:
    n_frames: int = 0
    power: Optional[np.ndarray] = None        # (K,) sum of y^2
    raw_energy: float = 0.0                   # sum ||x - mean||^2 (raw space)
    pca_raw_err: float = 0.0                  # sum ||x - inverse(y)||^2
    sq_err: dict = dataclasses.field(default_factory=dict)      # method -> (K,)
    clipped: dict = dataclasses.field(default_factory=dict)     # method -> int
    raw_err: dict = dataclasses.field(default_factory=dict)     # method -> float


class QualityCombiner:
    """create / add (raw frames) / merge / extract (the report dict)."""

    def __init__(self, pca: PCAWhitening, quantizers: Mapping[str, Quantizer]):
        if not quantizers:
            raise ValueError("quality report: give at least one quantizer.")
        self.pca, self.quantizers = pca, dict(quantizers)

    def create_accumulator(self) -> QualityAccumulator:
        return QualityAccumulator()

    def add_input(self, acc: QualityAccumulator, raw) -> QualityAccumulator:
        x = np.atleast_2d(np.asarray(raw))
        if x.shape[0] == 0:
            return acc
        y = codec.whiten_frames(x, self.pca).astype(np.float64)
        x = codec.round_like_cache(x).astype(np.float64)
        k = y.shape[1]
        if acc.power is None:
            acc.power = np.zeros(k)
        acc.n_frames += x.shape[0]
        acc.power += (y * y).sum(axis=0)
        acc.raw_energy += float(((x - self.pca.mean) ** 2).sum())
        acc.pca_raw_err += float(((x - self.pca.inverse_transform(y)) ** 2).sum())
        for name, q in self.quantizers.items():
            y_hat = q.decode(q.encode(y, check_finite=False)).astype(np.float64)
            lo, hi = q.clip_range
            acc.sq_err[name] = acc.sq_err.get(name, 0.0) + ((y_hat - y) ** 2).sum(axis=0)
            acc.clipped[name] = acc.clipped.get(name, 0) + int(((y < lo) | (y > hi)).sum())
            err = float(((x - self.pca.inverse_transform(y_hat)) ** 2).sum())
            acc.raw_err[name] = acc.raw_err.get(name, 0.0) + err
        return acc

    def merge_accumulators(self, accumulators: Iterable[QualityAccumulator]
                           ) -> QualityAccumulator:
        accs = list(accumulators)
        out = accs[0] if accs else self.create_accumulator()
        for other in accs[1:]:
            if not other.n_frames:
                continue
            if out.power is None:
                out.power = np.zeros_like(other.power)
            out.n_frames += other.n_frames
            out.power += other.power
            out.raw_energy += other.raw_energy
            out.pca_raw_err += other.pca_raw_err
            for name in other.sq_err:
                out.sq_err[name] = out.sq_err.get(name, 0.0) + other.sq_err[name]
                out.clipped[name] = out.clipped.get(name, 0) + other.clipped[name]
                out.raw_err[name] = out.raw_err.get(name, 0.0) + other.raw_err[name]
        return out

    def extract_output(self, acc: QualityAccumulator) -> dict:
        if not acc.n_frames:
            raise ValueError("quality report: no held-out frames; pass frames that were "
                             "not used to fit the PCA and the quantizer.")
        n, k, d = acc.n_frames, self.pca.n_components, self.pca.dim
        power_dim = acc.power / n
        report = {
            "n_frames": n,
            "input_dim": d,
            "n_components": k,
            "bytes_per_frame": {"before": d * 4, "after": k, "ratio": d * 4 / k},
            "signal_power": float(power_dim.mean()),
            "pca_only_raw_relative_mse": _ratio(acc.pca_raw_err, acc.raw_energy),
            "methods": {},
        }
        for name, q in self.quantizers.items():
            mse_dim = acc.sq_err[name] / n
            mse = float(mse_dim.mean())
            report["methods"][name] = {
                "mse": mse,
                "snr_db": _snr_db(float(power_dim.mean()), mse),
                "clipped_fraction": acc.clipped[name] / (n * k),
                "clip_range": list(q.clip_range),
                "raw_relative_mse": _ratio(acc.raw_err[name], acc.raw_energy),
                "per_dimension": {
                    "mse": [float(v) for v in mse_dim],
                    "snr_db": [_snr_db(float(p), float(m)) for p, m in zip(power_dim, mse_dim)],
                },
            }
        if {"lloyd", "uniform"} <= set(self.quantizers):
            report["lloyd_mse_over_uniform"] = _ratio(report["methods"]["lloyd"]["mse"],
                                                      report["methods"]["uniform"]["mse"])
        return report


def _snr_db(power: float, mse: float) -> Optional[float]:
    """None stands for an infinite or undefined SNR (JSON has no infinity)."""
    if mse <= 0 or power <= 0:
        return None
    return 10.0 * math.log10(power / mse)


def _ratio(a: float, b: float) -> Optional[float]:
    return float(a / b) if b > 0 else None


def quality_report(heldout, pca: PCAWhitening, quantizer: Quantizer,
                   uniform: Optional[Quantizer] = None) -> dict:
    """The report for ``heldout`` (one (n, D) array or an iterable of them):
    ``quantizer`` (keyed by its method, normally ``lloyd``) side by side with
    ``uniform`` (the released convention when not given; a ``uniform``
    quantizer is reported once)."""
    quantizers = {quantizer.method: quantizer}
    quantizers.setdefault("uniform", uniform or Quantizer.uniform())
    combiner = QualityCombiner(pca, quantizers)
    acc = combiner.create_accumulator()
    batches = [heldout] if isinstance(heldout, np.ndarray) else heldout
    for batch in batches:
        combiner.add_input(acc, batch)
    return combiner.extract_output(acc)


def write_quality_report(path: str, heldout, pca: PCAWhitening, quantizer: Quantizer,
                         uniform: Optional[Quantizer] = None) -> dict:
    """Computes the report and writes it as JSON to ``path`` atomically; returns it."""
    report = quality_report(heldout, pca, quantizer, uniform)
    save_report(path, report)
    return report


def save_report(path: str, report: dict) -> None:
    data = json.dumps(report, indent=1, allow_nan=False).encode("utf-8")
    fs.atomic_write(path, data)


def sample_report(sample, pca: Optional[PCAWhitening], quantizer: Optional[Quantizer],
                  splits=("validate", "test")) -> dict:
    """The report on a ``compression.heldout.FrameSample``, with what it was
    measured on under ``held_out``; a short note instead when nothing was fit
    (``pca`` or ``quantizer`` None) or no held-out frame was seen."""
    if pca is None or quantizer is None:
        return {"held_out_frames": 0, "note": "nothing was fit (no train frames)"}
    if sample.n_frames == 0:
        return {"held_out_frames": 0,
                "note": f"no {' or '.join(splits)} frames to measure the quantization on"}
    report = quality_report(sample.frames, pca, quantizer)
    report["held_out"] = {
        "frames_seen": dict(sample.seen),
        "frames_measured": sample.n_frames,
        "selection": (f"the {sample.n_frames} frames of smallest hash of (video id, frame "
                      f"index), {' before '.join(splits)}"),
    }
    return report
