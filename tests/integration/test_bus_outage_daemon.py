"""Redis stopped during a run of calls and started again: the running daemon spools the
events it cannot publish and replays them in order when Redis is back, so every event
reaches the stream once, in publish order."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from tests.conftest import require_tool
from tests.integration.bus_server import RedisServer
from tests.integration.harness import Daemon, free_port, run_sipp
from tests.integration.peerfiles import make_sipp_dir

pytestmark = [pytest.mark.integration, pytest.mark.peers, pytest.mark.redis, pytest.mark.slow]

TRUNK_PORT = 5080


def _calls(d: Daemon, sipp_dir: Path, work: Path, n: int) -> None:
    """n short calls to the IVR from the trunk (the engine answers, the caller hangs up)."""
    r = run_sipp("caller-abandon-bye.xml", d.sip, work, "-s", "19001000", "-key", "caller",
                 "0912345678", "-m", str(n), "-r", "5", "-l", str(n), "-mi", "127.0.0.1",
                 "-mp", str(free_port()), "-timeout", "60s", port=TRUNK_PORT,
                 scenario_dir=sipp_dir, timeout=80, trace=False)
    assert r.count("SuccessfulCall(C)") == n, r.errors[-2000:]


def test_events_survive_a_redis_outage_once_and_in_order(tmp_path: Path) -> None:
    require_tool("redis-server")
    require_tool("sipp")
    sipp_dir = make_sipp_dir(tmp_path / "sipp")
    srv = RedisServer(tmp_path / "redis")
    (tmp_path / "redis").mkdir()
    srv.start()
    stream = "acd:outage"
    d = Daemon.demo(tmp_path / "d")
    d.config_text = d.config_text.replace(
        "  bus: inproc            # or redis://127.0.0.1:6379/0",
        f"  bus: {srv.url}\n  stream: {stream}")
    d.config_path.write_text(d.config_text)
    d.start()
    try:
        _calls(d, sipp_dir, tmp_path / "before", 5)
        srv.stop()  # Redis goes away while calls go on
        _calls(d, sipp_dir, tmp_path / "during", 5)
        spooled = d.metric("acd_events_spooled_total")
        assert spooled > 0
        srv.start()
        deadline = time.monotonic() + 20
        while d.metric("acd_events_spool_pending") > 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        _calls(d, sipp_dir, tmp_path / "after", 3)
        time.sleep(1.0)
    finally:
        assert d.stop() == 0, d.log()[-3000:]
        client = redis.Redis(port=srv.port)
        entries = client.xrange(stream)
        srv.stop()
    events = [json.loads(fields[b"event"]) for _, fields in entries]
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)), "an event arrived twice"
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "an event is missing or moved"
    ended = [e for e in events if e["type"] == "call.ended"]
    assert len(ended) == 13
