"""The media runtime on real 127.0.0.1 UDP sockets, on both asyncio's loop and uvloop: plain
sockets play the remote parties. Each test runs for well under a second of media."""

from __future__ import annotations

import asyncio
import functools
import itertools
import socket
import struct
import time
import wave
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from acd.clock import SystemClock
from acd.media_session import dtmf_tone_frames
from acd.runtime.media import MediaEndpoint, MediaEngine
from media.dtmf import TelephoneEventSender
from media.g711 import Codec, alaw_to_ulaw, encode, ulaw_to_alaw
from media.prompt import Prompt
from media.rtp import build_packet, parse_packet

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is optional
    uvloop = None  # type: ignore[assignment]

pytestmark = pytest.mark.integration

LO = "127.0.0.1"
PORTS = (42000, 42999)
Run = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    if request.param == "uvloop":
        if uvloop is None:
            pytest.skip("uvloop not installed")
        return uvloop.run
    return asyncio.run


class Peer:
    """A remote party: a plain UDP socket read by the loop, arrivals time-stamped."""

    def __init__(self, loop: asyncio.AbstractEventLoop, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LO, port))
        self.sock.setblocking(False)
        self.addr: tuple[str, int] = self.sock.getsockname()
        self.got: list[tuple[float, bytes]] = []
        self.loop = loop
        loop.add_reader(self.sock.fileno(), self._read)

    def _read(self) -> None:
        while True:
            try:
                self.got.append((time.monotonic(), self.sock.recv(2048)))
            except BlockingIOError:
                return

    def send(self, ep: MediaEndpoint, pkt: bytes) -> None:
        self.sock.sendto(pkt, (LO, ep.local_port))

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


def engine(readers: str = "auto") -> MediaEngine:
    return MediaEngine(asyncio.get_running_loop(), LO, PORTS, SystemClock(), readers=readers)


def level(codec: Codec, value: int) -> bytes:
    return encode(codec, struct.pack("<h", value) * 160)


