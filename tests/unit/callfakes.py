"""Doubles for running calls through `acd.engine.Engine` without sockets, RTP or real time.

`FakeMediaEngine` hands out `FakeEndpoint`s that record what call control asks of them
(configure, play, stop_play, bridge, unbridge, record, close) and refuse use after close as
the real endpoint does; a test ends a prompt with `finish_prompt()` and presses a key with
`dtmf()`. `CallRig` is the enginefakes `Rig` with that media engine and a wall clock the test
chooses. `Phone` is a UA that places calls to the engine (`OutCall`) and answers the calls
the engine places to it (`InCall`), each reading only the messages addressed to it.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from acd.config import Config, load_config_text
from acd.engine import Engine
from acd.events import EventBus
from media.g711 import Codec
from sip.builder import IdSource, make_response
from sip.message import Request, Response
from sip.timers import Timers
from sip.transaction import Address

from .enginefakes import (
    DEMO_CONFIG,
    TRUNK_SOURCE,
    UA,
    FakeClock,
    RecordingNetwork,
    Rig,
    Sent,
    demo_config,
    demo_text,
)

__all__ = [
    "CallRig", "FakeEndpoint", "FakeMediaEngine", "FakeRecorder", "InCall", "OutCall", "Phone",
    "config_from", "sdp", "wall_at",
]


# -- media --------------------------------------------------------------------------------


class FakeRecorder:
    def __init__(self, path: Any, on_error: Callable[[BaseException], None] | None,
                 tap: Callable[[bytes, str], None] | None) -> None:
        self.path = Path(path)
        self.on_error = on_error
        self.tap = tap
        self.stopped = False
        self.duration = 0.0  # what stop() reports; the test sets it

    def stop(self) -> float:
        self.stopped = True
        return self.duration


@dataclass(frozen=True)
class Configured:
    remote: tuple[str, int] | None
    codec: Codec
    pt: int
    te_pt: int | None
    direction: str
    recv_pt: int | None
    recv_te_pt: int | None
    rtcp: tuple[str, int] | None


def prompt_name(prompt: Any) -> str:
    """'welcome' for a prompt loaded from .../welcome.wav, 'beep' for a synthesised tone."""
    return Path(getattr(prompt, "name", str(prompt))).stem


class FakeEndpoint:
    """One leg's RTP endpoint, recording every call made on it."""

    def __init__(self, engine: FakeMediaEngine, port: int) -> None:
        self.engine = engine
        self.local_port = port
        self.on_dtmf: Callable[[str, str], None] | None = None
        self.ops: list[tuple[Any, ...]] = []
        self.configured: Configured | None = None
        self.playing: list[str] | None = None
        self.loop = False
        self._on_done: Callable[[], None] | None = None
        self.bridged_to: FakeEndpoint | None = None
        self.recorders: list[FakeRecorder] = []
        self.closed = False

    def __repr__(self) -> str:
        return f"<FakeEndpoint :{self.local_port}{' closed' if self.closed else ''}>"

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError(f"media endpoint on port {self.local_port} is closed")

    # the MediaEndpointLike surface
    def configure(self, remote: tuple[str, int] | None, codec: Codec, pt: int,
                  te_pt: int | None, direction: str, *, recv_pt: int | None = None,
                  recv_te_pt: int | None = None, rtcp: tuple[str, int] | None = None) -> None:
        self._check_open()
        self.configured = Configured(remote, Codec(codec), pt, te_pt, direction, recv_pt,
                                     recv_te_pt, rtcp)
        self.ops.append(("configure", self.configured))

    def play(self, prompts: Any, loop: bool = False, on_done: Any = None) -> None:
        self._check_open()
        items = list(prompts) if isinstance(prompts, list | tuple) else [prompts]
        names = [prompt_name(p) for p in items]
        self.ops.append(("play", tuple(names)))
        # like the real one: a new programme replaces the old, whose on_done never runs
        self.playing, self.loop, self._on_done = names, loop, on_done

    def stop_play(self) -> None:
        self.ops.append(("stop_play",))
        self.playing, self._on_done = None, None

    def bridge(self, other: FakeEndpoint) -> None:
        self._check_open()
        other._check_open()
        if other is self:
            raise ValueError("cannot bridge an endpoint to itself")
        self.ops.append(("bridge", other.local_port))
        self.unbridge()
        other.unbridge()
        self.bridged_to, other.bridged_to = other, self

    def unbridge(self) -> None:
        peer = self.bridged_to
        if peer is not None:
            self.ops.append(("unbridge",))
            self.bridged_to = peer.bridged_to = None

    def record(self, path: Any, on_error: Any = None, tap: Any = None) -> FakeRecorder:
        self._check_open()
        rec = FakeRecorder(path, on_error, tap)
        self.recorders.append(rec)
        self.ops.append(("record", rec.path))
        return rec

    def close(self) -> None:
        if self.closed:
            return
        self.unbridge()
        self.ops.append(("close",))
        self.playing = self._on_done = self.on_dtmf = None
        self.closed = True

    # what a test does to it
    def finish_prompt(self) -> None:
        """The programme playing ran to its end: on_done, as the real ticker would."""
        assert self.playing is not None, f"{self} is not playing"
        assert not self.loop, "a looping programme never finishes"
        done, self.playing, self._on_done = self._on_done, None, None
        if done is not None:
            done()

    def dtmf(self, digit: str, method: str = "rfc4733") -> None:
        """A digit arrived in the media (RFC 4733 or in-band)."""
        if self.on_dtmf is not None:  # like the real one: nobody listening, nothing happens
            self.on_dtmf(digit, method)

    def played(self) -> list[tuple[str, ...]]:
        return [op[1] for op in self.ops if op[0] == "play"]

    def count(self, op: str) -> int:
        return sum(1 for o in self.ops if o[0] == op)


