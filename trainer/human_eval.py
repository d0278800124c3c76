"""A trained model on the human-rated test set (paper sections 3.5 and 5.2.1, Table 4).

The human-rated set is a uniform sample of test videos whose entities were
marked exhaustively by 3 raters (the explorer's video tasks; ``ratings export
--videos`` writes the majority's entities as ``human_labels.csv``:
``video_id,labels`` with ``;``-separated vocabulary indices, like
``private/test_labels.csv``). Scored against those labels instead of the
annotation system's, the paper reports PERR, Hit@1 and Hit@5 (mAP is not
reliable on a set this small) next to the validate split's figures.

Videos the raters found no entity in are left out (Hit@k would count them as
misses and PERR is undefined there); their number is reported.
"""
from __future__ import annotations

import csv
import json
import os
from typing import Mapping, Optional, Sequence

import numpy as np

from yt8m.trainer import metrics as M


def read_human_labels(path: str) -> dict[str, list[int]]:
    """``{video_id: [index, ...]}`` from a human labels CSV (``video_id,labels``)."""
    import io

    from yt8m import fs
    if not fs.exists(path):
        raise FileNotFoundError(f"human labels file {path} does not exist; write it with "
                                f"'run_pipeline.py ratings export --videos --data_dir OUT'")
    out: dict[str, list[int]] = {}
    with io.StringIO(fs.read_text(path), newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"video_id", "labels"} <= set(reader.fieldnames):
            raise ValueError(f"{path} needs the columns video_id,labels (got "
                             f"{reader.fieldnames}); write it with 'ratings export --videos'")
        for line, row in enumerate(reader, start=2):
            vid = (row.get("video_id") or "").strip()
            if not vid:
                raise ValueError(f"{path} line {line}: empty video_id")
            try:
                labels = [int(x) for x in (row.get("labels") or "").split(";") if x.strip()]
            except ValueError:
                raise ValueError(f"{path} line {line}: labels {row.get('labels')!r} are not "
                                 f"';'-separated vocabulary indices") from None
            if any(i < 0 for i in labels):
                raise ValueError(f"{path} line {line}: negative label index")
            if vid in out:
                raise ValueError(f"{path} line {line}: video {vid!r} appears twice")
            out[vid] = sorted(set(labels))
    return out


def human_rated_metrics(scores: np.ndarray, labels: Sequence[Sequence[int]]) -> dict:
    """PERR, Hit@1 and Hit@5 (trainer.metrics) of ``scores`` ``(N, C)`` against ``labels``.

    Rows whose label list is empty are left out (counted in ``without_labels``).
    """
    p = np.asarray(scores, dtype=np.float64)
    if p.ndim != 2 or len(p) != len(labels):
        raise ValueError(f"scores {p.shape} and {len(labels)} label lists do not match")
    n_classes = p.shape[1]
    keep = [i for i, ls in enumerate(labels) if ls]
    for i in keep:
        bad = [x for x in labels[i] if x >= n_classes]
        if bad:
            raise ValueError(f"label index {bad[0]} >= the model's {n_classes} classes: the "
                             f"human labels are of another vocabulary")
    out = {"num_examples": len(keep), "without_labels": len(labels) - len(keep)}
    if not keep:
        return {**out, "perr": None, "hit_at_1": None, "hit_at_5": None}
    y = np.zeros((len(keep), n_classes), np.int8)
    for row, i in enumerate(keep):
        y[row, list(labels[i])] = 1
    acc = M.EvaluationAccumulator(n_classes, hit_ks=(1, 5))
    acc.add(p[keep], y)
    return {**out, "perr": acc.precision_at_equal_recall_rate(), "hit_at_1": acc.hit_at_k(1),
            "hit_at_5": acc.hit_at_k(5)}


def score_videos(model_dir: str, files: Sequence[str], wanted: Optional[set] = None,
                 batch_size: int = 256) -> tuple[list[str], np.ndarray]:
    """The run's scores ``(N, C)`` for the videos of ``files`` (only ``wanted`` ones if given)."""
    import tensorflow as tf

    from yt8m.trainer import data as D
    from yt8m.trainer.train import load_run
    model, spec, _, whitening = load_run(model_dir)
    ds = D.make_dataset(list(files), spec, batch_size=batch_size, training=False,
                        whitening=whitening)
    score = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    ids, rows = [], []
    for inputs, _, batch_ids in ds:
        names = [i.decode("utf-8") for i in batch_ids.numpy()]
        keep = [k for k, n in enumerate(names) if wanted is None or n in wanted]
        if not keep:
            continue
        p = score(inputs).numpy()
        ids.extend(names[k] for k in keep)
        rows.append(p[keep])
    return ids, (np.concatenate(rows) if rows else np.zeros((0, spec.num_classes), np.float32))


def _test_pattern(model_dir: str, data_dir: str) -> str:
    from yt8m.trainer import data as D
    from yt8m.trainer.train import RUN_CONFIG
    with open(os.path.join(model_dir, RUN_CONFIG)) as f:
        spec = D.InputSpec.from_json(json.load(f)["input_spec"])
    # The same record kind the run was trained on (as evaluate_run chooses it).
    sub = "frame" if spec.level == "frame" or spec.video_features == "mu_sigma_top5" else "video"
    if spec.record_kind == D.KIND_FRAME:
        sub = "frame"
    return f"{data_dir.rstrip('/')}/{sub}/test-*.tfrecord"


def evaluate_human_labels(model_dir: str, human_labels: str | Mapping[str, Sequence[int]], *,
                          data_dir: Optional[str] = None, data_pattern: Optional[str] = None,
                          batch_size: int = 256) -> dict:
    """Table 4's metrics of the run in ``model_dir`` on the human-rated videos.

    The videos are read from the build's test split (``data_dir``) or from
    ``data_pattern``. Returns ``perr``, ``hit_at_1``, ``hit_at_5``,
    ``num_examples`` (rated videos scored), ``without_labels``, ``missing``
    (rated videos not found in the records) and ``data``.
    """
    from yt8m.trainer import data as D
    labels = read_human_labels(human_labels) if isinstance(human_labels, str) \
        else {k: list(v) for k, v in human_labels.items()}
    if not labels:
        raise ValueError("the human labels file lists no video")
    if bool(data_dir) == bool(data_pattern):
        raise ValueError("give exactly one of data_dir (the build: its test split is read) and "
                         "data_pattern")
    pattern = _test_pattern(model_dir, data_dir) if data_dir else data_pattern
    files = D.glob_files(pattern, "human-rated (test)")
    ids, scores = score_videos(model_dir, files, set(labels), batch_size)
    if not ids:
        raise ValueError(f"none of the {len(labels)} human-rated videos is in {pattern}: pass "
                         f"the build whose test videos were rated")
    out = human_rated_metrics(scores, [labels[v] for v in ids])
    out.update({"rated_videos": len(labels), "missing": len(set(labels) - set(ids)),
                "data": pattern})
    return out


__all__ = ["read_human_labels", "human_rated_metrics", "score_videos", "evaluate_human_labels"]
