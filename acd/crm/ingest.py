"""The consumer side of the CRM: turns engine events into CDRs, legs, recordings, contacts,
tickets and agent status history, exactly once per event id.

Each event is applied in one transaction that also inserts its id into ``processed_events``;
a redelivered event finds its id there and changes nothing.  An event of a call is stored in
``call_events`` and the call's CDR, legs and ticket fields are recomputed from all of that
call's stored events (``project``), so events may arrive in any order.  The call's CDR row
is created (and, on PostgreSQL, locked) first thing, which serializes concurrent
transactions about one call; the contact and ticket a call links to are chosen once, by
the first of its events that says which way the call went, and kept on the CDR row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from acd.adapters.store.schema import (
    agent_status_history,
    call_events,
    cdr_legs,
    cdrs,
    processed_events,
    recordings,
)
from acd.events import Event

from .links import LinkMaker, Links, ensure_ticket_events, refresh_ticket
from .project import FACT_TYPES, RECORDING_TYPES, CallView, Fact, project

AGENT_TYPES = frozenset({"agent.status_changed"})
OCCUPANCY_TYPE = "agent.state_changed"


@dataclass(frozen=True, slots=True)
class CrmConfig:
    """How the consumer treats calls.

    ``outbound_tickets``: "attach_or_create" links an outbound call to the customer's latest
    open ticket or opens one; "attach" only links to an existing one; "off" leaves outbound
    calls out of tickets (their CDRs are still written).
    ``normalize``: turns a number from an event into the stored form (``Numbering.normalize``
    of the config); the engine already sends E.164 for trunk callers.
    ``agent_of_account``: the agent behind a device, to assign outbound tickets.
    ``record_occupancy``: also keep agent.state_changed (ringing, in call...) in the history.
    """

    outbound_tickets: str = "attach_or_create"
    normalize: Callable[[str], str] | None = None
    agent_of_account: Callable[[str], str | None] | None = None
    record_occupancy: bool = False


def call_ref_of(ev: Event) -> str | None:
    """Which call an event is about: the event's call id, or its data's call/caller."""
    ref = ev.call_id or ev.data.get("call") or ev.data.get("caller")
    return ref if isinstance(ref, str) and ref else None


def is_relevant(ev: Event, config: CrmConfig) -> bool:
    if ev.type in FACT_TYPES:
        return call_ref_of(ev) is not None
    return ev.type in AGENT_TYPES or (config.record_occupancy and ev.type == OCCUPANCY_TYPE)


class Ingest:
    """Applies events to the database; ``apply`` runs inside the caller's transaction."""

    def __init__(self, dialect: str, config: CrmConfig, wall: Callable[[], float]) -> None:
        self.config = config
        self.wall = wall
        self._insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self.links = LinkMaker(self._insert, config)
        claim = self._insert(processed_events).on_conflict_do_nothing()
        self._claim = claim.returning(processed_events.c.event_id)
        touch = self._insert(cdrs)
        # DO UPDATE (not NOTHING) so the row comes back, locked for the rest of the
        # transaction on PostgreSQL: one call's events are applied one at a time.
        self._touch = touch.on_conflict_do_update(
            index_elements=[cdrs.c.call_ref], set_={"call_ref": touch.excluded.call_ref}
        ).returning(cdrs.c.started_at, cdrs.c.contact_id, cdrs.c.ticket_id)
        self._fact = self._insert(call_events).on_conflict_do_nothing()
        self._recording = self._insert(recordings).on_conflict_do_nothing()

    async def apply(self, conn: AsyncConnection, ev: Event) -> bool:
        """Apply ``ev``; False when it was seen before or means nothing to the CRM."""
        if not is_relevant(ev, self.config):
            return False
        claimed = await conn.execute(self._claim, {"event_id": ev.id, "at": self.wall()})
        if claimed.first() is None:
            return False
        if ev.type.startswith("agent."):
            await self._agent(conn, ev)
            return True
        ref = call_ref_of(ev)
        assert ref is not None
        await self._call(conn, ref, ev)
        return True

    async def _agent(self, conn: AsyncConnection, ev: Event) -> None:
        d = ev.data
        agent = d.get("agent")
        if agent is None:
            return
        await conn.execute(agent_status_history.insert(), {
            "agent": str(agent), "layer": str(d.get("layer") or "status"),
            "old": _opt(d.get("old")), "new": _opt(d.get("new")),
            "reason": _opt(d.get("reason")), "at": ev.ts, "event_id": ev.id,
        })

    async def _call(self, conn: AsyncConnection, ref: str, ev: Event) -> None:
        row = (await conn.execute(self._touch, {"call_ref": ref, "started_at": ev.ts})).one()
        await conn.execute(self._fact, {
            "event_id": ev.id, "call_ref": ref, "type": ev.type, "ts": ev.ts, "seq": ev.seq,
            "node": ev.node, "data": ev.data,
        })
        if ev.type in RECORDING_TYPES:
            await conn.execute(self._recording, _recording_row(ref, ev))
        facts = await self._facts(conn, ref)
        view = project(ref, facts)
        links = await self.links.link(conn, view, Links(row.contact_id, row.ticket_id))
        if links.contact_id is not None and view.started_at < row.started_at:
            await self.links.backdate_contact(conn, links.contact_id, view.started_at)
        recording_id, recs = await self._recordings(conn, view)
        await conn.execute(cdrs.update().where(cdrs.c.call_ref == ref).values(
            **view.cdr, recording_id=recording_id, contact_id=links.contact_id,
            ticket_id=links.ticket_id))
        if view.ended:
            await self._legs(conn, view)
        if links.ticket_id is not None:
            wanted = self.links.assignee_of(view)
            own, assignee = await refresh_ticket(conn, view, links.ticket_id, wanted)
            assigned = wanted if wanted is not None and assignee == wanted else None
            await ensure_ticket_events(conn, self._insert, view, links.ticket_id, own,
                                       assigned, recs)

    async def _facts(self, conn: AsyncConnection, ref: str) -> list[Fact]:
        c = call_events.c
        rows = await conn.execute(
            sa.select(c.event_id, c.type, c.ts, c.seq, c.node, c.data)
            .where(c.call_ref == ref))
        return [Fact(r.event_id, r.type, r.ts, r.seq, r.node, r.data) for r in rows]

    async def _recordings(self, conn: AsyncConnection, view: CallView
                          ) -> tuple[int | None, list[dict[str, Any]]]:
        """The call's recordings, and the one its CDR points at: the latest ready call
        recording, else the latest ready voicemail."""
        if not view.recording_events:
            return None, []
        r = recordings.c
        rows = (await conn.execute(
            sa.select(r.id, r.event_id, r.kind, r.status, r.path, r.duration, r.created_at)
            .where(r.call_ref == view.ref).order_by(r.created_at, r.event_id))).mappings()
        recs = [dict(x) for x in rows]
        ready = [x for x in recs if x["status"] == "ready"]
        best = [x for x in ready if x["kind"] == "call"] or ready
        return (best[-1]["id"] if best else None), recs

    async def _legs(self, conn: AsyncConnection, view: CallView) -> None:
        await conn.execute(cdr_legs.delete().where(cdr_legs.c.call_ref == view.ref))
        await conn.execute(cdr_legs.insert(), [
            {"call_ref": view.ref, "seq": i, "role": leg.role, "party": leg.party,
             "started_at": leg.started_at, "answered_at": leg.answered_at,
             "ended_at": leg.ended_at, "outcome": leg.outcome}
            for i, leg in enumerate(view.legs)])


def _opt(v: Any) -> str | None:
    return None if v is None else str(v)


def _recording_row(ref: str, ev: Event) -> dict[str, Any]:
    d = ev.data
    voicemail = ev.type == "voicemail.recorded" or d.get("kind") == "voicemail"

    def num(key: str) -> Any:
        v = d.get(key)
        return v if isinstance(v, int | float) and not isinstance(v, bool) else None

    channels, size = num("channels"), num("size")
    return {
        "call_ref": ref, "event_id": ev.id, "path": str(d.get("path") or ""),
        "duration": num("duration"), "channels": int(channels) if channels is not None else None,
        "size": int(size) if size is not None else None, "created_at": ev.ts,
        "kind": "voicemail" if voicemail else "call",
        "status": "failed" if ev.type == "recording.failed" else "ready",
        "mailbox": _opt(d.get("mailbox")), "error": _opt(d.get("error")),
    }


def relevant_only(events: Sequence[Event], config: CrmConfig) -> list[Event]:
    return [ev for ev in events if is_relevant(ev, config)]
