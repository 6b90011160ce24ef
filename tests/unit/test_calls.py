"""Calls through the whole engine with fake media and a fake clock: the demo trunk's hotlines
(IVR, queue, schedule, blacklists), extension calls forked to every contact, bridging,
hang-up propagation, CANCEL, re-INVITE hold, late offers and what call.ended reports. After
every flow nothing of the call survives."""

from __future__ import annotations

import pytest

from media.g711 import Codec
from sip.message import Request

from .callfakes import (
    OFFICE_OPEN,
    CallRig,
    FakeEndpoint,
    OutCall,
    Phone,
    sdp,
    sdp_fields,
    wall_at,
)

TRUNK_RTP = ("127.0.0.1", 32000)


def nothing_left(rig: CallRig) -> None:
    """No call, session, endpoint or IVR state; once timers ran out, no transaction."""
    assert rig.call_state() == {}
    rig.advance(40.0)
    assert rig.engine.layer.clients == {}
    assert rig.engine.layer.servers == {}
    assert rig.call_state() == {}


def ended(rig: CallRig) -> dict[str, object]:
    (event,) = rig.events_of("call.ended")
    return event.data


def bye_to(c: OutCall) -> Request:
    """The BYE the engine sent to the caller; answered 200 as a phone would."""
    c.read()
    byes = [r for r in c.received if r.method == "BYE"]
    assert len(byes) == 1, byes
    c.answer_request(byes[0])
    return byes[0]


def ivr_call(rig: CallRig, number: str = "19001000", caller: str = "0912345678"
             ) -> tuple[OutCall, FakeEndpoint]:
    """A trunk call to an IVR hotline, answered and ACKed; the caller's endpoint."""
    c = Phone.trunk(rig, caller).call(number)
    assert c.statuses == [100, 200], c.statuses
    c.ack()
    return c, rig.media.allocated[0]


def agent(rig: CallRig, user: str = "1003", port: int = 5071, rtp: int = 31000) -> Phone:
    p = Phone(rig, user, port=port, rtp_port=rtp)
    p.register()
    return p


# -- the IVR hotline ----------------------------------------------------------------------------


def test_trunk_call_to_the_ivr_hotline_is_answered_pcmu_with_telephone_event() -> None:
    rig = CallRig()
    # PCMA offered first: our preference (PCMU, PCMA) decides; the caller's event type stays
    c = Phone.trunk(rig).call("19001000", body=sdp(port=32000, pts=(8, 0, 96), te_pt=96))
    assert c.statuses == [100, 200]
    ok = c.final
    assert ok is not None and ok.headers.get("content-type") == "application/sdp"
    answer = sdp_fields(ok.body)
    caller_ep = rig.media.allocated[0]
    assert answer["port"] == caller_ep.local_port
    assert answer["formats"] == [0, 96]
    assert answer["rtpmap"] == {0: "PCMU/8000", 96: "telephone-event/8000"}
    assert answer["address"] == "127.0.0.1"
    cfg = caller_ep.configured
    assert cfg is not None
    assert (cfg.remote, cfg.codec, cfg.pt, cfg.te_pt, cfg.direction) == (
        TRUNK_RTP, Codec.PCMU, 0, 96, "sendrecv")
    assert caller_ep.played() == [("welcome",)]
    started = rig.events_of("call.started")[0].data
    assert (started["direction"], started["from"], started["to"], started["trunk"]) == (
        "inbound", "+84912345678", "19001000", "demo-trunk")
    assert [e.data["by"] for e in rig.events_of("call.answered")] == ["engine"]
    assert rig.events_of("call.ended") == []


