"""Queue and agent settings: the frozen values the config loader builds and the distributor reads.

Nothing here knows YAML or where a value came from; `__post_init__` refuses values that would
make the distributor misbehave (negative timers, duplicate members, zero weights), so a bad
reload fails at build time and the running configuration stays.

Empty rules (`join_empty`, `leave_empty`) name the sense in which a queue counts as empty:

    "never"        never empty: callers join and stay even with nobody logged in
    "logged_out"   every member is logged out
    "unreachable"  every member is logged out or has no registered device
    "unavailable"  no member is logged in, registered and "available" (members busy on a
                   call or in wrap-up still count: they will be free again)

`join_empty` refuses a new caller (Overflow reason "empty") while the queue is empty in that
sense; `leave_empty` sends every waiting caller out the moment the queue becomes so, and
refuses new callers while it is (they would have to leave at once).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

__all__ = [
    "EMPTY_RULES", "AgentSettings", "AnnounceSettings", "EmptyRule", "Member", "QueueSettings",
]

EmptyRule = Literal["never", "logged_out", "unreachable", "unavailable"]
EMPTY_RULES: tuple[str, ...] = ("never", "logged_out", "unreachable", "unavailable")


def _frozen_skills(skills: Mapping[str, float]) -> Mapping[str, float]:
    for name, level in skills.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"skill names are non-empty strings, not {name!r}")
        if level < 0:
            raise ValueError(f"skill {name!r}: proficiency must be >= 0")
    # a copy the caller cannot mutate behind the distributor's caches
    return MappingProxyType(dict(skills))


@dataclass(frozen=True, slots=True)
class Member:
    """An agent's membership of one queue.

    penalty: the tier; lower tiers are offered first and a higher tier only when no lower-tier
    member is free (FreeSWITCH tier semantics). ring_progressively instead opens tier k after
    k * tier_step seconds of a caller's wait. weight: for weighted_random (must be > 0).
    skills: proficiency per skill name, for callers' required skills and the skills strategy.
    """

    agent: str
    penalty: int = 0
    weight: float = 1.0
    skills: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.agent:
            raise ValueError("member agent id must not be empty")
        if self.penalty < 0:
            raise ValueError(f"member {self.agent}: penalty must be >= 0")
        if not self.weight > 0:
            raise ValueError(f"member {self.agent}: weight must be > 0")
        object.__setattr__(self, "skills", _frozen_skills(self.skills))


@dataclass(frozen=True, slots=True)
class AnnounceSettings:
    """What to tell waiting callers and how often; the distributor only computes the values
    (`Distributor.position`, `Distributor.estimated_wait`), the shell plays them."""

    interval: float = 0.0  # seconds between announcements; 0 = never announce
    position: bool = True
    estimated_wait: bool = True
    round_to: float = 60.0  # announce waits rounded up to this many seconds

    def __post_init__(self) -> None:
        if self.interval < 0 or self.round_to <= 0:
            raise ValueError("announce interval must be >= 0 and round_to > 0")


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """One queue. Durations are seconds; 0 disables max_wait, max_len, autopause_after and
    sticky_timeout. Destinations are opaque to the distributor (e.g. ("voicemail", "1003"));
    None means the engine's default for that case.

    priority: the queue's weight when an agent shared by several queues picks its next caller:
    the caller whose wait * priority is largest wins (see distributor).
    sticky_timeout: how long a caller with a preferred agent waits for that agent alone.
    handle_time_samples: how many recent handle times the estimated wait is the median of.
    """

    name: str
    strategy: str = "ring_all"
    members: tuple[Member, ...] = ()
    ring_timeout: float = 15.0
    retry_delay: float = 5.0
    wrapup_time: float = 0.0
    max_wait: float = 0.0
    overflow_destination: object = None
    max_len: int = 0
    full_destination: object = None
    join_empty: EmptyRule = "never"
    leave_empty: EmptyRule = "never"
    empty_destination: object = None
    priority: float = 1.0
    service_level_seconds: float = 20.0
    autopause_after: int = 0
    allow_busy_agents: bool = False
    sticky_timeout: float = 0.0
    tier_step: float = 10.0
    announce: AnnounceSettings = field(default_factory=AnnounceSettings)
    handle_time_samples: int = 20

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("queue name must not be empty")
        object.__setattr__(self, "members", tuple(self.members))
        seen: set[str] = set()
        for m in self.members:
            if m.agent in seen:
                raise ValueError(f"queue {self.name}: agent {m.agent} is listed twice")
            seen.add(m.agent)
        if not self.ring_timeout > 0:
            raise ValueError(f"queue {self.name}: ring_timeout must be > 0")
        for key in ("retry_delay", "wrapup_time", "max_wait", "service_level_seconds",
                    "sticky_timeout", "tier_step"):
            if getattr(self, key) < 0:
                raise ValueError(f"queue {self.name}: {key} must be >= 0")
        if self.max_len < 0 or self.autopause_after < 0:
            raise ValueError(f"queue {self.name}: max_len and autopause_after must be >= 0")
        if not self.priority > 0:
            raise ValueError(f"queue {self.name}: priority must be > 0")
        if self.handle_time_samples < 1:
            raise ValueError(f"queue {self.name}: handle_time_samples must be >= 1")
        for key in ("join_empty", "leave_empty"):
            if getattr(self, key) not in EMPTY_RULES:
                raise ValueError(f"queue {self.name}: {key} must be one of {EMPTY_RULES}")


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """A person who takes queue calls on any of `devices` (SIP account users).
    wrapup_time overrides every queue's wrap-up for this agent when not None."""

    agent: str
    devices: tuple[str, ...] = ()
    wrapup_time: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not self.agent:
            raise ValueError("agent id must not be empty")
        object.__setattr__(self, "devices", tuple(dict.fromkeys(self.devices)))
        if self.wrapup_time is not None and self.wrapup_time < 0:
            raise ValueError(f"agent {self.agent}: wrapup_time must be >= 0")
