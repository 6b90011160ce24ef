"""RTP media runtime capacity: (a) concurrent prompt streams with p99 inter-packet jitter
under 5 ms, (b) concurrent bridged calls relayed with no loss and p99 latency under 5 ms,
with the engine's CPU time per packet.

The engine (acd.runtime.media.MediaEngine on uvloop when installed) runs in this process,
pinned to CPU 0 when there are two; the far ends run in a child process pinned to CPU 1.
Arrival times are the kernel's receive timestamps (SO_TIMESTAMPNS), so how busy the child is
does not colour the measurement. For (a) one child socket receives every stream and sorts
it by SSRC; jitter is |inter-arrival - 20 ms| between consecutive packets of a stream. For
(b) the child plays both parties of every call from one socket, each of the 2N streams at
50 packets/s with its own phase, and stamps stream number and send time (CLOCK_REALTIME, as
the kernel timestamps are) into the payload in an alphabet that survives PCMU <-> PCMA
transcoding; latency is receive timestamp - send stamp, so it includes the two kernel
loopback hops (tens of microseconds).

    python -m bench.rtp                 # full ramp, a few minutes
    python -m bench.rtp --smoke         # seconds; CI keeps the benchmark working
    python -m bench.rtp --mode bridge --steps 500,1000 --transcode
    python -m bench.rtp --mode bridge --steps 500,1000 --record
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import itertools
import multiprocessing as mp
import os
import resource
import socket
import struct
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from acd.clock import SystemClock
from acd.runtime.media import MediaEngine
from acd.runtime.rtppoll import EpollReaders
from bench.common import machine_reference

try:
    from acd.runtime._fastrtp import counters as native_counters
except ImportError:  # not built: the engine serves in Python
    native_counters = None
from media.g711 import Codec, alaw_to_ulaw, ulaw_to_alaw
from media.prompt import Prompt

LO = "127.0.0.1"
PORTS = (20000, 39999)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux asm-generic value
_TS = struct.Struct("@qq")
_HDR = struct.Struct("!BBHII")
TWO_CPUS = (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity")


def pin(cpu: int) -> None:
    if TWO_CPUS:
        os.sched_setaffinity(0, {cpu})
    if cpu == 1 and os.sched_getscheduler(0) == os.SCHED_FIFO:
        # A far end busy near 100% of its CPU under SCHED_FIFO would exhaust the real-time
        # budget the kernel shares between CPUs (sched_rt_runtime_us) and get the engine
        # throttled for milliseconds every second: far ends run as ordinary tasks.
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        os.nice(-10)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def rx_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.bind((LO, 0))
    return s


def kernel_ns(anc: list[tuple[int, int, bytes]]) -> int:
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            sec, nsec = _TS.unpack_from(data)
            return int(sec * 1_000_000_000 + nsec)
    return time.time_ns()


# -- stamps that survive transcoding ----------------------------------------------------------
def _alphabet() -> tuple[bytes, bytes]:
    """16 byte values x such that x, ulaw_to_alaw(x) and alaw_to_ulaw(x) of different x never
    coincide: a hex digit encoded as x is still readable after either translation."""
    u2a, a2u = ulaw_to_alaw(bytes(range(256))), alaw_to_ulaw(bytes(range(256)))
    owner: dict[int, int] = {}
    chosen: list[int] = []
    for x in range(256):
        images = {x, u2a[x], a2u[x]}
        if any(owner.get(v, len(chosen)) != len(chosen) for v in images):
            continue
        for v in images:
            owner[v] = len(chosen)
        chosen.append(x)
        if len(chosen) == 16:
            break
    hexd = b"0123456789abcdef"
    dec = bytearray(b"z" * 256)
    for v, n in owner.items():
        dec[v] = hexd[n]
    return bytes.maketrans(hexd, bytes(chosen)), bytes(dec)


ENC, DEC = _alphabet()
STAMP = 26  # hex digits: 16-bit stream, 88 bits of nanoseconds


def stamp(stream: int, ns: int) -> bytes:
    return format((stream << 88) | ns, "026x").encode().translate(ENC)


def unstamp(payload: bytes) -> tuple[int, int] | None:
    try:
        v = int(payload[:STAMP].translate(DEC), 16)
    except ValueError:
        return None
    return v >> 88, v & ((1 << 88) - 1)


# -- (a) prompt streams -----------------------------------------------------------------------
def prompt_receiver(conn: Connection, seconds: float, warmup: float) -> None:
    pin(1)
    sock = rx_socket()
    conn.send(sock.getsockname())
    arrivals: dict[int, list[tuple[int, int]]] = defaultdict(list)
    sock.settimeout(5.0)
    try:
        data, anc, _, _ = sock.recvmsg(2048, 64)
    except TimeoutError:
        conn.send({"error": "no packets"})
        return
    first = kernel_ns(anc)
    start, end = first + int(warmup * 1e9), first + int((warmup + seconds) * 1e9)
    sock.settimeout(0.5)
    while True:
        try:
            data, anc, _, _ = sock.recvmsg(2048, 64)
        except TimeoutError:
            break
        t = kernel_ns(anc)
        if t > end:
            break
        if t >= start:
            _, _, seq, _, ssrc = _HDR.unpack_from(data)
            arrivals[ssrc].append((seq, t))
    jitter: list[float] = []
    lost = received = 0
    for pkts in arrivals.values():
        received += len(pkts)
        for (s0, t0), (s1, t1) in itertools.pairwise(pkts):
            gap = (s1 - s0) & 0xFFFF
            if gap == 1:
                jitter.append(abs((t1 - t0) / 1e6 - 20.0))
            elif gap < 1000:
                lost += gap - 1
    conn.send({"streams": len(arrivals), "received": received, "lost": lost,
               "p50": pct(jitter, 50), "p99": pct(jitter, 99), "p999": pct(jitter, 99.9),
               "max": max(jitter, default=float("nan"))})


@dataclass
class Result:
    n: int
    passed: bool
    line: str


def settle_gc() -> None:
    """What the daemon does once started: long-lived objects out of the collector's way,
    and young-generation collections rare enough not to show in per-packet costs."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 50)


