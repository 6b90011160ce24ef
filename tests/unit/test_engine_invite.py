"""INVITE before call handling exists: who may call which number (trunk source, digest
credentials), the 480 that stands in for a call, its Timer G retransmissions until the ACK,
and CANCEL against transactions that are already answered or never existed."""

from __future__ import annotations

from sip.authparams import parse_auth_value
from sip.message import Response

from .enginefakes import TRUNK_SOURCE, UA, Rig

REASON_480 = 'SIP;cause=480;text="no media engine"'  # the rig has no RTP


def trunk_ua(rig: Rig) -> UA:
    return UA(rig, "provider", ip=TRUNK_SOURCE[1], port=TRUNK_SOURCE[2])


def test_trunk_call_to_hotline_gets_100_then_480_with_reason() -> None:
    rig = Rig()
    trunk = trunk_ua(rig)
    got = trunk.send(trunk.invite("19001000"))
    assert [r.status for r in got] == [100, 480]
    trying, final = got
    assert trying.to.tag is None  # 100 Trying never carries a To tag
    assert final.to.tag
    assert final.headers.get("reason") == REASON_480
    assert final.call_id == trunk.call_id
    assert final.headers.get("cseq") == "1 INVITE"
    # no credentials were asked of a known trunk source
    assert final.headers.get_all("proxy-authenticate") == []


def test_second_hotline_of_the_trunk_is_known_too() -> None:
    rig = Rig()
    trunk = trunk_ua(rig)
    assert [r.status for r in trunk.send(trunk.invite("19002000"))] == [100, 480]


def test_trunk_call_to_unknown_number_is_404() -> None:
    rig = Rig()
    trunk = trunk_ua(rig)
    assert [r.status for r in trunk.send(trunk.invite("5550000"))] == [100, 404]


def test_trunk_source_port_must_match() -> None:
    # the demo trunk is 127.0.0.1:5080; the same host from another port is a stranger
    rig = Rig()
    ua = UA(rig, "provider", ip="127.0.0.1", port=5081)
    got = ua.send(ua.invite("19001000"))
    assert [r.status for r in got] == [100, 407]


def test_invite_from_unknown_source_is_407_with_proxy_authenticate() -> None:
    rig = Rig()
    ua = UA(rig)
    got = ua.send(ua.invite("1002"))
    assert [r.status for r in got] == [100, 407]
    values = got[1].headers.get_all("proxy-authenticate")
    assert len(values) == 1
    scheme, params = parse_auth_value(values[0])
    assert scheme == "Digest"
    assert (params["realm"], params["algorithm"], params["qop"]) == ("acd.local", "MD5", "auth")
    assert got[1].headers.get_all("www-authenticate") == []


def call(ua: UA, number: str) -> list[Response]:
    """INVITE, take the 407, ACK it, answer it: what came back to the authenticated INVITE."""
    first = ua.send(ua.invite(number))
    assert [r.status for r in first] == [100, 407]
    ack(ua, first[1])
    auth = ua.answer(first[1], "INVITE", f"sip:{number}@acd.local")
    return ua.send(ua.invite(number, auth=auth))


