"""Shared inputs and builds of the reliability suite (issue 8).

Builds are the expensive part (a random-weight Inception-v3 on 2 cores), so the
suite makes few of them and asserts a lot on each:

- ``hostile``: one corpus that mixes every kind of bad video and bad manifest
  row with four good videos (64x48, 2 s); ``hostile_build`` is its build
  (``run_pipeline.py build`` in this process, so that the fault-injecting
  filesystems of tests/media.py and faults.py are registered), shared by the
  bad-video, bad-metadata, timeout and determinism tests.
- readers that parse every published output back (``published``), and
  ``every_shard_is_whole`` for the killed-run checks.
"""
from __future__ import annotations

import contextlib
import csv
import glob
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SPLITS = ("train", "validate", "test")
ENTITY = "/m/rel_thing"
UNKNOWN_ENTITY = "/m/not_in_the_catalog"
# The selection rules are not under test here: every well-formed row passes them.
VOCAB_FLAGS = ["--min_views", "1000", "--min_duration_s", "0", "--max_duration_s", "500",
               "--min_videos_per_entity", "2"]
# Long enough that a 64x48 video never hits it on a loaded machine; the
# hanging video costs this much (plus the watchdog's grace) per build.
DECODE_TIMEOUT_S = 8.0
RUNNING_AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass
class Corpus:
    folder: str
    manifest: str
    entities: str
    rows: int = 0                                     # data rows in the manifest
    good: list = field(default_factory=list)          # written, nothing special
    kept: dict = field(default_factory=dict)          # id -> frames the decode policy keeps
    failed: dict = field(default_factory=dict)        # id -> expected failure kind
    excluded: dict = field(default_factory=dict)      # id -> expected exclusion reason
    excluded_without_id: int = 0                      # rows with no usable video_id
    uris: dict = field(default_factory=dict)          # id -> uri

    def argv(self, out, *extra) -> list:
        return ["--videos", self.manifest, "--entities", self.entities,
                "--output_dir", str(out), "--weights", "random", "--batch_size", "8",
                "--no_progress", "--decode_timeout_s", str(DECODE_TIMEOUT_S),
                *VOCAB_FLAGS, *extra]


def ids_per_split(prefix: str, want: dict) -> list[str]:
    """Video ids named ``prefix0000...`` whose hash split gives ``want`` ids per split."""
    from yt8m.vocab import rules
    from yt8m.vocab.config import VocabConfig
    cfg = VocabConfig(min_duration_s=0)
    got = {s: [] for s in want}
    i = 0
    while any(len(got[s]) < want[s] for s in want):
        vid = f"{prefix}{i:04d}"
        s = rules.split_of(vid, cfg)
        if s in got and len(got[s]) < want[s]:
            got[s].append(vid)
        i += 1
    return sorted(v for ids in got.values() for v in ids)


def write_entities(path: str) -> str:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["kg_id", "name", "types", "vertical", "description", "wiki_url"])
        w.writerow([ENTITY, "Thing", "Visual Object", "Arts & Entertainment", "a thing", ""])
    return path


def arm_filesystems(corpus: Corpus) -> None:
    """Point the test filesystems at this corpus (other rooms' fixtures move them)."""
    from tests.media import FakeRemoteFileSystem
    from tests.reliability.faults import BUILD_HANG_LIMIT_S, HangingFileSystem
    remote = os.path.join(corpus.folder, "remote")
    FakeRemoteFileSystem.root = remote
    FakeRemoteFileSystem.faults = {FakeRemoteFileSystem.uri("forbidden.mp4"):
                                   {"permission": True}}
    if HangingFileSystem.root != remote:
        HangingFileSystem.reset(remote, BUILD_HANG_LIMIT_S)


