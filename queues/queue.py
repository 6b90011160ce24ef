"""One queue's runtime state: settings and strategy, members, who is free, who waits where,
counts for the empty rules, and the statistics reports and announcements read.

Waiting callers are kept in buckets keyed by their required skills (callers needing the same
skills share a heap), plus one bucket per preferred agent for callers in their sticky phase;
an agent looks only at the heads of the buckets whose skills it has, so the cost of a routing
decision depends on how many distinct skill sets wait, not on how many callers do.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from queues.callers import Bucket, Caller, Line, Skills
from queues.settings import Member, QueueSettings
from queues.strategies import Strategy

if TYPE_CHECKING:
    from queues.agent import Agent

__all__ = ["QueueSnapshot", "QueueState", "QueueStats"]


class QueueStats:
    """Counters since start (or `reset`). Service level = callers connected within
    service_level_seconds / (connected + abandoned after service_level_seconds): callers who
    hang up quickly are not held against the queue."""

    __slots__ = ("abandoned", "abandoned_in_sl", "connected", "connected_in_sl", "entered",
                 "handle_times", "hold_time", "overflow_empty", "overflow_full", "timeouts")

    def __init__(self, samples: int) -> None:
        self.entered = self.connected = self.connected_in_sl = 0
        self.abandoned = self.abandoned_in_sl = self.timeouts = 0
        self.overflow_full = self.overflow_empty = 0
        self.hold_time = 0.0  # total seconds connected callers waited
        self.handle_times: deque[float] = deque(maxlen=samples)

    def service_level(self) -> float | None:
        denominator = self.connected + self.abandoned - self.abandoned_in_sl
        return self.connected_in_sl / denominator if denominator else None

    def median_handle_time(self) -> float | None:
        return statistics.median(self.handle_times) if self.handle_times else None


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    name: str
    strategy: str
    callers: int  # in the queue: waiting, ringing or in retry delay
    waiting: int  # offerable right now
    free_agents: int
    members_logged_in: int
    members_available: int  # logged in, registered and available (busy ones included)
    entered: int
    connected: int
    abandoned: int
    timeouts: int
    overflow_full: int
    overflow_empty: int
    average_hold_time: float | None
    service_level: float | None
    median_handle_time: float | None


class QueueState:
    __slots__ = ("_satisfies", "buckets", "callers", "free", "levels", "line", "max_penalty",
                 "members", "order", "settings", "stats", "sticky", "strategy")

    def __init__(self, settings: QueueSettings, strategy: Strategy) -> None:
        self.settings = settings
        self.strategy = strategy
        self.members: dict[str, Member] = {}
        self.order: dict[str, int] = {}
        self.max_penalty = 0
        self.free: dict[str, Agent] = {}  # members offerable by this queue now, by agent id
        self.buckets: dict[Skills, Bucket] = {}
        self.sticky: dict[str, Bucket] = {}  # by preferred agent id
        self.line = Line()
        self.callers: dict[str, Caller] = {}
        self.levels = [0, 0, 0, 0]  # members per Agent.level
        self.stats = QueueStats(settings.handle_time_samples)
        self._satisfies: dict[tuple[str, Skills], bool] = {}
        self.apply(settings, strategy)

    def apply(self, settings: QueueSettings, strategy: Strategy) -> None:
        """New settings for the next offers; callers keep their place."""
        self.settings = settings
        self.strategy = strategy
        self.members = {m.agent: m for m in settings.members}
        self.order = {m.agent: i for i, m in enumerate(settings.members)}
        self.max_penalty = max((m.penalty for m in settings.members), default=0)
        self._satisfies.clear()
        if self.stats.handle_times.maxlen != settings.handle_time_samples:
            self.stats.handle_times = deque(self.stats.handle_times,
                                            maxlen=settings.handle_time_samples)

    def satisfies(self, agent: str, required: Skills) -> bool:
        if not required:
            return True
        key = (agent, required)
        ok = self._satisfies.get(key)
        if ok is None:
            member = self.members.get(agent)
            skills = member.skills if member is not None else {}
            ok = all(name in skills and skills[name] >= low for name, low in required)
            self._satisfies[key] = ok
        return ok

    def bucket_for(self, c: Caller) -> Bucket:
        if c.preferred is not None:
            table, key = self.sticky, c.preferred
            b = table.get(key)
            if b is None:
                b = table[key] = Bucket()
            return b
        b = self.buckets.get(c.required)
        if b is None:
            b = self.buckets[c.required] = Bucket()
        return b

    def leave_bucket(self, c: Caller) -> None:
        b = c.bucket
        if b is None:
            return
        b.remove(c)
        if not b.live:
            # distinct skill sets come and go over a day: do not keep their empty heaps
            if c.preferred is not None and self.sticky.get(c.preferred) is b:
                del self.sticky[c.preferred]
            elif self.buckets.get(c.required) is b:
                del self.buckets[c.required]

    def drop_empty_buckets(self) -> None:
        for key in [k for k, b in self.buckets.items() if not b.live]:
            del self.buckets[key]
        for agent in [k for k, b in self.sticky.items() if not b.live]:
            del self.sticky[agent]

    def is_empty(self, rule: str) -> bool:
        lv = self.levels
        if rule == "logged_out":
            return lv[1] + lv[2] + lv[3] == 0
        if rule == "unreachable":
            return lv[2] + lv[3] == 0
        if rule == "unavailable":
            return lv[3] == 0
        return False

    def estimated_wait(self, position: int) -> float | None:
        """position * median recent handle time / members available (busy ones included);
        None when there is no sample yet or nobody to serve."""
        median = self.stats.median_handle_time()
        if median is None or self.levels[3] == 0:
            return None
        return position * median / self.levels[3]

    def snapshot(self) -> QueueSnapshot:
        st = self.stats
        return QueueSnapshot(
            name=self.settings.name, strategy=self.settings.strategy,
            callers=len(self.callers),
            waiting=sum(b.live for b in self.buckets.values())
            + sum(b.live for b in self.sticky.values()),
            free_agents=len(self.free), members_logged_in=sum(self.levels[1:]),
            members_available=self.levels[3], entered=st.entered, connected=st.connected,
            abandoned=st.abandoned, timeouts=st.timeouts, overflow_full=st.overflow_full,
            overflow_empty=st.overflow_empty,
            average_hold_time=st.hold_time / st.connected if st.connected else None,
            service_level=st.service_level(), median_handle_time=st.median_handle_time(),
        )
