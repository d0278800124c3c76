"""Post-processing of the 128-d VGGish embeddings into the released 8-bit audio features.

Two modes (the values of the pipeline's ``--audio_compression``):

* ``released``: the released VGGish PCA (``vggish_pca_params.npz``: keys
  ``pca_eigen_vectors`` (128, 128), one eigenvector per *row*, whitening folded
  in, and ``pca_means`` (128, 1)), applied as the reference postprocessor does
  (``vggish_postprocess.Postprocessor``): ``y = P (e - m)`` per embedding,
  then clipped to [-2, 2] and quantized to 8 bits. Its features are on the
  scale of AudioSet's and YouTube-8M's released audio.
* ``fit``: PCA-whitening to 128 components and a quantizer fit on the train
  split, exactly as the RGB features are (the same ``PCAWhitening`` and
  ``Quantizer``, the same streaming combiners).

Both modes are a ``PCAWhitening`` plus a ``Quantizer``, and every writer
encodes with ``compression.codec.encode_frames`` (float16 rounding as the
cache stores the embeddings, the projection, the codes) and takes the video
mean with ``codec.mean_rgb``, like RGB. The released PCA is a
``PCAWhitening`` with ``mean = pca_means``, ``eigenvecs = pca_eigen_vectors.T``,
``eigenvals = 1`` and ``epsilon = 0`` (so ``sqrt(eigenvals + epsilon) = 1``:
the whitening is already inside the released matrix); it saves and loads as
any PCA artifact.

Quantization: ``Quantizer.uniform()`` (the released readers' convention, its
levels equal to their ``Dequantize``: ``q * 4/255 + 4/512 - 2``) encodes each
value to its nearest level. The reference postprocessor instead truncates,
``uint8((clip(y) + 2) * 255 / 4)``. The two codes are equal except for values
within 1/32640 (3.1e-5) below one of the reference's cell edges, where the
nearest-level code is one higher (and closer to the value as the readers
decode it); tests/compression/test_compression_audio.py checks this against
the reference formula.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Optional

import numpy as np

from yt8m.compression import _io, codec
from yt8m.compression.pca import PCAWhitening
from yt8m.compression.quantize import Quantizer

AUDIO_DIM = 128
MODES = ("released", "fit")
VGGISH_PCA_KEYS = ("pca_eigen_vectors", "pca_means")


def vggish_pca(eigen_vectors, means, source: str = "the VGGish PCA parameters") -> PCAWhitening:
    """The released postprocessor's PCA as a ``PCAWhitening`` (see the module docstring)."""
    p = np.asarray(eigen_vectors)
    m = np.asarray(means)
    if p.shape != (AUDIO_DIM, AUDIO_DIM):
        raise ValueError(f"{source}: pca_eigen_vectors must be ({AUDIO_DIM}, {AUDIO_DIM}) (one "
                         f"eigenvector per row, as in vggish_pca_params.npz), got {p.shape}")
    if m.shape not in ((AUDIO_DIM, 1), (AUDIO_DIM,), (1, AUDIO_DIM)):
        raise ValueError(f"{source}: pca_means must be ({AUDIO_DIM}, 1) as in "
                         f"vggish_pca_params.npz, got {m.shape}")
    for name, a in (("pca_eigen_vectors", p), ("pca_means", m)):
        if not np.issubdtype(a.dtype, np.number):
            raise ValueError(f"{source}: {name} must be numbers, got dtype {a.dtype}")
        if not np.isfinite(a).all():
            raise ValueError(f"{source}: {name} holds NaN or Inf; the file is damaged, "
                             f"download vggish_pca_params.npz again")
    return PCAWhitening(m.reshape(-1), p.T, np.ones(AUDIO_DIM), epsilon=0.0,
                        info={"source": source, "kind": "vggish_released_pca"})


def load_vggish_pca(path: str) -> PCAWhitening:
    """Reads ``vggish_pca_params.npz`` (local or any FileSystems path)."""
    z = _io.load_npz(path, VGGISH_PCA_KEYS, "VGGish PCA parameters")
    return vggish_pca(z["pca_eigen_vectors"], z["pca_means"], source=path)


