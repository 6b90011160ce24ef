"""The distributor's engine room: state, deadlines, routing decisions, offer and caller endings.

`Distributor` (queues.distributor) adds the public inputs on top. Everything here runs at the
distributor's current time `_now`; deadlines are processed one at a time in order with `_now`
set to each, so what a late tick finds is exactly what prompt ticks would have produced.

Routing happens in two directions and nowhere else:

- an agent becomes free (`_serve_agent`): among the heads of the buckets it may serve, in every
  queue it is free in, it takes the caller with the largest wait * queue priority (ties: the
  higher queue priority, then the earlier arrival). Callers waiting for this agent in person
  (sticky phase) come before everyone else. Cost: O(queues of the agent x distinct skill sets
  waiting there x log n) -- never a scan of the callers.
- a caller becomes offerable (`_route_caller`: arrival, retry delay over, sticky phase over,
  tier widening): the queue's strategy chooses among the queue's free members that have the
  caller's skills. Cost: O(free members of that queue), which is small whenever callers wait;
  under a ranked strategy (queues.strategies) a caller with no required skills and no failed
  offers takes the top of the queue's free-member heap instead once more than a few members
  are free (queues.queue.RANKED_FROM), O(log n) however many agents are idle.

Work is queued (`_freed`, `_ready`, `_empty_check`) and done in `_settle`, so no handler
routes while it is still changing state.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable

from queues import queue as queue_mod
from queues.agent import AUTO_PAUSED, AVAILABLE, IDLE, Agent
from queues.callers import GONE, OFFERING, RETRY, WAITING, Caller, OfferState
from queues.deadlines import Deadlines
from queues.outputs import CancelOffer, Offer, Output, Overflow, QueueEvent
from queues.queue import QueueState
from queues.strategies import Candidate, Context

__all__ = ["Core"]


class Core:
    def __init__(self, rng: Callable[[], float], history_limit: int) -> None:
        self._timers = Deadlines()
        self._now = 0.0
        self._out: list[Output] = []
        self._agents: dict[str, Agent] = {}
        self._queues: dict[str, QueueState] = {}
        self._callers: dict[str, Caller] = {}
        self._offers: dict[int, OfferState] = {}
        self._member_of: dict[str, dict[str, QueueState]] = {}  # agent id -> its queues
        self._device_agents: dict[str, set[str]] = {}
        self._registered: set[str] = set()
        self._offer_ids = itertools.count(1)
        self._seq = itertools.count()
        self._freed: deque[Agent] = deque()
        self._ready: deque[Caller] = deque()
        self._empty_check: dict[str, None] = {}
        self._rng = rng
        self._history_limit = history_limit

    # -- time and output -----------------------------------------------------------------

    def _advance(self, now: float) -> None:
        timers = self._timers
        while True:
            due = timers.next_deadline()
            if due is None or due > now:
                break
            if due > self._now:
                self._now = due
            timers.run_due(due)
        if now > self._now:
            self._now = now  # time never runs backwards: an earlier `now` is taken as _now

    def _drain(self) -> list[Output]:
        self._settle()
        out = self._out
        self._out = []
        return out

    def _settle(self) -> None:
        while True:
            if self._empty_check:
                name = next(iter(self._empty_check))
                del self._empty_check[name]
                q = self._queues.get(name)
                if q is not None and q.callers and q.is_empty(q.settings.leave_empty):
                    self._empty_out(q)
            elif self._freed:
                self._serve_agent(self._freed.popleft())
            elif self._ready:
                c = self._ready.popleft()
                if c.state == WAITING and c.bucket is not None:
                    self._route_caller(c)
            else:
                return

    # -- agents --------------------------------------------------------------------------

    def _sync_free(self, a: Agent) -> None:
        """Put the agent in (or take it out of) the free set of each of its queues."""
        # a.level == 3, inlined: this runs twice per routing decision
        offerable = (a.work == IDLE and a.availability == AVAILABLE and bool(a.registered)
                     and a.id in self._agents)
        newly = False
        for name, q in self._member_of.get(a.id, {}).items():
            if offerable and (not a.external or q.settings.allow_busy_agents):
                if a.id not in q.free:
                    q.free[a.id] = a
                    if not q.ranked_stale:
                        q.rank_push(a.id, a)
                    a.free_in[name] = q
                    newly = True
            elif a.id in q.free:
                del q.free[a.id]
                del a.free_in[name]
        if newly:
            self._freed.append(a)

    def _unfree(self, a: Agent) -> None:
        for q in a.free_in.values():
            del q.free[a.id]
        a.free_in.clear()

    def _agent_changed(self, a: Agent, old_level: int) -> None:
        new = a.level
        if new != old_level:
            for name, q in self._member_of.get(a.id, {}).items():
                q.levels[old_level] -= 1
                q.levels[new] += 1
                if new < old_level and q.settings.leave_empty != "never":
                    self._empty_check[name] = None
        self._sync_free(a)

    def _serve_agent(self, a: Agent) -> None:
        """Give a free agent the most deserving caller it may serve, across its queues."""
        aid = a.id
        declined: set[Caller] = set()  # the strategy would not have this agent for them
        while a.work == IDLE and a.free_in:
            now = self._now
            best: Caller | None = None
            best_key: tuple[int, float, float, int] | None = None
            for q in a.free_in.values():
                s = q.settings
                prio = s.priority
                sticky = q.sticky.get(aid)
                if sticky is not None and sticky.live:
                    head = sticky.peek()
                    if head is not None and head not in declined:
                        key = (1, (now - head.joined_at) * prio, prio, -head.seq)
                        if best_key is None or key > best_key:
                            best, best_key = head, key
                if not q.buckets:
                    continue
                strategy = q.strategy
                by_wait = strategy.admits_by_wait
                for required, bucket in q.buckets.items():
                    if not bucket.live or (required and not q.satisfies(aid, required)):
                        continue
                    head = bucket.peek()
                    if head is None or head in declined:
                        continue
                    wait = now - head.joined_at
                    if by_wait and not strategy.admits(q.members[aid].penalty, wait, s):
                        continue  # head of line: a younger caller behind is not admitted either
                    key = (0, wait * prio, prio, -head.seq)
                    if best_key is None or key > best_key:
                        best, best_key = head, key
            if best is None:
                return
            if not self._route_caller(best):
                declined.add(best)

    # -- routing -------------------------------------------------------------------------

    def _candidates(self, c: Caller, q: QueueState) -> list[Candidate]:
        fresh: list[Candidate] = []
        tried: list[Candidate] = []
        members, order = q.members, q.order
        strategy = q.strategy
        by_wait = strategy.admits_by_wait
        wait = self._now - c.joined_at
        required, was_tried = c.required, c.tried
        for aid, a in q.free.items():
            if required and not q.satisfies(aid, required):
                continue
            m = members[aid]
            if by_wait and not strategy.admits(m.penalty, wait, q.settings):
                continue  # not a candidate yet; must not hide the tried ones that are
            cand = Candidate(aid, order[aid], m.penalty, m.weight, m.skills, a.idle_since,
                             a.calls, a.talk_time)
            (tried if aid in was_tried else fresh).append(cand)
        return fresh or tried

    def _route_caller(self, c: Caller) -> bool:
        """Offer the caller to whom its queue's strategy picks among the free members; False
        (and nothing changed) when there is nobody."""
        q = self._queues[c.queue]
        strategy = q.strategy
        if c.preferred is not None:
            a = q.free.get(c.preferred)
            if a is None or not q.satisfies(a.id, c.required):
                return False
            agents = [a]
        elif (strategy.ranked or strategy.circular) and not c.required and not c.tried \
                and not strategy.admits_by_wait \
                and (len(q.free) == 1 or len(q.free) > queue_mod.RANKED_FROM):
            # what choose() would pick among every free member, without looking at them all;
            # one free member (callers wait, an agent just came free) is its own pick
            if len(q.free) == 1:
                best: Agent | None = next(iter(q.free.values()))
            elif strategy.ranked:
                best = q.best_free()
            else:
                best = q.next_free(strategy.after(q.order))
            if best is None:
                return False
            if strategy.circular:
                strategy.picked(best.id)
            agents = [best]
        else:
            cands = self._candidates(c, q)
            if not cands:
                return False
            now = self._now
            chosen = strategy.choose(cands, Context(q.settings, now, now - c.joined_at,
                                                    c.required, self._rng, q.order))
            if not strategy.rings_many:
                chosen = chosen[:1]
            free = q.free
            agents = [free[x.agent] for x in chosen if x.agent in free]
            if not agents:
                return False
        if c.bucket is not None:
            q.leave_bucket(c)
        c.state = OFFERING
        for a in agents:
            self._offer(c, a, q)
        return True

    def _enqueue(self, c: Caller) -> None:
        """The caller is offerable again: back into its bucket, routed at the next settle."""
        c.state = WAITING
        self._queues[c.queue].bucket_for(c).push(c)
        self._ready.append(c)

    def _schedule_widening(self, c: Caller, q: QueueState) -> None:
        if c.widen_timer is not None:
            self._timers.cancel(c.widen_timer)
            c.widen_timer = None
        at = q.strategy.next_widening(self._now - c.joined_at, q.settings, q.max_penalty)
        if at is not None:
            c.widen_timer = self._timers.call_at(c.joined_at + at, self._widen_due, c)

    def _widen_due(self, c: Caller) -> None:
        c.widen_timer = None
        q = self._queues.get(c.queue)
        if q is None or c.state == GONE:
            return
        if c.state == WAITING:
            self._ready.append(c)
        elif c.state == OFFERING and q.strategy.rings_many and c.preferred is None:
            self._route_caller(c)  # members of the newly opened tier join the ringing
        self._schedule_widening(c, q)
        self._settle()

    def _end_sticky(self, c: Caller) -> None:
        if c.sticky_timer is not None:
            self._timers.cancel(c.sticky_timer)
            c.sticky_timer = None
        if c.state == WAITING and c.bucket is not None:
            self._queues[c.queue].leave_bucket(c)
            c.preferred = None
            self._enqueue(c)
        c.preferred = None

    def _sticky_due(self, c: Caller) -> None:
        c.sticky_timer = None
        if c.preferred is not None:
            self._end_sticky(c)
        self._settle()

    # -- offers --------------------------------------------------------------------------

    def _offer(self, c: Caller, a: Agent, q: QueueState) -> None:
        now = self._now
        oid = next(self._offer_ids)
        deadline = now + q.settings.ring_timeout
        o = OfferState(oid, c, a, q.settings.name, now, deadline)
        o.timer = self._timers.call_at(deadline, self._offer_expired, o)
        self._offers[oid] = o
        c.offers[oid] = o
        a.offer = o
        for fq in a.free_in.values():  # _unfree, inlined: once per decision
            del fq.free[a.id]
        a.free_in.clear()
        out = self._out
        out.append(Offer(oid, c.id, a.id, a.ring_devices, o.queue, deadline))
        out.append(QueueEvent("queue.offered", {"queue": o.queue, "caller": c.id, "agent": a.id,
                                                "offer_id": oid, "deadline": deadline}))
        a.set_work("reserved", now, "offer", out)

    def _detach(self, o: OfferState) -> None:
        del self._offers[o.offer_id]
        del o.caller.offers[o.offer_id]
        o.agent.offer = None
        if o.timer is not None:
            self._timers.cancel(o.timer)
            o.timer = None

    def _offer_expired(self, o: OfferState) -> None:
        if o.offer_id in self._offers:
            o.timer = None
            self._out.append(CancelOffer(o.offer_id, "timeout"))
            self._offer_failed(o, "no_answer")
        self._settle()

    def _offer_failed(self, o: OfferState, kind: str) -> None:
        now, out = self._now, self._out
        self._detach(o)
        a, c = o.agent, o.caller
        q = self._queues.get(o.queue)
        event = "queue.ring_noanswer" if kind == "no_answer" else "queue.ring_rejected"
        out.append(QueueEvent(event, {"queue": o.queue, "caller": c.id, "agent": a.id,
                                      "offer_id": o.offer_id, "reason": kind,
                                      "ring_time": now - o.started}))
        old_level = a.level
        if kind in ("no_answer", "rejected"):
            a.unanswered += 1
            limit = q.settings.autopause_after if q is not None else 0
            if limit and a.unanswered >= limit and a.availability == AVAILABLE:
                a.set_availability(AUTO_PAUSED, now, f"{a.unanswered} unanswered", out)
                out.append(QueueEvent("agent.autopaused", {"agent": a.id, "queue": o.queue,
                                                           "unanswered": a.unanswered}))
        a.set_work(IDLE, now, kind, out)
        c.tried.add(a.id)
        if not c.offers and q is not None:
            delay = q.settings.retry_delay
            if delay > 0:
                c.state = RETRY
                c.retry_timer = self._timers.call_at(now + delay, self._retry_due, c)
            else:
                self._enqueue(c)
        self._agent_changed(a, old_level)

    def _retry_due(self, c: Caller) -> None:
        c.retry_timer = None
        if c.state == RETRY:
            self._enqueue(c)
        self._settle()

    def _cancel_offer(self, o: OfferState, reason: str, requeue: bool) -> None:
        self._detach(o)
        a, c = o.agent, o.caller
        self._out.append(CancelOffer(o.offer_id, reason))
        self._out.append(QueueEvent("queue.ring_canceled", {
            "queue": o.queue, "caller": c.id, "agent": a.id, "offer_id": o.offer_id,
            "reason": reason}))
        a.set_work(IDLE, self._now, reason, self._out)
        if requeue and not c.offers and c.state == OFFERING:
            self._enqueue(c)  # not the caller's fault: no retry delay
        self._sync_free(a)

    # -- callers leaving -----------------------------------------------------------------

    def _finish_caller(self, c: Caller, reason: str) -> None:
        """Remove the caller for good, cancelling what still rings for it."""
        for o in list(c.offers.values()):
            self._cancel_offer(o, reason, requeue=False)
        q = self._queues[c.queue]
        q.leave_bucket(c)
        q.line.remove(c)
        c.cancel_timers(self._timers)
        del q.callers[c.id]
        del self._callers[c.id]
        c.state = GONE

    def _max_wait_due(self, c: Caller) -> None:
        c.timeout_timer = None
        if c.state != GONE:
            q = self._queues[c.queue]
            q.stats.timeouts += 1
            self._out.append(QueueEvent("queue.timeout", {
                "queue": c.queue, "caller": c.id, "wait": self._now - c.joined_at,
                "position": q.line.position(c)}))
            self._out.append(Overflow(c.id, q.settings.overflow_destination, "max_wait"))
            self._finish_caller(c, "max_wait")
        self._settle()

    def _empty_out(self, q: QueueState) -> None:
        for c in list(q.callers.values()):
            q.stats.overflow_empty += 1
            self._out.append(QueueEvent("queue.exit_empty", {
                "queue": c.queue, "caller": c.id, "wait": self._now - c.joined_at,
                "position": q.line.position(c)}))
            self._out.append(Overflow(c.id, q.settings.empty_destination, "empty"))
            self._finish_caller(c, "empty")
