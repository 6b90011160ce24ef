"""An agent's runtime state in three layers, its counters and its bounded status history.

- presence: which of the agent's devices are registered (fed by the engine); the agent is
  present when at least one is.
- availability: the human status: "available", "logged_out", or any other string naming why the
  agent is not available ("lunch", "meeting", "auto_paused", ...).
- occupancy: idle, reserved (offered, the engine has not reported ringing yet), ringing,
  in_call, wrap_up. The queue side holds at most one of reserved/ringing/in_call/wrap_up at a
  time (`work`); calls the engine reports outside the queues (`external`) show as in_call
  while the queue side is idle.

Counters: answered queue calls and talk seconds (both reset at login, what fewest_calls and
least_talk_time compare), wrap-up seconds and count; `reset_counters` clears all four (daily). `idle_since` (what longest_idle orders by) is the end of the agent's last call of any
kind -- the wrap-up end for a queue call, the hang-up for an external one -- or the login time
when there was no call since; a pause does not reset it, a failed offer does not either.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from queues.deadlines import Deadline
from queues.outputs import QueueEvent
from queues.settings import AgentSettings

if TYPE_CHECKING:
    from queues.callers import OfferState
    from queues.queue import QueueState

__all__ = [
    "AUTO_PAUSED", "AVAILABLE", "IDLE", "IN_CALL", "LOGGED_OUT", "RESERVED", "RINGING",
    "WRAP_UP", "Agent", "AgentSnapshot", "Call", "Wrapup",
]

AVAILABLE = "available"
LOGGED_OUT = "logged_out"
AUTO_PAUSED = "auto_paused"

IDLE = "idle"
RESERVED = "reserved"
RINGING = "ringing"
IN_CALL = "in_call"
WRAP_UP = "wrap_up"


@dataclass(slots=True)
class Call:
    caller: str
    queue: str
    offer_id: int
    answered_at: float


@dataclass(slots=True)
class Wrapup:
    queue: str
    started: float
    deadline: float
    talk: float  # of the call that ended, so the handle time can be sampled at the end
    timer: Deadline | None = None


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    agent: str
    devices: tuple[str, ...]
    registered: tuple[str, ...]
    availability: str
    occupancy: str
    external_calls: int
    offer_id: int | None
    caller: str | None  # in a queue call with
    calls: int
    talk_time: float
    wrapup_time: float
    wrapups: int
    unanswered: int
    idle_since: float
    wrapup_deadline: float | None


class Agent:
    __slots__ = (
        "availability", "call", "calls", "external", "free_in", "history", "id", "idle_since",
        "offer", "registered", "ring_devices", "settings", "talk_time", "unanswered", "work",
        "wrapup",
        "wrapup_total", "wrapups",
    )

    def __init__(self, settings: AgentSettings, now: float, history_limit: int) -> None:
        self.id = settings.agent
        self.settings = settings
        self.registered: set[str] = set()
        self.ring_devices: tuple[str, ...] = ()  # registered, in configured order
        self.availability = LOGGED_OUT
        self.work = IDLE
        self.external: set[str] = set()
        self.offer: OfferState | None = None
        self.call: Call | None = None
        self.wrapup: Wrapup | None = None
        self.unanswered = 0  # consecutive, across queues; an answer resets it
        self.calls = 0
        self.talk_time = 0.0
        self.wrapup_total = 0.0
        self.wrapups = 0
        self.idle_since = now
        self.history: deque[tuple[float, str, str, str, str]] = deque(maxlen=history_limit)
        # queues in whose free set this agent currently is, by name
        self.free_in: dict[str, QueueState] = {}

    @property
    def present(self) -> bool:
        return bool(self.registered)

    @property
    def occupancy(self) -> str:
        if self.work != IDLE:
            return self.work
        return IN_CALL if self.external else IDLE

    @property
    def level(self) -> int:
        """0 logged out, 1 logged in without a registered device, 2 reachable but not
        available, 3 available: what the empty rules count."""
        if self.availability == LOGGED_OUT:
            return 0
        if not self.registered:
            return 1
        return 3 if self.availability == AVAILABLE else 2

    def configure(self, settings: AgentSettings) -> None:
        self.settings = settings
        self.ring_devices = tuple(d for d in settings.devices if d in self.registered)

    def _record(self, now: float, layer: str, old: str, new: str, reason: str,
                out: list) -> None:
        # history keeps plain tuples (StatusChange is built when read: reports are rare,
        # changes are not)
        self.history.append((now, layer, old, new, reason))
        kind = "agent.state_changed" if layer == "occupancy" else "agent.status_changed"
        out.append(QueueEvent(kind, {"agent": self.id, "layer": layer, "old": old, "new": new,
                                     "reason": reason, "time": now}))

    def set_work(self, work: str, now: float, reason: str, out: list) -> None:
        # occupancy and _record inlined: this runs twice per routing decision
        old = self.work
        if old == IDLE and self.external:
            old = IN_CALL
        self.work = work
        new = IN_CALL if work == IDLE and self.external else work
        if new != old:
            self.history.append((now, "occupancy", old, new, reason))
            out.append(QueueEvent("agent.state_changed", {
                "agent": self.id, "layer": "occupancy", "old": old, "new": new,
                "reason": reason, "time": now}))

    def note_occupancy(self, old: str, now: float, reason: str, out: list) -> None:
        """Record the occupancy change an external call's start or end caused."""
        new = self.occupancy
        if new != old:
            self._record(now, "occupancy", old, new, reason, out)

    def set_availability(self, status: str, now: float, reason: str, out: list) -> bool:
        old = self.availability
        if status == old:
            return False
        self.availability = status
        if old == LOGGED_OUT:
            # login: the counters fewest_calls / least_talk_time compare are "since login"
            self.calls = 0
            self.talk_time = 0.0
            self.unanswered = 0
            if self.work == IDLE and not self.external:
                self.idle_since = now
        if status == AVAILABLE:
            self.unanswered = 0
        self._record(now, "availability", old, status, reason, out)
        return True

    def set_registered(self, device: str, registered: bool, now: float, out: list) -> None:
        was = self.present
        if registered:
            self.registered.add(device)
        else:
            self.registered.discard(device)
        self.ring_devices = tuple(d for d in self.settings.devices if d in self.registered)
        if self.present != was:
            self._record(now, "presence", "present" if was else "absent",
                         "present" if self.present else "absent", device, out)

    def reset_counters(self) -> None:
        self.calls = 0
        self.talk_time = 0.0
        self.wrapup_total = 0.0
        self.wrapups = 0

    def snapshot(self) -> AgentSnapshot:
        return AgentSnapshot(
            agent=self.id, devices=self.settings.devices, registered=self.ring_devices,
            availability=self.availability, occupancy=self.occupancy,
            external_calls=len(self.external),
            offer_id=self.offer.offer_id if self.offer is not None else None,
            caller=self.call.caller if self.call is not None else None,
            calls=self.calls, talk_time=self.talk_time, wrapup_time=self.wrapup_total,
            wrapups=self.wrapups, unanswered=self.unanswered, idle_since=self.idle_since,
            wrapup_deadline=self.wrapup.deadline if self.wrapup is not None else None,
        )
