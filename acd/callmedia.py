"""The media side of one call leg: an RTP endpoint plus its SDP offer/answer state.

`LegMedia` hides RFC 3264 and the RTP runtime from call control: answer a remote offer,
make an offer, accept the answer to ours, answer re-offers (hold/unhold), and hand the
negotiated codec, telephone-event payload type, remote address and direction to the
endpoint. Also the tones the engine synthesises (ringback, voicemail beep), so no audio
file is needed for them.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Protocol

from media.g711 import Codec
from media.prompt import Prompt
from sip.offeranswer import Negotiated, answer_offer, make_offer, process_answer, revise
from sip.sdp import SdpError, SessionDescription, parse_sdp

__all__ = ["LegMedia", "MediaConfig", "MediaEndpointLike", "MediaEngineLike", "tone"]


class MediaEndpointLike(Protocol):
    local_port: int
    on_dtmf: Any

    def configure(self, remote: tuple[str, int] | None, codec: Codec, pt: int,
                  te_pt: int | None, direction: str, *, recv_pt: int | None = None,
                  recv_te_pt: int | None = None,
                  rtcp: tuple[str, int] | None = None) -> None: ...

    def play(self, prompts: Any, loop: bool = False, on_done: Any = None) -> None: ...

    def stop_play(self) -> None: ...

    def bridge(self, other: Any) -> None: ...

    def unbridge(self) -> None: ...

    def close(self) -> None: ...

    def record(self, path: Any, on_error: Any = None, tap: Any = None) -> Any: ...


class MediaEngineLike(Protocol):
    def allocate(self) -> Any: ...


class DualStackMedia:
    """An IPv4 media engine and, where SIP also listens on IPv6, an IPv6 one: each leg's
    endpoint is taken from the family its peer's media uses."""

    def __init__(self, v4: Any, v6: Any | None = None) -> None:
        self.v4, self.v6 = v4, v6

    def allocate(self, ipv6: bool = False) -> Any:
        if ipv6:
            if self.v6 is None:
                raise OSError("no IPv6 media address")
            return self.v6.allocate()
        return self.v4.allocate()

    @property
    def endpoints(self) -> dict[int, Any]:
        out = dict(self.v4.endpoints)
        if self.v6 is not None:
            out.update({-k: v for k, v in self.v6.endpoints.items()})
        return out

    def record(self, path: Any, *sources: Any, **kw: Any) -> Any:
        """A recording of endpoints of either family: the IPv4 engine's writer serves all."""
        return self.v4.record(path, *sources, **kw)

    def close(self) -> None:
        self.v4.close()
        if self.v6 is not None:
            self.v6.close()


def offer_is_ipv6(body: bytes) -> bool:
    """Whether an SDP offer's first audio stream is on IPv6 (which endpoint to answer from)."""
    try:
        sdp = parse_sdp(body)
    except SdpError:
        return False
    for m in sdp.media:
        if m.media.lower() == "audio" and m.port:
            conn = sdp.connection_of(m)
            return conn is not None and conn.addrtype.upper() == "IP6"
    return False


@dataclass(frozen=True, slots=True)
class MediaConfig:
    advertise: str
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    telephone_event: int = 101
    advertise6: str | None = None


