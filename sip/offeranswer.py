"""SDP offer/answer (RFC 3264) for audio the engine terminates itself: one G.711 stream plus
RFC 4733 telephone-events, over plain RTP (RTP/AVP, RTP/AVPF; no SRTP).

Pure functions from descriptions to descriptions and negotiated facts. The caller owns the
RTP port, session id and version, and turns a refused offer into 488 Not Acceptable Here
(`AnswerResult.reason` and `.warning` fill its Warning header).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sip.sdp import (
    DIRECTIONS,
    STATIC_PAYLOAD_TYPES,
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    RtpMap,
    SdpError,
    SessionDescription,
    Timing,
)

__all__ = [
    "AUDIO_PROTOS",
    "AnswerResult",
    "Negotiated",
    "answer_offer",
    "intersect_directions",
    "make_offer",
    "make_reoffer",
    "mirror_direction",
    "process_answer",
    "revise",
]

AUDIO_PROTOS = ("RTP/AVP", "RTP/AVPF")
_DEFAULT_PTIME = 20  # RFC 3551 §4.5: G.711's default packetisation
_OUR_EVENTS = "0-15"  # the DTMF digits: what we receive and offer

# codec name -> static payload type and clock rate (RFC 3551 audio, first listing of a name)
_CODECS: dict[str, tuple[int, int]] = {}
for _pt, (_name, _rate, _params) in STATIC_PAYLOAD_TYPES.items():
    if _pt < 24 and _params is None:
        _CODECS.setdefault(_name.upper(), (_pt, _rate))


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What the media path needs after offer/answer. Payload types are per direction:
    `payload_type`/`telephone_event_pt` are the peer's numbers (put them in packets we
    send), the `recv_` ones are ours (packets we receive carry them). When we answered,
    both are the offerer's numbers; for static PCMU/PCMA they are 0 and 8."""

    media_index: int
    remote_address: str
    remote_port: int
    remote_rtcp_address: str
    remote_rtcp_port: int | None  # None only for RTP port 65535 without a=rtcp
    codec: str
    clock_rate: int
    payload_type: int
    recv_payload_type: int
    telephone_event_pt: int | None  # None: detect DTMF in-band
    recv_telephone_event_pt: int | None
    telephone_events: frozenset[int]  # events the peer accepts from us
    ptime: int
    direction: str  # ours: sendonly means we send and do not expect to receive
    remote_hold: bool  # the peer wrote c=0.0.0.0 (RFC 2543 hold)


@dataclass(frozen=True, slots=True)
class AnswerResult:
    """`sdp` None: answer 488 with `reason`, and `warning` as the RFC 3261 §20.43 code."""

    sdp: SessionDescription | None
    negotiated: Negotiated | None
    reason: str | None = None
    warning: int | None = None


def _flags(direction: str) -> tuple[bool, bool]:
    if direction not in DIRECTIONS:
        raise ValueError(f"not a direction: {direction!r}")
    return direction in ("sendrecv", "sendonly"), direction in ("sendrecv", "recvonly")


def _direction(send: bool, recv: bool) -> str:
    return {(True, True): "sendrecv", (True, False): "sendonly",
            (False, True): "recvonly", (False, False): "inactive"}[send, recv]


def mirror_direction(direction: str) -> str:
    """The other side's view: sendonly <-> recvonly (RFC 3264 §6.1)."""
    send, recv = _flags(direction)
    return _direction(recv, send)


def intersect_directions(a: str, b: str) -> str:
    """Send only if both allow sending, receive only if both allow receiving."""
    (sa, ra), (sb, rb) = _flags(a), _flags(b)
    return _direction(sa and sb, ra and rb)


def _our_connection(address: str) -> Connection:
    conn = Connection.for_host(address)
    ip = conn.ip
    if ip is None or ip.is_unspecified or ip.is_multicast:
        raise ValueError(f"our media address must be a unicast IP: {address!r}")
    return conn


def _codec(name: str) -> tuple[str, int, int]:
    key = name.upper()
    if key not in _CODECS:
        raise ValueError(f"not an RFC 3551 static audio codec: {name!r}")
    return (key, *_CODECS[key])


def _matches(rm: RtpMap | None, name: str, rate: int) -> bool:
    return (rm is not None and rm.encoding.upper() == name and rm.clock_rate == rate
            and rm.channels == 1)


