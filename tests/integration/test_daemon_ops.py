"""Operating the daemon: check-config output, refusing a bad config at start, SIGHUP and
POST /config/reload (bad files refused, the running config kept), SIGTERM drain with exit 0,
the admin API's tokens, IPv6 and TCP transports with CRLF keep-alive."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.harness import Daemon, free_port, run_sipp

pytestmark = pytest.mark.integration


def _acd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "acd.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=30,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_check_config_ok_and_problems(tmp_path: Path) -> None:
    ok = _acd("check-config", str(ROOT / "config" / "acd.yaml"), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "config" / "acd.yaml").read_text()
                   .replace("min_expires: 60", "min_expires: -5")
                   .replace("max_contacts: 5", "max_contacts: 0", 1))
    res = _acd("check-config", str(bad), cwd=tmp_path)
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith(str(bad))]
    text = bad.read_text().splitlines()
    keys = {ln.split(": ")[1] for ln in lines}
    assert "registrar.min_expires" in keys and "accounts[0].max_contacts" in keys
    for ln in lines:
        file_, line, _rest = ln.split(":", 2)
        assert file_ == str(bad)
        assert 1 <= int(line) <= len(text)
    min_exp_line = next(ln for ln in lines if "registrar.min_expires" in ln)
    assert "min_expires" in text[int(min_exp_line.split(":")[1]) - 1]


def test_bad_config_at_start_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "acd.yaml"
    bad.write_text("sip:\n  listen: [nonsense]\n")
    res = _acd("serve", "--config", str(bad), cwd=tmp_path)
    assert res.returncode == 2
    assert f"{bad}:2: sip.listen[0]:" in res.stderr


def test_reload_keeps_running_config_on_error_and_applies_good_one(tmp_path: Path) -> None:
    d = Daemon.demo(tmp_path / "d").start()
    try:
        good = d.config_text
        d.config_path.write_text(good.replace("min_expires: 60", "min_expires: oops"))
        d.signal(signal.SIGHUP)
        time.sleep(0.5)
        assert "config reload refused" in d.log()
        status, body = d.request("POST", "/config/reload")
        assert status == 422
        assert body["detail"][0]["key"] == "registrar.min_expires"
        assert body["detail"][0]["file"] == str(d.config_path)
        assert body["detail"][0]["line"] > 1
        # still serving with the old config: expires 30 is below the running min 60 -> 423
        port = free_port()
        r = run_sipp("register-only.xml", d.sip, tmp_path / "a", "-m", "1", "-key", "user",
                     "1001", "-key", "expires", "30", "-key", "contact_port", str(port),
                     "-au", "1001", "-ap", "pass1001", "-timeout", "5s", port=port)
        assert "423 Interval Too Brief" in r.messages
        # a good file with min_expires 10 is applied by SIGHUP
        d.config_path.write_text(good.replace("min_expires: 60", "min_expires: 10"))
        d.signal(signal.SIGHUP)
        time.sleep(0.5)
        assert "config reloaded" in d.log()
        r = run_sipp("register-only.xml", d.sip, tmp_path / "b", "-m", "1", "-key", "user",
                     "1001", "-key", "expires", "30", "-key", "contact_port", str(port),
                     "-au", "1001", "-ap", "pass1001", "-timeout", "5s", port=port)
        assert r.returncode == 0, r.messages
    finally:
        assert d.stop() == 0


def test_admin_tokens(tmp_path: Path) -> None:
    d = Daemon.demo(tmp_path / "d").start()
    try:
        assert d.request("GET", "/healthz", token=None)[0] == 200
        status, metrics = d.request("GET", "/metrics", token=None)
        assert status == 200 and "acd_registrations" in metrics
        assert d.request("GET", "/registrations", token=None)[0] == 401
        assert d.request("GET", "/registrations", token="wrong-token")[0] == 401
        assert d.request("GET", "/trunks")[0] == 200
        trunks = d.get("/trunks")["items"]
        assert trunks[0]["name"] == "demo-trunk"
        assert trunks[0]["hotlines"] == ["19001000", "19002000", "19003000"]
    finally:
        assert d.stop() == 0


def test_sigterm_drains_and_exits_zero(tmp_path: Path) -> None:
    d = Daemon.demo(tmp_path / "d").start()
    d.signal(signal.SIGTERM)
    assert d.proc is not None
    assert d.proc.wait(40) == 0
    assert "draining" in d.log() and "stopped" in d.log()


def _sip_options(transport: str, host: str, port: int, local: tuple[str, int]) -> bytes:
    lh = f"[{local[0]}]" if ":" in local[0] else local[0]
    th = f"[{host}]" if ":" in host else host
    return (
        f"OPTIONS sip:{th}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {lh}:{local[1]};branch=z9hG4bK-{transport}-{local[1]}\r\n"
        f"From: <sip:probe@{lh}>;tag=1\r\nTo: <sip:{th}>\r\nCall-ID: opt-{local[1]}\r\n"
        "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_available(), reason="no IPv6 loopback on this machine")
def test_ipv6_udp_and_tcp(tmp_path: Path) -> None:
    d = Daemon.demo(tmp_path / "d", ipv6=True).start()
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
            s.settimeout(2)
            s.sendto(_sip_options("UDP", "::1", d.sip_port, s.getsockname()[:2]),
                     ("::1", d.sip_port))
            assert s.recv(65535).startswith(b"SIP/2.0 200 OK")
        with socket.create_connection(("::1", d.sip_port), timeout=2) as c:
            c.sendall(_sip_options("TCP", "::1", d.sip_port, c.getsockname()[:2]))
            assert c.recv(65535).startswith(b"SIP/2.0 200 OK")
    finally:
        assert d.stop() == 0


def test_tcp_keepalive_and_framing(tmp_path: Path) -> None:
    d = Daemon.demo(tmp_path / "d").start()
    try:
        with socket.create_connection(("127.0.0.1", d.sip_port), timeout=2) as c:
            local = c.getsockname()
            # RFC 5626 §4.4.1: a CRLF CRLF ping is answered with a CRLF pong
            c.sendall(b"\r\n\r\n")
            assert c.recv(16) == b"\r\n"
            # a message split across segments, then two in one segment
            msg = _sip_options("TCP", "127.0.0.1", d.sip_port, local)
            c.sendall(msg[:30])
            time.sleep(0.05)
            c.sendall(msg[30:])
            assert c.recv(65535).startswith(b"SIP/2.0 200 OK")
            two = msg.replace(b"opt-", b"opt2-").replace(b"z9hG4bK-", b"z9hG4bK2-")
            c.sendall(two + two.replace(b"opt2-", b"opt3-").replace(b"z9hG4bK2-", b"z9hG4bK3-"))
            buf = b""
            deadline = time.monotonic() + 2
            while buf.count(b"SIP/2.0 200 OK") < 2 and time.monotonic() < deadline:
                buf += c.recv(65535)
            assert buf.count(b"SIP/2.0 200 OK") == 2
            # registering over TCP through the same connection kind with SIPp
        port = free_port()
        r = run_sipp("register-only.xml", d.sip, tmp_path, "-t", "t1", "-m", "1",
                     "-key", "user", "1002", "-key", "expires", "300",
                     "-key", "contact_port", str(port), "-au", "1002", "-ap", "pass1002",
                     "-timeout", "10s", port=port)
        assert r.returncode == 0, r.errors + r.messages
        items = d.get("/registrations")["items"]
        assert [i["transport"] for i in items if i["aor"] == "1002"] == ["tcp"]
    finally:
        assert d.stop() == 0


def test_queue_tuning_applies_live_persists_and_is_validated(tmp_path: Path) -> None:
    d = Daemon.demo(tmp_path / "d").start()
    try:
        status, body = d.request("PATCH", "/queues/sales",
                                 {"ring_timeout": 25, "strategy": "round_robin"})
        assert status == 200, body
        assert body["strategy"] == "round_robin"
        assert body["settings"]["ring_timeout"] == 25
        status, body = d.request("PATCH", "/queues/sales", {"ring_timeout": -1})
        assert status == 422 and body["detail"]["field"] == "ring_timeout"
        status, body = d.request("PATCH", "/queues/sales", {"members": ["nobody"]})
        assert status == 422 and body["detail"]["field"] == "members[0].agent"
        assert d.request("PATCH", "/queues/nosuch", {"ring_timeout": 5})[0] == 404
        assert d.request("PATCH", "/queues/sales", {"ring_timeout": 5},
                         token="wrong")[0] == 401
        # a refused change left nothing half-applied
        assert d.get("/queues/sales")["settings"]["ring_timeout"] == 25
    finally:
        assert d.stop() == 0
    d2 = Daemon(d.workdir, d.config_text, d.sip_port, d.admin_port).start()
    try:
        q = d2.get("/queues/sales")
        assert (q["strategy"], q["settings"]["ring_timeout"]) == ("round_robin", 25)
    finally:
        assert d2.stop() == 0


def test_agent_status_api(tmp_path: Path) -> None:
    d = Daemon.demo(tmp_path / "d").start()
    try:
        status, body = d.request("PUT", "/agents/1001/status", {"status": "lunch"})
        assert status == 200 and body["status"] == "lunch"
        status, body = d.request("PUT", "/agents/1001/status", {"status": "sleeping"})
        assert status == 422 and body["detail"]["field"] == "status"
        assert d.request("PUT", "/agents/9999/status", {"status": "lunch"})[0] == 404
        assert d.get("/agents/1001")["status"] == "lunch"
    finally:
        assert d.stop() == 0


def test_agent_status_survives_a_restart(tmp_path: Path) -> None:
    d = Daemon.demo(tmp_path / "d").start()
    try:
        status, body = d.request("PUT", "/agents/1001/status", {"status": "break"})
        assert status == 200 and body["status"] == "break"
    finally:
        assert d.stop() == 0
    d2 = Daemon(d.workdir, d.config_text, d.sip_port, d.admin_port).start()
    try:
        agents = {a["id"]: a for a in d2.get("/agents")["items"]}
        assert (agents["1001"]["status"], agents["1002"]["status"]) == ("break", "available")
        restored = [e for e in d2.log_events() if e.get("event") == "agent.status_changed"
                    and e.get("agent") == "1001" and e.get("reason") == "restored"]
        assert [e["new"] for e in restored] == ["break"]
    finally:
        assert d2.stop() == 0