def engine_sys() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def engine_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run_prompts(n: int, seconds: float, warmup: float) -> Result:
    loop = asyncio.get_running_loop()
    parent, child = mp.Pipe()
    proc = mp.Process(target=prompt_receiver, args=(child, seconds, warmup), daemon=True)
    proc.start()
    dest = parent.recv()
    eng = MediaEngine(loop, LO, PORTS, SystemClock(), rtcp_interval=5.0)
    clip = Prompt(bytes(range(0, 256, 2)) * 250, "bench")  # 4 s, looped
    eps = [eng.allocate() for _ in range(n)]
    for ep in eps:
        ep.configure(dest, Codec.PCMU, 0, 101, "sendrecv")
    settle_gc()
    for ep in eps:
        ep.play(clip, loop=True)
    await asyncio.sleep(0.2)
    cpu0, sent0 = engine_cpu(), sum(ep.packets_out for ep in eps)
    await asyncio.sleep(warmup + seconds)
    cpu, sent = engine_cpu() - cpu0, sum(ep.packets_out for ep in eps) - sent0
    stats = eng.stats()
    eng.close()
    gc.unfreeze()
    res = await loop.run_in_executor(None, parent.recv)
    proc.join(5)
    if "error" in res:
        return Result(n, False, f"{n:5d} streams: {res['error']}")
    ok = res["p99"] < 5.0 and res["lost"] == 0 and res["streams"] == n
    line = (f"{n:5d} streams  {res['received'] / seconds:8.0f} pkt/s  jitter p50 "
            f"{res['p50']:.2f} p99 {res['p99']:.2f} p99.9 {res['p999']:.2f} max "
            f"{res['max']:.2f} ms  lost {res['lost']}  CPU {100 * cpu / (warmup + seconds):3.0f}%"
            f"  {1e6 * cpu / max(sent, 1):.2f} us/pkt  late ticks {stats['late_ticks']}"
            f"/{stats['ticks']}  {'ok' if ok else 'FAIL'}")
    return Result(n, ok, line)


# -- (b) bridged calls ------------------------------------------------------------------------
def udp_drops(ports: set[int]) -> int:
    """Datagrams the kernel dropped on our sockets for want of buffer (/proc/net/udp)."""
    total = 0
    try:
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                fields = line.split()
                if int(fields[1].split(":")[1], 16) in ports:
                    total += int(fields[-1])
    except OSError:
        return -1
    return total


