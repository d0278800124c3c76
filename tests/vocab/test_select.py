"""SelectVideos end to end on hand-made inputs: every rule, the accounting, the files."""
import hashlib
import json
import os

import pytest

from tests.vocab.helpers import (ENTITY_HEADER, MANIFEST_HEADER, entity_line, run_select,
                                 write)
from yt8m.vocab.config import VocabConfig
from yt8m.vocab.outputs import (EXCLUDED_COLUMNS, EXCLUDED_ENTITIES_COLUMNS, SPLITS_COLUMNS,
                           VOCABULARY_COLUMNS)


def h(purpose, vid, seed=0):
    d = hashlib.sha256(f"{seed}:{purpose}:{vid}".encode("utf-8")).digest()
    return int.from_bytes(d[:8], "big") / 2 ** 64


def split_of(vid):
    u = h("split", vid)
    return "train" if u < 0.70 else "validate" if u < 0.90 else "test"


# Each special row: (video_id, views, duration, entities, expected reason or None).
SPECIAL = [
    ("v_views1000_dur120", "1000", "120", "/m/a", None),
    ("v_views999", "999", "200", "/m/a", "views"),
    ("v_dur119.99", "5000", "119.99", "/m/a", "duration"),
    ("v_dur500", "5000", "500", "/m/a", None),
    ("v_dur500.01", "5000", "500.01", "/m/a", "duration"),
    ("v_dur_empty", "5000", "", "/m/a", None),
    ("v_views_and_duration", "10", "50", "/m/a", "views"),      # first reason wins
    ("v_views_abc", "abc", "200", "/m/a", "malformed_row"),
    ("v_not_visual", "5000", "200", "/m/e;/m/unknown1", "no_visual_entity"),
    ("v_unknown_only", "5000", "200", "/m/unknown1;/m/unknown2", "no_visual_entity"),
    ("v_rare_only", "5000", "200", "/m/r", "rare_entities_only"),
    ("v_rare_and_a", "5000", "200", "/m/r;/m/a;/m/e", None),
]


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("select_main")
    entities = ENTITY_HEADER + "".join([
        entity_line("/m/a", "sport", "Sports;Games"),
        entity_line("/m/b", "animal", "Pets & Animals"),
        entity_line("/m/c", "food", "Food & Drink;Travel;Science"),
        entity_line("/m/d", "sport;vehicle", "Autos & Vehicles"),
        entity_line("/m/e", "sport", "Sports"),          # mean 2.67: rating
        entity_line("/m/f", "sport", "Sports"),          # no ratings: unrated
        entity_line("/m/g", "sport;album", "Sports"),    # blacklisted type
        entity_line("/m/r", "sport", "Sports"),          # 2 videos < 3: too_few_videos
        entity_line("/m/z", "sport", "Sports"),          # 0 videos: too_few_videos
    ])
    ratings = "kg_id,rater_id,score\n" + "".join(
        f"{kg},r{i},{s}\n" for kg, scores in [
            ("/m/a", (1, 1, 1)), ("/m/b", (2, 3, 2.5)), ("/m/c", (1, 2)), ("/m/d", (2, 2)),
            ("/m/e", (3, 2, 3)), ("/m/g", (1, 1, 1)), ("/m/r", (1, 1, 1)), ("/m/z", (1, 1, 1)),
            ("/m/not_in_catalog", (1, 1, 1))]
        for i, s in enumerate(scores))
    lines = [MANIFEST_HEADER.encode()]
    expect = {}   # line -> (video_id, reason)

    def add(vid, views, dur, ents, reason, raw=None):
        lines.append(raw or f"{vid},file:///v/{vid}.mp4,{views},{dur},{ents}\n".encode())
        expect[len(lines)] = (vid, reason)

    for row in SPECIAL:
        add(*row)
    # Fillers: popular entities with ties. a: 12+special, b: 4, c: 4, d: 4 -> ties b/c/d.
    for kg, n in (("/m/a", 12), ("/m/b", 4), ("/m/c", 4), ("/m/d", 4)):
        for i in range(n):
            add(f"fill_{kg[3:]}_{i}", "2000", "300", kg, None)
    add("fill_b_extra", "2000", "300", "/m/b;/m/f", None)   # /m/f (unrated) is no label
    # duplicate ids: every row excluded, even the malformed one
    add("v_dup", "5000", "200", "/m/a", "duplicate_id")
    add("v_dup", "abc", "200", "/m/a", "duplicate_id")
    add("v_dup", "5000", "200", "/m/b", "duplicate_id")
    # malformed rows without a usable id
    add(None, None, None, None, "malformed_row", raw=b"v_bad\xff_bytes,u,5000,200,/m/a\n")
    add(None, None, None, None, "malformed_row", raw=b"v_quote,\"u\"x,5000,200,/m/a\n")
    add("v_fields", None, None, None, "malformed_row", raw=b"v_fields,u,5000,200,/m/a,extra\n")
    add("v_after_bad_rows", "5000", "200", "/m/a", None)
    # a blank line is not a row
    lines.append(b"\n")
    videos = write(tmp / "videos.csv", b"".join(lines))
    cfg = VocabConfig(min_videos_per_entity=3, type_blacklist="album")
    res = run_select(tmp, videos, write(tmp / "entities.csv", entities),
                     write(tmp / "ratings.csv", ratings), cfg)
    res["expect"] = expect
    return res


