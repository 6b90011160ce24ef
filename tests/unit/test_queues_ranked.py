"""Ranked strategies route a plain caller from the top of the queue's free-member heap
(queues.queue.QueueState.best_free), round_robin from its sorted free members (next_free);
these tests hold that to what the strategy's own choose() picks among every free member, the
path every other caller still takes.

Many agents and long random runs, so the heap's lazy deletion, the re-filing of entries whose
rank grew (an external call ended while the agent was free), the compaction of dead entries
and the rebuilds after a settings change or the daily counter reset are all exercised; the
stateful distributor test checks the same invariant on its smaller model.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queues import AgentSettings, Distributor, Member, Offer, QueueSettings
from queues import queue as queue_mod
from queues.queue import QueueState
from queues.strategies import Context, make_strategy, strategy_names


def slow_choice(q: QueueState, now: float) -> str | None:
    """The agent `q`'s strategy picks for a caller with no required skills and no failed
    offers, by choose() over every free member (the unranked path), on a copy of the
    strategy (round_robin's choose() remembers its pick)."""
    from queues.routing import Core

    caller: Any = SimpleNamespace(joined_at=now, required=(), tried=set())
    cands = Core._candidates(SimpleNamespace(_now=now), caller, q)  # type: ignore[arg-type]
    if not cands:
        return None
    chosen = copy.copy(q.strategy).choose(cands, Context(q.settings, now, 0.0, (),
                                                         random.random, q.order))
    return chosen[0].agent if chosen else None


def fast_choice(q: QueueState) -> str | None:
    """The same pick by the queue's heap (ranked) or sorted list (circular), not recorded."""
    s = q.strategy
    best = q.best_free() if s.ranked else q.next_free(s.after(q.order))
    return best.id if best is not None else None


RANKED = [n for n in strategy_names()
          if make_strategy(n).ranked or make_strategy(n).circular]


def staffed(strategy: str, agents: list[str], allow_busy: bool = False) -> Distributor:
    d = Distributor()
    for a in agents:
        d.update_agent(AgentSettings(a, (f"d-{a}",)), 0.0)
        d.set_presence(f"d-{a}", True, 0.0)
        d.set_availability(a, "available", 0.0)
    d.update_queue(QueueSettings("q", strategy=strategy, members=tuple(Member(a) for a in agents),
                                 wrapup_time=0.0, allow_busy_agents=allow_busy), 0.0)
    return d


def serve(d: Distributor, agent: str, caller: str, now: float, talk: float) -> None:
    """`caller` arrives, must be offered to `agent`, who answers and talks `talk` seconds."""
    offers = [o for o in d.caller_arrived("q", caller, now).outputs if isinstance(o, Offer)]
    assert [o.agent for o in offers] == [agent]
    d.offer_answered(offers[0].offer_id, now)
    d.call_ended(agent, now + talk)


def offered(d: Distributor, caller: str, now: float) -> str:
    return next(o.agent for o in d.caller_arrived("q", caller, now).outputs
                if isinstance(o, Offer))


@pytest.fixture
def heap_always() -> Iterator[None]:
    """Route every plain caller from the heap, however few members are free."""
    with mock.patch.object(queue_mod, "RANKED_FROM", 0):
        yield


@pytest.mark.usefixtures("heap_always")
def test_the_daily_reset_reorders_fewest_calls() -> None:
    d = staffed("fewest_calls", ["a", "b"])
    d.set_availability("b", "lunch", 0.5)
    serve(d, "a", "c1", 1.0, 0.0)
    serve(d, "a", "c2", 1.5, 0.0)  # a: 2 calls, idle since 1.5
    d.set_availability("b", "available", 2.0)
    serve(d, "b", "c3", 3.0, 2.0)  # b: 1 call, idle since 5: b is next, a waits with 2 calls
    d.reset_counters(6.0)  # both at 0 calls: now the longest idle goes first
    assert offered(d, "c4", 7.0) == "a"


@pytest.mark.usefixtures("heap_always")
def test_an_external_call_ending_while_free_sends_the_agent_to_the_back() -> None:
    # allow_busy_agents: an agent on an outside call stays free for this queue, and when
    # that call ends its idle time starts again
    d = staffed("longest_idle", ["a", "b", "c"], allow_busy=True)
    serve(d, "a", "c0", 0.5, 0.0)  # a idle since 0.5; b and c since 0
    d.agent_busy("b", "x", 1.0)
    d.agent_free("b", "x", 2.0)  # b idle since 2
    assert [offered(d, f"c{i}", 3.0) for i in (1, 2, 3)] == ["c", "a", "b"]


@pytest.mark.usefixtures("heap_always")
def test_round_robin_goes_round_skipping_the_busy_and_the_higher_tier() -> None:
    d = Distributor()
    names = ["a", "b", "c", "d", "e"]
    for a in names:
        d.update_agent(AgentSettings(a, (f"d-{a}",)), 0.0)
        d.set_presence(f"d-{a}", True, 0.0)
        d.set_availability(a, "available", 0.0)
    d.update_queue(QueueSettings("q", strategy="round_robin", wrapup_time=0.0, members=(
        Member("a"), Member("b"), Member("c", penalty=1), Member("d"), Member("e"))), 0.0)
    assert offered(d, "c1", 1.0) == "a"  # a stays ringing: not free
    assert offered(d, "c2", 1.0) == "b"
    serve(d, "d", "c3", 1.0, 0.0)  # d, free again at once
    assert offered(d, "c4", 2.0) == "e"
    assert offered(d, "c5", 2.0) == "d"  # wraps: a, b still ringing; c is the higher tier
    assert offered(d, "c6", 2.0) == "c"  # nobody of the lowest tier left
    assert [slow_choice(d._queues["q"], 3.0), fast_choice(d._queues["q"])] == [None, None]


AGENTS = [f"a{i:03d}" for i in range(150)]


def test_the_ranked_strategies_are_the_hunt_strategies_with_an_order() -> None:
    assert sorted(RANKED) == ["fewest_calls", "least_talk_time", "linear", "longest_idle",
                              "round_robin", "skills"]


def test_a_subclass_with_its_own_choose_is_not_ranked() -> None:
    from queues.strategies import LongestIdle

    class Mine(LongestIdle):
        name = "mine"

        def choose(self, candidates, ctx):  # type: ignore[no-untyped-def]
            return list(candidates)[-1:]

    assert not Mine().ranked
    assert LongestIdle().ranked

    class Same(LongestIdle):  # inherits both: still ranked
        name = "same"

    assert Same().ranked


class World:
    """Two queues sharing `agents`, driven at random; checks after every step."""

    def __init__(self, rng: random.Random, strategies: tuple[str, str], agents: int) -> None:
        self.rng = rng
        self.agents = AGENTS[:agents]
        self.d = Distributor(rng=rng.random)
        self.now = 0.0
        self.serial = 0
        self.strategies = strategies
        self.calls: dict[str, int] = {}  # agent -> offer id answered
        self.offers: dict[int, str] = {}
        for a in self.agents:
            self.d.update_agent(AgentSettings(a, (f"d-{a}",)), 0.0)
            self.d.set_presence(f"d-{a}", True, 0.0)
            self.d.set_availability(a, "available", 0.0)
        for q in range(2):
            self.configure(q)

    def configure(self, q: int) -> None:
        rng = self.rng
        members = [Member(a, penalty=rng.choice([0, 0, 0, 1])) for a in self.agents
                   if rng.random() < 0.8]
        rng.shuffle(members)
        self.d.update_queue(QueueSettings(
            f"q{q}", strategy=self.strategies[q], members=tuple(members), wrapup_time=5.0,
            ring_timeout=20.0, retry_delay=0.0, max_wait=1e6, allow_busy_agents=q == 1),
            self.now)

    def take(self, out: list[Any]) -> None:
        for o in out:
            if isinstance(o, Offer):
                self.offers[o.offer_id] = o.agent

    def step(self) -> None:
        rng, d = self.rng, self.d
        self.now += rng.choice([0.0, 0.5, 1.0, 3.0, 7.0])
        self.take(d.tick(self.now))
        r = rng.random()
        if r < 0.35:
            self.serial += 1
            q = f"q{rng.randrange(2)}"
            expected = slow_choice(d._queues[q], self.now)
            out = d.caller_arrived(q, f"c{self.serial}", self.now).outputs
            offers = [o for o in out if isinstance(o, Offer)]
            # nobody waits while a member is free here, so the newcomer gets the agent
            # choose() picks, or no offer when nobody is free
            assert [o.agent for o in offers] == ([expected] if expected else []), (offers,
                                                                                   expected)
            self.take(out)
        elif r < 0.6 and self.offers:
            oid = rng.choice(sorted(self.offers))
            agent = self.offers.pop(oid)
            if rng.random() < 0.7:
                self.take(d.offer_answered(oid, self.now))
                self.calls[agent] = oid
            else:
                self.take(d.offer_failed(oid, rng.choice(["no_answer", "rejected"]), self.now))
        elif r < 0.75 and self.calls:
            agent = rng.choice(sorted(self.calls))
            del self.calls[agent]
            self.take(d.call_ended(agent, self.now))
        elif r < 0.82:
            self.take(d.wrapup_done(rng.choice(self.agents), self.now))
        elif r < 0.88:
            # mostly the agent at the top of q1's heap: whose rank growing matters
            top = fast_choice(d._queues["q1"]) if rng.random() < 0.5 else None
            agent = top if top is not None else rng.choice(self.agents)
            ref = rng.choice(["x", "y"])
            fn = d.agent_busy if rng.random() < 0.5 else d.agent_free
            self.take(fn(agent, ref, self.now))  # idle_since moves on while free in q1
        elif r < 0.93:
            self.take(d.set_availability(rng.choice(self.agents),
                                         rng.choice(["available", "lunch", "logged_out"]),
                                         self.now))
        elif r < 0.97:
            self.take(d.reset_counters(self.now))
        else:
            self.configure(rng.randrange(2))

    def check(self) -> None:
        for q in self.d._queues.values():
            assert fast_choice(q) == slow_choice(q, self.now), q.settings.name
            assert len(q.ranked) <= 2 * len(q.members) + 65  # bounded by members, not traffic


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1),
       strategies=st.tuples(st.sampled_from(RANKED), st.sampled_from(RANKED)),
       agents=st.sampled_from([6, 150]), ranked_from=st.sampled_from([0, 8]))
