"""The ACD on real calls through the whole engine (fake media, fake clock): trunk callers to
the sales hotline 19002000 wait on music on hold, the distributor's offers ring agents' phones
with the X-ACD headers, the first answer is bridged, hang-ups start wrap-up, and the next
caller goes to whoever the strategy and wrap-up allow."""

from __future__ import annotations

import pytest

from .acdfakes import AgentPhone, bye_to, nothing_left, of_type, queue_call
from .callfakes import CallRig, FakeEndpoint, OutCall, demo_with


def test_sales_call_rings_the_longest_idle_agent_bridges_its_answer_and_wraps_up() -> None:
    rig = CallRig()
    a1 = AgentPhone(rig, "1001", 5071)
    rig.advance(1.0)
    a2 = AgentPhone(rig, "1002", 5072)
    dist = rig.engine.queues.dist
    # configured agents are idle since the config was applied, not since they registered:
    # a tie, which longest_idle breaks by member order (1001 is listed first)
    assert dist.agent("1001").idle_since == dist.agent("1002").idle_since

    c, ep = queue_call(rig)
    assert ep.played() == [("moh",)] and ep.loop
    (ring,) = a1.poll()
    assert a2.poll() == []
    (started,) = rig.events_of("call.started")
    h = ring.header
    assert (h["x-acd-queue"], h["x-acd-hotline"], h["x-acd-agent"]) == (
        "sales", "19002000", "1001")
    assert h["x-acd-call-id"] == started.data["call"]
    assert h["from"].startswith('"+84912345678 (sales)" <sip:+84912345678@acd.local>')
    assert str(ring.invite.to.uri) == "sip:1001@acd.local"

    ring.ring()
    rig.advance(3.0)
    ring.answer()
    assert ring.methods() == ["ACK"]
    leg_ep = ring.endpoint(rig)
    assert ep.bridged_to is leg_ep and leg_ep.bridged_to is ep
    assert ep.playing is None  # the music stopped for the bridge
    (connected,) = rig.events_of("queue.connected")
    assert (connected.data["agent"], connected.data["queue"], connected.data["hold_time"]) == (
        "1001", "sales", 3.0)
    assert (connected.data["hotline"], connected.data["from"]) == ("19002000", "+84912345678")
    (call_connected,) = rig.events_of("call.connected")
    assert (call_connected.data["agent"], call_connected.data["queue"]) == ("1001", "sales")
    assert rig.engine.queues.agent_calls == {started.data["call"]: "1001"}

    rig.advance(60.0)
    ring.bye()
    bye_to(c)
    (ended,) = rig.events_of("call.ended")
    assert (ended.data["queue"], ended.data["agent"], ended.data["hangup_by"]) == (
        "sales", "1001", "callee")
    assert ended.data["talk_time"] == 60.0
    (wrap,) = rig.events_of("agent.wrapup_started")
    assert (wrap.data["agent"], wrap.data["duration"]) == ("1001", 5.0)
    rig.advance(4.75)
    assert rig.events_of("agent.wrapup_ended") == []
    rig.advance(0.25)
    (done,) = rig.events_of("agent.wrapup_ended")
    assert done.data["agent"] == "1001" and done.ts - wrap.ts == 5.0
    assert dist.agent("1001").occupancy == "idle"
    nothing_left(rig)


