"""Write-behind between the call path and the store: coalescing queue plus flusher task.

Owns the only path by which call handling persists state.  ``submit`` is a plain
method that never waits; the latest op per key wins, so the backlog is bounded by
the number of distinct keys (bindings, trunks), not by the request rate.  A
background task writes pending ops in batches of at most ``batch_size``, one
transaction each, every ``interval`` or as soon as ``batch_size`` are pending.

A batch that fails is put back in front of newer ops (which still win) and retried
with exponential backoff; transient failures never lose an op.  Re-applying a batch
whose commit outcome is unknown is safe because every op is idempotent.  The one
exception is an op the database rejects for its content (see ``is_permanent``, e.g.
a NUL byte in PostgreSQL text): retrying cannot help and would block every
later op, so such a batch is replayed op by op and only the culprits are dropped,
logged and counted in ``rejected``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from itertools import islice
from typing import Any, Protocol

import sqlalchemy as sa
import structlog

from .ops import Key, StoreOp

log = structlog.get_logger("acd.store")

# One pending op, with the submit sequence number that orders it among the others.
_Entry = tuple[int, StoreOp]


class OpSink(Protocol):
    """Where batches go; ``Store`` in production, fakes in tests."""

    async def apply(self, ops: Sequence[StoreOp]) -> None: ...


def is_permanent(exc: BaseException) -> bool:
    """Whether the data itself was refused, so retrying the same op can never succeed.

    That is SQLSTATE class 22 (data exception) or 23 (integrity violation), which
    asyncpg also raises for text it cannot encode, or a value the driver could not
    convert at all (e.g. an int beyond SQLite's 64 bits).  Anything else, lost
    connections included, is worth retrying.
    """
    if isinstance(exc, sa.exc.DBAPIError):
        if isinstance(exc, sa.exc.IntegrityError | sa.exc.DataError):
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return str(sqlstate or "")[:2] in ("22", "23")
    return isinstance(exc, sa.exc.StatementError | ValueError | TypeError | OverflowError)


class WriteBehind:
    """Coalescing write-behind queue in front of an ``OpSink``.

    Counters for metrics: ``pending`` (ops queued, after coalescing), ``in_flight``
    (ops of the batch being written), ``submitted``, ``flushed`` (ops written),
    ``failed_batches``, ``rejected`` (ops dropped as permanently invalid), ``last_error``.
    """

    def __init__(
        self,
        sink: OpSink,
        *,
        interval: float = 0.2,
        batch_size: int = 500,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._sink = sink
        self._interval = interval
        self._batch_size = batch_size
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self.submitted = 0
        self.flushed = 0
        self.failed_batches = 0
        self.rejected = 0
        self.in_flight = 0
        self.last_error: str | None = None
        # Insertion order is write order: a resubmitted key moves to the end.
        self._pending: dict[Key, _Entry] = {}
        # Pending keys by op group, so an op that clears a group finds them at once.
        self._groups: dict[Key, set[Key]] = {}
        self._seq = 0
        # One flush at a time keeps batches in submit order.
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        """Start the background flusher; needs a running event loop.  Idempotent."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="store-write-behind"
            )
            self._task.add_done_callback(_log_crash)

    def submit(self, op: StoreOp) -> None:
        """Queue ``op``, superseding any pending op with the same key.  Never waits."""
        if self._closed:
            raise RuntimeError("write-behind is closed; op not queued: " + repr(op))
        self._seq += 1
        self.submitted += 1
        self._put(self._seq, op)
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    async def flush(self) -> None:
        """Write every op submitted so far; raises the database error if a batch fails.

        Ops of a failed batch stay queued for the background retries.
        """
        await self._flush_until(self._seq)

    async def close(self, timeout: float | None = 10.0) -> None:
        """Refuse new ops, write the pending ones (retrying up to ``timeout``), stop.

        If the database stays unreachable the ops remain in ``pending`` (an explicit
        ``flush`` may still write them) and an error is logged; nothing is raised,
        so shutdown proceeds.
        """
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self.start()
        assert self._task is not None
        try:
            async with asyncio.timeout(timeout):
                await self._task
        except TimeoutError:
            log.error(
                "store.close_timeout",
                pending=self.pending,
                timeout=timeout,
                last_error=self.last_error,
            )

    async def _run(self) -> None:
        backoff = 0.0
        while True:
            if backoff:
                await asyncio.sleep(backoff)
            elif not self._closed:
                await _wait(self._wake, self._interval)
                self._wake.clear()
            if not self._pending:
                if self._closed:
                    return
                continue
            try:
                await self._flush_until(self._seq)
            except Exception as exc:
                backoff = min(max(2 * backoff, self._min_backoff), self._max_backoff)
                log.warning(
                    "store.flush_failed",
                    error=repr(exc),
                    pending=self.pending,
                    failed_batches=self.failed_batches,
                    retry_in=backoff,
                )
            else:
                backoff = 0.0

    async def _flush_until(self, target: int) -> None:
        async with self._lock:
            while self._pending and next(iter(self._pending.values()))[0] <= target:
                batch = self._take(self._batch_size)
                self.in_flight = len(batch)
                try:
                    await self._write(batch)
                finally:
                    self.in_flight = 0

    async def _write(self, batch: list[_Entry]) -> None:
        try:
            await self._sink.apply([op for _, op in batch])
        except Exception as exc:
            if not is_permanent(exc):
                self._fail(batch, exc)
                raise
            if len(batch) == 1:
                self._reject(batch[0], exc)
            else:
                await self._write_one_by_one(batch)
        except BaseException:
            # Cancelled mid-transaction: the outcome is unknown, and replay is safe.
            self._requeue(batch)
            raise
        else:
            self.flushed += len(batch)

    async def _write_one_by_one(self, batch: list[_Entry]) -> None:
        for i, entry in enumerate(batch):
            try:
                await self._sink.apply([entry[1]])
            except Exception as exc:
                if not is_permanent(exc):
                    self._fail(batch[i:], exc)
                    raise
                self._reject(entry, exc)
            except BaseException:
                self._requeue(batch[i:])
                raise
            else:
                self.flushed += 1

    def _reject(self, entry: _Entry, exc: Exception) -> None:
        self.rejected += 1
        self.last_error = repr(exc)
        log.error("store.op_rejected", op=repr(entry[1]), error=repr(exc))

    def _fail(self, batch: list[_Entry], exc: Exception) -> None:
        self.failed_batches += 1
        self.last_error = repr(exc)
        self._requeue(batch)

    def _put(self, seq: int, op: StoreOp) -> None:
        if op.clears is not None:
            for key in self._groups.pop(op.clears, ()):
                del self._pending[key]
        key = op.key
        old = self._pending.pop(key, None)
        if old is not None:
            self._ungroup(key, old[1])
        self._pending[key] = (seq, op)
        if op.group is not None:
            self._groups.setdefault(op.group, set()).add(key)

    def _ungroup(self, key: Key, op: StoreOp) -> None:
        if op.group is None:
            return
        keys = self._groups.get(op.group)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._groups[op.group]

    def _take(self, n: int) -> list[_Entry]:
        batch: list[_Entry] = []
        for key in list(islice(self._pending, n)):
            entry = self._pending.pop(key)
            self._ungroup(key, entry[1])
            batch.append(entry)
        return batch

    def _requeue(self, batch: list[_Entry]) -> None:
        # The batch was submitted before everything still pending; replaying both, in
        # that order, through the coalescing rules lets the newer ops win.
        newer = list(self._pending.values())
        self._pending = {}
        self._groups = {}
        for seq, op in [*batch, *newer]:
            self._put(seq, op)


async def _wait(event: asyncio.Event, timeout: float) -> None:
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        pass


def _log_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("store.writer_crashed", error=repr(task.exception()))
