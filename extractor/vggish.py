"""The VGGish audio network (128-d embeddings of 0.96 s log-mel examples) from any weights source.

The architecture is the reference's (tensorflow/models research/audioset
``vggish_slim.py``), built in Keras 3: input (96, 64, 1) log-mel patches;
3x3 convolutions (stride 1, SAME padding, ReLU) conv1 64 -> 2x2 max-pool
(stride 2, SAME) -> conv2 128 -> pool -> conv3_1, conv3_2 256 -> pool ->
conv4_1, conv4_2 512 -> pool -> flatten (6 x 4 x 512, row-major as
``slim.flatten`` on NHWC) -> fc1_1, fc1_2 4096 ReLU -> fc2 128, *no*
activation (the released embeddings are fc2's pre-activations).

One entry point, :func:`load_audio_model`, turns a weights *spec* into an
:class:`AudioModel`: ``predict(float32 (N, 96, 64)) -> float32 (N, 128)``
plus ``info`` (what the pipeline records: name, source, spec, path, sha256,
random, and the log-mel front end's constants). Specs:

* a TF1 checkpoint: ``vggish_model.ckpt`` as released (one V1 file) or a V2
  prefix (``PREFIX.index`` + data); any path ending in ``.ckpt``, or
  ``ckpt:PATH`` for other names. Variables are read by their released names
  (``vggish/conv1/weights``, ``vggish/conv1/biases``, ...,
  ``vggish/conv3/conv3_1/weights``, ..., ``vggish/fc2/biases``); others in
  the file are ignored.
* a TF-Hub handle (``https://...``) or a local SavedModel / hub directory,
  loaded with ``hub.load``. A SavedModel whose ``__call__`` (or ``serve`` /
  ``serving_default``) takes a log-mel batch, (N, 96, 64) or (N, 96, 64, 1),
  is called as it is. The published TF-Hub VGGish instead takes a waveform and
  frames it at its own 0.96 s hop; its variables carry the released names, so
  they are copied into the Keras network and the examples come from
  ``extractor.logmel`` (one per sampled second) like every other source.
* a ``.keras`` / ``.h5`` Keras model with the VGGish shapes (input (96, 64, 1)
  or (96, 64), output 128), or a ``.weights.h5`` file of this module's network.
* ``random`` / ``random:SEED``: seeded He-normal weights, for tests and smoke
  runs only; ``info["random"]`` is True and a warning is logged.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import numpy as np
from apache_beam.io.filesystems import FileSystems

from yt8m.extractor import logmel
from yt8m.extractor.weights import WeightsError, sha256_of

# TensorFlow, Keras and TF-Hub are imported inside the functions that build or
# read a network, so that checking an --audio_weights spec stays cheap.

log = logging.getLogger(__name__)

NAME = "vggish"
EMBEDDING_DIM = 128
NUM_FRAMES = logmel.EXAMPLE_FRAMES   # 96
NUM_BANDS = logmel.NUM_BANDS         # 64
INPUT_SHAPE = (NUM_FRAMES, NUM_BANDS, 1)
DEFAULT_MAX_CHUNK = 256
CKPT_PREFIX = "ckpt:"

# Keras layer name -> (released variable scope, layer kind, width). Keras
# names cannot hold "/", so slim.repeat's nested scopes become conv3_1, ....
LAYERS = (
    ("conv1", "vggish/conv1", "conv", 64),
    ("pool1", None, "pool", None),
    ("conv2", "vggish/conv2", "conv", 128),
    ("pool2", None, "pool", None),
    ("conv3_1", "vggish/conv3/conv3_1", "conv", 256),
    ("conv3_2", "vggish/conv3/conv3_2", "conv", 256),
    ("pool3", None, "pool", None),
    ("conv4_1", "vggish/conv4/conv4_1", "conv", 512),
    ("conv4_2", "vggish/conv4/conv4_2", "conv", 512),
    ("pool4", None, "pool", None),
    ("flatten", None, "flatten", None),
    ("fc1_1", "vggish/fc1/fc1_1", "dense", 4096),
    ("fc1_2", "vggish/fc1/fc1_2", "dense", 4096),
    ("fc2", "vggish/fc2", "embedding", EMBEDDING_DIM),
)
WEIGHTED = tuple((name, scope) for name, scope, _, _ in LAYERS if scope)

SPEC_HELP = ("pass --audio_weights /path/to/vggish_model.ckpt (the released TF1 checkpoint), "
             "a TF-Hub VGGish handle or local SavedModel directory, a .keras file, or random "
             "(tests only)")


def released_variable_names() -> list[str]:
    """The 18 variable names of the released checkpoint, in layer order."""
    return [f"{scope}/{part}" for _, scope in WEIGHTED for part in ("weights", "biases")]


def released_shapes() -> dict[str, tuple]:
    """Released variable name -> shape (conv kernels HWIO, dense (in, out))."""
    shapes, channels, flat = {}, 1, None
    for name, scope, kind, width in LAYERS:
        if kind == "conv":
            shapes[f"{scope}/weights"] = (3, 3, channels, width)
            channels = width
        elif kind == "flatten":
            flat = (NUM_FRAMES // 16) * (NUM_BANDS // 16) * channels
        elif kind in ("dense", "embedding"):
            shapes[f"{scope}/weights"] = (flat, width)
            flat = width
        if scope:
            shapes[f"{scope}/biases"] = (width,)
    return shapes


# ---------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------
def vggish(name: str = NAME, kernel_initializer: str = "zeros"):
    """The Keras VGGish, to load weights into.

    Kernels start at zero by default: every loader overwrites them, zeros cost
    nothing to draw (Glorot for 72M weights takes seconds), and a network used
    before its weights are loaded gives constant embeddings rather than
    plausible ones. Pass ``kernel_initializer="glorot_uniform"`` to train.
    """
    import keras
    x = inp = keras.Input(INPUT_SHAPE, name="log_mel")
    for lname, _, kind, width in LAYERS:
        if kind == "conv":
            x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=lname,
                                    kernel_initializer=kernel_initializer)(x)
        elif kind == "pool":
            x = keras.layers.MaxPooling2D(2, 2, padding="same", name=lname)(x)
        elif kind == "flatten":
            x = keras.layers.Flatten(name=lname)(x)
        else:
            x = keras.layers.Dense(width, activation="relu" if kind == "dense" else None,
                                   name=lname, kernel_initializer=kernel_initializer)(x)
    return keras.Model(inp, x, name=name)


def released_weights(model) -> dict[str, np.ndarray]:
    """The network's weights under their released names (float32 arrays)."""
    out = {}
    for lname, scope in WEIGHTED:
        kernel, bias = model.get_layer(lname).get_weights()
        out[f"{scope}/weights"], out[f"{scope}/biases"] = kernel, bias
    return out


