"""``run_pipeline.py vocab``: flags, the summary, outputs and input errors."""
import json
import os

import pytest

from yt8m import cli as run_pipeline
from tests.vocab.helpers import ENTITY_HEADER, read_outputs, write
from yt8m.vocab import cli
from yt8m.vocab.synthetic import make_corpus


def test_vocab_command_end_to_end(tmp_path, capsys):
    corpus = make_corpus(str(tmp_path / "in"), 600, n_entities=30, seed=3,
                         manifest_name="videos.jsonl", malformed_fraction=0.02,
                         duplicate_fraction=0.02)
    out = str(tmp_path / "out")
    rc = run_pipeline.main(["vocab", "--videos", corpus.videos, "--entities", corpus.entities,
                            "--ratings", corpus.ratings, "--output_dir", out,
                            "--min_videos_per_entity", "5", "--split", "60,30,10",
                            "--direct_num_workers=1"])           # a Beam flag passes through
    assert rc == 0
    printed = capsys.readouterr().out
    res = read_outputs(out)
    acc = res["selection"]
    assert acc["rows"]["total"] == 600
    assert acc["config"]["split"] == [60, 30, 10]
    assert acc["rows"]["excluded_by_reason"]["duplicate_id"] > 0
    assert acc["rows"]["excluded_by_reason"]["malformed_row"] > 0
    assert f"rows: 600  selected: {acc['rows']['selected']:,}" in printed
    assert f"train {acc['splits']['train']:,}" in printed
    assert len(res["splits"]) == acc["rows"]["selected"]
    assert len(res["excluded"]) == acc["rows"]["excluded"]
    assert len(res["test_labels"]) == acc["splits"]["test"]
    assert len(res["vocabulary"]) == acc["entities"]["vocabulary"] > 0


def test_missing_input_is_one_clear_line(tmp_path, capsys):
    ent = write(tmp_path / "e.csv", ENTITY_HEADER)
    rc = cli.main(["--videos", str(tmp_path / "missing.csv"), "--entities", ent,
                   "--output_dir", str(tmp_path / "out")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "missing.csv" in err and "does not exist" in err and "--videos" in err


def test_bad_rule_flag_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--videos", "v", "--entities", "e", "--output_dir", "o", "--split", "70,20"])
    assert e.value.code == 2
    assert "--split needs 3 comma-separated parts" in capsys.readouterr().err


def test_run_returns_a_finished_result(tmp_path):
    corpus = make_corpus(str(tmp_path / "in"), 200, n_entities=10, seed=4)
    out = str(tmp_path / "out")
    result = cli.run(["--videos", corpus.videos, "--entities", corpus.entities,
                      "--output_dir", out, "--min_videos_per_entity", "3"])
    assert str(result.state) == "DONE"
    counters = {c.key.metric.name: c.committed
                for c in result.metrics().query()["counters"]}
    with open(os.path.join(out, "stats", "selection.json")) as fh:
        acc = json.load(fh)
    assert counters["vocab_rows"] == acc["rows"]["total"] == 200
    for reason, n in acc["rows"]["excluded_by_reason"].items():
        assert counters.get(f"vocab_excluded_{reason}", 0) == n, reason
    for split, n in acc["splits"].items():
        assert counters.get(f"vocab_selected_{split}", 0) == n, split


def test_bad_catalog_row_found_while_running_is_one_clear_line(tmp_path, capsys):
    ent = write(tmp_path / "e.csv", ENTITY_HEADER + "/m/a,A,sport,S,d,u\n/m/a,A,sport,S,d,u\n")
    videos = write(tmp_path / "v.csv", "video_id,uri,views,duration_s,entities\nv,u,5000,200,/m/a\n")
    rc = cli.main(["--videos", videos, "--entities", ent, "--output_dir", str(tmp_path / "o")])
    assert rc == 2
    assert "line 3: kg_id '/m/a' already on line 2" in capsys.readouterr().err
