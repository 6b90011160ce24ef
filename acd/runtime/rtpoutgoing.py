"""What one call leg sends: `Outgoing`, the leg's single RTP stream (media.rtp.RtpSender:
one SSRC, continuous sequence numbers and timestamps, the marker bit on every switch) and
the sources that take turns on it: outgoing DTMF, else the playing prompt, else relayed
packets from the bridged leg, else nothing.

Nothing is sent while idle (no comfort noise: the far end's own comfort-noise generation or
jitter buffer covers the gap); the timestamp then jumps by the idle time, as RFC 3550 5.1
wants for a silence gap, and the next packet carries the marker bit. Local sources are paced
by the engine's shared ticker (`tick()`); relayed packets go out as they arrive.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import structlog

from acd.media_session import Latch, dtmf_tone_frames
from media.dtmf import EventPacketPlan, TelephoneEventSender
from media.g711 import Codec, decode
from media.prompt import Player, Prompt
from media.rtp import RtpSender

if TYPE_CHECKING:
    from acd.runtime.rtpports import DatagramSocket
    from acd.runtime.rtprecorder import Tap

__all__ = ["Outgoing"]

log = structlog.get_logger("acd.media")

_EVENT_SENDER = TelephoneEventSender()
_IDLE = 0.030  # a gap longer than this (1.5 frames) is silence the timestamp must cover


class _Sender(RtpSender):
    __slots__ = ()

    def skip(self, samples: int) -> None:
        """Advance the media clock over a span in which nothing was sent (RFC 3550 5.1: the
        timestamp follows the sampling clock through silence). media.rtp.RtpSender has no
        public way to do this yet."""
        self._ts = (self._ts + samples) & 0xFFFFFFFF


class Outgoing:
    """The sending half of a MediaEndpoint. `busy`: a local source owns the stream (relayed
    packets are dropped meanwhile); `tick` is then called by the engine every frame time."""

    __slots__ = ("_events", "_on_done", "_player", "_relaying", "_schedule", "_sock",
                 "_unschedule", "busy", "codec", "last_sent", "latch", "packets_out", "pt",
                 "send_errors", "send_ok", "sender", "taps")

    def __init__(self, sock: DatagramSocket, latch: Latch, taps: list[Tap],
                 schedule: Callable[[Outgoing], None],
                 unschedule: Callable[[Outgoing], None]) -> None:
        self._sock = sock
        self.latch = latch
        self.taps = taps  # the endpoint's list: "out" audio is reported there
        self._schedule, self._unschedule = schedule, unschedule
        self.sender = _Sender()
        self.codec = Codec.PCMU
        self.pt = 0
        self.send_ok = False
        self._player: Player | None = None
        self._on_done: Callable[[], None] | None = None
        self._events: deque[EventPacketPlan | bytes] = deque()
        self.busy = False
        self._relaying = False  # the last packet sent was relayed
        self.last_sent = -1.0  # clock time of the last packet sent; < 0: never
        self.packets_out = self.send_errors = 0

    # -- local sources --------------------------------------------------------------------
    def play(self, prompts: Prompt | Sequence[Prompt], loop: bool,
             on_done: Callable[[], None] | None) -> bool:
        """Start a programme (False: it is empty, nothing started)."""
        player = Player(prompts, loop=loop)
        if player.finished:
            self.stop_play()
            return False
        self._player, self._on_done = player, on_done
        self.sender.source_changed()
        self._start()
        return True

    def stop_play(self) -> None:
        if self._player is not None:
            self._player.stop()
            self._player = self._on_done = None
            self.sender.source_changed()
            self._settle()

    @property
    def playing(self) -> bool:
        return self._player is not None

    def send_dtmf(self, digit: str, duration_ms: int, te_pt: int | None) -> None:
        if te_pt is not None:
            self._events.extend(_EVENT_SENDER.plan(digit, duration_ms))
            self._events.extend((b"",) * 2)  # 40 ms pause before the next digit or audio
        else:
            self._events.extend(dtmf_tone_frames(digit.upper(), self.codec, duration_ms))
        self._start()

    def _start(self) -> None:
        if not self.busy:
            self.busy = True
            self._schedule(self)

    def _settle(self) -> None:
        if self.busy and self._player is None and not self._events:
            self.busy = False
            self._unschedule(self)

    def reset(self) -> None:
        """Drop every local source at once (close, or a failed tick)."""
        self._player = self._on_done = None
        self._events.clear()
        self._settle()

    def tick(self, frames: int, now: float) -> None:
        """`frames` frame times (normally 1) have passed: send that many local frames. When
        the programme ends, its on_done runs here, and a programme it starts takes the same
        slot, so chained prompts play without a hole."""
        sender = self.sender
        slots = frames
        while slots:
            if self._events:
                item = self._events.popleft()
                self._catch_up(now)
                self._relaying = False
                slots -= 1
                if isinstance(item, EventPacketPlan):
                    pkt = sender.event_packet(item.payload, start=item.marker, samples=item.advance)
                elif item:
                    pkt = sender.next_packet(item, self.pt)
                    self._tap_out(item)
                else:  # the pause after a telephone-event
                    sender.skip(160)
                    self.last_sent = now
                    continue
            elif self._player is not None:
                frame = self._player.next_frame(self.codec)
                if frame is None:
                    done = self._on_done
                    self._player = self._on_done = None
                    sender.source_changed()
                    if done is not None:
                        self._done(done)
                    continue
                self._catch_up(now)
                self._relaying = False
                slots -= 1
                pkt = sender.next_packet(frame, self.pt)
                if self.taps:
                    self._tap_out(frame)
            else:
                break
            self.last_sent = now
            if self.send_ok:
                self.send(pkt)
        self._settle()

    def _done(self, on_done: Callable[[], None]) -> None:
        try:
            on_done()
        except Exception:
            log.exception("play on_done callback failed")

    def _catch_up(self, now: float) -> None:
        if self.last_sent >= 0 and now - self.last_sent > _IDLE:
            self.sender.skip((round((now - self.last_sent) * 50) - 1) * 160)

    # -- relaying ---------------------------------------------------------------------------
    def relay(self, payload: bytes, pt: int, marker: bool, seq: int, ts: int, ssrc: int,
              now: float, samples: int | None) -> None:
        """One packet from the bridged leg, payload already in our law, `pt` ours."""
        if not self._relaying:
            # The relay anchors on our next timestamp: first move it over the idle time.
            self._relaying = True
            self._catch_up(now)
        pkt = self.sender.relay(payload, pt, marker, seq, ts, ssrc, samples)
        dest = self.latch.dest
        if pkt is None or dest is None:
            return
        self.last_sent = now
        try:
            self._sock.sendto(pkt, dest)
        except OSError:
            self.send_errors += 1
            return
        self.packets_out += 1
        if self.taps and samples is not None:
            self._tap_out(payload)

    # -- the wire ------------------------------------------------------------------------------
    def send(self, pkt: bytes) -> None:
        dest = self.latch.dest
        if dest is None:
            return
        try:
            self._sock.sendto(pkt, dest)
        except OSError:  # a full socket buffer, an unreachable network: drop, never raise
            self.send_errors += 1
            return
        self.packets_out += 1

    def _tap_out(self, frame: bytes) -> None:
        pcm = decode(self.codec, frame)
        for tap in tuple(self.taps):
            tap(pcm, "out")
