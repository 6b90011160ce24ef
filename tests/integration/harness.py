"""Running the real daemon on loopback for integration tests, and driving SIPp against it.

`Daemon` starts `acd serve` in a subprocess with a copy of the demo config whose SIP and
admin ports are moved to free ones (the accounts, trunk and numbers stay those of the
contract), waits for /healthz, and stops it with SIGTERM, expecting exit status 0.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, require_tool

DEMO_CONFIG = ROOT / "config" / "acd.yaml"
PEERS = ROOT / "tests" / "peers"
TOKEN = "demo-admin-token"


def free_port(kind: int = socket.SOCK_DGRAM, host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on host."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                t.bind((host, port))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


def demo_config_text(sip_port: int, admin_port: int, *, ipv6: bool = False,
                     store_url: str | None = None, extra: str = "") -> str:
    """The demo config with moved ports; everything else as in the contract."""
    text = DEMO_CONFIG.read_text()
    text = text.replace("127.0.0.1:5060", f"127.0.0.1:{sip_port}")
    text = text.replace("[::1]:5060", f"[::1]:{sip_port}")
    if not ipv6:
        text = re.sub(r"\n\s*- (udp|tcp):\[::1\]:\d+", "", text)
    text = text.replace("listen: 127.0.0.1:8080", f"listen: 127.0.0.1:{admin_port}")
    # prompts.dir is relative to the config file, which the copy no longer sits beside
    text = text.replace("  dir: prompts ", f"  dir: {DEMO_CONFIG.parent / 'prompts'} ")
    if store_url is not None:
        text = text.replace("url: sqlite+aiosqlite:///var/acd.sqlite3", f"url: {store_url}")
    return text + extra


@dataclass
class Daemon:
    workdir: Path
    config_text: str
    sip_port: int
    admin_port: int
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "acd.yaml"
        self.config_path.write_text(self.config_text)
        self.log_path = self.workdir / "daemon.log"

    @classmethod
    def demo(cls, workdir: Path, **kw: Any) -> Daemon:
        sip_port, admin_port = free_port(), free_port(socket.SOCK_STREAM)
        return cls(workdir, demo_config_text(sip_port, admin_port, **kw), sip_port, admin_port)

    def start(self, timeout: float = 15.0) -> Daemon:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "acd.cli", "serve", "--config", str(self.config_path)],
            cwd=self.workdir, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.get("/healthz", token=None)
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"daemon did not become healthy:\n{self.log()}")

    def stop(self, timeout: float = 40.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    # admin API ---------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None,
                token: str | None = TOKEN) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}",
                                     data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                raw = resp.read()
                status = resp.status
                ctype = resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raw, status, ctype = exc.read(), exc.code, exc.headers.get("Content-Type", "")
        if "json" in ctype:
            return status, json.loads(raw)
        return status, raw.decode()

    def get(self, path: str, token: str | None = TOKEN) -> Any:
        status, body = self.request("GET", path, token=token)
        if status != 200:
            raise urllib.error.URLError(f"{path}: {status} {body}")
        return body

    def metric(self, name: str) -> float:
        """The value of an unlabelled metric (the sum over its labels otherwise)."""
        _, text = self.request("GET", "/metrics", token=None)
        total, found = 0.0, False
        for line in str(text).splitlines():
            if line.startswith(name) and (line[len(name)] in " {"):
                total += float(line.rsplit(" ", 1)[1])
                found = True
        if not found:
            raise KeyError(name)
        return total

    def wait_metric(self, name: str, value: float, limit: float = 10.0) -> float:
        deadline = time.monotonic() + limit
        got = self.metric(name)
        while got != value and time.monotonic() < deadline:
            time.sleep(0.2)
            got = self.metric(name)
        return got

    @property
    def sip(self) -> str:
        return f"127.0.0.1:{self.sip_port}"


@dataclass
class SippResult:
    returncode: int
    stats: dict[str, str]
    messages: str
    errors: str

    def count(self, key: str) -> int:
        return int(self.stats.get(key, "0") or 0)


def run_sipp(scenario: str, target: str, workdir: Path, *args: str, port: int | None = None,
             timeout: float = 60.0, scenario_dir: Path | None = None,
             trace: bool = True) -> SippResult:
    """Run one SIPp scenario to completion with its traces in workdir."""
    sipp = require_tool("sipp")
    workdir.mkdir(parents=True, exist_ok=True)
    name = Path(scenario).stem
    msg, err, stat = workdir / f"{name}.msg", workdir / f"{name}.err", workdir / f"{name}.csv"
    for f in (msg, err, stat):
        f.unlink(missing_ok=True)
    cmd = [sipp, *([target] if target else []), "-sf", scenario, "-i", "127.0.0.1", "-p", str(port or free_port()),
           "-nostdin", "-timeout_error", "-trace_err", "-error_file", str(err),
           "-trace_stat", "-stf", str(stat), *args]
    if trace:
        cmd += ["-trace_msg", "-message_file", str(msg)]
    proc = subprocess.run(cmd, cwd=scenario_dir or PEERS / "sipp", capture_output=True,
                          timeout=timeout)
    stats: dict[str, str] = {}
    if stat.exists():
        rows = [r.split(";") for r in stat.read_text().splitlines() if r.strip()]
        if len(rows) >= 2:
            stats = dict(zip(rows[0], rows[-1], strict=False))
    return SippResult(proc.returncode, stats, msg.read_text(errors="replace") if msg.exists()
                      else "", err.read_text(errors="replace") if err.exists() else "")


def sipp_available() -> bool:
    return shutil.which("sipp") is not None
