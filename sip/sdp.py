"""SDP session descriptions (RFC 4566; RFC 5118 IPv6 cases): the model, `parse_sdp`, and
serialisation. Offer/answer negotiation lives in `sip.offeranswer`.

Every line the model does not interpret (i=, u=, e=, p=, b=, z=, k=, r=, every attribute) is
kept, so a parsed description serialises back to the same content: input in RFC 4566 order
with CRLF comes back byte for byte; lines out of order come back in that order, with CRLF
(o=/t= numbers are ints, so a sess-id written "007" comes back as "7").
Bytes that are not UTF-8 survive as surrogate escapes: s=/i= may use another charset
(a=charset), and a call must not fail over its session name.

Only `SdpError` leaves the parser. The accessors read what was kept leniently: a malformed
rtpmap/ptime/rtcp value reads as absent instead of failing a call over a line it can live
without.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from typing import NamedTuple

__all__ = [
    "DIRECTIONS",
    "STATIC_PAYLOAD_TYPES",
    "Attribute",
    "Connection",
    "Line",
    "MediaDescription",
    "Origin",
    "RtcpAttribute",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "TelephoneEvent",
    "Timing",
    "parse_events",
    "parse_sdp",
]


class SdpError(ValueError):
    """Text is not a session description, or a model cannot be written as one."""


DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

# RFC 3551 §6: payload types that mean a codec without any rtpmap (encoding, rate, params)
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, str | None]] = {
    0: ("PCMU", 8000, None), 3: ("GSM", 8000, None), 4: ("G723", 8000, None),
    5: ("DVI4", 8000, None), 6: ("DVI4", 16000, None), 7: ("LPC", 8000, None),
    8: ("PCMA", 8000, None), 9: ("G722", 8000, None), 10: ("L16", 44100, "2"),
    11: ("L16", 44100, None), 12: ("QCELP", 8000, None), 13: ("CN", 8000, None),
    14: ("MPA", 90000, None), 15: ("G728", 8000, None), 16: ("DVI4", 11025, None),
    17: ("DVI4", 22050, None), 18: ("G729", 8000, None), 25: ("CelB", 90000, None),
    26: ("JPEG", 90000, None), 28: ("nv", 90000, None), 31: ("H261", 90000, None),
    32: ("MPV", 90000, None), 33: ("MP2T", 90000, None), 34: ("H263", 90000, None),
}

# str.isdigit()/int() accept non-ASCII digits, and int() refuses > 4300 digits: both would
# let something other than SdpError out of the parser.
_DIGITS = re.compile(r"[0-9]{1,40}")
_FORBIDDEN = re.compile(r"[\r\n\0]")
_TOKEN = re.compile(r"[^ \r\n\0]+")
_USERNAME = re.compile(r"[^ \r\n\0]+(?: [^ \r\n\0]+)*")
_IPV4ISH = re.compile(r"[0-9.]+")
_FQDN = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?")
_RTPMAP = re.compile(r"([0-9]{1,3}) +([^ /]+)/([0-9]{1,9})(?:/([^ ]+))?")
_PTIME = re.compile(r"([0-9]{1,6})(?:\.[0-9]*)?")
_EVENTS = re.compile(r"([0-9]{1,3})(?:-([0-9]{1,3}))?")
_DTMF_EVENTS = frozenset(range(16))  # RFC 4733 §2.4.1: no fmtp means events 0-15

_SESSION_LINES = "iuepbzk"  # kept as Line; r= belongs to the t= before it
_MEDIA_LINES = "ibk"


def _int(text: str, what: str, maximum: int | None = None) -> int:
    if not _DIGITS.fullmatch(text):
        raise SdpError(f"{what} is not a number: {text[:40]!r}")
    value = int(text)
    if maximum is not None and value > maximum:
        raise SdpError(f"{what} out of range: {value}")
    return value


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _key(name: str) -> str:
    return name.strip().lower()


@dataclass(frozen=True, slots=True)
class Origin:
    """o=: who made the description; (sess_id, sess_version) identify its revision."""

    username: str
    sess_id: int
    sess_version: int
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "127.0.0.1"

    def __str__(self) -> str:
        return (f"{self.username} {self.sess_id} {self.sess_version} {self.nettype} "
                f"{self.addrtype} {self.address}")


@dataclass(frozen=True, slots=True)
class Connection:
    """c=: `address` as written, multicast /ttl and /count included."""

    nettype: str
    addrtype: str
    address: str

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"

    @classmethod
    def for_host(cls, host: str) -> Connection:
        """IN IP4 or IN IP6 for an IP literal (brackets allowed); ValueError otherwise."""
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        ip = _ip(bare)
        if ip is None:
            raise ValueError(f"not an IP address: {host!r}")
        return cls("IN", f"IP{ip.version}", bare)

    @property
    def host(self) -> str:
        return self.address.split("/", 1)[0]

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The host as an IP address for IN IP4/IP6 literals; None for names and others."""
        if self.nettype.upper() != "IN" or self.addrtype.upper() not in ("IP4", "IP6"):
            return None
        return _ip(self.host)

    @property
    def is_hold(self) -> bool:
        """RFC 2543 hold (c=IN IP4 0.0.0.0, RFC 3264 §8.4); '::' is read the same way."""
        ip = self.ip
        return ip is not None and ip.is_unspecified