def call_generator(conn: Connection, seconds: float, warmup: float) -> None:
    """Both parties of every call. Measured calls send from (and so, by symmetric RTP, are
    answered to) `meas`, whose every packet is read and timed; the others send from `bulk`,
    which is never read (its overflow is the kernel's business): one Python process cannot
    also receive 100,000 packets/s while sending as many on time."""
    pin(1)
    meas = rx_socket()
    meas.setblocking(False)
    bulk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bulk.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    bulk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    bulk.bind((LO, 0))
    bulk.setblocking(False)
    conn.send((meas.getsockname(), bulk.getsockname()))
    calls: list[tuple[int, int, int, bool]] = conn.recv()  # (a_port, b_port, b_pt, measured)
    n = 2 * len(calls)
    # stream 2i: caller -> A_i (PCMU); stream 2i+1: agent -> B_i (its codec)
    dests = [(LO, a if d == 0 else b) for a, b, _, _ in calls for d in (0, 1)]
    pts = [0 if d == 0 else c for _, _, c, _ in calls for d in (0, 1)]
    socks = [meas if m else bulk for _, _, _, m in calls for _ in (0, 1)]
    ssrcs = [0x10000 + s for s in range(n)]
    seqs = [0] * n
    fill = b"\xff" * (160 - STAMP)
    sent_measured = 0
    got = 0
    latency: list[float] = []
    lag: list[float] = []
    corrupt = 0
    t0 = time.monotonic() + 0.05
    measure_from = time.time_ns() + int((0.05 + warmup) * 1e9)
    stop_at = t0 + warmup + seconds
    idx, cycle = 0, 0
    phase = [0.020 * s / n for s in range(n)]
    next_t = t0

    def drain() -> None:
        nonlocal corrupt, got
        while True:
            try:
                data, anc, _, _ = meas.recvmsg(2048, 64)
            except BlockingIOError:
                return
            st = unstamp(data[12:])
            if st is None or st[0] >= n:
                corrupt += 1
                continue
            got += 1
            if st[1] >= measure_from:
                latency.append((kernel_ns(anc) - st[1]) / 1e6)

    while True:
        now = time.monotonic()
        if now >= stop_at:
            break
        if next_t <= now:
            lag.append(now - next_t)
        while next_t <= now and next_t < stop_at:
            s = idx
            seq = seqs[s]
            sock = socks[s]
            pkt = (_HDR.pack(0x80, pts[s], seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrcs[s])
                   + stamp(s, time.time_ns()) + fill)
            try:
                sock.sendto(pkt, dests[s])
                if sock is meas:
                    sent_measured += 1
            except BlockingIOError:
                pass
            seqs[s] = seq + 1
            idx += 1
            if idx == n:
                idx, cycle = 0, cycle + 1
            next_t = t0 + 0.020 * cycle + phase[idx]
        drain()
        wait = next_t - time.monotonic()
        if wait > 0.0003:
            time.sleep(min(wait, 0.001))
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        drain()
        time.sleep(0.001)
    conn.send({"sent": sum(seqs), "measured": sent_measured, "lost": sent_measured - got,
               "corrupt": corrupt, "p50": pct(latency, 50), "p99": pct(latency, 99),
               "p999": pct(latency, 99.9), "max": max(latency, default=float("nan")),
               "lag99": 1000 * pct(lag, 99)})