class LegMedia:
    """One leg's endpoint and its negotiation state."""

    def __init__(self, engine: MediaEngineLike, cfg: MediaConfig, session_id: int,
                 ipv6: bool = False) -> None:
        self.cfg = cfg
        self.address = cfg.advertise
        if ipv6 and isinstance(engine, DualStackMedia) and cfg.advertise6:
            self.endpoint: MediaEndpointLike = engine.allocate(ipv6=True)
            self.address = cfg.advertise6
        else:
            self.endpoint = engine.allocate()
        self.session_id = session_id
        self.local: SessionDescription | None = None
        self.negotiated: Negotiated | None = None
        self._pending_offer: SessionDescription | None = None
        self.closed = False

    @property
    def has_dtmf_events(self) -> bool:
        return self.negotiated is not None and self.negotiated.telephone_event_pt is not None

    # the remote offered -------------------------------------------------------------------
    def answer(self, offer_body: bytes, direction: str = "sendrecv") -> bytes | None:
        """Our answer to a remote offer (None: nothing acceptable, answer 488)."""
        try:
            offer = parse_sdp(offer_body)
        except SdpError:
            return None
        result = answer_offer(
            offer, address=self.address, port=self.endpoint.local_port,
            codecs=list(self.cfg.codecs), telephone_event=True, local_direction=direction,
            session_id=self.session_id, version=1)
        if result.sdp is None or result.negotiated is None:
            return None
        # later answers in the dialog keep our o= line, versioned only on change (§8)
        sdp = result.sdp if self.local is None else revise(self.local, result.sdp)
        self.local = sdp
        self._apply(result.negotiated)
        return sdp.serialize()

    # we offer -----------------------------------------------------------------------------
    def offer(self, direction: str = "sendrecv") -> bytes:
        sdp = make_offer(address=self.address, port=self.endpoint.local_port,
                         codecs=list(self.cfg.codecs),
                         telephone_event_pt=self.cfg.telephone_event, direction=direction,
                         session_id=self.session_id, version=1)
        if self.local is not None:
            sdp = revise(self.local, sdp)
        self._pending_offer = sdp
        self.local = sdp
        return sdp.serialize()

    def accept_answer(self, answer_body: bytes) -> bool:
        """The answer to our offer; False if it is unusable (the leg should be ended)."""
        if self._pending_offer is None:
            return False
        try:
            negotiated = process_answer(self._pending_offer, parse_sdp(answer_body))
        except SdpError:
            return False
        self._pending_offer = None
        self._apply(negotiated)
        return True

    def _apply(self, n: Negotiated) -> None:
        self.negotiated = n
        codec = Codec.PCMA if n.codec.upper() == "PCMA" else Codec.PCMU
        remote = (n.remote_address, n.remote_port) if n.remote_port else None
        rtcp = (n.remote_rtcp_address, n.remote_rtcp_port) if n.remote_rtcp_port else None
        self.endpoint.configure(remote, codec, n.payload_type, n.telephone_event_pt,
                                n.direction, recv_pt=n.recv_payload_type,
                                recv_te_pt=n.recv_telephone_event_pt, rtcp=rtcp)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.endpoint.close()


def melody(name: str, notes: list[tuple[float, int]], level: float = 0.2) -> Prompt:
    """Music on hold without a file: notes (Hz, ms; 0 Hz = rest) with soft attack/decay."""
    rate = 8000
    pcm = bytearray()
    for freq, ms in notes:
        n = int(rate * ms / 1000)
        fade = max(1, min(n // 4, 400))
        for i in range(n):
            env = min(1.0, i / fade, (n - i) / fade)
            v = 0.0 if freq <= 0 else math.sin(2 * math.pi * freq * i / rate) + 0.3 * math.sin(
                4 * math.pi * freq * i / rate)
            pcm += struct.pack("<h", int(32767 * level * env * v / 1.3))
    return Prompt(bytes(pcm), name)


def tone(name: str, freqs: tuple[float, ...], on_ms: int, off_ms: int, repeat: int = 1,
         level: float = 0.25) -> Prompt:
    """A synthetic tone as a prompt: `repeat` times `on_ms` of the summed sines, `off_ms`
    of silence."""
    rate = 8000
    on = int(rate * on_ms / 1000)
    off = int(rate * off_ms / 1000)
    amp = 32767 * level / max(1, len(freqs))
    samples = [
        int(sum(amp * math.sin(2 * math.pi * f * i / rate) for f in freqs)) for i in range(on)
    ]
    burst = struct.pack(f"<{on}h", *samples) + bytes(2 * off)
    return Prompt(burst * repeat, name)
