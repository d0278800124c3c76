"""tf.data readers for the trainer: our builds and the released YouTube-8M files.

What this module holds:

* record inspection (:func:`inspect_records`): which of the three layouts of
  ``pipeline.schema`` a set of TFRecord files holds (frame-level quantized,
  video-level, raw float features) and its dimensions;
* dequantization (:class:`Dequantizer`): in-graph ``tf.gather`` on our
  quantizer's ``levels`` table (global ``(256,)`` or per dimension
  ``(D, 256)``), or the released files' uniform ``q * 4/255 + 4/512 - 2``;
* PCA reconstruction (:class:`PCAReconstruction`): the inverse of the
  whitening PCA (``y * sqrt(eigenvals + epsilon) @ eigenvecs.T + mean``),
  in-graph, to go back to the 2048-d ReLU space;
* the video-level features of section 4.2 (:func:`video_statistics`):
  ``[mu; sigma; top5]`` computed on reconstructed ReLU features, and the
  normalisation of section 4.2.2 (:class:`FeatureWhitening`: PCA-whitening
  fit on train, then L2 normalisation);
* :class:`InputSpec`, the description of how records become model inputs
  (saved with a trained model so evaluate/predict read data the same way),
  and :func:`make_dataset`, the tf.data pipeline built from it.

The record layouts are ``pipeline.schema``'s; the feature keys below are
taken from it so that the two never disagree.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.example import example_pb2

from yt8m.pipeline import schema

# Released-data constants (the YouTube-8M starter code's readers/utils).
RELEASED_MIN, RELEASED_MAX = -2.0, 2.0
DEFAULT_MAX_FRAMES = 360
TOP_K_STATS = 5  # Top_K of equation 2
VIDEO_FEATURES = ("mu", "mu_sigma_top5")

KIND_FRAME = "frame"   # SequenceExample, rgb = bytes of D uint8 per frame
KIND_VIDEO = "video"   # Example, mean_rgb = D floats
KIND_RAW = "raw"       # SequenceExample, rgb = FloatList of 2048 per frame (extract --no_compress)


class DataError(ValueError):
    """Input data that cannot be read as asked; the message says what to do."""


def _compression_class(name: str):
    """``compression.<name>`` (the compression stage's public class), or None
    where that stage is not installed; the trainer then uses its own NumPy."""
    try:
        from yt8m import compression
    except ImportError:
        return None
    cls = getattr(compression, name, None)
    if cls is None:
        import importlib
        for sub in ("pca", "quantize"):
            try:
                cls = getattr(importlib.import_module(f"yt8m.compression.{sub}"), name, None)
            except ImportError:
                cls = None
            if cls is not None:
                break
    return cls


# ---------------------------------------------------------------------------
# Files and record inspection
# ---------------------------------------------------------------------------
def glob_files(pattern: str, what: str = "data") -> list[str]:
    """Sorted files matching ``pattern`` (local or any tf.io.gfile scheme)."""
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise DataError(f"no {what} files match {pattern!r}: check the path or glob")
    return files


@dataclass(frozen=True)
class RecordInfo:
    """What the first record of a file set holds."""
    kind: str                    # KIND_FRAME | KIND_VIDEO | KIND_RAW
    rgb_dim: int
    audio_dim: int = 0           # 0: no audio
    has_labels: bool = True


def inspect_records(files: Sequence[str]) -> RecordInfo:
    """Layout and dimensions of ``files``, from their first record.

    An ``Example`` parses as a ``SequenceExample`` whose context is the
    Example's features (same field number), so one parse tells the kinds apart.
    """
    first = None
    for path in files:
        for raw in tf.data.TFRecordDataset(path).take(1):
            first = raw.numpy()
        if first is not None:
            break
    if first is None:
        raise DataError(f"the files {list(files)[:3]}... hold no records")
    try:
        seq = example_pb2.SequenceExample.FromString(first)
    except Exception as e:  # noqa: BLE001 - protobuf raises a DecodeError subclass
        raise DataError(f"{files[0]} is not a TFRecord file of tf.train.(Sequence)Example "
                        f"protos: {e}") from e
    ctx = seq.context.feature
    lists = seq.feature_lists.feature_list
    if schema.FRAME_RGB in lists:
        feats = lists[schema.FRAME_RGB].feature
        audio_dim = 0
        if schema.FRAME_AUDIO in lists and lists[schema.FRAME_AUDIO].feature:
            audio_dim = len(lists[schema.FRAME_AUDIO].feature[0].bytes_list.value[0])
        if feats and feats[0].HasField("float_list"):
            return RecordInfo(KIND_RAW, len(feats[0].float_list.value), 0, "labels" in ctx)
        dim = len(feats[0].bytes_list.value[0]) if feats else schema.RGB_QUANTIZED_DIM
        return RecordInfo(KIND_FRAME, dim, audio_dim, "labels" in ctx)
    if schema.VIDEO_MEAN_RGB in ctx:
        audio = ctx[schema.VIDEO_MEAN_AUDIO].float_list.value if schema.VIDEO_MEAN_AUDIO in ctx else []
        return RecordInfo(KIND_VIDEO, len(ctx[schema.VIDEO_MEAN_RGB].float_list.value),
                          len(audio), "labels" in ctx)
    raise DataError(f"{files[0]}: records have neither a '{schema.FRAME_RGB}' feature list "
                    f"nor a '{schema.VIDEO_MEAN_RGB}' feature; not a YouTube-8M layout")


# ---------------------------------------------------------------------------
# Dequantization and PCA reconstruction (in-graph)
# ---------------------------------------------------------------------------
class Dequantizer:
    """uint8 codes -> float32 features, as a table lookup.

    ``levels`` is ``(256,)`` (one codebook) or ``(D, 256)`` (one per
    dimension); ``None`` means the released files' uniform rule.
    """

    def __init__(self, levels: Optional[np.ndarray] = None, source: str = "released-uniform"):
        self.levels = None if levels is None else np.asarray(levels, np.float32)
        self.source = source
        if self.levels is not None and (not 2 <= self.levels.shape[-1] <= 256
                                        or self.levels.ndim > 2):
            raise DataError(f"quantizer levels from {source} have shape {self.levels.shape}; "
                            f"expected (L,) or (D, L) with L <= 256 levels")

    @classmethod
    def released(cls) -> "Dequantizer":
        return cls(None)

    @classmethod
    def from_npz(cls, path: str) -> "Dequantizer":
        """Our build's ``quantizer.npz`` (keys ``boundaries``, ``levels``)."""
        with tf.io.gfile.GFile(path, "rb") as f:
            data = np.load(f)
            if "levels" not in data:
                raise DataError(f"{path} has no 'levels' array; expected the compression "
                                f"stage's quantizer.npz (boundaries, levels)")
            return cls(data["levels"], source=path)

    @property
    def is_released(self) -> bool:
        return self.levels is None

    def check_dim(self, dim: int) -> None:
        if self.levels is not None and self.levels.ndim == 2 and self.levels.shape[0] != dim:
            raise DataError(f"per-dimension quantizer {self.source} has {self.levels.shape[0]} "
                            f"codebooks but the records have {dim} dimensions")

    def __call__(self, q: tf.Tensor) -> tf.Tensor:
        """``q`` uint8 ``(..., D)`` -> float32 ``(..., D)``."""
        if self.levels is None:
            # The released reader (utils.Dequantize): scalar 4/255, bias 4/512 - 2.
            rng = RELEASED_MAX - RELEASED_MIN
            return tf.cast(q, tf.float32) * (rng / 255.0) + (rng / 512.0 + RELEASED_MIN)
        idx = tf.cast(q, tf.int32)
        if self.levels.ndim == 1:
            return tf.gather(tf.constant(self.levels), idx)
        dim, n_levels = self.levels.shape
        flat = tf.constant(self.levels.reshape(-1))
        return tf.gather(flat, idx + tf.range(dim, dtype=tf.int32) * n_levels)


class PCAReconstruction:
    """Inverse of the whitening PCA: ``(..., K)`` -> ``(..., D)`` ReLU-space features.

    The convention is the released one (and compression.PCAWhitening's):
    ``y = (x - mean) @ eigenvecs / sqrt(eigenvals + epsilon)``.
    """

    def __init__(self, mean, eigenvecs, eigenvals, epsilon: float, source: str = "?"):
        self.mean = np.asarray(mean, np.float32).reshape(-1)
        self.eigenvecs = np.asarray(eigenvecs, np.float32)
        self.eigenvals = np.asarray(eigenvals, np.float32).reshape(-1)
        self.epsilon = float(epsilon)
        self.source = source
        d, k = self.eigenvecs.shape
        if self.mean.shape != (d,) or self.eigenvals.shape != (k,):
            raise DataError(f"PCA from {source}: mean {self.mean.shape}, eigenvecs "
                            f"{self.eigenvecs.shape}, eigenvals {self.eigenvals.shape} disagree")
        # (K, D): one matmul reconstructs.
        self.matrix = (np.sqrt(self.eigenvals + self.epsilon)[:, None] * self.eigenvecs.T).astype(np.float32)

    @property
    def in_dim(self) -> int:
        return self.eigenvecs.shape[1]

    @property
    def out_dim(self) -> int:
        return self.eigenvecs.shape[0]

    @classmethod
    def load(cls, path: str) -> "PCAReconstruction":
        """``pca.npz`` (mean, eigenvecs, eigenvals, epsilon) or the released
        directory with ``mean.npy``, ``eigenvecs.npy``, ``eigenvals.npy``
        (read with ``compression.PCAWhitening`` when that stage is present)."""
        pca_cls = _compression_class("PCAWhitening")
        is_dir = tf.io.gfile.isdir(path)
        if pca_cls is not None:
            try:
                pca = pca_cls.from_yt8m(path) if is_dir else pca_cls.load(path)
            except (OSError, KeyError, ValueError) as e:
                raise DataError(f"cannot read the PCA at {path}: {e}") from e
            return cls(pca.mean, pca.eigenvecs, pca.eigenvals, pca.epsilon, path)
        if is_dir:
            arrays = {}
            for name in ("mean", "eigenvecs", "eigenvals"):
                p = os.path.join(path, f"{name}.npy")
                if not tf.io.gfile.exists(p):
                    raise DataError(f"{path} lacks {name}.npy; pass our pca.npz or the released "
                                    f"PCA directory (mean.npy, eigenvecs.npy, eigenvals.npy)")
                with tf.io.gfile.GFile(p, "rb") as f:
                    arrays[name] = np.load(f)
            # Released: mean (D, 1), eigenvals (N, 1), eigenvecs (N, D) one
            # eigenvector per row; the first 1024 kept, epsilon 1e-4.
            k = min(schema.RGB_QUANTIZED_DIM, arrays["eigenvecs"].shape[0])
            return cls(arrays["mean"].reshape(-1), arrays["eigenvecs"][:k].T,
                       arrays["eigenvals"].reshape(-1)[:k], 1e-4, path)
        with tf.io.gfile.GFile(path, "rb") as f:
            data = np.load(f)
            missing = {"mean", "eigenvecs", "eigenvals"} - set(data.files)
            if missing:
                raise DataError(f"{path} lacks {sorted(missing)}; expected the compression "
                                f"stage's pca.npz")
            eps = float(data["epsilon"]) if "epsilon" in data.files else 1e-4
            return cls(data["mean"], data["eigenvecs"], data["eigenvals"], eps, path)

    def __call__(self, y: tf.Tensor) -> tf.Tensor:
        return tf.linalg.matmul(y, tf.constant(self.matrix)) + tf.constant(self.mean)

    def inverse_transform(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, np.float32) @ self.matrix + self.mean


# ---------------------------------------------------------------------------
# Video-level features (section 4.2) and their normalisation (4.2.2)
# ---------------------------------------------------------------------------
def video_statistics(frames: tf.Tensor, num_frames: tf.Tensor, k: int = TOP_K_STATS) -> tf.Tensor:
    """``[mu; sigma; Top_k]`` of equation 2 for one video.

    ``frames`` ``(F, D)`` float -> ``(D * (2 + k),)``: the mean, the
    (population) standard deviation and, per dimension, its k largest values
    in descending order, laid out as ``[top1 (D), top2 (D), ...]``. A video
    with fewer than k frames repeats its smallest value; one with no frame
    gives zeros.
    """
    d = tf.shape(frames)[1]
    n = tf.cast(num_frames, tf.int32)
    x = frames[:n]

    def _stats():
        mu = tf.reduce_mean(x, axis=0)
        sigma = tf.sqrt(tf.maximum(tf.reduce_mean(tf.square(x - mu), axis=0), 0.0))
        kk = tf.minimum(n, k)
        top = tf.math.top_k(tf.transpose(x), k=kk, sorted=True).values  # (D, kk)
        top = tf.concat([top, tf.repeat(top[:, -1:], k - kk, axis=1)], axis=1)
        return tf.concat([mu, sigma, tf.reshape(tf.transpose(top), [-1])], axis=0)

    return tf.cond(n > 0, _stats, lambda: tf.zeros([d * (2 + k)], frames.dtype))


class FeatureWhitening:
    """Section 4.2.2: subtract the mean, PCA-whiten, L2-normalise.

    Fit on the train split's video-level features; ``transform`` is applied
    in-graph (one matmul). ``eigenvecs`` ``(D, K)``: the K kept components.
    Fitting uses ``compression.PCAWhitening`` (a streaming fit) when that
    module is available, else a float64 covariance computed here.

    Why shrinkage: whitening divides each direction by the square root of its
    sample variance. On a few thousand videos of a 1024-d feature, the
    smallest sample eigenvalues of noise directions are far below their true
    value (Marchenko-Pastur: the spread grows with D/N), so plain whitening
    blows those directions up and drowns the class signal. The covariance is
    therefore shrunk towards ``target * I`` (``target`` = mean variance):
    ``(1 - shrinkage) * eigenvals + shrinkage * target``. The default
    shrinkage is the Oracle Approximating Shrinkage estimate (Chen et al.
    2010, as ``sklearn.covariance.oas``), computed from the eigenvalues and N
    alone: close to 1 when N is small relative to D or the spectrum is flat
    (whitening then changes little), close to 0 on millions of videos with a
    structured spectrum (the paper's plain whitening). ``info`` says what the
    fit chose (it goes into metrics.json).
    """

    def __init__(self, mean, eigenvecs, eigenvals, epsilon: float, shrinkage: float = 0.0,
                 target: Optional[float] = None, info: Optional[dict] = None):
        self.mean = np.asarray(mean, np.float64)
        self.eigenvecs = np.asarray(eigenvecs, np.float64)
        self.eigenvals = np.asarray(eigenvals, np.float64)
        self.epsilon = float(epsilon)
        self.shrinkage = float(shrinkage)
        if not 0.0 <= self.shrinkage <= 1.0:
            raise ValueError(f"whitening shrinkage must be in [0, 1], got {shrinkage}")
        self.target = float(target) if target is not None else (
            float(self.eigenvals.mean()) if self.eigenvals.size else 0.0)
        self.info = dict(info or {})
        self.info.setdefault("shrinkage", self.shrinkage)
        self.info.setdefault("components", int(self.eigenvecs.shape[1]))
        self.matrix = (self.eigenvecs / np.sqrt(self.shrunk_eigenvals + self.epsilon)).astype(np.float32)

    @property
    def shrunk_eigenvals(self) -> np.ndarray:
        return (1.0 - self.shrinkage) * self.eigenvals + self.shrinkage * self.target

    @property
    def in_dim(self) -> int:
        return self.eigenvecs.shape[0]

    @property
    def out_dim(self) -> int:
        return self.eigenvecs.shape[1]

    @classmethod
    def fit(cls, batches: Iterable[np.ndarray], n_components: Optional[int] = None,
            epsilon: float = 1e-4, shrinkage="oas") -> "FeatureWhitening":
        """Fit on ``(n, D)`` batches (one pass; the covariance is D x D).

        Keeps ``n_components`` components (default: all), never more than
        the numerical rank of the train features: a direction without
        variance on train (fewer videos than dimensions, a constant feature)
        has nothing to whiten, and dividing it by sqrt(epsilon) would only
        amplify noise at test time. ``shrinkage``: ``"oas"`` (default, chosen
        from the data, see the class docstring), ``"none"`` (0: the plain
        whitening) or a number in [0, 1].
        """
        it = iter(batches)
        # Buffer until there are as many videos as dimensions: a smaller set
        # is decomposed through its thin SVD (O(N^2 D)) instead of the D x D
        # covariance (O(D^3)); both give the same components.
        buffered, n, d = [], 0, None
        for b in it:
            b = np.asarray(b, np.float64)
            if not len(b):
                continue
            d = b.shape[1]
            buffered.append(b)
            n += len(b)
            if n >= d:
                break
        cls._check_count(n)
        if n < d:
            x = np.concatenate(buffered)
            mean = x.mean(axis=0)
            _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
            return cls._from_eig(mean, vt.T, s ** 2 / (n - 1), n_components, epsilon, n, d,
                                 shrinkage)
        import itertools
        stream = itertools.chain(buffered, it)
        pca_cls = _compression_class("PCAWhitening")
        combiner_cls = _compression_class("MomentsCombiner")
        if pca_cls is not None and combiner_cls is not None and hasattr(pca_cls, "from_moments"):
            combiner = combiner_cls()
            acc = combiner.create_accumulator()
            for i, b in enumerate(stream):
                if len(b):
                    combiner.add_input(acc, np.asarray(b, np.float64),
                                       name=f"video-feature whitening: batch {i}")
            moments = combiner.extract_output(acc)
            # All d components: the shrinkage needs the whole spectrum.
            pca = pca_cls.from_moments(moments, n_components=d, epsilon=epsilon,
                                       allow_rank_deficient=True)
            rank = min(d, int(pca.info.get("rank", d)))
            vals = np.asarray(pca.eigenvals, np.float64).copy()
            vals[rank:] = 0.0
            return cls._from_eig(pca.mean, pca.eigenvecs, vals, n_components, epsilon,
                                 int(moments.count), d, shrinkage)
        # Without the compression stage: float64 moments with a shifted
        # (first-batch mean) accumulation, then the covariance's eigenvectors.
        shift = buffered[0].mean(axis=0)
        total, s1, s2 = 0, np.zeros(d), np.zeros((d, d))
        for b in stream:
            xb = np.asarray(b, np.float64) - shift
            total += len(xb)
            s1 += xb.sum(axis=0)
            s2 += xb.T @ xb
        m = s1 / total
        cov = (s2 - total * np.outer(m, m)) / (total - 1)
        vals, vecs = np.linalg.eigh(cov)
        return cls._from_eig(shift + m, vecs[:, ::-1], vals[::-1], n_components, epsilon,
                             total, d, shrinkage)

    @classmethod
    def _from_eig(cls, mean, vecs, vals, n_components, epsilon, n: int = 0, d: int = 0,
                  shrinkage="none") -> "FeatureWhitening":
        """Keep the components above numerical rank (vals sorted descending)
        and choose the shrinkage from the whole spectrum."""
        vals = np.maximum(np.asarray(vals, np.float64), 0.0)
        d = d or vecs.shape[0]
        tol = (vals[0] if len(vals) else 0.0) * max(vecs.shape) * np.finfo(np.float64).eps
        rank = int(np.count_nonzero(vals > tol))
        keep = rank if n_components is None else min(int(n_components), rank)
        # Mean variance over all d dimensions (the ones beyond rank have 0).
        target = float(vals.sum() / d) if d else 0.0
        if isinstance(shrinkage, str):
            if shrinkage == "oas":
                a, method = oas_shrinkage(vals, n, d), "oas"
            elif shrinkage == "none":
                a, method = 0.0, "none"
            else:
                raise ValueError(f"whitening shrinkage must be 'oas', 'none' or a number in "
                                 f"[0, 1], got {shrinkage!r}")
        else:
            a, method = float(shrinkage), "fixed"
        info = {"method": method, "shrinkage": a, "components": keep, "rank": rank,
                "train_videos": int(n), "dim": int(d)}
        return cls(mean, vecs[:, :keep], vals[:keep], epsilon, shrinkage=a, target=target,
                   info=info)

    @staticmethod
    def _check_count(n: int) -> None:
        if n < 2:
            raise DataError(f"the train split has {n} video(s); the feature whitening needs at "
                            f"least 2 (or train with --no_normalize)")

    def transform_np(self, x: np.ndarray) -> np.ndarray:
        y = (np.asarray(x, np.float64) - self.mean).astype(np.float32) @ self.matrix
        return y / np.maximum(np.linalg.norm(y, axis=-1, keepdims=True), 1e-12)

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        y = tf.linalg.matmul(x - tf.constant(self.mean, tf.float32), tf.constant(self.matrix))
        return tf.math.l2_normalize(y, axis=-1, epsilon=1e-24)

    def save(self, path: str) -> None:
        _atomic_npz(path, mean=self.mean, eigenvecs=self.eigenvecs, eigenvals=self.eigenvals,
                    epsilon=np.float64(self.epsilon), shrinkage=np.float64(self.shrinkage),
                    target=np.float64(self.target), info=np.array(json.dumps(self.info)))

    @classmethod
    def load(cls, path: str) -> "FeatureWhitening":
        with tf.io.gfile.GFile(path, "rb") as f:
            d = np.load(f)
            # Files written before the shrinkage existed: plain whitening.
            shrink = float(d["shrinkage"]) if "shrinkage" in d.files else 0.0
            target = float(d["target"]) if "target" in d.files else None
            info = json.loads(str(d["info"])) if "info" in d.files else None
            return cls(d["mean"], d["eigenvecs"], d["eigenvals"], float(d["epsilon"]),
                       shrinkage=shrink, target=target, info=info)


def oas_shrinkage(eigenvals: np.ndarray, n: int, d: Optional[int] = None) -> float:
    """Oracle Approximating Shrinkage of a sample covariance, from its spectrum.

    The formula of ``sklearn.covariance.oas`` (Chen, Wiesel, Eldar, Hero 2010)
    needs only ``tr(S)`` and ``tr(S^2)``, i.e. the eigenvalues, and the
    sample count ``n``; ``d`` is the dimension (eigenvalues beyond the ones
    given are 0). Returns the weight in [0, 1] of ``mean(eigenvals) * I``.
    """
    vals = np.maximum(np.asarray(eigenvals, np.float64), 0.0)
    d = int(d or len(vals))
    if n < 2 or d < 1:
        return 1.0
    mu = vals.sum() / d
    alpha = float((vals ** 2).sum()) / d ** 2      # mean of S**2 entries
    num = alpha + mu ** 2
    den = (n + 1.0) * (alpha - mu ** 2 / d)
    if den <= 0.0:
        return 1.0
    return float(min(max(num / den, 0.0), 1.0))


def _atomic_npz(path: str, **arrays) -> None:
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# InputSpec: how records become model inputs
# ---------------------------------------------------------------------------
@dataclass
class InputSpec:
    """Everything needed to turn records into model inputs, saved with a model.

    ``level``: "frame" (inputs ``frames`` (B, T, D) and ``num_frames`` (B,))
    or "video" (input ``features`` (B, D)). ``record_kind``: the layout the
    model was trained on. ``layout``: "ours" (dequantize with
    ``quantizer_path``) or "released" (uniform dequantization).
    """
    level: str
    record_kind: str
    layout: str
    num_classes: int
    rgb_dim: int
    feature_names: tuple = ("rgb",)
    audio_dim: int = 0
    video_features: str = "mu"
    max_frames: int = DEFAULT_MAX_FRAMES
    quantizer_path: Optional[str] = None
    pca_path: Optional[str] = None
    stats_space: str = "relu"            # "relu" (paper) or "pca"
    whitening_path: Optional[str] = None

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["feature_names"] = list(self.feature_names)
        return d

    @classmethod
    def from_json(cls, d: dict, base_dir: Optional[str] = None) -> "InputSpec":
        d = dict(d)
        d["feature_names"] = tuple(d.get("feature_names", ("rgb",)))
        spec = cls(**{k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(cls)}})
        if base_dir:
            # Paths are stored relative to the run directory so runs can move.
            for name in ("quantizer_path", "pca_path", "whitening_path"):
                p = getattr(spec, name)
                if p and not os.path.isabs(p) and "://" not in p:
                    setattr(spec, name, os.path.join(base_dir, p))
        return spec

    # -- derived -----------------------------------------------------------
    @property
    def uses_audio(self) -> bool:
        return "audio" in self.feature_names

    def dequantizer(self) -> Dequantizer:
        if self.layout == "released":
            return Dequantizer.released()
        if not self.quantizer_path:
            raise DataError("our-layout data needs the build's quantizer.npz "
                            "(OUT/artifacts/quantizer.npz); pass --data_dir OUT or --artifacts DIR")
        return Dequantizer.from_npz(self.quantizer_path)

    def pca(self) -> Optional[PCAReconstruction]:
        return PCAReconstruction.load(self.pca_path) if self.pca_path else None

    def whitening(self) -> Optional[FeatureWhitening]:
        return FeatureWhitening.load(self.whitening_path) if self.whitening_path else None

    def frame_dim(self) -> int:
        """Per-frame input dimension of frame-level models."""
        return self.rgb_dim + (self.audio_dim if self.uses_audio else 0)

    def check_records(self, info: RecordInfo, where: str) -> None:
        """A clear error when ``info`` is not what this spec (a model) expects."""
        if info.kind == KIND_RAW and self.record_kind != KIND_RAW:
            raise DataError(
                f"{where} holds raw {info.rgb_dim}-d float features (extract without "
                f"--artifacts), but this model was trained on {self.rgb_dim}-d compressed "
                f"features: rerun extract with --artifacts pointing at the build's "
                f"artifacts (OUT/artifacts) so the features are PCA-whitened and quantized "
                f"like the training data")
        if info.kind != KIND_RAW and self.record_kind == KIND_RAW:
            raise DataError(f"{where} holds compressed features but this model was trained on "
                            f"raw float features: run extract without --artifacts")
        if self.level == "frame" and info.kind == KIND_VIDEO:
            raise DataError(f"{where} holds video-level records; frame-level models need the "
                            f"frame-level files (OUT/frame/...)")
        if self.video_features == "mu_sigma_top5" and self.level == "video" and info.kind == KIND_VIDEO:
            raise DataError(f"{where} holds video-level records; [mu; sigma; top5] features are "
                            f"computed from frame-level files (OUT/frame/...)")
        if info.rgb_dim != self.rgb_dim:
            raise DataError(f"{where} has {info.rgb_dim}-d rgb features; the model expects "
                            f"{self.rgb_dim}")
        if self.uses_audio and info.audio_dim != self.audio_dim:
            raise DataError(f"{where} has no {self.audio_dim}-d audio features but the model "
                            f"uses audio (found audio dim {info.audio_dim})")


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------
def _multi_hot(labels: tf.Tensor, num_classes: int) -> tf.Tensor:
    labels = tf.cast(labels, tf.int32)
    check = tf.debugging.assert_less(
        labels, num_classes,
        message=f"a label index is >= num_classes ({num_classes}): pass the right "
                f"--num_classes (3862 for the 2018+ releases, 4716 for 2017) or vocabulary")
    with tf.control_dependencies([check, tf.debugging.assert_non_negative(labels)]):
        hot = tf.reduce_sum(tf.one_hot(labels, num_classes, dtype=tf.float32), axis=0)
    return tf.minimum(hot, 1.0)


