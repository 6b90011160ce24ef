"""Tickets for the HTTP layer: list with filters (newest first, keyset pages), one ticket
with its history, changes of status, assignee and priority, and notes.

Every change writes its ``ticket_events`` entry (old and new value, author) in the same
transaction as the change itself; a change to the value a ticket already has writes
nothing.  The ticket row is locked while it changes, so concurrent edits queue up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from acd.adapters.store.schema import ticket_events, tickets

from . import validate as v
from .errors import CrmError, NotFound
from .model import (
    PRIORITIES,
    TICKET_STATUSES,
    Ticket,
    TicketDetail,
    TicketEvent,
    from_row,
)


class Tickets:
    def __init__(self, engine: AsyncEngine, write_engine: AsyncEngine,
                 wall: Callable[[], float]) -> None:
        self.engine = engine
        self.write_engine = write_engine
        self.wall = wall

    async def list(self, *, status: Any = None, assignee: Any = None, contact: Any = None,
                   missed: Any = None, hotline: Any = None, queue: Any = None,
                   limit: Any = None, cursor: Any = None) -> tuple[list[Ticket], str | None]:
        """Newest first.  ``status`` may name several ("new,open" or a list);
        ``assignee="-"`` lists the tickets nobody has."""
        t = tickets.c
        n = v.limit(limit)
        key = v.decode_cursor(cursor, (int,))
        conds: list[Any] = []
        statuses = v.choices("status", status, TICKET_STATUSES)
        if statuses is not None:
            conds.append(t.status.in_(statuses))
        who = v.text("assignee", assignee, 200)
        if who == "-":
            conds.append(t.assignee.is_(None))
        elif who is not None:
            conds.append(t.assignee == who)
        if contact is not None and contact != "":
            conds.append(t.contact_id == v.ref_id("contact", contact))
        m = v.flag("missed", missed)
        if m is not None:
            conds.append(t.missed.is_(m))
        for col, field, value in ((t.hotline, "hotline", hotline), (t.queue, "queue", queue)):
            s = v.text(field, value, 200)
            if s is not None:
                conds.append(col == s)
        if key is not None:
            conds.append(t.id < key[0])
        query = sa.select(tickets).where(*conds).order_by(t.id.desc()).limit(n + 1)
        async with self.engine.connect() as conn:
            rows = list((await conn.execute(query)).mappings())
        items = [from_row(Ticket, r) for r in rows[:n]]
        return items, (v.encode_cursor(items[-1].id) if len(rows) > n else None)

    async def get(self, ticket_id: Any) -> TicketDetail:
        """The ticket and its whole history, oldest entry first."""
        tid = v.ident("ticket", ticket_id)
        te = ticket_events.c
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(tickets).where(tickets.c.id == tid))
                   ).mappings().first()
            if row is None:
                raise NotFound("ticket", ticket_id)
            events = (await conn.execute(sa.select(ticket_events).where(te.ticket_id == tid)
                                         .order_by(te.at, te.id))).mappings()
            return TicketDetail(from_row(Ticket, row),
                                tuple(from_row(TicketEvent, e) for e in events))

    async def update(self, ticket_id: Any, *, status: Any = v.UNSET, assignee: Any = v.UNSET,
                     priority: Any = v.UNSET, author: Any = None) -> Ticket:
        """Change the fields given (assignee None unassigns); one history entry each."""
        tid = v.ident("ticket", ticket_id)
        changes: dict[str, Any] = {}
        if status is not v.UNSET:
            changes["status"] = _required(v.choice("status", status, TICKET_STATUSES),
                                          "status")
        if assignee is not v.UNSET:
            changes["assignee"] = v.text("assignee", assignee, 200)
        if priority is not v.UNSET:
            changes["priority"] = _required(v.choice("priority", priority, PRIORITIES),
                                            "priority")
        who = v.text("author", author, 200)
        if not changes:
            raise CrmError("(body)", "nothing to change: give status, assignee or priority")
        async with self.write_engine.begin() as conn:
            t = tickets.c
            row = (await conn.execute(sa.select(tickets).where(t.id == tid).with_for_update())
                   ).mappings().first()
            if row is None:
                raise NotFound("ticket", ticket_id)
            now = max(self.wall(), row["updated_at"])
            real = {k: val for k, val in changes.items() if row[k] != val}
            if not real:
                return from_row(Ticket, row)
            out = (await conn.execute(tickets.update().where(t.id == tid)
                                      .values(**real, updated_at=now).returning(*tickets.c))
                   ).mappings().one()
            await conn.execute(ticket_events.insert(), [
                {"ticket_id": tid, "at": now, "kind": k, "author": who, "source": None,
                 "data": {"old": row[k], "new": val}} for k, val in real.items()])
        return from_row(Ticket, out)

    async def add_note(self, ticket_id: Any, text: Any, author: Any = None) -> TicketEvent:
        tid = v.ident("ticket", ticket_id)
        body = v.text("text", text, 10_000, required=True)
        who = v.text("author", author, 200)
        async with self.write_engine.begin() as conn:
            t = tickets.c
            row = (await conn.execute(sa.select(t.updated_at).where(t.id == tid)
                                      .with_for_update())).first()
            if row is None:
                raise NotFound("ticket", ticket_id)
            now = max(self.wall(), row.updated_at)
            await conn.execute(tickets.update().where(t.id == tid).values(updated_at=now))
            ev = (await conn.execute(ticket_events.insert().returning(*ticket_events.c), {
                "ticket_id": tid, "at": now, "kind": "note", "author": who, "source": None,
                "data": {"text": body}})).mappings().one()
        return from_row(TicketEvent, ev)


def _required(value: str | None, field: str) -> str:
    if value is None:
        raise CrmError(field, "must not be empty")
    return value
