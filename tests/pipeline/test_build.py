"""Integration test of ``build`` (issue 6, "Done when"), on the local FnApiRunner.

One small corpus (good videos of two classes, a file of random bytes, a missing
file, rows the rules exclude) is built once with random Inception weights; the
tests then read every output back with pipeline.schema and check the schema,
the counts, the accounting, that test labels stay private, that ``extract
--artifacts`` reproduces the build's bytes, that ``resplit`` decodes nothing
and that a build killed with SIGKILL and rerun equals the uninterrupted one.
"""
from __future__ import annotations

import csv
import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from yt8m.pipeline import schema
from yt8m.pipeline.demo import make_corpus

ROOT = Path(__file__).resolve().parents[2]
VOCAB_FLAGS = ["--min_views", "1000", "--min_duration_s", "1", "--min_videos_per_entity", "2"]
SPLITS = ("train", "validate", "test")


def build_argv(corpus, out, *extra):
    # Batch size 1: TensorFlow's CPU kernels give a frame's features that differ in
    # the last bits depending on which frames share its batch, and a resumed
    # build batches differently. With one frame per call the features depend on
    # the frame only, so the byte-for-byte comparison tests the pipeline.
    return ["--videos", corpus.manifest, "--entities", corpus.entities,
            "--ratings", corpus.ratings, "--output_dir", str(out), "--weights", "random",
            "--batch_size", "1", "--no_progress", *VOCAB_FLAGS, *extra]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return make_corpus(str(folder), n_videos=8, duration_s=3.0, width=64, height=48, fps=5.0,
                       classes=["red_circle", "stripes"])


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
    from yt8m.pipeline.cli import build_main
    out = tmp_path_factory.mktemp("build") / "out"
    rc = build_main(build_argv(corpus, out))
    assert rc == 0
    return out


def frame_records(out, split):
    return [schema.parse_frame_example(r)
            for r in schema.read_records(str(out / "frame" / f"{split}-*-of-*.tfrecord"))]


def video_records(out, split):
    return [schema.parse_video_example(r)
            for r in schema.read_records(str(out / "video" / f"{split}-*-of-*.tfrecord"))]


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def raw_records(out):
    """{(kind, split): sorted serialized records}: the dataset's content, shard layout aside."""
    return {(kind, split): sorted(schema.read_records(
        str(out / kind / f"{split}-*-of-*.tfrecord")))
        for kind in ("frame", "video") for split in SPLITS}