@pytest.mark.parametrize("via", ["rfc4733", "info"])
def test_dtmf_9_stops_the_prompt_and_rings_every_contact_of_1003(via: str) -> None:
    rig = CallRig()
    desk = agent(rig, port=5071, rtp=31000)
    mobile = agent(rig, port=5072, rtp=31100)
    c, caller_ep = ivr_call(rig)
    assert desk.incoming() == [] and mobile.incoming() == []
    if via == "info":
        assert [r.status for r in c.info("9")] == [200]
    else:
        caller_ep.dtmf("9")
    assert caller_ep.playing is None and caller_ep.count("stop_play") >= 1
    (to_desk,), (to_mobile,) = desk.incoming(), mobile.incoming()
    for leg, phone in ((to_desk, desk), (to_mobile, mobile)):
        inv = leg.invite
        assert str(inv.uri) == f"sip:1003@127.0.0.1:{phone.addr[2]}"
        assert str(inv.to.uri) == "sip:1003@acd.local"
        assert inv.from_.uri is not None and "+84912345678" in str(inv.from_.uri)
        assert sdp_fields(inv.body)["formats"] == [0, 8, 101]
    assert to_desk.invite.call_id != to_mobile.invite.call_id
    assert len(rig.media.open_endpoints) == 3  # the caller's and one per ringing contact


def test_first_contact_to_answer_is_bridged_and_the_other_is_cancelled() -> None:
    rig = CallRig()
    desk, mobile = agent(rig, port=5071, rtp=31000), agent(rig, port=5072, rtp=31100)
    c, caller_ep = ivr_call(rig)
    caller_ep.dtmf("9")
    (to_desk,), (to_mobile,) = desk.incoming(), mobile.incoming()
    to_desk.ring()
    to_mobile.ring()
    rig.advance(3.0)
    to_mobile.answer()
    mobile_ep = next(ep for ep in rig.media.allocated
                     if ep.configured is not None and ep.configured.remote == ("127.0.0.1", 31100))
    assert caller_ep.bridged_to is mobile_ep
    assert mobile_ep.configured is not None and mobile_ep.configured.codec is Codec.PCMU
    (connected,) = rig.events_of("call.connected")
    assert connected.data["party"] == "1003"
    # the mobile got its ACK; the desk, still ringing, a CANCEL
    assert [s.request.method for s in mobile.inbox()] == ["ACK"]
    desk_sent = desk.inbox()
    assert [s.request.method for s in desk_sent] == ["CANCEL"]
    to_desk.handle(desk_sent)
    assert [s.msg.method for s in desk.inbox() if isinstance(s.msg, Request)] == ["ACK"]
    assert len(rig.media.open_endpoints) == 2  # the desk's endpoint is closed
    rig.advance(10.0)
    c.bye()
    to_mobile.handle(mobile.inbox())
    data = ended(rig)
    assert (data["hangup_by"], data["connected_to"]) == ("caller", "1003")
    assert data["ring_time"] == 3.0 and data["talk_time"] == 10.0 and data["duration"] == 13.0
    nothing_left(rig)


def test_caller_bye_hangs_up_the_agent_and_closes_both_endpoints() -> None:
    rig = CallRig()
    a = agent(rig)
    c, caller_ep = ivr_call(rig)
    caller_ep.dtmf("9")
    (leg,) = a.incoming()
    leg.answer()
    callee_ep = rig.media.allocated[1]
    assert caller_ep.bridged_to is callee_ep
    assert [r.status for r in c.bye()] == [200]
    sent = a.inbox()
    byes = leg.requests(sent, "BYE")
    assert [b.method for b in byes] == ["BYE"]
    assert byes[0].to.tag == leg.tag
    leg.handle(sent)
    assert caller_ep.closed and callee_ep.closed
    assert caller_ep.bridged_to is None
    assert len(rig.events_of("call.ended")) == 1
    assert ended(rig)["hangup_by"] == "caller"
    nothing_left(rig)
    assert len(rig.events_of("call.ended")) == 1  # timers running out publish nothing more


def test_agent_bye_hangs_up_the_caller() -> None:
    rig = CallRig()
    a = agent(rig)
    c, caller_ep = ivr_call(rig)
    caller_ep.dtmf("9")
    (leg,) = a.incoming()
    leg.answer()
    rig.advance(7.0)
    leg.bye()
    assert [s.response.status for s in a.inbox() if not isinstance(s.msg, Request)] == [200]
    bye = bye_to(c)
    assert bye.to.tag == c.tag and bye.from_.tag == c.to_tag
    data = ended(rig)
    assert (data["hangup_by"], data["reason"]) == ("callee", "callee hung up")
    assert data["talk_time"] == 7.0
    assert all(ep.closed for ep in rig.media.allocated)
    nothing_left(rig)