def _parse_frame(spec: InputSpec, info: RecordInfo):
    """serialized SequenceExample -> dict(id, labels, frames (F, D'), num_frames)."""
    context = {"id": tf.io.FixedLenFeature([], tf.string),
               "labels": tf.io.VarLenFeature(tf.int64)}
    raw = info.kind == KIND_RAW
    seq = {schema.FRAME_RGB: tf.io.FixedLenSequenceFeature([info.rgb_dim], tf.float32)
           if raw else tf.io.FixedLenSequenceFeature([], tf.string)}
    if spec.uses_audio:
        seq[schema.FRAME_AUDIO] = tf.io.FixedLenSequenceFeature([], tf.string)
    deq = None if raw else spec.dequantizer()
    if deq is not None:
        deq.check_dim(info.rgb_dim)

    def parse(serialized):
        ctx, fl = tf.io.parse_single_sequence_example(serialized, context_features=context,
                                                      sequence_features=seq)
        if raw:
            rgb = fl[schema.FRAME_RGB]
        else:
            q = tf.io.decode_raw(fl[schema.FRAME_RGB], tf.uint8)
            rgb = deq(tf.reshape(q, [-1, info.rgb_dim]))
        rgb = rgb[:spec.max_frames]
        parts = [rgb]
        if spec.uses_audio:
            # Audio has no trained quantizer in any layout: the released rule.
            qa = tf.reshape(tf.io.decode_raw(fl[schema.FRAME_AUDIO], tf.uint8), [-1, spec.audio_dim])
            parts.append(Dequantizer.released()(qa)[:spec.max_frames])
        n = tf.shape(rgb)[0]
        if spec.uses_audio:
            n = tf.minimum(n, tf.shape(parts[1])[0])
            parts = [p[:n] for p in parts]
        frames = tf.concat(parts, axis=1) if len(parts) > 1 else rgb
        frames = tf.ensure_shape(frames, [None, spec.frame_dim()])
        return {"id": ctx["id"],
                "labels": _multi_hot(tf.sparse.to_dense(ctx["labels"]), spec.num_classes),
                "frames": frames, "num_frames": n}
    return parse


