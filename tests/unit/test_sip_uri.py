"""sip.uri: parsing, byte-exact serialisation and RFC 3261 §19.1.4 comparison."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sip.uri import (
    AbsoluteURI,
    SipURI,
    URIError,
    format_host,
    parse_host_port,
    parse_uri,
    unescape,
    uri_equal,
)

# --------------------------------------------------------------------------- parsing


def test_full_sip_uri_fields() -> None:
    u = parse_uri("sips:alice:secret@Atlanta.example.com:5061;transport=tcp;lr?subject=hi&x=y")
    assert isinstance(u, SipURI)
    assert (u.scheme, u.user, u.password, u.host, u.port) == (
        "sips", "alice", "secret", "Atlanta.example.com", 5061)
    assert u.params == [("transport", "tcp"), ("lr", None)]
    assert u.headers == "subject=hi&x=y"
    assert u.param("TRANSPORT") == "tcp"
    assert u.param("lr") == ""
    assert u.param("maddr") is None
    assert u.transport == "tcp"
    assert u.host_bare == "atlanta.example.com"


def test_ipv6_reference_keeps_brackets_and_port() -> None:
    u = parse_uri("sip:[2001:DB8::10]:5070")
    assert isinstance(u, SipURI)
    assert u.host == "[2001:DB8::10]"
    assert u.port == 5070
    assert u.host_bare == "2001:db8::10"
    # RFC 5118 §4.3: no port hides inside the brackets
    amb = parse_uri("sip:user@[2001:db8::10:5070]")
    assert isinstance(amb, SipURI)
    assert (amb.host, amb.port) == ("[2001:db8::10:5070]", None)


def test_rfc3261_ipv6_abnf_bug_is_tolerated() -> None:
    u = parse_uri("sip:user@[2001:db8:::192.0.2.1]")  # RFC 5118 §4.10
    assert isinstance(u, SipURI)
    assert u.host == "[2001:db8:::192.0.2.1]"


def test_user_part_may_hold_semicolons_and_question_marks() -> None:
    u = parse_uri("sip:user;par=u%40example.net@example.com")  # RFC 4475 semiuri
    assert isinstance(u, SipURI)
    assert u.user == "user;par=u%40example.net"
    assert u.user_unescaped == "user;par=u@example.net"
    assert u.params == []


def test_escapes_are_kept_as_written_and_decoded_on_demand() -> None:
    u = parse_uri("sip:sips%3Auser%40example.com@example.net")  # RFC 4475 esc01
    assert isinstance(u, SipURI)
    assert u.user == "sips%3Auser%40example.com"
    assert u.user_unescaped == "sips:user@example.com"
    assert str(u) == "sip:sips%3Auser%40example.com@example.net"


def test_escaped_nul_is_data_not_a_terminator() -> None:
    u = parse_uri("sip:null-%00-null@example.com")  # RFC 4475 escnull
    assert isinstance(u, SipURI)
    assert u.user == "null-%00-null"
    assert u.user_unescaped == "null-\x00-null"
    assert unescape("%00%00") == "\x00\x00"


def test_unescape_is_a_single_pass() -> None:
    assert unescape("value%25%34%31") == "value%41"
    assert unescape("plain") == "plain"


def test_other_schemes_are_opaque() -> None:
    u = parse_uri("NoBodyKnowsThisScheme:totally;opaque?content")
    assert isinstance(u, AbsoluteURI)
    assert u.scheme == "nobodyknowsthisscheme"
    assert u.opaque == "totally;opaque?content"
    assert u.user is None
    tel = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert isinstance(tel, AbsoluteURI)
    assert tel.user == "+1-201-555-0123"


def test_scheme_is_normalised_to_lower_case() -> None:
    # deliberate: code compares schemes with ==; the rest of the URI stays as written
    u = parse_uri("SIP:ALICE@AtLanTa.CoM")
    assert str(u) == "sip:ALICE@AtLanTa.CoM"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip:",
        "sip:@example.com",
        "sip:user@",
        "example.com",
        ":user@example.com",
        "sip:user@example.com:",
        "sip:user@example.com:65536",
        "sip:user@example.com:123456",
        "sip:user@example.com:5o60",
        "sip:user@exa mple.com",
        "sip:user name@example.com",
        "sip:user@example.com;",
        "sip:user@example.com;=x",
        "sip:user@example.com;x=",
        "sip:user@example.com?",
        "sip:us%zzer@example.com",
        "sip:user@example.com;p=%4",
        "sip:user@[2001:db8::1",
        "sip:user@[2001:db8::1]x",
        "sip:user@2001:db8::10",  # RFC 5118 §4.2: IPv6 must be bracketed
        "sip:user@256.1.1.1",
        "sip:user@-bad.example.com",
        "sip:<user@example.com>",
        "sip:user@example.com\n",  # a line break must never hide in a URI
        "sip:user@192.0.2.1\n",
        "sip:user@[::1\n]",
        "sip:user@example.com:\u0661\u0662",  # Arabic-Indic digits are not DIGIT
        "sip:user@example.com:\u00b2",
        "sip:user@example.com:\uff15\uff10\uff16\uff10",
        "foo bar:baz",
        "tel:",
        "tel:+1 555",
        'tel:"x"',
    ],
)
def test_malformed_uris_raise_urierror(text: str) -> None:
    with pytest.raises(URIError):
        parse_uri(text)


def test_parse_host_port() -> None:
    assert parse_host_port("example.com") == ("example.com", None)
    assert parse_host_port("192.0.2.1:5060") == ("192.0.2.1", 5060)
    assert parse_host_port("[::1]:0") == ("[::1]", 0)
    assert parse_host_port("[2001:db8::9:255]") == ("[2001:db8::9:255]", None)
    for bad in ("[::1]5060", "host:", "host:-1", "host:\u0665", ""):
        with pytest.raises(URIError):
            parse_host_port(bad)


def test_format_host_brackets_bare_ipv6_only() -> None:
    assert format_host("2001:db8::1") == "[2001:db8::1]"
    assert format_host("[2001:db8::1]") == "[2001:db8::1]"
    assert format_host("192.0.2.1") == "192.0.2.1"
    assert format_host("example.com") == "example.com"


# --------------------------------------------------------------------------- §19.1.4

EQUAL_PAIRS = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
    ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
]

NOT_EQUAL_PAIRS = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
]


@pytest.mark.parametrize(("a", "b"), EQUAL_PAIRS)
def test_rfc3261_19_1_4_equal_examples(a: str, b: str) -> None:
    ua, ub = parse_uri(a), parse_uri(b)
    assert uri_equal(ua, ub)
    assert uri_equal(ub, ua)


@pytest.mark.parametrize(("a", "b"), NOT_EQUAL_PAIRS)
def test_rfc3261_19_1_4_not_equal_examples(a: str, b: str) -> None:
    ua, ub = parse_uri(a), parse_uri(b)
    assert not uri_equal(ua, ub)
    assert not uri_equal(ub, ua)


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        # user, ttl, method, maddr (and transport) present in one URI only never match
        ("sip:a@h", "sip:a@h;user=phone", False),
        ("sip:a@h", "sip:a@h;ttl=1", False),
        ("sip:a@h", "sip:a@h;maddr=239.0.0.1", False),
        ("sip:a@h;method=INVITE", "sip:a@h", False),
        # a parameter in both must match, case-insensitively
        ("sip:a@h;foo=Bar", "sip:a@h;FOO=bar", True),
        ("sip:a@h;foo=bar", "sip:a@h;foo=baz", False),
        # userinfo is case-sensitive, password included
        ("sip:a:pw@h", "sip:a:PW@h", False),
        ("sip:a:p%77@h", "sip:a:pw@h", True),
        ("sip:a@h", "sip:h", False),
        ("sips:a@h", "sip:a@h", False),
        # RFC 4475 esc01: every escape below is of an unreserved character (or of '%')
        ("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31",
         "sip:caller@host5.example.net;lr;name=value%2541", True),
        # escaped reserved characters are not equivalent to the raw ones (§19.1.4)
        ("sip:alice%3Bday%3Dtuesday@atlanta.com", "sip:alice;day=tuesday@atlanta.com", False),
        ("sip:%2B15551234@example.com", "sip:+15551234@example.com", False),
        ("sip:alice%3bx@atlanta.com", "sip:alice%3Bx@atlanta.com", True),
        # headers are never ignored; their names are case-insensitive
        ("sip:a@h?Subject=x", "sip:a@h?subject=x", True),
        ("sip:a@h?subject=x", "sip:a@h?subject=y", False),
        ("sip:a@[2001:DB8::1]", "sip:a@[2001:db8::1]", True),
        ("tel:+15551234", "tel:+15551234", True),
        ("tel:+15551234", "sip:+15551234@h", False),
    ],
)
def test_uri_equal_rules(a: str, b: str, equal: bool) -> None:
    ua, ub = parse_uri(a), parse_uri(b)
    assert uri_equal(ua, ub) is equal
    assert uri_equal(ub, ua) is equal


# --------------------------------------------------------------------------- generators

ALPHA = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGIT = "0123456789"
UNRESERVED = ALPHA + DIGIT + "-_.!~*'()"
RESERVED = ";/?:@&=+$,"


def _escape(ch: str) -> str:
    return "".join(f"%{b:02X}" for b in ch.encode())


ESCAPABLE = UNRESERVED + RESERVED + ' %<>"#\x00é'


def _chars(allowed: str, escapable: str = ESCAPABLE) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(allowed), st.sampled_from(escapable).map(_escape))


def _run(allowed: str, min_size: int = 1, max_size: int = 8) -> st.SearchStrategy[str]:
    return st.lists(_chars(allowed), min_size=min_size, max_size=max_size).map("".join)


label = st.builds(
    lambda first, mid, last: first + mid + last,
    st.sampled_from(ALPHA + DIGIT),
    st.text(ALPHA + DIGIT + "-", max_size=6),
    st.sampled_from(ALPHA + DIGIT),
) | st.sampled_from(list(ALPHA))
hostname = st.builds(
    lambda labels, top, dot: ".".join([*labels, top]) + dot,
    st.lists(label, max_size=3),
    st.sampled_from(["com", "example", "Net", "x1"]),
    st.sampled_from(["", "."]),
)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.ip_addresses(v=6).map(lambda a: f"[{a}]")
host = st.one_of(hostname, ipv4, ipv6)

user = _run(UNRESERVED + "&=+$,;?/")
password = _run(UNRESERVED + "&=+$,", min_size=0)
paramchars = UNRESERVED + "[]/:&+$"
param = st.tuples(_run(paramchars), st.none() | _run(paramchars))
hchars = UNRESERVED + "[]/?:+$"
header = st.tuples(_run(hchars), _run(hchars, min_size=0)).map(lambda kv: f"{kv[0]}={kv[1]}")


@st.composite
def sip_uri_text(draw: st.DrawFn) -> str:
    out = [draw(st.sampled_from(["sip", "sips"])), ":"]
    if draw(st.booleans()):
        out.append(draw(user))
        if draw(st.booleans()):
            out += [":", draw(password)]
        out.append("@")
    out.append(draw(host))
    if draw(st.booleans()):
        out.append(f":{draw(st.integers(0, 65535))}")
    for name, value in draw(st.lists(param, max_size=4)):
        out.append(f";{name}" if value is None else f";{name}={value}")
    headers = draw(st.lists(header, max_size=3))
    if headers:
        out.append("?" + "&".join(headers))
    return "".join(out)


@settings(max_examples=500)
@given(sip_uri_text())
def test_generated_uris_round_trip_byte_for_byte(text: str) -> None:
    u = parse_uri(text)
    assert isinstance(u, SipURI)
    assert str(u) == text
    assert str(parse_uri(str(u))) == text


@settings(max_examples=300)
@given(sip_uri_text())
def test_uri_equal_is_reflexive(text: str) -> None:
    assert uri_equal(parse_uri(text), parse_uri(text))


@settings(max_examples=300)
@given(sip_uri_text(), sip_uri_text())
def test_uri_equal_is_symmetric(a: str, b: str) -> None:
    ua, ub = parse_uri(a), parse_uri(b)
    assert uri_equal(ua, ub) == uri_equal(ub, ua)


def _swap_host_case(text: str) -> str:
    u = parse_uri(text)
    assert isinstance(u, SipURI)
    u.host = u.host.swapcase()
    return str(u)


@settings(max_examples=300)
@given(sip_uri_text())
def test_host_comparison_ignores_case(text: str) -> None:
    assert uri_equal(parse_uri(text), parse_uri(_swap_host_case(text)))


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(UNRESERVED), st.booleans()), min_size=1, max_size=12),
       host)
def test_escaped_and_unescaped_user_are_equal(chars: list[tuple[str, bool]], h: str) -> None:
    raw = "".join(c for c, _ in chars)
    mixed = "".join(_escape(c) if esc else c for c, esc in chars)
    a, b = parse_uri(f"sip:{raw}@{h}"), parse_uri(f"sip:{mixed}@{h}")
    assert uri_equal(a, b)
    assert unescape(mixed) == raw


@settings(max_examples=200)
@given(st.text(UNRESERVED, min_size=1, max_size=6), st.sampled_from(list("&=+$,;?/")), host)
def test_escaped_reserved_user_character_differs(prefix: str, ch: str, h: str) -> None:
    a = parse_uri(f"sip:{prefix}{ch}x@{h}")
    b = parse_uri(f"sip:{prefix}{_escape(ch)}x@{h}")
    assert not uri_equal(a, b)


@settings(max_examples=300)
@given(sip_uri_text(), st.sampled_from(["user", "ttl", "method", "maddr", "transport"]))
def test_significant_param_in_one_uri_only_never_matches(text: str, name: str) -> None:
    u = parse_uri(text)
    assert isinstance(u, SipURI)
    assume(u.param(name) is None)
    other = parse_uri(str(u))
    assert isinstance(other, SipURI)
    other.params.append((name, "x1"))
    assert not uri_equal(u, other)


@settings(max_examples=1000)
@given(st.text(max_size=60))
def test_arbitrary_text_raises_only_urierror(text: str) -> None:
    try:
        u = parse_uri(text)
    except URIError:
        return
    if isinstance(u, SipURI):
        # whatever was accepted serialises to something that parses to the same URI
        assert uri_equal(parse_uri(str(u)), u)


@settings(max_examples=500)
@given(sip_uri_text(), st.integers(0, 80), st.text(min_size=1, max_size=3))
def test_mutated_uris_raise_only_urierror(text: str, at: int, junk: str) -> None:
    mutated = text[:at] + junk + text[at:]
    try:
        u = parse_uri(mutated)
    except URIError:
        return
    assert uri_equal(parse_uri(str(u)), u)