class FakeMediaEngine:
    def __init__(self, first_port: int = 20000) -> None:
        self.allocated: list[FakeEndpoint] = []
        self._ports = itertools.count(first_port, 2)
        self.exhausted = False  # allocate() raises OSError, as a full port range does

    def allocate(self) -> FakeEndpoint:
        if self.exhausted:
            raise OSError("no free RTP port")
        ep = FakeEndpoint(self, next(self._ports))
        self.allocated.append(ep)
        return ep

    @property
    def open_endpoints(self) -> list[FakeEndpoint]:
        return [ep for ep in self.allocated if not ep.closed]


# -- the rig --------------------------------------------------------------------------------


def wall_at(iso: str) -> float:
    """Epoch seconds of an ISO time with its offset, e.g. '2026-03-04T10:00:00+07:00'."""
    dt = datetime.fromisoformat(iso)
    assert dt.utcoffset() is not None, "give the offset: the schedule's zone matters"
    return dt.timestamp()


# A Wednesday, 10:00 in Asia/Ho_Chi_Minh: the demo's office schedule is open.
OFFICE_OPEN = wall_at("2026-03-04T10:00:00+07:00")


def config_from(text: str) -> Config:
    """A config text whose relative paths (prompts) resolve as the demo file's do."""
    return load_config_text(text, base_dir=DEMO_CONFIG.parent)


class CallRig(Rig):
    """The engine rig with a fake media engine and a chosen wall time."""

    def __init__(self, config: Config | str | None = None, *, wall: float = OFFICE_OPEN,
                 seed: int = 7, secret: bytes = b"x" * 32) -> None:
        # not Rig.__init__: its engine has no media, and a second engine would publish twice
        if config is None:
            config = demo_config()
        elif isinstance(config, str):
            config = config_from(config)
        self.clock = FakeClock(wall=wall)
        self.net = RecordingNetwork()
        self.timers = Timers()
        self.ops = []
        self.events = []
        self.media = FakeMediaEngine()
        rng = random.Random(seed)
        bus = EventBus(config.node_id, self.clock.wall)
        bus.subscribe(self.events.append)
        self.engine = Engine(config, clock=self.clock, network=self.net, timers=self.timers,
                             ids=IdSource(rng.randbytes), bus=bus,
                             store_submit=self.ops.append, secret=secret, media=self.media)

    def call_state(self) -> dict[str, Any]:
        """Whatever of a call could outlive it; empty when nothing does."""
        eng = self.engine
        state: dict[str, Any] = {
            "calls": dict(eng.calls.calls),
            "sessions": dict(eng.sessions),
            "endpoints": self.media.open_endpoints,
            "ivr prompt tokens": dict(eng.calls.ivr._prompt_token),
        }
        queues = getattr(eng, "queues", None)
        if queues is not None:  # the ACD's per-call bookkeeping
            state["queue callers"] = dict(queues.callers)
            state["queue offers"] = dict(queues.offers)
            state["queue calls"] = dict(queues.agent_calls)
            state["agents busy elsewhere"] = {a: r for a, r in queues._external.items() if r}
        return {k: v for k, v in state.items() if v}


