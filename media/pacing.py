"""Frame pacing arithmetic for sending media at a fixed packet time.

Deadlines are absolute: frame n is due at start + n * ptime, so scheduling jitter never
accumulates into drift (as repeated `sleep(0.02)` would). After a stall of more than
`max_burst` frames the clock resyncs (the stream continues from now) rather than sending a
burst the far end's jitter buffer would have to drop. Pure: callers pass `now`.
"""

from __future__ import annotations

import math

__all__ = ["FrameClock"]


class FrameClock:
    """The schedule for one outgoing stream.

    Typical use in the runtime: `n = clock.take(loop.time())`, send n frames, then sleep
    `clock.wait(loop.time())` seconds.
    """

    __slots__ = ("_n", "_start", "max_burst", "ptime", "resyncs", "skipped_frames")

    def __init__(self, start: float, ptime: float = 0.020, max_burst: int = 5) -> None:
        if ptime <= 0 or max_burst < 1:
            raise ValueError("ptime and max_burst must be positive")
        self._start = start
        self.ptime = ptime
        self.max_burst = max_burst
        self._n = 0  # frames taken so far
        self.resyncs = 0
        self.skipped_frames = 0

    @property
    def frames_taken(self) -> int:
        return self._n

    def deadline(self, n: int | None = None) -> float:
        """When frame n (default: the next one to take) is due."""
        return self._start + (self._n if n is None else n) * self.ptime

    def _due_through(self, now: float) -> int:
        """Index of the last frame due at `now` (-1 before start), consistent with
        `deadline()` despite floating-point rounding in the division."""
        k = math.floor((now - self._start) / self.ptime)
        if self._start + (k + 1) * self.ptime <= now:
            k += 1
        elif self._start + k * self.ptime > now:
            k -= 1
        return k

    def due(self, now: float) -> int:
        """How many frames are due and not yet taken (no side effects)."""
        return max(0, self._due_through(now) + 1 - self._n)

    def late(self, now: float) -> float:
        """Seconds the next frame is overdue (negative: time left until it is due)."""
        return now - self.deadline()

    def take(self, now: float) -> int:
        """Frames to send now. Normally 0 or 1; up to `max_burst` to catch up after a short
        hiccup; after a longer stall 1, and the schedule is re-anchored at `now` (the frames
        in between are counted in `skipped_frames`, never sent)."""
        k = self.due(now)
        if k > self.max_burst:
            self.resyncs += 1
            self.skipped_frames += k - 1
            self._start = now - self._n * self.ptime
            k = 1
        self._n += k
        return k

    def wait(self, now: float) -> float:
        """Seconds to sleep until the next frame is due (0 if it already is)."""
        return max(0.0, self.deadline() - now)
