"""The paper's baseline models (sections 4.1 and 4.3) as small Keras 3 classes.

Each class takes its configuration explicitly (no global flags) and builds a
:class:`Built`: the Keras model to ``fit`` (``train_model``), the model that
scores videos (``model``, outputs ``(B, C)`` probabilities in [0, 1]; it is
what gets saved), the loss and the optimizer defaults of the paper. The two
models share their layers; they differ only where the paper trains on
something other than the final score (hinge loss on margins, per-frame
logistic loss).

Registry: :data:`MODELS` (``--model`` names): ``logistic``, ``hinge``,
``moe`` (video-level, input ``features`` (B, D)); ``frame_logistic``,
``dbof``, ``lstm`` (frame-level, inputs ``frames`` (B, T, D) and
``num_frames`` (B,)).

Losses are summed over classes and averaged over the batch: the paper trains
one independent binary classifier per class, so each class's gradient must
not be divided by the number of classes (Adagrad's accumulator would then
swamp it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import keras
from keras import layers, ops

PACKAGE = "yt8m_trainer"


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package=PACKAGE)
def multilabel_log_loss(y_true, y_pred):
    """Equation 5 summed over classes: ``(B, C)`` (or ``(B, k, C)``) -> ``(B,)``."""
    p = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
    y = ops.cast(y_true, p.dtype)
    loss = -(y * ops.log(p) + (1.0 - y) * ops.log(1.0 - p))
    loss = ops.sum(loss, axis=-1)
    # Per-frame labels (B, k, C): the mean over the k frames of each video.
    return ops.mean(loss, axis=-1) if len(loss.shape) > 1 else loss


def make_hinge_loss(b: float = 1.0) -> Callable:
    """Equation 4, ``max(0, b - (2y - 1) y_hat)`` summed over classes."""
    def hinge_loss(y_true, margins):
        y = ops.cast(y_true, margins.dtype)
        return ops.sum(ops.relu(b - (2.0 * y - 1.0) * margins), axis=-1)
    return hinge_loss


# ---------------------------------------------------------------------------
# Layers (registered so a saved .keras model loads back)
# ---------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package=PACKAGE)
class FrameMask(layers.Layer):
    """``[frames (B, T, D), num_frames (B,)]`` -> bool mask ``(B, T)`` of real frames."""

    def call(self, inputs):
        frames, num_frames = inputs
        t = ops.shape(frames)[1]
        n = ops.reshape(ops.cast(num_frames, "int32"), (-1, 1))
        return ops.arange(t, dtype="int32")[None, :] < n


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedAverage(layers.Layer):
    """``[x (B, T, C), mask (B, T)]`` -> ``(B, C)``: the mean over real frames.

    ``weighting="linear"``: frame t of a video of n frames weighs (t+1)/n,
    from 1/n up to 1 for the last frame (section 4.1.3, after [26]).
    """

    def __init__(self, weighting: str = "uniform", **kwargs):
        super().__init__(**kwargs)
        # The frame mask arrives explicitly; an implicit Keras mask from an
        # upstream layer is consumed here, not propagated.
        self.supports_masking = True
        if weighting not in ("uniform", "linear"):
            raise ValueError(f"weighting must be 'uniform' or 'linear', got {weighting!r}")
        self.weighting = weighting

    def call(self, inputs):
        x, mask = inputs
        w = ops.cast(mask, x.dtype)
        if self.weighting == "linear":
            n = ops.maximum(ops.sum(w, axis=1, keepdims=True), 1.0)
            pos = ops.cast(ops.arange(ops.shape(x)[1]), x.dtype)[None, :] + 1.0
            w = w * pos / n
        total = ops.maximum(ops.sum(w, axis=1, keepdims=True), 1e-9)
        return ops.sum(x * w[:, :, None], axis=1) / total

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "weighting": self.weighting}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedMax(layers.Layer):
    """``[x (B, T, M), mask (B, T)]`` -> ``(B, M)``: max over real frames (0 if none)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # see MaskedAverage

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, inputs):
        x, mask = inputs
        m = ops.cast(mask, "bool")[:, :, None]
        neg = ops.full_like(x, -3.0e38)
        out = ops.max(ops.where(m, x, neg), axis=1)
        any_frame = ops.any(m, axis=1)
        return ops.where(any_frame, out, ops.zeros_like(out))


