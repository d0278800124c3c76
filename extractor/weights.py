"""Loading the frame-feature network (Inception-v3, 2048-d pooled output) from any weights source.

One entry point, :func:`load_feature_model`, turns a weights *spec* into a
:class:`FeatureModel`: ``predict(uint8 frames) -> float32 (N, 2048)`` plus
``info`` (what the pipeline records in ``model.json`` and what the feature
cache's fingerprint hashes). Specs:

* ``imagenet``: Keras's published ImageNet weights for
  ``keras.applications.InceptionV3(include_top=False, pooling="avg")``,
  downloaded once by ``keras.utils.get_file`` and cached under
  ``$KERAS_HOME/models`` (``~/.keras/models``).
* a ``.keras`` / ``.h5`` / ``.hdf5`` / ``.weights.h5`` file: a whole saved Keras
  model (its 2048-d pooling layer is used if it has a classifier on top) or a
  weights-only file for Inception-v3 (with or without the top).
* a TF-Hub handle (``https://...``) or a local SavedModel / hub directory,
  loaded with ``hub.load`` (Keras 3 cannot host ``hub.KerasLayer``).
* ``yt8m-graph:PATH``: the original YouTube-8M frozen graph
  (``classify_image_graph_def.pb``, see ``extractor.yt8m_graph``), fed each
  decoded RGB frame at its decoded size at ``DecodeJpeg:0`` and read at
  ``pool_3/_reshape:0``, as the original extractor did; the graph resizes and
  scales internally (``info["input_size"]`` is None: decode full-size frames).
* ``random`` / ``random:SEED``: Inception-v3 with seeded He-normal weights, for
  tests and smoke runs only; ``info["random"]`` is True and a warning is logged.

Each source gets the input scaling its weights were trained with (the
``input_range``): Keras Inception expects ``x / 127.5 - 1`` ("symmetric"),
TF-Hub image models ``x / 255`` ("unit"), the frozen graph raw ``uint8``.

Keras sources run in a ``precision`` (``extractor.precision``): ``float32``
(default, the reference), ``bfloat16``, ``float16`` or ``auto`` (resolved for
the machine where the info is computed, and recorded resolved in ``info``).
Frozen graphs and SavedModels run as saved (``float32`` / ``auto`` only).
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
from apache_beam.io.filesystems import FileSystems

# TensorFlow, Keras, TF-Hub and h5py are imported inside the functions that
# build or read a network: ``weights_info`` (which every command calls to check
# its --weights) and the CLIs' --help must not pay TensorFlow's start-up.

from yt8m.extractor import precision as precision_lib
from yt8m.extractor import yt8m_graph

log = logging.getLogger(__name__)

FEATURE_DIM = 2048
INPUT_SIZE = 299

YT8M_GRAPH_PREFIX = "yt8m-graph:"
YT8M_GRAPH_INPUT = yt8m_graph.GRAPH_INPUT
YT8M_GRAPH_OUTPUT = yt8m_graph.GRAPH_OUTPUT

# What info["precision"] says for a SavedModel / hub model: it runs in the
# dtypes it was saved with; this loader changes nothing.
AS_SAVED = "as_saved"
KERAS_SOURCES = ("imagenet", "keras-file", "random")

# Keras's published Inception-v3 weights without the classifier (the same file
# keras.applications downloads; md5 from keras/src/applications/inception_v3.py).
IMAGENET_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/"
                "inception_v3/" + IMAGENET_FILE)
IMAGENET_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"

INPUT_RANGES = ("symmetric", "unit", "uint8")
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")

# Frames per call of the underlying network: bounds activation memory when a
# caller hands predict() a large array (Inception's first layers hold ~6 MB of
# float32 activations per 299x299 image).
DEFAULT_MAX_CHUNK = 256


class WeightsError(ValueError):
    """A weights spec that cannot be loaded; the message says what to pass instead."""


SPEC_HELP = ("pass --weights imagenet (Keras's ImageNet weights, cached after one download), "
             "a local .keras/.h5 file, a TF-Hub handle or local SavedModel directory, "
             "yt8m-graph:/path/to/classify_image_graph_def.pb, or random (tests only)")


# ---------------------------------------------------------------------------
# The loaded model
# ---------------------------------------------------------------------------
class FeatureModel:
    """A loaded feature network: ``predict`` frames, ``info`` describes the weights.

    ``fn`` is a ``tf.function`` taking a uint8 batch ``(N, H, W, 3)`` and
    returning float32 ``(N, 2048)``; scaling to the weights' input range
    happens inside it, so callers always pass decoded RGB frames.
    """

    def __init__(self, fn: Callable, info: dict, max_chunk: int = DEFAULT_MAX_CHUNK):
        self._fn = fn
        self.info = dict(info)
        self.max_chunk = int(max_chunk)

    def predict(self, frames) -> np.ndarray:
        """Features of ``frames``: uint8 RGB ``(N, H, W, 3)``, one frame ``(H, W, 3)``
        (-> ``(1, 2048)``), or a list of frames of any sizes (-> ``(N, 2048)`` in
        order; frames of one size go through the network together)."""
        if isinstance(frames, (list, tuple)):
            return self._predict_list(frames)
        x = np.asarray(frames)
        if x.ndim == 3 and x.shape[-1] == 3:
            x = x[None]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"predict expects uint8 RGB frames of shape (N, H, W, 3) or "
                             f"(H, W, 3), got {x.dtype} {x.shape}; pass decoded frames such "
                             f"as extractor.decode.sample_frames(...).frames")
        if x.shape[0] == 0:
            return np.zeros((0, FEATURE_DIM), np.float32)
        out = [np.asarray(self._fn(x[i:i + self.max_chunk]), np.float32)
               for i in range(0, x.shape[0], self.max_chunk)]
        y = out[0] if len(out) == 1 else np.concatenate(out)
        if y.shape != (x.shape[0], FEATURE_DIM):
            raise WeightsError(f"weights {self.info.get('spec')!r} produced features of shape "
                               f"{y.shape} for {x.shape[0]} frames, expected "
                               f"({x.shape[0]}, {FEATURE_DIM}); {SPEC_HELP}")
        return y

    def _predict_list(self, frames) -> np.ndarray:
        arrays = [np.asarray(f) for f in frames]
        for i, f in enumerate(arrays):
            if f.dtype != np.uint8 or f.ndim != 3 or f.shape[-1] != 3:
                raise ValueError(f"predict: frame {i} is {f.dtype} {f.shape}, expected uint8 "
                                 f"RGB (H, W, 3)")
        out = np.zeros((len(arrays), FEATURE_DIM), np.float32)
        for shape, idx in group_by_shape(arrays).items():
            out[idx] = self.predict(np.stack([arrays[i] for i in idx]))
        return out

    def __repr__(self) -> str:
        return f"FeatureModel({self.info.get('spec')!r}, source={self.info.get('source')!r})"


def group_by_shape(frames) -> dict:
    """``{shape: [indices]}`` of ``frames``, in first-seen order."""
    groups: dict = {}
    for i, f in enumerate(frames):
        groups.setdefault(tuple(np.shape(f)), []).append(i)
    return groups


def _scale(x, input_range: str):
    """uint8 frames -> the value range the weights were trained on."""
    import tensorflow as tf
    if input_range == "uint8":
        return x
    x = tf.cast(x, tf.float32)
    if input_range == "symmetric":
        return x / 127.5 - 1.0
    return x / 255.0


# ---------------------------------------------------------------------------
# Spec parsing and info (cheap: no network is built)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ParsedSpec:
    source: str           # imagenet | keras-file | saved-model | hub | yt8m-graph | random
    spec: str
    path: Optional[str] = None
    seed: int = 0


def _is_remote(path: str) -> bool:
    return "://" in path


def parse_spec(spec: str) -> ParsedSpec:
    """Classify a weights spec; local files must exist (clear error otherwise)."""
    if not isinstance(spec, str) or not spec.strip():
        raise WeightsError(f"empty weights spec {spec!r}: {SPEC_HELP}")
    spec = spec.strip()
    if spec == "imagenet":
        return ParsedSpec("imagenet", spec)
    if spec == "random" or spec.startswith("random:"):
        seed_text = spec.partition(":")[2] or "0"
        try:
            seed = int(seed_text)
        except ValueError:
            raise WeightsError(f"weights spec {spec!r}: the seed after 'random:' must be an "
                               f"integer, e.g. random:0") from None
        return ParsedSpec("random", spec, seed=seed)
    if spec.startswith(YT8M_GRAPH_PREFIX):
        path = spec[len(YT8M_GRAPH_PREFIX):]
        if not path:
            raise WeightsError(f"weights spec {spec!r} names no file: pass "
                               f"yt8m-graph:/path/to/classify_image_graph_def.pb")
        if not _exists(path):
            raise WeightsError(f"frozen graph {path!r} does not exist: download the YouTube-8M "
                               f"feature extractor's classify_image_graph_def.pb (inception-"
                               f"2015-12-05.tgz) and pass yt8m-graph:PATH, or {SPEC_HELP}")
        return ParsedSpec("yt8m-graph", spec, path=path)
    lower = spec.lower()
    if lower.startswith(("http://", "https://")) or lower.startswith("hub:"):
        return ParsedSpec("hub", spec, path=spec[4:] if lower.startswith("hub:") else spec)
    if lower.endswith(KERAS_SUFFIXES):
        if not _exists(spec):
            raise WeightsError(f"Keras weights file {spec!r} does not exist: check the path, "
                               f"or {SPEC_HELP}")
        return ParsedSpec("keras-file", spec, path=spec)
    if _isdir(spec):
        if not _exists(os.path.join(spec, "saved_model.pb")) and not _exists(
                os.path.join(spec, "saved_model.pbtxt")):
            raise WeightsError(f"directory {spec!r} holds no saved_model.pb: pass a SavedModel "
                               f"or TF-Hub model directory, or {SPEC_HELP}")
        return ParsedSpec("saved-model", spec, path=spec)
    if _exists(spec):
        raise WeightsError(f"weights file {spec!r} has an unknown type (expected .keras, .h5, "
                           f".hdf5, a SavedModel directory or yt8m-graph:FILE.pb); {SPEC_HELP}")
    raise WeightsError(f"weights {spec!r} not found: no such file or directory, and not a "
                       f"known source; {SPEC_HELP}")


def _exists(path: str) -> bool:
    try:
        return FileSystems.exists(path)
    except Exception:  # an unknown scheme: treat as missing, the message says what to pass
        return False


def _isdir(path: str) -> bool:
    if _is_remote(path):
        import tensorflow as tf
        return tf.io.gfile.isdir(path)
    return os.path.isdir(path)


def sha256_of(path: str) -> str:
    """sha256 of a file, or of a directory tree (relative names and contents, sorted)."""
    h = hashlib.sha256()
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                h.update(os.path.relpath(full, path).encode("utf-8") + b"\0")
                _hash_file(full, h)
        return h.hexdigest()
    _hash_file(path, h)
    return h.hexdigest()


def _hash_file(path: str, h) -> None:
    with FileSystems.open(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)


def imagenet_cache_path() -> str:
    """Where Keras keeps (or would download) the ImageNet Inception-v3 weights."""
    import keras
    home = keras.config.keras_home() if hasattr(keras.config, "keras_home") else None
    home = home or os.environ.get("KERAS_HOME") or os.path.expanduser("~/.keras")
    return os.path.join(home, "models", IMAGENET_FILE)


def default_input_range(source: str) -> str:
    return {"imagenet": "symmetric", "keras-file": "symmetric", "random": "symmetric",
            "hub": "unit", "saved-model": "unit", "yt8m-graph": "uint8"}[source]


def weights_info(spec: str, *, input_range: Optional[str] = None, precision: str = "float32",
                 mixed_precision: Optional[bool] = None) -> dict:
    """What ``model.json`` records about ``spec``, without building the network.

    Validates the spec (missing files are a clear error), so a launcher can
    fail fast before starting a pipeline. ``precision`` is resolved here
    (``auto`` for this machine) and recorded resolved, so the cache
    fingerprint and ``model.json`` say what the network computes in.
    ``mixed_precision`` is the retired boolean (True maps to float16, with a
    DeprecationWarning).
    """
    p = parse_spec(spec)
    rng = _check_range(input_range, p)
    resolved = _resolve_precision(p, _requested_precision(precision, mixed_precision))
    sha = None
    if p.source in ("keras-file", "saved-model", "yt8m-graph") and not _is_remote(p.path):
        sha = sha256_of(p.path)
    elif p.source == "imagenet" and os.path.exists(imagenet_cache_path()):
        sha = sha256_of(imagenet_cache_path())
    name = "inception_v3" if p.source != "yt8m-graph" else "inception_2015_12_05_frozen_graph"
    info: dict[str, Any] = {
        "name": name, "source": p.source, "spec": p.spec, "path": p.path, "sha256": sha,
        "random": p.source == "random", "input_range": rng, "feature_dim": FEATURE_DIM,
        # None: frames at their decoded size (the graph resizes them itself).
        "input_size": None if p.source == "yt8m-graph" else INPUT_SIZE,
        "precision": resolved,
    }
    if p.source == "random":
        info["seed"] = p.seed
    return info


def _requested_precision(precision: Optional[str], mixed_precision: Optional[bool]) -> str:
    try:
        return precision_lib.from_legacy(precision, mixed_precision)
    except precision_lib.PrecisionError as e:
        raise WeightsError(str(e)) from None


def _resolve_precision(p: ParsedSpec, precision: str) -> str:
    if p.source in KERAS_SOURCES:
        try:
            return precision_lib.resolve(precision)
        except precision_lib.PrecisionError as e:
            raise WeightsError(str(e)) from None
    fixed = "float32" if p.source == "yt8m-graph" else AS_SAVED
    if precision in ("float32", "auto", fixed):
        return fixed
    if precision not in precision_lib.CHOICES:
        raise WeightsError(f"precision {precision!r} is not one of {precision_lib.CHOICES}")
    raise WeightsError(f"precision {precision!r} applies to Keras weights only; {p.spec!r} is a "
                       f"{p.source} model whose dtypes are fixed: pass --precision float32 "
                       f"(or auto) for it")


def _check_range(input_range: Optional[str], p: ParsedSpec) -> str:
    if input_range is None:
        return default_input_range(p.source)
    if input_range not in INPUT_RANGES:
        raise WeightsError(f"input_range {input_range!r} is not one of {INPUT_RANGES} "
                           f"(symmetric: x/127.5-1 as Keras Inception; unit: x/255 as TF-Hub; "
                           f"uint8: raw pixels)")
    if p.source == "yt8m-graph" and input_range != "uint8":
        raise WeightsError("the YouTube-8M frozen graph scales its uint8 input itself: "
                           "leave input_range unset for yt8m-graph:PATH")
    return input_range


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------
_CACHE: dict[tuple, FeatureModel] = {}
_CACHE_LOCK = threading.Lock()


def load_feature_model(spec: str, *, precision: str = "float32",
                       input_range: Optional[str] = None, cache: bool = True,
                       max_chunk: int = DEFAULT_MAX_CHUNK,
                       mixed_precision: Optional[bool] = None) -> FeatureModel:
    """Load the feature network for ``spec`` (see the module docstring for specs).

    ``precision`` (Keras sources): ``float32``, ``bfloat16``, ``float16`` or
    ``auto`` (``extractor.precision``; the output is float32 in every case).
    ``input_range`` overrides the scaling a source gets by default. With
    ``cache`` the loaded model is kept per process and reused for the same
    spec, precision and file contents (Beam workers and tests load once).
    ``mixed_precision=True`` is the retired spelling of ``precision="float16"``.
    """
    info = weights_info(spec, input_range=input_range,
                        precision=_requested_precision(precision, mixed_precision))
    key = (spec, info["precision"], info["input_range"], info["sha256"], max_chunk)
    if cache:
        with _CACHE_LOCK:
            if key in _CACHE:
                return _CACHE[key]
    model = _load(parse_spec(spec), info, max_chunk)
    if cache:
        with _CACHE_LOCK:
            _CACHE.setdefault(key, model)
            model = _CACHE[key]
    return model


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def _load(p: ParsedSpec, info: dict, max_chunk: int) -> FeatureModel:
    rng = info["input_range"]
    if p.source == "yt8m-graph":
        try:
            return FeatureModel(yt8m_graph.graph_fn(p.path), info, max_chunk)
        except yt8m_graph.GraphError as e:
            raise WeightsError(str(e)) from e
    if p.source in ("hub", "saved-model"):
        return FeatureModel(_saved_model_fn(p, rng), info, max_chunk)
    if p.source == "random":
        keras_model = _random_inception(p.seed)
        log.warning("weights 'random' (seed %d): features come from an UNTRAINED Inception-v3 "
                    "and mean nothing; use them for tests and smoke runs only", p.seed)
    elif p.source == "imagenet":
        keras_model = _imagenet_inception()
    else:
        keras_model = _keras_file_model(p.path)
    keras_model = precision_lib.to_precision(_feature_head(keras_model, p.spec),
                                             info["precision"])
    return FeatureModel(_keras_fn(keras_model, rng), info, max_chunk)


def _keras_fn(model, input_range: str):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)],
                 reduce_retracing=True)
    def fn(frames):
        y = model(_scale(frames, input_range), training=False)
        return tf.cast(y, tf.float32)

    fn.keras_model = model  # keeps the model alive with the function; handy for export
    return fn


def inception_v3(weights=None, include_top: bool = False):
    """The Keras Inception-v3 feature network (global average pooling, 2048-d)."""
    import keras
    return keras.applications.InceptionV3(include_top=include_top, weights=weights,
                                          pooling=None if include_top else "avg",
                                          input_shape=None)


def _random_inception(seed: int):
    """Inception-v3 whose conv/dense kernels are He-normal from ``seed``.

    Drawn with NumPy's generator rather than Keras's initialisers so that the
    weights depend on the seed alone, not on global TF/Keras random state. He
    scaling keeps activations O(1) through the 94 conv layers (the default
    Glorot init shrinks them to ~1e-4, which makes features hard to tell apart).
    """
    model = inception_v3(weights=None)
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if w.path.endswith("kernel"):
            shape = tuple(w.shape)
            fan_in = int(np.prod(shape[:-1]))
            w.assign(rng.standard_normal(shape, dtype=np.float32) * np.sqrt(2.0 / fan_in))
    return model


def _imagenet_inception():
    import keras
    try:
        path = keras.utils.get_file(IMAGENET_FILE, IMAGENET_URL, cache_subdir="models",
                                    file_hash=IMAGENET_MD5)
    except Exception as e:
        raise WeightsError(
            f"could not get Keras's ImageNet Inception-v3 weights ({type(e).__name__}: {e}). "
            f"They are downloaded once from {IMAGENET_URL} and cached at "
            f"{imagenet_cache_path()}: run once on a machine with internet, or copy that "
            f"file there, or pass --weights /path/to/{IMAGENET_FILE}") from e
    model = inception_v3(weights=None)
    model.load_weights(path)
    return model


def _h5_kind(path: str) -> str:
    """'model' for a whole saved model, 'weights' for a weights-only HDF5 file."""
    import h5py
    with h5py.File(path, "r") as f:
        if "model_config" in f.attrs:
            return "model"
    return "weights"


def _keras_file_model(path: str):
    import keras
    local = _local_copy(path)
    lower = path.lower()
    try:
        if lower.endswith(".keras"):
            return keras.models.load_model(local, compile=False)
        if lower.endswith(".weights.h5") or _h5_kind(local) == "weights":
            return _load_inception_weights(local, path)
        return keras.models.load_model(local, compile=False)
    except WeightsError:
        raise
    except Exception as e:
        raise WeightsError(f"could not load Keras weights from {path!r} "
                           f"({type(e).__name__}: {e}); pass a .keras/.h5 model or an "
                           f"Inception-v3 weights file, or {SPEC_HELP}") from e


def _load_inception_weights(local: str, shown: str):
    """Weights-only file: try Inception-v3 without, then with, the classifier."""
    errors = []
    for include_top in (False, True):
        model = inception_v3(weights=None, include_top=include_top)
        try:
            model.load_weights(local)
            return model
        except Exception as e:  # layer count / shape mismatch: try the other layout
            errors.append(f"include_top={include_top}: {e}")
    raise WeightsError(f"{shown!r} is a weights-only file that fits neither Inception-v3 "
                       f"layout ({'; '.join(errors)}); pass weights saved from "
                       f"keras.applications.InceptionV3, or a whole saved model")


def _local_copy(path: str) -> str:
    """Keras and h5py read local files only: copy a remote file to a temp file."""
    if not _is_remote(path):
        return path
    suffix = ".weights.h5" if path.lower().endswith(".weights.h5") else os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "wb") as out, FileSystems.open(path) as src:
        for block in iter(lambda: src.read(1 << 20), b""):
            out.write(block)
    return tmp


def _feature_head(model, spec: str):
    """The model's 2048-d pooled output: itself, or its pooling layer under a classifier."""
    import keras
    out = model.outputs[0] if model.outputs else None
    if out is not None and len(out.shape) == 2 and out.shape[-1] == FEATURE_DIM:
        return model
    pools = [layer for layer in model.layers
             if isinstance(layer, keras.layers.GlobalAveragePooling2D)
             and layer.output.shape[-1] == FEATURE_DIM]
    if pools:
        return keras.Model(model.inputs, pools[-1].output, name=model.name + "_features")
    raise WeightsError(f"model {spec!r} outputs {None if out is None else tuple(out.shape)} and "
                       f"has no 2048-d global average pooling layer: pass an Inception-v3 "
                       f"(include_top=False, pooling='avg', or a full model with its avg_pool)")