def test_headers(main_run):
    assert main_run["vocabulary_header"] == list(VOCABULARY_COLUMNS)
    assert main_run["vocabulary_header"][:9] == [
        "Index", "TrainVideoCount", "KnowledgeGraphId", "Name", "WikiUrl", "Vertical1",
        "Vertical2", "Vertical3", "WikiDescription"]
    assert main_run["splits_header"] == list(SPLITS_COLUMNS)
    assert main_run["excluded_header"] == list(EXCLUDED_COLUMNS)
    assert main_run["excluded_entities_header"] == list(EXCLUDED_ENTITIES_COLUMNS)
    assert main_run["test_labels_header"] == ["video_id", "labels"]


def test_every_row_accounted_once_with_first_reason(main_run):
    expect = main_run["expect"]
    excluded = {int(e["line"]): e for e in main_run["excluded"]}
    assert len(excluded) == len(main_run["excluded"])          # one entry per line
    selected = {s["line"]: s for s in main_run["selected"]}
    assert set(excluded) | set(selected) == set(expect)
    assert not set(excluded) & set(selected)
    for line, (vid, reason) in expect.items():
        if reason is None:
            assert selected[line]["video_id"] == vid, line
        else:
            assert excluded[line]["reason"] == reason, (line, vid, excluded[line])
            assert excluded[line]["video_id"] == (vid or "")
    acc = main_run["selection"]["rows"]
    assert acc["total"] == len(expect)
    assert acc["selected"] == sum(r is None for _, r in expect.values())
    by_reason = {}
    for _, r in expect.values():
        if r:
            by_reason[r] = by_reason.get(r, 0) + 1
    assert {k: v for k, v in acc["excluded_by_reason"].items() if v} == by_reason


def test_entities(main_run):
    reasons = {e["kg_id"]: e["reason"] for e in main_run["excluded_entities"]}
    assert reasons == {"/m/e": "rating", "/m/f": "unrated", "/m/g": "type",
                       "/m/r": "too_few_videos", "/m/z": "too_few_videos"}
    vocab = {v["KnowledgeGraphId"]: v for v in main_run["vocabulary"]}
    # mean 2.5 kept (fine); 1.5 coarse and 2.0 medium (boundaries go coarser)
    assert {kg: v["Specificity"] for kg, v in vocab.items()} == {
        "/m/a": "coarse", "/m/b": "fine", "/m/c": "coarse", "/m/d": "medium"}
    acc = main_run["selection"]["entities"]
    assert acc["catalog"] == 9 and acc["vocabulary"] == 4
    assert acc["excluded_by_reason"] == {"type": 1, "unrated": 1, "rating": 1,
                                         "too_few_videos": 2}


def test_index_order_and_vocabulary_fields(main_run):
    # a has the most videos; b, c, d tie at 5, 4, 4 -> b (5) then c, d by kg_id
    order = [v["KnowledgeGraphId"] for v in sorted(main_run["vocabulary"],
                                                   key=lambda v: int(v["Index"]))]
    assert order == ["/m/a", "/m/b", "/m/c", "/m/d"]
    assert [int(v["Index"]) for v in main_run["vocabulary"]] == [0, 1, 2, 3]
    c = next(v for v in main_run["vocabulary"] if v["KnowledgeGraphId"] == "/m/c")
    assert (c["Vertical1"], c["Vertical2"], c["Vertical3"]) == ("Food & Drink", "Travel",
                                                                "Science")
    assert c["WikiDescription"] == "About Name /m/c, in short" and c["WikiUrl"] == "https://w/c"
    a = next(v for v in main_run["vocabulary"] if v["KnowledgeGraphId"] == "/m/a")
    assert a["Vertical3"] == ""
    # TrainVideoCount counts train videos only
    index = {v["KnowledgeGraphId"]: int(v["Index"]) for v in main_run["vocabulary"]}
    for kg, i in index.items():
        train = sum(1 for s in main_run["selected"]
                    if s["split"] == "train" and i in s["labels"])
        assert int(next(v for v in main_run["vocabulary"]
                        if v["KnowledgeGraphId"] == kg)["TrainVideoCount"]) == train


