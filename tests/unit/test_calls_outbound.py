"""Outbound calls through the demo's outbound rule: number formatting for the trunk, the
caller id, fail-over to the next trunk on 5xx or timeout, refusals passed back to the
caller, and the toll-fraud guard that keeps an account without permission off every trunk."""

from __future__ import annotations

import pytest

from sip.message import Request

from .callfakes import CallRig, OutCall, Phone, demo_with

BACKUP = ("udp", "127.0.0.1", 5090)

TWO_TRUNKS = demo_with(
    ("trunks: [demo-trunk]", "trunks: [demo-trunk, backup-trunk]"),
    ("    hotlines: [\"19001000\", \"19002000\", \"19003000\"]\n",
     "    hotlines: [\"19001000\", \"19002000\", \"19003000\"]\n"
     "  - name: backup-trunk\n"
     "    inbound:\n"
     "      sources: [\"127.0.0.1:5090\"]\n"
     "    outbound:\n"
     "      proxy: 127.0.0.1:5090\n"
     "      transport: udp\n"
     "    options_ping: 0\n"),
)

ONLY_1002_MAY_CALL_OUT = demo_with(
    ('allow: ["1001", "1002", "1003", "1004"]', 'allow: ["1002"]'))


def trunks(rig: CallRig) -> tuple[Phone, Phone]:
    return Phone.trunk(rig, "provider"), Phone(rig, "backup", "", ip=BACKUP[1], port=BACKUP[2],
                                                rtp_port=33000)


def dial(rig: CallRig, number: str = "0912345678", user: str = "1001") -> OutCall:
    return Phone(rig, user, port=5062).call(number)


def nothing_left(rig: CallRig) -> None:
    assert rig.call_state() == {}
    rig.advance(40.0)
    assert rig.engine.layer.clients == {} and rig.engine.layer.servers == {}


@pytest.mark.parametrize("dialled", ["0912345678", "+84912345678", "84912345678",
                                     "0084912345678"])
def test_account_dialling_out_reaches_the_demo_trunk_in_e164_with_the_caller_id(
        dialled: str) -> None:
    rig = CallRig()
    provider, _ = trunks(rig)
    c = dial(rig, dialled)
    (leg,) = provider.incoming()
    inv = leg.invite
    assert provider.addr == ("udp", "127.0.0.1", 5080)
    assert inv.uri.user == "84912345678"
    assert str(inv.uri) == "sip:84912345678@127.0.0.1:5080"
    assert inv.from_.uri is not None and inv.from_.uri.user == "19001000"
    assert str(inv.to.uri) == "sip:84912345678@127.0.0.1"
    started = rig.events_of("call.started")[0].data
    assert (started["direction"], started["to"], started["account"]) == (
        "outbound", "+84912345678", "1001")
    leg.ring()
    c.read()
    leg.answer()
    c.read()
    assert c.statuses == [100, 180, 200]
    c.ack()
    caller_ep, trunk_ep = rig.media.allocated
    assert caller_ep.bridged_to is trunk_ep
    (connected,) = rig.events_of("call.connected")
    assert (connected.data["party"], connected.data["trunk"]) == ("84912345678", "demo-trunk")
    leg.bye()
    c.read()
    byes = [r for r in c.received if r.method == "BYE"]
    assert len(byes) == 1
    c.answer_request(byes[0])
    assert rig.events_of("call.ended")[0].data["hangup_by"] == "callee"
    nothing_left(rig)


def test_503_fails_over_to_the_next_trunk() -> None:
    rig = CallRig(TWO_TRUNKS)
    provider, backup = trunks(rig)
    c = dial(rig)
    (first,) = provider.incoming()
    first.respond(503)
    assert [s.msg.method for s in provider.inbox() if isinstance(s.msg, Request)] == ["ACK"]
    (second,) = backup.incoming()
    assert str(second.invite.uri) == "sip:84912345678@127.0.0.1:5090"
    assert second.invite.from_.uri.user == "19001000"  # type: ignore[union-attr]
    c.read()
    assert c.statuses == [100]  # the caller never heard the 503
    second.answer()
    c.read()
    assert c.statuses == [100, 200]
    c.ack()
    assert rig.events_of("call.connected")[0].data["trunk"] == "backup-trunk"
    c.bye()
    second.handle(backup.inbox())
    assert rig.events_of("call.ended")[0].data["hangup_by"] == "caller"
    nothing_left(rig)


def test_a_trunk_that_never_answers_fails_over_after_timer_b() -> None:
    rig = CallRig(TWO_TRUNKS)
    provider, backup = trunks(rig)
    c = dial(rig)
    assert len(provider.incoming()) == 1
    rig.advance(31.5)
    assert backup.incoming() == []
    rig.advance(0.5)  # 64*T1: Timer B
    (second,) = backup.incoming()
    second.respond(486)
    c.read()
    assert c.statuses == [100, 486]
    c.ack_failure()
    nothing_left(rig)


def test_every_trunk_failing_gives_the_caller_503() -> None:
    rig = CallRig(TWO_TRUNKS)
    provider, backup = trunks(rig)
    c = dial(rig)
    provider.incoming()[0].respond(503)
    backup.incoming()[0].respond(502)
    c.read()
    assert c.statuses == [100, 503]
    c.ack_failure()
    assert rig.events_of("call.ended")[0].data["status"] == 503
    nothing_left(rig)


@pytest.mark.parametrize("status", [404, 486])
def test_trunk_refusal_below_500_reaches_the_caller_without_fail_over(status: int) -> None:
    rig = CallRig(TWO_TRUNKS)
    provider, backup = trunks(rig)
    c = dial(rig)
    provider.incoming()[0].respond(status)
    assert backup.incoming() == []
    c.read()
    assert c.statuses == [100, status]
    c.ack_failure()
    nothing_left(rig)


def test_account_outside_the_allow_list_gets_403_and_no_trunk_is_tried() -> None:
    rig = CallRig(ONLY_1002_MAY_CALL_OUT)
    provider, _ = trunks(rig)
    c = dial(rig, user="1001")
    assert c.statuses == [100, 403]
    assert provider.incoming() == []
    assert [s for s in rig.net.sent if s.addr[2] in (5080, 5090)] == []
    c.ack_failure()
    nothing_left(rig)
    # and the account the rule allows goes out
    c = dial(rig, user="1002")
    assert len(provider.incoming()) == 1


def test_number_matching_no_rule_is_404() -> None:
    rig = CallRig()
    provider, _ = trunks(rig)
    c = dial(rig, "+15551234567")
    assert c.statuses == [100, 404]
    assert provider.incoming() == []
    c.ack_failure()
    nothing_left(rig)


def test_caller_cancel_while_the_trunk_rings_cancels_it() -> None:
    rig = CallRig()
    provider, _ = trunks(rig)
    c = dial(rig)
    (leg,) = provider.incoming()
    leg.ring()
    c.read()
    assert c.statuses == [100, 180]
    c.cancel()
    c.ack_failure()
    sent = provider.inbox()
    assert len(leg.requests(sent, "CANCEL")) == 1
    leg.handle(sent)
    nothing_left(rig)
