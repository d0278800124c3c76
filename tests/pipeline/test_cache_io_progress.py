"""Unit tests of the feature cache, the atomic writers and the progress display."""
from __future__ import annotations

import io
import json
import os
import time

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from yt8m import fs
from yt8m.pipeline import cache as cache_lib
from yt8m.pipeline import io as pio
from yt8m.pipeline import progress

MODEL = {"name": "inception_v3", "source": "random", "spec": "random", "path": None,
         "sha256": None, "random": True, "seed": 0}


def _video(tmp_path, name="a.mp4", data=b"x" * 100):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_entry_roundtrip_is_float16_rounded(tmp_path):
    uri = _video(tmp_path)
    c = cache_lib.FeatureCache(str(tmp_path / "cache"), str(tmp_path / "tmp"))
    fp = cache_lib.model_fingerprint(MODEL)
    feats = np.random.default_rng(0).uniform(0, 10, (3, 2048)).astype(np.float32)
    times = np.array([0.0, 1.0, 2.0])
    path = c.store("a", uri, fp, feats, times, MODEL)
    assert path == c.path_for("a", uri, fp)
    entry = c.load(path, "a")
    np.testing.assert_array_equal(entry["features"], cache_lib.as_cached(feats))
    assert entry["features"].dtype == np.float32
    np.testing.assert_array_equal(entry["frame_times"], times)
    assert entry["meta"]["video_id"] == "a" and entry["meta"]["size"] == 100
    # On disk: float16, half the float32 bytes.
    with np.load(path) as z:
        assert z["features"].dtype == np.float16
    # Nothing half-written is left in the temp folder.
    assert os.listdir(tmp_path / "tmp") == []


def test_cached_frames_travel_as_their_path_and_read_back_the_same_values(tmp_path):
    import pickle

    from yt8m.records import Video, VideoFeatures
    uri = _video(tmp_path)
    c = cache_lib.FeatureCache(str(tmp_path / "cache"), str(tmp_path / "tmp"))
    fp = cache_lib.model_fingerprint(MODEL)
    feats = np.random.default_rng(1).uniform(0, 10, (40, 2048)).astype(np.float32)
    path = c.store("a", uri, fp, feats, np.arange(40.0), MODEL)
    frames = cache_lib.CachedFrames.of(path, "a", cache_lib.as_cached(feats))
    vf = VideoFeatures(Video("a", uri), frames, np.arange(40.0), cache_path=path)
    blob = pickle.dumps(vf, protocol=pickle.HIGHEST_PROTOCOL)
    # 40 frames are 320 KB as float32; the pickle carries the path, not the frames.
    assert len(blob) < 2000, len(blob)
    back = pickle.loads(blob)
    assert back.num_frames == 40 and back.features._array is None   # nothing read yet
    np.testing.assert_array_equal(np.asarray(back.features), cache_lib.as_cached(feats))
    assert np.asarray(back.features).dtype == np.float32 and back.features.shape == (40, 2048)
    # Not in the cache: the array itself travels.
    assert cache_lib.CachedFrames.of(None, "a", feats) is feats
    # The entry removed mid-build: a clear error naming the video and what to do.
    os.remove(path)
    with pytest.raises(cache_lib.CacheError, match="'a'.*disappeared.*run the build again"):
        np.asarray(pickle.loads(blob).features)


def test_fingerprint_changes_with_file_and_model(tmp_path):
    uri = _video(tmp_path)
    c = cache_lib.FeatureCache(str(tmp_path / "cache"), str(tmp_path / "tmp"))
    fp = cache_lib.model_fingerprint(MODEL)
    p1 = c.path_for("a", uri, fp)
    other_model = cache_lib.model_fingerprint(dict(MODEL, seed=1))
    assert other_model != fp
    assert c.path_for("a", uri, other_model) != p1
    # Same size, new mtime: another entry (the video changed).
    os.utime(uri, (time.time() + 100, time.time() + 100))
    assert c.path_for("a", uri, fp) != p1
    # The location of the weights file does not matter when its sha256 is known.
    m = dict(MODEL, source="keras-file", random=False, sha256="ab" * 32, path="/x/w.h5")
    assert cache_lib.model_fingerprint(m) == cache_lib.model_fingerprint(dict(m, path="/y/w.h5"))
    assert c.path_for("a", str(tmp_path / "missing.mp4"), fp) is None


