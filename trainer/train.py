"""Training, evaluation and prediction as library functions.

* :func:`train` (``TrainConfig`` -> ``TrainResult``) and its shortcut
  :func:`train_on_build` (what ``build --train MODEL`` and ``demo`` call):
  read a build (``OUT/``) or files matching a pattern, fit the section 4.2.2
  normalisation on train (video-level models), train, evaluate on validate
  and write the run directory:

  RUN/model.keras          the scoring model (probabilities, (B, C))
  RUN/run_config.json      model name and parameters, the InputSpec
  RUN/artifacts/           copies of the build's quantizer.npz / pca.npz
  RUN/feature_whitening.npz  video-level models: the transform fit on train
  RUN/metrics.json         map, hit_at_1, hit_at_5, perr, gap, examples_per_s
  RUN/predictions.csv      challenge format (VideoId,LabelConfidencePairs)
  RUN/logs/                TensorBoard

* :func:`evaluate_run`: metrics of a trained run on other files.
* :func:`predict_run`: top-k entities per video (for ``extract``'s files).
* :func:`train_arrays` / :func:`predict_arrays`: the same models on
  in-memory video-level features (benchmarks, quick experiments).
"""
from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import keras
import numpy as np

from yt8m.trainer import data as D
from yt8m.trainer import guard as G
from yt8m.trainer import metrics as M
from yt8m.trainer import models as MD
from yt8m.trainer.tb import EpochLogger, ScalarWriter

RUN_CONFIG = "run_config.json"
MODEL_FILE = "model.keras"
WHITENING_FILE = "feature_whitening.npz"


@dataclass
class TrainConfig:
    """Everything a training run needs; the CLI fills it from flags."""
    model: str
    output_dir: str
    data_dir: Optional[str] = None          # a build's OUT
    data_pattern: Optional[str] = None      # train files (released layout unless artifacts_dir)
    eval_data_pattern: Optional[str] = None
    artifacts_dir: Optional[str] = None     # quantizer.npz / pca.npz for --data_pattern
    pca_path: Optional[str] = None          # released PCA for mu_sigma_top5
    num_classes: Optional[int] = None
    video_features: str = "mu"
    feature_names: tuple = ("rgb",)
    stats_space: str = "relu"
    normalize: bool = True
    whiten_components: Optional[int] = None
    whiten_epsilon: float = 1e-4
    whiten_shrinkage: str = "oas"           # "oas" (chosen from the data), "none" or a number
    max_frames: int = D.DEFAULT_MAX_FRAMES
    epochs: int = 5
    batch_size: Optional[int] = None
    learning_rate: Optional[float] = None
    optimizer: str = "adagrad"
    model_params: dict = field(default_factory=dict)
    seed: int = 0
    top_k: int = 20
    cache_dir: Optional[str] = None         # disk cache for [mu; sigma; top5] features
    verbose: int = 0


@dataclass
class TrainResult:
    output_dir: str
    metrics: dict
    model_path: str
    predictions_path: Optional[str]


# ---------------------------------------------------------------------------
# Locating the data
# ---------------------------------------------------------------------------
@dataclass
class _Plan:
    train: list
    eval: list
    test: list
    spec: D.InputSpec
    info: D.RecordInfo


def _sibling_pattern(pattern: str, split: str) -> Optional[str]:
    head, base = os.path.split(pattern)
    if "train" not in base:
        return None
    return os.path.join(head, base.replace("train", split, 1))


def _maybe_glob(pattern: Optional[str]) -> list:
    import tensorflow as tf
    return sorted(tf.io.gfile.glob(pattern)) if pattern else []