def assign_released_weights(model, weights: Mapping[str, Any], source: str) -> None:
    """Sets every layer from ``weights`` (released names -> arrays); a missing
    name or a wrong shape is a WeightsError naming ``source``."""
    shapes = released_shapes()
    missing = [n for n in shapes if n not in weights]
    if missing:
        found = sorted(weights)[:8]
        raise WeightsError(f"{source} lacks the VGGish variables {missing[:4]}"
                           f"{' ...' if len(missing) > 4 else ''} ({len(missing)} of "
                           f"{len(shapes)} missing; it holds {found}"
                           f"{' ...' if len(weights) > 8 else ''}); {SPEC_HELP}")
    bad = [f"{n}: {tuple(np.shape(weights[n]))} (expected {s})" for n, s in shapes.items()
           if tuple(np.shape(weights[n])) != s]
    if bad:
        raise WeightsError(f"{source} has VGGish variables of the wrong shape: "
                           f"{'; '.join(bad[:4])}; it is not the VGGish architecture "
                           f"(vggish_slim); {SPEC_HELP}")
    for lname, scope in WEIGHTED:
        model.get_layer(lname).set_weights([
            np.asarray(weights[f"{scope}/weights"], np.float32),
            np.asarray(weights[f"{scope}/biases"], np.float32)])