def test_caller_hanging_up_while_the_agent_rings_cancels_the_agent() -> None:
    rig = CallRig()
    a = agent(rig)
    c, caller_ep = ivr_call(rig)
    caller_ep.dtmf("9")
    (leg,) = a.incoming()
    leg.ring()
    c.bye()
    sent = a.inbox()
    assert [m.method for m in leg.requests(sent, "CANCEL")] == ["CANCEL"]
    leg.handle(sent)
    assert ended(rig)["connected_to"] is None
    nothing_left(rig)


def test_ringback_plays_to_the_answered_caller_while_the_agent_rings() -> None:
    rig = CallRig()
    a = agent(rig)
    _c, caller_ep = ivr_call(rig)
    caller_ep.dtmf("9")
    (leg,) = a.incoming()
    leg.ring()
    assert caller_ep.playing == ["ringback"] and caller_ep.loop
    leg.answer()
    assert caller_ep.playing is None  # the bridge takes over
    assert caller_ep.bridged_to is rig.media.allocated[1]


def test_dtmf_1_puts_the_caller_in_the_sales_queue_on_music_until_they_hang_up() -> None:
    rig = CallRig()
    c, caller_ep = ivr_call(rig)
    caller_ep.dtmf("1")
    # nobody of sales is registered: the caller waits on music on hold (join_empty: never)
    assert caller_ep.played() == [("welcome",), ("moh",)]
    (entered,) = rig.events_of("queue.entered")
    assert entered.data["queue"] == "sales" and entered.data["position"] == 1
    assert c.bye()[0].status == 200
    data = ended(rig)
    assert (data["reason"], data["hangup_by"], data["queue"]) == (
        "caller hung up", "caller", "sales")
    (abandoned,) = rig.events_of("queue.abandoned")
    assert abandoned.data["queue"] == "sales"
    entered_nodes = [e.data["node"] for e in rig.events_of("ivr.entered")]
    assert entered_nodes == ["welcome", "sales"]
    nothing_left(rig)


@pytest.mark.parametrize(("digit", "reason", "destination"), [
    ("1", "queue", "sales"), ("2", "queue", "support"), ("9", "extension", "1003")])
def test_leaving_the_ivr_publishes_ivr_exit_with_the_destination(
        digit: str, reason: str, destination: str) -> None:
    rig = CallRig()
    _c, caller_ep = ivr_call(rig)
    caller_ep.dtmf(digit)
    (exit_,) = rig.events_of("ivr.exit")
    assert (exit_.data["tree"], exit_.data["reason"], exit_.data["destination"]) == (
        "main", reason, destination)
    assert rig.engine.calls.ivr._prompt_token == {}


def test_ivr_hangup_node_publishes_ivr_exit_before_call_ended() -> None:
    rig = CallRig()
    c, caller_ep = ivr_call(rig)
    for _ in range(3):
        caller_ep.dtmf("5")
        if caller_ep.played()[-1] == ("invalid",):
            caller_ep.finish_prompt()
    caller_ep.finish_prompt()  # goodbye
    bye_to(c)
    types = [e.type for e in rig.events]
    assert types.index("ivr.exit") < types.index("call.ended")
    assert rig.events_of("ivr.exit")[0].data["reason"] == "hangup"


def test_two_menu_timeouts_go_to_the_sales_queue() -> None:
    rig = CallRig()
    c, caller_ep = ivr_call(rig)
    caller_ep.finish_prompt()
    rig.advance(4.9)
    assert caller_ep.played() == [("welcome",)]
    rig.advance(0.1)  # the menu's 5 s timeout: the prompt again
    assert caller_ep.played() == [("welcome",), ("welcome",)]
    caller_ep.finish_prompt()
    rig.advance(5.0)  # second timeout: on_timeout sales
    assert caller_ep.played()[-1] == ("moh",)
    assert [e.data["queue"] for e in rig.events_of("queue.entered")] == ["sales"]
    assert c.bye()[0].status == 200
    assert ended(rig)["reason"] == "caller hung up"
    nothing_left(rig)


