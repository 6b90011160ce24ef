"""Voicemail: greet the caller, beep, record what they say to a WAV file, and stop at '#',
after the maximum length, after a stretch of silence, or when they hang up; then publish
`voicemail.recorded` with the file, its length and why it ended.

The WAV is written off the event loop by the media runtime's recorder; this module only
decides when recording starts and stops and watches the audio level for silence.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acd.config_calls import VoicemailConfig
from media._audioop import audioop

if TYPE_CHECKING:
    from acd.calls import Call

__all__ = ["Voicemail"]

# Speech sits well above this RMS (16-bit samples); line noise and comfort noise below it.
SILENCE_RMS = 300
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class Voicemail:
    def __init__(self, call: Call, mailbox: str) -> None:
        self.call = call
        self.mailbox = _SAFE.sub("_", mailbox) or "default"
        self.recorder: Any = None
        self.path: Path | None = None
        self.started_at: float | None = None
        self.last_sound: float = 0.0
        self.done = False

    @property
    def _cfg(self) -> Any:
        return self.call.engine.config.voicemail or VoicemailConfig()

    def start(self) -> None:
        greeting = [n for n in (self._cfg.prompt, "beep") if n]
        self.call.play(greeting, on_done=self._record)

    def _record(self) -> None:
        call = self.call
        if call.is_over or self.done or call.caller.media is None:
            return
        cfg = self._cfg
        now = call.engine.clock.now()
        stamp = datetime.fromtimestamp(call.engine.clock.wall(), UTC).strftime("%Y%m%dT%H%M%SZ")
        self.path = Path(cfg.dir) / self.mailbox / f"{stamp}-{call.ref[:12]}.wav"
        endpoint = call.caller.media.endpoint
        try:
            self.recorder = endpoint.record(self.path, on_error=self._failed, tap=self._level)
        except OSError as exc:
            self._failed(exc)
            return
        self.started_at = self.last_sound = now
        call.after("vm-max", float(cfg.max_seconds), lambda: self.finish("max_length"))
        if cfg.silence_seconds:
            call.after("vm-silence", 1.0, self._check_silence)

    def _level(self, pcm: bytes, direction: str) -> None:
        """Audio from the caller, 16-bit PCM: remember when it was last more than silence."""
        if direction == "in" and pcm and audioop.rms(pcm, 2) > SILENCE_RMS:
            self.last_sound = self.call.engine.clock.now()

    def _check_silence(self) -> None:
        if self.done:
            return
        now = self.call.engine.clock.now()
        if now - self.last_sound >= self._cfg.silence_seconds:
            self.finish("silence")
        else:
            self.call.after("vm-silence", 1.0, self._check_silence)

    def on_digit(self, digit: str) -> None:
        if digit == "#":
            if self.recorder is None:
                self.call.caller_media.endpoint.stop_play()
                self._record()  # skip the greeting
            else:
                self.finish("dtmf")

    def _failed(self, exc: BaseException) -> None:
        self.call.emit("recording.failed", {"kind": "voicemail", "mailbox": self.mailbox,
                                            "path": str(self.path), "error": str(exc)})
        self.finish("failed")

    def stop(self) -> None:
        """The call is ending (the caller hung up): keep what was recorded."""
        if not self.done and self.recorder is not None:
            self.finish("hangup", end_call=False)

    def finish(self, reason: str, end_call: bool = True) -> None:
        if self.done:
            return
        self.done = True
        call = self.call
        call.cancel_timer("vm-max")
        call.cancel_timer("vm-silence")
        duration = 0.0
        if self.recorder is not None:
            duration = float(self.recorder.stop() or 0.0)
            call.emit("voicemail.recorded", {
                "mailbox": self.mailbox, "path": str(self.path), "duration": round(duration, 2),
                "caller": call.from_number, "reason": reason,
            })
            call._log("voicemail recorded", mailbox=self.mailbox, path=str(self.path),
                      duration=round(duration, 2), reason=reason)
        if end_call:
            call.end("voicemail", by="caller" if reason == "dtmf" else "engine")
