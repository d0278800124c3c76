"""PCA with whitening, fit in one streaming pass over mergeable moments.

Two layers, in the style of tensorflow-transform's analyzers:

* ``MomentsCombiner`` / ``MomentsAccumulator``: the maths. An accumulator holds
  the frame count, the mean and the centred scatter matrix ``M2 = sum (x - mean)
  (x - mean)^T`` in float64. ``add_input`` takes a batch of frames ``(n, D)``
  (or one vector ``(D,)``), computes the batch's own mean and centred scatter
  with one BLAS ``syrk`` and folds it in with the parallel (Chan et al.) update;
  ``merge_accumulators`` uses the same update, so any split of the data and any
  merge order give the same moments to float tolerance. Memory is O(D^2) plus a
  bounded buffer of small inputs, whatever the number of frames. Beam wraps the
  combiner in ``compression.beam``.
* ``PCAWhitening``: the fitted transform, ``transform(x) = (x - mean) @ eigenvecs
  / sqrt(eigenvals + epsilon)`` (the released YouTube-8M convention), its
  inverse, ``save``/``load`` (.npz with exactly ``mean``, ``eigenvecs``,
  ``eigenvals``, ``epsilon``) and ``from_yt8m`` for the released PCA files.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Optional

import numpy as np
from scipy.linalg.blas import dsyr, dsyrk

from yt8m.compression import _io

# Small inputs (single frames, short videos) are buffered into chunks of this
# many rows before the syrk: a rank-n update costs n*D^2 flops while each
# Chan merge costs D^2, so merging per 4-frame video would dominate the pass.
DEFAULT_CHUNK_ROWS = 2048

PCA_KEYS = ("mean", "eigenvecs", "eigenvals", "epsilon")


@dataclasses.dataclass
class MomentsAccumulator:
    """Mergeable first and second moments of a stream of D-dim frames.

    ``m2`` holds the centred scatter in its upper triangle only (Fortran order,
    zeros below), the layout BLAS ``syrk``/``syr`` update in place.
    ``buffer[:pending_rows]`` holds float64 copies of small inputs not yet
    folded in; the buffer is allocated once per accumulator (fresh allocations
    per input cost page faults comparable to the arithmetic) and only its
    filled rows are pickled.
    """
    count: int = 0
    mean: Optional[np.ndarray] = None
    m2: Optional[np.ndarray] = None
    buffer: Optional[np.ndarray] = None
    pending_rows: int = 0
    inputs_seen: int = 0

    @property
    def dim(self) -> Optional[int]:
        if self.mean is not None:
            return self.mean.shape[0]
        if self.buffer is not None:
            return self.buffer.shape[1]
        return None

    def __getstate__(self):
        state = dict(self.__dict__)
        if self.buffer is not None:
            state["buffer"] = self.buffer[:self.pending_rows].copy()
        return state


@dataclasses.dataclass(frozen=True)
class Moments:
    """What ``MomentsCombiner.extract_output`` returns (all float64)."""
    count: int
    mean: np.ndarray      # (D,)
    scatter: np.ndarray   # (D, D) symmetric, sum of (x - mean)(x - mean)^T

    def covariance(self, ddof: int = 1) -> np.ndarray:
        if self.count - ddof <= 0:
            raise ValueError(f"covariance needs more than {ddof} frame(s); got {self.count}.")
        return self.scatter / (self.count - ddof)


def _as_frames(batch, what: str) -> np.ndarray:
    """A batch as a 2-D array of frames; a single vector becomes one frame."""
    x = np.asarray(batch)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{what}: expected frames of shape (n, D) or one vector (D,), "
                         f"got shape {x.shape}.")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{what}: expected a numeric array, got dtype {x.dtype}.")
    return x


def check_finite(x: np.ndarray, what: str) -> None:
    """Raises a ValueError naming ``what`` and the first bad frames if ``x``
    holds NaN or Inf (one such value would silently poison every moment)."""
    if np.issubdtype(x.dtype, np.integer):
        return
    finite = np.isfinite(x)
    if not finite.all():
        rows = np.flatnonzero(~finite.reshape(len(x), -1).all(axis=1))
        raise ValueError(f"{what}: contains NaN or Inf in frame(s) {rows[:5].tolist()}"
                         f"{' ...' if len(rows) > 5 else ''} ({len(rows)} of {len(x)} frames); "
                         f"drop or repair those frames before fitting.")


class MomentsCombiner:
    """Pure-NumPy combiner: create / add / merge / compact / extract."""

    def __init__(self, chunk_rows: int = DEFAULT_CHUNK_ROWS):
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}.")
        self.chunk_rows = int(chunk_rows)

    def create_accumulator(self) -> MomentsAccumulator:
        return MomentsAccumulator()

    def add_input(self, acc: MomentsAccumulator, batch, name: Optional[str] = None
                  ) -> MomentsAccumulator:
        what = name or f"input #{acc.inputs_seen} (0-based, in the order added)"
        acc.inputs_seen += 1
        x = _as_frames(batch, what)
        dim = acc.dim
        if dim is not None and x.shape[1] != dim:
            raise ValueError(f"{what}: frames have {x.shape[1]} dimensions, earlier inputs "
                             f"had {dim}; every input must have the same feature size.")
        if x.shape[0] == 0:
            return acc
        check_finite(x, what)
        if x.shape[0] >= self.chunk_rows:
            self._update(acc, x)
        else:
            self._append(acc, x)
        return acc

    def merge_accumulators(self, accumulators: Iterable[MomentsAccumulator]
                           ) -> MomentsAccumulator:
        accs = list(accumulators)
        if not accs:
            return self.create_accumulator()
        out = accs[0]
        for other in accs[1:]:
            if out.dim is not None and other.dim is not None and out.dim != other.dim:
                raise ValueError(f"cannot merge moments of {out.dim}-dim and {other.dim}-dim "
                                 f"frames; every input must have the same feature size.")
            out.inputs_seen += other.inputs_seen
            if other.count:
                _chan_merge(out, other.count, other.mean, other.m2)
            if other.pending_rows:
                self._append(out, other.buffer[:other.pending_rows])
        return out

    def compact(self, acc: MomentsAccumulator) -> MomentsAccumulator:
        """Folds buffered inputs in (Beam calls this before shipping an accumulator)."""
        if acc.pending_rows:
            self._flush(acc)
        return acc

    def extract_output(self, acc: MomentsAccumulator) -> Moments:
        self.compact(acc)
        if acc.count == 0:
            d = acc.dim or 0
            return Moments(0, np.zeros(d), np.zeros((d, d)))
        # m2 is upper-triangular with zeros below: m2 + m2.T doubles the diagonal.
        full = acc.m2 + acc.m2.T
        full[np.diag_indices_from(full)] *= 0.5
        return Moments(acc.count, acc.mean.copy(), full)

    def _append(self, acc: MomentsAccumulator, x: np.ndarray) -> None:
        """Copies rows into the buffer (the caller may reuse its array),
        folding the buffer in whenever it fills."""
        d = x.shape[1]
        if acc.buffer is None or acc.buffer.shape[0] < self.chunk_rows:
            old = acc.buffer
            acc.buffer = np.empty((self.chunk_rows, d))
            if old is not None and acc.pending_rows:
                acc.buffer[:acc.pending_rows] = old[:acc.pending_rows]
        start = 0
        while start < x.shape[0]:
            take = min(x.shape[0] - start, self.chunk_rows - acc.pending_rows)
            acc.buffer[acc.pending_rows:acc.pending_rows + take] = x[start:start + take]
            acc.pending_rows += take
            start += take
            if acc.pending_rows == self.chunk_rows:
                self._flush(acc)

    def _flush(self, acc: MomentsAccumulator) -> None:
        rows, acc.pending_rows = acc.pending_rows, 0
        self._update(acc, acc.buffer[:rows], in_place=True)

    @staticmethod
    def _update(acc: MomentsAccumulator, x: np.ndarray, in_place: bool = False) -> None:
        """Folds a chunk of frames in: the chunk's own mean and centred scatter,
        merged by the parallel update, all inside ``acc.m2`` without a (D, D)
        temporary."""
        n_b = x.shape[0]
        mean_b = x.mean(axis=0, dtype=np.float64)
        if in_place:  # the buffer's rows are consumed: centre them where they are
            x -= mean_b
            xc = x
        else:
            xc = np.subtract(x, mean_b, dtype=np.float64)
        if acc.count == 0:
            acc.m2 = np.zeros((x.shape[1], x.shape[1]), order="F")
            acc.mean = np.zeros(x.shape[1])
        # xc.T is Fortran-ordered, so syrk reads it without a copy and adds
        # xc.T @ xc into the upper triangle of acc.m2 in place (beta=1).
        acc.m2 = dsyrk(1.0, xc.T, beta=1.0, c=acc.m2, trans=0, lower=0, overwrite_c=1)
        _chan_merge(acc, n_b, mean_b, None)


def _chan_merge(acc: MomentsAccumulator, n_b: int, mean_b: np.ndarray,
                m2_b: Optional[np.ndarray]) -> None:
    """Parallel-variance update (Chan, Golub & LeVeque): exact in float64,
    without the cancellation of E[xx^T] - mu mu^T on raw sums. ``m2_b=None``
    means the other side's scatter was already added into ``acc.m2``."""
    if acc.count == 0:
        acc.count, acc.mean = n_b, mean_b.copy()
        if m2_b is not None:
            acc.m2 = np.array(m2_b, order="F")
        return
    n_a = acc.count
    n = n_a + n_b
    delta = mean_b - acc.mean
    if m2_b is not None:
        acc.m2 += m2_b
    # Upper-triangle rank-1 update in place: m2 += (n_a n_b / n) delta delta^T.
    acc.m2 = dsyr(n_a * n_b / n, delta, a=acc.m2, lower=0, overwrite_a=1)
    acc.mean = acc.mean + delta * (n_b / n)
    acc.count = n