def random_vggish(seed: int = 0):
    """VGGish with He-normal kernels from NumPy's generator (seed alone decides them)
    and zero biases; the reference's N(0, 0.01) init would shrink activations
    to nothing through 8 layers, making embeddings hard to tell apart."""
    model = vggish()
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in released_shapes().items():
        if name.endswith("/biases"):
            weights[name] = np.zeros(shape, np.float32)
        else:
            fan_in = int(np.prod(shape[:-1]))
            weights[name] = (rng.standard_normal(shape, dtype=np.float32)
                             * np.float32(np.sqrt(2.0 / fan_in)))
    assign_released_weights(model, weights, f"random:{seed}")
    return model


# ---------------------------------------------------------------------------
# The loaded model
# ---------------------------------------------------------------------------
def as_examples(examples, what: str = "examples") -> np.ndarray:
    """float32 (N, 96, 64) from (N, 96, 64) or (N, 96, 64, 1) floats."""
    x = np.asarray(examples)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or x.shape[1:] != (NUM_FRAMES, NUM_BANDS) or not np.issubdtype(
            x.dtype, np.floating):
        raise ValueError(f"{what}: VGGish takes float log-mel examples of shape (N, "
                         f"{NUM_FRAMES}, {NUM_BANDS}), got {x.dtype} {x.shape}; compute them "
                         f"with extractor.logmel.waveform_to_examples")
    x = x.astype(np.float32, copy=False)
    if x.size and not np.isfinite(x).all():
        raise ValueError(f"{what}: log-mel examples hold NaN or Inf; the waveform upstream "
                         f"is broken")
    return x


class AudioModel:
    """A loaded VGGish: ``predict`` log-mel examples, ``info`` describes the weights.

    ``fn`` is a ``tf.function`` from float32 (N, 96, 64) to float32 (N, 128).
    """

    def __init__(self, fn: Callable, info: dict, max_chunk: int = DEFAULT_MAX_CHUNK):
        self._fn = fn
        self.info = dict(info)
        self.max_chunk = int(max_chunk)

    def predict(self, examples) -> np.ndarray:
        x = as_examples(examples)
        if x.shape[0] == 0:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        out = [np.asarray(self._fn(x[i:i + self.max_chunk]), np.float32)
               for i in range(0, x.shape[0], self.max_chunk)]
        y = out[0] if len(out) == 1 else np.concatenate(out)
        if y.shape != (x.shape[0], EMBEDDING_DIM):
            raise WeightsError(f"audio weights {self.info.get('spec')!r} produced embeddings "
                               f"of shape {y.shape} for {x.shape[0]} examples, expected "
                               f"({x.shape[0]}, {EMBEDDING_DIM}); {SPEC_HELP}")
        return y

    @property
    def keras_model(self):
        """The Keras network behind ``predict`` (None for a SavedModel called as is)."""
        return getattr(self._fn, "keras_model", None)

    def __repr__(self) -> str:
        return f"AudioModel({self.info.get('spec')!r}, source={self.info.get('source')!r})"


# ---------------------------------------------------------------------------
# Specs and info (cheap: nothing is built)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class AudioSpec:
    source: str          # checkpoint | hub | saved-model | keras-file | random
    spec: str
    path: Optional[str] = None
    seed: int = 0


def _exists(path: str) -> bool:
    try:
        return FileSystems.exists(path)
    except Exception:  # an unknown scheme: missing; the message says what to pass
        return False


def _isdir(path: str) -> bool:
    if "://" in path:
        import tensorflow as tf
        return tf.io.gfile.isdir(path)
    return os.path.isdir(path)


def _checkpoint_exists(prefix: str) -> bool:
    return _exists(prefix) or _exists(prefix + ".index")


