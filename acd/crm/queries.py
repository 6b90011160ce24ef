"""Read side for call records: CDR lists with filters and keyset pagination, one CDR with
its legs, recordings, and agent status history.

Lists are newest first and paged by keyset (the last row's sort key in an opaque cursor),
so rows written while someone pages never shift or repeat a later page.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from acd.adapters.store.schema import agent_status_history, cdr_legs, cdrs, recordings

from . import validate as v
from .errors import NotFound
from .model import (
    DIRECTIONS,
    OUTCOMES,
    AgentStatusChange,
    Cdr,
    CdrLeg,
    Recording,
    from_row,
)

Page = tuple[list[Any], str | None]


async def list_cdrs(engine: AsyncEngine, *, since: Any = None, until: Any = None,
                    hotline: Any = None, queue: Any = None, agent: Any = None,
                    direction: Any = None, outcome: Any = None, limit: Any = None,
                    cursor: Any = None) -> Page:
    """Finished calls started in [since, until), newest first."""
    c = cdrs.c
    lo, hi = v.time_range(since, until)
    n = v.limit(limit)
    key = v.decode_cursor(cursor, (float, str))
    conds: list[Any] = [c.outcome.is_not(None)]
    if lo is not None:
        conds.append(c.started_at >= lo)
    if hi is not None:
        conds.append(c.started_at < hi)
    for col, field, value in ((c.hotline, "hotline", hotline), (c.queue, "queue", queue),
                              (c.agent, "agent", agent)):
        s = v.text(field, value, 200)
        if s is not None:
            conds.append(col == s)
    d = v.choice("direction", direction, DIRECTIONS)
    if d is not None:
        conds.append(c.direction == d)
    o = v.choices("outcome", outcome, OUTCOMES)
    if o is not None:
        conds.append(c.outcome.in_(o))
    if key is not None:
        conds.append(sa.or_(c.started_at < key[0],
                            sa.and_(c.started_at == key[0], c.call_ref < key[1])))
    query = (sa.select(cdrs).where(*conds).order_by(c.started_at.desc(), c.call_ref.desc())
             .limit(n + 1))
    async with engine.connect() as conn:
        rows = list((await conn.execute(query)).mappings())
    items = [from_row(Cdr, r) for r in rows[:n]]
    nxt = v.encode_cursor(items[-1].started_at, items[-1].call_ref) if len(rows) > n else None
    return items, nxt


async def get_cdr(engine: AsyncEngine, call_ref: Any) -> Cdr:
    """One call's record with its legs (also while the call is up: outcome None)."""
    if not isinstance(call_ref, str) or not call_ref or len(call_ref) > 200:
        raise NotFound("cdr", call_ref)
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(cdrs).where(cdrs.c.call_ref == call_ref))
               ).mappings().first()
        if row is None:
            raise NotFound("cdr", call_ref)
        legs = (await conn.execute(sa.select(cdr_legs).where(cdr_legs.c.call_ref == call_ref)
                                   .order_by(cdr_legs.c.seq))).mappings()
        return from_row(Cdr, row, legs=tuple(from_row(CdrLeg, x) for x in legs))


async def get_recording(engine: AsyncEngine, recording_id: Any) -> Recording:
    rid = v.ident("recording", recording_id)
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(recordings).where(recordings.c.id == rid))
               ).mappings().first()
    if row is None:
        raise NotFound("recording", recording_id)
    return from_row(Recording, row)


async def call_recordings(engine: AsyncEngine, call_ref: str) -> list[Recording]:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(recordings).where(recordings.c.call_ref == call_ref)
                                   .order_by(recordings.c.created_at, recordings.c.id))
                ).mappings()
        return [from_row(Recording, r) for r in rows]


async def list_agent_status(engine: AsyncEngine, *, agent: Any = None, since: Any = None,
                            until: Any = None, limit: Any = None, cursor: Any = None) -> Page:
    """Agent status changes, newest first."""
    h = agent_status_history.c
    lo, hi = v.time_range(since, until)
    n = v.limit(limit)
    key = v.decode_cursor(cursor, (float, int))
    conds: list[Any] = []
    a = v.text("agent", agent, 200)
    if a is not None:
        conds.append(h.agent == a)
    if lo is not None:
        conds.append(h.at >= lo)
    if hi is not None:
        conds.append(h.at < hi)
    if key is not None:
        conds.append(sa.or_(h.at < key[0], sa.and_(h.at == key[0], h.id < key[1])))
    query = (sa.select(agent_status_history).where(*conds).order_by(h.at.desc(), h.id.desc())
             .limit(n + 1))
    async with engine.connect() as conn:
        rows = list((await conn.execute(query)).mappings())
    items = [from_row(AgentStatusChange, r) for r in rows[:n]]
    nxt = v.encode_cursor(rows[n - 1]["at"], rows[n - 1]["id"]) if len(rows) > n else None
    return items, nxt
