"""Dialogs (RFC 3261 §12): the state two user agents share for the length of a call.

A `Dialog` is created by a UAS from an INVITE and its tagged response, or by a UAC from its
INVITE and a tagged response. It knows the dialog id (Call-ID, local tag, remote tag), both
CSeq spaces, the remote target (Contact), the route set (Record-Route), and where in-dialog
requests go on the network (`peer`: the flow the dialog came from, which is what reaches a
phone behind NAT). It builds in-dialog requests and the ACK for a 2xx (§13.2.2.4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sip.headers import parse_name_addr
from sip.message import Headers, Request, Response
from sip.uri import URI, SipURI, parse_uri

__all__ = ["Dialog", "DialogId"]

DialogId = tuple[str, str, str]  # (Call-ID, local tag, remote tag)
Address = tuple[str, str, int]


def _strip_tag(value: str) -> str:
    na = parse_name_addr(value)
    na.params = [(k, v) for k, v in na.params if k.lower() != "tag"]
    return str(na)


@dataclass(slots=True)
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_party: str  # our name-addr (From of our requests), without tag
    remote_party: str  # their name-addr (To of our requests), without tag
    remote_target: URI
    route_set: list[str] = field(default_factory=list)
    local_seq: int = 0
    remote_seq: int | None = None
    peer: Address | None = None
    uac: bool = False
    confirmed: bool = False

    @property
    def id(self) -> DialogId:
        return (self.call_id, self.local_tag, self.remote_tag)

    # creation ----------------------------------------------------------------------------
    @classmethod
    def from_uas(cls, invite: Request, local_tag: str, peer: Address) -> Dialog:
        """The dialog a UAS creates when it answers `invite` with To tag `local_tag`."""
        contacts = invite.contacts
        target = contacts[0].uri if contacts and contacts[0].uri is not None else invite.uri
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=invite.from_.tag or "",
            local_party=_strip_tag(invite.headers.get("to") or ""),
            remote_party=_strip_tag(invite.headers.get("from") or ""),
            remote_target=target,
            route_set=invite.headers.get_list("record-route"),
            local_seq=0,
            remote_seq=invite.cseq.seq,
            peer=peer,
            uac=False,
        )

    @classmethod
    def from_uac(cls, invite: Request, response: Response, peer: Address) -> Dialog:
        """The dialog a UAC learns from a tagged provisional or 2xx response to `invite`."""
        contacts = response.contacts
        target = contacts[0].uri if contacts and contacts[0].uri is not None else invite.uri
        return cls(
            call_id=invite.call_id,
            local_tag=invite.from_.tag or "",
            remote_tag=response.to.tag or "",
            local_party=_strip_tag(invite.headers.get("from") or ""),
            remote_party=_strip_tag(response.headers.get("to") or ""),
            remote_target=target,
            route_set=list(reversed(response.headers.get_list("record-route"))),
            local_seq=invite.cseq.seq,
            remote_seq=None,
            peer=peer,
            uac=True,
        )

    # in-dialog requests ------------------------------------------------------------------
    def _routing(self) -> tuple[URI, list[str]]:
        if not self.route_set:
            return self.remote_target, []
        first = parse_name_addr(self.route_set[0]).uri
        if isinstance(first, SipURI) and first.param("lr") is not None:
            return self.remote_target, list(self.route_set)
        # strict router (RFC 2543): it becomes the Request-URI, the target goes last
        assert first is not None
        return first, [*self.route_set[1:], f"<{self.remote_target}>"]

    def new_request(self, method: str, via: str, contact: str | None = None, *,
                    cseq: int | None = None) -> Request:
        """An in-dialog request with our Via (`via`, a full value with branch)."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        ruri, routes = self._routing()
        h = Headers()
        h.add("Via", via)
        for r in routes:
            h.add("Route", r)
        h.add("Max-Forwards", "70")
        h.add("From", f"{self.local_party};tag={self.local_tag}")
        h.add("To", f"{self.remote_party};tag={self.remote_tag}" if self.remote_tag
              else self.remote_party)
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{cseq} {method}")
        if contact is not None:
            h.add("Contact", contact)
        h.add("Content-Length", "0")
        return Request(method, parse_uri(str(ruri)), h)

    def ack(self, invite_cseq: int, via: str) -> Request:
        """ACK for a 2xx (§13.2.2.4): its own branch, the INVITE's CSeq number."""
        return self.new_request("ACK", via, cseq=invite_cseq)

    def accept_remote_cseq(self, cseq: int) -> bool:
        """§12.2.2: a request with a lower CSeq than the last one is out of order."""
        if self.remote_seq is not None and cseq < self.remote_seq:
            return False
        self.remote_seq = cseq
        return True

    def refresh_target(self, msg: Request | Response) -> None:
        """Target refresh (re-INVITE, UPDATE, their 2xx): a new Contact replaces the target."""
        try:
            contacts = msg.contacts
        except ValueError:
            return
        if contacts and contacts[0].uri is not None:
            self.remote_target = contacts[0].uri
