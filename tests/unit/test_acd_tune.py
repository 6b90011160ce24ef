"""`QueueService.tune`, the admin API's PATCH /queues/{name}: changes apply to the next offer,
waiting callers keep their place (and the max_wait deadline they joined with), and a bad value
is refused with the field it is about, leaving the queue as it was."""

from __future__ import annotations

from typing import Any

import pytest

from acd.queueing import QueueTuningError

from .acdfakes import AgentPhone, nothing_left, queue_call
from .callfakes import CallRig, config_from, demo_with


def sales_agents(rig: CallRig) -> tuple[AgentPhone, AgentPhone]:
    return AgentPhone(rig, "1001", 5071), AgentPhone(rig, "1002", 5072)


def test_ring_timeout_change_applies_to_the_next_offer() -> None:
    rig = CallRig()
    a1, _a2 = sales_agents(rig)
    rig.engine.queues.tune("sales", {"ring_timeout": 5})
    (tuned,) = rig.events_of("queue.tuned")
    assert tuned.data == {"queue": "sales", "changes": {"ring_timeout": 5}}
    c, _ep = queue_call(rig)
    (r1,) = a1.poll()
    r1.ring()
    rig.advance(4.75)
    assert r1.methods() == []
    rig.advance(0.25)
    assert r1.methods() == ["CANCEL"]
    r1.handle()
    c.bye()
    nothing_left(rig)


def test_strategy_change_to_ring_all_rings_both_agents() -> None:
    rig = CallRig()
    a1, a2 = sales_agents(rig)
    rig.engine.queues.tune("sales", {"strategy": "ring_all"})
    c, ep = queue_call(rig)
    (r1,), (r2,) = a1.poll(), a2.poll()
    r2.ring()
    r1.ring()
    r2.answer()
    assert r1.methods() == ["CANCEL"]
    r1.handle()
    assert ep.bridged_to is r2.endpoint(rig)
    c.bye()
    r2.handle()
    rig.advance(10.0)
    nothing_left(rig)


@pytest.mark.parametrize("members", [["1002"], [{"agent": "1001", "penalty": 1}, "1002"]])
def test_members_change_applies_to_the_next_offer(members: list[Any]) -> None:
    rig = CallRig()
    a1, a2 = sales_agents(rig)
    rig.engine.queues.tune("sales", {"members": members})
    # without the change 1001 would be offered (tied idle time, first member)
    c, _ep = queue_call(rig)
    assert a1.poll() == []
    (r2,) = a2.poll()
    r2.answer()
    c.bye()
    r2.handle()
    rig.advance(10.0)
    nothing_left(rig)


def test_waiting_callers_keep_their_place_and_max_wait_deadline() -> None:
    rig = CallRig()
    c1, _ep1 = queue_call(rig, "0911111111")
    rig.advance(10.0)
    c2, ep2 = queue_call(rig, "0922222222")
    qs = rig.engine.queues
    refs = [e.data["caller"] for e in rig.events_of("queue.entered")]
    qs.tune("sales", {"strategy": "ring_all", "ring_timeout": 30, "max_wait": 600,
                      "members": ["1002", "1001"]})
    assert [qs.dist.position(r) for r in refs] == [1, 2]
    (waiting,) = [q for q in qs.snapshot_queues() if q["name"] == "sales"]
    assert [w["call"] for w in waiting["waiting"]] == refs
    a1 = AgentPhone(rig, "1001", 5071)
    (r1,) = a1.poll()
    assert r1.header["x-acd-call-id"] == refs[0]  # the first caller still comes first
    r1.answer()
    assert qs.dist.position(refs[1]) == 1
    rig.advance(119.75)
    assert rig.events_of("queue.timeout") == []
    rig.advance(0.25)  # max_wait 120 from its join, not the 600 tuned since
    (timeout,) = rig.events_of("queue.timeout")
    assert timeout.data["caller"] == refs[1]
    assert ep2.played()[-1] == ("voicemail", "beep")
    c2.bye()
    c1.bye()
    r1.handle()
    rig.advance(10.0)
    nothing_left(rig)