def _sign_normalise(vecs: np.ndarray) -> np.ndarray:
    """Flips each column so its largest-magnitude entry is positive: eigh's
    signs are arbitrary, this makes fits on the same data identical."""
    idx = np.argmax(np.abs(vecs), axis=0)
    signs = np.sign(vecs[idx, np.arange(vecs.shape[1])])
    signs[signs == 0] = 1.0
    return vecs * signs


class PCAWhitening:
    """``transform(x) = (x - mean) @ eigenvecs / sqrt(eigenvals + epsilon)``.

    Attributes: ``mean`` (D,), ``eigenvecs`` (D, K) columns by descending
    eigenvalue, ``eigenvals`` (K,), ``epsilon`` (float); ``info`` (dict, not
    saved) describes the fit.
    """

    def __init__(self, mean, eigenvecs, eigenvals, epsilon: float = 1e-4,
                 info: Optional[dict] = None):
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        eigenvecs = np.asarray(eigenvecs, dtype=np.float64)
        eigenvals = np.asarray(eigenvals, dtype=np.float64).reshape(-1)
        if eigenvecs.ndim != 2 or eigenvecs.shape[0] != mean.shape[0]:
            raise ValueError(f"PCAWhitening: eigenvecs must be (D, K) with D = len(mean) = "
                             f"{mean.shape[0]}, got {eigenvecs.shape}.")
        if eigenvals.shape[0] != eigenvecs.shape[1]:
            raise ValueError(f"PCAWhitening: {eigenvals.shape[0]} eigenvals for "
                             f"{eigenvecs.shape[1]} eigenvectors; they must match.")
        epsilon = float(epsilon)
        if not np.isfinite(epsilon) or epsilon < 0:
            raise ValueError(f"PCAWhitening: epsilon must be finite and >= 0, got {epsilon}.")
        if np.any(eigenvals + epsilon <= 0):
            raise ValueError("PCAWhitening: eigenvals + epsilon must be > 0 for every "
                             "component (use epsilon > 0 when some eigenvalues are 0).")
        self.mean, self.eigenvecs, self.eigenvals, self.epsilon = (
            mean, eigenvecs, eigenvals, epsilon)
        self.info = dict(info or {})
        self._proj32 = None

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    @property
    def n_components(self) -> int:
        return self.eigenvals.shape[0]

    @property
    def scale(self) -> np.ndarray:
        """Per-component divisor ``sqrt(eigenvals + epsilon)``."""
        return np.sqrt(self.eigenvals + self.epsilon)

    # ---- fitting -------------------------------------------------------------
    @classmethod
    def fit(cls, batches: Iterable, n_components: int = 1024, epsilon: float = 1e-4,
            allow_rank_deficient: bool = False,
            chunk_rows: int = DEFAULT_CHUNK_ROWS) -> "PCAWhitening":
        """One pass over ``batches`` (an iterable of (n, D) arrays); see
        ``from_moments`` for the rank rule."""
        combiner = MomentsCombiner(chunk_rows)
        acc = combiner.create_accumulator()
        for i, batch in enumerate(batches):
            combiner.add_input(acc, batch, name=f"PCA fit: batch {i} (0-based)")
        return cls.from_moments(combiner.extract_output(acc), n_components, epsilon,
                                allow_rank_deficient)

    @classmethod
    def from_moments(cls, moments: Moments, n_components: int = 1024,
                     epsilon: float = 1e-4, allow_rank_deficient: bool = False
                     ) -> "PCAWhitening":
        """Eigendecomposition of the sample covariance (ddof=1).

        If the frames span fewer than ``n_components`` dimensions (fewer frames
        than components, or constant dimensions), the extra components would be
        arbitrary zero-variance directions: that is an error unless
        ``allow_rank_deficient``, in which case they get eigenvalue 0 and a
        fixed orthonormal basis of the null space (training frames whiten to 0
        there, other frames to their projection / sqrt(epsilon)).
        """
        n, d = moments.count, moments.mean.shape[0]
        k = int(n_components)
        if n < 2:
            raise ValueError(f"PCA fit: needs at least 2 frames, got {n}; "
                             f"check that the train split has frames.")
        if not 1 <= k <= d:
            raise ValueError(f"PCA fit: n_components must be in [1, {d}] for {d}-dim "
                             f"frames, got {k}.")
        w, v = np.linalg.eigh(moments.covariance(ddof=1))
        w, v = w[::-1], v[:, ::-1]
        # Numerical rank, as numpy.linalg.matrix_rank decides it.
        tol = max(w[0], 0.0) * d * np.finfo(np.float64).eps
        rank = int(np.count_nonzero(w > tol))
        if rank < k:
            if not allow_rank_deficient:
                raise ValueError(
                    f"PCA fit: the {n} frames span only {rank} dimensions, fewer than "
                    f"n_components={k}; the other components would be arbitrary "
                    f"zero-variance directions. Fit on more varied frames (more than {k}), "
                    f"lower n_components, or pass allow_rank_deficient=True to keep "
                    f"{k - rank} zero-variance components.")
            signal = v[:, :rank]
            rng = np.random.default_rng(0)
            r0 = rng.standard_normal((d, k - rank))
            null, _ = np.linalg.qr(r0 - signal @ (signal.T @ r0))
            vecs = np.concatenate([signal, null], axis=1)
            vals = np.concatenate([w[:rank], np.zeros(k - rank)])
        else:
            vecs, vals = v[:, :k], w[:k]
        total = float(np.clip(w, 0, None).sum())
        info = {"n_frames": int(n), "rank": rank,
                "explained_variance_ratio": float(vals.sum() / total) if total > 0 else 0.0}
        return cls(moments.mean, _sign_normalise(vecs), vals, epsilon, info)

    # ---- applying ------------------------------------------------------------
    def projection32(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, W)`` in float32 with the whitening scale folded into ``W``
        (``W = eigenvecs / sqrt(eigenvals + epsilon)``): one matmul per batch."""
        if self._proj32 is None:
            w = (self.eigenvecs / self.scale).astype(np.float32)
            self._proj32 = (self.mean.astype(np.float32), np.ascontiguousarray(w))
        return self._proj32

    def _check(self, x: np.ndarray, what: str, size: int) -> None:
        if x.ndim not in (1, 2) or x.shape[-1] != size:
            raise ValueError(f"PCAWhitening.{what}: expected shape (n, {size}) or ({size},), "
                             f"got {x.shape}.")

    def transform(self, x) -> np.ndarray:
        """Whitens frames. float16/float32 input is computed in float32 (the
        production path, see ``codec.encode_frames``); anything else in float64."""
        x = np.asarray(x)
        self._check(x, "transform", self.dim)
        if x.dtype in (np.float16, np.float32):
            mean, w = self.projection32()
            return np.subtract(x, mean, dtype=np.float32) @ w
        return (x.astype(np.float64) - self.mean) @ self.eigenvecs / self.scale

    def inverse_transform(self, y) -> np.ndarray:
        """Maps whitened coefficients back to the D-dim feature space (exact on
        the span of the kept components)."""
        y = np.asarray(y)
        self._check(y, "inverse_transform", self.n_components)
        dtype = np.float32 if y.dtype in (np.float16, np.float32) else np.float64
        out = (y.astype(np.float64) * self.scale) @ self.eigenvecs.T + self.mean
        return out.astype(dtype)

    # ---- persistence ---------------------------------------------------------
    def save(self, path: str) -> None:
        """Writes an .npz with exactly ``mean``, ``eigenvecs``, ``eigenvals``,
        ``epsilon`` (float64), atomically; ``path`` is used as given."""
        _io.save_npz(path, mean=self.mean, eigenvecs=self.eigenvecs,
                     eigenvals=self.eigenvals, epsilon=np.float64(self.epsilon))

    @classmethod
    def load(cls, path: str) -> "PCAWhitening":
        z = _io.load_npz(path, PCA_KEYS, "PCAWhitening")
        return cls(z["mean"], z["eigenvecs"], z["eigenvals"], float(z["epsilon"]),
                   info={"source": path})

    @classmethod
    def from_yt8m(cls, directory: str, n_components: int = 1024, epsilon: float = 1e-4
                  ) -> "PCAWhitening":
        """Reads the released YouTube-8M PCA: ``mean.npy`` (D, 1), ``eigenvals.npy``
        (N, 1) and ``eigenvecs.npy`` (N, D), one eigenvector per row, as the
        released feature extractor loads them; keeps the first ``n_components``
        as released (no re-sorting, no sign change)."""
        join = lambda name: directory.rstrip("/") + "/" + name  # noqa: E731 (FileSystems path)
        mean = _io.load_npy(join("mean.npy"))
        vals = _io.load_npy(join("eigenvals.npy"))
        vecs = _io.load_npy(join("eigenvecs.npy"))
        if mean.ndim == 2 and mean.shape[1] == 1:
            mean = mean[:, 0]
        if vals.ndim == 2 and vals.shape[1] == 1:
            vals = vals[:, 0]
        if mean.ndim != 1 or vals.ndim != 1:
            raise ValueError(f"{directory}: mean.npy must be (D, 1) and eigenvals.npy (N, 1) "
                             f"as released; got {mean.shape} and {vals.shape}.")
        d = mean.shape[0]
        if vecs.ndim != 2 or vecs.shape[1] != d:
            raise ValueError(f"{directory}: eigenvecs.npy must be (N, {d}), one eigenvector "
                             f"per row as released; got {vecs.shape}.")
        if not 1 <= n_components <= min(vecs.shape[0], vals.shape[0]):
            raise ValueError(f"{directory}: holds {min(vecs.shape[0], vals.shape[0])} "
                             f"components, cannot keep n_components={n_components}.")
        return cls(mean, vecs[:n_components].T, vals[:n_components], epsilon,
                   info={"source": directory})
