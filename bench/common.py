"""What the benchmarks share: process CPU and memory from /proc, CPU pinning, and SIPp's
statistics file."""

from __future__ import annotations

import os
import re
import shutil
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
