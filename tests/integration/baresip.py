"""Starting and stopping headless baresip peers (tests/peers/baresip/run-baresip.sh)."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import struct
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import require_tool
from tests.integration.harness import PEERS


def tone_wav(path: Path, seconds: float = 1.0, freq: float = 440.0) -> Path:
    """A small 8 kHz mono WAV, so the peers need no audio files from outside the repo."""
    n = int(8000 * seconds)
    frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / 8000)))
                      for i in range(n))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames)
    return path


@dataclass
class Baresip:
    run_dir: Path
    pid: int
    ctrl_port: int

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)

    def log(self) -> str:
        p = self.run_dir / "baresip.log"
        return p.read_text(errors="replace") if p.exists() else ""


def start_baresip(role: str, run_dir: Path, *, server: str, user: str, password: str,
                  listen_port: int, rtp_ports: str, ctrl_port: int, transport: str = "udp",
                  play_wav: Path | None = None, extra_env: dict[str, str] | None = None
                  ) -> Baresip:
    require_tool("baresip")
    require_tool("sox")
    run_dir.mkdir(parents=True, exist_ok=True)
    wav = play_wav or tone_wav(run_dir / "voice.wav")
    env = dict(os.environ, SERVER=server, SIP_USER=user, SIP_PASS=password,
               LISTEN_PORT=str(listen_port), RTP_PORTS=rtp_ports, CTRL_PORT=str(ctrl_port),
               TRANSPORT=transport, RUN_DIR=str(run_dir), PLAY_WAV=str(wav), DURATION="120",
               PAD_SECONDS="60", **(extra_env or {}))
    out = subprocess.run(["bash", str(PEERS / "baresip" / "run-baresip.sh"), role], env=env,
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"baresip failed to start: {out.stdout}\n{out.stderr}")
    pid = int((run_dir / "pid").read_text().strip())
    return Baresip(run_dir, pid, ctrl_port)
