"""Prometheus view of a RedisStreamPublisher: a collector that reads its counters at scrape
time, so the publisher stays free of Prometheus and the numbers are never stale."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from acd.adapters.bus.publisher import RedisStreamPublisher

__all__ = ["PublisherCollector"]


class PublisherCollector(Collector):
    def __init__(self, publisher: RedisStreamPublisher) -> None:
        self.publisher = publisher

    def collect(self) -> Iterator[Metric]:
        p = self.publisher
        s = p.stats
        for name, doc, value in (
            ("acd_events_stream_published", "Events Redis accepted (first sends and replays)",
             s.published),
            ("acd_events_spooled", "Events written to the local spool", s.spooled),
            ("acd_events_replayed", "Events sent to Redis from the spool", s.replayed),
            ("acd_events_dropped", "Events lost (should stay 0)", s.dropped),
            ("acd_events_stream_errors", "Failed Redis round trips of the publisher", s.errors),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        for name, doc, gauge in (
            ("acd_events_pending", "Events not yet in Redis (memory and spool)", p.pending),
            ("acd_events_spool_pending", "Events in the spool waiting for replay",
             p.spool.pending),
            ("acd_events_lag_seconds", "Age of the oldest event not yet in Redis", p.lag),
            ("acd_events_stream_up", "1 while Redis takes events", 1 if s.redis_up else 0),
        ):
            yield GaugeMetricFamily(name, doc, value=gauge)