@dataclass(frozen=True, slots=True)
class Timing:
    """t= with the r= repeat lines that follow it (kept as written)."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Attribute:
    """a=name or a=name:value; `a=x:` (value "") and `a=x` (None) stay distinct."""

    name: str
    value: str | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class Line:
    """A line kept but not interpreted (i=, u=, e=, p=, b=, z=, k=)."""

    type: str
    value: str


class RtpMap(NamedTuple):
    payload_type: int
    encoding: str
    clock_rate: int
    params: str | None = None

    @property
    def channels(self) -> int | None:
        """Audio channel count: 1 when unstated, None when the parameter is not a number."""
        if self.params is None:
            return 1
        return int(self.params) if re.fullmatch(r"[0-9]{1,3}", self.params) else None

    def __str__(self) -> str:
        tail = "" if self.params is None else f"/{self.params}"
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{tail}"


class TelephoneEvent(NamedTuple):
    """An RFC 4733 format offered in a media section and the events its fmtp allows."""

    payload_type: int
    clock_rate: int
    events: frozenset[int]


class RtcpAttribute(NamedTuple):
    """a=rtcp (RFC 3605): RTCP port, and address when it differs from the RTP one."""

    port: int
    connection: Connection | None = None


def parse_events(text: str) -> frozenset[int] | None:
    """Event list of a telephone-event fmtp ("0-15,66"); None if malformed."""
    events: set[int] = set()
    for part in text.split(","):
        m = _EVENTS.fullmatch(part.strip())
        if m is None:
            return None
        low, high = int(m[1]), int(m[2] or m[1])
        if high < low or high > 255:
            return None
        events.update(range(low, high + 1))
    return frozenset(events)


class _Attributes:
    """Lookups shared by the session and media levels (names compare case-insensitively)."""

    __slots__ = ()
    attributes: tuple[Attribute, ...]

    def attribute(self, name: str) -> str | None:
        """Value of the first attribute called `name` ("" for a flag); None if absent."""
        key = _key(name)
        for a in self.attributes:
            if _key(a.name) == key:
                return "" if a.value is None else a.value
        return None

    def attribute_values(self, name: str) -> list[str]:
        key = _key(name)
        return ["" if a.value is None else a.value
                for a in self.attributes if _key(a.name) == key]

    @property
    def direction(self) -> str | None:
        """The direction attribute written at this level, if any."""
        for a in self.attributes:
            if _key(a.name) in DIRECTIONS:
                return _key(a.name)
        return None


@dataclass(frozen=True, slots=True)
class MediaDescription(_Attributes):
    """One m= section. `formats` are the m= tokens as written (payload types for RTP)."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    connections: tuple[Connection, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    lines: tuple[Line, ...] = ()

    @property
    def connection(self) -> Connection | None:
        """The media-level c= (the first one; several only occur for layered multicast)."""
        return self.connections[0] if self.connections else None

    @property
    def is_rtp(self) -> bool:
        return "RTP/" in self.proto.upper()

    def rtpmap(self, payload_type: int | str) -> RtpMap | None:
        """The rtpmap for a payload type, or the RFC 3551 static meaning on RTP."""
        wanted = str(payload_type)
        for value in self.attribute_values("rtpmap"):
            m = _RTPMAP.fullmatch(value.strip())
            if m is not None and m[1] == wanted:
                return RtpMap(int(m[1]), m[2], int(m[3]), m[4])
        if self.is_rtp and _DIGITS.fullmatch(wanted) and len(wanted) < 4:
            static = STATIC_PAYLOAD_TYPES.get(int(wanted))
            if static is not None:
                return RtpMap(int(wanted), *static)
        return None

    def fmtp(self, payload_type: int | str) -> str | None:
        wanted = str(payload_type)
        for value in self.attribute_values("fmtp"):
            number, _, params = value.strip().partition(" ")
            if number == wanted:
                return params.strip()
        return None

    @property
    def ptime(self) -> int | None:
        return _milliseconds(self.attribute("ptime"))

    @property
    def maxptime(self) -> int | None:
        return _milliseconds(self.attribute("maxptime"))

    def telephone_event(self, clock_rate: int | None = 8000) -> TelephoneEvent | None:
        """The first telephone-event format in the m= line (at `clock_rate` unless None)."""
        for fmt in self.formats:
            rm = self.rtpmap(fmt)
            if rm is None or rm.encoding.lower() != "telephone-event":
                continue
            if clock_rate is not None and rm.clock_rate != clock_rate:
                continue
            fmtp = self.fmtp(fmt)
            events = None if fmtp is None else parse_events(fmtp)
            # malformed or absent: peers with a broken fmtp still send the digits 0-15
            return TelephoneEvent(rm.payload_type, rm.clock_rate, events or _DTMF_EVENTS)
        return None

    @property
    def rtcp(self) -> RtcpAttribute | None:
        value = self.attribute("rtcp")
        if value is None:
            return None
        parts = [p for p in value.split(" ") if p]
        try:
            port = _int(parts[0] if parts else "", "rtcp port", 65535)
            if len(parts) == 1:
                return RtcpAttribute(port)
            if len(parts) == 4:
                return RtcpAttribute(port, _parse_connection(" ".join(parts[1:])))
        except SdpError:
            pass
        return None

    @property
    def rtcp_mux(self) -> bool:
        return self.attribute("rtcp-mux") is not None


