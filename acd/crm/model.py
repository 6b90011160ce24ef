"""The CRM's values as the service hands them out: frozen dataclasses mirroring the rows
(``dataclasses.asdict`` makes any of them JSON-ready), the closed vocabularies the tables
use, and the converters from result rows.  No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

DIRECTIONS = ("inbound", "internal", "outbound")
OUTCOMES = ("answered", "missed", "abandoned", "blacklisted", "out_of_hours", "failed",
            "voicemail")
# Inbound outcomes nobody from the contact center talked through: their tickets say missed.
MISSED_OUTCOMES = frozenset({"missed", "abandoned", "out_of_hours", "failed", "voicemail"})
TICKET_STATUSES = ("new", "open", "pending", "solved", "closed")
OPEN_STATUSES = ("new", "open", "pending")
PRIORITIES = ("low", "normal", "high", "urgent")
TICKET_EVENT_KINDS = ("created", "status", "assignee", "priority", "note", "recording", "call")
RECORDING_KINDS = ("call", "voicemail")
RECORDING_STATUSES = ("ready", "failed", "deleted")
LEG_ROLES = ("caller", "callee", "agent")


@dataclass(frozen=True, slots=True)
class CdrLeg:
    seq: int
    role: str  # caller | callee | agent
    party: str | None
    started_at: float | None
    answered_at: float | None
    ended_at: float | None
    outcome: str | None  # caller: the call's outcome; others answered|no_answer|rejected|canceled


@dataclass(frozen=True, slots=True)
class Cdr:
    call_ref: str
    sip_call_id: str | None
    direction: str | None
    from_number: str | None
    to_number: str | None
    hotline: str | None
    trunk: str | None
    account: str | None
    queue: str | None
    agent: str | None
    started_at: float
    answered_at: float | None
    ended_at: float | None
    wait_seconds: float | None  # before a person answered (the whole call if nobody did)
    ring_seconds: float | None  # call start to the answering leg's answer (the engine's)
    talk_seconds: float | None
    hold_seconds: float | None  # in the queue, until connected or gone
    duration_seconds: float | None
    outcome: str | None  # None while the call is up
    end_reason: str | None
    hangup_by: str | None
    status: int | None
    recording_id: int | None
    contact_id: int | None
    ticket_id: int | None
    node: str | None
    legs: tuple[CdrLeg, ...] = ()


@dataclass(frozen=True, slots=True)
class Recording:
    id: int
    call_ref: str | None
    path: str
    duration: float | None
    channels: int | None
    size: int | None
    created_at: float
    kind: str  # call | voicemail
    status: str  # ready | failed | deleted
    mailbox: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Contact:
    id: int
    name: str | None
    phone: str | None
    email: str | None
    notes: str | None
    created_at: float
    updated_at: float
    merged_into: int | None
    deleted_at: float | None


@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    call_ref: str | None
    contact_id: int | None
    channel: str
    direction: str | None
    hotline: str | None
    queue: str | None
    assignee: str | None
    status: str
    priority: str
    missed: bool
    subject: str
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class TicketEvent:
    id: int
    ticket_id: int
    at: float
    kind: str
    data: dict[str, Any]
    author: str | None


@dataclass(frozen=True, slots=True)
class TicketDetail:
    ticket: Ticket
    events: tuple[TicketEvent, ...]


@dataclass(frozen=True, slots=True)
class AgentStatusChange:
    agent: str
    layer: str
    old: str | None
    new: str | None
    reason: str | None
    at: float


@dataclass(frozen=True, slots=True)
class QueueReport:
    """One queue's finished calls over a period (acd/crm/reports.py says what counts).
    Waits are seconds in the queue (the CDR's hold_seconds), not since the call started."""

    queue: str
    offered: int  # finished calls whose last queue this was, whatever their outcome
    answered: int
    abandoned: int  # the caller hung up while waiting
    missed: int  # nobody answered and the caller did not give up: timeout, full, no agents
    voicemail: int  # sent to voicemail, usually by the queue's overflow
    failed: int
    answered_within_sl: int  # answered after at most sl_seconds in the queue
    abandoned_after_sl: int  # hung up after more than sl_seconds (or an unknown time)
    sl_seconds: float
    # answered_within_sl / (answered + abandoned after more than sl_seconds in the queue),
    # in %: the live queue metric's definition
    service_level: float | None
    abandon_rate: float | None  # abandoned / offered, in %
    avg_wait_seconds: float | None  # seconds in the queue of the answered calls
    max_wait_seconds: float | None
    avg_talk_seconds: float | None


@dataclass(frozen=True, slots=True)
class AgentReport:
    """One agent's queue offers and answered calls over a period (acd/crm/reports.py)."""

    agent: str
    offers: int  # agent legs: one per queue offer, answered or not
    answered: int
    no_answer: int  # rang out; offers - answered - no_answer - rejected were canceled
    rejected: int
    avg_ring_seconds: float | None  # offer to answer, over the answered offers
    talk_seconds: float  # in total, of the answered calls naming the agent
    avg_talk_seconds: float | None


T = TypeVar("T")


def from_row(cls: type[T], row: Mapping[Any, Any], **extra: Any) -> T:
    """Build ``cls`` from the row's columns of the same names (others are ignored)."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    values = {n: row[n] for n in names if n in row and n not in extra}
    if "missed" in values:
        values["missed"] = bool(values["missed"])  # SQLite hands back 0/1
    return cls(**values, **extra)