def make_hostile_corpus(folder: str) -> Corpus:
    """Good videos, every bad video of issue 8, and every bad manifest row, in one CSV."""
    from tests import media
    os.makedirs(os.path.join(folder, "videos"), exist_ok=True)
    os.makedirs(os.path.join(folder, "remote"), exist_ok=True)
    v = lambda name: os.path.join(folder, "videos", name)  # noqa: E731
    c = Corpus(folder=folder, manifest=os.path.join(folder, "manifest.csv"),
               entities=write_entities(os.path.join(folder, "entities.csv")))

    # Good videos: 2 train, 1 validate, 1 test (the PCA needs train frames).
    for vid in ids_per_split("good", {"train": 2, "validate": 1, "test": 1}):
        media.write_video(v(f"{vid}.mp4"), fps=5, duration_s=2.0)
        c.good.append(vid)
        c.uris[vid] = v(f"{vid}.mp4")

    # Bad videos that must fail, with the failure kind docs/decoding.md gives.
    src_mp4 = media.write_video(v("src.mp4"), fps=5, duration_s=2.0).path
    src_mkv = media.write_video(v("src.mkv"), fps=10, duration_s=2.0).path
    failing = {
        "bad_truncated_mp4": (media.truncate_file(src_mp4, v("truncated.mp4"), 0.5),
                              "not_video"),
        "bad_random_bytes": (media.write_random_bytes(v("random.mp4")), "not_video"),
        "bad_empty": (media.write_text(v("empty.mp4"), ""), "empty"),
        "bad_text": (media.write_text(v("text.mp4")), "not_video"),
        "bad_audio_only": (media.write_audio_only(v("audio.mp4")), "no_video_stream"),
        "bad_still_image": (media.write_still_image(v("still.mp4")), "still_image"),
        "bad_missing": (v("does_not_exist.mp4"), "missing"),
        "bad_directory": (v("folder.mp4"), "not_video"),
        "bad_no_frames": (media.corrupt_packets(src_mkv, v("garbage.mkv"), from_packet=0),
                          "no_frames"),
        # A header that claims 20000x20000 (400 Mpixel frames) over 100 KB of data:
        # FFmpeg refuses it before allocating a frame.
        "bad_huge_dimensions": (_huge_header(v("huge.y4m")), "not_video"),
        # Reads of this file block (a stalled mount): only the timeout ends it.
        "bad_hangs": (_hanging(folder, src_mp4), "timeout"),
    }
    os.makedirs(v("folder.mp4"), exist_ok=True)
    # Unreadable: chmod 000 stops a normal user; root reads through mode bits,
    # so as root the same guarantee is shown on a storage system that answers
    # 403 (tests/media.py's remote filesystem), which root cannot bypass.
    if RUNNING_AS_ROOT:
        shutil.copy(src_mp4, os.path.join(folder, "remote", "forbidden.mp4"))
        failing["bad_unreadable"] = ("yt8mtest://forbidden.mp4", "permission")
    else:
        path = shutil.copy(src_mp4, v("unreadable.mp4"))
        os.chmod(path, 0)
        failing["bad_unreadable"] = (path, "permission")
    for vid, (uri, kind) in failing.items():
        c.failed[vid] = kind
        c.uris[vid] = uri

    # Bad videos the decoding policy keeps (docs/decoding.md), with their frames.
    long_mkv = media.write_video(v("long.mkv"), fps=10, duration_s=4.0).path
    intra = media.write_video(v("intra.mkv"), fps=10, duration_s=2.0,
                              options={"g": "1", "bframes": "0"}).path
    kept = {
        # 0.3 s: one sample (t = 0).
        "kept_short": media.write_video(v("short.mp4"), fps=10, duration_s=0.3).path,
        # Garbage from packet 25 (2.5 s) on: the frames decoded before are kept.
        "kept_fails_part_way": media.corrupt_packets(long_mkv, v("part.mkv"), from_packet=25),
        # An mkv cut in half (no index needed): its first part is kept, with a warning.
        "kept_truncated_mkv": media.truncate_file(long_mkv, v("cut.mkv"), 0.5),
        # Packet 4 goes back in time: that frame is skipped, the rest kept.
        "kept_non_monotonic": media.retime_packets(
            intra, v("nonmono.mkv"), [0.0, 0.1, 0.2, 1.5, 1.0, 2.0, 2.1, 3.0, 3.3, 3.9]),
    }
    for vid, uri in kept.items():
        c.kept[vid] = None   # filled in by the test from the decoder's own policy
        c.uris[vid] = uri

    rows = [(vid, c.uris[vid], 5000, 2, ENTITY) for vid in c.good + list(c.failed)
            + list(c.kept)]
    good_uri = c.uris[c.good[0]]
    # Bad manifest rows; each points at a good video, so a row wrongly
    # selected would show up in the dataset.
    c.excluded.update({"meta_views_text": "malformed_row", "meta_dup": "duplicate_id",
                       "meta_unknown_entity": "no_visual_entity",
                       "meta_negative_views": "malformed_row"})
    rows += [("meta_views_text", good_uri, "lots", 2, ENTITY),
             ("meta_dup", good_uri, 5000, 2, ENTITY),
             ("meta_dup", c.uris[c.good[1]], 5000, 2, ENTITY),
             ("meta_unknown_entity", good_uri, 5000, 2, UNKNOWN_ENTITY),
             ("meta_negative_views", good_uri, -3, 2, ENTITY)]
    with open(c.manifest, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["video_id", "uri", "views", "duration_s", "entities"])
        w.writerows(rows)
        fh.write(f"meta_too_few_fields,{good_uri}\n")
        fh.write(f",{good_uri},5000,2,{ENTITY}\n")           # no video_id
    c.excluded["meta_too_few_fields"] = "malformed_row"
    with open(c.manifest, "ab") as fh:                     # bytes that are not UTF-8
        fh.write(b"meta_latin1_\xe9t\xe9," + good_uri.encode() + b",5000,2,"
                 + ENTITY.encode() + b"\n")
    c.excluded_without_id = 2  # the row without an id, the non-UTF-8 one
    c.rows = len(rows) + 3
    return c


