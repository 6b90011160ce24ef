"""Calls between real phones through the daemon: baresip 1001 calls baresip 1002 by
extension (each hears the other), and baresip 1001 dials a national number that leaves
through demo-trunk as E.164 with the hotline as caller ID."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.integration.baresip import Baresip, start_baresip, tone_wav
from tests.integration.harness import PEERS, Daemon, SippResult, free_port, run_sipp
from tests.integration.peerfiles import make_sipp_dir

pytestmark = [pytest.mark.integration, pytest.mark.peers]


def _bctl(port: int, *args: str, timeout: float = 40) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(PEERS / "baresip" / "bctl.py"), "--port",
                           str(port), "--timeout", str(timeout - 5), *args],
                          capture_output=True, text=True, timeout=timeout)


def _wait_registered(d: Daemon, aor: str, limit: float = 15) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if any(i["aor"] == aor for i in d.get("/registrations")["items"]):
            return
        time.sleep(0.2)
    raise AssertionError(f"{aor} did not register")


def _heard(peer: Baresip) -> np.ndarray:
    """What a peer heard: the samples of its sndfile 'dec' recording."""
    files = sorted((peer.run_dir / "rec").glob("*-dec.wav"))
    assert files, f"no recording in {peer.run_dir / 'rec'}: {peer.log()[-2000:]}"
    with wave.open(str(files[-1])) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(float)


def _tone_level(samples: np.ndarray, freq: float, rate: int = 8000) -> float:
    """Share of the signal's energy within 40 Hz of `freq`."""
    if len(samples) < rate:
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    band = spectrum[(freqs > freq - 40) & (freqs < freq + 40)].sum()
    return float(band / max(spectrum.sum(), 1e-9))


def test_extension_call_between_baresip_phones_carries_audio_both_ways(tmp_path: Path) -> None:
    d = Daemon.demo(tmp_path / "d").start()
    peers: list[Baresip] = []
    try:
        callee = start_baresip("agent", tmp_path / "b1002", server=d.sip, user="1002",
                               password="pass1002", listen_port=free_port(),
                               rtp_ports="45200-45219", ctrl_port=free_port(),
                               play_wav=tone_wav(tmp_path / "b1002.wav", 2.0, 1300.0))
        peers.append(callee)
        _wait_registered(d, "1002")
        caller = start_baresip("caller", tmp_path / "b1001", server=d.sip, user="1001",
                               password="pass1001", listen_port=free_port(),
                               rtp_ports="45220-45239", ctrl_port=free_port(),
                               play_wav=tone_wav(tmp_path / "b1001.wav", 2.0, 600.0))
        peers.append(caller)
        res = _bctl(caller.ctrl_port, "call", f"sip:1002@{d.sip}", "--hold", "4")
        assert res.returncode == 0, res.stdout[-3000:] + d.log()[-3000:]
        time.sleep(1.0)
    finally:
        for p in peers:
            p.stop()
        time.sleep(0.5)
        assert d.stop() == 0
    heard_by_caller, heard_by_callee = _heard(caller), _heard(callee)
    # each recording holds the other side's tone, not its own
    assert _tone_level(heard_by_caller, 1300) > 0.3, _tone_level(heard_by_caller, 600)
    assert _tone_level(heard_by_callee, 600) > 0.3, _tone_level(heard_by_callee, 1300)
    ended = [e for e in d.log_events() if e.get("event") == "call ended"]
    assert ended


def test_outbound_call_leaves_through_demo_trunk_as_e164_with_hotline_caller_id(
        tmp_path: Path) -> None:
    sipp_dir = make_sipp_dir(tmp_path / "sipp")
    d = Daemon.demo(tmp_path / "d").start()
    peers: list[Baresip] = []
    provider: list[SippResult] = []
    try:
        # the provider side of demo-trunk: a SIPp UAS on 127.0.0.1:5080
        t = threading.Thread(target=lambda: provider.append(run_sipp(
            "agent-uas-answer-0s.xml", "", tmp_path / "provider", "-m", "1", "-mi",
            "127.0.0.1", "-mp", str(free_port()), "-timeout", "40s", port=5080,
            scenario_dir=sipp_dir, timeout=60)), daemon=True)
        t.start()
        time.sleep(0.3)
        caller = start_baresip("caller", tmp_path / "b1001", server=d.sip, user="1001",
                               password="pass1001", listen_port=free_port(),
                               rtp_ports="45240-45259", ctrl_port=free_port())
        peers.append(caller)
        res = _bctl(caller.ctrl_port, "call", f"sip:0912345678@{d.sip}", "--hold", "2")
        assert res.returncode == 0, res.stdout[-3000:] + d.log()[-3000:]
        t.join(60)
    finally:
        for p in peers:
            p.stop()
        assert d.stop() == 0
    assert provider, "the provider UAS did not finish"
    msgs = provider[0].messages
    invite = msgs[msgs.index("INVITE sip:"):]
    first_line = invite.split("\n", 1)[0]
    assert first_line.startswith("INVITE sip:84912345678@"), first_line
    from_line = next(ln for ln in invite.splitlines() if ln.lower().startswith("from:"))
    assert "sip:19001000@" in from_line, from_line


def test_baresip_agent_answers_a_queue_call_with_two_way_audio(tmp_path: Path) -> None:
    d = Daemon.demo(tmp_path / "d").start()
    peers: list[Baresip] = []
    try:
        agent = start_baresip("agent", tmp_path / "a1001", server=d.sip, user="1001",
                              password="pass1001", listen_port=free_port(),
                              rtp_ports="45260-45279", ctrl_port=free_port(),
                              play_wav=tone_wav(tmp_path / "a1001.wav", 2.0, 1300.0))
        peers.append(agent)
        _wait_registered(d, "1001")
        # 1002 calls the sales hotline: it is busy on its own call, so sales offers 1001
        caller = start_baresip("caller", tmp_path / "c1002", server=d.sip, user="1002",
                               password="pass1002", listen_port=free_port(),
                               rtp_ports="45280-45299", ctrl_port=free_port(),
                               play_wav=tone_wav(tmp_path / "c1002.wav", 2.0, 600.0))
        peers.append(caller)
        res = _bctl(caller.ctrl_port, "call", f"sip:19002000@{d.sip}", "--hold", "6")
        assert res.returncode == 0, res.stdout[-3000:] + d.log()[-3000:]
        time.sleep(1.0)
    finally:
        for p in peers:
            p.stop()
        time.sleep(0.5)
        assert d.stop() == 0
    connected = [e for e in d.log_events() if e.get("event") == "connected"]
    assert connected and connected[0]["agent"] == "1001" and connected[0]["queue"] == "sales"
    assert _tone_level(_heard(agent), 600) > 0.3
    # the caller heard music on hold first, then the agent's tone
    assert _tone_level(_heard(caller), 1300) > 0.1
