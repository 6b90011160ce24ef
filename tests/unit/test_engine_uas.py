"""The UAS checks of RFC 3261 §8.2 and the stateless handling of malformed messages, through
the whole engine: statuses, and the exact headers each answer has to carry."""

from __future__ import annotations

import pytest

from acd.engine import ALLOW

from .enginefakes import TRUNK_SOURCE, UA, Rig

URI = "sip:acd.local"


def test_options_is_200_with_allow_accept_and_to_tag() -> None:
    rig = Rig()
    ua = UA(rig)
    resp = ua.send_one(ua.request("OPTIONS", URI))
    assert resp.status == 200
    assert resp.headers.get("allow") == ALLOW
    assert resp.headers.get("accept") == "application/sdp"
    assert resp.headers.get("accept-language") == "en"
    assert resp.headers.get("server") == "acd-engine"
    assert resp.to.tag
    assert resp.call_id == ua.call_id
    assert resp.headers.get("cseq") == "1 OPTIONS"


def test_options_needs_no_credentials_even_from_unknown_sources() -> None:
    rig = Rig()
    ua = UA(rig, "nobody", ip="198.51.100.99")
    assert ua.send_one(ua.request("OPTIONS", URI)).status == 200


def test_unknown_method_is_501_with_allow() -> None:
    rig = Rig()
    ua = UA(rig)
    resp = ua.send_one(ua.request("FOOBAR", URI))
    assert resp.status == 501
    assert resp.headers.get("allow") == ALLOW


@pytest.mark.parametrize("method", ["SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE", "REFER",
                                    "PRACK"])
def test_known_unsupported_method_is_405_with_allow(method: str) -> None:
    rig = Rig()
    ua = UA(rig)
    resp = ua.send_one(ua.request(method, URI))
    assert resp.status == 405
    assert resp.headers.get("allow") == ALLOW


def test_allow_lists_only_methods_that_are_not_405() -> None:
    # a method we advertise in Allow must not be answered 405 Method Not Allowed
    rig = Rig()
    ua = UA(rig)
    for method in (m.strip() for m in ALLOW.split(",")):
        if method in ("ACK", "CANCEL"):
            continue
        got = ua.send(ua.request(method, URI))
        statuses = [r.status for r in got]
        assert 405 not in statuses, f"{method} is in Allow but answered {statuses}"


def test_unknown_uri_scheme_is_416() -> None:
    rig = Rig()
    ua = UA(rig)
    resp = ua.send_one(ua.request("OPTIONS", "http://acd.local/x"))
    assert resp.status == 416


def test_tel_uri_is_not_416() -> None:
    rig = Rig()
    ua = UA(rig)
    resp = ua.send_one(ua.request("OPTIONS", "tel:+15551234"))
    assert resp.status == 200


def test_require_of_unknown_extension_is_420_with_unsupported() -> None:
    rig = Rig()
    ua = UA(rig)
    resp = ua.send_one(ua.request("OPTIONS", URI, headers=[("Require", "foo")]))
    assert resp.status == 420
    assert resp.headers.get("unsupported") == "foo"


def test_require_lists_every_unknown_extension() -> None:
    rig = Rig()
    ua = UA(rig)
    resp = ua.send_one(ua.request("REGISTER", URI, headers=[("Require", "foo, bar"),
                                                            ("Require", "baz")]))
    assert resp.status == 420
    assert resp.headers.get("unsupported") == "foo, bar, baz"


def test_invite_with_unknown_content_type_is_415_with_accept() -> None:
    rig = Rig()
    ua = UA(rig)
    got = ua.send(ua.invite("1002", body=b"hello", content_type="text/plain"))
    assert [r.status for r in got] == [100, 415]
    assert got[1].headers.get("accept") == "application/sdp"


def test_invite_with_sdp_content_type_params_is_not_415() -> None:
    rig = Rig()
    got = rig.deliver(UA(rig).invite("19001000", body=b"v=0\r\n",
                                     content_type="Application/SDP; charset=utf-8"),
                      TRUNK_SOURCE)
    assert [s.response.status for s in got] == [100, 480]


def test_invite_accepting_only_text_is_406_with_accept() -> None:
    rig = Rig()
    ua = UA(rig)
    got = ua.send(ua.invite("1002", headers=[("Accept", "text/x")]))
    assert [r.status for r in got] == [100, 406]
    assert got[1].headers.get("accept") == "application/sdp"


