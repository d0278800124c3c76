"""Killed runs: SIGKILL while a build moves its shards into OUT, then rerun.

tests/pipeline/test_build.py already kills a build as its first cache entries
appear and checks that the rerun extracts only the missing videos. This test
takes the other end: the build is killed *inside* the publishing step (the
launcher ``tests.reliability.launch --pause_in_publish`` stops it right after
its first rename into OUT, so the kill lands there every time), over an OUT that
already holds a complete earlier dataset. Guarantees:

- no file in OUT/frame or OUT/video is anything but a whole, parseable,
  finally named shard;
- no ``dataset_info.json`` vouches for the mix of old and new files;
- the rerun decodes nothing (every video was cached before the kill) and its
  dataset equals the uninterrupted build's (records per split, vocabulary,
  splits, failures, artifacts to float tolerance).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

from tests.reliability.conftest import (ROOT, assert_same_dataset, build_in_process,
                                        every_shard_is_whole, read_info)


def test_kill_while_publishing_then_rerun(hostile, hostile_build, tmp_path):
    assert hostile_build.rc == 0, hostile_build.stderr
    out = tmp_path / "out"
    # OUT holds a complete earlier dataset (the uninterrupted build's, without its cache).
    shutil.copytree(hostile_build.out, out, ignore=shutil.ignore_patterns("cache", ".tmp"))
    assert (out / "dataset_info.json").exists() and every_shard_is_whole(out)
    marker = tmp_path / "publishing"
    log = open(tmp_path / "killed.log", "wb")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.launch", "--pause_in_publish", str(marker),
         "--remote_root", os.path.join(hostile.folder, "remote"), "--",
         "build", *hostile.argv(out)], cwd=str(ROOT), env=env, stdout=log, stderr=log)
    try:
        # Liveness guard only (a loaded machine is slow): wait for the pause.
        deadline = time.monotonic() + 1200
        while time.monotonic() < deadline and proc.poll() is None and not marker.exists():
            time.sleep(0.2)
        assert marker.exists(), (f"the build never reached publishing (exit {proc.poll()}): "
                                 + (tmp_path / "killed.log").read_text()[-3000:])
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert proc.returncode == -signal.SIGKILL
    # Killed between two renames: one new shard is in place, the old ones are gone.
    moved = marker.read_text().split()
    assert moved and all(os.path.exists(p) for p in moved)
    shards = every_shard_is_whole(out)
    assert shards, "publishing had started: at least its first shard is in OUT"
    assert not (out / "dataset_info.json").exists(), \
        "dataset_info.json of the earlier build survived a half-published rebuild"

    rc, err = build_in_process(hostile, out)
    assert rc == 0, err
    info = read_info(out)
    written = len(hostile.good) + len(hostile.kept)
    assert info["cache"]["hits"] == written
    assert info["cache"]["extracted"] == 0
    assert info["counters"].get("extract_videos_decoded", 0) == 0
    assert_same_dataset(out, hostile_build.out)
    every_shard_is_whole(out)
    assert not (out / ".tmp" / "build").exists()