def make_offer(*, address: str, port: int, codecs: Sequence[str] = ("PCMU", "PCMA"),
               telephone_event_pt: int | None = 101, direction: str = "sendrecv",
               session_id: int, version: int, username: str = "acd",
               ptime: int | None = 20) -> SessionDescription:
    """One audio stream offering `codecs` (preference order) and telephone-event/8000."""
    conn = _our_connection(address)
    _flags(direction)
    if not 1 <= port <= 65535 or session_id < 0 or version < 0:
        raise ValueError("port must be 1-65535; session id and version non-negative")
    chosen = [_codec(c) for c in codecs]
    if not chosen or len({c[0] for c in chosen}) != len(chosen):
        raise ValueError(f"codecs must be distinct and not empty: {list(codecs)}")
    formats = [str(pt) for _, pt, _ in chosen]
    attrs = [Attribute("rtpmap", f"{pt} {name}/{rate}") for name, pt, rate in chosen]
    if telephone_event_pt is not None:
        if not 96 <= telephone_event_pt <= 127:
            raise ValueError("telephone_event_pt must be a dynamic payload type (96-127)")
        formats.append(str(telephone_event_pt))
        attrs += [Attribute("rtpmap", f"{telephone_event_pt} telephone-event/8000"),
                  Attribute("fmtp", f"{telephone_event_pt} {_OUR_EVENTS}")]
    if ptime is not None:
        if ptime <= 0:
            raise ValueError("ptime must be positive")
        attrs.append(Attribute("ptime", str(ptime)))
    attrs.append(Attribute(direction))
    audio = MediaDescription("audio", port, "RTP/AVP", tuple(formats), attributes=tuple(attrs))
    return SessionDescription(
        origin=Origin(username, session_id, version, conn.nettype, conn.addrtype, conn.address),
        connection=conn, media=(audio,))


class _Unusable(Exception):
    """Why one stream cannot be used, with the RFC 3261 Warning code that says so."""

    def __init__(self, warning: int, reason: str) -> None:
        super().__init__(reason)
        self.warning = warning
        self.reason = reason


def _endpoint(sd: SessionDescription, m: MediaDescription, ours: Connection) -> tuple[str, bool]:
    """Where the peer wants this stream's RTP, and whether that is RFC 2543 hold."""
    conn = sd.connection_of(m)
    if conn is None:
        raise _Unusable(302, "no c= line for it")
    if conn.nettype.upper() != "IN" or conn.addrtype.upper() not in ("IP4", "IP6"):
        raise _Unusable(301, f"network {conn.nettype} {conn.addrtype} is not IN IP4/IP6")
    ip, mine = conn.ip, ours.ip
    if ip is not None and ip.is_multicast:
        raise _Unusable(302, f"multicast address {conn.host} (unicast only)")
    if ip is not None and mine is not None and ip.version != mine.version:
        mapped = getattr(ip, "ipv4_mapped", None)
        if mapped is not None:  # an IPv4-mapped IPv6 address reaches an IPv4 socket
            return str(mapped), mapped.is_unspecified
        if getattr(mine, "ipv4_mapped", None) is not None:  # ours is a dual-stack socket
            return f"::ffff:{ip}", ip.is_unspecified
        raise _Unusable(301, f"IPv{ip.version} media, we use IPv{mine.version}")
    if ip is None and conn.addrtype.upper() != ours.addrtype.upper():
        raise _Unusable(301, f"{conn.addrtype} media, we use {ours.addrtype}")
    return conn.host, conn.is_hold


def _check_transport(m: MediaDescription) -> None:
    if m.proto.upper() not in AUDIO_PROTOS:
        raise _Unusable(303, f"transport {m.proto} is not supported (plain RTP only)")
    if m.port_count not in (None, 1):
        raise _Unusable(303, f"{m.port_count} ports (one stream only)")


def _rtcp(m: MediaDescription, address: str, port: int) -> tuple[str, int | None]:
    attr = m.rtcp
    if attr is not None:
        return (attr.connection.host if attr.connection else address), attr.port
    return address, (port + 1 if port < 65535 else None)


def _ptime(m: MediaDescription, ours: int | None) -> int:
    """The peer's ptime is what it wants to receive; else ours, within its maxptime."""
    if m.ptime is not None:
        return m.ptime
    wanted = ours or _DEFAULT_PTIME
    return min(wanted, m.maxptime) if m.maxptime is not None else wanted