def parse_audio_spec(spec: str) -> AudioSpec:
    """Classify an audio weights spec; local files must exist (clear error otherwise)."""
    if not isinstance(spec, str) or not spec.strip():
        raise WeightsError(f"empty audio weights spec {spec!r}: {SPEC_HELP}")
    spec = spec.strip()
    if spec == "random" or spec.startswith("random:"):
        try:
            seed = int(spec.partition(":")[2] or "0")
        except ValueError:
            raise WeightsError(f"audio weights spec {spec!r}: the seed after 'random:' must "
                               f"be an integer, e.g. random:0") from None
        return AudioSpec("random", spec, seed=seed)
    lower = spec.lower()
    if spec.startswith(CKPT_PREFIX) or lower.endswith(".ckpt"):
        path = spec[len(CKPT_PREFIX):] if spec.startswith(CKPT_PREFIX) else spec
        if not path:
            raise WeightsError(f"audio weights spec {spec!r} names no checkpoint: pass "
                               f"ckpt:/path/to/prefix or /path/to/vggish_model.ckpt")
        if not _checkpoint_exists(path):
            raise WeightsError(f"VGGish checkpoint {path!r} does not exist (neither the file "
                               f"nor {path}.index): download vggish_model.ckpt "
                               f"(storage.googleapis.com/audioset/vggish_model.ckpt) and pass "
                               f"its path, or {SPEC_HELP}")
        return AudioSpec("checkpoint", spec, path=path)
    if lower.startswith(("http://", "https://", "hub:")):
        return AudioSpec("hub", spec, path=spec[4:] if lower.startswith("hub:") else spec)
    if lower.endswith((".keras", ".h5", ".hdf5")):
        if not _exists(spec):
            raise WeightsError(f"Keras audio weights file {spec!r} does not exist: check the "
                               f"path, or {SPEC_HELP}")
        return AudioSpec("keras-file", spec, path=spec)
    if _isdir(spec):
        if not (_exists(os.path.join(spec, "saved_model.pb"))
                or _exists(os.path.join(spec, "saved_model.pbtxt"))):
            raise WeightsError(f"directory {spec!r} holds no saved_model.pb: pass a VGGish "
                               f"SavedModel / TF-Hub directory, or {SPEC_HELP}")
        return AudioSpec("saved-model", spec, path=spec)
    if _exists(spec):
        raise WeightsError(f"audio weights file {spec!r} has an unknown type (expected .ckpt, "
                           f".keras, .h5 or a SavedModel directory); {SPEC_HELP}")
    raise WeightsError(f"audio weights {spec!r} not found: no such file or directory, and not "
                       f"a known source; {SPEC_HELP}")


def _checkpoint_sha(prefix: str) -> str:
    """sha256 of a V1 checkpoint file, or of a V2 checkpoint's index and data files."""
    if _exists(prefix) and not _isdir(prefix):
        return sha256_of(prefix)
    files = sorted(m.path for r in FileSystems.match([prefix + ".index", prefix + ".data-*"])
                   for m in r.metadata_list)
    h = hashlib.sha256()
    for path in files:
        h.update(os.path.basename(path).encode("utf-8") + b"\0")
        h.update(bytes.fromhex(sha256_of(path)))
    return h.hexdigest()


def audio_weights_info(spec: str) -> dict:
    """What the pipeline records about ``spec`` (model.json, cache fingerprint),
    without building the network; validates the spec first."""
    p = parse_audio_spec(spec)
    sha = None
    if p.source == "checkpoint":
        sha = _checkpoint_sha(p.path)
    elif p.source in ("keras-file", "saved-model") and "://" not in p.path:
        sha = sha256_of(p.path)
    info: dict[str, Any] = {
        "name": NAME, "source": p.source, "spec": p.spec, "path": p.path, "sha256": sha,
        "random": p.source == "random", "embedding_dim": EMBEDDING_DIM,
        "input_shape": [NUM_FRAMES, NUM_BANDS], "frontend": dict(logmel.FRONTEND),
    }
    if p.source == "random":
        info["seed"] = p.seed
    return info


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------
_CACHE: dict[tuple, AudioModel] = {}
_CACHE_LOCK = threading.Lock()


