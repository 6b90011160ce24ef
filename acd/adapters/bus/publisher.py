"""RedisStreamPublisher: carries the events of an EventBus to a Redis stream, in publish order,
through Redis outages and restarts, without ever blocking the call path.

The bus callback (`offer`) only appends to a bounded deque and wakes the drain task. The drain
task sends batches of XADD (MAXLEN ~ maxlen; fields "type" and "event" = the JSON), one
EVALSHA per batch, after lingering `linger` seconds when it wakes from idle so that events
arriving together share a round trip.

Ordering rests on one invariant: every event in the spool is older than every event in memory.
So the drain task sends from memory only while the spool is empty, replays the spool first
whenever it is not, and anything that goes to the spool goes there oldest first:
- Redis fails (any error: refused, timeout, READONLY, OOM...): the failed batch is spooled,
  then (at most every `spool_interval`, one fsync each time) whatever arrives; Redis is retried
  with exponential backoff, and the first thing sent when it answers is the spool.
- The deque is full (Redis slow, or down between two spool rounds): `offer` moves the batch
  in flight (if any), the deque and the new event to the spool in one write, without fsync
  (the drain task fsyncs on its next round). If the batch in flight then succeeds, the spool
  skips its copy of it.
Delivery is at least once: a pipeline that fails half-way, or a crash between XADD and the
replay checkpoint, sends some events twice; every copy keeps its event id, and the first
copies are in order, so a consumer that drops ids it has seen gets each event once, in order.
An event is lost only if the process dies holding it in memory (at most `spool_interval` of
events during an outage, or the deque and one batch while Redis is up) or if the spool cannot
be written and memory is exhausted (`dropped`).

`offer` and the drain task run on the same event loop thread: the bus must be emitted on it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoPermissionError, RedisError, ResponseError

from acd.adapters.bus.spool import Spool, SpoolMark, encode
from acd.events import Event, EventBus

__all__ = ["PublisherStats", "RedisStreamPublisher"]

log = structlog.get_logger("acd.bus.publisher")

Record = tuple[str, str]  # (event type, event JSON)

# One EVALSHA per batch rather than a pipeline of XADDs: the same work for Redis, a fraction
# of the client CPU (redis-py builds and parses every pipelined command in Python: 16.5 vs
# 1.5 us per event in batches of 500, 31 vs 14 in batches of 4), and a batch is one command,
# so a lost connection re-sends whole batches, never the tail of one. Pipelines remain the
# fallback for servers whose ACL refuses scripts.
XADD_BATCH = """
for i = 2, #ARGV, 2 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'type', ARGV[i], 'event', ARGV[i + 1])
end
return (#ARGV - 1) / 2
"""


def _scripting_refused(exc: ResponseError) -> bool:
    msg = str(exc).lower()
    return isinstance(exc, NoPermissionError) or "noperm" in msg or "unknown command" in msg


@dataclass
class PublisherStats:
    published: int = 0  # events Redis accepted (first sends and replays)
    spooled: int = 0  # events written to the spool
    replayed: int = 0  # events sent from the spool (included in published)
    dropped: int = 0  # events lost: unserialisable data, or no spool and no memory left
    errors: int = 0  # failed Redis round trips
    last_error: str = ""
    redis_up: bool = True


class RedisStreamPublisher:
    def __init__(self, redis: aioredis.Redis, stream: str, spool: Spool | Path | str, *,
                 maxlen: int = 100_000, wall: Callable[[], float] = time.time,
                 buffer_size: int = 10_000, batch_size: int = 500,
                 spool_interval: float = 0.05, backoff: tuple[float, float] = (0.1, 5.0),
                 timeout: float = 2.0, linger: float = 0.002, owns_redis: bool = False) -> None:
        self.redis = redis
        self.stream = stream
        self.spool = spool if isinstance(spool, Spool) else Spool(spool)
        self.maxlen = maxlen
        self.wall = wall
        self.buffer_size = buffer_size
        self.hard_limit = buffer_size * 4  # memory kept when even the spool cannot be written
        self.batch_size = batch_size
        self.spool_interval = spool_interval
        self.backoff_min, self.backoff_max = backoff
        self.timeout = timeout
        self.linger = linger
        self._script = redis.register_script(XADD_BATCH)
        self._use_script = True
        self.stats = PublisherStats()
        self._owns_redis = owns_redis
        self._buffer: deque[Event] = deque()
        self._inflight: list[Record] | None = None  # a batch from memory being sent
        self._inflight_ts = 0.0
        self._inflight_mark: SpoolMark | None = None  # set when offer() spooled it meanwhile
        self._needs_sync = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._backoff = 0.0
        self._retry_at = 0.0
        self._unsubscribe: Callable[[], None] | None = None

    @classmethod
    def from_url(cls, url: str, stream: str, spool: Spool | Path | str,
                 **kw: Any) -> RedisStreamPublisher:
        timeout = float(kw.get("timeout", 2.0))
        # No client-side retries: a failure must reach the drain task at once so that it
        # spools; the drain task does the retrying, with backoff.
        client = aioredis.Redis.from_url(url, socket_timeout=timeout,
                                         socket_connect_timeout=min(timeout, 1.0),
                                         retry=Retry(NoBackoff(), 0))
        return cls(client, stream, spool, owns_redis=True, **kw)

    # --- the call path -----------------------------------------------------------------------

    def attach(self, bus: EventBus, prefix: str = "") -> None:
        self._unsubscribe = bus.subscribe(self.offer, prefix)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def offer(self, ev: Event) -> None:
        """The bus subscriber: never awaits; file I/O only when memory is full."""
        if self._closed:  # stopped: straight to disk, the daemon is exiting
            try:
                self._spool_now([ev], sync=True)
            except Exception as exc:
                self._note_error("spool", exc)
                self.stats.dropped += 1
            finally:
                self.spool.close()  # let the next run (or a test) take the lock
            return
        buf = self._buffer
        if len(buf) < self.buffer_size:
            buf.append(ev)
        elif self._spill(ev):
            pass
        elif len(buf) < self.hard_limit:  # the spool failed: memory rather than loss
            buf.append(ev)
        else:
            self.stats.dropped += 1
        if not self._wake.is_set():
            self._wake.set()

    def _spill(self, ev: Event) -> bool:
        """Move the batch in flight (unless already there), the deque and `ev` to the spool."""
        try:
            if self._inflight is not None and self._inflight_mark is None \
                    and not self.spool.pending:
                self._inflight_mark = self.spool.append([j for _, j in self._inflight])
                self.stats.spooled += self._inflight_mark.lines
            self._spool_now([*self._buffer, ev], sync=False)
        except Exception as exc:  # OSError, or SpoolLocked before start()
            self._note_error("spool", exc)
            return False
        self._buffer.clear()
        return True

    def _spool_now(self, events: list[Event], sync: bool) -> None:
        lines = []
        for ev in events:
            j = encode(ev)
            if j is None:
                self._unencodable(ev)
            else:
                lines.append(j)
        self.stats.spooled += self.spool.append(lines).lines
        self._needs_sync = True
        if sync:
            self._sync()

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.spool.open()  # raises SpoolLocked when another process holds it
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="events-publisher")

    async def stop(self, timeout: float = 5.0) -> None:
        """Send what Redis will take within `timeout`, spool the rest (fsynced), close."""
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout)
            except TimeoutError:
                pass
            except Exception as exc:  # the task logs its own failures; stop must not raise
                self._note_error("stop", exc)
        self._closed = True
        try:
            self._spool_buffer()
        except OSError as exc:
            self._note_error("spool", exc)
            self.stats.dropped += len(self._buffer)
            log.error("events lost at shutdown: spool not writable", count=len(self._buffer))
        # still subscribed: events emitted after stop() go straight to the spool
        self.spool.close()
        if self._owns_redis:
            await self.redis.aclose()

    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait until nothing is pending (tests, benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout
        while self.pending:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    # --- what the daemon exports -------------------------------------------------------------

    @property
    def pending(self) -> int:
        inflight = len(self._inflight or ()) if self._inflight_mark is None else 0
        return len(self._buffer) + inflight + self.spool.pending

    @property
    def lag(self) -> float:
        """Age in seconds of the oldest event not yet in Redis (0 when none)."""
        ts: float | None = self.spool.head_ts() if self.spool.pending else None
        if ts is None and self._inflight is not None:
            ts = self._inflight_ts
        if ts is None and self._buffer:
            ts = self._buffer[0].ts
        return max(0.0, self.wall() - ts) if ts is not None else 0.0

    def snapshot(self) -> dict[str, Any]:
        s = self.stats
        return {"published": s.published, "spooled": s.spooled, "replayed": s.replayed,
                "dropped": s.dropped, "errors": s.errors, "pending": self.pending,
                "lag": self.lag, "redis_up": s.redis_up, "last_error": s.last_error,
                "spool_corrupt": self.spool.corrupt}

    # --- the drain task ----------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                if self._needs_sync:
                    self._sync()
                if not self.stats.redis_up:
                    self._spool_buffer()
                    wait = self._retry_at - loop.time()
                    if self._closing:
                        return
                    if wait > 0:
                        await asyncio.sleep(min(wait, self.spool_interval))
                        continue
                if self.spool.pending:
                    await self._replay_batch()
                elif self._buffer:
                    await self._send_buffer_batch()
                elif self._closing:
                    return
                else:
                    self._wake.clear()
                    await self._wake.wait()
                    if self.linger > 0 and not self._closing:
                        await asyncio.sleep(self.linger)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(exc, loop.time())

    async def _replay_batch(self) -> None:
        batch = self.spool.read(self.batch_size)
        if not batch.mark.lines:  # the count disagrees with the file: trust the file
            log.error("event spool count out of step with its file; recounting",
                      pending=self.spool.pending)
            self.spool.recount()
            return
        await self._xadd(batch.records)
        self.spool.commit(batch.mark)
        self._succeeded(len(batch.records), replayed=True)
        if not self.spool.pending:
            log.info("event spool replayed", replayed=self.stats.replayed)

    async def _send_buffer_batch(self) -> None:
        buf = self._buffer
        events = [buf.popleft() for _ in range(min(self.batch_size, len(buf)))]
        records = []
        for ev in events:
            j = encode(ev)
            if j is None:
                self._unencodable(ev)
            else:
                records.append((ev.type, j))
        self._inflight, self._inflight_ts, self._inflight_mark = records, events[0].ts, None
        sent = False
        try:
            await self._xadd(records)
            sent = True
        finally:
            mark, self._inflight, self._inflight_mark = self._inflight_mark, None, None
            if sent and mark is not None:
                self.spool.commit(mark)  # offer() spooled this batch meanwhile: skip that copy
            elif not sent and mark is None:
                # the spool is empty here (offer() would have set a mark), so this batch
                # goes in front of everything newer, as it must
                try:
                    self.stats.spooled += self.spool.append([j for _, j in records]).lines
                    self._sync()
                except OSError:
                    buf.extendleft(reversed(events))  # still in front: nothing newer spooled
                    raise
        self._succeeded(len(records), replayed=False)

    async def _xadd(self, records: list[Record]) -> None:
        if not records:
            return
        async with asyncio.timeout(self.timeout):
            if self._use_script:
                args: list[str | int] = [self.maxlen]
                for type_, j in records:
                    args += (type_, j)
                try:
                    await self._script(keys=[self.stream], args=args)
                    return
                except ResponseError as exc:
                    if not _scripting_refused(exc):
                        raise
                    self._use_script = False
                    log.warning("redis refuses scripts: publishing with pipelined XADD",
                                error=str(exc))
            pipe = self.redis.pipeline(transaction=False)
            for type_, j in records:
                pipe.xadd(self.stream, {"type": type_, "event": j}, maxlen=self.maxlen,
                          approximate=True)
            await pipe.execute()

    def _spool_buffer(self) -> None:
        if self._buffer:
            events = list(self._buffer)
            self._buffer.clear()
            try:
                self._spool_now(events, sync=True)
            except OSError:
                self._buffer.extendleft(reversed(events))
                raise
        elif self._needs_sync:
            self._sync()

    def _sync(self) -> None:
        self._needs_sync = False
        self.spool.sync()

    def _succeeded(self, n: int, replayed: bool) -> None:
        self.stats.published += n
        if replayed:
            self.stats.replayed += n
        if not self.stats.redis_up:
            self.stats.redis_up = True
            log.info("redis stream reachable again", stream=self.stream,
                     spooled=self.spool.pending)
        self._backoff = 0.0

    def _failed(self, exc: Exception, now: float) -> None:
        self._note_error("redis", exc)
        if not isinstance(exc, (RedisError, OSError, TimeoutError)):
            log.error("event publisher failed unexpectedly; retrying", exc_info=exc)
        self._backoff = min(self.backoff_max, max(self.backoff_min, self._backoff * 2))
        self._retry_at = now + self._backoff * random.uniform(0.8, 1.2)
        if self.stats.redis_up:
            self.stats.redis_up = False
            log.warning("redis stream unreachable: spooling events", stream=self.stream,
                        spool=str(self.spool.path), error=self.stats.last_error)

    def _note_error(self, where: str, exc: BaseException) -> None:
        self.stats.errors += 1
        self.stats.last_error = f"{where}: {type(exc).__name__}: {exc}"[:300]
        if where != "redis":
            log.error("event publisher error", error=self.stats.last_error)

    def _unencodable(self, ev: Event) -> None:
        self.stats.dropped += 1
        log.error("event dropped: data not serialisable", event_type=ev.type, event_id=ev.id,
                  call_id=ev.call_id)
