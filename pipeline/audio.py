"""The audio policy of build and extract: ``--audio off|optional|required`` and
``--audio_weights``, resolved before any work starts (pure; no TensorFlow).

``--audio_weights`` defaults to the released VGGish checkpoint in a documented
local place: ``$YT8M_VGGISH_DIR`` if set, else ``~/.cache/yt8m/vggish/``,
holding ``vggish_model.ckpt`` (or a V2 ``vggish_model.ckpt.index`` + data)
and ``vggish_pca_params.npz``. Nothing is downloaded.

``resolve_audio`` turns the flags into an ``AudioPlan``:

* ``off``: no audio; ``status`` ``"off"``;
* ``optional`` (the default): audio when weights are found; when they are
  not, the job goes on WITHOUT audio features (``status`` ``"skipped"``, a
  ``reason``, and one ``notice`` for the console): never random weights
  standing in silently;
* ``required``: missing weights are a ``UsageError`` (exit 2) before any work.

``random`` weights are allowed (tests, the demo) and announced in ``notice``.
The plan's ``to_info()`` is what dataset_info.json records under ``audio``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

from yt8m.pipeline.config import UsageError

AUDIO_MODES = ("off", "optional", "required")
DEFAULT_AUDIO_MODE = "optional"
VGGISH_DIR_ENV = "YT8M_VGGISH_DIR"
CHECKPOINT_NAME = "vggish_model.ckpt"
PCA_PARAMS_NAME = "vggish_pca_params.npz"


def default_vggish_dir(env: Optional[Mapping[str, str]] = None) -> str:
    """``$YT8M_VGGISH_DIR``, else ``~/.cache/yt8m/vggish``."""
    env = os.environ if env is None else env
    found = env.get(VGGISH_DIR_ENV)
    if found:
        return found
    home = env.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".cache", "yt8m", "vggish")


def _checkpoint_in(folder: str) -> Optional[str]:
    prefix = os.path.join(folder, CHECKPOINT_NAME)
    if os.path.isfile(prefix) or os.path.isfile(prefix + ".index"):
        return prefix
    return None


@dataclass(frozen=True)
class AudioPlan:
    """What a job does about audio (module docstring)."""
    mode: str
    status: str                      # off | on | skipped
    weights: Optional[str] = None    # the VGGish spec to load when status == "on"
    pca_params: Optional[str] = None  # the released PCA file, when one was found
    reason: Optional[str] = None
    notice: Optional[str] = None     # one line for the console, or None

    @property
    def enabled(self) -> bool:
        return self.status == "on"

    def to_info(self) -> dict:
        d = {"mode": self.mode, "status": self.status}
        if self.weights is not None:
            d["weights"] = self.weights
            d["random"] = self.weights == "random" or self.weights.startswith("random:")
        if self.pca_params is not None:
            d["pca_params"] = self.pca_params
        if self.reason is not None:
            d["reason"] = self.reason
        return d


def resolve_audio(mode: str = DEFAULT_AUDIO_MODE, weights: Optional[str] = None,
                  env: Optional[Mapping[str, str]] = None) -> AudioPlan:
    """The ``AudioPlan`` for ``--audio MODE --audio_weights WEIGHTS`` (module docstring).

    ``weights`` None means the default place. Raises ``UsageError`` for a bad
    mode, and under ``required`` when no weights are found.
    """
    if mode not in AUDIO_MODES:
        raise UsageError(f"--audio must be one of {', '.join(AUDIO_MODES)}, got {mode!r}")
    if mode == "off":
        return AudioPlan(mode, "off")
    if weights is not None and (weights == "random" or weights.startswith("random:")):
        return AudioPlan(mode, "on", weights=weights, notice=(
            f"audio: --audio_weights {weights}: RANDOM VGGish weights; the audio features "
            f"carry no meaning (tests and the demo only); recorded in dataset_info.json"))
    if weights is None:
        folder = default_vggish_dir(env)
        ckpt = _checkpoint_in(folder)
        pca = os.path.join(folder, PCA_PARAMS_NAME)
        if ckpt is not None:
            return AudioPlan(mode, "on", weights=ckpt,
                             pca_params=pca if os.path.isfile(pca) else None)
        reason = (f"no VGGish weights: {os.path.join(folder, CHECKPOINT_NAME)} is missing "
                  f"(set ${VGGISH_DIR_ENV} or put {CHECKPOINT_NAME} and {PCA_PARAMS_NAME} "
                  f"in {folder}, or pass --audio_weights)")
    else:
        found = (os.path.exists(weights) or os.path.isfile(weights + ".index")
                 or "://" in weights or weights.startswith(("hub:", "ckpt:")))
        if found:
            folder = os.path.dirname(weights.split(":", 1)[1] if weights.startswith("ckpt:")
                                     else weights)
            pca = os.path.join(folder, PCA_PARAMS_NAME) if folder else None
            return AudioPlan(mode, "on", weights=weights,
                             pca_params=pca if pca and os.path.isfile(pca) else None)
        reason = f"--audio_weights {weights!r} does not exist"
    if mode == "required":
        raise UsageError(f"--audio required: {reason}; or pass --audio optional / off")
    return AudioPlan(mode, "skipped", reason=reason, notice=(
        f"audio: building WITHOUT audio features: {reason}. Pass --audio off to silence "
        f"this notice."))


def add_arguments(parser) -> None:
    """``--audio``, ``--audio_weights``, ``--audio_pca`` (build and extract share them)."""
    parser.add_argument("--audio", choices=AUDIO_MODES, default=DEFAULT_AUDIO_MODE,
                        help="audio features: off, optional (default: zeros and a flagged, "
                             "counted reason for videos without usable sound; skipped with a "
                             "notice when no VGGish weights are found) or required")
    parser.add_argument("--audio_weights", default=None,
                        help=f"VGGish weights: vggish_model.ckpt, a TF-Hub/SavedModel dir, a "
                             f".keras file or random (tests); default ${VGGISH_DIR_ENV} or "
                             f"~/.cache/yt8m/vggish/{CHECKPOINT_NAME}")
    parser.add_argument("--audio_pca", default=None,
                        help=f"the released {PCA_PARAMS_NAME} (default: next to the weights)")


def with_plan(cfg, plan: AudioPlan):
    """``cfg`` (BuildConfig or ExtractConfig) with the resolved weights, or audio off."""
    import dataclasses
    if not plan.enabled:
        return dataclasses.replace(cfg, audio="off", audio_weights=None)
    return dataclasses.replace(cfg, audio=plan.mode, audio_weights=plan.weights)


def released_compression(plan: AudioPlan, audio_pca: Optional[str]):
    """The released VGGish post-processing for ``plan`` (PCA, clip [-2, 2], 8 bits), or
    ``(None, reason)`` when there is no PCA file; ``(codec, None)`` otherwise."""
    from yt8m.compression.audio import AudioCompression
    path = audio_pca or plan.pca_params
    if not path:
        return None, (f"no VGGish PCA parameters: pass --audio_pca /path/to/{PCA_PARAMS_NAME} "
                      f"(or put it next to the weights / in ${VGGISH_DIR_ENV})")
    if not os.path.isfile(path):
        return None, f"--audio_pca {path!r} does not exist"
    try:
        return AudioCompression.released(path), None
    except (ValueError, OSError, KeyError) as e:
        return None, f"{path}: not VGGish PCA parameters ({e})"


def finish_plan(plan: AudioPlan, audio_pca: Optional[str], compressed: bool = True):
    """The plan and its compression: a plan whose post-processing cannot be
    loaded is skipped (optional) or an error (required), like missing weights."""
    if not plan.enabled:
        return plan, None
    if compressed:
        codec, reason = released_compression(plan, audio_pca)
    else:
        codec, reason = None, ("--no_compress writes the raw rgb features only (raw audio "
                               "embeddings are not written)")
    if codec is not None:
        return AudioPlan(plan.mode, "on", plan.weights, audio_pca or plan.pca_params,
                         notice=plan.notice), codec
    if plan.mode == "required":
        raise UsageError(f"--audio required: {reason}; or pass --audio optional / off")
    return AudioPlan(plan.mode, "skipped", reason=reason, notice=(
        f"audio: building WITHOUT audio features: {reason}. Pass --audio off to silence "
        f"this notice.")), None