def _plan(cfg: TrainConfig) -> _Plan:
    if bool(cfg.data_dir) == bool(cfg.data_pattern):
        raise ValueError("give exactly one of --data_dir (a build's output directory) and "
                         "--data_pattern (a glob of TFRecord files)")
    cls = MD.get_model_class(cfg.model)
    if cfg.video_features not in D.VIDEO_FEATURES:
        raise ValueError(f"--video_features must be one of {D.VIDEO_FEATURES}, got "
                         f"{cfg.video_features!r}")
    needs_frames = cls.level == "frame" or cfg.video_features == "mu_sigma_top5"
    quantizer = pca = None
    if cfg.data_dir:
        out = cfg.data_dir.rstrip("/")
        vocab = D.Vocabulary.load(os.path.join(out, "vocabulary.csv"))
        if cfg.num_classes and cfg.num_classes != vocab.num_classes:
            raise ValueError(f"--num_classes {cfg.num_classes} disagrees with "
                             f"{out}/vocabulary.csv ({vocab.num_classes} classes); drop the flag")
        num_classes = vocab.num_classes
        sub = "frame" if needs_frames else "video"
        train = _maybe_glob(f"{out}/{sub}/train-*.tfrecord")
        if not train and sub == "video":
            # mean_rgb is the mean of the dequantized frames: same features.
            sub = "frame"
            train = _maybe_glob(f"{out}/{sub}/train-*.tfrecord")
        if not train:
            raise D.DataError(f"no train files in {out}/{sub}/ (train-*.tfrecord): is {out} the "
                              f"output directory of a finished build?")
        ev = _maybe_glob(f"{out}/{sub}/validate-*.tfrecord")
        test = _maybe_glob(f"{out}/{sub}/test-*.tfrecord")
        artifacts = cfg.artifacts_dir or os.path.join(out, "artifacts")
        layout = "ours"
    else:
        if not cfg.num_classes:
            raise ValueError("--num_classes is required with --data_pattern (3862 for the "
                             "2018+ YouTube-8M releases, 4716 for 2017; a build's "
                             "vocabulary.csv otherwise)")
        num_classes = int(cfg.num_classes)
        train = D.glob_files(cfg.data_pattern, "train")
        eval_pattern = cfg.eval_data_pattern or _sibling_pattern(cfg.data_pattern, "validate")
        if not eval_pattern:
            raise ValueError(f"cannot find the validate files beside {cfg.data_pattern!r} (its "
                             f"file name has no 'train' to replace): pass --eval_data_pattern")
        ev = _maybe_glob(eval_pattern)
        if not ev:
            raise D.DataError(f"no validate files match {eval_pattern!r}: pass --eval_data_pattern")
        test = [f for f in _maybe_glob(_sibling_pattern(cfg.data_pattern, "test")) if f not in train]
        artifacts = cfg.artifacts_dir
        layout = "ours" if artifacts else "released"
    if not ev:
        raise D.DataError(f"no validate files beside {train[0]}; metrics are measured on the "
                          f"validate split (pass --eval_data_pattern)")
    import tensorflow as tf
    if artifacts:
        # tf.io.gfile: OUT may be a gs:// URI, like the build's output.
        quantizer = os.path.join(artifacts, "quantizer.npz")
        if not tf.io.gfile.exists(quantizer):
            raise D.DataError(f"{quantizer} does not exist: our layout is dequantized with the "
                              f"build's quantizer (pass --artifacts OUT/artifacts)")
        cand = os.path.join(artifacts, "pca.npz")
        pca = cand if tf.io.gfile.exists(cand) else None
    pca = cfg.pca_path or pca
    info = D.inspect_records(train)
    if info.kind == D.KIND_VIDEO and needs_frames:
        raise D.DataError(f"{train[0]} holds video-level records; model {cfg.model!r} with "
                          f"--video_features {cfg.video_features} needs frame-level files")
    names = tuple(cfg.feature_names)
    if "audio" in names and not info.audio_dim:
        raise D.DataError(f"--features includes audio but {train[0]} has no audio features")
    spec = D.InputSpec(level=cls.level, record_kind=info.kind, layout=layout,
                       num_classes=num_classes, rgb_dim=info.rgb_dim, feature_names=names,
                       audio_dim=info.audio_dim if "audio" in names else 0,
                       video_features=cfg.video_features, max_frames=cfg.max_frames,
                       quantizer_path=quantizer if info.kind == D.KIND_FRAME or layout == "ours" else None,
                       pca_path=pca, stats_space=cfg.stats_space)
    return _Plan(train, ev, test, spec, info)


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------
def _copy_artifacts(spec: D.InputSpec, run: str) -> None:
    """Make the run self-contained: its own copies, referenced relatively."""
    import tensorflow as tf
    os.makedirs(os.path.join(run, "artifacts"), exist_ok=True)
    for attr, name in (("quantizer_path", "quantizer.npz"), ("pca_path", "pca")):
        src = getattr(spec, attr)
        if not src:
            continue
        if tf.io.gfile.isdir(src):  # the released PCA directory
            dst = os.path.join("artifacts", "pca")
            os.makedirs(os.path.join(run, dst), exist_ok=True)
            for f in ("mean.npy", "eigenvecs.npy", "eigenvals.npy"):
                tf.io.gfile.copy(os.path.join(src, f), os.path.join(run, dst, f), overwrite=True)
        else:
            dst = os.path.join("artifacts", os.path.basename(src) if attr == "pca_path" else name)
            tf.io.gfile.copy(src, os.path.join(run, dst), overwrite=True)
        setattr(spec, attr, dst)


