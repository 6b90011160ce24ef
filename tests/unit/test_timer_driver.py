"""acd.runtime.daemon.TimerDriver: one event-loop timer at the earliest deadline of the SIP
Timers heap, on a loop that, like uvloop, may fire a timer early."""

from __future__ import annotations

from typing import Any, cast

from acd.runtime.daemon import TIMER_SLACK, TimerDriver
from sip.timers import Timers


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t


class Handle:
    def __init__(self, when: float, cb: Any) -> None:
        self.when, self.cb, self.cancelled = when, cb, False

    def cancel(self) -> None:
        self.cancelled = True


class EarlyLoop:
    """call_later fires `early` seconds before the delay is up (libuv's whole
    milliseconds counted from a cached loop time)."""

    def __init__(self, clock: Clock, early: float) -> None:
        self.clock, self.early = clock, early
        self.handles: list[Handle] = []
        self.wakeups = 0

    def call_later(self, delay: float, cb: Any) -> Handle:
        h = Handle(self.clock.t + max(0.0, delay - self.early), cb)
        self.handles.append(h)
        return h

    def run(self, until: float) -> None:
        while True:
            live = [h for h in self.handles if not h.cancelled]
            if not live:
                break
            h = min(live, key=lambda x: x.when)
            if h.when > until:
                break
            self.handles.remove(h)
            self.clock.t = max(self.clock.t, h.when) + 0.0001  # an iteration takes time
            self.wakeups += 1
            h.cb()
        self.clock.t = max(self.clock.t, until)


def test_a_timer_fired_early_wakes_the_loop_once_more_not_until_the_clock_gets_there() -> None:
    clock = Clock()
    loop = EarlyLoop(clock, early=0.0009)
    timers = Timers()
    driver = TimerDriver(cast(Any, loop), timers, cast(Any, clock))
    fired: list[float] = []
    deadlines = [100.0 + 0.002 * i + 0.0003 for i in range(1, 201)]
    for d in deadlines:
        timers.call_at(d, lambda: fired.append(clock.t))
    loop.run(101.0)
    assert len(fired) == 200
    assert all(f >= d for f, d in zip(fired, deadlines, strict=True))  # never early
    assert all(f - d <= TIMER_SLACK + 0.0002 for f, d in zip(fired, deadlines, strict=True))
    # a loop that re-armed for the sub-millisecond remainder would wake every 0.1 ms (the
    # fake loop's early firing would repeat until the clock passed the deadline)
    assert loop.wakeups <= 2 * len(deadlines)
    driver.close()
