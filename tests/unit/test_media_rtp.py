"""RTP packet format and RTCP: round trips, the fast path, and fuzzing with arbitrary bytes."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.rtcp import (
    BYE,
    RR,
    SDES,
    SR,
    ReportBlock,
    RtcpOther,
    RtcpReport,
    SenderInfo,
    build_rr,
    build_sdes_cname,
    build_sr,
    ntp_timestamp,
    parse_rtcp,
)
from media.rtp import (
    RtpPacket,
    RtpParseError,
    build_packet,
    is_rtcp,
    parse_header,
    parse_packet,
    rtp_payload,
)

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)

packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=u16,
    timestamp=u32,
    ssrc=u32,
    payload=st.binary(max_size=300),
    marker=st.booleans(),
    csrcs=st.lists(u32, max_size=15).map(tuple),
    extension=st.none()
    | st.tuples(u16, st.binary(max_size=40).map(lambda b: b[: len(b) - len(b) % 4])),
    padding=st.integers(0, 255),
)


@given(packets)
def test_round_trip(pkt: RtpPacket) -> None:
    data = pkt.serialize()
    assert parse_packet(data) == pkt
    pt, marker, seq, ts, ssrc, offset = parse_header(data)
    assert (pt, marker, seq, ts, ssrc) == (
        pkt.payload_type,
        pkt.marker,
        pkt.sequence,
        pkt.timestamp,
        pkt.ssrc,
    )
    assert rtp_payload(data) == pkt.payload
    if not pkt.padding:
        assert data[offset:] == pkt.payload
    skipped = parse_packet(data, keep_extension=False)
    assert skipped.extension is None and skipped.payload == pkt.payload


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_rtp_parse_error(data: bytes) -> None:
    for parse in (parse_header, parse_packet, rtp_payload, parse_rtcp):
        with contextlib.suppress(RtpParseError):
            parse(data)


@given(packets, st.integers(0, 400))
def test_truncated_packets_raise_only_rtp_parse_error(pkt: RtpPacket, cut: int) -> None:
    data = pkt.serialize()[:cut]
    with contextlib.suppress(RtpParseError):
        parse_packet(data)


def test_known_packet_bytes() -> None:
    data = build_packet(b"\xff" * 160, 0, 0x1234, 0xDEADBEEF, 0x01020304, marker=True)
    assert data[:12] == bytes.fromhex("80801234deadbeef01020304")
    assert parse_header(data) == (0, True, 0x1234, 0xDEADBEEF, 0x01020304, 12)


def test_csrc_and_extension_offsets() -> None:
    data = build_packet(b"xy", 8, 1, 2, 3, csrcs=(7, 8), extension=(0xBEDE, b"\x01\x02\x03\x04"))
    assert data[0] == 0x80 | 0x10 | 2
    assert parse_header(data)[5] == 12 + 8 + 4 + 4
    pkt = parse_packet(data)
    assert pkt.csrcs == (7, 8) and pkt.extension == (0xBEDE, b"\x01\x02\x03\x04")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "short"),
        (b"\x80\x00" + bytes(9), "11 bytes"),
        (b"\x40" + bytes(11), "version 1"),
        (b"\x82" + bytes(11), "CSRC count beyond the end"),
        (b"\x90" + bytes(11), "extension header missing"),
        (b"\x90" + bytes(11) + b"\x00\x00\x00\x05", "extension longer than packet"),
    ],
)
def test_malformed_headers(data: bytes, why: str) -> None:
    with pytest.raises(RtpParseError):
        parse_header(data)


@pytest.mark.parametrize("pad", [0, 5])
def test_bad_padding_count(pad: int) -> None:
    data = b"\xa0" + bytes(11) + b"ab" + bytes((pad,))
    with pytest.raises(RtpParseError):
        parse_packet(data)
    with pytest.raises(RtpParseError):
        rtp_payload(data)


def test_build_rejects_out_of_range_fields() -> None:
    with pytest.raises(ValueError):
        build_packet(b"", 128, 0, 0, 0)
    with pytest.raises(ValueError):
        build_packet(b"", 0, 0x10000, 0, 0)
    with pytest.raises(ValueError):
        build_packet(b"", 0, 0, 0, 0, extension=(1, b"abc"))


def test_rtcp_demux_rule() -> None:
    assert is_rtcp(build_rr(1))
    assert is_rtcp(build_sr(1, SenderInfo(1, 2, 3, 4, 5)))
    assert not is_rtcp(build_packet(b"", 0, 0, 0, 0, marker=True))
    assert not is_rtcp(build_packet(b"", 101, 0, 0, 0, marker=True))
    assert not is_rtcp(b"\x80")


blocks = st.builds(
    ReportBlock,
    ssrc=u32,
    fraction_lost=st.integers(0, 255),
    cumulative_lost=st.integers(-0x800000, 0x7FFFFF),
    highest_seq=u32,
    jitter=u32,
    lsr=u32,
    dlsr=u32,
)


@given(
    u32, st.lists(blocks, max_size=31), st.none() | st.builds(SenderInfo, u32, u32, u32, u32, u32)
)
def test_rtcp_report_round_trip(
    ssrc: int, report_blocks: list[ReportBlock], info: SenderInfo | None
) -> None:
    data = build_rr(ssrc, report_blocks) if info is None else build_sr(ssrc, info, report_blocks)
    compound = data + build_sdes_cname(ssrc, "leg@host")
    assert len(compound) % 4 == 0
    parsed = parse_rtcp(compound)
    assert parsed[0] == RtcpReport(SR if info else RR, ssrc, info, tuple(report_blocks))
    sdes = parsed[1]
    assert isinstance(sdes, RtcpOther) and sdes.packet_type == SDES and sdes.count == 1
    assert b"leg@host" in sdes.body


def test_rtcp_known_rr_and_bye() -> None:
    rr = build_rr(0x11223344, [ReportBlock(0xAABBCCDD, 64, -3, 70000, 12, 0x10002, 5)])
    assert rr[:4] == bytes.fromhex("81c90007")
    bye = bytes.fromhex("81cb0001") + struct.pack("!I", 0x11223344)
    parsed = parse_rtcp(rr + bye)
    assert isinstance(parsed[0], RtcpReport)
    assert parsed[0].blocks[0].cumulative_lost == -3
    assert parsed[1] == RtcpOther(BYE, 1, struct.pack("!I", 0x11223344))


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("81c90007") + bytes(8),  # length overruns
        bytes.fromhex("41c90001") + bytes(4),  # version 1
        bytes.fromhex("81c90001") + bytes(4),  # RR claims a block it does not have
        bytes.fromhex("80c80001") + bytes(4),  # SR without sender info
        bytes.fromhex("80c90001") + bytes(4) + b"\x80",  # trailing garbage
    ],
)
def test_rtcp_malformed(data: bytes) -> None:
    with pytest.raises(RtpParseError):
        parse_rtcp(data)


def test_ntp_timestamp_and_lsr() -> None:
    sec, frac = ntp_timestamp(1.5)
    assert sec == 2_208_988_801 and frac == 0x80000000
    info = SenderInfo(0x12345678, 0x9ABCDEF0, 0, 0, 0)
    assert info.lsr == 0x56789ABC
