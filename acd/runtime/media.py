"""The asyncio media runtime: `MediaEngine` owns the RTP port pool, every call leg's
`MediaEndpoint` (acd.runtime.rtpendpoint), the one shared 20 ms ticker that paces all
locally generated audio, the housekeeping timer (inactivity, RTCP reports, recording
flushes) and the recording writer thread (acd.runtime.rtprecorder).

Costs are per packet, not per stream: no task per endpoint, and 500 playing prompts cost
one timer. Socket readiness comes through acd.runtime.rtppoll: on Linux one epoll object
for all media sockets, coalescing wake-ups under load, else an `add_reader` per socket.
Measured on a bare uvloop relay of 1,000 calls (bench/rtp.py --mode readers, medians of 5):
an add_reader per socket draining until BlockingIOError 8.8 us of CPU per packet, reading
one datagram per wake-up 9.0, a DatagramProtocol 7.5, the coalescing epoll 4.9 (for 0.5 ms
more median latency). Readers take `recv_batch` datagrams per wake-up, 1 by default: pollers
are level-triggered, and a drain pays a failing recvfrom plus an exception (1.6 us) per
socket and pass where nearly every socket holds one packet.

The ticker runs on absolute deadlines (tick n at start + n * 20 ms via `loop.call_at`,
media.pacing.FrameClock): scheduling jitter never accumulates, a short stall is caught up
with at most `max_burst` frames, a longer one resyncs instead of bursting. It stops when
nothing plays and restarts on the next `play()`.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from acd.clock import Clock
from acd.runtime.rtpendpoint import MediaEndpoint
from acd.runtime.rtpoutgoing import Outgoing
from acd.runtime.rtppoll import make_readers
from acd.runtime.rtpports import (
    DatagramSocket,
    PortsExhausted,
    RtpPortPool,
    open_udp,
    open_udp_pair,
)
from acd.runtime.rtprecorder import Recorder, RecordingError, RecordingWriter, Tap, WavSink
from media.pacing import FrameClock

__all__ = [
    "MediaEndpoint",
    "MediaEngine",
    "PortsExhausted",
    "Recorder",
    "RecordingError",
    "RtpPortPool",
]

log = structlog.get_logger("acd.media")

# uvloop's timers have millisecond resolution and may fire up to half a millisecond before
# `when`; a frame due that soon is taken now rather than by a second wake-up.
TIMER_SLACK = 0.001
HOUSEKEEP_PERIOD = 0.1
HOUSEKEEP_ROUND = 1.0  # every endpoint is visited about this often


class MediaEngine:
    """All media endpoints of one process, on one event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        bind_ip: str,
        port_range: tuple[int, int] | RtpPortPool,
        clock: Clock,
        *,
        ptime: float = 0.020,
        max_burst: int = 3,
        rtcp_interval: float = 5.0,
        inactivity_timeout: float = 30.0,
        cname: str | None = None,
        open_socket: Callable[[str, int], DatagramSocket] = open_udp,
        recording_queue: int = 1000,
        open_wav: Callable[[str, int], WavSink] | None = None,
        recv_batch: int = 1,
        readers: str = "auto",
        coalesce: float = 0.001,
    ) -> None:
        self.loop = loop
        self.bind_ip = bind_ip
        self.pool = port_range if isinstance(port_range, RtpPortPool) else RtpPortPool(*port_range)
        self.clock = clock
        self.ptime = ptime
        self.max_burst = max_burst
        self.rtcp_interval = rtcp_interval
        self.inactivity_timeout = inactivity_timeout
        self.cname = cname or f"acd-{os.getpid()}@{bind_ip}"
        self._open_socket = open_socket
        # Datagrams read per reader wake-up. Pollers are level-triggered, so anything left is
        # read on the next loop iteration; 1 saves the failing recvfrom + BlockingIOError a
        # drain costs per wake-up (1.6 us, as much as the relay itself; see bench/rtp.py).
        self.recv_batch = recv_batch
        # how socket readiness reaches us: acd.runtime.rtppoll ('loop' for test doubles)
        self.readers = make_readers(loop, readers, coalesce)
        self._recording_queue = recording_queue
        self._open_wav = open_wav
        self.endpoints: dict[int, MediaEndpoint] = {}
        self._ticking: dict[Outgoing, None] = {}  # an ordered set: stable send order
        self._frames: FrameClock | None = None
        self._tick_handle: asyncio.Handle | None = None
        self._hk_handle: asyncio.TimerHandle | None = None
        self._hk_queue: deque[MediaEndpoint] = deque()
        self._writer: RecordingWriter | None = None
        self._recorders: set[Recorder] = set()
        self.closed = False
        # packet counts of endpoints already closed, so the totals never go backwards
        self.closed_totals = {"packets_in": 0, "packets_out": 0, "lost": 0}
        # ticker health, for metrics and the benchmark
        self.ticks = 0
        self.late_ticks = 0  # ticks run more than 5 ms after their deadline
        self.max_tick_lateness = 0.0
        self.tick_errors = 0

    # -- endpoints -----------------------------------------------------------------------------
    def allocate(self) -> MediaEndpoint:
        """A new endpoint with its RTP (even) and RTCP (odd) sockets bound and read.
        PortsExhausted when the range is full."""
        if self.closed:
            raise RuntimeError("media engine is closed")
        port, (rtp, rtcp) = self.pool.allocate(
            lambda p: open_udp_pair(self.bind_ip, p, self._open_socket))
        ep = MediaEndpoint(self, port, rtp, rtcp)
        self.endpoints[port] = ep
        # only real sockets can be read in C (test doubles go through _read_rtp)
        self.readers.add(rtp.fileno(), ep._read_rtp,
                         ep if isinstance(rtp, socket.socket) else None)
        self.readers.add(rtcp.fileno(), ep.rtcp.read)
        if self._hk_handle is None:
            self._hk_handle = self.loop.call_later(HOUSEKEEP_PERIOD, self._housekeep)
        return ep

    def _release(self, ep: MediaEndpoint) -> None:
        st = ep.stats
        self.closed_totals["packets_in"] += st["packets_in"]
        self.closed_totals["packets_out"] += st["packets_out"]
        self.closed_totals["lost"] += st["lost"]
        for sock in (ep._sock, ep._rtcp_sock):
            self.readers.remove(sock.fileno())
            sock.close()
        if self.endpoints.get(ep.local_port) is ep:
            del self.endpoints[ep.local_port]
        self.pool.release(ep.local_port)

    # -- the shared ticker -------------------------------------------------------------------
    def _tick_add(self, out: Outgoing) -> None:
        self._ticking[out] = None
        if self._tick_handle is None and not self.closed:
            self._frames = FrameClock(self.loop.time(), self.ptime, self.max_burst)
            # not from inside play(): the caller may still be setting things up
            self._tick_handle = self.loop.call_soon(self._on_tick)

    def _tick_remove(self, out: Outgoing) -> None:
        self._ticking.pop(out, None)

    @property
    def playing(self) -> int:
        """Endpoints with a local source (prompt, DTMF) being paced."""
        return len(self._ticking)

    def _on_tick(self) -> None:
        frames = self._frames
        assert frames is not None
        now = self.loop.time()
        late = frames.late(now)
        n = frames.take(now + TIMER_SLACK)
        if n:
            self.ticks += 1
            if late > self.max_tick_lateness:
                self.max_tick_lateness = late
            if late > 0.005:
                self.late_ticks += 1
            cnow = self.clock.now()
            for out in list(self._ticking):
                if not out.busy:
                    continue
                try:
                    out.tick(n, cnow)
                except Exception:
                    self.tick_errors += 1
                    log.exception("media tick failed")
                    out.reset()
        if not self._ticking or self.closed:
            self._tick_handle = None
            return
        self._tick_handle = self.loop.call_at(frames.deadline(), self._on_tick)

    @property
    def resyncs(self) -> int:
        return self._frames.resyncs if self._frames is not None else 0

    # -- housekeeping --------------------------------------------------------------------------
    def _housekeep(self) -> None:
        self._hk_handle = None
        if self.closed:
            return
        now, wall = self.clock.now(), self.clock.wall()
        queue = self._hk_queue
        if not queue:
            queue.extend(self.endpoints.values())
        share = math.ceil(len(self.endpoints) * HOUSEKEEP_PERIOD / HOUSEKEEP_ROUND)
        for _ in range(min(len(queue), max(1, share))):
            ep = queue.popleft()
            if ep.closed:
                continue
            try:
                ep._housekeep(now, wall)
            except Exception:
                log.exception("media housekeeping failed", port=ep.local_port)
        for rec in list(self._recorders):
            rec.pulse(now)
        self._hk_handle = self.loop.call_later(HOUSEKEEP_PERIOD, self._housekeep)

    # -- recording -----------------------------------------------------------------------------
    def record(self, path: str | os.PathLike[str], *sources: MediaEndpoint,
               on_error: Callable[[BaseException], None] | None = None,
               tap: Tap | None = None, mix: bool = False,
               on_closed: Callable[[], None] | None = None) -> Recorder:
        """Record what the remote parties send: one source gives a mono file, two a stereo
        file with the first (the caller) left and the second (the agent) right. The file is
        opened and written by the writer thread; `on_error(exc)` reports a failure there or
        a full queue, and the calls go on."""
        if self.closed:
            raise RuntimeError("media engine is closed")
        if self._writer is None:
            kwargs: dict[str, Any] = {"max_pending": self._recording_queue}
            if self._open_wav is not None:
                kwargs["open_wav"] = self._open_wav
            self._writer = RecordingWriter(self.loop, **kwargs)
        rec = Recorder(self._writer, path, list(sources), self.clock.now, on_error=on_error,
                       tap=tap, on_stopped=self._recorders.discard, mix=mix,
                       on_closed=on_closed)
        self._recorders.add(rec)
        return rec

    def totals(self) -> dict[str, int]:
        """RTP packets received, sent and lost since start, over every endpoint."""
        out = dict(self.closed_totals)
        for ep in self.endpoints.values():
            st = ep.stats
            out["packets_in"] += st["packets_in"]
            out["packets_out"] += st["packets_out"]
            out["lost"] += st["lost"]
        return out

    # -- lifecycle -------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return {
            "endpoints": len(self.endpoints), "playing": len(self._ticking),
            "ports_in_use": self.pool.in_use, "ports_capacity": self.pool.capacity,
            "ticks": self.ticks, "late_ticks": self.late_ticks, "resyncs": self.resyncs,
            "max_tick_lateness": self.max_tick_lateness, "recordings": len(self._recorders),
        }

    def close(self) -> None:
        """Close every endpoint, stop the timers, finish recordings (the writer thread
        writes what is queued, then ends). Closing twice is harmless."""
        if self.closed:
            return
        for rec in list(self._recorders):
            rec.stop()
        for ep in list(self.endpoints.values()):
            ep.close()
        self.closed = True
        for handle in (self._tick_handle, self._hk_handle):
            if handle is not None:
                handle.cancel()
        self._tick_handle = self._hk_handle = None
        self._hk_queue.clear()
        self.readers.close()
        if self._writer is not None:
            self._writer.close()

    async def wait_closed(self, timeout: float = 10.0) -> None:
        """After close(): wait (off the loop) for the recording writer to finish."""
        writer = self._writer
        if writer is not None:
            await self.loop.run_in_executor(None, writer.done.wait, timeout)