@pytest.mark.parametrize(("changes", "field"), [
    ({"ring_timeout": 0}, "ring_timeout"),
    ({"ring_timeout": -3}, "ring_timeout"),
    ({"ring_timeout": "15"}, "ring_timeout"),
    ({"ring_timeout": True}, "ring_timeout"),
    ({"retry_delay": -1}, "retry_delay"),
    ({"retry_delay": float("nan")}, "retry_delay"),
    ({"max_wait": float("inf")}, "max_wait"),
    ({"service_level": -1}, "service_level"),
    ({"priority": 0}, "priority"),
    ({"max_len": 1.5}, "max_len"),
    ({"max_len": -1}, "max_len"),
    ({"autopause_after": False}, "autopause_after"),
    ({"strategy": "fastest_finger"}, "strategy"),
    ({"allow_busy_agents": "yes"}, "allow_busy_agents"),
    ({"members": ["9999"]}, "members[0].agent"),
    ({"members": ["1001", {"agent": "1002", "colour": "red"}]}, "members[1]"),
    ({"members": ["1001", {"agent": "1002", "weight": 0}]}, "members[1]"),
    ({"members": ["1001", {"agent": "1002", "penalty": "high"}]}, "members[1]"),
    ({"members": [42]}, "members[0]"),
    ({"members": "1001"}, "members[0]"),
    ({"members": ["1001", "1001"]}, "members[1]"),
    ({"name": "presales"}, "name"),
    ({"announce": {"interval": 10}}, "announce"),
    ({"ring_timeout": 5, "strategy": "fastest_finger"}, "strategy"),
])
def test_bad_change_is_refused_with_its_field_and_nothing_applies(changes: dict[str, Any],
                                                                   field: str) -> None:
    rig = CallRig()
    qs = rig.engine.queues
    before = qs.queue_config["sales"]
    with pytest.raises(QueueTuningError) as err:
        qs.tune("sales", changes)
    assert err.value.field == field
    assert err.value.reason and field in str(err.value)
    assert qs.queue_config["sales"] is before
    assert rig.events_of("queue.tuned") == []
    # the distributor still has the old settings: a caller rings 1001 for the configured 15 s
    a1 = AgentPhone(rig, "1001", 5071)
    c, _ep = queue_call(rig)
    (r1,) = a1.poll()
    r1.ring()
    rig.advance(14.75)
    assert r1.methods() == []
    rig.advance(0.25)
    assert r1.methods() == ["CANCEL"]
    r1.handle()
    c.bye()
    nothing_left(rig)


def test_unknown_queue_is_a_key_error() -> None:
    rig = CallRig()
    with pytest.raises(KeyError):
        rig.engine.queues.tune("presales", {"ring_timeout": 5})


def test_wrapup_time_change_applies_to_the_next_hang_up() -> None:
    rig = CallRig()
    a1 = AgentPhone(rig, "1001", 5071)
    c, _ep = queue_call(rig)
    (r1,) = a1.poll()
    r1.answer()
    rig.engine.queues.tune("sales", {"wrapup_time": 0})
    c.bye()
    r1.handle()
    assert rig.events_of("agent.wrapup_started") == []
    assert rig.engine.queues.dist.agent("1001").occupancy == "idle"
    nothing_left(rig)


def test_config_reload_keeps_calls_offers_and_waiting_callers() -> None:
    rig = CallRig()
    a1, a2 = sales_agents(rig)
    c1, ep1 = queue_call(rig, "0911111111")
    (r1,) = a1.poll()
    r1.answer()
    c2, _ep2 = queue_call(rig, "0922222222")
    (r2,) = a2.poll()
    r2.ring()
    c3, _ep3 = queue_call(rig, "0933333333")
    ref3 = rig.events_of("queue.entered")[-1].data["caller"]
    qs = rig.engine.queues
    assert qs.dist.position(ref3) == 2

    # a reload that drops 1002 (ringing for c2) from the agents and from sales
    rig.engine.apply_config(config_from(demo_with(
        ('members: ["1001", "1002"]', 'members: ["1001"]'),
        ('  "1002": {name: Agent 1002, devices: ["1002"]}\n', ""))))
    assert r1.methods() == ["ACK"] and ep1.bridged_to is r1.endpoint(rig)
    assert r2.methods() == ["CANCEL"]
    r2.handle()
    (canceled,) = rig.events_of("queue.ring_canceled")
    assert (canceled.data["agent"], canceled.data["reason"]) == ("1002", "agent_removed")
    assert qs.dist.position(ref3) == 2  # c2 is back in line, ahead of c3
    assert "1002" not in qs.dist.agents()

    c1.bye()
    r1.handle()
    rig.advance(5.0)  # 1001's wrap-up: then c2, who came first
    (next_,) = a1.poll()
    assert next_.header["from"].startswith('"+84922222222 (sales)"')
    assert a2.poll() == []
    next_.answer()
    for c in (c2, c3):
        c.bye()
    next_.handle()
    rig.advance(10.0)
    nothing_left(rig)
