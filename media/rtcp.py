"""RTCP (RFC 3550 section 6), minimally: walk a compound packet, decode sender and receiver
reports, and build the SR/RR + SDES CNAME compound we send. SDES, BYE and APP bodies are kept
raw; nothing on the call path needs more.

Demultiplexing RTP from RTCP on one port is `media.rtp.is_rtcp`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from media.rtppacket import RtpParseError

__all__ = [
    "APP",
    "BYE",
    "RR",
    "SDES",
    "SR",
    "NTP_EPOCH_OFFSET",
    "ReportBlock",
    "RtcpOther",
    "RtcpReport",
    "SenderInfo",
    "build_rr",
    "build_sdes_cname",
    "build_sr",
    "ntp_timestamp",
    "parse_rtcp",
]

SR, RR, SDES, BYE, APP = 200, 201, 202, 203, 204

# Seconds from 1900-01-01 (NTP era 0) to the Unix epoch.
NTP_EPOCH_OFFSET = 2_208_988_800

_COMMON = struct.Struct("!BBH")
_SSRC = struct.Struct("!I")
_SENDER = struct.Struct("!IIIII")
_BLOCK = struct.Struct("!IB3sIIII")


@dataclass(frozen=True, slots=True)
class SenderInfo:
    ntp_seconds: int
    ntp_fraction: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int

    @property
    def lsr(self) -> int:
        """The middle 32 bits of the NTP timestamp, echoed as LSR in reports about this SR."""
        return ((self.ntp_seconds & 0xFFFF) << 16) | (self.ntp_fraction >> 16)


@dataclass(frozen=True, slots=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int  # 0..255, fixed point /256
    cumulative_lost: int  # signed 24 bits: duplicates can make it negative
    highest_seq: int  # extended highest sequence number received
    jitter: int  # timestamp units
    lsr: int = 0
    dlsr: int = 0  # 1/65536 s


@dataclass(frozen=True, slots=True)
class RtcpReport:
    """An SR (sender_info set) or an RR (sender_info None)."""

    packet_type: int
    ssrc: int
    sender_info: SenderInfo | None
    blocks: tuple[ReportBlock, ...]


@dataclass(frozen=True, slots=True)
class RtcpOther:
    """Any other RTCP packet: type, the 5-bit count field and the body after the header."""

    packet_type: int
    count: int
    body: bytes


def _parse_blocks(data: bytes, at: int, count: int, end: int) -> tuple[ReportBlock, ...]:
    if at + count * _BLOCK.size > end:
        raise RtpParseError("report blocks overrun the RTCP packet")
    blocks = []
    for _ in range(count):
        ssrc, fraction, lost3, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, at)
        lost = int.from_bytes(lost3, "big", signed=True)
        blocks.append(ReportBlock(ssrc, fraction, lost, highest, jitter, lsr, dlsr))
        at += _BLOCK.size
    return tuple(blocks)


def parse_rtcp(data: bytes) -> list[RtcpReport | RtcpOther]:
    """Every packet of a compound RTCP packet, in order. RtpParseError for malformed input."""
    out: list[RtcpReport | RtcpOther] = []
    at, total = 0, len(data)
    if total < 4:
        raise RtpParseError("shorter than an RTCP header")
    while at < total:
        if total - at < 4:
            raise RtpParseError("trailing bytes after the last RTCP packet")
        b0, ptype, words = _COMMON.unpack_from(data, at)
        if b0 >> 6 != 2:
            raise RtpParseError(f"RTCP version {b0 >> 6}, expected 2")
        end = at + 4 + words * 4
        if end > total:
            raise RtpParseError("RTCP length field overruns the datagram")
        count = b0 & 0x1F
        if b0 & 0x20:
            # Padding is only legal on the last packet of the compound and is counted in length.
            pad = data[end - 1]
            if end != total or pad == 0 or pad > end - at - 4:
                raise RtpParseError("bad RTCP padding")
            body_end = end - pad
        else:
            body_end = end
        if ptype in (SR, RR):
            if body_end - at < 8:
                raise RtpParseError("RTCP report without an SSRC")
            ssrc = _SSRC.unpack_from(data, at + 4)[0]
            cursor = at + 8
            info = None
            if ptype == SR:
                if body_end - cursor < _SENDER.size:
                    raise RtpParseError("truncated sender info")
                info = SenderInfo(*_SENDER.unpack_from(data, cursor))
                cursor += _SENDER.size
            blocks = _parse_blocks(data, cursor, count, body_end)
            out.append(RtcpReport(ptype, ssrc, info, blocks))
        else:
            out.append(RtcpOther(ptype, count, bytes(data[at + 4 : body_end])))
        at = end
    return out


def _pack_blocks(blocks: tuple[ReportBlock, ...] | list[ReportBlock]) -> bytes:
    if len(blocks) > 31:
        raise ValueError("at most 31 report blocks per packet")
    out = []
    for b in blocks:
        lost = max(-0x800000, min(0x7FFFFF, b.cumulative_lost))
        out.append(
            _BLOCK.pack(
                b.ssrc,
                b.fraction_lost,
                lost.to_bytes(3, "big", signed=True),
                b.highest_seq & 0xFFFFFFFF,
                b.jitter & 0xFFFFFFFF,
                b.lsr,
                b.dlsr,
            )
        )
    return b"".join(out)


def build_rr(ssrc: int, blocks: tuple[ReportBlock, ...] | list[ReportBlock] = ()) -> bytes:
    body = _SSRC.pack(ssrc) + _pack_blocks(blocks)
    return _COMMON.pack(0x80 | len(blocks), RR, len(body) // 4) + body


def build_sr(
    ssrc: int, info: SenderInfo, blocks: tuple[ReportBlock, ...] | list[ReportBlock] = ()
) -> bytes:
    body = (
        _SSRC.pack(ssrc)
        + _SENDER.pack(
            info.ntp_seconds,
            info.ntp_fraction,
            info.rtp_timestamp & 0xFFFFFFFF,
            info.packet_count & 0xFFFFFFFF,
            info.octet_count & 0xFFFFFFFF,
        )
        + _pack_blocks(blocks)
    )
    return _COMMON.pack(0x80 | len(blocks), SR, len(body) // 4) + body


def build_sdes_cname(ssrc: int, cname: str) -> bytes:
    """One SDES chunk with the CNAME item, which RFC 3550 requires in every compound packet."""
    text = cname.encode("utf-8")[:255]
    chunk = _SSRC.pack(ssrc) + bytes((1, len(text))) + text + b"\x00"
    chunk += bytes(-len(chunk) % 4)  # null-terminate the item list and pad to 32 bits
    return _COMMON.pack(0x81, SDES, len(chunk) // 4) + chunk


def ntp_timestamp(unix_time: float) -> tuple[int, int]:
    """Wall-clock seconds since the Unix epoch -> (NTP seconds mod 2**32, 32-bit fraction)."""
    whole = int(unix_time)
    frac = int((unix_time - whole) * 4294967296.0) & 0xFFFFFFFF
    return (whole + NTP_EPOCH_OFFSET) & 0xFFFFFFFF, frac