def test_schema_counts_and_accounting(built, corpus):
    info = json.loads((built / "dataset_info.json").read_text())
    splits = {r["video_id"]: r for r in read_csv(built / "splits.csv")}
    written = {}
    for split in SPLITS:
        frames, videos = frame_records(built, split), video_records(built, split)
        assert [f.video_id for f in frames] and sorted(f.video_id for f in frames) == \
            sorted(v.video_id for v in videos)
        for f in frames:
            assert f.rgb.dtype == np.uint8 and f.rgb.shape == (corpus.frames_per_video, 1024)
            assert splits[f.video_id]["split"] == split
            written[f.video_id] = split
        for v in videos:
            assert v.mean_rgb.shape == (1024,) and np.isfinite(v.mean_rgb).all()
        c = info["splits"][split]
        assert c["videos"] == len(frames)
        assert c["frames"] == sum(len(f.rgb) for f in frames)
        shard_bytes = sum(os.path.getsize(p) for p in glob.glob(str(built / "*" / f"{split}-*")))
        assert c["bytes"] == shard_bytes > 0
    assert sorted(written) == sorted(corpus.good)
    # Labels: train/validate records carry the vocabulary Index values of splits.csv.
    for split in ("train", "validate"):
        for f in frame_records(built, split):
            assert f.labels and f.labels == [int(x) for x in
                                             splits[f.video_id]["labels"].split(";")]
    failures = [json.loads(x) for x in (built / "failures.jsonl").read_text().splitlines()]
    assert sorted(f["video_id"] for f in failures) == sorted(corpus.broken)
    assert all(f["stage"] == "decode" and f["error"] and f["uri"] for f in failures)
    excluded = read_csv(built / "excluded.csv")
    assert sorted(e["video_id"] for e in excluded) == sorted(corpus.excluded)
    acc = info["accounting"]
    n_rows = len(read_csv(corpus.manifest))
    assert acc == {"manifest_rows": n_rows, "written": len(corpus.good),
                   "excluded": len(corpus.excluded), "failed": len(corpus.broken),
                   "total": n_rows, "balanced": True}
    # The manifest is read once, by the selection: its accounting is merged in.
    sel = info["selection"]
    assert sel["rows"]["total"] == n_rows and sel["rows"]["excluded"] == len(corpus.excluded)
    assert sum(sel["splits"].values()) == len(corpus.good) + len(corpus.broken)
    # Generated videos decode cleanly: no decode warnings to report.
    assert info["decode_warnings"]["videos"] == 0 and info["decode_warnings"]["by_kind"] == {}
    # Every manifest row is in exactly one place.
    places = list(written) + [f["video_id"] for f in failures] + [e["video_id"]
                                                                   for e in excluded]
    assert sorted(places) == sorted(r["video_id"] for r in read_csv(corpus.manifest))
    assert info["cache"]["extracted"] == len(corpus.good) and info["cache"]["hits"] == 0
    assert info["counters"]["failed_decode"] == len(corpus.broken)
    assert info["entities"] == len(read_csv(built / "vocabulary.csv"))
    assert info["model"]["random"] is True and info["weights"]["spec"] == "random"
    for name in ("pca.npz", "quantizer.npz", "quality.json", "model.json"):
        assert (built / "artifacts" / name).stat().st_size > 0
    assert not (built / ".tmp" / "build").exists()
    # The build's inputs are kept (privately) for resplit.
    assert (built / "private" / "inputs" / "manifest.csv").read_bytes() == \
        Path(corpus.manifest).read_bytes()


def test_test_labels_are_private(built):
    test_ids = {f.video_id for f in frame_records(built, "test")}
    assert test_ids
    assert all(f.labels is None for f in frame_records(built, "test"))
    assert all(v.labels is None for v in video_records(built, "test"))
    private = read_csv(built / "private" / "test_labels.csv")
    # Every selected test video (written or failed later) has its labels here.
    selected_test = {r["video_id"] for r in read_csv(built / "splits.csv") if r["split"] == "test"}
    assert test_ids <= selected_test
    assert {r["video_id"] for r in private} == selected_test
    assert all(r["labels"] for r in private)
    assert all(not r["labels"] for r in read_csv(built / "splits.csv") if r["split"] == "test")
    secret = {(r["video_id"], r["labels"]) for r in private}
    for path in built.rglob("*"):
        rel = path.relative_to(built)
        if not path.is_file() or rel.parts[0] in ("private", "cache"):
            continue
        if path.suffix in (".csv", ".jsonl", ".json"):
            text = path.read_text(encoding="utf-8")
            for vid, labels in secret:
                for line in text.splitlines():
                    if vid in line:
                        assert labels not in line.split(",")[2:], (rel, line)


def test_cache_is_float16_and_keyed_by_video(built, corpus):
    entries = sorted(glob.glob(str(built / "cache" / "*" / "*.npz")))
    assert len(entries) == len(corpus.good)
    for path in entries:
        with np.load(path) as z:
            assert z["features"].dtype == np.float16
            assert z["features"].shape == (corpus.frames_per_video, 2048)
            meta = json.loads(str(z["meta"]))
        assert os.path.basename(path).startswith(meta["video_id"] + "-")


