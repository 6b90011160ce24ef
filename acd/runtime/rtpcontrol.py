"""RTCP for one call leg (RFC 3550 section 6): reads the RTCP socket (the odd port), counts
and parses what arrives (media.rtcp), remembers the far end's report about our stream and
its last SR (for LSR/DLSR), and sends our SR/RR + SDES every `interval` seconds, randomised
by 0.5-1.5 as RFC 3550 6.2 asks so that thousands of legs do not report in step.

Reports go to the source RTCP last came from (symmetric RTCP, for NAT), else to the RTP
destination's port + 1.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from acd.media_session import rtcp_report
from acd.runtime.rtpports import DatagramSocket
from media.rtcp import SR
from media.rtp import (
    ReportBlock,
    RtcpReport,
    RtpParseError,
    RtpReceiverStats,
    RtpSender,
    parse_rtcp,
)

__all__ = ["RtcpSession"]

Address = tuple[str, int]
RECV_BATCH = 16


class RtcpSession:
    __slots__ = (
        "_at_report",
        "_dest",
        "_latched",
        "_next",
        "_now",
        "_sock",
        "_sr_at",
        "_sr_lsr",
        "bad",
        "cname",
        "interval",
        "received",
        "remote_report",
        "send_errors",
        "sent",
    )

    def __init__(self, sock: DatagramSocket, now: Callable[[], float], interval: float,
                 cname: str) -> None:
        self._sock = sock
        self._now = now
        self.interval = interval
        self.cname = cname
        self._dest: Address | None = None
        self._latched = False
        self._sr_lsr, self._sr_at = 0, 0.0
        self._next = now() + interval * random.uniform(0.5, 1.5)
        self._at_report = 0  # our packets_sent when we last reported
        self.remote_report: ReportBlock | None = None  # the far end's view of our stream
        self.received = self.bad = self.sent = self.send_errors = 0

    @property
    def dest(self) -> Address | None:
        return self._dest

    def rtp_destination(self, rtp: Address | None) -> None:
        """The RTP destination changed: report to its port + 1 until RTCP arrives."""
        if not self._latched:
            self._dest = (rtp[0], rtp[1] + 1) if rtp is not None else None

    def set_destination(self, addr: Address) -> None:
        """The peer's a=rtcp address: report there until RTCP arrives from elsewhere."""
        if not self._latched:
            self._dest = addr

    def read(self) -> None:
        """The reader callback: drain the socket."""
        sock = self._sock
        for _ in range(RECV_BATCH):
            try:
                data, addr = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            self.on_packet(data, addr, None)

    def on_packet(self, data: bytes, addr: Address, our_ssrc: int | None) -> None:
        """One RTCP datagram (also used for RTCP multiplexed on the RTP port)."""
        self.received += 1
        try:
            packets = parse_rtcp(data)
        except RtpParseError:
            self.bad += 1
            return
        if not self._latched:
            self._latched = True
            self._dest = addr
        for p in packets:
            if not isinstance(p, RtcpReport):
                continue
            if p.packet_type == SR and p.sender_info is not None:
                self._sr_lsr, self._sr_at = p.sender_info.lsr, self._now()
            for block in p.blocks:
                if our_ssrc is None or block.ssrc == our_ssrc:
                    self.remote_report = block

    def due(self, now: float, sender: RtpSender, receiver: RtpReceiverStats | None,
            remote_ssrc: int | None, wall: float) -> None:
        """Send our report if it is time (from the engine's housekeeping)."""
        if self.interval <= 0 or now < self._next:
            return
        self._next = now + self.interval * random.uniform(0.5, 1.5)
        dest = self._dest
        if dest is None:
            return
        sent = sender.packets_sent
        dlsr = int((now - self._sr_at) * 65536) if self._sr_lsr else 0
        pkt = rtcp_report(sender, receiver, remote_ssrc, sent_since_last=sent != self._at_report,
                          wall=wall, lsr=self._sr_lsr, dlsr=dlsr, cname=self.cname)
        self._at_report = sent
        try:
            self._sock.sendto(pkt, dest)
        except OSError:
            self.send_errors += 1
            return
        self.sent += 1

    def close(self) -> None:
        self._sock.close()
