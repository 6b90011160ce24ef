"""Event bus through Redis Streams: how many events per second get from `EventBus.emit` to a
consumer group reader, and how far behind the consumer is (publish -> handled, p50/p99/max)
while the bus publishes at a steady rate like 100 calls/s (about 1,500-2,000 events/s).

The publishing side is the daemon's: an EventBus with a RedisStreamPublisher on this
process's event loop (uvloop when installed). The consumer runs in a second process
(`--consume`), as the ticket service will, with a RedisStreamConsumer on the same Redis; lag is
its wall clock at the end of the handler minus the event's publish time (same host, same
clock). Each run uses a fresh stream and deletes it afterwards.

What the consumer does with each event is a *stage* (STAGES below): "none" only counts. The
ticket step plugs in by adding a stage that creates the ticket (the lag then reads "publish ->
ticket created") and running `--stage ticket`; `measure()` is the function to call.

    python -m bench.events                    # 50,000-event burst, 2,000 events/s for 20 s
    python -m bench.events --rate 1500 --seconds 60 --redis redis://10.0.0.5:6379/0
    python -m bench.events --smoke            # a few seconds; CI keeps the benchmark working
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from acd.adapters.bus import RedisStreamConsumer, RedisStreamPublisher
from acd.events import Event, EventBus
from bench.common import loop_name

ROOT = Path(__file__).resolve().parent.parent

Stage = Callable[[Event], Awaitable[None]]


async def _stage_none() -> Stage:
    async def handle(ev: Event) -> None:
        return None
    return handle


# name -> async factory of the per-event handler the consumer runs before it records the lag
STAGES: dict[str, Callable[[], Awaitable[Stage]]] = {"none": _stage_none}


def _add_ticket_stage() -> None:
    """The CRM stage (publish -> ticket created) lives in bench.events_ticket."""
    from bench.events_ticket import stage_ticket

    STAGES["ticket"] = stage_ticket


_add_ticket_stage()


@dataclass
class Report:
    sent: int
    received: int
    publish_rate: float  # events/s from the first emit to the last XADD acknowledged
    e2e_rate: float  # events/s from the first emit to the last one handled by the consumer
    lag_p50: float  # seconds, publish -> handled
    lag_p99: float
    lag_max: float
    cpu_us: float  # publisher process CPU per event (the daemon's share)
    spooled: int  # events that went through the spool (Redis too slow or away)
    dropped: int


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


# --- the consumer process ------------------------------------------------------------------

async def consume(url: str, stream: str, group: str, expect: int, stage: str,
                  timeout: float) -> dict[str, Any]:
    """Read `expect` events as group `group`, run the stage on each, and summarise."""
    work = await STAGES[stage]()
    lags: list[float] = []
    last = 0.0
    done = asyncio.Event()

    async def handler(ev: Event) -> None:
        nonlocal last
        await work(ev)
        last = time.time()
        lags.append(last - ev.ts)
        if len(lags) >= expect:
            done.set()

    c = RedisStreamConsumer.from_url(url, stream, group, "bench", handler, count=500,
                                     block=1.0, start_id="0")
    await c.ensure_group()
    print("READY", flush=True)
    try:
        await c.start()
        with contextlib.suppress(TimeoutError):  # reported as received < expected
            await asyncio.wait_for(done.wait(), timeout)
    finally:
        await c.stop()
        await c.redis.aclose()
    lags.sort()
    return {"received": len(lags), "last": last, "p50": _quantile(lags, 0.50),
            "p99": _quantile(lags, 0.99), "max": lags[-1] if lags else float("nan")}


# --- the publishing side -------------------------------------------------------------------

def _payload(i: int) -> dict[str, Any]:
    return {"call": f"c{i // 16}", "direction": "inbound", "from": "84912345678",
            "to": "19001000", "trunk": "demo-trunk", "hotline": "sales", "n": i}


async def _emit_burst(bus: EventBus, pub: RedisStreamPublisher, n: int) -> None:
    for i in range(n):
        bus.emit("call.started", _payload(i), call_id=f"c{i // 16}")
        if i % 500 == 499:
            # the call path yields to the loop now and then; held back while the publisher
            # has a deque's worth pending, so that this measures Redis, not the spool
            await asyncio.sleep(0)
            while pub.pending > pub.buffer_size // 2:
                await asyncio.sleep(0.0005)


async def _emit_steady(bus: EventBus, rate: float, seconds: float) -> int:
    start = time.monotonic()
    sent = 0
    total = int(rate * seconds)
    while sent < total:
        due = min(total, int((time.monotonic() - start) * rate))
        while sent < due:
            bus.emit("call.started", _payload(sent), call_id=f"c{sent // 16}")
            sent += 1
        await asyncio.sleep(0.002)
    return sent


async def measure(url: str, n: int, rate: float | None, seconds: float, stage: str = "none",
                  timeout: float = 60.0, **publisher_options: Any) -> Report:
    """One run: a consumer process on a fresh stream, then `n` events as fast as the loop
    goes (rate None) or `rate` events/s for `seconds`."""
    stream = f"bench:events:{uuid.uuid4().hex}"
    expect = n if rate is None else int(rate * seconds)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.events", "--consume", stream, "--redis", url,
         "--expect", str(expect), "--stage", stage, "--timeout", str(timeout)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready = await asyncio.to_thread(proc.stdout.readline)
        if ready.strip() != "READY":
            raise RuntimeError(f"consumer did not start: {ready!r}")
        with tempfile.TemporaryDirectory() as tmp:
            bus = EventBus("bench", time.time)
            pub = RedisStreamPublisher.from_url(url, stream, Path(tmp) / "ev.spool",
                                                maxlen=max(100_000, expect),
                                                **publisher_options)
            pub.attach(bus)
            await pub.start()
            try:
                cpu0, t0 = time.process_time(), time.time()
                if rate is None:
                    await _emit_burst(bus, pub, n)
                else:
                    await _emit_steady(bus, rate, seconds)
                if not await pub.flush(timeout):
                    raise RuntimeError(f"publisher still has {pub.pending} events")
                t_pub, cpu = time.time(), time.process_time() - cpu0
                out, _ = await asyncio.to_thread(proc.communicate, None, timeout + 10)
            finally:
                await pub.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        cleanup = aioredis.Redis.from_url(url)
        await cleanup.delete(stream)
        await cleanup.aclose()
    res = json.loads(out.strip().splitlines()[-1])
    return Report(sent=expect, received=res["received"], publish_rate=expect / (t_pub - t0),
                  e2e_rate=res["received"] / max(res["last"] - t0, 1e-9),
                  lag_p50=res["p50"], lag_p99=res["p99"], lag_max=res["max"],
                  cpu_us=cpu / expect * 1e6, spooled=pub.stats.spooled,
                  dropped=pub.stats.dropped)


async def emitter_cpu(rate: float, seconds: float) -> float:
    """CPU per event of emitting alone (EventBus.emit and this harness), to subtract."""
    bus = EventBus("bench", time.time)
    cpu0 = time.process_time()
    n = await _emit_steady(bus, rate, seconds)
    return (time.process_time() - cpu0) / n * 1e6


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--burst", type=int, default=50_000, help="events in the throughput run")
    ap.add_argument("--rate", type=float, default=2000.0, help="events/s in the lag run")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--stage", default="none", choices=sorted(STAGES))
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--consume", metavar="STREAM", help=argparse.SUPPRESS)
    ap.add_argument("--expect", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=60.0, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.consume:
        res = _run(consume(a.redis, a.consume, "bench", a.expect, a.stage, a.timeout))
        print(json.dumps(res), flush=True)
        return 0
    if a.smoke:
        a.burst, a.rate, a.seconds, a.timeout = 3000, 1000.0, 1.5, 20.0
    print(f"event bus via Redis Streams ({a.redis}, {loop_name()}, stage {a.stage!r})")
    burst = _run(measure(a.redis, a.burst, None, 0, a.stage, a.timeout))
    print(f"publish -> consume: {burst.received}/{burst.sent} events, "
          f"{burst.e2e_rate:,.0f} events/s end to end; publisher {burst.publish_rate:,.0f} "
          f"events/s at {burst.cpu_us:.1f} us CPU/event")
    steady = _run(measure(a.redis, 0, a.rate, a.seconds, a.stage, a.timeout))
    base = _run(emitter_cpu(a.rate, min(a.seconds, 3.0)))
    print(f"steady {a.rate:,.0f} events/s for {a.seconds:g} s: {steady.received}/{steady.sent} "
          f"received, lag p50 {steady.lag_p50 * 1e3:.2f} ms, lag p99 "
          f"{steady.lag_p99 * 1e3:.2f} ms, max {steady.lag_max * 1e3:.2f} ms; publisher "
          f"{steady.cpu_us - base:.1f} us CPU/event on the daemon's loop "
          f"({steady.cpu_us:.1f} with emitting, {base:.1f} without the publisher), "
          f"{(steady.cpu_us - base) * a.rate / 1e4:.1f}% of a core")
    for name, r in (("burst", burst), ("steady", steady)):
        if r.spooled or r.dropped:
            print(f"{name}: {r.spooled} events went through the spool, {r.dropped} dropped")
    ok = (burst.received == burst.sent and steady.received == steady.sent
          and burst.dropped == steady.dropped == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