async def run_bridge(n: int, seconds: float, warmup: float, transcode: bool,
                     recv_batch: int, sample: float, readers: str, record: bool = False) -> Result:
    loop = asyncio.get_running_loop()
    parent, child = mp.Pipe()
    proc = mp.Process(target=call_generator, args=(child, seconds, warmup), daemon=True)
    proc.start()
    meas, bulk = parent.recv()
    eng = MediaEngine(loop, LO, PORTS, SystemClock(), rtcp_interval=5.0,
                      recv_batch=recv_batch, readers=readers)
    calls = []
    eps = []
    recs = []
    rec_dir = tempfile.TemporaryDirectory(prefix="bench-rtp-rec-")
    every = max(1, round(1 / sample))
    for i in range(n):
        a, b = eng.allocate(), eng.allocate()
        codec = Codec.PCMA if transcode and i % 2 else Codec.PCMU
        measured = i % every == 0
        a.configure(meas if measured else bulk, Codec.PCMU, 0, 101, "sendrecv")
        b.configure(meas if measured else bulk, codec, int(codec), 101, "sendrecv")
        a.bridge(b)
        if record:  # stereo WAV per call, as a hotline with `record: always` makes
            recs.append(eng.record(os.path.join(rec_dir.name, f"{i}.wav"), a, b))
        calls.append((a.local_port, b.local_port, int(codec), measured))
        eps += [a, b]
    ports = {ep.local_port for ep in eps}
    settle_gc()
    drops0, cpu0, sys0 = udp_drops(ports), engine_cpu(), engine_sys()
    parent.send(calls)
    res = await loop.run_in_executor(None, parent.recv)
    cpu, drops = engine_cpu() - cpu0, udp_drops(ports) - drops0
    kernel = engine_sys() - sys0
    native = native_counters() if native_counters and getattr(eng.readers, 'native', False) else None
    relayed = sum(ep.packets_out for ep in eps)
    received = sum(ep.packets_in for ep in eps)
    recorded = sum(r.duration for r in recs)
    failed_recs = sum(r.failed is not None for r in recs)
    for r in recs:
        r.stop()
    eng.close()
    rec_dir.cleanup()
    gc.unfreeze()
    proc.join(5)
    span = warmup + seconds + 0.35
    engine_loss = res["sent"] - received
    ok = (engine_loss == 0 and drops == 0 and res["lost"] == 0 and res["corrupt"] == 0
          and res["p99"] < 5.0 and failed_recs == 0)
    line = (f"{n:5d} calls  {res['sent'] / (warmup + seconds):7.0f} pkt/s in  latency p50 "
            f"{res['p50']:.2f} p99 {res['p99']:.2f} p99.9 {res['p999']:.2f} max "
            f"{res['max']:.2f} ms ({res['measured']} pkts timed)  lost: engine "
            f"{engine_loss} (kernel drops {drops}), timed {res['lost']}  relayed {relayed}"
            f"  CPU {100 * cpu / span:3.0f}% {1e6 * cpu / max(relayed, 1):.2f} us/pkt"
            f" ({1e6 * kernel / max(relayed, 1):.2f} in the kernel)"
            f"  far-end lag p99 {res['lag99']:.1f} ms"
            f"{'  (half transcoding)' if transcode else ''}"
            f"{f'  recorded {recorded:.0f} s, {failed_recs} failed' if record else ''}"
            f"  {'ok' if ok else 'FAIL'}"
            f"{f'  [C path {native}]' if native else ''}")
    return Result(n, ok, line)


async def run_readers(n: int, seconds: float, warmup: float, how: str) -> Result:
    """The socket-reading choice on its own: a bare relay (no engine) of n calls, with an
    add_reader callback draining until BlockingIOError, one reading one datagram per
    wake-up, a DatagramProtocol, or acd.runtime.rtppoll.EpollReaders (one datagram per
    socket and pass, wake-ups coalesced under load)."""
    loop = asyncio.get_running_loop()
    parent, child = mp.Pipe()
    proc = mp.Process(target=call_generator, args=(child, seconds, warmup), daemon=True)
    proc.start()
    meas, bulk = parent.recv()
    calls, socks = [], []
    epoll = EpollReaders(loop) if how == "epoll" else None

    def reader(sock: socket.socket, out: socket.socket, dest: Any, batch: int) -> None:
        for _ in range(batch):
            try:
                data = sock.recvfrom(2048)[0]
            except BlockingIOError:
                return
            out.sendto(data, dest)

    class Relay(asyncio.DatagramProtocol):
        def __init__(self, out: socket.socket, dest: Any) -> None:
            self.out, self.dest = out, dest

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.out.sendto(data, self.dest)

    for i in range(n):
        dest = meas if i % 4 == 0 else bulk
        pair = []
        for _ in (0, 1):
            sk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sk.bind((LO, 0))
            sk.setblocking(False)
            pair.append(sk)
        socks += pair
        calls.append((pair[0].getsockname()[1], pair[1].getsockname()[1], 0, i % 4 == 0))
        for sk, out in ((pair[0], pair[1]), (pair[1], pair[0])):
            if how == "protocol":
                await loop.create_datagram_endpoint(functools.partial(Relay, out, dest), sock=sk)
            elif epoll is not None:
                epoll.add(sk.fileno(), functools.partial(reader, sk, out, dest, 1))
            else:
                loop.add_reader(sk.fileno(), reader, sk, out, dest, 64 if how == "drain" else 1)
    settle_gc()
    cpu0 = engine_cpu()
    parent.send(calls)
    res = await loop.run_in_executor(None, parent.recv)
    cpu = engine_cpu() - cpu0
    proc.join(5)
    for sk in socks:
        if epoll is not None:
            epoll.remove(sk.fileno())
        elif how != "protocol":
            loop.remove_reader(sk.fileno())
        sk.close()
    if epoll is not None:
        epoll.close()
    us = 1e6 * cpu / max(res["sent"], 1)
    line = (f"{how:>8s}: {n} calls  {us:.2f} us/pkt  latency "
            f"p50 {res['p50']:.2f} p99 {res['p99']:.2f} ms  lost {res['lost']}")
    return Result(round(us * 100), True, line)


