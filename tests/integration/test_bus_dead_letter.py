"""Dead letters of the Redis Streams consumer, against the shared Redis on 127.0.0.1:6379
(each test on streams of its own, deleted afterwards): a poison event goes to
``<stream>:dead`` after ``max_failures`` permanent failures and is acknowledged, an outage
(transient failures) never dead-letters anything, ``max_failures=0`` turns it off, a failed
XADD leaves the message pending, and the CRM's batching consumer dead-letters an event its
handling always fails on (a projection bug, patched in) while the rest of its batch is
applied.  The rounds are driven with ``poll()`` and
``claim_idle=0``, no sleeping.  Plus the failure classification itself, without Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from acd.adapters.bus import (
    ConsumerCollector,
    RedisStreamConsumer,
    is_transient,
    permanent_failure,
)
from acd.crm import CrmService, redis_consumer
from acd.crm.wiring import BatchRedisConsumer, crm_permanent
from acd.events import Event, EventBus
from tests.integration.test_bus_redis import MAIN, main
from tests.unit.test_crm import T0, Script, backend, crm, store

__all__ = ["backend", "crm", "main", "store"]  # fixtures, imported for pytest


@pytest.fixture
async def stream(main: aioredis.Redis) -> AsyncIterator[str]:
    name = f"test:dead:{uuid.uuid4().hex}"
    yield name
    await main.delete(name, f"{name}:dead")


def events(n: int) -> list[Event]:
    bus = EventBus("node-t", time.time)
    return [bus.emit("call.started", {"n": i}, call_id=f"c{i}") for i in range(n)]


async def put(client: aioredis.Redis, stream: str, evs: Sequence[Event]) -> None:
    for ev in evs:
        await client.xadd(stream, {"type": ev.type, "event": ev.to_json()})


def consumer(stream: str, handler: Any, **kw: Any) -> RedisStreamConsumer:
    # claim_idle=0 and claim_every=0: every poll() hands the pending messages back
    return RedisStreamConsumer.from_url(MAIN, stream, "g", "c1", handler, block=0.01,
                                        claim_idle=0, claim_every=0, **kw)


async def rounds(c: RedisStreamConsumer, n: int) -> None:
    for _ in range(n):
        await c.poll(block=False)


async def dead_letters(client: aioredis.Redis, stream: str) -> list[dict[str, str]]:
    entries: Any = await client.xrange(f"{stream}:dead")
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in entries]


async def pending(client: aioredis.Redis, stream: str, group: str = "g") -> int:
    return int((await client.xpending(stream, group))["pending"])


# --- classification --------------------------------------------------------------------------

class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def _db(cls: type[sa.exc.DBAPIError], orig: BaseException) -> sa.exc.DBAPIError:
    return cls("INSERT ...", {}, orig)


def _from(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


TRANSIENT = [
    OSError("down"), ConnectionRefusedError(), ConnectionResetError(), TimeoutError(),
    redis.exceptions.TimeoutError(), redis.exceptions.ConnectionError("gone"),
    sa.exc.TimeoutError("QueuePool limit reached"),
    _db(sa.exc.OperationalError, ConnectionRefusedError("db down")),
    _db(sa.exc.InterfaceError, _Orig("08006")),
    _db(sa.exc.OperationalError, _Orig("57P01")),  # admin shutdown
    _db(sa.exc.DBAPIError, _Orig("40P01")),  # deadlock
    _from(RuntimeError("projection failed"), OSError("disk")),
    ExceptionGroup("several", [ValueError("x"), OSError("y")]),
]
PERMANENT = [
    ValueError("bad"), TypeError("bad"), KeyError("k"), AttributeError("a"),
    OverflowError("inf"), RuntimeError("bug"), AssertionError("bug"),
    _db(sa.exc.IntegrityError, _Orig("23502")),  # not null
    _db(sa.exc.DataError, _Orig("22P02")),
    _db(sa.exc.DBAPIError, _Orig("22021")),  # text the database cannot encode
    ExceptionGroup("several", [ValueError("x"), KeyError("y")]),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=repr)
def test_outages_are_transient_for_every_consumer(exc: BaseException) -> None:
    assert is_transient(exc)
    assert not permanent_failure(exc) and not crm_permanent(exc)


@pytest.mark.parametrize("exc", PERMANENT, ids=repr)
def test_refused_data_and_handler_errors_are_permanent(exc: BaseException) -> None:
    assert not is_transient(exc)
    assert permanent_failure(exc) and crm_permanent(exc)


def test_a_unique_race_is_data_in_general_but_retryable_for_the_crm() -> None:
    race = _db(sa.exc.IntegrityError, _Orig("23505"))
    assert permanent_failure(race) and not crm_permanent(race)


def test_options_are_checked() -> None:
    client = aioredis.Redis()  # never connects
    with pytest.raises(ValueError):
        RedisStreamConsumer(client, "s", "g", "c", lambda ev: asyncio.sleep(0),
                            max_failures=-1)
    with pytest.raises(ValueError):
        RedisStreamConsumer(client, "s", "g", "c", lambda ev: asyncio.sleep(0),
                            dead_letter="s")
    c = RedisStreamConsumer(client, "s", "g", "c", lambda ev: asyncio.sleep(0))
    assert (c.max_failures, c.dead_letter, c.permanent) == (5, "s:dead", permanent_failure)


# --- RedisStreamConsumer ---------------------------------------------------------------------

@pytest.mark.redis
async def test_a_poison_event_is_dead_lettered_and_the_rest_handled_in_order(
        main: aioredis.Redis, stream: str) -> None:
    evs = events(10)
    poison = evs[3]
    calls: list[str] = []
    handled: list[str] = []

    async def handler(ev: Event) -> None:
        calls.append(ev.id)
        if ev.id == poison.id:
            raise ValueError(f"cannot project {ev.id}")
        handled.append(ev.id)

    await put(main, stream, evs)
    c = consumer(stream, handler, max_failures=3)
    reg = CollectorRegistry()
    reg.register(ConsumerCollector(c))
    try:
        await rounds(c, 3)  # own pending (none), then everything (1st), a claim (2nd)
        assert handled == [ev.id for ev in evs if ev is not poison]
        assert await pending(main, stream) == 1 and c.stats.dead_lettered == 0
        assert await dead_letters(main, stream) == []
        await rounds(c, 1)  # 3rd failure: dead-lettered
        assert c.stats.dead_lettered == 1 and c.stats.failed == 3
        assert await pending(main, stream) == 0
        await rounds(c, 3)  # acknowledged: never delivered again
    finally:
        await c.redis.aclose()
    assert calls.count(poison.id) == 3
    assert handled == [ev.id for ev in evs if ev is not poison]  # each once, in order
    [dead] = await dead_letters(main, stream)
    assert dead["event"] == poison.to_json()  # verbatim
    assert dead["error"].startswith("ValueError(") and poison.id in dead["error"]
    assert (dead["stream"], dead["group"], dead["consumer"]) == (stream, "g", "c1")
    assert dead["type"] == "call.started" and dead["failures"] == "3"
    original: Any = await main.xrange(stream)
    assert dead["message_id"] == original[3][0].decode()
    assert abs(float(dead["at"]) - time.time()) < 60
    assert reg.get_sample_value("acd_events_consumer_dead_lettered_total",
                                {"stream": stream, "group": "g"}) == 1
    assert reg.get_sample_value("acd_events_consumer_handled_total",
                                {"stream": stream, "group": "g"}) == 9


@pytest.mark.redis
async def test_an_outage_never_dead_letters(main: aioredis.Redis, stream: str) -> None:
    evs = events(5)
    victim = evs[1]
    outage = [OSError("db down"), ConnectionRefusedError(), TimeoutError(),
              redis.exceptions.TimeoutError(), redis.exceptions.ConnectionError("gone"),
              _db(sa.exc.OperationalError, ConnectionResetError("reset")),
              _db(sa.exc.InterfaceError, _Orig("08006"))] * 2
    handled: list[str] = []

    async def handler(ev: Event) -> None:
        if ev.id == victim.id and outage:
            raise outage.pop(0)
        handled.append(ev.id)

    await put(main, stream, evs)
    c = consumer(stream, handler, max_failures=2)
    try:
        await rounds(c, 2 + 13)  # 14 deliveries of the victim fail
        assert c.stats.failed == 14 and c.stats.dead_lettered == 0 and outage == []
        assert await pending(main, stream) == 1
        await rounds(c, 1)  # the outage is over
    finally:
        await c.redis.aclose()
    assert sorted(handled) == sorted(ev.id for ev in evs) and handled[-1] == victim.id
    assert await pending(main, stream) == 0
    assert await dead_letters(main, stream) == []


@pytest.mark.redis
async def test_max_failures_0_retries_forever(main: aioredis.Redis, stream: str) -> None:
    evs = events(3)

    async def handler(ev: Event) -> None:
        if ev.id == evs[0].id:
            raise KeyError("agent")

    await put(main, stream, evs)
    c = consumer(stream, handler, max_failures=0)
    try:
        await rounds(c, 2 + 9)
    finally:
        await c.redis.aclose()
    assert c.stats.failed == 10 and c.stats.handled == 2 and c.stats.dead_lettered == 0
    assert await pending(main, stream) == 1
    assert await dead_letters(main, stream) == []


@pytest.mark.redis
async def test_a_failed_dead_letter_write_leaves_the_message_pending(
        main: aioredis.Redis, stream: str) -> None:
    evs = events(2)

    async def handler(ev: Event) -> None:
        if ev.id == evs[1].id:
            raise TypeError("bad data")

    await main.set(f"{stream}:dead", "not a stream")  # XADD to it fails (WRONGTYPE)
    await put(main, stream, evs)
    c = consumer(stream, handler, max_failures=2)
    try:
        await rounds(c, 4)  # failures 1, 2 (XADD fails), 3 (XADD fails again)
        assert c.stats.dead_lettered == 0 and c.stats.errors == 2
        assert "WRONGTYPE" in c.stats.last_error
        assert await pending(main, stream) == 1
        await main.delete(f"{stream}:dead")  # Redis takes it again
        await rounds(c, 1)
    finally:
        await c.redis.aclose()
    assert c.stats.dead_lettered == 1 and await pending(main, stream) == 0
    [dead] = await dead_letters(main, stream)
    assert dead["event"] == evs[1].to_json() and dead["failures"] == "4"


# --- the CRM's batching consumer ---------------------------------------------------------------

@pytest.mark.redis
async def test_crm_dead_letters_a_poison_event_and_applies_the_rest_of_its_batch(
        main: aioredis.Redis, stream: str, crm: CrmService,
        monkeypatch: pytest.MonkeyPatch) -> None:
    sc = Script()
    c1, c2 = sc.queue_call("c1"), sc.abandoned("c2", t=T0 + 5)
    poison = sc.ev("recording.ready", "c1", T0 + 90, path="/rec/c1-2.wav", size=10)
    evs = [*c1, poison, *c2]
    # a bug the projection would hit on this one event, whether alone or in a batch
    handle_many, handle = crm.handle_many, crm.handle

    async def many(batch: list[Event]) -> int:
        if any(ev.id == poison.id for ev in batch):
            raise ValueError("projection bug")
        return await handle_many(batch)

    async def one(ev: Event) -> None:
        if ev.id == poison.id:
            raise ValueError("projection bug")
        await handle(ev)

    monkeypatch.setattr(crm, "handle_many", many)
    monkeypatch.setattr(crm, "handle", one)
    c = redis_consumer(crm, MAIN, stream, group="crm", consumer="t1", claim_idle=0,
                       claim_every=0, block=0.01, max_failures=2)
    assert isinstance(c, BatchRedisConsumer) and c.permanent is crm_permanent
    try:
        await c.ensure_group()
        await put(main, stream, evs)
        await rounds(c, 2)  # one batch fails, event by event: all but the poison applied
        assert c.stats.handled == len(evs) - 1 and c.stats.failed == 1
        assert await pending(main, stream, "crm") == 1
        await rounds(c, 1)  # claimed alone, fails again: dead-lettered
        assert c.stats.dead_lettered == 1 and await pending(main, stream, "crm") == 0
        assert c.batches == 2
    finally:
        await c.redis.aclose()
    [dead] = await dead_letters(main, stream)
    assert dead["event"] == poison.to_json()
    assert dead["error"].startswith("ValueError(") and dead["group"] == "crm"
    assert (await crm.get_cdr("c1")).outcome == "answered"
    assert (await crm.get_cdr("c2")).outcome == "abandoned"


@pytest.mark.redis
async def test_crm_waits_out_a_database_outage(main: aioredis.Redis, stream: str,
                                               crm: CrmService) -> None:
    sc = Script()
    evs = sc.abandoned("c1")
    lost = _db(sa.exc.OperationalError, ConnectionRefusedError("db down"))
    race = _db(sa.exc.IntegrityError, _Orig("23505"))  # outlasted the service's retries
    down = [lost, lost, race, race] * 2  # a delivery takes two: its batch, then the event
    original = crm.handle_many

    async def outage(batch: Sequence[Event]) -> int:
        if down:
            raise down.pop(0)
        return await original(batch)

    crm.handle_many = outage  # type: ignore[method-assign,assignment]
    c = redis_consumer(crm, MAIN, stream, group="crm", consumer="t1", claim_idle=0,
                       claim_every=0, block=0.01, max_failures=1, count=1)
    try:
        await c.ensure_group()
        await put(main, stream, evs)
        for _ in range(20):
            await c.poll(block=False)
            if c.stats.handled == len(evs):
                break
    finally:
        await c.redis.aclose()
    assert down == [] and c.stats.failed >= 4 and c.stats.dead_lettered == 0
    assert await pending(main, stream, "crm") == 0
    assert await dead_letters(main, stream) == []
    assert (await crm.get_cdr("c1")).outcome == "abandoned"
