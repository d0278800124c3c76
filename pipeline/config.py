"""What a job needs, as plain values: ``BuildConfig`` (build, resplit), ``ExtractConfig``
(extract), the feature-extraction settings they share, and the frame sampling.

``pipeline.cli`` and ``extractor.cli`` fill these from flags; ``pipeline.launch``
runs them. Nothing here touches Beam or TensorFlow, so the CLIs parse flags
without importing either.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional, Sequence

from yt8m import fs
from yt8m.vocab.config import VocabConfig

# Exit statuses of build and resplit (extract's are its own: docs/extractor.md).
EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_NOTHING_WRITTEN = 4


class UsageError(ValueError):
    """Bad flags or inputs, found before a pipeline runs; the message says what to pass."""


# How frames are sampled (paper section 3.3); part of the cache fingerprint.
FRAME_SAMPLING = {"fps": 1.0, "max_seconds": 360.0, "size": 299}
# The YouTube-8M layout: 1024 PCA components per frame.
N_COMPONENTS = 1024
# Held-out frames the quality report measures the quantization on.
DEFAULT_QUALITY_FRAMES = 4096


@dataclass(frozen=True)
class ExtractionSettings:
    """How ``ExtractFeatures`` runs: the weights, batching, sampling and decode policy."""
    weights: str
    batch_size: int = 32
    fps: float = FRAME_SAMPLING["fps"]
    max_seconds: float = FRAME_SAMPLING["max_seconds"]
    size: int = FRAME_SAMPLING["size"]
    decode_timeout_s: Optional[float] = None
    on_decode_error: str = "keep"
    mixed_precision: bool = False
    input_range: Optional[str] = None
    # Small upright JPEGs per video from the frames decoded anyway (0: none).
    thumbnails: int = 0
    decode_device: str = "cpu"
    precision: str = "float32"
    # VGGish weights when audio features are extracted (pipeline.audio.AudioPlan), else None.
    audio_weights: Optional[str] = None
    audio_mode: str = "optional"

    def __post_init__(self):
        if not self.weights:
            raise ValueError("feature extraction needs --weights (imagenet, a .keras/.h5 "
                             "file, a hub handle or SavedModel dir, yt8m-graph:PATH, random)")
        if self.batch_size < 1:
            raise ValueError(f"--batch_size must be >= 1, got {self.batch_size}")
        if self.decode_timeout_s is not None and not self.decode_timeout_s > 0:
            raise ValueError(f"--decode_timeout_s must be > 0 seconds, got "
                             f"{self.decode_timeout_s}")
        check_thumbnails(self.thumbnails)
        check_decode_device(self.decode_device)
        check_precision(self.precision)


# Thumbnails per video a build keeps by default (extract: none unless asked).
BUILD_THUMBNAILS = 4
MAX_THUMBNAILS = 16
DECODE_DEVICES = ("cpu", "cuda")
PRECISIONS = ("float32", "bfloat16", "float16", "auto")


def check_thumbnails(n) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_THUMBNAILS:
        raise ValueError(f"--thumbnails must be a whole number from 0 (none) to "
                         f"{MAX_THUMBNAILS}, got {n!r}")


def check_decode_device(device) -> None:
    if device not in DECODE_DEVICES:
        raise ValueError(f"--decode_device must be one of {', '.join(DECODE_DEVICES)}, "
                         f"got {device!r}")


def check_precision(precision) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got "
                         f"{precision!r}")


@dataclass
class BuildConfig:
    """Everything a build needs; ``pipeline.cli`` fills it from flags."""
    videos: str
    entities: str
    output_dir: str
    ratings: Optional[str] = None
    vocab: VocabConfig = field(default_factory=VocabConfig)
    weights: str = "imagenet"
    batch_size: int = 32
    quantizer: str = "lloyd"
    n_components: int = N_COMPONENTS
    decode_timeout_s: Optional[float] = None
    num_shards: int = 0
    train_model: Optional[str] = None
    progress: bool = True
    # resplit: read features from this build's cache, decode nothing.
    resplit_from: Optional[str] = None
    cache_dir: Optional[str] = None       # default OUT/cache
    model_info: Optional[dict] = None     # default: from the weights
    beam_args: list = field(default_factory=list)
    thumbnails: int = BUILD_THUMBNAILS
    decode_device: str = "cpu"
    precision: str = "float32"
    # --audio off|optional|required and --audio_weights (pipeline.audio).
    audio: str = "optional"
    audio_weights: Optional[str] = None
    audio_pca: Optional[str] = None

    def flags(self) -> dict:
        """The flags as dataset_info.json records them."""
        d = dataclasses.asdict(self)
        d["vocab"] = self.vocab.to_dict()
        d.pop("model_info", None)
        return d

    def extraction(self, model_info: dict) -> Optional[ExtractionSettings]:
        """The extraction settings (the sampling recorded in ``model_info``); None for resplit."""
        if self.resplit_from is not None:
            return None
        sampling = model_info.get("sampling") or FRAME_SAMPLING
        return ExtractionSettings(self.weights, batch_size=self.batch_size,
                                  fps=sampling["fps"], max_seconds=sampling["max_seconds"],
                                  size=sampling["size"], decode_timeout_s=self.decode_timeout_s,
                                  thumbnails=self.thumbnails, decode_device=self.decode_device,
                                  precision=model_info.get("precision") or self.precision,
                                  audio_weights=(self.audio_weights if self.audio != "off"
                                                 else None),
                                  audio_mode=self.audio)


@dataclass
class ExtractConfig:
    """``extract``: features for the videos of a manifest, raw or in the compressed layout.

    ``artifacts`` None means ``--no_compress`` (raw float features); otherwise a
    build's ``artifacts/`` folder or the released YouTube-8M PCA files, with
    ``quantizer`` ``"uniform"`` replacing (or standing in for) the fitted one.
    """
    videos: str
    output_dir: str
    weights: str = "imagenet"
    batch_size: int = 32
    artifacts: Optional[str] = None
    quantizer: Optional[str] = None
    fps: float = FRAME_SAMPLING["fps"]
    max_seconds: float = FRAME_SAMPLING["max_seconds"]
    decode_timeout_s: Optional[float] = None
    on_decode_error: str = "keep"
    num_shards: int = 0
    mixed_precision: bool = False
    input_range: Optional[str] = None
    beam_args: list = field(default_factory=list)
    thumbnails: int = 0
    decode_device: str = "cpu"
    precision: str = "float32"
    # --audio off|optional|required and --audio_weights (pipeline.audio).
    audio: str = "optional"
    audio_weights: Optional[str] = None
    audio_pca: Optional[str] = None

    @property
    def compressed(self) -> bool:
        return self.artifacts is not None

    def extraction(self) -> ExtractionSettings:
        return ExtractionSettings(self.weights, batch_size=self.batch_size, fps=self.fps,
                                  max_seconds=self.max_seconds, size=FRAME_SAMPLING["size"],
                                  decode_timeout_s=self.decode_timeout_s,
                                  on_decode_error=self.on_decode_error,
                                  mixed_precision=self.mixed_precision,
                                  input_range=self.input_range, thumbnails=self.thumbnails,
                                  decode_device=self.decode_device, precision=self.precision,
                                  audio_weights=(self.audio_weights if self.audio != "off"
                                                 else None),
                                  audio_mode=self.audio)


# ---------------------------------------------------------------------------
# resplit: a build's own record of its inputs and flags
# ---------------------------------------------------------------------------
def read_source_info(source: str) -> dict:
    """The ``dataset_info.json`` of the finished build ``source`` (ValueError if none)."""
    path = fs.join(source, "dataset_info.json")
    missing = (f"--from {source!r} holds no finished build ({path} is missing): pass the "
               f"--output_dir of a build that completed")
    try:
        return fs.read_json(path)
    except FileNotFoundError:
        raise ValueError(missing) from None
    except Exception as e:  # noqa: BLE001 - FileSystems raises its own IOError kinds
        if not fs.exists(path):
            raise ValueError(missing) from None
        raise ValueError(f"--from {source!r}: cannot read {path}: {e}") from e


def source_vocab_defaults(source_info: dict) -> dict:
    """The source build's selection flags (and quantizer) as argparse defaults."""
    flags = source_info.get("flags", {})
    defaults = dict(flags.get("vocab") or {})
    if defaults.get("split") is not None:
        defaults["split"] = ",".join(str(x) for x in defaults["split"])
    for k in ("type_whitelist", "type_blacklist"):
        if defaults.get(k) is not None:
            defaults[k] = ",".join(defaults[k])
    defaults["quantizer"] = flags.get("quantizer")
    return defaults