def _milliseconds(value: str | None) -> int | None:
    m = None if value is None else _PTIME.fullmatch(value.strip())
    if m is None or int(m[1]) == 0:
        return None
    return int(m[1])


@dataclass(frozen=True, slots=True)
class SessionDescription(_Attributes):
    """A whole description. `lines` keeps session-level i= u= e= p= b= z= k= in order."""

    origin: Origin
    name: str = "-"
    connection: Connection | None = None
    timing: tuple[Timing, ...] = (Timing(),)
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()
    lines: tuple[Line, ...] = ()
    protocol_version: int = 0

    def connection_of(self, media: MediaDescription | int) -> Connection | None:
        """Effective c= of a media section: its own, else the session-level one."""
        m = self.media[media] if isinstance(media, int) else media
        return m.connection or self.connection

    def direction_of(self, media: MediaDescription | int) -> str:
        """Media-level direction, else session-level, else sendrecv (RFC 3264 §5.1)."""
        m = self.media[media] if isinstance(media, int) else media
        return m.direction or self.direction or "sendrecv"

    def next_version(self) -> SessionDescription:
        """The same description with o= sess-version + 1 (for a changed re-offer)."""
        return replace(self, origin=replace(self.origin,
                                            sess_version=self.origin.sess_version + 1))

    def serialize(self) -> bytes:
        """Wire form with CRLF; SdpError if a field would not read back as written."""
        if self.protocol_version != 0:
            raise SdpError(f"unsupported SDP version {self.protocol_version}")
        o = self.origin
        for token in (o.nettype, o.addrtype, o.address):
            _check_token(token, "o=")
        if not _USERNAME.fullmatch(o.username):
            raise SdpError(f"o= username cannot be written: {o.username!r}")
        numbers = [o.sess_id, o.sess_version, *(n for t in self.timing for n in (t.start, t.stop))]
        if any(n < 0 for n in numbers):
            raise SdpError("o= and t= numbers cannot be negative")
        out = ["v=0", f"o={o}", f"s={self.name}"]
        out += _kept(self.lines, "iuep", _SESSION_LINES)
        if self.connection is not None:
            out.append(f"c={_checked(self.connection)}")
        out += _kept(self.lines, "b", _SESSION_LINES)
        for t in self.timing:
            out.append(f"t={t.start} {t.stop}")
            out += [f"r={r}" for r in t.repeats]
        out += _kept(self.lines, "zk", _SESSION_LINES)
        out += [f"a={_checked_attribute(a)}" for a in self.attributes]
        for m in self.media:
            out += _media_lines(m)
        for line in out:
            if _FORBIDDEN.search(line):
                raise SdpError(f"line break or NUL inside {line[:40]!r}")
        try:
            return ("\r\n".join(out) + "\r\n").encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as e:
            raise SdpError(f"text cannot be written: {e}") from None


