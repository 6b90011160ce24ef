"""A redis-server of a test's own, on a free port in a temporary directory, that the test
may stop, start and freeze (Redis outages for real, without touching the shared server)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis


def _reachable(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server of this test's own. AOF with fsync always, so a stop/start keeps the
    stream, as a production Redis with persistence would."""

    def __init__(self, workdir: Path) -> None:
        self.dir, self.port = workdir, _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.dir), "--save", "", "--appendonly", "yes", "--appendfsync", "always",
             "--logfile", str(self.dir / "redis.log")], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _reachable(self.port):
            assert time.monotonic() < deadline, (self.dir / "redis.log").read_text()[-2000:]
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen server cannot take SIGTERM
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def freeze(self, frozen: bool) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP if frozen else signal.SIGCONT)
