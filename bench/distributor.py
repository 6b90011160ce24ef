"""Routing decisions per second in the ACD distributor, and how a decision's cost grows with
the number of waiting callers.

A decision here is the whole public input that frees an agent and returns its next Offer:
`wrapup_done(agent)` -> the agent is free -> among the callers of its queues it may serve it
takes the one with the largest wait * queue priority -> the queue's strategy confirms -> Offer,
events and history written. 1,000 agents in 4 queues (longest_idle, round_robin, fewest_calls,
skills; queue priorities 1/1/2/1), each agent in two of them; one caller in eight of the skills
queue needs a skill only half of the agents have.

The other direction -- a caller arrives while many agents idle (a quiet hour, a big team) --
is timed on its own: CPU per arrival with 10, 100 and 1,000 idle members, for longest_idle
(ranked: the queue keeps its free members in a heap) and round_robin (circular: a sorted list
searched by bisection); random would scan every free member.

Decisions are timed in batches (agents freed one after another, each taking the next caller);
between batches, untimed, the offers are answered, the calls end (back into wrap-up) and as
many callers arrive, so the number waiting returns to where it was. Rates are per CPU second
of this process (the machine may be shared; wall-clock rates are printed beside them).

    python -m bench.distributor            # ~10 s
    python -m bench.distributor --smoke    # ~1 s; CI keeps the benchmark working
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import random
import time
from dataclasses import dataclass

from bench.common import machine_reference
from queues import AgentSettings, Distributor, Member, Offer, QueueSettings

STRATEGIES = ("longest_idle", "round_robin", "fewest_calls", "skills")
PRIORITIES = (1.0, 1.0, 2.0, 1.0)


@dataclass
class Run:
    waiting: int
    decisions: int
    cpu: float  # process CPU seconds inside the timed batches
    wall: float  # wall seconds inside the timed batches

    @property
    def rate(self) -> float:
        return self.decisions / self.cpu

    @property
    def us(self) -> float:
        return 1e6 * self.cpu / self.decisions


class Bench:
    def __init__(self, agents: int, waiting: int, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.d = Distributor(rng=self.rng.random)
        self.now = 0.0
        self.serial = 0
        self.agent_ids = [f"agent{i:04d}" for i in range(agents)]
        members: list[list[Member]] = [[] for _ in STRATEGIES]
        for i, a in enumerate(self.agent_ids):
            skills = {"es": 1 + i % 5} if i % 2 else {}
            for q in (i % 4, (i + 1) % 4):
                members[q].append(Member(a, skills=skills if q == 3 else {}))
            self.d.update_agent(AgentSettings(a, (f"sip-{a}",)), 0.0)
        for q, strategy in enumerate(STRATEGIES):
            # wrap-up until told "ready": the benchmark decides when each agent frees up
            self.d.update_queue(QueueSettings(
                f"q{q}", strategy=strategy, members=tuple(members[q]), wrapup_time=1e9,
                priority=PRIORITIES[q], ring_timeout=30.0), 0.0)
        for a in self.agent_ids:
            self.d.set_presence(f"sip-{a}", True, 0.0)
            self.d.set_availability(a, "available", 0.0)
        # every agent takes one call and goes into wrap-up; then the queue fills up
        busy = 0
        while busy < agents:
            offers = self.arrive()
            busy += len(offers)
            self.answer_and_end(offers)
        while self.waiting() < waiting:
            assert not self.arrive()

    def waiting(self) -> int:
        return sum(self.d.queue(f"q{q}").callers for q in range(len(STRATEGIES)))

    def arrive(self) -> list[Offer]:
        self.serial += 1
        q = self.serial % 4
        skills = ("es",) if q == 3 and self.serial % 8 == 3 else ()
        r = self.d.caller_arrived(f"q{q}", f"caller{self.serial}", self.now, skills=skills)
        return [o for o in r.outputs if isinstance(o, Offer)]

    def answer_and_end(self, offers: list[Offer]) -> None:
        for o in offers:
            self.d.offer_answered(o.offer_id, self.now)
            self.d.call_ended(o.agent, self.now)

    def run(self, decisions: int, batch: int) -> Run:
        """Time batches of `batch` decisions (distinct agents freed one after another), with the
        answers, call ends and replacement arrivals between batches untimed."""
        d, rng = self.d, self.rng
        waiting = self.waiting()
        cpu = wall = 0.0
        done = 0
        gc.collect()
        gc.freeze()
        while done < decisions:
            k = min(batch, decisions - done)
            agents = rng.sample(self.agent_ids, k)
            self.now += 0.01
            now = self.now
            w0, c0 = time.perf_counter(), time.process_time()
            outs = [d.wrapup_done(a, now) for a in agents]
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
            for a, out in zip(agents, outs, strict=True):
                offers = [o for o in out if isinstance(o, Offer)]
                assert offers, f"{a} got no caller"
                self.answer_and_end(offers)
            for _ in range(k):
                self.arrive()
            done += k
        gc.unfreeze()
        assert self.waiting() == waiting
        return Run(waiting, decisions, cpu, wall)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="about a second")
    ap.add_argument("--agents", type=int, default=1000)
    args = ap.parse_args()
    decisions = 3_000 if args.smoke else 50_000
    per_size = 2_000 if args.smoke else 20_000
    sizes = (100, 1_000, 10_000)

    print(machine_reference())
    b = Bench(args.agents, 10_000)
    r = b.run(decisions, batch=args.agents)
    print(f"{args.agents} agents, 4 queues, {r.waiting} waiting callers, "
          f"{decisions} decisions in batches of {args.agents} "
          f"(load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs):")
    print(f"  routing decisions/s   {r.rate:10,.0f} per CPU second, {decisions / r.wall:10,.0f} "
          f"per wall second   (target >= 50,000)")
    print(f"  per decision          {r.us:10.1f} us CPU")
    print("per-decision CPU cost by waiting callers (fresh distributor each; a batch is half the "
          "callers at most, so between n/2 and n wait):")
    base: Run | None = None
    for n in sizes:
        r = Bench(args.agents, n).run(per_size, batch=min(args.agents, n // 2))
        base = base or r
        print(f"  {n:>6} waiting   {r.us:6.2f} us   x{r.us / base.us:4.2f} "
              f"(log2 n ratio x{math.log2(n) / math.log2(base.waiting):4.2f})")
    print_arrivals(500 if args.smoke else 5_000)


def arrival_us(strategy: str, idle: int, arrivals: int) -> float:
    """CPU microseconds per caller_arrived -> Offer with `idle` members free; each call is
    answered and ended (no wrap-up) before the next arrives, so `idle` stay free."""
    d = Distributor()
    agents = [f"agent{i:04d}" for i in range(idle)]
    for a in agents:
        d.update_agent(AgentSettings(a, (f"sip-{a}",)), 0.0)
        d.set_presence(f"sip-{a}", True, 0.0)
        d.set_availability(a, "available", 0.0)
    d.update_queue(QueueSettings("q", strategy=strategy, members=tuple(Member(a) for a in agents),
                                 wrapup_time=0.0, ring_timeout=30.0), 0.0)
    now, cpu = 1.0, 0.0
    gc.collect()  # what earlier runs left must not be collected inside the timings
    gc.freeze()
    for i in range(arrivals):
        now += 0.001
        c0 = time.process_time()
        out = d.caller_arrived("q", f"caller{i}", now).outputs
        cpu += time.process_time() - c0
        o = next(x for x in out if isinstance(x, Offer))
        d.offer_answered(o.offer_id, now)
        d.call_ended(o.agent, now)
    gc.unfreeze()
    return 1e6 * cpu / arrivals


def print_arrivals(arrivals: int) -> None:
    print("per-arrival CPU cost by idle members (a caller arrives, one of them is offered):")
    for strategy in ("longest_idle", "round_robin", "random"):
        costs = "  ".join(f"{n:>5} idle {arrival_us(strategy, n, arrivals):8.1f} us"
                          for n in (10, 100, 1000))
        print(f"  {strategy:<13} {costs}")


if __name__ == "__main__":
    main()
