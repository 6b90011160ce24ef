"""Typed header values (RFC 3261 §20, §25): Via, name-addr (From/To/Contact/Route), CSeq,
generic parameters, comma-separated lists, and the compact-form table.

Messages keep header values as text; these parsers turn one value into a typed object on
demand and raise `HeaderError` on malformed input. `str(x)` gives the wire form back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sip.uri import URI, URIError, parse_host_port, parse_uri

__all__ = [
    "COMPACT_FORMS",
    "CSeq",
    "HeaderError",
    "NameAddr",
    "Via",
    "canonical_name",
    "format_params",
    "header_key",
    "parse_cseq",
    "parse_name_addr",
    "parse_name_addr_list",
    "parse_params",
    "parse_via",
    "parse_via_list",
    "split_list",
]


class HeaderError(ValueError):
    """A header value does not match its grammar."""


COMPACT_FORMS = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

_CANONICAL = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
    "rack": "RAck",
    "rseq": "RSeq",
}


_KEY_CACHE: dict[str, str] = {}


def header_key(name: str) -> str:
    """Lower-case full name of a header: the key messages use for lookups."""
    key = _KEY_CACHE.get(name)
    if key is None:
        key = name.lower()
        key = COMPACT_FORMS.get(key, key)
        if len(_KEY_CACHE) < 4096:  # bounded: header names come from the network
            _KEY_CACHE[name] = key
    return key


def canonical_name(key: str) -> str:
    """Conventional spelling of a header key for messages we write."""
    name = _CANONICAL.get(key)
    if name is None:
        name = "-".join(p.capitalize() for p in key.split("-"))
    return name


_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)
_WS = " \t"


_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")


def is_token(text: str) -> bool:
    return _TOKEN_RE.fullmatch(text) is not None


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas in quotes and <...>."""
    if "," not in value:
        return [value.strip(_WS)]
    out: list[str] = []
    start = 0
    in_quote = in_angle = False
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if in_quote:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif c == "<":
            in_angle = True
        elif c == ">":
            in_angle = False
        elif c == "," and not in_angle:
            out.append(value[start:i].strip(_WS))
            start = i + 1
        i += 1
    out.append(value[start:].strip(_WS))
    return out


def _read_quoted(text: str, i: int) -> int:
    """Index just past the closing quote of a quoted string starting at text[i]."""
    n = len(text)
    i += 1
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        i += 1
    raise HeaderError("unterminated quoted string")


# Parameters as nearly every UA writes them: `;name` or `;name=value` with token names and
# token (or IPv4 host:port) values, no LWS, quotes or IPv6. For these the careful parser
# below gives exactly what splitting on ';' and '=' gives; a message carries a dozen of them.
_SIMPLE_PARAMS_RE = re.compile(r"(?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=[A-Za-z0-9\-.!%*_+`'~:]+)?)*")


def parse_params(text: str) -> list[tuple[str, str | None]]:
    """Parse `*( SEMI generic-param )`; `text` starts at the first ';' (or is empty).

    Values may be tokens, hosts (IPv6 references included) or quoted strings, kept as written
    (quotes included); LWS around ';' and '=' is allowed and dropped.
    """
    if not text:
        return []
    if _SIMPLE_PARAMS_RE.fullmatch(text) is None:
        return _parse_params(text)
    params: list[tuple[str, str | None]] = []
    for part in text[1:].split(";"):
        name, eq, value = part.partition("=")
        params.append((name, value if eq else None))
    return params


def _parse_params(text: str) -> list[tuple[str, str | None]]:
    params: list[tuple[str, str | None]] = []
    i = 0
    n = len(text)
    while i < n:
        while i < n and text[i] in _WS:
            i += 1
        if i >= n:
            break
        if text[i] != ";":
            raise HeaderError(f"expected ';' at {text[i:]!r}")
        i += 1
        while i < n and text[i] in _WS:
            i += 1
        start = i
        while i < n and text[i] in _TOKEN_CHARS:
            i += 1
        name = text[start:i]
        if not name:
            raise HeaderError("empty parameter")
        while i < n and text[i] in _WS:
            i += 1
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in _WS:
                i += 1
            start = i
            if i < n and text[i] == '"':
                i = _read_quoted(text, i)
            elif i < n and text[i] == "[":
                end = text.find("]", i)
                if end == -1:
                    raise HeaderError("unterminated IPv6 reference in parameter")
                i = end + 1
            else:
                while i < n and (text[i] in _TOKEN_CHARS or text[i] == ":"):
                    i += 1
            value = text[start:i]
            if not value:
                raise HeaderError(f"parameter {name!r} has an empty value")
            params.append((name, value))
        else:
            params.append((name, None))
    return params


