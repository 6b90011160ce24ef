"""The consumer side of the CRM: turns engine events into CDRs, legs, recordings, contacts,
tickets and agent status history, exactly once per event id.

A batch of events is applied in one transaction that also inserts their ids into
``processed_events``; a redelivered event finds its id there and changes nothing.  An event
of a call is stored in ``call_events`` and the call's CDR, legs and ticket fields are
recomputed from all of that call's stored events (``project``), so events may arrive in any
order.  The CDR rows of the batch's calls are created (and, on PostgreSQL, locked, in call
ref order) first thing, which serializes concurrent transactions about one call; the
contact and ticket a call links to are chosen once, by the first projection that knows
which way the call went, and kept on the CDR row.

Work is done per call, not per event: a call with several events in a batch is projected
once, and the writes of all calls go out as one executemany per table.  While a call is
up, events that show nothing until it ends (offers, rings, the engine's own answer) are
only stored; once it has ended every event projects again, so the end state is the same
whatever the order.

With a retention (``CrmConfig.event_retention_days``) the facts of old calls are pruned
(``retention.py``): a call closed by the horizon is never projected again (a late event of
it only adds its recording row), and the service drops events older than the horizon
before they get here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import structlog
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

from .links import LinkMaker, Links, TicketWork, refresh_tickets
from .project import FACT_TYPES, RECORDING_TYPES, CallView, Fact, clean, json_safe, project
from .retention import closed_by

log = structlog.get_logger("acd.crm")

AGENT_TYPES = frozenset({"agent.status_changed"})
OCCUPANCY_TYPE = "agent.state_changed"
# Events that change what a live call's CDR or ticket shows (direction, queue, assignee,
# recording); the others wait for the next of these, at the latest call.ended.
VISIBLE_TYPES = frozenset({"call.started", "call.connected", "call.ended", "queue.entered",
                           "queue.connected"}) | RECORDING_TYPES
_CDR_COLUMNS = ("sip_call_id", "direction", "from_number", "to_number", "hotline", "trunk",
                "account", "queue", "agent", "started_at", "answered_at", "ended_at",
                "wait_seconds", "ring_seconds", "talk_seconds", "hold_seconds",
                "duration_seconds", "outcome", "end_reason", "hangup_by", "status", "node")


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
    ``event_retention_days``: how long ``processed_events`` and ``call_events`` rows are
    kept (``CrmService.prune_events``); events older than that are ignored.  0: for ever
    (the daemon passes the config's ``crm.event_retention_days``, 30 unless set).
    """

    outbound_tickets: str = "attach_or_create"
    normalize: Callable[[str], str] | None = None
    agent_of_account: Callable[[str], str | None] | None = None
    record_occupancy: bool = False
    event_retention_days: int = 0


def call_ref_of(ev: Event) -> str | None:
    """Which call an event is about: the event's call id, or its data's call/caller."""
    ref = ev.call_id or ev.data.get("call") or ev.data.get("caller")
    return ref if isinstance(ref, str) and ref and "\x00" not in ref else None


def is_relevant(ev: Event, config: CrmConfig) -> bool:
    if not isinstance(ev.id, str) or "\x00" in ev.id:
        return False  # could never be stored, so never marked done: would poison a stream
    if ev.type in FACT_TYPES:
        return call_ref_of(ev) is not None
    return ev.type in AGENT_TYPES or (config.record_occupancy and ev.type == OCCUPANCY_TYPE)


