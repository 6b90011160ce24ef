"""Pure helpers for the media runtime (acd.runtime.media): SDP direction flags, symmetric-RTP
latching, the time alignment of recorded channels, in-band DTMF tone frames and the RTCP
report we send. No sockets, no event loop, no clock reads: callers pass `now`.
"""

from __future__ import annotations

import math
import struct
from functools import cache

from media.g711 import Codec, encode, silence
from media.rtp import (
    RtpReceiverStats,
    RtpSender,
    SenderInfo,
    build_rr,
    build_sdes_cname,
    build_sr,
    ntp_timestamp,
)

__all__ = [
    "DIRECTIONS",
    "ChannelAligner",
    "Latch",
    "direction_flags",
    "dtmf_tone_frames",
    "rtcp_report",
]

Address = tuple[str, int]

# Our own direction for the leg, as negotiated in our SDP: (we send, we receive).
DIRECTIONS: dict[str, tuple[bool, bool]] = {
    "sendrecv": (True, True),
    "sendonly": (True, False),
    "recvonly": (False, True),
    "inactive": (False, False),
}


def direction_flags(direction: str) -> tuple[bool, bool]:
    """'sendrecv' | 'sendonly' | 'recvonly' | 'inactive' -> (send, receive)."""
    try:
        return DIRECTIONS[direction]
    except KeyError:
        raise ValueError(f"not an SDP direction: {direction!r}") from None


class Latch:
    """Symmetric RTP (RFC 4961 practice, for NAT): send to the SDP address until a packet with
    an expected payload type arrives, then to that packet's source, and accept media only
    from there. Another source takes over only after the latched one has been silent for
    `relatch_after` seconds (a NAT rebinding, a re-INVITE we were not told about); until then
    its packets are refused, so a stray or injected stream cannot hijack a live call.
    """

    __slots__ = ("dest", "latches", "relatch_after", "sdp", "source")

    def __init__(self, relatch_after: float = 1.0) -> None:
        self.relatch_after = relatch_after
        self.sdp: Address | None = None
        self.source: Address | None = None  # where media is accepted from; None: not latched
        self.dest: Address | None = None  # where we send
        self.latches = 0

    def reset(self, sdp: Address | None) -> None:
        """The SDP address (None: unknown, wait for media). A new address unlatches; the same
        one keeps the latch (a re-INVITE for hold does not move the far end)."""
        if sdp == self.sdp and (self.source is not None or sdp is None):
            return
        self.sdp = sdp
        self.source = None
        self.dest = sdp

    def offer(self, addr: Address, expected: bool, last_rx: float | None, now: float) -> bool:
        """A packet from `addr`, which is not the latched source: True to accept it (and latch
        to it). `expected`: it carries a negotiated payload type; `last_rx`: when the latched
        source last sent."""
        if not expected:
            return False
        if self.source is not None and last_rx is not None and now - last_rx < self.relatch_after:
            return False
        self.source = self.dest = addr
        self.latches += 1
        return True


