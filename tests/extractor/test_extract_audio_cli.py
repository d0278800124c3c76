"""``extract --audio``: audio and mean_audio in the released layout for AAC and Opus
tracks made with PyAV; videos without sound per the flag; missing weights."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.media import write_video
from yt8m.extractor import cli
from yt8m.pipeline import schema


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio_extract")
    aac = write_video(d / "aac.mp4", width=64, height=48, fps=10, duration_s=3.0, audio=True).path
    opus = write_video(d / "opus.mkv", width=64, height=48, fps=10, duration_s=2.0, audio=True,
                       audio_codec="libopus", audio_hz=1000.0).path
    mute = write_video(d / "mute.mp4", width=64, height=48, fps=10, duration_s=2.0).path
    manifest = d / "videos.csv"
    manifest.write_text(f"video_id,uri\naac,{aac}\nopus,{opus}\nmute,{mute}\n")
    # Released-layout PCAs: the YouTube-8M RGB files and vggish_pca_params.npz.
    rng = np.random.default_rng(0)
    rel = d / "yt8m_pca"
    rel.mkdir()
    np.save(rel / "mean.npy", rng.normal(size=(2048, 1)))
    np.save(rel / "eigenvals.npy", np.ones((1024, 1)))
    np.save(rel / "eigenvecs.npy", np.linalg.qr(rng.normal(size=(2048, 1024)))[0].T * 0.05)
    vpca = d / "vggish_pca_params.npz"
    np.savez(vpca, pca_eigen_vectors=np.linalg.qr(rng.normal(size=(128, 128)))[0] * 10,
             pca_means=rng.normal(size=(128, 1)) * 0.01)
    out = d / "out"
    code = cli.main(["--videos", str(manifest), "--output_dir", str(out), "--weights", "random",
                     "--batch_size", "4", "--artifacts", str(rel), "--quantizer", "uniform",
                     "--audio_weights", "random", "--audio_pca", str(vpca)])
    return {"code": code, "out": out, "manifest": manifest, "rel": rel, "d": d}


def test_records_carry_audio_for_every_frame(audio_run):
    assert audio_run["code"] == 0
    frames = {r.video_id: r for r in (schema.parse_frame_example(x) for x in
                                     schema.read_records(str(audio_run["out"] / "frame-*")))}
    videos = {r.video_id: r for r in (schema.parse_video_example(x) for x in
                                     schema.read_records(str(audio_run["out"] / "video-*")))}
    assert sorted(frames) == ["aac", "mute", "opus"]
    for vid, r in frames.items():
        assert r.audio is not None and r.audio.dtype == np.uint8
        assert r.audio.shape == (len(r.rgb), 128)
        assert videos[vid].mean_audio is not None and videos[vid].mean_audio.shape == (128,)
    assert len(np.unique(frames["aac"].audio)) > 10
    assert not np.array_equal(frames["aac"].audio[:2], frames["opus"].audio[:2])
    info = json.loads((audio_run["out"] / "model.json").read_text())["audio"]
    assert info["status"] == "on" and info["random"] is True
    assert info["model"]["source"] == "random" and info["compression"]["mode"] == "released"


def test_required_without_weights_is_exit_2(audio_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("YT8M_VGGISH_DIR", str(tmp_path / "empty"))
    code = cli.main(["--videos", str(audio_run["manifest"]), "--output_dir", str(tmp_path / "o"),
                     "--weights", "random", "--artifacts", str(audio_run["rel"]),
                     "--quantizer", "uniform", "--audio", "required"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--audio required" in err and "vggish_model.ckpt" in err
    assert not (tmp_path / "o").exists()
