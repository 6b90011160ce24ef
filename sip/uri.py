"""URIs in SIP (RFC 3261 §19.1, §25; RFC 5118 for IPv6 references).

`parse_uri` turns text into a `SipURI` (sip/sips) or an `AbsoluteURI` (tel and every other
scheme, kept opaque). Fields keep the text exactly as received (escapes included) so that a
URI serialises back byte for byte: registrar bindings must return Contact URIs unchanged
(RFC 4475 cparam02, regescrt). Comparison follows §19.1.4 in `uri_equal`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

__all__ = [
    "AbsoluteURI",
    "SipURI",
    "URI",
    "URIError",
    "format_host",
    "parse_host_port",
    "parse_uri",
    "unescape",
    "uri_equal",
]


class URIError(ValueError):
    """Text is not a URI of the expected form."""


_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
_USER_RE = re.compile(rf"[{_UNRESERVED}%&=+$,;?/]+")
_PASSWORD_RE = re.compile(rf"[{_UNRESERVED}%&=+$,]*")
_PARAM_RE = re.compile(rf"[{_UNRESERVED}%\[\]/:&+$]+")
_HEADERS_RE = re.compile(rf"[{_UNRESERVED}%\[\]/?:+$=&]+")
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Used with fullmatch only: "$" would also match before a trailing newline, letting a line
# break into a host that is later written into other messages.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_IPV4_RE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# RFC 3261's IPv6reference ABNF admits "2001:db8:::192.0.2.1" (RFC 5118 §4.10): tolerate it.
_IPV6_LOOSE_RE = re.compile(r"[0-9A-Fa-f:.]+")
_PORT_RE = re.compile(r"[0-9]{1,5}")


def unescape(text: str) -> str:
    """Decode %HH escapes; %00 stays a real NUL character (RFC 4475 escnull)."""
    if "%" not in text:
        return text
    return unquote_to_bytes(text).decode("utf-8", "surrogateescape")


def _check_escapes(text: str) -> bool:
    return "%" not in text or _BAD_ESCAPE_RE.search(text) is None


def _valid_host(host: str) -> bool:
    if not host:
        return False
    if host[0] == "[":
        if host[-1] != "]":
            return False
        inner = host[1:-1]
        try:
            ipaddress.IPv6Address(inner)
            return True
        except ValueError:
            return bool(_IPV6_LOOSE_RE.fullmatch(inner)) and inner.count(":") >= 2
    if _IPV4_RE.fullmatch(host):
        return all(int(p) <= 255 for p in host.split("."))
    return bool(_HOSTNAME_RE.fullmatch(host))


_HOSTPORT_CACHE: dict[str, tuple[str, int | None]] = {}


def parse_host_port(text: str) -> tuple[str, int | None]:
    """`host[:port]` with bracketed IPv6; returns host as written (brackets kept)."""
    hit = _HOSTPORT_CACHE.get(text)
    if hit is not None:
        return hit
    result = _parse_host_port(text)
    if len(_HOSTPORT_CACHE) < 8192:  # bounded: hosts come from the network
        _HOSTPORT_CACHE[text] = result
    return result


def _parse_host_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            raise URIError(f"unterminated IPv6 reference in {text!r}")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise URIError(f"junk after IPv6 reference in {text!r}")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_ = text.partition(":")
        port_text = port_text_ if sep else None
    if not _valid_host(host):
        raise URIError(f"bad host {host!r}")
    port: int | None = None
    if port_text is not None:
        # str.isdigit() would admit "²" (int() then fails) and "١٢" (int() says 12)
        if not _PORT_RE.fullmatch(port_text) or int(port_text) > 65535:
            raise URIError(f"bad port {port_text!r}")
        port = int(port_text)
    return host, port


def format_host(host: str) -> str:
    """Bracket a bare IPv6 address for use in a URI or Via."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


@dataclass(slots=True)
class SipURI:
    """A sip: or sips: URI; every field as written (escapes kept)."""

    scheme: str
    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: list[tuple[str, str | None]] = field(default_factory=list)
    headers: str | None = None

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts.append(":")
                parts.append(self.password)
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        for name, value in self.params:
            parts.append(f";{name}" if value is None else f";{name}={value}")
        if self.headers is not None:
            parts.append("?")
            parts.append(self.headers)
        return "".join(parts)

    def param(self, name: str) -> str | None:
        """Value of a URI parameter (names are case-insensitive); '' for a flag."""
        lname = name.lower()
        for pname, value in self.params:
            if pname.lower() == lname:
                return "" if value is None else value
        return None

    @property
    def user_unescaped(self) -> str | None:
        return None if self.user is None else unescape(self.user)

    @property
    def host_bare(self) -> str:
        """Host without IPv6 brackets, lower-cased."""
        h = self.host[1:-1] if self.host.startswith("[") else self.host
        return h.lower()

    @property
    def transport(self) -> str | None:
        t = self.param("transport")
        return t.lower() if t else None


@dataclass(slots=True)
class AbsoluteURI:
    """Any other scheme (tel:, urn:, http:, ...), kept opaque."""

    scheme: str
    opaque: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"

    @property
    def user(self) -> str | None:
        """The number of a tel: URI without its parameters; None for other schemes."""
        if self.scheme == "tel":
            return self.opaque.split(";", 1)[0]
        return None