def _accept(offer: SessionDescription, index: int, wanted: list[tuple[str, int, int]],
            telephone_event: bool, local_direction: str, ours: Connection, port: int,
            ptime: int | None) -> tuple[Negotiated, MediaDescription]:
    m = offer.media[index]
    if m.port == 0:
        raise _Unusable(304, "disabled by the offerer (port 0)")
    _check_transport(m)
    address, hold = _endpoint(offer, m, ours)
    for name, _, rate in wanted:
        pt = next((f for f in m.formats if _matches(m.rtpmap(f), name, rate)), None)
        if pt is not None:
            break
    else:
        offered = ", ".join(f"{rm.encoding}/{rm.clock_rate}" for f in m.formats
                            if (rm := m.rtpmap(f)) is not None) or "nothing we know"
        names = ", ".join(n for n, _, _ in wanted)
        raise _Unusable(305, f"no common codec: offered {offered}; we support {names}")
    te = m.telephone_event(rate) if telephone_event else None
    direction = intersect_directions(mirror_direction(offer.direction_of(m)), local_direction)
    if hold:
        direction = "inactive"
    packet_ms = _ptime(m, ptime)
    formats = [pt]
    attrs = [Attribute("rtpmap", f"{pt} {name}/{rate}")]
    if te is not None:
        formats.append(str(te.payload_type))
        attrs += [Attribute("rtpmap", f"{te.payload_type} telephone-event/{te.clock_rate}"),
                  Attribute("fmtp", f"{te.payload_type} {_OUR_EVENTS}")]
    attrs += [Attribute("ptime", str(packet_ms)), Attribute(direction)]
    rtcp_address, rtcp_port = _rtcp(m, address, m.port)
    te_pt = None if te is None else te.payload_type
    negotiated = Negotiated(
        media_index=index, remote_address=address, remote_port=m.port,
        remote_rtcp_address=rtcp_address, remote_rtcp_port=rtcp_port, codec=name,
        clock_rate=rate, payload_type=int(pt), recv_payload_type=int(pt),
        telephone_event_pt=te_pt, recv_telephone_event_pt=te_pt,
        telephone_events=frozenset() if te is None else te.events, ptime=packet_ms,
        direction=direction, remote_hold=hold)
    return negotiated, MediaDescription(m.media, port, m.proto, tuple(formats),
                                        attributes=tuple(attrs))


def answer_offer(offer: SessionDescription, *, address: str, port: int,
                 codecs: Sequence[str] = ("PCMU", "PCMA"), telephone_event: bool = True,
                 local_direction: str = "sendrecv", session_id: int, version: int,
                 username: str = "acd", ptime: int | None = 20) -> AnswerResult:
    """Answer per RFC 3264 §6: one m= per offered m=, in order; the first usable audio
    stream gets one codec (the first of `codecs` offered, with the offerer's payload type)
    plus telephone-event if offered; every other stream is refused with port 0.
    `local_direction` is what we want (sendonly: we hold); the answer also honours the
    offer's direction and RFC 2543 hold. Bad arguments raise ValueError."""
    ours = _our_connection(address)
    _flags(local_direction)
    if not 1 <= port <= 65535 or session_id < 0 or version < 0:
        raise ValueError("port must be 1-65535; session id and version non-negative")
    wanted = [_codec(c) for c in codecs]
    if not wanted:
        raise ValueError("no codecs to answer with")
    negotiated: Negotiated | None = None
    refusals: list[_Unusable] = []
    media: list[MediaDescription] = []
    for index, m in enumerate(offer.media):
        if negotiated is None and m.media.lower() == "audio":
            try:
                negotiated, accepted = _accept(offer, index, wanted, telephone_event,
                                               local_direction, ours, port, ptime)
            except _Unusable as why:
                refusals.append(_Unusable(why.warning, f"m={index + 1} audio: {why.reason}"))
            else:
                media.append(accepted)
                continue
        # RFC 3264 §6: a refused stream keeps its m= line, port 0, and the offered formats
        media.append(MediaDescription(m.media, 0, m.proto, m.formats))
    if negotiated is None:
        if not refusals:
            return AnswerResult(None, None, "no audio stream offered", 304)
        return AnswerResult(None, None, "; ".join(r.reason for r in refusals),
                            refusals[0].warning)
    sdp = SessionDescription(
        origin=Origin(username, session_id, version, ours.nettype, ours.addrtype, ours.address),
        connection=ours, timing=offer.timing or (Timing(),), media=tuple(media))
    return AnswerResult(sdp, negotiated)


