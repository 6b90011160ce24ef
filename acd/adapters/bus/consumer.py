"""RedisStreamConsumer: reads a Redis stream as one member of a consumer group and hands each
event to an async handler, at least once; and SeenIds, a bounded memory of handled event ids
for consumers that want to skip the duplicates at-least-once delivery brings.

A message is acknowledged (XACK, once per batch) only after its handler returned. A handler
that raises leaves the message pending; XAUTOCLAIM hands it back, to this consumer or another,
once it has been idle `claim_idle` seconds, which also rescues the messages of a consumer that
died. At start the consumer first re-reads its own pending list (messages it had received
before a crash). A message that is not an event (no "event" field, bad JSON) can never succeed:
it is acknowledged and counted in `malformed`. Redis errors are retried with backoff, and a
group deleted under the consumer is created again.

Dead letters. A handler failure is either transient (`permanent(exc)` false: the database,
Redis or the network away, see `is_transient`) or permanent (the event itself cannot be
handled: data the database refuses, a bug in the handler hit by this event). Transient
failures never dead-letter: an outage only delays events, however long it lasts. Permanent
failures are counted per message id; at `max_failures` (5; 0 turns dead-lettering off and
retries forever) the message is copied to the dead-letter stream `dead_letter`
(`<stream>:dead` unless given; MAXLEN ~ 100,000) with the original `event` field verbatim
and `type`, `error` (repr, 500 chars at most), `stream`, `group`, `consumer`, `message_id`,
`failures` and `at` (wall time), then acknowledged, counted in `dead_lettered` and logged
once at error level. Should that XADD fail the message stays pending and comes back. The
counts live in this process's memory (bounded, oldest forgotten first) and count
deliveries to this consumer: with several consumers in a group each counts its own, and a
restart starts again from zero, so a poison message may take more than `max_failures`
deliveries, never fewer. A crash between the XADD and the XACK leaves a second copy on
the dead-letter stream later (at least once there too). To replay a dead letter, XADD its
`event` field back to the stream once the cause is fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import sqlalchemy as sa
import structlog
from redis.exceptions import RedisError, ResponseError

from acd.adapters.store.writer import is_permanent as refused_by_database
from acd.events import Event

__all__ = ["ConsumerStats", "Handler", "RedisStreamConsumer", "SeenIds", "is_transient",
           "permanent_failure"]

log = structlog.get_logger("acd.bus.consumer")

Handler = Callable[[Event], Awaitable[None]]

DEAD_LETTER_MAXLEN = 100_000  # approximate (MAXLEN ~) bound of a dead-letter stream
FAILURE_MEMORY = 100_000  # message ids whose permanent failures are remembered

# Something the handler talks to is away or busy: nothing to do with the event.
# (ConnectionError and asyncio.TimeoutError are OSError and TimeoutError.)
_OUTAGES = (OSError, TimeoutError, RedisError, sa.exc.TimeoutError, sa.exc.DisconnectionError)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, what it was explicitly raised from, and the members of exception groups."""
    todo, seen = [exc], set()
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)
        if e.__cause__ is not None:
            todo.append(e.__cause__)


def is_transient(exc: BaseException) -> bool:
    """Whether a handler failure is an outage, not the event's fault: OSError (connections
    refused or reset), timeouts, Redis errors, SQLAlchemy pool timeouts and disconnections,
    and every database error but refused data (``acd.adapters.store.writer.is_permanent``:
    SQLSTATE class 22/23, driver conversion errors) — lost connections, a locked SQLite, a
    deadlock, also a schema the code does not match, which would refuse every event alike.
    Looks through ``raise ... from`` chains and exception groups: any outage in there makes
    the failure transient."""
    for e in _causes(exc):
        if isinstance(e, _OUTAGES):
            return True
        if isinstance(e, sa.exc.DBAPIError) and not refused_by_database(e):
            return True
    return False


def permanent_failure(exc: BaseException) -> bool:
    """The default ``permanent``: everything not transient (``is_transient``) — data the
    database refuses, ValueError, KeyError, TypeError and whatever else handler code raises
    for this one event."""
    return not is_transient(exc)


