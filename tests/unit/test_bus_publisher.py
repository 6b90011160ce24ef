"""RedisStreamPublisher against a scripted stand-in for Redis: order and exactly-once-by-id
across failures, half-applied pipelines, spills while a batch is in flight, shutdown, and the
factory and metrics around it. (tests/integration/test_bus_redis.py does the same against
real Redis servers.)"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.exceptions import ResponseError

from acd.adapters.bus import (
    PublisherCollector,
    RedisStreamPublisher,
    SeenIds,
    Spool,
    make_bus,
    spool_path,
)
from acd.config_platform import EventsConfig
from acd.events import Event, EventBus


class Down(ConnectionError):
    pass


class FakeRedis:
    """XADD batches (script or pipeline) that land, fail, fail half-way, or wait at a gate."""

    def __init__(self) -> None:
        self.stream: list[dict[str, Any]] = []
        self.fail: Exception | None = None
        self.apply_before_failing = 0
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.maxlens: set[tuple[int, bool]] = set()
        self.refuse_scripts = False
        self.hold_after: int | None = None  # executions that pass before the gate closes
        self.scripts = self.pipelines = 0

    def pipeline(self, transaction: bool = True) -> FakePipe:
        assert transaction is False
        self.pipelines += 1
        return FakePipe(self)

    def register_script(self, lua: str) -> Any:
        assert "XADD" in lua

        async def run(keys: list[str], args: list[Any]) -> int:
            if self.refuse_scripts:
                raise ResponseError("NOPERM User x has no permissions to run the 'evalsha' "
                                    "command")
            self.scripts += 1
            pipe = FakePipe(self)
            for i in range(1, len(args), 2):
                pipe.xadd(keys[0], {"type": args[i], "event": args[i + 1]}, int(args[0]), True)
            await pipe.execute()
            return len(pipe.cmds)

        return run

    def ids(self) -> list[str]:
        return [json.loads(f["event"])["id"] for f in self.stream]


class FakePipe:
    def __init__(self, r: FakeRedis) -> None:
        self.r, self.cmds = r, []  # type: ignore[var-annotated]

    def xadd(self, name: str, fields: dict[str, Any], maxlen: int, approximate: bool) -> None:
        self.r.maxlens.add((maxlen, approximate))
        self.cmds.append(fields)

    async def execute(self) -> None:
        r = self.r
        if r.hold_after is not None:
            r.hold_after -= 1
            if r.hold_after < 0 and r.gate is None:
                r.gate = asyncio.Event()
        r.entered.set()
        if r.gate is not None:
            await r.gate.wait()
        if self.r.fail is not None:
            self.r.stream += self.cmds[: self.r.apply_before_failing]
            raise self.r.fail
        self.r.stream += self.cmds


def make(tmp_path: Path, redis: FakeRedis, **kw: Any) -> tuple[EventBus, RedisStreamPublisher]:
    bus = EventBus("node-a", time.time)
    opts: dict[str, Any] = {"backoff": (0.01, 0.02), "spool_interval": 0.005, "maxlen": 1000,
                            "batch_size": 10, "linger": 0}
    pub = RedisStreamPublisher(redis, "s", tmp_path / "ev.spool", **(opts | kw))  # type: ignore[arg-type]
    pub.attach(bus)
    return bus, pub


def emit(bus: EventBus, n: int) -> list[str]:
    return [bus.emit("call.started", {"n": i}, call_id=f"c{i}").id for i in range(n)]


def first_copies(ids: list[str]) -> list[str]:
    seen = SeenIds()
    return [i for i in ids if seen.add(i)]


async def until(cond: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.002)


@pytest.mark.parametrize("scripts", [True, False])
async def test_events_reach_the_stream_once_in_order(tmp_path: Path, scripts: bool) -> None:
    r = FakeRedis()
    r.refuse_scripts = not scripts
    bus, pub = make(tmp_path, r)
    await pub.start()
    ids = emit(bus, 95)
    assert await pub.flush()
    assert r.ids() == ids
    assert (r.scripts > 0, r.pipelines > 0) == (scripts, not scripts)
    assert pub.stats.errors == 0
    assert r.stream[0]["type"] == "call.started"
    assert r.maxlens == {(1000, True)}
    assert pub.stats.published == 95 and pub.stats.spooled == 0 and pub.lag == 0
    await pub.stop()


async def test_an_outage_spools_and_the_spool_goes_first(tmp_path: Path) -> None:
    r = FakeRedis()
    bus, pub = make(tmp_path, r)
    await pub.start()
    r.fail = Down("refused")
    ids = emit(bus, 30)
    await until(lambda: not pub.stats.redis_up and pub.spool.pending == 30)
    assert pub.lag > 0 and pub.pending == 30
    ids += emit(bus, 30)
    await asyncio.sleep(0.03)
    r.fail = None
    ids += emit(bus, 5)  # newer than the spool: must wait for it
    assert await pub.flush()
    assert r.ids() == ids
    assert pub.stats.replayed >= 60 and pub.stats.dropped == 0 and pub.stats.redis_up
    assert "refused" in pub.stats.last_error
    assert (tmp_path / "ev.spool").stat().st_size == 0
    await pub.stop()


async def test_a_half_applied_pipeline_duplicates_but_keeps_first_copies_in_order(
        tmp_path: Path) -> None:
    r = FakeRedis()
    bus, pub = make(tmp_path, r)
    await pub.start()
    r.fail, r.apply_before_failing = Down("reset mid-pipeline"), 4
    ids = emit(bus, 25)
    await until(lambda: not pub.stats.redis_up)
    r.fail = None
    assert await pub.flush()
    assert first_copies(r.ids()) == ids
    await pub.stop()


@pytest.mark.parametrize("inflight_succeeds", [True, False])
async def test_full_memory_spills_with_the_batch_in_flight(tmp_path: Path,
                                                           inflight_succeeds: bool) -> None:
    r = FakeRedis()
    r.gate = asyncio.Event()
    bus, pub = make(tmp_path, r, buffer_size=8, batch_size=5)
    await pub.start()
    ids = emit(bus, 5)
    await r.entered.wait()  # a batch of 5 is in flight, held at the gate
    ids += emit(bus, 20)  # the deque (8) overflows twice: 5 + 9 + 9 spooled, 2 left in memory
    assert pub.spool.pending == 23 and pub.pending == 25 and pub.stats.dropped == 0
    if not inflight_succeeds:
        r.fail = Down("gone")
    r.gate.set()
    if not inflight_succeeds:
        await until(lambda: not pub.stats.redis_up)
        r.fail = None
    assert await pub.flush()
    assert r.ids() == ids  # exactly once: the spooled copy of a sent batch is skipped
    await pub.stop()


async def test_full_memory_while_down_never_drops(tmp_path: Path) -> None:
    r = FakeRedis()
    r.fail = Down("refused")
    bus, pub = make(tmp_path, r, buffer_size=4)
    ids = emit(bus, 50)  # before start(): nothing drains, the deque spills
    assert pub.stats.dropped == 0 and pub.pending == 50
    await pub.start()
    await until(lambda: pub.spool.pending == 50)
    r.fail = None
    assert await pub.flush()
    assert r.ids() == ids
    await pub.stop()


async def test_unserialisable_events_are_counted_and_the_rest_go(tmp_path: Path) -> None:
    r = FakeRedis()
    bus, pub = make(tmp_path, r)
    await pub.start()
    loop: dict[str, Any] = {}
    loop["self"] = loop
    a = bus.emit("x", {"ok": 1}).id
    bus.emit("x", loop)
    b = bus.emit("x", {"ok": 2}).id
    assert await pub.flush()
    assert r.ids() == [a, b] and pub.stats.dropped == 1
    await pub.stop()


async def test_stop_spools_what_redis_did_not_take_and_the_next_run_sends_it_first(
        tmp_path: Path) -> None:
    r = FakeRedis()
    r.gate = asyncio.Event()  # Redis hangs
    bus, pub = make(tmp_path, r)
    await pub.start()
    ids = emit(bus, 40)
    await r.entered.wait()
    await pub.stop(timeout=0.05)
    ids += emit(bus, 2)  # after stop: straight to the spool
    leftover = Spool(tmp_path / "ev.spool")
    assert [e.id for e in leftover.read(100).events()] == ids
    leftover.close()
    r2 = FakeRedis()
    bus2, pub2 = make(tmp_path, r2)
    ids2 = emit(bus2, 3)
    await pub2.start()
    assert await pub2.flush()
    assert r2.ids() == ids + ids2
    await pub2.stop()


async def test_make_bus_inproc_has_no_publisher() -> None:
    bus, pub = make_bus(EventsConfig(), "n1", lambda: 5.0)
    assert pub is None
    ev = bus.emit("x", {})
    assert (ev.node, ev.ts, ev.seq) == ("n1", 5.0, 1)


async def test_make_bus_redis_subscribes_a_publisher(tmp_path: Path) -> None:
    cfg = EventsConfig(bus="redis://127.0.0.1:1/0", stream="acd:ev/x", maxlen=77)
    bus, pub = make_bus(cfg, "n1", time.time, spool_dir=tmp_path)
    assert pub is not None and pub.maxlen == 77 and pub.stream == "acd:ev/x"
    assert pub.spool.path == spool_path("acd:ev/x", tmp_path) == tmp_path / "events-acd_ev_x.spool"
    bus.emit("x", {})
    assert pub.pending == 1
    await pub.redis.aclose()


async def test_collector_exports_the_counters(tmp_path: Path) -> None:
    r = FakeRedis()
    bus, pub = make(tmp_path, r)
    reg = CollectorRegistry()
    reg.register(PublisherCollector(pub))
    emit(bus, 3)
    assert reg.get_sample_value("acd_events_pending") == 3
    await pub.start()
    assert await pub.flush()
    assert reg.get_sample_value("acd_events_stream_published_total") == 3
    assert reg.get_sample_value("acd_events_dropped_total") == 0
    assert reg.get_sample_value("acd_events_stream_up") == 1
    await pub.stop()


def test_seen_ids_is_bounded_and_forgets_the_oldest() -> None:
    s = SeenIds(3)
    assert [s.add(x) for x in "abca"] == [True, True, True, False]
    s.add("d")
    assert "a" not in s and "d" in s and len(s) == 3


def test_offer_is_synchronous_and_bounded() -> None:
    pub = RedisStreamPublisher(FakeRedis(), "s", "/nonexistent/never-touched.spool",  # type: ignore[arg-type]
                               buffer_size=100)
    bus = EventBus("n", time.time)
    pub.attach(bus)
    emit(bus, 100)  # no loop running, no file touched while the deque has room
    assert pub.pending == 100 and not Path("/nonexistent").exists()


def test_event_json_is_versioned_and_complete() -> None:
    ev = EventBus("n", lambda: 1.5).emit("call.ended", {"a": 1}, call_id="c")
    d = json.loads(ev.to_json())
    assert set(d) == {"type", "version", "id", "seq", "ts", "node", "call_id", "data"}
    assert Event.from_dict(d) == ev and d["version"] == 1


async def test_a_crash_during_replay_loses_nothing(tmp_path: Path) -> None:
    r = FakeRedis()
    r.fail = Down("refused")
    bus, pub = make(tmp_path, r)
    await pub.start()
    ids = emit(bus, 45)
    await until(lambda: pub.spool.pending == 45)
    r.hold_after = 2
    r.fail = None
    await until(lambda: r.gate is not None)  # two replay batches of 10 are in, a third waits
    assert len(r.stream) == 20
    assert pub._task is not None
    pub._task.cancel()
    pub.spool.close()  # the process is gone: its lock with it
    r2 = FakeRedis()
    r2.stream = list(r.stream)
    _, pub2 = make(tmp_path, r2)
    await pub2.start()
    assert await pub2.flush()
    await pub2.stop()
    assert first_copies(r2.ids()) == ids
    assert len(r2.stream) - len(ids) <= pub.batch_size  # at most the batch in flight again


async def test_a_spool_count_out_of_step_does_not_spin(tmp_path: Path) -> None:
    r = FakeRedis()
    bus, pub = make(tmp_path, r)
    pub.spool.open()
    pub.spool.pending = 5  # nothing behind it in the file
    await pub.start()
    ids = emit(bus, 3)
    assert await pub.flush(2)
    assert r.ids() == ids
    await pub.stop()