def test_labels_and_splits(main_run):
    index = {v["KnowledgeGraphId"]: int(v["Index"]) for v in main_run["vocabulary"]}
    by_vid = {s["video_id"]: s for s in main_run["selected"]}
    # rare and non-visual entities are dropped from labels
    assert by_vid["v_rare_and_a"]["labels"] == [index["/m/a"]]
    assert by_vid["fill_b_extra"]["labels"] == [index["/m/b"]]
    assert by_vid["v_dur_empty"]["duration_s"] is None
    assert by_vid["v_dur500"]["uri"] == "file:///v/v_dur500.mp4"
    for s in main_run["selected"]:
        assert s["split"] == split_of(s["video_id"])
        assert s["labels"] == sorted(s["labels"])
    splits = {r["video_id"]: r for r in main_run["splits"]}
    assert set(splits) == set(by_vid)
    for vid, row in splits.items():
        assert row["split"] == by_vid[vid]["split"]
        want = "" if row["split"] == "test" else ";".join(map(str, by_vid[vid]["labels"]))
        assert row["labels"] == want


def test_test_labels_only_in_private(main_run):
    test = {s["video_id"]: s for s in main_run["selected"] if s["split"] == "test"}
    assert test, "the hand-made input should put some videos in test"
    private = {r["video_id"]: r["labels"] for r in main_run["test_labels"]}
    assert private == {v: ";".join(map(str, s["labels"])) for v, s in test.items()}
    assert all(r["labels"] == "" for r in main_run["splits"] if r["split"] == "test")
    # no other public file names a test video together with a label
    out = main_run["out"]
    for root, _, files in os.walk(out):
        if os.path.relpath(root, out).startswith("private"):
            continue
        for f in files:
            if f.endswith((".csv", ".json")):
                text = open(os.path.join(root, f), encoding="utf-8").read()
                for vid in test:
                    if f != "splits.csv":
                        assert vid not in text, (f, vid)


def test_unknown_entities_and_stats(main_run):
    unknown = main_run["selection"]["unknown_entities"]
    assert unknown["distinct"] == 2 and unknown["mentions"] == 3
    assert unknown["most_frequent"] == {"/m/unknown1": 2, "/m/unknown2": 1}
    st = main_run["statistics"]
    assert st["split_sizes"] == main_run["selection"]["splits"]
    assert sum(st["split_sizes"].values()) == len(main_run["selected"])
    assert st["videos_per_entity_by_rank"] == sorted(st["videos_per_entity_by_rank"],
                                                    reverse=True)
    assert st["entities_per_vertical"]["Sports"] == 1
    hist = st["labels_per_video"]["histogram"]
    assert sum(hist.values()) == len(main_run["selected"])
    train_sports = sum(1 for s in main_run["selected"] if s["split"] == "train"
                       and 0 in s["labels"])     # /m/a (Index 0) is the only Sports entity
    assert st["train_videos_per_vertical"].get("Sports", 0) == train_sports
    pngs = sorted(f for f in os.listdir(os.path.join(main_run["out"], "stats"))
                  if f.endswith(".png"))
    assert pngs == ["figure4b_specificity.png", "figure5_videos_per_entity.png",
                    "figure6_verticals.png", "table2_split_sizes.png"]
    for f in pngs:
        with open(os.path.join(main_run["out"], "stats", f), "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    # no temporary files left behind
    leftovers = [f for _, _, fs in os.walk(main_run["out"]) for f in fs if ".tmp-" in f
                 or f.startswith("beam-temp")]
    assert leftovers == []


def test_selection_json_config(main_run):
    cfg = main_run["selection"]["config"]
    assert cfg["min_videos_per_entity"] == 3 and cfg["type_blacklist"] == ["album"]
    assert main_run["selection"]["inputs"]["ratings"].endswith("ratings.csv")
    json.dumps(main_run["selection"])