def _count_records(files: Sequence[str]) -> int:
    import tensorflow as tf
    return int(tf.data.TFRecordDataset(list(files)).reduce(np.int64(0), lambda n, _: n + 1).numpy())


def _to_fit(ds, built: MD.Built):
    if built.train_frames and built.tile_labels:
        return ds.map(lambda x, y, i: (x["frames"], y))
    return ds.map(lambda x, y, i: (x, y))


def _shrinkage_arg(value):
    """``--whiten_shrinkage``: "oas" / "none" stay names, anything else is a number."""
    if isinstance(value, str) and value not in ("oas", "none"):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"--whiten_shrinkage must be 'oas', 'none' or a number in [0, 1], "
                             f"got {value!r}") from None
    return value


def _clean(metrics: dict) -> dict:
    """NaN (a metric with nothing to measure) becomes null in JSON."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}


class TrainingDiverged(FloatingPointError):
    """The run diverged: RUN/metrics.json says so (status "diverged") and no
    model.keras or predictions.csv was written."""


def _diverged(run: str, verdict: G.Verdict, cfg: TrainConfig, lr: float, batch_size: int,
              metrics: dict) -> TrainingDiverged:
    """Record the divergence in metrics.json, say it on the console, and
    return the error to raise (the CLI turns it into a non-zero exit)."""
    todo = G.advice(lr, batch_size)
    # JSON has no NaN/Inf: non-finite losses are written as their names.
    metrics = {k: ([x if math.isfinite(x) else str(x) for x in v] if k == "losses" else v)
               for k, v in metrics.items()}
    if isinstance(metrics.get("final_loss"), float) and not math.isfinite(metrics["final_loss"]):
        metrics["final_loss"] = str(metrics["final_loss"])
    out = _clean({**metrics, "status": G.STATUS_DIVERGED, "diverged_reason": verdict.reason,
                  "what_to_change": todo, "model": cfg.model, "learning_rate": lr,
                  "batch_size": batch_size})
    D.write_json_atomic(os.path.join(run, "metrics.json"), out)
    for stale in (MODEL_FILE, "predictions.csv"):   # a rerun into the same folder
        if os.path.exists(os.path.join(run, stale)):
            os.remove(os.path.join(run, stale))
    # The CLI prints the message (stderr) and exits non-zero.
    return TrainingDiverged(f"training {cfg.model} DIVERGED: {verdict.reason}. No model was "
                            f"written; {todo}. Details in {run}/metrics.json")


def train(cfg: TrainConfig) -> TrainResult:
    """Train ``cfg.model`` and write the run directory (see the module docstring)."""
    import tensorflow as tf

    plan = _plan(cfg)
    spec = plan.spec
    cls = MD.get_model_class(cfg.model)
    run = os.path.abspath(cfg.output_dir)
    os.makedirs(run, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    batch_size = cfg.batch_size or cls.default_batch_size
    lr = cfg.learning_rate if cfg.learning_rate is not None else cls.default_learning_rate

    # Section 4.2.2: fit the normalisation of video-level features on train.
    whitening = None
    cache = None
    if spec.level == "video":
        if spec.video_features == "mu_sigma_top5":
            cache = cfg.cache_dir if cfg.cache_dir is not None else ""
        if cfg.normalize:
            whitening = D.FeatureWhitening.fit(
                D.collect_video_features(plan.train, spec, info=plan.info),
                n_components=cfg.whiten_components, epsilon=cfg.whiten_epsilon,
                shrinkage=_shrinkage_arg(cfg.whiten_shrinkage))
            whitening.save(os.path.join(run, WHITENING_FILE))
            spec.whitening_path = WHITENING_FILE
        input_dim = whitening.out_dim if whitening else D.feature_dim(spec, plan.info)
    else:
        input_dim = spec.frame_dim()

    model_obj = MD.create_model(cfg.model, spec.num_classes, input_dim, **cfg.model_params)
    built = model_obj.build()
    built.train_model.compile(optimizer=MD.make_optimizer(cfg.optimizer, lr), loss=built.loss)

    train_ds = D.make_dataset(plan.train, spec, batch_size=batch_size, training=True,
                              seed=cfg.seed, sample_frames=built.train_frames,
                              tile_labels=built.tile_labels, whitening=whitening,
                              info=plan.info, cache=cache)
    logs = os.path.join(run, "logs")
    # TerminateOnNaN: stop at the first non-finite batch loss, not 5 epochs later.
    callbacks = [EpochLogger(os.path.join(logs, "train")), keras.callbacks.TerminateOnNaN()]
    n_train = _count_records(plan.train)
    if n_train == 0:
        raise D.DataError(f"the train files {plan.train[:3]}... hold no records")
    # A known length lets Keras size its epochs instead of running into the end.
    train_ds = train_ds.apply(tf.data.experimental.assert_cardinality(math.ceil(n_train / batch_size)))
    t0 = time.perf_counter()
    history = built.train_model.fit(_to_fit(train_ds, built), epochs=cfg.epochs,
                                    callbacks=callbacks, verbose=cfg.verbose, shuffle=False)
    fit_s = time.perf_counter() - t0
    losses = [float(v) for v in history.history.get("loss", [])]
    verdict = G.loss_verdict(losses)
    if verdict.diverged:
        raise _diverged(run, verdict, cfg, lr, batch_size, {"final_loss": losses[-1],
                                                            "losses": losses})

    # The scoring model goes to a temporary name first: it becomes model.keras
    # only once its validate scores pass the divergence check.
    _copy_artifacts(spec, run)
    model_path = os.path.join(run, MODEL_FILE)
    tmp = os.path.join(run, "model.tmp.keras")
    built.model.save(tmp)
    run_config = {"model": cfg.model, "model_params": model_obj.config(),
                  "input_dim": input_dim, "input_spec": spec.to_json(),
                  "training": {"epochs": cfg.epochs, "batch_size": batch_size,
                               "learning_rate": lr, "optimizer": cfg.optimizer, "seed": cfg.seed,
                               "train_files": plan.train, "eval_files": plan.eval,
                               "normalize": cfg.normalize},
                  "losses": losses}

    spec_run = D.InputSpec.from_json(spec.to_json(), base_dir=run)
    ev = _evaluate(built.model, spec_run, plan.eval, whitening, batch_size=max(batch_size, 64),
                   top_k=cfg.top_k, info=None)
    verdict = ev["health"].verdict()
    if verdict.diverged:
        os.remove(tmp)
        raise _diverged(run, verdict, cfg, lr, batch_size,
                        {"final_loss": losses[-1] if losses else None, "losses": losses,
                         "score_health": ev["health"].summary()})
    os.replace(tmp, model_path)
    D.write_json_atomic(os.path.join(run, RUN_CONFIG), run_config)
    metrics = dict(ev["metrics"])
    metrics.update({"examples_per_s": n_train * cfg.epochs / fit_s if fit_s > 0 else None,
                    "train_examples": n_train, "epochs": cfg.epochs, "train_seconds": fit_s,
                    "eval_examples_per_s": ev["examples_per_s"], "split": "validate",
                    "model": cfg.model, "final_loss": losses[-1] if losses else None})
    metrics = _clean(metrics)
    # What the 4.2.2 normalisation chose from the data (shrinkage, components).
    metrics["whitening"] = dict(whitening.info) if whitening else None
    metrics["status"] = G.STATUS_OK
    metrics["score_health"] = ev["health"].summary()
    _write_tensorboard_metrics(logs, metrics)

    # The submission file: the test split when the data has one, else validate.
    pred_split, pred_files = ("test", plan.test) if plan.test else ("validate", plan.eval)
    if pred_split == "validate":
        rows = ev["top"]
    else:
        rows = _evaluate(built.model, spec_run, pred_files, whitening, batch_size=max(batch_size, 64),
                         top_k=cfg.top_k, info=None, metrics=False)["top"]
    pred_path = os.path.join(run, "predictions.csv")
    write_submission(pred_path, rows)
    metrics["predictions_split"] = pred_split
    D.write_json_atomic(os.path.join(run, "metrics.json"), metrics)
    return TrainResult(run, metrics, model_path, pred_path)


def train_on_build(data_dir: str, model_name: str, output_dir: str, *, epochs: int = 5,
                   batch_size: Optional[int] = None, learning_rate: Optional[float] = None,
                   video_features: str = "mu", seed: int = 0, verbose: int = 0,
                   **params) -> dict:
    """Train ``model_name`` on the build in ``data_dir``; returns RUN/metrics.json's dict.

    ``params`` are :class:`TrainConfig` fields (``max_frames``,
    ``whiten_components``, ``optimizer``, ...) or the model class's keyword
    arguments (``num_mixtures=4``, ``projection_size=512``, ...).
    """
    fields = set(TrainConfig.__dataclass_fields__) - {"model", "output_dir", "data_dir",
                                                      "model_params"}
    config_kw = {k: v for k, v in params.items() if k in fields}
    model_params = {k: v for k, v in params.items() if k not in fields}
    cfg = TrainConfig(model=model_name, output_dir=output_dir, data_dir=data_dir, epochs=epochs,
                      batch_size=batch_size, learning_rate=learning_rate,
                      video_features=video_features, seed=seed, verbose=verbose,
                      model_params=model_params, **config_kw)
    return train(cfg).metrics


def _write_tensorboard_metrics(logs: str, metrics: dict) -> None:
    writer = ScalarWriter(os.path.join(logs, "validation"))
    writer.scalars({k: metrics.get(k) for k in ("map", "hit_at_1", "hit_at_5", "perr", "gap")},
                   step=int(metrics.get("epochs") or 0))
    writer.close()


# ---------------------------------------------------------------------------
# Evaluation and prediction
# ---------------------------------------------------------------------------
def _evaluate(model, spec: D.InputSpec, files: Sequence[str], whitening, *, batch_size: int,
              top_k: int, info: Optional[D.RecordInfo], metrics: bool = True) -> dict:
    """Scores every video of ``files``: metrics and the top-k per video."""
    ds = D.make_dataset(files, spec, batch_size=batch_size, training=False, whitening=whitening,
                        info=info)
    import tensorflow as tf
    acc = M.EvaluationAccumulator(spec.num_classes, hit_ks=(1, 5), top_k=top_k)
    health = G.ScoreHealth(spec.num_classes)
    top: list = []
    n = 0
    # Batches differ in length (frames, the last batch): one relaxed trace.
    score = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    t0 = time.perf_counter()
    for inputs, labels, ids in ds:
        p = score(inputs).numpy()
        n += len(p)
        health.add(p)
        if metrics and health.non_finite:
            continue        # NaN scores: the divergence guard reports them, not the metrics
        if metrics:
            acc.add(p, labels.numpy())
        idx, scores = M.top_k_predictions(p, top_k)
        top.extend(zip([i.decode("utf-8") for i in ids.numpy()], idx, scores))
    secs = time.perf_counter() - t0
    return {"metrics": acc.result() if metrics else {}, "top": top, "health": health,
            "examples_per_s": n / secs if secs > 0 else None}


def write_submission(path: str, rows) -> None:
    """``VideoId,LabelConfidencePairs`` with ``label score`` pairs, best first."""
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["VideoId", "LabelConfidencePairs"])
        for vid, idx, scores in rows:
            w.writerow([vid, " ".join(f"{int(i)} {float(s):.6f}" for i, s in zip(idx, scores))])
    os.replace(tmp, path)


def load_run(model_dir: str):
    """``(keras model, InputSpec, run_config dict, FeatureWhitening or None)``."""
    cfg_path = os.path.join(model_dir, RUN_CONFIG)
    if not os.path.exists(cfg_path):
        raise FileNotFoundError(f"{model_dir} is not a training run (no {RUN_CONFIG}); pass the "
                                f"--output_dir of a finished 'train'")
    with open(cfg_path) as f:
        run_config = json.load(f)
    spec = D.InputSpec.from_json(run_config["input_spec"], base_dir=model_dir)
    model = keras.models.load_model(os.path.join(model_dir, MODEL_FILE), compile=False)
    return model, spec, run_config, spec.whitening()


def evaluate_run(model_dir: str, *, data_dir: Optional[str] = None, split: str = "validate",
                 data_pattern: Optional[str] = None, batch_size: int = 256, top_k: int = 20) -> dict:
    """Metrics of the run in ``model_dir`` on a split of a build or on files."""
    model, spec, _, whitening = load_run(model_dir)
    if bool(data_dir) == bool(data_pattern):
        raise ValueError("give exactly one of --data_dir (with --split) and --data_pattern")
    if data_dir:
        sub = "frame" if spec.level == "frame" or spec.video_features == "mu_sigma_top5" else "video"
        if spec.record_kind == D.KIND_FRAME and sub == "video":
            sub = "frame"
        pattern = f"{data_dir.rstrip('/')}/{sub}/{split}-*.tfrecord"
    else:
        pattern = data_pattern
    files = D.glob_files(pattern, split if data_dir else "evaluation")
    t0 = time.perf_counter()
    ev = _evaluate(model, spec, files, whitening, batch_size=batch_size, top_k=top_k, info=None)
    out = _clean({**ev["metrics"], "examples_per_s": ev["examples_per_s"],
                  "seconds": time.perf_counter() - t0, "data": pattern})
    if not out.get("num_classes_with_positives"):
        print(f"note: {pattern} carries no labels (a test split?): mAP, Hit@k, PERR and GAP "
              f"are undefined", file=sys.stderr)
    return out


def predict_run(model_dir: str, data_pattern: str, vocabulary: Optional[str] = None,
                top_k: int = 5, batch_size: int = 256) -> list[dict]:
    """Top-k classes per video: dicts ``video_id``, ``rank``, ``index``,
    ``knowledge_graph_id``, ``name``, ``score``."""
    model, spec, _, whitening = load_run(model_dir)
    files = D.glob_files(data_pattern, "prediction input")
    vocab = D.Vocabulary.load(vocabulary) if vocabulary else None
    if vocab and vocab.num_classes != spec.num_classes:
        raise D.DataError(f"{vocabulary} has {vocab.num_classes} classes but the model predicts "
                          f"{spec.num_classes}: pass the vocabulary of the build it was trained on")
    ev = _evaluate(model, spec, files, whitening, batch_size=batch_size, top_k=top_k, info=None,
                   metrics=False)
    rows = []
    for vid, idx, scores in ev["top"]:
        for rank, (i, s) in enumerate(zip(idx, scores), start=1):
            i = int(i)
            rows.append({"video_id": vid, "rank": rank, "index": i,
                         "knowledge_graph_id": vocab.knowledge_graph_id.get(i, "") if vocab else "",
                         "name": vocab.name.get(i, str(i)) if vocab else str(i),
                         "score": float(s)})
    return rows


# ---------------------------------------------------------------------------
# In-memory arrays (benchmarks)
# ---------------------------------------------------------------------------
def train_arrays(model_name: str, x: np.ndarray, y: np.ndarray, *, epochs: int = 5,
                 batch_size: Optional[int] = None, learning_rate: Optional[float] = None,
                 optimizer: str = "adagrad", seed: int = 0, num_frames: Optional[np.ndarray] = None,
                 **model_params):
    """Train on arrays: video-level ``x`` ``(N, D)``, or frame-level ``x``
    ``(N, T, D)`` with ``num_frames`` ``(N,)``; ``y`` ``(N, C)`` 0/1.

    Returns ``(model, epoch_seconds)``: the scoring Keras model and the wall
    time of each epoch (the first includes tracing).
    Frame-level models get ``train_frames`` frames drawn per video, as in
    :func:`train`.
    """
    import tensorflow as tf
    cls = MD.get_model_class(model_name)
    keras.utils.set_random_seed(seed)
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    model_obj = MD.create_model(model_name, y.shape[1], x.shape[-1], **model_params)
    built = model_obj.build()
    lr = learning_rate if learning_rate is not None else cls.default_learning_rate
    bs = batch_size or cls.default_batch_size
    built.train_model.compile(optimizer=MD.make_optimizer(optimizer, lr), loss=built.loss)
    if cls.level == "video":
        ds = tf.data.Dataset.from_tensor_slices(({"features": x}, y))
    else:
        nf = np.asarray(num_frames if num_frames is not None else np.full(len(x), x.shape[1]), np.int32)
        ds = tf.data.Dataset.from_tensor_slices(({"frames": x, "num_frames": nf}, y))
        if built.train_frames:
            k = built.train_frames

            def sample(inp, lab):
                idx = tf.sort(tf.random.uniform([k], 0, tf.maximum(inp["num_frames"], 1),
                                                dtype=tf.int32, seed=seed))
                fr = tf.gather(inp["frames"], idx)
                if built.tile_labels:
                    return fr, tf.tile(lab[None], [k, 1])
                return {"frames": fr, "num_frames": tf.constant(k)}, lab
            ds = ds.map(sample)
    ds = ds.shuffle(min(len(x), 10000), seed=seed).batch(bs).prefetch(tf.data.AUTOTUNE)
    timer = _EpochTimer()
    built.train_model.fit(ds, epochs=epochs, verbose=0, shuffle=False, callbacks=[timer])
    return built.model, timer.seconds


class _EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch."""

    def __init__(self):
        super().__init__()
        self.seconds: list = []
        self._t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._t0)


def predict_arrays(model, x: np.ndarray, num_frames: Optional[np.ndarray] = None,
                   batch_size: int = 1024) -> np.ndarray:
    """Scores ``(N, C)`` of a model from :func:`train_arrays`."""
    x = np.asarray(x, np.float32)
    nf = None
    if x.ndim == 3:
        nf = np.asarray(num_frames if num_frames is not None else np.full(len(x), x.shape[1]),
                        np.int32)
    out = []
    # Eager calls: no per-model tf.function to trace for a one-off scoring.
    for lo in range(0, len(x), batch_size):
        inputs = ({"features": x[lo:lo + batch_size]} if nf is None else
                  {"frames": x[lo:lo + batch_size], "num_frames": nf[lo:lo + batch_size]})
        out.append(np.asarray(model(inputs, training=False)))
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)


__all__ = ["TrainConfig", "TrainResult", "train", "train_on_build", "evaluate_run", "predict_run",
           "load_run", "write_submission", "train_arrays", "predict_arrays"]