def test_invalid_digits_three_times_say_goodbye() -> None:
    rig = CallRig()
    c, caller_ep = ivr_call(rig)
    for _ in range(2):
        caller_ep.dtmf("5")
        assert caller_ep.played()[-1] == ("invalid",)
        caller_ep.finish_prompt()
        assert caller_ep.played()[-1] == ("welcome",)
    caller_ep.dtmf("5")
    assert caller_ep.played()[-1] == ("goodbye",)
    caller_ep.finish_prompt()
    bye_to(c)
    nothing_left(rig)


def test_caller_hanging_up_in_the_ivr_leaves_no_timer_behind() -> None:
    rig = CallRig()
    c, caller_ep = ivr_call(rig)
    caller_ep.finish_prompt()  # the menu now waits 5 s for a digit
    c.bye()
    assert ended(rig)["reason"] == "caller hung up"
    assert caller_ep.closed
    rig.advance(30.0)  # no menu timeout fires on the ended call
    assert caller_ep.played() == [("welcome",)]
    nothing_left(rig)


# -- other hotlines ---------------------------------------------------------------------------


def test_queue_hotline_19002000_waits_in_sales_and_overflows_to_voicemail_at_max_wait(
) -> None:
    rig = CallRig()
    c = Phone.trunk(rig).call("19002000")
    assert c.statuses == [100, 200]
    c.ack()
    ep = rig.media.allocated[0]
    assert ep.played() == [("moh",)]
    rig.advance(119.0)
    assert rig.events_of("queue.timeout") == []
    rig.advance(1.5)  # sales: max_wait 120 s -> voicemail sales
    assert [e.data["queue"] for e in rig.events_of("queue.timeout")] == ["sales"]
    assert ep.played()[-1] == ("voicemail", "beep")
    ep.finish_prompt()
    assert ep.count("record") == 1
    assert c.bye()[0].status == 200
    (vm,) = rig.events_of("voicemail.recorded")
    assert vm.data["mailbox"] == "sales"
    nothing_left(rig)


@pytest.mark.parametrize("caller", ["+84999999999", "0999999999", "+84900000123"])
def test_blacklisted_caller_is_declined_603(caller: str) -> None:
    rig = CallRig()
    c = Phone.trunk(rig, caller).call("19001000")
    assert c.statuses == [100, 603]
    c.ack_failure()
    assert rig.media.allocated == [] or all(ep.played() == [] for ep in rig.media.allocated)
    data = ended(rig)
    assert (data["status"], data["answered"]) == (603, False)
    nothing_left(rig)


OUT_OF_HOURS = wall_at("2026-03-04T20:00:00+07:00")  # a Wednesday evening in Hanoi
HOLIDAY = wall_at("2026-09-02T10:00:00+07:00")  # a Wednesday, but a holiday


@pytest.mark.parametrize("wall", [OUT_OF_HOURS, HOLIDAY])
def test_office_hotline_out_of_hours_plays_closed_and_hangs_up(wall: float) -> None:
    rig = CallRig(wall=wall)
    c = Phone.trunk(rig).call("19003000")
    assert c.statuses == [100, 200]
    c.ack()
    ep = rig.media.allocated[0]
    assert ep.played() == [("closed",)]
    ep.finish_prompt()
    bye_to(c)
    nothing_left(rig)


def test_office_hotline_in_hours_runs_the_ivr() -> None:
    rig = CallRig(wall=OFFICE_OPEN)
    Phone.trunk(rig).call("19003000").ack()
    assert rig.media.allocated[0].played() == [("welcome",)]


