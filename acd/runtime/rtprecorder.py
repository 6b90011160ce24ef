"""Call recording off the event loop: `Recorder` (one WAV file: mono for one leg, as for
voicemail, or stereo with the caller left and the agent right) and `RecordingWriter`, the
one thread per media engine that opens, writes and closes the files.

The event loop only decodes G.711 (in the endpoint's tap), lines the channels up
(acd.media_session.ChannelAligner) and hands spans of about 200 ms to the writer through a
bounded queue. A slow or full disk therefore never delays RTP: when the queue is full, or a
write fails, the recording stops, `on_error` is called on the loop, and the call goes on.
What was written stays a playable file (the header is fixed up on close and every few
seconds while writing).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import structlog

from acd.media_session import ChannelAligner
from media._audioop import audioop

__all__ = ["Recorder", "RecordingError", "RecordingWriter", "Tap", "WavSink"]

log = structlog.get_logger("acd.media")

Tap = Callable[[bytes, str], None]  # (pcm16 LE mono, "in" | "out")
FLUSH_EVERY = 0.2  # seconds of audio per queued write
HEADER_EVERY = 5 * 8000  # samples between WAV header fix-ups
_OPEN, _WRITE, _CLOSE = 0, 1, 2


class RecordingError(Exception):
    """A recording stopped early (queue full, write error)."""


class WavSink(Protocol):
    """What the writer thread needs of a file: media.audiofile.WavWriter, or a test double."""

    def write(self, pcm: bytes) -> None: ...
    def write_stereo(self, left: bytes, right: bytes) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def _open_wav(path: str, channels: int) -> WavSink:
    from media.audiofile import WavWriter

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return WavWriter(path, channels=channels)


class _Job:
    __slots__ = ("channels", "failed", "on_closed", "on_failure", "path", "since_header", "sink")

    def __init__(self, path: str, channels: int, on_failure: Callable[[BaseException], None],
                 on_closed: Callable[[], None]) -> None:
        self.path, self.channels = path, channels
        self.on_failure, self.on_closed = on_failure, on_closed
        self.sink: WavSink | None = None
        self.failed = False
        self.since_header = 0


class RecordingWriter:
    """The writer thread. Data items are bounded by `max_pending`; open and close requests
    are not (they must get through even when data is being refused)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, max_pending: int = 1000,
                 open_wav: Callable[[str, int], WavSink] = _open_wav) -> None:
        self._loop = loop
        self.max_pending = max_pending
        self._open_wav = open_wav
        self._cv = threading.Condition()
        self._items: deque[tuple[_Job, int, tuple[bytes, ...]]] = deque()
        self._data_items = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.done = threading.Event()

    def submit(self, job: _Job, op: int, data: tuple[bytes, ...] = (), *,
               control: bool = False) -> bool:
        with self._cv:
            if self._stopping:
                return False
            if not control:
                if self._data_items >= self.max_pending:
                    return False
                self._data_items += 1
            self._items.append((job, op, data))
            self._cv.notify()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="acd-recorder", daemon=True)
            self._thread.start()
        return True

    def close(self) -> None:
        """Write what is queued, then let the thread end (`done` is set then)."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if self._thread is None:
            self.done.set()

    def _call_soon(self, fn: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self._loop.call_soon_threadsafe(fn, *args)

    def _run(self) -> None:
        try:
            while True:
                with self._cv:
                    while not self._items and not self._stopping:
                        self._cv.wait()
                    if not self._items:
                        return
                    job, op, data = self._items.popleft()
                    if op == _WRITE:
                        self._data_items -= 1
                self._do(job, op, data)
        finally:
            self.done.set()

    def _do(self, job: _Job, op: int, data: tuple[bytes, ...]) -> None:
        try:
            if op == _OPEN and not job.failed:
                job.sink = self._open_wav(job.path, job.channels)
            elif op == _WRITE and not job.failed and job.sink is not None:
                if job.channels == 2:
                    job.sink.write_stereo(data[0], data[1])
                else:
                    job.sink.write(data[0])
                job.since_header += len(data[0]) >> 1
                if job.since_header >= HEADER_EVERY:
                    job.since_header = 0
                    job.sink.flush()
            elif op == _CLOSE:
                sink, job.sink = job.sink, None
                if sink is not None:
                    sink.close()
                self._call_soon(job.on_closed)
        except Exception as exc:
            job.failed = True
            sink, job.sink = job.sink, None
            if sink is not None:
                with contextlib.suppress(Exception):
                    sink.close()
            self._call_soon(job.on_failure, exc)
            if op == _CLOSE:
                self._call_soon(job.on_closed)


class ChannelTap:
    """The "in" tap a Recorder puts on the source of channel `ch`. The C fast path
    (acd/runtime/_fastrtp.c) knows this class: for a G.711 packet arriving at an endpoint
    whose taps are all ChannelTaps it does what __call__ does, reading and writing the same
    objects (decode, the ChannelAligner.feed placement into `buf` and `pos[ch]`, the
    recorder's _flush when due) without a call into Python per packet and tap."""

    __slots__ = ("aligner", "buf", "ch", "pos", "recorder")

    flush_every = FLUSH_EVERY

    def __init__(self, recorder: Recorder, ch: int) -> None:
        self.recorder = recorder
        self.ch = ch
        self.aligner = recorder._aligner
        # the aligner's own channel buffer and positions (taken in place, never replaced)
        self.buf = self.aligner._bufs[ch]
        self.pos = self.aligner._pos

    def __call__(self, pcm: bytes, direction: str) -> None:  # "in" only: see add_tap
        r = self.recorder
        if r.paused:
            pcm = bytes(len(pcm))  # keep the timeline, drop the words
        now = r._now()
        self.aligner.feed(self.ch, pcm, now)
        if now - r._last_flush >= FLUSH_EVERY:
            r._flush(now)


class TapSource(Protocol):
    def add_tap(self, tap: Tap, *, out: bool = True) -> Callable[[], None]: ...


class Recorder:
    """One recording in progress. Channel i records the audio arriving from `sources[i]`
    ("in" taps): mono with one source, stereo (left, right) with two. `stop()` (alias
    `close()`) ends it and returns the seconds of audio recorded; `wait_closed()` waits
    until the file is closed. `on_error(exc)` is called at most once, on the loop."""

    def __init__(self, writer: RecordingWriter, path: str | os.PathLike[str],
                 sources: list[TapSource], now: Callable[[], float], *,
                 on_error: Callable[[BaseException], None] | None = None,
                 tap: Tap | None = None,
                 on_stopped: Callable[[Recorder], None] | None = None,
                 mix: bool = False,
                 on_closed: Callable[[], None] | None = None) -> None:
        if len(sources) not in (1, 2):
            raise ValueError("a recording has one or two sources")
        self.path = os.fspath(path)
        # mix: two sources written as one mono channel (their sum) instead of stereo
        self.mix = mix and len(sources) == 2
        self.paused = False  # while paused the channels record silence (card numbers)
        self._user_closed = on_closed
        self._writer = writer
        self._now = now
        self._on_error = on_error
        self._on_stopped = on_stopped
        start = now()
        self._aligner = ChannelAligner(start, len(sources))
        self._last_flush = start
        self._samples = 0
        self.failed: BaseException | None = None
        self.stopped = False
        self._closed = asyncio.Event()
        self._job = _Job(self.path, 1 if self.mix else len(sources), self._fail,
                         self._file_closed)
        self._untaps: list[Callable[[], None]] = []
        writer.submit(self._job, _OPEN, control=True)
        for ch, src in enumerate(sources):
            self._untaps.append(src.add_tap(self._channel_tap(ch), out=False))
        if tap is not None:
            self._untaps.append(sources[0].add_tap(tap))

    def _file_closed(self) -> None:
        self._closed.set()
        if self._user_closed is not None:
            try:
                self._user_closed()
            except Exception:
                log.exception("recording on_closed callback failed")

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def _channel_tap(self, ch: int) -> Tap:
        return ChannelTap(self, ch)

    @property
    def duration(self) -> float:
        """Seconds of audio handed to the writer so far."""
        return self._samples / 8000

    def pulse(self, now: float) -> None:
        """Periodic flush (from the engine's housekeeping), so silent channels still advance."""
        if not self.stopped and now - self._last_flush >= FLUSH_EVERY:
            self._flush(now)

    def _flush(self, now: float, final: bool = False) -> None:
        self._last_flush = now
        spans = self._aligner.take(now, final=final)
        if not spans[0]:
            return
        if self.mix:
            spans = (audioop.add(spans[0], spans[1], 2),)
        if self._writer.submit(self._job, _WRITE, spans):
            self._samples += len(spans[0]) >> 1
        else:
            self._fail(RecordingError(f"recording queue full, disk too slow: {self.path}"))

    def stop(self) -> float:
        if not self.stopped:
            self._detach()
            if self.failed is None:
                self._flush(self._now(), final=True)
            self._writer.submit(self._job, _CLOSE, control=True)
        return self.duration

    close = stop

    def _detach(self) -> None:
        self.stopped = True
        for untap in self._untaps:
            untap()
        self._untaps.clear()
        if self._on_stopped is not None:
            self._on_stopped(self)

    def _fail(self, exc: BaseException) -> None:
        if self.failed is not None:
            return
        self.failed = exc
        log.warning("recording failed", path=self.path, error=str(exc))
        if not self.stopped:
            self._detach()
            self._writer.submit(self._job, _CLOSE, control=True)
        if self._on_error is not None:
            try:
                self._on_error(exc)
            except Exception:
                log.exception("recording on_error callback failed")

    @property
    def file_closed(self) -> bool:
        """The writer thread has closed the file (after stop(), or after a failure)."""
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()
