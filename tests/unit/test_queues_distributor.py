"""Distributor rules, one deterministic scenario each: leases, first answer wins, retries,
auto-pause, busy and unavailable agents, wrap-up accounting, overflow, empty rules,
priorities and positions, cross-queue fairness, stickiness, skills, tier widening, config."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from queues import (
    AgentSettings,
    CancelOffer,
    Candidate,
    Connect,
    Context,
    Distributor,
    Member,
    Offer,
    Overflow,
    QueueSettings,
    RejectAnswer,
    Strategy,
    register,
)
from tests.unit.test_queues_fakes import build, events, of, offer_of, offered


def test_offer_answer_connect_and_hold_time() -> None:
    d = build(ring_timeout=20)
    r = d.caller_arrived("q", "c1", 10.0)
    assert r.joined and r.position == 1
    o = offer_of(r.outputs, "a1")
    assert o.devices == ("dev-a1",) and o.deadline == 30.0 and o.queue == "q"
    assert events(r.outputs, "queue.entered")[0].data["position"] == 1
    out = d.offer_answered(o.offer_id, 14.0)
    assert of(Connect, out) == [Connect("c1", "a1", o.offer_id)]
    assert events(out, "queue.connected")[0].data["hold_time"] == 4.0
    assert d.agent("a1").occupancy == "in_call"
    assert d.caller_state("c1") is None
    assert d.caller_left("c1", 20.0) == []  # after Connect the caller is the call's business


def test_ring_all_first_answer_wins_and_crossing_answer_is_rejected() -> None:
    d = build(strategy="ring_all")
    r = d.caller_arrived("q", "c1", 1.0)
    offers = {o.agent: o.offer_id for o in of(Offer, r.outputs)}
    assert sorted(offers) == ["a1", "a2", "a3"]
    out = d.offer_answered(offers["a2"], 3.0)
    assert of(Connect, out) == [Connect("c1", "a2", offers["a2"])]
    assert sorted(c.offer_id for c in of(CancelOffer, out)) == sorted(
        [offers["a1"], offers["a3"]])
    assert {c.reason for c in of(CancelOffer, out)} == {"answered_elsewhere"}
    # the second 200 OK crossing our CANCEL: that leg must be hung up
    assert d.offer_answered(offers["a3"], 3.1) == [RejectAnswer(offers["a3"])]
    assert d.agent("a3").occupancy == "idle" and d.agent("a2").occupancy == "in_call"


def test_lease_expires_at_deadline_then_retry_after_delay_prefers_untried() -> None:
    d = build(ring_timeout=10, retry_delay=4)
    first = offer_of(d.caller_arrived("q", "c1", 0.0).outputs, "a1")
    assert d.next_deadline() == 10.0
    assert d.tick(9.99) == []
    out = d.tick(10.0)
    assert of(CancelOffer, out) == [CancelOffer(first.offer_id, "timeout")]
    assert events(out, "queue.ring_noanswer")[0].data["ring_time"] == 10.0
    assert d.caller_state("c1") == "retry"
    assert d.next_deadline() == 14.0
    assert offered(d.tick(13.9)) == []
    # linear would pick a1 again; a1 already let this caller ring out, a2 is free
    assert offered(d.tick(14.0)) == ["a2"]


def test_late_tick_processes_each_deadline_at_its_own_time() -> None:
    d = build(ring_timeout=10, retry_delay=4)
    d.caller_arrived("q", "c1", 0.0)
    out = d.tick(100.0)  # deadlines at 10 (a1), 14 retry -> a2 until 24, 28 -> a3 until 38 ...
    offers = of(Offer, out)
    assert [(o.agent, o.deadline) for o in offers[:2]] == [("a2", 24.0), ("a3", 38.0)]
    assert all(e.data["ring_time"] == 10.0 for e in events(out, "queue.ring_noanswer"))


def test_answer_after_lease_expiry_is_rejected() -> None:
    d = build(ring_timeout=10, retry_delay=50)
    o = offer_of(d.caller_arrived("q", "c1", 0.0).outputs)
    out = d.offer_answered(o.offer_id, 10.5)  # the shell's timer was late; the lease is over
    assert RejectAnswer(o.offer_id) in out
    assert CancelOffer(o.offer_id, "timeout") in out
    assert d.caller_state("c1") == "retry"


def test_autopause_after_consecutive_unanswered_offers() -> None:
    d = build(("a1",), autopause_after=2, retry_delay=1, ring_timeout=5)
    o1 = offer_of(d.caller_arrived("q", "c1", 0.0).outputs)
    d.offer_failed(o1.offer_id, "rejected", 1.0)
    o2 = offer_of(d.tick(2.0))
    out = d.offer_failed(o2.offer_id, "no_answer", 7.0)
    assert events(out, "agent.autopaused")[0].data["unanswered"] == 2
    assert d.agent("a1").availability == "auto_paused"
    assert offered(d.tick(100.0)) == []
    # busy and error are not the agent's inattention
    o3 = offer_of(d.set_availability("a1", "available", 101.0))
    d.offer_failed(o3.offer_id, "busy", 102.0)
    o4 = offer_of(d.tick(103.0))
    d.offer_failed(o4.offer_id, "error", 104.0)
    assert d.agent("a1").availability == "available"


def test_answer_resets_unanswered_count() -> None:
    d = build(("a1",), autopause_after=2, retry_delay=0)
    o1 = offer_of(d.caller_arrived("q", "c1", 0.0).outputs)
    o2 = offer_of(d.offer_failed(o1.offer_id, "no_answer", 1.0))
    d.offer_answered(o2.offer_id, 2.0)
    d.call_ended("a1", 3.0)
    o3 = offer_of(d.caller_arrived("q", "c2", 4.0).outputs)
    d.offer_failed(o3.offer_id, "no_answer", 5.0)
    assert d.agent("a1").availability == "available"


def test_agent_on_other_call_is_not_offered_unless_queue_allows() -> None:
    d = build(("a1", "a2"))
    d.agent_busy("a1", "out-1", 0.5)
    assert d.agent("a1").occupancy == "in_call"
    assert offered(d.caller_arrived("q", "c1", 1.0).outputs) == ["a2"]
    d2 = build(("a1", "a2"), allow_busy_agents=True)
    d2.agent_busy("a1", "out-1", 0.5)
    assert offered(d2.caller_arrived("q", "c1", 1.0).outputs) == ["a1"]


def test_offer_cancelled_when_agent_takes_another_call_and_caller_reoffered_at_once() -> None:
    d = build(("a1", "a2"), retry_delay=30)
    o = offer_of(d.caller_arrived("q", "c1", 0.0).outputs, "a1")
    out = d.agent_busy("a1", "direct-7", 2.0)
    assert CancelOffer(o.offer_id, "agent_busy") in out
    assert offered(out) == ["a2"]
    # the free agent comes back when its other call ends, and counts as idle from then
    d.agent_free("a1", "direct-7", 9.0)
    assert d.agent("a1").occupancy == "idle" and d.agent("a1").idle_since == 9.0


@pytest.mark.parametrize("change", ["logout", "pause", "unregister"])
def test_unavailable_or_unregistered_agent_loses_its_offer(change: str) -> None:
    d = build(("a1", "a2"))
    o = offer_of(d.caller_arrived("q", "c1", 0.0).outputs, "a1")
    if change == "logout":
        out = d.set_availability("a1", "logged_out", 1.0)
    elif change == "pause":
        out = d.set_availability("a1", "lunch", 1.0)
    else:
        out = d.set_presence("dev-a1", False, 1.0)
    assert [c.offer_id for c in of(CancelOffer, out)] == [o.offer_id]
    assert offered(out) == ["a2"]
    assert d.offer_answered(o.offer_id, 1.5) == [RejectAnswer(o.offer_id)]
    d.set_availability("a2", "meeting", 2.0)
    assert offered(d.caller_arrived("q", "c2", 3.0).outputs) == []


def test_wrapup_queue_time_agent_override_and_exact_accounting() -> None:
    d = Distributor()
    d.update_agent(AgentSettings("a1", ("d1",)), 0.0)
    d.update_agent(AgentSettings("a2", ("d2",), wrapup_time=3.0), 0.0)
    d.update_queue(QueueSettings("q", strategy="linear", members=(Member("a1"), Member("a2")),
                                 wrapup_time=10.0), 0.0)
    for a, dev in (("a1", "d1"), ("a2", "d2")):
        d.set_presence(dev, True, 0.0)
        d.set_availability(a, "available", 0.0)
    o1 = offer_of(d.caller_arrived("q", "c1", 0.0).outputs, "a1")
    o2 = offer_of(d.caller_arrived("q", "c2", 0.0).outputs, "a2")
    d.offer_answered(o1.offer_id, 1.0)
    d.offer_answered(o2.offer_id, 1.0)
    out = d.call_ended("a1", 21.0)
    assert events(out, "agent.wrapup_started")[0].data["deadline"] == 31.0
    d.call_ended("a2", 21.0)
    assert d.agent("a2").wrapup_deadline == 24.0
    out = d.tick(50.0)  # late: both deadlines end exactly, not at 50
    ended = {e.data["agent"]: e.data for e in events(out, "agent.wrapup_ended")}
    assert ended["a1"]["duration"] == 10.0 and ended["a2"]["duration"] == 3.0
    assert d.agent("a1").wrapup_time == 10.0 and d.agent("a1").idle_since == 31.0
    # "ready" ends it early and only the time spent counts
    o3 = offer_of(d.caller_arrived("q", "c3", 60.0).outputs, "a1")
    d.offer_answered(o3.offer_id, 61.0)
    d.call_ended("a1", 70.0)
    assert offered(d.caller_arrived("q", "c4", 71.0).outputs) == ["a2"]
    out = d.wrapup_done("a1", 72.5)
    assert events(out, "agent.wrapup_ended")[0].data == {
        "agent": "a1", "queue": "q", "duration": 2.5, "reason": "ready"}
    snap = d.agent("a1")
    assert snap.wrapup_time == 12.5 and snap.wrapups == 2 and snap.calls == 2
    assert snap.talk_time == 20.0 + 9.0
    assert d.wrapup_done("a1", 73.0) == []  # not in wrap-up: nothing


def test_max_wait_overflows_and_cancels_ringing() -> None:
    d = build(("a1",), max_wait=30, overflow_destination=("voicemail", "1003"), ring_timeout=60)
    o = offer_of(d.caller_arrived("q", "c1", 0.0).outputs)
    out = d.tick(30.0)
    assert CancelOffer(o.offer_id, "max_wait") in out
    assert of(Overflow, out) == [Overflow("c1", ("voicemail", "1003"), "max_wait")]
    assert events(out, "queue.timeout")[0].data["wait"] == 30.0
    assert d.queue("q").timeouts == 1 and d.caller_state("c1") is None
    assert d.offer_answered(o.offer_id, 31.0) == [RejectAnswer(o.offer_id)]


def test_max_len_refuses_with_full_destination() -> None:
    d = build(("a1",), logged_in=False, max_len=2, full_destination="ivr-busy")
    assert d.caller_arrived("q", "c1", 0.0).joined
    assert d.caller_arrived("q", "c2", 0.0).joined
    r = d.caller_arrived("q", "c3", 0.0)
    assert not r.joined and r.overflow == Overflow("c3", "ivr-busy", "full")
    assert r.overflow in r.outputs and events(r.outputs, "queue.full")
    d.caller_left("c1", 1.0)
    assert d.caller_arrived("q", "c3", 2.0).joined


@pytest.mark.parametrize(("rule", "state", "joins"), [
    ("never", "logged_out", True),
    ("logged_out", "logged_out", False),
    ("logged_out", "unregistered", True),
    ("unreachable", "unregistered", False),
    ("unreachable", "paused", True),
    ("unavailable", "paused", False),
    ("unavailable", "busy", True),
])
def test_join_empty_rules(rule: str, state: str, joins: bool) -> None:
    d = build(("a1",), logged_in=False, join_empty=rule, empty_destination="vm")
    if state != "logged_out":
        d.set_availability("a1", "available" if state in ("busy", "unregistered") else "lunch",
                           0.0)
    if state != "unregistered":
        d.set_presence("dev-a1", True, 0.0)
    if state == "busy":
        d.agent_busy("a1", "x", 0.0)
    r = d.caller_arrived("q", "c1", 1.0)
    assert r.joined is joins
    if not joins:
        assert r.overflow == Overflow("c1", "vm", "empty")
        assert events(r.outputs, "queue.exit_empty")


def test_leave_empty_when_last_agent_logs_out() -> None:
    d = build(("a1", "a2"), leave_empty="logged_out", empty_destination="vm")
    d.set_availability("a1", "lunch", 0.0)
    d.set_availability("a2", "lunch", 0.0)
    d.caller_arrived("q", "c1", 1.0)
    d.caller_arrived("q", "c2", 2.0)
    assert of(Overflow, d.set_availability("a1", "logged_out", 3.0)) == []
    out = d.set_availability("a2", "logged_out", 4.0)
    assert of(Overflow, out) == [Overflow("c1", "vm", "empty"), Overflow("c2", "vm", "empty")]
    assert [e.data["wait"] for e in events(out, "queue.exit_empty")] == [3.0, 2.0]
    assert d.queue("q").callers == 0


def test_priority_order_and_positions() -> None:
    d = build(("a1",), logged_in=False)
    d.caller_arrived("q", "low1", 0.0)
    d.caller_arrived("q", "low2", 1.0)
    r = d.caller_arrived("q", "vip", 2.0, priority=5)
    assert r.position == 1
    assert [d.position(c) for c in ("vip", "low1", "low2")] == [1, 2, 3]
    out = d.caller_left("low1", 3.0)
    assert events(out, "queue.abandoned")[0].data == {
        "queue": "q", "caller": "low1", "wait": 3.0, "position": 2}
    assert d.position("low2") == 2
    d.set_presence("dev-a1", True, 4.0)
    assert [o.caller for o in of(Offer, d.set_availability("a1", "available", 4.0))] == ["vip"]
    assert d.position("vip") == 1  # ringing callers keep their place


def test_shared_agent_serves_largest_weighted_wait_across_queues() -> None:
    d = Distributor()
    d.update_agent(AgentSettings("a", ("d",)), 0.0)
    d.update_queue(QueueSettings("sales", strategy="linear", members=(Member("a"),)), 0.0)
    d.update_queue(QueueSettings("vip", strategy="linear", members=(Member("a"),),
                                 priority=3.0), 0.0)
    d.caller_arrived("sales", "s1", 0.0)  # waits 30 at t=30 -> score 30
    d.caller_arrived("vip", "v1", 20.0)  # waits 10 -> score 30, wins the tie on weight
    d.caller_arrived("sales", "s2", 21.0)
    d.set_presence("d", True, 30.0)
    out = d.set_availability("a", "available", 30.0)
    assert [o.caller for o in of(Offer, out)] == ["v1"]
    o = offer_of(out)
    d.offer_answered(o.offer_id, 31.0)
    d.call_ended("a", 32.0)
    assert [o.caller for o in of(Offer, d.tick(32.0))] == []  # offered in call_ended already
    assert d.agent("a").caller is None and d.caller_state("s1") == "offering"


def test_sticky_caller_waits_for_preferred_agent_then_anyone() -> None:
    d = build(("a1", "a2"), sticky_timeout=20)
    d.agent_busy("a2", "x", 0.0)
    r = d.caller_arrived("q", "c1", 1.0, preferred_agent="a2")
    assert offered(r.outputs) == []  # a1 is free but c1 waits for a2
    assert d.next_deadline() == 21.0
    assert offered(d.agent_free("a2", "x", 5.0)) == ["a2"]
    d2 = build(("a1", "a2"), sticky_timeout=20)
    d2.agent_busy("a2", "x", 0.0)
    d2.caller_arrived("q", "c1", 1.0, preferred_agent="a2")
    assert offered(d2.tick(21.0)) == ["a1"]


def test_sticky_zero_tries_preferred_first_then_anyone() -> None:
    d = build(("a1", "a2"))
    o = offer_of(d.caller_arrived("q", "c1", 0.0, preferred_agent="a2").outputs, "a2")
    d.offer_answered(o.offer_id, 1.0)
    assert offered(d.caller_arrived("q", "c2", 2.0, preferred_agent="a2").outputs) == ["a1"]


def test_sticky_caller_goes_before_older_callers_for_its_agent() -> None:
    d = build(("a1",), sticky_timeout=60, logged_in=False)
    d.caller_arrived("q", "old", 0.0)
    d.caller_arrived("q", "mine", 5.0, preferred_agent="a1")
    d.set_presence("dev-a1", True, 10.0)
    assert [o.caller for o in of(Offer, d.set_availability("a1", "available", 10.0))] == [
        "mine"]


def test_required_skills_restrict_every_strategy() -> None:
    members = (Member("a1"), Member("a2", skills={"es": 3}), Member("a3", skills={"es": 8}))
    d = build(("a1", "a2", "a3"), members=members, strategy="linear")
    assert offered(d.caller_arrived("q", "c1", 0.0, skills=["es"]).outputs) == ["a2"]
    assert offered(d.caller_arrived("q", "c2", 0.0, skills={"es": 5}).outputs) == ["a3"]
    r = d.caller_arrived("q", "c3", 0.0, skills=[("es", 1)])
    assert offered(r.outputs) == []  # a1 is free but lacks Spanish
    assert d.position("c3") == 3  # behind the two ringing callers, who keep their place


def test_skill_waiter_does_not_block_others() -> None:
    members = (Member("a1"), Member("a2", skills={"es": 3}))
    d = build(("a1", "a2"), members=members, logged_in=False)
    d.caller_arrived("q", "es-caller", 0.0, skills=["es"])
    d.caller_arrived("q", "plain", 1.0)
    d.set_presence("dev-a1", True, 2.0)
    assert [o.caller for o in of(Offer, d.set_availability("a1", "available", 2.0))] == [
        "plain"]


def test_ring_progressively_widens_tiers_with_wait() -> None:
    members = (Member("a1"), Member("a2", penalty=1), Member("a3", penalty=2))
    d = build(("a1", "a2", "a3"), members=members, strategy="ring_progressively",
              tier_step=10, ring_timeout=60)
    r = d.caller_arrived("q", "c1", 0.0)
    assert offered(r.outputs) == ["a1"]
    assert d.next_deadline() == 10.0
    assert offered(d.tick(10.0)) == ["a2"]  # joins the ringing
    assert offered(d.tick(20.0)) == ["a3"]
    o = offer_of(of(Offer, r.outputs))
    assert len(of(CancelOffer, d.offer_answered(o.offer_id, 21.0))) == 2


def test_penalty_tiers_for_hunt_strategies() -> None:
    members = (Member("a1", penalty=2), Member("a2", penalty=1), Member("a3", penalty=1))
    d = build(("a1", "a2", "a3"), members=members, strategy="linear")
    assert offered(d.caller_arrived("q", "c1", 0.0).outputs) == ["a2"]
    assert offered(d.caller_arrived("q", "c2", 0.0).outputs) == ["a3"]
    assert offered(d.caller_arrived("q", "c3", 0.0).outputs) == ["a1"]


def test_config_change_applies_to_next_offers_and_callers_keep_place() -> None:
    d = build(("a1", "a2"), members=[Member("a1")], logged_in=True)
    d.agent_busy("a1", "x", 0.0)
    d.caller_arrived("q", "c1", 1.0)
    d.caller_arrived("q", "c2", 2.0)
    out = d.update_queue(QueueSettings("q", strategy="round_robin",
                                       members=(Member("a1"), Member("a2"))), 3.0)
    assert [(o.caller, o.agent) for o in of(Offer, out)] == [("c1", "a2")]
    assert d.position("c2") == 2
    with pytest.raises(ValueError, match="unknown strategy"):
        d.update_queue(QueueSettings("q", strategy="nope"), 4.0)
    assert d.queue("q").strategy == "round_robin"


def test_member_removed_is_not_offered_again() -> None:
    d = build(("a1", "a2"))
    d.update_queue(QueueSettings("q", strategy="linear", members=(Member("a2"),)), 0.0)
    assert offered(d.caller_arrived("q", "c1", 1.0).outputs) == ["a2"]
    assert offered(d.caller_arrived("q", "c2", 1.0).outputs) == []


def test_remove_queue_sends_callers_out_and_remove_agent_requeues() -> None:
    d = build(("a1", "a2"), empty_destination="vm")
    o = offer_of(d.caller_arrived("q", "c1", 0.0).outputs, "a1")
    out = d.remove_agent("a1", 1.0)
    assert CancelOffer(o.offer_id, "agent_removed") in out and offered(out) == ["a2"]
    out = d.remove_queue("q", 2.0)
    assert of(Overflow, out) == [Overflow("c1", "vm", "empty")]
    assert d.queues() == [] and d.agent("a2").occupancy == "idle"


def test_status_history_is_bounded_and_records_reasons() -> None:
    d = Distributor(history_limit=3)
    d.update_agent(AgentSettings("a1", ("d1",)), 0.0)
    d.set_presence("d1", True, 1.0)
    d.set_availability("a1", "available", 2.0, reason="feature_code")
    d.set_availability("a1", "lunch", 3.0)
    d.set_availability("a1", "available", 4.0)
    hist = d.agent_history("a1")
    assert len(hist) == 3
    assert [(h.time, h.layer, h.old, h.new, h.reason) for h in hist] == [
        (2.0, "availability", "logged_out", "available", "feature_code"),
        (3.0, "availability", "available", "lunch", "api"),
        (4.0, "availability", "lunch", "available", "api"),
    ]


def test_estimated_wait_and_service_level() -> None:
    d = build(("a1", "a2"), wrapup_time=0, service_level_seconds=10)
    for i, talk in enumerate((60.0, 120.0, 90.0)):
        o = offer_of(d.caller_arrived("q", f"c{i}", 200.0 * i).outputs)
        d.offer_answered(o.offer_id, 200.0 * i + 1)
        d.call_ended(o.agent, 200.0 * i + 1 + talk)
    d.agent_busy("a1", "x", 600.0)
    d.agent_busy("a2", "y", 600.0)
    for i in range(4):
        d.caller_arrived("q", f"w{i}", 600.0)
    # median handle 90 s, two agents working: position 3 -> 3 * 90 / 2
    assert d.estimated_wait("w2") == 135.0
    assert d.queue("q").service_level == 1.0
    d.caller_left("w0", 605.0)  # short abandon: not held against the queue
    d.caller_left("w1", 630.0)
    assert d.queue("q").service_level == 3 / 4


def test_unknown_inputs() -> None:
    d = build(("a1",))
    assert d.offer_answered(999, 1.0) == [RejectAnswer(999)]
    assert d.offer_failed(999, "no_answer", 1.0) == []
    assert d.caller_left("nobody", 1.0) == []
    assert d.call_ended("a1", 1.0) == []
    assert d.agent_busy("not-an-agent", "x", 1.0) == []
    with pytest.raises(ValueError):
        d.offer_failed(1, "bored", 1.0)
    with pytest.raises(KeyError):
        d.caller_arrived("nope", "c", 1.0)
    d.caller_arrived("q", "c", 1.0)
    with pytest.raises(ValueError):
        d.caller_arrived("q", "c", 1.0)


def test_tier_not_yet_open_does_not_hide_the_tried_agent() -> None:
    """Found by the state machine: a0 let c0 ring out and a1's tier is not open yet; the only
    admissible agent is a0, so c0 rings a0 again rather than leaving both idle."""
    d = build(("a0", "a1"), members=[Member("a0"), Member("a1", penalty=1)],
              strategy="ring_progressively", tier_step=10, retry_delay=0)
    d.update_queue(QueueSettings("other", strategy="linear", members=(Member("a0"),)), 0.0)
    o = offer_of(d.caller_arrived("q", "c0", 0.0).outputs, "a0")
    d.caller_arrived("other", "c1", 0.0)
    out = d.offer_failed(o.offer_id, "no_answer", 1.0)
    assert [(x.caller, x.agent) for x in of(Offer, out)] == [("c0", "a0")]


def test_agent_declined_by_one_queue_serves_the_next() -> None:
    @register
    class Nobody(Strategy):
        name = "test_nobody"

        def choose(self, candidates: Sequence[Candidate], ctx: Context) -> list[Candidate]:
            return []

    d = build(("a0",), strategy="test_nobody", logged_in=False)
    d.update_queue(QueueSettings("other", strategy="linear", members=(Member("a0"),)), 0.0)
    d.caller_arrived("q", "c0", 0.0)  # older, but its queue's strategy never takes anyone
    d.caller_arrived("other", "c1", 1.0)
    d.set_presence("dev-a0", True, 2.0)
    out = d.set_availability("a0", "available", 2.0)
    assert [(x.caller, x.agent) for x in of(Offer, out)] == [("c1", "a0")]
