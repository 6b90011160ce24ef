"""Agents' state from the calls and registrations of their phones: a direct or outbound call
makes an agent busy for the queues until it ends, presence follows the bindings, and the
feature codes *21 / *22 set the status from the phone itself."""

from __future__ import annotations

import pytest

from .acdfakes import AgentPhone, bye_to, caller_ep, nothing_left, queue_call
from .callfakes import CallRig, OutCall, config_from, demo_with

# -- agents on other calls --------------------------------------------------------------------


def direct_call(rig: CallRig, caller: AgentPhone, callee: AgentPhone) -> OutCall:
    """`caller` dials `callee`'s extension; the callee answers; the caller ACKs."""
    c = caller.dial(callee.user)
    (ring,) = callee.poll()
    assert ring.header["x-acd-queue"] == ""  # not a queue offer
    ring.answer()
    c.read()
    assert c.final is not None and c.final.status == 200, c.statuses
    c.ack()
    return c


@pytest.mark.parametrize("agent_dials", [False, True])
def test_agent_on_a_direct_call_is_not_offered_until_it_ends(agent_dials: bool) -> None:
    rig = CallRig()
    a1, a3 = AgentPhone(rig, "1001", 5071), AgentPhone(rig, "1003", 5073)
    direct = direct_call(rig, a1, a3) if agent_dials else direct_call(rig, a3, a1)
    assert rig.engine.queues.dist.agent("1001").occupancy == "in_call"

    c, ep = queue_call(rig)
    rig.advance(30.0)
    assert a1.poll() == []  # busy: never offered meanwhile
    assert ep.playing is not None and rig.events_of("queue.offered") == []

    direct.bye()  # the caller of the direct call hangs up
    rig.advance(0.25)
    a1.handle_all()
    a3.handle_all()
    (offer,) = [r for r in a1.live() if r.header["x-acd-queue"] == "sales"]
    offer.answer()
    assert ep.bridged_to is offer.endpoint(rig)
    c.bye()
    offer.handle()
    rig.advance(10.0)
    nothing_left(rig)


def test_agent_ringing_for_a_direct_call_is_busy_too() -> None:
    rig = CallRig()
    a1, a3 = AgentPhone(rig, "1001", 5071), AgentPhone(rig, "1003", 5073)
    direct = a3.dial("1001")
    (ring,) = a1.poll()
    ring.ring()
    c, _ep = queue_call(rig)
    assert a1.poll() == []
    direct.cancel()
    ring.handle()
    assert ring.state == "cancelled"
    (offer,) = a1.poll()
    assert offer.header["x-acd-queue"] == "sales"
    c.bye()
    offer.handle()
    nothing_left(rig)


def test_agent_on_an_outbound_call_is_busy_until_it_ends() -> None:
    rig = CallRig()
    a1 = AgentPhone(rig, "1001", 5071)
    out = a1.dial("0987654321")  # out through the demo trunk
    assert out.final is None  # still trying the trunk
    assert rig.engine.queues.dist.agent("1001").occupancy == "in_call"
    c, _ep = queue_call(rig)
    assert a1.poll() == []
    out.cancel()
    assert out.final is not None and out.final.status == 487
    out.ack_failure()
    (offer,) = a1.poll()
    assert offer.header["x-acd-queue"] == "sales"
    c.bye()
    offer.handle()
    nothing_left(rig)


def test_after_a_direct_call_the_other_agent_is_the_longest_idle() -> None:
    rig = CallRig()
    a1, a2, a3 = (AgentPhone(rig, u, p) for u, p in (("1001", 5071), ("1002", 5072),
                                                      ("1003", 5073)))
    direct = direct_call(rig, a3, a1)
    rig.advance(20.0)
    direct.bye()
    a1.handle_all()
    dist = rig.engine.queues.dist
    assert dist.agent("1001").idle_since > dist.agent("1002").idle_since
    # 1001 comes first in the member list: only longest_idle picks 1002 here
    c, _ep = queue_call(rig)
    assert a1.poll() == []
    (offer,) = a2.poll()
    offer.answer()
    c.bye()
    offer.handle()
    rig.advance(10.0)
    nothing_left(rig)


# -- presence ---------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["expires", "unregisters"])
def test_agent_without_a_binding_is_not_offered_until_it_registers_again(how: str) -> None:
    rig = CallRig()
    a1 = AgentPhone(rig, "1001", 5071, register=False)
    a1.register(expires=60)
    if how == "expires":
        rig.advance(61.0)
        rig.tick()  # the once-a-second housekeeping expires bindings
    else:
        a1.unregister()
    assert rig.engine.queues.dist.agent("1001").registered == ()
    assert rig.events_of("registration.expired" if how == "expires" else "registration.removed")

    c, ep = queue_call(rig)
    rig.advance(30.0)
    assert a1.poll() == [] and rig.events_of("queue.offered") == []
    a1.register()
    (offer,) = a1.poll()
    offer.answer()
    assert ep.bridged_to is offer.endpoint(rig)
    c.bye()
    offer.handle()
    rig.advance(10.0)
    nothing_left(rig)


