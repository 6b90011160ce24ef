"""What the IVR walker asks of the call leg: prompts, timers, routing, variables, events.

Owns: the action values ivr.walker returns, in the order the driver carries them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Action", "Final", "Hangup", "PlayPrompt", "Publish", "RouteToExtension", "RouteToQueue",
    "RouteToVoicemail", "SetVariable", "StartTimer", "StopPrompt",
]


@dataclass(frozen=True, slots=True)
class PlayPrompt:
    name: str
    barge_in: bool  # whether a digit will stop it (the walker sends StopPrompt then)


@dataclass(frozen=True, slots=True)
class StopPrompt:
    pass


@dataclass(frozen=True, slots=True)
class StartTimer:
    deadline: float


@dataclass(frozen=True, slots=True)
class RouteToQueue:
    name: str


@dataclass(frozen=True, slots=True)
class RouteToExtension:
    number: str


@dataclass(frozen=True, slots=True)
class RouteToVoicemail:
    mailbox: str


@dataclass(frozen=True, slots=True)
class Hangup:
    prompt: str | None = None  # played before the call is released


@dataclass(frozen=True, slots=True)
class SetVariable:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Publish:
    """An event for the bus: ivr.entered, ivr.digit or ivr.exit."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)


Action = (PlayPrompt | StopPrompt | StartTimer | RouteToQueue | RouteToExtension
          | RouteToVoicemail | Hangup | SetVariable | Publish)
Final = RouteToQueue | RouteToExtension | RouteToVoicemail | Hangup
