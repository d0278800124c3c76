"""explorer/index.py: what the index holds, privacy by table, incremental rebuilds."""
from __future__ import annotations

import os
import sqlite3
import time

import pytest

from tests.explorer.helpers import SECRET
from yt8m.explorer import source as S
from yt8m.explorer.index import Index, IndexBuildError, ensure_index
from yt8m.explorer.verticals import TOP_LEVEL


def build_index(build, tmp_path):
    path = str(tmp_path / "index.sqlite")
    info = ensure_index(S.Sources.locate(str(build.out)), path)
    return Index(path), info, path


def test_index_holds_the_build_without_its_failed_videos(fake_build, tmp_path):
    idx, info, _ = build_index(fake_build, tmp_path)
    assert sorted(info["rebuilt"]) == ["catalog", "dataset"]
    assert idx.num_entities() == len(fake_build.vocabulary)
    assert idx.num_videos(include_test=True) == {s: len(fake_build.of_split(s))
                                                 for s in ("train", "validate", "test")}
    assert "test" not in idx.num_videos()
    assert idx.video("tr999") is None                      # in splits.csv but failed
    for kg, i in fake_build.vocabulary.items():
        e = idx.entity(kg, include_test=True)
        vids = [v for v, (s, ls) in fake_build.videos.items() if kg in ls]
        assert e["idx"] == i
        assert e["train_count"] + e["validate_count"] + e["test_count"] == len(vids)
        listed, total = idx.entity_videos(i, 1000, include_test=True)
        assert total == len(vids) and sorted(v["video_id"] for v in listed) == sorted(vids)


def test_test_labels_are_only_reachable_with_include_test(fake_build, tmp_path):
    idx, _, _ = build_index(fake_build, tmp_path)
    test = set(fake_build.test_ids)
    for kg in fake_build.vocabulary:
        e = idx.entity(kg)
        assert "test_count" not in e
        listed, total = idx.entity_videos(e["idx"], 1000)
        assert not test & {v["video_id"] for v in listed}
    for kg in SECRET:          # labels of test videos only: nothing public lists a video
        assert idx.entity_videos(idx.entity(kg)["idx"], 10)[1] == 0
    vid = fake_build.test_ids[0]
    assert idx.video(vid)["labels"] is None
    assert {e["kg_id"] for e in idx.video(vid, include_test=True)["labels"]} == \
        set(fake_build.videos[vid][1])
    assert all("test_videos" not in v for v in idx.verticals().values())
    results, _ = idx.search("a")
    assert all("test_count" not in e for e in results)


def test_verticals_count_entities_and_distinct_videos(fake_build, tmp_path):
    idx, _, _ = build_index(fake_build, tmp_path)
    counts = idx.verticals(include_test=True)
    from tests.explorer.helpers import VERTICALS
    for v in {x for (_, v1, v2, _) in VERTICALS.values() for x in (v1, v2) if x}:
        ents = [k for k, (_, v1, v2, _) in VERTICALS.items() if v in (v1, v2)]
        assert counts[v]["entities"] == len(ents)
        for split in ("train", "validate", "test"):
            want = sum(1 for s, ls in fake_build.videos.values()
                       if s == split and set(ls) & set(ents))
            assert counts[v][f"{split}_videos"] == want, (v, split)
    assert set(counts) <= set(TOP_LEVEL)


def test_search_orders_exact_then_prefix_then_popular(fake_build, tmp_path):
    idx, _, _ = build_index(fake_build, tmp_path)
    rows, total = idx.search("CAR")
    assert rows[0]["name"] == "Car"
    rows, total = idx.search("c")
    names = [r["name"] for r in rows]
    assert names.index("Car") < names.index("Minecraft")      # prefix first
    assert idx.search("%")[1] == 0 and idx.search("_")[1] == 0  # LIKE wildcards are literal
    assert idx.search("/m/dog")[0][0]["name"] == "Dog"
    assert idx.search("   ") == ([], 0)


def test_catalog_candidates_apply_the_type_rule(fake_build, tmp_path):
    idx, _, _ = build_index(fake_build, tmp_path)
    cands = idx.catalog_candidates()
    assert "/m/song" not in cands                # blacklisted type in the build's config
    assert {"/m/podcast", "/m/opera", "/m/guitar"} <= set(cands)
    assert idx.catalog_entity("/m/opera")["name"] == "Opera"


def test_unchanged_sources_reuse_the_index_and_a_changed_one_rebuilds_its_group(
        fake_build, tmp_path):
    _, _, path = build_index(fake_build, tmp_path)
    before = os.stat(path).st_mtime_ns
    sources = S.Sources.locate(str(fake_build.out))
    again = ensure_index(sources, path)
    assert again["rebuilt"] == [] and os.stat(path).st_mtime_ns == before
    # Only the catalog changed: the dataset tables are copied, the catalog re-read.
    cat = fake_build.out / "private" / "inputs" / "entities.csv"
    cat.write_text(cat.read_text() + "/m/new,Newcomer,Visual Object,Travel,New.,\n")
    os.utime(cat, (time.time() + 5, time.time() + 5))
    info = ensure_index(sources, path)
    assert info["rebuilt"] == ["catalog"] and info["reused"] == ["dataset"]
    idx = Index(path)
    assert "/m/new" in idx.catalog_candidates()
    assert idx.num_videos(include_test=True)["test"] == len(fake_build.test_ids)
    # splits.csv changed: the dataset group is read again.
    splits = fake_build.out / "splits.csv"
    splits.write_text(splits.read_text() + "extra1,train,0\n")
    info = ensure_index(sources, path)
    assert info["rebuilt"] == ["dataset"]
    assert Index(path).video("extra1")["split"] == "train"
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".part")]


def test_a_broken_rebuild_keeps_the_previous_index(fake_build, tmp_path):
    _, _, path = build_index(fake_build, tmp_path)
    voc = fake_build.out / "vocabulary.csv"
    voc.write_text("Index,Name\nnot-a-number,x\n")
    with pytest.raises(IndexBuildError, match="Index"):
        ensure_index(S.Sources.locate(str(fake_build.out)), path)
    assert Index(path).num_entities() == len(fake_build.vocabulary)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".part")]
    con = sqlite3.connect(path)
    assert con.execute("SELECT COUNT(*) FROM entities").fetchone()[0] > 0


def test_a_folder_that_is_not_a_build_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a build"):
        S.Sources.locate(str(tmp_path))
    with pytest.raises(ValueError, match="--data_dir"):
        S.Sources.locate(None)
