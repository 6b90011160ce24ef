"""SIP messages (RFC 3261 §7): Request, Response, their header fields, and serialisation.

Header values are kept as text in arrival order; typed views (Via, From, To, CSeq, Contact)
are parsed on first use and cached, so a request that is only answered with a 401 never
pays for parsing headers it does not read. `serialize()` writes the fields as they are:
whoever changes the body must keep Content-Length true (`set_body` does).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sip.headers import (
    CSeq,
    HeaderError,
    NameAddr,
    Via,
    canonical_name,
    header_key,
    parse_cseq,
    parse_name_addr,
    parse_name_addr_list,
    parse_via,
    parse_via_list,
    split_list,
)
from sip.uri import URI

__all__ = ["Headers", "Message", "Request", "Response", "REASON_PHRASES"]


class Headers:
    """Ordered header fields: (key, name as written, value) with key = lower full name.

    Lookups go through an index (key -> values in order) built on the first lookup and
    dropped by every change: a request is read a dozen times between parse and answer, and
    a scan of the field list per lookup was a measurable part of answering a REGISTER. Code
    that edits `_fields` directly must drop `_index` too (`replace_first` does both).
    """

    __slots__ = ("_fields", "_index")

    def __init__(self, fields: Iterable[tuple[str, str]] | None = None) -> None:
        self._fields: list[tuple[str, str, str]] = []
        self._index: dict[str, list[str]] | None = None
        if fields:
            for name, value in fields:
                self.add(name, value)

    @classmethod
    def _from_parsed(cls, fields: list[tuple[str, str, str]]) -> Headers:
        h = cls.__new__(cls)
        h._fields = fields
        h._index = None
        return h

    def _lookup(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = {}
            for key, _, value in self._fields:
                values = index.get(key)
                if values is None:
                    index[key] = [value]
                else:
                    values.append(value)
            self._index = index
        return index

    def add(self, name: str, value: str) -> None:
        key = header_key(name)
        self._fields.append((key, name if name[0].isupper() else canonical_name(key), value))
        self._index = None

    def insert(self, index: int, name: str, value: str) -> None:
        self._fields.insert(index, (header_key(name), name, value))
        self._index = None

    def get(self, name: str) -> str | None:
        """First value of a header (the whole field value, not split on commas)."""
        values = (self._index or self._lookup()).get(header_key(name))
        return None if values is None else values[0]

    def get_all(self, name: str) -> list[str]:
        """Every field value of a header, in order, not split on commas."""
        values = (self._index or self._lookup()).get(header_key(name))
        return [] if values is None else list(values)

    def get_list(self, name: str) -> list[str]:
        """Every element of a list header (Via, Contact, Route, Allow...), commas split."""
        out: list[str] = []
        for v in (self._index or self._lookup()).get(header_key(name), ()):
            out.extend(split_list(v))
        return out

    def count(self, name: str) -> int:
        return len((self._index or self._lookup()).get(header_key(name), ()))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return header_key(name) in (self._index or self._lookup())

    def set(self, name: str, value: str) -> None:
        """Replace every field of `name` by one field with `value` (at the first position)."""
        key = header_key(name)
        self._index = None
        for i, (k, n, _) in enumerate(self._fields):
            if k == key:
                self._fields[i] = (k, n, value)
                self._fields[i + 1 :] = [f for f in self._fields[i + 1 :] if f[0] != key]
                return
        self._fields.append((key, name, value))

    def replace_first(self, name: str, value: str) -> None:
        """Change the value of the first field of `name` in place (position and spelling
        kept); nothing happens when there is none."""
        key = header_key(name)
        fields = self._fields
        for i, (k, n, _) in enumerate(fields):
            if k == key:
                fields[i] = (k, n, value)
                if self._index is not None:
                    self._index[key][0] = value
                return

    def remove(self, name: str) -> None:
        key = header_key(name)
        self._fields = [f for f in self._fields if f[0] != key]
        self._index = None

    def items(self) -> Iterator[tuple[str, str]]:
        """(name as written, value) pairs in order."""
        for _, n, v in self._fields:
            yield n, v

    def copy(self) -> Headers:
        return Headers._from_parsed(list(self._fields))

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._fields] == [(k, v) for k, _, v in other._fields]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({[(n, v) for _, n, v in self._fields]!r})"


class Message:
    """What requests and responses share: headers, body, cached typed views."""

    __slots__ = ("_cache", "body", "headers", "version")

    def __init__(self, headers: Headers, body: bytes, version: str) -> None:
        self.headers = headers
        self.body = body
        self.version = version
        self._cache: dict[str, object] = {}

    # typed views -----------------------------------------------------------------------
    @property
    def vias(self) -> list[Via]:
        cached = self._cache.get("vias")
        if cached is not None:
            return cached  # type: ignore[return-value]
        vias: list[Via] = []
        for value in self.headers.get_all("via"):
            vias.extend(parse_via_list(value))
        self._cache["vias"] = vias
        return vias

    @property
    def top_via(self) -> Via:
        v = self._cache.get("via")
        if v is None:
            vias = self._cache.get("vias")
            if vias:  # parsed already (the parser's validation does): the same object
                v = self._cache["via"] = vias[0]  # type: ignore[index]
                return v
            value = self.headers.get("via")
            if value is None:
                raise HeaderError("no Via")
            v = parse_via(split_list(value)[0]) if "," in value else parse_via(value)
            self._cache["via"] = v
        return v  # type: ignore[return-value]

    def _name_addr(self, name: str) -> NameAddr:
        v = self._cache.get(name)
        if v is None:
            value = self.headers.get(name)
            if value is None:
                raise HeaderError(f"no {name}")
            v = parse_name_addr(value)
            self._cache[name] = v
        return v  # type: ignore[return-value]

    @property
    def from_(self) -> NameAddr:
        return self._name_addr("from")

    @property
    def to(self) -> NameAddr:
        return self._name_addr("to")

    @property
    def cseq(self) -> CSeq:
        v = self._cache.get("cseq")
        if v is None:
            value = self.headers.get("cseq")
            if value is None:
                raise HeaderError("no CSeq")
            v = parse_cseq(value)
            self._cache["cseq"] = v
        return v  # type: ignore[return-value]

    @property
    def call_id(self) -> str:
        return self.headers.get("call-id") or ""

    @property
    def contacts(self) -> list[NameAddr]:
        cached = self._cache.get("contacts")
        if cached is not None:
            return cached  # type: ignore[return-value]
        contacts: list[NameAddr] = []
        for value in self.headers.get_all("contact"):
            contacts.extend(parse_name_addr_list(value, allow_wildcard=True))
        self._cache["contacts"] = contacts
        return contacts

    def invalidate(self) -> None:
        """Forget cached typed views after editing headers."""
        self._cache.clear()

    def set_body(self, body: bytes, content_type: str | None = None) -> None:
        self.body = body
        if content_type is not None:
            self.headers.set("Content-Type", content_type)
        elif not body:
            self.headers.remove("content-type")
        self.headers.set("Content-Length", str(len(body)))

    def _head(self) -> str:
        raise NotImplementedError

    def serialize(self) -> bytes:
        fields = "".join([f"{name}: {value}\r\n" for _, name, value in self.headers._fields])
        return f"{self._head()}\r\n{fields}\r\n".encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.serialize()


class Request(Message):
    __slots__ = ("method", "uri")

    def __init__(
        self,
        method: str,
        uri: URI,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(headers if headers is not None else Headers(), body, version)
        self.method = method
        self.uri = uri

    def _head(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return (
            self.method == other.method
            and str(self.uri) == str(other.uri)
            and self.version == other.version
            and self.headers == other.headers
            and self.body == other.body
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} call-id={self.call_id!r}>"


class Response(Message):
    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(headers if headers is not None else Headers(), body, version)
        self.status = status
        self.reason = REASON_PHRASES.get(status, "") if reason is None else reason

    def _head(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return (
            self.status == other.status
            and self.reason == other.reason
            and self.version == other.version
            and self.headers == other.headers
            and self.body == other.body
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call-id={self.call_id!r}>"


REASON_PHRASES = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}
