"""The SIP engine: bytes in, bytes out, no I/O of its own.

`Engine.on_message` takes one datagram or framed stream message with its source address,
parses it (malformed requests get a stateless 400/505/513, malformed responses are dropped),
feeds the transaction layer, and, as the transaction user, applies the UAS checks of RFC 3261
§8.2 (405/501, 416, 420, 415, 406) before dispatching to REGISTER, OPTIONS, INVITE, CANCEL
and BYE handling. Time comes from an injected Clock, sending from an injected Network, and
timers run on a `sip.timers.Timers` heap the asyncio shell drives; tests run the whole
engine in memory with a fake clock.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import structlog

from acd.accounts import AccountAuth
from acd.adapters.store import StoreOp
from acd.callmedia import MediaEngineLike
from acd.calls import CallService
from acd.clock import Clock
from acd.config import Config, ListenAddress
from acd.events import EventBus
from acd.metrics import Metrics
from acd.queueing import QueueService
from acd.registrations import RegistrationService
from acd.trunks import TrunkService
from sip.builder import IdSource, make_response_from_headers
from sip.dialog import DialogId
from sip.headers import split_list
from sip.message import Headers, Request, Response
from sip.parser import ParseError, parse_message
from sip.session import InviteSession, UacSession, UasSession
from sip.timers import Timers
from sip.transaction import (
    Address,
    Network,
    ServerTransaction,
    TimerConfig,
    TransactionLayer,
)
from sip.uri import URI, AbsoluteURI, SipURI, format_host

__all__ = ["ALLOW", "Engine", "SUPPORTED"]

log = structlog.get_logger("acd.engine")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE"
SUPPORTED: frozenset[str] = frozenset()
# Methods we recognise but do not implement (405 rather than 501, §8.2.1)
# Methods that only exist inside a dialog: without a To tag there is nothing to act on
_DIALOG_ONLY = frozenset(("BYE", "INFO", "UPDATE"))
_KNOWN_METHODS = frozenset(
    ("BYE", "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE", "REFER", "INFO", "UPDATE")
)


class Engine:
    def __init__(
        self,
        config: Config,
        *,
        clock: Clock,
        network: Network,
        timers: Timers,
        ids: IdSource | None = None,
        bus: EventBus | None = None,
        store_submit: Callable[[StoreOp], None] | None = None,
        metrics: Metrics | None = None,
        secret: bytes | None = None,
        media: MediaEngineLike | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.network = network
        self.timers = timers
        self.ids = ids or IdSource()
        self.metrics = metrics or Metrics()
        self.bus = bus or EventBus(config.node_id, clock.wall)
        # before the services start: trunks publish their first state from their constructor
        self.bus.subscribe(lambda ev: self.metrics.events_counted.inc())
        self._store_submit = store_submit
        self.draining = False
        self.sessions: dict[DialogId, InviteSession] = {}
        t = config.sip.timers
        self.layer = TransactionLayer(
            network, self, timers, TimerConfig(t.t1, t.t2, t.t4),
            clock=clock.now, tag_source=self.ids.tag, server_header=config.sip.user_agent,
        )
        self.auth = AccountAuth(config, secret or self.ids.token(32).encode(), clock.wall,
                                on_ban=self._on_ban,
                                on_failure=lambda ip: self.metrics.auth_failures.inc())
        self.registrations = RegistrationService(self, config)
        self.trunks = TrunkService(self, config)
        self.calls = CallService(self, media)
        self.calls.load_prompts(config)
        self.queues = QueueService(self)
        self._handlers: dict[str, Callable[[ServerTransaction, Request], None]] = {
            "REGISTER": self.registrations.on_register,
            "OPTIONS": self._on_options,
            "INVITE": self._on_invite,
            "CANCEL": self._on_cancel,
        }

    # configuration -------------------------------------------------------------------------
    def apply_config(self, config: Config) -> None:
        """Switch to a validated config; transactions and bindings in flight are kept."""
        self.config = config
        t = config.sip.timers
        self.layer.config = TimerConfig(t.t1, t.t2, t.t4)
        self.layer.server_header = config.sip.user_agent
        self.auth.apply_config(config)
        self.registrations.apply_config(config)
        self.trunks.apply_config(config)
        self.calls.load_prompts(config)
        self.queues.apply_config(config)

    def store_submit(self, op: StoreOp) -> None:
        if self._store_submit is not None:
            self._store_submit(op)

    # intake --------------------------------------------------------------------------------
    def on_message(self, data: bytes, source: Address) -> None:
        """One datagram or framed stream message from `source` = (transport, ip, port)."""
        if self.auth.limiter.any_bans and self.auth.is_banned(source[1]):
            self.metrics.dropped_banned.inc()
            return
        sip = self.config.sip
        try:
            msg = parse_message(data, max_size=sip.max_message_size,
                                max_headers=sip.max_headers, stream=source[0] != "udp")
        except ParseError as exc:
            self._on_parse_error(exc, source)
            return
        if isinstance(msg, Request):
            self.metrics.received["request"].inc()
            self._on_request(msg, source)
        else:
            self.metrics.received["response"].inc()
            self.layer.receive_response(msg, source)

    def _on_parse_error(self, exc: ParseError, source: Address) -> None:
        h = exc.headers
        call_id = h.get("call-id") if h is not None else None
        if exc.status is None or h is None or exc.method in (None, "ACK") or "via" not in h:
            self.metrics.parse_errors.labels(action="dropped").inc()
            log.info("malformed message dropped", src=_src(source), call_id=call_id,
                     reason=exc.reason)
            return
        self.metrics.parse_errors.labels(action="rejected").inc()
        log.info("malformed request rejected", src=_src(source), call_id=call_id,
                 status=exc.status, reason=exc.reason)
        resp = make_response_from_headers(h, exc.status, to_tag=self.ids.tag(),
                                          server=self.config.sip.user_agent)
        resp.headers.insert(len(resp.headers) - 1, "Warning",
                            f'399 {self.config.sip.domain} "{_quote_safe(exc.reason)}"')
        self.network.send(resp.serialize(), source)

    def _on_request(self, req: Request, source: Address) -> None:
        via = req.top_via
        if via.branch == "z9hG4bK":
            # RFC 4475 badbranch: the cookie alone identifies nothing; refuse statelessly
            resp = make_response_from_headers(req.headers, 400, "Bad Request (empty branch)",
                                              to_tag=self.ids.tag())
            self.network.send(resp.serialize(), source)
            return
        self._stamp_via(req, source)
        if req.method == "REGISTER" and "authorization" not in req.headers:
            # without credentials nothing can change: the answer is a challenge (or an
            # error), sent without keeping a transaction for 64*T1 (Kamailio does the same)
            self.layer.receive_request_stateless(req, source)
            return
        self.layer.receive_request(req, source)

    @staticmethod
    def _stamp_via(req: Request, source: Address) -> None:
        """§18.2.1 / RFC 3581: record where the request really came from in the top Via."""
        via = req.top_via
        host = via.host[1:-1] if via.host.startswith("[") else via.host
        wants_rport = via.rport == ""
        if host == source[1] and not wants_rport:
            return
        if host != source[1]:
            via.set_param("received", source[1])
        if wants_rport:
            via.set_param("rport", str(source[2]))
        value = req.headers.get("via")
        if value is not None:
            parts = split_list(value)
            parts[0] = str(via)
            req.headers.replace_first("via", ", ".join(parts))

    # transaction user ----------------------------------------------------------------------
    def on_request(self, txn: ServerTransaction, req: Request) -> None:
        method = req.method
        known = method in self._handlers or method in _KNOWN_METHODS
        self.metrics.method_requests[method if known else "other"].inc()
        if not known:
            self._reject_method(txn, 501)
            return
        if not isinstance(req.uri, SipURI) and not (
                isinstance(req.uri, AbsoluteURI) and req.uri.scheme == "tel"):
            self._respond(txn, txn.make_response(416))
            return
        requires = req.headers.get_all("require") if method != "CANCEL" else None
        if requires:
            unsupported = [t for v in requires for t in split_list(v)
                           if t and t.lower() not in SUPPORTED]
            if unsupported:
                resp = txn.make_response(420)
                resp.headers.insert(len(resp.headers) - 1, "Unsupported", ", ".join(unsupported))
                self._respond(txn, resp)
                return
        to_tag = req.to.tag
        if to_tag and method not in ("REGISTER", "CANCEL"):
            # §12.2.2: a request inside a dialog belongs to that dialog's session, or to none
            session = self.sessions.get((req.call_id, to_tag, req.from_.tag or ""))
            if session is None:
                self._respond(txn, txn.make_response(481))
            else:
                session.on_request(txn, req)
            return
        if method in _DIALOG_ONLY:
            self._respond(txn, txn.make_response(481))
            return
        handler = self._handlers.get(method)
        if handler is None:
            self._reject_method(txn, 405)
            return
        if self.draining and method in ("INVITE", "REGISTER"):
            resp = txn.make_response(503, "Service Unavailable (shutting down)")
            resp.headers.insert(len(resp.headers) - 1, "Retry-After", "30")
            self._respond(txn, resp)
            return
        handler(txn, req)

    def _reject_method(self, txn: ServerTransaction, status: int) -> None:
        resp = txn.make_response(status)
        resp.headers.insert(len(resp.headers) - 1, "Allow", ALLOW)
        self._respond(txn, resp)

    def _respond(self, txn: ServerTransaction, resp: Response) -> None:
        txn.respond(resp)

    def on_ack(self, request: Request, source: Address) -> None:
        session = self.sessions.get((request.call_id, request.to.tag or "",
                                     request.from_.tag or ""))
        if session is not None:
            session.on_ack(request)

    def on_stray_response(self, response: Response, source: Address) -> None:
        if 200 <= response.status < 300 and response.cseq.method == "INVITE":
            session = self.sessions.get((response.call_id, response.from_.tag or "",
                                         response.to.tag or ""))
            if isinstance(session, UacSession):
                session.on_stray_2xx(response)
                return
        log.debug("stray response", status=response.status, call_id=response.call_id,
                  src=_src(source))

    # SessionHost -----------------------------------------------------------------------------
    @property
    def user_agent(self) -> str:
        return self.config.sip.user_agent

    def now(self) -> float:
        return self.clock.now()

    def via(self, peer: Address) -> str:
        la = self.local_address(peer)
        return (f"SIP/2.0/{la.transport.upper()} {format_host(la.host)}:{la.port}"
                f";branch={self.ids.branch()};rport")

    def contact(self, peer: Address, user: str | None = None) -> str:
        la = self.local_address(peer)
        u = f"{user}@" if user else ""
        return f"<sip:{u}{format_host(la.host)}:{la.port};transport={la.transport}>"

    def dialog_created(self, session: InviteSession) -> None:
        if session.id is not None:
            self.sessions[session.id] = session

    def session_ended(self, session: InviteSession) -> None:
        sid = session.id
        if sid is not None and self.sessions.get(sid) is session:
            del self.sessions[sid]

    def on_server_timeout(self, txn: ServerTransaction) -> None:
        log.info("no ACK for final response", call_id=txn.request.call_id,
                 src=_src(txn.source))

    # methods -------------------------------------------------------------------------------
    def _on_options(self, txn: ServerTransaction, req: Request) -> None:
        resp = txn.make_response(200)
        h = resp.headers
        at = len(h) - 1
        for name, value in (("Allow", ALLOW), ("Accept", "application/sdp"),
                            ("Accept-Language", "en")):
            h.insert(at, name, value)
            at += 1
        self._respond(txn, resp)

    def _on_invite(self, txn: ServerTransaction, req: Request) -> None:
        # §8.2.3 content processing before anything else is decided
        ctype = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
        if req.body and ctype != "application/sdp":
            resp = txn.make_response(415)
            resp.headers.insert(len(resp.headers) - 1, "Accept", "application/sdp")
            self._respond(txn, resp)
            return
        accept = req.headers.get_list("accept")
        if accept and not any(a.split(";")[0].strip().lower() in
                              ("application/sdp", "application/*", "*/*") for a in accept):
            resp = txn.make_response(406)
            resp.headers.insert(len(resp.headers) - 1, "Accept", "application/sdp")
            self._respond(txn, resp)
            return
        number = _dialled(req.uri)
        trunk = self.trunks.match_source(txn.source[1], txn.source[2])
        account = None
        if trunk is None:
            result = self.auth.authenticate(txn, req, txn.source[1], proxy=True)
            if result.response is not None:
                self._respond(txn, result.response)
                return
            trunk, account = result.trunk, result.account
        if trunk is not None and number not in trunk.hotlines:
            self._respond(txn, txn.make_response(404))
            return
        self.calls.on_invite(txn, req, trunk=trunk, account=account)

    def _on_cancel(self, txn: ServerTransaction, req: Request) -> None:
        invite = self.layer.find_invite_server(req)
        if invite is None:
            self._respond(txn, txn.make_response(481))
            return
        # §9.2: the CANCEL's response and the INVITE's carry the same To tag
        txn.to_tag = invite.to_tag
        self._respond(txn, txn.make_response(200))
        session = invite.app
        if isinstance(session, UasSession):
            session.on_cancel()
        elif invite.last_response is None or invite.last_response.status < 200:
            invite.respond(invite.make_response(487))

    # UAC helpers -------------------------------------------------------------------------
    def local_address(self, target: Address) -> ListenAddress:
        """The listening address we send from towards `target` (same transport and family)."""
        transport, ip, _ = target
        v6 = ":" in ip
        fallback = None
        for la in self.config.sip.listen:
            if la.transport != transport:
                continue
            if (":" in la.host) == v6:
                return la
            fallback = fallback or la
        return fallback or self.config.sip.listen[0]

    def build_request(
        self,
        method: str,
        ruri: URI,
        target: Address,
        *,
        to_uri: str,
        from_uri: str | None = None,
        call_id: str | None = None,
        from_tag: str | None = None,
        cseq: int = 1,
        contact: bool = False,
        contact_user: str | None = None,
    ) -> Request:
        """A new out-of-dialog request from us, with our Via and a fresh branch."""
        la = self.local_address(target)
        host = format_host(la.host)
        h = Headers()
        h.add("Via", f"SIP/2.0/{la.transport.upper()} {host}:{la.port};branch={self.ids.branch()}"
                     ";rport")
        h.add("Max-Forwards", "70")
        if from_uri is None:
            from_uri = f"sip:{self.config.sip.domain}"
        h.add("From", f"<{from_uri}>;tag={from_tag or self.ids.tag()}")
        h.add("To", f"<{to_uri}>")
        h.add("Call-ID", call_id or self.ids.call_id(host))
        h.add("CSeq", f"{cseq} {method}")
        if contact:
            user = f"{contact_user}@" if contact_user else ""
            h.add("Contact", f"<sip:{user}{host}:{la.port};transport={la.transport}>")
        h.add("User-Agent", self.config.sip.user_agent)
        h.add("Content-Length", "0")
        return Request(method, ruri, h)

    # housekeeping ------------------------------------------------------------------------
    def tick(self) -> None:
        """Once a second: expire bindings, qualify contacts, refresh gauges."""
        self.registrations.expire()
        self.registrations.qualify_tick(self.config.registrar.qualify_interval)
        self.tick_gauges()

    def tick_gauges(self) -> None:
        self.registrations.refresh_gauges()
        self.metrics.transactions.labels(side="server").set(len(self.layer.servers))
        self.metrics.transactions.labels(side="client").set(len(self.layer.clients))
        self.metrics.dialogs.set(len(self.sessions))
        media = self.calls.media
        if media is not None and hasattr(media, "endpoints"):
            self.metrics.media_endpoints.set(len(media.endpoints))
        self.metrics.banned_sources.set(len(self.auth.limiter.banned(self.clock.wall())))

    def _on_ban(self, ip: str, until: float) -> None:
        self.metrics.auth_bans.inc()
        self.bus.emit("security.banned", {"source": ip, "until": until})

    def busy(self) -> bool:
        """True while calls or server transactions are still running (drain waits)."""
        return bool(self.calls.calls) or any(
            t.state.value in ("trying", "proceeding") for t in self.layer.servers.values())

    def snapshot_registrations(self) -> list[dict[str, Any]]:
        return self.registrations.snapshot()


def _dialled(uri: URI) -> str:
    if isinstance(uri, SipURI):
        return uri.user_unescaped or ""
    return uri.user or ""


def _src(addr: Address) -> str:
    transport, ip, port = addr
    try:
        if isinstance(ipaddress.ip_address(ip), ipaddress.IPv6Address):
            return f"{transport}:[{ip}]:{port}"
    except ValueError:
        pass
    return f"{transport}:{ip}:{port}"


def _quote_safe(text: str) -> str:
    return "".join(c for c in text if c.isprintable() and c not in '"\\')[:120]