def ack(ua: UA, final: Response) -> list[Response]:
    """The ACK of a non-2xx final response: same branch and R-URI as the INVITE (§17.1.1.3;
    our INVITEs have R-URI = To URI)."""
    via = final.headers.get_list("via")[0]
    data = (
        f"ACK {final.to.uri} SIP/2.0\r\n"
        f"Via: {via.split(';rport')[0]};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: {final.headers.get('from')}\r\n"
        f"To: {final.headers.get('to')}\r\n"
        f"Call-ID: {final.call_id}\r\n"
        f"CSeq: {final.cseq.seq} ACK\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    return ua.send(data)


def test_authenticated_agent_calling_agent_gets_480() -> None:
    rig = Rig()
    got = call(UA(rig), "1002")
    assert [r.status for r in got] == [100, 480]
    assert got[1].headers.get("reason") == REASON_480


def test_authenticated_agent_calling_hotline_gets_480() -> None:
    rig = Rig()
    assert [r.status for r in call(UA(rig), "19001000")] == [100, 480]


def test_authenticated_agent_calling_unknown_number_gets_404() -> None:
    rig = Rig()
    assert [r.status for r in call(UA(rig), "7777")] == [100, 404]


def test_wrong_password_invite_is_rechallenged() -> None:
    rig = Rig()
    ua = UA(rig, password="wrong")
    got = call(ua, "1002")
    assert [r.status for r in got] == [100, 407]


def test_www_authorization_does_not_authenticate_an_invite() -> None:
    # INVITE credentials belong in Proxy-Authorization: Authorization is not looked at
    rig = Rig()
    ua = UA(rig)
    first = ua.send(ua.invite("1002"))
    auth = ua.answer(first[1], "INVITE", "sip:1002@acd.local")
    got = ua.send(ua.invite("1002", headers=[("Authorization", auth)]))
    assert [r.status for r in got] == [100, 407]


# -- Timer G / H and the ACK ------------------------------------------------------------------


def send_times(rig: Rig, seconds: float, to: tuple[str, str, int]) -> list[tuple[float, bytes]]:
    """Advance in 50 ms steps; (offset, bytes) of every response sent towards `to` (the demo
    trunk's own OPTIONS pings go to the same address and are not counted)."""
    start = rig.clock.now()
    out: list[tuple[float, bytes]] = []
    for _ in range(int(seconds / 0.05)):
        rig.clock.advance(0.05)
        rig.timers.run_due(rig.clock.now())
        for s in rig.net.take():
            if s.addr == to and isinstance(s.msg, Response):
                out.append((round(rig.clock.now() - start, 2), s.data))
    return out


def test_480_is_retransmitted_on_timer_g_until_timer_h() -> None:
    rig = Rig()
    trunk = trunk_ua(rig)
    rig.deliver(trunk.invite("19001000"), trunk.addr)
    final = rig.net.sent[-1]
    assert final.response.status == 480

    sends = send_times(rig, 40, trunk.addr)
    # T1 = 0.5: intervals 0.5, 1, 2, 4, 4, ... (capped at T2) until Timer H at 64*T1 = 32 s
    assert [t for t, _ in sends] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert all(data == final.data for _, data in sends)
    assert rig.engine.layer.servers == {}  # Timer H ended it


def test_ack_stops_retransmissions() -> None:
    rig = Rig()
    trunk = trunk_ua(rig)
    got = trunk.send(trunk.invite("19001000"))
    sends = send_times(rig, 2, trunk.addr)
    assert [t for t, _ in sends] == [0.5, 1.5]
    assert ack(trunk, got[1]) == []  # the ACK itself is never answered
    assert send_times(rig, 40, trunk.addr) == []
    # Timer I (T4 = 5 s) ends the confirmed transaction
    assert rig.engine.layer.servers == {}


def test_invite_retransmission_gets_the_480_again_not_a_new_transaction() -> None:
    rig = Rig()
    trunk = trunk_ua(rig)
    data = trunk.invite("19001000")
    first = rig.deliver(data, trunk.addr)
    again = rig.deliver(data, trunk.addr)
    assert [s.response.status for s in first] == [100, 480]
    assert [s.response.status for s in again] == [480]
    assert again[0].data == first[1].data
    assert rig.metric("acd_sip_requests_total", {"method": "INVITE"}) == 1


def test_no_timer_g_over_tcp() -> None:
    rig = Rig()
    # trunk sources match on address and port, whatever the transport
    ua = UA(rig, "provider", ip=TRUNK_SOURCE[1], port=TRUNK_SOURCE[2], transport="tcp")
    got = ua.send(ua.invite("19001000"))
    assert [r.status for r in got] == [100, 480]
    assert send_times(rig, 40, ua.addr) == []  # reliable transport: no Timer G


# -- CANCEL --------------------------------------------------------------------------------------


def cancel_for(ua: UA, invite: bytes) -> bytes:
    """CANCEL matching an INVITE built by `ua`: same R-URI, Call-ID, CSeq number, top Via."""
    head = invite.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    ruri = head[0].split(" ")[1]
    fields = dict(line.split(": ", 1) for line in head[1:])
    seq = fields["CSeq"].split(" ")[0]
    data = (
        f"CANCEL {ruri} SIP/2.0\r\n"
        f"Via: {fields['Via']}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: {fields['From']}\r\n"
        f"To: {fields['To']}\r\n"
        f"Call-ID: {fields['Call-ID']}\r\n"
        f"CSeq: {seq} CANCEL\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    return data.encode()


def test_cancel_of_unknown_transaction_is_481() -> None:
    rig = Rig()
    ua = UA(rig)
    never_sent = ua.invite("1002")
    resp = ua.send_one(cancel_for(ua, never_sent))
    assert resp.status == 481
    assert resp.headers.get("cseq") == "1 CANCEL"


def test_cancel_after_final_response_is_200_without_a_second_final() -> None:
    rig = Rig()
    trunk = trunk_ua(rig)
    invite = trunk.invite("19001000")
    got = trunk.send(invite)
    assert [r.status for r in got] == [100, 480]
    out = rig.deliver(cancel_for(trunk, invite), trunk.addr)
    assert len(out) == 1  # the 200 for the CANCEL, and no 487 for the INVITE
    resp = out[0].response
    assert resp.status == 200
    assert resp.headers.get("cseq") == "1 CANCEL"
    # the CANCEL's 200 carries the same To tag as the INVITE's final response (§9.2)
    assert resp.to.tag == got[1].to.tag
    # the INVITE transaction goes on retransmitting its 480, not a 487
    (resend,) = send_times(rig, 1, trunk.addr)
    assert resend[1].startswith(b"SIP/2.0 480 ")


def test_cancel_needs_no_credentials() -> None:
    rig = Rig()
    ua = UA(rig, "stranger", ip="198.51.100.4")
    invite = ua.invite("1002")
    assert [r.status for r in ua.send(invite)] == [100, 407]
    resp = ua.send_one(cancel_for(ua, invite))
    assert resp.status == 200
