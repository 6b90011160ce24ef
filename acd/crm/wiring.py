"""Getting engine events to ``CrmService``: in process (a bus subscriber that only queues,
and a task that writes batches) or from Redis Streams as a consumer group member.

From Redis, ``BatchRedisConsumer`` hands each XREADGROUP batch to ``handle_many``: one
transaction per batch instead of per event.  That is what keeps up with a busy engine: a
durable commit costs milliseconds (3.6 ms on the CI disk), so one transaction per event
tops out at a few hundred events/s whatever the code does, while batches grow by
themselves when the consumer falls behind.  A batch that fails is retried event by event,
so only the events that fail stay pending for XAUTOCLAIM to hand back.  An event that
fails for itself (``crm_permanent``: not a database outage, not a conflict) ``max_failures``
times goes to the dead-letter stream (``<stream>:dead``), see ``RedisStreamConsumer``;
while the database is down nothing is dead-lettered, events just wait.

In process, the bus callback appends to a bounded deque and returns: the call path never
waits for the database.  The task applies what is queued in batches of up to ``batch``
events, one transaction each.  A database that is down is retried with backoff while
events keep queueing (up to ``max_pending``; beyond that the oldest are dropped, counted
and logged: in-process delivery cannot outlive the process anyway, Redis Streams can).  A
batch the database refuses for its data is applied event by event and only the refused
events are dropped, so one bad event never blocks the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
import structlog

from acd.adapters.bus.consumer import RedisStreamConsumer, SeenIds, permanent_failure
from acd.adapters.store.writer import is_permanent
from acd.events import Event, EventBus

from .service import CrmService, is_retryable

log = structlog.get_logger("acd.crm")


class InprocConsumer:
    def __init__(self, bus: EventBus, service: CrmService, *, batch: int = 200,
                 max_pending: int = 100_000, backoff: tuple[float, float] = (0.1, 5.0)) -> None:
        self.bus = bus
        self.service = service
        self.batch = batch
        self.max_pending = max_pending
        self.backoff_min, self.backoff_max = backoff
        self.queued = 0
        self.dropped = 0  # lost to a full queue
        self.rejected = 0  # refused by the database for their data
        self.last_error = ""
        self._pending: deque[Event] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def offer(self, ev: Event) -> None:
        """The bus subscriber: never waits, never raises for a full queue."""
        if not self.service.wants(ev):
            return
        if len(self._pending) >= self.max_pending:
            self._pending.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("crm.queue_full", dropped=self.dropped, pending=self.pending)
        self._pending.append(ev)
        self.queued += 1
        self._idle.clear()
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._unsubscribe = self.bus.subscribe(self.offer)
            self._task = asyncio.get_running_loop().create_task(self._run(), name="crm-inproc")

    async def drained(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is written; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop listening, write what is queued (up to ``timeout``), end the task."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if not await self.drained(timeout):
            log.error("crm.stop_timeout", pending=self.pending, last_error=self.last_error)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        backoff = 0.0
        while True:
            if not self._pending:
                self._idle.set()
                await self._wake.wait()
                self._wake.clear()
                continue
            batch = [self._pending[i] for i in range(min(self.batch, len(self._pending)))]
            try:
                await self._write(batch)
            except Exception as exc:
                # Already applied events of the batch are no-ops when it is retried.
                self.last_error = repr(exc)[:300]
                backoff = min(self.backoff_max, max(self.backoff_min, backoff * 2))
                log.warning("crm.write_failed", error=self.last_error, retry_in=backoff,
                            pending=self.pending)
                await asyncio.sleep(backoff)
                continue
            backoff = 0.0
            for _ in batch:
                if self._pending:
                    self._pending.popleft()

    async def _write(self, batch: list[Event]) -> None:
        try:
            await self.service.handle_many(batch)
        except Exception as exc:
            if not is_permanent(exc):
                raise
            self.last_error = repr(exc)[:300]
            await self._one_by_one(batch)

    async def _one_by_one(self, batch: list[Event]) -> None:
        for ev in batch:
            try:
                await self.service.handle(ev)
            except Exception as exc:
                if not is_permanent(exc):
                    raise
                self.rejected += 1
                log.error("crm.event_rejected", event_type=ev.type, event_id=ev.id,
                          call_id=ev.call_id, error=repr(exc)[:300])


async def consume_inproc(bus: EventBus, service: CrmService, **options: Any) -> InprocConsumer:
    """Subscribe ``service`` to ``bus`` through a queue and a writer task (started here);
    ``await consumer.stop()`` at shutdown writes what is still queued."""
    consumer = InprocConsumer(bus, service, **options)
    consumer.start()
    return consumer


class BatchRedisConsumer(RedisStreamConsumer):
    """A consumer group member that applies each read batch in one ``handle_many``.

    Same delivery rules as ``RedisStreamConsumer`` (ack after the write, malformed
    messages acknowledged and counted, ``seen`` skips known ids, an event failing on its
    own dead-lettered through the base's ``_failed``); it replaces only how a batch is
    handed over.  Should that hook ever disappear from the base class, this still works,
    one ``service.handle`` per event (the ``handler`` given to the base).
    """

    def __init__(self, redis: aioredis.Redis, stream: str, group: str, consumer: str,
                 service: CrmService, **options: Any) -> None:
        super().__init__(redis, stream, group, consumer, service.handle, **options)
        self.service = service
        self.batches = 0

    async def _handle(self, messages: list[Any]) -> int:
        done: list[Any] = []
        todo: list[tuple[Any, Any, Event]] = []
        for mid, fields in messages:
            parsed = self._parse(mid, fields)
            if parsed is None:
                done.append(mid)
            elif self.seen is not None and parsed[1].id in self.seen:
                self.stats.duplicates += 1
                done.append(mid)
            else:
                todo.append((mid, *parsed))
        ok, dead = await self._apply(todo) if todo else ([], [])
        for mid, ev in ok:
            self._handled(mid, ev)
            done.append(mid)
        done += dead
        if done:
            await self._ack(done)
        return len(todo)

    async def _apply(self, todo: list[tuple[Any, Any, Event]]
                     ) -> tuple[list[tuple[Any, Event]], list[Any]]:
        """Apply (message id, raw event field, event) triples: one ``handle_many``, or
        event by event when it fails.  Returns the (id, event) pairs applied and the ids
        dead-lettered; the rest stays pending."""
        self.batches += 1
        try:
            await self.service.handle_many([ev for _, _, ev in todo])
            return [(mid, ev) for mid, _, ev in todo], []
        except Exception as exc:
            log.warning("crm.batch_failed", error=repr(exc)[:300], events=len(todo))
        ok, dead = [], []
        for mid, raw, ev in todo:
            try:
                await self.service.handle(ev)
            except Exception as exc:
                if await self._failed(mid, raw, ev, exc):
                    dead.append(mid)
                continue
            ok.append((mid, ev))
        return ok, dead


def crm_permanent(exc: BaseException) -> bool:
    """Whether a failure of ``CrmService.handle`` counts towards dead-lettering: not an
    outage (``permanent_failure``: a database or Redis away, any SQL error but refused
    data), nor one of the conflicts the service retries itself (``is_retryable``: a
    unique race, 23505, that outlasted its attempts, a deadlock, SQLite's lock)."""
    return permanent_failure(exc) and not is_retryable(exc)


def redis_consumer(service: CrmService, url: str, stream: str, *, group: str = "crm",
                   consumer: str | None = None, batch: bool = True,
                   **options: Any) -> RedisStreamConsumer:
    """A consumer group member feeding ``service``, batch by batch (``batch=False``: the
    plain ``RedisStreamConsumer`` with ``handler=service.handle``, one transaction per
    event).  Acknowledged only once written, so a crash or a database outage means
    redelivery, which the processed-events ledger turns into no-ops.
    ``await c.start()`` / ``await c.stop()``; ``c.redis`` is its own client to close."""
    name = consumer or f"{socket.gethostname()}-{os.getpid()}"
    options.setdefault("seen", SeenIds())
    options.setdefault("permanent", crm_permanent)
    if not batch:
        return RedisStreamConsumer.from_url(url, stream, group, name, service.handle,
                                            **options)
    # as RedisStreamConsumer.from_url: the socket timeout must outlast XREADGROUP's BLOCK
    block = float(options.get("block", 1.0))
    client = aioredis.Redis.from_url(url, socket_timeout=block + 5.0,
                                     socket_connect_timeout=2.0)
    return BatchRedisConsumer(client, stream, group, name, service, **options)
