"""The ticket benchmark keeps working: bench/events_ticket.py in smoke mode, through the
shared Redis into a PostgreSQL schema of its own (dropped afterwards)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, require
from tests.unit.test_crm_wiring import _redis
from tests.unit.test_store import postgres_url

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


async def test_events_ticket_bench_smoke() -> None:
    client = await _redis()
    await client.aclose()
    require(await postgres_url() is not None, "PostgreSQL unreachable")
    proc = subprocess.run([sys.executable, "-m", "bench.events_ticket", "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1].startswith("burst: 100 calls at once: 1,400/1,400 events written")
    assert "100 tickets, 100 CDRs" in lines[2]
