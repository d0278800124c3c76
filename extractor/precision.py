"""The arithmetic precision of the Keras feature network: the choice, its rule, its evidence.

``float32`` is the reference. ``bfloat16`` and ``float16`` run the network
under Keras's ``mixed_bfloat16`` / ``mixed_float16`` policies (variables stay
float32, layers compute in 16 bits, the features come out float32), after
folding each inference-mode batch normalisation into the convolution before
it. ``auto`` picks, per machine:

* ``float16`` where TensorFlow sees a GPU;
* ``bfloat16`` on a CPU with bfloat16 instructions (``/proc/cpuinfo`` flags
  ``amx_bf16`` or ``avx512_bf16``) and oneDNN enabled (TensorFlow's default;
  ``TF_ENABLE_ONEDNN_OPTS=0`` turns it off and bfloat16 is then emulated, slowly);
* ``float32`` elsewhere;

and only if that precision is in :data:`VALIDATED` for the device kind with a
figure that passes :data:`RULE`; otherwise ``float32``.

The rule: the features cross a PCA-whitening and an 8-bit quantizer before
anyone uses them, so a cheaper precision is acceptable when its error, seen
after whitening, is well below the error the quantizer adds anyway. Exactly:
with ``z`` the whitened float32 features of held-out frames (as
``compression.codec.whiten_frames`` computes them, float16 cache rounding
included) and ``z_p`` those of precision ``p`` on the same frames,
``mean((z_p - z)^2) <= MAX_MSE_RATIO * mean((decode(encode(z)) - z)^2)``,
the PCA and the Lloyd quantizer fit on the float32 features of other frames.
``benchmarks/extract_bench.py`` measures it (``python -m benchmarks.extract_bench
--fidelity [--weights SPEC]``); ``python -m benchmarks --gpu`` measures it on a GPU.

Why fold batch norms first: under a 16-bit policy a separate normalisation
layer rounds every activation once more and costs an extra pass over memory;
folded into the convolution's kernel and bias (computed in float64, stored
float32) it costs nothing. On Inception-v3 with random weights this cut the
bfloat16 feature error from 1.5% to 0.54% and was faster. float32 keeps the
network exactly as loaded, so its features do not change.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

log = logging.getLogger(__name__)

PRECISIONS = ("float32", "bfloat16", "float16")
CHOICES = PRECISIONS + ("auto",)
POLICIES = {"bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}

# Device kinds `auto` distinguishes, and what it would like to run on each.
DEVICE_KINDS = ("gpu", "cpu-bf16", "cpu")
PREFERRED = {"gpu": "float16", "cpu-bf16": "bfloat16", "cpu": "float32"}
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")

MAX_MSE_RATIO = 0.10
RULE = (f"whitened feature MSE against float32 <= {MAX_MSE_RATIO:g} x the 8-bit quantizer's "
        f"own MSE, on held-out frames (PCA and Lloyd quantizer fit on float32 features of "
        f"other frames)")


class PrecisionError(ValueError):
    """A precision that cannot be used; the message says what to pass instead."""


@dataclass(frozen=True)
class Validation:
    """A measured fidelity figure: ``precision`` on ``device`` against float32.

    ``mse_ratio``: the rule's figure (whitened feature MSE / quantizer MSE);
    ``byte_diff``: the fraction of the 8-bit codes that differ from float32's;
    ``evidence``: where the figure comes from (benchmark, weights, run).
    """
    precision: str
    device: str
    mse_ratio: Optional[float]
    byte_diff: Optional[float]
    evidence: str

    def passes(self) -> bool:
        return self.mse_ratio is not None and self.mse_ratio <= MAX_MSE_RATIO


# The measured outcome `auto` follows. Figures from `python -m benchmarks.extract_bench
# --fidelity` (full settings: 1,024 components fit on 1,280 frames of 16 synthetic videos,
# 256 held-out frames of 4 others), seeded random Inception-v3 weights. Random weights give
# features unlike ImageNet's: re-measure with real weights (`--fidelity --weights imagenet`,
# and `python -m benchmarks --gpu --weights imagenet` on a GPU) and change an entry here when
# its figure changes; docs/extractor.md has the table and what the columns mean.
VALIDATED: tuple[Validation, ...] = (
    Validation("bfloat16", "cpu-bf16", mse_ratio=238.1, byte_diff=0.960,
               evidence="extract_bench --fidelity, random:0 weights, 2-core Xeon with "
                        "AVX512-BF16, 2026-12-04"),
    Validation("float16", "gpu", mse_ratio=4.44, byte_diff=0.756,
               evidence="float16 arithmetic measured on CPU (extract_bench --fidelity, "
                        "random:0 weights, 2026-12-04); not yet on a GPU: python -m "
                        "benchmarks --gpu measures it there"),
)


# ---------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------
def cpu_flags(cpuinfo: Optional[str] = None) -> frozenset:
    """The CPU's feature flags from ``/proc/cpuinfo`` text (read when not given).

    Empty where there is no ``/proc/cpuinfo`` (not Linux): then no bfloat16
    CPU is assumed, the safe side.
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
                cpuinfo = fh.read()
        except OSError:
            return frozenset()
    flags: set = set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return frozenset(flags)


