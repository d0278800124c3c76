"""Bad manifests: bad JSONL lines are accounted for, an empty manifest and a manifest
whose every video fails end the build with a clear error and a non-zero exit.

(The CSV bad rows are checked on the shared build in test_bad_inputs.py; the
JSONL ones on the build of test_runner_faults.py, which uses a JSONL manifest.)
"""
from __future__ import annotations

import glob
import os

import pytest

from tests.reliability.conftest import (Corpus, build_in_process, read_csv, read_failures,
                                        read_info, write_entities, ENTITY)


def test_bad_jsonl_lines_are_excluded_with_their_reason(retried_build, jsonl_corpus):
    assert retried_build.rc == 0, retried_build.stderr
    rows = read_csv(retried_build.out / "excluded.csv")
    by_id: dict = {}
    for r in rows:
        by_id.setdefault(r["video_id"], []).append(r)
    for vid, reason in jsonl_corpus.excluded.items():
        assert by_id.get(vid) and all(r["reason"] == reason for r in by_id[vid]), (vid, rows)
    assert len(by_id["jdup"]) == 2
    assert "many" in by_id["jbad_views"][0]["detail"]
    no_id = [r for r in rows if not r["video_id"]]
    assert len(no_id) == jsonl_corpus.excluded_without_id
    details = " | ".join(r["detail"] for r in no_id)
    for words in ("JSON", "not a JSON object", "UTF-8", "video_id"):
        assert words in details, details
    acc = read_info(retried_build.out)["accounting"]
    assert acc["manifest_rows"] == jsonl_corpus.rows and acc["balanced"]
    assert acc["excluded"] == len(rows)


@pytest.mark.parametrize("content", [b"", b"video_id,uri,views,duration_s,entities\n"],
                         ids=["zero_bytes", "header_only"])
def test_empty_manifest_is_a_clear_error(tmp_path, content):
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(content)
    corpus = Corpus(folder=str(tmp_path), manifest=str(manifest),
                    entities=write_entities(str(tmp_path / "entities.csv")))
    out = tmp_path / "out"
    rc, err = build_in_process(corpus, out)
    assert rc == 2, err
    assert str(manifest) in err and "no data rows" in err, err
    assert not (out / "dataset_info.json").exists()
    assert not glob.glob(str(out / "frame" / "*"))


@pytest.fixture(scope="module")
def all_failing(tmp_path_factory):
    """A manifest whose two selected videos both fail to decode, built once."""
    from tests import media
    folder = tmp_path_factory.mktemp("all_failing")
    videos = {"gone": str(folder / "gone.mp4"),
              "noise": media.write_random_bytes(str(folder / "noise.mp4"))}
    manifest = folder / "manifest.csv"
    manifest.write_text("video_id,uri,views,duration_s,entities\n" + "".join(
        f"{vid},{uri},5000,2,{ENTITY}\n" for vid, uri in videos.items()))
    corpus = Corpus(folder=str(folder), manifest=str(manifest),
                    entities=write_entities(str(folder / "entities.csv")))
    out = folder / "out"
    rc, err = build_in_process(corpus, out)
    return out, rc, err, videos


def test_manifest_whose_every_video_fails_is_a_clear_error(all_failing):
    out, rc, err, _ = all_failing
    assert rc == 4, err
    assert err.startswith("error: ") and ("no video could be written" in err
                                          or "no train frames" in err), err
    # Nothing claims to be a dataset.
    assert not (out / "dataset_info.json").exists()
    assert not glob.glob(str(out / "frame" / "*")) + glob.glob(str(out / "video" / "*"))


def test_manifest_whose_every_video_fails_still_publishes_its_failures(all_failing):
    # The user must learn why each video failed (docs/pipeline.md: exit 4 with
    # failures.jsonl published), not only that the PCA had nothing to fit.
    out, rc, err, videos = all_failing
    assert os.path.exists(out / "failures.jsonl"), (
        f"exit {rc} without OUT/failures.jsonl; stderr: {err}")
    failures = read_failures(out)
    assert sorted(f["video_id"] for f in failures) == sorted(videos)
    assert {f["kind"] for f in failures} == {"missing", "not_video"}
