"""The media runtime on a fake event loop, fake clock and in-memory UDP: the shared ticker's
pacing, stream continuity across sources, bridging, DTMF, latching, inactivity, RTCP, close.

The fakes live here and are imported by the other test_rtp_runtime_* modules.
"""

from __future__ import annotations

import heapq
import itertools
import struct
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import pytest

from acd.runtime.media import MediaEndpoint, MediaEngine, PortsExhausted
from media.dtmf import TelephoneEventSender, parse_event
from media.g711 import Codec, alaw_to_ulaw, encode, silence, ulaw_to_alaw
from media.prompt import Prompt
from media.rtp import build_packet, build_rr, parse_packet, parse_rtcp

Addr = tuple[str, int]
PEER: Addr = ("192.0.2.10", 30000)  # the remote party, as the SDP gives it
IP = "10.0.0.1"


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1_700_000_000.0 + self.t


class Handle:
    _ids = itertools.count()

    def __init__(self, when: float, cb: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.when, self.cb, self.args = when, cb, args
        self.cancelled = False
        self.id = next(self._ids)

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: Handle) -> bool:
        return (self.when, self.id) < (other.when, other.id)


class FakeLoop:
    """Just what the media engine uses of an event loop, on the fake clock. `early` makes
    timers fire that many seconds before their time, as uvloop's millisecond rounding can."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.timers: list[Handle] = []
        self.readers: dict[int, Callable[[], None]] = {}
        self.early = 0.0
        self.from_threads: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()

    def time(self) -> float:
        return self.clock.t

    def call_at(self, when: float, cb: Callable[..., Any], *args: Any) -> Handle:
        h = Handle(when, cb, args)
        heapq.heappush(self.timers, h)
        return h

    def call_later(self, delay: float, cb: Callable[..., Any], *args: Any) -> Handle:
        return self.call_at(self.clock.t + delay, cb, *args)

    def call_soon(self, cb: Callable[..., Any], *args: Any) -> Handle:
        return self.call_at(self.clock.t, cb, *args)

    def call_soon_threadsafe(self, cb: Callable[..., Any], *args: Any) -> None:
        self.from_threads.append((cb, args))  # deque.append is atomic; run by poll()

    def add_reader(self, fd: int, cb: Callable[..., Any], *args: Any) -> None:
        assert fd not in self.readers
        self.readers[fd] = lambda: cb(*args)

    def remove_reader(self, fd: int) -> bool:
        return self.readers.pop(fd, None) is not None

    def pending(self) -> list[Handle]:
        return [h for h in self.timers if not h.cancelled]

    def run_until(self, t: float) -> None:
        """Advance the clock to t, firing timers (early by `early`) and readers in order."""
        while True:
            self.poll()
            live = [h for h in self.timers if not h.cancelled]
            if not live or min(live).when - self.early > t:
                break
            h = heapq.heappop(self.timers)
            if h.cancelled:
                continue
            self.clock.t = max(self.clock.t, h.when - self.early)
            h.cb(*h.args)
        self.clock.t = max(self.clock.t, t)
        self.poll()

    def advance(self, dt: float) -> None:
        self.run_until(self.clock.t + dt)

    def poll(self) -> None:
        while self.from_threads:
            cb, args = self.from_threads.popleft()
            cb(*args)
        busy = True
        while busy:  # level-triggered, like epoll: call readers while data is waiting
            busy = False
            for fd, cb in list(self.readers.items()):
                sock = FakeSocket.by_fd.get(fd)
                if sock is not None and sock.queue and fd in self.readers:
                    busy = True
                    cb()


class FakeNet:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.socks: dict[Addr, FakeSocket] = {}
        self.taken: set[Addr] = set()  # bound by "another process"

    def open(self, ip: str, port: int) -> FakeSocket:
        if (ip, port) in self.socks or (ip, port) in self.taken:
            raise OSError(98, "Address already in use")
        sock = FakeSocket(self, (ip, port))
        self.socks[(ip, port)] = sock
        return sock

    def bind(self, addr: Addr) -> FakeSocket:
        return self.open(*addr)


class FakeSocket:
    by_fd: dict[int, FakeSocket] = {}
    _fds = itertools.count(100)

    def __init__(self, net: FakeNet, addr: Addr) -> None:
        self.net, self.addr = net, addr
        self.queue: deque[tuple[bytes, Addr]] = deque()
        self.sent: list[tuple[bytes, Addr]] = []
        self.arrivals: list[float] = []  # when each datagram was delivered here
        self.fd = next(self._fds)
        self.closed = False
        FakeSocket.by_fd[self.fd] = self

    def fileno(self) -> int:
        return self.fd

    def recvfrom(self, bufsize: int) -> tuple[bytes, Addr]:
        if not self.queue:
            raise BlockingIOError
        return self.queue.popleft()

    def sendto(self, data: bytes, addr: Addr) -> int:
        assert not self.closed
        self.sent.append((bytes(data), addr))
        target = self.net.socks.get(addr)
        if target is not None and not target.closed:
            target.queue.append((bytes(data), self.addr))
            target.arrivals.append(self.net.clock.t)
        return len(data)

    def close(self) -> None:
        self.closed = True
        if self.net.socks.get(self.addr) is self:
            del self.net.socks[self.addr]

    def take(self) -> list[tuple[bytes, Addr]]:
        out = list(self.queue)
        self.queue.clear()
        return out


class Rig:
    """An engine on the fakes, plus a remote-party socket per leg."""

    def __init__(self, ports: tuple[int, int] = (20000, 20099), **kw: Any) -> None:
        self.clock = FakeClock()
        self.loop = FakeLoop(self.clock)
        self.net = FakeNet(self.clock)
        self.engine = MediaEngine(cast(Any, self.loop), IP, ports, self.clock,
                                  open_socket=self.net.open, readers="loop", **kw)

    def leg(self, remote: Addr = PEER, codec: Codec = Codec.PCMU, te_pt: int | None = 101,
            direction: str = "sendrecv") -> tuple[MediaEndpoint, FakeSocket]:
        ep = self.engine.allocate()
        peer = self.net.bind(remote)
        ep.configure(remote, codec, int(codec), te_pt, direction)
        return ep, peer

    def to(self, ep: MediaEndpoint, sock: FakeSocket, pkt: bytes) -> None:
        sock.sendto(pkt, (IP, ep.local_port))
        self.loop.poll()


def prompt(frames: int, level: int = 1000) -> Prompt:
    return Prompt(struct.pack("<h", level) * 160 * frames, f"p{frames}")


def hdr(pkt: bytes) -> tuple[int, bool, int, int, int]:
    _b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", pkt)
    return b1 & 0x7F, b1 > 0x7F, seq, ts, ssrc


def rtp(payload: bytes, seq: int, ts: int, pt: int = 0, ssrc: int = 0x1234, marker: bool = False
        ) -> bytes:
    return build_packet(payload, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, marker=marker)


# -- the shared ticker ---------------------------------------------------------------------------

def test_prompt_paced_on_absolute_deadlines_then_on_done_and_ticker_stops() -> None:
    r = Rig()
    ep, peer = r.leg()
    done: list[float] = []
    start = r.clock.t
    ep.play(prompt(10), on_done=lambda: done.append(r.clock.t))
    r.loop.advance(0.5)
    arrivals = peer.arrivals
    assert len(arrivals) == 10
    assert arrivals == pytest.approx([start + 0.020 * i for i in range(10)], abs=1e-9)
    assert done == [pytest.approx(start + 0.200)]
    # nothing plays: the ticker is gone, only housekeeping remains
    assert all(h.cb.__name__ == "_housekeep" for h in r.loop.pending())
    assert r.engine.playing == 0


def test_many_prompts_share_one_timer() -> None:
    r = Rig(ports=(20000, 21999))
    legs = [r.leg(remote=("192.0.2.10", 30000 + i)) for i in range(500)]
    for ep, _ in legs:
        ep.play(prompt(50), loop=True)
    r.loop.advance(0.1)
    ticks = [h for h in r.loop.pending() if h.cb.__name__ == "_on_tick"]
    assert len(ticks) == 1
    assert all(len(peer.sent) == 0 and len(peer.take()) == 6 for _, peer in legs)


def test_early_timer_fire_still_sends_every_frame() -> None:
    r = Rig()
    r.loop.early = 0.0005
    ep, peer = r.leg()
    ep.play(prompt(100), loop=True)
    r.loop.advance(0.99)
    assert len(peer.take()) == 50
    assert max(peer.arrivals[i] - (peer.arrivals[0] + 0.02 * i) for i in range(50)) <= 0


def test_short_stall_is_caught_up_and_a_long_one_resyncs() -> None:
    r = Rig(max_burst=3)
    ep, peer = r.leg()
    ep.play(prompt(1000), loop=True)
    r.loop.advance(0.1)
    peer.take()
    # the loop was blocked for 50 ms: the next tick sends the 2-3 frames that fell due
    handle = next(h for h in r.loop.pending() if h.cb.__name__ == "_on_tick")
    r.clock.t = handle.when + 0.045
    r.loop.run_until(r.clock.t)
    burst = len(peer.take())
    assert burst == 3
    # blocked for 300 ms: one frame, then the schedule continues from now
    handle = next(h for h in r.loop.pending() if h.cb.__name__ == "_on_tick")
    r.clock.t = handle.when + 0.3
    r.loop.run_until(r.clock.t)
    assert len(peer.take()) == 1 and r.engine.resyncs == 1
    r.loop.advance(0.101)
    assert len(peer.take()) == 5
    assert r.engine.late_ticks == 2 and r.engine.max_tick_lateness == pytest.approx(0.3)


def test_stream_continuity_across_prompt_silence_moh_with_markers() -> None:
    r = Rig()
    ep, peer = r.leg()
    ep.play(prompt(3))
    r.loop.advance(0.1)
    first = [hdr(p) for p, _ in peer.take()]
    r.loop.advance(1.0)  # silence: nothing sent
    assert peer.take() == []
    ep.play(prompt(2), loop=True)  # music on hold
    r.loop.advance(0.1)
    moh = [hdr(p) for p, _ in peer.take()]
    ep.stop_play()
    r.loop.advance(0.1)
    assert peer.take() == []
    pkts = first + moh
    assert len({h[4] for h in pkts}) == 1  # one SSRC
    assert [h[2] for h in pkts] == [(first[0][2] + i) & 0xFFFF for i in range(len(pkts))]
    assert [h[1] for h in pkts] == [True, False, False, True] + [False] * (len(moh) - 1)
    assert first[1][3] - first[0][3] == 160
    # the timestamp covers the silence: 1.06 s from the last prompt frame to the first MOH one
    assert (moh[0][3] - first[-1][3]) & 0xFFFFFFFF == 8480


def test_stop_play_is_barge_in_without_on_done() -> None:
    r = Rig()
    ep, peer = r.leg()
    done: list[int] = []
    ep.play(prompt(50), on_done=lambda: done.append(1))
    r.loop.advance(0.05)
    ep.stop_play()
    n = len(peer.take())
    r.loop.advance(0.5)
    assert peer.take() == [] and done == [] and n == 3 and not ep.playing


def test_on_done_can_chain_the_next_prompt_and_empty_programme_finishes_soon() -> None:
    r = Rig()
    ep, peer = r.leg()
    order: list[str] = []

    def first_done() -> None:
        order.append("a")
        ep.play(prompt(2), on_done=lambda: order.append("b"))

    ep.play(prompt(2), on_done=first_done)
    r.loop.advance(0.2)
    got = [hdr(p) for p, _ in peer.take()]
    assert order == ["a", "b"] and len(got) == 4
    # the second programme takes the slot the first one ended in: no hole, marker on switch
    assert [h[3] - got[0][3] for h in got] == [0, 160, 320, 480]
    assert peer.arrivals == pytest.approx([peer.arrivals[0] + 0.02 * i for i in range(4)])
    assert [h[1] for h in got] == [True, False, True, False]
    ep.play([], on_done=lambda: order.append("empty"))
    assert order == ["a", "b"]  # not from inside play()
    r.loop.advance(0.001)
    assert order[-1] == "empty"


def test_failing_on_done_does_not_stop_other_streams() -> None:
    r = Rig()
    a, pa = r.leg(remote=("192.0.2.1", 1000))
    b, pb = r.leg(remote=("192.0.2.2", 1000))

    def boom() -> None:
        raise RuntimeError("boom")

    a.play(prompt(1), on_done=boom)
    b.play(prompt(10))
    r.loop.advance(0.3)
    assert len(pa.take()) == 1 and len(pb.take()) == 10


def test_directions_limit_sending() -> None:
    r = Rig()
    ep, peer = r.leg(direction="recvonly")
    ep.play(prompt(5))
    r.loop.advance(0.2)
    assert peer.take() == []
    with pytest.raises(ValueError):
        ep.configure(PEER, Codec.PCMU, 0, None, "both")


# -- bridging --------------------------------------------------------------------------------------

def bridged(r: Rig, codec_b: Codec = Codec.PCMA, te_b: int | None = 96
            ) -> tuple[MediaEndpoint, FakeSocket, MediaEndpoint, FakeSocket]:
    a, pa = r.leg(remote=("192.0.2.1", 4000), codec=Codec.PCMU, te_pt=101)
    b, pb = r.leg(remote=("192.0.2.2", 5000), codec=codec_b, te_pt=te_b)
    a.bridge(b)
    return a, pa, b, pb


def test_bridge_relays_both_ways_with_transcoding_and_restamping() -> None:
    r = Rig()
    a, pa, b, pb = bridged(r)
    ulaw = encode(Codec.PCMU, struct.pack("<160h", *range(-8000, 8000, 100)))
    for i in range(5):
        r.to(a, pa, rtp(ulaw, 100 + i, 5000 + 160 * i, ssrc=0xAAAA))
        r.to(b, pb, rtp(silence(Codec.PCMA), 7 + i, 90 + 160 * i, pt=8, ssrc=0xBBBB))
    to_b = [parse_packet(p) for p, _ in pb.take()]
    to_a = [parse_packet(p) for p, _ in pa.take()]
    assert len(to_b) == len(to_a) == 5
    assert all(p.payload == ulaw_to_alaw(ulaw) and p.payload_type == 8 for p in to_b)
    assert all(p.payload == alaw_to_ulaw(silence(Codec.PCMA)) and p.payload_type == 0 for p in to_a)
    assert {p.ssrc for p in to_b} == {b.ssrc} and {p.ssrc for p in to_a} == {a.ssrc}
    assert [p.marker for p in to_b] == [True, False, False, False, False]
    assert [(p.sequence - to_b[0].sequence) & 0xFFFF for p in to_b] == list(range(5))
    assert a.stats["packets_in"] == 5 and b.stats["packets_out"] == 5


def test_prompt_on_a_bridged_leg_pauses_relay_and_relay_resumes_with_marker() -> None:
    r = Rig()
    a, pa, b, pb = bridged(r, codec_b=Codec.PCMU)
    seq = itertools.count(1)
    ts = itertools.count(0, 160)

    def speak(n: int) -> None:
        for _ in range(n):
            r.to(a, pa, rtp(silence(Codec.PCMU), next(seq), next(ts)))
            r.loop.advance(0.02)

    speak(3)
    b.play(prompt(2))  # e.g. a whisper to the agent
    speak(4)
    speak(2)
    got = [hdr(p) for p, _ in pb.take()]
    seqs = [h[2] for h in got]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(got))]
    markers = [h[1] for h in got]
    # relay(3, marker first) + prompt(2, marker) + relay again (marker)
    assert markers[:6] == [True, False, False, True, False, True]
    assert len(got) == 3 + 2 + 4


def test_unbridge_stops_relaying() -> None:
    r = Rig()
    a, pa, b, pb = bridged(r)
    a.unbridge()
    r.to(a, pa, rtp(silence(Codec.PCMU), 1, 0))
    assert pb.take() == [] and a.bridged_to is None and b.bridged_to is None
    with pytest.raises(ValueError):
        a.bridge(a)


def press(r: Rig, ep: MediaEndpoint, sock: FakeSocket, digit: str, seq: int, ts: int,
          pt: int = 101, ssrc: int = 0x1234) -> int:
    for i, p in enumerate(TelephoneEventSender().plan(digit, 100)):
        r.to(ep, sock, rtp(p.payload, seq + i, ts, pt=pt, ssrc=ssrc, marker=p.marker))
    return seq + i + 1


def test_rfc4733_digits_detected_once_and_passed_through_with_mapped_pt() -> None:
    r = Rig()
    a, pa, _b, pb = bridged(r)
    digits: list[tuple[str, str]] = []
    a.on_dtmf = lambda d, m: digits.append((d, m))
    seq = press(r, a, pa, "5", 10, 16000)
    press(r, a, pa, "#", seq, 32000)
    assert digits == [("5", "rfc4733"), ("#", "rfc4733")]
    out = [parse_packet(p) for p, _ in pb.take()]
    assert {p.payload_type for p in out} == {96} and len(out) == 14  # 4 updates + 3 ends each
    assert {parse_event(p.payload).event for p in out} == {5, 11}
    # events take their sequence numbers: nothing counted as lost
    assert a.stats["lost"] == 0


def test_rfc4733_regenerated_in_band_for_a_leg_without_telephone_event() -> None:
    from media.dtmf import GoertzelDetector

    r = Rig()
    a, pa, _b, pb = bridged(r, codec_b=Codec.PCMA, te_b=None)
    press(r, a, pa, "7", 10, 16000)
    r.loop.advance(0.3)
    frames = [parse_packet(p) for p, _ in pb.take()]
    assert {p.payload_type for p in frames} == {8}
    from media.g711 import decode

    det = GoertzelDetector()
    assert det.feed(b"".join(decode(Codec.PCMA, p.payload) for p in frames)) == "7"


def tone_pcm(digit: str, ms: int) -> bytes:
    from acd.media_session import dtmf_tone_frames
    from media.g711 import decode

    return b"".join(decode(Codec.PCMU, f) for f in dtmf_tone_frames(digit, Codec.PCMU, ms))


def test_inband_detection_only_without_telephone_event() -> None:
    r = Rig()
    plain, p1 = r.leg(remote=("192.0.2.1", 4000), te_pt=None)
    with_te, p2 = r.leg(remote=("192.0.2.2", 4000), te_pt=101)
    got: list[tuple[str, str]] = []
    plain.on_dtmf = lambda d, m: got.append((d, m))
    with_te.on_dtmf = lambda d, m: got.append(("te:" + d, m))
    pcm = tone_pcm("3", 100) + tone_pcm("9", 100)
    ulaw = encode(Codec.PCMU, pcm)
    for i in range(0, len(ulaw), 160):
        r.to(plain, p1, rtp(ulaw[i:i + 160], i // 160, i))
        r.to(with_te, p2, rtp(ulaw[i:i + 160], i // 160, i))
    assert got == [("3", "inband"), ("9", "inband")]


def test_send_dtmf_rfc4733_and_inband() -> None:
    r = Rig()
    ep, peer = r.leg(te_pt=101)
    ep.send_dtmf("1")
    ep.send_dtmf("2")
    r.loop.advance(0.5)
    pkts = [parse_packet(p) for p, _ in peer.take()]
    events = [(parse_event(p.payload).event, p.marker, p.timestamp) for p in pkts]
    assert [e[0] for e in events] == [1] * 7 + [2] * 7
    assert [e[1] for e in events] == [True] + [False] * 6 + [True] + [False] * 6
    assert len({e[2] for e in events[:7]}) == 1 and events[7][2] != events[0][2]
    plain, peer2 = r.leg(remote=("192.0.2.3", 1), te_pt=None)
    got: list[tuple[str, str]] = []
    listener, p3 = r.leg(remote=("192.0.2.4", 1), te_pt=None)
    listener.on_dtmf = lambda d, m: got.append((d, m))
    plain.send_dtmf("9")
    r.loop.advance(0.5)
    for i, (pkt, _) in enumerate(peer2.take()):
        r.to(listener, p3, rtp(parse_packet(pkt).payload, i, 160 * i))
    assert got == [("9", "inband")]


# -- latching, inactivity, RTCP, stats ----------------------------------------------------------

def test_latches_to_the_real_source_and_refuses_others_while_it_lives() -> None:
    r = Rig()
    ep, sdp_peer = r.leg()
    nat = r.net.bind(("198.51.100.7", 61000))
    intruder = r.net.bind(("203.0.113.9", 5000))
    ep.play(prompt(100), loop=True)
    r.loop.advance(0.01)
    assert len(sdp_peer.take()) == 1  # before media arrives: the SDP address
    r.to(ep, nat, rtp(b"\x00", 1, 0, pt=13))  # comfort noise: not a negotiated type
    assert not ep.latched
    r.to(ep, nat, rtp(silence(Codec.PCMU), 2, 160))
    assert ep.latched and ep.remote == nat.addr
    r.loop.advance(0.1)
    assert sdp_peer.take() == [] and len(nat.take()) == 5
    r.to(ep, intruder, rtp(silence(Codec.PCMU), 9, 0, ssrc=9))
    assert ep.remote == nat.addr and ep.stats["foreign"] == 2  # with the comfort noise
    r.loop.advance(1.5)  # the latched source went quiet: a new one may take over
    r.to(ep, intruder, rtp(silence(Codec.PCMU), 10, 160, ssrc=9))
    assert ep.remote == intruder.addr
    # a re-INVITE to the same address keeps the latch; a new address starts over
    ep.configure(PEER, Codec.PCMU, 0, 101, "sendonly")
    assert ep.remote == intruder.addr
    ep.configure(("192.0.2.99", 7), Codec.PCMU, 0, 101, "sendrecv")
    assert ep.remote == ("192.0.2.99", 7) and not ep.latched


def test_inactivity_fires_once_and_rearms_when_media_returns() -> None:
    r = Rig(inactivity_timeout=3.0)
    ep, peer = r.leg()
    fired: list[float] = []
    ep.on_inactive = lambda: fired.append(r.clock.t)
    r.loop.advance(2.0)
    r.to(ep, peer, rtp(silence(Codec.PCMU), 1, 0))
    r.loop.advance(2.5)
    assert fired == []
    r.loop.advance(2.0)
    assert len(fired) == 1 and ep.idle_for(r.clock.t) >= 3.0
    r.loop.advance(10)
    assert len(fired) == 1
    r.to(ep, peer, rtp(silence(Codec.PCMU), 2, 160))
    r.loop.advance(5)
    assert len(fired) == 2


def test_rtcp_counted_parsed_and_reports_sent() -> None:
    r = Rig(rtcp_interval=5.0)
    ep, peer = r.leg()
    rtcp_peer = r.net.bind((PEER[0], PEER[1] + 1))
    for i in range(50):
        r.to(ep, peer, rtp(silence(Codec.PCMU), i + (i > 20), 160 * i))  # one lost
    ep.play(prompt(10))
    rr = build_rr(0x1234)
    rtcp_peer.sendto(rr, (IP, ep.local_port + 1))
    rtcp_peer.sendto(b"\x80\xc9", (IP, ep.local_port + 1))  # truncated
    r.loop.advance(16)
    assert ep.stats["rtcp_in"] == 2 and ep.rtcp.bad == 1
    reports = [parse_rtcp(p) for p, _ in rtcp_peer.take()]
    assert 2 <= len(reports) <= 4
    kinds = [rep[0].packet_type for rep in reports]
    assert kinds[0] == 200 and all(k == 201 for k in kinds[1:])  # SR after sending, then RR
    block = reports[0][0].blocks[0]  # type: ignore[union-attr]
    assert block.ssrc == 0x1234 and block.cumulative_lost == 1


def test_close_releases_ports_readers_and_is_idempotent() -> None:
    r = Rig(ports=(20000, 20003))
    a, _ = r.leg()
    b = r.engine.allocate()
    with pytest.raises(PortsExhausted):
        r.engine.allocate()
    a.play(prompt(100))
    a.bridge(b)
    a.close()
    a.close()
    assert b.bridged_to is None and a.local_port not in r.engine.pool
    assert len(r.loop.readers) == 2
    with pytest.raises(RuntimeError):
        a.play(prompt(1))
    c = r.engine.allocate()
    assert c.local_port == a.local_port
    r.engine.close()
    r.engine.close()
    assert r.loop.readers == {} and r.engine.pool.in_use == 0 and r.loop.pending() == []


def test_bind_failure_skips_to_the_next_port() -> None:
    r = Rig(ports=(20000, 20005))
    r.net.taken.add((IP, 20001))  # another process holds the RTCP port of 20000
    ep = r.engine.allocate()
    assert ep.local_port == 20002 and r.engine.pool.bind_failures == 1
    assert (IP, 20000) not in r.net.socks  # the half-bound pair was closed


def test_odd_packets_are_counted_not_fatal() -> None:
    r = Rig()
    ep, peer = r.leg()
    rtcp = build_rr(0x99)
    for pkt in (b"\x80\x00\x00", b"\x40" + bytes(20), rtcp,  # short, version 1, RTCP-mux
                build_packet(b"\x00" * 4, 13, 1, 0, 5),  # comfort noise before latching
                build_packet(silence(Codec.PCMU), 0, 2, 0, 5, padding=4),
                build_packet(silence(Codec.PCMU), 0, 3, 160, 5, csrcs=(1, 2),
                             extension=(0xBEDE, b"\x10\x01\x00\x00")),
                build_packet(b"\x00" * 4, 13, 4, 320, 5),  # comfort noise, latched
                b"\xa0\x00" + bytes(10) + b"\x09"):  # padding count beyond the packet
        r.to(ep, peer, pkt)
    st = ep.stats
    assert (st["bad"], st["foreign"], st["other"], st["rtcp_in"]) == (3, 1, 1, 1)
    assert st["packets_in"] == 3 and st["lost"] == 0 and ep.rtcp.remote_report is None
    for pt in (72, 76, 128, -1):
        with pytest.raises(ValueError):
            ep.configure(PEER, Codec.PCMU, pt, None, "sendrecv")
    with pytest.raises(ValueError):
        ep.configure(PEER, Codec.PCMU, 0, 73, "sendrecv")


def test_payload_types_per_direction_and_explicit_rtcp_address() -> None:
    r = Rig(rtcp_interval=1.0)
    ep = r.engine.allocate()
    peer = r.net.bind(PEER)
    rtcp_peer = r.net.bind(("192.0.2.77", 9999))
    # we offered 96 for events and PCMU; the peer answered with its own number, 101
    ep.configure(PEER, Codec.PCMU, 0, 101, "sendrecv", recv_te_pt=96, rtcp=rtcp_peer.addr)
    digits: list[str] = []
    ep.on_dtmf = lambda d, m: digits.append(d)
    press(r, ep, peer, "4", 1, 0, pt=96)
    press(r, ep, peer, "6", 20, 1600, pt=101)  # not what we offered: ignored
    assert digits == ["4"] and ep.stats["other"] == 7
    ep.send_dtmf("8")
    r.loop.advance(3.0)
    assert {parse_packet(p).payload_type for p, _ in peer.take()} == {101}
    assert len(rtcp_peer.take()) >= 1  # reports go to the a=rtcp address
