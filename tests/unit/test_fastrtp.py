"""acd.runtime._fastrtp, the C fast path of bridged RTP, against the Python path it stands in for.

Two identical worlds (a media engine on the fake loop and clock, with real loopback UDP
sockets so that C can send): every datagram goes to world P through
MediaEndpoint._on_rtp and to world N through _fastrtp.handle (falling back to _on_rtp
when it declines). After every step the two must agree on every counter, on the receive
statistics and the sender state, on what taps and DTMF listeners saw, on what recordings
buffered and handed to their writer, and byte for byte on what the far ends received.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acd.runtime import rtppoll
from acd.runtime.media import MediaEndpoint, MediaEngine
from acd.runtime.rtpports import open_udp
from acd.runtime.rtprecorder import Recorder
from media.dtmf import TelephoneEventSender
from media.g711 import Codec, encode, silence, ulaw_to_alaw
from media.prompt import Prompt
from media.rtp import build_packet
from tests.conftest import require
from tests.unit.test_rtp_runtime import FakeClock, FakeLoop

try:
    from acd.runtime import _fastrtp
except ImportError:  # pragma: no cover - the build had no compiler
    _fastrtp = None  # type: ignore[assignment]

LO = "127.0.0.1"


@pytest.fixture(autouse=True)
def _built() -> None:
    require(_fastrtp is not None, "acd.runtime._fastrtp is not built (no C compiler at install)")
    # as acd.runtime.rtppoll does at import, which ACD_NATIVE_RTP=0 skips
    rtppoll.configure_native(_fastrtp)


def _serving_natively() -> None:
    """For the tests of the engine's own serving, which ACD_NATIVE_RTP=0 turns off."""
    if os.environ.get("ACD_NATIVE_RTP") == "0":
        pytest.skip("ACD_NATIVE_RTP=0: the engine serves in Python")
    require(rtppoll.NATIVE, "acd.runtime._fastrtp is built but did not load")


def _receiver() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((LO, 0))
    s.setblocking(False)
    return s


def _drain(s: socket.socket) -> list[bytes]:
    got = []
    while True:
        try:
            got.append(s.recv(4096))
        except BlockingIOError:
            return got


class FakeWriter:
    """What a Recorder hands its writer thread, kept: (op, data) per submission."""

    def __init__(self) -> None:
        self.items: list[tuple[int, tuple[bytes, ...]]] = []
        self.refuse = False  # a full queue: the recording fails

    def submit(self, job: Any, op: int, data: tuple[bytes, ...] = (), *,
               control: bool = False) -> bool:
        if self.refuse and not control:
            return False
        self.items.append((op, data))
        return True