def test_entries_for_finds_newest_without_touching_the_video(tmp_path):
    uri = _video(tmp_path)
    c = cache_lib.FeatureCache(str(tmp_path / "cache"), str(tmp_path / "tmp"))
    fp = cache_lib.model_fingerprint(MODEL)
    f = np.ones((2, 2048), np.float32)
    old = c.store("a", uri, fp, f, [0.0, 1.0], MODEL)
    os.utime(uri, (time.time() + 100, time.time() + 100))
    new = c.store("a", uri, fp, 2 * f, [0.0, 1.0], MODEL)
    os.remove(uri)
    assert c.entries_for("a", fp) == [new, old]
    assert c.entries_for("b", fp) == []
    assert c.entries_for("a", cache_lib.model_fingerprint(dict(MODEL, seed=3))) == []


def test_corrupt_or_foreign_entry_is_a_cache_error(tmp_path):
    uri = _video(tmp_path)
    c = cache_lib.FeatureCache(str(tmp_path / "cache"), str(tmp_path / "tmp"))
    fp = cache_lib.model_fingerprint(MODEL)
    path = c.store("a", uri, fp, np.ones((1, 2048)), [0.0], MODEL)
    with pytest.raises(cache_lib.CacheError, match="not 'b'"):
        c.load(path, "b")
    with open(path, "wb") as fh:
        fh.write(b"truncated")
    with pytest.raises(cache_lib.CacheError, match="unreadable"):
        c.load(path, "a")


def test_safe_id_hashes_unsafe_ids():
    assert cache_lib.safe_id("abc_D-1") == "abc_D-1"
    for bad in ("../etc", "a/b", "é", ".hidden", "x" * 200):
        s = cache_lib.safe_id(bad)
        assert "/" not in s and s.startswith("h") and len(s) == 33


def test_atomic_write_and_publish(tmp_path):
    staging, out = str(tmp_path / "stage"), str(tmp_path / "out")
    for name in ("train-00000-of-00002", "train-00001-of-00002", "test-00000-of-00001"):
        fs.atomic_write(fs.join(staging, "frame", name + ".tfrecord"), b"abc")
    fs.atomic_write(fs.join(staging, "failures.jsonl"), "")
    # A stale shard of an earlier build with more shards must disappear.
    fs.atomic_write(fs.join(out, "frame", "train-00002-of-00003.tfrecord"), b"old")
    sizes = pio.publish(staging, out, ["failures.jsonl"])
    assert sorted(os.listdir(tmp_path / "out" / "frame")) == [
        "test-00000-of-00001.tfrecord", "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord"]
    assert sizes["frame/train"] == {"files": 2, "bytes": 6}
    assert sizes["video/validate"] == {"files": 0, "bytes": 0}
    assert (tmp_path / "out" / "failures.jsonl").exists()
    with pytest.raises(FileNotFoundError, match="did not stage 'counts.json'"):
        pio.publish(staging, out, ["counts.json"])


def test_atomic_write_replaces_without_deleting_first(tmp_path, monkeypatch):
    path = str(tmp_path / "a" / "f.json")
    fs.atomic_write(path, "old")
    deleted = []
    monkeypatch.setattr(fs.FileSystems, "delete", lambda paths: deleted.extend(paths))
    fs.atomic_write(path, "new")
    assert open(path).read() == "new" and deleted == []
    # Nothing but the file itself is left beside it.
    assert os.listdir(tmp_path / "a") == ["f.json"]


def test_publish_tree_moves_every_staged_file(tmp_path):
    staged, out = str(tmp_path / "stage"), str(tmp_path / "out")
    for rel in ("vocabulary.csv", "stats/selection.json", "private/test_labels.csv"):
        fs.atomic_write(fs.join(staged, rel), rel)
    fs.atomic_write(fs.join(out, "vocabulary.csv"), "the previous selection's")
    moved = pio.publish_tree(staged, out)
    assert sorted(os.path.relpath(p, out) for p in moved) == [
        "private/test_labels.csv", "stats/selection.json", "vocabulary.csv"]
    assert (tmp_path / "out" / "vocabulary.csv").read_text() == "vocabulary.csv"
    assert not [p for p in (tmp_path / "stage").rglob("*") if p.is_file()]


