"""INVITE sessions (RFC 3261 §13-§15, RFC 4028) on a real TransactionLayer, a recording
network and a fake clock that stops at every timer deadline: what each side sends, exactly
when, and what the listener hears.

`Host` plays the engine's part (SessionHost and transaction user: in-dialog routing by dialog
id, ACK and CANCEL dispatch); `Peer` is the far user agent, writing its messages by hand."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sip.builder import IdSource, make_response
from sip.message import Headers, Request, Response
from sip.parser import parse_message
from sip.session import InviteSession, SessionState, UacSession, UasSession
from sip.timers import Timers
from sip.transaction import Address, ServerTransaction, State, TimerConfig, TransactionLayer
from sip.uri import parse_uri
from tests.unit.sipfakes import FakeClock, RecordingNetwork

from .enginefakes import TRUNK_SOURCE, UA, Rig

T1, T2, T4 = 0.5, 4.0, 5.0
START = 1000.0
PEER: Address = ("udp", "192.0.2.10", 5062)
FORK2: Address = ("udp", "192.0.2.11", 5064)
LOCAL = "192.0.2.1:5060"
CONTACT = f"<sip:{LOCAL};transport=udp>"

OFFER = (b"v=0\r\no=peer 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
         b"m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")
ANSWER = (b"v=0\r\no=acd 9 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
          b"m=audio 20000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")
HOLD = ANSWER.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n")


# -- the fakes ------------------------------------------------------------------------------


class Ids(IdSource):
    """Seeded identifiers; `fraction` (the §14.1 retry jitter) fixed when a test says so."""

    def __init__(self, seed: int, fraction: float | None) -> None:
        super().__init__(random.Random(seed).randbytes)
        self._fraction = fraction

    def fraction(self) -> float:
        return super().fraction() if self._fraction is None else self._fraction


class Listener:
    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []
        self.answer: bytes | None = ANSWER  # what on_offer returns

    def on_early(self, session: InviteSession, response: Response) -> None:
        self.events.append(("early", response.status))

    def on_answered(self, session: InviteSession, sdp: bytes) -> None:
        self.events.append(("answered", sdp))

    def on_offer(self, session: InviteSession, sdp: bytes) -> bytes | None:
        self.events.append(("offer", sdp))
        return self.answer

    def on_info(self, session: InviteSession, content_type: str, body: bytes) -> None:
        self.events.append(("info", content_type, body))

    def on_terminated(self, session: InviteSession, reason: str, status: int | None) -> None:
        self.events.append(("terminated", reason, status))

    def of(self, kind: str) -> list[tuple[object, ...]]:
        return [e for e in self.events if e[0] == kind]


@dataclass(frozen=True)
class Out:
    at: float
    addr: Address
    msg: Request | Response

    @property
    def req(self) -> Request:
        assert isinstance(self.msg, Request), self.msg
        return self.msg

    @property
    def resp(self) -> Response:
        assert isinstance(self.msg, Response), self.msg
        return self.msg


class Host:
    """The engine's part: SessionHost for the sessions, transaction user for the layer."""

    user_agent = "test-ua"

    def __init__(self, *, fraction: float | None = None, seed: int = 1) -> None:
        self.timers = Timers()
        self.clock = FakeClock(self.timers, START)
        self.net = RecordingNetwork(self.clock)
        self.ids: IdSource = Ids(seed, fraction)
        self.layer = TransactionLayer(self.net, self, self.timers, TimerConfig(T1, T2, T4),
                                      clock=self.clock, tag_source=self.ids.tag,
                                      server_header=self.user_agent)
        self.sessions: dict[tuple[str, str, str], InviteSession] = {}
        self.listener = Listener()
        self.uas: list[UasSession] = []
        self.on_invite: Callable[[UasSession], None] | None = None
        self._taken = 0

    # SessionHost
    def now(self) -> float:
        return self.clock.now

    def via(self, peer: Address) -> str:
        return f"SIP/2.0/UDP {LOCAL};branch={self.ids.branch()};rport"

    def contact(self, peer: Address) -> str:
        return CONTACT

    def dialog_created(self, session: InviteSession) -> None:
        assert session.id is not None
        self.sessions[session.id] = session

    def session_ended(self, session: InviteSession) -> None:
        if session.id is not None and self.sessions.get(session.id) is session:
            del self.sessions[session.id]

    # TransactionUser
    def on_request(self, txn: ServerTransaction, req: Request) -> None:
        if req.to.tag and req.method != "CANCEL":
            s = self.sessions.get((req.call_id, req.to.tag, req.from_.tag or ""))
            if s is None:
                txn.respond(txn.make_response(481))
            else:
                s.on_request(txn, req)
        elif req.method == "INVITE":
            session = UasSession(self, txn, req, self.listener)
            txn.app = session
            self.uas.append(session)
            if session.check_session_timer() and self.on_invite is not None:
                self.on_invite(session)
        elif req.method == "CANCEL":
            invite = self.layer.find_invite_server(req)
            if invite is None:
                txn.respond(txn.make_response(481))
                return
            txn.to_tag = invite.to_tag
            txn.respond(txn.make_response(200))
            assert isinstance(invite.app, UasSession)
            invite.app.on_cancel()
        else:
            txn.respond(txn.make_response(405))

    def on_ack(self, req: Request, source: Address) -> None:
        s = self.sessions.get((req.call_id, req.to.tag or "", req.from_.tag or ""))
        if s is not None:
            s.on_ack(req)

    def on_stray_response(self, resp: Response, source: Address) -> None:
        s = self.sessions.get((resp.call_id, resp.from_.tag or "", resp.to.tag or ""))
        if isinstance(s, UacSession) and 200 <= resp.status < 300:
            s.on_stray_2xx(resp)

    def on_server_timeout(self, txn: ServerTransaction) -> None:
        return None

    # test side
    def deliver(self, data: bytes, source: Address = PEER) -> list[Out]:
        msg = parse_message(data)
        if isinstance(msg, Request):
            self.layer.receive_request(msg, source)
        else:
            self.layer.receive_response(msg, source)
        return self.take()

    def take(self) -> list[Out]:
        out = [Out(s.at, s.addr, s.message) for s in self.net.sent[self._taken:]]
        self._taken = len(self.net.sent)
        return out

    def advance(self, seconds: float) -> list[Out]:
        self.clock.advance(seconds)
        return self.take()

    def advance_to(self, when: float) -> list[Out]:
        self.clock.advance_to(when)
        return self.take()


