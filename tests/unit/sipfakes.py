"""Shared fakes for the SIP core tests: a fake clock driving a `Timers` heap, a network that
records what is sent and when, and a transaction user / client owner that record callbacks.

The clock only moves when a test moves it, and `FakeClock.advance_to` stops at every timer
deadline on the way, so a test sees each retransmission at its exact scheduled instant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sip.message import Request, Response
from sip.parser import parse_message
from sip.timers import Timers
from sip.transaction import (
    Address,
    ClientTransaction,
    ServerTransaction,
    TimerConfig,
    TransactionLayer,
)

UDP_PEER: Address = ("udp", "192.0.2.10", 5062)
TCP_PEER: Address = ("tcp", "192.0.2.10", 40001)


class FakeClock:
    """Monotonic seconds that advance only on request, firing due timers at their deadline."""

    def __init__(self, timers: Timers, start: float = 0.0) -> None:
        self.now = start
        self.timers = timers

    def __call__(self) -> float:
        return self.now

    def advance_to(self, when: float) -> None:
        """Run every timer due up to `when`, each with the clock set to its own deadline."""
        if when < self.now:
            raise ValueError("the clock never goes back")
        while True:
            deadline = self.timers.next_deadline()
            if deadline is None or deadline > when:
                break
            self.now = max(self.now, deadline)
            self.timers.run_due(self.now)
        self.now = when

    def advance(self, seconds: float) -> None:
        self.advance_to(self.now + seconds)


@dataclass
class Sent:
    at: float
    data: bytes
    addr: Address

    @property
    def message(self) -> Request | Response:
        return parse_message(self.data)


class RecordingNetwork:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.sent: list[Sent] = []

    def send(self, data: bytes, addr: Address) -> None:
        self.sent.append(Sent(self.clock(), data, addr))

    def times(self) -> list[float]:
        return [s.at for s in self.sent]

    def messages(self) -> list[Request | Response]:
        return [s.message for s in self.sent]

    def clear(self) -> None:
        self.sent.clear()


@dataclass
class RecordingTU:
    """Transaction user: records every callback; `on_new` may answer requests at once."""

    clock: Callable[[], float]
    requests: list[tuple[float, ServerTransaction, Request]] = field(default_factory=list)
    acks: list[tuple[float, Request, Address]] = field(default_factory=list)
    strays: list[tuple[float, Response, Address]] = field(default_factory=list)
    timeouts: list[tuple[float, ServerTransaction]] = field(default_factory=list)
    on_new: Callable[[ServerTransaction, Request], None] | None = None

    def on_request(self, txn: ServerTransaction, request: Request) -> None:
        self.requests.append((self.clock(), txn, request))
        if self.on_new is not None:
            self.on_new(txn, request)

    def on_ack(self, request: Request, source: Address) -> None:
        self.acks.append((self.clock(), request, source))

    def on_stray_response(self, response: Response, source: Address) -> None:
        self.strays.append((self.clock(), response, source))

    def on_server_timeout(self, txn: ServerTransaction) -> None:
        self.timeouts.append((self.clock(), txn))


@dataclass
class RecordingOwner:
    clock: Callable[[], float]
    responses: list[tuple[float, Response]] = field(default_factory=list)
    timeouts: list[float] = field(default_factory=list)

    def on_response(self, txn: ClientTransaction, response: Response) -> None:
        self.responses.append((self.clock(), response))

    def on_timeout(self, txn: ClientTransaction) -> None:
        self.timeouts.append(self.clock())

    @property
    def statuses(self) -> list[int]:
        return [r.status for _, r in self.responses]


class Harness:
    """A TransactionLayer wired to the fakes above."""

    def __init__(self, config: TimerConfig | None = None, *, force_rport: bool = True,
                 start: float = 0.0) -> None:
        self.timers = Timers()
        self.clock = FakeClock(self.timers, start)
        self.net = RecordingNetwork(self.clock)
        self.tu = RecordingTU(self.clock)
        self._tags = 0
        self.layer = TransactionLayer(
            self.net, self.tu, self.timers, config or TimerConfig(),
            clock=self.clock, tag_source=self._next_tag, force_rport=force_rport,
        )

    def _next_tag(self) -> str:
        self._tags += 1
        return f"srvtag{self._tags}"

    def owner(self) -> RecordingOwner:
        return RecordingOwner(self.clock)

    def receive(self, data: bytes | Request | Response, source: Address = UDP_PEER) -> None:
        """Feed the layer a message as the engine would: parsed from its wire form."""
        raw = data if isinstance(data, bytes) else data.serialize()
        msg = parse_message(raw)
        if isinstance(msg, Request):
            self.layer.receive_request(msg, source)
        else:
            self.layer.receive_response(msg, source)
