"""REGISTER handling for SIP accounts: authentication, the registrar bindings, their events,
persistence through the write-behind store, expiry, and qualifying contacts with OPTIONS.

The registrar core (sip.registrar) decides; this service authenticates first, turns the
outcome into a response, publishes `registration.added/refreshed/removed/expired`, and
submits the matching store operations without waiting for them.
"""

from __future__ import annotations

from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from acd.adapters.store import BindingRow, DeleteBinding, UpsertBinding
from acd.config import Config
from acd.logs import HotLogger
from sip.headers import HeaderError, parse_uint
from sip.message import Request, Response
from sip.registrar import (
    Binding,
    BindingChange,
    ChangeKind,
    Registrar,
    RegistrarPolicy,
    describe_source,
    parse_source,
)
from sip.transaction import Address, ClientTransaction, ServerTransaction
from sip.uri import SipURI, parse_uri

if TYPE_CHECKING:
    from acd.engine import Engine

__all__ = ["RegistrationService", "binding_from_row", "binding_row", "binding_target"]

log = HotLogger("acd.registrar")


def binding_row(b: Binding) -> BindingRow:
    return BindingRow(
        aor=b.aor, contact=b.contact, contact_params=b.params, call_id=b.call_id, cseq=b.cseq,
        expires_at=b.expires_at, registered_at=b.registered_at, updated_at=b.updated_at,
        source=b.source, q=b.q, user_agent=b.user_agent, instance_id=b.instance_id,
        reg_id=b.reg_id,
    )


def binding_from_row(r: BindingRow) -> Binding:
    return Binding(
        r.aor, r.contact, parse_uri(r.contact), r.contact_params, r.call_id, r.cseq,
        r.expires_at, r.registered_at, r.updated_at, r.source, r.q, r.user_agent,
        r.instance_id, r.reg_id,
    )


def binding_target(b: Binding) -> Address:
    """Where requests for a binding go on the network.

    Over TCP: back through the connection the phone registered on (RFC 5626 flow reuse).
    Over UDP: the Contact's address when its IP is the one the REGISTER came from (a phone
    may register from another port than it listens on, as SIPp agents do), else the source
    address, because a Contact IP that differs from the packet's is a phone behind NAT."""
    source = parse_source(b.source)
    if source[0] != "udp" or not isinstance(b.uri, SipURI):
        return source
    host = b.uri.host_bare
    if host == source[1].lower():
        return ("udp", source[1], b.uri.port or 5060)
    return source


class _DateCache:
    """RFC 1123 Date values, formatted once per second rather than per response."""

    __slots__ = ("_sec", "_text")

    def __init__(self) -> None:
        self._sec = -1
        self._text = ""

    def __call__(self, wall: float) -> str:
        sec = int(wall)
        if sec != self._sec:
            self._sec, self._text = sec, formatdate(sec, usegmt=True)
        return self._text


