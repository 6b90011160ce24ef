"""The transaction layer (RFC 3261 §17, RFC 6026) on a fake clock: every timer is asserted to
its exact deadline with the default T1=0.5, T2=4, T4=5, and again with other values to prove
that the deadlines derive from the configuration."""

from __future__ import annotations

from typing import Any

import pytest

from sip.builder import make_response
from sip.message import Headers, Request, Response
from sip.parser import parse_message
from sip.transaction import (
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteServerTransaction,
    ServerTransaction,
    State,
    StatelessServerTransaction,
    TimerConfig,
)
from sip.uri import parse_uri
from tests.unit.sipfakes import TCP_PEER, UDP_PEER, Harness, RecordingOwner

RURI = "sip:bob@192.0.2.1"


def request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bKb1",
    sent_by: str = "192.0.2.10:5062",
    via_params: str = "",
    cseq: int = 1,
    cseq_method: str | None = None,
    call_id: str = "call-1@192.0.2.10",
    from_tag: str | None = "ft1",
    to_tag: str | None = None,
    uri: str = RURI,
    transport: str = "UDP",
) -> Request:
    h = Headers()
    via = f"SIP/2.0/{transport} {sent_by}"
    if branch is not None:
        via += f";branch={branch}"
    h.add("Via", via + via_params)
    h.add("Max-Forwards", "70")
    h.add("From", "<sip:alice@example.com>" + (f";tag={from_tag}" if from_tag else ""))
    h.add("To", "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else ""))
    h.add("Call-ID", call_id)
    h.add("CSeq", f"{cseq} {cseq_method or method}")
    h.add("Content-Length", "0")
    return Request(method, parse_uri(uri), h)


def ack_for(invite: Request, response: Response, *, branch: str | None = None) -> Request:
    """The ACK a UAC sends for `response`: same branch for a non-2xx (§17.1.1.3)."""
    via = invite.top_via
    return request("ACK", branch=branch if branch is not None else via.branch,
                   sent_by=via.host + (f":{via.port}" if via.port else ""),
                   cseq=invite.cseq.seq, call_id=invite.call_id, from_tag=invite.from_.tag,
                   to_tag=response.to.tag, uri=str(invite.uri))


def sent_statuses(h: Harness) -> list[tuple[float, int]]:
    out = []
    for s in h.net.sent:
        m = s.message
        assert isinstance(m, Response)
        out.append((s.at, m.status))
    return out


def only_server(h: Harness) -> ServerTransaction:
    (txn,) = h.layer.servers.values()
    return txn


def deadlines(start: float, t1: float, t2: float, until: float, *, cap: bool) -> list[float]:
    """Retransmission instants: intervals t1, 2t1, 4t1, ... (capped at t2 when `cap`)."""
    out, at, interval = [], start, t1
    while at + interval < until:
        at += interval
        out.append(at)
        interval = min(2 * interval, t2) if cap else 2 * interval
    return out


# --------------------------------------------------------------------------- INVITE server


def test_invite_server_sends_100_trying_at_once_and_tu_sees_one_request() -> None:
    h = Harness()
    inv = request()
    h.receive(inv)
    assert sent_statuses(h) == [(0.0, 100)]
    trying = h.net.sent[0].message
    assert isinstance(trying, Response)
    assert trying.to.tag is None  # §8.2.6.1: no tag on a 100 needed
    assert trying.headers.get("via") == inv.headers.get("via")
    assert h.net.sent[0].addr == UDP_PEER
    assert len(h.tu.requests) == 1
    txn = h.tu.requests[0][1]
    assert isinstance(txn, InviteServerTransaction) and txn.state is State.PROCEEDING


def test_invite_retransmissions_are_absorbed_and_answered_with_the_last_response() -> None:
    h = Harness()
    inv = request()
    h.receive(inv)
    h.clock.advance(0.5)
    h.receive(inv)
    txn = only_server(h)
    txn.respond(txn.make_response(180))
    h.clock.advance(1.0)
    h.receive(inv)
    assert sent_statuses(h) == [(0.0, 100), (0.5, 100), (0.5, 180), (1.5, 180)]
    assert len(h.tu.requests) == 1


@pytest.mark.parametrize(("cfg", "start"), [(TimerConfig(), 0.0), (TimerConfig(1.0, 8.0, 3.0), 7.0),
                                             (TimerConfig(0.25, 2.0, 5.0), 2.0)])
def test_timer_g_and_h_for_a_failure_response_over_udp(cfg: TimerConfig, start: float) -> None:
    h = Harness(cfg, start=start)
    h.receive(request())
    h.clock.advance(0.1)
    txn = only_server(h)
    t0 = h.clock.now
    txn.respond(txn.make_response(486))
    h.net.clear()
    h.clock.advance(64 * cfg.t1 + 10)
    expected = deadlines(t0, cfg.t1, cfg.t2, t0 + 64 * cfg.t1, cap=True)
    assert h.net.times() == pytest.approx(expected)
    assert all(m.status == 486 for m in h.net.messages() if isinstance(m, Response))
    # Timer H: no ACK within 64*T1
    assert [t for t, _ in h.tu.timeouts] == pytest.approx([t0 + 64 * cfg.t1])
    assert h.tu.timeouts[0][1] is txn and txn.state is State.TERMINATED
    assert h.layer.servers == {}


def test_default_timer_g_instants() -> None:
    h = Harness()
    h.receive(request())
    txn = only_server(h)
    txn.respond(txn.make_response(500))
    h.net.clear()
    h.clock.advance(40)
    assert h.net.times() == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert [t for t, _ in h.tu.timeouts] == [32.0]


def test_ack_confirms_and_timer_i_is_t4_on_udp() -> None:
    h = Harness()
    inv = request()
    h.receive(inv)
    txn = only_server(h)
    resp = txn.make_response(404)
    txn.respond(resp)
    h.clock.advance_to(2.0)  # G fired at 0.5 and 1.5
    h.receive(ack_for(inv, resp))
    assert txn.state is State.CONFIRMED
    assert h.tu.acks == []  # the ACK of a non-2xx is the transaction's own business
    h.net.clear()
    h.clock.advance_to(6.999)
    h.receive(ack_for(inv, resp))  # absorbed in Confirmed
    h.receive(inv)  # so is a late INVITE retransmission
    assert h.net.sent == [] and h.tu.acks == []
    assert txn.state is State.CONFIRMED
    h.clock.advance_to(7.0)  # Timer I = T4 = 5 after the ACK
    assert txn.state is State.TERMINATED and h.layer.servers == {}
    h.clock.advance_to(100)
    assert h.tu.timeouts == []


def test_timer_i_follows_t4() -> None:
    h = Harness(TimerConfig(t4=2.5))
    inv = request()
    h.receive(inv)
    txn = only_server(h)
    resp = txn.make_response(486)
    txn.respond(resp)
    h.clock.advance_to(1.0)
    h.receive(ack_for(inv, resp))
    h.clock.advance_to(3.4999)
    assert txn.state is State.CONFIRMED
    h.clock.advance_to(3.5)
    assert txn.state is State.TERMINATED


def test_invite_server_over_tcp_no_timer_g_and_timer_i_zero() -> None:
    h = Harness()
    inv = request(transport="TCP")
    h.receive(inv, TCP_PEER)
    txn = only_server(h)
    resp = txn.make_response(486)
    txn.respond(resp)
    h.net.clear()
    h.clock.advance_to(10)
    assert h.net.sent == []  # reliable: no retransmissions
    h.receive(ack_for(inv, resp), TCP_PEER)
    assert txn.state is State.TERMINATED and h.layer.servers == {}


def test_timer_h_also_guards_tcp() -> None:
    h = Harness()
    h.receive(request(transport="TCP"), TCP_PEER)
    txn = only_server(h)
    txn.respond(txn.make_response(486))
    h.clock.advance_to(31.999)
    assert h.tu.timeouts == []
    h.clock.advance_to(32)
    assert [t for t, _ in h.tu.timeouts] == [32.0]


def test_2xx_accepted_state_timer_l_and_ack_to_tu() -> None:
    h = Harness()
    inv = request()
    h.receive(inv)
    h.clock.advance(1.0)
    txn = only_server(h)
    ok = txn.make_response(200)
    txn.respond(ok)
    assert txn.state is State.ACCEPTED
    h.net.clear()
    # INVITE retransmissions are absorbed in Accepted: the TU resends its 2xx itself
    h.receive(inv)
    assert h.net.sent == [] and len(h.tu.requests) == 1
    h.clock.advance(0.5)
    txn.respond(ok)  # the TU's 2xx retransmission goes out
    assert sent_statuses(h) == [(1.5, 200)]
    # an ACK that matches the transaction (same branch) in Accepted goes to the TU
    h.receive(ack_for(inv, ok))
    assert [(t, a.method) for t, a, _ in h.tu.acks] == [(1.5, "ACK")]
    # and so does the proper ACK with its own branch (it matches no transaction)
    h.receive(ack_for(inv, ok, branch="z9hG4bKack2xx"))
    assert len(h.tu.acks) == 2 and txn.state is State.ACCEPTED
    # a non-2xx from the TU after a 2xx is ignored
    txn.respond(txn.make_response(500))
    assert sent_statuses(h) == [(1.5, 200)]
    h.clock.advance_to(32.999)
    assert txn.state is State.ACCEPTED
    h.clock.advance_to(33.0)  # Timer L = 64*T1 after the 2xx
    assert txn.state is State.TERMINATED and h.layer.servers == {}
    assert h.tu.timeouts == []


def test_timer_l_follows_t1() -> None:
    h = Harness(TimerConfig(t1=0.1))
    h.receive(request())
    txn = only_server(h)
    txn.respond(txn.make_response(200))
    h.clock.advance_to(6.3999)
    assert txn.state is State.ACCEPTED
    h.clock.advance_to(6.4)
    assert txn.state is State.TERMINATED


def test_responses_carry_one_stable_to_tag() -> None:
    h = Harness()
    h.receive(request())
    txn = only_server(h)
    txn.respond(txn.make_response(180))
    txn.respond(txn.make_response(200))
    tags = {m.to.tag for m in h.net.messages()[1:] if isinstance(m, Response)}
    assert tags == {"srvtag1"}


# --------------------------------------------------------------------------- non-INVITE server


def test_non_invite_server_trying_proceeding_completed() -> None:
    h = Harness()
    opt = request("OPTIONS")
    h.receive(opt)
    assert h.net.sent == []  # no automatic 100 for non-INVITE
    txn = only_server(h)
    assert isinstance(txn, NonInviteServerTransaction) and txn.state is State.TRYING
    h.receive(opt)  # Trying: a retransmission is discarded silently
    assert h.net.sent == [] and len(h.tu.requests) == 1
    trying, ok, error = (txn.make_response(s) for s in (100, 200, 500))
    txn.respond(trying)
    h.clock.advance(0.25)
    h.receive(opt)  # Proceeding: answered with the provisional
    txn.respond(ok)
    h.clock.advance(0.25)
    h.receive(opt)  # Completed: answered with the final
    txn.respond(error)  # a second final response is discarded
    assert sent_statuses(h) == [(0.0, 100), (0.25, 100), (0.25, 200), (0.5, 200)]
    assert len(h.tu.requests) == 1


def test_stateless_server_answers_once_and_keeps_nothing() -> None:
    h = Harness()
    reg = request("REGISTER", via_params=";rport")
    answered: list[ServerTransaction] = []

    def answer(txn: ServerTransaction, req: Request) -> None:
        answered.append(txn)
        txn.respond(txn.make_response(100))  # §8.2.7: a stateless UAS sends no 1xx
        txn.respond(txn.make_response(401))
        txn.respond(txn.make_response(200))  # one final answer only

    h.tu.on_new = answer
    h.layer.receive_request_stateless(parse_message(reg.serialize()), UDP_PEER)
    assert sent_statuses(h) == [(0.0, 401)]
    assert h.net.sent[0].addr == UDP_PEER
    assert isinstance(answered[0], StatelessServerTransaction)
    assert answered[0].state is State.TERMINATED
    assert h.layer.servers == {} and len(h.timers) == 0
    # a retransmission is a new request, answered afresh (no Timer J to absorb it)
    h.clock.advance(0.5)
    h.layer.receive_request_stateless(parse_message(reg.serialize()), UDP_PEER)
    assert sent_statuses(h) == [(0.0, 401), (0.5, 401)]
    assert len(h.tu.requests) == 2


def test_stateless_responses_follow_via_without_rport() -> None:
    h = Harness(force_rport=False)
    h.tu.on_new = lambda txn, req: txn.respond(txn.make_response(401))
    h.layer.receive_request_stateless(parse_message(request("REGISTER").serialize()),
                                      ("udp", "192.0.2.10", 40000))
    assert h.net.sent[0].addr == ("udp", "192.0.2.10", 5062)  # §18.2.2: the sent-by port


@pytest.mark.parametrize("method", ["INVITE", "ACK", "CANCEL"])
def test_invite_ack_and_cancel_are_never_stateless(method: str) -> None:
    h = Harness()
    with pytest.raises(ValueError):
        h.layer.receive_request_stateless(request(method), UDP_PEER)
    assert h.tu.requests == []


@pytest.mark.parametrize("t1", [0.5, 0.2])
def test_timer_j_is_64_t1_on_udp(t1: float) -> None:
    h = Harness(TimerConfig(t1=t1))
    h.clock.advance_to(3.0)
    opt = request("OPTIONS")
    h.receive(opt)
    txn = only_server(h)
    txn.respond(txn.make_response(200))
    h.clock.advance_to(3.0 + 64 * t1 - 0.001)
    assert txn.state is State.COMPLETED
    h.receive(opt)
    assert len(h.net.sent) == 2  # still answering retransmissions
    h.clock.advance_to(3.0 + 64 * t1)
    assert txn.state is State.TERMINATED and h.layer.servers == {}
    h.receive(opt)  # after Timer J the same request is new again
    assert len(h.tu.requests) == 2


def test_timer_j_is_zero_on_tcp() -> None:
    h = Harness()
    h.receive(request("OPTIONS", transport="TCP"), TCP_PEER)
    txn = only_server(h)
    txn.respond(txn.make_response(200))
    assert txn.state is State.TERMINATED and h.layer.servers == {}
    assert h.net.sent[0].addr == TCP_PEER


# --------------------------------------------------------------------------- matching


def test_cancel_finds_its_invite_server_transaction() -> None:
    h = Harness()
    inv = request()
    h.receive(inv)
    cancel = request("CANCEL", cseq=1)
    h.receive(cancel)
    (_, inv_txn, _), (_, cancel_txn, _) = h.tu.requests
    assert isinstance(cancel_txn, NonInviteServerTransaction)
    assert h.layer.find_invite_server(cancel) is inv_txn
    assert h.layer.find_invite_server(request("CANCEL", branch="z9hG4bKother")) is None
    assert h.layer.find_invite_server(request("CANCEL", call_id="other")) is None
    # the CANCEL is its own transaction: answering it leaves the INVITE alone
    cancel_txn.respond(cancel_txn.make_response(200))
    assert inv_txn.state is State.PROCEEDING


def test_cancel_matching_for_rfc2543_invites() -> None:
    h = Harness()
    inv = request(branch=None)
    h.receive(inv)
    inv_txn = only_server(h)
    assert h.layer.find_invite_server(request("CANCEL", branch=None)) is inv_txn
    assert h.layer.find_invite_server(request("CANCEL", branch=None, uri="sip:x@h")) is None


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS", "REGISTER"])
def test_merged_request_gets_482(method: str) -> None:
    h = Harness()
    h.receive(request(method, branch="z9hG4bKpath1"))
    h.receive(request(method, branch="z9hG4bKpath2"), ("udp", "192.0.2.99", 5060))
    assert len(h.tu.requests) == 1
    last = h.net.sent[-1]
    assert last.addr == ("udp", "192.0.2.99", 5060)
    merged = last.message
    assert isinstance(merged, Response) and merged.status == 482
    assert merged.top_via.branch == "z9hG4bKpath2"
    assert merged.to.tag is not None


def test_no_merge_detection_with_to_tag_or_different_identity() -> None:
    h = Harness()
    h.receive(request("BYE", branch="z9hG4bK1", to_tag="tt"))
    h.receive(request("BYE", branch="z9hG4bK2", to_tag="tt"))  # in-dialog: not checked
    h.receive(request("OPTIONS", branch="z9hG4bK3"))
    h.receive(request("OPTIONS", branch="z9hG4bK4", cseq=2))  # another CSeq
    h.receive(request("OPTIONS", branch="z9hG4bK5", from_tag="other"))
    h.receive(request("OPTIONS", branch="z9hG4bK6", call_id="other"))
    assert len(h.tu.requests) == 6
    assert all(s.message.status != 482 for s in h.net.sent)  # type: ignore[union-attr]


def test_merged_rfc2543_request_gets_482() -> None:
    # two copies of one RFC 2543 request (no branch) that took different paths differ in
    # their top Via: they match different transactions, so the second is a merge
    h = Harness()
    h.receive(request("OPTIONS", branch=None, sent_by="proxy1.example.com"))
    h.receive(request("OPTIONS", branch=None, sent_by="proxy2.example.com"))
    assert len(h.tu.requests) == 1
    assert [m.status for m in h.net.messages() if isinstance(m, Response)] == [482]


def test_rfc2543_matching_retransmission_and_ack_of_a_failure() -> None:
    h = Harness()
    inv = request(branch=None)
    h.receive(inv)
    h.receive(inv)
    assert len(h.tu.requests) == 1
    txn = only_server(h)
    assert txn.key[0] == "2543"
    resp = txn.make_response(486)
    txn.respond(resp)
    h.receive(ack_for(inv, resp))
    assert txn.state is State.CONFIRMED and h.tu.acks == []
    # another request from the same call with a new CSeq is a new transaction
    h.receive(request(branch=None, cseq=2))
    assert len(h.tu.requests) == 2


def test_bare_magic_cookie_branch_uses_rfc2543_matching() -> None:
    h = Harness()
    inv = request(branch="z9hG4bK")  # RFC 4475 badbranch
    h.receive(inv)
    h.receive(inv)
    assert len(h.tu.requests) == 1
    assert only_server(h).key[0] == "2543"


def test_same_branch_from_another_sent_by_is_another_transaction() -> None:
    h = Harness()
    h.receive(request("OPTIONS", sent_by="192.0.2.10:5062", call_id="c1"))
    h.receive(request("OPTIONS", sent_by="192.0.2.11:5062", call_id="c2"))
    assert len(h.tu.requests) == 2


def test_unmatched_ack_goes_to_the_tu() -> None:
    h = Harness()
    ack = request("ACK", branch="z9hG4bKlone", to_tag="x")
    h.receive(ack)
    assert [a.method for _, a, _ in h.tu.acks] == ["ACK"]
    assert h.layer.servers == {}


# --------------------------------------------------------------------------- response routing


def _routed(h: Harness, req: Request, source: tuple[str, str, int]) -> tuple[str, str, int]:
    h.receive(req, source)
    txn = h.tu.requests[-1][1]
    txn.respond(txn.make_response(200))
    return h.net.sent[-1].addr


def test_force_rport_answers_the_packet_source() -> None:
    h = Harness(force_rport=True)
    assert _routed(h, request("OPTIONS", sent_by="pc33.example.com:5070"),
                   ("udp", "198.51.100.7", 40000)) == ("udp", "198.51.100.7", 40000)


def test_rport_requested_answers_the_packet_source() -> None:
    h = Harness(force_rport=False)
    req = request("OPTIONS", sent_by="10.0.0.5:5060", via_params=";rport")
    assert _routed(h, req, ("udp", "198.51.100.7", 40000)) == ("udp", "198.51.100.7", 40000)


def test_without_rport_answers_the_source_address_at_the_sent_by_port() -> None:
    # §18.2.2: received (the packet's source address) and the sent-by port, 5060 by default
    h = Harness(force_rport=False)
    req = request("OPTIONS", sent_by="pc33.example.com:5070", via_params=";received=198.51.100.7")
    assert _routed(h, req, ("udp", "198.51.100.7", 40000)) == ("udp", "198.51.100.7", 5070)
    req = request("OPTIONS", branch="z9hG4bK2", sent_by="198.51.100.7")
    assert _routed(h, req, ("udp", "198.51.100.7", 40000)) == ("udp", "198.51.100.7", 5060)


def test_without_rport_a_forged_sent_by_is_never_a_destination() -> None:
    # a domain name the engine did not stamp, a broadcast address (RFC 4475 bcast), a third
    # party: the response still goes to the address the request came from
    h = Harness(force_rport=False)
    for i, sent_by in enumerate(["pc33.example.com", "255.255.255.255", "203.0.113.9:5080"]):
        req = request("OPTIONS", branch=f"z9hG4bKf{i}", sent_by=sent_by)
        target = _routed(h, req, ("udp", "198.51.100.7", 40000))
        assert target[:2] == ("udp", "198.51.100.7")


def test_ipv6_source_without_rport() -> None:
    h = Harness(force_rport=False)
    req = request("OPTIONS", sent_by="[2001:db8::9:1]:5070")
    assert _routed(h, req, ("udp", "2001:db8::9:1", 5070)) == ("udp", "2001:db8::9:1", 5070)


def test_tcp_responses_go_back_on_the_connection() -> None:
    for force in (True, False):
        h = Harness(force_rport=force)
        req = request("OPTIONS", transport="TCP", sent_by="pc33.example.com:5070")
        assert _routed(h, req, TCP_PEER) == TCP_PEER


def test_retransmissions_follow_the_same_route() -> None:
    h = Harness(force_rport=False)
    opt = request("OPTIONS", sent_by="pc33.example.com:5070")
    source = ("udp", "198.51.100.7", 40000)
    h.receive(opt, source)
    txn = only_server(h)
    txn.respond(txn.make_response(200))
    h.receive(opt, source)
    assert [s.addr for s in h.net.sent] == [("udp", "198.51.100.7", 5070)] * 2


# --------------------------------------------------------------------------- INVITE client

TARGET = ("udp", "192.0.2.1", 5060)
TCP_TARGET = ("tcp", "192.0.2.1", 5060)


def out_invite(branch: str = "z9hG4bKc1", **kw: Any) -> Request:
    req = request(branch=branch, sent_by="192.0.2.200:5060", from_tag="ours", **kw)
    req.headers.insert(1, "Route", "<sip:proxy.example.com;lr>")
    req.invalidate()
    return req


def answer(req: Request, status: int, to_tag: str = "theirs") -> bytes:
    return make_response(req, status, to_tag=to_tag).serialize()


@pytest.mark.parametrize("cfg", [TimerConfig(), TimerConfig(1.0, 4.0, 5.0), TimerConfig(0.3, 1.0)])
def test_timer_a_doubles_without_cap_and_timer_b_times_out(cfg: TimerConfig) -> None:
    h = Harness(cfg)
    owner = h.owner()
    txn = h.layer.send_request(out_invite(), TARGET, owner)
    assert isinstance(txn, InviteClientTransaction) and txn.state is State.CALLING
    h.clock.advance(64 * cfg.t1 + 20)
    b = 64 * cfg.t1
    assert h.net.times() == pytest.approx([0.0, *deadlines(0.0, cfg.t1, cfg.t2, b, cap=False)])
    assert all(s.addr == TARGET and s.data == txn.wire for s in h.net.sent)
    assert owner.timeouts == pytest.approx([b])
    assert txn.state is State.TERMINATED and h.layer.clients == {}


def test_default_timer_a_instants() -> None:
    h = Harness()
    owner = h.owner()
    h.layer.send_request(out_invite(), TARGET, owner)
    h.clock.advance(40)
    assert h.net.times() == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert owner.timeouts == [32.0]


def test_provisional_stops_timers_a_and_b() -> None:
    h = Harness()
    owner = h.owner()
    inv = out_invite()
    txn = h.layer.send_request(inv, TARGET, owner)
    h.clock.advance_to(1.0)
    h.receive(answer(inv, 180), TARGET)
    assert txn.state is State.PROCEEDING
    h.clock.advance_to(200)
    assert h.net.times() == [0.0, 0.5]
    assert owner.timeouts == [] and owner.statuses == [180]
    h.receive(answer(inv, 183), TARGET)
    assert owner.statuses == [180, 183]


def test_failure_response_is_acked_per_17_1_1_3_and_timer_d() -> None:
    h = Harness()
    owner = h.owner()
    inv = out_invite()
    txn = h.layer.send_request(inv, TARGET, owner)
    h.clock.advance_to(0.7)
    h.receive(answer(inv, 486, "busy"), TARGET)
    assert txn.state is State.COMPLETED and owner.statuses == [486]
    ack_sent = h.net.sent[-1]
    assert (ack_sent.at, ack_sent.addr) == (0.7, TARGET)
    ack = ack_sent.message
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert str(ack.uri) == str(inv.uri)
    assert ack.headers.get_all("via") == [inv.headers.get("via")]
    assert ack.headers.get("from") == inv.headers.get("from")
    assert ack.to.tag == "busy"
    assert ack.call_id == inv.call_id
    assert str(ack.cseq) == f"{inv.cseq.seq} ACK"
    assert ack.headers.get_all("route") == ["<sip:proxy.example.com;lr>"]
    # a retransmitted final response: the same ACK again, nothing for the owner
    h.clock.advance_to(2.0)
    h.receive(answer(inv, 486, "busy"), TARGET)
    assert [(s.at, s.data) for s in h.net.sent[-1:]] == [(2.0, ack_sent.data)]
    assert owner.statuses == [486]
    h.clock.advance_to(0.7 + 31.999)
    assert txn.state is State.COMPLETED
    h.clock.advance_to(0.7 + 32)  # Timer D
    assert txn.state is State.TERMINATED and h.layer.clients == {}
    assert owner.timeouts == []


def test_timer_d_follows_t1_when_64_t1_exceeds_32s() -> None:
    h = Harness(TimerConfig(t1=1.0))
    inv = out_invite()
    txn = h.layer.send_request(inv, TARGET, h.owner())
    h.receive(answer(inv, 603), TARGET)
    h.clock.advance_to(63.9)
    assert txn.state is State.COMPLETED
    h.clock.advance_to(64)
    assert txn.state is State.TERMINATED


def test_invite_client_over_tcp() -> None:
    h = Harness()
    owner = h.owner()
    inv = out_invite(transport="TCP")
    txn = h.layer.send_request(inv, TCP_TARGET, owner)
    h.clock.advance_to(31.9)
    assert h.net.times() == [0.0]  # no Timer A on a reliable transport
    h.clock.advance_to(32.0)
    assert owner.timeouts == [32.0]  # Timer B still runs
    h2 = Harness()
    owner2 = h2.owner()
    txn = h2.layer.send_request(inv, TCP_TARGET, owner2)
    h2.receive(answer(inv, 486), TCP_TARGET)
    assert txn.state is State.TERMINATED  # Timer D = 0
    assert [m.method for m in h2.net.messages() if isinstance(m, Request)] == ["INVITE", "ACK"]


def test_2xx_accepted_state_and_timer_m() -> None:
    h = Harness()
    owner = h.owner()
    inv = out_invite()
    txn = h.layer.send_request(inv, TARGET, owner)
    h.clock.advance_to(1.0)
    h.receive(answer(inv, 200), TARGET)
    assert txn.state is State.ACCEPTED
    assert [m.method for m in h.net.messages() if isinstance(m, Request)] == ["INVITE"] * 2
    h.clock.advance_to(2.0)
    h.receive(answer(inv, 200), TARGET)  # retransmitted 2xx: the owner must re-ACK
    h.receive(answer(inv, 200, "fork2"), TARGET)  # another fork's 2xx
    assert [(t, r.status, r.to.tag) for t, r in owner.responses] == [
        (1.0, 200, "theirs"), (2.0, 200, "theirs"), (2.0, 200, "fork2")]
    h.receive(answer(inv, 486), TARGET)  # non-2xx in Accepted: ignored
    assert len(owner.responses) == 3
    assert h.net.times() == [0.0, 0.5]  # no retransmissions, no ACK from the transaction
    h.clock.advance_to(32.999)
    assert txn.state is State.ACCEPTED
    h.clock.advance_to(33.0)  # Timer M = 64*T1
    assert txn.state is State.TERMINATED and h.layer.clients == {}
    h.receive(answer(inv, 200), TARGET)
    assert [r.status for _, r, _ in h.tu.strays] == [200]  # the dialog layer takes it now


# --------------------------------------------------------------------------- non-INVITE client


def out_request(method: str = "OPTIONS", branch: str = "z9hG4bKn1", **kw: Any) -> Request:
    return request(method, branch=branch, sent_by="192.0.2.200:5060", from_tag="ours", **kw)


@pytest.mark.parametrize("cfg", [TimerConfig(), TimerConfig(1.0, 4.0), TimerConfig(0.25, 1.0)])
def test_timer_e_capped_at_t2_and_timer_f(cfg: TimerConfig) -> None:
    h = Harness(cfg)
    owner = h.owner()
    txn = h.layer.send_request(out_request(), TARGET, owner)
    h.clock.advance(64 * cfg.t1 + 20)
    f = 64 * cfg.t1
    assert h.net.times() == pytest.approx([0.0, *deadlines(0.0, cfg.t1, cfg.t2, f, cap=True)])
    assert owner.timeouts == pytest.approx([f])
    assert txn.state is State.TERMINATED and h.layer.clients == {}


def test_default_timer_e_instants() -> None:
    h = Harness()
    owner = h.owner()
    h.layer.send_request(out_request("REGISTER"), TARGET, owner)
    h.clock.advance(40)
    assert h.net.times() == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert owner.timeouts == [32.0]


def test_timer_e_in_proceeding_uses_t2() -> None:
    h = Harness()
    owner = h.owner()
    req = out_request()
    txn = h.layer.send_request(req, TARGET, owner)
    h.clock.advance_to(0.6)  # one retransmission at 0.5; the next is due at 1.5
    h.receive(answer(req, 100), TARGET)
    assert txn.state is State.PROCEEDING and owner.statuses == [100]
    h.clock.advance_to(40)
    # 1.5 still from Trying, then T2=4 apart (Trying would have gone 3.5, 7.5, ...)
    assert h.net.times() == [0.0, 0.5, 1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert owner.timeouts == [32.0]  # Timer F is not reset by a provisional


def test_final_response_timer_k_on_udp() -> None:
    h = Harness(TimerConfig(t4=4.0))
    owner = h.owner()
    req = out_request()
    txn = h.layer.send_request(req, TARGET, owner)
    h.clock.advance_to(2.0)
    h.receive(answer(req, 200), TARGET)
    assert txn.state is State.COMPLETED and owner.statuses == [200]
    h.receive(answer(req, 200), TARGET)  # absorbed
    assert owner.statuses == [200]
    h.clock.advance_to(5.999)
    assert txn.state is State.COMPLETED and h.net.times() == [0.0, 0.5, 1.5]
    h.clock.advance_to(6.0)  # Timer K = T4
    assert txn.state is State.TERMINATED and h.layer.clients == {}
    assert owner.timeouts == []


def test_final_response_timer_k_zero_on_tcp() -> None:
    h = Harness()
    owner = h.owner()
    req = out_request(transport="TCP")
    txn = h.layer.send_request(req, TCP_TARGET, owner)
    h.clock.advance_to(10)
    assert h.net.times() == [0.0]  # no Timer E on TCP
    h.receive(answer(req, 404), TCP_TARGET)
    assert txn.state is State.TERMINATED and owner.statuses == [404]
    h2 = Harness()
    owner2 = h2.owner()
    h2.layer.send_request(req, TCP_TARGET, owner2)
    h2.clock.advance_to(32)
    assert owner2.timeouts == [32.0]  # Timer F runs on TCP too


def test_responses_match_by_branch_and_cseq_method() -> None:
    h = Harness()
    inv_owner, cancel_owner = h.owner(), h.owner()
    inv = out_invite(branch="z9hG4bKsame")
    h.layer.send_request(inv, TARGET, inv_owner)
    cancel = out_request("CANCEL", branch="z9hG4bKsame")
    h.layer.send_request(cancel, TARGET, cancel_owner)
    h.receive(answer(cancel, 200), TARGET)
    h.receive(answer(inv, 487), TARGET)
    assert cancel_owner.statuses == [200] and inv_owner.statuses == [487]
    h.receive(answer(out_request(branch="z9hG4bKunknown"), 200), TARGET)
    assert [r.status for _, r, _ in h.tu.strays] == [200]


def test_transport_error_times_out_pending_clients_only() -> None:
    h = Harness()
    a, b = h.owner(), h.owner()
    h.layer.send_request(out_request(branch="z9hG4bKa", transport="TCP"), TCP_TARGET, a)
    h.layer.send_request(out_request(branch="z9hG4bKb"), TARGET, b)
    h.clock.advance_to(1.0)
    h.layer.transport_error(TCP_TARGET)
    assert a.timeouts == [1.0] and b.timeouts == []
    assert list(h.layer.clients) == [("z9hG4bKb", "OPTIONS")]


def test_ack_is_never_sent_through_a_transaction() -> None:
    h = Harness()
    with pytest.raises(ValueError):
        h.layer.send_request(out_request("ACK"), TARGET, RecordingOwner(h.clock))
