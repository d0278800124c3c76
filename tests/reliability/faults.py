"""Fault injection for the reliability suite: a storage that hangs, a worker that dies.

- ``HangingFileSystem``: a Beam ``FileSystem`` under the scheme ``yt8mhang://``
  whose files exist but whose reads block (until ``release()`` or
  ``HANG_LIMIT_S``), like a stalled mount or storage client. It records how
  many reads are blocked and how many returned, so a test can tell that a
  timeout fired *while* the read was still blocked.
- ``fail_once_after_cache_store(marker)``: makes ``pipeline.features.StoreCacheFn``
  raise once, after it has written its cache entry (the side effect) and before
  its outputs are committed: a worker that dies at the worst moment.
- ``pause_in_publish(marker)``: makes ``pipeline.io.publish`` stop for ever
  after its first rename into OUT and touch ``marker``, so that a test can
  SIGKILL a build exactly while it moves its shards into place.

The launcher ``python -m tests.reliability.launch [--pause_in_publish M]
[--remote_root DIR] -- build ...`` installs the faults and runs ``run_pipeline.py``
in its own process (``--remote_root``: where the ``yt8mtest://`` and
``yt8mhang://`` files live).
"""
from __future__ import annotations

import io
import os
import threading
import time

from apache_beam.io.localfilesystem import LocalFileSystem

from tests.media import RootedPaths, WrappedReader

# A read that never returns would hang a broken build for ever; this bounds it.
HANG_LIMIT_S = 120.0
# For builds, which can take longer than HANG_LIMIT_S on a loaded machine: the
# read must still be blocked when the build ends (released at session end).
BUILD_HANG_LIMIT_S = 3600.0


class HangingFileSystem(RootedPaths, LocalFileSystem):
    """``yt8mhang://NAME`` -> ``root/NAME``; opening works, every read blocks."""

    SCHEME = "yt8mhang"
    root: str = "/nonexistent"
    released = threading.Event()
    limit_s = HANG_LIMIT_S
    blocked = 0          # reads that started blocking
    returned = 0         # blocked reads that have returned since
    _lock = threading.Lock()
    _events: list = [released]

    @classmethod
    def reset(cls, root: str, limit_s: float = HANG_LIMIT_S) -> None:
        cls.root = root
        cls.limit_s = limit_s
        cls.released = threading.Event()
        cls._events.append(cls.released)
        cls.blocked = cls.returned = 0

    @classmethod
    def release(cls) -> None:
        """Unblock every read, also those of earlier resets (abandoned decode threads)."""
        for event in cls._events:
            event.set()

    def open(self, path, mime_type="application/octet-stream", compression_type=None):
        return _HangingReader(io.open(self._local(path), "rb"), type(self))


class _HangingReader(WrappedReader):
    def __init__(self, raw, fs):
        super().__init__(raw)
        self._fs = fs

    def read(self, n=-1):
        fs = self._fs
        with fs._lock:
            fs.blocked += 1
        fs.released.wait(fs.limit_s)
        with fs._lock:
            fs.returned += 1
        return self._raw.read(n)


class InjectedWorkerFailure(RuntimeError):
    """The failure ``fail_once_after_cache_store`` injects."""


def fail_once_after_cache_store(marker: str):
    """Patch StoreCacheFn.process: the first call writes its cache entry, then raises.

    ``marker`` (a file) records that the failure happened, so that only the
    first attempt fails, in this process or a later one. Returns an ``undo()``.
    """
    from yt8m.pipeline import features
    original = features.StoreCacheFn.process

    def process(self, vf):
        outputs = list(original(self, vf))  # the cache entry is written here
        if not os.path.exists(marker):
            with open(marker, "w", encoding="utf-8") as fh:
                fh.write(f"failed after storing {vf.video_id}\n")
            raise InjectedWorkerFailure(f"injected worker failure after caching {vf.video_id}")
        yield from outputs

    features.StoreCacheFn.process = process

    def undo():
        features.StoreCacheFn.process = original
    return undo


def pause_in_publish(marker: str) -> None:
    """After publish's first rename into OUT, touch ``marker`` and sleep until killed."""
    from yt8m import fs
    from yt8m.pipeline import io as pio
    original_publish = pio.publish
    real_fs = fs.FileSystems

    class _PausingFileSystems:
        def __getattr__(self, name):
            return getattr(real_fs, name)

        @staticmethod
        def rename(srcs, dsts):
            real_fs.rename(srcs, dsts)
            with open(marker, "w", encoding="utf-8") as fh:
                fh.write("\n".join(dsts) + "\n")
            while True:  # the test SIGKILLs the process here
                time.sleep(1)

    def publish(*args, **kwargs):
        # Every rename of the publishing goes through yt8m.fs.
        fs.FileSystems = _PausingFileSystems()
        try:
            return original_publish(*args, **kwargs)
        finally:
            fs.FileSystems = real_fs

    pio.publish = publish


def _main(argv):
    """``python -m tests.reliability.launch [--pause_in_publish M] [--remote_root D] -- CMD ...``."""
    if "--" not in argv:
        raise SystemExit("usage: python -m tests.reliability.launch [--pause_in_publish MARKER] "
                         "-- SUBCOMMAND [flags]")
    split = argv.index("--")
    own, rest = argv[:split], argv[split + 1:]
    while own:
        flag, value, own = own[0], own[1], own[2:]
        if flag == "--pause_in_publish":
            pause_in_publish(value)
        elif flag == "--remote_root":
            # The same stalled and forbidden files as the in-process builds see.
            from tests.media import FakeRemoteFileSystem
            FakeRemoteFileSystem.root = value
            FakeRemoteFileSystem.faults = {FakeRemoteFileSystem.uri("forbidden.mp4"):
                                           {"permission": True}}
            HangingFileSystem.reset(value, BUILD_HANG_LIMIT_S)
        else:
            raise SystemExit(f"unknown fault flag {flag}")
    from yt8m import cli as run_pipeline
    return run_pipeline.main(rest)

