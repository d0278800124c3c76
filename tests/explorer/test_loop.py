"""The loops on a real build of the demo's corpus: rating -> ratings.csv -> vocabulary, and
rated test videos -> human labels -> ``evaluate --human_labels`` (Table 4)."""
from __future__ import annotations

import csv
import json
from fractions import Fraction

import pytest

from tests.explorer.helpers import client
from yt8m import cli as run_pipeline
from yt8m.explorer.service import Explorer, Settings
from yt8m.pipeline.demo import DEMO_VOCAB_FLAGS
from yt8m.vocab.rules import specificity

pytestmark = pytest.mark.slow

# What the three raters say: the red circle is non-visual now, the podcast visual.
SCORES = {"/m/demo_red_circle": (5, 5, 4), "/m/demo_podcast": (1, 1, 1)}


def score_of(kg, k):
    return SCORES.get(kg, ((1, 1, 2), (2, 2, 1), (2, 3, 2))[len(kg) % 3])[k]


@pytest.fixture(scope="module")
def served_build(demo_build, tmp_path_factory):
    db = tmp_path_factory.mktemp("loop") / "ratings.sqlite"
    ex = Explorer(Settings(data_dir=str(demo_build.out), db_url=f"sqlite:///{db}",
                           predictions=str(demo_build.run / "predictions.csv")))
    ex.prepare()
    tokens = [ex.store.add_rater(n) for n in ("r1", "r2", "r3")]
    yield ex, tokens, str(db)
    ex.close()


def read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_rating_to_ratings_csv_to_vocabulary(served_build, demo_build, tmp_path):
    ex, tokens, db = served_build
    catalog = {r["kg_id"] for r in read(demo_build.out / "private" / "inputs" / "entities.csv")}
    for k, token in enumerate(tokens):
        c = client(ex, token)
        rated = set()
        while (task := c.post("/api/tasks/entity").json()["task"]) is not None:
            r = c.post("/api/ratings/entity", json={"kg_id": task["kg_id"],
                                                    "score": score_of(task["kg_id"], k)})
            assert r.status_code == 201, r.text
            rated.add(task["kg_id"])
        assert rated == catalog                     # every catalog entity, once per rater
    ratings = tmp_path / "ratings.csv"
    assert run_pipeline.main(["ratings", "export", "--entities", "--db", db,
                              "--output", str(ratings)]) == 0
    inputs = demo_build.out / "private" / "inputs"
    out2 = tmp_path / "vocab2"
    assert run_pipeline.main(["vocab", "--videos", str(inputs / "manifest.csv"),
                              "--entities", str(inputs / "entities.csv"),
                              "--ratings", str(ratings), "--output_dir", str(out2),
                              *DEMO_VOCAB_FLAGS]) == 0
    vocab = {r["KnowledgeGraphId"]: r for r in read(out2 / "vocabulary.csv")}
    excluded = {r["kg_id"]: r["reason"] for r in read(out2 / "excluded_entities.csv")}
    assert "/m/demo_red_circle" not in vocab and excluded["/m/demo_red_circle"] == "rating"
    # Visual now, but it labels one video only (fewer than --min_videos_per_entity 2).
    assert excluded["/m/demo_podcast"] == "too_few_videos"
    before = {r["KnowledgeGraphId"] for r in read(demo_build.out / "vocabulary.csv")}
    assert set(vocab) == before - {"/m/demo_red_circle"}
    for kg, row in vocab.items():
        mean = Fraction(sum(score_of(kg, k) for k in range(3)), 3)
        assert row["Specificity"] == specificity(mean, 2.5), kg
    # The videos of the dropped entity lose that label (or the video, if it was the only one).
    splits = {r["video_id"]: r for r in read(out2 / "splits.csv")}
    assert str(len(vocab)) not in {x for r in splits.values() for x in r["labels"].split(";")}


def test_rated_videos_to_human_labels_to_evaluate(served_build, demo_build, tmp_path, capsys):
    ex, tokens, db = served_build
    test_labels = {r["video_id"]: r["labels"] for r in
                   read(demo_build.out / "private" / "test_labels.csv")}
    by_idx = {int(r["Index"]): r["KnowledgeGraphId"] for r in
              read(demo_build.out / "vocabulary.csv")}
    seen = set()
    for k, token in enumerate(tokens):
        c = client(ex, token)
        while (task := c.post("/api/tasks/video").json()["task"]) is not None:
            vid = task["video_id"]
            truth = [by_idx[int(i)] for i in test_labels[vid].split(";")]
            shown = [x["kg_id"] for x in task["candidates"]]
            assert set(truth) <= set(shown) and len(shown) == 10
            marks = truth[:1] + ([shown[0]] if k == 0 else [])
            r = c.post("/api/ratings/video", json={"video_id": vid,
                                                   "kg_ids": sorted(set(marks))})
            assert r.status_code == 201, r.text
            seen.add(vid)
    written_test = {vid for vid in test_labels if ex.index.split_of(vid) == "test"}
    assert seen == written_test and seen
    human = tmp_path / "human.csv"
    assert run_pipeline.main(["ratings", "export", "--videos", "--db", db, "--data_dir",
                              str(demo_build.out), "--output", str(human)]) == 0
    rows = read(human)
    assert {r["video_id"] for r in rows} == seen
    for r in rows:      # the majority: each video's first ground-truth label
        first = by_idx[int(test_labels[r["video_id"]].split(";")[0])]
        assert r["kg_ids"] == first
    assert run_pipeline.main(["ratings", "report", "--db", db, "--data_dir",
                              str(demo_build.out)]) == 0
    report = capsys.readouterr().out
    # Raters confirmed one ground-truth label per video and added none by majority: the
    # ground truth holds everything they found (recall 100%), and more.
    assert "recall 100.0%" in report
    n_truth = sum(len(test_labels[v].split(";")) for v in seen)
    assert f"precision {100 * len(seen) / n_truth:.1f}%" in report
    metrics_file = tmp_path / "metrics.json"
    assert run_pipeline.main(["evaluate", "--model_dir", str(demo_build.run), "--data_dir",
                              str(demo_build.out), "--human_labels", str(human),
                              "--output", str(metrics_file)]) == 0
    metrics = json.loads(metrics_file.read_text())
    hr = metrics["human_rated"]
    assert hr["num_examples"] == len(seen) and hr["missing"] == 0
    assert 0 <= hr["perr"] <= 1 and 0 <= hr["hit_at_1"] <= hr["hit_at_5"] <= 1
    assert "perr" in metrics and metrics["num_examples"] > 0     # validate, next to it
