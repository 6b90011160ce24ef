"""The sans-IO distributor: the engine's inputs in, commands and events out.

Every input takes `now` (monotonic seconds) and returns the outputs it caused, in order (see
queues.outputs); `caller_arrived` wraps them in a JoinResult. Deadlines that passed before
`now` are processed first, each at its own time, so the shell may call `tick` late without
changing the result; it arms one timer at `next_deadline()`.

Rules the engine can rely on:
- An offer is a lease until its deadline (ring_timeout). At most one offer per agent, and only
  to an agent logged in, "available", with a registered device, not ringing, in a queue call
  or in wrap-up, and on no other call unless the queue has allow_busy_agents. An agent who
  stops qualifying while ringing has the offer cancelled (the caller is offered again at once).
- The first answer wins: the caller's other offers are cancelled (answered_elsewhere) and any
  later answer for them -- or for any offer no longer live -- gets RejectAnswer.
- A failed offer (no_answer, rejected, busy, error, or our own timeout) frees the agent; the
  caller is offered again after the queue's retry_delay, preferring agents it has not tried.
  no_answer and rejected count towards autopause_after; busy and error do not.
- Each caller ends exactly once: Connect, queue.abandoned (caller_left), or Overflow (max_wait
  with queue.timeout, full with queue.full, empty with queue.exit_empty).
- allow_busy_agents covers calls reported by agent_busy (outside the queues); a queue call or
  wrap-up always holds the agent's one queue slot.
- Settings changes apply to the next offers; waiting callers keep their place and their
  max_wait deadline (computed at join).
- Inputs the engine derives from signalling (presence, agent_busy/free, call_ended,
  wrapup_done, offer_*) ignore unknown agents and offers; API-driven ones (set_availability,
  caller_arrived with an unknown queue) raise KeyError.

Known limits: an agent who becomes free while a ring_all caller is already ringing others
does not join that ringing (it takes the next waiting caller, or waits for the retry round);
ring_progressively widens only at its tier deadlines, so a higher-priority caller whose tier
is not open yet keeps a free higher-tier agent from the callers behind it until then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from queues.agent import (
    AVAILABLE,
    IDLE,
    IN_CALL,
    RESERVED,
    RINGING,
    WRAP_UP,
    Agent,
    AgentSnapshot,
    Call,
    Wrapup,
)
from queues.callers import Caller, Skills
from queues.membership import Membership
from queues.outputs import (
    Connect,
    JoinResult,
    Output,
    Overflow,
    QueueEvent,
    RejectAnswer,
    StatusChange,
)
from queues.queue import QueueSnapshot

__all__ = ["FAILURE_REASONS", "Distributor", "SplitMix"]

FAILURE_REASONS = ("no_answer", "rejected", "busy", "error")


class SplitMix:
    """A small deterministic source of floats in [0, 1) (SplitMix64), the default when the shell
    injects none; the daemon should pass a seeded `random.Random().random`."""

    __slots__ = ("state",)

    def __init__(self, seed: int = 0) -> None:
        self.state = seed & 0xFFFFFFFFFFFFFFFF

    def __call__(self) -> float:
        self.state = (self.state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        return ((z ^ (z >> 31)) >> 11) / float(1 << 53)


def _required(skills: Mapping[str, float] | Iterable[str | tuple[str, float]]) -> Skills:
    """Normalize required skills: a bare name needs the skill at any proficiency."""
    pairs = skills.items() if isinstance(skills, Mapping) else (
        (s, 0.0) if isinstance(s, str) else s for s in skills)
    merged: dict[str, float] = {}
    for name, low in pairs:
        merged[name] = max(float(low), merged.get(name, float("-inf")))
    return tuple(sorted(merged.items()))


class Distributor(Membership):
    def __init__(self, *, rng: Callable[[], float] | None = None,
                 history_limit: int = 200) -> None:
        super().__init__(rng if rng is not None else SplitMix(), history_limit)

    # -- callers -------------------------------------------------------------------------

    def caller_arrived(self, queue: str, caller_id: str, now: float, priority: int = 0,
                       skills: Mapping[str, float] | Iterable[str | tuple[str, float]] = (),
                       preferred_agent: str | None = None) -> JoinResult:
        """A caller asks to join `queue`. Higher priority is served first within the queue;
        skills are required (name or (name, minimum proficiency)); a preferred agent that is
        a member with those skills is waited for alone for the queue's sticky_timeout (0: tried
        first if free, then anyone)."""
        self._advance(now)
        q = self._queues.get(queue)
        if q is None:
            raise KeyError(f"unknown queue {queue!r}")
        if caller_id in self._callers:
            raise ValueError(f"caller {caller_id!r} is already queued")
        s = q.settings
        refused: Overflow | None = None
        if s.max_len and len(q.callers) >= s.max_len:
            q.stats.overflow_full += 1
            refused = Overflow(caller_id, s.full_destination, "full")
            self._out.append(QueueEvent("queue.full", {"queue": queue, "caller": caller_id}))
        elif q.is_empty(s.join_empty) or q.is_empty(s.leave_empty):
            # a caller joining under leave_empty would have to leave at once
            q.stats.overflow_empty += 1
            refused = Overflow(caller_id, s.empty_destination, "empty")
            self._out.append(QueueEvent("queue.exit_empty", {
                "queue": queue, "caller": caller_id, "wait": 0.0, "position": None}))
        if refused is not None:
            self._out.append(refused)
            return JoinResult(False, None, refused, self._drain())
        now = self._now
        required = _required(skills)
        c = Caller(caller_id, queue, priority, required, None, now, next(self._seq))
        q.line.add(c)
        q.callers[caller_id] = c
        self._callers[caller_id] = c
        q.stats.entered += 1
        position = q.line.position(c)
        self._out.append(QueueEvent("queue.entered", {
            "queue": queue, "caller": caller_id, "position": position, "priority": priority}))
        if s.max_wait > 0:
            c.timeout_timer = self._timers.call_at(now + s.max_wait, self._max_wait_due, c)
        self._schedule_widening(c, q)
        p = preferred_agent
        if p is not None and p in q.members and p in self._agents and q.satisfies(p, required):
            c.preferred = p
            if s.sticky_timeout > 0:
                c.sticky_timer = self._timers.call_at(now + s.sticky_timeout,
                                                      self._sticky_due, c)
        self._enqueue(c)
        if c.preferred is not None and c.sticky_timer is None:
            self._route_caller(c)
            self._end_sticky(c)
        return JoinResult(True, position, None, self._drain())

    def caller_left(self, caller_id: str, now: float) -> list[Output]:
        """The caller hung up before being connected (after Connect this is ignored)."""
        self._advance(now)
        c = self._callers.get(caller_id)
        if c is not None:
            q = self._queues[c.queue]
            wait = self._now - c.joined_at
            q.stats.abandoned += 1
            if wait <= q.settings.service_level_seconds:
                q.stats.abandoned_in_sl += 1
            self._out.append(QueueEvent("queue.abandoned", {
                "queue": c.queue, "caller": caller_id, "wait": wait,
                "position": q.line.position(c)}))
            self._finish_caller(c, "caller_left")
        return self._drain()

    # -- offers --------------------------------------------------------------------------

    def offer_ringing(self, offer_id: int, now: float) -> list[Output]:
        """Optional: the agent's device reports ringing (reserved -> ringing)."""
        self._advance(now)
        o = self._offers.get(offer_id)
        if o is not None and o.agent.work == RESERVED:
            o.agent.set_work(RINGING, self._now, "ringing", self._out)
        return self._drain()

    def offer_answered(self, offer_id: int, now: float) -> list[Output]:
        self._advance(now)
        o = self._offers.get(offer_id)
        if o is None:
            self._out.append(RejectAnswer(offer_id))
            return self._drain()
        now = self._now
        self._detach(o)
        a, c = o.agent, o.caller
        q = self._queues[c.queue]
        a.unanswered = 0
        a.calls += 1
        a.call = Call(c.id, c.queue, offer_id, now)
        self._out.append(Connect(c.id, a.id, offer_id))
        a.set_work(IN_CALL, now, "answered", self._out)
        hold = now - c.joined_at
        q.stats.connected += 1
        q.stats.hold_time += hold
        if hold <= q.settings.service_level_seconds:
            q.stats.connected_in_sl += 1
        self._out.append(QueueEvent("queue.connected", {
            "queue": c.queue, "caller": c.id, "agent": a.id, "offer_id": offer_id,
            "hold_time": hold}))
        self._finish_caller(c, "answered_elsewhere")
        return self._drain()

    def offer_failed(self, offer_id: int, reason: str, now: float) -> list[Output]:
        if reason not in FAILURE_REASONS:
            raise ValueError(f"offer failure reason must be one of {FAILURE_REASONS}")
        self._advance(now)
        o = self._offers.get(offer_id)
        if o is not None:
            self._offer_failed(o, reason)
        return self._drain()

    # -- agents --------------------------------------------------------------------------

    def set_presence(self, device: str, registered: bool, now: float) -> list[Output]:
        """A device (SIP account user) registered or lost its last binding."""
        self._advance(now)
        if registered:
            self._registered.add(device)
        else:
            self._registered.discard(device)
        for aid in sorted(self._device_agents.get(device, ())):
            a = self._agents[aid]
            old_level = a.level
            a.set_registered(device, registered, self._now, self._out)
            if not a.present and a.offer is not None:
                self._cancel_offer(a.offer, "agent_unreachable", requeue=True)
            self._agent_changed(a, old_level)
        return self._drain()

    def set_availability(self, agent: str, status: str, now: float,
                         reason: str = "api") -> list[Output]:
        """status: "available", "logged_out" or a not-available reason ("lunch", ...)."""
        self._advance(now)
        a = self._agents.get(agent)
        if a is None:
            raise KeyError(f"unknown agent {agent!r}")
        if not status:
            raise ValueError("status must not be empty")
        old_level = a.level
        if a.set_availability(status, self._now, reason, self._out):
            if status != AVAILABLE and a.offer is not None:
                self._cancel_offer(a.offer, "agent_unavailable", requeue=True)
            self._agent_changed(a, old_level)
        return self._drain()

    def agent_busy(self, agent: str, call_ref: str, now: float) -> list[Output]:
        """The agent is on a call outside the queues (inbound, outbound, direct)."""
        self._advance(now)
        a = self._agents.get(agent)
        if a is not None and call_ref not in a.external:
            old = a.occupancy
            a.external.add(call_ref)
            a.note_occupancy(old, self._now, "external_call", self._out)
            o = a.offer
            if o is not None and not self._queues[o.queue].settings.allow_busy_agents:
                self._cancel_offer(o, "agent_busy", requeue=True)
            self._sync_free(a)
        return self._drain()

    def agent_free(self, agent: str, call_ref: str, now: float) -> list[Output]:
        self._advance(now)
        a = self._agents.get(agent)
        if a is not None and call_ref in a.external:
            old = a.occupancy
            a.external.discard(call_ref)
            if not a.external and a.work == IDLE:
                a.idle_since = self._now
            a.note_occupancy(old, self._now, "external_call_ended", self._out)
            self._sync_free(a)
        return self._drain()

    def call_ended(self, agent: str, now: float) -> list[Output]:
        """The agent's queue call ended: wrap-up (the agent's override, else the queue's)."""
        self._advance(now)
        a = self._agents.get(agent)
        if a is not None and a.call is not None:
            now = self._now
            call, a.call = a.call, None
            talk = now - call.answered_at
            a.talk_time += talk
            q = self._queues.get(call.queue)
            wrapup = a.settings.wrapup_time
            if wrapup is None:
                wrapup = q.settings.wrapup_time if q is not None else 0.0
            if wrapup > 0:
                w = a.wrapup = Wrapup(call.queue, now, now + wrapup, talk)
                w.timer = self._timers.call_at(w.deadline, self._wrapup_due, a, w)
                a.set_work(WRAP_UP, now, "call_ended", self._out)
                self._out.append(QueueEvent("agent.wrapup_started", {
                    "agent": a.id, "queue": call.queue, "duration": wrapup,
                    "deadline": w.deadline}))
            else:
                a.idle_since = now
                if q is not None:
                    q.stats.handle_times.append(talk)
                a.set_work(IDLE, now, "call_ended", self._out)
                self._sync_free(a)
        return self._drain()

    def wrapup_done(self, agent: str, now: float) -> list[Output]:
        """The agent is ready before the wrap-up deadline."""
        self._advance(now)
        a = self._agents.get(agent)
        if a is not None and a.wrapup is not None:
            self._end_wrapup(a, "ready")
        return self._drain()

    def _wrapup_due(self, a: Agent, w: Wrapup) -> None:
        if a.wrapup is w:
            w.timer = None
            self._end_wrapup(a, "deadline")
        self._settle()

    def _end_wrapup(self, a: Agent, reason: str) -> None:
        now = self._now
        w = a.wrapup
        assert w is not None
        a.wrapup = None
        if w.timer is not None:
            self._timers.cancel(w.timer)
        spent = now - w.started
        a.wrapup_total += spent
        a.wrapups += 1
        a.idle_since = now
        q = self._queues.get(w.queue)
        if q is not None:
            q.stats.handle_times.append(w.talk + spent)
        a.set_work(IDLE, now, reason, self._out)
        self._out.append(QueueEvent("agent.wrapup_ended", {
            "agent": a.id, "queue": w.queue, "duration": spent, "reason": reason}))
        self._sync_free(a)

    def reset_counters(self, now: float) -> list[Output]:
        """The daily reset: agents' calls, talk and wrap-up totals."""
        self._advance(now)
        for a in self._agents.values():
            a.reset_counters()
        for q in self._queues.values():
            q.rerank()  # fewest_calls and least_talk_time ranks fell
        return self._drain()

    # -- time and queries ----------------------------------------------------------------

    def tick(self, now: float) -> list[Output]:
        self._advance(now)
        return self._drain()

    def next_deadline(self) -> float | None:
        return self._timers.next_deadline()

    def position(self, caller_id: str) -> int | None:
        c = self._callers.get(caller_id)
        return self._queues[c.queue].line.position(c) if c is not None else None

    def estimated_wait(self, caller_id: str) -> float | None:
        """See QueueState.estimated_wait; None for an unknown caller or without data."""
        c = self._callers.get(caller_id)
        if c is None:
            return None
        q = self._queues[c.queue]
        return q.estimated_wait(q.line.position(c))

    def caller_state(self, caller_id: str) -> str | None:
        c = self._callers.get(caller_id)
        return c.state if c is not None else None

    def agent(self, agent: str) -> AgentSnapshot:
        return self._agents[agent].snapshot()

    def agent_history(self, agent: str) -> list[StatusChange]:
        return [StatusChange(*h) for h in self._agents[agent].history]

    def queue(self, name: str) -> QueueSnapshot:
        return self._queues[name].snapshot()

    def agents(self) -> list[str]:
        return list(self._agents)

    def queues(self) -> list[str]:
        return list(self._queues)