def test_extract_with_artifacts_gives_the_build_bytes(built, corpus, tmp_path):
    from yt8m import cli as run_pipeline
    vid = next(iter(f.video_id for f in frame_records(built, "train")))
    manifest = tmp_path / "one.csv"
    manifest.write_text(f"video_id,uri\n{vid},{Path(corpus.folder) / 'videos' / (vid + '.mp4')}\n")
    rc = run_pipeline.main(["extract", "--videos", str(manifest), "--output_dir",
                            str(tmp_path / "ext"), "--weights", "random", "--batch_size", "1",
                            "--artifacts", str(built / "artifacts")])
    assert rc == 0
    got = [schema.parse_frame_example(r)
           for r in schema.read_records(str(tmp_path / "ext" / "frame-*.tfrecord"))]
    assert [g.video_id for g in got] == [vid]
    want = next(f for f in frame_records(built, "train") if f.video_id == vid)
    assert got[0].rgb.tobytes() == want.rgb.tobytes()
    got_v = [schema.parse_video_example(r)
             for r in schema.read_records(str(tmp_path / "ext" / "video-*.tfrecord"))]
    want_v = next(v for v in video_records(built, "train") if v.video_id == vid)
    np.testing.assert_array_equal(got_v[0].mean_rgb, want_v.mean_rgb)


def test_resplit_decodes_nothing(built, corpus, tmp_path, monkeypatch):
    from yt8m.pipeline.cli import resplit_main
    videos = Path(corpus.folder) / "videos"
    hidden = Path(corpus.folder) / "videos_hidden"
    # Resplit must not need the videos at all: move them away, and make any
    # decode attempt in this process fail loudly.
    import yt8m.extractor.decode as decode

    def no_decode(*a, **k):
        raise AssertionError("resplit decoded a video")
    monkeypatch.setattr(decode, "sample_frames", no_decode)
    videos.rename(hidden)
    try:
        rc = resplit_main(["--from", str(built), "--output_dir", str(tmp_path / "re"),
                           "--seed", "7", "--no_progress"])
    finally:
        hidden.rename(videos)
    assert rc == 0
    out = tmp_path / "re"
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["cache"] == {"hits": len(corpus.good), "extracted": 0, "frames_extracted": 0}
    assert info["resplit_from"] == str(built)
    assert info["flags"]["vocab"]["seed"] == 7
    assert info["flags"]["vocab"]["min_videos_per_entity"] == 2  # inherited from the build
    # Same videos, other splits (seed 7), all written, accounting balanced.
    new = {r["video_id"]: r["split"] for r in read_csv(out / "splits.csv")}
    old = {r["video_id"]: r["split"] for r in read_csv(built / "splits.csv")}
    assert sorted(new) == sorted(old) and new != old
    assert info["accounting"]["balanced"] and info["accounting"]["written"] == len(corpus.good)
    for split in SPLITS:
        assert {f.video_id for f in frame_records(out, split)} == \
            {v for v, s in new.items() if s == split and v in corpus.good}
    # The PCA was refit on the new train split.
    with np.load(built / "artifacts" / "pca.npz") as a, np.load(out / "artifacts" / "pca.npz") as b:
        assert not np.allclose(a["mean"], b["mean"])


def test_killed_and_rerun_build_equals_uninterrupted(built, corpus, tmp_path):
    from yt8m.pipeline.cli import build_main
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_pipeline.py"), "build",
                             *build_argv(corpus, out)], cwd=str(ROOT), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if glob.glob(str(out / "cache" / "*" / "*.npz")):
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the build ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Killed: no dataset_info.json, no shard in the published folders.
    assert not (out / "dataset_info.json").exists()
    assert not glob.glob(str(out / "frame" / "*")) + glob.glob(str(out / "video" / "*"))
    # Whatever the kill hit, the cache holds whole entries only; drop half of
    # them, as if the kill had come earlier in the extraction.
    entries = sorted(glob.glob(str(out / "cache" / "*" / "*.npz")))
    for path in entries[::2]:
        os.remove(path)
    kept = len(entries) - len(entries[::2])
    assert build_main(build_argv(corpus, out)) == 0
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["cache"]["hits"] == kept
    assert info["cache"]["extracted"] == len(corpus.good) - kept
    assert raw_records(out) == raw_records(built)
    for name in ("vocabulary.csv", "splits.csv", "excluded.csv", "failures.jsonl"):
        assert (out / name).read_bytes() == (built / name).read_bytes(), name
    for name in ("pca.npz", "quantizer.npz"):
        with np.load(out / "artifacts" / name) as a, np.load(built / "artifacts" / name) as b:
            for key in a.files:
                np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-6)
    assert not (out / ".tmp" / "build").exists()


