"""sip.sdp and sip.offeranswer: parsing and byte-exact serialisation of real-world offers,
RFC 5118 IPv6 cases, the RFC 3264 answer rules and the negotiated values, the answer to our
own offer, re-offers (hold/resume) and their o= versions; Hypothesis for round trips and for
"arbitrary input raises only SdpError"."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sip.offeranswer import (
    AnswerResult,
    Negotiated,
    answer_offer,
    intersect_directions,
    make_offer,
    make_reoffer,
    mirror_direction,
    process_answer,
    revise,
)
from sip.parser import parse_message
from sip.sdp import (
    Attribute,
    Connection,
    Line,
    MediaDescription,
    Origin,
    RtcpAttribute,
    RtpMap,
    SdpError,
    SessionDescription,
    TelephoneEvent,
    Timing,
    parse_events,
    parse_sdp,
)

CORPUS = Path(__file__).resolve().parent.parent / "data" / "conformance"


def sdp(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


# tests/peers/sipp/inbound-call-dtmf.xml with its [fields] filled in
SIPP_OFFER = sdp(
    "v=0", "o=caller 53655765 2353687637 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1",
    "t=0 0", "m=audio 6000 RTP/AVP 0 8 101", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15", "a=ptime:20", "a=sendrecv")
# tests/peers/sipp/templates/agent-uas.xml.in: an agent's answer
SIPP_AGENT_ANSWER = sdp(
    "v=0", "o=agent 53655765 2353687637 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1",
    "t=0 0", "m=audio 6002 RTP/AVP 0 101", "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15", "a=ptime:20", "a=sendrecv")
# baresip 1.0 (libre) with audio_codecs=pcmu,pcma and no telephone-event; a=rtcp names a port
# that is not RTP+1
BARESIP_OFFER = sdp(
    "v=0", "o=- 3823396468 2683734811 IN IP4 192.168.1.23", "s=-", "c=IN IP4 192.168.1.23",
    "t=0 0", "m=audio 10000 RTP/AVP 0 8", "b=AS:80", "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000", "a=rtcp:10005", "a=sendrecv",
    "a=ssrc:1017561029 cname:sip:2001@127.0.0.1", "a=rtcp-rsize", "a=minptime:20",
    "a=ptime:20", "a=label:1", "a=mid:0")
# Linphone: dynamic codecs first, telephone-event at three rates, session attributes
LINPHONE_OFFER = sdp(
    "v=0", "o=alice 1855 3049 IN IP4 10.0.0.12", "s=Talk", "c=IN IP4 10.0.0.12", "t=0 0",
    "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics",
    "a=record:off", "m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100",
    "a=rtpmap:96 opus/48000/2", "a=fmtp:96 useinbandfec=1", "a=rtpmap:97 speex/16000",
    "a=fmtp:97 vbr=on", "a=rtpmap:98 speex/8000", "a=fmtp:98 vbr=on", "a=fmtp:18 annexb=yes",
    "a=rtpmap:101 telephone-event/48000", "a=rtpmap:99 telephone-event/16000",
    "a=rtpmap:100 telephone-event/8000", "a=rtcp-fb:* trr-int 1000",
    "a=rtcp-fb:* ccm tmmbr")
# Asterisk-like: opus and G722 preferred, PCMA before PCMU, events 0-16, maxptime
ASTERISK_OFFER = sdp(
    "v=0", "o=- 1234 1234 IN IP4 203.0.113.5", "s=Asterisk", "c=IN IP4 203.0.113.5",
    "t=0 0", "m=audio 12000 RTP/AVP 111 9 8 0 101", "a=rtpmap:111 opus/48000/2",
    "a=fmtp:111 useinbandfec=1", "a=rtpmap:9 G722/8000", "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16",
    "a=ptime:20", "a=maxptime:150", "a=sendrecv")
WIDEBAND_ONLY = sdp(
    "v=0", "o=- 1 1 IN IP4 203.0.113.9", "s=-", "c=IN IP4 203.0.113.9", "t=0 0",
    "m=audio 4000 RTP/AVP 111 9 97", "a=rtpmap:111 opus/48000/2", "a=rtpmap:9 G722/8000",
    "a=rtpmap:97 speex/16000")
# RFC 3264 §10.1's offer, with video first
VIDEO_AUDIO = sdp(
    "v=0", "o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com", "s=",
    "c=IN IP4 192.0.2.10", "t=0 0", "m=video 51372 RTP/AVP 31 32",
    "a=rtpmap:31 H261/90000", "a=rtpmap:32 MPV/90000", "m=audio 49170 RTP/AVP 0 8 97",
    "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=rtpmap:97 iLBC/8000")


def with_lines(base: bytes, old: str, new: str) -> bytes:
    assert old.encode() in base
    return base.replace(old.encode(), new.encode())


def corpus_body(name: str) -> bytes:
    return parse_message((CORPUS / "rfc5118" / "wire" / f"{name}.wire").read_bytes()).body


def answer(offer: bytes, **kw: Any) -> AnswerResult:
    args: dict[str, Any] = {"address": "198.51.100.7", "port": 20000, "session_id": 77,
                            "version": 1, **kw}
    return answer_offer(parse_sdp(offer), **args)


def accepted(offer: bytes, **kw: Any) -> tuple[SessionDescription, Negotiated]:
    r = answer(offer, **kw)
    assert r.sdp is not None and r.negotiated is not None, r.reason
    assert r.reason is None and r.warning is None
    return r.sdp, r.negotiated


# --------------------------------------------------------------------------- parsing


def test_sipp_offer_model() -> None:
    d = parse_sdp(SIPP_OFFER)
    assert d.origin == Origin("caller", 53655765, 2353687637, "IN", "IP4", "127.0.0.1")
    assert (d.name, d.connection, d.timing) == (
        "-", Connection("IN", "IP4", "127.0.0.1"), (Timing(0, 0),))
    (m,) = d.media
    assert (m.media, m.port, m.port_count, m.proto, m.formats) == (
        "audio", 6000, None, "RTP/AVP", ("0", "8", "101"))
    assert m.rtpmap(0) == RtpMap(0, "PCMU", 8000) and m.rtpmap("8") == RtpMap(8, "PCMA", 8000)
    assert m.rtpmap(101) == RtpMap(101, "telephone-event", 8000)
    assert m.fmtp(101) == "0-15" and m.fmtp(0) is None
    assert m.telephone_event() == TelephoneEvent(101, 8000, frozenset(range(16)))
    assert (m.ptime, m.maxptime, m.direction, d.direction_of(m)) == (20, None, "sendrecv",
                                                                      "sendrecv")
    assert d.connection_of(0) == d.connection and m.connection is None
    assert m.rtcp is None and not m.rtcp_mux and m.is_rtp


def test_real_world_offers_round_trip_byte_for_byte() -> None:
    for body in (SIPP_OFFER, SIPP_AGENT_ANSWER, BARESIP_OFFER, LINPHONE_OFFER, ASTERISK_OFFER,
                 WIDEBAND_ONLY, VIDEO_AUDIO, corpus_body("ipv6-in-sdp"),
                 corpus_body("mult-ip-in-sdp"), corpus_body("ipv4-mapped-ipv6")):
        assert parse_sdp(body).serialize() == body
        assert parse_sdp(body.decode()) == parse_sdp(body)


def test_uninterpreted_lines_are_kept_in_place() -> None:
    body = sdp("v=0", "o=- 1 2 IN IP4 192.0.2.1", "s=Call", "i=info", "u=http://x.example/",
               "e=a@example.com", "p=+1 555", "c=IN IP4 192.0.2.1", "b=CT:128",
               "t=3034423619 3042462419", "r=7d 1h 0 25h", "r=604800 3600 0 90000",
               "t=0 0", "z=2882844526 -1h 2898848070 0", "k=prompt", "a=recvonly",
               "a=tool:x", "a=charset:", "m=audio 49170/2 RTP/AVP 0", "i=media info",
               "c=IN IP4 224.2.1.1/127/3", "c=IN IP4 224.2.2.1/127", "b=AS:64", "k=clear:k",
               "a=X-Custom:Value:with:colons", "a=rtcp:53020 IN IP4 126.16.64.4",
               "m=application 9 UDP/BFCP *")
    d = parse_sdp(body)
    assert d.serialize() == body
    assert d.lines == (Line("i", "info"), Line("u", "http://x.example/"),
                       Line("e", "a@example.com"), Line("p", "+1 555"), Line("b", "CT:128"),
                       Line("z", "2882844526 -1h 2898848070 0"), Line("k", "prompt"))
    assert d.timing[0].repeats == ("7d 1h 0 25h", "604800 3600 0 90000")
    assert d.attribute("charset") == "" and d.attribute("tool") == "x"
    m = d.media[0]
    assert m.port_count == 2 and len(m.connections) == 2
    assert (m.connection is not None and m.connection.host == "224.2.1.1"
            and m.connection.address == "224.2.1.1/127/3")
    assert m.attribute("x-custom") == "Value:with:colons"
    assert m.rtcp == RtcpAttribute(53020, Connection("IN", "IP4", "126.16.64.4"))
    assert d.direction == "recvonly" and d.direction_of(m) == "recvonly"
    assert d.media[1].formats == ("*",) and d.media[1].rtpmap("*") is None


def test_bare_lf_and_out_of_order_lines_come_back_canonical() -> None:
    lf = SIPP_OFFER.replace(b"\r\n", b"\n")
    assert parse_sdp(lf).serialize() == SIPP_OFFER
    shuffled = sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0", "a=x",
                   "c=IN IP4 192.0.2.1", "b=AS:1", "m=audio 1 RTP/AVP 0", "a=sendrecv",
                   "c=IN IP4 192.0.2.2", "", "")
    d = parse_sdp(shuffled)
    assert d.serialize() == sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-",
                                "c=IN IP4 192.0.2.1", "b=AS:1", "t=0 0", "a=x",
                                "m=audio 1 RTP/AVP 0", "c=IN IP4 192.0.2.2", "a=sendrecv")
    assert parse_sdp(d.serialize()) == d
    assert d.connection_of(0) == Connection("IN", "IP4", "192.0.2.2")  # media level wins
    _, n = accepted(shuffled)
    assert n.remote_address == "192.0.2.2"


def test_no_final_line_end_and_missing_timing_are_tolerated() -> None:
    d = parse_sdp(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nm=audio 5 RTP/AVP 8")
    assert d.timing == () and d.media[0].formats == ("8",)


def test_non_utf8_text_survives_byte_for_byte() -> None:
    body = (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=T\xe9l\xe9phone\r\nt=0 0\r\n"
            b"a=charset:ISO-8859-1\r\n")
    assert parse_sdp(body).serialize() == body


def test_static_payload_types_need_no_rtpmap() -> None:
    d = parse_sdp(corpus_body("mult-ip-in-sdp"))
    audio, video = d.media
    assert audio.rtpmap(0) == RtpMap(0, "PCMU", 8000)
    assert audio.rtpmap(8) == RtpMap(8, "PCMA", 8000)  # not listed, still the static meaning
    assert video.rtpmap(107) == RtpMap(107, "H263-1998", 90000)
    assert audio.rtpmap(96) is None  # dynamic without rtpmap means nothing
    app = parse_sdp(sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "m=application 9 TCP 0"))
    assert app.media[0].rtpmap(0) is None  # static types are an RTP thing


def test_lenient_reading_of_interpreted_attributes() -> None:
    d = parse_sdp(sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1",
                      "m=audio 4000 RTP/AVP 31 96 101", "a=rtpmap:31 LPC",
                      "a=rtpmap:96 broken", "a=rtpmap:101 telephone-event/8000",
                      "a=fmtp:101 zero-15", "a=ptime:twenty", "a=maxptime:20.5",
                      "a=rtcp:99999", "a=SendOnly "))
    m = d.media[0]
    assert m.rtpmap(31) == RtpMap(31, "H261", 90000)  # RFC 4475 sdp01: no rate, static wins
    assert m.rtpmap(96) is None
    assert m.telephone_event() == TelephoneEvent(101, 8000, frozenset(range(16)))
    assert (m.ptime, m.maxptime, m.rtcp) == (None, 20, None)
    assert m.direction == "sendonly" and d.direction_of(m) == "sendonly"


def test_rtpmap_channels_and_events() -> None:
    assert RtpMap(96, "opus", 48000, "2").channels == 2
    assert RtpMap(0, "PCMU", 8000).channels == 1
    assert RtpMap(96, "x", 8000, "two").channels is None
    assert parse_events("0-15,66, 70-71") == frozenset([*range(16), 66, 70, 71])
    for bad in ("", "15-0", "0-256", "a", "0-15,"):
        assert parse_events(bad) is None


def test_direction_levels() -> None:
    d = parse_sdp(sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1",
                      "t=0 0", "a=sendonly", "m=audio 1 RTP/AVP 0", "m=audio 2 RTP/AVP 0",
                      "a=inactive", "m=audio 3 RTP/AVP 0", "a=recvonly"))
    assert [d.direction_of(i) for i in range(3)] == ["sendonly", "inactive", "recvonly"]
    assert parse_sdp(SIPP_AGENT_ANSWER.replace(b"a=sendrecv\r\n", b"")).direction_of(0) \
        == "sendrecv"


def test_rfc5118_ipv6_and_mixed_families() -> None:
    v6 = parse_sdp(corpus_body("ipv6-in-sdp"))
    assert v6.connection == Connection("IN", "IP6", "2001:db8::20")
    assert v6.origin.sess_id == 971731711378798081
    mixed = parse_sdp(corpus_body("mult-ip-in-sdp"))
    assert mixed.connection is None
    assert [str(mixed.connection_of(m)) for m in mixed.media] == [
        "IN IP4 192.0.2.1", "IN IP6 2001:db8::1"]
    mapped = parse_sdp(corpus_body("ipv4-mapped-ipv6"))
    assert mapped.connection is not None and mapped.connection.host == "::ffff:192.0.2.2"


def test_old_style_hold_address() -> None:
    held = parse_sdp(with_lines(SIPP_OFFER, "c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"))
    assert held.connection is not None and held.connection.is_hold
    assert Connection("IN", "IP6", "::").is_hold
    assert not Connection("IN", "IP4", "192.0.2.1").is_hold
    assert not Connection("IN", "IP4", "host.example.com").is_hold
    assert parse_sdp(SIPP_OFFER).connection_of(0) is not None


@pytest.mark.parametrize(("body", "why"), [
    (b"", "empty"),
    (b"o=- 1 1 IN IP4 192.0.2.1\r\n", "starts with v="),
    (b"v=1\r\n", "unsupported SDP version"),
    (b"v=0\r\nv=0\r\n", "more than one v="),
    (b"v=0\r\ns=-\r\n", "no o= line"),
    (b"v=0\r\no=- 1 1 IN IP4 x\r\n", "no s= line"),
    (b"v=0\r\no=- 1 1 IN IP4 x\r\no=- 1 1 IN IP4 x\r\n", "more than one o="),
    (b"v=0\r\no=- one 1 IN IP4 x\r\n", "sess-id is not a number"),
    (b"v=0\r\no=- 1 IN IP4 x\r\n", "six fields"),
    (b"v=0\r\nx=unknown\r\n", "line 2: not a <type>=<value>"),
    (b"v=0\r\nV=0\r\n", "not a <type>=<value>"),
    (b"v=0\r\nnot sdp\r\n", "not a <type>=<value>"),
    (b"v=0\r\ns=a\rb\r\n", "CR or NUL"),
    (b"v=0\r\ns=a\0\r\n", "CR or NUL"),
    (b"v=0\r\nr=1d 1h 0\r\n", "r= without a t="),
    (b"v=0\r\nt=0\r\n", "t= needs start and stop"),
    (b"v=0\r\nt=0 \xd9\xa3\r\n", "not a number"),  # Arabic-Indic digit three
    (b"v=0\r\nc=IN IP4 2001:db8::1\r\n", "not an IP4 address"),
    (b"v=0\r\nc=IN IP6 192.0.2.1\r\n", "not an IP6 address"),
    (b"v=0\r\nc=IN IP4 192.0.2.256\r\n", "not an IP4 address"),
    (b"v=0\r\nc=IN IP4 a b\r\n", "c= needs"),
    (b"v=0\r\nc=IN IP4 224.0.0.1/1/2/3\r\n", "too many '/'"),
    (b"v=0\r\nc=IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\n", "more than one session-level c="),
    (b"v=0\r\nm=audio 70000 RTP/AVP 0\r\n", "out of range"),
    (b"v=0\r\nm=audio 1\r\n", "m= needs"),
    (b"v=0\r\nm=audio 1 RTP/AVP 0\r\nt=0 0\r\n", "not allowed in a media section"),
    (b"v=0\r\na=\r\n", "attribute without a name"),
    (b"v=0\r\na=:x\r\n", "attribute without a name"),
    ("v=0\r\ns=\ud800\r\n", "not SDP text"),
    (b"v=0\r\no=- " + b"9" * 5000 + b" 1 IN IP4 x\r\n", "not a number"),
])
def test_malformed_descriptions(body: bytes | str, why: str) -> None:
    with pytest.raises(SdpError, match=why):
        parse_sdp(body)


def test_serialize_refuses_what_would_not_read_back() -> None:
    base = parse_sdp(SIPP_OFFER)
    m = base.media[0]
    bad = [
        dataclasses.replace(base, name="a\r\nm=video 1 RTP/AVP 0"),
        dataclasses.replace(base, attributes=(Attribute("x", "1\n"),)),
        dataclasses.replace(base, attributes=(Attribute("a:b"),)),
        dataclasses.replace(base, connection=Connection("IN", "IP4", "2001:db8::1")),
        dataclasses.replace(base, origin=dataclasses.replace(base.origin, address="a b")),
        dataclasses.replace(base, origin=dataclasses.replace(base.origin, sess_version=-1)),
        dataclasses.replace(base, lines=(Line("r", "1d"),)),
        dataclasses.replace(base, protocol_version=1),
        dataclasses.replace(base, media=(dataclasses.replace(m, formats=("0 8",)),)),
        dataclasses.replace(base, media=(dataclasses.replace(m, port=65536),)),
        dataclasses.replace(base, media=(dataclasses.replace(m, lines=(Line("u", "x"),)),)),
    ]
    for d in bad:
        with pytest.raises(SdpError):
            d.serialize()


def test_next_version() -> None:
    d = parse_sdp(SIPP_OFFER)
    n = d.next_version()
    assert n.origin.sess_version == 2353687638 and n.origin.sess_id == d.origin.sess_id
    assert dataclasses.replace(n, origin=d.origin) == d


# --------------------------------------------------------------------------- answering


def test_sipp_offer_answer_and_negotiated_values() -> None:
    ans, n = accepted(SIPP_OFFER)
    assert ans.serialize() == sdp(
        "v=0", "o=acd 77 1 IN IP4 198.51.100.7", "s=-", "c=IN IP4 198.51.100.7", "t=0 0",
        "m=audio 20000 RTP/AVP 0 101", "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15", "a=ptime:20", "a=sendrecv")
    assert n == Negotiated(
        media_index=0, remote_address="127.0.0.1", remote_port=6000,
        remote_rtcp_address="127.0.0.1", remote_rtcp_port=6001, codec="PCMU", clock_rate=8000,
        payload_type=0, recv_payload_type=0, telephone_event_pt=101,
        recv_telephone_event_pt=101, telephone_events=frozenset(range(16)), ptime=20,
        direction="sendrecv", remote_hold=False)


def test_our_codec_preference_decides() -> None:
    _, n = accepted(SIPP_OFFER, codecs=["PCMA", "PCMU"])
    assert (n.codec, n.payload_type) == ("PCMA", 8)
    ans, n = accepted(ASTERISK_OFFER)
    assert (n.codec, n.payload_type, n.telephone_event_pt) == ("PCMU", 0, 101)
    assert n.telephone_events == frozenset(range(17))
    assert ans.media[0].formats == ("0", "101")
    assert (n.ptime, ans.media[0].ptime) == (20, 20)


def test_baresip_offer_without_telephone_event_and_with_rtcp_port() -> None:
    ans, n = accepted(BARESIP_OFFER)
    assert (n.codec, n.payload_type, n.telephone_event_pt, n.recv_telephone_event_pt) == (
        "PCMU", 0, None, None)
    assert n.telephone_events == frozenset()
    assert (n.remote_address, n.remote_port, n.remote_rtcp_address, n.remote_rtcp_port) == (
        "192.168.1.23", 10000, "192.168.1.23", 10005)
    assert ans.media[0].formats == ("0",)
    assert ans.media[0].telephone_event() is None
    other = with_lines(BARESIP_OFFER, "a=rtcp:10005", "a=rtcp:10007 IN IP4 192.168.1.24")
    _, n = accepted(other)
    assert (n.remote_rtcp_address, n.remote_rtcp_port) == ("192.168.1.24", 10007)


def test_linphone_offer_picks_the_8k_telephone_event() -> None:
    ans, n = accepted(LINPHONE_OFFER)
    assert (n.codec, n.payload_type, n.telephone_event_pt) == ("PCMU", 0, 100)
    assert ans.media[0].formats == ("0", "100")
    assert ans.media[0].rtpmap(100) == RtpMap(100, "telephone-event", 8000)
    assert ans.attributes == ()  # the offer's session attributes are not ours to repeat
    _, n = accepted(LINPHONE_OFFER, telephone_event=False)
    assert n.telephone_event_pt is None


def test_dynamic_numbering_is_the_offerers() -> None:
    offer = sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
                "m=audio 4000 RTP/AVP 98 96 127", "a=rtpmap:98 pcma/8000",
                "a=rtpmap:96 PCMU/16000", "a=rtpmap:127 Telephone-Event/8000")
    ans, n = accepted(offer)
    # PCMU/16000 is not G.711; PCMA written in lower case under 98 is
    assert (n.codec, n.payload_type, n.recv_payload_type, n.telephone_event_pt) == (
        "PCMA", 98, 98, 127)
    assert ans.media[0].formats == ("98", "127")
    assert ans.media[0].rtpmap(98) == RtpMap(98, "PCMA", 8000)


def test_only_unsupported_codecs_is_488() -> None:
    r = answer(WIDEBAND_ONLY)
    assert (r.sdp, r.negotiated, r.warning) == (None, None, 305)
    assert r.reason == ("m=1 audio: no common codec: offered opus/48000, G722/8000, "
                        "speex/16000; we support PCMU, PCMA")
    r = answer(corpus_body("ipv6-in-sdp"), address="2001:db8::1")
    assert r.sdp is None and r.warning == 305 and "G726-32/8000" in (r.reason or "")


def test_video_is_refused_with_port_zero_keeping_formats() -> None:
    ans, n = accepted(VIDEO_AUDIO)
    video, audio = ans.media
    assert (video.media, video.port, video.proto, video.formats, video.attributes) == (
        "video", 0, "RTP/AVP", ("31", "32"), ())
    assert (audio.port, audio.formats) == (20000, ("0",))
    assert (n.media_index, n.remote_address, n.remote_port) == (1, "192.0.2.10", 49170)
    assert ans.timing == parse_sdp(VIDEO_AUDIO).timing


def test_only_the_first_usable_audio_stream_is_accepted() -> None:
    offer = sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
                "m=audio 4000 RTP/SAVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x",
                "m=audio 0 RTP/AVP 0", "m=audio 4002 RTP/AVP 8", "m=audio 4004 RTP/AVP 0",
                "m=text 4006 RTP/AVP 98", "a=rtpmap:98 t140/1000")
    ans, n = accepted(offer)
    assert [(m.media, m.port, m.proto, m.formats) for m in ans.media] == [
        ("audio", 0, "RTP/SAVP", ("0",)), ("audio", 0, "RTP/AVP", ("0",)),
        ("audio", 20000, "RTP/AVP", ("8",)), ("audio", 0, "RTP/AVP", ("0",)),
        ("text", 0, "RTP/AVP", ("98",))]
    assert (n.media_index, n.codec, n.remote_port) == (2, "PCMA", 4002)


def test_avpf_is_answered_in_kind_srtp_is_refused() -> None:
    ans, _ = accepted(with_lines(SIPP_OFFER, "RTP/AVP", "RTP/AVPF"))
    assert ans.media[0].proto == "RTP/AVPF"
    r = answer(with_lines(SIPP_OFFER, "RTP/AVP", "UDP/TLS/RTP/SAVPF"))
    assert r.sdp is None and r.warning == 303
    assert r.reason == "m=1 audio: transport UDP/TLS/RTP/SAVPF is not supported (plain RTP only)"
    r = answer(with_lines(SIPP_OFFER, "audio 6000", "audio 6000/2"))
    assert r.sdp is None and r.warning == 303


def test_no_audio_at_all() -> None:
    r = answer(sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0"))
    assert (r.sdp, r.reason, r.warning) == (None, "no audio stream offered", 304)
    r = answer(sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
                   "m=video 5000 RTP/AVP 31"))
    assert (r.sdp, r.warning) == (None, 304)
    r = answer(with_lines(SIPP_OFFER, "c=IN IP4 127.0.0.1\r\n", ""))
    assert r.sdp is None and r.warning == 302 and "no c= line" in (r.reason or "")
    r = answer(with_lines(SIPP_OFFER, "c=IN IP4 127.0.0.1", "c=IN IP4 224.0.1.1/16"))
    assert r.sdp is None and r.warning == 302 and "multicast" in (r.reason or "")


@pytest.mark.parametrize(("offered", "local", "ours"), [
    ("sendrecv", "sendrecv", "sendrecv"),
    ("sendonly", "sendrecv", "recvonly"),
    ("recvonly", "sendrecv", "sendonly"),
    ("inactive", "sendrecv", "inactive"),
    ("sendrecv", "sendonly", "sendonly"),  # we hold: music on hold to them
    ("sendonly", "sendonly", "inactive"),
    ("recvonly", "recvonly", "inactive"),
    ("sendrecv", "inactive", "inactive"),
])
def test_answer_direction(offered: str, local: str, ours: str) -> None:
    ans, n = accepted(with_lines(SIPP_OFFER, "a=sendrecv", f"a={offered}"),
                      local_direction=local)
    assert n.direction == ours and ans.direction_of(0) == ours
    assert ans.media[0].attributes[-1] == Attribute(ours)


def test_session_level_direction_counts() -> None:
    offer = with_lines(SIPP_OFFER, "t=0 0\r\n", "t=0 0\r\na=sendonly\r\n")
    _, n = accepted(with_lines(offer, "a=sendrecv\r\n", ""))
    assert n.direction == "recvonly"
    _, n = accepted(offer)  # media level wins
    assert n.direction == "sendrecv"


def test_rfc2543_hold_is_inactive() -> None:
    ans, n = accepted(with_lines(SIPP_OFFER, "c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"))
    assert (n.direction, n.remote_hold, n.remote_address) == ("inactive", True, "0.0.0.0")
    assert ans.direction_of(0) == "inactive"
    assert ans.connection == Connection("IN", "IP4", "198.51.100.7")  # ours, never 0.0.0.0


def test_ipv6_offers() -> None:
    v6 = sdp("v=0", "o=- 1 1 IN IP6 2001:db8::20", "s=-", "c=IN IP6 2001:db8::20", "t=0 0",
             "m=audio 6000 RTP/AVP 8 101", "a=rtpmap:101 telephone-event/8000")
    ans, n = accepted(v6, address="2001:db8::1")
    assert ans.serialize().startswith(sdp("v=0", "o=acd 77 1 IN IP6 2001:db8::1", "s=-",
                                          "c=IN IP6 2001:db8::1"))
    assert (n.remote_address, n.remote_rtcp_address, n.codec) == (
        "2001:db8::20", "2001:db8::20", "PCMA")
    assert n.telephone_events == frozenset(range(16))  # no fmtp: 0-15
    r = answer(v6, address="198.51.100.7")
    assert r.sdp is None and r.warning == 301
    assert r.reason == "m=1 audio: IPv6 media, we use IPv4"
    ans, n = accepted(v6, address="[2001:db8::1]")
    assert ans.connection == Connection("IN", "IP6", "2001:db8::1")


def test_rfc5118_mixed_families_in_one_offer() -> None:
    ans, n = accepted(corpus_body("mult-ip-in-sdp"))
    assert [(m.media, m.port) for m in ans.media] == [("audio", 20000), ("video", 0)]
    assert (n.remote_address, n.remote_port, n.codec) == ("192.0.2.1", 22334, "PCMU")
    assert n.telephone_event_pt is None


def test_ipv4_mapped_ipv6_reaches_an_ipv4_socket() -> None:
    body = with_lines(corpus_body("ipv4-mapped-ipv6"), "RTP/AVP 2", "RTP/AVP 2 0")
    ans, n = accepted(body)
    assert (n.remote_address, n.remote_port, n.codec) == ("192.0.2.2", 6000, "PCMU")
    assert ans.connection == Connection("IN", "IP4", "198.51.100.7")
    _, n = accepted(body, address="2001:db8::1")
    assert n.remote_address == "::ffff:192.0.2.2"


def test_ptime_rules() -> None:
    _, n = accepted(with_lines(SIPP_OFFER, "a=ptime:20", "a=ptime:30"))
    assert n.ptime == 30
    ans, n = accepted(with_lines(SIPP_OFFER, "a=ptime:20", "a=maxptime:10"))
    assert n.ptime == 10 and ans.media[0].ptime == 10
    ans, n = accepted(with_lines(SIPP_OFFER, "a=ptime:20\r\n", ""), ptime=40)
    assert n.ptime == 40 and ans.media[0].ptime == 40


def test_offer_without_timing_is_answered_with_t00() -> None:
    body = with_lines(SIPP_OFFER, "t=0 0\r\n", "")
    ans, _ = accepted(body)
    assert ans.timing == (Timing(0, 0),)


def test_static_types_without_rtpmap_are_accepted() -> None:
    ans, n = accepted(sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1",
                          "t=0 0", "m=audio 4000 RTP/AVP 8 0"))
    assert (n.codec, n.payload_type) == ("PCMU", 0)
    assert ans.media[0].attribute_values("rtpmap") == ["0 PCMU/8000"]


@pytest.mark.parametrize("kw", [
    {"address": "pbx.example.com"}, {"address": "0.0.0.0"}, {"address": "224.0.0.1"},
    {"codecs": ["opus"]}, {"codecs": []}, {"local_direction": "both"}, {"port": 0},
    {"version": -1},
])
def test_bad_arguments_are_value_errors_not_sdp_errors(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as info:
        answer(SIPP_OFFER, **kw)
    assert not isinstance(info.value, SdpError)


# --------------------------------------------------------------------------- offering


def test_make_offer_ipv4_and_ipv6() -> None:
    o = make_offer(address="192.0.2.5", port=30000, session_id=5, version=9)
    assert o.serialize() == sdp(
        "v=0", "o=acd 5 9 IN IP4 192.0.2.5", "s=-", "c=IN IP4 192.0.2.5", "t=0 0",
        "m=audio 30000 RTP/AVP 0 8 101", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15", "a=ptime:20", "a=sendrecv")
    o6 = make_offer(address="2001:db8::5", port=30000, codecs=["PCMA"], telephone_event_pt=None,
                    direction="sendonly", session_id=5, version=9, username="-", ptime=None)
    assert o6.serialize() == sdp(
        "v=0", "o=- 5 9 IN IP6 2001:db8::5", "s=-", "c=IN IP6 2001:db8::5", "t=0 0",
        "m=audio 30000 RTP/AVP 8", "a=rtpmap:8 PCMA/8000", "a=sendonly")


@pytest.mark.parametrize("kw", [
    {"codecs": ["PCMU", "pcmu"]}, {"codecs": ["G726-32"]}, {"telephone_event_pt": 8},
    {"direction": "on"}, {"ptime": 0}, {"address": "::"}, {"port": 65536},
])
def test_make_offer_bad_arguments(kw: dict[str, Any]) -> None:
    args: dict[str, Any] = {"address": "192.0.2.5", "port": 1, "session_id": 1, "version": 1,
                            **kw}
    with pytest.raises(ValueError):
        make_offer(**args)


def test_our_offer_answered_by_ourselves() -> None:
    o = make_offer(address="192.0.2.5", port=30000, session_id=5, version=1)
    ans, n = accepted(o.serialize())
    got = process_answer(o, parse_sdp(ans.serialize()))
    assert (got.codec, got.payload_type, got.telephone_event_pt, got.direction) == (
        "PCMU", 0, 101, "sendrecv")
    assert (got.remote_address, got.remote_port, got.remote_rtcp_port) == (
        "198.51.100.7", 20000, 20001)
    assert (n.remote_address, n.remote_port) == ("192.0.2.5", 30000)


# --------------------------------------------------------------------------- our offer answered


OUR_OFFER = make_offer(address="192.0.2.5", port=30000, session_id=5, version=1)


def test_sipp_agent_answer() -> None:
    n = process_answer(OUR_OFFER, parse_sdp(SIPP_AGENT_ANSWER))
    assert n == Negotiated(
        media_index=0, remote_address="127.0.0.1", remote_port=6002,
        remote_rtcp_address="127.0.0.1", remote_rtcp_port=6003, codec="PCMU", clock_rate=8000,
        payload_type=0, recv_payload_type=0, telephone_event_pt=101,
        recv_telephone_event_pt=101, telephone_events=frozenset(range(16)), ptime=20,
        direction="sendrecv", remote_hold=False)


def test_answer_with_its_own_numbers_and_order() -> None:
    ans = sdp("v=0", "o=- 9 9 IN IP4 203.0.113.1", "s=-", "c=IN IP4 203.0.113.1", "t=0 0",
              "m=audio 7000 RTP/AVP 8 0 96", "a=rtpmap:96 telephone-event/8000",
              "a=fmtp:96 0-11", "a=ptime:30", "a=recvonly")
    n = process_answer(OUR_OFFER, parse_sdp(ans))
    assert (n.codec, n.payload_type, n.recv_payload_type) == ("PCMA", 8, 8)
    assert (n.telephone_event_pt, n.recv_telephone_event_pt) == (96, 101)
    assert n.telephone_events == frozenset(range(12))
    assert (n.ptime, n.direction) == (30, "sendonly")


def test_answer_adding_telephone_event_we_did_not_offer_is_ignored() -> None:
    offer = make_offer(address="192.0.2.5", port=30000, telephone_event_pt=None,
                       session_id=5, version=1)
    n = process_answer(offer, parse_sdp(SIPP_AGENT_ANSWER))
    assert (n.telephone_event_pt, n.recv_telephone_event_pt) == (None, None)


@pytest.mark.parametrize(("ours", "theirs", "expected"), [
    ("sendonly", "recvonly", "sendonly"),
    ("sendonly", "sendrecv", "sendonly"),  # a sloppy answer cannot widen our offer
    ("sendrecv", "sendonly", "recvonly"),
    ("sendrecv", "inactive", "inactive"),
    ("inactive", "inactive", "inactive"),
])
def test_answer_directions(ours: str, theirs: str, expected: str) -> None:
    offer = make_offer(address="192.0.2.5", port=30000, direction=ours, session_id=5,
                       version=1)
    n = process_answer(offer, parse_sdp(with_lines(SIPP_AGENT_ANSWER, "a=sendrecv",
                                                   f"a={theirs}")))
    assert n.direction == expected


def test_answer_with_hold_address() -> None:
    n = process_answer(OUR_OFFER, parse_sdp(with_lines(SIPP_AGENT_ANSWER, "c=IN IP4 127.0.0.1",
                                                       "c=IN IP4 0.0.0.0")))
    assert (n.direction, n.remote_hold) == ("inactive", True)


@pytest.mark.parametrize(("change", "why"), [
    (("m=audio 6002", "m=audio 0"), "refuses every audio stream"),
    (("m=audio 6002 RTP/AVP 0 101", "m=audio 6002 RTP/AVP 18"), "no codec we offered"),
    (("a=rtpmap:0 PCMU/8000", "a=rtpmap:0 PCMU/16000"), "no codec we offered"),
    (("RTP/AVP", "RTP/SAVP"), "transport RTP/SAVP, we offered RTP/AVP"),
    (("c=IN IP4 127.0.0.1", "c=IN IP6 ::1"), "IPv6 media, we use IPv4"),
    (("c=IN IP4 127.0.0.1\r\n", ""), "no c= line"),
    (("m=audio", "m=video"), "answered 'video' to our 'audio'"),
    (("a=sendrecv\r\n", "a=sendrecv\r\nm=video 0 RTP/AVP 31\r\n"), "2 m= lines, our offer 1"),
])
def test_unusable_answers(change: tuple[str, str], why: str) -> None:
    with pytest.raises(SdpError, match=why):
        process_answer(OUR_OFFER, parse_sdp(with_lines(SIPP_AGENT_ANSWER, *change)))


# --------------------------------------------------------------------------- re-offers


def test_hold_and_resume_reoffers() -> None:
    held = make_reoffer(OUR_OFFER, direction="sendonly")
    assert held.origin == dataclasses.replace(OUR_OFFER.origin, sess_version=2)
    assert held.direction_of(0) == "sendonly"
    assert held.media[0].attributes[:-1] == OUR_OFFER.media[0].attributes[:-1]
    assert make_reoffer(held, direction="sendonly") is held  # unchanged: same version
    resumed = make_reoffer(held, direction="sendrecv")
    assert resumed.origin.sess_version == 3
    assert dataclasses.replace(resumed, origin=OUR_OFFER.origin) == OUR_OFFER
    moved = make_reoffer(resumed, address="2001:db8::5", port=30002)
    assert moved.origin.sess_version == 4 and moved.origin.address == "192.0.2.5"
    assert moved.connection == Connection("IN", "IP6", "2001:db8::5")
    assert moved.media[0].port == 30002
    with pytest.raises(ValueError):
        make_reoffer(OUR_OFFER, direction="hold")


def test_reoffer_replaces_every_direction_and_media_level_address() -> None:
    d = parse_sdp(sdp("v=0", "o=- 1 7 IN IP4 192.0.2.1", "s=-", "t=0 0",
                      "m=video 0 RTP/AVP 31", "m=audio 4000 RTP/AVP 0", "c=IN IP4 192.0.2.1",
                      "a=recvonly", "a=x", "a=inactive"))
    r = make_reoffer(d, direction="sendrecv", address="192.0.2.9")
    assert r.media[1].attributes == (Attribute("sendrecv"), Attribute("x"))
    assert r.media[1].connections == (Connection("IN", "IP4", "192.0.2.9"),)
    assert r.connection is None and r.origin.sess_version == 8
    with pytest.raises(ValueError, match="no active audio stream"):
        make_reoffer(SessionDescription(origin=d.origin, media=(d.media[0],)),
                     direction="sendonly")


def test_revise_for_repeated_answers() -> None:
    first, _ = accepted(SIPP_OFFER, version=1)
    again, _ = accepted(SIPP_OFFER, version=1, session_id=999)  # caller's numbers ignored
    assert revise(first, again) is first
    changed, _ = accepted(SIPP_OFFER, local_direction="sendonly")
    r = revise(first, changed)
    assert r.origin == dataclasses.replace(first.origin, sess_version=2)
    assert r.direction_of(0) == "sendonly"


def test_direction_algebra() -> None:
    assert [mirror_direction(d) for d in ("sendrecv", "sendonly", "recvonly", "inactive")] == [
        "sendrecv", "recvonly", "sendonly", "inactive"]
    assert intersect_directions("sendonly", "recvonly") == "inactive"
    assert intersect_directions("sendrecv", "recvonly") == "recvonly"
    with pytest.raises(ValueError):
        mirror_direction("hold")


# --------------------------------------------------------------------------- properties

# no surrogates: escaped bytes come back as whatever UTF-8 they happen to form
_NOT_BREAK = st.characters(blacklist_characters="\r\n\0", codec="utf-8")
# \x85 and \u2028 are line breaks to str.splitlines(), \u0663 a digit to int(): none may leak
_TOKEN_CHARS = st.one_of(st.sampled_from("aZ09-_./*:+\x85\u2028\u0663\t"),
                         st.characters(blacklist_characters=" \r\n\0",
                                       codec="utf-8"))
tokens = st.text(_TOKEN_CHARS, min_size=1, max_size=8)
free_text = st.text(_NOT_BREAK, max_size=16)
numbers = st.integers(min_value=0, max_value=2**64)
connections = st.one_of(
    st.sampled_from(["192.0.2.1", "0.0.0.0", "224.2.1.1/127", "224.2.1.1/127/3",
                     "host.example.com"]).map(lambda a: Connection("IN", "IP4", a)),
    st.sampled_from(["2001:db8::1", "::", "::ffff:192.0.2.2", "ff15::101/3",
                     "h6.example.net"]).map(lambda a: Connection("IN", "IP6", a)),
    st.builds(Connection, tokens.filter(lambda t: t.upper() != "IN"), tokens, tokens),
)
attributes = st.builds(
    Attribute,
    st.text(st.characters(blacklist_characters="\r\n\0:", codec="utf-8"),
            min_size=1, max_size=10)
    .filter(str.strip),
    st.none() | free_text)


def kept_lines(groups: tuple[str, ...]) -> st.SearchStrategy[tuple[Line, ...]]:
    # one list per serialisation slot, so the model is in the order parse_sdp returns
    parts = [st.lists(st.builds(Line, st.sampled_from(g), free_text), max_size=2)
             for g in groups]
    return st.tuples(*parts).map(lambda ls: tuple(line for part in ls for line in part))


media_descriptions = st.builds(
    MediaDescription, tokens, st.integers(0, 65535), tokens,
    st.lists(tokens, max_size=4).map(tuple), st.none() | st.integers(0, 65535),
    st.lists(connections, max_size=2).map(tuple), st.lists(attributes, max_size=4).map(tuple),
    kept_lines(("i", "bk")))
descriptions = st.builds(
    SessionDescription,
    st.builds(Origin, st.lists(tokens, min_size=1, max_size=2).map(" ".join), numbers,
              numbers, tokens, tokens, tokens),
    free_text, st.none() | connections,
    st.lists(st.builds(Timing, numbers, numbers, st.lists(free_text, max_size=2).map(tuple)),
             max_size=2).map(tuple),
    st.lists(attributes, max_size=3).map(tuple), st.lists(media_descriptions, max_size=3)
    .map(tuple), kept_lines(("iuep", "b", "zk")))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(descriptions)
def test_models_round_trip(d: SessionDescription) -> None:
    wire = d.serialize()
    assert parse_sdp(wire) == d
    assert parse_sdp(wire).serialize() == wire
    assert parse_sdp(wire.replace(b"\r\n", b"\n")) == d


def exercise(d: SessionDescription) -> None:
    """Every accessor and both negotiations on a parsed description: no exception but
    SdpError from process_answer, and the RFC 3264 shape of any answer."""
    for i, m in enumerate(d.media):
        for f in m.formats:
            m.rtpmap(f)
            m.fmtp(f)
        assert d.direction_of(i) in ("sendrecv", "sendonly", "recvonly", "inactive")
        assert (m.ptime or 1) > 0 and (m.maxptime or 1) > 0
        assert m.rtcp is None or 0 <= m.rtcp.port <= 65535
        te = m.telephone_event(None)
        assert te is None or str(te.payload_type) in [f.lstrip("0") or "0" for f in m.formats]
        c = d.connection_of(i)
        if c is not None:
            assert c.host in c.address and c.is_hold == (c.ip is not None and c.ip.is_unspecified)
    for address in ("198.51.100.7", "2001:db8::7"):
        check_answer(d, answer_offer(d, address=address, port=20000, session_id=1, version=1))
    with contextlib.suppress(SdpError):
        process_answer(OUR_OFFER, d)


def check_answer(offer: SessionDescription, r: AnswerResult) -> None:
    if r.sdp is None or r.negotiated is None:
        assert r.sdp is None and r.negotiated is None
        assert r.reason and r.warning in (301, 302, 303, 304, 305)
        return
    ans, n = r.sdp, r.negotiated
    assert parse_sdp(ans.serialize()) == ans
    assert [m.media for m in ans.media] == [m.media for m in offer.media]
    live = [i for i, m in enumerate(ans.media) if m.port != 0]
    assert live == [n.media_index] and offer.media[n.media_index].media.lower() == "audio"
    for i, (o, a) in enumerate(zip(offer.media, ans.media, strict=True)):
        if i != n.media_index:
            assert (a.port, a.proto, a.formats) == (0, o.proto, o.formats)
    offered = offer.media[n.media_index]
    assert str(n.payload_type) in [str(int(f)) for f in offered.formats if f.isdecimal()]
    assert n.codec in ("PCMU", "PCMA") and n.direction == ans.direction_of(n.media_index)
    if n.telephone_event_pt is not None:
        assert ans.media[n.media_index].formats[1] in offered.formats
    process_answer(offer, ans)  # our own answer is always usable by the offerer


_AUDIO_ATTRIBUTES = [
    "rtpmap:0 PCMU/8000", "rtpmap:8 PCMA/8000", "rtpmap:96 PCMU/8000", "rtpmap:0 PCMU/16000",
    "rtpmap:97 telephone-event/8000", "rtpmap:101 telephone-event/8000", "fmtp:101 0-15",
    "fmtp:101 0-16,", "rtpmap:101 telephone-event/16000", "rtpmap:8 PCMA/8000/2", "ptime:30",
    "maxptime:10", "rtcp:9", "rtcp:9 IN IP6 ::1", "sendonly", "recvonly", "inactive",
    "sendrecv", "rtcp-mux"]
plausible_connections = st.sampled_from([
    Connection("IN", "IP4", "192.0.2.1"), Connection("IN", "IP4", "192.0.2.1"),
    Connection("IN", "IP4", "0.0.0.0"), Connection("IN", "IP6", "2001:db8::1"),
    Connection("IN", "IP6", "::ffff:192.0.2.2"), Connection("IN", "IP4", "pbx.example.com")])
plausible_audio = st.builds(
    MediaDescription, st.sampled_from(["audio", "audio", "AUDIO", "video"]),
    st.sampled_from([4000, 4000, 0, 65535]),
    st.sampled_from(["RTP/AVP", "RTP/AVP", "RTP/AVPF", "RTP/SAVP"]),
    st.lists(st.sampled_from(["0", "8", "96", "97", "101", "18"]), min_size=1, max_size=4)
    .map(tuple), st.sampled_from([None, None, None, 1, 2]),
    st.lists(plausible_connections, max_size=1).map(tuple),
    st.lists(st.sampled_from(_AUDIO_ATTRIBUTES).map(
        lambda a: Attribute(*a.split(":", 1)) if ":" in a else Attribute(a)), max_size=6)
    .map(tuple))
plausible_offers = st.builds(
    SessionDescription, st.just(Origin("-", 1, 1)), st.just("-"), plausible_connections,
    st.just((Timing(),)), st.lists(st.sampled_from(_AUDIO_ATTRIBUTES[-5:]).map(Attribute),
                                   max_size=1).map(tuple),
    st.lists(plausible_audio, max_size=3).map(tuple))


@settings(max_examples=500)
@given(descriptions | plausible_offers)
def test_answers_to_generated_offers_are_well_formed(d: SessionDescription) -> None:
    exercise(parse_sdp(d.serialize()))


def test_plausible_offers_are_often_accepted() -> None:
    # the property above is only worth something if answers are actually produced
    got = []

    @settings(max_examples=300, database=None, derandomize=True)
    @given(plausible_offers)
    def run(d: SessionDescription) -> None:
        got.append(answer_offer(d, address="198.51.100.7", port=2, session_id=1,
                                version=1).sdp is not None)

    run()
    assert sum(got) > len(got) // 5


@settings(max_examples=500)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_input_raises_only_sdp_error(body: bytes) -> None:
    try:
        d = parse_sdp(body)
    except SdpError:
        return
    exercise(d)


_FIXTURES = [SIPP_OFFER, BARESIP_OFFER, LINPHONE_OFFER, ASTERISK_OFFER, VIDEO_AUDIO,
             corpus_body("mult-ip-in-sdp")]
_FRAGMENTS = ["0", "8", "101", "65535", "65536", " ", "/", ":", "IN", "IP4", "IP6", "::",
              "0.0.0.0", "a=sendonly", "a=rtcp:", "telephone-event/8000", "\r", "\n",
              "\xff", "\u0663", "RTP/AVP", "m=audio 0 RTP/AVP 0\r\n"]


@settings(max_examples=600)
@given(st.sampled_from(_FIXTURES), st.data())
def test_mutated_real_offers_raise_only_sdp_error(body: bytes, data: st.DataObject) -> None:
    text = body.decode()
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 6))
        insert = data.draw(st.sampled_from(_FRAGMENTS) | st.text(max_size=3))
        text = text[:at] + insert + text[at + cut:]
    try:
        d = parse_sdp(text)
    except SdpError:
        return
    assert parse_sdp(d.serialize()) == d  # whatever parses, serialises to a fixed point
    exercise(d)


@settings(max_examples=200)
@given(st.sampled_from(_FIXTURES), st.sampled_from(["sendrecv", "sendonly", "recvonly",
                                                    "inactive"]))
def test_revise_is_stable(body: bytes, local: str) -> None:
    first = answer(body).sdp
    second = answer(body, local_direction=local, version=50).sdp
    assert first is not None and second is not None
    r = revise(first, second)
    assert r.origin.sess_id == first.origin.sess_id
    assert r.origin.sess_version == first.origin.sess_version + (r.media != first.media)
    assert revise(r, r) is r
