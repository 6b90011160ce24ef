"""RtpSender continuity and relaying, RtpReceiverStats loss/reorder/jitter bookkeeping."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.dtmf import TelephoneEventSender
from media.rtp import build_packet, parse_header, parse_packet
from media.rtpstream import RtpReceiverStats, RtpSender


def fixed_rand(seq: int, ts: int, ssrc: int = 0x5EED) -> Callable[[int], int]:
    values = {32: [ssrc, ts], 16: [seq]}
    return lambda bits: values[bits].pop(0)


def hdr(data: bytes) -> tuple[int, bool, int, int, int, int]:
    return parse_header(data)


def test_initial_values_come_from_the_injected_randomness() -> None:
    s = RtpSender(randbits=fixed_rand(seq=7, ts=1000, ssrc=42))
    assert (s.ssrc, s.next_sequence, s.next_timestamp) == (42, 7, 1000)
    pt, marker, seq, ts, ssrc, _ = hdr(s.next_packet(b"\xff" * 160, 0))
    assert (pt, marker, seq, ts, ssrc) == (0, True, 7, 1000, 42)  # first packet: marker
    assert hdr(s.next_packet(b"\xff" * 160, 0))[1:4] == (False, 8, 1160)


def test_continuity_across_sources_and_wraparound() -> None:
    s = RtpSender(randbits=fixed_rand(seq=65533, ts=0xFFFFFFFF - 300))
    out = [s.next_packet(b"\xff" * 160, 0) for _ in range(2)]  # prompt
    s.source_changed()
    out += [s.next_packet(b"\xd5" * 160, 8) for _ in range(2)]  # music on hold
    s.source_changed()
    # bridged audio from the other leg, with its own numbering
    for i in range(3):
        relayed = s.relay(b"\xff" * 160, 0, i == 0, 40000 + i, 123456 + 160 * i, 0xBEEF)
        assert relayed is not None
        out.append(relayed)
    s.source_changed()
    out.append(s.next_packet(b"\xff" * 160, 0))  # back to a prompt
    headers = [hdr(p) for p in out]
    seqs = [h[2] for h in headers]
    tss = [h[3] for h in headers]
    assert seqs == [65533, 65534, 65535, 0, 1, 2, 3, 4]
    assert all((b - a) & 0xFFFFFFFF == 160 for a, b in itertools.pairwise(tss))
    assert [h[1] for h in headers] == [True, False, True, False, True, False, False, True]
    assert {h[4] for h in headers} == {0x5EED}


def test_relay_keeps_their_gaps_and_reordering() -> None:
    s = RtpSender(randbits=fixed_rand(seq=100, ts=8000))
    s.next_packet(b"\xff" * 160, 0)
    their = [(500, 0), (501, 160), (503, 480), (502, 320), (510, 1600)]  # loss, reorder, gap
    got = []
    for seq, ts in their:
        pkt = s.relay(b"\xff" * 160, 0, False, seq, ts, 77)
        assert pkt is not None
        got.append(hdr(pkt)[2:4])
    assert got == [(101, 8160), (102, 8320), (104, 8640), (103, 8480), (111, 9760)]
    # our own clock continues after the newest relayed frame
    assert (s.next_sequence, s.next_timestamp) == (112, 9920)


def test_relay_drops_stragglers_from_before_the_anchor() -> None:
    s = RtpSender(randbits=fixed_rand(seq=0, ts=0))
    s.next_packet(b"\xff" * 160, 0)
    assert s.relay(b"\xff" * 160, 0, False, 1000, 0, 9) is not None
    assert s.relay(b"\xff" * 160, 0, False, 999, 0, 9) is None


def test_relay_reanchors_on_new_ssrc_and_on_sequence_jump() -> None:
    s = RtpSender(randbits=fixed_rand(seq=10, ts=0))
    p = s.relay(b"\xff" * 160, 0, False, 1, 0, 1)
    assert p is not None and hdr(p)[1:4] == (True, 10, 0)
    p = s.relay(b"\xff" * 160, 0, False, 2, 160, 1)
    assert p is not None and hdr(p)[1:4] == (False, 11, 160)
    p = s.relay(b"\xff" * 160, 0, False, 50000, 999999, 1)  # their sequence restarted
    assert p is not None and hdr(p)[1:4] == (True, 12, 320)
    p = s.relay(b"\xff" * 160, 0, False, 7, 5, 2)  # their SSRC changed
    assert p is not None and hdr(p)[1:4] == (True, 13, 480)


def test_relay_packet_parses_and_strips() -> None:
    s = RtpSender(randbits=fixed_rand(seq=0, ts=0, ssrc=5))
    incoming = build_packet(b"abc", 8, 9, 9, 9, csrcs=(1,), extension=(1, b"1234"), padding=3)
    out = s.relay_packet(incoming, pt=0)
    assert out is not None
    pkt = parse_packet(out)
    assert (pkt.payload, pkt.payload_type, pkt.ssrc, pkt.csrcs, pkt.extension) == (
        b"abc",
        0,
        5,
        (),
        None,
    )


def test_local_telephone_event_keeps_one_timestamp() -> None:
    s = RtpSender(randbits=fixed_rand(seq=0, ts=1000), event_pt=101)
    s.next_packet(b"\xff" * 160, 0)
    plan = TelephoneEventSender().plan("5", duration_ms=100)
    pkts = [hdr(s.event_packet(p.payload, start=p.marker, samples=p.advance)) for p in plan]
    assert {h[3] for h in pkts} == {1160}
    assert [h[1] for h in pkts] == [True] + [False] * (len(plan) - 1)
    assert [h[2] for h in pkts] == list(range(1, 1 + len(plan)))
    assert {h[0] for h in pkts} == {101}
    after = hdr(s.next_packet(b"\xff" * 160, 0))
    assert after[3] == 1160 + 160 * len(plan) and after[2] == 1 + len(plan)


def test_event_update_without_start_is_an_error() -> None:
    s = RtpSender(event_pt=101)
    with pytest.raises(ValueError):
        s.event_packet(b"\x05\x0a\x00\xa0", start=False)
    with pytest.raises(ValueError):
        RtpSender().event_packet(b"\x05\x0a\x00\xa0", start=True)


def test_relayed_telephone_event_keeps_their_timestamp_semantics() -> None:
    s = RtpSender(randbits=fixed_rand(seq=0, ts=0), event_pt=101)
    s.relay(b"\xff" * 160, 0, False, 10, 5000, 3)
    plan = TelephoneEventSender().plan("1", duration_ms=60)
    stamps = set()
    for i, p in enumerate(plan):
        out = s.relay(p.payload, 101, p.marker, 11 + i, 5160, 3)
        assert out is not None
        stamps.add(hdr(out)[3])
    assert stamps == {160}
    # Our clock stands at the end of the event (its duration), not 160 per event packet.
    assert s.next_timestamp == 160 + 480


ops = st.lists(st.sampled_from(["local", "relay_a", "relay_b", "switch"]), min_size=1, max_size=60)


@given(ops, st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF))
def test_in_order_sources_give_a_gapless_stream(script: list[str], seq0: int, ts0: int) -> None:
    s = RtpSender(randbits=fixed_rand(seq=seq0, ts=ts0))
    their = {"relay_a": [65530, 4_294_967_000, 0xA], "relay_b": [3, 17, 0xB]}
    out: list[bytes] = []
    marker_expected: list[bool] = []
    pending = True
    for op in script:
        if op == "switch":
            s.source_changed()
            pending = True
            continue
        if op == "local":
            out.append(s.next_packet(b"\xff" * 160, 0))
        else:
            seq, ts, ssrc = their[op]
            pkt = s.relay(b"\xff" * 160, 0, False, seq, ts, ssrc)
            assert pkt is not None
            out.append(pkt)
            their[op] = [(seq + 1) & 0xFFFF, (ts + 160) & 0xFFFFFFFF, ssrc]
        marker_expected.append(pending)
        pending = False
    headers = [hdr(p) for p in out]
    for i, h in enumerate(headers):
        assert h[2] == (seq0 + i) & 0xFFFF
        assert h[3] == (ts0 + 160 * i) & 0xFFFFFFFF
        if marker_expected[i]:
            assert h[1]


def test_stats_sequence_wraparound_and_loss() -> None:
    st_ = RtpReceiverStats()
    for i, seq in enumerate([65534, 65535, 0, 2]):
        st_.update(seq, 160 * i, 0.02 * i, 160)
    assert st_.extended_max == 65536 + 2
    assert (st_.expected, st_.received, st_.lost) == (5, 4, 1)
    assert st_.octets == 640
    block = st_.report_block(0xABC)
    assert block.fraction_lost == 256 // 5
    assert block.cumulative_lost == 1 and block.highest_seq == 65538
    st_.update(3, 0, 0.1, 160)
    assert st_.report_block(0xABC).fraction_lost == 0  # interval since the previous report


def test_stats_duplicates_and_reordering() -> None:
    st_ = RtpReceiverStats()
    for seq in [10, 11, 13, 12, 13, 11, 14]:
        st_.update(seq, seq * 160, seq * 0.02)
    assert st_.reordered == 1
    assert st_.duplicates == 2
    assert st_.packets == 7 and st_.received == 5
    assert (st_.expected, st_.lost) == (5, 0)


def test_stats_sender_restart_after_big_jump() -> None:
    st_ = RtpReceiverStats()
    for seq in [1, 2, 3]:
        st_.update(seq, 0, 0.0)
    st_.update(40000, 0, 0.0)  # one stray packet: ignored
    assert st_.expected == 3 and st_.received == 3
    st_.update(40000, 0, 0.0)
    st_.update(40001, 0, 0.0)  # the second in sequence confirms the restart
    st_.update(40002, 0, 0.0)
    assert st_.expected == 3 + 2 and st_.lost == 0


def test_jitter_matches_hand_computation() -> None:
    # RFC 3550 A.8 with 8 kHz units. Transit (arrival*8000 - ts): 0, 0, 40, 0, 80 ->
    # |D| = 0, 40, 40, 80 -> J = 0, 2.5, 4.84375, 9.541015625
    st_ = RtpReceiverStats()
    for seq, (ts, arrival) in enumerate(
        [(0, 0.0), (160, 0.02), (320, 0.045), (480, 0.06), (640, 0.09)]
    ):
        st_.update(seq, ts, arrival)
    assert st_.jitter == pytest.approx(9.541015625, abs=1e-6)
    assert st_.jitter_seconds == pytest.approx(9.541015625 / 8000)
    assert st_.report_block(1).jitter == 9


def test_jitter_ignores_timestamp_wraparound() -> None:
    st_ = RtpReceiverStats()
    for i in range(50):
        st_.update(i, (0xFFFFFFFF - 800 + 160 * i) & 0xFFFFFFFF, 1000.0 + 0.02 * i)
    assert st_.jitter < 1e-6


@given(
    st.integers(0, 0xFFFF),
    st.lists(st.tuples(st.booleans(), st.integers(0, 2)), max_size=300),
    st.randoms(use_true_random=False),
)
def test_stats_against_a_model(
    seq0: int, fates: list[tuple[bool, int]], rnd: random.Random
) -> None:
    """Random loss, duplication and local reordering across the 16-bit wrap: the counters
    match a straightforward model computed on the unwrapped indices."""
    arrivals = [0]  # the first packet arrives first, so it defines the base
    for i, (lost, copies) in enumerate(fates, start=1):
        if not lost:
            arrivals += [i] * (1 + copies % 2)
    # local reordering: swap neighbours a few positions apart (well inside MAX_MISORDER)
    for j in range(1, len(arrivals) - 1):
        k = min(len(arrivals) - 1, j + rnd.randint(0, 4))
        if rnd.random() < 0.2:
            arrivals[j], arrivals[k] = arrivals[k], arrivals[j]
    stats = RtpReceiverStats()
    seen: set[int] = set()
    highest = -1
    reordered = duplicates = 0
    for n, idx in enumerate(arrivals):
        if idx in seen:
            duplicates += 1
        elif idx < highest:
            reordered += 1
        seen.add(idx)
        highest = max(highest, idx)
        stats.update((seq0 + idx) & 0xFFFF, 160 * idx, 0.02 * n, 160)
    assert stats.packets == len(arrivals)
    assert stats.received == len(seen)
    assert stats.duplicates == duplicates
    assert stats.reordered == reordered
    assert stats.expected == highest + 1
    assert stats.lost == highest + 1 - len(seen)
    assert stats.extended_max == seq0 + highest
