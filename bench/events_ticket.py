"""Tickets from engine events through Redis Streams: how many events per second get from
`EventBus.emit` to committed CDRs and tickets, and how far behind (publish -> written,
p50/p99/max; and publish of call.started -> its ticket committed) the CRM is while the engine
runs 100 calls/s of about 15 events each.

The publishing side is the daemon's (EventBus + RedisStreamPublisher on this process's loop).
The consumer runs in a second process (`--consume`), as the daemon's CRM consumer would: a
`BatchRedisConsumer` feeding `CrmService` on the store (PostgreSQL by default, in a schema of
its own that is dropped afterwards; or `--store URL`). Each call is an inbound queue call as
the engine publishes it: call.started, the engine's answer, IVR, queue entry, an offer that
rings out, a second that is answered, connect, agent occupancy changes, call.ended and
recording.ready; every fifth caller hangs up in the queue instead. A call's events are spread
over `--call-seconds` (real calls last minutes; only the rate matters here).

    python -m bench.events_ticket                       # 1,000-call burst, 100 calls/s for 20 s
    python -m bench.events_ticket --store sqlite+aiosqlite:///var/bench-crm.sqlite3
    python -m bench.events_ticket --per-event            # one transaction per event instead
    python -m bench.events_ticket --smoke                # a few seconds; keeps it working

`stage_ticket` is the `ticket` stage for bench/events.py's STAGES (one `handle` per event, on
the store named by ACD_BENCH_CRM_STORE, default a SQLite file in a temp dir).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from acd.adapters.bus import RedisStreamPublisher
from acd.adapters.store import Store
from acd.crm import CrmService, redis_consumer
from acd.events import Event, EventBus
from bench.common import loop_name

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_STORE = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"

# (offset in a 100 s call, type, data) of an answered inbound queue call; "{r}" is the ref
_ANSWERED: list[tuple[float, str, dict[str, Any]]] = [
    (0, "call.started", {"direction": "inbound", "to": "19001000", "hotline": "19001000",
                         "trunk": "carrier", "account": None}),
    (0.5, "call.answered", {"by": "engine"}),
    (0.6, "ivr.entered", {"node": "menu"}),
    (3, "ivr.digit", {"digit": "1"}),
    (3.1, "ivr.exit", {"to": "queue:sales"}),
    (3.2, "queue.entered", {"queue": "sales", "position": 1, "priority": 0}),
    (3.3, "queue.offered", {"queue": "sales", "agent": "1001", "offer_id": 1}),
    (3.3, "agent.state_changed", {"agent": "1001", "layer": "occupancy", "old": "idle",
                                  "new": "reserved", "reason": "offer"}),
    (18.3, "queue.ring_noanswer", {"queue": "sales", "agent": "1001", "offer_id": 1,
                                   "reason": "no_answer", "ring_time": 15.0}),
    (18.4, "queue.offered", {"queue": "sales", "agent": "1002", "offer_id": 2}),
    (21.0, "queue.connected", {"queue": "sales", "agent": "1002", "offer_id": 2,
                               "hold_time": 17.8}),
    (21.0, "call.connected", {"party": "1002", "trunk": None, "agent": "1002",
                              "queue": "sales"}),
    (21.0, "agent.state_changed", {"agent": "1002", "layer": "occupancy", "old": "ringing",
                                   "new": "in_call", "reason": "answered"}),
    (81.0, "call.ended", {"reason": "caller hung up", "hangup_by": "caller", "status": None,
                          "direction": "inbound", "to": "19001000", "hotline": "19001000",
                          "account": None, "trunk": "carrier", "answered": True,
                          "connected_to": "1002", "queue": "sales", "agent": "1002",
                          "duration": 81.0, "talk_time": 60.0, "ring_time": 21.0}),
    (81.2, "recording.ready", {"duration": 60.0, "size": 960044, "channels": 2,
                               "format": "stereo", "hotline": "19001000", "queue": "sales"}),
]
_ABANDONED: list[tuple[float, str, dict[str, Any]]] = [
    *_ANSWERED[:8],
    (40, "queue.abandoned", {"queue": "sales", "wait": 36.8, "position": 2}),
    (40, "call.ended", {"reason": "caller hung up", "hangup_by": "caller", "status": None,
                        "direction": "inbound", "to": "19001000", "hotline": "19001000",
                        "account": None, "trunk": "carrier", "answered": True,
                        "connected_to": None, "queue": "sales", "agent": None,
                        "duration": 40.0, "talk_time": 0.0, "ring_time": 0.0}),
]
EVENTS_PER_CALL = (4 * len(_ANSWERED) + len(_ABANDONED)) / 5


def call_plan(i: int, start: float, call_seconds: float, rng: random.Random
              ) -> list[tuple[float, str, dict[str, Any], str]]:
    """(due time, type, data, call ref) of call number ``i`` starting at ``start``."""
    ref = f"{uuid.uuid4().hex[:20]}{i:012d}"
    phone = f"+8490{rng.randrange(2000):07d}"  # callers come back: contacts get reused
    script = _ABANDONED if i % 5 == 4 else _ANSWERED
    out = []
    for offset, type_, data in script:
        d = dict(data)
        if type_.startswith("queue."):
            d.update(caller=ref, hotline="19001000")
            d["from"] = phone
        elif type_.startswith("call."):
            d["from"] = phone
            d["sip_call_id"] = f"{ref}@bench"
        if type_ == "recording.ready":
            d["path"] = f"/var/rec/{ref}.wav"
        out.append((start + offset / 100 * call_seconds, type_, d, ref))
    return out


# --- the consumer process ------------------------------------------------------------------

async def consume(url: str, stream: str, store_url: str, expect: int, timeout: float,
                  batch: bool) -> dict[str, Any]:
    store = await Store.open(store_url)
    crm = CrmService(store)
    before = await _counts(store)
    lags: list[float] = []
    ticket_lags: list[float] = []
    last = 0.0
    done = asyncio.Event()
    handle_many = crm.handle_many

    async def timed(events: Sequence[Event]) -> int:
        nonlocal last
        n = await handle_many(events)
        last = time.time()
        for ev in events:
            lags.append(last - ev.ts)
            if ev.type == "call.started":
                ticket_lags.append(last - ev.ts)
        if len(lags) >= expect:
            done.set()
        return n

    crm.handle_many = timed  # type: ignore[method-assign]
    c = redis_consumer(crm, url, stream, group="crm", consumer="bench", batch=batch,
                       count=500, block=1.0, start_id="0")
    await c.ensure_group()
    print("READY", flush=True)
    try:
        await c.start()
        with contextlib.suppress(TimeoutError):  # reported as received < expected
            await asyncio.wait_for(done.wait(), timeout)
    finally:
        await c.stop()
        await c.redis.aclose()
    counts = {k: n - before[k] for k, n in (await _counts(store)).items()}  # this run's rows
    await store.close()
    lags.sort()
    ticket_lags.sort()
    return {"received": len(lags), "last": last, "p50": _q(lags, 0.5), "p99": _q(lags, 0.99),
            "max": lags[-1] if lags else float("nan"), "t50": _q(ticket_lags, 0.5),
            "t99": _q(ticket_lags, 0.99), "tmax": ticket_lags[-1] if ticket_lags else 0.0,
            "batches": getattr(c, "batches", c.stats.handled), "stats": vars(crm.stats),
            **counts}


async def _counts(store: Store) -> dict[str, int]:
    import sqlalchemy as sa

    from acd.adapters.store import schema

    out = {}
    async with store.engine.connect() as conn:
        for t in (schema.cdrs, schema.tickets, schema.contacts, schema.recordings):
            out[t.name] = int((await conn.execute(sa.select(sa.func.count()).select_from(t)))
                              .scalar_one())
    return out


def _q(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


# --- the publishing side -------------------------------------------------------------------

async def _emit(bus: EventBus, calls: int, rate: float | None, call_seconds: float,
                pub: RedisStreamPublisher) -> int:
    """Start ``calls`` calls (``rate`` per second, or all at once) and emit their events
    when due; how many events were emitted."""
    rng = random.Random(7)
    t0 = time.monotonic()
    heap: list[tuple[float, int, str, dict[str, Any], str]] = []
    n = seq = 0
    started = 0
    while started < calls or heap:
        now = time.monotonic() - t0
        due_calls = calls if rate is None else min(calls, int(now * rate) + 1)
        while started < due_calls:
            begin = now if rate is None else started / rate
            for when, type_, data, ref in call_plan(started, begin,
                                                    0.0 if rate is None else call_seconds,
                                                    rng):
                seq += 1
                heapq.heappush(heap, (when, seq, type_, data, ref))
            started += 1
        while heap and (rate is None or heap[0][0] <= now):
            _, _, type_, data, ref = heapq.heappop(heap)
            bus.emit(type_, {"call": ref, **data} if type_.startswith("call.")
                     or type_.startswith("recording.") else data,
                     call_id=None if type_.startswith("agent.") else ref)
            n += 1
            if rate is None and n % 500 == 0:
                await asyncio.sleep(0)
                while pub.pending > pub.buffer_size // 2:
                    await asyncio.sleep(0.0005)
        await asyncio.sleep(0.002)
    return n


async def measure(url: str, store_url: str, calls: int, rate: float | None,
                  call_seconds: float, batch: bool, timeout: float) -> dict[str, Any]:
    stream = f"bench:crm:{uuid.uuid4().hex}"
    expect = sum(len(_ABANDONED if i % 5 == 4 else _ANSWERED) for i in range(calls))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.events_ticket", "--consume", stream, "--redis", url,
         "--store", store_url, "--expect", str(expect), "--timeout", str(timeout)]
        + ([] if batch else ["--per-event"]), cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready = await asyncio.to_thread(proc.stdout.readline)
        if ready.strip() != "READY":
            raise RuntimeError(f"consumer did not start: {ready!r}")
        with tempfile.TemporaryDirectory() as tmp:
            bus = EventBus("bench", time.time)
            pub = RedisStreamPublisher.from_url(url, stream, Path(tmp) / "ev.spool",
                                                maxlen=max(100_000, expect))
            pub.attach(bus)
            await pub.start()
            try:
                t0 = time.time()
                sent = await _emit(bus, calls, rate, call_seconds, pub)
                if not await pub.flush(timeout):
                    raise RuntimeError(f"publisher still has {pub.pending} events")
                out, _ = await asyncio.to_thread(proc.communicate, None, timeout + 30)
            finally:
                await pub.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        cleanup = aioredis.Redis.from_url(url)
        await cleanup.delete(stream)
        await cleanup.aclose()
    res: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    res.update(sent=sent, calls=calls, e2e_rate=res["received"] / max(res["last"] - t0, 1e-9))
    return res


@contextlib.asynccontextmanager
async def _fresh_store(url: str | None) -> Any:
    """The store URL to use: ``url``, or a PostgreSQL schema of its own, dropped after."""
    if url:
        yield url
        return
    import asyncpg

    schema = f"bench_crm_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        yield f"{PG_STORE}?schema={schema}"
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


async def run(a: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for calls, rate in ((a.burst_calls, None), (int(a.rate * a.seconds), a.rate)):
        async with _fresh_store(a.store) as store_url:
            results.append(await measure(a.redis, store_url, calls, rate, a.call_seconds,
                                         not a.per_event, a.timeout))
    return results


# --- the bench/events.py stage -------------------------------------------------------------

Stage = Callable[[Event], Awaitable[None]]


async def stage_ticket() -> Stage:
    """bench/events.py's `ticket` stage: `CrmService.handle` on each event."""
    url = os.environ.get("ACD_BENCH_CRM_STORE") or \
        f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='bench-crm-')}/crm.sqlite3"
    crm = CrmService(await Store.open(url))
    return crm.handle


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--store", default=None, help="store URL (default: a fresh PG schema)")
    ap.add_argument("--burst-calls", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=100.0, help="calls/s in the lag run")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--call-seconds", type=float, default=5.0)
    ap.add_argument("--per-event", action="store_true", help="one transaction per event")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--consume", metavar="STREAM", help=argparse.SUPPRESS)
    ap.add_argument("--expect", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=120.0)
    a = ap.parse_args(argv)
    if a.consume:
        res = _run(consume(a.redis, a.consume, a.store, a.expect, a.timeout, not a.per_event))
        print(json.dumps(res), flush=True)
        return 0
    if a.smoke:
        a.burst_calls, a.rate, a.seconds, a.call_seconds, a.timeout = 100, 50.0, 2.0, 1.0, 60.0
    mode = "one transaction per event" if a.per_event else "one transaction per read batch"
    print(f"tickets via Redis Streams ({a.redis}, {loop_name()}, {mode}, "
          f"{EVENTS_PER_CALL:.0f} events/call)")
    burst, steady = _run(run(a))
    ok = True
    for name, r in (("burst", burst), ("steady", steady)):
        what = (f"{r['calls']:,} calls at once" if name == "burst" else
                f"{a.rate:,.0f} calls/s for {a.seconds:g} s")
        rate = (f"{r['e2e_rate']:,.0f} events/s ({r['e2e_rate'] / EVENTS_PER_CALL:,.0f} "
                f"calls/s) end to end" if name == "burst" else "as published")
        print(f"{name}: {what}: {r['received']:,}/{r['sent']:,} events written, {rate}, "
              f"in {r['batches']:,} transactions; lag publish -> written p50 "
              f"{r['p50'] * 1e3:.1f} ms, p99 {r['p99'] * 1e3:.1f} ms, max "
              f"{r['max'] * 1e3:.1f} ms; call.started -> ticket p50 {r['t50'] * 1e3:.1f} ms, "
              f"p99 {r['t99'] * 1e3:.1f} ms; {r['tickets']:,} tickets, {r['cdrs']:,} CDRs, "
              f"{r['contacts']:,} contacts, {r['recordings']:,} recordings")
        ok = ok and r["received"] == r["sent"] and r["tickets"] == r["calls"] == r["cdrs"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
