"""What the distributor asks of the engine (commands) and tells the world (events).

Every input method of `Distributor` returns the list of these it produced, in order. Commands
are acted on by the engine (ring, stop ringing, bridge, hang up a losing leg, send elsewhere);
`QueueEvent`s carry the product's event names and go to the event bus and reports.

They are plain slotted dataclasses, not frozen ones: a routing decision returns half a dozen
and a frozen dataclass costs three times as much to build. Treat them as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "CancelOffer", "Connect", "JoinResult", "Offer", "Output", "Overflow", "QueueEvent",
    "RejectAnswer", "StatusChange",
]


@dataclass(slots=True)
class Offer:
    """Ring `devices` (the agent's registered devices) for `caller` until `deadline`."""

    offer_id: int
    caller: str
    agent: str
    devices: tuple[str, ...]
    queue: str
    deadline: float


@dataclass(slots=True)
class CancelOffer:
    """Stop ringing. reason: caller_left, answered_elsewhere, timeout, max_wait, empty,
    agent_unavailable, agent_unreachable, agent_busy, agent_removed."""

    offer_id: int
    reason: str


@dataclass(slots=True)
class Connect:
    """Bridge the caller with the agent leg that answered `offer_id`."""

    caller: str
    agent: str
    offer_id: int


@dataclass(slots=True)
class RejectAnswer:
    """An answer arrived for an offer that is no longer live (another leg won, the caller left,
    the lease expired): the engine acknowledges that leg and hangs it up (ACK + BYE)."""

    offer_id: int


@dataclass(slots=True)
class Overflow:
    """The caller leaves the queue unserved; route it to `destination` (None: engine default).
    reason: max_wait, full or empty."""

    caller: str
    destination: object
    reason: str


@dataclass(slots=True)
class QueueEvent:
    """type: queue.entered, queue.offered, queue.ring_noanswer, queue.ring_rejected,
    queue.ring_canceled, queue.connected, queue.abandoned, queue.timeout, queue.full,
    queue.exit_empty, agent.status_changed, agent.state_changed, agent.autopaused,
    agent.wrapup_started, agent.wrapup_ended."""

    type: str
    data: dict[str, Any]


Output = Offer | CancelOffer | Connect | RejectAnswer | Overflow | QueueEvent


@dataclass(slots=True)
class JoinResult:
    """What `caller_arrived` did. When refused, `overflow` is the Overflow (also in outputs)."""

    joined: bool
    position: int | None
    overflow: Overflow | None
    outputs: list[Output]


class StatusChange(NamedTuple):
    """One entry of an agent's status history. layer: presence, availability or occupancy."""

    time: float
    layer: str
    old: str
    new: str
    reason: str
