"""In-memory doubles for running `acd.engine.Engine` without sockets or real time.

`Rig` wires an engine to a `FakeClock`, a `RecordingNetwork` and a seeded `IdSource`, and
collects the store operations and bus events it produces. `UA` is a tiny phone: it builds
REGISTER/OPTIONS/INVITE/CANCEL/ACK bytes, delivers them from its own address and answers
digest challenges with `sip.auth.build_authorization`, so a test reads like a call flow.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from acd.adapters.store import StoreOp
from acd.config import Config, load_config, load_config_text
from acd.engine import Engine
from acd.events import Event, EventBus
from sip.auth import build_authorization, choose_challenge, parse_auth_value
from sip.builder import IdSource
from sip.message import Request, Response
from sip.parser import parse_message
from sip.timers import Timers
from sip.transaction import Address

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "config" / "acd.yaml"
TRUNK_SOURCE: Address = ("udp", "127.0.0.1", 5080)

# Epoch and monotonic origins far from zero so that "time 0" bugs cannot pass by accident.
WALL0 = 1_700_000_000.0
NOW0 = 5_000.0


class FakeClock:
    """Monotonic `now()` and epoch `wall()` that move only when a test says so."""

    def __init__(self, now: float = NOW0, wall: float = WALL0) -> None:
        self._now = now
        self._wall = wall

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._wall

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds
        self._wall += seconds


@dataclass(frozen=True)
class Sent:
    data: bytes
    addr: Address
    msg: Request | Response

    @property
    def response(self) -> Response:
        assert isinstance(self.msg, Response), f"expected a response, got {self.msg!r}"
        return self.msg

    @property
    def request(self) -> Request:
        assert isinstance(self.msg, Request), f"expected a request, got {self.msg!r}"
        return self.msg


class RecordingNetwork:
    """Keeps everything the engine sends, parsed; a send that does not parse fails the test
    at once, because the engine must never emit bytes a peer could not read."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self._taken = 0

    def send(self, data: bytes, addr: Address) -> None:
        self.sent.append(Sent(data, addr, parse_message(data, stream=addr[0] != "udp")))

    def take(self) -> list[Sent]:
        """What was sent since the last take."""
        out = self.sent[self._taken:]
        self._taken = len(self.sent)
        return out


def demo_config() -> Config:
    return load_config(DEMO_CONFIG)


def demo_text() -> str:
    return DEMO_CONFIG.read_text()


BASE_TEXT = """\
node_id: test-node
sip:
  listen: [udp:127.0.0.1:5060, tcp:127.0.0.1:5060]
  domain: acd.local
  realm: acd.local
  user_agent: acd-engine
registrar:
  default_expires: 3600
  min_expires: 60
  max_expires: 7200
  qualify_interval: {qualify_interval}
security:
  nonce_lifetime: 300
  digest_algorithms: [{algorithms}]
  auth_ban: {{max_failures: {max_failures}, window: 60, ban_time: 600}}
  trusted_networks: [{trusted}]
accounts:
  - {{user: "1001", password: pass1001, max_contacts: {max_contacts}}}
  - {{user: "1002", password: pass1002}}
  - {{user: "2001", password: pass2001, allowed_networks: [10.1.0.0/16]}}
{trunks}
"""


def config_text(
    *,
    qualify_interval: int = 0,
    algorithms: str = "MD5",
    max_failures: int = 5,
    trusted: str = "192.0.2.0/24",
    trunks: str = "",
    max_contacts: int = 5,
) -> str:
    """A small config: 1001/1002 from anywhere, 2001 only from 10.1.0.0/16, no trunks unless
    given (so no background OPTIONS), qualify off unless asked for."""
    return BASE_TEXT.format(qualify_interval=qualify_interval, algorithms=algorithms,
                            max_failures=max_failures, trusted=trusted, trunks=trunks,
                            max_contacts=max_contacts)


class Rig:
    """One engine in memory, plus what it published."""

    def __init__(self, config: Config | str | None = None, *, seed: int = 7,
                 secret: bytes = b"x" * 32) -> None:
        if config is None:
            config = demo_config()
        elif isinstance(config, str):
            config = load_config_text(config)
        self.clock = FakeClock()
        self.net = RecordingNetwork()
        self.timers = Timers()
        self.ops: list[StoreOp] = []
        self.events: list[Event] = []
        rng = random.Random(seed)
        # subscribed before the engine exists: trunks publish their first state from __init__
        bus = EventBus(config.node_id, self.clock.wall)
        bus.subscribe(self.events.append)
        self.engine = Engine(config, clock=self.clock, network=self.net, timers=self.timers,
                             ids=IdSource(rng.randbytes), bus=bus,
                             store_submit=self.ops.append, secret=secret)

    def deliver(self, data: bytes, source: Address) -> list[Sent]:
        self.engine.on_message(data, source)
        return self.net.take()

    def advance(self, seconds: float) -> list[Sent]:
        """Move time on and run whatever timers fell due, in steps no coarser than T1 so that
        retransmission schedules play out as they would in real time."""
        end = self.clock.now() + seconds
        step = 0.25
        while self.clock.now() < end:
            d = min(step, end - self.clock.now())
            self.clock.advance(d)
            self.timers.run_due(self.clock.now())
        return self.net.take()

    def tick(self) -> list[Sent]:
        self.engine.tick()
        return self.net.take()

    def events_of(self, type_: str) -> list[Event]:
        return [e for e in self.events if e.type == type_]

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.engine.metrics.registry.get_sample_value(name, labels or {})


_ids = itertools.count(1)