class World:
    """Legs a and b bridged, each with a far end (a real socket) that media comes from."""

    def __init__(self, native: bool, codec_b: Codec = Codec.PCMU) -> None:
        self.native = native
        self.clock = FakeClock()
        self.loop = FakeLoop(self.clock)
        self.engine = MediaEngine(cast(Any, self.loop), LO, (41000, 41999), self.clock,
                                  open_socket=open_udp, readers="loop",
                                  rtcp_interval=1e9)  # its randomised timing would differ
        self.far = [_receiver(), _receiver()]
        self.legs: list[MediaEndpoint] = []
        for i, codec in enumerate((Codec.PCMU, codec_b)):
            ep = self.engine.allocate()
            sender = ep._out.sender
            sender.ssrc, sender._seq, sender._ts = 0xA0A0A0A0 + i, 1000 * (i + 1), 50_000 * (i + 1)
            ep.configure(self.far[i].getsockname(), codec, int(codec), 101, "sendrecv")
            self.legs.append(ep)
        self.legs[0].bridge(self.legs[1])
        self.seen: list[tuple[Any, ...]] = []  # what taps and DTMF listeners were given
        self.handled = 0  # datagrams C took
        self.writer = FakeWriter()
        self.recorders: list[Recorder] = []

    def feed(self, leg: int, data: bytes, addr: tuple[str, int] | None = None) -> None:
        ep = self.legs[leg]
        addr = addr or self.far[leg].getsockname()
        if self.native and _fastrtp.handle(ep, data, addr):
            self.handled += 1
            return
        ep._on_rtp(data, addr)

    def record(self, legs: list[int]) -> None:
        rec = Recorder(cast(Any, self.writer), f"r{len(self.recorders)}.wav",
                       [self.legs[i] for i in legs], self.clock.now,
                       on_error=lambda exc: self.seen.append(("rec_error", str(exc))))
        self.recorders.append(rec)

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seen": list(self.seen), "written": list(self.writer.items)}
        out["recordings"] = [([bytes(b) for b in r._aligner._bufs], list(r._aligner._pos),
                               r._samples, r._last_flush, r.paused, r.stopped,
                               r.failed is not None) for r in self.recorders]
        for i, ep in enumerate(self.legs):
            rx, o = ep._rx, ep._out
            stats = dict(ep.stats)
            # the worlds' sockets differ: name the far end instead of its address
            fars = [f.getsockname() for f in self.far]
            if stats["remote"] in fars:
                stats["remote"] = fars.index(stats["remote"])
            out[f"ep{i}"] = (stats, ep._rx_ssrc, ep._lost_before, ep.last_rx,
                             {k: getattr(rx, k) for k in rx.__slots__})
            out[f"out{i}"] = (o.last_sent, o.packets_out, o.send_errors, o._relaying, o.busy,
                              {k: getattr(o.sender, k) for k in type(o.sender).__mro__[1].__slots__})
            out[f"far{i}"] = _drain(self.far[i])
        return out

    def close(self) -> None:
        self.engine.close()
        for s in self.far:
            s.close()


def _rtp(payload: bytes, seq: int, ts: int, ssrc: int, pt: int = 0, marker: bool = False) -> bytes:
    return build_packet(payload, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, marker=marker)


# one step of a scenario: (what, leg, argument)
STEP = st.tuples(
    st.sampled_from(["next", "next", "next", "next", "dup", "back", "jump", "ssrc", "event",
                     "cn", "marker", "padding", "short", "foreign", "play", "stop", "tap",
                     "intap", "untap", "listen", "unlisten", "tick", "unbridge", "bridge",
                     "sendonly", "alaw", "raise", "record", "record", "record1", "pause",
                     "resume", "recstop", "diskfull"]),
    st.integers(0, 1),
    st.integers(1, 40),
)


class Scenario:
    def __init__(self) -> None:
        self.seq = [100, 60000]
        self.ts = [8000, 4_294_960_000]  # leg 1 wraps its timestamp soon
        self.ssrc = [0x1111, 0x2222]