def test_last_binding_going_away_while_ringing_cancels_and_offers_the_other_agent() -> None:
    rig = CallRig()
    a1, a2 = AgentPhone(rig, "1001", 5071), AgentPhone(rig, "1002", 5072)
    c, _ep = queue_call(rig)
    (r1,) = a1.poll()
    r1.ring()
    a1.unregister()
    assert r1.methods() == ["CANCEL"]
    r1.handle()
    (canceled,) = rig.events_of("queue.ring_canceled")
    assert (canceled.data["agent"], canceled.data["reason"]) == ("1001", "agent_unreachable")
    (r2,) = a2.poll()  # not the caller's fault: no retry delay
    r2.answer()
    c.bye()
    r2.handle()
    rig.advance(10.0)
    nothing_left(rig)


def test_one_of_two_bindings_going_away_keeps_the_agent_offerable() -> None:
    rig = CallRig()
    desk, mobile = AgentPhone(rig, "1001", 5071), AgentPhone(rig, "1001", 5081)
    mobile.unregister()
    assert rig.engine.queues.dist.agent("1001").registered == ("1001",)
    c, _ep = queue_call(rig)
    (offer,) = desk.poll()
    assert mobile.poll() == []  # its contact is gone: only the desk rings
    offer.answer()
    c.bye()
    offer.handle()
    rig.advance(10.0)
    nothing_left(rig)


# -- feature codes ----------------------------------------------------------------------------


def dial_code(rig: CallRig, phone: AgentPhone, code: str, status: str) -> None:
    """Dial a feature code: answered, the confirmation, then our BYE."""
    c = phone.dial(code)
    assert c.statuses[-1] == 200, c.statuses
    c.ack()
    ep = caller_ep(rig, c)
    assert ep.played() == [(f"status_{status}",)]
    ep.finish_prompt()
    bye_to(c)


def test_star_22_puts_the_agent_on_break_and_star_21_makes_it_available_again() -> None:
    rig = CallRig()
    a1 = AgentPhone(rig, "1001", 5071)
    dial_code(rig, a1, "*22", "break")
    snap = rig.engine.queues.dist.agent("1001")
    assert (snap.availability, snap.occupancy) == ("break", "idle")
    (changed,) = [e for e in rig.events_of("agent.status_changed")
                  if e.data["layer"] == "availability" and e.data["new"] == "break"]
    assert changed.data["reason"] == "feature code *22"

    c, ep = queue_call(rig)
    rig.advance(30.0)
    assert a1.poll() == [] and rig.events_of("queue.offered") == []

    code = a1.dial("*21")
    assert code.statuses[-1] == 200
    code.ack()
    assert rig.engine.queues.dist.agent("1001").availability == "available"
    # still on the confirmation call: the queue waits until it is over
    assert a1.poll() == []
    code_ep = caller_ep(rig, code)
    assert code_ep.played() == [("status_available",)]
    code_ep.finish_prompt()
    bye_to(code)
    (offer,) = a1.poll()
    assert offer.header["x-acd-queue"] == "sales"
    offer.answer()
    assert ep.bridged_to is offer.endpoint(rig)
    c.bye()
    offer.handle()
    rig.advance(10.0)
    nothing_left(rig)


def test_feature_code_from_an_account_that_is_no_agent_is_forbidden() -> None:
    rig = CallRig(demo_with(('  "1004": {name: Agent 1004, devices: ["1004"]}\n', "")))
    p = AgentPhone(rig, "1004", 5074)
    c = p.dial("*22")
    assert c.statuses[-1] == 403, c.statuses
    c.ack_failure()
    assert all(e.data["agent"] != "1004" for e in rig.events_of("agent.status_changed"))
    assert "1004" not in rig.engine.queues.dist.agents()
    nothing_left(rig)


def test_agent_whose_device_a_reload_moved_during_a_direct_call_is_free_after_it() -> None:
    rig = CallRig()
    a1, desk = AgentPhone(rig, "1001", 5071), AgentPhone(rig, "1003", 5073)
    new_desk = AgentPhone(rig, "1004", 5074)
    direct = direct_call(rig, a1, desk)
    assert rig.engine.queues.dist.agent("1003").occupancy == "in_call"
    # agent 1003 moves to the phone registered as 1004 while still on the direct call
    rig.engine.apply_config(config_from(demo_with(
        ('  "1003": {name: Agent 1003, devices: ["1003"]}\n',
         '  "1003": {name: Agent 1003, devices: ["1004"]}\n'),
        ('  "1004": {name: Agent 1004, devices: ["1004"]}\n', ""))))
    direct.bye()
    desk.handle_all()
    snap = rig.engine.queues.dist.agent("1003")
    assert (snap.occupancy, snap.external_calls) == ("idle", 0)
    c, ep = queue_call(rig, number="19001000")
    ep.dtmf("2")  # support: agent 1003, now on the 1004 phone
    (offer,) = new_desk.poll()
    assert offer.header["x-acd-agent"] == "1003"
    offer.answer()
    c.bye()
    offer.handle()
    rig.advance(10.0)
    nothing_left(rig)
