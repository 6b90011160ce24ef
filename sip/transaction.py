"""The transaction layer (RFC 3261 §17, with the RFC 6026 Accepted states).

Four state machines: InviteClientTransaction, NonInviteClientTransaction,
InviteServerTransaction, NonInviteServerTransaction. Their timers (A..M) are derived from
`TimerConfig` (T1, T2, T4) and scheduled on a `Timers` heap; the network is any object with
`send(data, address)`. `TransactionLayer` matches incoming messages to transactions
(§17.1.3, §17.2.3, with RFC 2543 fallback), absorbs retransmissions, detects merged requests
(§8.2.2.2, 482) and hands new requests to the transaction user (TU). Requests the TU can
answer without any state change (a REGISTER without credentials only ever gets a challenge
or an error) may be handed over as a StatelessServerTransaction (§8.2.7): nothing is kept,
and a retransmission is simply answered again.

Addresses are `(transport, ip, port)` tuples; "tcp"/"tls" are reliable, so the timers that
only exist to retransmit over UDP are not started and the wait states last zero seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from sip.builder import MAGIC_COOKIE, make_ack_for_error, make_response
from sip.message import Request, Response
from sip.timers import TimerHandle, Timers

__all__ = [
    "Address",
    "ClientOwner",
    "ClientTransaction",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "Network",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "ServerTransaction",
    "State",
    "StatelessServerTransaction",
    "TimerConfig",
    "TransactionLayer",
    "TransactionUser",
]

Address = tuple[str, str, int]


def is_reliable(addr: Address) -> bool:
    return addr[0] != "udp"


@dataclass(frozen=True, slots=True)
class TimerConfig:
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def b(self) -> float:  # also F, H, J, L, M
        return 64 * self.t1

    @property
    def d(self) -> float:
        return max(32.0, 64 * self.t1)


class State(Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class Network(Protocol):
    def send(self, data: bytes, addr: Address) -> None: ...


class TransactionUser(Protocol):
    def on_request(self, txn: ServerTransaction, request: Request) -> None: ...

    def on_ack(self, request: Request, source: Address) -> None: ...

    def on_stray_response(self, response: Response, source: Address) -> None: ...

    def on_server_timeout(self, txn: ServerTransaction) -> None: ...


class ClientOwner(Protocol):
    """Whoever sent a request through a client transaction."""

    def on_response(self, txn: ClientTransaction, response: Response) -> None: ...

    def on_timeout(self, txn: ClientTransaction) -> None: ...


# --------------------------------------------------------------------------- server side


class ServerTransaction:
    __slots__ = ("_timers", "_to_tag", "app", "key", "last_response", "layer", "merge_key",
                 "request", "source", "state", "target", "wire")

    def __init__(self, layer: TransactionLayer, key: tuple[str, ...], request: Request,
                 source: Address) -> None:
        self.layer = layer
        self.key = key
        self.request = request
        self.source = source
        self.state = State.TRYING
        self.last_response: Response | None = None
        self.wire: bytes | None = None  # last response as sent, for retransmissions
        self._timers: list[TimerHandle] = []
        self.merge_key: tuple[str, str, int, str] | None = None
        self._to_tag: str | None = None
        self.target: Address | None = None  # where responses go, fixed once completed
        self.app: object = None  # the transaction user's attachment (e.g. its INVITE session)

    @property
    def to_tag(self) -> str:
        """The To tag of our responses when the request had none (stable across them)."""
        if self._to_tag is None:
            self._to_tag = self.request.to.tag or self.layer.new_tag()
        return self._to_tag

    @to_tag.setter
    def to_tag(self, tag: str) -> None:
        self._to_tag = tag

    @property
    def reliable(self) -> bool:
        return is_reliable(self.source)

    def _send(self, response: Response) -> None:
        self.last_response = response
        self.wire = response.serialize()
        self.layer.send_response_bytes(self.wire, self)

    def _resend(self) -> None:
        if self.wire is not None:
            self.layer.send_response_bytes(self.wire, self)

    def _after(self, delay: float, fn: Callable[[], None]) -> None:
        layer = self.layer
        self._timers.append(layer.timers.call_at(layer.now + delay, fn))

    def _cancel_timers(self) -> None:
        for t in self._timers:
            t.cancel()
        self._timers.clear()

    def _terminate(self) -> None:
        if self.state is State.TERMINATED:
            return
        self.state = State.TERMINATED
        self._cancel_timers()
        self.layer._remove_server(self)

    def respond(self, response: Response) -> None:
        raise NotImplementedError

    def receive(self, request: Request) -> None:
        """A retransmission (or ACK) that matched this transaction."""
        raise NotImplementedError

    def make_response(self, status: int, reason: str | None = None) -> Response:
        return make_response(self.request, status, reason, to_tag=self.to_tag,
                             server=self.layer.server_header)


class NonInviteServerTransaction(ServerTransaction):
    __slots__ = ()

    def respond(self, response: Response) -> None:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return  # the TU answered twice: the first final response stands
        self._send(response)
        if response.status < 200:
            self.state = State.PROCEEDING
            return
        self.state = State.COMPLETED
        self.layer._completed(self)
        if self.reliable:
            self._terminate()
        else:
            # For the 64*T1 of Timer J only the response bytes and their destination are
            # needed; letting the request and response objects go keeps a busy registrar's
            # memory (and the garbage collector's work) proportional to its bindings.
            self.target = self.layer.response_target(self)
            self.request = None  # type: ignore[assignment]
            self.last_response = None
            self._after(self.layer.config.b, self._terminate)  # Timer J

    def receive(self, request: Request) -> None:
        if self.state in (State.PROCEEDING, State.COMPLETED):
            self._resend()


class StatelessServerTransaction(ServerTransaction):
    """A non-INVITE request answered without transaction state (§8.2.7 stateless UAS).

    Registrars challenge this way (Kamailio and OpenSIPS send their 401s statelessly):
    the first REGISTER of every registration then costs no table entry, no Timer J and no
    memory for the 64*T1 the transaction would otherwise be kept. Only for requests whose
    answer changes nothing: a retransmission gets a freshly computed answer."""

    __slots__ = ()

    def __init__(self, layer: TransactionLayer, request: Request, source: Address) -> None:
        super().__init__(layer, (), request, source)

    def respond(self, response: Response) -> None:
        if self.state is State.TERMINATED or response.status < 200:
            return  # one final answer; a stateless UAS sends no provisional ones (§8.2.7)
        self.state = State.TERMINATED
        self.layer.send_response_bytes(response.serialize(), self)

    def receive(self, request: Request) -> None:  # never matched: it is in no table
        pass


class InviteServerTransaction(ServerTransaction):
    __slots__ = ("_g_interval",)

    def __init__(self, layer: TransactionLayer, key: tuple[str, ...], request: Request,
                 source: Address) -> None:
        super().__init__(layer, key, request, source)
        self.state = State.PROCEEDING
        self._g_interval = layer.config.t1

    def respond(self, response: Response) -> None:
        status = response.status
        if self.state is State.PROCEEDING:
            self._send(response)
            if status < 200:
                return
            self.layer._completed(self)
            if status < 300:
                self.state = State.ACCEPTED
                self._after(self.layer.config.b, self._terminate)  # Timer L
                return
            self.state = State.COMPLETED
            if not self.reliable:
                self._after(self._g_interval, self._timer_g)
            self._after(self.layer.config.b, self._timer_h)
        elif self.state is State.ACCEPTED and 200 <= status < 300:
            self._send(response)  # 2xx retransmission driven by the TU (RFC 6026 §7.1)

    def _timer_g(self) -> None:
        if self.state is not State.COMPLETED:
            return
        self._resend()
        self._g_interval = min(2 * self._g_interval, self.layer.config.t2)
        self._after(self._g_interval, self._timer_g)

    def _timer_h(self) -> None:
        if self.state is State.COMPLETED:
            self._terminate()
            self.layer.tu.on_server_timeout(self)

    def receive(self, request: Request) -> None:
        if request.method == "ACK":
            if self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                self._cancel_timers()
                if self.reliable:
                    self._terminate()
                else:
                    self._after(self.layer.config.t4, self._terminate)  # Timer I
            elif self.state is State.ACCEPTED:
                self.layer.tu.on_ack(request, self.source)
            return
        if self.state in (State.PROCEEDING, State.COMPLETED):
            self._resend()


# --------------------------------------------------------------------------- client side


class ClientTransaction:
    __slots__ = ("_timers", "key", "layer", "owner", "request", "state", "target", "wire")

    def __init__(self, layer: TransactionLayer, request: Request, target: Address,
                 owner: ClientOwner) -> None:
        self.layer = layer
        self.request = request
        self.target = target
        self.owner = owner
        self.key = (request.top_via.branch or "", request.cseq.method)
        self.wire = request.serialize()
        self.state = State.TRYING
        self._timers: list[TimerHandle] = []

    @property
    def reliable(self) -> bool:
        return is_reliable(self.target)

    def _after(self, delay: float, fn: Callable[[], None]) -> TimerHandle:
        layer = self.layer
        h = layer.timers.call_at(layer.now + delay, fn)
        self._timers.append(h)
        return h

    def _cancel_timers(self) -> None:
        for t in self._timers:
            t.cancel()
        self._timers.clear()

    def _terminate(self) -> None:
        if self.state is State.TERMINATED:
            return
        self.state = State.TERMINATED
        self._cancel_timers()
        self.layer._remove_client(self)

    def _timeout(self) -> None:
        self._terminate()
        self.owner.on_timeout(self)

    def start(self) -> None:
        raise NotImplementedError

    def receive(self, response: Response) -> None:
        raise NotImplementedError

    def transport_error(self) -> None:
        if self.state in (State.CALLING, State.TRYING, State.PROCEEDING):
            self._timeout()


class NonInviteClientTransaction(ClientTransaction):
    __slots__ = ("_e_interval", "_timer_e_handle")

    def start(self) -> None:
        self.state = State.TRYING
        self.layer.network.send(self.wire, self.target)
        if not self.reliable:
            self._e_interval = self.layer.config.t1
            self._timer_e_handle = self._after(self._e_interval, self._timer_e)
        self._after(self.layer.config.b, self._timer_f)

    def _timer_e(self) -> None:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return
        self.layer.network.send(self.wire, self.target)
        cfg = self.layer.config
        if self.state is State.PROCEEDING:
            self._e_interval = cfg.t2
        else:
            self._e_interval = min(2 * self._e_interval, cfg.t2)
        self._timer_e_handle = self._after(self._e_interval, self._timer_e)

    def _timer_f(self) -> None:
        if self.state in (State.TRYING, State.PROCEEDING):
            self._timeout()

    def receive(self, response: Response) -> None:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return  # retransmitted final response, absorbed in Completed
        if response.status < 200:
            self.state = State.PROCEEDING
            self.owner.on_response(self, response)
            return
        self.state = State.COMPLETED
        self._cancel_timers()
        self.owner.on_response(self, response)
        if self.reliable:
            self._terminate()
        else:
            self._after(self.layer.config.t4, self._terminate)  # Timer K


class InviteClientTransaction(ClientTransaction):
    __slots__ = ("_a_interval", "_ack_wire")

    def start(self) -> None:
        self.state = State.CALLING
        self._ack_wire: bytes | None = None
        self.layer.network.send(self.wire, self.target)
        if not self.reliable:
            self._a_interval = self.layer.config.t1
            self._after(self._a_interval, self._timer_a)
        self._after(self.layer.config.b, self._timer_b)

    def _timer_a(self) -> None:
        if self.state is not State.CALLING:
            return
        self.layer.network.send(self.wire, self.target)
        self._a_interval *= 2
        self._after(self._a_interval, self._timer_a)

    def _timer_b(self) -> None:
        if self.state is State.CALLING:
            self._timeout()

    def receive(self, response: Response) -> None:
        status = response.status
        state = self.state
        if state in (State.CALLING, State.PROCEEDING):
            if status < 200:
                if state is State.CALLING:
                    self.state = State.PROCEEDING
                    self._cancel_timers()  # Timer B guards Calling only
                self.owner.on_response(self, response)
            elif status < 300:
                self.state = State.ACCEPTED
                self._cancel_timers()
                self._after(self.layer.config.b, self._terminate)  # Timer M
                self.owner.on_response(self, response)
            else:
                self.state = State.COMPLETED
                self._cancel_timers()
                self._ack_wire = make_ack_for_error(self.request, response).serialize()
                self.layer.network.send(self._ack_wire, self.target)
                self.owner.on_response(self, response)
                if self.reliable:
                    self._terminate()
                else:
                    self._after(self.layer.config.d, self._terminate)  # Timer D
        elif state is State.ACCEPTED:
            if 200 <= status < 300:
                self.owner.on_response(self, response)  # 2xx retransmission: TU re-ACKs
        elif state is State.COMPLETED and status >= 300 and self._ack_wire is not None:
            self.layer.network.send(self._ack_wire, self.target)


# --------------------------------------------------------------------------- the layer


def _sent_by(req: Request) -> tuple[str, int]:
    via = req.top_via
    return via.host.lower(), via.port or 5060


class TransactionLayer:
    """Matches messages to transactions and owns them until they terminate."""

    def __init__(
        self,
        network: Network,
        tu: TransactionUser,
        timers: Timers,
        config: TimerConfig = TimerConfig(),
        *,
        clock: Callable[[], float],
        tag_source: Callable[[], str],
        force_rport: bool = True,
        server_header: str | None = None,
    ) -> None:
        self.network = network
        self.tu = tu
        self.timers = timers
        self.config = config
        self._clock = clock
        self._tag_source = tag_source
        self.force_rport = force_rport
        self.server_header = server_header
        self.servers: dict[tuple[str, ...], ServerTransaction] = {}
        self.clients: dict[tuple[str, str], ClientTransaction] = {}
        # merge key -> the key of the transaction that holds it; the whole key, because
        # every RFC 2543 key starts with "2543" where RFC 3261 keys start with the branch
        self._merge: dict[tuple[str, str, int, str], tuple[str, ...]] = {}

    @property
    def now(self) -> float:
        return self._clock()

    # identifiers --------------------------------------------------------------------------
    @staticmethod
    def server_key(req: Request, method: str | None = None) -> tuple[str, ...]:
        if method is None:
            method = "INVITE" if req.method == "ACK" else req.method
        via = req.top_via
        branch = via.branch or ""
        if branch.startswith(MAGIC_COOKIE) and len(branch) > len(MAGIC_COOKIE):
            host, port = via.host.lower(), via.port or 5060
            # Request-URI, Call-ID and CSeq number are equal in every retransmission (and in
            # the ACK and CANCEL of an INVITE); keying on them too keeps a peer that reuses
            # branches (RFC 4475/5118 messages do) from having new requests taken for
            # retransmissions.
            return (branch, host, str(port), method, req.call_id, str(req.cseq.seq),
                    str(req.uri))
        # RFC 2543 matching (§17.2.3): Request-URI, tags, Call-ID, CSeq, top Via
        return ("2543", str(req.uri), req.from_.tag or "", req.call_id, str(req.cseq.seq),
                str(via), method)

    def new_tag(self) -> str:
        return self._tag_source()

    # incoming ----------------------------------------------------------------------------
    def receive_request(self, req: Request, source: Address) -> None:
        key = self.server_key(req)
        txn = self.servers.get(key)
        if txn is not None:
            txn.receive(req)
            return
        if req.method == "ACK":
            self.tu.on_ack(req, source)  # ACK for a 2xx: belongs to the dialog, not to us
            return
        cls = InviteServerTransaction if req.method == "INVITE" else NonInviteServerTransaction
        txn = cls(self, key, req, source)
        if req.to.tag is None and req.method != "CANCEL":
            mkey = (req.call_id, req.from_.tag or "", req.cseq.seq, req.method)
            holder = self._merge.get(mkey)
            if holder is not None and holder != key:
                # §8.2.2.2: the same request reached us by two paths
                self.servers[key] = txn
                txn.respond(txn.make_response(482))
                return
            self._merge[mkey] = key
            txn.merge_key = mkey
        self.servers[key] = txn
        if req.method == "INVITE":
            txn.respond(make_response(req, 100, server=self.server_header))
        self.tu.on_request(txn, req)

    def receive_request_stateless(self, req: Request, source: Address) -> None:
        """Hand a non-INVITE request to the TU without keeping transaction state (see
        StatelessServerTransaction); only for requests whose answer changes nothing."""
        if req.method in ("INVITE", "ACK", "CANCEL"):
            raise ValueError(f"{req.method} needs its transaction")
        self.tu.on_request(StatelessServerTransaction(self, req, source), req)

    def receive_response(self, resp: Response, source: Address) -> None:
        try:
            key = (resp.top_via.branch or "", resp.cseq.method)
        except ValueError:
            return
        txn = self.clients.get(key)
        if txn is None:
            self.tu.on_stray_response(resp, source)
            return
        txn.receive(resp)

    def find_invite_server(self, cancel: Request) -> InviteServerTransaction | None:
        """The INVITE server transaction a CANCEL refers to (§9.2)."""
        txn = self.servers.get(self.server_key(cancel, "INVITE"))
        return txn if isinstance(txn, InviteServerTransaction) else None

    # outgoing ----------------------------------------------------------------------------
    def send_request(self, req: Request, target: Address, owner: ClientOwner) -> ClientTransaction:
        """Start a client transaction; `req` must carry our Via with a fresh branch."""
        if req.method == "ACK":
            raise ValueError("ACK is sent without a transaction: use send_stateless")
        cls = InviteClientTransaction if req.method == "INVITE" else NonInviteClientTransaction
        txn = cls(self, req, target, owner)
        self.clients[txn.key] = txn
        txn.start()
        return txn

    def send_stateless(self, data: bytes, target: Address) -> None:
        self.network.send(data, target)

    def response_target(self, txn: ServerTransaction) -> Address:
        """§18.2.2 with RFC 3581: where responses to this request go."""
        if txn.target is not None:
            return txn.target
        source = txn.source
        if source[0] != "udp" or self.force_rport:
            return source
        via = txn.request.top_via
        if via.rport is not None:
            return source
        # §18.2.2: to "received" at the sent-by port. "received" is by definition (§18.2.1)
        # the packet's source address, so use that directly: a sent-by or received the
        # server did not verify (a name, a broadcast or a third party's address) must never
        # become a destination
        return ("udp", source[1], via.port or 5060)

    def send_response_bytes(self, data: bytes, txn: ServerTransaction) -> None:
        self.network.send(data, self.response_target(txn))

    def transport_error(self, target: Address) -> None:
        for txn in [t for t in self.clients.values() if t.target == target]:
            txn.transport_error()

    # bookkeeping -------------------------------------------------------------------------
    def _completed(self, txn: ServerTransaction) -> None:
        # the TU is done with the request: keep only what retransmissions need
        if txn.merge_key is not None:
            self._merge.pop(txn.merge_key, None)
            txn.merge_key = None

    def _remove_server(self, txn: ServerTransaction) -> None:
        if self.servers.get(txn.key) is txn:
            del self.servers[txn.key]
        self._completed(txn)

    def _remove_client(self, txn: ClientTransaction) -> None:
        if self.clients.get(txn.key) is txn:
            del self.clients[txn.key]