class SeenIds:
    """The last `capacity` event ids marked handled, oldest forgotten first."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._ids: dict[str, None] = {}

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, event_id: str) -> bool:
        """Remember `event_id`; False if it was already known."""
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            del self._ids[next(iter(self._ids))]
        return True


class _FailureCounts:
    """Permanent failures per message id, for the last `capacity` ids that failed."""

    def __init__(self, capacity: int = FAILURE_MEMORY) -> None:
        self.capacity = capacity
        self._n: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._n)

    def add(self, key: str) -> int:
        n = self._n[key] = self._n.get(key, 0) + 1
        if len(self._n) > self.capacity:
            del self._n[next(iter(self._n))]
        return n

    def forget(self, key: str) -> None:
        self._n.pop(key, None)


@dataclass
class ConsumerStats:
    handled: int = 0  # handler returned
    failed: int = 0  # handler raised; message left pending (or dead-lettered)
    dead_lettered: int = 0  # moved to the dead-letter stream after max_failures
    acked: int = 0
    claimed: int = 0  # messages taken over from idle entries (dead consumers, failures)
    duplicates: int = 0  # skipped because SeenIds knew the id
    malformed: int = 0
    errors: int = 0  # failed Redis round trips
    last_error: str = ""
    lag: float = 0.0  # wall time minus publish time of the last handled event


def _field(fields: dict[Any, Any], name: str) -> Any:
    v = fields.get(name)
    return fields.get(name.encode()) if v is None else v


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class RedisStreamConsumer:
    def __init__(self, redis: aioredis.Redis, stream: str, group: str, consumer: str,
                 handler: Handler, *, start_id: str = "0", count: int = 100,
                 block: float = 1.0, claim_idle: float = 30.0, claim_every: float | None = None,
                 seen: SeenIds | None = None, wall: Callable[[], float] = time.time,
                 backoff: tuple[float, float] = (0.1, 5.0), max_failures: int = 5,
                 dead_letter: str | None = None,
                 permanent: Callable[[BaseException], bool] = permanent_failure) -> None:
        if max_failures < 0:
            raise ValueError("max_failures must be >= 0 (0: never dead-letter)")
        if dead_letter == stream:
            raise ValueError("the dead-letter stream must not be the stream itself")
        self.redis = redis
        self.stream, self.group, self.consumer = stream, group, consumer
        self.handler = handler
        self.start_id = start_id  # where a new group starts: "0" all history, "$" new only
        self.count = count
        self.block_ms = max(1, int(block * 1000))
        self.claim_idle_ms = int(claim_idle * 1000)
        self.claim_every = claim_every if claim_every is not None else max(0.05, claim_idle / 2)
        self.seen = seen
        self.wall = wall
        self.backoff_min, self.backoff_max = backoff
        self.max_failures = max_failures
        self.dead_letter = dead_letter or f"{stream}:dead"
        self.permanent = permanent
        self._failures = _FailureCounts()
        self.stats = ConsumerStats()
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        self._own_cursor: str | None = "0"  # paging through our own pending list at start
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @classmethod
    def from_url(cls, url: str, stream: str, group: str, consumer: str, handler: Handler,
                 **kw: Any) -> RedisStreamConsumer:
        # the socket timeout must outlast XREADGROUP's BLOCK
        block = float(kw.get("block", 1.0))
        client = aioredis.Redis.from_url(url, socket_timeout=block + 5.0,
                                         socket_connect_timeout=2.0)
        return cls(client, stream, group, consumer, handler, **kw)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(),
                                                                name=f"consumer-{self.group}")

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()  # unacknowledged messages stay pending: redelivered, not lost
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        backoff = 0.0
        while not self._stopping:
            try:
                await self.poll()
                backoff = 0.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    await self.ensure_group()
                    continue
                if not isinstance(exc, (RedisError, OSError, TimeoutError)):
                    log.exception("event consumer failed", stream=self.stream)
                backoff = min(self.backoff_max, max(self.backoff_min, backoff * 2))
                await asyncio.sleep(backoff)

    # --- one round ---------------------------------------------------------------------------

    async def poll(self, block: bool = True) -> int:
        """One round: own pending (first time), idle claims (when due), then new messages.
        Returns how many messages were handed to the handler."""
        if self._own_cursor is not None:
            await self.ensure_group()
            return await self._read(self._own_cursor, block=False)
        done = 0
        now = time.monotonic()
        if now >= self._next_claim:
            done += await self.claim()
            self._next_claim = now + self.claim_every
        return done + await self._read(">", block=block and not done)

    async def claim(self) -> int:
        """Take over messages idle longer than `claim_idle` (one XAUTOCLAIM page)."""
        res: Any = await self.redis.xautoclaim(self.stream, self.group, self.consumer,
                                          self.claim_idle_ms, self._claim_cursor,
                                          count=self.count)
        cursor, messages = res[0], res[1]
        self._claim_cursor = _text(cursor)
        self.stats.claimed += sum(1 for _, f in messages if f is not None)
        return await self._handle(messages)

    async def _read(self, last_id: str, block: bool) -> int:
        res: Any = await self.redis.xreadgroup(self.group, self.consumer, {self.stream: last_id},
                                          count=self.count,
                                          block=self.block_ms if block else None)
        messages: list[Any]
        if isinstance(res, dict):  # RESP3 replies are maps
            messages = next(iter(res.values()), [[]])[0] if res else []
        else:
            messages = res[0][1] if res else []
        if last_id != ">":
            self._own_cursor = _text(messages[-1][0]) if len(messages) >= self.count else None
        return await self._handle(messages)

    async def _handle(self, messages: list[Any]) -> int:
        done: list[Any] = []
        n = 0
        for mid, fields in messages:
            parsed = self._parse(mid, fields)
            if parsed is None:
                done.append(mid)
                continue
            raw, ev = parsed
            if self.seen is not None and ev.id in self.seen:
                self.stats.duplicates += 1
                done.append(mid)
                continue
            n += 1
            try:
                await self.handler(ev)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if await self._failed(mid, raw, ev, exc):
                    done.append(mid)
                continue
            self._handled(mid, ev)
            done.append(mid)
        if done:
            await self._ack(done)
        return n

    def _parse(self, mid: Any, fields: Any) -> tuple[Any, Event] | None:
        """The message's `event` field as sent and as an Event; None for a message to
        acknowledge unhandled (trimmed away while pending, or malformed: counted)."""
        if fields is None:  # trimmed away (MAXLEN) while pending
            return None
        raw = _field(fields, "event")
        try:
            return raw, Event.from_dict(json.loads(_text(raw)))
        except (ValueError, KeyError, TypeError, AttributeError):
            self.stats.malformed += 1
            log.warning("malformed stream message acknowledged", stream=self.stream,
                        message_id=_text(mid))
            return None

    def _handled(self, mid: Any, ev: Event) -> None:
        self.stats.handled += 1
        self.stats.lag = max(0.0, self.wall() - ev.ts)
        if self.seen is not None:
            self.seen.add(ev.id)
        if self._failures:  # nearly always empty: no decoding of the id per event then
            self._failures.forget(_text(mid))

    async def _failed(self, mid: Any, raw: Any, ev: Event, exc: Exception) -> bool:
        """The handler raised `exc` for message `mid` (`raw`: its `event` field). Counts
        and logs it, dead-letters the message at `max_failures` permanent failures; whether
        to acknowledge the message (True once it is on the dead-letter stream)."""
        self.stats.failed += 1
        ctx = {"stream": self.stream, "event_type": ev.type, "event_id": ev.id,
               "call_id": ev.call_id}
        if not self.permanent(exc):
            log.warning("event handler failed (transient); message stays pending",
                        error=repr(exc)[:300], **ctx)
            return False
        if not self.max_failures:
            log.exception("event handler failed; message stays pending", **ctx)
            return False
        key = _text(mid)
        failures = self._failures.add(key)
        if failures < self.max_failures:
            log.exception("event handler failed; message stays pending", failures=failures,
                          max_failures=self.max_failures, **ctx)
            return False
        try:
            await self.redis.xadd(self.dead_letter, {
                "event": raw, "type": ev.type, "error": repr(exc)[:500],
                "stream": self.stream, "group": self.group, "consumer": self.consumer,
                "message_id": key, "failures": failures, "at": repr(self.wall()),
            }, maxlen=DEAD_LETTER_MAXLEN, approximate=True)
        except (RedisError, OSError) as err:  # the message comes back: dead-lettered then
            self.stats.errors += 1
            self.stats.last_error = f"{type(err).__name__}: {err}"[:300]
            log.warning("dead-lettering failed; message stays pending", error=repr(err)[:300],
                        dead_letter=self.dead_letter, failures=failures, **ctx)
            return False
        self._failures.forget(key)
        self.stats.dead_lettered += 1
        log.error("event dead-lettered", exc_info=exc, dead_letter=self.dead_letter,
                  message_id=key, failures=failures, **ctx)
        return True

    async def _ack(self, ids: list[Any]) -> None:
        self.stats.acked += await self.redis.xack(self.stream, self.group, *ids)

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id=self.start_id,
                                           mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