def test_callers_during_wrapup_go_to_the_other_agent_then_wait_for_the_first_free_one() -> None:
    rig = CallRig()
    a1, a2 = AgentPhone(rig, "1001", 5071), AgentPhone(rig, "1002", 5072)

    c1, _ = queue_call(rig, "0911111111")
    (r1,) = a1.poll()
    r1.answer()
    rig.advance(10.0)
    r1.bye()
    bye_to(c1)  # 1001 wraps up until +5 s

    rig.advance(1.0)
    c2, _ = queue_call(rig, "0922222222")
    assert a1.poll() == []
    (r2,) = a2.poll()
    assert r2.header["from"].startswith('"+84922222222 (sales)"')
    r2.answer()
    rig.advance(1.0)
    r2.bye()
    bye_to(c2)  # 1002 wraps up until +7 s

    rig.advance(1.0)
    c3, ep3 = queue_call(rig, "0933333333")  # both in wrap-up: it waits on music
    assert a1.poll() == [] and a2.poll() == []
    assert ep3.playing == ["moh"]
    rig.advance(1.75)  # 1001's wrap-up ends 2 s after this caller arrived
    assert a1.poll() == [] and a2.poll() == []
    rig.advance(0.25)
    (r3,) = a1.poll()
    assert a2.poll() == []
    assert r3.header["from"].startswith('"+84933333333 (sales)"')
    offered = [e.data["agent"] for e in rig.events_of("queue.offered")]
    assert offered == ["1001", "1002", "1001"]
    ended_at = [e.ts for e in of_type(rig.events, "agent.wrapup_ended")
                if e.data["agent"] == "1001"]
    (r3_offer,) = [e for e in rig.events_of("queue.offered") if e.data["offer_id"] == 3]
    assert ended_at == [r3_offer.ts]
    r3.answer()
    assert ep3.bridged_to is r3.endpoint(rig)
    c3.bye()
    r3.handle()
    assert r3.state == "ended"
    rig.advance(10.0)  # every wrap-up over
    nothing_left(rig)


# -- ring_all (support) -----------------------------------------------------------------------

TWO_SUPPORT_AGENTS = ('members: ["1003"]', 'members: ["1003", "1004"]')


def support_call(rig: CallRig, caller: str = "0912345678") -> tuple[OutCall, FakeEndpoint]:
    """A trunk call to the IVR, '2': the support queue."""
    c, ep = queue_call(rig, caller, number="19001000")
    ep.dtmf("2")
    assert ep.played()[-1] == ("moh",)
    return c, ep


@pytest.mark.parametrize("mobile_rang", [True, False])
def test_ring_all_first_200_is_bridged_the_crossing_200_gets_ack_then_bye(
        mobile_rang: bool) -> None:
    rig = CallRig()
    desk, mobile = AgentPhone(rig, "1003", 5073), AgentPhone(rig, "1003", 5074)
    c, ep = support_call(rig)
    (rd,), (rm,) = desk.poll(), mobile.poll()
    assert rd.header["x-acd-queue"] == rm.header["x-acd-queue"] == "support"
    assert rd.header["x-acd-hotline"] == "19001000"
    assert rd.header["x-acd-call-id"] == rm.header["x-acd-call-id"]
    assert rd.invite.call_id != rm.invite.call_id
    rd.ring()
    if mobile_rang:
        rm.ring()
    rd.answer()
    # the mobile's ringing is stopped: CANCEL once it gave a provisional (RFC 3261 §9.1)
    assert rm.methods() == (["CANCEL"] if mobile_rang else [])
    rm.answer()  # its 200 crossed our CANCEL (or came before any provisional)
    assert rm.methods()[-2:] == ["ACK", "BYE"]
    rm.handle()
    assert rd.methods() == ["ACK"]
    assert ep.bridged_to is rd.endpoint(rig)
    assert rm.endpoint(rig).closed
    assert len(rig.events_of("queue.connected")) == 1
    assert rig.events_of("call.connected")[0].data["agent"] == "1003"

    c.bye()
    rd.handle()
    assert rd.state == "ended"
    nothing_left(rig)


def test_ring_all_two_agents_ring_the_answer_cancels_the_other_which_is_free_again() -> None:
    rig = CallRig(demo_with(TWO_SUPPORT_AGENTS))
    a3, a4 = AgentPhone(rig, "1003", 5073), AgentPhone(rig, "1004", 5074)
    c, ep = support_call(rig)
    (r3,), (r4,) = a3.poll(), a4.poll()
    assert (r3.header["x-acd-agent"], r4.header["x-acd-agent"]) == ("1003", "1004")
    r3.ring()
    r4.ring()
    assert r3.methods() == r4.methods() == []
    r4.answer()
    assert r3.methods() == ["CANCEL"]
    r3.handle()
    assert r3.state == "cancelled"
    assert ep.bridged_to is r4.endpoint(rig)
    (canceled,) = rig.events_of("queue.ring_canceled")
    assert (canceled.data["agent"], canceled.data["reason"]) == ("1003", "answered_elsewhere")
    dist = rig.engine.queues.dist
    assert (dist.agent("1003").occupancy, dist.agent("1004").occupancy) == ("idle", "in_call")
    assert rig.events_of("queue.ring_noanswer") == []  # our CANCEL's 487 is no failure

    # 1003 is free: the next support caller rings it alone
    c2, _ep2 = support_call(rig, "0922222222")
    (r3b,) = a3.poll()
    assert a4.poll() == []
    r3b.answer()
    for call, ring in ((c, r4), (c2, r3b)):
        call.bye()
        ring.handle()
    rig.advance(10.0)
    nothing_left(rig)