def responses(out: Sequence[Out], method: str | None = None) -> list[Response]:
    return [o.resp for o in out if isinstance(o.msg, Response)
            and (method is None or o.msg.cseq.method == method)]


def requests(out: Sequence[Out], method: str | None = None) -> list[Request]:
    return [o.req for o in out if isinstance(o.msg, Request)
            and (method is None or o.msg.method == method)]


def statuses(out: Sequence[Out], method: str | None = None) -> list[int]:
    return [r.status for r in responses(out, method)]


def header_lines(method: str, ruri: str, *, via: str, from_: str, to: str, call_id: str,
                 cseq: str, headers: Sequence[tuple[str, str]] = (), body: bytes = b"",
                 content_type: str | None = None) -> bytes:
    lines = [f"{method} {ruri} SIP/2.0", f"Via: {via}", "Max-Forwards: 70", f"From: {from_}",
             f"To: {to}", f"Call-ID: {call_id}", f"CSeq: {cseq}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body:
        lines.append(f"Content-Type: {content_type or 'application/sdp'}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Caller:
    """The far end of a UasSession: it sent the INVITE."""

    def __init__(self, host: Host, *, call_id: str = "call-1@192.0.2.10") -> None:
        self.host = host
        self.call_id = call_id
        self.tag = "callertag"
        self.cseq = 100
        self.invite_branch = "z9hG4bKcaller-invite"
        self.invite_data = b""
        self.invite_cseq = self.cseq
        self.our_tag = ""  # the To tag the session gave us
        self._n = 0

    def branch(self) -> str:
        self._n += 1
        return f"z9hG4bKcaller{self._n}"

    def via(self, branch: str) -> str:
        return f"SIP/2.0/UDP 192.0.2.10:5062;branch={branch}"

    def invite(self, *, body: bytes = OFFER, headers: Sequence[tuple[str, str]] = ()) -> list[Out]:
        self.invite_data = header_lines(
            "INVITE", "sip:1003@acd.local", via=self.via(self.invite_branch),
            from_=f"<sip:alice@example.com>;tag={self.tag}", to="<sip:1003@acd.local>",
            call_id=self.call_id, cseq=f"{self.cseq} INVITE",
            headers=[("Contact", "<sip:alice@192.0.2.10:5062>"), *headers], body=body)
        out = self.host.deliver(self.invite_data)
        if self.host.uas:
            self.our_tag = self.host.uas[-1].local_tag
        return out

    def cancel(self) -> list[Out]:
        return self.host.deliver(header_lines(
            "CANCEL", "sip:1003@acd.local", via=self.via(self.invite_branch),
            from_=f"<sip:alice@example.com>;tag={self.tag}", to="<sip:1003@acd.local>",
            call_id=self.call_id, cseq=f"{self.cseq} CANCEL"))

    def in_dialog(self, method: str, *, cseq: int | None = None, body: bytes = b"",
                  content_type: str | None = None,
                  headers: Sequence[tuple[str, str]] = (), branch: str | None = None) -> bytes:
        if cseq is None and method != "ACK":
            self.cseq += 1
        seq = cseq if cseq is not None else self.cseq
        return header_lines(
            method, "sip:1003@192.0.2.1:5060", via=self.via(branch or self.branch()),
            from_=f"<sip:alice@example.com>;tag={self.tag}",
            to=f"<sip:1003@acd.local>;tag={self.our_tag}", call_id=self.call_id,
            cseq=f"{seq} {method}", headers=headers, body=body, content_type=content_type)

    def send(self, method: str, **kw: object) -> list[Out]:
        return self.host.deliver(self.in_dialog(method, **kw))  # type: ignore[arg-type]

    def ack(self, cseq: int | None = None, body: bytes = b"") -> list[Out]:
        """The ACK of a 2xx: a transaction of its own."""
        return self.host.deliver(self.in_dialog("ACK", cseq=cseq or self.cseq, body=body))

    def ack_failure(self) -> list[Out]:
        """The ACK of a non-2xx final response to the INVITE: the INVITE's branch."""
        return self.host.deliver(header_lines(
            "ACK", "sip:1003@acd.local", via=self.via(self.invite_branch),
            from_=f"<sip:alice@example.com>;tag={self.tag}",
            to=f"<sip:1003@acd.local>;tag={self.our_tag}", call_id=self.call_id,
            cseq=f"{self.invite_cseq} ACK"))

    def respond(self, req: Request, status: int, *, body: bytes = b"") -> list[Out]:
        """Answer a request the session sent us."""
        resp = make_response(req, status)
        if body:
            resp.set_body(body, "application/sdp")
        return self.host.deliver(resp.serialize())


def uas_session(host: Host | None = None, *, body: bytes = OFFER,
                headers: Sequence[tuple[str, str]] = ()) -> tuple[Host, Caller, UasSession]:
    host = host or Host()
    caller = Caller(host)
    out = caller.invite(body=body, headers=headers)
    assert statuses(out) == [100]
    return host, caller, host.uas[-1]


def confirmed_uas(**kw: object) -> tuple[Host, Caller, UasSession]:
    host, caller, session = uas_session(**kw)  # type: ignore[arg-type]
    session.answer(ANSWER)
    assert statuses(host.take()) == [200]
    caller.ack()
    assert session.state is SessionState.CONFIRMED
    host.listener.events.clear()
    return host, caller, session


# -- UAS ------------------------------------------------------------------------------------


def test_uas_sends_100_at_once_without_a_tag() -> None:
    host = Host()
    out = Caller(host).invite()
    assert statuses(out) == [100]
    assert out[0].resp.to.tag is None
    assert out[0].addr == PEER
    session = host.uas[0]
    assert session.state is SessionState.INITIAL
    assert session.dialog is None and host.sessions == {}  # no dialog before a tagged response


def test_uas_ring_sends_180_with_to_tag_and_contact_and_makes_an_early_dialog() -> None:
    host, _caller, session = uas_session()
    session.ring()
    (ringing,) = responses(host.take())
    assert ringing.status == 180
    assert ringing.to.tag == session.local_tag
    assert ringing.headers.get("contact") == CONTACT
    assert session.state is SessionState.EARLY
    assert host.sessions == {("call-1@192.0.2.10", session.local_tag, "callertag"): session}


def test_uas_ring_with_sdp_is_183_session_progress() -> None:
    host, _caller, session = uas_session()
    session.ring(ANSWER)
    (progress,) = responses(host.take())
    assert progress.status == 183
    assert progress.body == ANSWER
    assert progress.headers.get("content-type") == "application/sdp"


def test_uas_200_is_retransmitted_doubling_from_t1_capped_at_t2_until_the_ack() -> None:
    host, caller, session = uas_session()
    session.answer(ANSWER)
    (ok,) = responses(host.take())
    assert ok.status == 200 and ok.body == ANSWER
    assert ok.to.tag == session.local_tag
    assert ok.headers.get("contact") == CONTACT
    out = host.advance(12.0)
    offsets = [round(o.at - START, 3) for o in out]
    assert offsets == [0.5, 1.5, 3.5, 7.5, 11.5]  # T1, 2T1, 4T1, then T2 = 4 s apart
    assert all(o.msg.serialize() == ok.serialize() for o in out)  # the very same 200
    assert caller.ack() == []
    assert session.state is SessionState.CONFIRMED
    assert host.listener.events == [("answered", OFFER)]
    assert host.advance(60.0) == []  # the ACK stopped them


def test_uas_without_ack_sends_bye_and_ends_at_64_t1() -> None:
    host, _caller, session = uas_session()
    session.answer(ANSWER)
    host.take()
    out = host.advance_to(START + 64 * T1 - 0.001)
    assert [round(o.at - START, 3) for o in out] == [
        0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert session.active
    out = host.advance_to(START + 64 * T1)
    byes = requests(out, "BYE")
    assert len(byes) == 1 and out[0].at == START + 64 * T1
    assert responses(out) == []  # no 200 after the deadline
    assert byes[0].to.tag == "callertag" and byes[0].from_.tag == session.local_tag
    assert host.listener.events == [("terminated", "no-ack", 408)]
    assert host.sessions == {}
    assert responses(host.advance(60.0)) == []


def test_uas_ack_with_late_offer_answer() -> None:
    host, caller, session = uas_session(body=b"")
    assert session.remote_sdp == b""
    session.answer(ANSWER)  # a late-offer INVITE: our 200 carries the offer
    host.take()
    caller.ack(body=OFFER)  # and the ACK the answer
    assert session.state is SessionState.CONFIRMED
    assert session.remote_sdp == OFFER
    assert host.listener.events == [("answered", OFFER)]


def test_uas_cancel_before_answer_gives_200_and_487() -> None:
    host, caller, session = uas_session()
    session.ring()
    host.take()
    out = caller.cancel()
    assert statuses(out, "CANCEL") == [200]
    assert statuses(out, "INVITE") == [487]
    cancel_ok, terminated = responses(out, "CANCEL")[0], responses(out, "INVITE")[0]
    assert cancel_ok.to.tag == terminated.to.tag == session.local_tag  # §9.2
    assert host.listener.events == [("terminated", "cancelled", 487)]
    assert session.state is SessionState.TERMINATED
    assert host.sessions == {}
    session.answer(ANSWER)  # too late: nothing more goes out
    assert host.take() == []


def test_uas_cancel_after_answer_changes_nothing() -> None:
    host, caller, session = uas_session()
    session.answer(ANSWER)
    host.take()
    out = caller.cancel()
    assert statuses(out) == [200]  # the CANCEL's own 200, no 487
    assert statuses(out, "CANCEL") == [200]
    assert session.state is SessionState.ANSWERED
    assert host.listener.events == []
    assert statuses(host.advance(0.5)) == [200]  # still retransmitting the INVITE's 200
    caller.ack()
    assert session.state is SessionState.CONFIRMED


def test_uas_bye_in_dialog_is_200_and_ends_the_session() -> None:
    host, caller, session = confirmed_uas()
    out = caller.send("BYE")
    assert statuses(out, "BYE") == [200]
    assert responses(out)[0].to.tag == session.local_tag
    assert host.listener.events == [("terminated", "bye", None)]
    assert host.sessions == {}
    # a BYE for the ended dialog is no longer anybody's
    assert statuses(caller.send("BYE")) == [481]


def test_uas_bye_before_the_answer_also_ends_the_invite_with_487() -> None:
    # §15.1.2: the caller may BYE an early dialog; the pending INVITE still needs its final
    host, caller, session = uas_session()
    session.ring()
    host.take()
    out = caller.send("BYE")
    assert statuses(out, "BYE") == [200]
    assert statuses(out, "INVITE") == [487]
    assert host.listener.events == [("terminated", "bye", None)]
    caller.ack_failure()
    host.advance(T4)  # Timer I: the INVITE's transaction is over
    assert [k[3] for k in host.layer.servers] == ["BYE"]


def test_uas_out_of_order_cseq_is_500() -> None:
    _host, caller, session = confirmed_uas()
    assert statuses(caller.send("INFO", cseq=110)) == [200]
    out = caller.send("OPTIONS", cseq=105)
    assert statuses(out) == [500]
    assert session.active and session.dialog is not None
    assert session.dialog.remote_seq == 110
    assert statuses(caller.send("OPTIONS", cseq=111)) == [200]


def test_uas_reinvite_with_offer_gets_200_with_answer_until_ack() -> None:
    host, caller, session = confirmed_uas()
    new_offer = OFFER.replace(b"40000", b"40002")
    out = caller.send("INVITE", body=new_offer,
                      headers=[("Contact", "<sip:alice@198.51.100.7:6000>")])
    assert statuses(out) == [100, 200]
    ok = responses(out)[1]
    assert ok.body == ANSWER
    assert ok.headers.get("contact") == CONTACT
    assert host.listener.events == [("offer", new_offer)]
    assert session.remote_sdp == new_offer
    assert session.dialog is not None
    assert str(session.dialog.remote_target) == "sip:alice@198.51.100.7:6000"  # target refresh
    t0 = host.clock.now
    out = host.advance(4.0)
    assert [round(o.at - t0, 3) for o in out] == [0.5, 1.5, 3.5]
    assert all(o.resp.serialize() == ok.serialize() for o in out)
    caller.ack()
    assert host.advance(30.0) == []
    assert session.state is SessionState.CONFIRMED


def test_uas_refused_reoffer_is_488_and_keeps_the_session() -> None:
    host, caller, session = confirmed_uas()
    host.listener.answer = None
    out = caller.send("INVITE", body=OFFER)
    assert statuses(out) == [100, 488]
    assert session.state is SessionState.CONFIRMED
    assert session.remote_sdp == OFFER  # unchanged: it was the first offer already


def test_uas_stale_ack_does_not_stop_the_reinvite_200() -> None:
    # an ACK retransmission for the first INVITE's 200 is not the ACK of the re-INVITE
    host, caller, _session = confirmed_uas()
    first_invite_seq = caller.cseq
    caller.send("INVITE", body=OFFER)
    caller.ack(cseq=first_invite_seq)
    assert statuses(host.advance(0.5)) == [200]
    caller.ack()
    assert host.advance(10.0) == []


def test_uas_reinvite_while_ours_is_pending_is_491() -> None:
    host, caller, session = confirmed_uas()
    assert session.reinvite(HOLD) is True
    (ours,) = requests(host.take(), "INVITE")
    assert ours.body == HOLD
    out = caller.send("INVITE", body=OFFER)
    assert statuses(out) == [100, 491]
    assert host.listener.of("offer") == []
    assert session.reinvite(HOLD) is False  # still ours pending


def test_uas_update_with_offer_gets_200_with_answer() -> None:
    host, caller, _session = confirmed_uas()
    out = caller.send("UPDATE", body=OFFER)
    assert statuses(out) == [200]
    assert responses(out)[0].body == ANSWER
    assert host.listener.events == [("offer", OFFER)]
    assert host.advance(10.0) == []  # UPDATE is not an INVITE: no 2xx retransmission


def test_uas_info_dtmf_relay_is_200_and_reported() -> None:
    host, caller, _session = confirmed_uas()
    body = b"Signal=5\r\nDuration=160\r\n"
    out = caller.send("INFO", body=body, content_type="application/dtmf-relay")
    assert statuses(out) == [200]
    assert host.listener.events == [("info", "application/dtmf-relay", body)]


def test_uas_info_of_another_content_type_is_415_with_accept() -> None:
    host, caller, _session = confirmed_uas()
    out = caller.send("INFO", body=b"hello", content_type="text/plain")
    assert statuses(out) == [415]
    assert "application/dtmf-relay" in (responses(out)[0].headers.get("accept") or "")
    assert host.listener.events == []


def test_uas_options_in_dialog_is_200_and_unknown_method_405() -> None:
    _host, caller, _session = confirmed_uas()
    assert statuses(caller.send("OPTIONS")) == [200]
    assert statuses(caller.send("MESSAGE")) == [405]


# -- session timers (RFC 4028), we are the non-refresher ----------------------------------------

TIMER_HEADERS = (("Session-Expires", "1800"), ("Supported", "timer"))


def test_session_timer_200_names_the_uac_as_refresher_and_requires_timer() -> None:
    host, _caller, session = uas_session(headers=TIMER_HEADERS)
    session.answer(ANSWER)
    (ok,) = responses(host.take())
    assert ok.headers.get("session-expires") == "1800;refresher=uac"
    assert ok.headers.get("require") == "timer"


def test_session_timer_without_refresh_ends_with_bye_at_se_minus_32() -> None:
    host, caller, session = uas_session(headers=TIMER_HEADERS)
    session.answer(ANSWER)
    caller.ack()
    host.take()
    deadline = START + 1800 - 32
    out = host.advance_to(deadline - 0.01)
    assert requests(out, "BYE") == []
    assert session.active
    out = host.advance_to(deadline)
    assert len(requests(out, "BYE")) == 1
    assert host.listener.of("terminated") == [("terminated", "session-expired", 408)]
    assert host.sessions == {}


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
def test_session_refresh_postpones_the_bye(method: str) -> None:
    host, caller, session = uas_session(headers=TIMER_HEADERS)
    session.answer(ANSWER)
    caller.ack()
    host.advance_to(START + 1000)
    out = caller.send(method, headers=list(TIMER_HEADERS))
    ok = responses(out, method)[-1]
    assert ok.status == 200
    assert ok.headers.get("session-expires") == "1800;refresher=uac"
    if method == "INVITE":
        caller.ack()
    out = host.advance_to(START + 1000 + 1768 - 0.01)
    assert requests(out, "BYE") == []
    assert session.active
    assert len(requests(host.advance_to(START + 1000 + 1768), "BYE")) == 1
    assert not session.active


def test_session_expires_90_is_the_minimum_and_a_third_of_it_is_the_margin() -> None:
    host, caller, session = uas_session(headers=(("x", "90"), ("k", "timer")))  # compact
    session.answer(ANSWER)
    (ok,) = responses(host.take())
    assert ok.headers.get("session-expires") == "90;refresher=uac"
    caller.ack()
    assert requests(host.advance_to(START + 59.99), "BYE") == []
    assert len(requests(host.advance_to(START + 60), "BYE")) == 1  # 90 - min(32, 30)


def test_session_expires_below_90_is_422_with_min_se() -> None:
    host = Host()
    out = Caller(host).invite(headers=(("Session-Expires", "60"), ("Supported", "timer")))
    assert statuses(out) == [100, 422]
    assert responses(out)[1].headers.get("min-se") == "90"
    assert host.listener.events == [("terminated", "rejected", 422)]


def test_session_expires_without_supported_timer_is_ignored() -> None:
    host, _caller, session = uas_session(headers=(("Session-Expires", "1800"),))
    session.answer(ANSWER)
    (ok,) = responses(host.take())
    assert ok.headers.get("session-expires") is None
    assert ok.headers.get("require") is None


def test_engine_refuses_require_100rel_with_420() -> None:
    rig = Rig()
    trunk = UA(rig, "provider", ip=TRUNK_SOURCE[1], port=TRUNK_SOURCE[2])
    got = trunk.send(trunk.invite("19001000", headers=[("Require", "100rel")]))
    assert [r.status for r in got] == [100, 420]
    assert got[1].headers.get("unsupported") == "100rel"
    # only supporting it is fine: the INVITE goes on (to the 480 of a rig without media)
    got = trunk.send(trunk.invite("19001000", headers=[("Supported", "100rel")],
                                  call_id="other-call"))
    assert [r.status for r in got] == [100, 480]


# -- UAC ------------------------------------------------------------------------------------


class Callee:
    """The far end of a UacSession: answers our INVITE, maybe from several forks."""

    def __init__(self, host: Host, invite: Request) -> None:
        self.host = host
        self.invite = invite
        self._n = 0

    def respond(self, status: int, *, tag: str | None = "calleetag",
                contact: str | None = "<sip:1003@192.0.2.10:5062;transport=udp>",
                record_route: Sequence[str] = (), body: bytes = b"",
                source: Address = PEER, to: Request | None = None) -> list[Out]:
        req = to or self.invite
        resp = make_response(req, status, to_tag=tag if status != 100 else None)
        h = resp.headers
        for rr in record_route:
            h.insert(len(h) - 1, "Record-Route", rr)
        if contact is not None and status != 100:
            h.insert(len(h) - 1, "Contact", contact)
        if body:
            resp.set_body(body, "application/sdp")
        return self.host.deliver(resp.serialize(), source)

    def request(self, method: str, cseq: int, our_tag: str, their_tag: str = "calleetag",
                body: bytes = b"") -> list[Out]:
        self._n += 1
        data = header_lines(
            method, CONTACT[1:-1], via=f"SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKcallee{self._n}",
            from_=f"<sip:1003@acd.local>;tag={their_tag}",
            to=f"<sip:19001000@acd.local>;tag={our_tag}", call_id=self.invite.call_id,
            cseq=f"{cseq} {method}", body=body)
        return self.host.deliver(data)


def place(host: Host | None = None) -> tuple[Host, UacSession, Callee]:
    host = host or Host()
    h = Headers()
    h.add("Via", host.via(PEER))
    h.add("Max-Forwards", "70")
    h.add("From", f"<sip:19001000@acd.local>;tag={host.ids.tag()}")
    h.add("To", "<sip:1003@acd.local>")
    h.add("Call-ID", "uac-call@acd")
    h.add("CSeq", "1 INVITE")
    h.add("Contact", CONTACT)
    h.add("Content-Length", "0")
    invite = Request("INVITE", parse_uri("sip:1003@192.0.2.10:5062"), h)
    invite.set_body(ANSWER, "application/sdp")
    session = UacSession(host, invite, PEER, host.listener)
    session.start()
    (sent,) = requests(host.take(), "INVITE")
    assert sent.serialize() == invite.serialize()
    return host, session, Callee(host, invite)


def test_uac_invite_goes_through_an_invite_client_transaction() -> None:
    host, session, _callee = place()
    assert session.txn is not None and session.txn in host.layer.clients.values()
    # Timer A: retransmitted at T1 while nothing answers
    out = host.advance(T1)
    assert [o.req.method for o in out] == ["INVITE"]


def test_uac_tagged_180_makes_an_early_dialog() -> None:
    host, session, callee = place()
    callee.respond(180)
    assert session.state is SessionState.EARLY
    assert host.listener.events == [("early", 180)]
    assert session.dialog is not None
    assert host.sessions == {("uac-call@acd", session.invite.from_.tag or "", "calleetag"):
                             session}
    assert host.advance(2.0) == []  # a provisional stops Timer A


def test_uac_180_without_tag_reports_early_but_makes_no_dialog() -> None:
    host, session, callee = place()
    callee.respond(180, tag=None)
    assert host.listener.events == [("early", 180)]
    assert session.dialog is None and host.sessions == {}


def test_uac_200_is_acked_with_the_invite_cseq_a_new_branch_and_the_route_set() -> None:
    host, session, callee = place()
    callee.respond(180)
    out = callee.respond(200, body=OFFER, contact="<sip:1003@192.0.2.10:7777;transport=udp>",
                         record_route=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    (ack,) = requests(out, "ACK")
    assert out[0].addr == PEER
    assert (ack.cseq.seq, ack.cseq.method) == (1, "ACK")
    assert ack.top_via.branch != session.invite.top_via.branch
    assert str(ack.uri) == "sip:1003@192.0.2.10:7777;transport=udp"  # the 2xx's Contact
    assert ack.headers.get_all("route") == ["<sip:p2.example.com;lr>",
                                            "<sip:p1.example.com;lr>"]
    assert ack.to.tag == "calleetag"
    assert host.listener.events == [("early", 180), ("answered", OFFER)]
    assert session.state is SessionState.CONFIRMED
    assert session.remote_sdp == OFFER


def test_uac_route_set_comes_from_the_2xx_not_the_early_dialog() -> None:
    # §13.2.2.4: confirming an early dialog recomputes its route set from the 2xx
    _host, _session, callee = place()
    callee.respond(180, record_route=("<sip:p1.example.com;lr>",))
    out = callee.respond(200, body=OFFER,
                         record_route=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    (ack,) = requests(out, "ACK")
    assert ack.headers.get_all("route") == ["<sip:p2.example.com;lr>",
                                            "<sip:p1.example.com;lr>"]


def test_uac_retransmitted_200_is_acked_again() -> None:
    host, _session, callee = place()
    first = requests(callee.respond(200, body=OFFER), "ACK")
    again = requests(callee.respond(200, body=OFFER), "ACK")
    assert len(first) == len(again) == 1
    assert again[0].cseq == first[0].cseq and again[0].uri == first[0].uri
    assert host.listener.of("answered") == [("answered", OFFER)]  # reported once
    # after Timer M the transaction is gone: the dialog still ACKs a late retransmission
    host.advance(64 * T1)
    late = requests(callee.respond(200, body=OFFER), "ACK")
    assert len(late) == 1 and late[0].cseq.seq == 1


def test_uac_cancel_before_any_provisional_waits_for_one() -> None:
    host, session, callee = place()
    session.cancel()
    assert requests(host.take(), "CANCEL") == []  # §9.1: not before a provisional
    out = callee.respond(100)
    (cancel,) = requests(out, "CANCEL")
    assert cancel.top_via.branch == session.invite.top_via.branch
    assert (cancel.cseq.seq, cancel.cseq.method) == (1, "CANCEL")
    assert str(cancel.uri) == str(session.invite.uri)
    assert host.listener.events == []


def test_uac_cancel_after_180_is_sent_at_once_and_487_ends_it() -> None:
    host, session, callee = place()
    callee.respond(180)
    session.cancel()
    (cancel,) = requests(host.take(), "CANCEL")
    assert cancel.top_via.branch == session.invite.top_via.branch
    out = callee.respond(487)
    (ack,) = requests(out, "ACK")  # the transaction ACKs the 487 on the INVITE's branch
    assert ack.top_via.branch == session.invite.top_via.branch
    assert host.listener.events == [("early", 180), ("terminated", "cancelled", 487)]
    assert host.sessions == {}


def test_uac_cancel_without_any_final_response_gives_up_after_64_t1() -> None:
    host, session, callee = place()
    callee.respond(180)
    session.cancel()
    host.take()
    host.advance(64 * T1 - 0.01)
    assert session.active
    host.advance(0.01)
    assert host.listener.of("terminated") == [("terminated", "cancelled", 408)]
    assert host.sessions == {}
    assert not any(t.request.method == "INVITE" for t in host.layer.clients.values())


def test_uac_200_crossing_our_cancel_is_acked_and_byed() -> None:
    host, session, callee = place()
    callee.respond(180)
    session.cancel()
    host.take()
    out = callee.respond(200, body=OFFER)
    assert [o.req.method for o in out] == ["ACK", "BYE"]
    bye = out[1].req
    assert bye.to.tag == "calleetag" and bye.cseq.seq == 2
    assert host.listener.of("terminated") == [("terminated", "cancelled", 200)]
    assert host.listener.of("answered") == []
    assert host.sessions == {}


def test_uac_second_fork_answering_is_acked_and_byed() -> None:
    host, session, callee = place()
    callee.respond(200, body=OFFER, tag="fork1")
    out = callee.respond(200, body=OFFER, tag="fork2",
                         contact="<sip:1003@192.0.2.11:5064;transport=udp>", source=FORK2)
    assert [o.req.method for o in out] == ["ACK", "BYE"]
    ack, bye = out[0].req, out[1].req
    assert ack.to.tag == bye.to.tag == "fork2"
    assert str(bye.uri) == "sip:1003@192.0.2.11:5064;transport=udp"
    assert session.dialog is not None and session.dialog.remote_tag == "fork1"
    assert session.state is SessionState.CONFIRMED
    assert host.listener.of("answered") == [("answered", OFFER)]


def test_uac_second_fork_retransmitting_its_200_is_only_acked_again() -> None:
    _host, _session, callee = place()
    callee.respond(200, body=OFFER, tag="fork1")

    def fork2() -> list[Out]:
        return callee.respond(200, body=OFFER, tag="fork2", source=FORK2,
                              contact="<sip:1003@192.0.2.11:5064;transport=udp>")

    assert [o.req.method for o in fork2()] == ["ACK", "BYE"]
    again = fork2()
    assert [o.req.method for o in again] == ["ACK"]  # one BYE is enough
    assert again[0].req.to.tag == "fork2"


def test_uac_early_dialog_of_another_fork_does_not_outlive_the_answer() -> None:
    host, session, callee = place()
    callee.respond(180, tag="fork1")
    callee.respond(200, body=OFFER, tag="fork2")
    assert session.dialog is not None and session.dialog.remote_tag == "fork2"
    assert list(host.sessions.values()) == [session]
    assert set(host.sessions) == {session.id}
    session.hangup()
    assert host.sessions == {}


@pytest.mark.parametrize("status", [404, 486, 603])
def test_uac_failure_ends_the_session(status: int) -> None:
    host, _session, callee = place()
    callee.respond(180)
    callee.respond(status)
    assert host.listener.of("terminated") == [("terminated", "failed", status)]
    assert host.sessions == {}


def test_uac_timer_b_without_any_response_is_timeout() -> None:
    host, session, _callee = place()
    host.advance_to(START + 64 * T1 - 0.01)
    assert session.active
    host.advance_to(START + 64 * T1)
    assert host.listener.events == [("terminated", "timeout", 408)]


def test_uac_bye_from_the_callee_ends_the_session() -> None:
    host, session, callee = place()
    callee.respond(200, body=OFFER)
    host.take()
    out = callee.request("BYE", 1, session.invite.from_.tag or "")
    assert statuses(out) == [200]
    assert host.listener.of("terminated") == [("terminated", "bye", None)]
    assert host.sessions == {}


def test_uac_hangup_sends_bye_to_the_dialog_peer() -> None:
    host, session, callee = place()
    callee.respond(200, body=OFFER, record_route=("<sip:p1.example.com;lr>",))
    host.take()
    session.hangup()
    (bye,) = requests(out := host.take(), "BYE")
    assert out[0].addr == PEER
    assert str(bye.uri) == "sip:1003@192.0.2.10:5062;transport=udp"
    assert bye.headers.get_all("route") == ["<sip:p1.example.com;lr>"]
    assert bye.cseq.seq == 2 and bye.to.tag == "calleetag"
    assert bye.headers.get("user-agent") == "test-ua"
    assert host.listener.events[-1] == ("terminated", "hangup", None)
    assert host.sessions == {}


def test_uac_hangup_while_ringing_cancels() -> None:
    host, session, callee = place()
    callee.respond(180)
    session.hangup()
    assert len(requests(host.take(), "CANCEL")) == 1
    assert session.active  # until the 487


def test_uac_reinvite_hold_is_acked() -> None:
    host, session, callee = place()
    callee.respond(200, body=OFFER)
    host.take()
    assert session.reinvite(HOLD)
    (reinvite,) = requests(host.take(), "INVITE")
    assert reinvite.cseq.seq == 2 and reinvite.body == HOLD
    assert reinvite.to.tag == "calleetag"
    assert reinvite.headers.get("contact") == CONTACT
    held = OFFER.replace(b"t=0 0\r\n", b"t=0 0\r\na=recvonly\r\n")
    out = callee.respond(200, body=held, to=reinvite)
    (ack,) = requests(out, "ACK")
    assert (ack.cseq.seq, ack.cseq.method) == (2, "ACK")
    assert session.remote_sdp == held
    assert session.reinvite(ANSWER)  # nothing pending any more


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.999])
def test_uac_491_retries_within_2_1_to_4_seconds(fraction: float) -> None:
    host, session, callee = place(Host(fraction=fraction))
    callee.respond(200, body=OFFER)
    host.take()
    session.reinvite(HOLD)
    (reinvite,) = requests(host.take(), "INVITE")
    out = callee.respond(491, to=reinvite)
    assert [o.req.method for o in out] == ["ACK"]  # the transaction ACKs the 491
    t491 = host.clock.now
    delay = 2.1 + 1.9 * fraction
    assert requests(host.advance_to(t491 + delay - 0.001), "INVITE") == []
    (retry,) = requests(host.advance_to(t491 + delay), "INVITE")
    assert 2.1 <= delay < 4.0
    assert retry.body == HOLD and retry.cseq.seq == 3


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.999])
def test_uas_491_retries_within_0_to_2_seconds(fraction: float) -> None:
    host, caller, session = confirmed_uas(host=Host(fraction=fraction))
    session.reinvite(HOLD)
    (reinvite,) = requests(host.take(), "INVITE")
    caller.respond(reinvite, 491)
    t491 = host.clock.now
    delay = 2.0 * fraction
    if delay > 0:
        assert requests(host.advance_to(t491 + delay - 0.001), "INVITE") == []
    (retry,) = requests(host.advance_to(t491 + delay), "INVITE")
    assert retry.body == HOLD and retry.cseq.seq == reinvite.cseq.seq + 1


def test_reinvite_481_hangs_up() -> None:
    host, session, callee = place()
    callee.respond(200, body=OFFER)
    host.take()
    session.reinvite(HOLD)
    (reinvite,) = requests(host.take(), "INVITE")
    callee.respond(481, to=reinvite)
    assert host.listener.events[-1] == ("terminated", "hangup", None)


def test_info_dtmf_goes_in_dialog() -> None:
    host, session, callee = place()
    callee.respond(200, body=OFFER)
    host.take()
    session.send_info_dtmf("7")
    (info,) = requests(host.take(), "INFO")
    assert info.headers.get("content-type") == "application/dtmf-relay"
    assert info.body == b"Signal=7\r\nDuration=160\r\n"
    assert info.cseq.seq == 2


# -- any interleaving of a UAC leg ------------------------------------------------------------


class UacLeg(RuleBasedStateMachine):
    """Random responses, forks, cancels, hang-ups, BYEs and time: the session ends exactly
    once, leaves no dialog behind, ACKs every 2xx that reaches it, and once everything has
    timed out no transaction is left."""

    def __init__(self) -> None:
        super().__init__()
        self.host, self.session, self.callee = place()

    @rule(status=st.sampled_from([100, 180, 183]), tag=st.sampled_from(["a", "b", None]))
    def provisional(self, status: int, tag: str | None) -> None:
        self.callee.respond(status, tag=tag)

    @rule(tag=st.sampled_from(["a", "b"]))
    def answer(self, tag: str) -> None:
        txn = self.session.txn
        assert txn is not None
        # the transaction passes a 2xx on unless it already ended with a non-2xx final
        reaches = txn.state in (State.CALLING, State.PROCEEDING, State.ACCEPTED) or (
            txn.state is State.TERMINATED and self.session.dialog is not None
            and self.session.dialog.remote_tag == tag and self.session.active)
        out = self.callee.respond(200, tag=tag, body=OFFER)
        acks = [r for r in requests(out, "ACK") if r.cseq.seq == 1 and r.to.tag == tag]
        assert len(acks) == (1 if reaches else 0)

    @rule(status=st.sampled_from([404, 486, 487, 503, 603]))
    def failure(self, status: int) -> None:
        self.callee.respond(status, tag="a")

    @rule()
    def cancel(self) -> None:
        self.session.cancel()

    @rule()
    def hangup(self) -> None:
        self.session.hangup()

    @precondition(lambda self: self.session.dialog is not None)
    @rule()
    def bye(self) -> None:
        d = self.session.dialog
        assert d is not None
        self.callee.request("BYE", 50, d.local_tag, d.remote_tag)

    @rule(seconds=st.sampled_from([0.5, 4.0, 40.0]))
    def wait(self, seconds: float) -> None:
        self.host.advance(seconds)

    @invariant()
    def ends_once_and_cleans_up(self) -> None:
        ended = self.host.listener.of("terminated")
        assert len(ended) <= 1
        assert (len(ended) == 1) == (self.session.state is SessionState.TERMINATED)
        assert len(self.host.listener.of("answered")) <= 1
        # a dialog is registered only while the session lives, and only its current one
        assert all(s is self.session and s.active and k == s.id
                   for k, s in self.host.sessions.items())

    def teardown(self) -> None:
        self.session.hangup()
        self.host.advance(200.0)
        assert not self.session.active
        assert self.host.sessions == {}
        assert self.host.layer.clients == {}
        assert len(self.host.listener.of("terminated")) == 1


TestUacLeg = UacLeg.TestCase
TestUacLeg.settings = settings(max_examples=150, stateful_step_count=25, deadline=None)


def test_uas_hangup_before_the_ack_waits_for_it_then_byes() -> None:
    # §15: the callee's UA MUST NOT send BYE before the ACK (or the 2xx timing out)
    host, caller, session = uas_session()
    session.answer(ANSWER)
    host.take()
    session.hangup()
    assert requests(host.take(), "BYE") == []
    assert session.active and host.sessions  # the ACK must still find the dialog
    assert statuses(host.advance(0.5)) == [200]  # and the 2xx keeps going until then
    out = caller.ack()
    (bye,) = requests(out, "BYE")
    assert bye.to.tag == "callertag"
    assert host.listener.events == [("terminated", "hangup", None)]
    assert host.sessions == {}
    assert responses(host.advance(10.0)) == []  # no more 200s


def test_uas_hangup_before_an_ack_that_never_comes_byes_at_64_t1() -> None:
    host, _caller, session = uas_session()
    session.answer(ANSWER)
    session.hangup()
    host.take()
    out = host.advance_to(START + 64 * T1)
    assert len(requests(out, "BYE")) == 1
    assert host.listener.events == [("terminated", "no-ack", 408)]
