"""What a call's events say about it, computed from the set of them: the CDR, its legs, the
outcome, and what the call's ticket should show.  Pure: no I/O, no clock.

``project(facts)`` depends only on the *set* of facts (they are sorted by publish time and
sequence before use, and every field is taken from a fixed event type), so any arrival
order, with any duplicates, gives the same view: that is what makes the consumer's end
state independent of Redis redelivery and of recording.ready racing call.ended.

Which event types are facts of a call is ``FACT_TYPES``; the rest do not touch a CDR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .model import DIRECTIONS, MISSED_OUTCOMES, OUTCOMES

FACT_TYPES = frozenset({
    "call.started", "call.answered", "call.connected", "call.ended",
    "queue.entered", "queue.offered", "queue.connected", "queue.abandoned", "queue.timeout",
    "queue.full", "queue.exit_empty", "queue.ring_noanswer", "queue.ring_rejected",
    "queue.ring_canceled",
    "recording.ready", "recording.failed", "voicemail.recorded",
})
RECORDING_TYPES = frozenset({"recording.ready", "recording.failed", "voicemail.recorded"})
_OFFER_ENDS = {"queue.ring_noanswer": "no_answer", "queue.ring_rejected": "rejected",
               "queue.ring_canceled": "canceled"}
_QUEUE_EXITS = ("queue.connected", "queue.abandoned", "queue.timeout", "queue.exit_empty")
# Routing decisions an event may state (call.started "route", call.ended "outcome").
_ROUTE_OUTCOMES = ("out_of_hours", "blacklisted")
_FAILED_REASONS = frozenset({"no media", "no trunk", "shutdown", "error"})


@dataclass(frozen=True, slots=True)
class Fact:
    """One stored event of a call."""

    id: str
    type: str
    ts: float
    seq: int
    node: str
    data: dict[str, Any]

    @property
    def order(self) -> tuple[float, str, int, str]:
        return (self.ts, self.node, self.seq, self.id)


@dataclass(frozen=True, slots=True)
class LegView:
    role: str
    party: str | None
    started_at: float | None
    answered_at: float | None
    ended_at: float | None
    outcome: str | None


@dataclass(frozen=True, slots=True)
class CallView:
    ref: str
    started_at: float
    last_ts: float
    cdr: dict[str, Any]  # the cdrs columns this view determines
    ended: bool
    outcome: str | None
    direction: str | None
    customer: str | None  # the outside party's number: caller inbound, callee outbound
    agent: str | None  # who answered for the contact center
    connected_at: float | None
    blacklisted: bool
    missed: bool
    legs: tuple[LegView, ...] = ()
    recording_events: tuple[Fact, ...] = field(default=())


def _last(facts: list[Fact], type_: str) -> Fact | None:
    found = [f for f in facts if f.type == type_]
    return found[-1] if found else None


def _pick(key: str, *sources: Fact | None) -> Any:
    """The first non-empty value of ``key`` among ``sources``, in the order given."""
    for f in sources:
        if f is not None:
            v = f.data.get(key)
            if v is not None and v != "":
                return v
    return None


def clean(value: Any) -> str | None:
    """Event text as a text column takes it: PostgreSQL refuses NUL, whatever sent it."""
    return None if value is None else str(value).replace("\x00", "")


def _text(key: str, *sources: Fact | None) -> str | None:
    return clean(_pick(key, *sources))


def json_safe(value: Any) -> Any:
    """Event data as a JSON column takes it: JSON text has no NaN or Infinity (PostgreSQL
    refuses them, and one such number would fail its whole batch), so they become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def project(ref: str, facts: list[Fact]) -> CallView:
    """The view of call ``ref`` its facts give; ``facts`` must not be empty."""
    fs = sorted({f.id: f for f in facts}.values(), key=lambda f: f.order)
    started, ended = _last(fs, "call.started"), _last(fs, "call.ended")
    answered, connected = _last(fs, "call.answered"), _last(fs, "call.connected")
    qconn = _last(fs, "queue.connected")
    queue_facts = [f for f in fs if f.type.startswith("queue.")]
    ends = ended, started
    started_at = started.ts if started is not None else fs[0].ts
    direction = _text("direction", *ends)
    if direction not in DIRECTIONS:
        direction = None
    from_number = _text("from", *ends, *reversed(queue_facts))
    to_number = _text("to", *ends)
    agent = _text("agent", ended, qconn, connected)
    connected_at = qconn.ts if qconn is not None else connected.ts if connected is not None \
        else None
    route = _pick("route", *ends)
    outcome = _outcome(fs, ended, route, connected, direction) if ended is not None else None
    blacklisted = route == "blacklisted" or outcome == "blacklisted"
    hold = _hold(fs)
    duration = _num(_pick("duration", ended))
    talk = _num(_pick("talk_time", ended))
    wait = None
    if duration is not None:
        wait = max(0.0, duration - (talk or 0.0)) if outcome == "answered" else duration
    status = _pick("status", ended)
    cdr = {
        "sip_call_id": _text("sip_call_id", *ends),
        "direction": direction,
        "from_number": from_number,
        "to_number": to_number,
        "hotline": _text("hotline", *ends, *reversed(queue_facts)),
        "trunk": _text("trunk", *ends),
        "account": _text("account", *ends),
        "queue": _text("queue", ended, *reversed(queue_facts)),
        "agent": agent,
        "started_at": started_at,
        "answered_at": connected_at,  # by a person; the engine's own answer is the caller leg's
        "ended_at": ended.ts if ended is not None else None,
        "wait_seconds": wait,
        "ring_seconds": _num(_pick("ring_time", ended)),
        "talk_seconds": talk,
        "hold_seconds": hold,
        "duration_seconds": duration,
        "outcome": outcome,
        "end_reason": _text("reason", ended),
        "hangup_by": _text("hangup_by", ended),
        "status": status if isinstance(status, int) and not isinstance(status, bool) else None,
        "node": (started or ended or fs[0]).node,
    }
    customer = to_number if direction == "outbound" else from_number
    missed = direction == "inbound" and outcome in MISSED_OUTCOMES
    legs = _legs(fs, cdr, outcome, answered) if ended is not None else ()
    return CallView(
        ref=ref, started_at=started_at, last_ts=fs[-1].ts, cdr=cdr, ended=ended is not None,
        outcome=outcome, direction=direction,
        customer=customer, agent=agent,
        connected_at=connected_at, blacklisted=blacklisted, missed=missed, legs=legs,
        recording_events=tuple(f for f in fs if f.type in RECORDING_TYPES),
    )


