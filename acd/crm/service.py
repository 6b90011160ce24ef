"""``CrmService``: the one object the daemon, the event consumers and the HTTP routes use.

Consumer side: ``handle(event)`` / ``handle_many(events)`` apply engine events in one
transaction each call, idempotently by event id, retrying what concurrency causes
(deadlocks, a unique race, SQLite's busy lock) a few times before raising; a raise means
nothing of the call was written, so the event can be delivered again.  With a retention
(``CrmConfig.event_retention_days``) events older than it are ignored and counted
(``stats.expired``), and ``prune_events(now)``, run hourly by the daemon, deletes the
ledger and call-fact rows older than it (see ``retention.py`` for why that is safe).

Query side (for the HTTP layer; every method validates its arguments, raising ``CrmError``
for a 422 and ``NotFound`` for a 404, and returns dataclasses ``dataclasses.asdict`` turns
into JSON): CDRs, recordings, contacts, tickets, agent status history, and the queue and
agent reports computed from the CDRs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from acd.adapters.store import Store
from acd.events import Event

from . import queries, reports
from .contacts import Contacts
from .ingest import CrmConfig, Ingest, is_relevant
from .model import (
    AgentReport,
    AgentStatusChange,
    Cdr,
    Contact,
    QueueReport,
    Recording,
    Ticket,
    TicketDetail,
    TicketEvent,
)
from .retention import DAY, PRUNE_MARGIN, Pruned, prune_chunk
from .tickets import Tickets
from .validate import UNSET

log = structlog.get_logger("acd.crm")
T = TypeVar("T")

# Retryable by nature: another transaction got in the way, not this one's data.
_RETRY_SQLSTATES = ("40001", "40P01", "23505")
ATTEMPTS = 6
PRUNE_CHUNK = 10_000  # rows per prune statement (and transaction)
PRUNE_MAX_CHUNKS = 100  # per run: a bigger backlog goes over the next runs


@dataclass
class CrmStats:
    applied: int = 0  # events that changed something
    duplicates: int = 0  # relevant events already applied (redelivery)
    ignored: int = 0  # events the CRM has no use for
    retries: int = 0  # transactions run again after a conflict
    failed: int = 0  # handle/handle_many calls that raised
    expired: int = 0  # events older than the retention horizon, ignored (not applied)


def is_retryable(exc: BaseException) -> bool:
    """A conflict with another transaction (serialization, deadlock, unique race, SQLite's
    lock), not this one's data: ``_transact`` runs the transaction again."""
    if isinstance(exc, sa.exc.DBAPIError):
        orig = exc.orig
        code = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
        if code in _RETRY_SQLSTATES:
            return True
        return "database is locked" in str(orig) or "deadlock" in str(orig).lower()
    return False


