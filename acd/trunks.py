"""SIP trunks: recognising a provider's inbound requests by source address, registering to a
provider with digest credentials and keeping that registration fresh, and checking each
provider's health with OPTIONS.

Each trunk's state (registration and health) is visible through `snapshot()` for the admin
API and through the `acd_trunk_*` metrics.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from acd.adapters.store import TrunkStateRow, UpsertTrunkState
from acd.config import Config, Trunk
from sip.auth import UnsupportedChallenge, build_authorization, choose_challenge
from sip.headers import HeaderError
from sip.message import Response
from sip.timers import TimerHandle
from sip.transaction import Address, ClientTransaction
from sip.uri import SipURI, format_host

if TYPE_CHECKING:
    from acd.engine import Engine

__all__ = ["TrunkService", "TrunkState"]

log = structlog.get_logger("acd.trunks")

RETRY_MIN = 30.0
RETRY_MAX = 300.0


@dataclass(slots=True)
class TrunkState:
    """What we know of one trunk at run time."""

    trunk: Trunk
    target: Address | None
    reg_state: str = "disabled"  # disabled | registering | registered | failed
    reg_detail: str = ""
    reg_expires_at: float | None = None
    reg_cseq: int = 0
    reg_call_id: str = ""
    reg_tag: str = ""
    reg_nc: int = 0
    reg_timer: TimerHandle | None = None
    reg_retry: float = RETRY_MIN
    reg_last_change: float = 0.0
    reg_auth_tried: bool = False
    health: str = "unknown"  # unknown | up | down
    health_rtt: float | None = None
    health_last: float | None = None
    options_timer: TimerHandle | None = None
    options_in_flight: bool = False
    # bumped when a reload restarts the trunk: answers to requests sent before are ignored
    generation: int = 0

    def cancel_timers(self) -> None:
        for t in (self.reg_timer, self.options_timer):
            if t is not None:
                t.cancel()
        self.reg_timer = self.options_timer = None


class TrunkService:
    def __init__(self, engine: Engine, config: Config) -> None:
        self.engine = engine
        self.states: dict[str, TrunkState] = {}
        self._match_cache: dict[tuple[str, int], Trunk | None] = {}
        self.hotlines: dict[str, Trunk] = {}
        self.apply_config(config)

    # configuration -----------------------------------------------------------------------
    def apply_config(self, config: Config) -> None:
        self._match_cache.clear()
        self.trunks = {t.name: t for t in config.trunks}
        self.hotlines = {h: t for t in config.trunks for h in t.hotlines}
        for name in list(self.states):
            if name not in self.trunks:
                self.states.pop(name).cancel_timers()
        for t in config.trunks:
            old = self.states.get(t.name)
            target: Address | None = None
            if t.outbound is not None:
                target = (t.outbound.transport, t.outbound.proxy.host, t.outbound.proxy.port)
            if old is None:
                st = self.states[t.name] = TrunkState(t, target)
            else:
                st = old
                same = st.trunk.outbound == t.outbound and st.trunk.options_ping == t.options_ping
                st.trunk, st.target = t, target
                if same:
                    continue
                st.cancel_timers()
            self._start(st)

    def _start(self, st: TrunkState) -> None:
        t = st.trunk
        st.generation += 1
        st.options_in_flight = False
        st.reg_auth_tried = False
        st.reg_retry = RETRY_MIN
        if t.outbound is not None and t.outbound.register is not None:
            st.reg_call_id = self.engine.ids.call_id()
            st.reg_tag = self.engine.ids.tag()
            self._set_reg(st, "registering", "starting")
            self._register(st)
        else:
            self._set_reg(st, "disabled", "no outbound registration configured")
        if t.outbound is not None and t.options_ping > 0:
            st.options_timer = self._after(0.5, self._ping, st)

    def stop(self) -> None:
        for st in self.states.values():
            st.cancel_timers()

    def _after(self, delay: float, fn: Any, *args: Any) -> TimerHandle:
        eng = self.engine
        return eng.timers.call_at(eng.clock.now() + delay, fn, *args)

    # inbound identification ----------------------------------------------------------------
    def match_source(self, ip: str, port: int) -> Trunk | None:
        key = (ip, port)
        cache = self._match_cache
        if key in cache:
            return cache[key]
        found = None
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            addr = None
        if addr is not None:
            if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
                addr = addr.ipv4_mapped
            for t in self.trunks.values():
                if any(addr in s.network and (s.port is None or s.port == port)
                       for s in t.inbound.sources):
                    found = t
                    break
        if len(cache) < 10000:
            cache[key] = found
        return found

    # outbound registration -----------------------------------------------------------------
    def _set_reg(self, st: TrunkState, state: str, detail: str) -> None:
        changed = st.reg_state != state
        st.reg_state, st.reg_detail = state, detail
        eng = self.engine
        if changed:
            st.reg_last_change = eng.clock.wall()
            log.info("trunk registration state", trunk=st.trunk.name, state=state, detail=detail)
            eng.bus.emit("trunk.registration", {"trunk": st.trunk.name, "state": state,
                                                "detail": detail})
            eng.store_submit(UpsertTrunkState(TrunkStateRow(
                name=st.trunk.name, state=state, last_change=st.reg_last_change, detail=detail)))
        eng.metrics.trunk_registered.labels(trunk=st.trunk.name).set(
            1 if state == "registered" else 0)

    def _register(self, st: TrunkState, response: Response | None = None,
                  expires: int | None = None) -> None:
        t = st.trunk
        assert t.outbound is not None and t.outbound.register is not None and st.target
        reg = t.outbound.register
        domain = t.outbound.from_domain or reg.realm or t.outbound.proxy.host
        aor = SipURI("sip", format_host(domain), user=reg.username)
        ruri = SipURI("sip", format_host(domain))
        st.reg_cseq += 1
        req = self.engine.build_request(
            "REGISTER", ruri, st.target, to_uri=str(aor), from_uri=str(aor),
            call_id=st.reg_call_id, from_tag=st.reg_tag, cseq=st.reg_cseq, contact=True,
            contact_user=reg.username,
        )
        req.headers.insert(len(req.headers) - 1, "Expires",
                           str(expires if expires is not None else reg.expires))
        if response is not None:
            values = response.headers.get_all(
                "proxy-authenticate" if response.status == 407 else "www-authenticate")
            try:
                challenge = choose_challenge(values)
            except (UnsupportedChallenge, ValueError) as exc:
                self._reg_failed(st, f"unusable challenge: {exc}")
                return
            st.reg_nc += 1
            hname = "Proxy-Authorization" if response.status == 407 else "Authorization"
            value = build_authorization(challenge, "REGISTER", str(ruri), reg.username,
                                        reg.password, self.engine.ids.token(8), st.reg_nc)
            req.headers.insert(len(req.headers) - 1, hname, value)
        self.engine.layer.send_request(req, st.target, _RegisterOwner(self, st))

    def _reg_response(self, st: TrunkState, resp: Response) -> None:
        status = resp.status
        if status < 200:
            return
        if status in (401, 407):
            if st.reg_auth_tried and "stale=true" not in " ".join(
                    resp.headers.get_all("www-authenticate")
                    + resp.headers.get_all("proxy-authenticate")).lower().replace(" ", ""):
                self._reg_failed(st, f"{status} credentials rejected")
                return
            st.reg_auth_tried = True
            self._register(st, resp)
            return
        if status == 423:
            mexp = resp.headers.get("min-expires")
            if mexp and mexp.strip().isdigit():
                self._register(st, None, int(mexp))
                return
        if 200 <= status < 300:
            st.reg_auth_tried = False
            expires = self._granted_expires(st, resp)
            st.reg_expires_at = self.engine.clock.wall() + expires
            st.reg_retry = RETRY_MIN
            self._set_reg(st, "registered", f"expires in {expires} s")
            refresh = expires - 30 if expires > 90 else max(1.0, expires * 0.5)
            st.reg_timer = self._after(refresh, self._refresh, st)
            return
        self._reg_failed(st, f"{status} {resp.reason}")

    def _granted_expires(self, st: TrunkState, resp: Response) -> int:
        t = st.trunk
        assert t.outbound is not None and t.outbound.register is not None
        asked = t.outbound.register.expires
        try:
            for c in resp.contacts:
                if isinstance(c.uri, SipURI) and c.uri.user == t.outbound.register.username:
                    e = c.param("expires")
                    if e and e.isdigit():
                        return int(e)
        except HeaderError:
            pass
        e = resp.headers.get("expires")
        return int(e) if e and e.strip().isdigit() else asked

    def _refresh(self, st: TrunkState) -> None:
        st.reg_timer = None
        st.reg_auth_tried = False
        self._register(st)

    def _reg_failed(self, st: TrunkState, detail: str) -> None:
        st.reg_auth_tried = False
        st.reg_expires_at = None
        self._set_reg(st, "failed", detail)
        st.reg_timer = self._after(st.reg_retry, self._refresh, st)
        st.reg_retry = min(st.reg_retry * 2, RETRY_MAX)

    # health ------------------------------------------------------------------------------
    def _ping(self, st: TrunkState) -> None:
        st.options_timer = None
        t = st.trunk
        if t.outbound is None or st.target is None:
            return
        if not st.options_in_flight:
            host = format_host(t.outbound.proxy.host)
            ruri = SipURI("sip", host, port=t.outbound.proxy.port)
            req = self.engine.build_request("OPTIONS", ruri, st.target, to_uri=str(ruri))
            st.options_in_flight = True
            self.engine.layer.send_request(req, st.target,
                                           _OptionsOwner(self, st, self.engine.clock.now()))
        st.options_timer = self._after(max(1, t.options_ping), self._ping, st)

    def _health(self, st: TrunkState, up: bool, rtt: float | None) -> None:
        st.options_in_flight = False
        new = "up" if up else "down"
        st.health_rtt, st.health_last = rtt, self.engine.clock.wall()
        if new != st.health:
            log.info("trunk health", trunk=st.trunk.name, health=new)
            self.engine.bus.emit("trunk.health", {"trunk": st.trunk.name, "health": new})
        st.health = new
        self.engine.metrics.trunk_up.labels(trunk=st.trunk.name).set(1 if up else 0)

    def snapshot(self) -> list[dict[str, Any]]:
        out = []
        for st in self.states.values():
            t = st.trunk
            out.append({
                "name": t.name,
                "hotlines": list(t.hotlines),
                "inbound_sources": [
                    str(s.network) + (f" port {s.port}" if s.port else "") for s in t.inbound.sources
                ],
                "outbound": None if t.outbound is None else {
                    "proxy": f"{format_host(t.outbound.proxy.host)}:{t.outbound.proxy.port}",
                    "transport": t.outbound.transport,
                },
                "registration": {
                    "state": st.reg_state,
                    "detail": st.reg_detail,
                    "expires_at": st.reg_expires_at,
                    "last_change": st.reg_last_change,
                },
                "health": {
                    "state": st.health,
                    "rtt_ms": None if st.health_rtt is None else round(st.health_rtt * 1000, 1),
                    "last_check": st.health_last,
                },
            })
        return out


class _TrunkOwner:
    """Owner of one client transaction sent for a trunk."""

    __slots__ = ("generation", "service", "st")

    def __init__(self, service: TrunkService, st: TrunkState) -> None:
        self.service, self.st, self.generation = service, st, st.generation

    def _current(self) -> bool:
        # a removed trunk, or one restarted by a reload, must not act on old answers
        st = self.st
        return self.service.states.get(st.trunk.name) is st and st.generation == self.generation


class _RegisterOwner(_TrunkOwner):
    __slots__ = ()

    def on_response(self, txn: ClientTransaction, response: Response) -> None:
        if self._current():
            self.service._reg_response(self.st, response)

    def on_timeout(self, txn: ClientTransaction) -> None:
        if self._current():
            self.service._reg_failed(self.st, "timeout")


class _OptionsOwner(_TrunkOwner):
    __slots__ = ("started",)

    def __init__(self, service: TrunkService, st: TrunkState, started: float) -> None:
        super().__init__(service, st)
        self.started = started

    def on_response(self, txn: ClientTransaction, response: Response) -> None:
        if response.status >= 200 and self._current():
            rtt = self.service.engine.clock.now() - self.started
            self.service._health(self.st, response.status != 503, rtt)

    def on_timeout(self, txn: ClientTransaction) -> None:
        if self._current():
            self.service._health(self.st, False, None)
