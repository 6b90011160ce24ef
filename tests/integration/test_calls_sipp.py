"""Calls through the real daemon with SIPp peers: a trunk caller walks the IVR, presses 9
and is bridged to a SIPp agent registered as 1003; media is checked on the wire."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.conftest import require, require_tool
from tests.integration.harness import Daemon, SippResult, free_port, run_sipp
from tests.integration.pcapread import Capture, rtp_streams
from tests.integration.peerfiles import make_sipp_dir

pytestmark = [pytest.mark.integration, pytest.mark.peers]

TRUNK_PORT = 5080  # the demo trunk is recognised by this source port


@pytest.fixture(scope="module")
def sipp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("sipp")
    return make_sipp_dir(tmp_path_factory.mktemp("sipp"))


@pytest.fixture
def daemon(tmp_path: Path):
    d = Daemon.demo(tmp_path / "daemon").start()
    yield d
    assert d.stop() == 0, d.log()[-4000:]


def _background(fn, *args, **kw) -> tuple[threading.Thread, list[SippResult]]:
    out: list[SippResult] = []
    t = threading.Thread(target=lambda: out.append(fn(*args, **kw)), daemon=True)
    t.start()
    return t, out


def register_agent(daemon: Daemon, sipp_dir: Path, work: Path, user: str, agent_port: int) -> None:
    r = run_sipp("register-only.xml", daemon.sip, work / f"reg-{user}", "-m", "1",
                 "-key", "user", user, "-key", "expires", "300", "-key", "contact_port",
                 str(agent_port), "-au", user, "-ap", f"pass{user}", "-timeout", "10s",
                 scenario_dir=sipp_dir)
    assert r.returncode == 0, r.errors + r.messages


def test_ivr_digit_9_reaches_agent_1003_with_media_both_ways(
        daemon: Daemon, sipp_dir: Path, tmp_path: Path) -> None:
    require(Capture.available(), "tcpdump (as root) is needed to check RTP on the wire")
    agent_port, agent_media = free_port(), free_port()
    caller_media = free_port()
    register_agent(daemon, sipp_dir, tmp_path, "1003", agent_port)
    pcap = tmp_path / "call.pcap"
    with Capture(pcap, f"udp and (port {caller_media} or port {agent_media})"):
        agent_thread, agent = _background(
            run_sipp, "agent-uas-answer-0s.xml", "", tmp_path / "agent", "-m", "1",
            "-mi", "127.0.0.1", "-mp", str(agent_media), "-timeout", "50s", port=agent_port,
            scenario_dir=sipp_dir, timeout=70)
        time.sleep(0.3)
        caller = run_sipp("inbound-call-dtmf-9.xml", daemon.sip, tmp_path / "caller",
                          "-s", "19001000", "-key", "caller", "0912345678", "-m", "1",
                          "-mi", "127.0.0.1", "-mp", str(caller_media), "-timeout", "50s",
                          port=TRUNK_PORT, scenario_dir=sipp_dir, timeout=70)
        agent_thread.join(70)
    assert caller.returncode == 0, caller.errors + caller.messages[-3000:]
    assert agent and agent[0].returncode == 0, (agent[0].errors if agent else "no agent")
    assert "INVITE sip:1003@" in agent[0].messages

    streams = rtp_streams(pcap)
    to_caller = [s for (src, dst), s in streams.items() if dst[1] == caller_media]
    from_caller = [s for (src, dst), s in streams.items() if src[1] == caller_media]
    to_agent = [s for (src, dst), s in streams.items() if dst[1] == agent_media]
    from_agent = [s for (src, dst), s in streams.items() if src[1] == agent_media]
    assert to_caller and from_caller and to_agent and from_agent, list(streams)
    down = to_caller[0]
    # the welcome prompt before the digit: a steady 50 packets/s, one SSRC all call long
    assert 45 <= down.rate(down.times[0], down.times[0] + 2.5) <= 55
    assert len(down.ssrcs) == 1
    # after the bridge the caller also gets the agent's audio and the agent the caller's
    connect = to_agent[0].times[0]
    assert down.count > 0 and any(t > connect for t in down.times)
    assert from_agent[0].count > 20 and to_agent[0].count > 20
    # the prompt -> bridge switch is marked (RFC 3550 marker bit)
    assert down.markers >= 2
    events = daemon.log_events()
    ended = [e for e in events if e.get("event") == "call ended"]
    assert ended and ended[-1]["hangup_by"] in ("caller", "callee")
    # nothing of the call outlives it: no call, dialog or RTP port left
    assert daemon.wait_metric("acd_calls_active", 0) == 0
    assert daemon.wait_metric("acd_sip_dialogs", 0) == 0
    assert daemon.wait_metric("acd_media_endpoints", 0) == 0


def test_unknown_number_from_trunk_is_404(daemon: Daemon, tmp_path: Path,
                                          sipp_dir: Path) -> None:
    r = run_sipp("inbound-call-dtmf-9.xml", daemon.sip, tmp_path, "-s", "5550000",
                 "-key", "caller", "0912345678", "-m", "1", "-mi", "127.0.0.1",
                 "-mp", str(free_port()), "-timeout", "10s", port=TRUNK_PORT,
                 scenario_dir=sipp_dir)
    assert "404 Not Found" in r.messages