def load_audio_model(spec: str, *, cache: bool = True,
                     max_chunk: int = DEFAULT_MAX_CHUNK) -> AudioModel:
    """Load VGGish for ``spec`` (see the module docstring). With ``cache`` the
    model is kept per process for the same spec and file contents, so Beam
    workers and tests build it once."""
    info = audio_weights_info(spec)
    key = (spec, info["sha256"], int(max_chunk))
    if cache:
        with _CACHE_LOCK:
            if key in _CACHE:
                return _CACHE[key]
    model = _load(parse_audio_spec(spec), info, max_chunk)
    if cache:
        with _CACHE_LOCK:
            model = _CACHE.setdefault(key, model)
    return model


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def _load(p: AudioSpec, info: dict, max_chunk: int) -> AudioModel:
    if p.source in ("hub", "saved-model"):
        fn, how = _saved_model_fn(p)
        info["saved_model_call"] = how
        return AudioModel(fn, info, max_chunk)
    if p.source == "random":
        model = random_vggish(p.seed)
        log.warning("audio weights 'random' (seed %d): embeddings come from an UNTRAINED VGGish "
                    "and mean nothing; use them for tests and smoke runs only", p.seed)
    elif p.source == "checkpoint":
        model = vggish()
        assign_released_weights(model, _read_checkpoint(p.path), f"checkpoint {p.path!r}")
    else:
        model = _keras_file_model(p.path)
    return AudioModel(_keras_fn(model), info, max_chunk)


def _keras_fn(model):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, NUM_FRAMES, NUM_BANDS], tf.float32)],
                 reduce_retracing=True)
    def fn(examples):
        return tf.cast(model(examples[..., None], training=False), tf.float32)

    fn.keras_model = model  # keeps the model alive with the function
    return fn


def _read_checkpoint(prefix: str) -> dict[str, np.ndarray]:
    import tensorflow as tf
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as e:
        raise WeightsError(f"could not read the TF checkpoint {prefix!r} ({type(e).__name__}: "
                           f"{e}); pass the released vggish_model.ckpt or a checkpoint prefix "
                           f"with its .index file") from e
    names = reader.get_variable_to_shape_map()
    # Only the network's variables: a training checkpoint's optimizer slots
    # and step counter are ignored.
    return {n: reader.get_tensor(n) for n in released_variable_names() if n in names}


def _keras_file_model(path: str):
    import keras
    local = _local_copy(path)
    try:
        if path.lower().endswith(".weights.h5"):
            model = vggish()
            model.load_weights(local)
            return model
        model = keras.models.load_model(local, compile=False)
    except Exception as e:
        raise WeightsError(f"could not load Keras audio weights from {path!r} "
                           f"({type(e).__name__}: {e}); pass a .keras VGGish saved with "
                           f"model.save(), or {SPEC_HELP}") from e
    in_shape = tuple(model.inputs[0].shape[1:])
    out_shape = tuple(model.outputs[0].shape[1:])
    if in_shape not in (INPUT_SHAPE, INPUT_SHAPE[:2]) or out_shape != (EMBEDDING_DIM,):
        raise WeightsError(f"Keras model {path!r} maps {in_shape} to {out_shape}; a VGGish "
                           f"takes (96, 64, 1) log-mel examples to 128-d embeddings")
    return model


def _local_copy(path: str) -> str:
    """Keras reads local files only: a remote file is copied to a temp file."""
    if "://" not in path:
        return path
    suffix = ".weights.h5" if path.lower().endswith(".weights.h5") else os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "wb") as out, FileSystems.open(path) as src:
        for block in iter(lambda: src.read(1 << 20), b""):
            out.write(block)
    return tmp


