"""Event bus against real Redis: the shared server on 127.0.0.1:6379 for delivery, consumer
groups and trimming (each test on a stream and group of its own, deleted afterwards), and a
private redis-server per test, in a temp dir on a free port, for outages the test causes for
real: stopped and restarted (refused connections), frozen with SIGSTOP (timeouts), turned
into a replica (READONLY), or reached as an ACL user without scripting."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from acd.adapters.bus import RedisStreamConsumer, RedisStreamPublisher, SeenIds
from acd.events import Event, EventBus
from tests.conftest import ROOT, require, require_tool
from tests.integration.bus_server import RedisServer, _free_port, _reachable

pytestmark = pytest.mark.redis

MAIN = "redis://127.0.0.1:6379/0"
FAST = {"backoff": (0.02, 0.2), "spool_interval": 0.01, "timeout": 0.5}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    require_tool("redis-server")
    srv = RedisServer(tmp_path)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def main() -> AsyncIterator[aioredis.Redis]:
    require(_reachable(6379), "Redis unreachable on 127.0.0.1:6379 (start it with redis-server "
            "--daemonize yes --bind 127.0.0.1 --port 6379)")
    client = aioredis.Redis.from_url(MAIN)
    yield client
    await client.aclose()


@pytest.fixture
async def stream(main: aioredis.Redis) -> AsyncIterator[str]:
    name = f"test:bus:{uuid.uuid4().hex}"
    yield name
    await main.delete(name)


def publisher(url: str, stream: str, spool: Path, **kw: Any
              ) -> tuple[EventBus, RedisStreamPublisher]:
    bus = EventBus("node-t", time.time)
    pub = RedisStreamPublisher.from_url(url, stream, spool, **(FAST | kw))
    pub.attach(bus)
    return bus, pub


def emit(bus: EventBus, n: int) -> list[str]:
    return [bus.emit("call.started", {"n": i}, call_id=f"c{i}").id for i in range(n)]


async def stream_ids(url: str, stream: str) -> list[str]:
    client = aioredis.Redis.from_url(url)
    try:
        entries: Any = await client.xrange(stream)
    finally:
        await client.aclose()
    return [Event.from_dict(json.loads(f[b"event"])).id for _, f in entries]


async def until(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def first_copies(ids: list[str]) -> list[str]:
    seen = SeenIds()
    return [i for i in ids if seen.add(i)]


# --- publishing ----------------------------------------------------------------------------

async def test_events_appear_once_in_order_with_their_ids(main: aioredis.Redis, stream: str,
                                                         tmp_path: Path) -> None:
    bus, pub = publisher(MAIN, stream, tmp_path / "ev.spool")
    await pub.start()
    ids = emit(bus, 1500)
    assert await pub.flush(10)
    await pub.stop()
    assert await stream_ids(MAIN, stream) == ids
    first: Any = await main.xrange(stream, count=1)
    _, fields = first[0]
    assert fields[b"type"] == b"call.started"
    assert pub.stats.published == 1500 and pub.stats.spooled == pub.stats.dropped == 0


async def test_maxlen_trims_approximately(main: aioredis.Redis, stream: str,
                                          tmp_path: Path) -> None:
    bus, pub = publisher(MAIN, stream, tmp_path / "ev.spool", maxlen=100)
    await pub.start()
    emit(bus, 2000)
    assert await pub.flush(10)
    await pub.stop()
    assert 100 <= await main.xlen(stream) < 400


async def test_a_full_deque_spills_to_the_spool_and_loses_nothing(stream: str,
                                                                  tmp_path: Path) -> None:
    bus, pub = publisher(MAIN, stream, tmp_path / "ev.spool", buffer_size=50)
    await pub.start()
    ids = emit(bus, 1000)  # one synchronous burst: the drain task gets no turn
    assert pub.stats.spooled >= 950 and pub.stats.dropped == 0
    assert await pub.flush(10)
    await pub.stop()
    assert await stream_ids(MAIN, stream) == ids
    assert (tmp_path / "ev.spool").stat().st_size == 0


async def test_a_spool_left_by_a_previous_run_is_replayed_first(stream: str,
                                                                tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens there
    bus, pub = publisher(dead, stream, tmp_path / "ev.spool")
    await pub.start()
    old = emit(bus, 200)
    await until(lambda: pub.spool.pending == 200)
    await pub.stop()
    bus2, pub2 = publisher(MAIN, stream, tmp_path / "ev.spool")
    new = emit(bus2, 50)  # emitted before start: still after the old spool
    await pub2.start()
    assert await pub2.flush(10)
    await pub2.stop()
    assert await stream_ids(MAIN, stream) == old + new
    assert pub2.stats.replayed == 200
    assert (tmp_path / "ev.spool").stat().st_size == 0


# --- outages of a private Redis --------------------------------------------------------------

async def test_a_stopped_redis_loses_and_duplicates_nothing(server: RedisServer,
                                                            tmp_path: Path) -> None:
    spool = tmp_path / "ev.spool"
    bus, pub = publisher(server.url, "acd:events", spool)
    await pub.start()
    ids = emit(bus, 100)
    assert await pub.flush(10)
    server.stop()
    for _ in range(6):  # published during the outage, in several spool rounds
        ids += emit(bus, 50)
        await asyncio.sleep(0.05)
    await until(lambda: not pub.stats.redis_up and pub.spool.pending == 300)
    assert spool.stat().st_size > 0 and pub.lag > 0
    server.start()
    ids += emit(bus, 20)
    assert await pub.flush(15)
    got = await stream_ids(server.url, "acd:events")
    assert got == ids  # exactly once, in order
    assert pub.stats.replayed >= 300 and pub.stats.dropped == 0 and pub.stats.redis_up
    assert spool.stat().st_size == 0 and not pub.spool.checkpoint_path.exists()
    await pub.stop()


async def test_publishing_steadily_through_a_restart(server: RedisServer,
                                                     tmp_path: Path) -> None:
    bus, pub = publisher(server.url, "acd:events", tmp_path / "ev.spool")
    await pub.start()
    ids: list[str] = []

    async def steady() -> None:
        for _ in range(150):  # ~1.5 s at ~1,000 events/s
            ids.extend(emit(bus, 10))
            await asyncio.sleep(0.01)

    producer = asyncio.create_task(steady())
    await asyncio.sleep(0.3)
    server.stop()
    await asyncio.sleep(0.5)
    server.start()
    await producer
    assert await pub.flush(15)
    await pub.stop()
    got = await stream_ids(server.url, "acd:events")
    assert first_copies(got) == ids  # a consumer deduping by id sees each once, in order
    assert len(got) - len(ids) <= pub.stats.errors * pub.batch_size  # whole batches at most
    assert pub.stats.spooled > 0 and pub.stats.dropped == 0


async def test_a_frozen_redis_times_out_into_the_spool(server: RedisServer,
                                                       tmp_path: Path) -> None:
    bus, pub = publisher(server.url, "acd:events", tmp_path / "ev.spool", timeout=0.3)
    await pub.start()
    ids = emit(bus, 10)
    assert await pub.flush(5)
    server.freeze(True)
    try:
        ids += emit(bus, 100)
        await until(lambda: not pub.stats.redis_up and pub.spool.pending >= 100)
    finally:
        server.freeze(False)
    assert await pub.flush(15)
    await pub.stop()
    assert "Timeout" in pub.stats.last_error
    # a batch that timed out may still have been applied once Redis woke: dedupe by id
    assert first_copies(await stream_ids(server.url, "acd:events")) == ids


async def test_a_read_only_replica_sends_events_to_the_spool(server: RedisServer,
                                                             tmp_path: Path) -> None:
    admin = aioredis.Redis.from_url(server.url)
    bus, pub = publisher(server.url, "acd:events", tmp_path / "ev.spool")
    await pub.start()
    try:
        await admin.execute_command("REPLICAOF", "127.0.0.1", str(_free_port()))
        ids = emit(bus, 30)
        await until(lambda: not pub.stats.redis_up)
        assert "ReadOnlyError" in pub.stats.last_error
        await admin.execute_command("REPLICAOF", "NO", "ONE")
        assert await pub.flush(15)
    finally:
        await pub.stop()
        await admin.aclose()
    assert await stream_ids(server.url, "acd:events") == ids


async def test_a_server_that_refuses_scripts_gets_pipelines(server: RedisServer,
                                                            tmp_path: Path) -> None:
    admin = aioredis.Redis.from_url(server.url)
    await admin.execute_command("ACL", "SETUSER", "nolua", "on", ">pw", "~*", "+@all",
                                "-@scripting")
    await admin.aclose()
    url = f"redis://nolua:pw@127.0.0.1:{server.port}/0"
    bus, pub = publisher(url, "acd:events", tmp_path / "ev.spool")
    await pub.start()
    ids = emit(bus, 700)
    assert await pub.flush(10)
    await pub.stop()
    assert await stream_ids(server.url, "acd:events") == ids
    assert pub.stats.errors == 0 and pub.stats.spooled == 0


# --- consuming ---------------------------------------------------------------------------------

async def _published(stream: str, tmp_path: Path, n: int) -> list[str]:
    bus, pub = publisher(MAIN, stream, tmp_path / f"{uuid.uuid4().hex}.spool")
    await pub.start()
    ids = emit(bus, n)
    assert await pub.flush(10)
    await pub.stop()
    return ids


async def test_consumer_groups_deliver_in_order_and_ack(main: aioredis.Redis, stream: str,
                                                        tmp_path: Path) -> None:
    ids = await _published(stream, tmp_path, 250)
    got: dict[str, list[str]] = {"g1": [], "g2": []}
    consumers = []
    for g in got:
        async def handler(ev: Event, g: str = g) -> None:
            got[g].append(ev.id)
        c = RedisStreamConsumer.from_url(MAIN, stream, g, "c1", handler, block=0.2, count=64)
        consumers.append(c)
        await c.start()
    await until(lambda: all(len(v) == 250 for v in got.values()))
    for c in consumers:
        await c.stop()
        await c.redis.aclose()
    assert got["g1"] == ids and got["g2"] == ids  # each group gets everything
    for g in got:
        assert (await main.xpending(stream, g))["pending"] == 0
    assert consumers[0].stats.acked == 250 and consumers[0].stats.lag > 0


async def test_a_failed_handler_leaves_the_message_pending_until_redelivered(
        main: aioredis.Redis, stream: str, tmp_path: Path) -> None:
    ids = await _published(stream, tmp_path, 20)
    calls: list[str] = []
    handled: list[str] = []
    failing = {ids[7]}

    async def handler(ev: Event) -> None:
        calls.append(ev.id)
        if ev.id in failing:
            raise RuntimeError("store down")
        handled.append(ev.id)

    c = RedisStreamConsumer.from_url(MAIN, stream, "g", "c1", handler, block=0.1,
                                     claim_idle=0.3)
    await c.start()
    await until(lambda: len(handled) == 19)
    pending = await main.xpending_range(stream, "g", "-", "+", 10)
    assert len(pending) == 1 and c.stats.failed >= 1
    failing.clear()  # the store is back
    await until(lambda: len(handled) == 20, timeout=5)
    await c.stop()
    await c.redis.aclose()
    assert calls.count(ids[7]) >= 2 and sorted(handled) == sorted(ids)
    assert (await main.xpending(stream, "g"))["pending"] == 0


async def test_messages_of_a_dead_consumer_are_claimed(main: aioredis.Redis, stream: str,
                                                       tmp_path: Path) -> None:
    ids = await _published(stream, tmp_path, 30)
    await main.xgroup_create(stream, "g", id="0")
    await main.xreadgroup("g", "dead", {stream: ">"}, count=30)  # read, never acknowledged
    got: list[str] = []

    async def handler(ev: Event) -> None:
        got.append(ev.id)

    c = RedisStreamConsumer.from_url(MAIN, stream, "g", "alive", handler, block=0.1,
                                     claim_idle=0.2)
    await c.start()
    await until(lambda: len(got) == 30)
    await c.stop()
    await c.redis.aclose()
    assert got == ids and c.stats.claimed == 30
    assert (await main.xpending(stream, "g"))["pending"] == 0


async def test_a_restarted_consumer_first_handles_its_own_pending(
        main: aioredis.Redis, stream: str, tmp_path: Path) -> None:
    ids = await _published(stream, tmp_path, 250)
    await main.xgroup_create(stream, "g", id="0")
    await main.xreadgroup("g", "c1", {stream: ">"}, count=150)  # then c1 crashed
    got: list[str] = []
    seen = SeenIds()

    async def handler(ev: Event) -> None:
        got.append(ev.id)

    c = RedisStreamConsumer.from_url(MAIN, stream, "g", "c1", handler, block=0.1,
                                     claim_idle=60, count=64, seen=seen)
    await c.start()
    await until(lambda: len(got) == 250)
    await c.stop()
    await c.redis.aclose()
    assert got == ids and c.stats.claimed == 0 and len(seen) == 250


async def test_malformed_messages_are_acknowledged_and_counted(
        main: aioredis.Redis, stream: str) -> None:
    await main.xadd(stream, {"event": "{not json"})
    await main.xadd(stream, {"other": "x"})
    async def never(ev: Event) -> None:
        raise AssertionError("not an event")

    c = RedisStreamConsumer.from_url(MAIN, stream, "g", "c1", never, block=0.05)
    try:
        while c.stats.malformed < 2:
            await c.poll()
    finally:
        await c.redis.aclose()
    assert (await main.xpending(stream, "g"))["pending"] == 0


# --- the benchmark stays runnable ------------------------------------------------------------

@pytest.mark.slow
def test_bench_events_smoke() -> None:
    require(_reachable(6379), "Redis unreachable on 127.0.0.1:6379")
    res = subprocess.run([sys.executable, "-m", "bench.events", "--smoke"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "publish -> consume" in res.stdout and "lag p99" in res.stdout