def _parse_video(spec: InputSpec, info: RecordInfo):
    """serialized Example -> dict(id, labels, features (D',))."""
    feats = {"id": tf.io.FixedLenFeature([], tf.string),
             "labels": tf.io.VarLenFeature(tf.int64),
             schema.VIDEO_MEAN_RGB: tf.io.FixedLenFeature([info.rgb_dim], tf.float32)}
    if spec.uses_audio:
        feats[schema.VIDEO_MEAN_AUDIO] = tf.io.FixedLenFeature([spec.audio_dim], tf.float32)

    def parse(serialized):
        ex = tf.io.parse_single_example(serialized, feats)
        x = ex[schema.VIDEO_MEAN_RGB]
        if spec.uses_audio:
            x = tf.concat([x, ex[schema.VIDEO_MEAN_AUDIO]], axis=0)
        return {"id": ex["id"], "labels": _multi_hot(tf.sparse.to_dense(ex["labels"]), spec.num_classes),
                "features": x}
    return parse


def _video_features_fn(spec: InputSpec, info: RecordInfo):
    """parsed record -> dict(id, labels, features): the raw video-level vector
    (before whitening)."""
    if info.kind == KIND_VIDEO:
        return lambda r: r
    if spec.video_features == "mu":
        # The mean commutes with the affine PCA inverse, so mu is taken in the
        # stored space; whitening afterwards makes the two equivalent.
        def mu(r):
            n = tf.maximum(r["num_frames"], 1)
            x = tf.reduce_sum(r["frames"], axis=0) / tf.cast(n, tf.float32)
            return {"id": r["id"], "labels": r["labels"], "features": x}
        return mu
    pca = spec.pca() if spec.stats_space == "relu" and info.kind != KIND_RAW else None
    if spec.stats_space == "relu" and info.kind != KIND_RAW and pca is None:
        raise DataError("[mu; sigma; top5] features are computed in the reconstructed ReLU space "
                        "(section 4.2), which needs the PCA: pass --pca (our pca.npz or the "
                        "released PCA directory), or --stats_space pca to compute them on the "
                        "stored PCA features instead")
    if pca is not None and pca.in_dim != info.rgb_dim:
        raise DataError(f"PCA {pca.source} maps {pca.in_dim}-d features but the records hold "
                        f"{info.rgb_dim}-d rgb")
    rgb_dim = info.rgb_dim

    def stats(r):
        frames = r["frames"]
        rgb = frames[:, :rgb_dim]
        if pca is not None:
            rgb = pca(rgb)
        parts = [video_statistics(rgb, r["num_frames"])]
        if spec.uses_audio:
            parts.append(video_statistics(frames[:, rgb_dim:], r["num_frames"]))
        return {"id": r["id"], "labels": r["labels"], "features": tf.concat(parts, axis=0)}
    return stats


