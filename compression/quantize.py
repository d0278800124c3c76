"""8-bit scalar quantization of whitened coefficients.

* ``HistogramCombiner`` / ``HistogramAccumulator``: a mergeable fine histogram
  of values on a fixed range ``[-R, R]`` (default R = 8, 65,536 bins of width
  2.4e-4), keeping per bin the count, the sum and the sum of squares, plus one
  underflow and one overflow tally with their own sums. Sums make every
  centroid computed from the histogram exact; only the decision boundaries are
  snapped to bin centres while fitting (the saved boundaries are the exact
  midpoints of the final levels). The sums are exact integers on fixed grids
  (see ``HistogramCombiner``), so the histogram of a set of values is the same
  bit for bit whatever the order, batching or merging of the values. Memory is
  fixed (about 5 MB at the default size) whatever the number of values.
* ``lloyd_max``: Lloyd-Max iterations on such histograms (one row per
  codebook), started from equal-mass cells.
* ``Quantizer``: ``boundaries`` (L-1,) and ``levels`` (L,) float32;
  ``encode(x) -> uint8`` is the number of boundaries <= x (``searchsorted``
  semantics, computed with a lookup table, see ``_TableEncoder``), ``decode(q)``
  is ``levels[q]``. ``method="uniform"`` is the released YouTube-8M convention
  (clip to [-2, 2], 256 levels) with levels equal, bit for bit, to the released
  reader's ``Dequantize`` and each value encoded to its nearest level, so
  ``decode(encode(x))`` has no half-step bias.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Optional

import numpy as np

from yt8m.compression import _io
from yt8m.compression.exact import ExactSum
from yt8m.compression.pca import check_finite

DEFAULT_RANGE = 8.0
DEFAULT_BINS = 1 << 16
DEFAULT_MAX_ITER = 3000
METHODS = ("lloyd", "uniform")
QUANTIZER_KEYS = ("boundaries", "levels")

# The released convention (youtube-8m readers' Dequantize defaults).
UNIFORM_MIN, UNIFORM_MAX = -2.0, 2.0


# ---- the histogram accumulator ----------------------------------------------
# A fine bin spans at most 2**BIN_BITS steps of its fixed-point grid.
BIN_BITS = 26
_HALF_BITS = BIN_BITS // 2
# Values per np.bincount call: every per-bin sum of terms < 2**27 stays an
# exact float64 integer (< 2**51).
_CHUNK = 1 << 24
# Tail values (beyond [-R, R]) are summed exactly up to this magnitude.
TAIL_LIMIT_EXP = 64


@dataclasses.dataclass
class HistogramAccumulator:
    """Per codebook row, over ``n_bins + 2`` pseudo-bins (0: values < -R,
    1..n_bins: the fine bins, n_bins+1: >= R): exact counts; for the fine bins
    exact integer sums of each value's offset ``t`` on the bin's fixed-point
    grid and of ``t**2`` (in three 13-bit cross terms); for the two tails exact
    sums of the values and of their squares (``compression.exact.ExactSum``)."""
    counts: Optional[np.ndarray] = None   # (rows, n_bins + 2) int64
    t1: Optional[ExactSum] = None         # (rows, n_bins): sum t
    t_hh: Optional[ExactSum] = None       # sum th**2        (t = th * 2**13 + tl)
    t_hl: Optional[ExactSum] = None       # sum th * tl
    t_ll: Optional[ExactSum] = None       # sum tl**2
    tail_sum: Optional[ExactSum] = None   # (rows, 2): sum v beyond -R / R
    tail_sumsq: Optional[ExactSum] = None
    inputs_seen: int = 0


@dataclasses.dataclass(frozen=True)
class Histogram:
    value_range: float
    counts: np.ndarray
    sums: np.ndarray
    sumsq: np.ndarray

    @property
    def n_bins(self) -> int:
        return self.counts.shape[1] - 2

    @property
    def total(self) -> float:
        return float(self.counts.sum())

    @property
    def centres(self) -> np.ndarray:
        w = 2.0 * self.value_range / self.n_bins
        return -self.value_range + (np.arange(self.n_bins) + 0.5) * w


class HistogramCombiner:
    """Pure-NumPy combiner for the Lloyd-Max summary.

    ``per_dimension=False`` pools every value of every input into one
    histogram (one global codebook); ``True`` keeps one histogram per column
    of (n, D) inputs (used to measure whether per-dimension codebooks pay off).

    Exactness. A value's position in bin units, ``u = (v + R) * n_bins / (2R)``
    (the float64 expression that picks its bin ``k = floor(u)``), is rounded
    to a fixed grid of ``2**-26`` of a bin: its offset ``t = rint(u * 2**26) -
    k * 2**26`` is an integer in ``[0, 2**26]`` and the value stands for the
    grid point ``-R + width * (k + t / 2**26)``, within 1.8e-12 of ``v`` at the
    default size (values on the grid, such as 0 or 0.5, exactly). The count, ``sum t`` and ``sum t**2`` of each bin are integer
    sums: ``np.bincount`` computes them exactly in chunks and ``ExactSum``
    accumulates them exactly, so the histogram's ``sums`` and ``sumsq`` (one
    fixed float64 computation from those integers) depend on the multiset of
    values only, not on their order, batching or merging. Tail values are
    summed as they are, on grids fine enough for every float64 beyond R
    (``ExactSum``); a value beyond +-2**64 raises.
    """

    def __init__(self, value_range: float = DEFAULT_RANGE, n_bins: int = DEFAULT_BINS,
                 per_dimension: bool = False):
        if not (np.isfinite(value_range) and value_range > 0):
            raise ValueError(f"value_range must be a positive number, got {value_range}.")
        if n_bins < 2:
            raise ValueError(f"n_bins must be >= 2, got {n_bins}.")
        if n_bins > 1 << 24:
            raise ValueError(f"n_bins must be <= 2**24 for an exact histogram, got {n_bins}.")
        self.value_range, self.n_bins = float(value_range), int(n_bins)
        self.per_dimension = bool(per_dimension)
        # Tails: |v| >= R, so every float64 tail value is a multiple of
        # 2**(e_R - 52) and its square of 2**(2 e_R - 53), e_R = floor(log2 R).
        e_r = int(np.floor(np.log2(self.value_range)))
        self._tail_grids = (e_r - 52, 2 * e_r - 53)

    def create_accumulator(self) -> HistogramAccumulator:
        return HistogramAccumulator()

    def _fill(self, acc: HistogramAccumulator, rows: int) -> None:
        nb = self.n_bins
        acc.counts = np.zeros((rows, nb + 2), np.int64)
        acc.t1, acc.t_hh, acc.t_hl, acc.t_ll = (ExactSum((rows, nb), 0, parts=2, bits=32)
                                                 for _ in range(4))
        lo1, lo2 = self._tail_grids
        # Terms below 2**64 (squares 2**128), totals up to 2**44 times that.
        acc.tail_sum = ExactSum((rows, 2), lo1, parts=-(-(TAIL_LIMIT_EXP - lo1) // 32), bits=32)
        acc.tail_sumsq = ExactSum((rows, 2), lo2, parts=-(-(2 * TAIL_LIMIT_EXP - lo2) // 32),
                                  bits=32)

    def add_input(self, acc: HistogramAccumulator, values, name: Optional[str] = None
                  ) -> HistogramAccumulator:
        what = name or f"input #{acc.inputs_seen} (0-based, in the order added)"
        acc.inputs_seen += 1
        v = np.asarray(values)
        if not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)):
            raise ValueError(f"{what}: expected numeric values, got dtype {v.dtype}.")
        if self.per_dimension:
            if v.ndim == 1:
                v = v[None, :]
            if v.ndim != 2:
                raise ValueError(f"{what}: per-dimension histograms take (n, D) arrays, "
                                 f"got shape {v.shape}.")
            rows = v.shape[1]
        else:
            v = v.reshape(1, -1)
            rows = 1
        if acc.counts is not None and acc.counts.shape[0] != rows:
            raise ValueError(f"{what}: has {rows} columns, earlier inputs had "
                             f"{acc.counts.shape[0]}; every input must have the same size.")
        if v.size == 0:
            return acc
        big = np.abs(v).max()
        if not np.isfinite(big):
            check_finite(v.reshape(v.shape[0], -1), what)
        if not big < 2.0 ** TAIL_LIMIT_EXP:
            raise ValueError(f"{what}: holds {float(big):.4g}, beyond +-2**{TAIL_LIMIT_EXP} "
                             f"(1.8e19), which the histogram cannot sum exactly; whitened "
                             f"values that large mean the PCA or the features are broken.")
        if acc.counts is None:
            self._fill(acc, rows)
        v = v.astype(np.float64).ravel()
        r, nb = self.value_range, self.n_bins
        u = v + r
        u *= nb / (2.0 * r)
        lo_u, hi_u = float(u.min()), float(u.max())
        if lo_u >= 0 and hi_u < nb:       # no tail values: no masks, no copies
            self._add_fine(acc, rows, u, None, what)
            return acc
        fine = (u >= 0) & (u < nb)
        self._add_fine(acc, rows, u[fine], np.flatnonzero(fine), what)
        tail = np.flatnonzero(~fine)
        t_idx = (u[tail] >= nb).astype(np.int64)
        if rows > 1:
            t_idx += 2 * (tail % rows)
        vt = v[tail]
        acc.counts[:, [0, -1]] += np.bincount(t_idx, minlength=2 * rows).reshape(rows, 2)
        acc.tail_sum.add_at(t_idx, vt, what)
        acc.tail_sumsq.add_at(t_idx, vt * vt, what)
        return acc

    def _add_fine(self, acc, rows, u, where, what) -> None:
        """Adds fine-bin values given by their positions ``u`` in bin units
        (``where``: their flat positions in the input, None for all of them)."""
        if not u.size:
            return
        nb = self.n_bins
        k = np.floor(u)                   # the bin, as the plain formula picks it
        t = u * 2.0 ** BIN_BITS
        np.rint(t, out=t)
        t -= k * 2.0 ** BIN_BITS          # in [0, 2**26]: exact integers
        flat = k.astype(np.intp)
        if rows > 1:
            pos = np.arange(u.size) if where is None else where
            flat += (pos % rows) * nb
        th = t * 2.0 ** -_HALF_BITS
        np.floor(th, out=th)
        tl = t - th * 2.0 ** _HALF_BITS
        size = rows * nb
        for start in range(0, flat.size, _CHUNK):
            ii = flat[start:start + _CHUNK]
            part = slice(start, start + _CHUNK)
            counts = np.bincount(ii, minlength=size)
            acc.counts[:, 1:-1] += counts.astype(np.int64).reshape(rows, nb)
            hh, hl, ll = th[part] * th[part], th[part] * tl[part], tl[part] * tl[part]
            for target, w in ((acc.t1, t[part]), (acc.t_hh, hh), (acc.t_hl, hl),
                              (acc.t_ll, ll)):
                target.add(np.bincount(ii, weights=w, minlength=size).reshape(rows, nb), what)

    def merge_accumulators(self, accumulators: Iterable[HistogramAccumulator]
                           ) -> HistogramAccumulator:
        out = HistogramAccumulator()
        names = ("t1", "t_hh", "t_hl", "t_ll", "tail_sum", "tail_sumsq")
        for other in accumulators:
            out.inputs_seen += other.inputs_seen
            if other.counts is None:
                continue
            if out.counts is None:
                out.counts = other.counts.copy()
                for n in names:
                    setattr(out, n, getattr(other, n).copy())
                continue
            if out.counts.shape != other.counts.shape:
                raise ValueError(f"cannot merge histograms of shapes {out.counts.shape} and "
                                 f"{other.counts.shape}; inputs must have the same size.")
            out.counts += other.counts
            for n in names:
                getattr(out, n).merge(getattr(other, n))
        return out

    def compact(self, acc: HistogramAccumulator) -> HistogramAccumulator:
        if acc.counts is not None:
            for n in ("t1", "t_hh", "t_hl", "t_ll", "tail_sum", "tail_sumsq"):
                getattr(acc, n).normalize()
        return acc

    def extract_output(self, acc: HistogramAccumulator) -> Histogram:
        nb = self.n_bins
        if acc.counts is None:
            z = np.zeros((1, nb + 2))
            return Histogram(self.value_range, z, z.copy(), z.copy())
        counts = acc.counts.astype(np.float64)
        n = counts[:, 1:-1]
        r = self.value_range
        width = 2.0 * r / nb
        start = -r + np.arange(nb) * width          # a: where each fine bin starts
        step = width * 2.0 ** -BIN_BITS             # b: one grid step
        t1 = acc.t1.value()
        t2 = (acc.t_hh.value() * 2.0 ** BIN_BITS + acc.t_hl.value() * 2.0 ** (_HALF_BITS + 1)
              + acc.t_ll.value())
        sums = np.empty_like(counts)
        sumsq = np.empty_like(counts)
        # Values a + b t: one fixed float64 computation from exact integers.
        sums[:, 1:-1] = n * start + step * t1
        sumsq[:, 1:-1] = n * (start * start) + 2.0 * start * step * t1 + step * step * t2
        sums[:, [0, -1]] = acc.tail_sum.value()
        sumsq[:, [0, -1]] = acc.tail_sumsq.value()
        return Histogram(self.value_range, counts, sums + 0.0, sumsq + 0.0)


# ---- Lloyd-Max on histograms --------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LloydResult:
    boundaries: np.ndarray   # (rows, L-1) float64, midpoints of the levels
    levels: np.ndarray       # (rows, L) float64
    mse: np.ndarray          # (rows,) mean squared error on the histogram's values
    iterations: int
    converged: bool


def lloyd_max(hist: Histogram, n_levels: int = 256, max_iter: int = DEFAULT_MAX_ITER
              ) -> LloydResult:
    """Lloyd-Max codebooks, one per histogram row, vectorised across rows.

    Cells are contiguous runs of pseudo-bins ``[t_i, t_{i+1})``: a level is the
    exact centroid of its cell (from the per-bin sums), a boundary moves to the
    bin centre nearest the midpoint of its two levels; iterations stop when no
    boundary moves. Values beyond ``[-R, R]`` always belong to the outer cells.
    """
    counts, sums, sumsq = hist.counts, hist.sums, hist.sumsq
    rows, p = counts.shape
    nb, r = hist.n_bins, hist.value_range
    w = 2.0 * r / nb
    if np.any(counts.sum(axis=1) <= 0):
        raise ValueError("Lloyd-Max fit: a histogram holds no values; fit on at least "
                         "one finite value per codebook.")
    zeros = np.zeros((rows, 1))
    cc = np.concatenate([zeros, np.cumsum(counts, axis=1)], axis=1)
    cs = np.concatenate([zeros, np.cumsum(sums, axis=1)], axis=1)
    cq = np.concatenate([zeros, np.cumsum(sumsq, axis=1)], axis=1)
    centres = hist.centres
    first, last = np.zeros((rows, 1), np.int64), np.full((rows, 1), p, np.int64)

    def cells(t):
        full = np.concatenate([first, t, last], axis=1)
        lo, hi = full[:, :-1], full[:, 1:]
        take = lambda c: (np.take_along_axis(c, hi, axis=1)  # noqa: E731
                          - np.take_along_axis(c, lo, axis=1))
        return lo, hi, take(cc), take(cs), take(cq)

    def centroids(t):
        lo, hi, n, s, _ = cells(t)
        # An empty cell keeps the middle of its value range, which keeps the
        # levels sorted (neighbouring centroids lie on either side of it).
        pos = lambda k: -r + np.clip(k - 1, 0, nb) * w  # noqa: E731
        middle = 0.5 * (pos(lo) + pos(hi))
        return np.where(n > 0, s / np.where(n > 0, n, 1.0), middle)

    t = _compander_start(counts, n_levels)
    converged, it = False, 0
    for it in range(1, max_iter + 1):
        levels = centroids(t)
        mids = 0.5 * (levels[:, 1:] + levels[:, :-1])
        t_new = np.clip(1 + np.searchsorted(centres, mids, side="left"), 1, p - 1)
        if np.array_equal(t_new, t):
            converged = True
            break
        t = t_new
    levels = centroids(t)
    _, _, n, s, q = cells(t)
    mse = (q - 2.0 * levels * s + levels * levels * n).sum(axis=1) / cc[:, -1]
    mids = 0.5 * (levels[:, 1:] + levels[:, :-1])
    return LloydResult(mids, levels, np.maximum(mse, 0.0), it, converged)


def _compander_start(counts: np.ndarray, n_levels: int, coarse_bins: int = 512
                     ) -> np.ndarray:
    """Initial cells with the asymptotically optimal point density (Panter &
    Dite: levels spaced as density^(1/3)).

    Lloyd's updates shrink geometrically but slowly for 256 levels, and on a
    binned summary they stall once a boundary's move is under half a bin, so
    the start matters: from equal-mass cells (quantiles) Lloyd stalls at about
    twice the optimal MSE on Gaussian data, from this start it ends within a
    few percent of it. The density is taken on ``coarse_bins`` coarse bins (a
    fine bin's count is too noisy for a cube root) and spread evenly over the
    fine bins inside each.
    """
    rows, p = counts.shape
    nb = p - 2
    group = max(1, nb // coarse_bins)
    n_coarse = -(-nb // group)
    padded = np.zeros((rows, n_coarse * group))
    padded[:, :nb] = counts[:, 1:-1]
    coarse = padded.reshape(rows, n_coarse, group).sum(axis=2)
    fine = np.repeat(np.cbrt(coarse) / group, group, axis=1)[:, :nb]
    # The under/overflow tallies get the weight of one coarse bin of their mass.
    g = np.concatenate([np.cbrt(counts[:, :1]), fine, np.cbrt(counts[:, -1:])], axis=1)
    cg = np.concatenate([np.zeros((rows, 1)), np.cumsum(g, axis=1)], axis=1)
    targets = cg[:, -1:] * (np.arange(1, n_levels) / n_levels)
    t = np.stack([np.searchsorted(cg[i], targets[i], side="left") for i in range(rows)])
    return np.clip(t, 1, p - 1).astype(np.int64)


# ---- the fast encoder -----------------------------------------------------------
class _TableEncoder:
    """``#{boundaries <= y}`` for float32 ``y`` in a few vectorised passes.

    A uniform grid of cells covers the boundaries. The cell of a value is
    computed by ``cell(y) = int(clip((y - lo) * inv_h, 0, G - 1))`` in float32;
    the boundaries' own cells are computed by the same function, and since it
    is monotone, every boundary in a lower cell is <= y and every boundary in a
    higher cell is > y. So the code is a table lookup (boundaries in lower
    cells) plus one comparison per boundary sharing y's cell; the grid is fine
    enough that a cell rarely holds more than one. Results are identical to
    ``np.searchsorted(boundaries, y, side="right")``, which is the fallback
    when boundaries are too crowded for a table.
    """
    MAX_CELLS = 1 << 16
    MAX_PER_CELL = 4

    def __init__(self, boundaries: np.ndarray):
        b = np.asarray(boundaries, dtype=np.float32)
        self.boundaries = b
        self.table = None
        span = float(b[-1]) - float(b[0])
        gaps = np.diff(b.astype(np.float64))
        gaps = gaps[gaps > 0]
        if span <= 0 or gaps.size == 0:
            return
        n_cells = int(min(self.MAX_CELLS, np.ceil(2.0 * span / gaps.min()) + 2))
        self.lo = np.float32(b[0])
        self.inv_h = np.float32((n_cells - 1) / span)
        self.top = np.float32(n_cells - 1)
        cb = self.cells(b)
        per_cell = np.bincount(cb, minlength=n_cells)
        k = int(per_cell.max())
        if k > self.MAX_PER_CELL:
            return
        # lower[c] = number of boundaries in cells below c.
        self.lower = np.searchsorted(cb, np.arange(n_cells), side="left").astype(np.uint8)
        self.same = np.full((k, n_cells), np.inf, dtype=np.float32)
        rank_in_cell = np.arange(len(b)) - np.searchsorted(cb, cb, side="left")
        self.same[rank_in_cell, cb] = b
        self.table = True

    def cells(self, y: np.ndarray) -> np.ndarray:
        c = np.subtract(y, self.lo, dtype=np.float32)
        c *= self.inv_h
        np.clip(c, 0, self.top, out=c)
        return c.astype(np.intp)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float32)
        if self.table is None:
            return np.searchsorted(self.boundaries, y, side="right").astype(np.uint8)
        c = self.cells(y)
        code = self.lower.take(c)
        for row in self.same:
            code += y >= row.take(c)
        return code


# ---- the quantizer --------------------------------------------------------------
def uniform_levels() -> np.ndarray:
    """The released reader's ``Dequantize(q, max=2, min=-2)`` for q = 0..255,
    computed as it computes it: ``float32(q) * (range / 255) + (range / 512 + min)``
    in float32."""
    rng_ = UNIFORM_MAX - UNIFORM_MIN
    scalar, bias = np.float32(rng_ / 255.0), np.float32(rng_ / 512.0 + UNIFORM_MIN)
    return np.arange(256, dtype=np.float32) * scalar + bias


class Quantizer:
    """Scalar quantizer: ``boundaries`` (L-1,) and ``levels`` (L,), float32,
    L <= 256; ``encode(x)[i] = #{boundaries <= x[i]}``, ``decode(q) = levels[q]``."""

    def __init__(self, boundaries, levels, method: str = "lloyd",
                 info: Optional[dict] = None):
        b = np.asarray(boundaries, dtype=np.float32)
        lv = np.asarray(levels, dtype=np.float32)
        if b.ndim != 1 or lv.ndim != 1 or lv.shape[0] != b.shape[0] + 1:
            raise ValueError(f"Quantizer: boundaries must be (L-1,) and levels (L,), got "
                             f"{b.shape} and {lv.shape}.")
        if not 2 <= lv.shape[0] <= 256:
            raise ValueError(f"Quantizer: 2 to 256 levels fit in uint8, got {lv.shape[0]}.")
        if not (np.isfinite(b).all() and np.isfinite(lv).all()):
            raise ValueError("Quantizer: boundaries and levels must be finite.")
        if np.any(np.diff(b) < 0) or np.any(np.diff(lv) < 0):
            raise ValueError("Quantizer: boundaries and levels must be sorted ascending.")
        self.boundaries, self.levels, self.method = b, lv, method
        self.info = dict(info or {})
        self._encoder = _TableEncoder(b)

    @property
    def n_levels(self) -> int:
        return self.levels.shape[0]

    @property
    def clip_range(self) -> tuple[float, float]:
        """Values outside this range are clipped: [-2, 2] for ``uniform`` (the
        released convention), the outer levels otherwise."""
        if self.method == "uniform":
            return (UNIFORM_MIN, UNIFORM_MAX)
        return (float(self.levels[0]), float(self.levels[-1]))

    @classmethod
    def uniform(cls) -> "Quantizer":
        levels = uniform_levels()
        mids = 0.5 * (levels[1:].astype(np.float64) + levels[:-1].astype(np.float64))
        return cls(mids, levels, method="uniform",
                   info={"convention": "youtube-8m Dequantize(min=-2, max=2)"})

    @classmethod
    def fit(cls, batches: Optional[Iterable], method: str = "lloyd", bits: int = 8,
            value_range: float = DEFAULT_RANGE, n_bins: int = DEFAULT_BINS,
            max_iter: int = DEFAULT_MAX_ITER) -> "Quantizer":
        """``lloyd``: Lloyd-Max on a fine histogram of every value in ``batches``
        (arrays of whitened coefficients, any shape). ``uniform``: the released
        convention, ``batches`` is ignored and may be None."""
        method, bits = _check_method(method, bits)
        if method == "uniform":
            return cls.uniform()
        if batches is None:
            raise ValueError("Quantizer.fit(method='lloyd') needs the whitened train values; "
                             "got batches=None (only method='uniform' needs no data).")
        combiner = HistogramCombiner(value_range, n_bins)
        acc = combiner.create_accumulator()
        for i, batch in enumerate(batches):
            combiner.add_input(acc, batch, name=f"Quantizer fit: batch {i} (0-based)")
        return cls.from_histogram(combiner.extract_output(acc), bits, max_iter)

    @classmethod
    def from_histogram(cls, hist: Histogram, bits: int = 8,
                       max_iter: int = DEFAULT_MAX_ITER) -> "Quantizer":
        _, bits = _check_method("lloyd", bits)
        if hist.counts.shape[0] != 1:
            raise ValueError("Quantizer.from_histogram takes a global (one-row) histogram.")
        if hist.total <= 0:
            raise ValueError("Quantizer fit: no values to fit on; check that the train "
                             "split has frames.")
        res = lloyd_max(hist, 1 << bits, max_iter)
        n = hist.counts[0]
        info = {"train_mse": float(res.mse[0]), "n_values": int(hist.total),
                "iterations": res.iterations, "converged": res.converged,
                "value_range": hist.value_range, "n_bins": hist.n_bins,
                "underflow": int(n[0]), "overflow": int(n[-1])}
        return cls(res.boundaries[0], res.levels[0], method="lloyd", info=info)

    def encode(self, x, check_finite: bool = True) -> np.ndarray:
        """uint8 codes, same shape as ``x`` (computed in float32). NaN/Inf raise
        unless ``check_finite=False`` (for callers that checked already)."""
        x = np.asarray(x)
        if check_finite and x.size and not np.isfinite(x).all():
            raise ValueError("Quantizer.encode: input holds NaN or Inf; the features "
                             "upstream are broken (or overflowed float16).")
        return self._encoder(x)

    def decode(self, q) -> np.ndarray:
        q = np.asarray(q)
        if q.dtype != np.uint8:
            raise ValueError(f"Quantizer.decode: expected uint8 codes, got {q.dtype}.")
        if self.n_levels < 256 and q.size and int(q.max()) >= self.n_levels:
            raise ValueError(f"Quantizer.decode: code {int(q.max())} out of range for "
                             f"{self.n_levels} levels.")
        return self.levels.take(q)

    def save(self, path: str) -> None:
        """Writes an .npz with exactly ``boundaries`` and ``levels`` (float32), atomically."""
        _io.save_npz(path, boundaries=self.boundaries, levels=self.levels)

    @classmethod
    def load(cls, path: str) -> "Quantizer":
        """The method is not stored: a file whose levels are exactly the released
        uniform levels loads as ``uniform``, any other as ``lloyd``."""
        z = _io.load_npz(path, QUANTIZER_KEYS, "Quantizer")
        lv = z["levels"]
        method = ("uniform" if lv.shape == (256,) and np.array_equal(
            lv.astype(np.float32), uniform_levels()) else "lloyd")
        return cls(z["boundaries"], lv, method=method, info={"source": path})


def _check_method(method: str, bits: int) -> tuple[str, int]:
    if method not in METHODS:
        raise ValueError(f"Quantizer: method must be one of {METHODS}, got {method!r}.")
    if not (isinstance(bits, (int, np.integer)) and 1 <= bits <= 8):
        raise ValueError(f"Quantizer: bits must be an integer in [1, 8], got {bits!r}.")
    if method == "uniform" and bits != 8:
        raise ValueError("Quantizer: the released 'uniform' convention is 8-bit; "
                         f"got bits={bits}.")
    return method, int(bits)