def check_embeddings(raw, what: str = "audio embeddings") -> np.ndarray:
    x = np.asarray(raw)
    if x.ndim != 2 or x.shape[1] != AUDIO_DIM:
        raise ValueError(f"{what}: expected VGGish embeddings of shape (F, {AUDIO_DIM}), got "
                         f"{x.shape}")
    return x


@dataclasses.dataclass(frozen=True, eq=False)
class AudioCompression:
    """A mode's PCA and quantizer: ``encode`` (F, 128) embeddings -> uint8 (F, 128),
    ``mean`` codes -> float32 (128,) (the video-level ``mean_audio``)."""

    mode: str
    pca: PCAWhitening
    quantizer: Quantizer

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"audio compression mode must be one of {MODES}, got {self.mode!r}")
        if self.pca.dim != AUDIO_DIM or self.pca.n_components != AUDIO_DIM:
            raise ValueError(f"audio compression needs a {AUDIO_DIM} -> {AUDIO_DIM} PCA, got "
                             f"{self.pca.dim} -> {self.pca.n_components}; fit it on VGGish "
                             f"embeddings with n_components={AUDIO_DIM}")

    @classmethod
    def released(cls, pca_path: str) -> "AudioCompression":
        """The released postprocessing: ``vggish_pca_params.npz`` + uniform 8 bits."""
        return cls("released", load_vggish_pca(pca_path), Quantizer.uniform())

    @classmethod
    def fit(cls, batches: Iterable, quantizer: str = "lloyd",
            allow_rank_deficient: bool = True) -> "AudioCompression":
        """PCA-whitening and quantizer fit on train embeddings (arrays (n, 128)),
        through the same float16 rounding and whitening as ``encode``. In a pipeline, fit with
        ``compression.beam.FitPCAAndQuantizer`` instead and wrap the results with ``AudioCompression("fit", pca, quantizer)``."""
        rounded = [codec.round_like_cache(check_embeddings(b, f"fit batch {i}"))
                   for i, b in enumerate(batches)]
        pca = PCAWhitening.fit(rounded, n_components=AUDIO_DIM,
                               allow_rank_deficient=allow_rank_deficient)
        q = Quantizer.fit(None if quantizer == "uniform" else
                          (codec.whiten_frames(b, pca) for b in rounded), method=quantizer)
        return cls("fit", pca, q)

    def whiten(self, raw) -> np.ndarray:
        """float32 (F, 128): the coefficients ``encode`` quantizes (before clipping)."""
        return codec.whiten_frames(check_embeddings(raw), self.pca)

    def encode(self, raw) -> np.ndarray:
        """uint8 (F, 128): the frame-level ``audio`` bytes."""
        return codec.encode_frames(check_embeddings(raw), self.pca, self.quantizer)

    def mean(self, q) -> np.ndarray:
        """float32 (128,): the video-level ``mean_audio`` (mean of the dequantized codes)."""
        return codec.mean_rgb(q, self.quantizer)

    def save(self, pca_path: str, quantizer_path: str) -> None:
        """Atomic .npz artifacts, loadable with ``PCAWhitening.load`` / ``Quantizer.load``."""
        self.pca.save(pca_path)
        self.quantizer.save(quantizer_path)

    @classmethod
    def load(cls, mode: str, pca_path: str, quantizer_path: str) -> "AudioCompression":
        return cls(mode, PCAWhitening.load(pca_path), Quantizer.load(quantizer_path))

    def info(self) -> dict:
        """What dataset_info.json records about the audio compression."""
        return {"mode": self.mode, "dim": AUDIO_DIM, "quantizer": self.quantizer.method,
                "pca_source": self.pca.info.get("source"),
                "clip": list(self.quantizer.clip_range)}


def mode_from_flag(value: str, pca_path: Optional[str] = None) -> str:
    """Validates ``--audio_compression`` (and that ``released`` has its PCA file)."""
    if value not in MODES:
        raise ValueError(f"--audio_compression must be one of {MODES}, got {value!r}")
    if value == "released" and not pca_path:
        raise ValueError("--audio_compression released needs --audio_pca "
                         "/path/to/vggish_pca_params.npz (the released VGGish PCA "
                         "parameters); or pass --audio_compression fit to fit on the train split")
    return value

