"""Per-stream RTP state: `RtpSender` (our one outgoing stream: SSRC, continuous sequence and
timestamp across source changes, re-stamping of bridged packets) and `RtpReceiverStats`
(RFC 3550 A.1 / A.3 / A.8 loss, reordering and jitter bookkeeping for one incoming SSRC).

Sans-IO: time arrives as arguments, randomness through an injectable `randbits` callable.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Callable

from media.rtcp import ReportBlock
from media.rtppacket import parse_header, rtp_payload

__all__ = ["RtpReceiverStats", "RtpSender"]

_HDR = struct.Struct("!BBHII")
_U16 = struct.Struct("!H")
_M16 = 0xFFFF
_M32 = 0xFFFFFFFF
# RFC 3550 A.1: how far the other leg's sequence may jump before we treat it as a new source.
MAX_DROPOUT = 3000
MAX_MISORDER = 100


class RtpSender:
    """One outgoing RTP stream with a single SSRC.

    Local sources (prompts, music on hold, telephone-events) call `next_packet` /
    `event_packet` once per frame. A bridge calls `relay` with the other leg's header fields:
    their sequence and timestamp are mapped by fixed offsets, anchored so that their first
    packet lands exactly on our next sequence number and timestamp. Fixed offsets keep their
    loss gaps, reordering, silence-suppression gaps and telephone-event timestamps intact
    (a receiver's jitter buffer sees the truth), while our numbering never jumps or goes
    backwards at a source change. The anchor is re-made after any local packet,
    `source_changed()`, a new SSRC from the other leg or a sequence jump beyond RFC 3550's
    dropout limits.
    """

    __slots__ = (
        "_anchor_seq",
        "_event_ts",
        "_marker",
        "_seq",
        "_seq_off",
        "_their_max",
        "_their_ssrc",
        "_ts",
        "_ts_off",
        "event_pt",
        "octets_sent",
        "packets_sent",
        "ssrc",
    )

    def __init__(
        self,
        *,
        ssrc: int | None = None,
        randbits: Callable[[int], int] = secrets.randbits,
        event_pt: int | None = None,
    ) -> None:
        self.ssrc = randbits(32) if ssrc is None else ssrc
        self._seq = randbits(16)
        self._ts = randbits(32)
        self._marker = True  # RFC 3551: the first packet of a stream starts a talkspurt
        self._event_ts: int | None = None
        self._their_ssrc: int | None = None  # None: no relay anchor
        self._anchor_seq = 0
        self._their_max = 0
        self._seq_off = 0
        self._ts_off = 0
        self.event_pt = event_pt
        self.packets_sent = 0
        self.octets_sent = 0

    @property
    def next_sequence(self) -> int:
        return self._seq

    @property
    def next_timestamp(self) -> int:
        """The RTP timestamp the next locally generated audio frame will carry."""
        return self._ts

    def source_changed(self) -> None:
        """The audio source changes: the next packet carries the marker bit and a relayed
        stream is re-anchored."""
        self._marker = True
        self._their_ssrc = None

    def next_packet(
        self, payload: bytes, pt: int, samples: int = 160, marker: bool = False
    ) -> bytes:
        """The next locally generated packet; the timestamp then advances by `samples`."""
        if pt > 127:
            raise ValueError(f"payload type {pt} out of range")
        if self._marker:
            marker, self._marker = True, False
        self._their_ssrc = None
        seq = self._seq
        packet = _HDR.pack(0x80, pt | 0x80 if marker else pt, seq, self._ts, self.ssrc) + payload
        self._seq = (seq + 1) & _M16
        self._ts = (self._ts + samples) & _M32
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return packet

    def event_packet(
        self, payload: bytes, *, start: bool, pt: int | None = None, samples: int = 160
    ) -> bytes:
        """One RFC 4733 telephone-event packet. `start` opens a new event at the current media
        time (with the marker bit); every packet of that event, updates and the repeated end
        packets alike, carries that same timestamp. The media clock still advances by `samples`
        per packet (0 for back-to-back end repeats), so audio resumes at the right time."""
        pt = self.event_pt if pt is None else pt
        if pt is None or pt > 127:
            raise ValueError("telephone-event payload type not set")
        if start:
            self._event_ts = self._ts
            self._marker = False
        elif self._event_ts is None:
            raise ValueError("event update without a started event")
        self._their_ssrc = None
        seq = self._seq
        packet = _HDR.pack(0x80, pt | 0x80 if start else pt, seq, self._event_ts, self.ssrc)
        self._seq = (seq + 1) & _M16
        self._ts = (self._ts + samples) & _M32
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return packet + payload

    def relay(
        self,
        payload: bytes,
        pt: int,
        marker: bool,
        their_seq: int,
        their_ts: int,
        their_ssrc: int,
        samples: int | None = None,
    ) -> bytes | None:
        """Re-stamp one packet from the other leg onto this stream (pt is already ours: map
        or transcode before calling). `samples` is the frame length used to know where our
        clock stands afterwards; default: the payload length for PCMU/PCMA, the event duration
        for `event_pt`, else 160. Returns None for a straggler older than the current anchor,
        which would otherwise reuse sequence numbers we already sent."""
        if their_ssrc != self._their_ssrc:
            self._anchor(their_seq, their_ts, their_ssrc)
            marker = True
        else:
            delta = (their_seq - self._their_max) & _M16
            if delta < MAX_DROPOUT:
                self._their_max = their_seq
            elif delta <= _M16 - MAX_MISORDER:
                self._anchor(their_seq, their_ts, their_ssrc)
                marker = True
            elif (their_seq - self._anchor_seq) & 0x8000:
                return None
        if self._marker:
            marker, self._marker = True, False
        seq = (their_seq + self._seq_off) & _M16
        ts = (their_ts + self._ts_off) & _M32
        if samples is None:
            if pt == 0 or pt == 8:
                samples = len(payload)
            elif pt == self.event_pt and len(payload) >= 4:
                samples = _U16.unpack_from(payload, 2)[0]
            else:
                samples = 160
        # Our clock only moves forward: stragglers and event packets must not pull it back.
        if (seq + 1 - self._seq) & 0x8000 == 0:
            self._seq = (seq + 1) & _M16
        end_ts = (ts + samples) & _M32
        if (end_ts - self._ts) & 0x80000000 == 0:
            self._ts = end_ts
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return _HDR.pack(0x80, pt | 0x80 if marker else pt, seq, ts, self.ssrc) + payload

    def relay_packet(self, data: bytes, pt: int | None = None) -> bytes | None:
        """`relay` for a whole RTP packet from the other leg; CSRCs, extension and padding are
        dropped. RtpParseError for malformed input."""
        their_pt, marker, seq, ts, ssrc, offset = parse_header(data)
        payload = rtp_payload(data) if data[0] & 0x20 else data[offset:]
        return self.relay(payload, their_pt if pt is None else pt, marker, seq, ts, ssrc)

    def _anchor(self, their_seq: int, their_ts: int, their_ssrc: int) -> None:
        self._their_ssrc = their_ssrc
        self._anchor_seq = self._their_max = their_seq
        self._seq_off = (self._seq - their_seq) & _M16
        self._ts_off = (self._ts - their_ts) & _M32


class RtpReceiverStats:
    """Receive statistics for one incoming SSRC (start a new one when the SSRC changes).

    `received` counts distinct sequence numbers, so `lost = expected - received` is not
    distorted by duplicates (which are counted separately). Feed telephone-event packets
    elsewhere: their repeated timestamps would read as jitter.
    """

    WINDOW = 128  # >= MAX_MISORDER so every acceptable straggler can be checked for duplicates

    __slots__ = ("_bad_seq", "_base", "_cycles", "_expected_before", "_expected_prior", "_max",
                 "_received_prior", "_seen", "_started", "_transit", "clock_rate", "duplicates",
                 "jitter", "octets", "packets", "received", "reordered")

    def __init__(self, clock_rate: int = 8000) -> None:
        self.clock_rate = clock_rate
        self.packets = 0  # everything fed, duplicates included
        self.octets = 0
        self.received = 0
        self.duplicates = 0
        self.reordered = 0
        self.jitter = 0.0  # RFC 3550 A.8, in timestamp units
        self._started = False
        self._base = 0
        self._max = 0
        self._cycles = 0
        self._expected_before = 0  # expected packets from sequence ranges before a restart
        self._bad_seq = -1
        self._seen = 0  # bit i: (max - i) was received
        self._transit: float | None = None
        self._expected_prior = 0
        self._received_prior = 0

    @property
    def extended_max(self) -> int:
        return self._cycles + self._max

    @property
    def expected(self) -> int:
        if not self._started:
            return 0
        return self._expected_before + self._cycles + self._max - self._base + 1

    @property
    def lost(self) -> int:
        return self.expected - self.received

    @property
    def jitter_seconds(self) -> float:
        return self.jitter / self.clock_rate

    def update(self, seq: int, timestamp: int, arrival: float, size: int = 0) -> None:
        """One packet: its sequence number, RTP timestamp, arrival time in seconds (any
        monotonic origin) and payload size in octets."""
        self.packets += 1
        self.octets += size
        if not self._started:
            self._restart(seq)
        else:
            delta = (seq - self._max) & _M16
            if delta == 0:
                self.duplicates += 1
                return
            if delta < MAX_DROPOUT:
                if seq < self._max:
                    self._cycles += 0x10000
                self._max = seq
                self._seen = ((self._seen << delta) | 1) & ((1 << self.WINDOW) - 1)
            elif delta > _M16 - MAX_MISORDER:
                back = 0x10000 - delta
                if (self._seen >> back) & 1:
                    self.duplicates += 1
                    return
                self._seen |= 1 << back
                self.reordered += 1
            elif seq == self._bad_seq:
                # Two packets in sequence after a big jump: the sender restarted its numbering.
                self._expected_before = self.expected
                self._restart(seq)
            else:
                self._bad_seq = (seq + 1) & _M16
                return
        self.received += 1
        transit = arrival * self.clock_rate - timestamp
        if self._transit is not None:
            d = transit - self._transit
            # The RTP timestamp wraps at 2**32; the transit difference must not.
            if d > 2147483648.0 or d < -2147483648.0:
                d = (d + 2147483648.0) % 4294967296.0 - 2147483648.0
            self.jitter += (abs(d) - self.jitter) / 16.0
        self._transit = transit

    def _restart(self, seq: int) -> None:
        self._started = True
        self._base = self._max = seq
        self._cycles = 0
        self._seen = 1
        self._bad_seq = -1

    def report_block(self, ssrc: int, lsr: int = 0, dlsr: int = 0) -> ReportBlock:
        """An RTCP report block about this source; the fraction lost covers the interval since
        the previous call (RFC 3550 A.3)."""
        expected, received = self.expected, self.received
        exp_int = expected - self._expected_prior
        lost_int = exp_int - (received - self._received_prior)
        self._expected_prior, self._received_prior = expected, received
        fraction = (lost_int << 8) // exp_int if exp_int > 0 and lost_int > 0 else 0
        return ReportBlock(
            ssrc=ssrc,
            fraction_lost=min(fraction, 255),
            cumulative_lost=self.lost,
            highest_seq=self.extended_max & _M32,
            jitter=int(self.jitter),
            lsr=lsr,
            dlsr=dlsr,
        )
