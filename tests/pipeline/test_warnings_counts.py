"""Decode warnings from extraction to dataset_info.json, the counts of a build, and
what a build that wrote nothing says (the stages' DoFns and pure parts, without a pipeline)."""
from __future__ import annotations

import numpy as np

from yt8m.pipeline import cache as cache_lib
from yt8m.pipeline import counts as counts_lib
from yt8m.pipeline import encode, features, report
from yt8m.records import (DecodeWarning, ExcludedRow, FailureRecord, Video, VideoFeatures,
                          WrittenVideo)

MODEL = {"name": "inception_v3", "source": "random", "spec": "random", "path": None,
         "sha256": None, "random": True, "seed": 0}
PARTIAL = DecodeWarning("partial_decode", (
    "decoding stopped at 2.000 s (InvalidDataError: Invalid data found when "
    "processing input); the frames decoded until then were kept"))
NON_MONOTONIC = DecodeWarning("non_monotonic", "1 frames had timestamps earlier than the "
                                               "frame before them (non-monotonic) and were "
                                               "skipped")


def _video(tmp_path, vid):
    path = tmp_path / f"{vid}.mp4"
    path.write_bytes(b"x" * 64)
    return Video(vid, str(path), split="train", labels=(0,))


def test_decode_warnings_are_cached_as_dicts_and_read_back(tmp_path):
    # Extraction -> StoreCacheFn -> cache entry meta -> LookupCacheFn on the rerun.
    cache_dir, tmp_dir = str(tmp_path / "cache"), str(tmp_path / "tmp")
    fp = cache_lib.model_fingerprint(MODEL)
    video = _video(tmp_path, "part")
    store = features.StoreCacheFn(cache_dir, tmp_dir, fp, MODEL, None)
    store.setup()
    feats = np.random.default_rng(0).uniform(0, 5, (3, 2048)).astype(np.float32)
    extracted = VideoFeatures(video, feats, np.arange(3.0), decode_warnings=(PARTIAL,))
    [fresh] = list(store.process(extracted))
    assert fresh.video == video and fresh.decode_warnings == (PARTIAL,)
    np.testing.assert_array_equal(fresh.features, cache_lib.as_cached(feats))
    entry = cache_lib.FeatureCache(cache_dir, tmp_dir).load(fresh.cache_path, "part")
    assert entry["meta"]["decode_warnings"] == [PARTIAL.to_dict()]

    lookup = features.LookupCacheFn(cache_dir, tmp_dir, fp, None, extract=True)
    lookup.setup()
    [hit] = list(lookup.process(video))
    assert isinstance(hit, VideoFeatures) and hit.decode_warnings == (PARTIAL,)
    np.testing.assert_array_equal(hit.features, fresh.features)


def test_written_records_carry_warnings_into_the_counts():
    written = [WrittenVideo("b", "train", 3, (DecodeWarning(
                   "partial_decode", PARTIAL.message.replace("2.000", "5.500")), NON_MONOTONIC)),
               WrittenVideo("a", "train", 2, (PARTIAL,)),
               WrittenVideo("c", "test", 4, ())]
    selection = {"rows": {"total": 5, "selected": 4, "excluded": 1,
                          "excluded_by_reason": {"low_views": 1}},
                 "splits": {"train": 3, "test": 1}, "config": {"seed": 0},
                 "inputs": {"videos": "m.csv"}}
    failures = [FailureRecord("d", "d.mp4", "decode", "missing", "gone")]
    excluded = [ExcludedRow("e", 3, "low_views")]
    # Merged in two halves, in another order: the same counts as adding one by one.
    items = written + failures + excluded
    half = counts_lib.Counts.of(items[3:]).merge(counts_lib.Counts.of(items[:3]))
    counts = half.to_dict(selection)
    assert counts == counts_lib.Counts.of(items).to_dict(selection)
    assert counts["manifest_rows"] == 5
    assert counts["written"] + counts["excluded"] + counts["failed"] == 5
    assert counts["splits"] == {"train": {"videos": 2, "frames": 5},
                                "test": {"videos": 1, "frames": 4}}
    assert counts["failure_reasons"] == {"decode: missing": 1}
    assert counts["excluded_reasons"] == {"low_views": 1}
    # The selection's figures are merged in, without the flags and inputs (kept elsewhere).
    assert counts["selection"] == {"rows": selection["rows"], "splits": selection["splits"]}
    w = counts["decode_warnings"]
    assert w["videos"] == 2 and w["warnings"] == 3
    # Counted by the decoder's own kind, not by words in the message.
    assert w["by_kind"] == {"non_monotonic": 1, "partial_decode": 2}
    # Numbers are masked: both "stopped at ..." messages are one reason.
    assert w["top_reasons"][0]["count"] == 2 and "stopped at N s" in w["top_reasons"][0]["reason"]
    assert [e["video_id"] for e in w["examples"]] == ["a", "b"]
    assert w["examples"][0]["warnings"] == [PARTIAL.to_dict()]


def test_warning_examples_stay_bounded():
    counts = counts_lib.Counts()
    for i in reversed(range(50)):
        counts.add(WrittenVideo(f"v{i:02d}", "train", 1, (PARTIAL,)))
    w = counts.decode_warnings()
    assert w["videos"] == 50 and len(counts.examples) == counts_lib.EXAMPLES
    assert [e["video_id"] for e in w["examples"]] == [f"v{i:02d}" for i in range(5)]
    assert len(counts.warning_reasons) == 1


def test_summary_reports_decode_warnings():
    info = {"output_dir": "OUT", "elapsed_s": 3, "splits": {},
            "accounting": {"written": 2, "excluded": 0, "failed": 0, "total": 2,
                           "manifest_rows": 2, "balanced": True},
            "decode_warnings": {"videos": 2, "by_kind": {"partial_decode": 2}}}
    text = report.summary_text(info)
    assert "decoded with warnings 2 videos" in text and "partial_decode 2" in text
    info["decode_warnings"] = {"videos": 0, "by_kind": {}}
    assert "warnings" not in report.summary_text(info)


def test_nothing_written_message_points_at_the_failures():
    counts = {"failed": 2, "excluded": 1,
              "failure_reasons": {"decode: missing": 1, "decode: not_video": 1}}
    msg = report.no_video_written_message("OUT", counts, {"pca": None})
    assert msg.startswith("no video could be written: 2 selected videos failed")
    assert "OUT/failures.jsonl" in msg and "decode: missing 1" in msg
    assert "no train frames to fit the PCA on" in msg
    fitted = report.no_video_written_message("OUT", counts, {"pca": {"rank": 3}})
    assert "no train frames" not in fitted


def test_encode_without_a_fit_is_an_accounted_failure():
    fn = encode.EncodeVideoFn()
    fn.setup()
    video = VideoFeatures(Video("v", "v.mp4", split="validate", labels=(1,)),
                          np.zeros((2, 2048), np.float32), np.arange(2.0))
    [out] = list(fn.process(video, None, None))
    assert out.tag == "failures" and isinstance(out.value, FailureRecord)
    assert out.value.kind == "no_train_frames" and out.value.stage == "encode"
    assert "train split has fewer than 2 frames" in out.value.error


def test_test_split_records_carry_no_labels():
    def labels(split, given=(3, 1)):
        return encode.record_labels(VideoFeatures(Video("v", "v.mp4", split=split,
                                                        labels=given),
                                                  np.zeros((1, 2048)), np.zeros(1)))
    assert labels("train") == [3, 1] and labels("validate") == [3, 1]
    assert labels("test") is None
    assert labels(None, given=None) is None      # extract: a manifest row without labels