class UA:
    """A phone at (transport, ip, port) talking to the rig's engine."""

    def __init__(self, rig: Rig, user: str = "1001", password: str = "pass1001", *,
                 ip: str = "127.0.0.1", port: int = 5062, transport: str = "udp",
                 domain: str = "acd.local") -> None:
        self.rig = rig
        self.user, self.password = user, password
        self.addr: Address = (transport, ip, port)
        self.domain = domain
        n = next(_ids)
        self.call_id = f"reg-{n}-{user}@{ip}"
        self.tag = f"ft{n}"
        self.cseq = 0
        self.nc = 0

    # building ----------------------------------------------------------------------------
    def via(self, branch: str | None = None, *, host: str | None = None,
            params: str = ";rport") -> str:
        branch = branch or f"z9hG4bK-{next(_ids)}"
        return (f"SIP/2.0/{self.addr[0].upper()} {host or self.host}:{self.addr[2]}"
                f";branch={branch}{params}")

    @property
    def host(self) -> str:
        ip = self.addr[1]
        return f"[{ip}]" if ":" in ip else ip

    def request(
        self,
        method: str,
        ruri: str,
        *,
        to: str | None = None,
        from_: str | None = None,
        call_id: str | None = None,
        cseq: int | None = None,
        via: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> bytes:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: {via or self.via()}",
            "Max-Forwards: 70",
            f"From: {from_ or f'<sip:{self.user}@{self.domain}>;tag={self.tag}'}",
            f"To: {to or f'<sip:{self.user}@{self.domain}>'}",
            f"Call-ID: {call_id or self.call_id}",
            f"CSeq: {cseq} {method}",
        ]
        lines += [f"{name}: {value}" for name, value in headers]
        if content_type is not None:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def contact(self) -> str:
        return f"<sip:{self.user}@{self.host}:{self.addr[2]}>"

    def register(self, *, expires: int | None = 3600, contact: str | None = None,
                 authorization: str | None = None, to: str | None = None,
                 cseq: int | None = None, headers: Sequence[tuple[str, str]] = ()) -> bytes:
        """REGISTER for this UA's AOR; `contact=""` leaves Contact out (a query)."""
        h: list[tuple[str, str]] = []
        if contact != "":
            h.append(("Contact", contact if contact is not None else self.contact()))
        if expires is not None:
            h.append(("Expires", str(expires)))
        if authorization is not None:
            h.append(("Authorization", authorization))
        h += headers
        return self.request("REGISTER", f"sip:{self.domain}", to=to, cseq=cseq, headers=h)

    def invite(self, number: str, *, auth: str | None = None,
               headers: Sequence[tuple[str, str]] = (), body: bytes = b"",
               content_type: str | None = None, call_id: str | None = None,
               cseq: int | None = None, via: str | None = None) -> bytes:
        h = [("Contact", self.contact()), *headers]
        if auth is not None:
            h.append(("Proxy-Authorization", auth))
        return self.request("INVITE", f"sip:{number}@{self.domain}",
                            to=f"<sip:{number}@{self.domain}>", headers=h, body=body,
                            content_type=content_type, call_id=call_id, cseq=cseq, via=via)

    # answering challenges ----------------------------------------------------------------
    def answer(self, challenge: Response, method: str, uri: str, *,
               algorithm: str | None = None, password: str | None = None,
               username: str | None = None, nc: int | None = None) -> str:
        """An Authorization value for the challenge in `challenge` (the one with
        `algorithm`, or the strongest offered)."""
        hname = "proxy-authenticate" if challenge.status == 407 else "www-authenticate"
        values = challenge.headers.get_all(hname)
        assert values, f"no {hname} in {challenge.status}"
        if algorithm is None:
            params = choose_challenge(values)
        else:
            found = [p for _, p in map(parse_auth_value, values) if p.get("algorithm") == algorithm]
            assert found, f"no {algorithm} challenge in {values}"
            params = found[0]
        if nc is None:
            self.nc += 1
            nc = self.nc
        return build_authorization(params, method, uri, username or self.user,
                                   password if password is not None else self.password,
                                   f"cn{next(_ids)}", nc)

    # delivering --------------------------------------------------------------------------
    def send(self, data: bytes) -> list[Response]:
        """Deliver from this UA's address; the responses that came back to it."""
        out = self.rig.deliver(data, self.addr)
        return [s.response for s in out if s.addr == self.addr and isinstance(s.msg, Response)]

    def send_one(self, data: bytes) -> Response:
        got = self.send(data)
        assert len(got) == 1, f"expected one response, got {[r.status for r in got]}"
        return got[0]

    def register_authed(self, *, expires: int | None = 3600, contact: str | None = None,
                        algorithm: str | None = None, to: str | None = None) -> Response:
        """REGISTER, take the 401, answer it: the final response."""
        first = self.send_one(self.register(expires=expires, contact=contact, to=to))
        assert first.status == 401, first.status
        auth = self.answer(first, "REGISTER", f"sip:{self.domain}", algorithm=algorithm)
        return self.send_one(self.register(expires=expires, contact=contact, authorization=auth,
                                           to=to))


def statuses(responses: Iterable[Response]) -> list[int]:
    return [r.status for r in responses]


_MASKS = (
    (re.compile(rb'nonce="[^"]*"'), b'nonce="N"'),
    (re.compile(rb";tag=[0-9a-f]+"), b";tag=T"),
    (re.compile(rb"branch=[^;\r\n]*"), b"branch=B"),
)


def mask(data: bytes) -> bytes:
    """Bytes with nonce, tags and branches blanked out, for comparing two responses."""
    for pattern, repl in _MASKS:
        data = pattern.sub(repl, data)
    return data
