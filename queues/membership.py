"""Configuration at runtime: agents and queues added, changed and removed while calls flow.

A change applies to the next offers at once; live offers, calls and wrap-ups continue, and
waiting callers keep their place. A member that names an agent not (yet) defined is skipped
until `update_agent` defines it. Removing a queue sends its callers out with reason "empty".
"""

from __future__ import annotations

from queues.agent import Agent
from queues.callers import OFFERING, WAITING
from queues.outputs import Output
from queues.queue import QueueState
from queues.routing import Core
from queues.settings import AgentSettings, QueueSettings
from queues.strategies import make_strategy

__all__ = ["Membership"]


class Membership(Core):

    def update_agent(self, settings: AgentSettings, now: float) -> list[Output]:
        self._advance(now)
        aid = settings.agent
        a = self._agents.get(aid)
        if a is None:
            a = Agent(settings, self._now, self._history_limit)
            self._agents[aid] = a
            for mq in self._member_of.get(aid, {}).values():
                mq.levels[0] += 1
        else:
            for d in a.settings.devices:
                self._device_agents.get(d, set()).discard(aid)
        old_level = a.level
        a.configure(settings)
        for d in settings.devices:
            self._device_agents.setdefault(d, set()).add(aid)
        for d in list(a.registered):
            if d not in settings.devices:
                a.set_registered(d, False, self._now, self._out)
        for d in settings.devices:
            if d in self._registered and d not in a.registered:
                a.set_registered(d, True, self._now, self._out)
        if not a.present and a.offer is not None:
            self._cancel_offer(a.offer, "agent_unreachable", requeue=True)
        self._agent_changed(a, old_level)
        return self._drain()

    def remove_agent(self, agent: str, now: float) -> list[Output]:
        self._advance(now)
        a = self._agents.get(agent)
        if a is not None:
            if a.offer is not None:
                self._cancel_offer(a.offer, "agent_removed", requeue=True)
            if a.wrapup is not None and a.wrapup.timer is not None:
                self._timers.cancel(a.wrapup.timer)
            del self._agents[agent]
            self._unfree(a)
            for name in self._member_of.get(agent, ()):
                self._queues[name].levels[a.level] -= 1
                if self._queues[name].settings.leave_empty != "never":
                    self._empty_check[name] = None
            for d in a.settings.devices:
                self._device_agents.get(d, set()).discard(agent)
        return self._drain()

    def update_queue(self, settings: QueueSettings, now: float) -> list[Output]:
        """Add or change a queue. Raises ValueError (changing nothing) for an unknown
        strategy."""
        self._advance(now)
        name = settings.name
        q = self._queues.get(name)
        keep = q is not None and q.settings.strategy == settings.strategy
        strategy = q.strategy if q is not None and keep else make_strategy(settings.strategy)
        if q is None:
            q = self._queues[name] = QueueState(settings, strategy)
            old_members: set[str] = set()
        else:
            old_members = set(q.members)
            q.apply(settings, strategy)
        for aid in old_members - set(q.members):
            self._member_of[aid].pop(name, None)
            a = self._agents.get(aid)
            if a is not None and aid in q.free:
                del q.free[aid]
                del a.free_in[name]
        for aid in q.members:
            self._member_of.setdefault(aid, {})[name] = q
        q.levels = [0, 0, 0, 0]
        for aid in q.members:
            a = self._agents.get(aid)
            if a is not None:
                q.levels[a.level] += 1
        for c in list(q.callers.values()):
            if c.preferred is not None and not (c.preferred in q.members
                                                and q.satisfies(c.preferred, c.required)):
                self._end_sticky(c)
            if c.state in (WAITING, OFFERING):
                self._schedule_widening(c, q)
        for aid in q.members:
            a = self._agents.get(aid)
            if a is not None:
                self._sync_free(a)
        # members already free may now qualify for callers they could not take before
        self._freed.extend(q.free.values())
        if settings.leave_empty != "never":
            self._empty_check[name] = None
        q.drop_empty_buckets()
        return self._drain()

    def remove_queue(self, name: str, now: float) -> list[Output]:
        """Remove a queue; its callers leave with reason "empty"."""
        self._advance(now)
        q = self._queues.get(name)
        if q is not None:
            self._empty_out(q)
            for aid in q.members:
                self._member_of[aid].pop(name, None)
                a = self._agents.get(aid)
                if a is not None and aid in q.free:
                    del q.free[aid]
                    del a.free_in[name]
            del self._queues[name]
        return self._drain()
