"""Running an IVR walker on a call: the walker (ivr/) decides, this module carries its
actions out on the caller's RTP endpoint, the engine's timers and the call's routing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ivr.walker import (
    Action,
    Hangup,
    IvrWalker,
    PlayPrompt,
    Publish,
    RouteToExtension,
    RouteToQueue,
    RouteToVoicemail,
    SetVariable,
    StartTimer,
    StopPrompt,
)

if TYPE_CHECKING:
    from acd.calls import Call, CallService

__all__ = ["IvrRunner"]


class IvrRunner:
    def __init__(self, service: CallService) -> None:
        self.service = service
        self._prompt_token: dict[str, int] = {}

    def _now(self) -> float:
        return self.service.engine.clock.now()

    def start(self, call: Call, tree_name: str) -> None:
        cfg = self.service.engine.config
        tree = cfg.ivr.get(tree_name)
        if tree is None:
            call._log("unknown IVR tree", tree=tree_name)
            call.hangup_after(["not_available"])
            return
        walker = IvrWalker(tree, schedules=cfg.schedules)
        call.walker = walker
        at = datetime.fromtimestamp(self.service.engine.clock.wall(), UTC)
        self._apply(call, walker.start(self._now(), at=at))

    def on_digit(self, call: Call, digit: str) -> None:
        if call.walker is None or digit not in "0123456789*#":
            return
        self._apply(call, call.walker.digit(digit, self._now()))

    def stop(self, call: Call) -> None:
        if call.walker is not None:
            call.walker = None
            call.cancel_timer("ivr")
            self._prompt_token.pop(call.ref, None)

    def _prompt_done(self, call: Call, token: int) -> None:
        if call.walker is None or self._prompt_token.get(call.ref) != token:
            return  # a prompt that was stopped (barge-in) or replaced
        self._apply(call, call.walker.prompt_finished(self._now()))

    def _done_callback(self, call: Call, token: int) -> Callable[[], None]:
        return lambda: self._prompt_done(call, token)

    def _timer(self, call: Call) -> None:
        if call.walker is not None:
            self._apply(call, call.walker.timer(self._now()))

    def _apply(self, call: Call, actions: list[Action]) -> None:
        for i, a in enumerate(actions):
            if call.is_over or call.walker is None:
                return
            if isinstance(a, PlayPrompt):
                token = self._prompt_token.get(call.ref, 0) + 1
                self._prompt_token[call.ref] = token
                call.play([a.name], on_done=self._done_callback(call, token))
            elif isinstance(a, StopPrompt):
                self._prompt_token[call.ref] = self._prompt_token.get(call.ref, 0) + 1
                if call.caller.media is not None:
                    call.caller.media.endpoint.stop_play()
            elif isinstance(a, StartTimer):
                pass  # armed below from next_deadline(), which also covers cancellation
            elif isinstance(a, SetVariable):
                call.variables[a.name] = a.value
            elif isinstance(a, Publish):
                call.emit(a.type, dict(a.data))
            elif isinstance(a, RouteToQueue | RouteToExtension | RouteToVoicemail | Hangup):
                # the walker reports its exit (ivr.exit) after the final action: publish it
                # before leaving, or it is lost with the walker
                for rest in actions[i + 1:]:
                    if isinstance(rest, Publish):
                        call.emit(rest.type, dict(rest.data))
                self._leave(call, a)
                return
        walker = call.walker
        if walker is None or call.is_over:
            return
        deadline = walker.next_deadline()
        if deadline is None:
            call.cancel_timer("ivr")
        else:
            call.at("ivr", deadline, lambda: self._timer(call))

    def _leave(self, call: Call, a: Action) -> None:
        from acd.calls import Destination

        self.stop(call)
        if call.caller.media is not None:
            call.caller.media.endpoint.stop_play()
        if isinstance(a, RouteToQueue):
            self.service.run(call, Destination("queue", a.name))
        elif isinstance(a, RouteToExtension):
            self.service.run(call, Destination("extension", a.number))
        elif isinstance(a, RouteToVoicemail):
            self.service.run(call, Destination("voicemail", a.mailbox))
        elif isinstance(a, Hangup):
            call.hangup_after([a.prompt] if a.prompt else [])
