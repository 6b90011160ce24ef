"""Callers leaving a queue unserved (max_wait, a full queue, an empty one) go to the configured
destination on the same answered call; callers who wait hear their position and estimated
wait every announce interval, then the music again."""

from __future__ import annotations

import pytest

from .acdfakes import AgentPhone, bye_to, nothing_left, queue_call
from .callfakes import CallRig, demo_with

# -- overflow ---------------------------------------------------------------------------------


def test_max_wait_cancels_the_ringing_agent_and_sends_the_caller_to_voicemail() -> None:
    rig = CallRig()
    a1 = AgentPhone(rig, "1001", 5071)  # rings for every offer, never answers
    c, ep = queue_call(rig)
    for _ in range(119):
        rig.advance(1.0)
        for r in a1.poll():
            r.ring()
        a1.handle_all()
    assert rig.events_of("queue.timeout") == []
    (ringing,) = a1.live()  # offered again at 119 s (every 15 s ring + 2 s retry delay)
    rig.advance(1.0)  # max_wait 120 s
    assert ringing.methods() == ["CANCEL"]
    ringing.handle()
    (timeout,) = rig.events_of("queue.timeout")
    assert (timeout.data["queue"], timeout.data["wait"], timeout.data["position"]) == (
        "sales", 120.0, 1)
    assert rig.events_of("queue.ring_canceled")[-1].data["reason"] == "max_wait"
    assert ep.played()[-1] == ("voicemail", "beep")
    ep.finish_prompt()
    (rec,) = ep.recorders
    assert rec.path.parent.name == "sales"
    rig.advance(30.0)
    assert a1.poll() == []  # out of the queue: never offered again
    c.bye()
    (vm,) = rig.events_of("voicemail.recorded")
    assert vm.data["mailbox"] == "sales"
    (ended,) = rig.events_of("call.ended")
    assert (ended.data["queue"], ended.data["agent"]) == ("sales", None)
    assert rig.events_of("queue.abandoned") == []  # it timed out; it did not abandon
    nothing_left(rig)


FULL_TO_PLAY = "{play: closed}"
FULL_TO_SUPPORT = "{queue: support}"


@pytest.mark.parametrize("on_full", [FULL_TO_PLAY, FULL_TO_SUPPORT])
def test_caller_finding_the_queue_full_goes_to_on_full(on_full: str) -> None:
    rig = CallRig(demo_with(("    max_wait: 120\n",
                             f"    max_wait: 120\n    max_len: 1\n    on_full: {on_full}\n")))
    support = AgentPhone(rig, "1003", 5073)
    c1, ep1 = queue_call(rig, "0911111111")  # nobody of sales registered: it waits
    c2, ep2 = queue_call(rig, "0922222222")
    (full,) = rig.events_of("queue.full")
    assert full.data["queue"] == "sales"
    assert ep1.played() == [("moh",)]
    if on_full == FULL_TO_PLAY:
        assert ep2.played() == [("closed",)]
        ep2.finish_prompt()
        bye_to(c2)
        assert rig.events_of("call.ended")[0].data["from"] == "+84922222222"
    else:
        assert ep2.played() == [("moh",)]
        (ring,) = support.poll()
        assert (ring.header["x-acd-queue"], ring.header["x-acd-hotline"]) == (
            "support", "19002000")
        ring.answer()
        assert ep2.bridged_to is ring.endpoint(rig)
        c2.bye()
        ring.handle()
    entered = [(e.data["queue"], e.data["from"]) for e in rig.events_of("queue.entered")]
    assert entered == [("sales", "+84911111111")] + (
        [("support", "+84922222222")] if on_full == FULL_TO_SUPPORT else [])
    c1.bye()
    rig.advance(10.0)
    nothing_left(rig)


def test_join_empty_sends_the_caller_to_on_empty_at_once() -> None:
    rig = CallRig(demo_with(("    max_wait: 120\n", "    max_wait: 120\n    join_empty: "
                             "unreachable\n    on_empty: {play: not_available}\n")))
    c, ep = queue_call(rig)  # nobody of sales registered
    (empty,) = rig.events_of("queue.exit_empty")
    assert empty.data["queue"] == "sales"
    assert rig.events_of("queue.entered") == []
    assert ep.played() == [("not_available",)]
    ep.finish_prompt()
    bye_to(c)
    nothing_left(rig)


# -- announcements ------------------------------------------------------------------------


def test_after_30_s_the_caller_hears_its_position_then_music_again() -> None:
    rig = CallRig()
    c, ep = queue_call(rig)
    rig.advance(29.75)
    assert ep.played() == [("moh",)]
    rig.advance(0.25)
    # no handle time sampled yet: no estimated wait to tell
    assert ep.played() == [("moh",), ("position_is", "n1", "in_queue")]
    assert not ep.loop
    ep.finish_prompt()
    assert ep.played()[-1] == ("moh",) and ep.loop
    rig.advance(30.0)
    assert ep.played()[-1] == ("position_is", "n1", "in_queue")
    c.bye()
    nothing_left(rig)


def test_second_caller_hears_position_2_and_moves_up_when_the_first_leaves() -> None:
    rig = CallRig()
    c1, _ep1 = queue_call(rig, "0911111111")
    rig.advance(10.0)
    c2, ep2 = queue_call(rig, "0922222222")
    rig.advance(30.0)
    assert ep2.played()[-1] == ("position_is", "n2", "in_queue")
    ep2.finish_prompt()
    c1.bye()
    rig.advance(30.0)
    assert ep2.played()[-1] == ("position_is", "n1", "in_queue")
    c2.bye()
    nothing_left(rig)


def test_estimated_wait_follows_the_handle_time_and_stops_once_connected() -> None:
    rig = CallRig()
    a1 = AgentPhone(rig, "1001", 5071)  # the only sales member available
    ca, _ = queue_call(rig, "0911111111")
    (ra,) = a1.poll()
    ra.answer()
    rig.advance(100.0)
    ra.bye()
    bye_to(ca)
    rig.advance(5.0)  # wrap-up over: one handle time sample, 100 + 5 s
    assert rig.engine.queues.dist.queue("sales").median_handle_time == 105.0

    cb, _ = queue_call(rig, "0922222222")
    (rb,) = a1.poll()
    rb.answer()  # 1001 is busy: the next caller waits
    cc, epc = queue_call(rig, "0933333333")
    rig.advance(30.0)
    # position 1 x 105 s / 1 agent, rounded up to the minute: 2 minutes
    assert epc.played()[-1] == ("position_is", "n1", "in_queue", "wait_is", "n2", "minutes")
    epc.finish_prompt()

    cb.bye()
    rb.handle()
    rig.advance(5.0)  # 1001's wrap-up: then it is offered the waiting caller
    (rc,) = a1.poll()
    rc.answer()
    assert epc.bridged_to is rc.endpoint(rig)
    played = len(epc.played())
    rig.advance(60.0)
    assert len(epc.played()) == played  # connected: no more announcements
    cc.bye()
    rc.handle()
    rig.advance(10.0)
    nothing_left(rig)
