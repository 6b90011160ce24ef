"""RTP packet format (RFC 3550 section 5.1): parsing, serialising, the per-packet fast path
and the RTP/RTCP demultiplexing rule of RFC 5761.

Owns only the wire format. Stream state (our SSRC, sequence and timestamp continuity, relaying,
receive statistics) lives in media.rtpstream, RTCP in media.rtcp; media.rtp gathers all three.

Every parser here raises `RtpParseError` (a ValueError) for malformed input and nothing else,
whatever bytes arrive from the network.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "RTP_HEADER_SIZE",
    "RtpPacket",
    "RtpParseError",
    "build_packet",
    "is_rtcp",
    "parse_header",
    "parse_packet",
    "rtp_payload",
]

RTP_HEADER_SIZE = 12

_HDR = struct.Struct("!BBHII")
_U16 = struct.Struct("!H")
_EXT = struct.Struct("!HH")


class RtpParseError(ValueError):
    """The bytes are not a well-formed RTP (or RTCP) packet."""


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 section 4: on a muxed port, a second byte of 192..223 (RTCP packet types, which
    RTP avoids as marker + payload type 64..95) means RTCP. Needs only two bytes."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def parse_header(data: bytes) -> tuple[int, bool, int, int, int, int]:
    """Per-packet fast path: (payload_type, marker, seq, timestamp, ssrc, payload_offset).

    Skips CSRCs and a header extension. The payload is `data[payload_offset:]` unless the
    padding bit (`data[0] & 0x20`) is set, which audio senders practically never do; use
    `rtp_payload()` when you want that handled too.
    """
    try:
        b0, b1, seq, ts, ssrc = _HDR.unpack_from(data)
    except struct.error:
        raise RtpParseError("shorter than the 12-byte RTP header") from None
    if b0 & 0xC0 != 0x80:
        raise RtpParseError(f"RTP version {b0 >> 6}, expected 2")
    offset = 12 + ((b0 & 0x0F) << 2)
    if b0 & 0x10:
        if len(data) < offset + 4:
            raise RtpParseError("truncated header extension")
        offset += 4 + (_U16.unpack_from(data, offset + 2)[0] << 2)
    if offset > len(data):
        raise RtpParseError("header longer than the packet")
    return b1 & 0x7F, b1 > 0x7F, seq, ts, ssrc, offset


def _padding_len(data: bytes, offset: int) -> int:
    pad = data[-1]
    if pad == 0 or pad > len(data) - offset:
        raise RtpParseError(f"bad padding count {pad}")
    return pad


def rtp_payload(data: bytes) -> bytes:
    """The payload of an RTP packet with CSRCs, extension and padding removed."""
    offset = parse_header(data)[5]
    if data[0] & 0x20:
        return data[offset : len(data) - _padding_len(data, offset)]
    return data[offset:]


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """A decoded RTP packet. `padding` is the number of padding bytes seen (or to emit), 0 for
    none; `extension` is (profile-defined 16 bits, data whose length is a multiple of 4)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None
    padding: int = 0

    def serialize(self) -> bytes:
        return build_packet(
            self.payload,
            self.payload_type,
            self.sequence,
            self.timestamp,
            self.ssrc,
            marker=self.marker,
            csrcs=self.csrcs,
            extension=self.extension,
            padding=self.padding,
        )


def parse_packet(data: bytes, *, keep_extension: bool = True) -> RtpPacket:
    """Full parse. With keep_extension=False the extension is validated and skipped."""
    pt, marker, seq, ts, ssrc, offset = parse_header(data)
    b0 = data[0]
    cc = b0 & 0x0F
    csrcs = struct.unpack_from(f"!{cc}I", data, 12) if cc else ()
    extension = None
    if b0 & 0x10 and keep_extension:
        ext_at = 12 + cc * 4
        profile, words = _EXT.unpack_from(data, ext_at)
        extension = (profile, bytes(data[ext_at + 4 : ext_at + 4 + words * 4]))
    padding = _padding_len(data, offset) if b0 & 0x20 else 0
    return RtpPacket(
        payload_type=pt,
        sequence=seq,
        timestamp=ts,
        ssrc=ssrc,
        payload=bytes(data[offset : len(data) - padding]),
        marker=marker,
        csrcs=tuple(csrcs),
        extension=extension,
        padding=padding,
    )


def build_packet(
    payload: bytes,
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    *,
    marker: bool = False,
    csrcs: tuple[int, ...] = (),
    extension: tuple[int, bytes] | None = None,
    padding: int = 0,
) -> bytes:
    """Serialise one RTP packet. Out-of-range fields raise ValueError rather than wrapping
    silently, because a wrapped SSRC or payload type is always a caller bug."""
    if not 0 <= payload_type <= 127:
        raise ValueError(f"payload type {payload_type} out of range")
    if len(csrcs) > 15:
        raise ValueError("at most 15 CSRCs")
    if not 0 <= padding <= 255:
        raise ValueError("padding is 0..255 bytes")
    b0 = 0x80 | len(csrcs)
    if padding:
        b0 |= 0x20
    if extension is not None:
        b0 |= 0x10
    try:
        head = _HDR.pack(b0, payload_type | (0x80 if marker else 0), sequence, timestamp, ssrc)
        parts = [head]
        if csrcs:
            parts.append(struct.pack(f"!{len(csrcs)}I", *csrcs))
        if extension is not None:
            profile, ext_data = extension
            if len(ext_data) % 4:
                raise ValueError("extension data must be a multiple of 4 bytes")
            parts.append(_EXT.pack(profile, len(ext_data) // 4))
            parts.append(ext_data)
    except struct.error as exc:
        raise ValueError(f"RTP field out of range: {exc}") from None
    parts.append(payload)
    if padding:
        parts.append(bytes(padding - 1) + bytes((padding,)))
    return b"".join(parts)