def test_invite_accepting_wildcard_passes_content_checks() -> None:
    rig = Rig()
    got = rig.deliver(UA(rig).invite("19001000", headers=[("Accept", "text/x, */*")]),
                      TRUNK_SOURCE)
    assert [s.response.status for s in got] == [100, 480]


# -- malformed messages -------------------------------------------------------------------


def test_malformed_request_gets_stateless_400_echoing_headers_and_warning() -> None:
    rig = Rig()
    ua = UA(rig)
    via = ua.via("z9hG4bK-malformed")
    data = (
        "OPTIONS sip:acd.local SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:1001@acd.local>;tag=abc\r\n"
        "To: <sip:acd.local>\r\n"
        "Call-ID: malformed-1\r\n"
        "CSeq: 1 INVITE\r\n"  # does not match the method
        "Content-Length: 0\r\n\r\n"
    ).encode()
    out = rig.deliver(data, ua.addr)
    assert len(out) == 1
    assert out[0].addr == ua.addr
    resp = out[0].response
    assert resp.status == 400
    assert resp.headers.get("via") == via  # stateless: echoed as received
    assert resp.headers.get("from") == "<sip:1001@acd.local>;tag=abc"
    assert resp.to.uri is not None and str(resp.to.uri) == "sip:acd.local"
    assert resp.to.tag
    assert resp.call_id == "malformed-1"
    assert resp.headers.get("cseq") == "1 INVITE"
    assert resp.headers.get("warning") == \
        '399 acd.local "CSeq method does not match the request method"'
    assert rig.metric("acd_sip_parse_errors_total", {"action": "rejected"}) == 1
    assert rig.engine.layer.servers == {}


def test_bad_max_forwards_is_400_with_warning() -> None:
    rig = Rig()
    ua = UA(rig)
    data = ua.request("OPTIONS", URI).replace(b"Max-Forwards: 70", b"Max-Forwards: seventy")
    resp = ua.send_one(data)
    assert resp.status == 400
    warning = resp.headers.get("warning")
    assert warning is not None and warning.startswith('399 acd.local "')


def test_unsupported_version_is_505() -> None:
    rig = Rig()
    ua = UA(rig)
    data = ua.request("OPTIONS", URI).replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1)
    resp = ua.send_one(data)
    assert resp.status == 505


def test_oversized_message_is_dropped_without_an_exception() -> None:
    # the parser refuses to read past max_message_size, so there is no Via to answer 513 to
    rig = Rig()
    ua = UA(rig)
    data = ua.request("OPTIONS", URI, headers=[("X-Pad", "a" * 70000)])
    assert rig.deliver(data, ua.addr) == []
    assert rig.metric("acd_sip_parse_errors_total", {"action": "dropped"}) == 1


def test_malformed_response_is_dropped() -> None:
    rig = Rig()
    data = (
        b"SIP/2.0 200 OK\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\n"
        b"From: <sip:acd.local>;tag=a\r\n"
        b"To: <sip:acd.local>;tag=b\r\n"
        b"CSeq: 1 OPTIONS\r\n"  # no Call-ID
        b"Content-Length: 0\r\n\r\n"
    )
    assert rig.deliver(data, ("udp", "127.0.0.1", 5062)) == []
    assert rig.metric("acd_sip_parse_errors_total", {"action": "dropped"}) == 1


@pytest.mark.parametrize("data", [
    b"",
    b"\r\n\r\n",
    b"\x00\xff\xfe garbage",
    b"OPTIONS sip:acd.local SIP/2.0\r\n\r\n",  # no Via to answer to
    b"ACK sip:acd.local SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKa\r\n\r\n",
])
def test_garbage_is_dropped_silently(data: bytes) -> None:
    rig = Rig()
    assert rig.deliver(data, ("udp", "127.0.0.1", 5062)) == []


def test_bare_magic_cookie_branch_is_400() -> None:
    # RFC 4475 badbranch: the cookie alone identifies no transaction
    rig = Rig()
    ua = UA(rig)
    via = f"SIP/2.0/UDP 127.0.0.1:{ua.addr[2]};branch=z9hG4bK"
    resp = ua.send_one(ua.request("OPTIONS", URI, via=via))
    assert resp.status == 400
    assert resp.headers.get("via") == via
    assert rig.engine.layer.servers == {}


