"""Exports and reports: ratings.csv in the vocab stage's format, human labels, the CLI."""
from __future__ import annotations

import csv
import json
import re

import pytest

from tests.explorer.helpers import make_explorer
from yt8m import cli as run_pipeline
from yt8m.explorer import exports as X


def rate_everything(ex, names=("ann", "bob", "cat"), score=lambda r, kg: 2, marks=None):
    raters = [ex.store.rater_by_token(ex.store.add_rater(n)) for n in names]
    for r in raters:
        while (kg := ex.store.next_entity_task(r)) is not None:
            ex.store.rate_entity(r, kg, score(r, kg))
        while (vid := ex.store.next_video_task(r)) is not None:
            ex.store.rate_video(r, vid, marks(r, vid) if marks else [], ex.known_kg_ids())
    return raters


def test_ratings_csv_is_the_vocab_stage_input(fake_build, tmp_path):
    from yt8m.vocab.catalog import read_ratings
    ex = make_explorer(fake_build, tmp_path)
    rate_everything(ex, score=lambda r, kg: 1 + (r.id + len(kg)) % 5)
    one = ex.store.rater_by_token(ex.store.add_rater("dan"))
    ex.store.ensure_entity_tasks(["/m/extra"])
    assert ex.store.next_entity_task(one) == "/m/extra"
    ex.store.rate_entity(one, "/m/extra", 1)                  # one rating only: incomplete
    out = tmp_path / "ratings.csv"
    rc = run_pipeline.main(["ratings", "export", "--entities", "--output", str(out),
                            "--data_dir", str(fake_build.out), "--db",
                            ex.db.url.split("sqlite:///")[1]])
    assert rc == 0
    assert out.read_text().splitlines()[0] == "kg_id,rater_id,score"
    got = list(read_ratings(str(out)))
    scores = ex.store.entity_scores()
    assert len(got) == 3 * ex.index.catalog_size()
    assert "/m/extra" not in {kg for kg, _ in got}
    for kg, s in got:
        assert int(s) in [v for _, v in scores[kg]]
    rows = list(csv.DictReader(open(out)))
    assert {r["rater_id"] for r in rows} == {"ann", "bob", "cat"}
    text, counts = X.ratings_csv(ex.store, include_incomplete=True)
    assert counts["incomplete_left_out"] == 0 and "/m/extra,dan,1" in text
    ex.close()


def test_human_labels_are_the_majority_of_three(fake_build, tmp_path):
    ex = make_explorer(fake_build, tmp_path)

    def marks(r, vid):
        truth = fake_build.videos[vid][1]
        # ann and bob see the first label; only cat sees /m/car as well.
        return [truth[0]] + (["/m/car"] if r.name == "cat" else []) if r.name != "bob" \
            else [truth[0], "/m/dog"]
    rate_everything(ex, marks=marks)
    rows = X.human_labels(ex.store, ex.index)
    assert len(rows) == len(fake_build.test_ids)
    for row in rows:
        truth = fake_build.videos[row["video_id"]][1]
        assert row["kg_ids"] == [truth[0]]
        assert row["labels"] == [fake_build.vocabulary[truth[0]]]
        assert row["raters"] == ["ann", "bob", "cat"]
    out = tmp_path / "human.csv"
    db = ex.db.url.split("sqlite:///")[1]
    assert run_pipeline.main(["ratings", "export", "--videos", "--output", str(out),
                              "--data_dir", str(fake_build.out), "--db", db]) == 0
    read = list(csv.DictReader(open(out)))
    assert [r["video_id"] for r in read] == sorted(fake_build.test_ids)
    assert list(read[0]) == ["video_id", "labels", "kg_ids", "raters"]
    from yt8m.trainer.human_eval import read_human_labels
    assert read_human_labels(str(out)) == {r["video_id"]: r["labels"] for r in rows}
    ex.close()