def resplit_config(source: str, source_info: dict, output_dir: str, vocab: VocabConfig, *,
                   quantizer: str = "lloyd", num_shards: int = 0,
                   train_model: Optional[str] = None, progress: bool = True,
                   beam_args: Sequence[str] = ()) -> BuildConfig:
    """A BuildConfig that selects anew from ``source``'s copied inputs and cache."""
    if not source_info:
        raise ValueError(f"--from {source!r} holds no dataset_info.json: pass the "
                         f"--output_dir of a finished build")
    if fs.join(output_dir, "") == fs.join(source, ""):
        raise ValueError(f"--output_dir must differ from --from ({source}): resplit writes "
                         f"a new dataset and reads the old one's cache")
    inputs = source_info.get("inputs", {})
    copies = {k: fs.join(source, v["copy"]) for k, v in inputs.items() if v}
    for k in ("videos", "entities"):
        if k not in copies:
            raise ValueError(f"--from {source!r}: dataset_info.json lists no copied {k} "
                             f"input (private/inputs/); rebuild it with this version")
    model_info = source_info.get("model")
    if not model_info:
        raise ValueError(f"--from {source!r}: dataset_info.json names no feature model")
    cache_dir = source_info.get("cache_dir") or fs.join(source, "cache")
    return BuildConfig(videos=copies["videos"], entities=copies["entities"],
                       ratings=copies.get("ratings"), output_dir=output_dir, vocab=vocab,
                       weights=model_info.get("spec") or "", quantizer=quantizer,
                       num_shards=num_shards, train_model=train_model, progress=progress,
                       resplit_from=source, cache_dir=cache_dir, model_info=model_info,
                       beam_args=list(beam_args), thumbnails=0)


def add_decode_flags(parser, thumbnails_default: int) -> None:
    """``--precision``, ``--decode_device`` and ``--thumbnails``, shared by build and extract."""
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="what Keras weights compute in: float32 (default), bfloat16, "
                             "float16, or auto (bfloat16 on CPUs with AMX/AVX512-BF16, float16 "
                             "on GPUs, float32 elsewhere, only where the fidelity figure "
                             "holds); resolved once per run, recorded in model.json and the "
                             "cache key")
    parser.add_argument("--decode_device", choices=DECODE_DEVICES, default="cpu",
                        help="decode videos on the CPU (default) or with FFmpeg's CUDA "
                             "decoder (without a device: the CPU, one warning per worker)")
    parser.add_argument("--thumbnails", type=int, default=thumbnails_default, metavar="N",
                        help=f"small upright JPEGs per video kept from the same decode, for "
                             f"the explorer (0: none; default {thumbnails_default})")
