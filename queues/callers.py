"""Queued callers, live offers, and the two orders callers are kept in.

A queue serves callers by (higher priority first, then earlier arrival). Two structures keep
that order without ever scanning the callers:

- `Bucket`: a heap of the callers that wait for an agent right now (not ringing, not in their
  retry delay), one per distinct set of required skills (and one per preferred agent), with
  lazy deletion. Peek and push are O(log n).
- `Line`: every caller in the queue (waiting, ringing or retrying: they all keep their place),
  as one append-only array per priority with a Fenwick tree of who is still there, so a
  caller's position is O(log n + priorities) and leaving is O(log n).
"""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING

from queues.deadlines import Deadline, Deadlines

if TYPE_CHECKING:
    from queues.agent import Agent

__all__ = ["GONE", "OFFERING", "RETRY", "WAITING", "Bucket", "Caller", "Line", "OfferState", "Skills"]

WAITING = "waiting"  # in a bucket, offerable
OFFERING = "offering"  # at least one live offer
RETRY = "retry"  # last offer failed; offerable again after the queue's retry_delay
GONE = "gone"  # connected, abandoned or overflowed: no longer the distributor's

Skills = tuple[tuple[str, float], ...]  # required (skill, minimum proficiency), sorted

_generation = itertools.count()


class Caller:
    __slots__ = (
        "bucket", "gen", "id", "joined_at", "level", "line_index", "offers", "preferred",
        "priority", "queue", "required", "retry_timer", "seq", "state", "sticky_timer",
        "timeout_timer", "tried", "widen_timer",
    )

    def __init__(self, caller_id: str, queue: str, priority: int, required: Skills,
                 preferred: str | None, joined_at: float, seq: int) -> None:
        self.id = caller_id
        self.queue = queue
        self.priority = priority
        self.required = required
        self.preferred = preferred  # only while the sticky phase lasts
        self.joined_at = joined_at
        self.seq = seq
        self.state = WAITING
        self.offers: dict[int, OfferState] = {}
        # agents whose offer to this caller failed: offered again only when nobody else is free
        self.tried: set[str] = set()
        self.bucket: Bucket | None = None
        self.gen = -1
        self.level: _Level | None = None
        self.line_index = -1
        self.timeout_timer: Deadline | None = None
        self.retry_timer: Deadline | None = None
        self.sticky_timer: Deadline | None = None
        self.widen_timer: Deadline | None = None

    def cancel_timers(self, deadlines: Deadlines) -> None:
        for t in (self.timeout_timer, self.retry_timer, self.sticky_timer, self.widen_timer):
            if t is not None:
                deadlines.cancel(t)
        self.timeout_timer = self.retry_timer = self.sticky_timer = self.widen_timer = None


class OfferState:
    __slots__ = ("agent", "caller", "deadline", "offer_id", "queue", "started", "timer")

    def __init__(self, offer_id: int, caller: Caller, agent: Agent, queue: str, started: float,
                 deadline: float) -> None:
        self.offer_id = offer_id
        self.caller = caller
        self.agent = agent
        self.queue = queue
        self.started = started
        self.deadline = deadline
        self.timer: Deadline | None = None


class Bucket:
    """Waiting callers in service order; removal is lazy (a stale entry's generation no longer
    matches its caller's) and the heap is rebuilt when stale entries outnumber live ones."""

    __slots__ = ("heap", "live")

    def __init__(self) -> None:
        self.heap: list[tuple[int, int, int, Caller]] = []
        self.live = 0

    def push(self, c: Caller) -> None:
        gen = next(_generation)
        c.bucket = self
        c.gen = gen
        heapq.heappush(self.heap, (-c.priority, c.seq, gen, c))
        self.live += 1

    def peek(self) -> Caller | None:
        heap = self.heap
        while heap:
            entry = heap[0]
            c = entry[3]
            if c.bucket is self and c.gen == entry[2]:
                return c
            heapq.heappop(heap)
        return None

    def remove(self, c: Caller) -> None:
        if c.bucket is not self:
            return
        c.bucket = None
        c.gen = -1
        self.live -= 1
        heap = self.heap
        if len(heap) > 64 and len(heap) > 4 * self.live:
            self.heap = [e for e in heap if e[3].bucket is self and e[3].gen == e[2]]
            heapq.heapify(self.heap)

    def __len__(self) -> int:
        return self.live


class _Level:
    """Callers of one priority in arrival order; a Fenwick tree counts who is still here."""

    __slots__ = ("callers", "live", "tree")

    def __init__(self) -> None:
        self.callers: list[Caller | None] = []
        self.tree: list[int] = [0] * 65  # 1-based, capacity 64
        self.live = 0

    def _rebuild(self, capacity: int) -> None:
        tree = [0] * (capacity + 1)
        for i, c in enumerate(self.callers, 1):
            if c is not None:
                tree[i] = 1
        # every node pushes its sum to its parent, also past the last caller: later appends
        # update those parents and must find the earlier counts there
        for i in range(1, capacity + 1):
            parent = i + (i & -i)
            if parent <= capacity:
                tree[parent] += tree[i]
        self.tree = tree

    def _add(self, index: int, delta: int) -> None:
        tree = self.tree
        i = index + 1
        n = len(tree)
        while i < n:
            tree[i] += delta
            i += i & -i

    def append(self, c: Caller) -> None:
        callers = self.callers
        c.line_index = len(callers)
        callers.append(c)
        self.live += 1
        if len(callers) >= len(self.tree):
            self._rebuild(2 * (len(self.tree) - 1))
        else:
            self._add(c.line_index, 1)

    def remove(self, c: Caller) -> None:
        self.callers[c.line_index] = None
        self._add(c.line_index, -1)
        self.live -= 1
        c.line_index = -1
        if len(self.callers) > 64 and self.live * 2 < len(self.callers):
            kept: list[Caller | None] = [x for x in self.callers if x is not None]
            for i, x in enumerate(kept):
                assert x is not None
                x.line_index = i
            self.callers = kept
            self._rebuild(len(self.tree) - 1)

    def rank(self, c: Caller) -> int:
        """How many callers of this level are at or before c."""
        tree = self.tree
        i = c.line_index + 1
        total = 0
        while i > 0:
            total += tree[i]
            i -= i & -i
        return total


class Line:
    """Everyone in one queue, in service order, with O(log n) positions."""

    __slots__ = ("count", "levels")

    def __init__(self) -> None:
        self.levels: dict[int, _Level] = {}
        self.count = 0

    def add(self, c: Caller) -> None:
        level = self.levels.get(c.priority)
        if level is None:
            level = self.levels[c.priority] = _Level()
        level.append(c)
        c.level = level
        self.count += 1

    def remove(self, c: Caller) -> None:
        level = c.level
        if level is None:
            return
        level.remove(c)
        c.level = None
        self.count -= 1
        if level.live == 0:
            self.levels.pop(c.priority, None)

    def position(self, c: Caller) -> int:
        """1-based: how many callers will be served before c, plus one."""
        if c.level is None:
            raise KeyError(c.id)
        ahead = sum(lv.live for p, lv in self.levels.items() if p > c.priority)
        return ahead + c.level.rank(c)

    def __len__(self) -> int:
        return self.count