def make_dataset(files: Sequence[str], spec: InputSpec, *, batch_size: int,
                 training: bool = False, seed: int = 0, sample_frames: Optional[int] = None,
                 tile_labels: bool = False, whitening: Optional[FeatureWhitening] = None,
                 info: Optional[RecordInfo] = None, cache: Optional[str] = None) -> tf.data.Dataset:
    """Batches of ``(inputs, labels, ids)``.

    ``inputs`` is ``{"features": (B, D)}`` for video-level specs (whitened and
    L2-normalised when ``whitening`` is given) or ``{"frames": (B, T, D),
    "num_frames": (B,)}`` for frame-level ones, padded to the longest video
    of the batch. ``training`` shuffles files and records. ``sample_frames=k``
    draws k frames per video uniformly with replacement (kept in time order),
    so every training example has exactly k frames (sections 4.1.1-4.1.2);
    ``tile_labels`` repeats labels per sampled frame, ``(B, k, C)``, for
    per-frame losses. ``cache`` (video-level only): keep the unwhitened
    video features after the first pass, in memory (``""``) or in files
    with that prefix, so [mu; sigma; top5] is computed from the frames once.
    """
    files = list(files)
    info = info or inspect_records(files)
    spec.check_records(info, files[0])
    ds = tf.data.Dataset.from_tensor_slices(files)
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(files)),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    parse = _parse_video(spec, info) if info.kind == KIND_VIDEO else _parse_frame(spec, info)

    if spec.level == "video":
        ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.map(_video_features_fn(spec, info), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
        if cache is not None:
            ds = ds.cache(cache)
        if training:
            ds = ds.shuffle(4096, seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size)

        def finish(r):
            x = r["features"]
            if whitening is not None:
                x = whitening(x)
            return {"features": x}, r["labels"], r["id"]
        ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    if training:
        # Serialized records are small to hold; shuffle before the costly parse.
        ds = ds.shuffle(1024, seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if sample_frames:
        k = int(sample_frames)

        def sample(r):
            n = tf.maximum(r["num_frames"], 1)
            frames = tf.cond(r["num_frames"] > 0, lambda: r["frames"],
                             lambda: tf.zeros([1, spec.frame_dim()]))
            idx = tf.sort(tf.random.uniform([k], 0, n, dtype=tf.int32, seed=seed))
            labels = r["labels"]
            if tile_labels:
                labels = tf.tile(labels[None, :], [k, 1])
            return {"frames": tf.gather(frames, idx), "num_frames": tf.constant(k)}, labels, r["id"]
        ds = ds.map(sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = ds.map(lambda r: ({"frames": r["frames"], "num_frames": r["num_frames"]},
                               r["labels"], r["id"]))
    ds = ds.padded_batch(batch_size)
    return ds.prefetch(tf.data.AUTOTUNE)


def collect_video_features(files: Sequence[str], spec: InputSpec, batch_size: int = 256,
                           info: Optional[RecordInfo] = None) -> Iterable[np.ndarray]:
    """Unwhitened video-level feature batches of ``files`` (to fit the whitening)."""
    ds = make_dataset(files, spec, batch_size=batch_size, training=False, whitening=None, info=info)
    for inputs, _, _ in ds:
        yield inputs["features"].numpy()


def feature_dim(spec: InputSpec, info: RecordInfo) -> int:
    """Dimension of the model input (before whitening for video-level specs)."""
    if spec.level == "frame":
        return spec.frame_dim()
    if info.kind == KIND_VIDEO or spec.video_features == "mu":
        return spec.frame_dim()
    rgb = info.rgb_dim
    if spec.stats_space == "relu" and info.kind != KIND_RAW and spec.pca_path:
        rgb = spec.pca().out_dim
    d = rgb * (2 + TOP_K_STATS)
    if spec.uses_audio:
        d += spec.audio_dim * (2 + TOP_K_STATS)
    return d


# ---------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------
@dataclass
class Vocabulary:
    """``vocabulary.csv``: Index -> (KnowledgeGraphId, Name)."""
    index: list = field(default_factory=list)
    knowledge_graph_id: dict = field(default_factory=dict)
    name: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return max(self.index) + 1 if self.index else 0

    @classmethod
    def load(cls, path: str) -> "Vocabulary":
        import csv
        if not tf.io.gfile.exists(path):
            raise DataError(f"vocabulary file {path} does not exist (a build writes "
                            f"OUT/vocabulary.csv)")
        vocab = cls()
        with tf.io.gfile.GFile(path, "r") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "Index" not in reader.fieldnames:
                raise DataError(f"{path} has no 'Index' column; expected the YouTube-8M "
                                f"vocabulary.csv header (Index,TrainVideoCount,KnowledgeGraphId,"
                                f"Name,...)")
            for row in reader:
                i = int(row["Index"])
                vocab.index.append(i)
                vocab.knowledge_graph_id[i] = row.get("KnowledgeGraphId", "")
                vocab.name[i] = row.get("Name", "") or row.get("KnowledgeGraphId", "") or str(i)
        if not vocab.index:
            raise DataError(f"{path} lists no classes")
        return vocab


def write_json_atomic(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, allow_nan=False,
                  default=lambda o: o.item() if hasattr(o, "item") else str(o))
        f.write("\n")
    os.replace(tmp, path)
