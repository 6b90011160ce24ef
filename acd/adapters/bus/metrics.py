"""Prometheus view of a RedisStreamPublisher and of RedisStreamConsumers: collectors that
read their counters at scrape time, so publisher and consumers stay free of Prometheus and
the numbers are never stale."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from acd.adapters.bus.consumer import RedisStreamConsumer
from acd.adapters.bus.publisher import RedisStreamPublisher

__all__ = ["ConsumerCollector", "PublisherCollector"]


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


class ConsumerCollector(Collector):
    """The ConsumerStats of consumer group members, one series per (stream, group)."""

    def __init__(self, *consumers: RedisStreamConsumer) -> None:
        self.consumers = consumers

    def collect(self) -> Iterator[Metric]:
        labels = ["stream", "group"]
        counters = [CounterMetricFamily(name, doc, labels=labels) for name, doc in (
            ("acd_events_consumer_handled", "Events the consumer's handler applied"),
            ("acd_events_consumer_failed", "Handler failures (message left pending or "
             "dead-lettered)"),
            ("acd_events_consumer_dead_lettered", "Events moved to the dead-letter stream "
             "after max_failures permanent failures (should stay 0)"),
            ("acd_events_consumer_claimed", "Messages taken over from idle entries"),
            ("acd_events_consumer_duplicates", "Events skipped as already handled"),
            ("acd_events_consumer_malformed", "Messages that were not events, acknowledged"),
            ("acd_events_consumer_errors", "Failed Redis round trips of the consumer"),
        )]
        lag = GaugeMetricFamily("acd_events_consumer_lag_seconds",
                                "Age of the last event the consumer handled", labels=labels)
        for c in self.consumers:
            s, key = c.stats, [c.stream, c.group]
            for family, value in zip(counters, (s.handled, s.failed, s.dead_lettered,
                                                s.claimed, s.duplicates, s.malformed,
                                                s.errors), strict=True):
                family.add_metric(key, value)
            lag.add_metric(key, s.lag)
        yield from counters
        yield lag
