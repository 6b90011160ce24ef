"""Parsing SIP messages from bytes (RFC 3261 §7, §18.3, §25) and framing TCP streams.

`parse_message` takes one datagram (or one framed stream message) and returns a Request or
Response, or raises `ParseError`. A ParseError knows whether the sender deserves a stateless
error response (`status`: 400, 505, 513) or silence (`status is None`: malformed responses,
garbage), and carries whatever header fields could be read so the response can echo Via,
From, To, Call-ID and CSeq (§8.2.6).

`StreamFramer` cuts a TCP byte stream into messages by Content-Length and recognises the
RFC 5626 CRLF keep-alive ping.
"""

from __future__ import annotations

from sip.headers import (
    MAX_UINT32,
    HeaderError,
    header_key,
    is_token,
    parse_cseq,
    parse_name_addr,
    parse_uint,
)
from sip.message import Headers, Request, Response
from sip.uri import SipURI, URIError, parse_uri

__all__ = ["ParseError", "StreamFramer", "parse_message", "DEFAULT_MAX_SIZE", "DEFAULT_MAX_HEADERS"]

DEFAULT_MAX_SIZE = 65535
DEFAULT_MAX_HEADERS = 256

# Headers that may appear once only (RFC 3261 §7.3.1: only list headers may repeat).
_SINGLE = frozenset(
    ("call-id", "cseq", "from", "to", "max-forwards", "content-length", "content-type", "expires")
)
_REQUIRED_REQUEST = ("via", "from", "to", "call-id", "cseq")
_REQUIRED_RESPONSE = ("via", "from", "to", "call-id", "cseq")

# Header names this parser has validated, with their keys. Not header_key's cache: anyone may
# look up any name there, and a cached "Bad Name" must not skip the token check here.
_VALID_NAMES: dict[str, tuple[str, str]] = {}  # as written -> (key, name without LWS)


