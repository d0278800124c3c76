"""Command lines of the trainer: ``train``, ``evaluate`` and ``predict``.

Each ``*_main(argv) -> int`` parses its flags (``parse_known_args``; the
trainer runs no Beam pipeline, so leftover flags are an error) and calls
``trainer.train``. Examples::

  run_pipeline.py train --data_dir OUT --model moe --output_dir RUN
  run_pipeline.py train --data_pattern 'yt8m/video/train*.tfrecord' --num_classes 3862 \\
      --model logistic --output_dir RUN
  run_pipeline.py evaluate --model_dir RUN --data_dir OUT --split validate
  run_pipeline.py predict --model_dir RUN --data_pattern 'new/*.tfrecord' \\
      --vocabulary OUT/vocabulary.csv
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Sequence

from yt8m.trainer import data as D
from yt8m.trainer import models as MD

_MODEL_PARAMS = {
    # flag: (type, help)
    "num_mixtures": (int, "moe: experts per class (1, 2 or 4; default 2)"),
    "projection_size": (int, "dbof: projection units (default 8192)"),
    "hidden_size": (int, "dbof: hidden layer units (default 1024)"),
    "lstm_size": (int, "lstm: units per layer (default 1024)"),
    "lstm_layers": (int, "lstm: stacked layers (default 2)"),
    "train_frames": (int, "frame_logistic/dbof: frames drawn per video for training "
                          "(defaults 20 / 30)"),
    "l2_penalty": (float, "L2 penalty lambda on the classifier weights (default 1e-8)"),
    "weight_decay": (float, "dbof: weight decay (default 5e-4)"),
    "hinge_b": (float, "hinge: the hinge parameter b of equation 4 (default 1.0)"),
}


def _fail(prog: str, err: Exception) -> int:
    print(f"{prog}: error: {err}", file=sys.stderr)
    return 2


def _reject_unknown(parser: argparse.ArgumentParser, rest: Sequence[str]) -> None:
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")


def build_train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_pipeline.py train",
                                description="Train a baseline model of the YouTube-8M paper and "
                                            "write RUN/model.keras, metrics.json, predictions.csv.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data_dir", help="a build's output directory (OUT)")
    src.add_argument("--data_pattern", help="glob of train TFRecords (released layout unless "
                                            "--artifacts is given)")
    p.add_argument("--eval_data_pattern", help="validate TFRecords (default: beside the train "
                                               "files, 'train' replaced by 'validate')")
    p.add_argument("--artifacts", help="directory with quantizer.npz / pca.npz for our layout "
                                       "read through --data_pattern")
    p.add_argument("--pca", help="PCA to reconstruct ReLU features for mu_sigma_top5 on released "
                                 "files: pca.npz or the released mean/eigenvecs/eigenvals .npy dir")
    p.add_argument("--model", required=True, choices=list(MD.MODELS))
    p.add_argument("--output_dir", required=True, help="the run directory (RUN)")
    p.add_argument("--num_classes", type=int, help="required with --data_pattern; read from "
                                                   "vocabulary.csv with --data_dir")
    p.add_argument("--video_features", choices=D.VIDEO_FEATURES, default="mu",
                   help="video-level models: mu, or [mu; sigma; top5] of section 4.2")
    p.add_argument("--features", default="rgb", help="rgb or rgb,audio (released files)")
    p.add_argument("--stats_space", choices=("relu", "pca"), default="relu",
                   help="where [mu; sigma; top5] is computed: reconstructed ReLU (paper) or PCA")
    p.add_argument("--no_normalize", action="store_true",
                   help="skip the PCA-whitening + L2 normalisation of video features (4.2.2)")
    p.add_argument("--whiten_components", type=int,
                   help="components kept by the video-feature whitening (default min(D, N-1))")
    p.add_argument("--whiten_shrinkage", default="oas",
                   help="shrinkage of the whitening's covariance towards a multiple of I: 'oas' "
                        "(default: chosen from the data, Oracle Approximating Shrinkage), 'none' "
                        "(plain whitening, for millions of videos) or a number in [0, 1]")
    p.add_argument("--max_frames", type=int, default=D.DEFAULT_MAX_FRAMES)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch_size", type=int, help="default: 32 (section 4.3)")
    p.add_argument("--learning_rate", type=float,
                   help="default: Adagrad 1.0 for video-level models, 0.1 for frame-level")
    p.add_argument("--optimizer", choices=("adagrad", "adam", "sgd"), default="adagrad")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top_k", type=int, default=20, help="GAP and predictions.csv depth")
    p.add_argument("--cache_dir", help="disk cache prefix for [mu; sigma; top5] features "
                                       "(default: memory)")
    p.add_argument("--verbose", type=int, default=0, help="Keras fit verbosity (0, 1, 2)")
    for name, (typ, help_) in _MODEL_PARAMS.items():
        p.add_argument(f"--{name}", type=typ, help=help_)
    return p


def config_from_args(ns: argparse.Namespace):
    from yt8m.trainer.train import TrainConfig
    features = tuple(f.strip() for f in ns.features.split(",") if f.strip())
    bad = set(features) - {"rgb", "audio"}
    if bad or "rgb" not in features:
        raise ValueError(f"--features must be 'rgb' or 'rgb,audio', got {ns.features!r}")
    cls = MD.get_model_class(ns.model)
    import inspect
    accepted = set(inspect.signature(cls.__init__).parameters)
    params = {}
    for name in _MODEL_PARAMS:
        value = getattr(ns, name)
        if value is None:
            continue
        if name not in accepted:
            raise ValueError(f"--{name} does not apply to --model {ns.model}")
        params[name] = value
    return TrainConfig(model=ns.model, output_dir=ns.output_dir, data_dir=ns.data_dir,
                       data_pattern=ns.data_pattern, eval_data_pattern=ns.eval_data_pattern,
                       artifacts_dir=ns.artifacts, pca_path=ns.pca, num_classes=ns.num_classes,
                       video_features=ns.video_features, feature_names=features,
                       stats_space=ns.stats_space, normalize=not ns.no_normalize,
                       whiten_components=ns.whiten_components,
                       whiten_shrinkage=ns.whiten_shrinkage, max_frames=ns.max_frames,
                       epochs=ns.epochs, batch_size=ns.batch_size, learning_rate=ns.learning_rate,
                       optimizer=ns.optimizer, model_params=params, seed=ns.seed, top_k=ns.top_k,
                       cache_dir=ns.cache_dir, verbose=ns.verbose)


def train_main(argv: Sequence[str] | None = None) -> int:
    parser = build_train_parser()
    ns, rest = parser.parse_known_args(argv)
    _reject_unknown(parser, rest)
    import tensorflow as tf
    from yt8m.trainer.train import train
    try:
        result = train(config_from_args(ns))
    except (ValueError, FileNotFoundError, FloatingPointError) as e:
        return _fail(parser.prog, e)
    except tf.errors.InvalidArgumentError as e:
        # A data check inside the tf.data graph (a label >= num_classes, ...).
        return _fail(parser.prog, RuntimeError(e.message))
    m = result.metrics
    print(f"{ns.model}: mAP {_pct(m.get('map'))}  Hit@1 {_pct(m.get('hit_at_1'))}  "
          f"Hit@5 {_pct(m.get('hit_at_5'))}  PERR {_pct(m.get('perr'))}  GAP {_pct(m.get('gap'))}  "
          f"({m.get('num_examples')} validate videos; {m['examples_per_s']:.0f} train examples/s)")
    print(f"wrote {result.output_dir}/ (model.keras, metrics.json, predictions.csv, logs/)")
    return 0


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="run_pipeline.py evaluate",
                                description="Metrics (mAP, Hit@1, Hit@5, PERR, GAP) of a trained "
                                            "run on a split of a build or on TFRecord files.")
    p.add_argument("--model_dir", required=True, help="a run directory written by 'train'")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data_dir", help="a build's output directory")
    src.add_argument("--data_pattern", help="glob of TFRecords in the layout the model was trained on")
    p.add_argument("--split", default="validate", choices=("train", "validate", "test"))
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--top_k", type=int, default=20)
    p.add_argument("--output", help="write the metrics as JSON here too")
    p.add_argument("--human_labels", help="human labels CSV ('ratings export --videos'): also "
                                          "report PERR, Hit@1, Hit@5 on the human-rated test "
                                          "videos (key human_rated; Table 4)")
    ns, rest = p.parse_known_args(argv)
    _reject_unknown(p, rest)
    import tensorflow as tf
    from yt8m.trainer.train import evaluate_run
    try:
        metrics = evaluate_run(ns.model_dir, data_dir=ns.data_dir, split=ns.split,
                               data_pattern=ns.data_pattern, batch_size=ns.batch_size,
                               top_k=ns.top_k)
        if ns.human_labels:
            from yt8m.trainer.human_eval import evaluate_human_labels
            metrics["human_rated"] = evaluate_human_labels(
                ns.model_dir, ns.human_labels, data_dir=ns.data_dir,
                data_pattern=ns.data_pattern, batch_size=ns.batch_size)
    except (ValueError, FileNotFoundError) as e:
        return _fail(p.prog, e)
    except tf.errors.InvalidArgumentError as e:
        return _fail(p.prog, RuntimeError(e.message))
    text = json.dumps(metrics, indent=2, sort_keys=True)
    print(text)
    if ns.output:
        D.write_json_atomic(ns.output, metrics)
    return 0


def predict_main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="run_pipeline.py predict",
                                description="Top entities per video for TFRecords from 'extract' "
                                            "(compressed with the build's artifacts, or raw "
                                            "features for a model trained on raw ones).")
    p.add_argument("--model_dir", required=True, help="a run directory written by 'train'")
    p.add_argument("--data_pattern", required=True, help="glob of the TFRecords to score")
    p.add_argument("--vocabulary", help="vocabulary.csv for entity names (the build's)")
    p.add_argument("--top_k", type=int, default=5)
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--output_file", help="CSV to write (default: standard output)")
    ns, rest = p.parse_known_args(argv)
    _reject_unknown(p, rest)
    from yt8m.trainer.train import predict_run
    try:
        rows = predict_run(ns.model_dir, ns.data_pattern, ns.vocabulary, top_k=ns.top_k,
                           batch_size=ns.batch_size)
    except (ValueError, FileNotFoundError) as e:
        return _fail(p.prog, e)
    fields = ["video_id", "rank", "index", "knowledge_graph_id", "name", "score"]
    if ns.output_file:
        import os
        tmp = ns.output_file + ".tmp"
        with open(tmp, "w", newline="") as f:
            _write_rows(f, fields, rows)
        os.replace(tmp, ns.output_file)
        print(f"wrote {len(rows)} predictions to {ns.output_file}", file=sys.stderr)
    else:
        _write_rows(sys.stdout, fields, rows)
    return 0


def _write_rows(f, fields, rows) -> None:
    w = csv.DictWriter(f, fieldnames=fields)
    w.writeheader()
    for r in rows:
        w.writerow({**r, "score": f"{r['score']:.6f}"})
