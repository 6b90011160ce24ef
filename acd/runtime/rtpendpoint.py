"""`MediaEndpoint`: the media of one call leg, created by MediaEngine.allocate(). It owns the
leg's RTP socket and what arrives on it; the sending side is its acd.runtime.rtpoutgoing
`Outgoing` stream, RTCP its acd.runtime.rtpcontrol `RtcpSession`.

Receiving: symmetric RTP latching (acd.media_session.Latch), receive statistics per remote
SSRC, DTMF detection, taps, and relaying to the bridged leg. Bridging relays audio with the
other leg's sequence and timestamp gaps kept, transcoding PCMU <-> PCMA by table when the
laws differ. Telephone-events are passed through with the payload type mapped to the other
leg's; when that leg negotiated none, the digit is regenerated there as in-band tones.

DTMF detection, `on_dtmf(digit, method)` with method "rfc4733" or "inband": RFC 4733 packets
when the leg negotiated telephone-event, else Goertzel on the decoded audio (run only while
someone listens: `on_dtmf` set).

`direction` is our own negotiated direction: sendonly/inactive legs use nothing they receive
(it is counted), recvonly/inactive legs send nothing.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from acd.media_session import Latch, direction_flags
from acd.runtime.rtpcontrol import RtcpSession
from acd.runtime.rtpoutgoing import Outgoing
from media.dtmf import GoertzelDetector, TelephoneEventReceiver
from media.g711 import Codec, alaw_to_ulaw, decode, ulaw_to_alaw
from media.prompt import Prompt
from media.rtp import RtpParseError, RtpReceiverStats, rtp_payload

if TYPE_CHECKING:
    from acd.runtime.media import MediaEngine
    from acd.runtime.rtpports import DatagramSocket
    from acd.runtime.rtprecorder import Recorder, Tap

__all__ = ["MediaEndpoint"]

log = structlog.get_logger("acd.media")

Address = tuple[str, int]
MAX_DATAGRAM = 2048
_HDR = struct.Struct("!BBHII")


class MediaEndpoint:
    """One call leg. Counters are plain attributes; `stats` gathers them in a dict."""

    # slots: the per-packet path reads a dozen attributes of two endpoints per packet, and
    # thousands of endpoints share the CPU cache
    __slots__ = ("_armed_at", "_batch", "_engine", "_inactive_since", "_inband", "_latch",
                 "_lost_before", "_now", "_on_dtmf", "_out", "_out_taps", "_peer", "_recv_ok",
                 "_rtcp_sock", "_rx", "_rx_ssrc", "_sock", "_src", "_taps", "_te_rx", "_to_peer",
                 "bad_packets", "closed", "codec", "configured", "digits_in", "direction",
                 "foreign_packets", "inactivity_timeout", "last_rx", "local_port", "on_inactive",
                 "other_packets", "packets_in", "pt", "recv_pt", "recv_te_pt", "rtcp", "te_pt")

    def __init__(self, engine: MediaEngine, port: int, rtp: DatagramSocket,
                 rtcp: DatagramSocket) -> None:
        self._engine = engine
        self._now = engine.clock.now
        self.local_port = port
        self._sock, self._rtcp_sock = rtp, rtcp
        self._batch = engine.recv_batch
        self.codec = Codec.PCMU
        self.pt = self.recv_pt = 0
        self.te_pt: int | None = None
        self.recv_te_pt: int | None = None
        self.direction = "inactive"
        self._recv_ok = False
        self.configured = False
        self._latch = Latch()
        self._src: Address | None = None  # the latch's source, where the fast path sees it
        self._taps: list[Tap] = []  # told what arrives ("in")
        # told what is sent ("out"): a separate list, so that a recording, which wants only
        # "in", costs relayed packets no decode and no call on their way out
        self._out_taps: list[Tap] = []
        self._out = Outgoing(rtp, self._latch, self._out_taps, engine._tick_add,
                             engine._tick_remove)
        self._peer: MediaEndpoint | None = None
        self._to_peer: Callable[[bytes], bytes] | None = None  # our law -> the peer's
        self._rx = RtpReceiverStats()  # replaced per remote SSRC, the first one included
        self._rx_ssrc: int | None = None
        self._lost_before = 0
        self.last_rx: float | None = None
        self._te_rx = TelephoneEventReceiver()
        self._inband: GoertzelDetector | None = None
        self._on_dtmf: Callable[[str, str], None] | None = None
        self.on_inactive: Callable[[], None] | None = None
        self.inactivity_timeout = engine.inactivity_timeout
        self._inactive_since: float | None = None  # set when on_inactive fired
        self._armed_at = self._now()
        self.rtcp = RtcpSession(rtcp, self._now, engine.rtcp_interval, engine.cname)
        self.packets_in = self.foreign_packets = self.bad_packets = self.other_packets = 0
        self.digits_in = 0
        self.closed = False

    # -- configuration ------------------------------------------------------------------------
    def configure(self, remote: Address | None, codec: Codec, pt: int, te_pt: int | None,
                  direction: str, *, recv_pt: int | None = None,
                  recv_te_pt: int | None = None, rtcp: Address | None = None) -> None:
        """Apply a negotiation (again on every re-INVITE). `remote` None: unknown or held
        (c=0.0.0.0); we then send only once media has arrived to latch to. `pt`/`te_pt` are
        the numbers we send with (the peer's); the packets we receive carry `recv_pt` /
        `recv_te_pt` (ours, when we made the offer), by default the same. `rtcp`: the
        peer's a=rtcp address, else its RTP port + 1."""
        self._check_open()
        send, recv = direction_flags(direction)
        if recv_pt is None:
            recv_pt = pt
        if recv_te_pt is None:
            recv_te_pt = te_pt
        for t in (pt, te_pt, recv_pt, recv_te_pt):
            # 72-76 are RTCP packet types in disguise (RFC 3551 section 6, RFC 5761)
            if t is not None and not (0 <= t <= 127 and not 72 <= t <= 76):
                raise ValueError(f"payload type {t} out of range")
        codec = Codec(codec)
        out = self._out
        if self.configured and (codec is not self.codec or pt != self.pt):
            out.sender.source_changed()
        self.codec, self.pt, self.te_pt, self.direction = codec, pt, te_pt, direction
        self.recv_pt, self.recv_te_pt = recv_pt, recv_te_pt
        out.codec, out.pt, out.send_ok, out.sender.event_pt = codec, pt, send, te_pt
        self._recv_ok = recv
        old_sdp = self._latch.sdp
        self._latch.reset((remote[0], int(remote[1])) if remote is not None else None)
        self._src = self._latch.source
        if rtcp is not None:
            self.rtcp.set_destination((rtcp[0], int(rtcp[1])))
        elif self._latch.sdp != old_sdp:
            self.rtcp.rtp_destination(self._latch.dest)
        if not self.configured:
            self._armed_at = self._now()
        self.configured = True
        self._update_inband()
        self._update_transcoding()
        if self._peer is not None:
            self._peer._update_transcoding()

    @property
    def remote(self) -> Address | None:
        """Where we send: the latched source once media has arrived, else the SDP address."""
        return self._latch.dest

    @property
    def latched(self) -> bool:
        return self._latch.source is not None

    @property
    def ssrc(self) -> int:
        return self._out.sender.ssrc

    @property
    def on_dtmf(self) -> Callable[[str, str], None] | None:
        return self._on_dtmf

    @on_dtmf.setter
    def on_dtmf(self, callback: Callable[[str, str], None] | None) -> None:
        self._on_dtmf = callback
        self._update_inband()

    def _update_inband(self) -> None:
        want = self._on_dtmf is not None and self.recv_te_pt is None
        if want and self._inband is None:
            self._inband = GoertzelDetector()
        elif not want:
            self._inband = None

    def _update_transcoding(self) -> None:
        peer = self._peer
        if peer is None or peer.codec is self.codec:
            self._to_peer = None
        else:
            self._to_peer = ulaw_to_alaw if self.codec is Codec.PCMU else alaw_to_ulaw

    # -- what we send --------------------------------------------------------------------------
    def play(self, prompts: Prompt | Sequence[Prompt], loop: bool = False,
             on_done: Callable[[], None] | None = None) -> None:
        """Play prompts back to back (forever with `loop`: music on hold), replacing whatever
        was playing; a bridge resumes when it ends. `on_done()` is called when the programme
        ends by itself (soon, for an empty one), not after stop_play(), a replacing play()
        or close()."""
        self._check_open()
        if not self._out.play(prompts, loop, on_done) and on_done is not None:
            self._engine.loop.call_soon(self._call_done, on_done)

    def stop_play(self) -> None:
        """Barge-in: stop the prompt now; a bridge, if any, resumes with the next packet."""
        self._out.stop_play()

    @property
    def playing(self) -> bool:
        return self._out.playing

    def send_dtmf(self, digit: str, duration_ms: int = 100) -> None:
        """Send one digit: RFC 4733 events when telephone-event was negotiated, else in-band
        tones. Digits queue up behind each other; other audio pauses while they are sent."""
        self._check_open()
        self._out.send_dtmf(digit, duration_ms, self.te_pt)

    def _call_done(self, on_done: Callable[[], None]) -> None:
        try:
            on_done()
        except Exception:
            log.exception("play on_done callback failed", port=self.local_port)

    # -- bridging ----------------------------------------------------------------------------
    def bridge(self, other: MediaEndpoint) -> None:
        """Relay media both ways between this leg and `other` (ending any bridge either had)."""
        self._check_open()
        other._check_open()
        if other is self:
            raise ValueError("cannot bridge an endpoint to itself")
        if self._peer is other:
            return
        self.unbridge()
        other.unbridge()
        self._peer, other._peer = other, self
        self._update_transcoding()
        other._update_transcoding()

    def unbridge(self) -> None:
        peer = self._peer
        if peer is None:
            return
        self._peer = peer._peer = None
        self._to_peer = peer._to_peer = None
        self._out.sender.source_changed()
        peer._out.sender.source_changed()

    @property
    def bridged_to(self) -> MediaEndpoint | None:
        return self._peer

    # -- taps and recording ----------------------------------------------------------------
    def add_tap(self, tap: Tap, *, out: bool = True) -> Callable[[], None]:
        """`tap(pcm16_le, "in" | "out")` for every frame received from / sent to the remote
        (`out=False`: only "in"). Runs on the event loop per packet: keep it short. Returns
        the function removing it."""
        self._taps.append(tap)
        if out:
            self._out_taps.append(tap)

        def remove() -> None:
            for taps in (self._taps, self._out_taps):
                with contextlib.suppress(ValueError):
                    taps.remove(tap)

        return remove

    def record(self, path: Any, on_error: Callable[[BaseException], None] | None = None,
               tap: Tap | None = None) -> Recorder:
        """A mono recording of what this leg's remote sends (voicemail); `tap` is added for as
        long as the recording lasts. See MediaEngine.record for stereo."""
        return self._engine.record(path, self, on_error=on_error, tap=tap)

    # -- receiving ---------------------------------------------------------------------------
    def _read_rtp(self) -> None:
        """The reader callback: up to `engine.recv_batch` datagrams per wake-up."""
        sock, on_rtp = self._sock, self._on_rtp
        for _ in range(self._batch):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            try:
                on_rtp(data, addr)
            except Exception as exc:  # one bad packet or callback must not stop the socket
                self._packet_failed(exc)

    def _packet_failed(self, exc: BaseException) -> None:
        """One datagram's handling raised (here or in acd.runtime._fastrtp, which reads for
        endpoints behind acd.runtime.rtppoll's native serving)."""
        log.error("RTP packet handling failed", port=self.local_port, exc_info=exc)

    def _on_rtp(self, data: bytes, addr: Address) -> None:
        # The per-packet path, ordered for the common case: a plain audio packet (version 2,
        # no padding, extension or CSRCs) from the latched source. RTCP packet types (200-204)
        # read as payload types 72-76, which configure() refuses. acd/runtime/_fastrtp.c does the
        # same for that common case in C, reading and writing these attributes by name:
        # whoever changes this method or the attributes it uses changes that file too
        # (tests/unit/test_fastrtp.py compares the two).
        try:
            b0, b1, seq, ts, ssrc = _HDR.unpack_from(data)
        except struct.error:
            if len(data) >= 8 and 192 <= data[1] <= 223:  # an RTCP RR without blocks is 8
                self.rtcp.on_packet(data, addr, self._out.sender.ssrc)
            else:
                self.bad_packets += 1
            return
        if b0 == 0x80:
            payload = data[12:]
        elif b0 & 0xC0 != 0x80:
            self.bad_packets += 1
            return
        elif 192 <= b1 <= 223:  # RTCP multiplexed on the RTP port (RFC 5761)
            self.rtcp.on_packet(data, addr, self._out.sender.ssrc)
            return
        else:
            try:
                payload = rtp_payload(data)
            except RtpParseError:
                self.bad_packets += 1
                return
        pt = b1 & 0x7F
        now = self._now()
        if addr != self._src and not self._accept(addr, pt, b1, data, now):
            return
        self.last_rx = now
        self.packets_in += 1
        if pt == self.recv_pt:
            rx = self._rx
            if ssrc != self._rx_ssrc:
                rx = self._new_source(ssrc)
            rx.update(seq, ts, now, len(payload))
            if not self._recv_ok:
                return
            if self._taps or self._inband is not None:
                self._audio_in(payload)
            peer = self._peer
            if peer is not None:
                out = peer._out
                if out.send_ok and not out.busy:
                    if self._to_peer is not None:
                        payload = self._to_peer(payload)
                    out.relay(payload, out.pt, b1 > 0x7F, seq, ts, ssrc, now, len(payload))
        elif pt == self.recv_te_pt:
            self._event_in(payload, b1 > 0x7F, seq, ts, ssrc, now)
        else:
            self.other_packets += 1  # comfort noise, unnegotiated codecs: not used

    def _accept(self, addr: Address, pt: int, b1: int, data: bytes, now: float) -> bool:
        """A packet from somewhere other than the latched source: latch to it or refuse it."""
        if 192 <= b1 <= 223:  # RTCP-mux from a new source
            self.rtcp.on_packet(data, addr, self._out.sender.ssrc)
            return False
        expected = pt == self.recv_pt or pt == self.recv_te_pt
        if not self._latch.offer(addr, expected, self.last_rx, now):
            self.foreign_packets += 1
            return False
        self._src = addr
        if addr != self._latch.sdp:  # behind NAT: its RTCP comes from there too, presumably
            self.rtcp.rtp_destination(addr)
        return True

    def _new_source(self, ssrc: int) -> RtpReceiverStats:
        self._lost_before += max(0, self._rx.lost)
        self._rx = RtpReceiverStats()
        self._rx_ssrc = ssrc
        return self._rx

    def _audio_in(self, payload: bytes) -> None:
        pcm = decode(self.codec, payload)
        for tap in tuple(self._taps):
            tap(pcm, "in")
        if self._inband is not None:
            for digit in self._inband.feed(pcm):
                self._digit(digit, "inband")

    def _event_in(self, payload: bytes, marker: bool, seq: int, ts: int, ssrc: int,
                  now: float) -> None:
        rx = self._rx
        if ssrc == self._rx_ssrc and len(payload) >= 4:
            # Events share the audio's sequence space (else they would count as lost) but
            # carry the event's start time: feed them at the media time they stand for and
            # keep them out of the jitter estimate.
            jitter = rx.jitter
            rx.update(seq, (ts + ((payload[2] << 8) | payload[3]) - 160) & 0xFFFFFFFF, now)
            rx.jitter = jitter
        if not self._recv_ok:
            return
        try:
            digit = self._te_rx.feed(ts, marker, payload)
        except RtpParseError:
            self.bad_packets += 1
            return
        if digit is not None:
            self._digit(digit, "rfc4733")
        peer = self._peer
        if peer is None or not peer._out.send_ok:
            return
        if peer.te_pt is not None:
            if not peer._out.busy:
                peer._out.relay(payload, peer.te_pt, marker, seq, ts, ssrc, now, None)
        elif digit is not None:
            peer.send_dtmf(digit)

    def _digit(self, digit: str, method: str) -> None:
        self.digits_in += 1
        if self._on_dtmf is not None:
            try:
                self._on_dtmf(digit, method)
            except Exception:
                log.exception("on_dtmf callback failed", port=self.local_port)

    # -- housekeeping and state -----------------------------------------------------------
    def _housekeep(self, now: float, wall: float) -> None:
        """From the engine, about once a second: inactivity and RTCP reports."""
        if self.on_inactive is not None and self._recv_ok and self.inactivity_timeout > 0:
            last = self.last_rx if self.last_rx is not None else self._armed_at
            if self._inactive_since is not None and last > self._inactive_since:
                self._inactive_since = None  # media came back: arm again
            if self._inactive_since is None and now - last >= self.inactivity_timeout:
                self._inactive_since = now
                try:
                    self.on_inactive()
                except Exception:
                    log.exception("on_inactive callback failed", port=self.local_port)
        if self.configured:
            self.rtcp.due(now, self._out.sender, self._rx, self._rx_ssrc, wall)

    def idle_for(self, now: float) -> float:
        """Seconds since RTP last arrived (since configuration, if none has)."""
        return now - (self.last_rx if self.last_rx is not None else self._armed_at)

    @property
    def packets_out(self) -> int:
        return self._out.packets_out

    @property
    def stats(self) -> dict[str, Any]:
        rx, out = self._rx, self._out
        return {
            "packets_in": self.packets_in, "packets_out": out.packets_out,
            "lost": self._lost_before + max(0, rx.lost),
            "jitter": rx.jitter_seconds,
            "last_rx": self.last_rx, "foreign": self.foreign_packets, "bad": self.bad_packets,
            "other": self.other_packets, "send_errors": out.send_errors,
            "rtcp_in": self.rtcp.received, "rtcp_out": self.rtcp.sent,
            "digits_in": self.digits_in, "latched": self.latched, "remote": self.remote,
        }

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError(f"media endpoint on port {self.local_port} is closed")

    def close(self) -> None:
        """Stop everything and give the ports back; closing again is harmless."""
        if self.closed:
            return
        self.unbridge()
        self._out.reset()
        self._taps.clear()
        self._out_taps.clear()
        self.on_inactive = None
        self._on_dtmf = self._inband = None
        self.closed = True
        self._engine._release(self)

    def __repr__(self) -> str:
        return (f"<MediaEndpoint :{self.local_port} {self.codec.name}/{self.pt} "
                f"{self.direction} remote={self.remote}{' closed' if self.closed else ''}>")