class CrmService:
    def __init__(self, store: Store, config: CrmConfig | None = None, *,
                 wall: Callable[[], float] = time.time) -> None:
        self.store = store
        self.config = config or CrmConfig()
        if self.config.outbound_tickets not in ("attach_or_create", "attach", "off"):
            raise ValueError("outbound_tickets must be attach_or_create, attach or off")
        self.wall = wall
        self.event_retention_days = self.config.event_retention_days
        self.stats = CrmStats()
        self._ingest = Ingest(store.dialect, self.config, wall)
        engine, writer = store.engine, store.write_engine
        self.contacts = Contacts(engine, writer, wall, self.config.normalize)
        self.tickets = Tickets(engine, writer, wall)

    # --- consumer side -------------------------------------------------------------------

    @property
    def event_retention_days(self) -> int:
        """How long ledger and call-fact rows are kept, in days; 0: for ever.  May change
        while running (a config reload); the ingest and the next prune follow at once."""
        return self._retention_days

    @event_retention_days.setter
    def event_retention_days(self, days: int) -> None:
        if isinstance(days, bool) or not isinstance(days, int) or days < 0:
            raise ValueError("event_retention_days must be an integer >= 0")
        self._retention_days = days

    def horizon(self, now: float) -> float | None:
        """Events before this are ignored, calls closed before it never projected again;
        None without a retention."""
        return now - self._retention_days * DAY if self._retention_days else None

    def wants(self, ev: Event) -> bool:
        """Whether ``ev`` can change anything here (the rest need not be queued at all)."""
        return is_relevant(ev, self.config)

    async def handle(self, ev: Event) -> None:
        """Apply one event (the ``Handler`` a ``RedisStreamConsumer`` takes)."""
        await self.handle_many([ev])

    async def handle_many(self, events: Sequence[Event]) -> int:
        """Apply events in order, all in one transaction; how many changed something."""
        evs = [ev for ev in events if is_relevant(ev, self.config)]
        self.stats.ignored += len(events) - len(evs)
        horizon = self.horizon(self.wall())
        if horizon is not None and evs:
            # Their ids may already be pruned from the ledger: applying one could apply it
            # twice, or project a call from what is left of its facts.
            fresh = [ev for ev in evs if ev.ts >= horizon]
            if len(fresh) < len(evs):
                expired = len(evs) - len(fresh)
                self.stats.expired += expired
                log.info("crm.expired_events_ignored", count=expired,
                         retention_days=self._retention_days, total=self.stats.expired)
                evs = fresh
        if not evs:
            return 0

        async def apply(conn: AsyncConnection) -> int:
            return await self._ingest.apply(conn, evs, horizon)

        try:
            applied = await self._transact(apply)
        except Exception:
            self.stats.failed += 1
            raise
        self.stats.applied += applied
        self.stats.duplicates += len(evs) - applied
        return applied

    async def prune_events(self, now: float, *, chunk: int = PRUNE_CHUNK,
                           max_chunks: int = PRUNE_MAX_CHUNKS) -> Pruned:
        """Delete ``processed_events`` rows processed before the horizon and the
        ``call_events`` of calls closed by it (ended before it, or never ended and started
        before it), ``PRUNE_MARGIN`` behind it; CDRs, legs, tickets, recordings and agent
        history stay.  ``chunk`` rows per transaction, at most ``max_chunks`` of them per
        run (``Pruned.complete`` says whether all is done).  Nothing without a retention."""
        if chunk < 1 or max_chunks < 1:
            raise ValueError("chunk and max_chunks must be >= 1")
        horizon = self.horizon(now)
        if horizon is None:
            return Pruned()
        cut = horizon - PRUNE_MARGIN
        ledger = facts = chunks = 0
        more = True
        while more and chunks < max_chunks:
            n_ledger, n_facts, more = await self._transact(
                lambda conn: prune_chunk(conn, cut, chunk))
            ledger += n_ledger
            facts += n_facts
            chunks += 1
            await asyncio.sleep(0)  # let the consumer's transactions in between chunks
        return Pruned(ledger, facts, chunks, complete=not more)

    async def _transact(self, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        delay = 0.005
        for attempt in range(ATTEMPTS):
            try:
                async with self.store.write_engine.begin() as conn:
                    return await fn(conn)
            except sa.exc.DBAPIError as exc:
                if attempt == ATTEMPTS - 1 or not is_retryable(exc):
                    raise
                self.stats.retries += 1
                log.info("crm.retry", error=str(exc.orig)[:200], attempt=attempt + 1)
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    # --- call records ----------------------------------------------------------------------

    async def list_cdrs(self, *, since: Any = None, until: Any = None, hotline: Any = None,
                        queue: Any = None, agent: Any = None, direction: Any = None,
                        outcome: Any = None, limit: Any = None, cursor: Any = None
                        ) -> tuple[list[Cdr], str | None]:
        return await queries.list_cdrs(
            self.store.engine, since=since, until=until, hotline=hotline, queue=queue,
            agent=agent, direction=direction, outcome=outcome, limit=limit, cursor=cursor)

    async def get_cdr(self, call_ref: Any) -> Cdr:
        return await queries.get_cdr(self.store.engine, call_ref)

    async def get_recording(self, recording_id: Any) -> Recording:
        return await queries.get_recording(self.store.engine, recording_id)

    async def call_recordings(self, call_ref: str) -> list[Recording]:
        return await queries.call_recordings(self.store.engine, call_ref)

    async def list_agent_status(self, *, agent: Any = None, since: Any = None,
                                until: Any = None, limit: Any = None, cursor: Any = None
                                ) -> tuple[list[AgentStatusChange], str | None]:
        return await queries.list_agent_status(self.store.engine, agent=agent, since=since,
                                               until=until, limit=limit, cursor=cursor)

    # --- reports ---------------------------------------------------------------------------

    async def queue_report(self, *, since: Any = None, until: Any = None, queue: Any = None,
                           sl: Any = None) -> list[QueueReport]:
        return await reports.queue_report(self.store.engine, since=since, until=until,
                                          queue=queue, sl=sl)

    async def agent_report(self, *, since: Any = None, until: Any = None,
                           agent: Any = None) -> list[AgentReport]:
        return await reports.agent_report(self.store.engine, since=since, until=until,
                                          agent=agent)

    # --- contacts --------------------------------------------------------------------------

    async def create_contact(self, *, name: Any = None, phone: Any = None, email: Any = None,
                             notes: Any = None) -> Contact:
        return await self.contacts.create(name=name, phone=phone, email=email, notes=notes)

    async def get_contact(self, contact_id: Any) -> Contact:
        return await self.contacts.get(contact_id)

    async def update_contact(self, contact_id: Any, *, name: Any = UNSET, phone: Any = UNSET,
                             email: Any = UNSET, notes: Any = UNSET) -> Contact:
        return await self.contacts.update(contact_id, name=name, phone=phone, email=email,
                                          notes=notes)

    async def delete_contact(self, contact_id: Any) -> None:
        await self.contacts.delete(contact_id)

    async def search_contacts(self, *, phone: Any = None, q: Any = None, limit: Any = None,
                              cursor: Any = None) -> tuple[list[Contact], str | None]:
        return await self.contacts.search(phone=phone, q=q, limit=limit, cursor=cursor)

    async def merge_contacts(self, target: Any, sources: Any) -> Contact:
        return await self.contacts.merge(target, sources)

    # --- tickets ---------------------------------------------------------------------------

    async def list_tickets(self, *, status: Any = None, assignee: Any = None,
                           contact: Any = None, missed: Any = None, hotline: Any = None,
                           queue: Any = None, limit: Any = None, cursor: Any = None
                           ) -> tuple[list[Ticket], str | None]:
        return await self.tickets.list(status=status, assignee=assignee, contact=contact,
                                       missed=missed, hotline=hotline, queue=queue,
                                       limit=limit, cursor=cursor)

    async def get_ticket(self, ticket_id: Any) -> TicketDetail:
        return await self.tickets.get(ticket_id)

    async def update_ticket(self, ticket_id: Any, *, status: Any = UNSET,
                            assignee: Any = UNSET, priority: Any = UNSET,
                            author: Any = None) -> Ticket:
        return await self.tickets.update(ticket_id, status=status, assignee=assignee,
                                         priority=priority, author=author)

    async def add_note(self, ticket_id: Any, text: Any, author: Any = None) -> TicketEvent:
        return await self.tickets.add_note(ticket_id, text, author)