def test_report_measures_the_ground_truth_against_raters(fake_build, tmp_path, capsys):
    ex = make_explorer(fake_build, tmp_path)

    def marks(r, vid):
        truth = fake_build.videos[vid][1]
        return [truth[0], "/m/concert"]     # one label confirmed, one new entity each
    rate_everything(ex, marks=marks, score=lambda r, kg: 1 if "car" in kg else 3)
    rep = X.report(ex.store, ex.index)
    gt = rep["videos"]["ground_truth"]
    n_truth = sum(len(fake_build.videos[v][1]) for v in fake_build.test_ids)
    agreed = sum(len({fake_build.videos[v][1][0], "/m/concert"} & set(fake_build.videos[v][1]))
                 for v in fake_build.test_ids)
    n_human = sum(len({fake_build.videos[v][1][0], "/m/concert"}) for v in fake_build.test_ids)
    assert (gt["truth_labels"], gt["agreed"], gt["human_labels"]) == (n_truth, agreed, n_human)
    assert gt["precision"] == pytest.approx(agreed / n_truth)
    assert gt["recall"] == pytest.approx(agreed / n_human)
    assert rep["videos"]["fleiss"]["kappa"] == pytest.approx(1.0)     # raters agree fully
    assert rep["entities"]["outcome"]["coarse"] == 1                  # /m/car
    assert rep["entities"]["outcome"]["not visual"] == ex.index.catalog_size() - 1
    out = tmp_path / "report.json"
    db = ex.db.url.split("sqlite:///")[1]
    assert run_pipeline.main(["ratings", "report", "--data_dir", str(fake_build.out), "--db", db,
                              "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "precision" in text and "78.8%" in text and "Fleiss' kappa" in text
    assert json.loads(out.read_text())["videos"]["ground_truth"]["agreed"] == agreed
    ex.close()


def test_raters_command(tmp_path, capsys):
    db = str(tmp_path / "r.sqlite")
    assert run_pipeline.main(["raters", "add", "ada", "--admin", "--db", db,
                              "--base_url", "http://127.0.0.1:9999"]) == 0
    link = capsys.readouterr().out.strip()
    m = re.fullmatch(r"http://127\.0\.0\.1:9999/signin\?token=([A-Za-z0-9_-]{32})", link)
    assert m
    from yt8m.explorer import db as D
    from yt8m.explorer.tasks import Store
    store = Store(D.Database(D.sqlite_url(db)))
    assert store.rater_by_token(m.group(1)).is_admin
    assert run_pipeline.main(["raters", "add", "ada", "--db", db]) == 2
    assert "exists already" in capsys.readouterr().err
    assert run_pipeline.main(["raters", "list", "--db", db]) == 0
    assert capsys.readouterr().out.split() == ["ada", "admin", "active"]
    assert run_pipeline.main(["raters", "token", "ada", "--db", db]) == 0
    new = capsys.readouterr().out.strip().rsplit("=", 1)[1]
    assert store.rater_by_token(m.group(1)) is None and store.rater_by_token(new)
    assert run_pipeline.main(["raters", "revoke", "ada", "--db", db]) == 0
    assert store.rater_by_token(new) is None
    assert run_pipeline.main(["raters", "revoke", "nobody", "--db", db]) == 2
    with pytest.raises(SystemExit):
        run_pipeline.main(["raters", "add", "--db", db])
    with pytest.raises(SystemExit):
        run_pipeline.main(["ratings", "export", "--db", db])
    # Without --db the database is the build's; without a build, a clear error.
    assert run_pipeline.main(["raters", "list"]) == 2
    assert "--db" in capsys.readouterr().err


def test_serve_refuses_bad_inputs_before_starting(tmp_path, capsys):
    assert run_pipeline.main(["serve", "--data_dir", str(tmp_path / "nothing")]) == 2
    assert "not a build" in capsys.readouterr().err
    assert run_pipeline.main(["serve"]) == 2
    assert "--data_dir" in capsys.readouterr().err
