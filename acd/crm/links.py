"""How a call meets the CRM: the contact its outside number belongs to (found through
merges, or created), the ticket it opens or joins, and what that ticket shows of it.

Runs inside the consumer's transaction (see ``ingest``).  Every ticket field and history
entry written here is a function of the call's projected view, and history entries carry a
unique ``source`` so rewriting them as more of the call arrives never duplicates them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from acd.adapters.store.schema import contacts, ticket_events, tickets

from .model import OPEN_STATUSES
from .project import CallView

if TYPE_CHECKING:
    from .ingest import CrmConfig

_SEPARATORS = re.compile(r"[\s\-.()/]")
PHONE = re.compile(r"\+?[0-9]{3,20}")
LIVE = sa.and_(contacts.c.merged_into.is_(None), contacts.c.deleted_at.is_(None))
LIVE_SQL = sa.text("merged_into IS NULL AND deleted_at IS NULL")
_MAX_HOPS = 16


def normalize_phone(raw: str | None, normalize: Any = None) -> str | None:
    """The stored form of a number, or None when it is none (anonymous, a SIP name)."""
    if not raw:
        return None
    n = _SEPARATORS.sub("", raw)
    if normalize is not None:
        n = normalize(n)
    return n if PHONE.fullmatch(n) else None


async def find_contact(conn: AsyncConnection, phone: str) -> int | None:
    """The live contact for ``phone``: its own, or the one a contact with it was merged
    into.  Deleted contacts are not found."""
    c = contacts.c
    row = (await conn.execute(
        sa.select(c.id, c.merged_into).where(c.phone == phone, c.deleted_at.is_(None))
        .order_by(c.merged_into.is_not(None), c.id).limit(1))).first()
    if row is None:
        return None
    return await follow_merges(conn, row.id, row.merged_into)


async def follow_merges(conn: AsyncConnection, cid: int, merged_into: int | None) -> int | None:
    c = contacts.c
    for _ in range(_MAX_HOPS):
        if merged_into is None:
            return cid
        row = (await conn.execute(sa.select(c.id, c.merged_into, c.deleted_at)
                                  .where(c.id == merged_into))).first()
        if row is None or row.deleted_at is not None:
            return None
        cid, merged_into = row.id, row.merged_into
    return None


@dataclass(frozen=True, slots=True)
class Links:
    contact_id: int | None
    ticket_id: int | None


class LinkMaker:
    def __init__(self, insert: Any, config: CrmConfig) -> None:
        self.config = config
        new_contact = insert(contacts).on_conflict_do_nothing(
            index_elements=[contacts.c.phone], index_where=LIVE_SQL)
        self._new_contact = new_contact.returning(contacts.c.id)

    async def link(self, conn: AsyncConnection, view: CallView, links: Links) -> Links:
        """The contact and ticket of the call, chosen (and created) on its first event
        that tells its direction, then kept."""
        if links.ticket_id is not None:
            if view.blacklisted and await _drop_ticket(conn, view.ref, links.ticket_id):
                return Links(links.contact_id, None)
            return links
        direction, mode = view.direction, self.config.outbound_tickets
        if direction not in ("inbound", "outbound") or (direction == "outbound"
                                                        and mode == "off"):
            return links
        contact = links.contact_id
        if contact is None:
            create = direction == "inbound" or mode == "attach_or_create"
            contact = await self.contact_for(conn, view.customer, create, view.started_at)
        ticket = None
        if direction == "inbound":
            if not view.blacklisted:
                ticket = await _new_ticket(conn, view, contact)
        elif contact is not None:
            ticket = await _latest_open_ticket(conn, contact)
            if ticket is None and mode == "attach_or_create":
                ticket = await _new_ticket(conn, view, contact)
        return Links(contact, ticket)

    async def contact_for(self, conn: AsyncConnection, number: str | None, create: bool,
                          at: float) -> int | None:
        phone = normalize_phone(number, self.config.normalize)
        if phone is None:
            return None
        found = await find_contact(conn, phone)
        if found is not None or not create:
            return found
        row = (await conn.execute(self._new_contact, {
            "phone": phone, "created_at": at, "updated_at": at})).first()
        if row is not None:
            return int(row.id)
        return await find_contact(conn, phone)  # another transaction created it just now

    async def backdate_contact(self, conn: AsyncConnection, contact_id: int, at: float) -> None:
        """A contact is as old as the earliest call known of it."""
        c = contacts.c
        await conn.execute(contacts.update().where(c.id == contact_id, c.created_at > at).values(
            created_at=at,
            updated_at=sa.case((c.updated_at == c.created_at, at), else_=c.updated_at)))

    def assignee_of(self, view: CallView) -> str | None:
        if view.agent is not None:
            return view.agent
        account = view.cdr.get("account")
        lookup = self.config.agent_of_account
        if view.direction == "outbound" and account and lookup is not None:
            return lookup(account)
        return None


async def _new_ticket(conn: AsyncConnection, view: CallView, contact: int | None) -> int:
    row = (await conn.execute(tickets.insert().returning(tickets.c.id), {
        "call_ref": view.ref, "contact_id": contact, "channel": "call",
        "direction": view.direction, "status": "new", "priority": "normal", "missed": False,
        "subject": "", "created_at": view.started_at, "updated_at": view.started_at,
    })).one()
    return int(row.id)


async def _latest_open_ticket(conn: AsyncConnection, contact: int) -> int | None:
    t = tickets.c
    row = (await conn.execute(
        sa.select(t.id).where(t.contact_id == contact, t.status.in_(OPEN_STATUSES))
        .order_by(t.id.desc()).limit(1))).first()
    return None if row is None else int(row.id)


async def _drop_ticket(conn: AsyncConnection, ref: str, ticket_id: int) -> bool:
    """Remove the ticket a call opened before it turned out blacklisted, unless a person
    already wrote in it."""
    te = ticket_events.c
    touched = (await conn.execute(sa.select(te.id).where(
        te.ticket_id == ticket_id, te.source.is_(None)).limit(1))).first()
    if touched is not None:
        return False
    own = (await conn.execute(sa.select(tickets.c.id).where(
        tickets.c.id == ticket_id, tickets.c.call_ref == ref))).first()
    if own is None:
        return False
    await conn.execute(ticket_events.delete().where(te.ticket_id == ticket_id))
    await conn.execute(tickets.delete().where(tickets.c.id == ticket_id))
    return True


def subject_of(view: CallView) -> str:
    who = view.customer or "unknown number"
    if view.direction == "outbound":
        return f"Call to {who}"
    hotline = view.cdr.get("hotline")
    return f"{'Missed call' if view.missed else 'Call'} from {who}" + (
        f" on {hotline}" if hotline else "")


@dataclass(frozen=True, slots=True)
class TicketWork:
    """A call's ticket to bring up to date: ``wanted`` is the assignee the call brings."""

    view: CallView
    ticket_id: int
    wanted: str | None
    recs: list[dict[str, Any]]


