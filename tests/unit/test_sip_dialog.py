"""Dialogs (RFC 3261 §12): what a UAS and a UAC learn from the INVITE and its tagged response,
how in-dialog requests are addressed (loose and strict routing), both CSeq spaces, and
target refresh."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sip.dialog import Dialog
from sip.message import Request, Response
from sip.parser import parse_message

PEER = ("udp", "192.0.2.10", 5062)
OUR_VIA = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKours1;rport"


def parse_request(text: str) -> Request:
    msg = parse_message(text.replace("\n", "\r\n").encode())
    assert isinstance(msg, Request)
    return msg


def parse_response(text: str) -> Response:
    msg = parse_message(text.replace("\n", "\r\n").encode())
    assert isinstance(msg, Response)
    return msg


def incoming_invite(*, contact: str | None = "<sip:alice@192.0.2.10:5062>",
                    record_route: tuple[str, ...] = (), cseq: int = 314) -> Request:
    lines = [
        "INVITE sip:1003@acd.local SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKtheirs",
        "Max-Forwards: 70",
        'From: "Alice" <sip:alice@example.com>;tag=alicetag',
        "To: <sip:1003@acd.local>",
        "Call-ID: cid-uas@192.0.2.10",
        f"CSeq: {cseq} INVITE",
    ]
    lines += [f"Record-Route: {rr}" for rr in record_route]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    lines += ["Content-Length: 0", "", ""]
    return parse_request("\n".join(lines))


def outgoing_invite(cseq: int = 1) -> Request:
    return parse_request(
        "INVITE sip:1003@192.0.2.20:5070 SIP/2.0\n"
        f"Via: {OUR_VIA}\n"
        "Max-Forwards: 70\n"
        'From: "19001000" <sip:19001000@acd.local>;tag=ourtag\n'
        "To: <sip:1003@acd.local>\n"
        "Call-ID: cid-uac@acd\n"
        f"CSeq: {cseq} INVITE\n"
        "Contact: <sip:192.0.2.1:5060;transport=udp>\n"
        "Content-Length: 0\n\n")


def tagged_response(status: int = 200, *, tag: str = "bobtag",
                    contact: str | None = "<sip:1003@192.0.2.20:5070;transport=udp>",
                    record_route: tuple[str, ...] = (), cseq: int = 1) -> Response:
    lines = [
        f"SIP/2.0 {status} Whatever",
        f"Via: {OUR_VIA}",
        f'To: "Bob" <sip:1003@acd.local>;tag={tag}',
        'From: "19001000" <sip:19001000@acd.local>;tag=ourtag',
        "Call-ID: cid-uac@acd",
        f"CSeq: {cseq} INVITE",
    ]
    lines += [f"Record-Route: {rr}" for rr in record_route]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    lines += ["Content-Length: 0", "", ""]
    return parse_response("\n".join(lines))


# -- creation ---------------------------------------------------------------------------------


def test_uas_dialog_fields_from_the_invite() -> None:
    inv = incoming_invite(record_route=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    d = Dialog.from_uas(inv, "mytag", PEER)
    assert d.id == ("cid-uas@192.0.2.10", "mytag", "alicetag")
    assert (d.local_tag, d.remote_tag) == ("mytag", "alicetag")
    # our party is their To, theirs their From; neither keeps a tag (it is added per request)
    assert d.local_party == "<sip:1003@acd.local>"
    assert d.remote_party == '"Alice" <sip:alice@example.com>'
    assert str(d.remote_target) == "sip:alice@192.0.2.10:5062"
    # §12.1.1: the UAS keeps the Record-Route order
    assert d.route_set == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert d.remote_seq == 314
    assert d.local_seq == 0
    assert d.peer == PEER
    assert d.uac is False
    assert d.confirmed is False


def test_uas_dialog_without_contact_targets_the_request_uri() -> None:
    d = Dialog.from_uas(incoming_invite(contact=None), "mytag", PEER)
    assert str(d.remote_target) == "sip:1003@acd.local"


def test_uac_dialog_fields_from_the_tagged_response() -> None:
    resp = tagged_response(180, record_route=("<sip:p1.example.com;lr>",
                                              "<sip:p2.example.com;lr>"))
    d = Dialog.from_uac(outgoing_invite(cseq=7), resp, PEER)
    assert d.id == ("cid-uac@acd", "ourtag", "bobtag")
    assert d.local_party == '"19001000" <sip:19001000@acd.local>'
    assert d.remote_party == '"Bob" <sip:1003@acd.local>'
    assert str(d.remote_target) == "sip:1003@192.0.2.20:5070;transport=udp"
    # §12.1.2: the UAC reverses the Record-Route order
    assert d.route_set == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    assert d.local_seq == 7  # the next request we send is 8
    assert d.remote_seq is None
    assert d.uac is True


def test_uac_dialog_without_contact_targets_the_invite_uri() -> None:
    d = Dialog.from_uac(outgoing_invite(), tagged_response(contact=None), PEER)
    assert str(d.remote_target) == "sip:1003@192.0.2.20:5070"


# -- in-dialog requests -----------------------------------------------------------------------


def test_request_without_route_set_goes_to_the_remote_target() -> None:
    d = Dialog.from_uac(outgoing_invite(), tagged_response(), PEER)
    bye = d.new_request("BYE", OUR_VIA, "<sip:192.0.2.1:5060>")
    assert bye.method == "BYE"
    assert str(bye.uri) == "sip:1003@192.0.2.20:5070;transport=udp"
    assert bye.headers.get_all("route") == []
    assert bye.from_.tag == "ourtag" and bye.to.tag == "bobtag"
    assert str(bye.from_.uri) == "sip:19001000@acd.local"
    assert str(bye.to.uri) == "sip:1003@acd.local"
    assert bye.call_id == "cid-uac@acd"
    assert bye.headers.get("contact") == "<sip:192.0.2.1:5060>"
    assert bye.headers.get("via") == OUR_VIA
    assert bye.headers.get("max-forwards") == "70"
    # it goes on the wire and parses back the same
    again = parse_message(bye.serialize())
    assert isinstance(again, Request) and again.cseq == bye.cseq


def test_loose_routing_keeps_the_target_and_lists_the_route_set() -> None:
    resp = tagged_response(record_route=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    d = Dialog.from_uac(outgoing_invite(), resp, PEER)
    req = d.new_request("INFO", OUR_VIA)
    assert str(req.uri) == "sip:1003@192.0.2.20:5070;transport=udp"
    assert req.headers.get_all("route") == ["<sip:p2.example.com;lr>",
                                            "<sip:p1.example.com;lr>"]


def test_strict_router_becomes_the_request_uri_and_the_target_goes_last() -> None:
    # the UAC's first route (the last Record-Route) is an RFC 2543 strict router: no lr
    resp = tagged_response(record_route=("<sip:p1.example.com;lr>", "<sip:strict.example.com>"))
    d = Dialog.from_uac(outgoing_invite(), resp, PEER)
    req = d.new_request("BYE", OUR_VIA)
    assert str(req.uri) == "sip:strict.example.com"
    assert req.headers.get_all("route") == ["<sip:p1.example.com;lr>",
                                            "<sip:1003@192.0.2.20:5070;transport=udp>"]


def test_cseq_increments_per_request_and_ack_reuses_the_invite_number() -> None:
    d = Dialog.from_uac(outgoing_invite(cseq=20), tagged_response(cseq=20), PEER)
    ack = d.ack(20, OUR_VIA)
    assert (ack.method, ack.cseq.seq, ack.cseq.method) == ("ACK", 20, "ACK")
    assert ack.headers.get("contact") is None
    assert d.local_seq == 20  # the ACK took no number of its own
    first = d.new_request("INFO", OUR_VIA)
    second = d.new_request("BYE", OUR_VIA)
    assert (first.cseq.seq, first.cseq.method) == (21, "INFO")
    assert (second.cseq.seq, second.cseq.method) == (22, "BYE")
    assert d.local_seq == 22


def test_uas_dialog_starts_its_own_cseq_space() -> None:
    d = Dialog.from_uas(incoming_invite(cseq=900), "mytag", PEER)
    bye = d.new_request("BYE", OUR_VIA)
    assert bye.cseq.seq == 1  # independent of the caller's 900
    assert bye.from_.tag == "mytag" and bye.to.tag == "alicetag"
    assert str(bye.uri) == "sip:alice@192.0.2.10:5062"


def test_remote_cseq_lower_is_out_of_order_equal_or_higher_is_accepted() -> None:
    d = Dialog.from_uas(incoming_invite(cseq=10), "mytag", PEER)
    assert d.accept_remote_cseq(9) is False
    assert d.remote_seq == 10  # a refused request leaves the space alone
    assert d.accept_remote_cseq(10) is True
    assert d.accept_remote_cseq(15) is True
    assert d.remote_seq == 15
    assert d.accept_remote_cseq(11) is False


def test_uac_dialog_accepts_any_first_remote_cseq() -> None:
    d = Dialog.from_uac(outgoing_invite(), tagged_response(), PEER)
    assert d.accept_remote_cseq(1) is True
    assert d.remote_seq == 1


# -- target refresh ---------------------------------------------------------------------------


def test_target_refresh_from_a_request_contact() -> None:
    d = Dialog.from_uas(incoming_invite(), "mytag", PEER)
    reinvite = incoming_invite(contact="<sip:alice@198.51.100.7:6000>", cseq=315)
    d.refresh_target(reinvite)
    assert str(d.remote_target) == "sip:alice@198.51.100.7:6000"
    assert str(d.new_request("BYE", OUR_VIA).uri) == "sip:alice@198.51.100.7:6000"


def test_target_refresh_from_a_response_contact() -> None:
    d = Dialog.from_uac(outgoing_invite(), tagged_response(180), PEER)
    d.refresh_target(tagged_response(200, contact="<sip:1003@203.0.113.5:5099>"))
    assert str(d.remote_target) == "sip:1003@203.0.113.5:5099"


def test_target_refresh_without_or_with_a_bad_contact_keeps_the_target() -> None:
    d = Dialog.from_uas(incoming_invite(), "mytag", PEER)
    d.refresh_target(incoming_invite(contact=None))
    assert str(d.remote_target) == "sip:alice@192.0.2.10:5062"
    d.refresh_target(incoming_invite(contact="<sip:alice@@@"))
    assert str(d.remote_target) == "sip:alice@192.0.2.10:5062"
    d.refresh_target(incoming_invite(contact="*"))
    assert str(d.remote_target) == "sip:alice@192.0.2.10:5062"


# -- both CSeq spaces under any interleaving ----------------------------------------------------


class DialogCSeq(RuleBasedStateMachine):
    """Our space only grows by one per request (never for ACK); theirs accepts exactly the
    requests that do not go below the highest accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.d = Dialog.from_uas(incoming_invite(cseq=100), "mytag", PEER)
        self.ours = 0
        self.theirs = 100
        self.last_sent = 0

    @rule(method=st.sampled_from(["BYE", "INFO", "INVITE", "UPDATE", "OPTIONS"]))
    def send(self, method: str) -> None:
        req = self.d.new_request(method, OUR_VIA)
        self.ours += 1
        assert req.cseq.seq == self.ours > self.last_sent
        assert req.cseq.method == method
        self.last_sent = req.cseq.seq

    @precondition(lambda self: self.ours > 0)
    @rule()
    def ack(self) -> None:
        ack = self.d.ack(self.ours, OUR_VIA)
        assert ack.cseq.seq == self.ours

    @rule(seq=st.integers(min_value=0, max_value=300))
    def receive(self, seq: int) -> None:
        accepted = self.d.accept_remote_cseq(seq)
        assert accepted == (seq >= self.theirs)
        if accepted:
            self.theirs = seq

    @invariant()
    def spaces_match_the_model(self) -> None:
        assert self.d.local_seq == self.ours
        assert self.d.remote_seq == self.theirs


TestDialogCSeq = DialogCSeq.TestCase
