"""The distributor under random traffic (Hypothesis RuleBasedStateMachine), checked against an
independent model built only from the inputs the test gives and the outputs it gets back.

Invariants: an agent never holds two offers, and is only offered while available, registered,
out of queue calls and wrap-up, and on no other call unless the queue allows it; offers never
outlive their lease; every caller ends exactly once (Connect, abandoned, Overflow) and none is
lost; first answer wins and crossing answers are rejected; wrap-up ends exactly at its deadline
or at "ready" and the totals add up; auto-pause happens exactly at the threshold; no
caller waits while a free member could serve it (the stuck-state detector); and under a ranked
strategy the top of the free-member heap is what the strategy's choose() picks among every
free member (tests/unit/test_queues_ranked.py checks the same with many agents).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from queues import (
    AgentSettings,
    CancelOffer,
    Connect,
    Distributor,
    Member,
    Offer,
    Output,
    Overflow,
    QueueEvent,
    QueueSettings,
    RejectAnswer,
)
from queues import queue as queue_mod
from queues.settings import EMPTY_RULES
from tests.unit.test_queues_ranked import fast_choice, slow_choice

AGENTS = ("a0", "a1", "a2", "a3")
DEVICES = {"a0": ("d0",), "a1": ("d1",), "a2": ("d2", "d2b"), "a3": ("d3",)}
ALL_DEVICES = sorted({d for ds in DEVICES.values() for d in ds})
QUEUES = ("q0", "q1")
STRATEGIES = ("ring_all", "ring_progressively", "linear", "round_robin", "longest_idle",
              "fewest_calls", "least_talk_time", "random", "weighted_random", "skills")
AGENT_SIDE = {"agent_busy", "agent_unavailable", "agent_unreachable", "agent_removed"}

members_st = st.lists(
    st.builds(Member, agent=st.sampled_from(AGENTS), penalty=st.integers(0, 2),
              weight=st.sampled_from([1.0, 3.0]),
              skills=st.dictionaries(st.just("es"), st.integers(0, 5), max_size=1)),
    unique_by=lambda m: m.agent, min_size=1, max_size=4)

queue_st = st.fixed_dictionaries({
    "strategy": st.sampled_from(STRATEGIES),
    "members": members_st,
    "ring_timeout": st.sampled_from([5.0, 15.0]),
    "retry_delay": st.sampled_from([0.0, 3.0]),
    "wrapup_time": st.sampled_from([0.0, 10.0]),
    "max_wait": st.sampled_from([60.0, 200.0]),
    "max_len": st.sampled_from([0, 0, 3]),
    "join_empty": st.sampled_from(EMPTY_RULES),
    "leave_empty": st.sampled_from(EMPTY_RULES),
    "priority": st.sampled_from([1.0, 2.0]),
    "autopause_after": st.sampled_from([0, 2]),
    "allow_busy_agents": st.booleans(),
    "sticky_timeout": st.sampled_from([0.0, 20.0]),
    "tier_step": st.sampled_from([0.0, 10.0]),
})


@dataclass
class MAgent:
    avail: str = "logged_out"
    registered: set[str] = field(default_factory=set)
    external: set[str] = field(default_factory=set)
    offer: int | None = None
    call: str | None = None  # queue of the queue call
    wrapup: tuple[float, float] | None = None  # (start, deadline)
    wrapup_override: float | None = None
    ending: tuple[str, float] | None = None  # (queue, wrap-up) of the call being ended
    unanswered: int = 0
    wrapup_total: float = 0.0

    @property
    def level(self) -> int:
        if self.avail == "logged_out":
            return 0
        if not self.registered:
            return 1
        return 3 if self.avail == "available" else 2


@dataclass
class MCaller:
    queue: str
    joined: float
    max_wait: float
    skills: tuple[tuple[str, float], ...]
    sticky_until: float = float("-inf")
    preferred: str | None = None
    offers: set[int] = field(default_factory=set)
    retry_until: float = float("-inf")
    tried: set[str] = field(default_factory=set)


@dataclass
class MOffer:
    caller: str
    agent: str
    queue: str
    deadline: float
    ring_timeout: float


class DistributorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ranked_from: int | None = None
        self.d = Distributor(rng=random.Random(0).random)
        self.now = 0.0
        self.agents = {a: MAgent() for a in AGENTS}
        self.queues: dict[str, QueueSettings] = {}
        self.callers: dict[str, MCaller] = {}
        self.ended: dict[str, str] = {}
        self.offers: dict[int, MOffer] = {}
        self.all_offers: list[int] = []
        self.offers_seen: dict[int, MOffer] = {}
        self.next_caller = 0
        self.expect_pause: set[str] = set()
        self.joining: str | None = None
        self.late = False

    # -- model helpers -------------------------------------------------------------------

    def member(self, queue: str, agent: str) -> Member | None:
        return next((m for m in self.queues[queue].members if m.agent == agent), None)

    def has_skills(self, queue: str, agent: str, skills: tuple[tuple[str, float], ...]) -> bool:
        m = self.member(queue, agent)
        return m is not None and all(n in m.skills and m.skills[n] >= lo for n, lo in skills)

    def empty(self, queue: str, rule: str) -> bool:
        levels = [self.agents[m.agent].level for m in self.queues[queue].members]
        need = {"logged_out": 1, "unreachable": 2, "unavailable": 3}.get(rule)
        return need is not None and not any(lv >= need for lv in levels)

    def free(self, agent: str, queue: str) -> bool:
        a = self.agents[agent]
        return (a.level == 3 and a.offer is None and a.call is None and a.wrapup is None
                and (not a.external or self.queues[queue].allow_busy_agents))

    def end_caller(self, caller: str, how: str) -> None:
        assert caller in self.callers, f"{caller} ended twice or never joined ({how})"
        assert caller not in self.ended
        self.ended[caller] = how
        del self.callers[caller]

    def drop_offer(self, oid: int) -> MOffer:
        o = self.offers.pop(oid)
        self.agents[o.agent].offer = None
        c = self.callers.get(o.caller)
        if c is not None:
            c.offers.discard(oid)
        return o

    def failed(self, o: MOffer, kind: str, at: float) -> None:
        a = self.agents[o.agent]
        if kind in ("no_answer", "rejected"):
            a.unanswered += 1
            limit = self.queues[o.queue].autopause_after
            if limit and a.unanswered >= limit and a.avail == "available":
                self.expect_pause.add(o.agent)
        c = self.callers.get(o.caller)
        if c is not None:
            c.tried.add(o.agent)
            if not c.offers:
                c.retry_until = at + self.queues[o.queue].retry_delay

    def apply(self, out: list[Output], answered: int | None = None) -> None:
        for x in out:
            if isinstance(x, Offer):
                self.on_offer(x)
            elif isinstance(x, CancelOffer):
                assert x.offer_id in self.offers, x
                o = self.drop_offer(x.offer_id)
                c = self.callers.get(o.caller)
                if x.reason == "timeout":
                    assert o.deadline <= self.now
                    self.failed(o, "no_answer", o.deadline)
                elif x.reason in AGENT_SIDE and c is not None and not c.offers:
                    c.retry_until = float("-inf")
            elif isinstance(x, Connect):
                assert answered == x.offer_id and x.offer_id in self.offers
                o = self.drop_offer(x.offer_id)
                assert (o.caller, o.agent) == (x.caller, x.agent)
                a = self.agents[o.agent]
                a.call, a.unanswered = o.queue, 0
                self.end_caller(x.caller, "connected")
            elif isinstance(x, RejectAnswer):
                assert answered == x.offer_id and x.offer_id not in self.offers
            elif isinstance(x, Overflow):
                c = self.callers[x.caller]
                if x.reason == "max_wait":
                    assert c.joined + c.max_wait <= self.now
                elif x.reason == "empty":
                    q = self.queues[c.queue]
                    assert self.empty(c.queue, q.leave_empty) or (
                        x.caller == self.joining and self.empty(c.queue, q.join_empty))
                else:
                    assert x.reason == "full" and x.caller == self.joining
                self.end_caller(x.caller, x.reason)
            elif isinstance(x, QueueEvent):
                self.on_event(x)
        assert not self.expect_pause, f"not auto-paused: {self.expect_pause}"
        for cid, c in self.callers.items():
            for oid in c.offers:
                assert self.offers[oid].caller == cid

    def on_offer(self, x: Offer) -> None:
        a = self.agents[x.agent]
        q = self.queues[x.queue]
        c = self.callers[x.caller]
        assert a.offer is None, f"{x.agent} offered twice"
        assert a.avail == "available" and a.registered, (x, a)
        assert a.call is None and a.wrapup is None, (x, a)
        assert not a.external or q.allow_busy_agents, (x, a)
        assert self.has_skills(x.queue, x.agent, c.skills), x
        assert c.queue == x.queue
        assert x.devices == tuple(dv for dv in DEVICES[x.agent] if dv in a.registered)
        if q.strategy not in ("ring_all", "ring_progressively"):
            assert not c.offers, f"hunt strategy rang two agents for {x.caller}"
        m = self.member(x.queue, x.agent)
        assert m is not None
        sticky = c.preferred is not None and (self.now < c.sticky_until
                                              or self.joining == x.caller)
        if self.late:
            pass
        elif sticky and x.agent == c.preferred:
            pass  # the preferred agent goes first, whatever the strategy
        elif sticky and self.now < c.sticky_until:
            raise AssertionError(f"{x.caller} waits for {c.preferred}, offered {x.agent}")
        elif q.strategy == "ring_progressively":
            assert q.tier_step == 0 or m.penalty * q.tier_step <= self.now - c.joined
            assert x.deadline == self.now + q.ring_timeout
        else:
            # what the strategies are handed: free members with the skills, untried first;
            # the pick is in the lowest tier of that pool (linear: the first in member order)
            pool = [p for p in q.members
                    if self.free(p.agent, x.queue) and self.has_skills(x.queue, p.agent, c.skills)]
            pool = [p for p in pool if p.agent not in c.tried] or pool
            assert m in pool, (x, pool, c.tried)
            assert m.penalty == min(p.penalty for p in pool), (x, pool)
            assert x.deadline == self.now + q.ring_timeout
            if q.strategy == "linear":
                assert m == next(p for p in pool if p.penalty == m.penalty), (x, pool)
        self.offers[x.offer_id] = MOffer(x.caller, x.agent, x.queue, x.deadline,
                                         q.ring_timeout)
        self.all_offers.append(x.offer_id)
        self.offers_seen[x.offer_id] = self.offers[x.offer_id]
        a.offer = x.offer_id
        c.offers.add(x.offer_id)

    def on_event(self, e: QueueEvent) -> None:
        data = e.data
        if e.type == "queue.ring_noanswer":
            assert data["ring_time"] <= self.offers_seen[data["offer_id"]].ring_timeout
        elif e.type == "queue.timeout":
            assert data["wait"] == self.callers[data["caller"]].max_wait
        elif e.type == "agent.autopaused":
            assert data["agent"] in self.expect_pause
            self.expect_pause.discard(data["agent"])
            self.agents[data["agent"]].avail = "auto_paused"
        elif e.type == "agent.wrapup_started":
            a = self.agents[data["agent"]]
            assert a.ending is not None and a.ending[0] == data["queue"]
            expected = a.ending[1]
            assert data["duration"] == expected and data["deadline"] == self.now + expected
            a.ending, a.wrapup = None, (self.now, data["deadline"])
        elif e.type == "agent.wrapup_ended":
            a = self.agents[data["agent"]]
            assert a.wrapup is not None
            start, deadline = a.wrapup
            if data["reason"] == "deadline":
                assert deadline <= self.now and data["duration"] == deadline - start
            else:
                assert data["reason"] == "ready" and self.now < deadline
                assert data["duration"] == self.now - start
            a.wrapup = None
            a.wrapup_total += data["duration"]
        elif e.type == "queue.abandoned":
            self.end_caller(data["caller"], "abandoned")

    # -- rules ---------------------------------------------------------------------------

    @initialize(q0=queue_st, q1=queue_st, staffed=st.lists(st.sampled_from(AGENTS)),
                ranked_from=st.sampled_from([0, queue_mod.RANKED_FROM]))
    def setup(self, q0: dict, q1: dict, staffed: list[str], ranked_from: int) -> None:
        # 0: every plain caller of a ranked queue is routed from the heap, which with four
        # agents the default threshold never does
        self.ranked_from, queue_mod.RANKED_FROM = queue_mod.RANKED_FROM, ranked_from
        for a in AGENTS:
            self.apply(self.d.update_agent(AgentSettings(a, DEVICES[a]), 0.0))
        for name, cfg in (("q0", q0), ("q1", q1)):
            self.queues[name] = QueueSettings(name, **cfg)
            self.apply(self.d.update_queue(self.queues[name], 0.0))
        for a in AGENTS:  # most agents start ready to work: interesting states come sooner
            if a not in staffed:
                self.presence(DEVICES[a][0], True)
                self.availability(a, "available")

    @rule(queue=st.sampled_from(QUEUES), priority=st.integers(0, 1),
          skills=st.sampled_from([(), (("es", 0.0),), (("es", 3.0),)]),
          preferred=st.none() | st.sampled_from(AGENTS))
    def arrive(self, queue: str, priority: int, skills: tuple[tuple[str, float], ...],
               preferred: str | None) -> None:
        cid = f"c{self.next_caller}"
        self.next_caller += 1
        q = self.queues[queue]
        full = q.max_len > 0 and sum(c.queue == queue for c in self.callers.values()) >= \
            q.max_len
        empty = self.empty(queue, q.join_empty) or self.empty(queue, q.leave_empty)
        c = MCaller(queue, self.now, q.max_wait, skills)
        if preferred is not None and self.has_skills(queue, preferred, skills):
            c.preferred, c.sticky_until = preferred, self.now + q.sticky_timeout
        self.callers[cid] = c
        r = self.d.caller_arrived(queue, cid, self.now, priority, skills, preferred)
        assert r.joined == (not full and not empty)
        if not r.joined:
            assert r.overflow is not None and r.overflow.reason == ("full" if full else "empty")
        self.joining = cid
        self.apply(r.outputs)
        self.joining = None

    @precondition(lambda self: self.next_caller)
    @rule(data=st.data())
    def hang_up(self, data: st.DataObject) -> None:
        cid = f"c{data.draw(st.integers(0, self.next_caller - 1))}"
        live = cid in self.callers
        out = self.d.caller_left(cid, self.now)
        self.apply(out)
        assert (cid not in self.callers) and (live == (self.ended.get(cid) == "abandoned")
                                              or not live)

    @precondition(lambda self: self.all_offers)
    @rule(data=st.data(), live=st.booleans())
    def answer(self, data: st.DataObject, live: bool) -> None:
        pool = sorted(self.offers) if live and self.offers else self.all_offers
        oid = data.draw(st.sampled_from(pool))
        was_live = oid in self.offers
        out = self.d.offer_answered(oid, self.now)
        self.apply(out, answered=oid)
        assert (Connect in map(type, out)) == was_live
        if not was_live:
            assert out == [RejectAnswer(oid)]

    @precondition(lambda self: self.offers)
    @rule(data=st.data(), reason=st.sampled_from(["no_answer", "rejected", "busy", "error"]))
    def fail(self, data: st.DataObject, reason: str) -> None:
        oid = data.draw(st.sampled_from(sorted(self.offers)))
        o = self.drop_offer(oid)
        self.failed(o, reason, self.now)
        self.apply(self.d.offer_failed(oid, reason, self.now))

    @precondition(lambda self: self.offers)
    @rule(data=st.data())
    def ringing(self, data: st.DataObject) -> None:
        oid = data.draw(st.sampled_from(sorted(self.offers)))
        self.apply(self.d.offer_ringing(oid, self.now))
        assert self.d.agent(self.offers[oid].agent).occupancy == "ringing"

    @rule(agent=st.sampled_from(AGENTS),
          status=st.sampled_from(["available", "available", "lunch", "logged_out"]))
    def availability(self, agent: str, status: str) -> None:
        a = self.agents[agent]
        if status != a.avail and (a.avail == "logged_out" or status == "available"):
            a.unanswered = 0
        a.avail = status
        self.apply(self.d.set_availability(agent, status, self.now))
        if status != "available":
            assert a.offer is None

    @rule(device=st.sampled_from(ALL_DEVICES), registered=st.booleans())
    def presence(self, device: str, registered: bool) -> None:
        for agent, devs in DEVICES.items():
            if device in devs:
                (self.agents[agent].registered.add if registered
                 else self.agents[agent].registered.discard)(device)
        self.apply(self.d.set_presence(device, registered, self.now))

    @rule(agent=st.sampled_from(AGENTS), ref=st.sampled_from(["x", "y"]), busy=st.booleans())
    def other_call(self, agent: str, ref: str, busy: bool) -> None:
        a = self.agents[agent]
        new = ref not in a.external
        (a.external.add if busy else a.external.discard)(ref)
        if busy:
            self.apply(self.d.agent_busy(agent, ref, self.now))
            if a.offer is not None and new:
                assert self.queues[self.offers[a.offer].queue].allow_busy_agents
        else:
            self.apply(self.d.agent_free(agent, ref, self.now))

    @rule(agent=st.sampled_from(AGENTS))
    def call_end(self, agent: str) -> None:
        a = self.agents[agent]
        if a.call is not None:
            w = a.wrapup_override
            if w is None:
                w = self.queues[a.call].wrapup_time
            a.ending = (a.call, w)
            a.call = None
        self.apply(self.d.call_ended(agent, self.now))
        if a.ending is not None:
            assert a.ending[1] == 0, "wrap-up did not start"
            a.ending = None

    @rule(agent=st.sampled_from(AGENTS))
    def ready(self, agent: str) -> None:
        self.apply(self.d.wrapup_done(agent, self.now))
        assert self.agents[agent].wrapup is None

    @rule(agent=st.sampled_from(AGENTS), override=st.sampled_from([None, 0.0, 4.0]))
    def agent_wrapup_override(self, agent: str, override: float | None) -> None:
        self.agents[agent].wrapup_override = override
        self.apply(self.d.update_agent(AgentSettings(agent, DEVICES[agent], override),
                                       self.now))

    @rule(queue=st.sampled_from(QUEUES), cfg=queue_st)
    def reconfigure(self, queue: str, cfg: dict) -> None:
        self.queues[queue] = QueueSettings(queue, **cfg)
        for c in self.callers.values():
            if c.queue == queue and c.preferred is not None and not self.has_skills(
                    queue, c.preferred, c.skills):
                c.preferred = None  # no longer a member with the skills: anyone may answer
        self.apply(self.d.update_queue(self.queues[queue], self.now))

    @rule(dt=st.sampled_from([0.5, 1.0, 3.0, 5.0, 10.0, 15.0, 60.0, 400.0]))
    def advance(self, dt: float) -> None:
        """Tick at every deadline on the way, as the shell's timer would: the model then knows
        the time of every output."""
        target = self.now + dt
        while (due := self.d.next_deadline()) is not None and due <= target:
            self.now = max(self.now, due)
            self.apply(self.d.tick(self.now))
        self.now = target
        self.apply(self.d.tick(self.now))
        if dt == 400.0:
            assert not self.callers, "callers outlived their max_wait"

    @rule()
    def daily_reset(self) -> None:
        self.apply(self.d.reset_counters(self.now))
        for a in self.agents.values():
            a.wrapup_total = 0.0

    @rule(dt=st.sampled_from([10.0, 30.0, 100.0]))
    def late_tick(self, dt: float) -> None:
        """One tick long after several deadlines: outputs happened at times the model cannot
        see, so the time-dependent checks on offers are skipped."""
        self.now += dt
        self.late = True
        self.apply(self.d.tick(self.now))
        self.late = False

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def leases_and_states_agree(self) -> None:
        for oid, o in self.offers.items():
            assert o.deadline > self.now, f"offer {oid} outlived its lease"
            a = self.agents[o.agent]
            assert a.avail == "available" and a.registered
        for name, a in self.agents.items():
            snap = self.d.agent(name)
            assert snap.offer_id == a.offer
            assert snap.availability == a.avail
            if a.call is not None:
                assert snap.occupancy == "in_call"
            elif a.wrapup is not None:
                assert snap.occupancy == "wrap_up" and a.wrapup[1] > self.now
            elif a.offer is not None:
                assert snap.occupancy in ("reserved", "ringing")
            else:
                assert snap.occupancy == ("in_call" if a.external else "idle")
            assert abs(snap.wrapup_time - a.wrapup_total) < 1e-9

    @invariant()
    def callers_agree(self) -> None:
        for cid, c in self.callers.items():
            assert self.d.caller_state(cid) is not None, f"{cid} lost"
            assert c.joined + c.max_wait > self.now
        for cid in self.ended:
            assert self.d.caller_state(cid) is None
        for name in self.queues:
            assert self.d.queue(name).callers == sum(c.queue == name
                                                     for c in self.callers.values())
            if self.callers and self.empty(name, self.queues[name].leave_empty):
                assert not any(c.queue == name for c in self.callers.values())

    @invariant()
    def nobody_waits_while_a_member_is_free(self) -> None:
        for cid, c in self.callers.items():
            q = self.queues[c.queue]
            if c.offers or c.retry_until > self.now or q.strategy == "ring_progressively":
                continue
            if c.preferred is not None and self.now < c.sticky_until:
                p = c.preferred
                if self.has_skills(c.queue, p, c.skills):
                    assert not self.free(p, c.queue), f"{cid} waits for free {p}"
                continue
            for m in q.members:
                if self.has_skills(c.queue, m.agent, c.skills):
                    assert not self.free(m.agent, c.queue), f"{cid} waits, {m.agent} idles"


    def teardown(self) -> None:
        if self.ranked_from is not None:
            queue_mod.RANKED_FROM = self.ranked_from

    @invariant()
    def ranked_top_is_the_strategys_choice(self) -> None:
        for q in self.d._queues.values():
            if q.strategy.ranked or q.strategy.circular:
                assert fast_choice(q) == slow_choice(q, self.now), q.settings.name


TestDistributor = DistributorMachine.TestCase
TestDistributor.settings = settings(max_examples=300, stateful_step_count=80, deadline=None)