def test_office_hotline_follows_the_engine_clock_across_closing_time() -> None:
    rig = CallRig(wall=wall_at("2026-03-04T17:29:00+07:00"))
    Phone.trunk(rig).call("19003000").ack()
    rig.advance(120.0)  # 17:31: closed now
    Phone.trunk(rig, "0912000111").call("19003000").ack()
    assert [ep.played()[0] for ep in rig.media.allocated] == [("welcome",), ("closed",)]


@pytest.mark.parametrize("wall", [OFFICE_OPEN, OUT_OF_HOURS])
def test_office_hotline_blacklist_prefix_plays_blocked(wall: float) -> None:
    rig = CallRig(wall=wall)
    c = Phone.trunk(rig, "02412345678").call("19003000")  # +8424...: Hanoi landlines
    assert c.statuses == [100, 200]
    c.ack()
    ep = rig.media.allocated[0]
    assert ep.played() == [("blocked",)]
    ep.finish_prompt()
    bye_to(c)
    nothing_left(rig)


def test_the_blacklist_prefix_of_one_hotline_does_not_apply_to_another() -> None:
    rig = CallRig()
    Phone.trunk(rig, "02412345678").call("19001000").ack()
    assert rig.media.allocated[0].played() == [("welcome",)]


def test_offer_with_only_unsupported_codecs_is_488() -> None:
    rig = CallRig()
    c = Phone.trunk(rig).call("19001000", body=sdp(pts=(18, 9)))
    assert c.statuses == [100, 488]
    c.ack_failure()
    assert ended(rig)["status"] == 488
    nothing_left(rig)


def test_unparsable_offer_is_488() -> None:
    rig = CallRig()
    c = Phone.trunk(rig).call("19001000", body=b"this is not sdp\r\n")
    assert c.statuses == [100, 488]
    c.ack_failure()
    nothing_left(rig)


def test_late_offer_invite_gets_our_offer_and_the_ack_answer_configures_media() -> None:
    rig = CallRig()
    c = Phone.trunk(rig).call("19001000", body=b"")
    assert c.statuses == [100, 200]
    ok = c.final
    assert ok is not None
    offer = sdp_fields(ok.body)
    assert offer["formats"] == [0, 8, 101]
    ep = rig.media.allocated[0]
    c.ack(body=sdp(port=32000, pts=(8, 101), te_pt=101))
    cfg = ep.configured
    assert cfg is not None
    assert (cfg.remote, cfg.codec, cfg.te_pt) == (TRUNK_RTP, Codec.PCMA, 101)
    assert ep.played() == [("welcome",)]


def test_late_offer_ack_without_answer_ends_the_call() -> None:
    rig = CallRig()
    c = Phone.trunk(rig).call("19001000", body=b"")
    c.ack()  # no SDP in the ACK: there is no media to speak of
    bye_to(c)
    assert ended(rig)["hangup_by"] == "engine"
    nothing_left(rig)


def test_caller_hold_reinvite_is_answered_recvonly() -> None:
    rig = CallRig()
    c, caller_ep = ivr_call(rig)
    got = c.reinvite(sdp(port=32000, pts=(0, 96), direction="sendonly", version=2))
    assert [r.status for r in got] == [100, 200]
    answer = sdp_fields(got[-1].body)
    assert answer["direction"] == "recvonly"
    assert answer["port"] == caller_ep.local_port
    assert caller_ep.configured is not None and caller_ep.configured.direction == "recvonly"
    # and off hold again
    got = c.reinvite(sdp(port=32000, pts=(0, 96), version=3))
    assert sdp_fields(got[-1].body)["direction"] == "sendrecv"
    assert caller_ep.configured.direction == "sendrecv"
    assert rig.events_of("call.ended") == []


def test_info_digits_are_passed_on_to_the_bridged_agent() -> None:
    rig = CallRig()
    a = agent(rig)
    c, caller_ep = ivr_call(rig)
    caller_ep.dtmf("9")
    (leg,) = a.incoming()
    leg.answer()
    a.inbox()
    assert [r.status for r in c.info("5")] == [200]
    infos = leg.requests(a.inbox(), "INFO")
    assert [i.body for i in infos] == [b"Signal=5\r\nDuration=160\r\n"]
    assert infos[0].headers.get("content-type") == "application/dtmf-relay"