# -- abandon ------------------------------------------------------------------------------------


@pytest.mark.parametrize("provisional_first", [True, False])
def test_caller_hanging_up_while_the_agent_rings_cancels_the_leg_and_abandons(
        provisional_first: bool) -> None:
    rig = CallRig()
    a1 = AgentPhone(rig, "1001", 5071)
    rig.advance(2.0)
    c, ep = queue_call(rig)
    (ring,) = a1.poll()
    if provisional_first:
        ring.ring()
    rig.advance(4.0)
    assert [r.status for r in c.bye()] == [200]
    if not provisional_first:
        assert ring.methods() == []  # a CANCEL waits for a provisional (RFC 3261 §9.1)
        ring.ring()
    assert ring.methods() == ["CANCEL"]
    ring.handle()
    assert ring.state == "cancelled"
    (abandoned,) = rig.events_of("queue.abandoned")
    assert (abandoned.data["queue"], abandoned.data["wait"], abandoned.data["position"]) == (
        "sales", 4.0, 1)
    (canceled,) = rig.events_of("queue.ring_canceled")
    assert canceled.data["reason"] == "caller_left"
    (ended,) = rig.events_of("call.ended")
    assert (ended.data["hangup_by"], ended.data["queue"], ended.data["agent"]) == (
        "caller", "sales", None)
    assert ep.closed and ring.endpoint(rig).closed
    assert rig.engine.queues.dist.agent("1001").occupancy == "idle"
    assert rig.events_of("agent.wrapup_started") == []
    nothing_left(rig)


def test_second_caller_hanging_up_reports_its_position() -> None:
    rig = CallRig()  # nobody registered: both wait
    c1, _ = queue_call(rig, "0911111111")
    c2, _ = queue_call(rig, "0922222222")
    rig.advance(6.0)
    c2.bye()
    (abandoned,) = rig.events_of("queue.abandoned")
    assert (abandoned.data["wait"], abandoned.data["position"], abandoned.data["from"]) == (
        6.0, 2, "+84922222222")
    c1.bye()
    nothing_left(rig)


# -- no answer, busy, autopause ----------------------------------------------------------------


def test_unanswered_offer_is_cancelled_at_ring_timeout_and_the_other_agent_offered() -> None:
    rig = CallRig()
    a1, a2 = AgentPhone(rig, "1001", 5071), AgentPhone(rig, "1002", 5072)
    c, _ep = queue_call(rig)
    (r1,) = a1.poll()
    r1.ring()
    rig.advance(14.75)
    assert r1.methods() == [] and rig.events_of("queue.ring_noanswer") == []
    rig.advance(0.25)  # ring_timeout 15 s
    assert r1.methods() == ["CANCEL"]
    (noanswer,) = rig.events_of("queue.ring_noanswer")
    assert (noanswer.data["agent"], noanswer.data["reason"], noanswer.data["ring_time"]) == (
        "1001", "no_answer", 15.0)
    r1.handle()
    assert r1.state == "cancelled"
    assert rig.events_of("queue.ring_rejected") == []  # the 487 to our CANCEL is not a refusal
    rig.advance(1.75)
    assert a2.poll() == []
    rig.advance(0.25)  # retry_delay 2 s
    (r2,) = a2.poll()
    assert a1.poll() == []
    r2.answer()
    assert rig.events_of("queue.connected")[0].data["hold_time"] == 17.0
    assert rig.engine.queues.dist.agent("1001").unanswered == 1
    c.bye()
    r2.handle()
    rig.advance(10.0)
    nothing_left(rig)


