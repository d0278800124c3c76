"""Runner faults: a bundle that fails after its side effects, and bundles executed twice,
never write a video twice.

Beam runs a bundle at least once: Dataflow retries a failed bundle on another
worker, after that bundle may already have written files. Two ways to show it
on the local FnApiRunner (``retried_build`` in conftest.py):

1. ``StoreCacheFn`` is made to fail on its first call, *after* it wrote the
   video's cache entry and before its outputs were committed (a worker that
   dies at the worst moment). The FnApiRunner does not retry bundles itself: the
   run fails, and the rerun (the retry, as a local user or a job restart does
   it) must reuse that entry rather than write a second one.
2. The rerun uses ``--direct_runner_bundle_repeat=1``: the runner executes every
   bundle of every step twice and keeps only the second attempt's outputs,
   which is what a retried bundle looks like to the DoFns (cache writes, staged
   TFRecords, small files, counters).

Each video must then appear once in the published records and once in the cache,
and the counts must match the records.
"""
from __future__ import annotations

from tests.reliability.conftest import (cache_entries, published, read_csv, read_failures,
                                        read_info)


def test_first_attempt_failed_after_writing_a_cache_entry(retried_build):
    assert "injected worker failure" in retried_build.first_error, retried_build.first_error
    assert len(retried_build.entries_after_failure) == 1
    assert not retried_build.published_after_failure


def test_rerun_with_replayed_bundles_writes_each_video_once(retried_build, jsonl_corpus):
    assert retried_build.rc == 0, retried_build.stderr
    data = published(retried_build.out)     # asserts no video twice in any shard
    written = sorted(vid for recs in (data[("frame", s)] for s in ("train", "validate",
                                                                    "test")) for vid in recs)
    assert written == sorted(jsonl_corpus.good)
    video_level = sorted(vid for (kind, _), recs in data.items() if kind == "video"
                         for vid in recs)
    assert video_level == written
    assert read_failures(retried_build.out) == []
    splits = read_csv(retried_build.out / "splits.csv")
    assert sorted(r["video_id"] for r in splits) == sorted(jsonl_corpus.good)


def test_each_video_is_cached_once_and_the_entry_of_the_failed_attempt_is_reused(
        retried_build, jsonl_corpus):
    entries = cache_entries(retried_build.out)
    assert sorted(entries) == sorted(jsonl_corpus.good)
    assert all(len(paths) == 1 for paths in entries.values()), entries
    (vid, paths), = retried_build.entries_after_failure.items()
    assert entries[vid] == paths          # the same file, not a second entry
    # No temp file of either attempt is left where the cache is read.
    import glob
    assert not [p for p in glob.glob(str(retried_build.out / "cache" / "**" / "*"),
                                     recursive=True) if p.endswith(".part")]


def test_counts_match_the_records_despite_replays(retried_build, jsonl_corpus):
    info = read_info(retried_build.out)
    acc = info["accounting"]
    assert acc["written"] == len(jsonl_corpus.good) and acc["failed"] == 0
    assert acc["balanced"] and acc["manifest_rows"] == jsonl_corpus.rows
    frames = sum(len(r.rgb) for (kind, _), recs in published(retried_build.out).items()
                 if kind == "frame" for r in recs.values())
    assert sum(s["frames"] for s in info["splits"].values()) == frames
    # Every video is counted once, as a cache hit or an extraction, never twice:
    # a replayed bundle's counter increments are not counted twice. (Lookup,
    # extraction and the cache write are one fused stage, so the discarded
    # attempt of a replayed bundle may already have cached a video that the
    # kept attempt then reads back as a hit.)
    hits, extracted = info["cache"]["hits"], info["cache"]["extracted"]
    assert hits + extracted == len(jsonl_corpus.good)
    assert hits >= 1  # at least the entry written before the injected failure