def _apply(w: World, sc: Scenario, what: str, leg: int, k: int) -> None:
    ep = w.legs[leg]
    frame = encode(ep.codec, struct.pack("<h", 300 * k) * 160)

    def next_packet(pt: int = 0, marker: bool = False, payload: bytes = frame) -> bytes:
        sc.seq[leg] += 1
        sc.ts[leg] += 160
        return _rtp(payload, sc.seq[leg], sc.ts[leg], sc.ssrc[leg], pt, marker)

    if what == "next":
        w.feed(leg, next_packet(pt=ep.recv_pt))
    elif what == "dup":
        w.feed(leg, _rtp(frame, sc.seq[leg], sc.ts[leg], sc.ssrc[leg], ep.recv_pt))
    elif what == "back":
        w.feed(leg, _rtp(frame, sc.seq[leg] - k, sc.ts[leg] - 160 * k, sc.ssrc[leg], ep.recv_pt))
    elif what == "jump":
        sc.seq[leg] += 1000 * k
        w.feed(leg, next_packet(pt=ep.recv_pt))
    elif what == "ssrc":
        sc.ssrc[leg] += 1
        w.feed(leg, next_packet(pt=ep.recv_pt))
    elif what == "event":
        ev = TelephoneEventSender().plan("5", 60)
        for plan in ev:
            sc.seq[leg] += 1
            w.feed(leg, _rtp(plan.payload, sc.seq[leg], sc.ts[leg], sc.ssrc[leg], 101,
                             plan.marker))
    elif what == "cn":
        w.feed(leg, next_packet(pt=13, payload=b"\x40"))
    elif what == "marker":
        w.feed(leg, next_packet(pt=ep.recv_pt, marker=True))
    elif what == "padding":
        pkt = bytearray(next_packet(pt=ep.recv_pt) + b"\x00\x00\x03")
        pkt[0] |= 0x20
        w.feed(leg, bytes(pkt))
    elif what == "short":
        w.feed(leg, next_packet(pt=ep.recv_pt)[:k % 12])
    elif what == "foreign":
        w.feed(leg, next_packet(pt=ep.recv_pt), (LO, 9))
    elif what == "play":
        ep.play(Prompt(struct.pack("<h", 1000) * 160 * (k % 3 + 1), "p"))
    elif what == "stop":
        ep.stop_play()
    elif what == "tap":
        ep.add_tap(lambda pcm, d, leg=leg: w.seen.append(("tap", leg, d, pcm)))
    elif what == "intap":  # what a recording adds: told only what arrives
        ep.add_tap(lambda pcm, d, leg=leg: w.seen.append(("intap", leg, d, pcm)), out=False)
    elif what == "untap":
        ep._taps.clear()
        ep._out_taps.clear()
    elif what == "listen":
        ep.on_dtmf = lambda digit, how, leg=leg: w.seen.append(("dtmf", leg, digit, how))
    elif what == "unlisten":
        ep.on_dtmf = None
    elif what == "tick":
        w.clock.t += 0.001 * k  # time moves, so jitter and idle gaps differ from packet to packet
        w.loop.advance(0.0)
    elif what == "unbridge":
        ep.unbridge()
    elif what == "bridge":
        w.legs[0].bridge(w.legs[1])
    elif what == "sendonly":
        ep.configure(w.far[leg].getsockname(), ep.codec, ep.pt, ep.te_pt,
                     "sendrecv" if ep.direction != "sendrecv" else "sendonly")
    elif what == "alaw":
        codec = Codec.PCMA if ep.codec is Codec.PCMU else Codec.PCMU
        ep.configure(w.far[leg].getsockname(), codec, int(codec), ep.te_pt, ep.direction)
    elif what == "raise":
        def boom(pcm: bytes, d: str) -> None:
            raise RuntimeError("tap failed")
        remove = ep.add_tap(boom)
        with contextlib.suppress(RuntimeError):
            w.feed(leg, next_packet(pt=ep.recv_pt))
        remove()
    elif what == "record":  # stereo: leg 0 left, leg 1 right
        w.record([0, 1])
    elif what == "record1":  # mono, of this leg
        w.record([leg])
    elif what == "pause" and w.recorders:
        w.recorders[k % len(w.recorders)].pause()
    elif what == "resume" and w.recorders:
        w.recorders[k % len(w.recorders)].resume()
    elif what == "recstop" and w.recorders:
        w.recorders[k % len(w.recorders)].stop()
    elif what == "diskfull":  # the writer's queue refuses data: recordings fail and detach
        w.writer.refuse = not w.writer.refuse
    w.clock.t += 0.0201


def _compare(steps: list[tuple[str, int, int]]) -> int:
    """Run the steps in both worlds, comparing after each; the datagrams C took."""
    p, n = World(native=False), World(native=True)
    sp, sn = Scenario(), Scenario()
    try:
        for what, leg, k in steps:
            _apply(p, sp, what, leg, k)
            _apply(n, sn, what, leg, k)
            assert n.state() == p.state(), (what, leg, k)
        return n.handled
    finally:
        p.close()
        n.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, min_size=1, max_size=60))
def test_the_c_path_does_what_the_python_path_does(steps: list[tuple[str, int, int]]) -> None:
    _compare(steps)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.binary(max_size=200), st.tuples(st.integers(0, 0xFFFF),
                                                              st.integers(0, 0xFFFFFFFF),
                                                              st.sampled_from([0, 8, 101]),
                                                              st.booleans())),
                max_size=40))
