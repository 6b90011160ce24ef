"""Call recording: which policy applies to a call, when its recording starts and stops,
what the file is called, and the events that say how it went.

A recording holds the caller on the left channel and the agent (or callee) on the right,
or both mixed into one channel (`recording.format: mono`). It starts when the caller is
bridged to someone, if the policy is `always`; with `on_demand` the admin API starts,
stops, pauses and resumes it (a pause records silence, so card numbers never reach the
disk while the timeline stays true). The media runtime writes the file in its own
thread; `recording.ready` (path, duration, size) follows once the file is closed, and
`recording.failed` when the disk refuses: the call goes on either way.
"""

from __future__ import annotations

import contextlib
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from acd.calls import Call

__all__ = ["CallRecording", "RecordingError", "policy_for", "purge_old_recordings"]

log = structlog.get_logger("acd.recording")
_SAFE = re.compile(r"[^A-Za-z0-9+._-]")


class RecordingError(ValueError):
    """An on-demand action that cannot apply now (no bridge yet, already stopped...)."""


def policy_for(call: Call) -> str:
    """The outbound rule's, else the queue's, else the hotline's, else the default policy."""
    cfg = call.engine.config
    if call.outbound_rule is not None:
        rule = next((r for r in cfg.outbound_rules if r.name == call.outbound_rule), None)
        if rule is not None and rule.record:
            return rule.record
    if call.queue is not None:
        qc = cfg.queues.get(call.queue)
        if qc is not None and qc.record:
            return qc.record
    if call.hotline is not None:
        hotline = cfg.hotlines.get(call.hotline)
        if hotline is not None and hotline.record:
            return hotline.record
    return cfg.recording.default


class CallRecording:
    def __init__(self, call: Call) -> None:
        self.call = call
        self.recorder: Any = None
        self.path: Path | None = None
        self.state = "idle"  # idle | recording | paused | stopped | failed
        self.segments = 0

    def _render(self) -> Path:
        call = self.call
        cfg = call.engine.config.recording
        at = datetime.fromtimestamp(call.service.wall_time().timestamp(), UTC)
        fields = {
            "date": at.strftime("%Y-%m-%d"), "time": at.strftime("%H%M%S"), "call": call.ref,
            "from": call.from_number, "to": call.to_number, "hotline": call.hotline or "",
            "queue": call.queue or "", "direction": call.direction,
            "agent": (call.connected.agent or call.connected.party) if call.connected else "",
        }
        name = cfg.template.format(**{k: _SAFE.sub("_", v) or "-" for k, v in fields.items()})
        if self.segments:
            name = f"{name[:-4]}-{self.segments + 1}.wav"
        return Path(cfg.dir) / name

    def start(self) -> None:
        call = self.call
        if self.state in ("recording", "paused"):
            return
        leg = call.connected
        media: Any = call.service.media
        if leg is None or leg.media is None or call.caller.media is None \
                or not hasattr(media, "record"):
            raise RecordingError("the call is not bridged to anyone yet")
        self.path = self._render()
        mono = call.engine.config.recording.format == "mono"
        try:
            self.recorder = media.record(
                self.path, call.caller.media.endpoint, leg.media.endpoint,
                on_error=self._failed, mix=mono, on_closed=self._make_closed(self.path, mono))
        except (OSError, RuntimeError) as exc:
            self._failed(exc)
            return
        self.state = "recording"
        self.segments += 1
        call._log("recording started", path=str(self.path))
        call.emit("recording.started", {"path": str(self.path)})

    def pause(self) -> None:
        if self.state != "recording":
            raise RecordingError(f"cannot pause a recording that is {self.state}")
        self.recorder.pause()
        self.state = "paused"
        self.call.emit("recording.paused", {"path": str(self.path)})

    def resume(self) -> None:
        if self.state != "paused":
            raise RecordingError(f"cannot resume a recording that is {self.state}")
        self.recorder.resume()
        self.state = "recording"
        self.call.emit("recording.resumed", {"path": str(self.path)})

    def stop(self) -> None:
        if self.state not in ("recording", "paused"):
            return
        self.recorder.stop()
        self.state = "stopped"

    def _make_closed(self, path: Path, mono: bool) -> Any:
        call = self.call

        def closed() -> None:
            rec = self.recorder
            if rec is None or getattr(rec, "failed", None) is not None:
                return
            try:
                size = os.stat(path).st_size
            except OSError as exc:
                self._failed(exc)
                return
            duration = round(float(rec.duration), 2)
            call._log("recording ready", path=str(path), duration=duration, size=size)
            call.emit("recording.ready", {
                "path": str(path), "duration": duration, "size": size,
                "channels": 1 if mono else 2, "format": "mono" if mono else "stereo",
                "hotline": call.hotline, "queue": call.queue, "from": call.from_number,
                "agent": call.connected.agent if call.connected else None,
            })

        return closed

    def _failed(self, exc: BaseException) -> None:
        if self.state == "failed":
            return
        self.state = "failed"
        self.call._log("recording failed", path=str(self.path), error=str(exc))
        self.call.emit("recording.failed", {"path": str(self.path), "error": str(exc)})


def purge_old_recordings(root: Path, days: int, now: float) -> list[str]:
    """Delete recordings older than `days` under `root` (blocking: run it in a thread).
    Returns the paths deleted; folders left empty go too."""
    if days <= 0 or not root.is_dir():
        return []
    horizon = now - days * 86400
    deleted: list[str] = []
    for path in sorted(root.rglob("*.wav")):
        try:
            if path.stat().st_mtime < horizon:
                path.unlink()
                deleted.append(str(path))
        except OSError as exc:
            log.warning("cannot delete an old recording", path=str(path), error=str(exc))
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only succeeds when empty
    return deleted