async def until(cond: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def test_prompt_then_music_arrive_paced_continuous_with_markers(run: Run) -> None:
    async def scenario() -> None:
        eng = engine()
        peer = Peer(asyncio.get_running_loop())
        ep = eng.allocate()
        ep.configure(peer.addr, Codec.PCMA, 8, 101, "sendrecv")
        moh = Prompt(struct.pack("<h", 300) * 1600, "moh")
        ep.play(Prompt(struct.pack("<h", 900) * 1600, "hello"),
                on_done=lambda: ep.play(moh, loop=True))
        await until(lambda: len(peer.got) >= 25)
        ep.stop_play()
        eng.close()
        peer.close()
        pkts = [parse_packet(d) for _, d in peer.got[:25]]
        times = [t for t, _ in peer.got[:25]]
        assert {p.payload_type for p in pkts} == {8} and len({p.ssrc for p in pkts}) == 1
        assert all((b.sequence - a.sequence) & 0xFFFF == 1 for a, b in itertools.pairwise(pkts))
        assert all((b.timestamp - a.timestamp) & 0xFFFFFFFF == 160
                   for a, b in itertools.pairwise(pkts))
        assert [i for i, p in enumerate(pkts) if p.marker] == [0, 10]
        assert pkts[9].payload != pkts[10].payload == moh.frames(Codec.PCMA)[0]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert sum(gaps) / len(gaps) == pytest.approx(0.020, abs=0.002)
        assert max(gaps) < 0.1  # generous: a busy shared machine can delay a tick

    run(scenario())


@pytest.mark.parametrize("readers", ["auto", "loop"])
def test_bridge_relays_both_ways_with_transcoding(run: Run, readers: str) -> None:
    async def scenario() -> None:
        eng = engine(readers)
        loop = asyncio.get_running_loop()
        caller, agent = Peer(loop), Peer(loop)
        a, b = eng.allocate(), eng.allocate()
        a.configure(caller.addr, Codec.PCMU, 0, 101, "sendrecv")
        b.configure(agent.addr, Codec.PCMA, 8, 96, "sendrecv")
        a.bridge(b)
        voice = level(Codec.PCMU, 2500)
        for i in range(20):
            caller.send(a, build_packet(voice, 0, 1000 + i, 160 * i, 0xCA11))
            agent.send(b, build_packet(level(Codec.PCMA, -700), 8, 50 + i, 160 * i, 0xA6E))
            await asyncio.sleep(0.002)
        await until(lambda: len(caller.got) == 20 and len(agent.got) == 20)
        to_agent = [parse_packet(d) for _, d in agent.got]
        to_caller = [parse_packet(d) for _, d in caller.got]
        assert all(p.payload_type == 8 and p.payload == ulaw_to_alaw(voice) for p in to_agent)
        assert all(p.payload_type == 0 for p in to_caller)
        assert to_caller[0].payload == alaw_to_ulaw(level(Codec.PCMA, -700))
        assert {p.ssrc for p in to_agent} == {b.ssrc}
        assert a.stats["lost"] == 0 and b.stats["packets_out"] == 20
        eng.close()
        caller.close()
        agent.close()

    run(scenario())


def test_rfc4733_digits_detected_once_per_press(run: Run) -> None:
    async def scenario() -> None:
        eng = engine()
        peer = Peer(asyncio.get_running_loop())
        ep = eng.allocate()
        ep.configure(peer.addr, Codec.PCMU, 0, 101, "sendrecv")
        digits: list[tuple[str, str]] = []
        ep.on_dtmf = lambda d, m: digits.append((d, m))
        seq, ts = 1, 0
        for digit in "122#":  # the repeated 2 is two presses: two event timestamps
            for p in TelephoneEventSender().plan(digit, 60):
                peer.send(ep, build_packet(p.payload, 101, seq, ts, 7, marker=p.marker))
                seq += 1
            ts += 1600
            await asyncio.sleep(0.005)
        await until(lambda: len(digits) == 4)
        await asyncio.sleep(0.05)
        assert digits == [(d, "rfc4733") for d in "122#"]
        eng.close()
        peer.close()

    run(scenario())


def test_inband_digits_detected_without_telephone_event(run: Run) -> None:
    async def scenario() -> None:
        eng = engine()
        peer = Peer(asyncio.get_running_loop())
        ep = eng.allocate()
        ep.configure(peer.addr, Codec.PCMA, 8, None, "sendrecv")
        digits: list[tuple[str, str]] = []
        ep.on_dtmf = lambda d, m: digits.append((d, m))
        frames = [f for d in "47*" for f in dtmf_tone_frames(d, Codec.PCMA)]
        for i, f in enumerate(frames):
            peer.send(ep, build_packet(f, 8, i, 160 * i, 9))
            await asyncio.sleep(0.001)
        await until(lambda: len(digits) == 3)
        assert digits == [("4", "inband"), ("7", "inband"), ("*", "inband")]
        eng.close()
        peer.close()

    run(scenario())


def test_latches_to_the_source_port_actually_seen(run: Run) -> None:
    async def scenario() -> None:
        eng = engine()
        loop = asyncio.get_running_loop()
        sdp_addr, nat = Peer(loop), Peer(loop)  # NAT: media comes from another port
        ep = eng.allocate()
        ep.configure(sdp_addr.addr, Codec.PCMU, 0, None, "sendrecv")
        ep.play(Prompt(bytes(320 * 100)), loop=True)
        await until(lambda: len(sdp_addr.got) >= 2)
        nat.send(ep, build_packet(level(Codec.PCMU, 1), 0, 1, 0, 0x77))
        await until(lambda: ep.latched)
        before = len(sdp_addr.got)
        await until(lambda: len(nat.got) >= 5)
        assert ep.remote == nat.addr and len(sdp_addr.got) <= before + 1
        eng.close()
        sdp_addr.close()
        nat.close()

    run(scenario())


def test_recorder_writes_caller_left_agent_right(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "rec" / "call.wav"

    async def scenario() -> None:
        eng = engine()
        loop = asyncio.get_running_loop()
        caller, agent = Peer(loop), Peer(loop)
        a, b = eng.allocate(), eng.allocate()
        a.configure(caller.addr, Codec.PCMU, 0, 101, "sendrecv")
        b.configure(agent.addr, Codec.PCMU, 0, 101, "sendrecv")
        a.bridge(b)
        rec = eng.record(path, a, b)
        for i in range(25):
            caller.send(a, build_packet(level(Codec.PCMU, 4000), 0, i, 160 * i, 1))
            agent.send(b, build_packet(level(Codec.PCMU, -1500), 0, i, 160 * i, 2))
            await asyncio.sleep(0.02)
        seconds = rec.stop()
        await rec.wait_closed()
        assert rec.failed is None and 0.45 <= seconds <= 1.5  # sleeps stretch under load
        eng.close()
        await eng.wait_closed()
        caller.close()
        agent.close()

    run(scenario())
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 2
        pcm = w.readframes(w.getnframes())
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    left, right = samples[0::2], samples[1::2]
    assert sum(v > 3000 for v in left) >= 3600 and max(right) <= 0
    assert sum(v < -1000 for v in right) >= 3600 and min(left) >= 0


def test_close_releases_ports(run: Run) -> None:
    async def scenario() -> None:
        eng = engine()
        ep = eng.allocate()
        port = ep.local_port
        assert port % 2 == 0 and eng.pool.in_use == 1
        ep.close()
        ep.close()
        assert eng.pool.in_use == 0
        for p in (port, port + 1):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((LO, p))  # free again
            s.close()
        eng.close()

    run(scenario())


def test_epoll_readers_coalesce_under_load_and_lose_nothing(run: Run) -> None:
    from acd.runtime.rtppoll import EpollReaders

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        readers = EpollReaders(loop, coalesce=0.005, busy_rate=1000)
        socks = [Peer(loop) for _ in range(20)]
        for p in socks:  # Peer registered a loop reader: the epoll set takes over
            loop.remove_reader(p.sock.fileno())
        got = [0] * len(socks)

        def reader(i: int) -> None:
            socks[i].sock.recv(2048)
            got[i] += 1

        for i, p in enumerate(socks):
            readers.add(p.sock.fileno(), functools.partial(reader, i))
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

        def burst() -> None:
            for p in socks:
                tx.sendto(b"x" * 172, p.addr)

        for _ in range(150):  # 20 packets a millisecond: 20,000/s, far above busy_rate
            burst()
            await asyncio.sleep(0.001)
        await until(lambda: sum(got) == 3000)
        assert readers.busy and readers.events == 3000
        await asyncio.sleep(0.02)
        # busy: a wake-up now waits 5 ms for more, then serves every socket in one pass
        passes, t0 = readers.passes, time.monotonic()
        burst()
        for _ in range(5):
            await asyncio.sleep(0)
        assert sum(got) == 3000
        await until(lambda: sum(got) == 3020)
        assert time.monotonic() - t0 >= 0.004 and readers.passes == passes + 1
        readers.remove(socks[0].sock.fileno())
        readers.close()
        tx.close()
        for p in socks:
            p.sock.close()

    run(scenario())