def _huge_header(path: str) -> str:
    with open(path, "wb") as fh:
        fh.write(b"YUV4MPEG2 W20000 H20000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(100_000))
    return path


def _hanging(folder: str, src: str) -> str:
    from tests.reliability.faults import HangingFileSystem
    shutil.copy(src, os.path.join(folder, "remote", "stalled.mp4"))
    return HangingFileSystem.uri("stalled.mp4")


def build_in_process(corpus: Corpus, out, *extra) -> tuple[int, str]:
    """``run_pipeline.py build`` in this process: (exit code, what it printed on stderr)."""
    from yt8m import cli as run_pipeline
    arm_filesystems(corpus)
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        rc = run_pipeline.main(["build", *corpus.argv(out, *extra)])
    return rc, buf.getvalue()


@pytest.fixture(scope="session")
def hostile(tmp_path_factory):
    from tests.reliability.faults import BUILD_HANG_LIMIT_S, HangingFileSystem
    folder = str(tmp_path_factory.mktemp("hostile"))
    HangingFileSystem.reset(os.path.join(folder, "remote"), BUILD_HANG_LIMIT_S)
    corpus = make_hostile_corpus(folder)
    yield corpus
    HangingFileSystem.release()   # let the abandoned decode threads finish


@dataclass
class Built:
    out: Path
    rc: int
    stderr: str
    blocked_reads_at_end: int = 0
    returned_reads_at_end: int = 0


@pytest.fixture(scope="session")
def hostile_build(hostile, tmp_path_factory):
    from tests.reliability.faults import HangingFileSystem
    out = tmp_path_factory.mktemp("hostile_build") / "out"
    rc, err = build_in_process(hostile, out)
    return Built(out=out, rc=rc, stderr=err, blocked_reads_at_end=HangingFileSystem.blocked,
                 returned_reads_at_end=HangingFileSystem.returned)


# ---------------------------------------------------------------------------
# Reading a build back
# ---------------------------------------------------------------------------
def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_failures(out) -> list[dict]:
    with open(Path(out) / "failures.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def read_info(out) -> dict:
    return json.loads((Path(out) / "dataset_info.json").read_text())


def parse_shard(path: str, kind: str) -> list:
    """Every record of one TFRecord file, parsed; raises if the file is not whole."""
    import tensorflow as tf

    from yt8m.pipeline import schema
    parse = schema.parse_frame_example if kind == "frame" else schema.parse_video_example
    return [parse(r.numpy()) for r in tf.data.TFRecordDataset(path)]


def published(out) -> dict:
    """{(kind, split): {video_id: record}}; asserts no video appears twice anywhere."""
    out = Path(out)
    seen: dict = {}
    result = {}
    for kind in ("frame", "video"):
        for split in SPLITS:
            recs = {}
            for path in sorted(glob.glob(str(out / kind / f"{split}-*-of-*.tfrecord"))):
                for r in parse_shard(path, kind):
                    where = (kind, split, os.path.basename(path))
                    assert (kind, r.video_id) not in seen, \
                        f"{r.video_id} written twice: {seen[(kind, r.video_id)]} and {where}"
                    seen[(kind, r.video_id)] = where
                    recs[r.video_id] = r
            result[(kind, split)] = recs
    return result


def raw_records(out) -> dict:
    """{(kind, split): sorted serialized records}: the content, shard layout aside."""
    from yt8m.pipeline import schema
    out = Path(out)
    return {(kind, split): sorted(schema.read_records(
        str(out / kind / f"{split}-*-of-*.tfrecord")))
        for kind in ("frame", "video") for split in SPLITS}


def every_shard_is_whole(out) -> list[str]:
    """The files in OUT/frame and OUT/video; asserts each is a final, parseable shard."""
    import re
    out = Path(out)
    files = sorted(glob.glob(str(out / "frame" / "*")) + glob.glob(str(out / "video" / "*"))
                   + glob.glob(str(out / "frame" / ".*")) + glob.glob(str(out / "video" / ".*")))
    name = re.compile(r"^(train|validate|test)-\d{5}-of-\d{5}\.tfrecord$")
    for path in files:
        assert os.path.isfile(path) and name.match(os.path.basename(path)), \
            f"{path} is not a final shard name: a temporary or partial file in OUT"
        kind = os.path.basename(os.path.dirname(path))
        parse_shard(path, kind)   # raises DataLossError on a cut file
    return files


def cache_entries(out) -> dict:
    """{video_id: [cache entry paths]} from the entries' own metadata."""
    from yt8m.pipeline import cache as cache_lib
    found: dict = {}
    for path in glob.glob(str(Path(out) / "cache" / "*" / "*.npz")):
        with open(path, "rb") as fh:
            entry = cache_lib.deserialize_entry(fh.read())
        found.setdefault(entry["meta"]["video_id"], []).append(path)
    return found


def assert_same_dataset(a, b) -> None:
    """Same records per split, same selection files, artifacts equal to float tolerance."""
    assert raw_records(a) == raw_records(b)
    for name in ("vocabulary.csv", "splits.csv", "excluded.csv", "excluded_entities.csv",
                 "failures.jsonl"):
        assert (Path(a) / name).read_bytes() == (Path(b) / name).read_bytes(), name
    for name in ("pca.npz", "quantizer.npz"):
        with np.load(Path(a) / "artifacts" / name) as x, \
                np.load(Path(b) / "artifacts" / name) as y:
            assert sorted(x.files) == sorted(y.files), name
            for key in x.files:
                np.testing.assert_allclose(x[key], y[key], rtol=1e-6, atol=1e-6,
                                           err_msg=f"{name}:{key}")


# ---------------------------------------------------------------------------
# A JSONL manifest with bad rows, built through a worker failure (runner faults)
# ---------------------------------------------------------------------------
def make_jsonl_corpus(folder: str) -> Corpus:
    """Three good videos and every kind of bad JSONL line."""
    from tests import media
    os.makedirs(os.path.join(folder, "videos"), exist_ok=True)
    os.makedirs(os.path.join(folder, "remote"), exist_ok=True)
    c = Corpus(folder=folder, manifest=os.path.join(folder, "manifest.jsonl"),
               entities=write_entities(os.path.join(folder, "entities.csv")))
    for vid in ids_per_split("jgood", {"train": 2, "validate": 1, "test": 0}):
        path = os.path.join(folder, "videos", f"{vid}.mp4")
        media.write_video(path, fps=5, duration_s=2.0)
        c.good.append(vid)
        c.uris[vid] = path
    uri = c.uris[c.good[0]]

    def row(vid, views=5000, entities=(ENTITY,)):
        return json.dumps({"video_id": vid, "uri": uri, "views": views, "duration_s": 2,
                           "entities": list(entities)}) + "\n"

    with open(c.manifest, "wb") as fh:
        for vid in c.good:
            fh.write(json.dumps({"video_id": vid, "uri": c.uris[vid], "views": 5000,
                                 "duration_s": 2, "entities": [ENTITY]}).encode() + b"\n")
        fh.write(row("jbad_views", views="many").encode())
        fh.write(row("jdup").encode() + row("jdup").encode())
        fh.write(row("junknown", entities=[UNKNOWN_ENTITY]).encode())
        fh.write(b"this line is not JSON\n")
        fh.write(b'["a JSON list", "not an object"]\n')
        fh.write(b'{"video_id": "jlatin1_\xe9t\xe9", "uri": "x.mp4", "views": 5000}\n')
        fh.write(json.dumps({"uri": uri, "views": 5000}).encode() + b"\n")   # no video_id
    c.excluded = {"jbad_views": "malformed_row", "jdup": "duplicate_id",
                  "junknown": "no_visual_entity"}
    c.excluded_without_id = 4
    c.rows = len(c.good) + 4 + 4   # bad rows with an id, lines without a usable one
    return c


@dataclass
class Retried:
    out: Path
    first_error: str            # how the first attempt failed
    entries_after_failure: dict  # the cache after the failed attempt
    published_after_failure: bool  # dataset_info.json present after the failed attempt
    rc: int = 0
    stderr: str = ""


@pytest.fixture(scope="session")
def jsonl_corpus(tmp_path_factory):
    return make_jsonl_corpus(str(tmp_path_factory.mktemp("jsonl")))


@pytest.fixture(scope="session")
def retried_build(jsonl_corpus, tmp_path_factory):
    """The build fails once (injected, after a cache entry was written), then is run
    again with every bundle replayed by the runner (``--direct_runner_bundle_repeat=1``:
    the FnApiRunner executes each bundle twice and keeps the second's outputs)."""
    from tests.reliability.faults import fail_once_after_cache_store
    folder = tmp_path_factory.mktemp("retried")
    out = folder / "out"
    undo = fail_once_after_cache_store(str(folder / "failed_once"))
    try:
        build_in_process(jsonl_corpus, out)
        first_error = ""
    except Exception as e:  # noqa: BLE001 - the injected failure, checked by the tests
        first_error = f"{type(e).__name__}: {e}"
    finally:
        undo()
    after = cache_entries(out)
    marker = (out / "dataset_info.json").exists()
    rc, err = build_in_process(jsonl_corpus, out, "--direct_runner_bundle_repeat=1")
    return Retried(out=out, first_error=first_error, entries_after_failure=after,
                   published_after_failure=marker, rc=rc, stderr=err)
