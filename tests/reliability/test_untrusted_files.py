"""Untrusted files: a decode that hangs is stopped by its timeout; memory does not grow
with a video's length.

- The timeout must hold even when the hang is *inside* a read call, where the
  decode's own deadline check cannot run: ``faults.HangingFileSystem`` serves a
  file whose reads block. ``sample_frames(timeout_s=...)`` must raise
  ``DecodeTimeout`` while the read is still blocked. (The build-level check,
  ``--decode_timeout_s`` turning the same hang into a failure with stage
  ``decode`` and kind ``timeout``, is in test_bad_inputs.py.)
- Memory: a child process decodes a short video, then a 20x longer one of the
  same size; the peak RSS must not grow by more than a few decoded frames.
  The 10-minute 4K figure (under 2 GB) is measured by
  ``benchmarks/extract_bench.py`` (``extract_peak_mb_4k_10min``).
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from tests.reliability.conftest import ROOT
from tests.reliability.faults import HANG_LIMIT_S, HangingFileSystem


@pytest.fixture
def hanging(tmp_path):
    from tests.media import write_video
    HangingFileSystem.reset(str(tmp_path))
    write_video(str(tmp_path / "stalled.mp4"), fps=5, duration_s=2.0)
    yield HangingFileSystem.uri("stalled.mp4")
    HangingFileSystem.release()


def test_timeout_stops_a_read_that_never_returns(hanging):
    from yt8m.extractor.decode import DecodeError, DecodeTimeout, sample_frames
    outcome: dict = {}

    def call():
        try:
            outcome["result"] = sample_frames(hanging, size=32, timeout_s=0.5)
        except DecodeError as e:
            outcome["error"] = e

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    # Not a speed target: a liveness guard, far below the hang's own limit, so
    # that a decode that waits for the read fails this test instead of passing late.
    caller.join(HANG_LIMIT_S / 4)
    assert not caller.is_alive(), "sample_frames(timeout_s=0.5) waited for a blocked read"
    assert HangingFileSystem.blocked >= 1
    assert HangingFileSystem.returned == 0, "the read returned before the timeout fired"
    error = outcome.get("error")
    assert isinstance(error, DecodeTimeout), outcome
    assert error.kind == "timeout" and "timeout_s=0.5" in str(error)
    assert str(error).startswith(hanging)


def test_timeout_does_not_touch_a_normal_decode(tmp_path):
    # The watchdog only bounds the call: results and errors pass through it.
    from yt8m.extractor.decode import DecodeError, sample_frames
    from tests.media import timecodes, write_video
    video = write_video(str(tmp_path / "ok.mp4"), fps=5, duration_s=3.0)
    got = sample_frames(video.path, size=64, timeout_s=60.0)
    assert timecodes(got.frames) == [0, 5, 10]
    with pytest.raises(DecodeError) as err:
        sample_frames(str(tmp_path / "missing.mp4"), timeout_s=60.0)
    assert err.value.kind == "missing"


CHILD = r"""
import json, resource, sys
from yt8m.extractor.decode import sample_frames
short, long_ = sys.argv[1], sys.argv[2]
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # MB (Linux: KB)
a = sample_frames(short, size=32)          # warms FFmpeg, the codec, numpy
after_short = peak()
b = sample_frames(long_, size=32)
after_long = peak()
print(json.dumps({"short_frames": len(a), "long_frames": len(b),
                  "after_short_mb": after_short, "after_long_mb": after_long}))
"""


def test_decode_memory_does_not_grow_with_length(tmp_path):
    from tests.media import write_video
    # 320x240 frames: keeping every decoded frame of the long video would add
    # 300 x 115 KB = 35 MB, well above the bound below.
    short = write_video(str(tmp_path / "short.mp4"), fps=2, duration_s=15.0,
                        width=320, height=240)
    long_ = write_video(str(tmp_path / "long.mp4"), fps=2, duration_s=150.0,
                        width=320, height=240)
    proc = subprocess.run([sys.executable, "-c", CHILD, short.path, long_.path], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["short_frames"] == 15 and got["long_frames"] == 150
    growth = got["after_long_mb"] - got["after_short_mb"]
    # 150 kept 32x32 frames are 0.5 MB; allow FFmpeg's buffer pools some slack.
    assert growth < 20.0, got