def gpu_count() -> int:
    import tensorflow as tf
    return len(tf.config.list_physical_devices("GPU"))


def device_kind(*, cpuinfo: Optional[str] = None, gpus: Optional[int] = None,
                env: Optional[Mapping[str, str]] = None) -> str:
    """``gpu``, ``cpu-bf16`` or ``cpu`` for this machine (each input injectable)."""
    if (gpu_count() if gpus is None else int(gpus)) > 0:
        return "gpu"
    env = os.environ if env is None else env
    if env.get("TF_ENABLE_ONEDNN_OPTS", "").strip() == "0":
        return "cpu"  # no oneDNN: TensorFlow emulates bfloat16, slower than float32
    if any(f in cpu_flags(cpuinfo) for f in BF16_CPU_FLAGS):
        return "cpu-bf16"
    return "cpu"


# ---------------------------------------------------------------------------
# The choice
# ---------------------------------------------------------------------------
def check(precision: str) -> str:
    if precision not in CHOICES:
        raise PrecisionError(f"precision {precision!r} is not one of {CHOICES}: pass float32 "
                             f"(the reference), bfloat16 (CPUs with AMX/AVX512-BF16, GPUs), "
                             f"float16 (GPUs) or auto")
    return precision


def validation_for(precision: str, kind: str,
                   validated: Optional[Sequence[Validation]] = None) -> Optional[Validation]:
    for v in (VALIDATED if validated is None else validated):
        if v.precision == precision and v.device == kind:
            return v
    return None


def choose_auto(kind: str, validated: Optional[Sequence[Validation]] = None
                ) -> tuple[str, str]:
    """``(precision, why)`` that ``auto`` gives on a device of ``kind``."""
    if kind not in PREFERRED:
        raise PrecisionError(f"unknown device kind {kind!r}; expected one of {DEVICE_KINDS}")
    want = PREFERRED[kind]
    if want == "float32":
        return "float32", f"{kind}: no faster precision for this device"
    v = validation_for(want, kind, validated)
    if v is None:
        return "float32", f"{kind}: {want} has no fidelity figure in VALIDATED"
    if not v.passes():
        got = "not measured" if v.mse_ratio is None else f"{v.mse_ratio:.3g}"
        return "float32", (f"{kind}: {want} fails the fidelity rule (MSE ratio {got}, limit "
                           f"{MAX_MSE_RATIO:g}; {v.evidence})")
    return want, (f"{kind}: {want} passes the fidelity rule (MSE ratio {v.mse_ratio:.3g} <= "
                  f"{MAX_MSE_RATIO:g}; {v.evidence})")


def resolve(precision: str, *, cpuinfo: Optional[str] = None, gpus: Optional[int] = None,
            env: Optional[Mapping[str, str]] = None,
            validated: Optional[Sequence[Validation]] = None) -> str:
    """The concrete precision (float32, bfloat16 or float16) for ``precision``.

    ``auto`` is resolved for the machine this runs on (see the module
    docstring); the others are returned as they are.
    """
    if check(precision) != "auto":
        return precision
    chosen, why = choose_auto(device_kind(cpuinfo=cpuinfo, gpus=gpus, env=env), validated)
    log.info("precision auto -> %s (%s)", chosen, why)
    return chosen