# -- SDP ------------------------------------------------------------------------------------

_RTPMAP = {0: "PCMU/8000", 8: "PCMA/8000", 18: "G729/8000", 9: "G722/8000", 3: "GSM/8000"}


def sdp(ip: str = "127.0.0.1", port: int = 30000, pts: Sequence[int] = (8, 0, 96),
        direction: str = "sendrecv", te_pt: int = 96, version: int = 1) -> bytes:
    """An audio offer or answer; `te_pt` in `pts` is telephone-event."""
    lines = ["v=0", f"o=phone 4242 {version} IN IP4 {ip}", "s=-", f"c=IN IP4 {ip}", "t=0 0",
             f"m=audio {port} RTP/AVP {' '.join(map(str, pts))}"]
    for pt in pts:
        if pt == te_pt:
            lines += [f"a=rtpmap:{pt} telephone-event/8000", f"a=fmtp:{pt} 0-16"]
        elif pt in _RTPMAP:
            lines.append(f"a=rtpmap:{pt} {_RTPMAP[pt]}")
    lines.append(f"a={direction}")
    return ("\r\n".join(lines) + "\r\n").encode()


def sdp_fields(body: bytes) -> dict[str, Any]:
    """The parts of an SDP a test looks at: m= port and formats, rtpmaps, direction."""
    port, fmts, rtpmap, direction, conn = 0, [], {}, "sendrecv", ""
    for line in body.decode().splitlines():
        if line.startswith("m=audio "):
            parts = line.split()
            port, fmts = int(parts[1]), [int(p) for p in parts[3:]]
        elif line.startswith("a=rtpmap:"):
            pt, _, enc = line[9:].partition(" ")
            rtpmap[int(pt)] = enc
        elif line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"):
            direction = line[2:]
        elif line.startswith("c="):
            conn = line.split()[-1]
    return {"port": port, "formats": fmts, "rtpmap": rtpmap, "direction": direction,
            "address": conn}


# -- phones ---------------------------------------------------------------------------------

_n = itertools.count(1)


class Phone:
    """A phone (or a trunk) at its own address: places calls, answers calls, and reads only
    the messages the engine sent to it."""

    def __init__(self, rig: Rig, user: str = "1001", password: str | None = None, *,
                 ip: str = "127.0.0.1", port: int = 5070, rtp_port: int = 30000) -> None:
        self.rig = rig
        self.ua = UA(rig, user, password if password is not None else f"pass{user}", ip=ip,
                     port=port)
        self.rtp_port = rtp_port
        self._seen = len(rig.net.sent)

    @classmethod
    def trunk(cls, rig: Rig, caller: str = "0912345678") -> Phone:
        """The demo trunk's provider, presenting `caller` as the calling number."""
        return cls(rig, caller, "", ip=TRUNK_SOURCE[1], port=TRUNK_SOURCE[2], rtp_port=32000)

    @property
    def addr(self) -> Address:
        return self.ua.addr

    @property
    def user(self) -> str:
        return self.ua.user

    def register(self) -> None:
        resp = self.ua.register_authed()
        assert resp.status == 200, resp.status
        self.inbox()

    def inbox(self) -> list[Sent]:
        """Everything sent to this phone since the last look."""
        sent = self.rig.net.sent
        out = [s for s in sent[self._seen:] if s.addr == self.addr]
        self._seen = len(sent)
        return out

    def deliver(self, data: bytes) -> None:
        self.rig.engine.on_message(data, self.addr)

    def incoming(self) -> list[InCall]:
        """INVITEs the engine sent here since the last look (other messages are dropped)."""
        return [InCall(self, s.request) for s in self.inbox()
                if isinstance(s.msg, Request) and s.msg.method == "INVITE"]

    def call(self, number: str, *, body: bytes | None = None, auth: bool | None = None,
             headers: Sequence[tuple[str, str]] = ()) -> OutCall:
        c = OutCall(self, number, body=sdp(port=self.rtp_port) if body is None else body,
                    headers=headers)
        c.start(auth=self.ua.password != "" if auth is None else auth)
        return c