def test_write_sorted_lines_is_sorted_and_written_when_empty(tmp_path):
    path = str(tmp_path / "f.jsonl")
    empty = str(tmp_path / "empty.jsonl")
    ids = [f"v{i:03d}" for i in range(200)]
    shuffled = list(np.random.default_rng(0).permutation(ids))
    with BeamTestPipeline(runner="FnApiRunner") as p:
        _ = (p | "Items" >> beam.Create([(str(v), json.dumps({"video_id": str(v)}))
                                         for v in shuffled] + [("w\u00e9", "\u00e9t\u00e9")])
             | "W" >> pio.WriteSortedLines(path, str(tmp_path / "sort"), buckets=4))
        written = (p | "None" >> beam.Create([]) | "W2" >> pio.WriteSortedLines(
            empty, str(tmp_path / "sort2")))
        assert_that(written, equal_to([empty]))
    lines = open(path, encoding="utf-8").read().splitlines()
    assert [json.loads(x)["video_id"] for x in lines[:-1]] == ids
    assert lines[-1] == "\u00e9t\u00e9"              # UTF-8, not escaped
    assert open(empty).read() == ""


def test_write_sorted_lines_sizes_its_buckets_from_the_data_and_keeps_the_bytes(tmp_path):
    # Buckets hold about lines_per_bucket lines however many lines come (memory
    # per worker stays bounded); the bucket count does not change the file.
    assert pio.sort_bucket_count(0) == pio.SORT_BUCKETS
    assert pio.sort_bucket_count(10, min_buckets=2, lines_per_bucket=3) == 4
    assert pio.sort_bucket_count(10**7) == 10**7 // pio.SORT_LINES_PER_BUCKET
    items = [(f"v{i:04d}", json.dumps({"video_id": f"v{i:04d}"}))
             for i in np.random.default_rng(1).permutation(300)]
    paths = {name: str(tmp_path / f"{name}.jsonl") for name in ("few", "many")}
    with BeamTestPipeline(runner="FnApiRunner") as p:
        src = p | "Items" >> beam.Create(items)
        _ = src | "Few" >> pio.WriteSortedLines(paths["few"], str(tmp_path / "s1"), buckets=1,
                                                lines_per_bucket=10**6)
        _ = src | "Many" >> pio.WriteSortedLines(paths["many"], str(tmp_path / "s2"),
                                                 buckets=1, lines_per_bucket=7)
    runs = [f for f in os.listdir(tmp_path / "s2") if ".run-" in f]
    assert len(runs) > 30                      # 300 lines / 7 per bucket: ~43 buckets
    data = open(paths["many"], "rb").read()
    assert data == open(paths["few"], "rb").read() and data.count(b"\n") == 300
    with pytest.raises(ValueError, match="lines_per_bucket"):
        pio.WriteSortedLines("f", "t", lines_per_bucket=0)


def test_progress_log_and_render(tmp_path):
    folder = str(tmp_path / "progress")
    log = progress.ProgressLog(folder)
    log.record("total", 4)
    log.record("cached", 5)
    log.record("extracted", 10)
    log.record("failed")
    with pytest.raises(ValueError, match="unknown progress event"):
        log.record("done")
    state = progress.read_progress(folder)
    assert state["videos"] == {"total": 4, "cached": 1, "extracted": 1, "failed": 1}
    assert state["frames"]["extracted"] == 10
    line = progress.render_line(state, elapsed=5.0)
    assert "3/4 videos" in line and "2.0 frames/s" in line and "left 00:05" in line
    progress.ProgressLog(None).record("cached", 1)  # no folder: a no-op


def test_monitor_prints_plain_lines_when_not_a_tty(tmp_path):
    folder = str(tmp_path / "p")
    progress.ProgressLog(folder).record("total", 2)
    buf = io.StringIO()
    with progress.ProgressMonitor(folder, stream=buf, interval_s=0.01):
        progress.ProgressLog(folder).record("extracted", 3)
        time.sleep(0.05)
    out = buf.getvalue().splitlines()
    assert out and all(x.startswith("progress: ") for x in out)
    assert "1/2 videos" in out[-1]
