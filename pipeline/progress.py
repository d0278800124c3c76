"""Progress of a local build on the terminal, and its closing summary.

Workers cannot talk to the launching process directly (the FnApiRunner may run
them in other processes), so progress goes through small files:

* ``ProgressLog.record(event, frames)`` (called by the build's DoFns) appends
  one line ``event<TAB>frames`` to ``OUT/.tmp/<job>/progress/<pid>.log``;
  events are ``total`` (frames = number of selected videos), ``cached``,
  ``extracted`` and ``failed``; each line is written with one ``write`` call
  in append mode, so concurrent writers never interleave within a line;
* ``ProgressMonitor``, a thread in the launching process, sums those files
  and renders a bar on stderr when it is a TTY (a plain log line every 30 s
  otherwise). Remote runners get no progress files: their own UI shows the
  job (and Beam Metrics, which the build also counts).

The end-of-run summary is ``pipeline.report.summary_text``.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import Optional, TextIO

EVENTS = ("total", "cached", "extracted", "failed")


class ProgressLog:
    """Append-only event log in a local folder; a no-op when ``folder`` is None."""

    def __init__(self, folder: Optional[str]):
        self.folder = folder

    def record(self, event: str, frames: int = 0) -> None:
        if self.folder is None:
            return
        if event not in EVENTS:
            raise ValueError(f"unknown progress event {event!r}; expected one of {EVENTS}")
        try:
            os.makedirs(self.folder, exist_ok=True)
            with open(os.path.join(self.folder, f"{os.getpid()}.log"), "a",
                      encoding="utf-8") as fh:
                fh.write(f"{event}\t{int(frames)}\n")
        except OSError:
            # Progress is a display; a full disk must surface in the outputs,
            # not because the bar could not be drawn.
            pass


def read_progress(folder: Optional[str]) -> dict:
    """Sums of every event: videos per event and frames per event."""
    counts = {e: 0 for e in EVENTS}
    frames = {e: 0 for e in EVENTS}
    if not folder or not os.path.isdir(folder):
        return {"videos": counts, "frames": frames}
    for name in os.listdir(folder):
        if not name.endswith(".log"):
            continue
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except OSError:
            continue
        for line in lines:
            parts = line.split("\t")
            if len(parts) != 2 or parts[0] not in EVENTS:
                continue  # a line being written right now
            if parts[0] == "total":
                counts["total"] += int(parts[1])
                continue
            counts[parts[0]] += 1
            frames[parts[0]] += int(parts[1])
    return {"videos": counts, "frames": frames}


def fmt_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def render_line(state: dict, elapsed: float, width: int = 24) -> str:
    v = state["videos"]
    total = v["total"]
    done = v["cached"] + v["extracted"] + v["failed"]
    fps = state["frames"]["extracted"] / elapsed if elapsed > 0 else 0.0
    if total:
        frac = min(1.0, done / total)
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        # Time left from the pace of the videos extracted so far (cached ones
        # are nearly free and would make the estimate optimistic).
        todo = max(0, total - done)
        left = (elapsed / v["extracted"] * todo) if v["extracted"] else None
        left_s = fmt_duration(left) if left is not None else "--:--"
        head = f"[{bar}] {done}/{total} videos"
    else:
        head, left_s = "selecting videos ...", "--:--"
    line = (f"{head} ({v['cached']} cached, {v['failed']} failed) | "
            f"{fps:.1f} frames/s | elapsed {fmt_duration(elapsed)} | left {left_s}")
    if total and done >= total:
        line += " | fitting PCA + quantizer, writing"
    return line


class ProgressMonitor:
    """A daemon thread rendering ``read_progress(folder)``; use as a context manager."""

    def __init__(self, folder: Optional[str], stream: TextIO = sys.stderr,
                 interval_s: Optional[float] = None):
        self.folder = folder
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.interval_s = interval_s if interval_s is not None else (0.5 if self.tty else 30.0)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.t0 = time.monotonic()

    def _tick(self, final: bool = False) -> None:
        line = render_line(read_progress(self.folder), time.monotonic() - self.t0)
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if final else ""))
        else:
            self.stream.write("progress: " + line + "\n")
        self.stream.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._tick()

    def __enter__(self):
        if self.folder is not None:
            self._thread = threading.Thread(target=self._loop, name="yt8m-progress",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._tick(final=True)
        return False
