"""Queues on real calls: the distributor (queues/) decides, this module rings and bridges.

`QueueService` feeds the sans-IO `Distributor` with what happens (a caller joins or hangs
up, an agent's phone rings, answers, refuses or times out, devices register, statuses
change, agents take other calls) and carries out what it asks: ring every registered
contact of an agent's devices (`Offer`), stop ringing (`CancelOffer`), bridge the caller
with the leg that answered (`Connect`), hang up a leg that answered too late
(`RejectAnswer`, ACK + BYE), and send callers elsewhere (`Overflow`). Waiting callers hear
music on hold with periodic position / estimated-wait announcements. Every distributor
event is published on the bus.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from acd.adapters.store import AgentStateRow, UpsertAgentState, UpsertQueueTuning
from acd.calls import Call, Destination, Leg
from acd.queuemetrics import QueueCollector
from acd.registrations import binding_target
from queues.agent import AUTO_PAUSED, AVAILABLE, LOGGED_OUT
from queues.distributor import Distributor
from queues.outputs import (
    CancelOffer,
    Connect,
    Offer,
    Output,
    Overflow,
    QueueEvent,
    RejectAnswer,
)
from sip.message import Response
from sip.session import InviteSession
from sip.timers import TimerHandle
from sip.uri import SipURI

if TYPE_CHECKING:
    from acd.engine import Engine

__all__ = ["QueueService", "QueueTuningError"]


class QueueTuningError(ValueError):
    """An admin API change to a queue that cannot apply: which field, and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


_NUMBERS = {  # tunable numeric settings: (minimum, whether the minimum itself is allowed)
    "ring_timeout": (0.0, False), "retry_delay": (0.0, True), "wrapup_time": (0.0, True),
    "max_wait": (0.0, True), "priority": (0.0, False), "service_level_seconds": (0.0, True),
    "sticky_timeout": (0.0, True), "tier_step": (0.0, True),
}
_INTEGERS = ("max_len", "autopause_after", "handle_time_samples")

# The availability a configured agent starts with: a registered phone is ready to take calls
# until the agent says otherwise (*22, the admin API). No stored row means this status.
START_STATUS = AVAILABLE
# The reason of the availability changes made at start from the store (agent.status_changed)
RESTORED = "restored"

log = structlog.get_logger("acd.queues")


def _failure_reason(reason: str, status: int | None) -> str:
    """A failed agent leg in the distributor's terms."""
    if reason == "timeout" or status in (408, 480):
        return "no_answer"
    if status in (486, 600):
        return "busy"
    if (status is not None and 400 <= status < 500) or status in (603, 487):
        return "rejected"
    return "error"


@dataclass(eq=False)
class OfferLegs:
    offer: Offer
    call: Call
    legs: list[Leg] = field(default_factory=list)
    answered: Leg | None = None
    failures: list[tuple[str, int | None]] = field(default_factory=list)


class _OfferListener:
    """The listener of an agent leg while it rings for a queue offer."""

    def __init__(self, service: QueueService, offer_id: int, leg: Leg) -> None:
        self.service, self.offer_id, self.leg = service, offer_id, leg

    def on_early(self, session: InviteSession, response: Response) -> None:
        self.service._offer_ringing(self.offer_id)

    def on_answered(self, session: InviteSession, sdp: bytes) -> None:
        self.service._leg_answered(self.offer_id, self.leg, sdp)

    def on_offer(self, session: InviteSession, sdp: bytes) -> bytes | None:
        return None

    def on_info(self, session: InviteSession, content_type: str, body: bytes) -> None:
        return None

    def on_terminated(self, session: InviteSession, reason: str, status: int | None) -> None:
        self.service._leg_failed(self.offer_id, self.leg, reason, status)


