"""What the reliability guarantees cost (issue 8).

Figures (``run(quick)``):

* ``decode_watchdog_overhead``: ``sample_frames`` with ``timeout_s`` set (the
  decode runs under a watchdog thread, README.md "Failure handling") against the
  same call without a timeout, on the same 720p H.264 file, alternating runs,
  best of each. ratio = plain time / watchdog time; target >= 0.95 (the hard
  timeout costs under 5%).
* ``hung_decode_stop_vs_timeout``: a decode whose first read never returns
  (``tests.reliability.faults.HangingFileSystem``) against its ``timeout_s``:
  ratio = timeout_s / wall time until ``DecodeTimeout``; target >= 0.5 (the
  watchdog gives up within its grace of 1 s after a 2 s timeout, not when the
  read returns).

The 10-minute 4K memory figure is ``extract_peak_mb_4k_10min`` in
benchmarks/extract_bench.py.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _overhead(quick: bool) -> dict:
    from benchmarks.decode_bench import bench_video
    from yt8m.extractor.decode import sample_frames
    path = bench_video("h264_720p", 10.0 if quick else 30.0)
    plain, guarded = float("inf"), float("inf")
    for _ in range(2 if quick else 3):
        t = time.perf_counter()
        sample_frames(path)
        plain = min(plain, time.perf_counter() - t)
        t = time.perf_counter()
        sample_frames(path, timeout_s=3600.0)
        guarded = min(guarded, time.perf_counter() - t)
    ratio = plain / guarded
    return {"name": "decode_watchdog_overhead", "value": round(guarded, 3), "unit": "s",
            "reference": f"sample_frames without timeout_s ({os.path.basename(path)})",
            "reference_value": round(plain, 3), "ratio": round(ratio, 3),
            "target": ">= 0.95", "met": ratio >= 0.95}


def _hung_stop() -> dict:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from yt8m.extractor import synth
    from yt8m.extractor.decode import DecodeTimeout, sample_frames
    from tests.reliability.faults import HangingFileSystem
    folder = tempfile.mkdtemp(prefix="yt8m_rel_bench_")
    try:
        HangingFileSystem.reset(folder, limit_s=60.0)
        synth.write_video(os.path.join(folder, "stalled.mp4"), fps=5, duration_s=2.0)
        timeout = 2.0
        t = time.perf_counter()
        try:
            sample_frames(HangingFileSystem.uri("stalled.mp4"), timeout_s=timeout)
            wall, stopped = time.perf_counter() - t, False
        except DecodeTimeout:
            wall, stopped = time.perf_counter() - t, True
    finally:
        HangingFileSystem.release()
        shutil.rmtree(folder, ignore_errors=True)
    ratio = timeout / wall
    return {"name": "hung_decode_stop_vs_timeout", "value": round(wall, 3), "unit": "s",
            "reference": "timeout_s of a decode whose read never returns",
            "reference_value": timeout, "ratio": round(ratio, 3), "target": ">= 0.5",
            "met": stopped and ratio >= 0.5}


def run(quick: bool = True) -> list[dict]:
    return [_overhead(quick), _hung_stop()]


if __name__ == "__main__":
    import json
    print(json.dumps(run(quick="--full" not in sys.argv), indent=2))
