"""Header grammar (sip.headers), the message model, the parser and stream framer, and the
builders, with Hypothesis for every parser and serialiser."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sip.builder import (
    IdSource,
    make_ack_for_error,
    make_cancel,
    make_response,
    make_response_from_headers,
)
from sip.headers import (
    HeaderError,
    Via,
    _parse_params,
    _parse_via,
    canonical_name,
    header_key,
    parse_cseq,
    parse_name_addr,
    parse_name_addr_list,
    parse_params,
    parse_via,
    split_list,
)
from sip.message import Headers, Request, Response
from sip.parser import ParseError, StreamFramer, parse_message
from sip.uri import SipURI, parse_uri
from tests.unit.test_sip_uri import header as uri_header
from tests.unit.test_sip_uri import host as host_strategy
from tests.unit.test_sip_uri import sip_uri_text

CORPUS = Path(__file__).resolve().parent.parent / "data" / "conformance"

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def _req(data: bytes = INVITE) -> Request:
    m = parse_message(data)
    assert isinstance(m, Request)
    return m


# --------------------------------------------------------------------------- header grammar


def test_header_key_compact_forms_and_case() -> None:
    assert header_key("v") == header_key("VIA") == header_key("Via") == "via"
    assert header_key("i") == "call-id"
    assert header_key("l") == "content-length"
    assert header_key("X-Custom") == "x-custom"
    assert canonical_name("call-id") == "Call-ID"
    assert canonical_name("www-authenticate") == "WWW-Authenticate"
    assert canonical_name("content-length") == "Content-Length"


def test_split_list_respects_quotes_and_brackets() -> None:
    assert split_list('"a, b" <sip:x@h;p=1,2>;q=1 , <sip:y@h>') == [
        '"a, b" <sip:x@h;p=1,2>;q=1', "<sip:y@h>"]
    assert split_list('"esc \\" , still" <sip:x@h>') == ['"esc \\" , still" <sip:x@h>']
    assert split_list("single") == ["single"]


def test_parse_params() -> None:
    assert parse_params(' ; a = 1 ;b; c="x;y" ;d=[::1]; e=1:2') == [
        ("a", "1"), ("b", None), ("c", '"x;y"'), ("d", "[::1]"), ("e", "1:2")]
    for bad in (";", ";a=", ";a;;b", "a=1", ';a="open', ";a=[::1"):
        with pytest.raises(HeaderError):
            parse_params(bad)


# the characters that decide between parse_params' split fast path and its careful parser
_PARAM_SOUP = st.text(alphabet=";=:abAB19-.!%*_+`'~ \t\"[]<>,@\u00b2", max_size=24)


@given(_PARAM_SOUP)
def test_parse_params_fast_path_agrees_with_the_careful_parser(text: str) -> None:
    careful: list[tuple[str, str | None]] | None
    try:
        careful = _parse_params(text)
    except HeaderError:
        careful = None
    try:
        fast: list[tuple[str, str | None]] | None = parse_params(text)
    except HeaderError:
        fast = None
    assert fast == careful


@given(st.sampled_from(["SIP/2.0/", "SIP/2.0/UDP ", "SIP/2.0/tcp ", "SIP / 2.0 / UDP ", "sip/2.0/UDP ",
                        "SIP/2.0/UDP  ", "SIP/2.0/UDP\t"]),
       st.sampled_from(["h.example.com", "10.0.0.1:5060", "[::1]:5", "h :5060", "h:99999", "", "h "]),
       _PARAM_SOUP)
def test_parse_via_fast_path_agrees_with_the_careful_parser(head: str, sent_by: str,
                                                            params: str) -> None:
    text = head + sent_by + params
    careful: Via | None
    try:
        careful = _parse_via(text)
    except HeaderError:
        careful = None
    try:
        fast: Via | None = parse_via(text)
    except HeaderError:
        fast = None
    assert fast == careful


def test_parse_via() -> None:
    v = parse_via(
        "SIP / 2.0 / udp  Host.Example.com : 5062 ;branch=z9hG4bKx;rport;received=1.2.3.4")
    assert (v.protocol, v.transport, v.host, v.port) == ("SIP/2.0", "UDP", "Host.Example.com", 5062)
    assert (v.branch, v.rport, v.received) == ("z9hG4bKx", "", "1.2.3.4")
    assert str(v) == "SIP/2.0/UDP Host.Example.com:5062;branch=z9hG4bKx;rport;received=1.2.3.4"
    v.set_param("rport", "5062")
    assert v.rport == "5062"
    assert parse_via("SIP/2.0/TCP [2001:db8::1]:5060").host == "[2001:db8::1]"


@pytest.mark.parametrize(
    "text",
    [
        "SIP/2.0 host",
        "SIP/2.0/ host",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP host;branch",
        "SIP/2.0/UDP host;rport=70000",
        "SIP/2.0/UDP host;rport=\u0661",  # not an ASCII port
        "SIP/2.0/UDP host;rport=\u00b2",
        "SIP/2.0/UDP host 5060",  # LWS is only allowed around the port colon
        "SIP/2.0/UDP ho st:5060",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/UDP host;;branch=x",
    ],
)
def test_bad_via_raises_headererror(text: str) -> None:
    with pytest.raises(HeaderError):
        parse_via(text)


def test_parse_name_addr_forms() -> None:
    na = parse_name_addr('"A \\"B\\" C" <sip:a@h;lr>;tag=x;q=0.5')
    assert na.display == '"A \\"B\\" C"'
    assert na.display_name == 'A "B" C'
    assert na.uri_text == "sip:a@h;lr"
    assert (na.tag, na.param("Q")) == ("x", "0.5")
    assert str(na) == '"A \\"B\\" C" <sip:a@h;lr>;tag=x;q=0.5'
    plain = parse_name_addr("sip:a@h;tag=1")
    assert not plain.bracketed and plain.tag == "1" and str(plain) == "sip:a@h;tag=1"
    tokens = parse_name_addr("Alice  Smith<sip:a@h>")
    assert tokens.display == "Alice  Smith"
    star = parse_name_addr("*", allow_wildcard=True)
    assert star.is_wildcard and str(star) == "*"


def test_addr_spec_contact_with_quoted_instance_param() -> None:
    # RFC 5626: the instance id is a quoted "<urn:...>": its '<' is not a name-addr's '<'
    na = parse_name_addr('sip:alice@192.0.2.4;+sip.instance="<urn:uuid:0001>";reg-id=1')
    assert na.uri_text == "sip:alice@192.0.2.4"
    assert na.param("+sip.instance") == '"<urn:uuid:0001>"'
    assert na.param("reg-id") == "1"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "*",  # only where a wildcard is allowed
        '"open <sip:a@h>',
        '"name" sip:a@h',
        "<sip:a@h",
        "< sip:a@h>",
        "<>",
        "Bell, Alexander <sip:a@h>",
        "sip:a@h?x=y",
        "<sip:a@h>;tag=x junk",
        "<http://x y>",
    ],
)
def test_bad_name_addr_raises_headererror(text: str) -> None:
    with pytest.raises(HeaderError):
        parse_name_addr(text)


def test_name_addr_list() -> None:
    nas = parse_name_addr_list('<sip:a@h>;q=0.1, "x,y" <sip:b@h>, sip:c@h')
    assert [n.uri_text for n in nas] == ["sip:a@h", "sip:b@h", "sip:c@h"]


def test_parse_cseq() -> None:
    assert parse_cseq("0009 INVITE").seq == 9
    assert str(parse_cseq(" 4294967295  ACK ")) == "4294967295 ACK"
    for bad in ("4294967296 INVITE", "1", "x INVITE", "1 INV ITE", "\u0661 INVITE",
                "\u00b2 INVITE", "-1 INVITE"):
        with pytest.raises(HeaderError):
            parse_cseq(bad)


# --------------------------------------------------------------------------- Headers / Message


def test_headers_api() -> None:
    h = Headers([("Via", "a"), ("v", "b"), ("To", "t")])
    assert h.get("VIA") == "a"
    assert h.get_all("via") == ["a", "b"]
    assert h.count("v") == 2 and "via" in h and "from" not in h and 3 not in h
    h.set("Via", "c, d")
    assert h.get_all("via") == ["c, d"]
    assert h.get_list("via") == ["c", "d"]
    h.insert(0, "Route", "<sip:r>")
    assert next(iter(h.items())) == ("Route", "<sip:r>")
    h.remove("route")
    assert "route" not in h and len(h) == 2
    assert h.copy() == h and h.copy() is not h


def test_headers_index_follows_every_change() -> None:
    h = _req().headers
    assert h.get("via") is not None and h.count("contact") == 1  # the index exists now
    h.add("Contact", "<sip:second@h>")
    assert h.get_all("m") == ["<sip:alice@pc33.atlanta.example.com>", "<sip:second@h>"]
    h.insert(0, "Route", "<sip:r>")
    assert h.get("route") == "<sip:r>"
    h.set("Contact", "*")
    assert h.get_all("contact") == ["*"]
    h.remove("contact")
    assert "contact" not in h and h.get("contact") is None
    h.add("Via", "SIP/2.0/TCP second")
    h.replace_first("v", "SIP/2.0/UDP first")
    assert h.get_all("via") == ["SIP/2.0/UDP first", "SIP/2.0/TCP second"]
    assert ("Via", "SIP/2.0/UDP first") in list(h.items())
    values = h.get_all("via")
    values.append("not a header")  # callers get a copy
    assert h.count("via") == 2


def test_typed_views_are_cached_until_invalidated() -> None:
    m = _req()
    assert m.from_.tag == "1928301774"
    m.headers.set("From", "<sip:x@h>;tag=new")
    assert m.from_.tag == "1928301774"
    m.invalidate()
    assert m.from_.tag == "new"


def test_set_body_keeps_content_length_true() -> None:
    m = _req()
    m.set_body(b"hello", "text/plain")
    assert parse_message(m.serialize()).body == b"hello"
    m.set_body(b"")
    assert "content-type" not in m.headers and m.headers.get("content-length") == "0"


# --------------------------------------------------------------------------- parse_message


def test_basic_request() -> None:
    m = _req()
    assert m.method == "INVITE"
    assert str(m.uri) == "sip:bob@biloxi.example.com"
    assert m.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert m.body == b"v=0\n"
    assert bytes(m) == INVITE


def test_leading_crlf_and_bare_lf_are_tolerated() -> None:
    assert _req(b"\r\n\r\n" + INVITE) == _req()
    lf = INVITE.replace(b"\r\n", b"\n")
    assert _req(lf).headers == _req().headers


def test_bare_lf_head_with_crlfcrlf_inside_the_body() -> None:
    # the head ends at the first blank line, whichever line end it uses
    body = b"a\r\n\r\nb"
    data = INVITE.replace(b"\r\n", b"\n").replace(b"Content-Length: 4\n\nv=0\n",
                                                   b"Content-Length: 6\n\n" + body)
    m = _req(data)
    assert m.body == body
    assert m.headers.get("content-type") == "application/sdp"


@pytest.mark.parametrize("junk", [b"\n", b"\r", b"\r\r\n"])
def test_lone_cr_or_lf_inside_a_header_is_dropped(junk: bytes) -> None:
    # "Call-ID: x<LF>X-Injected: y" must never be echoed into a response
    data = INVITE.replace(b"@pc33.atlanta.example.com\r\n", b"@h" + junk + b"X-Injected:y\r\n", 1)
    assert data != INVITE
    with pytest.raises(ParseError) as info:
        parse_message(data)
    assert info.value.status is None and info.value.headers is None


def test_sip_version_is_case_insensitive() -> None:
    # RFC 3261 §7.1: "The SIP-Version string is case-insensitive"
    m = _req(INVITE.replace(b" SIP/2.0\r\n", b" sip/2.0\r\n", 1))
    assert m.version == "SIP/2.0"
    resp = parse_message(b"sip/2.0 200 OK\r\n" + INVITE.split(b"\r\n", 1)[1])
    assert isinstance(resp, Response) and resp.status == 200 and resp.version == "SIP/2.0"


def test_unsupported_version_is_505_for_requests_and_dropped_for_responses() -> None:
    with pytest.raises(ParseError) as info:
        parse_message(INVITE.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1))
    assert info.value.status == 505
    with pytest.raises(ParseError) as info:
        parse_message(b"SIP/3.0 200 OK\r\n" + INVITE.split(b"\r\n", 1)[1])
    assert info.value.status is None


@pytest.mark.parametrize("code", ["099", "700", "20", "2000", "\u0662\u0660\u0660", "²²²", "2O0"])
def test_bad_status_codes_are_dropped(code: str) -> None:
    data = f"SIP/2.0 {code} OK\r\n".encode() + INVITE.split(b"\r\n", 1)[1]
    with pytest.raises(ParseError) as info:
        parse_message(data)
    assert info.value.status is None
    assert not info.value.reason.startswith("unparseable")


def test_folded_header_values_are_joined() -> None:
    for _ in range(2):  # the second time every name is known: folding still found
        m = _req(INVITE.replace(b"Max-Forwards: 70\r\n",
                                b"Subject: one\r\n  two\r\n\tthree: 3\r\n"))
        assert m.headers.get("subject") == "one two three: 3"


@pytest.mark.parametrize("edit", [
    (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nSubject one\r\n"),  # no colon
    (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nBad Name: x\r\n"),
    (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\n Subject: x\r\n"),  # folded into 70
    (b"\r\nVia", b"\r\n Via"),  # a continuation before any field
])
def test_bad_lines_fail_also_among_known_names(edit: tuple[bytes, bytes]) -> None:
    _req()  # every name of INVITE known
    with pytest.raises(ParseError) as info:
        parse_message(INVITE.replace(*edit, 1))
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("edit", "status"),
    [
        ((b"Max-Forwards: 70", b"Max-Forwards: 256"), 400),
        ((b"Max-Forwards: 70", b"Max-Forwards: \xd9\xa1"), 400),
        ((b"Max-Forwards: 70", b"Expires: 4294967296"), 400),
        ((b"Max-Forwards: 70", b"Bad Name: x"), 400),
        ((b"Max-Forwards: 70", b"NoColon"), 400),
        ((b"Max-Forwards: 70", b"Call-ID: second"), 400),
        ((b"Content-Length: 4", b"Content-Length: 5"), 400),
        ((b"Content-Length: 4", b"Content-Length: 4, 4"), 400),
        ((b"Content-Length: 4", b"Content-Length: +4"), 400),
        ((b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com", b"Call-ID: a b"), 400),
        ((b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"), 400),
        ((b"INVITE sip:bob@biloxi.example.com", b"INVITE sip:bob@biloxi.example.com?x=y"), 400),
        ((b"INVITE sip:bob@biloxi.example.com", b"INVITE  sip:bob@biloxi.example.com"), 400),
        ((b"INVITE sip:bob", b"INV(TE sip:bob"), None),
        ((b"\r\n\r\n", b"\r\n"), 400),  # headers never end
    ],
)
def test_malformed_requests(edit: tuple[bytes, bytes], status: int | None) -> None:
    data = INVITE.replace(*edit, 1)
    assert data != INVITE
    with pytest.raises(ParseError) as info:
        parse_message(data)
    assert info.value.status == status, info.value.reason
    assert not info.value.reason.startswith("unparseable")


def test_parse_error_carries_what_an_error_response_needs() -> None:
    data = INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE")
    with pytest.raises(ParseError) as info:
        parse_message(data)
    err = info.value
    assert err.method == "INVITE" and err.headers is not None
    resp = make_response_from_headers(err.headers, err.status or 0, to_tag="t1")
    assert resp.status == 400
    assert resp.headers.get("via") == "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds"
    assert resp.headers.get("to") == "Bob <sip:bob@biloxi.example.com>;tag=t1"
    assert resp.headers.get("cseq") == "314159 BYE"
    assert parse_message(resp.serialize()) == resp


@pytest.mark.parametrize("to", ["<sip:bob@h>;TAG=abc", "<sip:bob@h> ;\ttag = abc",
                                "sip:bob@h;Tag=abc"])
def test_stateless_response_keeps_an_existing_to_tag(to: str) -> None:
    h = Headers([("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"), ("To", to)])
    resp = make_response_from_headers(h, 400, to_tag="new")
    assert resp.headers.get("to") == to  # param names are case-insensitive, LWS is allowed


def test_size_and_header_count_limits() -> None:
    with pytest.raises(ParseError) as info:
        parse_message(INVITE, max_size=len(INVITE) - 1)
    assert info.value.status == 513
    many = INVITE.replace(b"Max-Forwards: 70\r\n", b"X-A: 1\r\n" * 300)
    with pytest.raises(ParseError) as info:
        parse_message(many)
    assert info.value.status == 400
    assert parse_message(many, max_headers=400).headers.count("x-a") == 300


def test_stream_messages_need_content_length() -> None:
    data = INVITE.replace(b"Content-Length: 4\r\n", b"")
    assert parse_message(data).body == b"v=0\n"  # UDP: the datagram ends the body
    with pytest.raises(ParseError):
        parse_message(data, stream=True)


def test_header_name_cache_does_not_bypass_validation() -> None:
    header_key("Bad Name")  # any caller may look such a name up
    with pytest.raises(ParseError):
        parse_message(INVITE.replace(b"Max-Forwards: 70", b"Bad Name: x"))


# --------------------------------------------------------------------------- builders


def test_make_response_copies_the_right_fields() -> None:
    req = _req(INVITE.replace(b"Via: SIP", b"Via: SIP/2.0/UDP proxy;branch=z9hG4bKp\r\nVia: SIP"))
    resp = make_response(req, 180, to_tag="totag", server="acd")
    assert resp.headers.get_all("via") == [
        "SIP/2.0/UDP proxy;branch=z9hG4bKp",
        "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds"]
    assert resp.to.tag == "totag"
    assert resp.headers.get("server") == "acd"
    assert (resp.status, resp.reason) == (180, "Ringing")
    assert make_response(req, 100, to_tag="x").to.tag is None  # §8.2.6.1
    tagged = _req(INVITE.replace(b"To: Bob <sip:bob@biloxi.example.com>",
                                 b"To: Bob <sip:bob@biloxi.example.com>;tag=old"))
    assert make_response(tagged, 200, to_tag="new").to.tag == "old"


def test_make_ack_for_error_follows_17_1_1_3() -> None:
    invite = _req(INVITE.replace(b"Max-Forwards: 70\r\n",
                                 b"Route: <sip:p1;lr>\r\nRoute: <sip:p2;lr>\r\n"))
    resp = make_response(invite, 486, to_tag="busy")
    ack = make_ack_for_error(invite, resp)
    assert ack.method == "ACK" and str(ack.uri) == str(invite.uri)
    assert ack.headers.get_all("via") == [invite.headers.get_list("via")[0]]
    assert ack.headers.get("from") == invite.headers.get("from")
    assert ack.headers.get("to") == resp.headers.get("to") and ack.to.tag == "busy"
    assert ack.call_id == invite.call_id
    assert (ack.cseq.seq, ack.cseq.method) == (314159, "ACK")
    assert ack.headers.get_all("route") == ["<sip:p1;lr>", "<sip:p2;lr>"]
    assert parse_message(ack.serialize()) == ack


def test_make_cancel_follows_9_1() -> None:
    invite = _req()
    cancel = make_cancel(invite)
    assert cancel.method == "CANCEL" and str(cancel.uri) == str(invite.uri)
    assert cancel.top_via.branch == invite.top_via.branch and len(cancel.vias) == 1
    for name in ("from", "to", "call-id"):
        assert cancel.headers.get(name) == invite.headers.get(name)
    assert str(cancel.cseq) == "314159 CANCEL"


def test_id_source_is_deterministic_when_seeded() -> None:
    ids = IdSource(lambda n: bytes(range(n)))
    assert ids.branch() == "z9hG4bK0001020304050607"
    assert ids.tag() == "000102030405"
    assert ids.call_id("h") == "000102030405060708090a0b@h"


# --------------------------------------------------------------------------- Hypothesis: fuzz


def _only_parse_error(data: bytes, **kw: bool) -> None:
    try:
        msg = parse_message(data, **kw)
    except ParseError as exc:
        # ParseError raised on purpose, not an internal error turned into one
        assert not exc.reason.startswith("unparseable"), exc.reason
        return
    # whatever is accepted survives its own serialisation
    assert parse_message(msg.serialize(), **kw) == msg


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_parse_error(data: bytes) -> None:
    _only_parse_error(data)


SIPISH = st.lists(
    st.sampled_from([
        b"INVITE ", b"SIP/2.0", b" ", b"\r\n", b"\n", b":", b";", b",", b"<", b">", b'"', b"\\",
        b"sip:", b"@", b"[", b"]", b"Via: SIP/2.0/UDP h", b";branch=z9hG4bK1", b"To: ",
        b"From: ", b"Call-ID: x", b"CSeq: 1 INVITE", b"Content-Length: ", b"1", b"0", b"\x00",
        b"\xff", b"\t", b"%", b"=", b"tag", b"*", b"Contact: ", b"SIP/2.0 200 OK\r\n",
    ]),
    max_size=60,
).map(b"".join)


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(SIPISH, st.booleans())
def test_sip_looking_bytes_raise_only_parse_error(data: bytes, stream: bool) -> None:
    _only_parse_error(data, stream=stream)


def _corpus() -> list[bytes]:
    files = sorted(CORPUS.glob("rfc4475/*.dat")) + sorted(CORPUS.glob("rfc5118/wire/*.wire"))
    return [f.read_bytes() for f in files]


CORPUS_MESSAGES = _corpus()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(CORPUS_MESSAGES)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "dup"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from(
                [b"\r\n", b" ", b";", b",", b":", b"<", b'"', b"\x00", b"\r\n ", b"%", b"@",
                 b"[", b"\xc3", b"\r\n\r\n", b"9999999999"]))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        else:
            data[at:at] = data[at:at + draw(st.integers(1, 40))]
    return bytes(data)


@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_corpus_raises_only_parse_error(data: bytes) -> None:
    _only_parse_error(data)


def test_every_accepted_corpus_message_reads_its_typed_views_or_raises_headererror() -> None:
    rng = random.Random(4475)
    for original in CORPUS_MESSAGES:
        for _ in range(200):
            data = bytearray(original)
            at = rng.randrange(len(data))
            data[at] = rng.randrange(256)
            try:
                m = parse_message(bytes(data))
            except ParseError:
                continue
            # the parser validated these: reading them must not fail afterwards
            m.vias, m.from_, m.to, m.cseq  # noqa: B018
            with contextlib.suppress(HeaderError):  # parsed lazily: the only failure
                m.contacts  # noqa: B018


# --------------------------------------------------------------------------- Hypothesis: round trip

TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
                min_size=1, max_size=10)
METHODS = st.sampled_from(["INVITE", "REGISTER", "OPTIONS", "BYE", "CANCEL", "ACK", "INFO",
                           "MESSAGE", "SUBSCRIBE", "NOTIFY"]) | TOKEN
uri_no_headers = sip_uri_text().filter(lambda t: "?" not in t.split("@")[-1])
qdtext = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\') | \
    st.sampled_from(["\\\"", "\\\\", "\\a"])
display = st.lists(qdtext, max_size=12).map(lambda cs: '"' + "".join(cs) + '"')
simple_uri = st.builds(lambda u, h: f"sip:{u}@{h}",
                       st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                               "-_.!~*'()", min_size=1, max_size=10),
                       host_strategy)


@st.composite
def name_addr(draw: st.DrawFn, tag: bool | None = None) -> str:
    uri = draw(simple_uri | uri_no_headers)
    form = draw(st.sampled_from(["quoted", "token", "bracket", "bare"]))
    params = draw(st.lists(st.tuples(TOKEN.filter(lambda t: t.lower() != "tag"),
                                     st.none() | TOKEN), max_size=2))
    if form == "bare" and (";" in uri or "?" in uri or "," in uri):
        form = "bracket"
    if form == "quoted":
        head = f"{draw(display)} <{uri}>"
    elif form == "token":
        head = f"{draw(TOKEN)} <{uri}>"
    elif form == "bracket":
        head = f"<{uri}>"
    else:
        head = uri
    if tag if tag is not None else draw(st.booleans()):
        params.insert(0, ("tag", draw(TOKEN)))
    return head + "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


@st.composite
def via(draw: st.DrawFn) -> str:
    transport = draw(st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS"]))
    h = draw(host_strategy)
    port = draw(st.none() | st.integers(0, 65535))
    out = f"SIP/2.0/{transport} {h}" + ("" if port is None else f":{port}")
    out += f";branch=z9hG4bK{draw(TOKEN)}"
    if draw(st.booleans()):
        out += f";received={draw(host_strategy)}"
    rport = draw(st.sampled_from([None, "", "5060", "65535"]))
    if rport is not None:
        out += ";rport" + (f"={rport}" if rport else "")
    return out


value_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=30
).map(str.strip)


@st.composite
def messages(draw: st.DrawFn) -> Request | Response:
    h = Headers()
    vias = draw(st.lists(via(), min_size=1, max_size=3))
    if draw(st.booleans()):
        h.add("Via", ", ".join(vias))
    else:
        for v in vias:
            h.add(draw(st.sampled_from(["Via", "v", "VIA"])), v)
    is_request = draw(st.booleans())
    method = draw(METHODS)
    h.add(draw(st.sampled_from(["From", "f"])), draw(name_addr(tag=True)))
    h.add(draw(st.sampled_from(["To", "t"])), draw(name_addr()))
    h.add(draw(st.sampled_from(["Call-ID", "i"])), draw(TOKEN) + draw(st.sampled_from(["", "@h"])))
    h.add("CSeq", f"{draw(st.integers(0, 2**32 - 1))} {method}")
    if draw(st.booleans()):
        h.add("Max-Forwards", str(draw(st.integers(0, 255))))
    contacts = draw(st.lists(name_addr(tag=False), max_size=3))
    if contacts:
        h.add(draw(st.sampled_from(["Contact", "m"])), ", ".join(contacts))
    elif draw(st.booleans()):
        h.add("Contact", "*")
    for name, value in draw(st.lists(st.tuples(TOKEN.map(lambda t: "X-" + t), value_text),
                                     max_size=4)):
        h.add(name, value)
    if draw(st.booleans()):
        h.add("Subject", draw(value_text))
    body = draw(st.binary(max_size=80))
    if body:
        h.add("Content-Type", "application/octet-stream")
    if body or draw(st.booleans()):
        h.add(draw(st.sampled_from(["Content-Length", "l"])), str(len(body)))
    if is_request:
        return Request(method, parse_uri(draw(uri_no_headers)), h, body)
    reason = draw(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20))
    return Response(draw(st.integers(100, 699)), reason, h, body)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_messages_round_trip(m: Request | Response) -> None:
    wire = m.serialize()
    parsed = parse_message(wire)
    assert parsed == m
    assert parsed.serialize() == wire
    if "content-length" in m.headers:
        assert parse_message(wire, stream=True) == m
    # the typed views agree with what was generated
    assert len(parsed.vias) == len(m.headers.get_list("via"))
    assert parsed.cseq == m.cseq


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(display)
def test_display_name_unquoting(d: str) -> None:
    na = parse_name_addr(f"{d} <sip:a@h>")
    assert na.display == d
    inner = d[1:-1]
    expected, i = [], 0
    while i < len(inner):
        if inner[i] == "\\":
            i += 1
        expected.append(inner[i])
        i += 1
    assert na.display_name == "".join(expected)


@given(simple_uri, st.lists(uri_header, min_size=1, max_size=3))
def test_request_uri_with_headers_is_rejected(uri: str, headers: list[str]) -> None:
    text = f"{uri}?{'&'.join(headers)}"
    assert isinstance(parse_uri(text), SipURI)
    data = INVITE.replace(b"sip:bob@biloxi.example.com SIP", text.encode() + b" SIP", 1)
    with pytest.raises(ParseError) as info:
        parse_message(data)
    assert info.value.status == 400


# --------------------------------------------------------------------------- StreamFramer


def test_framer_basic_and_pings() -> None:
    f = StreamFramer()
    assert f.feed(b"\r\n\r\n" + INVITE + b"\r\n\r\n" + INVITE) == [b"\r\n", INVITE, b"\r\n",
                                                                   INVITE]
    assert f.buffered == 0
    assert f.feed(INVITE[:50]) == [] and f.buffered == 50
    assert f.feed(INVITE[50:]) == [INVITE]


def test_framer_errors() -> None:
    with pytest.raises(ParseError):
        StreamFramer().feed(INVITE.replace(b"Content-Length: 4\r\n", b""))
    with pytest.raises(ParseError):
        StreamFramer().feed(INVITE.replace(b"Content-Length: 4", b"Content-Length: -4"))
    with pytest.raises(ParseError) as info:
        StreamFramer(max_size=100).feed(b"X" * 101)
    assert info.value.status == 513
    with pytest.raises(ParseError) as info:
        StreamFramer(max_size=len(INVITE) - 1).feed(INVITE)
    assert info.value.status == 513


def test_framer_uses_compact_content_length() -> None:
    data = INVITE.replace(b"Content-Length: 4", b"l : 4")
    assert StreamFramer().feed(data + data) == [data, data]


stream_items = st.lists(
    st.one_of(
        messages().map(lambda m: ("msg", m.serialize())).filter(
            lambda it: b"Content-Length" in it[1] or b"\r\nl: " in it[1]),
        st.just(("ping", b"\r\n\r\n")),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(stream_items, st.lists(st.integers(1, 400), max_size=30))
def test_framer_any_split_yields_the_same_messages(
    items: list[tuple[str, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(data for _, data in items)
    expected = [data if kind == "msg" else b"\r\n" for kind, data in items]
    whole = StreamFramer().feed(stream)
    assert whole == expected
    f = StreamFramer()
    out: list[bytes] = []
    pos = 0
    for size in cuts:
        out += f.feed(stream[pos:pos + size])
        pos += size
    out += f.feed(stream[pos:])
    assert out == expected
    assert f.buffered == 0
    for framed in (x for x in out if x != b"\r\n"):
        parse_message(framed, stream=True)


@settings(max_examples=200)
@given(st.lists(st.sampled_from([b"\r\n", b"\r\n\r\n", b"\n", b"\r"]), max_size=6),
       st.integers(1, 7))
def test_framer_crlf_noise_before_a_message_is_split_independent(
    noise: list[bytes], chunk: int
) -> None:
    stream = b"".join(noise) + INVITE
    whole = StreamFramer().feed(stream)
    f = StreamFramer()
    out: list[bytes] = []
    for i in range(0, len(stream), chunk):
        out += f.feed(stream[i:i + chunk])
    assert out == whole
    assert out[-1] == INVITE