# -- extension calls ----------------------------------------------------------------------------


def account_call(rig: CallRig, number: str, user: str = "1001", port: int = 5062,
                 **kw: object) -> OutCall:
    return Phone(rig, user, port=port, rtp_port=30000).call(number, **kw)  # type: ignore[arg-type]


def test_account_calling_a_registered_account_is_bridged() -> None:
    rig = CallRig()
    callee = agent(rig, "1002", port=5073, rtp=31200)
    c = account_call(rig, "1002")
    assert c.statuses == [100]
    (leg,) = callee.incoming()
    assert leg.invite.from_.display == '"1001"'
    leg.ring()
    c.read()
    assert c.statuses == [100, 180]
    assert c.responses[-1].to.tag == c.to_tag
    leg.answer()
    c.read()
    assert c.statuses == [100, 180, 200]
    c.ack()
    caller_ep, callee_ep = rig.media.allocated
    assert caller_ep.bridged_to is callee_ep
    assert caller_ep.played() == []  # no IVR, no prompt
    started = rig.events_of("call.started")[0].data
    assert (started["direction"], started["account"]) == ("internal", "1001")
    assert [e.data["by"] for e in rig.events_of("call.answered")] == ["1002"]
    c.bye()
    leg.handle(callee.inbox())
    nothing_left(rig)


def test_caller_cancel_while_the_extension_rings_cancels_the_agent_leg() -> None:
    rig = CallRig()
    callee = agent(rig, "1003")
    c = account_call(rig, "1003")
    (leg,) = callee.incoming()
    leg.ring()
    c.read()
    got = c.cancel()
    assert sorted(s.response.status for s in got) == [200, 487]
    c.ack_failure()
    sent = callee.inbox()
    (cancel,) = leg.requests(sent, "CANCEL")
    assert cancel.top_via.branch == leg.invite.top_via.branch
    leg.handle(sent)
    data = ended(rig)
    assert (data["reason"], data["hangup_by"], data["answered"]) == (
        "cancelled", "caller", False)
    nothing_left(rig)


def test_agent_phone_that_never_answers_the_cancel_is_given_up_after_64_t1() -> None:
    rig = CallRig()
    callee = agent(rig, "1003")
    c = account_call(rig, "1003")
    (leg,) = callee.incoming()
    leg.ring()
    c.cancel()
    c.ack_failure()
    assert len(leg.requests(callee.inbox(), "CANCEL")) == 1  # and the phone says nothing
    assert rig.call_state() == {"sessions": dict(rig.engine.sessions)}  # the leg's dialog
    rig.advance(31.5)
    assert rig.engine.sessions != {}
    rig.advance(0.5)
    nothing_left(rig)


def test_calling_an_unregistered_extension_is_480() -> None:
    rig = CallRig()
    c = account_call(rig, "1004")
    assert c.statuses == [100, 480]
    c.ack_failure()
    nothing_left(rig)


@pytest.mark.parametrize(("status", "caller_gets"), [(486, 486), (603, 603), (404, 404),
                                                     (500, 480)])
def test_extension_refusal_reaches_the_caller(status: int, caller_gets: int) -> None:
    rig = CallRig()
    callee = agent(rig, "1002", port=5073)
    c = account_call(rig, "1002")
    (leg,) = callee.incoming()
    leg.respond(status)
    c.read()
    assert c.statuses == [100, caller_gets]
    c.ack_failure()
    nothing_left(rig)


def test_extension_call_with_unusable_offer_is_488_before_any_phone_rings() -> None:
    rig = CallRig()
    callee = agent(rig, "1002", port=5073)
    c = account_call(rig, "1002", body=sdp(pts=(18,)))
    assert c.statuses == [100, 488]
    assert callee.incoming() == []
    c.ack_failure()
    nothing_left(rig)