def test_the_heap_top_is_what_choose_picks(seed: int, strategies: tuple[str, str],
                                           agents: int, ranked_from: int) -> None:
    with mock.patch.object(queue_mod, "RANKED_FROM", ranked_from):
        w = World(random.Random(seed), strategies, agents)
        for _ in range(400):
            w.step()
            w.check()


def test_a_heap_nobody_reads_stops_taking_pushes() -> None:
    # callers wait, so members come free one at a time and are routed by scanning: the heap,
    # its dead entries piling up, goes stale and takes no more pushes, until many members are
    # free again and a plain caller needs it
    agents = [f"a{i}" for i in range(20)]
    d = staffed("longest_idle", agents)
    q = d._queues["q"]
    assert fast_choice(q) is not None and not q.ranked_stale  # built
    live: list[Offer] = []
    now = 1.0
    for i in range(30):  # 20 offered, 10 wait
        live += [o for o in d.caller_arrived("q", f"w{i}", now).outputs if isinstance(o, Offer)]
    for i in range(150):  # every call that ends frees an agent who takes a waiting caller
        now += 0.1  # answered long before the leases end
        o = live.pop(0)
        live += [x for x in d.offer_answered(o.offer_id, now) if isinstance(x, Offer)]
        live += [x for x in d.call_ended(o.agent, now) if isinstance(x, Offer)]
        live += [x for x in d.caller_arrived("q", f"n{i}", now).outputs if isinstance(x, Offer)]
        assert len(q.free) == 0
    assert q.ranked_stale and len(q.ranked) <= 2 * len(agents) + 65
    stale_size = len(q.ranked)
    for c in list(q.callers):  # nobody waits any more
        d.caller_left(c, now)
    for o in live:  # everyone comes free
        d.offer_answered(o.offer_id, now)
        d.call_ended(o.agent, now)
    assert len(q.ranked) == stale_size  # no pushes while stale
    expected = slow_choice(q, now)
    assert offered(d, "last", now + 1.0) == expected
    assert not q.ranked_stale  # rebuilt for that caller
