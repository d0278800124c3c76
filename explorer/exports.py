"""From the ratings database to files the other stages read, and the raters' report.

* ``ratings_csv``: ``kg_id,rater_id,score``, exactly the vocab stage's
  ``--ratings`` input (``vocab/catalog.py``), so that rating -> vocabulary is
  one loop: ``ratings export --entities`` then ``vocab --ratings ratings.csv``.
* ``human_labels_csv``: ``video_id,labels,kg_ids,raters`` for every video rated
  by 3 raters: the entities a majority (2 of 3) marked present, as vocabulary
  ``Index`` values (``;``-separated, like ``private/test_labels.csv``) and as
  kg_ids. ``evaluate --human_labels`` reads it. It holds labels of test
  videos: keep it private.
* ``report``: the ground truth's precision and recall against the raters
  (paper section 3.5: 78.8% and 14.5%), Fleiss' kappa of the entity scores
  and of the video marks, and what the entity scores make of the vocabulary.
"""
from __future__ import annotations

from typing import Optional

from yt8m.explorer import agreement as A
from yt8m.explorer.db import RATERS_PER_TASK
from yt8m.vocab.catalog import RATING_COLUMNS
from yt8m.vocab.outputs import csv_text

HUMAN_LABEL_COLUMNS = ("video_id", "labels", "kg_ids", "raters")


def ratings_csv(store, include_incomplete: bool = False) -> tuple[str, dict]:
    """The entity ratings as the vocab stage's ratings CSV; and counts of what was written."""
    scores = store.entity_scores()
    rows, entities, left_out = [], 0, 0
    for kg in sorted(scores):
        values = scores[kg]
        if len(values) < RATERS_PER_TASK and not include_incomplete:
            left_out += 1
            continue
        entities += 1
        rows.extend((kg, rater, score) for rater, score in values)
    return csv_text(RATING_COLUMNS, rows), {"entities": entities, "ratings": len(rows),
                                            "incomplete_left_out": left_out}


def human_labels(store, index) -> list[dict]:
    """Videos rated by 3 raters: the majority's entities (``labels`` as vocabulary indices)."""
    out = []
    for vid, v in sorted(store.video_marks().items()):
        if len(v["raters"]) < RATERS_PER_TASK:
            continue
        kgs = sorted(A.majority(list(v["raters"].values())))
        to_idx = index.kg_to_idx(kgs) if index is not None else {}
        out.append({"video_id": vid, "labels": sorted(to_idx[k] for k in kgs if k in to_idx),
                    "kg_ids": kgs, "raters": sorted(v["raters"])})
    return out


def human_labels_csv(store, index) -> tuple[str, dict]:
    rows = human_labels(store, index)
    text = csv_text(HUMAN_LABEL_COLUMNS, [
        (r["video_id"], ";".join(str(i) for i in r["labels"]), ";".join(r["kg_ids"]),
         ";".join(r["raters"])) for r in rows])
    return text, {"videos": len(rows),
                  "videos_without_labels": sum(1 for r in rows if not r["labels"])}


def report(store, index, max_mean_rating: float = 2.5) -> dict:
    """The raters' figures: entity agreement and outcome, video agreement, ground-truth quality."""
    scores = {kg: [s for _, s in v] for kg, v in store.entity_scores().items()}
    complete = {kg: v for kg, v in scores.items() if len(v) >= RATERS_PER_TASK}
    buckets: dict[str, int] = {}
    for values in complete.values():
        b = A.specificity(A.mean_score(values), max_mean_rating)
        buckets[b] = buckets.get(b, 0) + 1
    entities = {
        "rated": len(scores), "complete": len(complete),
        "ratings": sum(len(v) for v in scores.values()),
        "outcome": {k: buckets.get(k, 0) for k in ("coarse", "medium", "fine", "not visual")},
        "max_mean_rating": max_mean_rating,
        "fleiss": A.fleiss_kappa(A.score_table(complete, RATERS_PER_TASK)),
    }
    videos = {vid: v for vid, v in store.video_marks().items()
              if len(v["raters"]) >= RATERS_PER_TASK}
    human = {vid: A.majority(list(v["raters"].values())) for vid, v in videos.items()}
    truth = {}
    if index is not None:
        for vid in videos:
            ids = index.test_label_ids(vid)
            truth[vid] = {e["kg_id"] for e in index.entities_by_idx(ids, include_test=True)}
    video_part = {
        "rated": len(store.video_marks()), "complete": len(videos),
        "ground_truth": A.precision_recall(truth, human) if index is not None else None,
        "fleiss": A.fleiss_kappa(A.mark_table(videos)),
        "paper": {"precision": 0.788, "recall": 0.145},
    }
    return {"entities": entities, "videos": video_part}


def _pct(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _num(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def format_report(rep: dict) -> str:
    e, v = rep["entities"], rep["videos"]
    ef, vf = e["fleiss"], v["fleiss"]
    gt = v["ground_truth"] or {}
    lines = [
        f"entities: {e['complete']} rated by 3 raters ({e['rated']} with any rating, "
        f"{e['ratings']} ratings)",
        "  outcome (mean score, max %.2g): " % e["max_mean_rating"]
        + "  ".join(f"{k} {n}" for k, n in e["outcome"].items()),
        f"  agreement: Fleiss' kappa {_num(ef['kappa'])} (observed {_num(ef['observed'])}, "
        f"chance {_num(ef['expected'])}, {ef['items']} entities)",
        f"videos: {v['complete']} rated by 3 raters ({v['rated']} with any rating)",
        f"  ground truth vs raters (majority of 3): precision {_pct(gt.get('precision'))}, "
        f"recall {_pct(gt.get('recall'))} ({gt.get('agreed', 0)} agreed of "
        f"{gt.get('truth_labels', 0)} ground-truth and {gt.get('human_labels', 0)} rater "
        f"labels); the paper: 78.8% and 14.5%",
        f"  agreement: Fleiss' kappa {_num(vf['kappa'])} (observed {_num(vf['observed'])}, "
        f"chance {_num(vf['expected'])}, {vf['items']} video-entity pairs)",
    ]
    return "\n".join(lines)