def test_agent_answering_with_unusable_sdp_is_hung_up() -> None:
    rig = CallRig()
    callee = agent(rig, "1002", port=5073)
    c = account_call(rig, "1002")
    (leg,) = callee.incoming()
    leg.answer(sdp(pts=(18,)))  # answers with a codec we never offered
    sent = callee.inbox()
    assert [s.request.method for s in sent] == ["ACK", "BYE"]
    leg.handle(sent)
    c.read()
    assert c.statuses == [100, 480]
    c.ack_failure()
    nothing_left(rig)


def test_no_media_port_is_503() -> None:
    rig = CallRig()
    rig.media.exhausted = True
    c = Phone.trunk(rig).call("19001000")
    assert c.statuses == [100, 503]
    c.ack_failure()
    nothing_left(rig)


def test_ended_calls_publish_call_ended_exactly_once_each() -> None:
    rig = CallRig()
    calls = [ivr_call(rig, caller=f"09123450{i:02d}") for i in range(3)]
    for c, _ep in calls:
        c.bye()
    assert len(rig.events_of("call.ended")) == 3
    assert len({e.data["call"] for e in rig.events_of("call.ended")}) == 3
    nothing_left(rig)


# -- session timers and other entries ------------------------------------------------------------


def test_unrefreshed_session_timer_ends_the_call_with_bye() -> None:
    rig = CallRig()
    c = Phone.trunk(rig).call("19001000", headers=[("Session-Expires", "90"),
                                                   ("Supported", "timer")])
    assert c.final is not None
    assert c.final.headers.get("session-expires") == "90;refresher=uac"
    c.ack()
    rig.advance(59.75)
    assert rig.events_of("call.ended") == []
    rig.advance(0.25)  # 90 - min(32, 90/3)
    bye_to(c)
    assert (ended(rig)["reason"], ended(rig)["hangup_by"]) == ("session-expired", "engine")
    nothing_left(rig)


def test_session_refresh_by_the_caller_keeps_the_call() -> None:
    rig = CallRig()
    timer = [("Session-Expires", "90"), ("Supported", "timer")]
    c = Phone.trunk(rig).call("19001000", headers=timer)
    c.ack()
    rig.advance(45.0)
    assert [r.status for r in c.send("UPDATE", headers=timer)] == [200]
    rig.advance(45.0)  # past the first deadline
    assert rig.events_of("call.ended") == []
    rig.advance(15.0)  # 45 + 60
    bye_to(c)
    assert ended(rig)["reason"] == "session-expired"


def test_too_short_session_expires_is_422_before_any_call_exists() -> None:
    rig = CallRig()
    c = Phone.trunk(rig).call("19001000", headers=[("Session-Expires", "30"),
                                                   ("Supported", "timer")])
    assert c.statuses == [100, 422]
    assert c.final is not None and c.final.headers.get("min-se") == "90"
    c.ack_failure()
    assert rig.media.allocated == []
    nothing_left(rig)


def test_account_calling_a_hotline_reaches_its_ivr() -> None:
    rig = CallRig()
    c = account_call(rig, "19001000")
    assert c.statuses == [100, 200]
    c.ack()
    assert rig.media.allocated[0].played() == [("welcome",)]
    started = rig.events_of("call.started")[0].data
    assert (started["direction"], started["hotline"], started["account"]) == (
        "internal", "19001000", "1001")


def test_agent_putting_the_call_on_hold_gets_a_recvonly_answer() -> None:
    rig = CallRig()
    callee = agent(rig, "1002", port=5073, rtp=31200)
    c = account_call(rig, "1002")
    (leg,) = callee.incoming()
    leg.answer()
    c.read()
    c.ack()
    callee.inbox()
    callee_ep = rig.media.allocated[1]
    hold = sdp(port=31200, pts=(0, 101), te_pt=101, direction="sendonly", version=2)
    data = leg.in_dialog("INVITE").replace(b"Content-Length: 0\r\n\r\n",
                                           b"Content-Type: application/sdp\r\n"
                                           + f"Content-Length: {len(hold)}\r\n\r\n".encode()
                                           + hold)
    callee.deliver(data)
    got = [s.response for s in callee.inbox() if not isinstance(s.msg, Request)]
    assert [r.status for r in got] == [100, 200]
    assert sdp_fields(got[-1].body)["direction"] == "recvonly"
    assert callee_ep.configured is not None and callee_ep.configured.direction == "recvonly"
    assert rig.media.allocated[0].bridged_to is callee_ep