def _saved_model_fn(p: ParsedSpec, input_range: str):
    import tensorflow as tf
    import tensorflow_hub as hub
    try:
        obj = hub.load(p.path)
    except Exception as e:
        where = ("a TF-Hub handle needs internet once (or TFHUB_CACHE_DIR holding it): "
                 "download the model and pass its local directory instead"
                 if p.source == "hub" else "the directory is not a loadable SavedModel")
        raise WeightsError(f"could not load {p.spec!r} ({type(e).__name__}: {e}); {where}; "
                           f"{SPEC_HELP}") from e
    call = _saved_model_callable(obj, p.spec)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)],
                 reduce_retracing=True)
    def fn(frames):
        y = call(_scale(frames, input_range))
        return tf.cast(_single_output(y, p.spec), tf.float32)

    fn.saved_model = obj  # keep the restored object (and its variables) alive
    return fn


def _single_output(y, spec: str):
    """The feature tensor of a SavedModel call (a tensor, or a dict of outputs)."""
    if not isinstance(y, dict):
        return y
    if len(y) == 1:
        return next(iter(y.values()))
    keys = [k for k in ("feature_vector", "default", "output_0") if k in y]
    if not keys:
        raise WeightsError(f"SavedModel {spec!r} returns several outputs {sorted(y)}; "
                           f"pass a 2048-d feature-vector model")
    return y[keys[0]]


