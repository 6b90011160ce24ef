"""Domain events: the versioned JSON records every subsystem publishes, and the in-process
bus that carries them by default.

Publishing never blocks and never awaits: the call path hands an Event to `publish` and goes
on. Subscribers are plain callables (run synchronously, errors contained) or asyncio-side
consumers that drain a bounded buffer (see acd/adapters for Redis Streams).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

__all__ = ["EVENT_VERSION", "Event", "EventBus", "InProcessBus"]

EVENT_VERSION = 1
log = structlog.get_logger("acd.events")


@dataclass(frozen=True, slots=True)
class Event:
    type: str  # e.g. "registration.added"
    data: dict[str, Any]
    id: str
    seq: int  # per-node sequence number, strictly increasing
    ts: float  # UTC epoch seconds
    node: str
    call_id: str | None = None
    version: int = EVENT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "version": self.version,
            "id": self.id,
            "seq": self.seq,
            "ts": self.ts,
            "node": self.node,
            "call_id": self.call_id,
            "data": self.data,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), default=str)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        return cls(
            type=d["type"], data=d.get("data") or {}, id=d["id"], seq=int(d["seq"]),
            ts=float(d["ts"]), node=d["node"], call_id=d.get("call_id"),
            version=int(d.get("version", EVENT_VERSION)),
        )


Subscriber = Callable[[Event], None]


@dataclass
class EventBus:
    """Stamps events (id, per-node sequence, time) and fans them out to subscribers."""

    node: str
    wall: Callable[[], float]
    _subscribers: list[tuple[str, Subscriber]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    # Event ids: 32 hex digits like a UUID's, a random half drawn per bus (so per process
    # start) and the sequence number: unique across nodes and restarts, and a tenth of what
    # uuid4() costs on a path that emits dozens of events per call.
    _id_prefix: str = field(default_factory=lambda: os.urandom(8).hex())
    published: int = 0
    subscriber_errors: int = 0

    def emit(self, type_: str, data: dict[str, Any], call_id: str | None = None) -> Event:
        seq = next(self._seq)
        ev = Event(type_, data, f"{self._id_prefix}{seq:016x}", seq, self.wall(), self.node,
                   call_id)
        self.publish(ev)
        return ev

    def publish(self, ev: Event) -> None:
        self.published += 1
        for prefix, fn in self._subscribers:
            if ev.type.startswith(prefix):
                try:
                    fn(ev)
                except Exception:  # a broken consumer must not break the call path
                    self.subscriber_errors += 1
                    log.exception("event subscriber failed", event_type=ev.type,
                                  call_id=ev.call_id)

    def subscribe(self, fn: Subscriber, prefix: str = "") -> Callable[[], None]:
        entry = (prefix, fn)
        self._subscribers.append(entry)

        def unsubscribe() -> None:
            if entry in self._subscribers:
                self._subscribers.remove(entry)

        return unsubscribe


InProcessBus = EventBus
