"""The ACD with SIPp agents and callers through the real daemon and the demo config:
20 callers to 19002000 (queue sales: 1001 and 1002, longest-idle, wrap-up 5 s) are all
served, no agent ever has two calls, longest-idle alternates them; a caller who hangs up
while agents ring makes every agent leg get CANCEL and queue.abandoned is published."""

from __future__ import annotations

import subprocess
import threading
import time
from itertools import pairwise
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.integration.harness import Daemon, SippResult, free_port, run_sipp
from tests.integration.peerfiles import make_sipp_dir

pytestmark = [pytest.mark.integration, pytest.mark.peers, pytest.mark.slow]

TRUNK_PORT = 5080


@pytest.fixture(scope="module")
def sipp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("sipp")
    d = make_sipp_dir(tmp_path_factory.mktemp("sipp"))
    gen = ["bash", str(d / "gen.sh")]
    # agents answer at once and hang up after 1 s of talk
    subprocess.run([*gen, "templates/agent-uas.xml.in", "agent-quick.xml", "ANSWER_MS=10",
                    "TALK_MS=1000", "PCAP=pcap/caller-speech-pcmu.pcap"], cwd=d, check=True,
                   capture_output=True)
    # agents that never answer (a CANCEL is answered 200 + 487)
    subprocess.run([*gen, "templates/agent-uas.xml.in", "agent-ring.xml", "ANSWER_MS=60000",
                    "TALK_MS=1000", "PCAP=pcap/caller-speech-pcmu.pcap"], cwd=d, check=True,
                   capture_output=True)
    # callers wait up to 90 s in the queue for the engine's BYE
    subprocess.run([*gen, "templates/inbound-call-dtmf.xml.in", "caller-wait.xml",
                    "HOLD_MS=90000", "PCAP=pcap/dtmf-1-pcmu.pcap"], cwd=d, check=True,
                   capture_output=True)
    return d


def _register(d: Daemon, sipp_dir: Path, work: Path, user: str, port: int) -> None:
    r = run_sipp("register-only.xml", d.sip, work / f"reg-{user}", "-m", "1", "-key", "user",
                 user, "-key", "expires", "300", "-key", "contact_port", str(port),
                 "-au", user, "-ap", f"pass{user}", "-timeout", "10s", scenario_dir=sipp_dir)
    assert r.returncode == 0, r.errors + r.messages


def _agent(scenario: str, sipp_dir: Path, work: Path, port: int, calls: int,
           timeout: int) -> tuple[threading.Thread, list[SippResult]]:
    out: list[SippResult] = []

    def run() -> None:
        out.append(run_sipp(scenario, "", work, "-m", str(calls), "-mi", "127.0.0.1",
                            "-mp", str(free_port()), "-timeout", f"{timeout}s", port=port,
                            scenario_dir=sipp_dir, timeout=timeout + 20))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def test_twenty_calls_to_sales_alternate_between_two_agents(sipp_dir: Path,
                                                           tmp_path: Path) -> None:
    d = Daemon.demo(tmp_path / "d").start()
    try:
        ports = {"1001": free_port(), "1002": free_port()}
        for user, port in ports.items():
            _register(d, sipp_dir, tmp_path, user, port)
        agents = {u: _agent("agent-quick.xml", sipp_dir, tmp_path / f"agent-{u}", p, 20, 150)
                  for u, p in ports.items()}
        time.sleep(0.5)
        callers = run_sipp("caller-wait.xml", d.sip, tmp_path / "callers", "-s", "19002000",
                           "-key", "caller", "0912345678", "-m", "20", "-r", "1", "-l", "20",
                           "-mi", "127.0.0.1", "-mp", str(free_port()), "-timeout", "150s",
                           port=TRUNK_PORT, scenario_dir=sipp_dir, timeout=200, trace=False)
        assert callers.count("SuccessfulCall(C)") == 20, callers.errors[-3000:]
        assert callers.count("FailedCall(C)") == 0
    finally:
        code = d.stop()
    assert code == 0
    events = d.log_events()
    connected = [e for e in events if e.get("event") == "connected"]
    ended = {e["call"]: e for e in events if e.get("event") == "call ended"}
    assert len(connected) == 20, [e.get("agent") for e in connected]
    order = [e["agent"] for e in connected]
    # longest-idle with a 5 s wrap-up: each agent in turn
    assert all(a != b for a, b in pairwise(order)), order
    assert sorted(set(order)) == ["1001", "1002"]
    # no agent ever on two calls: each agent's calls do not overlap
    for agent in ("1001", "1002"):
        spans = sorted((e["timestamp"], ended[e["call"]]["timestamp"])
                       for e in connected if e["agent"] == agent)
        for (_, end1), (start2, _) in pairwise(spans):
            assert end1 <= start2, (agent, spans)
    for t, _ in agents.values():
        t.join(0)  # they end by their own timeout; the daemon is already stopped


def test_caller_hanging_up_while_agents_ring_cancels_every_agent_leg(sipp_dir: Path,
                                                                    tmp_path: Path) -> None:
    d = Daemon.demo(tmp_path / "d").start()
    agents = {}
    try:
        ports = {"1001": free_port(), "1002": free_port()}
        for user, port in ports.items():
            _register(d, sipp_dir, tmp_path, user, port)
            agents[user] = _agent("agent-ring.xml", sipp_dir, tmp_path / f"agent-{user}",
                                  port, 1, 40)
        time.sleep(0.5)
        # 19002000 -> sales; the queue answers (music on hold), the agent phone rings and
        # never answers; the caller hangs up (BYE) after 6 s
        caller = run_sipp("caller-abandon-bye.xml", d.sip, tmp_path / "caller", "-s",
                          "19002000", "-key", "caller", "0912345678", "-m", "1", "-mi",
                          "127.0.0.1", "-mp", str(free_port()), "-timeout", "30s",
                          port=TRUNK_PORT, scenario_dir=sipp_dir, timeout=40)
        assert caller.returncode == 0, caller.errors + caller.messages[-2000:]
        time.sleep(1.0)
    finally:
        assert d.stop() == 0
    rung = 0
    for user, (thread, result) in agents.items():
        thread.join(45)
        msgs = result[0].messages if result else ""
        if "INVITE sip:" in msgs:
            rung += 1
            # the leg that rang was CANCELled (and answered 200 + 487 by the phone)
            assert "CANCEL sip:" in msgs, (user, msgs[-3000:])
    assert rung >= 1
    abandoned = [e for e in d.log_events() if e.get("event") == "queue.abandoned"]
    assert len(abandoned) == 1 and abandoned[0]["queue"] == "sales"
    assert abandoned[0]["wait"] >= 5.0
