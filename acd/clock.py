"""Time for the application: a monotonic clock for protocol timers and a UTC wall clock
for anything that is stored or shown. Cores never read time themselves; they get `now`."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds: transaction timers, pacing, leases."""
        ...

    def wall(self) -> float:
        """UTC epoch seconds: binding expiry, CDRs, events."""
        ...


class SystemClock:
    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()