def test_build_writes_thumbnails_from_its_own_decode(built, corpus):
    """--thumbnails (build default 4): JPEG strips beside the cache, counted in dataset_info."""
    from yt8m.pipeline import thumbnails as TH
    info = json.loads((built / "dataset_info.json").read_text())
    assert info["flags"]["thumbnails"] == 4
    strips = {vid: TH.read_strip(str(built / "cache"), vid) for vid in corpus.good}
    assert all(s is not None for s in strips.values()), strips
    for vid, strip in strips.items():
        # 3 s at 1 fps: 3 samples, so at most 3 thumbnails; upright, aspect kept (64x48).
        assert 1 <= strip.n <= 4 and strip.video_id == vid
        assert strip.width * 48 == strip.height * 64
    t = info["thumbnails"]
    assert t["per_video"] == 4 and t["write_failures"] == 0
    assert t["videos_written"] == len(corpus.good)
    assert t["images_written"] == sum(s.n for s in strips.values())


def test_dataset_info_records_decode_and_precision(built, corpus):
    info = json.loads((built / "dataset_info.json").read_text())
    d = info["decode"]
    assert d["requested_device"] == "cpu" and d["device_fallbacks"] == 0
    assert d["videos_by_device"] == {"cpu": len(corpus.good)}
    assert d["packets"] == d["packets_decoded"] + d["packets_skipped"] > 0
    assert d["frames_decoded"] >= len(corpus.good) * corpus.frames_per_video
    model = json.loads((built / "artifacts" / "model.json").read_text())
    assert model["precision"] == info["model"]["precision"] == "float32"
    assert info["flags"]["precision"] == "float32"


def test_precision_is_part_of_the_cache_key(corpus, tmp_path):
    from yt8m.pipeline.cache import model_fingerprint
    from yt8m.pipeline.cli import parse_build_args
    from yt8m.pipeline.launch import resolve_model_info
    keys = {}
    for p in ("float32", "bfloat16", "float16"):
        cfg, _ = parse_build_args(build_argv(corpus, tmp_path / p, "--precision", p))
        info = resolve_model_info(cfg)
        assert info["precision"] == p and cfg.extraction(info).precision == p
        keys[p] = model_fingerprint(info)
    assert len(set(keys.values())) == 3
    cfg, _ = parse_build_args(build_argv(corpus, tmp_path / "auto", "--precision", "auto"))
    assert resolve_model_info(cfg)["precision"] in ("float32", "bfloat16", "float16")


@pytest.mark.parametrize("extra, needle", [
    (["--thumbnails", "-1"], "--thumbnails must be a whole number"),
    (["--thumbnails", "99"], "--thumbnails must be a whole number"),
])
def test_bad_decode_flags_are_usage_errors(corpus, tmp_path, extra, needle):
    from yt8m.pipeline.cli import parse_build_args
    with pytest.raises(ValueError, match=needle):
        parse_build_args(build_argv(corpus, tmp_path / "o", *extra))


def test_build_decode_flags_reach_the_extraction(corpus, tmp_path):
    from yt8m.pipeline.cli import parse_build_args
    cfg, _ = parse_build_args(build_argv(corpus, tmp_path / "o", "--thumbnails", "0",
                                         "--decode_device", "cuda"))
    s = cfg.extraction({"precision": "float32"})
    assert (s.thumbnails, s.decode_device, cfg.flags()["decode_device"]) == (0, "cuda", "cuda")
