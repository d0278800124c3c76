"""The one encoding path every writer uses: raw 2048-d frame features to the
1024 uint8 coefficients stored in the dataset, and the video-level mean.

``encode_frames`` first rounds the raw features to float16 and back, because
the feature cache stores float16: whether a build encodes features fresh from
the model or re-reads them from the cache (``extract --artifacts``, ``build``,
``resplit``), the bytes written are the same. The projection runs in float32
with the whitening scale folded into the matrix (``PCAWhitening.projection32``),
then the quantizer's table encoder turns coefficients into codes.
"""
from __future__ import annotations

import numpy as np

from yt8m.compression.pca import PCAWhitening
from yt8m.compression.quantize import Quantizer


def round_like_cache(raw) -> np.ndarray:
    """Raw features as the cache stores them (float16). Values beyond float16's
    range become Inf here; ``whiten_frames`` reports them as an error."""
    with np.errstate(over="ignore"):
        return np.asarray(raw).astype(np.float16)


def float16_values(raw) -> np.ndarray:
    """``round_like_cache(raw)`` back in float32, bit for bit, but without
    NumPy's float16 conversions (scalar loops, ~20 ns a value) when ``raw``
    already is float32 holding float16 values, as ``pipeline.cache.as_cached``
    returns it: then ``raw`` itself is returned."""
    x = np.asarray(raw)
    if x.dtype == np.float32 and is_float16_valued(x):
        return x
    return round_like_cache(x).astype(np.float32)


def is_float16_valued(x32: np.ndarray, block: int = 1 << 18) -> bool:
    """Whether every value of a float32 array is exactly a finite float16: at
    most 65504 in magnitude, a multiple of 2**-24 (float16's finest step) and
    at most 11 significant bits. The bit count is Veltkamp's test: with
    ``c = 8193 x``, ``c - (c - x)`` is ``x`` rounded to 11 bits (24 - 13), so it
    equals ``x`` exactly when ``x`` has no more. Blocks of ``block`` values keep
    the passes in cache."""
    if x32.dtype != np.float32:
        raise TypeError(f"is_float16_valued takes float32 arrays, got {x32.dtype}.")
    flat = np.ascontiguousarray(x32).reshape(-1)
    if not flat.size:
        return True
    if not (flat.max() <= 65504.0 and flat.min() >= -65504.0):   # also False for NaN
        return False
    t = np.empty(min(block, flat.size), np.float32)
    c = np.empty_like(t)
    for start in range(0, flat.size, block):
        v = flat[start:start + block]
        tt, cc = t[:len(v)], c[:len(v)]
        np.multiply(v, np.float32(2.0 ** 24), out=tt)      # exact: a power-of-two scaling
        if not np.array_equal(np.floor(tt, out=cc), tt):
            return False
        np.multiply(v, np.float32(8193.0), out=cc)
        np.subtract(cc, v, out=tt)
        np.subtract(cc, tt, out=cc)
        if not np.array_equal(cc, v):
            return False
    return True


def whiten_frames(raw, pca: PCAWhitening) -> np.ndarray:
    """float32 whitened coefficients (F, K) exactly as ``encode_frames`` sees them."""
    x = np.asarray(raw)
    if x.ndim != 2 or x.shape[1] != pca.dim:
        raise ValueError(f"encode_frames: expected raw frame features of shape (F, {pca.dim}), "
                         f"got {x.shape}; check that the PCA was fit on this feature model.")
    # float16 values in float32 whiten exactly as in float16 (the float32 path
    # converts them exactly), without the slow float16 conversions.
    y = pca.transform(float16_values(x))
    finite = np.isfinite(y)
    if not finite.all():
        rows = np.flatnonzero(~finite.all(axis=1))
        raise ValueError(f"encode_frames: frame(s) {rows[:5].tolist()} are NaN/Inf after "
                         f"float16 rounding (raw values NaN, Inf or beyond +-65504); "
                         f"the feature model's output is broken for this video.")
    return y


def encode_frames(raw, pca: PCAWhitening, quantizer: Quantizer) -> np.ndarray:
    """uint8 (F, K): float16 rounding, whitening, quantization."""
    return quantizer.encode(whiten_frames(raw, pca), check_finite=False)


def mean_rgb(q, quantizer: Quantizer) -> np.ndarray:
    """Video-level feature: the mean of the dequantized frames, float32 (K,),
    summed in float64 so long videos lose no precision."""
    q = np.asarray(q)
    if q.ndim != 2 or q.shape[0] == 0:
        raise ValueError(f"mean_rgb: expected uint8 codes of shape (F, K) with F >= 1, "
                         f"got {q.shape}; a video without frames has no mean.")
    return quantizer.decode(q).mean(axis=0, dtype=np.float64).astype(np.float32)
