"""Rule 4 (sampling), split stability, the 199/200 entity filter and the type flags."""
import hashlib
import heapq
import os

import numpy as np

from tests.vocab.helpers import ENTITY_HEADER, MANIFEST_HEADER, entity_line, run_select, write
from yt8m.vocab import rules
from yt8m.vocab.config import VocabConfig
from yt8m.vocab.select import HashHistogramFn, _boundary, _threshold
from yt8m.vocab.synthetic import write_catalog, write_manifest


def sample_h(vid):
    d = hashlib.sha256(f"0:sample:{vid}".encode("utf-8")).digest()
    return int.from_bytes(d[:8], "big") / 2 ** 64


def histogram_sample(keys, n):
    """The transform's two-pass sample, run without Beam."""
    fn = HashHistogramFn()
    acc = fn.create_accumulator()
    for k in keys:
        acc = fn.add_input(acc, k)
    hist = fn.extract_output(fn.merge_accumulators([acc, fn.create_accumulator()]))
    boundary = _boundary(hist, n)
    if boundary is None:
        return set(keys)
    bucket = [k for k in keys if k[0] >> 48 == boundary[0]]
    thr = _threshold(bucket, boundary)
    return {k for k in keys if k[0] >> 48 < boundary[0] or (k[0] >> 48 == boundary[0]
                                                           and thr is not None and k <= thr)}


def test_histogram_sample_equals_n_smallest():
    keys = [rules.sample_key(f"video{i}") for i in range(5000)]
    for n in (1, 17, 2500, 4999, 5000, 9000):
        assert histogram_sample(keys, n) == set(heapq.nsmallest(n, keys)), n


def test_histogram_sample_when_keys_share_a_bucket():
    # Adversarial keys: every key in bucket 0, and equal hashes tie-broken by id.
    keys = [(i // 2, f"v{i:04d}") for i in range(1000)]
    for n in (1, 10, 999):
        assert histogram_sample(keys, n) == set(heapq.nsmallest(n, keys))


def _by(res, reason):
    return {e["video_id"] for e in res["excluded"] if e["reason"] == reason}


def test_sampling_keeps_the_n_smallest_hashes_and_splits_are_stable(tmp_path):
    ent, rat, ids = write_catalog(str(tmp_path), n_entities=40, seed=1)
    small = write_manifest(str(tmp_path / "small.csv"), 900, ids, seed=1)
    cfg = VocabConfig(min_videos_per_entity=5, sample_size=300, min_views=0)
    a = run_select(tmp_path / "a", small, ent, rat, cfg)
    selected = {s["video_id"] for s in a["selected"]}
    sampled = selected | _by(a, "rare_entities_only")
    candidates = sampled | _by(a, "not_sampled")
    assert len(sampled) == 300 and len(candidates) > 300
    want = sorted(candidates, key=lambda v: (sample_h(v), v))[:300]
    assert sampled == set(want)
    assert a["selection"]["rows"]["excluded_by_reason"]["not_sampled"] == len(candidates) - 300

    # Add 400 other videos (and drop sampling): no common video changes split.
    with open(small, "rb") as fh:
        base = fh.read()
    extra = write_manifest(str(tmp_path / "extra.csv"), 400, ids, seed=2)
    with open(extra, "rb") as fh:
        more = fh.read().split(b"\n", 1)[1]
    big = write(tmp_path / "big.csv", base + more)
    b = run_select(tmp_path / "b", big, ent, rat,
                   VocabConfig(min_videos_per_entity=5, min_views=0))
    split_a = {s["video_id"]: s["split"] for s in a["selected"]}
    split_b = {s["video_id"]: s["split"] for s in b["selected"]}
    common = set(split_a) & set(split_b)
    assert len(common) > 200
    assert all(split_a[v] == split_b[v] for v in common)
    # Over both runs, the shares follow 70/20/10 loosely (a few hundred videos).
    shares = np.array([sum(s == k for s in split_b.values()) for k in
                       ("train", "validate", "test")]) / len(split_b)
    assert abs(shares[0] - 0.7) < 0.08 and abs(shares[2] - 0.1) < 0.06


def test_entity_with_199_or_200_videos_and_type_flags(tmp_path):
    entities = ENTITY_HEADER + "".join([
        entity_line("/m/x", "sport"), entity_line("/m/y", "sport"),
        entity_line("/m/w", "food"), entity_line("/m/b", "sport;album")])
    rows = [f"x{i},u,0,200,/m/x;/m/w;/m/b\n" for i in range(199)]
    rows += [f"y{i},u,0,200,/m/y\n" for i in range(198)]
    rows += ["xy,u,0,200,/m/y;/m/x\n", "wb,u,0,200,/m/w;/m/b\n"]
    videos = write(tmp_path / "v.csv", MANIFEST_HEADER + "".join(rows))
    cfg = VocabConfig(min_views=0, type_whitelist="sport", type_blacklist="album")
    assert cfg.min_videos_per_entity == 200
    res = run_select(tmp_path, videos, write(tmp_path / "e.csv", entities), None, cfg)
    assert [v["KnowledgeGraphId"] for v in res["vocabulary"]] == ["/m/x"]
    # no ratings file: rule 2 is off and there is no specificity
    assert res["vocabulary"][0]["Specificity"] == ""
    assert {e["kg_id"]: (e["reason"], e["detail"]) for e in res["excluded_entities"]} == {
        "/m/y": ("too_few_videos", "199 sampled videos < 200"),
        "/m/w": ("type", "no whitelisted type among ['food']"),
        "/m/b": ("type", "blacklisted type ['album']")}
    assert _by(res, "rare_entities_only") == {f"y{i}" for i in range(198)}
    assert _by(res, "no_visual_entity") == {"wb"}
    assert {s["video_id"] for s in res["selected"]} == {f"x{i}" for i in range(199)} | {"xy"}
    assert all(s["labels"] == [0] for s in res["selected"])
    assert res["statistics"]["videos_per_entity_by_rank"] == [200]
    assert os.path.exists(os.path.join(res["out"], "stats", "table2_split_sizes.png"))
