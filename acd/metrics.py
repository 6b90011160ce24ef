"""Prometheus metrics of one engine, in a registry of its own (tests run several engines in
one process). Names follow the `acd_<subsystem>_<what>` convention."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["Children", "Metrics", "Tally"]


class Tally:
    """A counter counted in a plain int and added to its Prometheus counter when the
    registry is read. prometheus_client takes a lock for every `inc()`, and a registration
    counts seven times; the engine counts on the event loop's thread only, which is also
    where the registry is read (the admin API), so no increment can fall between a flush's
    read and reset."""

    __slots__ = ("counter", "n")

    def __init__(self, counter: Any) -> None:
        self.counter = counter
        self.n = 0

    def inc(self, amount: int = 1) -> None:
        self.n += amount

    def flush(self) -> None:
        n = self.n
        if n:
            self.n = 0
            self.counter.inc(n)


class _Registry(CollectorRegistry):
    """Flushes the tallies into their counters before every read."""

    def __init__(self) -> None:
        super().__init__(auto_describe=True)
        self.tallies: list[Tally] = []

    def tally(self, counter: Any) -> Tally:
        t = Tally(counter)
        self.tallies.append(t)
        return t

    def collect(self) -> Any:
        for t in self.tallies:
            t.flush()
        yield from super().collect()


class Children(dict[str, Tally]):
    """The children of a one-label counter by label value, as Tallies: `labels()` costs
    microseconds, a dict lookup does not, and the hot paths count every message."""

    def __init__(self, metric: Any, registry: _Registry) -> None:
        super().__init__()
        self.metric = metric
        self.registry = registry

    def __missing__(self, value: str) -> Tally:
        child = self[value] = self.registry.tally(self.metric.labels(value))
        return child


class Metrics:
    def __init__(self) -> None:
        r = self.registry = _Registry()
        self.messages_received = Counter(
            "acd_sip_messages_received", "SIP messages received", ["kind"], registry=r)
        self.parse_errors = Counter(
            "acd_sip_parse_errors", "Messages that failed to parse", ["action"], registry=r)
        self.requests = Counter(
            "acd_sip_requests", "New SIP requests by method", ["method"], registry=r)
        self.responses_sent = Counter(
            "acd_sip_final_responses", "Final responses sent by status class", ["status"],
            registry=r)
        self.register_requests = Counter(
            "acd_register_requests", "REGISTER requests by response status", ["result"],
            registry=r)
        self.bindings = Gauge("acd_registrations", "Registered contacts (bindings)", registry=r)
        self.contacts_unreachable = Gauge(
            "acd_registrations_unreachable", "Registered contacts failing OPTIONS qualify",
            registry=r)
        self.auth_failures = Counter(
            "acd_auth_failures", "Failed digest authentications", registry=r)
        self.auth_bans = Counter(
            "acd_auth_bans", "Source addresses banned for repeated auth failures", registry=r)
        self.banned_sources = Gauge(
            "acd_auth_banned_sources", "Source addresses banned now", registry=r)
        self.dropped_banned = Counter(
            "acd_sip_dropped_banned", "Messages dropped from banned sources", registry=r)
        self.transactions = Gauge(
            "acd_sip_transactions", "Live SIP transactions", ["side"], registry=r)
        self.trunk_registered = Gauge(
            "acd_trunk_registered", "1 when the outbound registration of a trunk is up",
            ["trunk"], registry=r)
        self.trunk_up = Gauge(
            "acd_trunk_up", "1 when the trunk answers OPTIONS", ["trunk"], registry=r)
        self.store_pending = Gauge(
            "acd_store_pending_writes", "Store operations waiting to be written", registry=r)
        self.events_published = Counter(
            "acd_events_published", "Events published on the bus", registry=r)
        self.tcp_connections = Gauge(
            "acd_sip_tcp_connections", "Open SIP TCP connections", registry=r)
        self.active_calls = Gauge("acd_calls_active", "Calls in progress", registry=r)
        self.dialogs = Gauge("acd_sip_dialogs", "INVITE dialogs (call legs) alive", registry=r)
        self.media_endpoints = Gauge(
            "acd_media_endpoints", "RTP endpoints (port pairs) in use", registry=r)
        self.calls_total = Counter(
            "acd_calls", "Calls ended, by direction and outcome", ["direction", "outcome"],
            registry=r)
        self.received = Children(self.messages_received, r)
        self.method_requests = Children(self.requests, r)
        self.register_results = Children(self.register_requests, r)
        self.events_counted = r.tally(self.events_published)  # every event is counted
        self.draining = Gauge(
            "acd_draining", "1 while the engine drains before exit", registry=r)


class MediaCollector:
    """RTP totals (received, sent, lost) and ticker health, read from the media engines at
    scrape time."""

    def __init__(self, engines: list[Any]) -> None:
        self.engines = [e for e in engines if e is not None]

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        totals = {"packets_in": 0, "packets_out": 0, "lost": 0}
        late = 0
        playing = 0
        for e in self.engines:
            for k, v in e.totals().items():
                totals[k] += v
            late += e.late_ticks
            playing += e.playing
        yield CounterMetricFamily("acd_rtp_packets_received", "RTP packets received",
                                  value=totals["packets_in"])
        yield CounterMetricFamily("acd_rtp_packets_sent", "RTP packets sent",
                                  value=totals["packets_out"])
        yield CounterMetricFamily("acd_rtp_packets_lost", "RTP packets lost (from sequence gaps)",
                                  value=totals["lost"])
        yield CounterMetricFamily("acd_media_late_ticks",
                                  "20 ms media ticks run more than 5 ms late", value=late)
        yield GaugeMetricFamily("acd_media_streams_playing",
                                "Endpoints sending prompts or music now", value=playing)
        from acd.runtime import rtppoll

        if rtppoll.NATIVE:  # what the C fast path took (acd/runtime/_fastrtp.c), per process
            fam = CounterMetricFamily(
                "acd_rtp_fastpath_packets",
                "RTP packets by path: native (handled in C), python (handed to Python), "
                "relayed (sent from C), captured (recorded from C)", labels=["path"])
            for path, n in rtppoll.native_counters().items():
                fam.add_metric([path], n)
            yield fam