def _outcome(fs: list[Fact], ended: Fact, route: Any, connected: Fact | None,
             direction: str | None) -> str:
    d = ended.data
    stated = d.get("outcome")
    if stated in OUTCOMES:
        return str(stated)
    if route in _ROUTE_OUTCOMES:
        return str(route)
    if d.get("connected_to") or d.get("agent") or connected is not None \
            or any(f.type == "queue.connected" for f in fs):
        return "answered"
    if d.get("reason") == "voicemail" or any(f.type == "voicemail.recorded" for f in fs):
        return "voicemail"
    status = d.get("status")
    code = status if isinstance(status, int) else 0
    if d.get("reason") in _FAILED_REASONS or (code >= 500 and code not in (600, 603)):
        return "failed"
    if direction != "outbound" and (
            any(f.type == "queue.abandoned" for f in fs)
            or (d.get("queue") and d.get("hangup_by") == "caller")):
        return "abandoned"
    return "missed"


def _hold(fs: list[Fact]) -> float | None:
    """Seconds in the queue: to the answer, the hang-up, the timeout or the empty-out."""
    total = None
    for f in fs:
        if f.type in _QUEUE_EXITS:
            v = _num(f.data.get("hold_time" if f.type == "queue.connected" else "wait"))
            if v is not None:
                total = (total or 0.0) + v
    return total


def _legs(fs: list[Fact], cdr: dict[str, Any], outcome: str | None,
          answered: Fact | None) -> tuple[LegView, ...]:
    ended_at = cdr["ended_at"]
    caller = LegView("caller", cdr["from_number"], cdr["started_at"],
                     answered.ts if answered is not None else cdr["answered_at"], ended_at,
                     outcome)
    offers: dict[Any, dict[str, Any]] = {}
    for f in fs:
        oid = f.data.get("offer_id")
        if oid is None:
            continue
        o = offers.setdefault(oid, {"party": _text("agent", f), "started": None,
                                    "answered": None, "ended": None, "outcome": None})
        if f.type == "queue.offered":
            o["started"] = f.ts
        elif f.type == "queue.connected":
            o["answered"], o["outcome"] = f.ts, "answered"
        elif f.type in _OFFER_ENDS:
            o["ended"], o["outcome"] = f.ts, _OFFER_ENDS[f.type]
    others: list[LegView] = []
    for o in offers.values():
        start = o["started"] if o["started"] is not None else o["answered"] or o["ended"]
        others.append(LegView("agent", o["party"], start, o["answered"],
                              o["ended"] if o["ended"] is not None else ended_at,
                              o["outcome"] or "canceled"))
    connected = _last(fs, "call.connected")
    if connected is not None and not any(o["outcome"] == "answered" for o in offers.values()):
        agent = connected.data.get("agent")
        others.append(LegView("agent" if agent else "callee", _text("party", connected),
                              connected.ts, connected.ts, ended_at, "answered"))
    elif cdr["direction"] == "outbound" and not offers and connected is None:
        others.append(LegView("callee", cdr["to_number"], cdr["started_at"], None, ended_at,
                              outcome))
    others.sort(key=lambda leg: (leg.started_at or 0.0, leg.party or "", leg.role))
    return (caller, *others)
