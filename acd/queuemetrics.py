"""Prometheus metrics for every queue and agent, read from the distributor at scrape time
(nothing is counted twice and nothing runs on the call path)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from acd.queueing import QueueService

__all__ = ["QueueCollector"]

OCCUPANCY = ("idle", "reserved", "ringing", "in_call", "wrap_up")


class QueueCollector(Collector):
    def __init__(self, service: QueueService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        s = self.service
        d = s.dist
        now = s.now
        waiting = GaugeMetricFamily("acd_queue_waiting", "Callers waiting in the queue",
                                    labels=["queue"])
        longest = GaugeMetricFamily("acd_queue_longest_wait_seconds",
                                    "How long the longest-waiting caller has waited",
                                    labels=["queue"])
        level = GaugeMetricFamily("acd_queue_service_level_ratio",
                                  "Calls answered within the service level, of all ended",
                                  labels=["queue"])
        free = GaugeMetricFamily("acd_queue_agents_free", "Members free to take a call now",
                                 labels=["queue"])
        avail = GaugeMetricFamily("acd_queue_agents_available",
                                  "Members logged in, registered and available",
                                  labels=["queue"])
        counters = {
            name: CounterMetricFamily(f"acd_queue_{name}", f"Callers {name} in the queue",
                                      labels=["queue"])
            for name in ("entered", "connected", "abandoned", "timeouts")
        }
        oldest: dict[str, float] = {}
        for call in s.callers.values():
            if call.queue is not None:
                oldest[call.queue] = max(oldest.get(call.queue, 0.0), now - call.started)
        for name in d.queues():
            q = d.queue(name)
            waiting.add_metric([name], q.callers)
            longest.add_metric([name], oldest.get(name, 0.0))
            if q.service_level is not None:
                level.add_metric([name], q.service_level)
            free.add_metric([name], q.free_agents)
            avail.add_metric([name], q.members_available)
            for key, fam in counters.items():
                fam.add_metric([name], getattr(q, key))
        yield from (waiting, longest, level, free, avail, *counters.values())

        state = StateSetMetricFamily("acd_agent_state", "What the agent is doing",
                                     labels=["agent"])
        status = GaugeMetricFamily("acd_agent_available",
                                   "1 when the agent's status is available", labels=["agent"])
        present = GaugeMetricFamily("acd_agent_registered_devices",
                                    "Registered devices of the agent", labels=["agent"])
        calls = CounterMetricFamily("acd_agent_calls", "Queue calls the agent answered",
                                    labels=["agent"])
        talk = CounterMetricFamily("acd_agent_talk_seconds", "Talk time on queue calls",
                                   labels=["agent"])
        for aid in d.agents():
            a = d.agent(aid)
            state.add_metric([aid], {o: a.occupancy == o for o in OCCUPANCY})
            status.add_metric([aid], 1.0 if a.availability == "available" else 0.0)
            present.add_metric([aid], len(a.registered))
            calls.add_metric([aid], a.calls)
            talk.add_metric([aid], a.talk_time)
        yield from (state, status, present, calls, talk)