_t = tickets.c
_LAST: sa.BindParameter[float] = sa.bindparam("b_last")
_TOUCHED = sa.case((_t.updated_at > _LAST, _t.updated_at), else_=_LAST)
# A ticket the call opened follows the call; one it only joined just gets updated_at.
_OWN_UPDATE = tickets.update().where(_t.id == sa.bindparam("b_id")).values(
    direction=sa.bindparam("b_direction"), hotline=sa.bindparam("b_hotline"),
    queue=sa.bindparam("b_queue"), missed=sa.bindparam("b_missed"),
    subject=sa.bindparam("b_subject"), created_at=sa.bindparam("b_created"),
    updated_at=_TOUCHED, assignee=sa.func.coalesce(_t.assignee, sa.bindparam("b_assignee")))
_JOINED_UPDATE = tickets.update().where(_t.id == sa.bindparam("b_id")).values(
    updated_at=_TOUCHED)


async def refresh_tickets(conn: AsyncConnection, insert: Any, work: list[TicketWork]) -> None:
    """Bring the calls' tickets up to date with their views, and their history entries.
    A person's assignment is never overwritten (the call only fills an empty assignee)."""
    ids = sorted({w.ticket_id for w in work})
    rows = {r.id: r for r in await conn.execute(
        sa.select(_t.id, _t.call_ref, _t.assignee).where(_t.id.in_(ids)).order_by(_t.id)
        .with_for_update())}
    own_rows: list[dict[str, Any]] = []
    joined_rows: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    for w in work:
        row = rows.get(w.ticket_id)
        if row is None:
            continue
        view = w.view
        own = row.call_ref == view.ref
        assigned = None
        if own:
            own_rows.append({
                "b_id": w.ticket_id, "b_direction": view.direction,
                "b_hotline": view.cdr["hotline"], "b_queue": view.cdr["queue"],
                "b_missed": view.missed, "b_subject": subject_of(view),
                "b_created": view.started_at, "b_last": view.last_ts, "b_assignee": w.wanted})
            after = row.assignee if row.assignee is not None else w.wanted
            assigned = w.wanted if w.wanted is not None and after == w.wanted else None
        else:
            joined_rows.append({"b_id": w.ticket_id, "b_last": view.last_ts})
        history += [{**r, "ticket_id": w.ticket_id, "author": None}
                    for r in _auto_events(view, own, assigned, w.recs)]
    if own_rows:
        await conn.execute(_OWN_UPDATE, own_rows)
    if joined_rows:
        await conn.execute(_JOINED_UPDATE, joined_rows)
    if history:
        stmt = insert(ticket_events)
        stmt = stmt.on_conflict_do_update(
            index_elements=[ticket_events.c.source],
            set_={"at": stmt.excluded.at, "kind": stmt.excluded.kind,
                  "data": stmt.excluded.data})
        await conn.execute(stmt, history)


def _auto_events(view: CallView, own: bool, assigned: str | None,
                 recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ref, cdr = view.ref, view.cdr
    out: list[dict[str, Any]] = []

    def add(name: str, kind: str, at: float, **data: Any) -> None:
        out.append({"source": f"call:{ref}:{name}", "kind": kind, "at": at,
                    "data": {"call": ref, **data}})

    if own:
        add("created", "created", view.started_at, direction=view.direction,
            number=view.customer, hotline=cdr["hotline"], queue=cdr["queue"])
    else:
        add("joined", "call", view.started_at, event="started", direction=view.direction,
            number=view.customer, account=cdr["account"])
    if view.connected_at is not None:
        add("answered", "call", view.connected_at, event="answered", agent=view.agent)
    if own and assigned is not None:
        add("assignee", "assignee", view.connected_at or view.started_at,
            old=None, new=assigned, by="call")
    if view.ended:
        add("ended", "call", cdr["ended_at"], event="ended", outcome=view.outcome,
            missed=view.missed, duration=cdr["duration_seconds"], talk=cdr["talk_seconds"],
            hangup_by=cdr["hangup_by"])
    for r in recs:
        out.append({"source": f"rec:{r['event_id']}", "kind": "recording",
                    "at": r["created_at"], "data": {
                        "call": ref, "recording_id": r["id"], "kind": r["kind"],
                        "status": r["status"], "path": r["path"],
                        "duration": r["duration"]}})
    return out
