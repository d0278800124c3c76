"""Decode warnings from extraction to dataset_info.json, the counts of a build, and
what a build that wrote nothing says (pipeline.build, without running a pipeline)."""
from __future__ import annotations

import numpy as np

from yt8m.pipeline import build
from yt8m.pipeline import cache as cache_lib
from yt8m.pipeline.progress import summary_text

MODEL = {"name": "inception_v3", "source": "random", "spec": "random", "path": None,
         "sha256": None, "random": True, "seed": 0}
PARTIAL = ("decoding stopped at 2.000 s (InvalidDataError: Invalid data found when "
           "processing input); the frames decoded until then were kept")
NON_MONOTONIC = "1 frames had timestamps earlier than the frame before them (non-monotonic) " \
                "and were skipped"


def _video(tmp_path, vid):
    path = tmp_path / f"{vid}.mp4"
    path.write_bytes(b"x" * 64)
    return {"video_id": vid, "uri": str(path), "split": "train", "labels": [0]}


def test_warning_kinds():
    assert build.warning_kind(PARTIAL) == "partial_decode"
    assert build.warning_kind(NON_MONOTONIC) == "non_monotonic"
    assert build.warning_kind("the video stream ends at 1.000 s but the container declares "
                              "9.000 s: the file is probably truncated") == "truncated"
    assert build.warning_kind("display rotation 45 degrees is not a multiple of 90") == \
        "rotation"
    assert build.warning_kind("something new") == "other"


def test_decode_warnings_are_cached_and_read_back(tmp_path):
    # Extraction -> StoreCacheFn -> cache entry meta -> LookupCacheFn on the rerun.
    cache_dir, tmp_dir = str(tmp_path / "cache"), str(tmp_path / "tmp")
    fp = cache_lib.model_fingerprint(MODEL)
    video = _video(tmp_path, "part")
    store = build.StoreCacheFn(cache_dir, tmp_dir, fp, MODEL, None)
    store.setup()
    feats = np.random.default_rng(0).uniform(0, 5, (3, 2048)).astype(np.float32)
    out = dict(video, features=feats, frame_times=np.arange(3.0),
               decode_warnings=[PARTIAL], cache_path=None)
    [(vid, fresh)] = list(store.process(("part", out)))
    assert vid == "part" and fresh["decode_warnings"] == [PARTIAL]
    entry = cache_lib.FeatureCache(cache_dir, tmp_dir).load(fresh["cache_path"], "part")
    assert entry["meta"]["decode_warnings"] == [PARTIAL]

    lookup = build.LookupCacheFn(cache_dir, tmp_dir, fp, None, extract=True)
    lookup.setup()
    [(vid, hit)] = list(lookup.process(video))
    assert hit["decode_warnings"] == [PARTIAL]
    np.testing.assert_array_equal(hit["features"], fresh["features"])


def test_written_records_carry_warnings_into_the_counts():
    written = [{"video_id": "b", "split": "train", "frames": 3,
                "decode_warnings": [PARTIAL.replace("2.000", "5.500"), NON_MONOTONIC]},
               {"video_id": "a", "split": "train", "frames": 2, "decode_warnings": [PARTIAL]},
               {"video_id": "c", "split": "test", "frames": 4, "decode_warnings": []}]
    selection = {"rows": {"total": 5, "selected": 4, "excluded": 1,
                          "excluded_by_reason": {"low_views": 1}},
                 "splits": {"train": 3, "test": 1}, "config": {"seed": 0},
                 "inputs": {"videos": "m.csv"}}
    failures = [{"video_id": "d", "uri": "d.mp4", "stage": "decode", "kind": "missing",
                 "error": "gone"}]
    counts = build._counts_render(selection, [{"video_id": "e", "reason": "low_views"}],
                                  failures, written)
    assert counts["manifest_rows"] == 5
    assert counts["written"] + counts["excluded"] + counts["failed"] == 5
    assert counts["splits"] == {"train": {"videos": 2, "frames": 5},
                                "test": {"videos": 1, "frames": 4}}
    # The selection's figures are merged in, without the flags and inputs (kept elsewhere).
    assert counts["selection"] == {"rows": selection["rows"], "splits": selection["splits"]}
    w = counts["decode_warnings"]
    assert w["videos"] == 2 and w["warnings"] == 3
    assert w["by_kind"] == {"non_monotonic": 1, "partial_decode": 2}
    # Numbers are masked: both "stopped at ..." messages are one reason.
    assert w["top_reasons"][0]["count"] == 2 and "stopped at N s" in w["top_reasons"][0]["reason"]
    assert [e["video_id"] for e in w["examples"]] == ["a", "b"]


def test_summary_reports_decode_warnings():
    info = {"output_dir": "OUT", "elapsed_s": 3, "splits": {},
            "accounting": {"written": 2, "excluded": 0, "failed": 0, "total": 2,
                           "manifest_rows": 2, "balanced": True},
            "decode_warnings": {"videos": 2, "by_kind": {"partial_decode": 2}}}
    text = summary_text(info)
    assert "decoded with warnings 2 videos" in text and "partial_decode 2" in text
    info["decode_warnings"] = {"videos": 0, "by_kind": {}}
    assert "warnings" not in summary_text(info)


def test_nothing_written_message_points_at_the_failures():
    counts = {"failed": 2, "excluded": 1,
              "failure_reasons": {"decode: missing": 1, "decode: not_video": 1}}
    msg = build.no_video_written_message("OUT", counts, {"pca": None})
    assert msg.startswith("no video could be written: 2 selected videos failed")
    assert "OUT/failures.jsonl" in msg and "decode: missing 1" in msg
    assert "no train frames to fit the PCA on" in msg
    fitted = build.no_video_written_message("OUT", counts, {"pca": {"rank": 3}})
    assert "no train frames" not in fitted


def test_encode_without_a_fit_is_an_accounted_failure():
    fn = build.EncodeVideoFn()
    fn.setup()
    video = {"video_id": "v", "uri": "v.mp4", "split": "validate",
             "features": np.zeros((2, 2048), np.float32)}
    [out] = list(fn.process(("v", video), None, None))
    assert out.tag == "failures"
    assert out.value["kind"] == "no_train_frames" and out.value["stage"] == "encode"
    assert "train split has fewer than 2 frames" in out.value["error"]
