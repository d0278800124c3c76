"""``run_pipeline.py extract`` on a manifest mixing good and broken videos."""
from __future__ import annotations

import json

import numpy as np
import pytest

from yt8m.extractor import cli
from yt8m.extractor.decode import sample_frames
from yt8m.pipeline import schema

ATOL = 1e-4


@pytest.fixture(scope="module")
def manifest(extract_videos, tmp_path_factory):
    v = extract_videos
    path = tmp_path_factory.mktemp("manifest") / "videos.csv"
    rows = ["video_id,uri,labels",
            f"a,{v['a']},3;1",
            f"b,{v['b']},",
            f"bad,{v['bad']},",
            f"gone,{v['missing']},",
            f"a,{v['b']},",          # duplicate id: the first line wins
            f"c,{v['a']},x;y"]       # malformed labels
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def raw_run(manifest, tmp_path_factory):
    """One --no_compress run (shared by the assertions below)."""
    import contextlib
    import io
    out = tmp_path_factory.mktemp("raw_out")
    (out / "features-00000-of-00009.tfrecord").write_bytes(b"stale shard of an earlier run")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(["--videos", str(manifest), "--output_dir", str(out),
                         "--weights", "random", "--batch_size", "4", "--no_compress"])
    return {"code": code, "out": out, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


def _records(pattern):
    return sorted((schema.parse_frame_example(r) for r in schema.read_records(str(pattern))),
                  key=lambda r: r.video_id)


def test_no_compress_writes_raw_features_and_counts(raw_run, extract_videos, random_model):
    assert raw_run["code"] == 0
    assert "extract: 2 videos succeeded, 4 failed" in raw_run["stdout"]
    assert "UNTRAINED" in raw_run["stderr"]
    out = raw_run["out"]
    shards = sorted(p.name for p in out.glob("features-*.tfrecord"))
    assert shards == ["features-00000-of-00001.tfrecord"]  # the stale shard is gone
    recs = _records(out / "features-*.tfrecord")
    assert [r.video_id for r in recs] == ["a", "b"]
    a, b = recs
    assert a.labels == [1, 3] and b.labels is None
    for rec, key in ((a, "a"), (b, "b")):
        s = sample_frames(extract_videos[key])
        assert rec.rgb.dtype == np.float32 and rec.rgb.shape == (len(s), 2048)
        np.testing.assert_allclose(rec.rgb, random_model.predict(s.frames), atol=ATOL)
        np.testing.assert_allclose(rec.frame_times, s.times)
    assert not list(out.glob("beam-temp-*")) and not list(out.glob(".*.part"))


def test_failures_jsonl_lists_every_unusable_row(raw_run, extract_videos):
    lines = (raw_run["out"] / "failures.jsonl").read_text().splitlines()
    recs = [json.loads(line) for line in lines]
    assert [(r["video_id"], r["stage"]) for r in recs] == [
        ("a", "manifest"), ("bad", "decode"), ("c", "manifest"), ("gone", "decode")]
    for r in recs:
        assert set(r) >= {"video_id", "uri", "stage", "error"} and r["error"]
    assert "duplicate video_id" in recs[0]["error"] and recs[0]["uri"] == extract_videos["b"]
    assert "labels are not integers" in recs[2]["error"]


def test_model_json_records_the_weights(raw_run):
    info = json.loads((raw_run["out"] / "model.json").read_text())
    assert info["random"] is True and info["source"] == "random" and info["name"]
    assert info["sampling"] == {"fps": 1.0, "max_seconds": 360.0, "size": 299}
    assert info["extract"]["succeeded"] == 2 and info["extract"]["failed"] == 4


def _pca_and_quantizer(seed=0):
    from yt8m import compression
    rng = np.random.default_rng(seed)
    vecs, _ = np.linalg.qr(rng.standard_normal((2048, 1024)))
    vals = np.sort(rng.uniform(0.01, 1.0, 1024))[::-1]
    pca = compression.PCAWhitening(rng.uniform(0, 0.5, 2048), vecs, vals)
    return pca, compression.Quantizer.fit(None, method="uniform")


def _check_compressed(out, raw_run, pca, quant):
    from yt8m.compression import codec
    raw = {r.video_id: r for r in _records(raw_run["out"] / "features-*.tfrecord")}
    frames = _records(out / "frame-*.tfrecord")
    videos = sorted((schema.parse_video_example(r)
                     for r in schema.read_records(str(out / "video-*.tfrecord"))),
                    key=lambda r: r.video_id)
    assert [r.video_id for r in frames] == [r.video_id for r in videos] == ["a", "b"]
    for fr, vr in zip(frames, videos):
        assert fr.rgb.dtype == np.uint8 and fr.rgb.shape == (raw[fr.video_id].rgb.shape[0], 1024)
        want = codec.encode_frames(raw[fr.video_id].rgb, pca, quant).astype(int)
        # Two runs batch frames alike, but allow a rare one-level flip at a boundary.
        diff = np.abs(fr.rgb.astype(int) - want)
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99
        np.testing.assert_allclose(vr.mean_rgb, quant.decode(fr.rgb).mean(0), rtol=1e-6,
                                   atol=1e-6)
        assert fr.labels == vr.labels == raw[fr.video_id].labels


def test_artifacts_from_a_build_write_the_compressed_layout(raw_run, manifest, tmp_path):
    pca, quant = _pca_and_quantizer()
    art = tmp_path / "artifacts"
    art.mkdir()
    pca.save(str(art / "pca.npz"))
    quant.save(str(art / "quantizer.npz"))
    out = tmp_path / "out"
    code = cli.main(["--videos", str(manifest), "--output_dir", str(out), "--weights", "random",
                     "--batch_size", "4", "--artifacts", str(art)])
    assert code == 0
    _check_compressed(out, raw_run, pca, quant)
    assert not list(out.glob("features-*"))
    assert len((out / "failures.jsonl").read_text().splitlines()) == 4


def test_released_pca_files_need_the_uniform_quantizer(raw_run, manifest, tmp_path, capsys):
    pca, quant = _pca_and_quantizer()
    rel = tmp_path / "yt8m_pca"
    rel.mkdir()
    np.save(rel / "mean.npy", pca.mean.reshape(-1, 1))
    np.save(rel / "eigenvals.npy", pca.eigenvals.reshape(-1, 1))
    np.save(rel / "eigenvecs.npy", pca.eigenvecs.T)
    out = tmp_path / "out"
    args = ["--videos", str(manifest), "--output_dir", str(out), "--weights", "random",
            "--artifacts", str(rel)]
    assert cli.main(args) == 2
    assert "--quantizer uniform" in capsys.readouterr().err
    assert cli.main(args + ["--quantizer", "uniform", "--batch_size", "4"]) == 0
    from yt8m import compression
    _check_compressed(out, raw_run, compression.PCAWhitening.from_yt8m(str(rel)), quant)


def test_every_video_failing_is_an_error(extract_videos, tmp_path, capsys):
    m = tmp_path / "all_bad.jsonl"
    m.write_text(json.dumps({"video_id": "bad", "uri": extract_videos["bad"]}) + "\n")
    code = cli.main(["--videos", str(m), "--output_dir", str(tmp_path / "out"),
                     "--weights", "random", "--no_compress"])
    captured = capsys.readouterr()
    assert code == 1
    assert "0 videos succeeded, 1 failed" in captured.out
    assert "nothing to use" in captured.err
    assert json.loads((tmp_path / "out" / "failures.jsonl").read_text())["video_id"] == "bad"


@pytest.mark.parametrize("extra, needle", [
    (["--no_compress", "--quantizer", "uniform"], "--quantizer applies to --artifacts"),
    (["--artifacts", "/nonexistent/artifacts"], "does not exist"),
    (["--no_compress", "--batch_size", "0"], "--batch_size must be >= 1"),
    (["--no_compress", "--weights", "/nonexistent/w.h5"], "does not exist"),
])
def test_bad_flags_exit_2_with_a_message(manifest, tmp_path, capsys, extra, needle):
    code = cli.main(["--videos", str(manifest), "--output_dir", str(tmp_path / "o")] + extra)
    assert code == 2
    assert needle in capsys.readouterr().err


def test_missing_manifest_and_missing_mode(tmp_path, capsys):
    assert cli.main(["--videos", str(tmp_path / "none.csv"), "--output_dir", str(tmp_path),
                     "--no_compress"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["--videos", "x.csv", "--output_dir", str(tmp_path)]) == 2
    assert "--no_compress" in capsys.readouterr().err


def test_empty_artifacts_folder_says_what_it_needs(manifest, tmp_path, capsys):
    (tmp_path / "art").mkdir()
    assert cli.main(["--videos", str(manifest), "--output_dir", str(tmp_path / "o"),
                     "--artifacts", str(tmp_path / "art")]) == 2
    err = capsys.readouterr().err
    assert "pca.npz" in err and "eigenvecs.npy" in err


def test_extract_writes_no_thumbnails_by_default_and_records_decode(raw_run):
    out = raw_run["out"]
    assert not (out / "thumbnails").exists()
    info = json.loads((out / "model.json").read_text())
    assert info["precision"] == info["extract"]["precision"] == "float32"
    assert info["thumbnails"]["per_video"] == 0 and info["thumbnails"]["videos_written"] == 0
    d = info["decode"]
    assert d["requested_device"] == "cpu" and d["videos_by_device"] == {"cpu": 2}
    assert d["packets"] == d["packets_decoded"] + d["packets_skipped"] > 0


def test_extract_thumbnails_and_decode_device(manifest, tmp_path, capsys):
    """--thumbnails 2 --decode_device cuda: thumbnails from the one decode; without a CUDA
    device the CPU decodes, and dataset statistics say so."""
    from yt8m.extractor import hwdecode
    from yt8m.pipeline import thumbnails as TH
    out = tmp_path / "o"
    code = cli.main(["--videos", str(manifest), "--output_dir", str(out), "--weights", "random",
                     "--batch_size", "4", "--no_compress", "--thumbnails", "2",
                     "--decode_device", "cuda", "--precision", "bfloat16"])
    assert code == 0
    for vid in ("a", "b"):
        strip = TH.read_strip(str(out), vid)
        assert strip is not None and strip.n == 2 and strip.video_id == vid
    info = json.loads((out / "model.json").read_text())
    assert info["precision"] == "bfloat16"
    assert info["thumbnails"]["videos_written"] == 2 and info["thumbnails"]["images_written"] == 4
    d = info["decode"]
    assert d["requested_device"] == "cuda" and sum(d["videos_by_device"].values()) == 2
    if hwdecode.hwaccel_for("cuda") is None:
        assert d["videos_by_device"] == {"cpu": 2} and d["device_fallbacks"] == 2


def test_mixed_precision_is_float16_and_conflicts_are_errors(manifest, tmp_path, capsys):
    base = ["--videos", str(manifest), "--output_dir", str(tmp_path / "o"), "--no_compress"]
    assert cli.parse(base + ["--mixed_precision"]).precision == "float16"
    assert cli.parse(base).thumbnails == 0
    assert cli.main(base + ["--mixed_precision", "--precision", "bfloat16"]) == 2
    assert "contradicts" in capsys.readouterr().err
    assert cli.main(base + ["--thumbnails", "-2"]) == 2
    assert "--thumbnails must be" in capsys.readouterr().err
