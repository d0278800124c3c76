"""Which demuxed packets a sampler may leave undecoded, exactly.

A sample at time t shows the last frame whose presentation time is <= t, so
a frame with presentation time p whose successor in presentation order comes
at q is shown at no sample when no sample time lies in [p, q). Such a frame's
packet need not be decoded when nothing decoded later depends on it:

- it is *droppable* (``extractor.bitstream.Unit``: an H.264 picture with
  ``nal_ref_idc == 0``, an HEVC sub-layer non-reference picture, an AV1
  temporal unit that refreshes no reference slot), or
- it lies in a *tail*: every picture from it up to the next *reset* (IDR,
  shown key frame) is shown at no sample either, so nothing needs any of
  them, references included.

``SkipPlanner`` holds a look-ahead window of packets in decoding order (a
sample interval and a quarter of stream time, 16 to 512 packets, 32 MB at
most) and decides for the packet leaving the window whether to send it to
the decoder.
It keeps what makes the reasoning hold in check, and reports a doubt the
moment one appears:

- The successor q of a packet is the nearest later presentation time among
  the packets seen so far. An unseen packet can only bring q closer, so the
  interval checked covers the true one.
- Timestamps must put the pictures in the order the decoder outputs them:
  picture order count (POC) order within a coded video sequence, sequences in
  decoding order. Every packet is checked on arrival (no two equal POCs or
  timestamps; POC order equals timestamp order; no picture follows more
  earlier-decoded pictures in output order than the stream's declared
  reorder depth, which is what lets the decoder emit frames in order).
- Nothing is skipped before the decoder has output its first frame (time 0,
  ``first_output``), for packets at or before that frame, after the last
  sample time (the first such frame ends the decode, as in a full decode),
  or for packets the parser doubts; the last picture has no successor and is
  always decoded.

Then, as frames come out, ``check_interval`` verifies the decision directly:
when a new frame replaces the one shown, no skipped picture may have a time
in between at which a sample falls, and every decoded picture expected in
between must have come out. ``on_frame`` checks each frame's timestamp was a
decoded packet's. A doubt before anything was skipped only turns skipping
off; after a skip, the caller (``extractor.decode``) starts the video again
with skipping off, so the samples always equal a full decode's.
"""
from __future__ import annotations

import bisect
import collections
import dataclasses
import fractions
import math
from typing import Any

from yt8m.extractor.bitstream import Unit


@dataclasses.dataclass(slots=True)
class _Entry:
    item: Any
    pts: int | None
    unit: Unit
    index: int
    size: int


