"""Feeding the CRM: the in-process subscriber (never waits, batches, survives a database
outage and a poisonous event, drains at stop) and a Redis Streams consumer group (duplicates
in the stream, a handler failure redelivered by XAUTOCLAIM), over SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa

from acd.adapters.store import Store
from acd.crm import CrmService, consume_inproc, redis_consumer
from acd.events import Event, EventBus
from tests.conftest import require
from tests.unit.test_crm import T0, Script, backend, crm, dump, feed, store

__all__ = ["backend", "crm", "store"]  # fixtures, imported for pytest

REDIS = "redis://127.0.0.1:6379/0"


def bus_with(script: Script) -> EventBus:
    return EventBus(script.node, lambda: T0)


async def test_inproc_subscriber_never_waits_and_writes_in_batches(crm: CrmService) -> None:
    sc = Script()
    bus = bus_with(sc)
    calls: list[int] = []
    original = crm.handle_many

    async def counting(events: Sequence[Event]) -> int:
        calls.append(len(events))
        return await original(events)

    crm.handle_many = counting  # type: ignore[method-assign]
    consumer = await consume_inproc(bus, crm, batch=50)
    events = [ev for i in range(10) for ev in sc.queue_call(f"c{i}", t=T0 + i)]
    for ev in events:
        bus.publish(ev)
    # publish returned without any database work: everything relevant is still queued
    assert consumer.pending == len(events) - 4 * 10 and calls == []
    assert await consumer.drained(timeout=30)
    assert sum(calls) == len(events) - 40 and max(calls) == 50
    assert len((await crm.list_cdrs(limit=100))[0]) == 10
    await consumer.stop()
    bus.publish(sc.abandoned("late")[0])
    assert consumer.pending == 0  # unsubscribed


async def test_inproc_retries_while_the_database_is_down(crm: CrmService) -> None:
    sc = Script()
    bus = bus_with(sc)
    failures = 3
    original = crm.handle_many

    async def flaky(events: Sequence[Event]) -> int:
        nonlocal failures
        if failures:
            failures -= 1
            raise sa.exc.OperationalError("INSERT", {}, ConnectionRefusedError("db down"))
        return await original(events)

    crm.handle_many = flaky  # type: ignore[method-assign]
    consumer = await consume_inproc(bus, crm, backoff=(0.01, 0.05))
    for ev in sc.queue_call("c1"):
        bus.publish(ev)
    assert await consumer.drained(timeout=10)
    await consumer.stop()
    assert failures == 0 and "db down" in consumer.last_error
    assert (await crm.get_cdr("c1")).outcome == "answered"


async def test_inproc_drops_only_the_event_the_database_refuses(crm: CrmService) -> None:
    sc = Script()
    bus = bus_with(sc)
    evs = sc.queue_call("c1")
    poison = evs[5]
    original = crm.handle_many

    async def picky(events: Sequence[Event]) -> int:
        if any(ev.id == poison.id for ev in events):
            raise sa.exc.IntegrityError("INSERT", {}, ValueError("refused"))
        return await original(events)

    crm.handle_many = picky  # type: ignore[method-assign]
    consumer = await consume_inproc(bus, crm)
    for ev in evs:
        bus.publish(ev)
    assert await consumer.drained(timeout=10)
    await consumer.stop()
    assert consumer.rejected == 1
    assert (await crm.get_cdr("c1")).outcome == "answered"


async def test_inproc_full_queue_drops_oldest(crm: CrmService) -> None:
    sc = Script()
    bus = bus_with(sc)
    consumer = await consume_inproc(bus, crm, max_pending=3)
    evs = sc.abandoned("c1")
    for ev in evs:
        bus.publish(ev)
    assert (consumer.pending, consumer.dropped) == (3, 2)
    await consumer.stop()
    cdr = await crm.get_cdr("c1")
    assert cdr.started_at == evs[2].ts  # call.started was among the dropped


async def test_stop_writes_what_is_queued(crm: CrmService, store: Store) -> None:
    sc = Script()
    bus = bus_with(sc)
    consumer = await consume_inproc(bus, crm)
    for ev in sc.queue_call("c1"):
        bus.publish(ev)
    await consumer.stop()
    assert (await crm.get_cdr("c1")).outcome == "answered"


# --- Redis Streams -------------------------------------------------------------------------


async def _redis() -> aioredis.Redis:
    client = aioredis.Redis.from_url(REDIS, socket_connect_timeout=1)
    try:
        await client.ping()
    except (OSError, aioredis.RedisError):
        await client.aclose()
        require(False, f"Redis unreachable at {REDIS}")
    return client


async def _until(cond: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.redis
@pytest.mark.parametrize("batch", [True, False])
async def test_redis_group_consumer_with_duplicates_and_a_failed_write(
        crm: CrmService, store: Store, batch: bool) -> None:
    client = await _redis()
    stream = f"test:crm:{uuid.uuid4().hex}"
    sc = Script()
    events = sc.queue_call("c1") + sc.abandoned("c2", t=T0 + 5)
    victim = next(ev.id for ev in events if ev.type == "call.ended")
    outage = 2  # the database is away for the first two writes that carry c1's call.ended
    original = crm.handle_many

    async def down_for_one(evs: Sequence[Event]) -> int:
        nonlocal outage
        if outage and any(ev.id == victim for ev in evs):
            outage -= 1
            raise sa.exc.OperationalError("INSERT", {}, ConnectionResetError("gone"))
        return await original(evs)

    crm.handle_many = down_for_one  # type: ignore[method-assign]
    consumer = redis_consumer(crm, REDIS, stream, group="crm", consumer="t1", batch=batch,
                              claim_idle=0.2, claim_every=0.1, block=0.1)
    try:
        await consumer.ensure_group()
        # every event twice, as a publisher replaying its spool would
        for ev in [*events, *events]:
            await client.xadd(stream, {"type": ev.type, "event": ev.to_json()})
        await consumer.start()

        async def settled() -> bool:
            pending = await client.xpending(stream, "crm")
            return consumer.stats.handled + consumer.stats.duplicates >= len(events) \
                and pending["pending"] == 0 and outage == 0

        await _until(settled)
        assert consumer.stats.failed >= 1 and consumer.stats.claimed >= 1
        if batch:
            # the messages were all there at start: a handful of transactions, not 60
            assert getattr(consumer, "batches", 0) <= 6
        assert (await crm.get_cdr("c1")).outcome == "answered"
        assert (await crm.get_cdr("c2")).outcome == "abandoned"
        before = await dump(store)
        for ev in events:  # and once more, long after: the ledger, not memory, says no
            await original([ev])
        assert await dump(store) == before
    finally:
        await consumer.stop()
        await consumer.redis.aclose()
        await client.delete(stream)
        await client.aclose()


@pytest.mark.redis
async def test_malformed_messages_are_acknowledged(crm: CrmService) -> None:
    client = await _redis()
    stream = f"test:crm:{uuid.uuid4().hex}"
    consumer = redis_consumer(crm, REDIS, stream, consumer="t1", block=0.1)
    try:
        await consumer.ensure_group()
        await client.xadd(stream, {"type": "x", "event": "{not json"})
        await client.xadd(stream, {"type": "x"})
        for ev in Script().abandoned("c1"):
            await client.xadd(stream, {"type": ev.type, "event": ev.to_json()})
        await consumer.start()

        async def settled() -> bool:
            return consumer.stats.handled == 5 and consumer.stats.malformed == 2

        await _until(settled)
        assert (await client.xpending(stream, "crm"))["pending"] == 0
        assert (await crm.get_cdr("c1")).outcome == "abandoned"
    finally:
        await consumer.stop()
        await consumer.redis.aclose()
        await client.delete(stream)
        await client.aclose()


@pytest.mark.redis
async def test_two_consumers_in_one_group_share_calls(crm: CrmService, store: Store) -> None:
    """Events of one call may go to different members: the CDR row lock and the ledger
    keep the result whole."""
    client = await _redis()
    stream = f"test:crm:{uuid.uuid4().hex}"
    sc = Script()
    events = [ev for i in range(8) for ev in sc.queue_call(f"c{i}", t=T0 + i)]
    members = [redis_consumer(crm, REDIS, stream, group="crm", consumer=f"m{i}", count=5,
                              block=0.1) for i in range(2)]
    try:
        await members[0].ensure_group()
        for ev in events:
            await client.xadd(stream, {"type": ev.type, "event": ev.to_json()})
        for m in members:
            await m.start()

        async def done() -> bool:
            return sum(m.stats.handled for m in members) >= len(events)

        await _until(done)
        assert all(m.stats.handled for m in members)
        cdrs, _ = await crm.list_cdrs()
        assert sorted(c.call_ref for c in cdrs) == [f"c{i}" for i in range(8)]
        assert {c.outcome for c in cdrs} == {"answered"}
        assert len((await crm.list_tickets())[0]) == 8
    finally:
        for m in members:
            await m.stop()
            await m.redis.aclose()
        await client.delete(stream)
        await client.aclose()


async def test_feed_helper_counts(crm: CrmService) -> None:
    assert await feed(crm, Script().abandoned("c1")) == 5