class QueueService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dist = Distributor(rng=random.Random().random)
        self.callers: dict[str, Call] = {}  # call ref -> waiting call
        self.offers: dict[int, OfferLegs] = {}
        self.agent_calls: dict[str, str] = {}  # call ref of a connected queue call -> agent
        self.device_agent: dict[str, str] = {}
        self._timer: TimerHandle | None = None
        self._timer_at: float | None = None
        self._external: dict[str, set[str]] = {}  # agent -> refs of their non-queue calls
        self.tuning: dict[str, dict[str, Any]] = {}  # queue -> changes made through the API
        # (device, call ref) -> the agent made busy: a reload during the call may move the
        # device or drop the agent, and the agent must still be freed when the call ends
        self._busy_agent: dict[tuple[str, str], str] = {}
        # availability changes are stored from the first one after the start state: the
        # agents the config creates start at START_STATUS, which is what no row means
        self._store_status = False
        self.apply_config(engine.config)
        self._store_status = True
        engine.metrics.registry.register(QueueCollector(self))

    @property
    def now(self) -> float:
        return self.engine.clock.now()

    # configuration ---------------------------------------------------------------------------
    def apply_config(self, config: Any) -> None:
        now = self.now
        agents = getattr(config, "agents", {}) or {}
        queues = getattr(config, "queues", {}) or {}
        out: list[Output] = []
        for name in set(self.dist.queues()) - set(queues):
            out += self.dist.remove_queue(name, now)
        for aid in set(self.dist.agents()) - set(agents):
            out += self.dist.remove_agent(aid, now)
        known = set(self.dist.agents())
        for settings in agents.values():
            out += self.dist.update_agent(settings, now)
            if settings.agent not in known:
                out += self.dist.set_availability(settings.agent, START_STATUS, now,
                                                  "configured")
        for qc in queues.values():
            out += self.dist.update_queue(qc.settings, now)
        self.device_agent = {d: a.agent for a in agents.values() for d in a.devices}
        self.queue_config = dict(queues)
        # the admin API's changes stay on top of the file's settings across reloads
        for name, changes in list(getattr(self, "tuning", {}).items()):
            if name in self.queue_config:
                try:
                    self.tune(name, changes, persist=False)
                except QueueTuningError as exc:
                    log.warning("queue tuning dropped by the reload", queue=name, error=str(exc))
        # devices already registered count from the start
        for device in self.device_agent:
            registered = bool(self.engine.registrations.registrar.lookup(device))
            out += self.dist.set_presence(device, registered, now)
        self._apply(out)

    # inputs from the rest of the engine ---------------------------------------------------
    def join(self, call: Call, queue: str, priority: int = 0) -> None:
        if queue not in self.queue_config:
            call._log("unknown queue", queue=queue)
            call.hangup_after(["not_available"])
            return
        if not call.answer_caller():
            return
        call.queue = queue
        self.callers[call.ref] = call
        result = self.dist.caller_arrived(queue, call.ref, self.now, priority=priority)
        if result.joined:
            qc = self.queue_config[queue]
            first = [qc.join_prompt] if qc.join_prompt else []
            self._hold(call, first)
            self._schedule_announcement(call)
        self._apply(result.outputs)

    def caller_gone(self, call: Call) -> None:
        """The caller's call ended (hung up, or anything else) while queued or connected."""
        ref = call.ref
        if self.callers.pop(ref, None) is not None:
            self._apply(self.dist.caller_left(ref, self.now))
        agent = self.agent_calls.pop(ref, None)
        if agent is not None:
            self._apply(self.dist.call_ended(agent, self.now))

    def presence(self, device: str, registered: bool) -> None:
        if device in self.device_agent:
            self._apply(self.dist.set_presence(device, registered, self.now))

    def set_status(self, agent: str, status: str, reason: str = "api") -> None:
        self._apply(self.dist.set_availability(agent, status, self.now, reason))

    def wrapup_done(self, agent: str) -> None:
        self._apply(self.dist.wrapup_done(agent, self.now))

    def device_busy(self, device: str, call_ref: str) -> None:
        """A device of an agent is on a call outside the queues (direct, outbound)."""
        agent = self.device_agent.get(device)
        if agent is None:
            return
        refs = self._external.setdefault(agent, set())
        if call_ref not in refs:
            refs.add(call_ref)
            self._busy_agent[(device, call_ref)] = agent
            self._apply(self.dist.agent_busy(agent, call_ref, self.now))

    def device_free(self, device: str, call_ref: str) -> None:
        agent = self._busy_agent.pop((device, call_ref), None)
        refs = self._external.get(agent or "")
        if agent is None or refs is None or call_ref not in refs:
            return
        refs.discard(call_ref)
        if not refs:
            del self._external[agent]
        self._apply(self.dist.agent_free(agent, call_ref, self.now))

    # carrying out the distributor's outputs --------------------------------------------------
    def _apply(self, outputs: list[Output]) -> None:
        for o in outputs:
            if isinstance(o, Offer):
                self._offer(o)
            elif isinstance(o, CancelOffer):
                self._cancel(o.offer_id, o.reason)
            elif isinstance(o, Connect):
                self._connect(o)
            elif isinstance(o, RejectAnswer):
                self._reject_answer(o.offer_id)
            elif isinstance(o, Overflow):
                self._overflow(o)
            elif isinstance(o, QueueEvent):
                self._event(o)
        self._rearm()

    def _rearm(self) -> None:
        deadline = self.dist.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self.engine.timers.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._apply(self.dist.tick(self.now))

    def _event(self, ev: QueueEvent) -> None:
        data = dict(ev.data)
        ref = data.get("caller")
        # a caller that just left the queue (connected, hung up) is no longer in self.callers
        # but its call still exists: its events carry hotline and from all the same
        call = (self.callers.get(ref) or self.engine.calls.calls.get(ref)) \
            if isinstance(ref, str) else None
        if call is not None:
            data.setdefault("hotline", call.hotline)
            data.setdefault("from", call.from_number)
        self.engine.bus.emit(ev.type, data, call_id=ref if isinstance(ref, str) else None)
        if ev.type == "agent.status_changed" and data.get("layer") == "availability":
            self._status_changed(data)
        sip_call_id = call.sip_call_id if call is not None else None
        log.info(ev.type, call_id=sip_call_id, **{k: v for k, v in data.items()
                                                   if k not in ("event", "call_id")})

    def _status_changed(self, data: dict[str, Any]) -> None:
        """Store an agent's new availability, whatever set it (the admin API, a feature code,
        autopause, a reload adding the agent), so that a restart keeps it. Not stored: the
        start state and the restore itself (the row already says so)."""
        if not self._store_status or data.get("reason") == RESTORED:
            return
        agent, status, reason = data.get("agent"), data.get("new"), data.get("reason")
        if isinstance(agent, str) and isinstance(status, str):
            self.engine.store_submit(UpsertAgentState(AgentStateRow(
                agent=agent, status=status, updated_at=self.engine.clock.wall(),
                reason=reason if isinstance(reason, str) else None)))

    def _offer(self, o: Offer) -> None:
        call = self.callers.get(o.caller)
        if call is None or call.is_over:
            self._apply(self.dist.offer_failed(o.offer_id, "error", self.now))
            return
        entry = OfferLegs(o, call)
        self.offers[o.offer_id] = entry
        domain = self.engine.config.sip.domain
        display = f"{call.from_number} ({o.queue})"
        extra = (("X-ACD-Queue", o.queue), ("X-ACD-Hotline", call.hotline or ""),
                 ("X-ACD-Agent", o.agent))
        for device in o.devices:
            for b in self.engine.registrations.registrar.lookup(device):
                if not isinstance(b.uri, SipURI):
                    continue
                leg = self.engine.calls.place(
                    call, b.uri, binding_target(b), party=device,
                    to_uri=f"sip:{device}@{domain}", from_user=call.from_number or "anonymous",
                    display=display, extra=extra, start=False)
                if leg is None:
                    continue
                leg.offer_id = o.offer_id
                leg.agent = o.agent
                leg.session.listener = _OfferListener(self, o.offer_id, leg)
                entry.legs.append(leg)
        if not entry.legs:
            del self.offers[o.offer_id]
            self._apply(self.dist.offer_failed(o.offer_id, "error", self.now))
            return
        call._log("offering to agent", agent=o.agent, queue=o.queue, offer=o.offer_id,
                  devices=len(entry.legs))
        for leg in entry.legs:
            leg.session.start()  # type: ignore[attr-defined]

    def _offer_ringing(self, offer_id: int) -> None:
        if offer_id in self.offers:
            self._apply(self.dist.offer_ringing(offer_id, self.now))

    def _leg_answered(self, offer_id: int, leg: Leg, sdp: bytes) -> None:
        entry = self.offers.get(offer_id)
        if entry is None or entry.answered is not None:
            leg.session.hangup()  # a late or second device: ACK was sent, now BYE
            return
        assert leg.media is not None
        if not leg.media.accept_answer(sdp):
            leg.session.hangup()
            return
        entry.answered = leg
        self._apply(self.dist.offer_answered(offer_id, self.now))

    def _leg_failed(self, offer_id: int, leg: Leg, reason: str, status: int | None) -> None:
        entry = self.offers.get(offer_id)
        if leg.media is not None:
            leg.media.close()
        if entry is None:
            return
        if entry.answered is leg:
            return  # hung up after Connect: the call handles it
        entry.failures.append((reason, status))
        if any(x.session.active for x in entry.legs):
            return  # another device of the agent still rings
        del self.offers[offer_id]
        if reason == "cancelled" and entry.answered is None:
            return  # we cancelled it: the distributor already knows why
        why = _failure_reason(*entry.failures[0]) if entry.failures else "error"
        self._apply(self.dist.offer_failed(offer_id, why, self.now))

    def _cancel(self, offer_id: int, reason: str) -> None:
        entry = self.offers.pop(offer_id, None)
        if entry is None:
            return
        for leg in entry.legs:
            # a leg that answered is hung up too (cancel() on a confirmed leg is a BYE): an
            # answer arriving as the lease ran out is refused, and its leg must not linger
            if leg.session.active:
                leg.session.cancel()  # type: ignore[attr-defined]

    def _reject_answer(self, offer_id: int) -> None:
        entry = self.offers.pop(offer_id, None)
        if entry is None:
            return
        for leg in entry.legs:
            if leg.session.active:
                leg.session.hangup()

    def _connect(self, c: Connect) -> None:
        entry = self.offers.pop(c.offer_id, None)
        call = self.callers.pop(c.caller, None)
        if entry is None or call is None or entry.answered is None:
            return
        leg = entry.answered
        for other in entry.legs:
            if other is not leg and other.session.active:
                other.session.cancel()  # type: ignore[attr-defined]
        call.cancel_timer("announce")
        self.agent_calls[call.ref] = c.agent
        leg.session.listener = call  # from now on the leg is an ordinary callee leg
        call.connect(leg)

    def _overflow(self, o: Overflow) -> None:
        call = self.callers.pop(o.caller, None)
        if call is None or call.is_over:
            return
        call.cancel_timer("announce")
        call._log("queue overflow", queue=call.queue, reason=o.reason)
        dest = o.destination
        if isinstance(dest, Destination):
            self.engine.calls.run(call, dest)
        elif dest is not None and hasattr(dest, "kind"):
            self.engine.calls.run(call, Destination(dest.kind, getattr(dest, "target", "")))
        else:
            call.hangup_after(["not_available"])

    # what waiting callers hear -----------------------------------------------------------------
    def _hold(self, call: Call, first: list[str]) -> None:
        qc = self.queue_config.get(call.queue or "")
        moh = (qc.music_on_hold if qc is not None else None) or "moh"
        if first:
            call.play(first, on_done=lambda: self._hold(call, []))
        else:
            call.play([moh], loop=True)

    def _schedule_announcement(self, call: Call) -> None:
        qc = self.queue_config.get(call.queue or "")
        if qc is None or qc.settings.announce.interval <= 0:
            return
        call.after("announce", qc.settings.announce.interval, lambda: self._announce(call))

    def _announce(self, call: Call) -> None:
        if call.ref not in self.callers or call.is_over:
            return
        qc = self.queue_config[call.queue or ""]
        ann = qc.settings.announce
        words: list[str] = []
        position = self.dist.position(call.ref)
        if ann.position and position is not None and 1 <= position <= 10:
            words += ["position_is", f"n{position}", "in_queue"]
        wait = self.dist.estimated_wait(call.ref)
        if ann.estimated_wait and wait is not None:
            minutes = math.ceil(wait / max(ann.round_to, 1.0)) * ann.round_to / 60
            if minutes < 1:
                words += ["wait_is", "less_than_a_minute"]
            elif minutes <= 10:
                words += ["wait_is", f"n{int(minutes)}", "minutes"]
        if not words:
            words = ["queue_wait"]
        call.caller_media.endpoint.stop_play()
        self._hold(call, words)
        self._schedule_announcement(call)

    # the admin API -----------------------------------------------------------------------
    def statuses(self) -> list[str]:
        return [AVAILABLE, LOGGED_OUT, *getattr(self.engine.config, "agent_statuses", ())]

    def tune(self, name: str, changes: dict[str, Any], persist: bool = True) -> None:
        """Apply an admin change to a queue at once (waiting callers keep their place); it
        is stored, and applied again on top of the YAML after a reload or a restart."""
        from dataclasses import replace

        from queues.settings import Member
        from queues.strategies import strategy_names

        qc = self.queue_config[name]  # KeyError: unknown queue
        values: dict[str, Any] = {}
        for key, value in changes.items():
            field_name = "service_level_seconds" if key == "service_level" else key
            if field_name in _NUMBERS:
                low, inclusive = _NUMBERS[field_name]
                # json.loads takes NaN and Infinity: a NaN deadline would corrupt the
                # distributor's timer heap, so only finite numbers are accepted
                if isinstance(value, bool) or not isinstance(value, int | float) or (
                        not math.isfinite(value) or value < low
                        or (value == low and not inclusive)):
                    raise QueueTuningError(key, f"must be a number {'>=' if inclusive else '>'}"
                                                f" {low:g}")
                values[field_name] = float(value)
            elif field_name in _INTEGERS:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise QueueTuningError(key, "must be an integer >= 0")
                values[field_name] = value
            elif key == "strategy":
                if value not in strategy_names():
                    raise QueueTuningError(key, f"unknown strategy {value!r}; one of "
                                                f"{', '.join(sorted(strategy_names()))}")
                values[key] = value
            elif key == "allow_busy_agents":
                if not isinstance(value, bool):
                    raise QueueTuningError(key, "must be true or false")
                values[key] = value
            elif key == "members":
                members = tuple(self._member(i, m, Member) for i, m in enumerate(
                    value if isinstance(value, list) else [None]))
                seen: set[str] = set()
                for i, m in enumerate(members):
                    if m.agent in seen:  # QueueSettings refuses it too, without the index
                        raise QueueTuningError(f"members[{i}]", f"agent {m.agent!r} is "
                                                                "listed twice")
                    seen.add(m.agent)
                values[key] = members
            else:
                raise QueueTuningError(key, "cannot be changed through the API")
        try:
            settings = replace(qc.settings, **values)
        except (TypeError, ValueError) as exc:
            raise QueueTuningError("(body)", str(exc)) from None
        self.queue_config[name] = replace(qc, settings=settings)
        self.tuning[name] = {**self.tuning.get(name, {}), **changes}
        if persist:
            self.engine.store_submit(UpsertQueueTuning(
                name, json.dumps(self.tuning[name], sort_keys=True), self.engine.clock.wall()))
            log.info("queue tuned", queue=name, changes=sorted(changes))
            self.engine.bus.emit("queue.tuned", {"queue": name, "changes": changes})
        self._apply(self.dist.update_queue(settings, self.now))

    def restore_tuning(self, stored: dict[str, tuple[str, float]]) -> None:
        """At start: the admin API's stored changes on top of the YAML settings. A change
        that no longer applies (the queue or an agent was removed) is logged and skipped."""
        for name, (changes, _at) in stored.items():
            try:
                self.tune(name, json.loads(changes), persist=False)
            except (KeyError, ValueError) as exc:
                log.warning("stored queue tuning not applied", queue=name, error=str(exc))

    def restore_agent_states(self, rows: Iterable[AgentStateRow]) -> int:
        """At start: each configured agent gets its stored availability back (an
        agent.status_changed with reason "restored"); returns how many changed. Rows of agents
        the config no longer has are ignored and kept. A status the config no longer defines
        (a not-available reason removed from agent_statuses) leaves the agent at the start
        status, with a warning, and the row is overwritten with it."""
        known = set(self.dist.agents())
        valid = {*self.statuses(), AUTO_PAUSED}
        changed = 0
        for row in rows:
            if row.agent not in known:
                log.info("stored agent state of an unknown agent ignored", agent=row.agent,
                         status=row.status)
                continue
            status = row.status
            if status not in valid:
                log.warning("stored agent status no longer configured: start status instead",
                            agent=row.agent, status=status, start_status=START_STATUS)
                status = START_STATUS
                self.engine.store_submit(UpsertAgentState(AgentStateRow(
                    agent=row.agent, status=status, updated_at=self.engine.clock.wall(),
                    reason="configured")))
            if self.dist.agent(row.agent).availability != status:
                changed += 1
                self._apply(self.dist.set_availability(row.agent, status, self.now, RESTORED))
        return changed

    def _member(self, index: int, m: Any, member_type: Any) -> Any:
        agents = set(self.dist.agents())
        if isinstance(m, str):
            m = {"agent": m}
        if not isinstance(m, dict) or not isinstance(m.get("agent"), str):
            raise QueueTuningError(f"members[{index}]", "must be an agent id or {agent: ...}")
        if m["agent"] not in agents:
            raise QueueTuningError(f"members[{index}].agent", f"no agent {m['agent']!r}")
        extra = set(m) - {"agent", "penalty", "weight", "skills"}
        if extra:
            raise QueueTuningError(f"members[{index}]", f"unknown keys {sorted(extra)}")
        try:
            return member_type(m["agent"], int(m.get("penalty", 0)),
                               float(m.get("weight", 1.0)), dict(m.get("skills", {})))
        except (TypeError, ValueError) as exc:
            raise QueueTuningError(f"members[{index}]", str(exc)) from None

    # views ------------------------------------------------------------------------------
    def snapshot_queues(self) -> list[dict[str, Any]]:
        out = []
        for name in sorted(self.dist.queues()):
            s = self.dist.queue(name)
            waiting = [
                {"call": ref, "from": c.from_number, "position": self.dist.position(ref),
                 "waiting_for": round(self.now - c.started, 1), "hotline": c.hotline}
                for ref, c in self.callers.items() if c.queue == name]
            waiting.sort(key=lambda w: w["position"] or 0)
            settings = self.queue_config[name].settings if name in self.queue_config else None
            out.append({
                "name": name, "strategy": s.strategy, "callers": s.callers,
                "waiting": waiting, "free_agents": s.free_agents,
                "members_logged_in": s.members_logged_in,
                "members_available": s.members_available, "entered": s.entered,
                "connected": s.connected, "abandoned": s.abandoned, "timeouts": s.timeouts,
                "average_hold_time": s.average_hold_time, "service_level": s.service_level,
                "median_handle_time": s.median_handle_time,
                "settings": None if settings is None else {
                    "ring_timeout": settings.ring_timeout, "retry_delay": settings.retry_delay,
                    "wrapup_time": settings.wrapup_time, "max_wait": settings.max_wait,
                    "members": [m.agent for m in settings.members],
                },
            })
        return out

    def snapshot_agents(self) -> list[dict[str, Any]]:
        out = []
        for aid in sorted(self.dist.agents()):
            a = self.dist.agent(aid)
            out.append({
                "id": aid, "devices": list(a.devices), "registered": list(a.registered),
                "status": a.availability, "state": a.occupancy,
                "other_calls": a.external_calls, "calls": a.calls,
                "talk_time": round(a.talk_time, 1), "wrapup_time": round(a.wrapup_time, 1),
                "unanswered": a.unanswered, "caller": a.caller,
                "wrapup_deadline": a.wrapup_deadline,
            })
        return out