def test_rport_and_received_are_stamped_in_the_top_via() -> None:
    rig = Rig()
    ua = UA(rig, ip="198.51.100.20", port=40000)  # behind a NAT
    via = "SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-nat1;rport"
    out = rig.deliver(ua.request("OPTIONS", URI, via=via), ua.addr)
    assert len(out) == 1
    assert out[0].addr == ("udp", "198.51.100.20", 40000)  # back to where it came from
    assert out[0].response.headers.get("via") == \
        "SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-nat1;rport=40000;received=198.51.100.20"


def test_rport_without_nat_gets_port_only() -> None:
    rig = Rig()
    ua = UA(rig, port=5062)
    resp = ua.send_one(ua.request("OPTIONS", URI, via=ua.via("z9hG4bK-plain")))
    assert resp.headers.get("via") == "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-plain;rport=5062"


def test_received_without_rport_when_host_differs() -> None:
    rig = Rig()
    ua = UA(rig, ip="198.51.100.20", port=5062)
    via = "SIP/2.0/UDP pc33.example.com:5062;branch=z9hG4bK-name"
    resp = ua.send_one(ua.request("OPTIONS", URI, via=via))
    assert resp.headers.get("via") == f"{via};received=198.51.100.20"


def test_only_the_top_via_is_stamped() -> None:
    rig = Rig()
    ua = UA(rig, ip="198.51.100.20", port=40000)
    top = "SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-two;rport"
    second = "SIP/2.0/UDP 10.0.0.6:5060;branch=z9hG4bK-below;rport"
    data = ua.request("OPTIONS", URI, via=f"{top}, {second}")
    resp = ua.send_one(data)
    assert resp.headers.get_all("via") == [
        "SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-two;rport=40000;received=198.51.100.20, "
        + second]


def test_retransmitted_options_gets_identical_bytes() -> None:
    rig = Rig()
    ua = UA(rig)
    data = ua.request("OPTIONS", URI)
    first = rig.deliver(data, ua.addr)
    again = rig.deliver(data, ua.addr)
    assert len(first) == len(again) == 1
    assert again[0].data == first[0].data
    assert rig.metric("acd_sip_requests_total", {"method": "OPTIONS"}) == 1


def test_reused_branch_with_new_cseq_is_a_new_request() -> None:
    rig = Rig()
    ua = UA(rig)
    via = ua.via("z9hG4bK-reused")
    a = ua.send_one(ua.request("OPTIONS", URI, via=via, cseq=1))
    b = ua.send_one(ua.request("OPTIONS", URI, via=via, cseq=2))
    assert (a.headers.get("cseq"), b.headers.get("cseq")) == ("1 OPTIONS", "2 OPTIONS")


def test_draining_engine_refuses_register_and_invite_with_503() -> None:
    rig = Rig()
    ua = UA(rig)
    rig.engine.draining = True
    resp = ua.send_one(ua.register())
    assert resp.status == 503
    assert resp.headers.get("retry-after") == "30"
    got = ua.send(ua.invite("1002"))
    assert [r.status for r in got] == [100, 503]
    assert ua.send_one(ua.request("OPTIONS", URI)).status == 200


@pytest.mark.parametrize("method", ["BYE", "INFO", "UPDATE"])
def test_in_dialog_methods_without_a_dialog_are_481(method: str) -> None:
    rig = Rig()
    ua = UA(rig)
    resp = ua.send_one(ua.request(method, URI, to="<sip:1002@acd.local>;tag=nodialog"))
    assert resp.status == 481


def test_ipv6_source_is_stamped_without_brackets_and_answered_there() -> None:
    rig = Rig()
    ua = UA(rig, ip="2001:db8::5", port=40002)
    via = "SIP/2.0/UDP [2001:db8::9]:5062;branch=z9hG4bK-v6;rport"
    out = rig.deliver(ua.request("OPTIONS", URI, via=via), ua.addr)
    assert [s.addr for s in out] == [("udp", "2001:db8::5", 40002)]
    assert out[0].response.headers.get("via") == \
        "SIP/2.0/UDP [2001:db8::9]:5062;branch=z9hG4bK-v6;rport=40002;received=2001:db8::5"


def test_ipv6_via_matching_the_source_is_not_stamped_received() -> None:
    rig = Rig()
    ua = UA(rig, ip="::1", port=5062)
    resp = ua.send_one(ua.request("OPTIONS", URI, via=ua.via("z9hG4bK-v6same")))
    assert resp.headers.get("via") == "SIP/2.0/UDP [::1]:5062;branch=z9hG4bK-v6same;rport=5062"