class OutCall:
    """A call a phone places to the engine (the engine is its UAS)."""

    def __init__(self, phone: Phone, number: str, *, body: bytes,
                 headers: Sequence[tuple[str, str]] = ()) -> None:
        n = next(_n)
        self.phone = phone
        self.number = number
        self.body = body
        self.headers = list(headers)
        self.call_id = f"out-{n}@{phone.addr[1]}"
        self.tag = f"oc{n}"
        self.cseq = 1
        self.branch = f"z9hG4bK-oc{n}-1"
        self.responses: list[Response] = []
        self.received: list[Request] = []  # requests the engine sent in this call
        self.to_tag: str | None = None
        self.remote_target = ""
        self._auth: str | None = None

    @property
    def ua(self) -> UA:
        return self.phone.ua

    @property
    def from_(self) -> str:
        return f"<sip:{self.ua.user}@{self.ua.domain}>;tag={self.tag}"

    @property
    def ruri(self) -> str:
        return f"sip:{self.number}@{self.ua.domain}"

    def _invite_bytes(self) -> bytes:
        h = [("Contact", self.ua.contact()), *self.headers]
        if self._auth is not None:
            h.append(("Proxy-Authorization", self._auth))
        return self.ua.request("INVITE", self.ruri, to=f"<{self.ruri}>", from_=self.from_,
                               call_id=self.call_id, cseq=self.cseq,
                               via=self.ua.via(self.branch), headers=h, body=self.body,
                               content_type="application/sdp" if self.body else None)

    def start(self, auth: bool) -> None:
        self.phone.deliver(self._invite_bytes())
        self.read()
        if auth:
            assert self.final is not None and self.final.status == 407, self.statuses
            self.ack_failure()
            self._auth = self.ua.answer(self.final, "INVITE", self.ruri)
            self.cseq += 1
            self.branch = f"{self.branch}-auth"
            self.responses.clear()
            self.to_tag = None
            self.phone.deliver(self._invite_bytes())
            self.read()

    def read(self) -> list[Sent]:
        """Take in what the engine sent to the phone; responses to the INVITE are kept."""
        got = self.phone.inbox()
        for s in got:
            if isinstance(s.msg, Request) and s.msg.call_id == self.call_id:
                self.received.append(s.msg)
            if isinstance(s.msg, Response) and s.msg.call_id == self.call_id \
                    and s.msg.cseq.method == "INVITE" and s.msg.cseq.seq == self.cseq:
                self.responses.append(s.msg)
                if s.msg.to.tag and self.to_tag is None and s.msg.status > 100:
                    self.to_tag = s.msg.to.tag
                contacts = s.msg.contacts if s.msg.status > 100 else []
                if contacts and contacts[0].uri is not None:
                    self.remote_target = str(contacts[0].uri)
        return got

    @property
    def statuses(self) -> list[int]:
        return [r.status for r in self.responses]

    @property
    def final(self) -> Response | None:
        finals = [r for r in self.responses if r.status >= 200]
        return finals[-1] if finals else None

    # requests from the caller --------------------------------------------------------------
    def in_dialog(self, method: str, *, body: bytes = b"", content_type: str | None = None,
                  cseq: int | None = None, headers: Sequence[tuple[str, str]] = ()) -> bytes:
        assert self.to_tag is not None, "no dialog yet"
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        return self.ua.request(method, self.remote_target or self.ruri,
                               to=f"<{self.ruri}>;tag={self.to_tag}", from_=self.from_,
                               call_id=self.call_id, cseq=cseq, headers=headers, body=body,
                               content_type=content_type if body else None)

    def ack(self, body: bytes = b"") -> None:
        """The ACK of the 2xx: a new branch, the INVITE's CSeq number."""
        self.phone.deliver(self.in_dialog("ACK", cseq=self.cseq, body=body,
                                          content_type="application/sdp" if body else None))
        self.read()

    def ack_failure(self) -> None:
        """The ACK of a non-2xx final: the INVITE's branch and Request-URI."""
        final = self.final
        assert final is not None
        self.phone.deliver(self.ua.request(
            "ACK", self.ruri, to=final.headers.get("to"), from_=self.from_,
            call_id=self.call_id, cseq=self.cseq, via=self.ua.via(self.branch)))
        self.read()

    def cancel(self) -> list[Sent]:
        self.phone.deliver(self.ua.request(
            "CANCEL", self.ruri, to=f"<{self.ruri}>", from_=self.from_, call_id=self.call_id,
            cseq=self.cseq, via=self.ua.via(self.branch)))
        return self.read()

    def send(self, method: str, **kw: Any) -> list[Response]:
        """An in-dialog request; the responses to it."""
        data = self.in_dialog(method, **kw)
        seq = self.cseq if kw.get("cseq") is None else kw["cseq"]
        self.phone.deliver(data)
        return [s.msg for s in self.read() if isinstance(s.msg, Response)
                and s.msg.cseq.method == method and s.msg.cseq.seq == seq]

    def bye(self) -> list[Response]:
        return self.send("BYE")

    def info(self, digit: str) -> list[Response]:
        return self.send("INFO", body=f"Signal={digit}\r\nDuration=160\r\n".encode(),
                         content_type="application/dtmf-relay")

    def reinvite(self, body: bytes) -> list[Response]:
        got = self.send("INVITE", body=body, content_type="application/sdp",
                        headers=[("Contact", self.ua.contact())])
        if any(200 <= r.status < 300 for r in got):
            self.phone.deliver(self.in_dialog("ACK", cseq=self.cseq))
            self.read()
        return got

    def answer_request(self, req: Request, status: int = 200) -> None:
        """Respond to a request the engine sent in this dialog (its BYE, say)."""
        self.phone.deliver(make_response(req, status).serialize())


