"""REGISTER + digest through the engine alone: no sockets, no event loop, no store thread.

The sans-IO engine (acd.engine.Engine) is fed the two requests of each registration (the
unauthenticated one, then the answer to its challenge) from memory, with 10,000 accounts
configured as bench.register does, and the CPU time of `Engine.on_message` is measured per
registration. What bench.register measures on top of this is the transport, the event
loop, the write-behind store and the garbage collector; comparing the two tells where a
registration's cost goes. `--profile` prints where the engine's own time goes (cProfile),
`--memory` the Python heap held per registration while its transactions are alive and per
binding once they have expired (tracemalloc).

    python -m bench.engine_register               # time per registration
    python -m bench.engine_register --profile     # plus the top functions
    python -m bench.engine_register --gaps        # plus registrations arriving 1 / 20 ms apart
    python -m bench.engine_register --smoke       # seconds; CI keeps it working
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import os
import pstats
import random
import re
import sys
import time
import tracemalloc
from pathlib import Path

from acd.config import load_config_text
from acd.engine import Engine
from acd.events import EventBus
from acd.logs import configure_logging
from sip.builder import IdSource
from sip.timers import Timers

ROOT = Path(__file__).resolve().parents[1]
SRC = ("udp", "127.0.0.1", 6000)
URI = "sip:127.0.0.1:5060"
CHUNK = 500


class _Clock:
    def __init__(self) -> None:
        self.t = 5000.0

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1_700_000_000.0 + self.t


class _Network:
    last = b""

    def send(self, data: bytes, addr: object) -> None:
        self.last = data


def _config_text(users: int) -> str:
    text = (ROOT / "config" / "acd.yaml").read_text()
    text = text.replace("qualify_interval: 30", "qualify_interval: 0")
    extra = "".join(f'  - user: "{200000 + i}"\n    password: pw{200000 + i}\n'
                    "    max_contacts: 1\n" for i in range(users))
    return text.replace("\ntrunks:", "\n" + extra + "\ntrunks:", 1)


def _request(user: str, cseq: int, branch: str, auth: str = "") -> bytes:
    return (f"REGISTER {URI} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK{branch}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1:5060>;tag=1234B{user}\r\n"
            f"To: <sip:{user}@127.0.0.1:5060>\r\nCall-ID: {user}-cid@127.0.0.1\r\n"
            f"CSeq: {cseq} REGISTER\r\n"
            f"Contact: <sip:{user}@127.0.0.1:6000;transport=UDP>\r\n"
            f"Expires: 3600\r\n{auth}Content-Length: 0\r\n\r\n").encode()


def _md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


class Rig:
    def __init__(self, users: int) -> None:
        config = load_config_text(_config_text(users), base_dir=ROOT / "config")
        self.clock, self.net, self.timers = _Clock(), _Network(), Timers()
        self.ops: list[object] = []
        self.engine = Engine(config, clock=self.clock, network=self.net, timers=self.timers,
                             ids=IdSource(random.Random(1).randbytes),
                             bus=EventBus(config.node_id, self.clock.wall),
                             store_submit=self.ops.append, secret=b"x" * 32)

    def register(self, lo: int, hi: int) -> float:
        """Register accounts lo..hi-1; seconds of CPU spent inside the engine."""
        on_message, net, cpu = self.engine.on_message, self.net, time.process_time
        spent = 0.0
        for i in range(lo, hi):
            user = str(200000 + i)
            first = _request(user, 1, f"a{i}")
            t0 = cpu()
            on_message(first, SRC)
            spent += cpu() - t0
            m = re.search(rb'nonce="([^"]+)"', net.last)
            if not net.last.startswith(b"SIP/2.0 401") or m is None:
                raise RuntimeError(f"expected a challenge, got {net.last[:60]!r}")
            nonce = m.group(1).decode()
            ha1, ha2 = _md5(f"{user}:acd.local:pw{user}"), _md5(f"REGISTER:{URI}")
            resp = _md5(f"{ha1}:{nonce}:00000001:abcdef01:auth:{ha2}")
            auth = (f'Authorization: Digest username="{user}",realm="acd.local",uri="{URI}",'
                    f'nonce="{nonce}",response="{resp}",algorithm=MD5,qop=auth,'
                    'nc=00000001,cnonce="abcdef01"\r\n')
            second = _request(user, 2, f"b{i}", auth)
            t0 = cpu()
            on_message(second, SRC)
            spent += cpu() - t0
            if not net.last.startswith(b"SIP/2.0 200"):
                raise RuntimeError(f"expected 200, got {net.last[:60]!r}")
        return spent

    def expire_transactions(self) -> None:
        self.clock.t += 40.0  # past Timer J (64 * T1)
        self.timers.run_due(self.clock.now())
        self.ops.clear()
        gc.collect()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--profile", action="store_true", help="cProfile: the top functions")
    ap.add_argument("--memory", action="store_true", help="tracemalloc: heap per binding")
    ap.add_argument("--gaps", action="store_true",
                    help="also time registrations arriving 1 ms and 20 ms apart")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    if args.smoke:
        args.users = 2 * CHUNK + 200
    # logs rendered as the daemon renders them (their cost is part of the path), to nowhere
    stderr, sys.stderr = sys.stderr, open(os.devnull, "w")  # noqa: SIM115
    try:
        configure_logging("info", "json")  # binds the file it finds now
    finally:
        sys.stderr = stderr
    rig = Rig(args.users)
    warm = 200
    spare = min(2000, args.users // 4) if args.memory else 0  # fresh accounts for --memory
    rig.register(0, warm)
    chunks = [rig.register(lo, lo + CHUNK) / CHUNK
              for lo in range(warm, args.users - spare - CHUNK + 1, CHUNK)]
    done = warm + len(chunks) * CHUNK
    chunks.sort()
    print(f"engine only, {len(chunks) * CHUNK} registrations (REGISTER -> 401 -> REGISTER "
          f"-> 200) in chunks of {CHUNK}: CPU per registration best {chunks[0] * 1e6:.1f} us, "
          f"median {chunks[len(chunks) // 2] * 1e6:.1f} us")
    if args.gaps:
        # The same work, with the engine idle in between as a lightly loaded daemon is:
        # on the VMs we measure on, caches gone cold make it several times dearer.
        rig = Rig(warm + 2 * 150)
        rig.register(0, warm)
        for k, gap in enumerate((0.001, 0.020)):
            lo = warm + k * 150
            each = []
            for i in range(lo, lo + 150):
                time.sleep(gap)
                each.append(rig.register(i, i + 1))
            each.sort()
            print(f"registrations {gap * 1e3:g} ms apart: CPU per registration median "
                  f"{each[len(each) // 2] * 1e6:.1f} us")
    if args.profile:
        rig = Rig(args.users)
        rig.register(0, warm)
        prof = cProfile.Profile()
        prof.enable()
        rig.register(warm, args.users)
        prof.disable()
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(30)
    if args.memory:
        rig.expire_transactions()
        n = args.users - done
        if n > 0:
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            rig.register(done, done + n)
            gc.collect()
            alive = tracemalloc.get_traced_memory()[0]
            rig.expire_transactions()
            kept = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            print(f"Python heap per registration: {(alive - before) / n:.0f} B while its "
                  f"transactions live, {(kept - before) / n:.0f} B per binding after Timer J")
    return 0


if __name__ == "__main__":
    sys.exit(main())
