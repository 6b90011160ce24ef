"""Helpers shared by the queue tests: a distributor with agents logged in and registered, and
filters over its outputs. (No tests here; the name keeps it with the files it serves.)"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from queues import AgentSettings, Distributor, Member, Offer, Output, QueueEvent, QueueSettings

T = TypeVar("T")


def of(kind: type[T], outputs: Iterable[Output]) -> list[T]:
    return [o for o in outputs if isinstance(o, kind)]


def events(outputs: Iterable[Output], type_: str | None = None) -> list[QueueEvent]:
    return [o for o in of(QueueEvent, outputs) if type_ is None or o.type == type_]


def offered(outputs: Iterable[Output]) -> list[str]:
    """Agents offered, in order."""
    return [o.agent for o in of(Offer, outputs)]


def build(agents: Sequence[str] = ("a1", "a2", "a3"), *, strategy: str = "linear",
          members: Sequence[Member] | None = None, seed: int = 1, logged_in: bool = True,
          **queue: Any) -> Distributor:
    """A distributor at time 0 with queue "q" over `agents` (in that member order), each agent
    with one device named after it, registered and available when `logged_in`."""
    d = Distributor(rng=random.Random(seed).random)
    for a in agents:
        d.update_agent(AgentSettings(a, (f"dev-{a}",)), 0.0)
    ms = tuple(members) if members is not None else tuple(Member(a) for a in agents)
    d.update_queue(QueueSettings("q", strategy=strategy, members=ms, **queue), 0.0)
    if logged_in:
        for a in agents:
            d.set_presence(f"dev-{a}", True, 0.0)
            d.set_availability(a, "available", 0.0)
    return d


def offer_of(outputs: Iterable[Output], agent: str | None = None) -> Offer:
    found = [o for o in of(Offer, outputs) if agent is None or o.agent == agent]
    assert len(found) == 1, found
    return found[0]