def test_arbitrary_datagrams_from_the_latched_source_agree(
        packets: list[bytes | tuple[int, int, int, bool]]) -> None:
    """Any bytes, and headers with any sequence number, timestamp and type, after a
    latched, in-sequence start: both paths end in the same state, and C never raises."""
    p, n = World(native=False), World(native=True)
    try:
        for w in (p, n):
            sc = Scenario()
            for _ in range(3):
                _apply(w, sc, "next", 0, 1)
        for item in packets:
            if isinstance(item, tuple):
                seq, ts, pt, marker = item
                item = _rtp(silence(Codec.PCMU), seq, ts, 0x1111, pt, marker)
            for w in (p, n):
                w.feed(0, item)
            assert n.state() == p.state()
    finally:
        p.close()
        n.close()


def test_a_call_with_everything_in_it_agrees_and_mostly_takes_the_c_path() -> None:
    talk = [("next", 0, 3), ("next", 1, 5)] * 20
    events = [[("tap", 0, 1)], [("listen", 1, 1), ("event", 1, 1)], [("alaw", 1, 1)],
              [("untap", 0, 1), ("play", 0, 2), ("tick", 0, 30)],
              [("dup", 0, 1), ("back", 1, 3), ("jump", 0, 2), ("ssrc", 1, 1)],
              [("marker", 0, 1), ("padding", 1, 1), ("cn", 0, 1), ("raise", 0, 1)],
              [("sendonly", 1, 1)], [("unbridge", 0, 1)]]
    steps = list(talk)
    for each in events:
        steps += each + talk
    assert _compare(steps) > 0.8 * len(talk) * 8


def test_a_recorded_call_agrees_and_is_recorded_in_c() -> None:
    talk = [("next", 0, 3), ("next", 1, 5)] * 30
    gap = [("tick", 0, 40), ("tick", 0, 40)]  # > slack: the next frame goes after silence
    steps = [("record", 0, 1), *talk, ("pause", 0, 0), *talk, ("resume", 0, 0), *gap, *talk,
             ("record1", 1, 1), ("alaw", 1, 1), *talk, ("intap", 0, 1), *talk,
             ("recstop", 0, 0), *talk, ("diskfull", 0, 0), *talk, ("diskfull", 0, 0),
             ("record", 0, 1), *talk]
    before = _fastrtp.counters()["captured"]
    _compare(steps)
    # the recorded packets with only recordings tapping them went through C (the "intap"
    # test tap sends its leg back to _audio_in until the end)
    assert _fastrtp.counters()["captured"] - before > 4 * len(talk)


def test_c_and_python_record_the_same_file() -> None:
    p, n = World(native=False), World(native=True)
    try:
        for w in (p, n):
            sc = Scenario()
            w.record([0, 1])
            for i in range(120):
                _apply(w, sc, "next", i % 2, i % 7 + 1)
                if i % 25 == 0:
                    _apply(w, sc, "tick", 0, 90)
            w.recorders[0].stop()
        assert n.writer.items == p.writer.items
        pcm = b"".join(b"".join(data) for op, data in n.writer.items if data)
        assert len(pcm) > 2 * 2 * 160 * 50 and pcm.count(b"\x00") < len(pcm)
    finally:
        p.close()
        n.close()


def test_plain_packets_take_the_c_path_and_reach_the_other_far_end() -> None:
    w = World(native=True, codec_b=Codec.PCMA)
    try:
        sc = Scenario()
        for _ in range(3):
            _apply(w, sc, "next", 0, 1)  # the first one latches (Python), then C
        before = _fastrtp.counters()
        for _ in range(5):
            sc.seq[0] += 1
            sc.ts[0] += 160
            pkt = _rtp(encode(Codec.PCMU, b"\x00\x10" * 160), sc.seq[0], sc.ts[0], sc.ssrc[0])
            assert _fastrtp.handle(w.legs[0], pkt, w.far[0].getsockname())
        after = _fastrtp.counters()
        assert after["relayed"] - before["relayed"] == 5
        got = _drain(w.far[1])
        assert len(got) == 8
        # transcoded to the other leg's law, re-stamped onto its stream
        assert got[-1][12:] == ulaw_to_alaw(encode(Codec.PCMU, b"\x00\x10" * 160))
        assert struct.unpack_from("!I", got[-1], 8)[0] == 0xA0A0A0A1
        assert w.legs[0].packets_in == 8 and w.legs[1].packets_out == 8
    finally:
        w.close()