URI = SipURI | AbsoluteURI


_URI_CACHE: dict[str, URI] = {}


def parse_uri(text: str) -> URI:
    """Parse a URI; raise URIError if it is malformed.

    The same few URIs arrive again and again (each phone's AOR, our own address), so
    parses are remembered; every call still returns a fresh object the caller may change."""
    hit = _URI_CACHE.get(text)
    if hit is not None:
        if isinstance(hit, SipURI):
            return SipURI(hit.scheme, hit.host, hit.user, hit.password, hit.port,
                          list(hit.params), hit.headers)
        return AbsoluteURI(hit.scheme, hit.opaque)
    uri = _parse_uri(text)
    if len(_URI_CACHE) >= 16384:
        # bounded, as URIs come from the network; started afresh rather than closed to new
        # entries, so that the URIs of the phones registering now are the ones remembered
        # (each registration reads its AOR and Contact twice: challenge, then credentials)
        _URI_CACHE.clear()
    _URI_CACHE[text] = uri
    return parse_uri(text)  # the cached one stays private


def _parse_uri(text: str) -> URI:
    colon = text.find(":")
    if colon <= 0:
        raise URIError(f"no scheme in {text!r}")
    scheme = text[:colon]
    rest = text[colon + 1 :]
    lscheme = scheme.lower()
    if lscheme not in ("sip", "sips"):
        if not _SCHEME_RE.fullmatch(scheme) or not rest:
            raise URIError(f"bad URI {text!r}")
        for ch in rest:
            if ch <= " " or ch in '<>"' or ch == "\x7f":
                raise URIError(f"bad character {ch!r} in URI {text!r}")
        return AbsoluteURI(lscheme, rest)

    user = password = None
    at = rest.find("@")
    if at != -1:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, sep, pw = userinfo.partition(":")
        if not _USER_RE.fullmatch(user) or not _check_escapes(user):
            raise URIError(f"bad user part in {text!r}")
        if sep:
            if not _PASSWORD_RE.fullmatch(pw) or not _check_escapes(pw):
                raise URIError(f"bad password in {text!r}")
            password = pw

    headers = None
    q = rest.find("?")
    if q != -1:
        rest, headers = rest[:q], rest[q + 1 :]
        if not _HEADERS_RE.fullmatch(headers) or not _check_escapes(headers):
            raise URIError(f"bad headers in {text!r}")

    hostport, *param_parts = rest.split(";")
    host, port = parse_host_port(hostport)
    params: list[tuple[str, str | None]] = []
    for part in param_parts:
        name, eq, value = part.partition("=")
        if not _PARAM_RE.fullmatch(name):
            raise URIError(f"bad parameter {part!r} in {text!r}")
        if eq:
            if not _PARAM_RE.fullmatch(value):
                raise URIError(f"bad parameter {part!r} in {text!r}")
            params.append((name, value))
        else:
            params.append((name, None))
        if not _check_escapes(part):
            raise URIError(f"bad escape in {text!r}")
    return SipURI(lscheme, host, user, password, port, params, headers)


_SIGNIFICANT_PARAMS = ("user", "ttl", "method", "maddr", "transport")
_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_RESERVED = frozenset(b";/?:@&=+$,")  # RFC 2396


def _decode_unreserved(m: re.Match[str]) -> str:
    code = int(m.group(1), 16)
    return f"%{code:02X}" if code in _RESERVED else chr(code)


def _norm_userinfo(text: str | None) -> str | None:
    """§19.1.4: an escaped character equals the raw one unless it is reserved, so
    'alice%3Bday' (one user) differs from 'alice;day'; hex case never matters."""
    if text is None or "%" not in text:
        return text
    return _ESCAPE_RE.sub(_decode_unreserved, text)


def _norm_params(uri: SipURI) -> dict[str, str | None]:
    return {unescape(k).lower(): (None if v is None else unescape(v).lower()) for k, v in uri.params}


def _norm_headers(uri: SipURI) -> dict[str, str]:
    if not uri.headers:
        return {}
    out: dict[str, str] = {}
    for item in uri.headers.split("&"):
        k, _, v = item.partition("=")
        out[unescape(k).lower()] = unescape(v)
    return out


def uri_equal(a: URI, b: URI) -> bool:
    """RFC 3261 §19.1.4 comparison."""
    if isinstance(a, AbsoluteURI) or isinstance(b, AbsoluteURI):
        return (
            isinstance(a, AbsoluteURI)
            and isinstance(b, AbsoluteURI)
            and a.scheme == b.scheme
            and unescape(a.opaque) == unescape(b.opaque)
        )
    if a.scheme != b.scheme or a.host_bare != b.host_bare or a.port != b.port:
        return False
    if _norm_userinfo(a.user) != _norm_userinfo(b.user):
        return False
    if _norm_userinfo(a.password) != _norm_userinfo(b.password):
        return False
    ap, bp = _norm_params(a), _norm_params(b)
    for name in _SIGNIFICANT_PARAMS:
        if (name in ap or name in bp) and ap.get(name) != bp.get(name):
            return False
    for name in ap.keys() & bp.keys():
        if ap[name] != bp[name]:
            return False
    return _norm_headers(a) == _norm_headers(b)