@pytest.mark.parametrize("lease", ["ring_timeout", "max_wait"])
def test_answer_arriving_as_the_lease_runs_out_before_its_timer_ran_is_acked_and_hung_up(
        lease: str) -> None:
    rig = CallRig()
    if lease == "max_wait":
        rig.engine.queues.tune("sales", {"max_wait": 10})
    a1 = AgentPhone(rig, "1001", 5071)
    c, ep = queue_call(rig)
    (ring,) = a1.poll()
    ring.ring()
    # the 200 is read before the engine's timer for the deadline ran (both due at once): the
    # distributor expires the offer first and refuses the answer
    rig.clock.advance(15.0 if lease == "ring_timeout" else 10.0)
    ring.answer()
    assert ring.methods() == ["ACK", "BYE"]
    ring.handle()
    assert ring.endpoint(rig).closed
    assert ep.bridged_to is None and rig.events_of("queue.connected") == []
    assert rig.engine.queues.offers == {}
    rig.advance(2.0)
    if lease == "ring_timeout":
        (again,) = a1.poll()  # retried after the 2 s retry delay, on a fresh leg
        assert [r.live for r in a1.rings] == [False, True]
        again.answer()
        assert ep.bridged_to is again.endpoint(rig)
        c.bye()
        again.handle()
    else:
        assert a1.poll() == []
        assert ep.played()[-1] == ("voicemail", "beep")
        c.bye()
    rig.advance(10.0)
    nothing_left(rig)


@pytest.mark.parametrize(("status", "reason"), [
    (486, "busy"), (600, "busy"), (603, "rejected"), (480, "no_answer"), (500, "error")])
def test_refused_offer_goes_to_the_other_agent_after_retry_delay(status: int,
                                                                 reason: str) -> None:
    rig = CallRig()
    a1, a2 = AgentPhone(rig, "1001", 5071), AgentPhone(rig, "1002", 5072)
    c, ep = queue_call(rig)
    (r1,) = a1.poll()
    r1.refuse(status)
    event = "queue.ring_noanswer" if reason == "no_answer" else "queue.ring_rejected"
    (failed,) = rig.events_of(event)
    assert (failed.data["agent"], failed.data["reason"]) == ("1001", reason)
    assert r1.endpoint(rig).closed
    assert ep.playing == ["moh"]  # the caller hears none of it
    counted = reason in ("no_answer", "rejected")
    assert rig.engine.queues.dist.agent("1001").unanswered == (1 if counted else 0)
    rig.advance(2.0)
    (r2,) = a2.poll()
    assert a1.poll() == []
    r2.answer()
    assert ep.bridged_to is r2.endpoint(rig)
    c.bye()
    r2.handle()
    rig.advance(10.0)
    nothing_left(rig)


def test_autopause_after_two_unanswered_offers() -> None:
    rig = CallRig(demo_with(("    retry_delay: 2\n", "    retry_delay: 2\n    autopause_after: 2\n")))
    a1 = AgentPhone(rig, "1001", 5071)  # 1002 is not registered: 1001 is tried again
    c, ep = queue_call(rig)
    (r1,) = a1.poll()
    r1.ring()
    rig.advance(15.0)
    r1.handle()
    assert rig.events_of("agent.autopaused") == []
    rig.advance(2.0)
    (r2,) = a1.poll()
    r2.refuse(603)  # a refusal counts as unanswered too
    (paused,) = rig.events_of("agent.autopaused")
    assert (paused.data["agent"], paused.data["unanswered"], paused.data["queue"]) == (
        "1001", 2, "sales")
    assert rig.engine.queues.dist.agent("1001").availability == "auto_paused"
    rig.advance(30.0)
    assert a1.poll() == []  # paused: not offered any more; the caller keeps waiting
    assert ep.playing is not None and not ep.closed
    rig.engine.queues.set_status("1001", "available")
    (r3,) = a1.poll()
    r3.answer()
    assert ep.bridged_to is r3.endpoint(rig)
    c.bye()
    r3.handle()
    rig.advance(10.0)
    nothing_left(rig)
