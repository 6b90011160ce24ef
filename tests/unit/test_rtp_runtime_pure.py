"""Pure parts of the media runtime: the RTP port pool, symmetric-RTP latching, the alignment
of recorded channels, in-band DTMF tones and the RTCP report we send."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acd.media_session import (
    ChannelAligner,
    Latch,
    direction_flags,
    dtmf_tone_frames,
    rtcp_report,
)
from acd.runtime.rtpports import PortsExhausted, RtpPortPool
from media.dtmf import DIGITS, GoertzelDetector
from media.g711 import Codec, decode
from media.rtcp import RR, SDES, SR, RtcpOther, RtcpReport
from media.rtp import RtpReceiverStats, RtpSender, parse_rtcp


def ok(port: int) -> int:
    return port


def test_pool_hands_out_even_ports_and_reuses_the_longest_released() -> None:
    pool = RtpPortPool(10001, 10010)  # odd start: first pair is 10002/10003
    got = [pool.allocate(ok)[0] for _ in range(4)]
    assert got == [10002, 10004, 10006, 10008] and pool.capacity == 4
    with pytest.raises(PortsExhausted):
        pool.allocate(ok)  # 10010 has no 10011 inside the range
    pool.release(10004)
    pool.release(10002)
    pool.release(10002)  # twice: harmless
    assert pool.allocate(ok)[0] == 10004 and pool.in_use == 3 and 10004 in pool


def test_pool_skips_ports_that_fail_to_bind_and_retries_them_later() -> None:
    pool = RtpPortPool(20000, 20009)
    busy = {20000, 20002}

    def bind(port: int) -> str:
        if port in busy:
            raise OSError(98, "in use")
        return f"sock{port}"

    assert pool.allocate(bind) == (20004, "sock20004")
    assert pool.bind_failures == 2
    busy.clear()
    assert [pool.allocate(bind)[0] for _ in range(3)] == [20006, 20008, 20000]


@pytest.mark.parametrize("rng", [(0, 10), (10, 10), (11, 12), (65534, 65536)])
def test_pool_rejects_ranges_without_a_pair(rng: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        RtpPortPool(*rng)


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 20)), max_size=200))
def test_pool_never_hands_out_a_port_in_use(ops: list[tuple[bool, int]]) -> None:
    pool = RtpPortPool(30000, 30041)  # 21 pairs
    held: list[int] = []
    for alloc, k in ops:
        if alloc:
            try:
                port, _ = pool.allocate(ok)
            except PortsExhausted:
                assert len(held) == 21
                continue
            assert port not in held and port % 2 == 0 and 30000 <= port < 30041
            held.append(port)
        elif held:
            pool.release(held.pop(k % len(held)))
        assert pool.in_use == len(held)


def test_latch() -> None:
    latch = Latch(relatch_after=1.0)
    latch.reset(("192.0.2.1", 4000))
    assert latch.dest == ("192.0.2.1", 4000) and latch.source is None
    nat = ("198.51.100.1", 6000)
    assert not latch.offer(nat, False, None, 0.0)  # not a negotiated payload type
    assert latch.offer(nat, True, None, 0.0) and latch.dest == nat == latch.source
    assert not latch.offer(("203.0.113.1", 1), True, 10.0, 10.5)  # source alive
    assert latch.offer(("203.0.113.1", 1), True, 10.0, 11.0)  # silent for 1 s
    latch.reset(("192.0.2.1", 4000))  # same SDP address: latch kept
    assert latch.dest == ("203.0.113.1", 1) and latch.latches == 2
    latch.reset(None)
    assert latch.dest is None and latch.source is None


def test_direction_flags() -> None:
    assert direction_flags("sendrecv") == (True, True)
    assert direction_flags("sendonly") == (True, False)
    assert direction_flags("recvonly") == (False, True)
    assert direction_flags("inactive") == (False, False)
    with pytest.raises(ValueError):
        direction_flags("SENDRECV")


def frame(value: int, samples: int = 160) -> bytes:
    return struct.pack("<h", value) * samples


def samples(pcm: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(pcm) // 2}h", pcm))


def test_aligner_interleaves_steady_streams_in_time_order() -> None:
    al = ChannelAligner(0.0)
    for i in range(1, 11):
        al.feed(0, frame(i), 0.02 * i)
        al.feed(1, frame(-i), 0.02 * i + 0.005)
    left, right = al.take(0.2)
    assert len(left) == len(right) == 2 * 1600
    assert samples(left)[::160] == list(range(1, 11))
    assert samples(right)[::160] == [-i for i in range(1, 11)]
    assert al.pending() == 0


def test_aligner_fills_loss_and_one_way_audio_with_silence() -> None:
    al = ChannelAligner(0.0, slack=0.06)
    al.feed(0, frame(1), 0.02)
    al.feed(0, frame(2), 0.50)  # 460 ms of nothing on the left (loss / DTX)
    for i in range(1, 26):
        al.feed(1, frame(7), 0.02 * i)
    left, right = al.take(0.5)
    l_, r_ = samples(left), samples(right)
    assert len(l_) == len(r_) == 4000
    assert l_[:160] == [1] * 160 and l_[160] == 0 and set(r_) == {7}
    # the second left frame sits where it arrived, 480 ms in
    left2, _ = al.take(1.0, final=True)
    rest = samples(left + left2)
    assert rest.index(2) == 4000 - 160


def test_aligner_does_not_hold_back_a_channel_waiting_for_a_silent_one() -> None:
    al = ChannelAligner(0.0, slack=0.06)
    for i in range(1, 51):
        al.feed(0, frame(3), 0.02 * i)
    left, right = al.take(1.0)
    assert len(left) == len(right) == 2 * (8000 - 480)
    assert set(samples(right)) == {0}
    mono = ChannelAligner(0.0, channels=1)
    mono.feed(0, frame(5), 0.02)
    (only,) = mono.take(0.04, final=True)
    assert samples(only)[:160] == [5] * 160 and len(only) == 2 * 320
    with pytest.raises(ValueError):
        ChannelAligner(0.0, channels=3)


@pytest.mark.parametrize("codec", list(Codec))
def test_inband_tones_are_detected_once_per_digit(codec: Codec) -> None:
    det = GoertzelDetector()
    pcm = b"".join(decode(codec, f) for d in DIGITS for f in dtmf_tone_frames(d, codec))
    assert det.feed(pcm) == DIGITS
    assert dtmf_tone_frames("5", codec) is dtmf_tone_frames("5", codec)
    assert all(len(f) == 160 for f in dtmf_tone_frames("a", codec, 40, 40))
    with pytest.raises(ValueError):
        dtmf_tone_frames("x", codec)


def test_rtcp_report_sr_when_sending_rr_otherwise_always_with_cname() -> None:
    sender = RtpSender(ssrc=0xABCD)
    for _ in range(3):
        sender.next_packet(b"\xff" * 160, 0)
    rx = RtpReceiverStats()
    for seq in (1, 2, 4):
        rx.update(seq, seq * 160, seq * 0.02, 160)
    sr = parse_rtcp(rtcp_report(sender, rx, 0x55, sent_since_last=True, wall=1e9, lsr=7,
                                dlsr=9, cname="x@y"))
    head, sdes = sr
    assert isinstance(head, RtcpReport) and head.packet_type == SR and head.ssrc == 0xABCD
    assert head.sender_info is not None and head.sender_info.packet_count == 3
    assert head.sender_info.rtp_timestamp == sender.next_timestamp
    (block,) = head.blocks
    assert (block.ssrc, block.cumulative_lost, block.lsr, block.dlsr) == (0x55, 1, 7, 9)
    assert isinstance(sdes, RtcpOther) and sdes.packet_type == SDES and b"x@y" in sdes.body
    rr = parse_rtcp(rtcp_report(sender, None, None, sent_since_last=False, wall=1e9))
    assert isinstance(rr[0], RtcpReport) and rr[0].packet_type == RR and rr[0].blocks == ()
