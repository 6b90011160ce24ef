"""One queue's runtime state: settings and strategy, members, who is free, who waits where,
counts for the empty rules, and the statistics reports and announcements read.

Waiting callers are kept in buckets keyed by their required skills (callers needing the same
skills share a heap), plus one bucket per preferred agent for callers in their sticky phase;
an agent looks only at the heads of the buckets whose skills it has, so the cost of a routing
decision depends on how many distinct skill sets wait, not on how many callers do.

Under a ranked strategy (see queues.strategies) the free members are also kept in a heap by
their rank, so a plain caller (no required skills, no failed offers) finds its agent without a
look at every free member once more than `RANKED_FROM` are free (fewer are scanned: cheaper
than keeping a heap for them, and a heap nobody reads stops taking pushes). Entries are
dropped lazily: one is live while its agent is free and it is the agent's latest push. A rank
only grows while its agent stays free (idle_since moves forward when an external call ends;
counters grow while the agent is busy, not free), so a top entry whose rank is out of date is
re-filed when found; the events that can lower ranks (settings or strategy applied, the daily
counter reset) mark the heap for a rebuild instead.
Under round_robin (circular) the same entries, keyed by (penalty, member order), are kept in a
sorted list instead, searched by bisection for the first free member after the last pick.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import statistics
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from queues.callers import Bucket, Caller, Line, Skills
from queues.settings import Member, QueueSettings
from queues.strategies import Strategy

if TYPE_CHECKING:
    from queues.agent import Agent

__all__ = ["QueueSnapshot", "QueueState", "QueueStats"]

_rank_gen = itertools.count()
RANKED_FROM = 8  # free members from which a plain caller is routed by the heap


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
                 "members", "order", "rank_gen", "ranked", "ranked_stale", "settings", "stats",
                 "sticky", "strategy")

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
        # free members by rank, under a ranked strategy: (rank, gen, agent id), a heap; under
        # a circular one: ((penalty, order), gen, agent id), a sorted list
        self.ranked: list[tuple[tuple[Any, ...], int, str]] = []
        self.rank_gen: dict[str, int] = {}  # agent id -> gen of its latest entry
        self.ranked_stale = True  # rebuild before the next use; no pushes until then
        self.apply(settings, strategy)

    def apply(self, settings: QueueSettings, strategy: Strategy) -> None:
        """New settings for the next offers; callers keep their place."""
        self.settings = settings
        self.strategy = strategy
        self.members = {m.agent: m for m in settings.members}
        self.order = {m.agent: i for i, m in enumerate(settings.members)}
        self.max_penalty = max((m.penalty for m in settings.members), default=0)
        self._satisfies.clear()
        self.ranked_stale = True  # penalties, member order or the strategy may have changed
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

    # -- free members by rank --------------------------------------------------------------

    def rank_push(self, aid: str, a: Agent) -> None:
        """`aid` has just become free here (callers check `ranked_stale` first: a stale
        heap is rebuilt whole at its next use and takes no pushes meanwhile)."""
        heap = self.ranked
        if len(heap) > 2 * len(self.free) + 64:
            # mostly dead entries, or a queue whose few free members the distributor
            # routes by scanning: stop pushing; rebuilt when the heap is needed again
            self.ranked_stale = True
            return
        m = self.members[aid]
        gen = next(_rank_gen)
        self.rank_gen[aid] = gen
        if self.strategy.circular:  # sorted by (penalty, order), which only apply() changes
            bisect.insort(heap, ((m.penalty, self.order[aid]), gen, aid))
        else:
            heapq.heappush(heap, (self.strategy.rank(m.penalty, self.order[aid], a.idle_since,
                                                     a.calls, a.talk_time), gen, aid))

    def next_free(self, after: int) -> Agent | None:
        """Circular strategies: the first free member of the lowest tier whose member order
        is above `after`, else the first of that tier; None when no member is free."""
        if self.ranked_stale:
            self._rerank()
        entries, free, gens = self.ranked, self.free, self.rank_gen
        while entries:
            _, gen, aid = entries[0]
            if free.get(aid) is None or gens.get(aid) != gen:
                del entries[0]
                continue
            break
        else:
            return None
        tier, first = entries[0][0][0], entries[0][2]
        j = bisect.bisect_left(entries, ((tier, after + 1),))
        while j < len(entries):
            (penalty, _), gen, aid = entries[j]
            if penalty != tier:
                break
            a = free.get(aid)
            if a is None or gens.get(aid) != gen:
                del entries[j]
                continue
            return a
        return free[first]

    def best_free(self) -> Agent | None:
        """The free member with the smallest rank (ranked strategies only); None when no
        member is free."""
        rank = self.strategy.rank
        if self.ranked_stale:
            self._rerank()
        heap, free, gens = self.ranked, self.free, self.rank_gen
        while heap:
            key, gen, aid = heap[0]
            a = free.get(aid)
            if a is None or gens.get(aid) != gen:
                heapq.heappop(heap)
                continue
            m = self.members[aid]
            now = rank(m.penalty, self.order[aid], a.idle_since, a.calls, a.talk_time)
            if now != key:
                gen = next(_rank_gen)
                gens[aid] = gen
                heapq.heapreplace(heap, (now, gen, aid))
                continue
            return a
        return None

    def rerank(self) -> None:
        """Ranks may have fallen (counters reset): rebuild before the next use."""
        self.ranked_stale = True

    def _rerank(self) -> None:
        strategy = self.strategy
        rank = strategy.rank
        members, order = self.members, self.order
        gens: dict[str, int] = {}
        heap = []
        for aid, a in self.free.items():
            m = members[aid]
            gen = gens[aid] = next(_rank_gen)
            key = ((m.penalty, order[aid]) if strategy.circular
                   else rank(m.penalty, order[aid], a.idle_since, a.calls, a.talk_time))
            heap.append((key, gen, aid))
        if strategy.circular:
            heap.sort()
        else:
            heapq.heapify(heap)
        self.ranked, self.rank_gen, self.ranked_stale = heap, gens, False

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