class Ingest:
    """Applies batches of events; ``apply`` runs inside the caller's transaction."""

    def __init__(self, dialect: str, config: CrmConfig, wall: Callable[[], float]) -> None:
        self.config = config
        self.wall = wall
        self._insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self.links = LinkMaker(self._insert, config)
        self._fact = self._insert(call_events).on_conflict_do_nothing()
        self._recording = self._insert(recordings).on_conflict_do_nothing()
        self._cdr_update = cdrs.update().where(cdrs.c.call_ref == sa.bindparam("b_ref"))
        # One statement each, run as executemany with RETURNING (SQLAlchemy's
        # "insertmanyvalues"): a multi-row VALUES built per batch would be compiled anew for
        # every batch, which cost more than the batch's own SQL.
        self._claim_stmt = (self._insert(processed_events).on_conflict_do_nothing()
                            .returning(processed_events.c.event_id))
        touch = self._insert(cdrs)
        c = cdrs.c
        self._touch_stmt = touch.on_conflict_do_update(
            index_elements=[c.call_ref], set_={"call_ref": touch.excluded.call_ref},
        ).returning(c.call_ref, c.started_at, c.ended_at, c.contact_id, c.ticket_id, c.outcome)
        self.closed = 0  # events of calls closed by the retention horizon: not projected

    async def apply(self, conn: AsyncConnection, events: Sequence[Event],
                    horizon: float | None = None) -> int:
        """Apply ``events``; how many were new and of use here.  ``horizon``: the retention
        horizon, calls closed by it are not projected again (their facts may be pruned)."""
        unique = list({ev.id: ev for ev in events if is_relevant(ev, self.config)}.values())
        new = await self._claim(conn, unique)
        if not new:
            return 0
        agents = [ev for ev in new if not ev.type.startswith(("call.", "queue.", "recording.",
                                                              "voicemail."))]
        if agents:
            await self._agents(conn, agents)
        by_ref: dict[str, list[Event]] = {}
        for ev in new:
            if ev.type in FACT_TYPES:
                ref = call_ref_of(ev)
                assert ref is not None
                by_ref.setdefault(ref, []).append(ev)
        if by_ref:
            await self._calls(conn, by_ref, horizon)
        return len(new)

    async def _claim(self, conn: AsyncConnection, events: list[Event]) -> list[Event]:
        if not events:
            return []
        now = self.wall()
        rows = await conn.execute(self._claim_stmt,
                                  [{"event_id": ev.id, "at": now} for ev in events])
        claimed = {r[0] for r in rows}
        return [ev for ev in events if ev.id in claimed]

    async def _agents(self, conn: AsyncConnection, events: list[Event]) -> None:
        rows = [{"agent": clean(d["agent"]), "layer": clean(d.get("layer") or "status"),
                 "old": clean(d.get("old")), "new": clean(d.get("new")),
                 "reason": clean(d.get("reason")), "at": ev.ts, "event_id": ev.id}
                for ev in events if (d := ev.data).get("agent") is not None]
        if rows:
            await conn.execute(agent_status_history.insert(), rows)

    async def _calls(self, conn: AsyncConnection, by_ref: dict[str, list[Event]],
                     horizon: float | None) -> None:
        refs = sorted(by_ref)
        state = await self._touch(conn, refs, by_ref)
        recs = [_recording_row(ref, ev) for ref in refs for ev in by_ref[ref]
                if ev.type in RECORDING_TYPES]
        if horizon is not None:
            closed = {ref for ref in refs if closed_by(
                state[ref]["started_at"], state[ref]["ended_at"], horizon)}
            if closed:
                # A late event of a call closed by the horizon: its facts may be pruned, so
                # its CDR stays as it is; a recording the event reports is still kept.
                n = sum(len(by_ref[ref]) for ref in closed)
                self.closed += n
                log.info("crm.closed_call_events", events=n, calls=len(closed))
                refs = [ref for ref in refs if ref not in closed]
        if refs:
            await conn.execute(self._fact, [
                {"event_id": ev.id, "call_ref": ref, "type": ev.type, "ts": ev.ts,
                 "seq": ev.seq, "node": ev.node, "data": json_safe(ev.data)}
                for ref in refs for ev in by_ref[ref]])
        if recs:
            await conn.execute(self._recording, recs)
        todo = [ref for ref in refs if state[ref]["outcome"] is not None
                or any(ev.type in VISIBLE_TYPES for ev in by_ref[ref])]
        if not todo:
            return
        facts = await self._facts(conn, todo)
        views = [project(ref, facts[ref]) for ref in todo]
        links: dict[str, Links] = {}
        for view in views:
            row = state[view.ref]
            link = await self.links.link(conn, view, Links(row["contact_id"], row["ticket_id"]))
            links[view.ref] = link
            if link.contact_id is not None and view.started_at < row["started_at"]:
                await self.links.backdate_contact(conn, link.contact_id, view.started_at)
        rec_rows = await self._recordings(conn, [v.ref for v in views if v.recording_events])
        await conn.execute(self._cdr_update, [
            {**{c: view.cdr[c] for c in _CDR_COLUMNS}, "b_ref": view.ref,
             "recording_id": _best_recording(rec_rows.get(view.ref, [])),
             "contact_id": links[view.ref].contact_id, "ticket_id": links[view.ref].ticket_id}
            for view in views])
        ended = [view for view in views if view.ended]
        if ended:
            await self._legs(conn, ended)
        work = [TicketWork(view, t, self.links.assignee_of(view), rec_rows.get(view.ref, []))
                for view in views if (t := links[view.ref].ticket_id) is not None]
        if work:
            await refresh_tickets(conn, self._insert, work)

    async def _touch(self, conn: AsyncConnection, refs: list[str],
                     by_ref: dict[str, list[Event]]) -> dict[str, dict[str, Any]]:
        """Create the calls' CDR rows if new; lock them (PostgreSQL), in ref order, for the
        rest of the transaction; return what they hold."""
        # executemany: the driver gets the rows in this (ref) order, which is the order the
        # upsert locks them in
        rows = await conn.execute(self._touch_stmt, [
            {"call_ref": ref, "started_at": min(ev.ts for ev in by_ref[ref])} for ref in refs])
        return {r.call_ref: dict(r._mapping) for r in rows}

    async def _facts(self, conn: AsyncConnection, refs: list[str]) -> dict[str, list[Fact]]:
        c = call_events.c
        rows = await conn.execute(
            sa.select(c.call_ref, c.event_id, c.type, c.ts, c.seq, c.node, c.data)
            .where(c.call_ref.in_(refs)))
        out: dict[str, list[Fact]] = {ref: [] for ref in refs}
        for r in rows:
            out[r.call_ref].append(Fact(r.event_id, r.type, r.ts, r.seq, r.node, r.data))
        return out

    async def _recordings(self, conn: AsyncConnection, refs: list[str]
                          ) -> dict[str, list[dict[str, Any]]]:
        if not refs:
            return {}
        r = recordings.c
        rows = (await conn.execute(
            sa.select(r.id, r.call_ref, r.event_id, r.kind, r.status, r.path, r.duration,
                      r.created_at)
            .where(r.call_ref.in_(refs)).order_by(r.created_at, r.event_id))).mappings()
        out: dict[str, list[dict[str, Any]]] = {}
        for x in rows:
            out.setdefault(x["call_ref"], []).append(dict(x))
        return out

    async def _legs(self, conn: AsyncConnection, views: list[CallView]) -> None:
        await conn.execute(cdr_legs.delete().where(cdr_legs.c.call_ref.in_(
            [v.ref for v in views])))
        rows = [{"call_ref": view.ref, "seq": i, "role": leg.role, "party": leg.party,
                 "started_at": leg.started_at, "answered_at": leg.answered_at,
                 "ended_at": leg.ended_at, "outcome": leg.outcome}
                for view in views for i, leg in enumerate(view.legs)]
        await conn.execute(cdr_legs.insert(), rows)


def _best_recording(recs: list[dict[str, Any]]) -> int | None:
    """What a CDR points at: the latest ready call recording, else the latest voicemail."""
    ready = [x for x in recs if x["status"] == "ready"]
    best = [x for x in ready if x["kind"] == "call"] or ready
    return int(best[-1]["id"]) if best else None




def _recording_row(ref: str, ev: Event) -> dict[str, Any]:
    d = ev.data
    voicemail = ev.type == "voicemail.recorded" or d.get("kind") == "voicemail"

    def num(key: str) -> Any:
        # JSON brings NaN and Infinity too: stored as unknown, not a crash of the batch
        v = d.get(key)
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        return v if ok else None

    def count(key: str) -> int | None:
        v = num(key)  # a BIGINT column: what does not fit is unknown too
        return int(v) if v is not None and 0 <= v < 2**63 else None

    return {
        "call_ref": ref, "event_id": ev.id, "path": clean(d.get("path") or ""),
        "duration": num("duration"), "channels": count("channels"),
        "size": count("size"), "created_at": ev.ts,
        "kind": "voicemail" if voicemail else "call",
        "status": "failed" if ev.type == "recording.failed" else "ready",
        "mailbox": clean(d.get("mailbox")), "error": clean(d.get("error")),
    }
