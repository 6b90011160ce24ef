"""How the media engine learns that its sockets have data: `LoopReaders`, one event-loop
`add_reader` per socket, or `EpollReaders` (Linux), every media socket behind one epoll
object whose descriptor is the only one the event loop watches.

Why the second: at a thousand bridged calls the engine's cost per packet was mostly the
wake-up, not the packet. Each of 2,000 sockets receives 50 packets/s at its own phase, so
the loop woke for one or two packets at a time and paid epoll_wait, the callback dispatch
and a context switch each time: 7.5-9 us of CPU per relayed packet on a bare relay, where
the two system calls are about 2.2. `EpollReaders` coalesces under load: once packets
arrive faster than `busy_rate` per second, a wake-up waits `coalesce` seconds (1 ms) and
then serves every ready socket in one pass (less the time the last pass took: an engine
whose passes take that long batches by itself, and waiting would only idle it), which
measured 4.4-5.1 us per packet for about +0.5 ms of median latency
(bench/rtp.py --mode readers). Below that rate it serves each wake-up at once, adding no
latency. Pollers are level-triggered: whatever a callback leaves unread is reported again.

Native serving: where the C extension acd.runtime._fastrtp is built, `EpollReaders` hands each
poll to it. Sockets added with their MediaEndpoint (`add(fd, callback, endpoint)`) are then
read and relayed in C for the common packet (see acd/runtime/_fastrtp.c), everything else still
through the Python callbacks; the audio of a recorded endpoint is decoded into its recording
there too (see ChannelTap in acd.runtime.rtprecorder). `ACD_NATIVE_RTP=0` in the
environment keeps every packet in Python.
"""

from __future__ import annotations

import asyncio
import os
import select
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import structlog

from media.g711 import _A2U, _U2A, Codec, alaw_to_ulaw, decode, ulaw_to_alaw
from media.rtpstream import RtpReceiverStats

__all__ = ["EpollReaders", "LoopReaders", "NATIVE", "Readers", "make_readers"]

log = structlog.get_logger("acd.media")


def configure_native(mod: Any) -> None:
    """Give acd.runtime._fastrtp what it stands in for: the transcoders and their tables, the
    receive window, and the recording's tap with the G.711 decodings it applies."""
    from acd.runtime.rtprecorder import ChannelTap  # (it imports the media engine's parts)

    every = bytes(range(256))
    mod.configure(ulaw_to_alaw, alaw_to_ulaw, _U2A, _A2U, RtpReceiverStats.WINDOW, ChannelTap,
                  decode(Codec.PCMU, every), decode(Codec.PCMA, every))


def _load_native() -> ModuleType | None:
    if os.environ.get("ACD_NATIVE_RTP", "1") == "0":
        return None
    try:
        from acd.runtime import _fastrtp
    except ImportError:  # not built here (no compiler, not Linux): the Python path serves
        return None
    configure_native(_fastrtp)
    return _fastrtp


_native = _load_native()
NATIVE = _native is not None  # whether acd.runtime._fastrtp is in use by default


def native_counters() -> dict[str, int]:
    """acd.runtime._fastrtp.counters(), or {} when the Python path serves."""
    return _native.counters() if _native is not None else {}

MAX_EVENTS = 4096
ROUNDS = 8  # polls per pass at most