def _check_token(token: str, where: str) -> None:
    if not _TOKEN.fullmatch(token):
        raise SdpError(f"{where} field cannot be written: {token!r}")


def _checked(c: Connection) -> Connection:
    for token in (c.nettype, c.addrtype, c.address):
        _check_token(token, "c=")
    _check_address(c.nettype, c.addrtype, c.address)
    return c


def _checked_attribute(a: Attribute) -> Attribute:
    if not a.name.strip() or ":" in a.name:
        raise SdpError(f"attribute name cannot be written: {a.name!r}")
    return a


def _kept(lines: tuple[Line, ...], types: str, allowed: str) -> list[str]:
    for line in lines:
        if len(line.type) != 1 or line.type not in allowed:
            raise SdpError(f"{line.type!r}= cannot be kept at this level")
    return [f"{line.type}={line.value}" for line in lines if line.type in types]


def _media_lines(m: MediaDescription) -> list[str]:
    for token in (m.media, m.proto, *m.formats):
        _check_token(token, "m=")
    if not 0 <= m.port <= 65535 or not (m.port_count is None or 0 <= m.port_count <= 65535):
        raise SdpError(f"m= port out of range: {m.port}/{m.port_count}")
    port = m.port if m.port_count is None else f"{m.port}/{m.port_count}"
    out = [" ".join((f"m={m.media}", str(port), m.proto, *m.formats))]
    out += _kept(m.lines, "i", _MEDIA_LINES)
    out += [f"c={_checked(c)}" for c in m.connections]
    out += _kept(m.lines, "bk", _MEDIA_LINES)
    out += [f"a={_checked_attribute(a)}" for a in m.attributes]
    return out


# --------------------------------------------------------------------------- parsing


def _check_address(nettype: str, addrtype: str, address: str) -> None:
    """IN IP4/IP6 addresses must be literals of that family or host names; others are kept."""
    family = addrtype.upper()
    if nettype.upper() != "IN" or family not in ("IP4", "IP6"):
        return
    host, *suffixes = address.split("/")
    # IP4 multicast: /ttl[/count]; IP6 multicast: /count (RFC 4566 §5.7)
    if len(suffixes) > (2 if family == "IP4" else 1):
        raise SdpError(f"too many '/' in connection address {address[:60]!r}")
    for s in suffixes:
        _int(s, "connection address ttl/count", 65535)
    if _IPV4ISH.fullmatch(host):
        ok = family == "IP4" and isinstance(_ip(host), ipaddress.IPv4Address)
    elif ":" in host:
        ok = family == "IP6" and isinstance(_ip(host), ipaddress.IPv6Address)
    else:
        ok = _FQDN.fullmatch(host) is not None
    if not ok:
        raise SdpError(f"not an {family} address: {host[:60]!r}")


def _parse_connection(value: str) -> Connection:
    parts = [p for p in value.split(" ") if p]
    if len(parts) != 3:
        raise SdpError(f"c= needs nettype, addrtype and address: {value[:60]!r}")
    _check_address(*parts)
    return Connection(*parts)


def _parse_origin(value: str) -> Origin:
    parts = [p for p in value.split(" ") if p]
    if len(parts) < 6:
        raise SdpError(f"o= needs six fields: {value[:60]!r}")
    # some stacks put spaces in the username; the last five fields are unambiguous
    *user, sess_id, version, nettype, addrtype, address = parts
    return Origin(" ".join(user), _int(sess_id, "o= sess-id"), _int(version, "o= sess-version"),
                  nettype, addrtype, address)


def _parse_media(value: str) -> MediaDescription:
    parts = [p for p in value.split(" ") if p]
    if len(parts) < 3:
        raise SdpError(f"m= needs media, port and proto: {value[:60]!r}")
    media, port_text, proto, *formats = parts
    port, slash, count = port_text.partition("/")
    return MediaDescription(media, _int(port, "m= port", 65535), proto, tuple(formats),
                            _int(count, "m= port count", 65535) if slash else None)


