"""Exact, order-independent sums of float64 arrays on fixed power-of-two grids.

A float64 addition rounds, so a sum of many terms depends on the order they
are added in; Beam adds and merges in whatever order bundles and retries give.
``ExactSum`` removes the rounding: every term is cut into ``parts`` digits on
fixed, data-independent grids (digit ``i`` is an integer multiple of
``2**(lo + i*bits)``, the lower digits in ``[0, 2**bits)`` grid steps), so a
sum of digits is a sum of integers that stays exact in float64 for up to
``2**(52 - bits)`` terms; then carries move the excess of each digit to the
next one (``normalize``). The digits after ``normalize`` are a function of the
exact total alone, whatever the order of the adds and merges, so ``value()``
(the total rounded to float64 by one fixed computation) is bit for bit the
same for any order, partition or pickling of the terms.

What is exact: every term on the ``2**lo`` grid with ``|term| < 2**(lo +
parts*bits)`` (the input bound) is added exactly, and totals up to
``2**(lo + (parts-1)*bits + 52)`` (the range) are held exactly. A term with
bits below ``2**lo`` is first rounded down to that grid (``floor``): still a
fixed function of the term, so sums stay order-independent, but no longer
exact; callers choose ``lo`` so that their terms are on the grid (float16
frame values are multiples of ``2**-24``, their products of ``2**-48``). A term
beyond the input bound, NaN or Inf raises ``ValueError``; a total beyond the
range raises ``OverflowError`` (nothing is silently wrapped or saturated).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

DEFAULT_BITS = 42
_CAP = 2.0 ** 52  # no digit may exceed this between normalisations (2**53 is float64's limit)


class ExactSum:
    """An array of exact sums (shape ``shape``) held as ``parts`` float64 digits.

    ``add(values)`` adds an array of terms of that shape; ``add_at(index,
    values)`` adds each term to the entry its flat index names (a histogram);
    ``merge(other)`` adds another sum with the same grid; ``value()`` returns
    the totals as float64. Picklable (two small ints, one array).
    """

    def __init__(self, shape: Sequence[int] | int, lo: int, parts: int,
                 bits: int = DEFAULT_BITS):
        shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
        if not 1 <= int(parts) <= 16:
            raise ValueError(f"ExactSum: parts must be in [1, 16], got {parts}.")
        if not 8 <= int(bits) <= 50:
            raise ValueError(f"ExactSum: bits must be in [8, 50], got {bits}.")
        lo, parts, bits = int(lo), int(parts), int(bits)
        if not -1000 <= lo and lo + (parts - 1) * bits + 52 <= 1000:
            raise ValueError(f"ExactSum: the grids 2**{lo} .. 2**{lo + parts * bits} "
                             f"do not fit float64's exponent range.")
        self.shape, self.lo, self.parts, self.bits = shape, lo, parts, bits
        # Digit i in units of its own grid step 2**(lo + i*bits): integers.
        self.digits = np.zeros((parts,) + shape)
        # An upper bound on |digit| (in grid steps) since the last normalize.
        self.bound = 0.0

    # ---- properties -------------------------------------------------------------
    @property
    def input_bound(self) -> float:
        """Terms must satisfy ``|term| < input_bound``."""
        return 2.0 ** (self.lo + self.parts * self.bits)

    @property
    def range(self) -> float:
        """Totals must satisfy ``|total| < range``."""
        return 2.0 ** (self.lo + (self.parts - 1) * self.bits + 52)

    def same_grid(self, other: "ExactSum") -> bool:
        return (self.shape, self.lo, self.parts, self.bits) == (
            other.shape, other.lo, other.parts, other.bits)

    def empty_like(self) -> "ExactSum":
        return ExactSum(self.shape, self.lo, self.parts, self.bits)

    # ---- adding -----------------------------------------------------------------
    def split(self, values, what: str = "ExactSum", out: Optional[np.ndarray] = None
              ) -> np.ndarray:
        """The digits (parts, *values.shape) of ``values`` (rounded down to the
        ``2**lo`` grid); raises if a value is NaN, Inf or beyond the input bound."""
        v = np.asarray(values, dtype=np.float64)
        d = np.empty((self.parts,) + v.shape) if out is None else out
        base = float(2.0 ** self.bits)
        cur = d[0]
        with np.errstate(invalid="ignore", over="ignore"):   # NaN/Inf are reported below
            np.multiply(v, 2.0 ** -self.lo, out=cur)   # exact: a power-of-two scaling
            np.floor(cur, out=cur)
            for i in range(1, self.parts):
                nxt = d[i]
                np.multiply(cur, 1.0 / base, out=nxt)
                np.floor(nxt, out=nxt)
                # cur - nxt*base is an integer in [0, base): exactly representable.
                cur -= nxt * base
                cur = nxt
        top = d[self.parts - 1]
        if top.size and not (top.max() < base and top.min() > -base):
            bad = v.ravel()[~(np.abs(v.ravel()) < self.input_bound)]
            raise ValueError(f"{what}: cannot sum {bad[:3].tolist()} exactly: "
                             f"NaN, Inf or beyond the exact range +-{self.input_bound:.3g} "
                             f"(2**{self.lo + self.parts * self.bits}).")
        return d

    def add(self, values, what: str = "ExactSum") -> "ExactSum":
        """Adds an array of terms of shape ``shape``."""
        v = np.asarray(values, dtype=np.float64)
        if v.shape != self.shape:
            raise ValueError(f"{what}: terms of shape {v.shape} added to sums of shape "
                             f"{self.shape}.")
        return self.add_digits(self.split(v, what), 2.0 ** self.bits)

    def add_at(self, index, values, what: str = "ExactSum") -> "ExactSum":
        """Adds ``values[j]`` to the entry of flat index ``index[j]`` (a weighted
        histogram): digits are binned with ``np.bincount`` in chunks small enough
        that every per-bin sum of digits stays an exact float64 integer."""
        idx = np.asarray(index, dtype=np.intp).ravel()
        v = np.asarray(values, dtype=np.float64).ravel()
        if idx.shape != v.shape:
            raise ValueError(f"{what}: {idx.size} indices for {v.size} values.")
        size = int(np.prod(self.shape))
        if idx.size and (idx.min() < 0 or idx.max() >= size):
            raise ValueError(f"{what}: index out of range [0, {size}).")
        chunk = 1 << (52 - self.bits)
        for start in range(0, v.size, chunk):
            dv = self.split(v[start:start + chunk], what)
            ii = idx[start:start + chunk]
            binned = np.stack([np.bincount(ii, weights=dv[p], minlength=size)
                               for p in range(self.parts)]).reshape(self.digits.shape)
            self.add_digits(binned, float(min(chunk, v.size - start)) * 2.0 ** self.bits)
        return self

    def add_digits(self, digits: np.ndarray, bound: float) -> "ExactSum":
        """Adds raw digits whose magnitudes are all below ``bound`` grid steps."""
        if self.bound + bound > _CAP:
            self.normalize()
            if bound > _CAP:
                other = self.empty_like()
                other.digits, other.bound = np.array(digits, dtype=np.float64), bound
                digits, bound = other.normalize().digits, other.bound
        self.digits += digits
        self.bound += bound
        if self.bound > _CAP:
            self.normalize()
        return self

    def merge(self, other: "ExactSum") -> "ExactSum":
        if not self.same_grid(other):
            raise ValueError(f"ExactSum: cannot merge sums on different grids or shapes "
                             f"({self.shape}, 2**{self.lo}, {self.parts}x{self.bits} bits vs "
                             f"{other.shape}, 2**{other.lo}, {other.parts}x{other.bits}).")
        if other.bound:
            self.add_digits(other.digits, other.bound)
        return self

    # ---- reading ------------------------------------------------------------------
    def normalize(self) -> "ExactSum":
        """Carries so that digits 0..parts-2 lie in [0, 2**bits): the canonical
        digits of the exact totals (the value is unchanged). Raises
        OverflowError beyond ``range``."""
        base = float(2.0 ** self.bits)
        d = self.digits
        if self.parts > 1 and d[0].size:
            carry = np.empty_like(d[0])
            for i in range(self.parts - 1):
                np.multiply(d[i], 1.0 / base, out=carry)
                np.floor(carry, out=carry)
                d[i + 1] += carry
                carry *= base
                d[i] -= carry
        top = d[self.parts - 1]
        if top.size:
            big = max(float(top.max()), -float(top.min()))
            if not big < _CAP:
                reached = big * 2.0 ** (self.lo + (self.parts - 1) * self.bits)
                raise OverflowError(f"ExactSum: a total reached +-{reached:.3g}, beyond the "
                                    f"exact range +-{self.range:.3g}.")
            self.bound = max(base, big) if self.parts > 1 else big
        else:
            self.bound = 0.0
        return self

    def copy(self) -> "ExactSum":
        out = self.empty_like()
        out.digits, out.bound = self.digits.copy(), self.bound
        return out

    def value(self) -> np.ndarray:
        """The totals as float64: the canonical digits summed from the top down
        with compensated (Fast2Sum) additions, one fixed computation, so equal
        totals give equal bits. Normalises in place (the value is unchanged)."""
        d = self.normalize().digits
        steps = [2.0 ** (self.lo + i * self.bits) for i in range(self.parts)]
        s = d[-1] * steps[-1]
        if self.parts == 1:
            return s + 0.0
        err = np.zeros_like(s)
        t = np.empty_like(s)
        total = np.empty_like(s)
        for i in range(self.parts - 2, -1, -1):
            np.multiply(d[i], steps[i], out=t)
            # Fast2Sum: |s| >= |t| or s == 0 (s is a nonzero multiple of this
            # digit's grid, the next digit lies below it), so the rounding
            # error of s + t is exactly t - (total - s).
            np.add(s, t, out=total)
            s -= total
            s += t                  # now the error of total = s + t
            err += s
            s, total = total, s
        s += err
        return s + 0.0  # + 0.0 turns a -0.0 into 0.0

    def fractions(self, flat_index: int):
        """The exact total of one entry as a ``fractions.Fraction`` (for tests
        and audits; slow)."""
        from fractions import Fraction
        d = self.copy().normalize().digits.reshape(self.parts, -1)[:, flat_index]
        return sum(Fraction(int(d[i])) * Fraction(2) ** (self.lo + i * self.bits)
                   for i in range(self.parts))

    def __eq__(self, other) -> bool:
        if not isinstance(other, ExactSum):
            return NotImplemented
        if not self.same_grid(other):
            return False
        return np.array_equal(self.copy().normalize().digits, other.copy().normalize().digits)

    __hash__ = None

    def __repr__(self) -> str:
        return (f"ExactSum(shape={self.shape}, lo={self.lo}, parts={self.parts}, "
                f"bits={self.bits})")


def on_grid(values, lo: int) -> bool:
    """Whether every value is an integer multiple of ``2**lo`` (so that an
    ``ExactSum`` with that grid adds it without rounding)."""
    u = np.asarray(values, dtype=np.float64) * 2.0 ** -lo
    return bool(np.array_equal(np.floor(u), u))