class ParseError(ValueError):
    """A message that cannot be accepted.

    status: the stateless response it deserves (None: drop silently).
    headers: the fields read before the error, for echoing in that response.
    """

    def __init__(
        self,
        reason: str,
        status: int | None = 400,
        headers: Headers | None = None,
        method: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.headers = headers
        self.method = method


def _split_head(data: bytes) -> tuple[list[str], bytes, bool, bool]:
    """Header lines (folding not yet undone), the bytes after the blank line, whether a
    blank line was found at all, and whether no CR or LF is left inside a line."""
    start = 0
    n = len(data)
    # §7.5: CRLFs before the start line are ignored
    while start < n and data[start] in (13, 10):
        start += 1
    idx = data.find(b"\r\n\r\n", start)
    # a bare-LF head ends at its first "\n\n", even if the body holds a CRLFCRLF later on
    lf = data.find(b"\n\n", start, None if idx == -1 else idx)
    if idx != -1 and lf == -1:
        head, rest, sep = data[start:idx], data[idx + 4 :], "\r\n"
        complete = True
    else:
        idx = lf
        if idx != -1:
            head, rest, sep, complete = data[start:idx], data[idx + 2 :], "\n", True
        else:
            head, rest, complete = data[start:].rstrip(b"\r\n"), b"", False
            sep = "\r\n" if b"\r\n" in head else "\n"
    text = head.decode("utf-8", "surrogateescape")
    lines = text.split(sep)
    if sep == "\n":
        lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
        clean = not any("\r" in ln for ln in lines)
    else:
        # every CR and LF must belong to a line end
        clean = text.count("\r") == text.count("\n") == len(lines) - 1
    return lines, rest, complete, clean


def _read_headers(lines: list[str], max_headers: int, method: str | None) -> Headers:
    if len(lines) <= max_headers:
        # the common case in one tight loop: every line a field whose name was validated
        # before, no folding (a folded line starts with SP/HT, never a known name + ':')
        known_names = _VALID_NAMES
        fields: list[tuple[str, str, str]] = []
        for line in lines:
            name, sep, value = line.partition(":")
            known = known_names.get(name) if sep else None
            if known is None:
                break
            fields.append((known[0], known[1], value.strip(" \t")))
        else:
            return Headers._from_parsed(fields)
    return _read_headers_carefully(lines, max_headers, method)


def _read_headers_carefully(lines: list[str], max_headers: int, method: str | None) -> Headers:
    fields: list[tuple[str, str, str]] = []
    headers = Headers._from_parsed(fields)
    for line in lines:
        if not line:
            continue
        c = line[0]
        if c == " " or c == "\t":
            if not fields:
                raise ParseError("continuation line before any header", 400, headers, method)
            k, nm, v = fields[-1]
            more = line.strip(" \t")
            fields[-1] = (k, nm, f"{v} {more}" if v and more else v + more)
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ParseError(f"header line without colon: {line[:40]!r}", 400, headers, method)
        known = _VALID_NAMES.get(name)
        if known is None:
            stripped = name.rstrip(" \t")
            if not is_token(stripped):
                raise ParseError(f"bad header name {stripped[:40]!r}", 400, headers, method)
            known = (header_key(stripped), stripped)
            if len(_VALID_NAMES) < 4096:  # bounded: header names come from the network
                _VALID_NAMES[name] = known
        key, name = known
        fields.append((key, name, value.strip(" \t")))
        if len(fields) > max_headers:
            raise ParseError("too many header fields", 400, headers, method)
    return headers


def _check_body_length(
    headers: Headers, rest: bytes, stream: bool, status: int | None, method: str | None
) -> bytes:
    values = headers.get_all("content-length")
    if not values:
        if stream:
            raise ParseError("missing Content-Length on a stream transport", status, headers, method)
        return rest
    if len(values) > 1 or "," in values[0]:
        raise ParseError("multiple Content-Length values", status, headers, method)
    try:
        length = parse_uint(values[0], "Content-Length")
    except HeaderError as exc:
        raise ParseError(str(exc), status, headers, method) from None
    if length > len(rest):
        raise ParseError("Content-Length exceeds the message", status, headers, method)
    return rest[:length]


def _validate(msg: Request | Response, error_status: int | None, method: str | None) -> None:
    """Parse the fields every transaction needs, so a bad one fails here, not mid-call."""
    h = msg.headers
    index = h._lookup()  # one pass over the fields; every later lookup reuses it
    for key in _REQUIRED_REQUEST if isinstance(msg, Request) else _REQUIRED_RESPONSE:
        if key not in index:
            raise ParseError(f"missing {key} header", error_status, h, method)
    for key in _SINGLE:
        values = index.get(key)
        if values is not None and len(values) > 1:
            raise ParseError(f"more than one {key} header", error_status, h, method)
    cache = msg._cache  # filled exactly as the typed-view properties would fill it
    try:
        msg.vias  # noqa: B018 - parse every Via now
        cache["from"] = parse_name_addr(index["from"][0])
        cache["to"] = parse_name_addr(index["to"][0])
        cache["cseq"] = cseq = parse_cseq(index["cseq"][0])
        mf = index.get("max-forwards")
        if mf is not None:
            parse_uint(mf[0], "Max-Forwards", 255)
        exp = index.get("expires")
        if exp is not None:
            parse_uint(exp[0], "Expires", MAX_UINT32)
    except HeaderError as exc:
        raise ParseError(str(exc), error_status, h, method) from None
    call_id = index["call-id"][0]
    if not call_id or " " in call_id or "\t" in call_id:
        raise ParseError("bad Call-ID", error_status, h, method)
    if isinstance(msg, Request) and cseq.method != msg.method:
        raise ParseError("CSeq method does not match the request method", error_status, h, method)


def parse_message(
    data: bytes,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_headers: int = DEFAULT_MAX_HEADERS,
    stream: bool = False,
) -> Request | Response:
    """Parse one SIP message. Raises ParseError and nothing else."""
    try:
        return _parse(data, max_size, max_headers, stream)
    except ParseError:
        raise
    except (ValueError, IndexError, UnicodeError) as exc:  # pragma: no cover - defensive
        raise ParseError(f"unparseable message: {exc}", None) from None


def _parse(data: bytes, max_size: int, max_headers: int, stream: bool) -> Request | Response:
    if len(data) > max_size:
        raise ParseError("message too large", 513)
    lines, rest, complete, clean = _split_head(data)
    if not lines or not lines[0]:
        raise ParseError("empty message", None)
    if not clean:
        # a lone CR or LF inside a value reads as a line end to lenient peers: echoing such a
        # value (Call-ID, unknown headers) would smuggle header lines to them, so drop it
        raise ParseError("bare CR or LF inside the header", None)
    start = lines[0]
    # §7.1: the SIP-Version string is case-insensitive; we keep the upper-case form we send
    if start[:4].upper() == "SIP/":
        version, _, tail = start.partition(" ")
        code, _, reason = tail.partition(" ")
        if (version.upper() != "SIP/2.0" or len(code) != 3 or not code.isascii()
                or not code.isdigit() or not 100 <= int(code) <= 699):
            raise ParseError(f"bad status line {start[:60]!r}", None)
        version = "SIP/2.0"
        headers = _read_headers(lines[1:], max_headers, None)
        if not complete:
            raise ParseError("no blank line after the headers", None, headers)
        body = _check_body_length(headers, rest, stream, None, None)
        resp = Response(int(code), reason, headers, body, version)
        _validate(resp, None, None)
        return resp

    parts = start.split(" ")
    method = parts[0]
    if not is_token(method):
        raise ParseError(f"bad request line {start[:60]!r}", None)
    headers = _read_headers(lines[1:], max_headers, method)
    if len(parts) != 3:
        raise ParseError("malformed request line", 400, headers, method)
    _, uri_text, version = parts
    v = version.upper()
    if v != "SIP/2.0":
        digits = v[4:].replace(".", "")
        if v.startswith("SIP/") and digits.isascii() and digits.isdigit():
            raise ParseError(f"version {version} not supported", 505, headers, method)
        raise ParseError("malformed request line", 400, headers, method)
    version = v
    if not complete:
        raise ParseError("no blank line after the headers", 400, headers, method)
    try:
        uri = parse_uri(uri_text)
    except URIError as exc:
        raise ParseError(f"bad Request-URI: {exc}", 400, headers, method) from None
    if isinstance(uri, SipURI) and uri.headers is not None:
        raise ParseError("headers are not allowed in a Request-URI", 400, headers, method)
    body = _check_body_length(headers, rest, stream, 400, method)
    req = Request(method, uri, headers, body, version)
    _validate(req, 400, method)
    return req


class StreamFramer:
    """Cuts a reliable byte stream into SIP messages (RFC 3261 §18.3).

    `feed(data)` returns complete messages (bytes) and `b"\\r\\n"` markers for each RFC 5626
    keep-alive ping ("\\r\\n\\r\\n") seen between messages; it raises ParseError when framing
    is lost (no or bad Content-Length, oversized headers), after which the connection must be
    closed.
    """

    __slots__ = ("_buf", "max_size")

    PING = b"\r\n\r\n"

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self._buf = bytearray()
        self.max_size = max_size

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        while buf:
            # keep-alives and stray CRLFs between messages
            if buf[0] in (13, 10):
                if buf.startswith(self.PING):
                    out.append(b"\r\n")
                    del buf[:4]
                    continue
                if len(buf) < 4 and self.PING.startswith(bytes(buf)):
                    break  # maybe the rest of a ping is coming
                del buf[:1]
                continue
            end = buf.find(b"\r\n\r\n")
            if end == -1:
                if len(buf) > self.max_size:
                    raise ParseError("headers too large on stream", 513)
                break
            length = self._content_length(bytes(buf[:end]))
            total = end + 4 + length
            if total > self.max_size:
                raise ParseError("message too large on stream", 513)
            if len(buf) < total:
                break
            out.append(bytes(buf[:total]))
            del buf[:total]
        return out

    @staticmethod
    def _content_length(head: bytes) -> int:
        found: int | None = None
        for line in head.split(b"\r\n")[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            key = name.strip().lower()
            if key in (b"content-length", b"l"):
                v = value.strip()
                if found is not None or not v.isdigit():
                    raise ParseError("bad Content-Length on stream", 400)
                found = int(v)
        if found is None:
            raise ParseError("missing Content-Length on stream", 400)
        return found

    @property
    def buffered(self) -> int:
        return len(self._buf)
