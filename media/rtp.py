"""RTP in one import: the packet format and fast path (media.rtppacket), our outgoing stream
and receive statistics (media.rtpstream) and RTCP reports (media.rtcp). Owns no code."""

from media.rtcp import (
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
from media.rtppacket import (
    RTP_HEADER_SIZE,
    RtpPacket,
    RtpParseError,
    build_packet,
    is_rtcp,
    parse_header,
    parse_packet,
    rtp_payload,
)
from media.rtpstream import RtpReceiverStats, RtpSender

__all__ = [
    "RTP_HEADER_SIZE",
    "ReportBlock",
    "RtcpOther",
    "RtcpReport",
    "RtpPacket",
    "RtpParseError",
    "RtpReceiverStats",
    "RtpSender",
    "SenderInfo",
    "build_packet",
    "build_rr",
    "build_sdes_cname",
    "build_sr",
    "is_rtcp",
    "ntp_timestamp",
    "parse_header",
    "parse_packet",
    "parse_rtcp",
    "rtp_payload",
]
