"""Deadlines without an event loop: a heap of (when, callback) that the shell runs.

Cores schedule work with `call_at(when, fn, *args)` and get a `TimerHandle` they can cancel.
The asyncio shell arms one real timer at `next_deadline()` and calls `run_due(now)` when it
fires; tests advance a fake clock and call `run_due` themselves, so every RFC timer can be
asserted to the exact deadline without sleeping.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

__all__ = ["TimerHandle", "Timers"]


_sequence = itertools.count()


class TimerHandle:
    __slots__ = ("_seq", "args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False
        # heapq is not stable: equal deadlines must still fire in scheduling order, or runs
        # (and the tests replaying them) stop being deterministic
        self._seq = next(_sequence)

    def cancel(self) -> None:
        self.cancelled = True
        self.callback = _noop
        self.args = ()

    def __lt__(self, other: TimerHandle) -> bool:
        return (self.when, self._seq) < (other.when, other._seq)


def _noop(*_: Any) -> None:
    return None


class Timers:
    """A min-heap of TimerHandles with lazy cancellation."""

    __slots__ = ("_heap", "on_earlier")

    def __init__(self) -> None:
        self._heap: list[TimerHandle] = []
        # Called with the new earliest deadline when a timer is scheduled before every other;
        # the shell uses it to re-arm its single loop timer.
        self.on_earlier: Callable[[float], None] | None = None

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        handle = TimerHandle(when, callback, args)
        heap = self._heap
        earliest = not heap or when < heap[0].when
        heapq.heappush(heap, handle)
        if earliest and self.on_earlier is not None:
            self.on_earlier(when)
        return handle

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and heap[0].cancelled:
            heapq.heappop(heap)
        return heap[0].when if heap else None

    def run_due(self, now: float) -> int:
        """Run every callback whose deadline is <= now, in deadline order (scheduling order
        among equal deadlines). Returns how many."""
        heap = self._heap
        ran = 0
        while heap and heap[0].when <= now:
            handle = heapq.heappop(heap)
            if handle.cancelled:
                continue
            callback, args = handle.callback, handle.args
            handle.cancelled = True  # a fired handle must not be cancellable into a no-op count
            callback(*args)
            ran += 1
        return ran

    def __len__(self) -> int:
        return sum(1 for h in self._heap if not h.cancelled)