def test_packets_from_elsewhere_are_declined_untouched() -> None:
    w = World(native=True)
    try:
        sc = Scenario()
        _apply(w, sc, "next", 0, 1)
        w.state()  # takes what the far ends received so far
        before = w.state()
        pkt = _rtp(silence(Codec.PCMU), sc.seq[0] + 1, sc.ts[0] + 160, sc.ssrc[0])
        assert not _fastrtp.handle(w.legs[0], pkt, (LO, 9))  # not the latched source
        assert not _fastrtp.handle(w.legs[0], pkt[:11], w.far[0].getsockname())
        assert not _fastrtp.handle(w.legs[0], b"\xa0" + pkt[1:], w.far[0].getsockname())
        assert w.state() == before
    finally:
        w.close()


async def test_the_engine_serves_real_sockets_natively() -> None:
    """The real event loop, epoll readers and sockets: a bridged call relays both ways
    through acd.runtime._fastrtp.serve."""
    import asyncio

    from acd.clock import SystemClock

    _serving_natively()
    loop = asyncio.get_running_loop()
    eng = MediaEngine(loop, LO, (42000, 42999), SystemClock())
    far = [_receiver(), _receiver()]
    try:
        assert eng.readers.native
        a, b = eng.allocate(), eng.allocate()
        a.configure(far[0].getsockname(), Codec.PCMU, 0, 101, "sendrecv")
        b.configure(far[1].getsockname(), Codec.PCMU, 0, 101, "sendrecv")
        a.bridge(b)
        before = _fastrtp.counters()["native"]
        for i in range(20):
            for side, ep in ((0, a), (1, b)):
                far[side].sendto(_rtp(silence(Codec.PCMU), 10 + i, 160 * i, 7 + side),
                                 (LO, ep.local_port))
            await asyncio.sleep(0.005)
        for _ in range(100):
            if a.packets_out == 20 and b.packets_out == 20:
                break
            await asyncio.sleep(0.01)
        assert (a.packets_in, b.packets_in, a.packets_out, b.packets_out) == (20, 20, 20, 20)
        assert _fastrtp.counters()["native"] - before >= 36  # all but each side's first
        assert len(_drain(far[0])) == 20 and len(_drain(far[1])) == 20
    finally:
        eng.close()
        for s in far:
            s.close()


async def test_a_failure_of_native_serving_falls_back_to_the_python_callbacks() -> None:
    import asyncio

    from acd.runtime.rtppoll import EpollReaders

    _serving_natively()
    loop = asyncio.get_running_loop()
    readers = EpollReaders(loop)
    sock, far = _receiver(), _receiver()
    got: list[bytes] = []
    try:
        assert readers.native
        # not a MediaEndpoint: C cannot read its batch size and gives up
        readers.add(sock.fileno(), lambda: got.append(sock.recv(100)), endpoint=object())
        far.sendto(b"x" * 20, sock.getsockname())
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.01)
        assert got == [b"x" * 20] and not readers.native
    finally:
        readers.close()
        sock.close()
        far.close()


def test_an_unconfigured_module_refuses_instead_of_crashing() -> None:
    import subprocess
    import sys

    code = ("from acd.runtime import _fastrtp\n"
            "try:\n    _fastrtp.handle(object(), bytes(20), ('127.0.0.1', 9))\n"
            "except RuntimeError as e:\n    print('refused:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "refused: _fastrtp.configure()" in out.stdout, out