def process_answer(offer: SessionDescription, answer: SessionDescription) -> Negotiated:
    """The answer to our own offer (we are the offerer): SdpError if it is unusable."""
    if len(answer.media) != len(offer.media):
        raise SdpError(f"the answer has {len(answer.media)} m= lines, "
                       f"our offer {len(offer.media)} (RFC 3264 §6)")
    for index, (o, a) in enumerate(zip(offer.media, answer.media, strict=True)):
        if o.media.lower() != a.media.lower():
            raise SdpError(f"m={index + 1}: answered {a.media!r} to our {o.media!r}")
    streams = [i for i, (o, a) in enumerate(zip(offer.media, answer.media, strict=True))
               if o.media.lower() == "audio" and o.port != 0 and a.port != 0]
    if not streams:
        raise SdpError("the answer refuses every audio stream we offered")
    index = streams[0]
    o, a = offer.media[index], answer.media[index]
    ours = offer.connection_of(o)
    if ours is None:
        raise SdpError(f"m={index + 1}: our offer has no c= line")
    try:
        if a.proto.upper() != o.proto.upper():
            raise _Unusable(303, f"transport {a.proto}, we offered {o.proto}")
        _check_transport(a)
        address, hold = _endpoint(answer, a, ours)
    except _Unusable as why:
        raise SdpError(f"m={index + 1}: {why.reason}") from None
    offered = [(f, rm) for f in o.formats if (rm := o.rtpmap(f)) is not None
               and rm.encoding.lower() not in ("telephone-event", "cn")]
    # RFC 3264 §7: the answerer lists what it wants most first
    for fmt in a.formats:
        rm = a.rtpmap(fmt)
        ours_fmt = next((f for f, orm in offered
                         if rm is not None and _matches(rm, orm.encoding.upper(),
                                                        orm.clock_rate)), None)
        if rm is not None and ours_fmt is not None:
            break
    else:
        raise SdpError(f"m={index + 1}: the answer chose no codec we offered")
    te, our_te = a.telephone_event(rm.clock_rate), o.telephone_event(rm.clock_rate)
    if our_te is None:
        te = None  # an answer cannot add a format the offer did not have
    direction = intersect_directions(offer.direction_of(o),
                                     mirror_direction(answer.direction_of(a)))
    rtcp_address, rtcp_port = _rtcp(a, address, a.port)
    return Negotiated(
        media_index=index, remote_address=address, remote_port=a.port,
        remote_rtcp_address=rtcp_address, remote_rtcp_port=rtcp_port,
        codec=rm.encoding.upper(), clock_rate=rm.clock_rate, payload_type=rm.payload_type,
        recv_payload_type=int(ours_fmt),
        telephone_event_pt=None if te is None else te.payload_type,
        recv_telephone_event_pt=None if te is None or our_te is None else our_te.payload_type,
        telephone_events=frozenset() if te is None else te.events,
        ptime=_ptime(a, o.ptime), direction="inactive" if hold else direction,
        remote_hold=hold)


def revise(previous: SessionDescription, candidate: SessionDescription) -> SessionDescription:
    """`candidate` under `previous`'s o= line: same version when nothing else changed,
    version + 1 when something did (RFC 3264 §8). Use it for every later offer or answer
    in a dialog."""
    if replace(candidate, origin=previous.origin) == previous:
        return previous
    return replace(candidate, origin=previous.next_version().origin)


def make_reoffer(previous: SessionDescription, *, direction: str | None = None,
                 address: str | None = None, port: int | None = None) -> SessionDescription:
    """A re-offer from our previous description: the first live audio stream gets
    `direction` (sendonly to hold, sendrecv to resume) and/or a new address or port; the
    o= version moves only if that changed anything (RFC 3264 §8)."""
    index = next((i for i, m in enumerate(previous.media)
                  if m.media.lower() == "audio" and m.port != 0), None)
    if index is None:
        raise ValueError("the previous description has no active audio stream")
    m = previous.media[index]
    session_conn = previous.connection
    if direction is not None:
        _flags(direction)
        kept = [a for a in m.attributes if a.name.strip().lower() not in DIRECTIONS]
        at = next((i for i, a in enumerate(m.attributes)
                   if a.name.strip().lower() in DIRECTIONS), len(m.attributes))
        # the direction keeps its place, so re-offering the same direction changes nothing
        kept.insert(min(at, len(kept)), Attribute(direction))
        m = replace(m, attributes=tuple(kept))
    if address is not None:
        conn = _our_connection(address)
        if m.connections:
            m = replace(m, connections=(conn,))
        else:
            session_conn = conn
    if port is not None:
        if not 1 <= port <= 65535:
            raise ValueError("port must be 1-65535")
        m = replace(m, port=port)
    media = (*previous.media[:index], m, *previous.media[index + 1:])
    return revise(previous, replace(previous, media=media, connection=session_conn))
