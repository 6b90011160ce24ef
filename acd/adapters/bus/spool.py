"""The event spool: a local append-only file holding, in publish order, the events Redis
Streams could not take, until the publisher replays them.

File format: one event per line, its JSON (`Event.to_json`, which escapes every control
character, so a record never contains a newline) followed by "\\n". Nothing else: the file can
be read, grepped and replayed by hand with `redis-cli`.

Durability: `append` is one write(2) and no fsync; `sync` fsyncs. The publisher syncs once per
batch it spools, so a power cut loses at most the batch being written, never an older one.

Replay progress lives next to the spool in `<spool>.offset` ({"offset": N, "crc": C}, C being
the CRC-32 of the line ending at N), replaced atomically after each replayed batch. A crash
during replay therefore re-sends at most one batch (duplicates, never loss). Once every line is
replayed the checkpoint is removed *before* the spool is truncated: a crash in between
replays the whole spool again rather than trusting an offset into a file that has changed. A
checkpoint that does not match the file (wrong CRC, past the end, not on a line boundary) is
ignored for the same reason.

Crash recovery on open: a torn last line (a write cut short) is cut off, since it was never
acknowledged to anyone; a line that does not parse is skipped and counted in `corrupt`.

One writer per file: the spool holds an exclusive flock while open, so two daemons pointed at
the same file fail at start instead of interleaving their events.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from acd.events import Event

__all__ = ["SpoolBatch", "SpoolLocked", "SpoolMark", "Spool", "encode"]

log = structlog.get_logger("acd.bus.spool")

READ_CHUNK = 1 << 20


class SpoolLocked(RuntimeError):
    """Another process has this spool open."""


def encode(ev: Event) -> str | None:
    """The event's JSON line, or None when its data cannot be serialised at all."""
    try:
        return ev.to_json()
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class SpoolMark:
    """A run of lines [start, end) of the spool, as appended or as read for replay."""

    start: int
    end: int
    lines: int
    crc: int  # of the last line (with its newline), for the checkpoint


@dataclass(frozen=True, slots=True)
class SpoolBatch:
    records: list[tuple[str, str]]  # (event type, event JSON), in file order
    mark: SpoolMark

    def events(self) -> list[Event]:
        return [Event.from_dict(json.loads(j)) for _, j in self.records]