def _saved_model_callable(obj, spec: str):
    # TF-Hub models and tf.Module exports expose __call__; Keras's model.export()
    # exposes `serve`; anything else must at least have a serving signature.
    if callable(obj):
        return obj
    if hasattr(obj, "serve"):
        return obj.serve
    sigs = getattr(obj, "signatures", {}) or {}
    if "serving_default" in sigs:
        sig = sigs["serving_default"]
        (arg_name, _), = sig.structured_input_signature[1].items()
        return lambda x: sig(**{arg_name: x})
    raise WeightsError(f"SavedModel {spec!r} has no __call__, serve or serving_default "
                       f"signature to call: pass a TF-Hub feature-vector model or a Keras "
                       f"model.export() directory")


# ---------------------------------------------------------------------------
# Export: a Keras feature model as a TF-Hub-style SavedModel
# ---------------------------------------------------------------------------
def export_hub_feature_vector(keras_model, path: str) -> str:
    """Save ``keras_model`` (Keras-Inception scaling) as a SavedModel in the TF-Hub convention.

    The saved ``__call__`` takes float32 images in [0, 1] (TF-Hub's image
    convention) and returns ``(N, 2048)``; the [-1, 1] rescaling the Keras
    weights expect is inside, so ``load_feature_model(path)`` gives the same
    features as the Keras model.
    """
    import tensorflow as tf

    model = _feature_head(keras_model, "<keras model>")

    class _HubFeatureVector(tf.Module):
        def __init__(self, m):
            super().__init__()
            self.model = m

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def __call__(self, images):
            return self.model(images * 2.0 - 1.0, training=False)

    module = _HubFeatureVector(model)
    tf.saved_model.save(module, path)
    return path
