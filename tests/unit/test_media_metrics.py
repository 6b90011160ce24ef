"""acd.metrics.MediaCollector: the RTP totals of the media engines and, where the C fast path
serves, how many packets took which path (acd_rtp_fastpath_packets_total{path=...})."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from acd.metrics import MediaCollector
from acd.runtime import rtppoll


class FakeEngine:
    late_ticks = 2
    playing = 3

    def totals(self) -> dict[str, int]:
        return {"packets_in": 10, "packets_out": 9, "lost": 1}


def scrape(engines: list[Any]) -> str:
    r = CollectorRegistry()
    r.register(MediaCollector(engines))
    return generate_latest(r).decode()


def test_totals_add_up_across_engines() -> None:
    text = scrape([FakeEngine(), FakeEngine(), None])
    assert "acd_rtp_packets_received_total 20.0" in text
    assert "acd_rtp_packets_sent_total 18.0" in text
    assert "acd_rtp_packets_lost_total 2.0" in text
    assert "acd_media_late_ticks_total 4.0" in text
    assert "acd_media_streams_playing 6.0" in text


def test_the_fast_path_counters_are_exported_where_it_serves() -> None:
    text = scrape([FakeEngine()])
    if not rtppoll.NATIVE:
        assert "acd_rtp_fastpath_packets" not in text
        return
    counters = rtppoll.native_counters()
    assert set(counters) == {"native", "python", "relayed", "relay_python", "captured"}
    for path in counters:
        line = next(x for x in text.splitlines()
                    if x.startswith(f'acd_rtp_fastpath_packets_total{{path="{path}"}}'))
        assert float(line.split()[-1]) >= counters[path]  # counters only grow