class InCall:
    """An INVITE the engine sent to a phone (the phone is its UAS)."""

    def __init__(self, phone: Phone, invite: Request) -> None:
        self.phone = phone
        self.invite = invite
        self.tag = f"ic{next(_n)}"
        self.cseq = 0
        self.answered = False

    @property
    def offer(self) -> bytes:
        return self.invite.body

    def respond(self, status: int, *, body: bytes = b"", to: Request | None = None) -> None:
        req = to or self.invite
        resp = make_response(req, status, to_tag=self.tag)
        if req.method == "INVITE" and status > 100:
            h = resp.headers
            h.insert(len(h) - 1, "Contact", self.phone.ua.contact())
        if body:
            resp.set_body(body, "application/sdp")
        self.phone.deliver(resp.serialize())

    def ring(self) -> None:
        self.respond(180)

    def answer(self, body: bytes | None = None) -> None:
        self.respond(200, body=sdp(port=self.phone.rtp_port, pts=(0, 101), te_pt=101)
                     if body is None else body)
        self.answered = True

    def in_dialog(self, method: str) -> bytes:
        self.cseq += 1
        inv = self.invite
        contact = inv.contacts[0].uri
        return self.phone.ua.request(
            method, str(contact), to=inv.headers.get("from"),
            from_=f"{inv.headers.get('to')};tag={self.tag}", call_id=inv.call_id,
            cseq=self.cseq)

    def bye(self) -> None:
        self.phone.deliver(self.in_dialog("BYE"))

    def requests(self, sent: Sequence[Sent], method: str) -> list[Request]:
        return [s.msg for s in sent if isinstance(s.msg, Request) and s.msg.method == method
                and s.msg.call_id == self.invite.call_id]

    def handle(self, sent: Sequence[Sent]) -> None:
        """Answer what the engine sent for this call as a well-behaved phone: 200 to BYE;
        200 to CANCEL and 487 to the INVITE when it was not answered yet."""
        for req in self.requests(sent, "BYE"):
            self.respond(200, to=req)
        for req in self.requests(sent, "CANCEL"):
            self.respond(200, to=req)
            if not self.answered:
                self.respond(487)


def demo_with(*replacements: tuple[str, str]) -> str:
    """The demo config text with each (old, new) replaced; every old must be there."""
    text = demo_text()
    for old, new in replacements:
        assert old in text, f"not in the demo config: {old!r}"
        text = text.replace(old, new)
    return text