class LoopReaders:
    """One `loop.add_reader` per socket (any event loop, any platform)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def add(self, fd: int, callback: Callable[[], None], endpoint: Any = None) -> None:
        self._loop.add_reader(fd, callback)

    def remove(self, fd: int) -> None:
        self._loop.remove_reader(fd)

    def close(self) -> None:
        pass


class EpollReaders:
    """All media sockets behind one level-triggered epoll object."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, coalesce: float = 0.001,
                 busy_rate: float = 20_000.0) -> None:
        self._loop = loop
        self._epoll = select.epoll()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._native = _native
        self._endpoints: dict[int, Any] = {}  # fd -> MediaEndpoint, served natively
        self.coalesce = coalesce
        self.busy_rate = busy_rate
        self._watching = False
        self._pending: asyncio.TimerHandle | None = None
        self._window_start = loop.time()
        self._window_events = 0
        self._last_pass = 0.0  # seconds the last pass took
        self.busy = False  # coalescing wake-ups
        self.passes = self.events = 0

    @property
    def native(self) -> bool:
        return self._native is not None

    def add(self, fd: int, callback: Callable[[], None], endpoint: Any = None) -> None:
        """Watch `fd`. `endpoint`: the MediaEndpoint whose RTP socket it is, for native
        serving (its `callback` is then its `_read_rtp`)."""
        self._epoll.register(fd, select.EPOLLIN)
        self._callbacks[fd] = callback
        if endpoint is not None and self._native is not None:
            self._endpoints[fd] = endpoint
        if not self._watching and self._pending is None:
            self._watch()

    def remove(self, fd: int) -> None:
        self._endpoints.pop(fd, None)
        if self._callbacks.pop(fd, None) is not None:
            self._epoll.unregister(fd)

    def _watch(self) -> None:
        self._watching = True
        self._loop.add_reader(self._epoll.fileno(), self._ready)

    def _ready(self) -> None:
        # A pass then starts at most every `coalesce` seconds: the next packets gather
        # meanwhile and are served together. When passes themselves take that long, the
        # engine batches by itself and waiting would only idle it.
        wait = self.coalesce - self._last_pass
        if self.busy and wait > 0.0002:
            self._loop.remove_reader(self._epoll.fileno())
            self._watching = False
            self._pending = self._loop.call_later(wait, self._deferred)
            return
        self._serve()

    def _deferred(self) -> None:
        self._pending = None
        self._serve()
        if not self._epoll.closed:
            self._watch()

    def _serve(self) -> None:
        # Callbacks read one datagram each; a socket holding more (after a stall, or data
        # arriving faster than once per coalescing wait) is ready again at once, so poll
        # again until nothing is, within a bound (under overload the loop must breathe).
        callbacks = self._callbacks
        found = 0
        started = time.monotonic()
        native = self._native
        for _ in range(ROUNDS):
            if native is not None:
                try:
                    ready, fds = native.serve(self._epoll.fileno(), self._endpoints, MAX_EVENTS)
                except Exception:  # an endpoint unusable from C: serve in Python from now on
                    log.exception("native media serving failed; continuing in Python")
                    self._native = native = None
                    self._endpoints.clear()
                    continue
                if not ready:
                    break
                found += ready
            else:
                events = self._epoll.poll(0, MAX_EVENTS)
                if not events:
                    break
                found += len(events)
                fds = [fd for fd, _mask in events]
            for fd in fds:
                callback = callbacks.get(fd)
                if callback is not None:
                    try:
                        callback()
                    except Exception:
                        log.exception("media socket callback failed")
        self.passes += 1
        self._last_pass = time.monotonic() - started
        self.events += found
        self._window_events += found
        now = self._loop.time()
        if now - self._window_start >= 0.1:
            self.busy = self._window_events / (now - self._window_start) > self.busy_rate
            self._window_start, self._window_events = now, 0

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self._watching:
            self._loop.remove_reader(self._epoll.fileno())
            self._watching = False
        self._callbacks.clear()
        self._endpoints.clear()
        self._epoll.close()


Readers = LoopReaders | EpollReaders


def make_readers(loop: asyncio.AbstractEventLoop, kind: str, coalesce: float) -> Readers:
    """'epoll' (where select.epoll exists, else falls back), 'loop', or 'auto' (= epoll);
    epoll readers serve natively where acd.runtime._fastrtp is built."""
    if kind not in ("epoll", "auto", "loop"):
        raise ValueError(f"unknown reader kind {kind!r}")
    if kind != "loop" and hasattr(select, "epoll"):
        return EpollReaders(loop, coalesce=coalesce)
    return LoopReaders(loop)
