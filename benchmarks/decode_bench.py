"""Decoding speed: ``extractor.decode.sample_frames`` (1 frame/s, scaled to 299)
against the ``ffmpeg`` command line doing the same sampling
(``ffmpeg -i X -vf fps=1 -f null -``) on the same file, in the same run.

Figures (``run(quick)``): ``decode_vs_ffmpeg_h264_720p``, ``..._h264_1080p``,
``..._hevc`` (720p), ``..._vp9`` (720p). value = our source frames decoded per
second, reference_value = ffmpeg's, ratio = ours / ffmpeg's (best of a few
alternating runs each). ffmpeg does not scale or convert the kept frames to
RGB, so a ratio near 1 means the sampling adds almost nothing to the decode.

``decode_frames_per_s(path, ...)`` is reusable (the extraction benchmark uses it
for the decode+resize part of its limit). ``bench_video(kind, seconds)`` makes
(and caches under benchmarks/_work/) the test videos.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from yt8m.extractor import synth
from yt8m.extractor.decode import sample_frames

WORK = Path(__file__).resolve().parent / "_work"

# kind -> (codec, container extension, width, height, fps)
VIDEOS = {
    "h264_720p": ("libx264", "mp4", 1280, 720, 30),
    "h264_1080p": ("libx264", "mp4", 1920, 1080, 30),
    "hevc": ("libx265", "mp4", 1280, 720, 30),
    "vp9": ("libvpx-vp9", "webm", 1280, 720, 30),
}
TARGET = 0.8  # sampling may cost at most ~20% over a bare ffmpeg decode


def _content():
    # Motion everywhere (a drifting texture) plus a moving shape: encoders
    # produce P/B frames with real residuals, as in camera footage.
    tex = synth.texture("checker", (230, 200, 60), (20, 30, 80), 12.0, 0.3)
    shape = synth.moving_shape("circle", (220, 40, 40), (0, 0, 0), 3.0)

    def content(i, t, h, w):
        img = tex(i, t, h, w)
        mask = shape(i, t, h, w)[..., 0] > 100
        img[mask] = (220, 40, 40)
        return img

    return synth.with_timecode(content)


def bench_video(kind: str, seconds: float) -> str:
    """Path of a cached benchmark video of ``kind`` (see ``VIDEOS``) lasting ``seconds``."""
    codec, ext, width, height, fps = VIDEOS[kind]
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"{kind}_{seconds:g}s.{ext}"
    if not path.exists():
        tmp = path.with_name(f"tmp-{os.getpid()}-{path.name}")
        synth.write_video(tmp, _content(), codec=codec, width=width, height=height, fps=fps,
                          duration_s=seconds, gop=int(fps * 5))
        os.replace(tmp, path)  # a killed run leaves no half video in the cache
    return str(path)


def source_frames(path: str) -> int:
    import av
    with av.open(path) as c:
        return sum(1 for p in c.demux(video=0) if p.size)


def decode_frames_per_s(path: str, fps: float = 1.0, size: int = 299, repeats: int = 1,
                        threads: int = 0) -> dict:
    """Best-of-``repeats`` wall time of ``sample_frames(path, fps, size=size)``.

    Returns ``{"seconds", "source_frames", "samples", "frames_per_s" (source
    frames decoded per second), "samples_per_s" (kept, resized frames per second),
    "seconds_per_sample"}``.
    """
    best, samples = float("inf"), 0
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = sample_frames(path, fps=fps, size=size, threads=threads)
        best = min(best, time.perf_counter() - start)
        samples = len(result)
    n = source_frames(path)
    return {"seconds": best, "source_frames": n, "samples": samples,
            "frames_per_s": n / best, "samples_per_s": samples / best,
            "seconds_per_sample": best / max(samples, 1)}


def ensure_ffmpeg() -> str | None:
    """The ffmpeg binary, installing it with apt-get when missing; None if impossible."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "ffmpeg"]):
            try:
                subprocess.run(cmd, check=True, capture_output=True, timeout=600)
            except (subprocess.SubprocessError, OSError):
                return None
    return shutil.which("ffmpeg")


def ffmpeg_seconds(ffmpeg: str, path: str, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", path,
                        "-vf", "fps=1", "-f", "null", "-"], check=True)
        best = min(best, time.perf_counter() - start)
    return best


def _ffmpeg_version(ffmpeg: str) -> str:
    out = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True).stdout
    return out.split("\n", 1)[0].replace("ffmpeg version ", "").split(" ")[0]


def run(quick: bool = False) -> list[dict]:
    seconds = 10 if quick else 30
    repeats = 2 if quick else 3
    ffmpeg = ensure_ffmpeg()
    figures = []
    for kind in VIDEOS:
        name = f"decode_vs_ffmpeg_{kind}"
        path = bench_video(kind, seconds)
        ours = decode_frames_per_s(path, repeats=1)  # warm-up (file cache, libraries)
        if ffmpeg is None:
            figures.append({"name": name, "value": ours["frames_per_s"], "unit": "frames/s",
                            "reference": "ffmpeg CLI unavailable (not installed and apt-get failed)",
                            "reference_value": None, "ratio": None, "target": f">= {TARGET}",
                            "met": None})
            continue
        # Alternate the two so that machine load hits both alike.
        ours_best, ref_best = float("inf"), float("inf")
        for _ in range(repeats):
            ref_best = min(ref_best, ffmpeg_seconds(ffmpeg, path))
            ours_best = min(ours_best, decode_frames_per_s(path)["seconds"])
        n = ours["source_frames"]
        value, reference = n / ours_best, n / ref_best
        ratio = value / reference
        codec, _, w, h, fps = VIDEOS[kind]
        figures.append({
            "name": name, "value": round(value, 1), "unit": "frames/s",
            "reference": f"ffmpeg {_ffmpeg_version(ffmpeg)} -vf fps=1 -f null ({codec} {w}x{h} "
                         f"{fps} fps, {seconds} s)",
            "reference_value": round(reference, 1), "ratio": round(ratio, 3),
            "target": f">= {TARGET}", "met": ratio >= TARGET,
        })
    return figures


if __name__ == "__main__":
    import json
    import sys
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
