"""The benchmarks stay runnable: each one's --smoke mode completes and prints its numbers.
(The numbers of a smoke run mean nothing; `python -m bench.<name>` measures.)"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, require_tool

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXPECTED = {
    "register": "highest clean rate",
    "calls": "highest clean IVR call rate",
    "acd": "highest clean full-flow rate",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sipp_benchmarks_run_in_smoke_mode(name: str) -> None:
    require_tool("sipp")
    res = subprocess.run([sys.executable, "-m", f"bench.{name}", "--smoke"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert EXPECTED[name] in res.stdout


@pytest.mark.parametrize("name", ["distributor", "engine_register", "rtp"])
def test_python_benchmarks_run_in_smoke_mode(name: str) -> None:
    res = subprocess.run([sys.executable, "-m", f"bench.{name}", "--smoke"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.strip()