class Spool:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.checkpoint_path = self.path.with_name(self.path.name + ".offset")
        self._fd: int | None = None
        self._size = 0
        self._read = 0  # first byte not yet replayed
        self._scanned = 0  # corrupt lines before this offset are already counted
        self.pending = 0  # lines not yet replayed
        self.corrupt = 0
        self.torn = 0

    # --- open / close ------------------------------------------------------------------------

    def open(self) -> None:
        """Open (idempotent), recover from a crash, and pick up the replay checkpoint."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolLocked(f"event spool {self.path} is in use by another process") from None
        self._fd = fd
        if created:
            _fsync_dir(self.path.parent)
        self._size = os.fstat(fd).st_size
        self._cut_torn_tail()
        self._read = self._scanned = self._load_checkpoint()
        self.pending = self._count_lines(self._read, self._size)
        if self.pending == 0 and self._size:
            self._reset()
        elif self.pending:
            log.info("event spool holds events from a previous run", path=str(self.path),
                     pending=self.pending, replayed_before=self._read)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None

    # --- writing -----------------------------------------------------------------------------

    def append(self, lines: Sequence[str]) -> SpoolMark:
        """Append JSON lines (no fsync). On a failed write the file is cut back to where it
        was, so a half-written batch never sits in front of later ones."""
        fd = self._need_fd()
        start = self._size
        if not lines:
            return SpoolMark(start, start, 0, 0)
        data = ("\n".join(lines) + "\n").encode()
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
        self._size = start + len(data)
        self.pending += len(lines)
        return SpoolMark(start, self._size, len(lines), zlib.crc32(lines[-1].encode() + b"\n"))

    def sync(self) -> None:
        os.fsync(self._need_fd())

    # --- replay ------------------------------------------------------------------------------

    def read(self, max_lines: int) -> SpoolBatch:
        """Up to `max_lines` lines from the replay position, without consuming them."""
        fd = self._need_fd()
        start = self._read
        want = min(READ_CHUNK, max(4096, max_lines * 512))
        while True:
            end = min(self._size, start + want)
            data = os.pread(fd, end - start, start)
            if b"\n" in data or end == self._size:
                break
            want *= 2  # one line longer than the chunk
        records: list[tuple[str, str]] = []
        pos = lines = crc = 0
        while lines < max_lines:
            nl = data.find(b"\n", pos)
            if nl < 0:
                break
            raw = data[pos:nl]
            crc = zlib.crc32(data[pos:nl + 1])
            lines += 1
            rec = _parse(raw)
            if rec is not None:
                records.append(rec)
            elif start + pos >= self._scanned:
                self.corrupt += 1
                log.warning("unreadable line in the event spool skipped", path=str(self.path),
                            offset=start + pos)
            pos = nl + 1
        self._scanned = max(self._scanned, start + pos)
        return SpoolBatch(records, SpoolMark(start, start + pos, lines, crc))

    def commit(self, mark: SpoolMark) -> None:
        """The lines of `mark` have reached Redis: move the replay position past them, and
        empty the spool once everything is replayed."""
        if mark.start != self._read:
            raise ValueError(f"commit of [{mark.start}, {mark.end}) at replay position "
                             f"{self._read}")
        if mark.lines == 0:
            return
        self._read = mark.end
        self.pending -= mark.lines
        if self._read >= self._size:
            self._reset()
        else:
            self._save_checkpoint(mark)

    def recount(self) -> None:
        """Count the complete lines left to replay again (and empty the spool if none)."""
        self.pending = self._count_lines(self._read, self._size)
        if not self.pending:
            self._reset()

    def head_ts(self) -> float | None:
        """Publish time of the oldest line not yet replayed (None if empty or unreadable)."""
        if not self.pending or self._fd is None:
            return None
        batch = self.read(1)
        if not batch.records:
            return None
        try:
            return float(json.loads(batch.records[0][1])["ts"])
        except (ValueError, KeyError, TypeError):
            return None

    # --- internals ---------------------------------------------------------------------------

    def _need_fd(self) -> int:
        if self._fd is None:
            self.open()
        assert self._fd is not None
        return self._fd

    def _reset(self) -> None:
        fd = self._need_fd()
        with contextlib.suppress(FileNotFoundError):
            self.checkpoint_path.unlink()
        os.ftruncate(fd, 0)
        os.fsync(fd)
        self._size = self._read = self._scanned = self.pending = 0

    def _cut_torn_tail(self) -> None:
        if not self._size:
            return
        fd = self._need_fd()
        end = self._size
        while end > 0:
            begin = max(0, end - READ_CHUNK)
            chunk = os.pread(fd, end - begin, begin)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = begin + nl + 1
                break
            end = begin
        else:
            keep = 0
        if keep < self._size:
            self.torn += 1
            log.warning("torn last line of the event spool cut off", path=str(self.path),
                        bytes=self._size - keep)
            os.ftruncate(fd, keep)
            os.fsync(fd)
            self._size = keep

    def _count_lines(self, start: int, end: int) -> int:
        fd = self._need_fd()
        n = 0
        while start < end:
            chunk = os.pread(fd, min(READ_CHUNK * 4, end - start), start)
            if not chunk:
                break
            n += chunk.count(b"\n")
            start += len(chunk)
        return n

    def _load_checkpoint(self) -> int:
        try:
            cp = json.loads(self.checkpoint_path.read_text())
            offset, crc = int(cp["offset"]), int(cp["crc"])
        except FileNotFoundError:
            return 0
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("unreadable event spool checkpoint; replaying from the start",
                        path=str(self.checkpoint_path))
            return 0
        if 0 < offset <= self._size and self._line_crc_before(offset) == crc:
            return offset
        log.warning("event spool checkpoint does not match the spool; replaying from the start",
                    path=str(self.checkpoint_path), offset=offset)
        return 0

    def _line_crc_before(self, offset: int) -> int | None:
        fd = self._need_fd()
        if os.pread(fd, 1, offset - 1) != b"\n":
            return None  # not on a line boundary
        pos, begin = offset - 1, 0
        while pos > 0:
            lo = max(0, pos - READ_CHUNK)
            nl = os.pread(fd, pos - lo, lo).rfind(b"\n")
            if nl >= 0:
                begin = lo + nl + 1
                break
            pos = lo
        return zlib.crc32(os.pread(fd, offset - begin, begin))

    def _save_checkpoint(self, mark: SpoolMark) -> None:
        tmp = self.checkpoint_path.with_name(self.checkpoint_path.name + ".tmp")
        # no fsync: a checkpoint lost in a power cut only means replaying a few batches twice
        tmp.write_text(json.dumps({"offset": mark.end, "crc": mark.crc}))
        os.replace(tmp, self.checkpoint_path)


def _parse(raw: bytes) -> tuple[str, str] | None:
    try:
        text = raw.decode()
        d = json.loads(text)
        Event.from_dict(d)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return str(d["type"]), text


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
