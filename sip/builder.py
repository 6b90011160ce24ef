"""Building messages from other messages (RFC 3261 §8.2.6, §9.1, §17.1.1.3) and the
identifiers they need (§8.1.1.7 branch, §19.3 tags, Call-ID).

`IdSource` is the one place randomness enters SIP: tests seed it to get golden bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sip.entropy import urandom_pool
from sip.headers import canonical_name, header_key
from sip.message import Headers, Request, Response

__all__ = [
    "IdSource",
    "make_ack_for_error",
    "make_cancel",
    "make_response",
    "make_response_from_headers",
]

MAGIC_COOKIE = "z9hG4bK"


class IdSource:
    """Random identifiers: branches, tags, Call-IDs."""

    __slots__ = ("_random",)

    def __init__(self, random_bytes: Callable[[int], bytes] = urandom_pool) -> None:
        self._random = random_bytes

    def token(self, nbytes: int = 8) -> str:
        return self._random(nbytes).hex()

    def branch(self) -> str:
        return MAGIC_COOKIE + self._random(8).hex()

    def tag(self) -> str:
        return self._random(6).hex()

    def fraction(self) -> float:
        """A uniform value in [0, 1): retry jitter (RFC 3261 §14.1 glare back-off)."""
        return int.from_bytes(self._random(4), "big") / 2**32

    def call_id(self, host: str = "") -> str:
        cid = self._random(12).hex()
        return f"{cid}@{host}" if host else cid


_ECHOED = ("via", "from", "to", "call-id", "cseq")
# the To of a request that failed to parse is only text: param names are case-insensitive and
# LWS may surround ';' and '=' (a second tag would make the response unmatchable)
_TAG_RE = re.compile(r";[ \t]*tag[ \t]*=", re.IGNORECASE)


def make_response_from_headers(
    headers: Headers,
    status: int,
    reason: str | None = None,
    to_tag: str | None = None,
    server: str | None = None,
) -> Response:
    """A response echoing Via/From/To/Call-ID/CSeq from raw request headers (§8.2.6.2).

    Works on the fields of a request that failed to parse, so it never parses them.
    """
    out = Headers()
    for name, value in headers.items():
        key = header_key(name)
        if key in _ECHOED:
            if key == "to" and to_tag is not None and _TAG_RE.search(value) is None:
                value = f"{value};tag={to_tag}"
            out.add(canonical_name(key), value)
    if server:
        out.add("Server", server)
    out.add("Content-Length", "0")
    return Response(status, reason, out)


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    to_tag: str | None = None,
    server: str | None = None,
) -> Response:
    """A response to `request` (§8.2.6.2); a To tag is added when given and absent."""
    h = request.headers
    # the fields as Headers.add would store them, without its per-field name lookups
    fields = [("via", "Via", value) for value in h.get_all("via")]
    to = h.get("to") or ""
    if to_tag is not None and request.to.tag is None and status != 100:
        to = f"{to};tag={to_tag}"
    fields.append(("from", "From", h.get("from") or ""))
    fields.append(("to", "To", to))
    fields.append(("call-id", "Call-ID", request.call_id))
    fields.append(("cseq", "CSeq", h.get("cseq") or ""))
    if server:
        fields.append(("server", "Server", server))
    fields.append(("content-length", "Content-Length", "0"))
    return Response(status, reason, Headers._from_parsed(fields))


def make_ack_for_error(invite: Request, response: Response) -> Request:
    """The ACK a client INVITE transaction sends for a 3xx-6xx (§17.1.1.3)."""
    out = Headers()
    out.add("Via", invite.headers.get_list("via")[0])
    for value in invite.headers.get_all("route"):
        out.add("Route", value)
    out.add("Max-Forwards", "70")
    out.add("From", invite.headers.get("from") or "")
    out.add("To", response.headers.get("to") or "")
    out.add("Call-ID", invite.call_id)
    out.add("CSeq", f"{invite.cseq.seq} ACK")
    out.add("Content-Length", "0")
    return Request("ACK", invite.uri, out)


def make_cancel(invite: Request) -> Request:
    """CANCEL for a pending INVITE (§9.1): same R-URI, Call-ID, From, To, CSeq number, Via."""
    out = Headers()
    out.add("Via", invite.headers.get_list("via")[0])
    for value in invite.headers.get_all("route"):
        out.add("Route", value)
    out.add("Max-Forwards", "70")
    out.add("From", invite.headers.get("from") or "")
    out.add("To", invite.headers.get("to") or "")
    out.add("Call-ID", invite.call_id)
    out.add("CSeq", f"{invite.cseq.seq} CANCEL")
    out.add("Content-Length", "0")
    return Request("CANCEL", invite.uri, out)