def from_legacy(precision: Optional[str], mixed_precision: Optional[bool]) -> str:
    """Map the retired ``mixed_precision`` boolean onto ``precision``.

    ``mixed_precision=True`` meant ``mixed_float16``: it maps to ``float16``
    with a DeprecationWarning; combined with another ``precision`` it is an
    error. ``False`` and ``None`` change nothing.
    """
    import warnings
    if not mixed_precision:
        return precision or "float32"
    if precision not in (None, "float32", "float16"):
        raise PrecisionError(f"mixed_precision=True (float16) contradicts precision="
                             f"{precision!r}: drop mixed_precision and pass precision only")
    warnings.warn("mixed_precision=True is replaced by precision='float16' (or 'auto'); "
                  "pass precision instead", DeprecationWarning, stacklevel=3)
    return "float16"


# ---------------------------------------------------------------------------
# Building the network in a precision
# ---------------------------------------------------------------------------
def to_precision(model, precision: str):
    """``model`` computing in ``precision``: itself for float32; else a clone with
    batch norms folded into their convolutions, under the mixed policy."""
    if precision == "float32":
        return model
    if precision not in POLICIES:
        raise PrecisionError(f"to_precision needs a concrete precision {PRECISIONS}, got "
                             f"{precision!r} (resolve 'auto' first)")
    return _clone(model, POLICIES[precision], fold=True)


def fold_batch_norms(model):
    """A float32 clone of ``model`` with every foldable batch norm folded (same outputs
    up to float32 rounding); for tests and for inspecting the folding."""
    return _clone(model, None, fold=True)


def _foldable(model) -> dict:
    """``{conv layer name: its batch norm}`` for each Conv2D -> BatchNormalization pair
    that can be folded: a linear, channels-last 2-D convolution whose only consumer
    is an inference-mode batch norm over the channel axis."""
    import keras
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        try:
            src = layer.input._keras_history.operation
            consumers = len(src._outbound_nodes)
        except (AttributeError, ValueError):  # shared or unusual layers: leave them be
            continue
        axis = layer.axis if isinstance(layer.axis, int) else None
        if (type(src) is keras.layers.Conv2D and consumers == 1
                and src.data_format == "channels_last" and axis in (-1, 3)
                and src.activation is keras.activations.linear):
            pairs[src.name] = layer
    return pairs


def _passthrough_layer():
    import keras

    class FoldedBatchNorm(keras.layers.Layer):
        """Where a batch norm was: identity (its scale and shift are in the conv)."""

        def call(self, inputs, training=None, mask=None):
            return inputs

        def compute_output_shape(self, input_shape):
            return input_shape

    return FoldedBatchNorm


def _clone(model, policy: Optional[str], fold: bool):
    import keras
    pairs = _foldable(model) if fold else {}
    folded = {bn.name for bn in pairs.values()}
    passthrough = _passthrough_layer()

    def clone(layer):
        if layer.name in folded:
            return passthrough(name=layer.name, dtype=policy or layer.dtype_policy.name)
        cfg = layer.get_config()
        if policy is not None:
            cfg["dtype"] = policy
        if layer.name in pairs:
            cfg["use_bias"] = True
        return layer.__class__.from_config(cfg)

    new = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if layer.name in folded or not layer.weights:
            continue
        target = new.get_layer(layer.name)
        if layer.name in pairs:
            target.set_weights(_folded_weights(layer, pairs[layer.name]))
        else:
            target.set_weights(layer.get_weights())
    return new


def _folded_weights(conv, bn) -> list:
    """Kernel and bias of ``conv`` followed by ``bn`` in inference mode, as one conv:
    ``k * s`` and ``(b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``."""
    w = [np.asarray(x, np.float64) for x in conv.get_weights()]
    kernel = w[0]
    bias = w[1] if len(w) > 1 else np.zeros(kernel.shape[-1])
    n = kernel.shape[-1]
    gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.scale else np.ones(n)
    beta = np.asarray(bn.beta.numpy(), np.float64) if bn.center else np.zeros(n)
    mean = np.asarray(bn.moving_mean.numpy(), np.float64)
    var = np.asarray(bn.moving_variance.numpy(), np.float64)
    s = gamma / np.sqrt(var + bn.epsilon)
    return [(kernel * s).astype(np.float32), ((bias - mean) * s + beta).astype(np.float32)]
