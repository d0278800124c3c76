"""Rules 1-7 and the hash, as pure functions, at their boundary values."""
import hashlib
from fractions import Fraction

import pytest

from yt8m.vocab import rules
from yt8m.vocab.config import VocabConfig

CFG = VocabConfig()


def expected_h(purpose, video_id, seed=0):
    # Written out from the issue text, independently of vocab.rules.
    d = hashlib.sha256(f"{seed}:{purpose}:{video_id}".encode("utf-8")).digest()
    return int.from_bytes(d[:8], "big") / 2 ** 64


@pytest.mark.parametrize("purpose,video_id,seed", [
    ("split", "dQw4w9WgXcQ", 0), ("sample", "dQw4w9WgXcQ", 0), ("split", "abc", 7),
    ("sample", "vidé-ü", 0), ("split", "", 0), ("split", "a:b:c", 123456789)])
def test_hash_matches_issue_formula(purpose, video_id, seed):
    assert rules.h(purpose, video_id, seed) == expected_h(purpose, video_id, seed)
    assert 0.0 <= rules.h(purpose, video_id, seed) < 1.0


def test_hash_known_value():
    # sha256(b"0:split:abc") begins with these 8 bytes (computed once with hashlib).
    first8 = hashlib.sha256(b"0:split:abc").digest()[:8]
    assert rules.h64("split", "abc", 0) == int.from_bytes(first8, "big")
    assert rules.h("split", "abc") != rules.h("sample", "abc")
    assert rules.h("split", "abc", 0) != rules.h("split", "abc", 1)


def test_split_thresholds_follow_hash():
    ids = [f"v{i}" for i in range(3000)]
    for vid in ids:
        u = expected_h("split", vid)
        want = "train" if u < 0.70 else "validate" if u < 0.90 else "test"
        assert rules.split_of(vid, CFG) == want
    counts = {s: sum(rules.split_of(v, CFG) == s for v in ids) for s in ("train", "validate", "test")}
    # 3000 uniform draws: each share within 4 points of its target.
    assert abs(counts["train"] / 3000 - 0.7) < 0.04 and abs(counts["test"] / 3000 - 0.1) < 0.04


def test_split_custom_and_seed():
    cfg = VocabConfig(split="50,50,0", seed=3)
    for vid in ("a", "b", "c", "d", "e"):
        u = expected_h("split", vid, 3)
        assert rules.split_of(vid, cfg) == ("train" if u < 0.5 else "validate")


def test_views_boundary():
    visual = {"/m/a"}
    assert rules.video_reason(None, 999, 200.0, ["/m/a"], visual, CFG)[0] == "views"
    assert rules.video_reason(None, 1000, 200.0, ["/m/a"], visual, CFG) == (None, ("/m/a",))


@pytest.mark.parametrize("duration,reason", [
    (119.99, "duration"), (120.0, None), (500.0, None), (500.01, "duration"), (None, None),
    (0.0, "duration")])
def test_duration_boundary(duration, reason):
    got = rules.video_reason(None, 5000, duration, ["/m/a"], {"/m/a"}, CFG)
    assert got[0] == reason


def test_video_reason_order_and_labels():
    visual = {"/m/a", "/m/b"}
    # malformed beats views beats duration beats no_visual_entity
    assert rules.video_reason("bad", 1, 1.0, [], visual, CFG)[0] == "malformed_row"
    assert rules.video_reason(None, 1, 1.0, [], visual, CFG)[0] == "views"
    assert rules.video_reason(None, 1000, 1.0, [], visual, CFG)[0] == "duration"
    assert rules.video_reason(None, 1000, 130.0, ["/m/x"], visual, CFG)[0] == "no_visual_entity"
    # labels: only entities that passed, sorted, no repeats
    assert rules.video_reason(None, 1000, 130.0, ["/m/b", "/m/x", "/m/a", "/m/b"], visual,
                              CFG) == (None, ("/m/a", "/m/b"))


def test_mean_rating_exact():
    assert rules.mean_rating([2, 3, "2.5"]) == Fraction(5, 2)
    # 2.1 + 2.9 + 2.5 = 7.5 exactly; float addition would not guarantee it.
    assert rules.mean_rating(["2.1", "2.9", "2.5"]) == Fraction(5, 2)
    assert rules.mean_rating([]) is None


def test_rating_rule_boundary():
    assert rules.entity_reason(["sport"], Fraction(5, 2), True, CFG) is None
    assert rules.entity_reason(["sport"], Fraction(5, 2) + Fraction(1, 10 ** 9), True,
                               CFG)[0] == "rating"
    assert rules.entity_reason(["sport"], None, True, CFG)[0] == "unrated"
    # without a ratings file rule 2 is off
    assert rules.entity_reason(["sport"], None, False, CFG) is None


def test_type_rules():
    cfg = VocabConfig(type_whitelist="sport,animal", type_blacklist="album")
    assert rules.entity_reason(["sport"], None, False, cfg) is None
    assert rules.entity_reason(["food"], None, False, cfg)[0] == "type"
    assert rules.entity_reason([], None, False, cfg)[0] == "type"
    assert rules.entity_reason(["sport", "album"], None, False, cfg)[0] == "type"
    # type comes before the rating rule
    assert rules.entity_reason(["food"], Fraction(5), True, cfg)[0] == "type"
    # default: every type passes, none is blacklisted
    assert rules.entity_reason([], None, False, CFG) is None
    assert rules.entity_reason(["album"], None, False, CFG) is None


@pytest.mark.parametrize("mean,bucket", [
    (Fraction(1), "coarse"), (Fraction(3, 2), "coarse"), (Fraction(3, 2) + Fraction(1, 1000),
                                                          "medium"),
    (Fraction(2), "medium"), (Fraction(2) + Fraction(1, 1000), "fine"), (Fraction(5, 2), "fine")])
def test_specificity_buckets(mean, bucket):
    # [1, 2.5] in thirds: boundaries 1.5 and 2.0 go to the coarser bucket
    assert rules.specificity(mean, 2.5) == bucket


def test_specificity_other_max_and_unrated():
    # [1, 4] in thirds: 2 and 3
    assert rules.specificity(Fraction(2), 4.0) == "coarse"
    assert rules.specificity(Fraction(3), 4.0) == "medium"
    assert rules.specificity(Fraction(31, 10), 4.0) == "fine"
    assert rules.specificity(None, 2.5) == ""


def test_index_order_ties_by_kg_id():
    counts = [("/m/c", 5), ("/m/b", 7), ("/m/a", 5), ("/m/d", 9), ("/m/0", 5)]
    assert rules.index_order(counts) == ["/m/d", "/m/b", "/m/0", "/m/a", "/m/c"]


def test_kept_entities_199_200():
    assert rules.kept_entities({"/m/a": 200, "/m/b": 199}, 200) == {"/m/a": 200}


def test_sample_key_orders_like_h():
    ids = [f"id{i}" for i in range(500)]
    by_key = [vid for _, vid in sorted(rules.sample_key(v) for v in ids)]
    by_h = sorted(ids, key=lambda v: (expected_h("sample", v), v))
    assert by_key == by_h