def _parse_attribute(value: str) -> Attribute:
    name, colon, rest = value.partition(":")
    if not name.strip():
        raise SdpError(f"attribute without a name: {value[:40]!r}")
    return Attribute(name, rest if colon else None)


class _Section:
    """Lines of one section while parsing; frozen into the model at the end."""

    def __init__(self) -> None:
        self.connections: list[Connection] = []
        self.attributes: list[Attribute] = []
        self.lines: list[Line] = []


class _Parser:
    def __init__(self) -> None:
        self.started = False
        self.origin: Origin | None = None
        self.name: str | None = None
        self.timing: list[Timing] = []
        self.session = _Section()
        self.media: list[tuple[MediaDescription, _Section]] = []

    def feed(self, kind: str, value: str) -> None:
        if not self.started:
            if kind != "v":
                raise SdpError("a session description starts with v=")
            if value != "0":
                raise SdpError(f"unsupported SDP version {value[:20]!r}")
            self.started = True
        elif kind == "v":
            raise SdpError("more than one v= line")
        elif kind == "m":
            self.media.append((_parse_media(value), _Section()))
        elif self.media:
            self._media_line(self.media[-1][1], kind, value)
        else:
            self._session_line(kind, value)

    def _session_line(self, kind: str, value: str) -> None:
        s = self.session
        if kind == "o":
            if self.origin is not None:
                raise SdpError("more than one o= line")
            self.origin = _parse_origin(value)
        elif kind == "s":
            if self.name is not None:
                raise SdpError("more than one s= line")
            self.name = value
        elif kind == "c":
            if s.connections:
                raise SdpError("more than one session-level c= line")
            s.connections.append(_parse_connection(value))
        elif kind == "t":
            parts = value.split(" ")
            if len(parts) != 2:
                raise SdpError(f"t= needs start and stop: {value[:40]!r}")
            self.timing.append(Timing(_int(parts[0], "t= start"), _int(parts[1], "t= stop")))
        elif kind == "r":
            if not self.timing:
                raise SdpError("r= without a t= before it")
            last = self.timing[-1]
            self.timing[-1] = replace(last, repeats=(*last.repeats, value))
        elif kind == "a":
            s.attributes.append(_parse_attribute(value))
        else:
            s.lines.append(Line(kind, value))

    @staticmethod
    def _media_line(section: _Section, kind: str, value: str) -> None:
        if kind == "c":
            section.connections.append(_parse_connection(value))
        elif kind == "a":
            section.attributes.append(_parse_attribute(value))
        elif kind in _MEDIA_LINES:
            section.lines.append(Line(kind, value))
        else:
            raise SdpError(f"{kind}= is not allowed in a media section")

    def finish(self) -> SessionDescription:
        if not self.started:
            raise SdpError("empty session description")
        if self.origin is None:
            raise SdpError("no o= line")
        if self.name is None:
            raise SdpError("no s= line")
        s = self.session
        media = tuple(replace(m, connections=tuple(sec.connections),
                              attributes=tuple(sec.attributes), lines=tuple(sec.lines))
                      for m, sec in self.media)
        return SessionDescription(
            origin=self.origin, name=self.name,
            connection=s.connections[0] if s.connections else None,
            timing=tuple(self.timing), attributes=tuple(s.attributes), media=media,
            lines=tuple(s.lines))


def parse_sdp(body: bytes | str) -> SessionDescription:
    """Parse a description; CRLF or bare LF line ends. Raises SdpError and nothing else."""
    try:
        raw = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else bytes(body)
    except (UnicodeError, TypeError, ValueError) as e:
        raise SdpError(f"not SDP text: {e}") from None
    text = raw.decode("utf-8", "surrogateescape")
    parser = _Parser()
    for number, line in enumerate(text.split("\n"), 1):
        if line.endswith("\r"):
            line = line[:-1]
        if not line:
            continue  # blank lines (a trailing one is common) carry nothing
        try:
            if len(line) < 2 or line[1] != "=" or line[0] not in "vosiuepcbtrzkam":
                # RFC 4566 §5: an unknown type letter makes the whole description unusable
                raise SdpError(f"not a <type>=<value> line: {line[:40]!r}")
            if "\r" in line or "\0" in line:
                raise SdpError("CR or NUL inside a line")
            parser.feed(line[0], line[2:])
        except SdpError as e:
            raise SdpError(f"line {number}: {e}") from None
    return parser.finish()