class RegistrationService:
    def __init__(self, engine: Engine, config: Config) -> None:
        self.engine = engine
        self.registrar = Registrar(_policy(config))
        self.config = config
        self._date = _DateCache()
        self._qualify_cursor = 0
        self._qualify_credit = 0
        self.qualify_in_flight: dict[str, Binding] = {}

    def apply_config(self, config: Config) -> None:
        self.config = config
        self.registrar.policy = _policy(config)

    # REGISTER ----------------------------------------------------------------------------
    def on_register(self, txn: ServerTransaction, req: Request) -> None:
        eng = self.engine
        to = req.to
        if not isinstance(to.uri, SipURI) or not to.uri.user:
            txn.respond(txn.make_response(400, "To must be a SIP URI with a user part"))
            return
        try:
            contacts = req.contacts
            expires_text = req.headers.get("expires")
            expires = None if expires_text is None else parse_uint(expires_text, "Expires")
        except HeaderError as exc:
            txn.respond(txn.make_response(400, f"Bad Request ({exc})"))
            return
        for c in contacts:
            if c.uri is not None and not isinstance(c.uri, SipURI):
                txn.respond(txn.make_response(400, "Contact must be a SIP URI"))
                return
        auth = eng.auth.authenticate(txn, req, txn.source[1], proxy=False)
        if auth.trunk is not None:
            eng.metrics.register_results["403"].inc()
            txn.respond(txn.make_response(403, "Forbidden (trunk credentials cannot register)"))
            return
        if auth.account is None:
            assert auth.response is not None
            eng.metrics.register_results[str(auth.response.status)].inc()
            txn.respond(auth.response)
            return
        aor = to.uri.user_unescaped or ""
        account = auth.account
        if account.user != aor:
            eng.metrics.register_results["403"].inc()
            txn.respond(txn.make_response(403, "Forbidden (credentials do not match the AOR)"))
            return
        wall = eng.clock.wall()
        ua = req.headers.get("user-agent")
        outcome = self.registrar.register(
            aor, contacts, expires, req.call_id, req.cseq.seq, describe_source(*txn.source),
            wall, user_agent=ua, max_contacts=account.max_contacts,
        )
        eng.metrics.register_results[str(outcome.status)].inc()
        if outcome.status == 423:
            resp = txn.make_response(423)
            resp.headers.insert(len(resp.headers) - 1, "Min-Expires", str(outcome.min_expires))
            txn.respond(resp)
            return
        if outcome.status != 200:
            txn.respond(txn.make_response(outcome.status, outcome.reason))
            return
        resp = txn.make_response(200)
        h = resp.headers
        at = len(h) - 1
        for b in outcome.bindings:
            h.insert(at, "Contact", b.contact_header(wall))
            at += 1
        h.insert(at, "Date", self._date(wall))
        txn.respond(resp)
        self._apply_changes(outcome.changes, req.call_id)

    def _apply_changes(self, changes: list[BindingChange], call_id: str | None) -> None:
        eng = self.engine
        aors: set[str] = set()  # whose presence may have changed
        for ch in changes:
            b = ch.binding
            if ch.kind is not ChangeKind.REFRESHED:
                aors.add(b.aor)
            if ch.kind is ChangeKind.ADDED or ch.kind is ChangeKind.REFRESHED:
                prev = ch.previous
                if prev is not None and prev.contact != b.contact:
                    eng.store_submit(DeleteBinding(prev.aor, prev.contact))
                eng.store_submit(UpsertBinding(binding_row(b)))
            else:
                eng.store_submit(DeleteBinding(b.aor, b.contact))
            data: dict[str, Any] = {
                "aor": b.aor, "contact": b.contact, "source": b.source,
                "expires_at": b.expires_at, "user_agent": b.user_agent,
            }
            if ch.reason:
                data["reason"] = ch.reason
            eng.bus.emit(f"registration.{ch.kind.value}", data, call_id=call_id)
            if ch.kind is not ChangeKind.REFRESHED:
                log.info(f"binding {ch.kind.value}", aor=b.aor, contact=b.contact, src=b.source,
                         call_id=call_id, reason=ch.reason or None)
        queues = getattr(eng, "queues", None)
        if queues is not None:
            for aor in aors:  # presence: a device counts while it has any binding
                queues.presence(aor, self.registrar.has_bindings(aor))

    def expire(self) -> None:
        changes = self.registrar.expire(self.engine.clock.wall())
        if changes:
            self._apply_changes(changes, None)

    # restore -----------------------------------------------------------------------------
    def restore(self, rows: list[BindingRow]) -> int:
        wall = self.engine.clock.wall()
        n = 0
        for r in rows:
            if r.expires_at <= wall:
                self.engine.store_submit(DeleteBinding(r.aor, r.contact))
                continue
            try:
                self.registrar.restore(binding_from_row(r))
                n += 1
            except ValueError:
                log.warning("dropping unparseable stored binding", aor=r.aor, contact=r.contact)
                self.engine.store_submit(DeleteBinding(r.aor, r.contact))
        self.engine.metrics.bindings.set(len(self.registrar))
        queues = getattr(self.engine, "queues", None)
        if queues is not None:
            for aor in self.registrar.aors():
                queues.presence(aor, True)
        return n

    # qualify -----------------------------------------------------------------------------
    def qualify_tick(self, interval: float) -> None:
        """Ping the next slice of contacts so every one is pinged once per `interval`."""
        if interval <= 0:
            return
        bindings = self.registrar.all_bindings()
        if not bindings:
            self._qualify_credit = 0
            return
        # n contacts per `interval` ticks is n/interval pings a tick; rounding that up made a
        # lone contact get pinged every tick, so carry the remainder over (integers: no drift)
        period = int(max(1, interval))
        count, self._qualify_credit = divmod(self._qualify_credit + len(bindings), period)
        for _ in range(min(count, len(bindings))):
            self._qualify_cursor %= len(bindings)
            b = bindings[self._qualify_cursor]
            self._qualify_cursor += 1
            self._qualify(b)

    def _qualify(self, b: Binding) -> None:
        key = f"{b.aor}|{b.contact}"
        if key in self.qualify_in_flight:
            return
        if not isinstance(b.uri, SipURI):
            return
        target = binding_target(b)
        req = self.engine.build_request("OPTIONS", b.uri, target, to_uri=str(b.uri))
        started = self.engine.clock.now()
        self.qualify_in_flight[key] = b
        self.engine.layer.send_request(req, target, _QualifyOwner(self, key, b, started))

    def _qualified(self, key: str, b: Binding, reachable: bool, rtt: float | None) -> None:
        self.qualify_in_flight.pop(key, None)
        changed = b.reachable is not reachable
        b.reachable, b.rtt, b.last_qualified = reachable, rtt, self.engine.clock.wall()
        if changed:
            log.info("contact reachability changed", aor=b.aor, contact=b.contact,
                     reachable=reachable, rtt_ms=None if rtt is None else round(rtt * 1000, 1))
            self.engine.bus.emit("registration.reachability", {
                "aor": b.aor, "contact": b.contact, "reachable": reachable})

    def refresh_gauges(self) -> None:
        bindings = self.registrar.all_bindings()
        m = self.engine.metrics
        m.bindings.set(len(bindings))
        m.contacts_unreachable.set(sum(1 for b in bindings if b.reachable is False))

    def snapshot(self) -> list[dict[str, Any]]:
        wall = self.engine.clock.wall()
        out = []
        for aor in sorted(self.registrar.aors()):
            for b in self.registrar.lookup(aor):
                out.append({
                    "aor": b.aor,
                    "contact": b.contact,
                    "params": b.params,
                    "source": b.source,
                    "transport": b.source.split(":", 1)[0],
                    "expires_in": b.remaining(wall),
                    "expires_at": b.expires_at,
                    "registered_at": b.registered_at,
                    "updated_at": b.updated_at,
                    "user_agent": b.user_agent,
                    "q": b.q,
                    "instance_id": b.instance_id,
                    "reachable": b.reachable,
                    "rtt_ms": None if b.rtt is None else round(b.rtt * 1000, 1),
                })
        return out


class _QualifyOwner:
    __slots__ = ("b", "key", "service", "started")

    def __init__(self, service: RegistrationService, key: str, b: Binding, started: float):
        self.service, self.key, self.b, self.started = service, key, b, started

    def on_response(self, txn: ClientTransaction, response: Response) -> None:
        if response.status >= 200:
            rtt = self.service.engine.clock.now() - self.started
            self.service._qualified(self.key, self.b, True, rtt)

    def on_timeout(self, txn: ClientTransaction) -> None:
        self.service._qualified(self.key, self.b, False, None)


def _policy(config: Config) -> RegistrarPolicy:
    r = config.registrar
    return RegistrarPolicy(r.default_expires, r.min_expires, r.max_expires)

