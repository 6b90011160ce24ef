"""Reading a loopback capture (tcpdump -i lo -w): UDP datagrams with their time and ends,
and RTP streams summarised by (source, destination) for assertions about media."""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Datagram:
    ts: float
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


def datagrams(path: Path) -> Iterator[Datagram]:
    data = path.read_bytes()
    if len(data) < 24:
        return
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(endian + "IIII", data[pos:pos + 16])
        frame = data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        if linktype == 1:
            eth, frame = struct.unpack("!H", frame[12:14])[0], frame[14:]
        elif linktype == 113:
            eth, frame = struct.unpack("!H", frame[14:16])[0], frame[16:]
        else:
            continue
        if eth != 0x0800 or len(frame) < 28 or frame[9] != 17:
            continue
        ihl = (frame[0] & 15) * 4
        src_ip = ".".join(map(str, frame[12:16]))
        dst_ip = ".".join(map(str, frame[16:20]))
        sport, dport, ulen = struct.unpack("!HHH", frame[ihl:ihl + 6])
        yield Datagram(sec + frac / (1e9 if nano else 1e6), (src_ip, sport), (dst_ip, dport),
                       frame[ihl + 8:ihl + ulen])


@dataclass
class RtpStream:
    src: tuple[str, int]
    dst: tuple[str, int]
    times: list[float] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    pts: list[int] = field(default_factory=list)
    markers: int = 0
    ssrcs: set[int] = field(default_factory=set)

    @property
    def count(self) -> int:
        return len(self.times)

    def rate(self, start: float | None = None, end: float | None = None) -> float:
        ts = [t for t in self.times if (start is None or t >= start) and (end is None or t <= end)]
        if len(ts) < 2:
            return 0.0
        return (len(ts) - 1) / (ts[-1] - ts[0])


def rtp_streams(path: Path) -> dict[tuple[tuple[str, int], tuple[str, int]], RtpStream]:
    out: dict[tuple[tuple[str, int], tuple[str, int]], RtpStream] = {}
    for d in datagrams(path):
        p = d.payload
        if len(p) < 12 or p[0] >> 6 != 2 or 192 <= p[1] <= 223:
            continue  # not RTP (or RTCP)
        if p.startswith((b"SIP/", b"INVITE", b"ACK", b"BYE", b"OPTIONS", b"REGISTER")):
            continue
        s = out.setdefault((d.src, d.dst), RtpStream(d.src, d.dst))
        s.times.append(d.ts)
        s.seqs.append(struct.unpack("!H", p[2:4])[0])
        s.pts.append(p[1] & 0x7F)
        s.markers += p[1] >> 7
        s.ssrcs.add(struct.unpack("!I", p[8:12])[0])
    return out


class Capture:
    """tcpdump on the loopback interface for the life of a `with` block."""

    def __init__(self, path: Path, bpf: str) -> None:
        self.path = path
        self.bpf = bpf
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("tcpdump") is not None and os.geteuid() == 0

    def __enter__(self) -> Capture:
        self.proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-U", "-n", "-s", "0", "-w", str(self.path), self.bpf],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # wait until it listens
            if self.path.exists():
                break
            time.sleep(0.05)
        time.sleep(0.3)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        time.sleep(0.3)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
