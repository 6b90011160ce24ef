"""The in-process event bus: what it stamps on an event (id, per-node sequence, time, node,
call id), and fan-out to subscribers by type prefix, a failing one isolated."""

from __future__ import annotations

import json
import re

from hypothesis import given
from hypothesis import strategies as st

from acd.events import Event, EventBus


def test_events_are_stamped_with_unique_ids_and_a_rising_sequence() -> None:
    bus = EventBus("node-a", lambda: 1_700_000_000.5)
    evs = [bus.emit("call.started", {"i": i}, call_id=f"c{i}") for i in range(1000)]
    assert [e.seq for e in evs] == list(range(1, 1001))
    assert len({e.id for e in evs}) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", e.id) for e in evs)
    assert {(e.node, e.ts) for e in evs} == {("node-a", 1_700_000_000.5)}
    assert evs[7].call_id == "c7" and evs[7].data == {"i": 7}


def test_two_buses_never_share_an_id() -> None:
    # two nodes, or one node before and after a restart: both start their sequence at 1
    a, b = EventBus("n", lambda: 0.0), EventBus("n", lambda: 0.0)
    ids_a = {a.emit("x", {}).id for _ in range(100)}
    ids_b = {b.emit("x", {}).id for _ in range(100)}
    assert not ids_a & ids_b


def test_subscribers_get_their_prefix_and_a_failing_one_is_isolated() -> None:
    bus = EventBus("n", lambda: 0.0)
    calls: list[str] = []
    queue: list[str] = []

    def broken(ev: Event) -> None:
        raise RuntimeError("consumer bug")

    bus.subscribe(broken)
    bus.subscribe(lambda ev: calls.append(ev.type), "call.")
    unsubscribe = bus.subscribe(lambda ev: queue.append(ev.type), "queue.")
    bus.emit("call.started", {})
    bus.emit("queue.entered", {})
    unsubscribe()
    bus.emit("queue.exit_empty", {})
    assert calls == ["call.started"] and queue == ["queue.entered"]
    assert bus.subscriber_errors == 3 and bus.published == 3


@given(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=5),
       st.sampled_from(["call.ended", "queue.offered", "agent.status_changed"]))
def test_events_survive_their_json_form(data: dict[str, object], type_: str) -> None:
    ev = EventBus("node-b", lambda: 12.25).emit(type_, data, call_id="c1")
    assert Event.from_dict(json.loads(ev.to_json())) == ev