class SkipPlanner:
    """Decides which packets of one video stream go to the decoder.

    ``parser`` turns packet bytes into ``Unit``s (``extractor.bitstream``);
    ``time_base`` is the stream's; samples are at ``k / rate`` seconds from
    the first output frame, for ``k < kmax`` (None: no cap). Packets are held
    back for look-ahead (``_due``) before a decision.
    """

    def __init__(self, parser, time_base: fractions.Fraction, rate: fractions.Fraction,
                 kmax: int | None, min_window: int = 16, max_window: int = 512,
                 max_bytes: int = 32 << 20):
        self.parser = parser
        # rel_seconds * rate = (pts - first) * tb * rate = (pts - first) * _num / _den
        scale = fractions.Fraction(time_base) * fractions.Fraction(rate)
        self._num, self._den = scale.numerator, scale.denominator
        self.kmax = kmax
        # The window spans a sample interval and a quarter (so the next reset
        # after a tail is in it), at least ``min_window`` packets (reordering),
        # at most ``max_window`` packets or ``max_bytes`` bytes (memory).
        self._span = 1.25 / (float(time_base) * float(rate))
        self.min_window = max(4, int(min_window))
        self.max_window = max(self.min_window, int(max_window))
        self.max_bytes = int(max_bytes)
        self.enabled = True
        self.stopped: str | None = None   # why skipping was turned off
        self.restart: str | None = None   # a doubt that came after something was skipped
        self.first_pts: int | None = None
        self.next_k = 0
        self.skipped = 0
        self.sent = 0
        self._window: collections.deque[_Entry] = collections.deque()
        self._bytes = 0
        self._index = 0
        self._tail_until = -1        # packets before this decode index are a committed tail
        # Output-order check, per POC period: (poc, pts, index) sorted by POC.
        self._period = None
        self._order: list[tuple[int, int, int]] = []
        self._pruned_poc = -math.inf
        self._pruned_pts = -math.inf
        self._prev_period_pts = -math.inf
        # Presentation times of the pictures expected out of the decoder (bounds).
        self._out: list[int] = []
        # Verification: skipped pictures' times; decoded pictures not yet out.
        self._skipped_pts: list[int] = []
        self._sent: collections.Counter = collections.Counter()         # decoded pictures not yet out
        self._pending_out: collections.Counter = collections.Counter()  # ... expected to come out

    # ----------------------------------------------------------------- input

    def add(self, item, data: bytes, pts: int | None) -> list[tuple[Any, bool]]:
        """Takes the next packet (in decoding order); returns the decisions now due.

        Each decision is ``(item, send)``; items come back in the order given.
        """
        unit = self.parser.parse(data) if self.enabled else Unit()
        entry = _Entry(item, pts, unit, self._index, len(data))
        self._index += 1
        if self.enabled:
            if unit.doubt:
                self._doubt(unit.doubt)
            elif unit.picture:
                if pts is None:
                    self._doubt("a packet without a presentation timestamp")
                else:
                    self._check_order(entry)
        self._window.append(entry)
        self._bytes += entry.size
        out = []
        while self._window and self._due():
            out.append(self._pop())
        return out

    def _due(self) -> bool:
        """Whether the oldest packet held has enough look-ahead behind it."""
        n = len(self._window)
        if n > self.max_window or self._bytes > self.max_bytes:
            return True
        if n <= self.min_window:
            return False
        front, back = self._window[0].pts, self._window[-1].pts
        return front is None or back is None or back - front > self._span

    def drain(self, decide: bool = True) -> list[tuple[Any, bool]]:
        """All packets still held: at the end of the stream (``decide``: every
        later packet is known now, so the same rules apply) or before a read
        error is handled (``decide=False``: all are decoded, as a full decode
        would have, except a tail already being skipped)."""
        out = []
        while self._window:
            if decide:
                out.append(self._pop())
                continue
            entry = self._window.popleft()
            self._bytes -= entry.size
            out.append(self._emit(entry, entry.unit.picture and entry.index < self._tail_until))
        return out

    def _pop(self) -> tuple[Any, bool]:
        entry = self._window.popleft()
        self._bytes -= entry.size
        return self._emit(entry, self._decide(entry))

    def _emit(self, entry: _Entry, skip: bool) -> tuple[Any, bool]:
        if skip:
            self.skipped += 1
            bisect.insort(self._skipped_pts, entry.pts)
        else:
            self.sent += 1
            if entry.unit.picture and entry.pts is not None:
                self._sent[entry.pts] += 1
                if entry.unit.output:
                    self._pending_out[entry.pts] += 1
        return entry.item, not skip

    def _doubt(self, reason: str) -> None:
        if not self.enabled:
            return
        self.enabled = False
        self.stopped = reason
        if self.skipped:
            self.restart = reason

    # ----------------------------------------------------------------- order checks

    def _check_order(self, e: _Entry) -> None:
        u, pts = e.unit, e.pts
        if u.period != self._period:
            if self._order:
                self._prev_period_pts = max(self._prev_period_pts, max(p for _, p, _ in self._order))
            self._prev_period_pts = max(self._prev_period_pts, self._pruned_pts)
            self._order, self._period = [], u.period
            self._pruned_poc = self._pruned_pts = -math.inf
        if pts <= self._prev_period_pts:
            return self._doubt("a picture's timestamp is not after every picture of the "
                               "previous coded video sequence")
        if u.poc <= self._pruned_poc or pts <= self._pruned_pts:
            return self._doubt("a picture comes far later in decoding order than its output position")
        order = self._order
        i = bisect.bisect_left(order, (u.poc,))
        if i < len(order) and order[i][0] == u.poc:
            return self._doubt("two pictures with the same picture order count")
        if (i > 0 and order[i - 1][1] >= pts) or (i < len(order) and order[i][1] <= pts):
            return self._doubt("timestamps do not follow the pictures' output order")
        if len(order) - i > self.parser.reorder_depth():
            return self._doubt("pictures are reordered more than the stream declares")
        order.insert(i, (u.poc, pts, e.index))
        if u.output:
            bisect.insort(self._out, pts)
        if len(order) > 4 * self.max_window + 64:
            self._prune()

    def _prune(self) -> None:
        keep_from = self._index - 2 * self.max_window - 32
        kept = []
        for poc, pts, index in self._order:
            if index < keep_from:
                self._pruned_poc = max(self._pruned_poc, poc)
                self._pruned_pts = max(self._pruned_pts, pts)
            else:
                kept.append((poc, pts, index))
        self._order = kept
        low = min((e.pts for e in self._window if e.pts is not None), default=None)
        if low is not None:
            cut = bisect.bisect_left(self._out, low)
            if cut > 1:
                del self._out[:cut - 1]

    # ----------------------------------------------------------------- decisions

    def _first_sample_at_or_after(self, pts: int) -> int:
        """Smallest k with k / rate >= the time of ``pts``."""
        return -((-(pts - self.first_pts) * self._num) // self._den)

    def _sample_in(self, start: int, end: int | None) -> bool:
        """Whether a sample time lies in [time(start), time(end)) (end None: unbounded)."""
        k = self._first_sample_at_or_after(start)
        if self.kmax is not None and k >= self.kmax:
            return False
        if end is None:
            return True
        return k * self._den < (end - self.first_pts) * self._num

    def _shown(self, pts: int) -> bool:
        """Whether a picture at ``pts`` may be shown at a sample (True when unsure).

        Pictures after the last sample time count as shown: the first of them
        to come out ends the decode, as in a full decode (skipping them all
        would read the rest of the file for nothing).
        """
        k = self._first_sample_at_or_after(pts)
        if pts <= self.first_pts or k < self.next_k or (self.kmax is not None and k >= self.kmax):
            return True
        i = bisect.bisect_right(self._out, pts)
        if i >= len(self._out):
            return True   # no successor known
        return self._sample_in(pts, self._out[i])

    def _decide(self, e: _Entry) -> bool:
        """True to skip ``e``."""
        u = e.unit
        if not u.picture:
            return False   # parameter sets, SEI, delimiters: always decoded
        if e.index < self._tail_until:
            return True
        if not self.enabled or self.first_pts is None or u.doubt or e.pts is None:
            return False
        if self._shown(e.pts):
            return False
        if u.droppable:
            return True
        # A tail: every picture up to the next reset is shown at no sample.
        for later in self._window:
            lu = later.unit
            if lu.doubt:
                return False
            if lu.reset:
                self._tail_until = later.index
                return True
            if lu.picture and self._shown(later.pts):
                return False
        return False

    # ----------------------------------------------------------------- verification

    def first_output(self, pts: int) -> None:
        """The decoder output its first frame (time 0 of the samples)."""
        if self.first_pts is None:
            self.first_pts = pts

    def emitted(self, next_k: int) -> None:
        """Samples below ``next_k`` have been emitted."""
        self.next_k = next_k

    def on_frame(self, pts: int | None) -> None:
        """A frame came out of the decoder; its timestamp must be a decoded packet's."""
        if pts is not None and self._sent.get(pts):
            for table in (self._sent, self._pending_out):
                if table.get(pts):
                    table[pts] -= 1
                    if not table[pts]:
                        del table[pts]
            return
        if self.enabled or self.skipped:
            self._doubt("a decoded frame does not match a decoded packet's timestamp"
                        if pts is not None else "a decoded frame without a timestamp")

    def anomaly(self, reason: str) -> None:
        """Something the decode loop saw (a dropped frame, a decode error, a corrupt frame)."""
        self._doubt(reason)
        if self.skipped and self.restart is None:
            self.restart = reason

    def check_interval(self, shown_pts: int, next_pts: int) -> None:
        """``next_pts`` replaces ``shown_pts`` as the frame shown: verify what was skipped."""
        if not self.skipped:
            return
        sk = self._skipped_pts
        i = bisect.bisect_right(sk, shown_pts)
        if i < len(sk) and sk[i] < next_pts and self._sample_in(sk[i], next_pts):
            self.anomaly("a skipped picture would have been shown at a sample")
            return
        del sk[:i]
        for pts in self._pending_out:
            if shown_pts < pts < next_pts:
                self.anomaly("a decoded picture did not come out of the decoder where expected")
                return

    def check_end(self, prev_pts: int | None, last_pts: int, has_duration: bool) -> None:
        """At the end of the stream: no skipped picture may come after the last
        frame; and when that frame has no duration its length is the last frame
        interval, which must then be the full decode's."""
        if not self.skipped:
            return
        sk = self._skipped_pts
        if sk and sk[-1] > last_pts:
            self.anomaly("a skipped picture comes after the last decoded frame")
            return
        if has_duration:
            return
        lo = prev_pts if prev_pts is not None else -math.inf
        i = bisect.bisect_right(sk, lo)
        if i < len(sk) and sk[i] < last_pts:
            self.anomaly("the last frame has no duration and the frame before it was skipped")


def min_window(reorder: int) -> int:
    """Fewest packets to look ahead: enough to see past the stream's reordering."""
    return max(16, 2 * reorder + 8)
