"""End to end, as a contact center runs: a SIPp caller from the trunk walks the IVR (digit
1), waits in queue sales, a SIPp agent (1001) answers and talks, the agent hangs up. The
daemon publishes to Redis Streams; afterwards there is a stereo WAV whose left channel holds
the caller's voice (a 600 Hz tone) and right channel the agent's (1300 Hz), the call's
events are on the stream in order, and the admin API shows a CDR, a contact with the
normalized number, and a ticket linked to both with the agent as assignee and the
recording attached."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require, require_tool
from tests.integration.baresip import tone_wav
from tests.integration.harness import PEERS, Daemon, SippResult, free_port, run_sipp

pytestmark = [pytest.mark.integration, pytest.mark.peers, pytest.mark.redis]

TRUNK_PORT = 5080


def _redis():
    import redis

    r = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)
    try:
        r.ping()
    except redis.RedisError as exc:
        require(False, f"Redis on 127.0.0.1:6379 is not reachable: {exc}")
    return r


def _pcap(sipp_dir: Path, name: str, *args: str) -> None:
    subprocess.run([sys.executable, str(PEERS / "tools" / "make_rtp_pcap.py"),
                    str(sipp_dir / "pcap" / name), *args], check=True, capture_output=True)


def _scenarios(sipp_dir: Path, tmp: Path) -> None:
    _pcap(sipp_dir, "caller-600.pcap", "--wav", str(tone_wav(tmp / "c600.wav", 3.0, 600.0)))
    _pcap(sipp_dir, "agent-1300.pcap", "--wav", str(tone_wav(tmp / "a1300.wav", 3.0, 1300.0)))
    gen = ["bash", str(sipp_dir / "gen.sh")]
    subprocess.run([*gen, "templates/agent-uas.xml.in", "agent-talk.xml", "ANSWER_MS=10",
                    "TALK_MS=4000", "PCAP=pcap/agent-1300.pcap"], cwd=sipp_dir, check=True,
                   capture_output=True)
    # caller: digit 1 in the IVR, then its voice once the agent should be on the line
    subprocess.run([*gen, "templates/inbound-call-dtmf.xml.in", "caller-e2e.xml",
                    "HOLD_MS=20000", "PCAP=pcap/dtmf-1-pcmu.pcap"], cwd=sipp_dir, check=True,
                   capture_output=True)
    text = (sipp_dir / "caller-e2e.xml").read_text()
    text = text.replace(
        '<nop><action><exec play_pcap_audio="pcap/dtmf-1-pcmu.pcap"/></action></nop>',
        '<nop><action><exec play_pcap_audio="pcap/dtmf-1-pcmu.pcap"/></action></nop>\n'
        '  <pause milliseconds="1800"/>\n'
        '  <nop><action><exec play_pcap_audio="pcap/caller-600.pcap"/></action></nop>')
    (sipp_dir / "caller-e2e.xml").write_text(text)


def _crm_view(d: Daemon) -> tuple[dict, dict, dict]:
    """The call's CDR, its contact and its ticket, once the CRM consumer has written them."""
    deadline = time.monotonic() + 15
    while True:
        cdrs = d.get("/cdrs")["items"]
        tickets = d.get("/tickets")["items"]
        if cdrs and tickets:
            detail = d.get(f"/tickets/{tickets[0]['id']}")
            ticket = {**detail["ticket"], "events": detail["events"]}
            if any(e["kind"] == "recording" for e in ticket["events"]) \
                    or time.monotonic() > deadline:
                contact = d.get(f"/contacts/{ticket['contact_id']}")
                return cdrs[0], contact, ticket
        if time.monotonic() > deadline:
            raise AssertionError(f"no CDR/ticket: {cdrs} {tickets}")
        time.sleep(0.3)


def _band(samples: np.ndarray, freq: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / 8000)
    return float(spectrum[(freqs > freq - 40) & (freqs < freq + 40)].sum()
                 / max(spectrum.sum(), 1e-9))


