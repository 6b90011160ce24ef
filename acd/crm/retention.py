"""Retention of the consumer's working tables: ``processed_events`` (the exactly-once
ledger) and ``call_events`` (the facts CDRs are projected from) would otherwise grow by
some fifteen rows per call for ever.  CDRs, legs, tickets, recordings and agent history
are the business record and are never touched here.

Three rules make pruning safe together (``H`` is now minus the retention):

- the ingest ignores an event whose ``ts`` is before ``H`` (neither applied nor claimed),
  so an event whose id may have left the ledger cannot be applied a second time;
- the ingest never re-projects a *closed* call: one whose CDR ended before ``H``, or never
  ended and started before ``H`` (a call lost to a crash).  Its facts may be gone, and a
  projection from what is left would overwrite the CDR with a partial one;
- the prune works ``PRUNE_MARGIN`` behind ``H``, so the ingest already treats as closed
  every call whose facts go, even with clocks of other nodes a little off.

What goes: ledger rows processed before the cut, together with the call facts of the same
events when their call is closed by the cut (a fact of a call still open keeps its ledger
row too, until the call closes: the ledger's index on ``at`` is how old facts are found,
so no run has to walk the CDRs, which are kept for ever).  Rows are taken oldest first,
``chunk`` at a time, each chunk in its own transaction, so a first prune of a big backlog
never holds one long transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from acd.adapters.store.schema import call_events, cdrs, processed_events

__all__ = ["DAY", "PRUNE_MARGIN", "Pruned", "closed_by", "prune_chunk"]

DAY = 86400.0
PRUNE_MARGIN = 3600.0  # seconds the prune stays behind the horizon the ingest applies


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one ``CrmService.prune_events`` run deleted; ``complete`` is False when it
    stopped at its chunk cap with more left for the next run."""

    processed_events: int = 0
    call_events: int = 0
    chunks: int = 0
    complete: bool = True


def closed_by(started_at: float, ended_at: float | None, horizon: float) -> bool:
    """Whether a call (its CDR's times) is closed by ``horizon``: ended before it, or never
    ended and started before it."""
    return ended_at < horizon if ended_at is not None else started_at < horizon


def _chunk_ids(cut: float, chunk: int) -> sa.Select[tuple[str]]:
    pe, ce, c = processed_events.c, call_events.c, cdrs.c
    closed = sa.or_(c.ended_at < cut, sa.and_(c.ended_at.is_(None), c.started_at < cut))
    return (sa.select(pe.event_id)
            .select_from(processed_events
                         .outerjoin(call_events, ce.event_id == pe.event_id)
                         .outerjoin(cdrs, c.call_ref == ce.call_ref))
            # no fact (agent events), a fact without a CDR, or a fact of a closed call
            .where(pe.at < cut, sa.or_(ce.event_id.is_(None), c.call_ref.is_(None), closed))
            .order_by(pe.at)  # oldest first, along the index on ``at``
            .limit(chunk))


async def prune_chunk(conn: AsyncConnection, cut: float, chunk: int) -> tuple[int, int, bool]:
    """Delete up to ``chunk`` ledger rows before ``cut`` and the facts of the same events;
    (ledger rows, facts, whether rows may be left)."""
    ids = list((await conn.execute(_chunk_ids(cut, chunk))).scalars())
    if not ids:
        return 0, 0, False
    facts = await conn.execute(call_events.delete().where(call_events.c.event_id.in_(ids)))
    ledger = await conn.execute(
        processed_events.delete().where(processed_events.c.event_id.in_(ids)))
    return max(0, ledger.rowcount), max(0, facts.rowcount), len(ids) == chunk
