"""The distributor's deadline heap: sip.timers.Timers' contract (call_at / next_deadline /
run_due, lazy cancel, equal deadlines in scheduling order) with entries the heap compares in C.

Every offer schedules a lease and most are cancelled within seconds by an answer, so the heap
carries many cancelled entries; with Python-level `__lt__` each push cost a dozen interpreted
comparisons, a fifth of a routing decision. Entries here are lists [when, seq, callback, args]
(seq is unique, so comparison never reaches the callback), and the heap is rebuilt when
cancelled entries outnumber live ones.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

__all__ = ["Deadline", "Deadlines"]

Deadline = list[Any]  # [when, seq, callback or None once cancelled/fired, args]


class Deadlines:
    __slots__ = ("_cancelled", "_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[Deadline] = []
        self._seq = itertools.count()
        self._cancelled = 0

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Deadline:
        entry = [when, next(self._seq), callback, args]
        heapq.heappush(self._heap, entry)
        return entry

    def cancel(self, entry: Deadline) -> None:
        if entry[2] is None:
            return
        entry[2] = None
        entry[3] = ()
        self._cancelled += 1
        heap = self._heap
        if self._cancelled > 1024 and self._cancelled * 2 > len(heap):
            self._heap = [e for e in heap if e[2] is not None]
            heapq.heapify(self._heap)
            self._cancelled = 0

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
            self._cancelled -= 1
        return heap[0][0] if heap else None

    def run_due(self, now: float) -> int:
        """Run every callback due at or before `now`, in (deadline, scheduling) order."""
        heap = self._heap
        ran = 0
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            callback = entry[2]
            if callback is None:
                self._cancelled -= 1
                continue
            args = entry[3]
            entry[2] = None  # fired: a later cancel is a no-op and not counted
            entry[3] = ()
            callback(*args)
            ran += 1
            heap = self._heap  # a callback's cancel may have rebuilt it
        return ran

    def __len__(self) -> int:
        return len(self._heap) - self._cancelled
