"""Distribution strategies: which of the free, eligible members a caller is offered to.

The distributor hands a strategy the candidates -- members of the queue that are free right
now and have the caller's required skills (agents who already let this caller's offer fail
are left out while anyone else is free) -- and offers the caller to every candidate the
strategy returns. Hunt strategies return one, ring strategies several. A strategy instance
lives as long as its queue keeps that strategy, so it may remember things (round_robin does).

Tiers: every strategy except ring_progressively considers only the candidates with the lowest
penalty present (`lowest_tier`): a higher tier is offered only when no lower-tier member is
free, as FreeSWITCH tiers without tier rules. Ties are broken by member order (the order of
the queue's member list), so every choice is deterministic given the random source.

Users add a strategy by subclassing `Strategy`, setting `name`, and decorating the class with
`@register`; queues then name it in their settings.

Ranked strategies: a hunt strategy whose pick is always the candidate with the smallest
`rank(penalty, order, idle_since, calls, talk_time)` (longest_idle, fewest_calls,
least_talk_time, linear, and skills for a caller who needs none) defines `rank` beside
`choose`. The queue then keeps its free members in a heap by rank, and a caller with no
required skills and no failed offers is routed by a look at the heap's top instead of a
`choose` over every free member: with hundreds of idle agents, an arrival costs O(log n), not
O(n). round_robin does the same with the free members sorted by (penalty, order) (`after`,
`picked`). A subclass that overrides `choose` without `rank` (or `after`) is routed by its own
`choose` (see `__init_subclass__`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from queues.settings import QueueSettings

__all__ = [
    "Candidate", "Context", "FewestCalls", "LeastTalkTime", "Linear", "LongestIdle", "Random",
    "RingAll", "RingProgressively", "RoundRobin", "SkillsBased", "Strategy", "WeightedRandom",
    "lowest_tier", "make_strategy", "register", "strategy_names",
]


# Plain (not frozen) slotted records: one of each is built per routing decision, and a frozen
# dataclass's __init__ costs several times more. Strategies must not modify them.
@dataclass(slots=True)
class Candidate:
    agent: str
    order: int  # position in the queue's member list
    penalty: int
    weight: float
    skills: Mapping[str, float]
    idle_since: float
    calls: int  # answered queue calls since login
    talk_time: float  # seconds since login


@dataclass(slots=True)
class Context:
    queue: QueueSettings
    now: float
    wait: float  # seconds the caller has waited
    required: tuple[tuple[str, float], ...]  # the caller's required skills
    random: Callable[[], float]  # floats in [0, 1)
    order: Mapping[str, int]  # member order of the queue, by agent id


def lowest_tier(candidates: Sequence[Candidate]) -> list[Candidate]:
    if len(candidates) <= 1:
        return list(candidates)  # the usual case when callers wait: one agent just got free
    low = min(c.penalty for c in candidates)
    return [c for c in candidates if c.penalty == low]


class Strategy:
    name: ClassVar[str] = ""
    rings_many: ClassVar[bool] = False  # may return several candidates
    ranked: ClassVar[bool] = False  # defines rank(): see "Ranked strategies" above
    circular: ClassVar[bool] = False  # defines after() and picked(): see RoundRobin

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        # an inherited rank (or after) need not agree with a choose of the subclass's own
        own = "choose" in cls.__dict__
        cls.ranked = "rank" in cls.__dict__ or (not own and cls.ranked)
        cls.circular = "after" in cls.__dict__ or (not own and cls.circular)

    def rank(self, penalty: int, order: int, idle_since: float, calls: int,
             talk_time: float) -> tuple[Any, ...]:
        """For a ranked strategy: the sort key under which choose() picks the smallest (for a
        caller with no required skills, none of the candidates tried before)."""
        raise NotImplementedError

    def after(self, order: Mapping[str, int]) -> int:
        """For a circular strategy: choose() picks the first candidate of the lowest tier
        whose member order is above this, else the first of that tier."""
        raise NotImplementedError

    def picked(self, agent: str) -> None:
        """For a circular strategy: `agent` was picked without choose()."""
        raise NotImplementedError

    def _smallest_rank(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        """choose() of a ranked strategy, from its rank() alone, so that the queue's heap and
        choose() cannot disagree: the rank leads with the penalty, so the smallest rank is
        the smallest in the lowest tier."""
        rank = self.rank
        return [min(candidates, key=lambda c: rank(c.penalty, c.order, c.idle_since, c.calls,
                                                   c.talk_time))] if candidates else []

    def choose(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        raise NotImplementedError

    def admits(self, penalty: int, wait: float, queue: QueueSettings) -> bool:
        """May a member of this penalty be offered a caller who has waited `wait` seconds?
        Lets the distributor rule out an agent without building candidates. A strategy that
        overrides this must set `admits_by_wait`."""
        return True

    admits_by_wait: ClassVar[bool] = False

    def next_widening(self, wait: float, queue: QueueSettings,
                      max_penalty: int) -> float | None:
        """The wait (seconds) at which more members become admissible, if ever."""
        return None


_REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def strategy_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def make_strategy(name: str) -> Strategy:
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(strategy_names())}") \
            from None
    return cls()


def _by_order(candidates: Sequence[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=lambda c: c.order)


@register
class RingAll(Strategy):
    """Every free member of the lowest free tier at once; the first to answer wins."""

    name = "ring_all"
    rings_many = True

    def choose(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        return _by_order(lowest_tier(candidates))


@register
class RingProgressively(Strategy):
    """Ring-all over a widening set: members with penalty k join once the caller has waited
    k * tier_step seconds (tier_step 0: everyone at once). Members already ringing keep
    ringing when the set widens."""

    name = "ring_progressively"
    rings_many = True
    admits_by_wait = True

    def admits(self, penalty: int, wait: float, queue: QueueSettings) -> bool:
        return queue.tier_step <= 0 or penalty * queue.tier_step <= wait

    def choose(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        q = ctx.queue
        return _by_order([c for c in candidates if self.admits(c.penalty, ctx.wait, q)])

    def next_widening(self, wait: float, queue: QueueSettings,
                      max_penalty: int) -> float | None:
        step = queue.tier_step
        if step <= 0:
            return None
        k = math.floor(wait / step) + 1
        return k * step if k <= max_penalty else None


@register
class Linear(Strategy):
    """The first free member in member order, every time."""

    name = "linear"

    def choose(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        return self._smallest_rank(candidates)

    def rank(self, penalty: int, order: int, idle_since: float, calls: int,
             talk_time: float) -> tuple[Any, ...]:
        return (penalty, order)


@register
class RoundRobin(Strategy):
    """The first free member after the one this queue offered last, in member order,
    wrapping around."""

    name = "round_robin"

    def __init__(self) -> None:
        self.last: str | None = None

    def choose(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        tier = lowest_tier(candidates)
        if not tier:
            return []
        last = ctx.order.get(self.last, -1) if self.last is not None else -1
        after = [c for c in tier if c.order > last]
        pick = min(after or tier, key=lambda c: c.order)
        self.last = pick.agent
        return [pick]

    # circular: the queue finds "the first free member of the lowest tier whose member order
    # is above after(), else the first of that tier" in its free members sorted by
    # (penalty, order), and reports the pick -- choose() without looking at every member

    def after(self, order: Mapping[str, int]) -> int:
        return order.get(self.last, -1) if self.last is not None else -1

    def picked(self, agent: str) -> None:
        self.last = agent


@register
class LongestIdle(Strategy):
    """The member whose last call (wrap-up included) ended longest ago; see queues.agent for
    `idle_since`."""

    name = "longest_idle"

    def choose(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        return self._smallest_rank(candidates)

    def rank(self, penalty: int, order: int, idle_since: float, calls: int,
             talk_time: float) -> tuple[Any, ...]:
        return (penalty, idle_since, order)


@register
class FewestCalls(Strategy):
    """The member who answered the fewest queue calls since login (or the last daily reset),
    counted across all queues; ties go to the longest idle."""

    name = "fewest_calls"

    def choose(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        return self._smallest_rank(candidates)

    def rank(self, penalty: int, order: int, idle_since: float, calls: int,
             talk_time: float) -> tuple[Any, ...]:
        return (penalty, calls, idle_since, order)


@register
class LeastTalkTime(Strategy):
    """The member with the least talk time since login; ties go to the longest idle."""

    name = "least_talk_time"

    def choose(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        return self._smallest_rank(candidates)

    def rank(self, penalty: int, order: int, idle_since: float, calls: int,
             talk_time: float) -> tuple[Any, ...]:
        return (penalty, talk_time, idle_since, order)


@register
class Random(Strategy):
    """Uniformly one of the lowest-tier candidates."""

    name = "random"

    def choose(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        tier = _by_order(lowest_tier(candidates))
        if not tier:
            return []
        return [tier[min(int(ctx.random() * len(tier)), len(tier) - 1)]]


@register
class WeightedRandom(Strategy):
    """One of the lowest-tier candidates with probability weight / sum of weights."""

    name = "weighted_random"

    def choose(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        tier = _by_order(lowest_tier(candidates))
        if not tier:
            return []
        x = ctx.random() * sum(c.weight for c in tier)
        for c in tier:
            x -= c.weight
            if x < 0:
                return [c]
        return [tier[-1]]  # rounding left x at 0


@register
class SkillsBased(Strategy):
    """The member with the highest total proficiency in the caller's required skills (the
    minimums are already met by every candidate), then the longest idle."""

    name = "skills"

    def choose(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
        tier = lowest_tier(candidates)
        if not tier:
            return []
        names = [n for n, _ in ctx.required]

        def key(c: Candidate) -> tuple[float, float, int]:
            return (-sum(c.skills.get(n, 0.0) for n in names), c.idle_since, c.order)

        return [min(tier, key=key)]

    def rank(self, penalty: int, order: int, idle_since: float, calls: int,
             talk_time: float) -> tuple[Any, ...]:
        # a caller with no required skills: every candidate's proficiency sum is 0
        return (penalty, idle_since, order)