class ChannelAligner:
    """Lines up one or two mono 8 kHz streams (stereo: left = caller, right = agent) on a
    common timeline for a recording.

    The legs' packets arrive independently, with loss, silence suppression and one-way
    audio. Each channel is placed by arrival time: a frame arriving more than `slack` seconds
    after where its channel has got to is preceded by the silence that puts it where it
    belongs (lesser lateness is jitter, absorbed), and a channel that receives
    nothing is filled with silence up to `slack` behind now, so another channel never waits
    for it for long. `take()` hands out the span every channel has.

    acd/runtime/_fastrtp.c does what `feed` does for recorded packets (see
    acd.runtime.rtprecorder.ChannelTap): change one, change the other; the differential
    test in tests/unit/test_fastrtp.py compares them.
    """

    __slots__ = ("_bufs", "_pos", "_rate", "_slack", "_start")

    def __init__(self, start: float, channels: int = 2, *, rate: int = 8000,
                 slack: float = 0.06) -> None:
        if channels not in (1, 2):
            raise ValueError("one or two channels")
        self._start = start
        self._rate = rate
        self._slack = int(slack * rate)
        self._bufs = tuple(bytearray() for _ in range(channels))
        self._pos = [0] * channels  # samples placed on each channel so far

    def _target(self, now: float) -> int:
        return int((now - self._start) * self._rate)

    def _pad_to(self, channel: int, sample: int) -> None:
        gap = sample - self._pos[channel]
        if gap > 0:
            self._bufs[channel].extend(bytes(2 * gap))
            self._pos[channel] += gap

    def feed(self, channel: int, pcm: bytes, now: float) -> None:
        """16-bit LE PCM that arrived on `channel` (0 = left) at `now`."""
        samples = len(pcm) >> 1
        # The frame arriving now ends now: it started `samples` earlier. Lateness within the
        # slack is jitter and is absorbed; beyond it there was a gap, and the frame goes
        # exactly where it belongs.
        start = self._target(now) - samples
        if start - self._pos[channel] > self._slack:
            self._pad_to(channel, start)
        self._bufs[channel].extend(pcm)
        self._pos[channel] += samples

    def take(self, now: float, *, final: bool = False) -> tuple[bytes, ...]:
        """One PCM span per channel, all of equal length, ready to write; with `final`,
        everything up to now, shorter channels padded with silence."""
        target = self._target(now)
        for ch in range(len(self._bufs)):
            self._pad_to(ch, target if final else target - self._slack)
        sizes = [len(b) for b in self._bufs]
        n = max(sizes) if final else min(sizes)
        out = tuple(bytes(b[:n]).ljust(n, b"\x00") for b in self._bufs)
        for b in self._bufs:
            del b[:n]
        return out

    def pending(self) -> int:
        """Bytes buffered and not yet taken, all channels."""
        return sum(len(b) for b in self._bufs)


_DTMF_FREQS = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}  # fmt: skip


@cache
def dtmf_tone_frames(
    digit: str, codec: Codec, tone_ms: int = 100, gap_ms: int = 60
) -> tuple[bytes, ...]:
    """In-band DTMF for a leg without telephone-event: 20 ms G.711 frames of the digit's two
    tones (each about -7 dBm0, equal level, well inside Q.24 limits) followed by silence, so
    that back-to-back digits stay distinguishable. Cached per digit and codec."""
    freqs = _DTMF_FREQS.get(digit.upper()) if len(digit) == 1 else None
    if freqs is None:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    n = 8 * tone_ms
    w1, w2 = (2 * math.pi * f / 8000 for f in freqs)
    amp = 7000.0
    pcm = struct.pack(
        f"<{n}h", *(round(amp * (math.sin(w1 * i) + math.sin(w2 * i))) for i in range(n))
    )
    encoded = encode(codec, pcm + bytes(-len(pcm) % 320))
    tone = tuple(encoded[i : i + 160] for i in range(0, len(encoded), 160))
    return tone + (silence(codec),) * max(1, gap_ms // 20)


def rtcp_report(
    sender: RtpSender,
    receiver: RtpReceiverStats | None,
    remote_ssrc: int | None,
    *,
    sent_since_last: bool,
    wall: float,
    lsr: int = 0,
    dlsr: int = 0,
    cname: str = "acd",
) -> bytes:
    """The compound RTCP packet for one leg (RFC 3550 6.4): an SR when we sent RTP since the
    last report, else an RR; a report block about the remote source once we have heard it;
    and the SDES CNAME every compound packet must carry. The SR's RTP timestamp is the one
    our next frame would carry, which is where our media clock stands at `wall`."""
    blocks = []
    if receiver is not None and remote_ssrc is not None and receiver.received:
        blocks.append(receiver.report_block(remote_ssrc, lsr=lsr, dlsr=dlsr))
    if sent_since_last:
        secs, frac = ntp_timestamp(wall)
        info = SenderInfo(
            secs, frac, sender.next_timestamp, sender.packets_sent, sender.octets_sent
        )
        head = build_sr(sender.ssrc, info, blocks)
    else:
        head = build_rr(sender.ssrc, blocks)
    return head + build_sdes_cname(sender.ssrc, cname)