# -- after the IVR: the extension does not answer ---------------------------------------------


def test_every_contact_refusing_after_the_ivr_plays_not_available() -> None:
    rig = CallRig()
    desk, mobile = agent(rig, port=5071), agent(rig, port=5072, rtp=31100)
    c, caller_ep = ivr_call(rig)
    caller_ep.dtmf("9")
    (to_desk,), (to_mobile,) = desk.incoming(), mobile.incoming()
    to_desk.respond(486)
    assert caller_ep.played()[-1] != ("not_available",)  # the mobile still rings
    to_mobile.ring()
    to_mobile.respond(603)
    assert caller_ep.played()[-1] == ("not_available",)
    caller_ep.finish_prompt()
    bye_to(c)
    assert ended(rig)["reason"] == "played"
    nothing_left(rig)


def test_unregistered_operator_after_the_ivr_plays_not_available() -> None:
    rig = CallRig()
    c, caller_ep = ivr_call(rig)
    caller_ep.dtmf("9")  # nobody registered as 1003
    assert caller_ep.played()[-1] == ("not_available",)
    caller_ep.finish_prompt()
    bye_to(c)
    nothing_left(rig)


def test_both_contacts_answering_the_second_is_hung_up() -> None:
    rig = CallRig()
    desk, mobile = agent(rig, port=5071), agent(rig, port=5072, rtp=31100)
    c, caller_ep = ivr_call(rig)
    caller_ep.dtmf("9")
    (to_desk,), (to_mobile,) = desk.incoming(), mobile.incoming()
    to_desk.answer()
    to_mobile.answer()  # crossed our CANCEL: ACKed and hung up
    sent = mobile.inbox()
    assert [s.request.method for s in sent] == ["ACK", "BYE"]
    to_mobile.handle(sent)
    desk_ep = caller_ep.bridged_to
    assert desk_ep is not None and desk_ep.configured is not None
    assert desk_ep.configured.remote == ("127.0.0.1", 31000)
    assert len(rig.events_of("call.connected")) == 1
    c.bye()
    to_desk.handle(desk.inbox())
    nothing_left(rig)


def test_caller_bye_while_not_available_plays_ends_the_call_once() -> None:
    rig = CallRig()
    c, caller_ep = ivr_call(rig)
    caller_ep.dtmf("9")  # nobody registered as 1003
    assert caller_ep.playing == ["not_available"]
    c.bye()
    assert ended(rig)["hangup_by"] == "caller"
    assert caller_ep.closed and caller_ep.playing is None
    nothing_left(rig)


def test_refused_reoffer_from_the_caller_is_488_and_the_call_goes_on() -> None:
    rig = CallRig()
    c, caller_ep = ivr_call(rig)
    got = c.reinvite(sdp(pts=(18,), version=2))
    assert [r.status for r in got] == [100, 488]
    assert rig.events_of("call.ended") == []
    assert caller_ep.configured is not None and caller_ep.configured.codec is Codec.PCMU


def test_shutdown_ends_every_call() -> None:
    rig = CallRig()
    a = agent(rig)
    c1, ep1 = ivr_call(rig)
    ep1.dtmf("9")
    (leg,) = a.incoming()
    leg.answer()
    c2, _ = ivr_call(rig, caller="0912000222")
    rig.engine.calls.shutdown()
    assert {e.data["reason"] for e in rig.events_of("call.ended")} == {"shutdown"}
    assert len(rig.events_of("call.ended")) == 2
    bye_to(c1)
    bye_to(c2)
    leg.handle(a.inbox())
    nothing_left(rig)