def format_params(params: list[tuple[str, str | None]]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def get_param(params: list[tuple[str, str | None]], name: str) -> str | None:
    """Value of a parameter ('' for a flag, None when absent); names case-insensitive."""
    lname = name.lower()
    for k, v in params:
        if k.lower() == lname:
            return "" if v is None else v
    return None


def set_param(params: list[tuple[str, str | None]], name: str, value: str | None) -> None:
    lname = name.lower()
    for i, (k, _) in enumerate(params):
        if k.lower() == lname:
            params[i] = (k, value)
            return
    params.append((name, value))


# --------------------------------------------------------------------------- Via


@dataclass(slots=True)
class Via:
    """One via-parm: `SIP/2.0/UDP host:port;branch=...;received=...;rport=...`."""

    transport: str
    host: str
    port: int | None = None
    params: list[tuple[str, str | None]] = field(default_factory=list)
    protocol: str = "SIP/2.0"

    def __str__(self) -> str:
        hp = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{self.protocol}/{self.transport} {hp}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return get_param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return get_param(self.params, "received")

    @property
    def rport(self) -> str | None:
        return get_param(self.params, "rport")

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    def set_param(self, name: str, value: str | None) -> None:
        set_param(self.params, name, value)


# `SIP/2.0/transport sent-by` with nothing unusual: no LWS but the one space, params (if
# any) right after the sent-by. Everything else goes through _parse_via, which reads the
# same fields from such text and also copes with LWS around '/' and ':'.
_VIA_FAST_RE = re.compile(r"SIP/2\.0/([A-Za-z0-9\-.!%*_+`'~]+) ([^ \t;]+)")


def parse_via(text: str) -> Via:
    """Parse one via-parm (LWS around '/' and ':' tolerated as RFC 4475 wsinv requires)."""
    m = _VIA_FAST_RE.match(text)
    if m is None:
        return _parse_via(text)
    end = m.end()
    if end < len(text) and text[end] != ";":
        return _parse_via(text)
    try:
        host, port = parse_host_port(m.group(2))
    except URIError as exc:
        raise HeaderError(f"bad Via sent-by: {exc}") from None
    params = _via_params(parse_params(text[end:]))
    return Via(m.group(1).upper(), host, port, params, "SIP/2.0")


def _via_params(params: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    for k, v in params:
        lk = k.lower()
        if lk == "branch" and v is None:
            raise HeaderError("Via branch without value")
        if lk == "rport" and v is not None and not (v.isdigit() and int(v) <= 65535):
            raise HeaderError(f"bad rport {v!r}")
    return params


def _parse_via(text: str) -> Via:
    slash1 = text.find("/")
    slash2 = text.find("/", slash1 + 1) if slash1 != -1 else -1
    if slash2 == -1:
        raise HeaderError(f"bad Via {text!r}")
    name = text[:slash1].strip(_WS)
    version = text[slash1 + 1 : slash2].strip(_WS)
    rest = text[slash2 + 1 :].lstrip(_WS)
    if not is_token(name) or not is_token(version):
        raise HeaderError(f"bad Via protocol in {text!r}")
    i = 0
    while i < len(rest) and rest[i] in _TOKEN_CHARS:
        i += 1
    transport = rest[:i]
    if not transport:
        raise HeaderError(f"bad Via transport in {text!r}")
    rest = rest[i:].lstrip(_WS)
    semi = rest.find(";")
    sent_by = (rest if semi == -1 else rest[:semi]).strip(_WS)
    if " " in sent_by or "\t" in sent_by:
        # LWS may surround the port colon ("host : 5060") and nothing else: "host 5060" is
        # not "host5060"
        end = sent_by.find("]") + 1 if sent_by.startswith("[") else 0
        colon = sent_by.find(":", end)
        if colon != -1:
            sent_by = sent_by[:colon].rstrip(_WS) + ":" + sent_by[colon + 1 :].lstrip(_WS)
        if " " in sent_by or "\t" in sent_by:
            raise HeaderError(f"whitespace inside Via sent-by {sent_by!r}")
    try:
        host, port = parse_host_port(sent_by)
    except URIError as exc:
        raise HeaderError(f"bad Via sent-by: {exc}") from None
    params = _via_params(parse_params("" if semi == -1 else rest[semi:]))
    protocol = f"{name}/{version}"
    return Via(transport.upper(), host, port, params, protocol)


def parse_via_list(value: str) -> list[Via]:
    return [parse_via(item) for item in split_list(value)]


# --------------------------------------------------------------------------- name-addr


@dataclass(slots=True)
class NameAddr:
    """From, To, Contact, Route, Record-Route, Reply-To values.

    `display` is kept as written (quotes included) or None; `bracketed` records whether the
    URI was in <...> so the value serialises back unchanged. `uri` is None only for the
    wildcard `Contact: *`.
    """

    uri: URI | None
    display: str | None = None
    params: list[tuple[str, str | None]] = field(default_factory=list)
    bracketed: bool = True
    uri_text: str = ""

    def __str__(self) -> str:
        if self.uri is None:
            return "*"
        if self.bracketed or self.display:
            head = f"{self.display} <{self.uri_text}>" if self.display else f"<{self.uri_text}>"
        else:
            head = self.uri_text
        return head + format_params(self.params)

    @property
    def tag(self) -> str | None:
        return get_param(self.params, "tag")

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    def set_param(self, name: str, value: str | None) -> None:
        set_param(self.params, name, value)

    @property
    def is_wildcard(self) -> bool:
        return self.uri is None

    @property
    def display_name(self) -> str | None:
        """Display name without quotes or escapes."""
        d = self.display
        if d is None:
            return None
        if d.startswith('"'):
            out = []
            i = 1
            while i < len(d) - 1:
                if d[i] == "\\" and i + 1 < len(d) - 1:
                    i += 1
                out.append(d[i])
                i += 1
            return "".join(out)
        return d


def parse_name_addr(text: str, *, allow_wildcard: bool = False) -> NameAddr:
    """Parse `( name-addr / addr-spec ) *( SEMI param )`."""
    text = text.strip(_WS)
    if allow_wildcard and text == "*":
        return NameAddr(None, bracketed=False, uri_text="*")
    if not text:
        raise HeaderError("empty address")
    display: str | None = None
    i = 0
    n = len(text)
    if text[0] == '"':
        i = _read_quoted(text, 0)
        display = text[:i]
        while i < n and text[i] in _WS:
            i += 1
        if i >= n or text[i] != "<":
            raise HeaderError("quoted display name not followed by <")
    lt = text.find("<", i)
    if lt > 0 and display is None and (text.find(";", 0, lt) != -1
                                       or text.find('"', 0, lt) != -1):
        # that '<' sits in a parameter of an addr-spec (+sip.instance="<urn:...>"): an
        # unquoted display name cannot hold ';' or '"'
        lt = -1
    if lt != -1:
        if display is None:
            name = text[:lt].strip(_WS)
            if name:
                # unquoted display-name = *(token LWS)
                if not all(is_token(w) for w in name.split()):
                    raise HeaderError(f"bad display name {name!r}")
                display = name
        gt = text.find(">", lt)
        if gt == -1:
            raise HeaderError("unterminated <")
        uri_text = text[lt + 1 : gt]
        if uri_text != uri_text.strip(_WS) or not uri_text:
            raise HeaderError(f"whitespace inside <{uri_text}>")
        rest = text[gt + 1 :]
        bracketed = True
    else:
        if display is not None:
            raise HeaderError("display name without <uri>")
        semi = text.find(";")
        uri_text = (text if semi == -1 else text[:semi]).strip(_WS)
        rest = "" if semi == -1 else text[semi:]
        # addr-spec outside <> cannot carry URI params, headers or commas (RFC 3261 §20.10)
        if any(c in uri_text for c in " \t?,"):
            raise HeaderError(f"URI with reserved characters must be in <>: {uri_text!r}")
        bracketed = False
    try:
        uri = parse_uri(uri_text)
    except URIError as exc:
        raise HeaderError(str(exc)) from None
    params = parse_params(rest)
    return NameAddr(uri, display, params, bracketed, uri_text)


def parse_name_addr_list(value: str, *, allow_wildcard: bool = False) -> list[NameAddr]:
    return [parse_name_addr(item, allow_wildcard=allow_wildcard) for item in split_list(value)]


# --------------------------------------------------------------------------- CSeq

MAX_UINT32 = 2**32 - 1


@dataclass(slots=True, frozen=True)
class CSeq:
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


# ASCII digits and LWS only: str.isdigit() admits "²" and Arabic-Indic digits, str.split()
# splits on \x1c
_CSEQ_RE = re.compile(r"[ \t]*([0-9]+)[ \t]+([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*")


def parse_cseq(text: str) -> CSeq:
    m = _CSEQ_RE.fullmatch(text)
    if m is None:
        raise HeaderError(f"bad CSeq {text!r}")
    seq = int(m.group(1))
    if seq > MAX_UINT32:
        raise HeaderError("CSeq number exceeds 2**32-1")
    return CSeq(seq, m.group(2))


def parse_uint(text: str, what: str, maximum: int = MAX_UINT32) -> int:
    t = text.strip(_WS)
    if not t.isdigit() or not t.isascii():
        raise HeaderError(f"bad {what} {text!r}")
    v = int(t)
    if v > maximum:
        raise HeaderError(f"{what} too large")
    return v