def test_ivr_queue_agent_call_leaves_recording_events_cdr_and_ticket(tmp_path: Path) -> None:
    require_tool("sipp")
    r = _redis()
    from tests.integration.peerfiles import make_sipp_dir

    sipp_dir = make_sipp_dir(tmp_path / "sipp")
    _scenarios(sipp_dir, tmp_path)
    stream = f"acd:e2e:{uuid.uuid4().hex[:8]}"
    d = Daemon.demo(tmp_path / "d", extra="")
    d.config_text = d.config_text.replace(
        "  bus: inproc            # or redis://127.0.0.1:6379/0",
        f"  bus: redis://127.0.0.1:6379/0\n  stream: {stream}")
    assert f"stream: {stream}" in d.config_text
    d.config_path.write_text(d.config_text)
    d.start()
    agent: list[SippResult] = []
    try:
        port = free_port()
        reg = run_sipp("register-only.xml", d.sip, tmp_path / "reg", "-m", "1", "-key", "user",
                       "1001", "-key", "expires", "300", "-key", "contact_port", str(port),
                       "-au", "1001", "-ap", "pass1001", "-timeout", "10s",
                       scenario_dir=sipp_dir)
        assert reg.returncode == 0, reg.errors
        t = threading.Thread(target=lambda: agent.append(run_sipp(
            "agent-talk.xml", "", tmp_path / "agent", "-m", "1", "-mi", "127.0.0.1", "-mp",
            str(free_port()), "-timeout", "40s", port=port, scenario_dir=sipp_dir,
            timeout=50)), daemon=True)
        t.start()
        time.sleep(0.3)
        caller = run_sipp("caller-e2e.xml", d.sip, tmp_path / "caller", "-s", "19001000",
                          "-key", "caller", "0912345678", "-m", "1", "-mi", "127.0.0.1",
                          "-mp", str(free_port()), "-timeout", "40s", port=TRUNK_PORT,
                          scenario_dir=sipp_dir, timeout=50)
        t.join(50)
        assert caller.returncode == 0, caller.errors + caller.messages[-2000:]
        assert agent and agent[0].returncode == 0, agent[0].errors if agent else "no agent"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not list(
                (tmp_path / "d" / "recordings").rglob("*.wav")):
            time.sleep(0.2)
        time.sleep(1.0)
        crm = _crm_view(d)
    finally:
        assert d.stop() == 0, d.log()[-3000:]
    cdr, contact, ticket = crm
    assert cdr["direction"] == "inbound" and cdr["hotline"] == "19001000"
    assert cdr["queue"] == "sales" and cdr["agent"] == "1001"
    assert cdr["outcome"] == "answered" and cdr["talk_seconds"] > 2
    assert contact["phone"] == "+84912345678"
    assert ticket["contact_id"] == contact["id"] and ticket["assignee"] == "1001"
    assert ticket["status"] == "new" and not ticket["missed"]
    assert any(e["kind"] == "recording" for e in ticket["events"])
    try:
        # the stereo recording: caller left, agent right
        (wav,) = [p for p in (tmp_path / "d" / "recordings").rglob("*.wav")
                  if "voicemail" not in p.parts]
        with wave.open(str(wav)) as w:
            assert (w.getnchannels(), w.getframerate()) == (2, 8000)
            a = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
        left, right = a[:, 0].astype(float), a[:, 1].astype(float)
        assert _band(left, 600) > 0.3 and _band(left, 1300) < 0.1
        assert _band(right, 1300) > 0.3 and _band(right, 600) < 0.1
        # the call's events, in order, on the Redis stream
        entries = r.xrange(stream)
        import json

        events = [json.loads(fields[b"event"]) for _, fields in entries]
        call_events = [e for e in events if e.get("call_id") and e["type"].startswith(
            ("call.", "queue.", "ivr.", "recording."))]
        types = [e["type"] for e in call_events]
        for earlier, later in (("call.started", "ivr.entered"), ("ivr.exit", "queue.entered"),
                               ("queue.entered", "queue.connected"),
                               ("queue.connected", "call.ended"),
                               ("call.ended", "recording.ready")):
            assert types.index(earlier) < types.index(later), types
        seqs = [e["seq"] for e in events]
        assert seqs == sorted(seqs) and len(set(e["id"] for e in events)) == len(events)
    finally:
        r.delete(stream)