@keras.saving.register_keras_serializable(package=PACKAGE)
class MixtureOfExperts(layers.Layer):
    """Section 4.3.3: per class, H logistic experts and a softmax gate over H+1 states.

    Input ``(B, D)`` -> ``(B, C)``. The gate's last state is the dummy "no
    entity" state: its expert always says 0, so
    ``p(e|x) = sum_{h<H} p(h|x) sigmoid(u_h . x)``. Weights: gate
    ``(D, C (H+1))``, experts ``(D, C H)``, both with an L2 penalty.
    """

    def __init__(self, num_classes: int, num_mixtures: int = 2, l2_penalty: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        if num_mixtures < 1:
            raise ValueError(f"num_mixtures must be >= 1, got {num_mixtures}")
        self.num_classes = int(num_classes)
        self.num_mixtures = int(num_mixtures)
        self.l2_penalty = float(l2_penalty)
        reg = keras.regularizers.L2(self.l2_penalty) if self.l2_penalty else None
        self.gate = layers.Dense(self.num_classes * (self.num_mixtures + 1), kernel_regularizer=reg,
                                 name="gates")
        self.experts = layers.Dense(self.num_classes * self.num_mixtures, kernel_regularizer=reg,
                                    name="experts")

    def build(self, input_shape):
        self.gate.build(input_shape)
        self.experts.build(input_shape)

    def call(self, x):
        h, c = self.num_mixtures, self.num_classes
        gates = ops.softmax(ops.reshape(self.gate(x), (-1, c, h + 1)), axis=-1)
        experts = ops.sigmoid(ops.reshape(self.experts(x), (-1, c, h)))
        return ops.sum(gates[:, :, :h] * experts, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "num_mixtures": self.num_mixtures, "l2_penalty": self.l2_penalty}


# ---------------------------------------------------------------------------
# Model classes
# ---------------------------------------------------------------------------
@dataclass
class Built:
    train_model: keras.Model
    model: keras.Model
    loss: Callable
    #: frames per training example (None: all frames, padded)
    train_frames: Optional[int] = None
    #: labels repeated per sampled frame, (B, k, C)
    tile_labels: bool = False


class BaseModel:
    """Common configuration; subclasses set the paper's defaults."""
    name = "base"
    level = "video"                 # "video" | "frame"
    default_learning_rate = 1.0     # section 4.3: Adagrad, learning rate 1.0
    default_batch_size = 32         # section 4.3: batch size 32

    def __init__(self, num_classes: int, input_dim: int):
        if num_classes < 1 or input_dim < 1:
            raise ValueError(f"{self.name}: num_classes ({num_classes}) and input_dim "
                             f"({input_dim}) must be positive")
        self.num_classes = int(num_classes)
        self.input_dim = int(input_dim)

    def config(self) -> dict:
        return {}

    def build(self) -> Built:
        raise NotImplementedError

    def _video_input(self):
        return keras.Input((self.input_dim,), name="features")

    @staticmethod
    def _video_model(x, out, name):
        # Dict inputs: the readers yield {"features": ...}.
        return keras.Model({"features": x}, out, name=name)

    def _frame_inputs(self):
        frames = keras.Input((None, self.input_dim), name="frames")
        num_frames = keras.Input((), dtype="int32", name="num_frames")
        return frames, num_frames


class LogisticModel(BaseModel):
    """Logistic regression (section 4.3.1): ``(B, D)`` -> sigmoid(W x + b) ``(B, C)``.

    Weights ``(D, C)``; loss equation 3 with L2 penalty ``l2_penalty``
    (lambda; the paper gives no value, 1e-8 is the YouTube-8M starter code's).
    """
    name = "logistic"

    def __init__(self, num_classes, input_dim, l2_penalty: float = 1e-8):
        super().__init__(num_classes, input_dim)
        self.l2_penalty = float(l2_penalty)

    def config(self):
        return {"l2_penalty": self.l2_penalty}

    def build(self):
        x = self._video_input()
        reg = keras.regularizers.L2(self.l2_penalty) if self.l2_penalty else None
        p = layers.Dense(self.num_classes, activation="sigmoid", kernel_regularizer=reg,
                         name="logistic")(x)
        model = self._video_model(x, p, self.name)
        return Built(model, model, multilabel_log_loss)


class HingeModel(BaseModel):
    """Online SVM (section 4.3.2): margins ``y_hat = W x + b`` ``(B, C)`` trained
    with equation 4's hinge loss (parameter ``b``); videos are scored with
    ``sigmoid(y_hat)``, a monotone map into [0, 1] that leaves every ranking
    metric unchanged and gives mAP's buckets a range to work on."""
    name = "hinge"

    def __init__(self, num_classes, input_dim, hinge_b: float = 1.0, l2_penalty: float = 1e-8):
        super().__init__(num_classes, input_dim)
        self.hinge_b = float(hinge_b)
        self.l2_penalty = float(l2_penalty)

    def config(self):
        return {"hinge_b": self.hinge_b, "l2_penalty": self.l2_penalty}

    def build(self):
        x = self._video_input()
        reg = keras.regularizers.L2(self.l2_penalty) if self.l2_penalty else None
        margins = layers.Dense(self.num_classes, kernel_regularizer=reg, name="svm")(x)
        scores = layers.Activation("sigmoid", name="scores")(margins)
        return Built(self._video_model(x, margins, f"{self.name}_train"),
                     self._video_model(x, scores, self.name), make_hinge_loss(self.hinge_b))


class MoeModel(BaseModel):
    """Mixture of experts (section 4.3.3): ``(B, D)`` -> ``(B, C)``;
    ``num_mixtures`` experts (1, 2 or 4; default 2) plus the dummy state."""
    name = "moe"

    def __init__(self, num_classes, input_dim, num_mixtures: int = 2, l2_penalty: float = 1e-8):
        super().__init__(num_classes, input_dim)
        self.num_mixtures = int(num_mixtures)
        self.l2_penalty = float(l2_penalty)

    def config(self):
        return {"num_mixtures": self.num_mixtures, "l2_penalty": self.l2_penalty}

    def build(self):
        x = self._video_input()
        p = MixtureOfExperts(self.num_classes, self.num_mixtures, self.l2_penalty, name="moe")(x)
        model = self._video_model(x, p, self.name)
        return Built(model, model, multilabel_log_loss)


class FrameLogisticModel(BaseModel):
    """Frame-level logistic + average pooling (section 4.1.1, equation 1).

    Scoring: ``frames (B, T, D)`` -> per-frame sigmoid ``(B, T, C)`` -> mean
    over the real frames ``(B, C)``. Training: ``train_frames`` frames drawn
    per video (20 in the paper), each carrying the video's labels, with a
    per-frame log loss.
    """
    name = "frame_logistic"
    level = "frame"
    # The paper trains this with its online framework but gives no rate for
    # unnormalised frame features; 0.1 (DBoF's) is stable on them.
    default_learning_rate = 0.1

    def __init__(self, num_classes, input_dim, train_frames: int = 20, l2_penalty: float = 1e-8):
        super().__init__(num_classes, input_dim)
        self.train_frames = int(train_frames)
        self.l2_penalty = float(l2_penalty)

    def config(self):
        return {"train_frames": self.train_frames, "l2_penalty": self.l2_penalty}

    def build(self):
        frames, num_frames = self._frame_inputs()
        reg = keras.regularizers.L2(self.l2_penalty) if self.l2_penalty else None
        dense = layers.Dense(self.num_classes, activation="sigmoid", kernel_regularizer=reg,
                             name="frame_logistic")
        per_frame = dense(frames)
        mask = FrameMask(name="mask")([frames, num_frames])
        video = MaskedAverage("uniform", name="average")([per_frame, mask])
        model = keras.Model({"frames": frames, "num_frames": num_frames}, video, name=self.name)
        train_in = keras.Input((self.train_frames, self.input_dim), name="frames")
        train_model = keras.Model(train_in, dense(train_in), name=f"{self.name}_train")
        return Built(train_model, model, multilabel_log_loss, train_frames=self.train_frames,
                     tile_labels=True)


class DbofModel(BaseModel):
    """Deep Bag of Frames (section 4.1.2, Figure 7).

    ``frames (B, T, D)`` -> projection ``(B, T, M)`` with ReLU (M = 8192) ->
    batch norm -> max pooling over frames ``(B, M)`` -> hidden ``(B, H)``
    (H = 1024, ReLU) -> logistic ``(B, C)``. Trained on ``train_frames``
    frames drawn per video (the paper's k; 30 like the starter code, the paper
    gives none), Adagrad 0.1, weight decay 5e-4.
    """
    name = "dbof"
    level = "frame"
    default_learning_rate = 0.1

    def __init__(self, num_classes, input_dim, projection_size: int = 8192, hidden_size: int = 1024,
                 train_frames: int = 30, weight_decay: float = 5e-4):
        super().__init__(num_classes, input_dim)
        self.projection_size = int(projection_size)
        self.hidden_size = int(hidden_size)
        self.train_frames = int(train_frames)
        self.weight_decay = float(weight_decay)

    def config(self):
        return {"projection_size": self.projection_size, "hidden_size": self.hidden_size,
                "train_frames": self.train_frames, "weight_decay": self.weight_decay}

    def build(self):
        frames, num_frames = self._frame_inputs()
        reg = keras.regularizers.L2(self.weight_decay) if self.weight_decay else None
        mask = FrameMask(name="mask")([frames, num_frames])
        h = layers.Dense(self.projection_size, activation="relu", kernel_regularizer=reg,
                         name="projection")(frames)
        h = layers.BatchNormalization(name="projection_bn")(h, mask=mask)
        h = MaskedMax(name="max_pool")([h, mask])
        h = layers.Dense(self.hidden_size, activation="relu", kernel_regularizer=reg, name="hidden")(h)
        p = layers.Dense(self.num_classes, activation="sigmoid", kernel_regularizer=reg,
                         name="logistic")(h)
        model = keras.Model({"frames": frames, "num_frames": num_frames}, p, name=self.name)
        return Built(model, model, multilabel_log_loss, train_frames=self.train_frames)


class LstmModel(BaseModel):
    """LSTM (section 4.1.3): ``frames (B, T, D)`` -> ``lstm_layers`` stacked
    LSTMs of ``lstm_size`` units (2 x 1024) -> per-frame logistic ``(B, T, C)``
    -> average with linearly increasing weights, 1/n to 1 for the last frame
    ``(B, C)``. Back-propagates through all frames (up to --max_frames; the
    paper unrolled 60)."""
    name = "lstm"
    level = "frame"
    # The paper gives no learning rate for the LSTM; DBoF's Adagrad 0.1.
    default_learning_rate = 0.1

    def __init__(self, num_classes, input_dim, lstm_size: int = 1024, lstm_layers: int = 2,
                 l2_penalty: float = 1e-8):
        super().__init__(num_classes, input_dim)
        self.lstm_size = int(lstm_size)
        self.lstm_layers = int(lstm_layers)
        self.l2_penalty = float(l2_penalty)

    def config(self):
        return {"lstm_size": self.lstm_size, "lstm_layers": self.lstm_layers,
                "l2_penalty": self.l2_penalty}

    def build(self):
        frames, num_frames = self._frame_inputs()
        mask = FrameMask(name="mask")([frames, num_frames])
        h = frames
        for i in range(self.lstm_layers):
            h = layers.LSTM(self.lstm_size, return_sequences=True, name=f"lstm_{i}")(h, mask=mask)
        reg = keras.regularizers.L2(self.l2_penalty) if self.l2_penalty else None
        per_frame = layers.Dense(self.num_classes, activation="sigmoid", kernel_regularizer=reg,
                                 name="logistic")(h)
        p = MaskedAverage("linear", name="weighted_average")([per_frame, mask])
        model = keras.Model({"frames": frames, "num_frames": num_frames}, p, name=self.name)
        return Built(model, model, multilabel_log_loss)


MODELS: dict[str, type[BaseModel]] = {
    cls.name: cls for cls in (LogisticModel, HingeModel, MoeModel, FrameLogisticModel, DbofModel,
                              LstmModel)
}
VIDEO_MODELS = tuple(n for n, c in MODELS.items() if c.level == "video")
FRAME_MODELS = tuple(n for n, c in MODELS.items() if c.level == "frame")


def get_model_class(name: str) -> type[BaseModel]:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def create_model(name: str, num_classes: int, input_dim: int, **params) -> BaseModel:
    """A model class instance; ``params`` are its keyword arguments (None = default)."""
    cls = get_model_class(name)
    import inspect
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "num_classes", "input_dim"}
    unknown = {k for k, v in params.items() if v is not None} - accepted
    if unknown:
        raise ValueError(f"model {name!r} takes no parameter(s) {sorted(unknown)}; it accepts "
                         f"{sorted(accepted)}")
    return cls(num_classes, input_dim, **{k: v for k, v in params.items() if v is not None})


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """``adagrad`` (the paper's), ``adam`` or ``sgd``."""
    if name == "adagrad":
        return keras.optimizers.Adagrad(learning_rate=learning_rate)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate)
    raise ValueError(f"unknown optimizer {name!r}; choose adagrad, adam or sgd")