def run(coro: Coroutine[Any, Any, Result]) -> Result:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def ramp(name: str, steps: list[int], step: Callable[[int], Result]) -> int:
    best = 0
    print(f"-- {name}", flush=True)
    for n in steps:
        res = step(n)
        print(res.line, flush=True)
        if not res.passed:
            break
        best = n
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="a few seconds, to prove it works")
    ap.add_argument("--mode", choices=("prompts", "bridge", "both", "readers"), default="both",
                    help="readers: compare ways of reading sockets on a bare relay")
    ap.add_argument("--steps", help="comma-separated counts (streams or calls)")
    ap.add_argument("--seconds", type=float, default=5.0, help="measured seconds per step")
    ap.add_argument("--transcode", action="store_true", help="half the calls PCMU<->PCMA")
    ap.add_argument("--record", action="store_true",
                    help="record every call (stereo WAV, in a temporary directory)")
    ap.add_argument("--recv-batch", type=int, default=1,
                    help="datagrams read per socket wake-up (64: drain until EAGAIN)")
    ap.add_argument("--readers", choices=("auto", "loop"), default="auto",
                    help="loop: one add_reader per socket instead of the coalescing epoll")
    ap.add_argument("--sample", type=float, default=0.25,
                    help="share of calls whose packets the far end reads and times")
    ap.add_argument("--priority", choices=("normal", "fifo"), default="normal",
                    help="fifo: SCHED_FIFO for engine and far ends (root), so that other "
                         "work on a shared machine does not preempt them")
    args = ap.parse_args(argv)
    warmup = 1.0
    if args.smoke:
        args.seconds, warmup = 0.6, 0.3
    mp.set_start_method("fork" if sys.platform == "linux" else "spawn")
    pin(0)
    if args.priority == "fifo":
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))  # children inherit it
    uv = "uvloop" if "uvloop" in sys.modules or _has_uvloop() else "asyncio"
    print(f"engine on {uv}, {'pinned to CPU 0, far ends on CPU 1' if TWO_CPUS else 'unpinned'}"
          f", {args.priority} scheduling")
    print(machine_reference())
    summary = []
    if args.mode in ("prompts", "both"):
        steps = _steps(args.steps, [50, 200] if args.smoke else
                       [250, 500, 1000, 1500, 2000, 2500, 3000, 4000])
        best = ramp("prompt streams (jitter = |inter-arrival - 20 ms|)", steps,
                    lambda n: run(run_prompts(n, args.seconds, warmup)))
        summary.append(f"prompt streams with p99 jitter < 5 ms and no loss: {best}")
    if args.mode in ("bridge", "both"):
        steps = _steps(args.steps, [50, 200] if args.smoke else
                       [250, 500, 1000, 1250, 1500, 2000, 2500])
        best = ramp("bridged calls (2 streams each, 50 pkt/s per stream)", steps,
                    lambda n: run(run_bridge(n, args.seconds, warmup, args.transcode,
                                             args.recv_batch, args.sample, args.readers,
                                             record=args.record)))
        summary.append(f"bridged calls with 0 loss and p99 latency < 5 ms: {best}")
    if args.mode == "readers":
        n = int(args.steps or (200 if args.smoke else 1000))
        print(f"-- socket reading, bare relay of {n} calls (CPU per relayed packet)")
        costs: dict[str, list[float]] = defaultdict(list)
        for how in ("drain", "once", "protocol", "epoll") * (1 if args.smoke else 5):
            res = run(run_readers(n, args.seconds, warmup, how))
            costs[how].append(res.n / 100)
            print(res.line, flush=True)
        summary.append("median us/pkt: " + ", ".join(
            f"{how} {sorted(v)[len(v) // 2]:.2f}" for how, v in costs.items()))
    print("\n".join(summary))
    return 0


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _steps(text: str | None, default: list[int]) -> list[int]:
    return [int(x) for x in text.split(",")] if text else default


if __name__ == "__main__":
    sys.exit(main())
