"""The RFC 4475 / RFC 5118 torture corpora against the parser.

Every INDEX.tsv row has a parser-level verdict below: it parses, or it raises ParseError with
the stateless status it deserves (None: drop). Where the INDEX puts the error in the
application layer (416, 420, 415, 406, registrar 400, ...) the parser must accept the message
and show the piece the application decides on; the daemon tests check the responses.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sip.headers import HeaderError
from sip.message import Request, Response
from sip.parser import ParseError, StreamFramer, parse_message
from sip.uri import AbsoluteURI, SipURI, parse_uri, uri_equal

CORPUS = Path(__file__).resolve().parent.parent / "data" / "conformance"

PARSE = "parse"  # a well-formed message
APP = "application"  # well-formed for the parser; the application layer rejects or decides
ANY = "any"  # test.dat: referenced by no RFC section; it must only not crash the parser


def _index(sub: str) -> list[dict[str, str]]:
    with open(CORPUS / sub / "INDEX.tsv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


ROWS_4475 = _index("rfc4475")
ROWS_5118 = _index("rfc5118")

# file -> PARSE | APP | ANY | ("reject", status)
VERDICT_4475: dict[str, Any] = {
    # 3.1.1 valid
    "wsinv.dat": PARSE, "intmeth.dat": PARSE, "esc01.dat": PARSE, "escnull.dat": PARSE,
    "esc02.dat": PARSE, "lwsdisp.dat": PARSE, "longreq.dat": PARSE, "dblreq.dat": PARSE,
    "semiuri.dat": PARSE, "transports.dat": PARSE, "mpart01.dat": PARSE,
    "unreason.dat": PARSE, "noreason.dat": PARSE,
    # 3.1.2 invalid
    "badinv01.dat": ("reject", 400), "clerr.dat": ("reject", 400), "ncl.dat": ("reject", 400),
    "scalar02.dat": ("reject", 400), "scalarlg.dat": ("reject", None),
    "quotbal.dat": ("reject", 400), "ltgtruri.dat": ("reject", 400),
    "lwsruri.dat": ("reject", 400), "lwsstart.dat": ("reject", 400),
    "trws.dat": ("reject", 400), "escruri.dat": ("reject", 400),
    # "better to ignore the Date value": the parser never reads Date
    "baddate.dat": APP,
    # the registrar answers 400: Contact is only parsed when REGISTER handling reads it
    "regbadct.dat": APP,
    "badaspec.dat": ("reject", 400), "baddn.dat": ("reject", 400),
    "badvers.dat": ("reject", 505), "mismatch01.dat": ("reject", 400),
    "mismatch02.dat": ("reject", 400),  # INDEX: 501, "400 also acceptable"
    "bigcode.dat": ("reject", None),
    # 3.2 transaction
    "badbranch.dat": APP,
    # 3.3 application
    "insuf.dat": ("reject", 400), "unkscm.dat": APP, "novelsc.dat": APP, "unksm2.dat": APP,
    "bext01.dat": APP, "invut.dat": APP, "regaut01.dat": APP,
    "multi01.dat": ("reject", 400), "mcl01.dat": ("reject", 400), "bcast.dat": APP,
    "zeromf.dat": APP, "cparam01.dat": APP, "cparam02.dat": APP, "regescrt.dat": APP,
    "sdp01.dat": APP,
    # 3.4 backward compatibility
    "inv2543.dat": PARSE,
    "test.dat": ANY,
}

VERDICT_5118: dict[str, Any] = {
    "ipv6-good.dat": PARSE, "ipv6-bad.dat": ("reject", 400), "port-ambiguous.dat": PARSE,
    "port-unambiguous.dat": PARSE, "via-received-param-with-delim.dat": PARSE,
    "via-received-param-no-delim.dat": PARSE, "ipv6-in-sdp.dat": PARSE,
    "mult-ip-in-header.dat": PARSE, "mult-ip-in-sdp.dat": PARSE,
    "ipv4-mapped-ipv6.dat": PARSE, "ipv6-bug-abnf-3-colons.dat": PARSE,
    "ipv6-correct-abnf-2-colons.dat": PARSE,
}

# The RFC 5118 archive copies (.dat) have defects the wire/ copies repair; for these the
# archive copy must fail for exactly that defect (and the wire copy gets the INDEX verdict).
ARCHIVE_DEFECTS_5118 = {
    "ipv6-in-sdp.dat": "Content-Length exceeds",  # 268 > 242-byte body (INDEX note)
    "mult-ip-in-sdp.dat": "Content-Length exceeds",  # 181 > its 180-byte LF body
    "ipv6-bug-abnf-3-colons.dat": "no blank line",
    "ipv6-correct-abnf-2-colons.dat": "no blank line",
}


def _read(rel: str) -> bytes:
    return (CORPUS / rel).read_bytes()


def _parse(rel: str) -> Request | Response:
    return parse_message(_read(rel))


def _req(rel: str) -> Request:
    m = _parse(rel)
    assert isinstance(m, Request)
    return m


# --------------------------------------------------------------------------- the corpus itself


@pytest.mark.parametrize("sums", ["rfc4475", "rfc5118", "rfc5118/wire"])
def test_corpus_is_byte_exact(sums: str) -> None:
    base = CORPUS / sums
    lines = (base / "SHA256SUMS").read_text(encoding="ascii").splitlines()
    assert lines
    for line in lines:
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256((base / name.lstrip("*")).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize(("sub", "rows"), [("rfc4475", ROWS_4475), ("rfc5118", ROWS_5118)])
def test_index_rows_match_the_files(sub: str, rows: list[dict[str, str]]) -> None:
    for row in rows:
        data = _read(f"{sub}/{row['file']}")
        assert len(data) == int(row["bytes"]), row["file"]
        assert hashlib.sha256(data).hexdigest() == row["sha256"], row["file"]


def test_every_index_row_has_a_verdict() -> None:
    assert {r["file"] for r in ROWS_4475} == set(VERDICT_4475)
    assert {r["file"] for r in ROWS_5118} == set(VERDICT_5118)
    for r in ROWS_4475 + ROWS_5118:
        verdicts = {**VERDICT_4475, **VERDICT_5118}
        if r["valid_or_invalid"].startswith("valid"):
            assert verdicts[r["file"]] == PARSE, r["file"]
        if r["valid_or_invalid"] == "invalid":
            assert verdicts[r["file"]] != PARSE, r["file"]


# --------------------------------------------------------------------------- verdicts


def _assert_verdict(rel: str, verdict: Any) -> None:
    data = _read(rel)
    if verdict == ANY:
        with contextlib.suppress(ParseError):
            parse_message(data)
        return
    if verdict in (PARSE, APP):
        msg = parse_message(data)
        # what we accept we can write out and read back unchanged
        assert parse_message(msg.serialize()) == msg
        return
    _, status = verdict
    with pytest.raises(ParseError) as info:
        parse_message(data)
    err = info.value
    assert err.status == status, err.reason
    assert not err.reason.startswith("unparseable"), "rejected by accident, not by a check"
    if data.startswith(b"SIP/"):
        assert err.status is None  # never answer a response
    elif status is not None:
        # a stateless answer needs the request's Via, From, To, Call-ID and CSeq to echo
        assert err.headers is not None and "via" in err.headers
        assert err.method == data.split(b" ", 1)[0].decode()


@pytest.mark.parametrize("row", ROWS_4475, ids=lambda r: r["file"])
def test_rfc4475_verdict(row: dict[str, str]) -> None:
    _assert_verdict(f"rfc4475/{row['file']}", VERDICT_4475[row["file"]])


@pytest.mark.parametrize("row", ROWS_5118, ids=lambda r: r["file"])
def test_rfc5118_wire_verdict(row: dict[str, str]) -> None:
    _assert_verdict(f"rfc5118/{row['wire_file']}", VERDICT_5118[row["file"]])


@pytest.mark.parametrize("row", ROWS_5118, ids=lambda r: r["file"])
def test_rfc5118_archive_copy(row: dict[str, str]) -> None:
    name = row["file"]
    defect = ARCHIVE_DEFECTS_5118.get(name)
    if defect is None:
        # bare-LF archive copies are tolerated and mean the same as the wire copy
        _assert_verdict(f"rfc5118/{name}", VERDICT_5118[name])
        if VERDICT_5118[name] == PARSE:
            dat, wire = _req(f"rfc5118/{name}"), _req(f"rfc5118/{row['wire_file']}")
            # same message; only the body's line ends (and so Content-Length) may differ
            assert (dat.method, str(dat.uri)) == (wire.method, str(wire.uri))
            for h in (dat.headers, wire.headers):
                h.remove("content-length")
            assert dat.headers == wire.headers
            assert dat.body == wire.body.replace(b"\r\n", b"\n")
        return
    with pytest.raises(ParseError) as info:
        parse_message(_read(f"rfc5118/{name}"))
    assert defect in info.value.reason
    assert info.value.status == 400


# --------------------------------------------------------------------------- valid: the facts


def test_wsinv_folding_lws_and_compact_forms() -> None:
    m = _req("rfc4475/wsinv.dat")
    assert m.method == "INVITE"
    assert isinstance(m.uri, SipURI) and m.uri.param("unknownparam") == ""
    assert [(v.protocol, v.transport, v.host, v.branch) for v in m.vias] == [
        ("SIP/2.0", "UDP", "192.0.2.2", "390skdjuw"),
        ("SIP/2.0", "TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("SIP/2.0", "UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert m.to.tag == "1918181833n"
    assert m.from_.tag == "98asjd8"
    assert m.from_.display == '"J Rosenberg \\\\\\""'
    assert m.from_.display_name == 'J Rosenberg \\"'
    (contact,) = m.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.param("newparam") == "newvalue"
    assert contact.param("secondparam") == ""
    assert contact.param("q") == "0.33"
    assert m.headers.get("Max-Forwards") == "0068"
    assert (m.cseq.seq, m.cseq.method) == (9, "INVITE")
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert m.headers.get("subject") == ""
    assert len(m.body) == 150 == int(m.headers.get("l") or "")


def test_intmeth_unusual_tokens_and_characters() -> None:
    m = _req("rfc4475/intmeth.dat")
    assert m.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.cseq.method == m.method
    assert isinstance(m.uri, SipURI)
    assert m.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert m.to.display is not None
    assert all(c in m.to.display for c in "\x00\x07\x7f")
    assert m.from_.display == "token1~` token2'+_ token3*%!.-"
    assert m.from_.param("fromParam''~+*_!.-%") == '"работающий"'
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_esc01_escapes_are_equivalent_to_their_characters() -> None:
    m = _req("rfc4475/esc01.dat")
    assert isinstance(m.uri, SipURI)
    assert m.uri.user_unescaped == "sips:user@example.com"
    assert m.uri.host == "example.net"
    assert isinstance(m.to.uri, SipURI) and m.to.uri.user_unescaped == "user"
    assert uri_equal(m.to.uri, parse_uri("sip:user@example.com"))
    assert isinstance(m.from_.uri, SipURI) and m.from_.uri.user_unescaped == "I have spaces"
    (contact,) = m.contacts
    assert contact.uri is not None
    assert uri_equal(contact.uri, parse_uri("sip:caller@host5.example.net;lr;name=value%2541"))


def test_escnull_keeps_escaped_nuls() -> None:
    m = _req("rfc4475/escnull.dat")
    for na in (m.to, m.from_):
        assert isinstance(na.uri, SipURI)
        assert na.uri.user == "null-%00-null"
        assert na.uri.user_unescaped == "null-\x00-null"
    users = [c.uri.user for c in m.contacts if isinstance(c.uri, SipURI)]
    assert users == ["%00", "%00%00"]
    a, b = m.contacts
    assert a.uri is not None and b.uri is not None and not uri_equal(a.uri, b.uri)


def test_esc02_percent_is_no_escape_outside_uris() -> None:
    m = _req("rfc4475/esc02.dat")
    assert m.method == "RE%47IST%45R"  # an unknown method, not REGISTER
    assert m.cseq.method == "RE%47IST%45R"
    assert m.from_.display == '"%Z%45"'
    assert m.from_.display_name == "%Z%45"


def test_lwsdisp_display_name_glued_to_bracket() -> None:
    m = _req("rfc4475/lwsdisp.dat")
    assert m.from_.display == "caller"
    assert isinstance(m.from_.uri, SipURI) and m.from_.uri.user == "caller"


def test_longreq_long_values_and_34_vias() -> None:
    m = _req("rfc4475/longreq.dat")
    assert len(m.vias) == 34
    assert m.to.display is not None and "extremeextreme" in m.to.display
    assert isinstance(m.to.uri, SipURI) and m.to.uri.port == 6000
    assert len(m.from_.tag or "") > 100
    assert m.call_id.startswith("longreq.onereally") and len(m.call_id) > 100


def test_dblreq_only_the_first_request_counts() -> None:
    m = _req("rfc4475/dblreq.dat")
    assert m.method == "REGISTER"
    assert m.body == b""
    assert m.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"


def test_semiuri_semicolon_belongs_to_the_user() -> None:
    m = _req("rfc4475/semiuri.dat")
    assert isinstance(m.uri, SipURI)
    assert m.uri.user == "user;par=u%40example.net"
    assert ";" in (m.uri.user_unescaped or "")
    assert m.uri.host == "example.com"
    assert m.uri.params == []
    assert m.headers.get_list("accept") == [
        "application/sdp", "application/pkcs7-mime", "multipart/mixed",
        "multipart/signed", "message/sip", "message/sipfrag"]


def test_transports_unknown_transport_is_kept() -> None:
    m = _req("rfc4475/transports.dat")
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_mpart01_binary_body_is_exactly_content_length() -> None:
    raw = _read("rfc4475/mpart01.dat")
    m = _req("rfc4475/mpart01.dat")
    assert len(m.body) == int(m.headers.get("content-length") or "") == 553
    assert raw.endswith(m.body)
    assert raw.index(b"\r\n\r\n") + 4 + len(m.body) == len(raw)
    assert any(b >= 0x80 for b in m.body)  # the binary part survives untouched


def test_unreason_utf8_reason_phrase() -> None:
    m = _parse("rfc4475/unreason.dat")
    assert isinstance(m, Response)
    assert m.status == 200
    assert m.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    assert m.serialize().startswith("SIP/2.0 200 = 2**3 * 5**2 но сто".encode())


def test_noreason_empty_reason_phrase() -> None:
    m = _parse("rfc4475/noreason.dat")
    assert isinstance(m, Response)
    assert (m.status, m.reason) == (100, "")


def test_inv2543_rfc2543_syntax() -> None:
    m = _req("rfc4475/inv2543.dat")
    assert m.top_via.branch is None
    assert m.from_.tag is None and m.to.tag is None


# --------------------------------------------------------------------------- RFC 5118 facts


def _w(name: str) -> Request:
    return _req(f"rfc5118/wire/{name}.wire")


def test_ipv6_good_references() -> None:
    m = _w("ipv6-good")
    assert isinstance(m.uri, SipURI) and m.uri.host == "[2001:db8::10]"
    assert m.top_via.host == "[2001:db8::9:1]"
    assert m.contacts[0].uri is not None and str(m.contacts[0].uri) == "sip:caller@[2001:db8::1]"


def test_port_ambiguous_has_no_port() -> None:
    m = _w("port-ambiguous")
    assert isinstance(m.uri, SipURI)
    assert (m.uri.host, m.uri.port) == ("[2001:db8::10:5070]", None)


def test_port_unambiguous_has_port_5070() -> None:
    m = _w("port-unambiguous")
    assert isinstance(m.uri, SipURI)
    assert (m.uri.host, m.uri.port) == ("[2001:db8::10]", 5070)


def test_received_with_and_without_brackets() -> None:
    assert _w("via-received-param-with-delim").top_via.received == "[2001:db8::9:255]"
    assert _w("via-received-param-no-delim").top_via.received == "2001:db8::9:255"


def test_mult_ip_in_header() -> None:
    m = _w("mult-ip-in-header")
    assert [(v.transport, v.host, v.port, v.received) for v in m.vias] == [
        ("UDP", "[2001:db8::9:1]", 6050, None),
        ("UDP", "192.0.2.1", None, None),
        ("TCP", "[2001:db8::9:255]", None, "192.0.2.200"),
    ]


def test_ipv4_mapped_and_abnf_bug_hosts() -> None:
    m = _w("ipv4-mapped-ipv6")
    assert [(v.host, v.port) for v in m.vias] == [
        ("[::ffff:192.0.2.10]", 19823), ("[::ffff:192.0.2.2]", None)]
    three = _w("ipv6-bug-abnf-3-colons")
    assert isinstance(three.uri, SipURI) and three.uri.host == "[2001:db8:::192.0.2.1]"
    two = _w("ipv6-correct-abnf-2-colons")
    assert isinstance(two.uri, SipURI) and two.uri.host == "[2001:db8::192.0.2.1]"


@pytest.mark.parametrize("name", ["ipv6-in-sdp", "mult-ip-in-sdp"])
def test_sdp_bodies_are_exact(name: str) -> None:
    m = _w(name)
    assert len(m.body) == int(m.headers.get("content-length") or "")
    assert m.body.startswith(b"v=0\r\n") and m.body.endswith(b"\r\n")


def test_archive_defects_are_the_only_problem() -> None:
    # the 3-colons/2-colons archive copies parse once the missing blank line is added
    for name in ("ipv6-bug-abnf-3-colons", "ipv6-correct-abnf-2-colons"):
        fixed = parse_message(_read(f"rfc5118/{name}.dat") + b"\n")
        assert fixed == _w(name)


# --------------------------------------------------------------------------- invalid: reasons


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("badinv01.dat", "empty parameter"),
        ("clerr.dat", "Content-Length exceeds"),
        ("ncl.dat", "Content-Length"),
        ("scalar02.dat", "CSeq"),
        ("scalarlg.dat", "CSeq"),
        ("quotbal.dat", "unterminated quoted string"),
        ("ltgtruri.dat", "Request-URI"),
        ("lwsruri.dat", "request line"),
        ("lwsstart.dat", "request line"),
        ("trws.dat", "request line"),
        ("escruri.dat", "headers are not allowed in a Request-URI"),
        ("badaspec.dat", "whitespace"),
        ("badvers.dat", "SIP/7.0"),
        ("mismatch01.dat", "CSeq method"),
        ("mismatch02.dat", "CSeq method"),
        ("bigcode.dat", "status line"),
        ("insuf.dat", "missing"),
        ("multi01.dat", "more than one"),
        ("mcl01.dat", "Content-Length"),
    ],
)
def test_invalid_messages_fail_for_the_right_reason(name: str, why: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(_read(f"rfc4475/{name}"))
    assert why in info.value.reason


def test_baddn_is_rejected_for_its_display_name_too() -> None:
    raw = _read("rfc4475/baddn.dat")
    with pytest.raises(ParseError) as info:
        parse_message(raw)  # as published: no blank line ends the headers
    assert info.value.status == 400
    with pytest.raises(ParseError) as info:
        parse_message(raw + b"\r\n")
    assert info.value.status == 400
    assert "display name" in info.value.reason


def test_scalar02_every_overlarge_field_is_caught() -> None:
    raw = _read("rfc4475/scalar02.dat")
    steps = [
        (b"CSeq: 36893488147419103232 REGISTER", b"CSeq: 36 REGISTER", "Max-Forwards"),
        (b"Max-Forwards: 300", b"Max-Forwards: 70", "Expires"),
    ]
    for old, new, next_error in steps:
        raw = raw.replace(old, new)
        with pytest.raises(ParseError) as info:
            parse_message(raw)
        assert next_error in info.value.reason
    fixed = parse_message(raw.replace(b"Expires: 1" + b"0" * 100, b"Expires: 10"))
    # the Contact expires overflow is the registrar's to reject (see test_sip_registrar)
    assert fixed.contacts[0].param("expires") == "280297596632815"


def test_stream_transport_verdicts() -> None:
    # clerr: on a stream, a Content-Length beyond the data means "wait for more"
    framer = StreamFramer()
    assert framer.feed(_read("rfc4475/clerr.dat").replace(b"\n", b"\r\n")) == []
    assert framer.buffered > 0
    # ncl / mcl01: framing is lost, the connection must be closed
    for name in ("ncl.dat", "mcl01.dat"):
        with pytest.raises(ParseError):
            StreamFramer().feed(_read(f"rfc4475/{name}"))


# --------------------------------------------------------------------------- application layer


def test_regbadct_contact_fails_only_when_read() -> None:
    m = _req("rfc4475/regbadct.dat")
    assert m.method == "REGISTER"
    assert m.headers.get("contact") == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    with pytest.raises(HeaderError):
        m.contacts  # noqa: B018


def test_cparam01_unknownparam_is_a_contact_param() -> None:
    (c,) = _req("rfc4475/cparam01.dat").contacts
    assert c.param("unknownparam") == ""
    assert isinstance(c.uri, SipURI) and c.uri.param("unknownparam") is None
    assert c.uri_text == "sip:+19725552222@gw1.example.net"


def test_cparam02_unknownparam_is_a_uri_param() -> None:
    (c,) = _req("rfc4475/cparam02.dat").contacts
    assert c.param("unknownparam") is None
    assert isinstance(c.uri, SipURI) and c.uri.param("unknownparam") == ""
    assert c.uri_text == "sip:+19725552222@gw1.example.net;unknownparam"


def test_regescrt_escaped_route_stays_in_the_contact_uri() -> None:
    (c,) = _req("rfc4475/regescrt.dat").contacts
    assert c.uri_text == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    assert isinstance(c.uri, SipURI) and c.uri.headers == "Route=%3Csip:sip.example.com%3E"
    assert str(c.uri) == c.uri_text


CHECKS: dict[str, Callable[[Request | Response], None]] = {}


def _check(name: str) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    def deco(fn: Callable[[Any], None]) -> Callable[[Any], None]:
        CHECKS[name] = fn
        return fn
    return deco


@_check("unkscm.dat")
def _unkscm(m: Request) -> None:  # 416 at the application
    assert isinstance(m.uri, AbsoluteURI) and m.uri.scheme == "nobodyknowsthisscheme"


@_check("novelsc.dat")
def _novelsc(m: Request) -> None:
    assert isinstance(m.uri, AbsoluteURI) and m.uri.scheme == "soap.beep"


@_check("unksm2.dat")
def _unksm2(m: Request) -> None:  # a registrar answers 400: To is no SIP URI
    assert m.method == "REGISTER"
    assert isinstance(m.to.uri, AbsoluteURI) and m.to.uri.scheme == "isbn"
    assert isinstance(m.from_.uri, AbsoluteURI) and m.from_.uri.scheme == "http"


@_check("bext01.dat")
def _bext01(m: Request) -> None:  # 420 with Unsupported
    assert m.headers.get_list("require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert m.headers.get_list("proxy-require") == [
        "noProxiesSupportThis", "norDoAnyProxiesSupportThis"]


@_check("invut.dat")
def _invut(m: Request) -> None:  # 415
    assert m.headers.get("content-type") == "application/unknownformat"
    assert len(m.body) == 40


@_check("sdp01.dat")
def _sdp01(m: Request) -> None:  # 406
    assert m.headers.get("accept") == "text/nobodyKnowsThis"


@_check("regaut01.dat")
def _regaut01(m: Request) -> None:  # 401 with a fresh Digest challenge
    auth = m.headers.get("authorization") or ""
    assert auth.split()[0] == "NoOneKnowsThisScheme"


@_check("badbranch.dat")
def _badbranch(m: Request) -> None:  # 400 statelessly, or RFC 2543 matching
    assert m.top_via.branch == "z9hG4bK"


@_check("zeromf.dat")
def _zeromf(m: Request) -> None:  # an endpoint answers normally
    assert m.headers.get("max-forwards") == "0"


@_check("bcast.dat")
def _bcast(m: Response) -> None:  # discarded: no transaction of ours sent it
    assert isinstance(m, Response)
    assert [v.host for v in m.vias] == ["192.0.2.198", "255.255.255.255"]


@_check("baddate.dat")
def _baddate(m: Request) -> None:
    assert m.headers.get("date") == "Fri, 01 Jan 2010 16:00:00 EST"


@_check("regbadct.dat")
def _regbadct(m: Request) -> None:
    with pytest.raises(HeaderError):
        m.contacts  # noqa: B018


@_check("cparam01.dat")
def _cparam01(m: Request) -> None:
    assert m.contacts[0].param("unknownparam") == ""


@_check("cparam02.dat")
def _cparam02(m: Request) -> None:
    c = m.contacts[0]
    assert isinstance(c.uri, SipURI) and c.uri.param("unknownparam") == ""


@_check("regescrt.dat")
def _regescrt(m: Request) -> None:
    assert m.contacts[0].uri_text.endswith("?Route=%3Csip:sip.example.com%3E")


def test_every_application_row_has_a_check() -> None:
    assert {n for n, v in VERDICT_4475.items() if v == APP} == set(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_application_level_piece_is_visible(name: str) -> None:
    CHECKS[name](_parse(f"rfc4475/{name}"))
