"""What the benchmarks share: process CPU and memory from /proc, CPU pinning, SIPp's
statistics file, and a reference measurement of the machine itself."""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int) -> int:
    m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) if m else 0


def pinned(cpu: int) -> list[str]:
    """A taskset prefix pinning a command to `cpu`, when the machine has two CPUs."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


def sipp_stats(path: Path) -> dict[str, str]:
    """The last row of a SIPp -trace_stat file, by column name."""
    rows = [r.split(";") for r in path.read_text().splitlines() if r.strip()]
    return dict(zip(rows[0], rows[-1], strict=False)) if len(rows) >= 2 else {}


def loop_name() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio default loop"
    return "uvloop"


def machine_reference() -> str:
    """Two costs every number here scales with, measured now, so that results from machines
    of different speed can be compared: the interpreter (a fixed pure-Python loop) and the
    kernel (one loopback UDP send + receive of an RTP-sized datagram, the system calls the
    SIP and media paths are made of). bench.distributor's unchanged code measured 59-70k
    decisions/s on one 2-core VM of ours and 32k on another."""
    d = {i: i for i in range(1000)}
    best = float("inf")
    for _ in range(20):
        t0 = time.perf_counter()
        sum(d[i] for i in range(1000))
        best = min(best, time.perf_counter() - t0)
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        b.bind(("127.0.0.1", 0))
        dest, data, n = b.getsockname(), b"\x80" * 172, 20_000
        t0 = time.perf_counter()
        for _ in range(n):
            a.sendto(data, dest)
            b.recv(2048)
        pair = (time.perf_counter() - t0) / n
    finally:
        a.close()
        b.close()
    return (f"machine reference: Python loop {best * 1e6:.1f} us (1,000 dict lookups summed), "
            f"loopback UDP send+recv {pair * 1e6:.2f} us")