# ---- SavedModels ---------------------------------------------------------------
def _saved_model_fn(p: AudioSpec):
    """(fn, how): ``how`` is "log_mel" (the SavedModel is called on the examples)
    or "variables" (its released-name variables run in the Keras network)."""
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
    call, rank = _log_mel_callable(obj)
    if call is not None:
        @tf.function(input_signature=[tf.TensorSpec([None, NUM_FRAMES, NUM_BANDS], tf.float32)])
        def fn(examples):
            x = examples[..., None] if rank == 4 else examples
            return tf.cast(_single_output(call(x), p.spec), tf.float32)

        fn.saved_model = obj  # keeps the restored variables alive
        return fn, "log_mel"
    found = {v.name.split(":")[0]: v for v in tf.train.TrackableView(obj).descendants()
             if isinstance(v, tf.Variable)}
    if not any(n in found for n in released_shapes()):
        raise WeightsError(f"SavedModel {p.spec!r} takes no log-mel batch (N, 96, 64) and has "
                           f"no variables with the released VGGish names (vggish/conv1/weights, "
                           f"...; it has {sorted(found)[:6]}); {SPEC_HELP}")
    model = vggish()
    assign_released_weights(model, {n: v.numpy() for n, v in found.items()},
                            f"SavedModel {p.spec!r}")
    return _keras_fn(model), "variables"


def _single_output(y, spec: str):
    """The embedding tensor of a SavedModel call (a tensor, or a dict of outputs)."""
    if not isinstance(y, dict):
        return y
    if len(y) == 1:
        return next(iter(y.values()))
    for key in ("embedding", "embeddings", "output_0", "default"):
        if key in y:
            return y[key]
    raise WeightsError(f"SavedModel {spec!r} returns several outputs {sorted(y)} and none "
                       f"is named embedding; pass a VGGish returning one (N, 128) tensor")


def _log_mel_callable(obj):
    """(callable, rank) for an entry point taking float32 (N, 96, 64[, 1]), or (None, 0)."""
    candidates = []
    if callable(obj) and hasattr(obj.__call__, "concrete_functions"):
        candidates.append(obj.__call__)
    if hasattr(obj, "serve") and hasattr(obj.serve, "concrete_functions"):
        candidates.append(obj.serve)
    for fn in candidates:
        for cf in fn.concrete_functions:
            args, kwargs = cf.structured_input_signature
            specs = list(args) + list(kwargs.values())
            if len(specs) == 1 and _is_log_mel_spec(specs[0]):
                return fn, len(specs[0].shape)
    sig = (getattr(obj, "signatures", None) or {}).get("serving_default")
    if sig is not None:
        inputs = sig.structured_input_signature[1]
        if len(inputs) == 1:
            (arg, spec), = inputs.items()
            if _is_log_mel_spec(spec):
                return (lambda x: sig(**{arg: x})), len(spec.shape)
    return None, 0


def _is_log_mel_spec(spec) -> bool:
    import tensorflow as tf
    shape = getattr(spec, "shape", None)
    if shape is None or getattr(spec, "dtype", None) != tf.float32 or shape.rank not in (3, 4):
        return False
    dims = shape.as_list()
    return dims[1:3] == [NUM_FRAMES, NUM_BANDS] and (shape.rank == 3 or dims[3] == 1)


def export_saved_model(model, path: str) -> str:
    """Save a Keras VGGish as a SavedModel whose ``__call__`` takes float32 log-mel
    examples (N, 96, 64) and returns (N, 128) (what :func:`load_audio_model`
    calls as is)."""
    import tensorflow as tf

    class _VGGishLogMel(tf.Module):
        def __init__(self, m):
            super().__init__()
            self.model = m

        @tf.function(input_signature=[tf.TensorSpec([None, NUM_FRAMES, NUM_BANDS], tf.float32)])
        def __call__(self, examples):
            return self.model(examples[..., None], training=False)

    tf.saved_model.save(_VGGishLogMel(model), path)
    return path
