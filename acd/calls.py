"""Calls: the B2BUA that joins legs (RFC 3261 §13-§15 as a user agent on each side).

A `Call` owns the caller's leg (the INVITE we received, a `UasSession`), the legs we place
for it (`UacSession`s: a registered phone's contacts rung in parallel, or a trunk with
fail-over), their RTP endpoints, and while the caller is in an IVR, its walker. Whichever
side hangs up first, the other is hung up (or its ringing cancelled), every endpoint closed,
and `call.ended` published; nothing of a call outlives it.

`CallService` turns an authenticated INVITE into a Call: it works out where the call goes
(hotline routing, extensions, outbound rules), then runs the destination. Everything is
synchronous and driven by the engine; media and timers are injected.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from acd.callmedia import (
    LegMedia,
    MediaConfig,
    MediaEngineLike,
    melody,
    offer_is_ipv6,
    tone,
)
from acd.config import Account, Trunk
from acd.registrations import binding_target
from media.prompt import PromptCache
from sip.headers import HeaderError
from sip.message import Headers, Request, Response
from sip.session import InviteSession, SessionState, UacSession, UasSession
from sip.timers import TimerHandle
from sip.transaction import Address, ServerTransaction
from sip.uri import SipURI, format_host

if TYPE_CHECKING:
    from acd.engine import Engine

__all__ = ["Call", "CallService", "Destination", "Leg"]

log = structlog.get_logger("acd.calls")

BEEP = tone("beep", (1000.0,), 300, 100)
# ITU-T E.180 ringback for the caller who is already answered (IVR -> extension): 425 Hz
RINGBACK = tone("ringback", (425.0,), 1000, 4000)
# a slow arpeggio in C major: music on hold that needs no file and carries no rights issue
_C, _E, _G, _A, _C5 = 261.63, 329.63, 392.0, 440.0, 523.25
MOH = melody("moh", [(_C, 400), (_E, 400), (_G, 400), (_C5, 800), (0, 200), (_A, 400),
                     (_G, 400), (_E, 400), (_C, 800), (0, 400)])

# how long an extension rings before the caller is told nobody answers (480)
EXTENSION_RING_TIMEOUT = 60.0

# SIP status for the caller when every leg we placed failed with this status
_FAILURE_FOR_CALLER = {486: 486, 600: 486, 603: 603, 404: 404, 484: 484, 488: 488}


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a call goes: kind is ivr, queue, extension, voicemail, play, reject, outbound."""

    kind: str
    target: str = ""
    prompt: str | None = None
    status: int = 0
    reason: str = ""
    trunks: tuple[str, ...] = ()
    caller_id: str | None = None
    rule: str | None = None  # the outbound rule that chose the trunks


@dataclass(eq=False)
class Leg:
    session: InviteSession
    media: LegMedia | None
    role: str  # caller | callee
    party: str = ""
    trunk: str | None = None
    answered_at: float | None = None
    offer_id: int | None = None  # a queue offer this leg rings for
    agent: str | None = None


@dataclass(eq=False)
class Call:
    service: CallService
    ref: str
    caller: Leg
    direction: str  # inbound | internal | outbound
    from_number: str
    to_number: str
    hotline: str | None = None
    account: str | None = None
    trunk: str | None = None
    callees: list[Leg] = field(default_factory=list)
    connected: Leg | None = None
    walker: Any = None
    started: float = 0.0
    answered: float | None = None
    ended: float | None = None
    end_reason: str | None = None
    hangup_by: str | None = None
    pending_trunks: list[str] = field(default_factory=list)
    outbound_number: str = ""
    caller_id: str | None = None
    timers: dict[str, TimerHandle] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    after_prompt: Callable[[], None] | None = None
    voicemail: Any = None
    queue: str | None = None
    busy_devices: set[str] = field(default_factory=set)  # agents' devices on this call
    outbound_rule: str | None = None
    route: str = "open"  # the hotline routing decision: open, out_of_hours, blacklisted
    recording: Any = None  # acd.recording.CallRecording once one was started
    ringback: bool = False

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        return self.service.engine

    @property
    def sip_call_id(self) -> str:
        s = self.caller.session
        return s.invite.call_id if isinstance(s, UasSession) else ""

    def _log(self, event: str, **kw: Any) -> None:
        log.info(event, call_id=self.sip_call_id, call=self.ref, **kw)

    def emit(self, type_: str, data: dict[str, Any]) -> None:
        self.engine.bus.emit(type_, {"call": self.ref, **data}, call_id=self.ref)

    def after(self, name: str, delay: float, fn: Callable[[], None]) -> None:
        self.cancel_timer(name)
        eng = self.engine
        self.timers[name] = eng.timers.call_at(eng.clock.now() + delay, fn)

    def at(self, name: str, when: float, fn: Callable[[], None]) -> None:
        self.cancel_timer(name)
        self.timers[name] = self.engine.timers.call_at(when, fn)

    def cancel_timer(self, name: str) -> None:
        t = self.timers.pop(name, None)
        if t is not None:
            t.cancel()

    @property
    def caller_media(self) -> LegMedia:
        assert self.caller.media is not None
        return self.caller.media

    @property
    def is_over(self) -> bool:
        return self.ended is not None

    # -- answering the caller ------------------------------------------------------------
    def answer_caller(self) -> bool:
        """200 OK to the caller with our SDP answer (or offer, for a late-offer INVITE)."""
        s = self.caller.session
        assert isinstance(s, UasSession)
        if s.state in (SessionState.ANSWERED, SessionState.CONFIRMED):
            return True
        if s.state is SessionState.TERMINATED:
            return False
        media = self.caller_media
        if s.remote_sdp:
            sdp = media.answer(s.remote_sdp)
            if sdp is None:
                self._log("no acceptable media in the offer")
                s.reject(488)
                return False
        else:
            sdp = media.offer()
        s.answer(sdp)
        if self.answered is None:
            self.answered = self.engine.clock.now()
            self.caller.answered_at = self.answered
            self.emit("call.answered", {"by": "engine" if self.connected is None
                                        else self.connected.party})
        return True

    def play(self, names: list[str], on_done: Callable[[], None] | None = None,
             loop: bool = False) -> None:
        prompts = [p for p in (self.service.prompt(n) for n in names) if p is not None]
        media = self.caller.media
        if media is None or media.closed:
            return
        if not prompts:
            if on_done is not None:
                on_done()
            return
        media.endpoint.play(prompts, loop=loop, on_done=on_done)

    def hangup_after(self, names: list[str], status: int = 0) -> None:
        """Play `names` (answering first if needed), then hang up."""
        if names and self.answer_caller():
            self.play(names, on_done=lambda: self.end("played", by="engine"))
        elif status:
            self.reject(status)
        else:
            self.end("hangup", by="engine")

    def reject(self, status: int, reason: str | None = None,
               headers: tuple[tuple[str, str], ...] = ()) -> None:
        s = self.caller.session
        if isinstance(s, UasSession):
            s.reject(status, reason, headers)  # on_terminated ends the call
        else:
            self.end("rejected", by="engine")

    # -- digits ----------------------------------------------------------------------------
    def on_digit(self, digit: str, source: str) -> None:
        if self.is_over:
            return
        self._log("dtmf", digit=digit, source=source)
        if self.voicemail is not None:
            self.voicemail.on_digit(digit)
        elif self.walker is not None:
            self.service.ivr.on_digit(self, digit)
        elif self.connected is not None and source == "info":
            # bridged: RFC 4733 is relayed by the media bridge; INFO digits are passed on
            self.connected.session.send_info_dtmf(digit)

    # -- ending ----------------------------------------------------------------------------
    def end(self, reason: str, by: str, status: int | None = None) -> None:
        """Hang up everything that is still up and publish call.ended (once)."""
        if self.ended is not None:
            return
        now = self.engine.clock.now()
        self.ended = now
        self.end_reason = reason
        self.hangup_by = by
        for t in self.timers.values():
            t.cancel()
        self.timers.clear()
        if self.voicemail is not None:
            self.voicemail.stop()
        self.service.ivr.stop(self)  # its per-call prompt bookkeeping goes with the call
        if self.recording is not None:
            self.recording.stop()  # before the endpoints close: the last audio is flushed
        quality = {role: _media_stats(leg) for role, leg in
                   (("caller", self.caller), ("callee", self.connected)) if leg is not None}
        queues = self.engine.queues
        # the distributor hears first, so it cancels this caller's offers itself
        queues.caller_gone(self)
        for device in self.busy_devices:
            queues.device_free(device, self.ref)
        for leg in [self.caller, *self.callees]:
            if leg.session.active:
                leg.session.hangup()
            if leg.media is not None:
                leg.media.close()
        self.service.forget(self)
        talk = (now - self.connected.answered_at) if self.connected is not None \
            and self.connected.answered_at is not None else 0.0
        data = {
            "reason": reason, "hangup_by": by, "status": status, "direction": self.direction,
            "from": self.from_number, "to": self.to_number, "hotline": self.hotline,
            "account": self.account, "trunk": self.trunk, "sip_call_id": self.sip_call_id,
            "answered": self.answered is not None,
            "connected_to": self.connected.party if self.connected else None,
            "queue": self.queue,
            "route": self.route,
            "agent": self.connected.agent if self.connected else None,
            "media": {k: v for k, v in quality.items() if v},
            "duration": round(now - self.started, 3),
            "talk_time": round(talk, 3),
            "ring_time": round(((self.connected.answered_at or now) - self.started)
                               if self.connected else 0.0, 3),
        }
        self._log("call ended", reason=reason, hangup_by=by, status=status)
        self.emit("call.ended", data)

    # -- session events (SessionListener) ------------------------------------------------------
    def on_early(self, session: InviteSession, response: Response) -> None:
        if self.is_over:
            return
        caller = self.caller.session
        if isinstance(caller, UasSession) and caller.state in (SessionState.INITIAL,
                                                               SessionState.EARLY):
            caller.ring()
        elif self.connected is None and not self.ringback and self.walker is None \
                and self.voicemail is None:
            # the caller was answered already (IVR -> extension): no 180 reaches them, so
            # they hear the ringback tone until the callee answers (on_answered stops it)
            self.ringback = True
            self.play(["ringback"], loop=True)

    def on_answered(self, session: InviteSession, sdp: bytes) -> None:
        if self.is_over:
            return
        if session is self.caller.session:
            media = self.caller_media
            # a late offer: our 200 carried the offer, this ACK the answer
            if media.negotiated is None and not media.closed \
                    and not (sdp and media.accept_answer(sdp)):
                self._log("no usable SDP answer in the caller's ACK")
                self.end("no media", "engine", 488)
                return
            self._log("caller confirmed the answer")
            return
        leg = self._leg_of(session)
        if leg is None:
            return
        if self.connected is not None and self.connected is not leg:
            session.hangup()  # a second device answered after the first: it loses
            return
        assert leg.media is not None
        if not leg.media.accept_answer(sdp):
            self._log("unusable SDP answer from callee", party=leg.party)
            session.hangup()
            return
        self.connect(leg)

    def connect(self, leg: Leg) -> None:
        """`leg` answered and wins: stop everything else and bridge it with the caller."""
        assert leg.media is not None
        leg.answered_at = self.engine.clock.now()
        self.connected = leg
        self.cancel_timer("ring")
        for other in self.callees:
            if other is not leg and other.session.active:
                other.session.hangup()  # CANCEL the devices still ringing
        self.service.ivr.stop(self)
        if not self.answer_caller():
            return
        caller_ep = self.caller_media.endpoint
        caller_ep.stop_play()
        caller_ep.bridge(leg.media.endpoint)
        self._log("connected", party=leg.party, agent=leg.agent, queue=self.queue)
        self.emit("call.connected", {"party": leg.party, "trunk": leg.trunk,
                                     "agent": leg.agent, "queue": self.queue})
        from acd.recording import CallRecording, RecordingError, policy_for

        if policy_for(self) == "always":
            self.recording = CallRecording(self)
            try:
                self.recording.start()
            except RecordingError as exc:  # a media engine that cannot record (tests)
                self._log("recording not started", reason=str(exc))

    def on_offer(self, session: InviteSession, sdp: bytes) -> bytes | None:
        leg = self.caller if session is self.caller.session else self._leg_of(session)
        if leg is None or leg.media is None:
            return None
        return leg.media.answer(sdp)

    def on_info(self, session: InviteSession, content_type: str, body: bytes) -> None:
        if session is not self.caller.session:
            return
        for line in body.decode("utf-8", "replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip().lower() == "signal":
                digit = value.strip()[:1]
                if digit and digit in "0123456789*#ABCD":
                    self.on_digit(digit, "info")

    def on_terminated(self, session: InviteSession, reason: str, status: int | None) -> None:
        if self.is_over:
            return
        if session is self.caller.session:
            by = "caller" if reason in ("bye", "cancelled") else "engine"
            self.end(reason if reason != "bye" else "caller hung up", by, status)
            return
        leg = self._leg_of(session)
        if leg is None:
            return
        if leg is self.connected:
            self.end("callee hung up" if reason == "bye" else reason, "callee", status)
            return
        self.service.callee_failed(self, leg, reason, status)

    def _leg_of(self, session: InviteSession) -> Leg | None:
        for leg in self.callees:
            if leg.session is session:
                return leg
        return None


class CallService:
    """Creates calls from INVITEs and runs their destinations."""

    def __init__(self, engine: Engine, media: MediaEngineLike | None) -> None:
        self.engine = engine
        self.media = media
        self.calls: dict[str, Call] = {}
        from acd.ivr_runner import IvrRunner

        self.ivr = IvrRunner(self)
        self.prompts: dict[str, Any] = {}
        self._prompt_cache = PromptCache()
        # IPv6 media goes out from the IPv6 address SIP listens on (see DualStackMedia)
        self.advertise6: str | None = next(
            (la.host for la in engine.config.sip.listen if ":" in la.host), None)

    # configuration -----------------------------------------------------------------------
    def load_prompts(self, config: Any) -> None:
        """Decode the configured prompts (blocking, small files: at start and on reload) and
        add the tones we synthesise. A file that fails keeps its previous version."""
        prompts: dict[str, Any] = {"beep": BEEP, "ringback": RINGBACK, "moh": MOH}
        for name, path in config.prompts.files.items():
            try:
                prompts[name] = self._prompt_cache.get(path)
            except (OSError, ValueError) as exc:
                log.error("prompt unusable, keeping the previous one", prompt=name,
                          path=str(path), error=str(exc))
                if name in self.prompts:
                    prompts[name] = self.prompts[name]
        self.prompts = prompts

    def prompt(self, name: str) -> Any:
        p = self.prompts.get(name)
        if p is None:
            log.warning("prompt not loaded", prompt=name)
        return p

    def media_config(self) -> MediaConfig:
        m = self.engine.config.media
        return MediaConfig(advertise=m.advertise, codecs=tuple(str(c) for c in m.codecs),
                           telephone_event=m.telephone_event, advertise6=self.advertise6)

    def wall_time(self) -> datetime:
        """The engine clock's wall time: schedules follow the clock the engine runs on."""
        return datetime.fromtimestamp(self.engine.clock.wall(), UTC)

    def forget(self, call: Call) -> None:
        self.calls.pop(call.ref, None)
        self.engine.metrics.active_calls.set(len(self.calls))

    # new calls ---------------------------------------------------------------------------
    def on_invite(self, txn: ServerTransaction, req: Request, *, trunk: Trunk | None,
                  account: Account | None) -> None:
        eng = self.engine
        dest, from_number, to_number, hotline = self.route(req, trunk, account)
        if dest is None:
            txn.respond(txn.make_response(404))
            return
        if self.media is None:
            # an engine built without RTP (tests of the signalling alone) cannot take calls
            resp = txn.make_response(480)
            resp.headers.insert(len(resp.headers) - 1, "Reason",
                                'SIP;cause=480;text="no media engine"')
            txn.respond(resp)
            return
        ref = uuid.uuid4().hex
        session = UasSession(eng, txn, req, _Deferred())
        txn.app = session
        if not session.check_session_timer():
            return
        try:
            media = LegMedia(self.media, self.media_config(), session_id=_sess_id(ref),
                             ipv6=offer_is_ipv6(req.body) if req.body else ":" in txn.source[1])
        except OSError as exc:
            log.error("no RTP port available", call_id=req.call_id, error=str(exc))
            session.reject(503, "Service Unavailable (no media ports)")
            return
        direction = "inbound" if trunk is not None else (
            "outbound" if dest.kind == "outbound" else "internal")
        call = Call(self, ref, Leg(session, media, "caller", from_number), direction,
                    from_number, to_number, hotline=hotline,
                    account=account.user if account else None,
                    trunk=trunk.name if trunk else None, started=eng.clock.now())
        session.listener = call
        session.tag = call
        media.endpoint.on_dtmf = call.on_digit
        self.calls[ref] = call
        eng.metrics.active_calls.set(len(self.calls))
        call._log("call started", direction=direction, from_=from_number, to=to_number,
                  hotline=hotline, destination=f"{dest.kind}:{dest.target}")
        call.route = dest.reason if hotline is not None and dest.reason else "open"
        call.emit("call.started", {"direction": direction, "from": from_number,
                                   "to": to_number, "hotline": hotline,
                                   "trunk": call.trunk, "account": call.account,
                                   "sip_call_id": req.call_id, "route": call.route})
        if dest.kind in ("extension", "outbound") and req.body \
                and media.answer(req.body) is None:
            # an offer we could never answer fails now, not after a phone rang and answered
            call._log("no acceptable media in the offer")
            call.reject(488)
            return
        if account is not None:
            call.busy_devices.add(account.user)
            eng.queues.device_busy(account.user, call.ref)
        self.run(call, dest)

    def route(self, req: Request, trunk: Trunk | None, account: Account | None
              ) -> tuple[Destination | None, str, str, str | None]:
        """Where an INVITE goes, and the caller and called numbers as we will report them."""
        from acd import routing

        cfg = self.engine.config
        dialled = _user_of(req)
        caller_raw = _from_user(req)
        if trunk is not None:
            caller = routing.normalize(caller_raw, cfg.numbering) or caller_raw
            route = routing.route_inbound(cfg, dialled, caller, self.wall_time())
            return _from_inbound(route), caller, dialled, dialled
        assert account is not None
        caller = account.user
        if dialled in getattr(cfg, "feature_codes", {}):
            return Destination("feature", dialled), caller, dialled, None
        if dialled in self.engine.auth.accounts:
            return Destination("extension", dialled), caller, dialled, None
        if dialled in cfg.hotlines:
            route = routing.route_inbound(cfg, dialled, caller, self.wall_time())
            return _from_inbound(route), caller, dialled, dialled
        out = routing.route_outbound(cfg, account.user, dialled)
        if isinstance(out, routing.OutboundRoute):
            return (Destination("outbound", out.number, trunks=tuple(out.trunks),
                                caller_id=out.caller_id, rule=out.rule), caller,
                    out.normalized, None)
        log.info("outbound call refused", call_id=req.call_id, account=account.user,
                 dialled=dialled, reason=out.reason, detail=out.detail)
        if out.reason == "not allowed":
            # the toll-fraud guard: an account without permission never reaches a trunk
            return Destination("reject", status=403, reason="Forbidden (no permission for "
                               "this destination)"), caller, dialled, None
        return None, caller, dialled, None

    def run(self, call: Call, dest: Destination) -> None:
        """Send the call to its destination (also used when an IVR routes it on)."""
        kind = dest.kind
        if kind == "reject":
            call.reject(dest.status or 603, dest.reason or None)
        elif kind == "play":
            call.hangup_after([dest.prompt or dest.target])
        elif kind == "ivr":
            if call.answer_caller():
                self.ivr.start(call, dest.target)
        elif kind == "queue":
            self.engine.queues.join(call, dest.target)
        elif kind == "feature":
            self.feature_code(call, dest.target)
        elif kind == "extension":
            self.ring_extension(call, dest.target)
        elif kind == "voicemail":
            from acd.voicemail import Voicemail

            if call.answer_caller():
                call.voicemail = Voicemail(call, dest.target)
                call.voicemail.start()
        elif kind == "outbound":
            call.outbound_rule = dest.rule
            call.pending_trunks = list(dest.trunks)
            call.outbound_number = dest.target
            call.caller_id = dest.caller_id
            self.next_trunk(call)
        else:
            call.reject(500)

    def feature_code(self, call: Call, code: str) -> None:
        """*21 / *22 style codes: set the dialling agent's status, confirm, hang up."""
        status = self.engine.config.feature_codes[code]
        agent = self.engine.queues.device_agent.get(call.account or "")
        if agent is None:
            call._log("feature code from a device that is no agent's", code=code)
            call.reject(403, "Forbidden (not an agent)")
            return
        self.engine.queues.set_status(agent, status, reason=f"feature code {code}")
        prompt = f"status_{status}"
        call.hangup_after([prompt if prompt in self.prompts else "beep"])

    # placing calls -----------------------------------------------------------------------
    def ring_extension(self, call: Call, ext: str) -> None:
        bindings = self.engine.registrations.registrar.lookup(ext)
        if not bindings:
            call._log("extension not registered", extension=ext)
            if call.answered is None:
                call.reject(480, "Temporarily Unavailable (not registered)")
            else:
                call.hangup_after(["not_available"])
            return
        domain = self.engine.config.sip.domain
        call.busy_devices.add(ext)
        self.engine.queues.device_busy(ext, call.ref)
        for b in bindings:
            if not isinstance(b.uri, SipURI):
                continue
            target = binding_target(b)
            self.place(call, b.uri, target, party=ext, to_uri=f"sip:{ext}@{domain}",
                       from_user=call.from_number,
                       display=call.from_number)
        if not call.callees:
            call.reject(480)
            return
        call.after("ring", EXTENSION_RING_TIMEOUT, lambda: self._ring_timeout(call))

    def _ring_timeout(self, call: Call) -> None:
        """Nobody answered the extension in time: stop ringing; the caller gets 480."""
        if call.connected is not None or call.is_over:
            return
        call._log("extension ring timeout", seconds=EXTENSION_RING_TIMEOUT)
        for leg in call.callees:
            if leg.session.active:
                leg.session.hangup()  # CANCEL; callee_failed answers the caller

    def next_trunk(self, call: Call) -> None:
        while call.pending_trunks:
            name = call.pending_trunks.pop(0)
            trunk = self.engine.trunks.trunks.get(name)
            if trunk is None or trunk.outbound is None:
                continue
            ob = trunk.outbound
            host = format_host(ob.proxy.host)
            ruri = SipURI("sip", host, user=call.outbound_number, port=ob.proxy.port)
            target: Address = (ob.transport, ob.proxy.host, ob.proxy.port)
            from_domain = ob.from_domain or host
            self.place(call, ruri, target, party=call.outbound_number,
                       to_uri=f"sip:{call.outbound_number}@{host}",
                       from_user=call.caller_id or call.from_number, from_domain=from_domain,
                       trunk=name)
            return
        if call.answered is None:
            call.reject(503, "Service Unavailable (no trunk answered)")
        else:
            call.end("no trunk", "engine", 503)

    def place(self, call: Call, ruri: SipURI, target: Address, *, party: str, to_uri: str,
              from_user: str, display: str | None = None, from_domain: str | None = None,
              trunk: str | None = None, extra: tuple[tuple[str, str], ...] = (),
              start: bool = True) -> Leg | None:
        """Send an INVITE for `call` to `ruri` at `target`, with a fresh RTP endpoint
        (`start=False`: built but not sent, for a caller that sets its listener first)."""
        eng = self.engine
        assert self.media is not None
        try:
            media = LegMedia(self.media, self.media_config(),
                             session_id=_sess_id(uuid.uuid4().hex), ipv6=":" in target[1])
        except OSError as exc:
            log.error("no RTP port for callee leg", call_id=call.sip_call_id, error=str(exc))
            return None
        sdp = media.offer()
        domain = from_domain or eng.config.sip.domain
        h = Headers()
        h.add("Via", eng.via(target))
        h.add("Max-Forwards", "70")
        name = f'"{_quote(display)}" ' if display else ""
        h.add("From", f"{name}<sip:{from_user}@{domain}>;tag={eng.ids.tag()}")
        h.add("To", f"<{to_uri}>")
        h.add("Call-ID", eng.ids.call_id())
        h.add("CSeq", "1 INVITE")
        h.add("Contact", eng.contact(target))
        h.add("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE")
        h.add("User-Agent", eng.config.sip.user_agent)
        h.add("X-ACD-Call-ID", call.ref)
        for k, v in extra:
            h.add(k, v)
        h.add("Content-Length", "0")
        invite = Request("INVITE", ruri, h)
        invite.set_body(sdp, "application/sdp")
        session = UacSession(eng, invite, target, call)
        leg = Leg(session, media, "callee", party, trunk=trunk)
        session.tag = leg
        call.callees.append(leg)
        call._log("placing call", party=party, target=f"{target[0]}:{target[1]}:{target[2]}",
                  ruri=str(ruri))
        if start:
            session.start()
        return leg

    def callee_failed(self, call: Call, leg: Leg, reason: str, status: int | None) -> None:
        if leg.media is not None:
            leg.media.close()
        if any(other.session.active for other in call.callees if other is not leg):
            return  # other devices still ringing
        if call.connected is not None:
            return
        call._log("callee leg failed", party=leg.party, reason=reason, status=status)
        if call.direction == "outbound" and leg.trunk is not None and (
                reason == "timeout" or (status is not None and status >= 500)):
            self.next_trunk(call)  # fail over on 5xx or timeout
            return
        if call.answered is None:
            code = _FAILURE_FOR_CALLER.get(status or 0, 480)
            call.reject(code)
        else:
            call.hangup_after(["not_available"])

    # views --------------------------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        now = self.engine.clock.now()
        return [{
            "call": c.ref, "sip_call_id": c.sip_call_id, "direction": c.direction,
            "from": c.from_number, "to": c.to_number, "hotline": c.hotline,
            "account": c.account, "trunk": c.trunk, "queue": c.queue,
            "state": ("connected" if c.connected else "queued" if c.queue
                      else "ivr" if c.walker else "ringing" if c.callees else "routing"),
            "agent": c.connected.agent if c.connected else None,
            "connected_to": c.connected.party if c.connected else None,
            "duration": round(now - c.started, 1),
            "recording": c.recording.state if c.recording is not None else None,
        } for c in self.calls.values()]

    # engine hooks ------------------------------------------------------------------------
    def shutdown(self) -> None:
        for call in list(self.calls.values()):
            call.end("shutdown", "engine")


class _Deferred:
    """Listener placeholder until the Call that owns a session exists."""

    def on_early(self, session: InviteSession, response: Response) -> None: ...

    def on_answered(self, session: InviteSession, sdp: bytes) -> None: ...

    def on_offer(self, session: InviteSession, sdp: bytes) -> bytes | None:
        return None

    def on_info(self, session: InviteSession, content_type: str, body: bytes) -> None: ...

    def on_terminated(self, session: InviteSession, reason: str, status: int | None) -> None:
        ...


def _media_stats(leg: Leg) -> dict[str, Any]:
    """Packets and loss of a leg's RTP, for the CDR's quality columns."""
    stats = getattr(leg.media.endpoint, "stats", None) if leg.media is not None else None
    if not isinstance(stats, dict):
        return {}
    return {"packets_in": stats.get("packets_in"), "packets_out": stats.get("packets_out"),
            "lost": stats.get("lost"), "jitter_ms": round((stats.get("jitter") or 0) * 1000, 2)}


def _sess_id(ref: str) -> int:
    return int(ref[:12], 16)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _user_of(req: Request) -> str:
    uri = req.uri
    if isinstance(uri, SipURI):
        return uri.user_unescaped or ""
    return uri.user or ""


def _from_user(req: Request) -> str:
    try:
        uri = req.from_.uri
    except HeaderError:
        return ""
    if isinstance(uri, SipURI):
        return uri.user_unescaped or ""
    return getattr(uri, "user", None) or ""


def _from_inbound(route: Any) -> Destination | None:
    """Map acd.routing's inbound decision onto a Destination."""
    if route is None:
        return None
    kind = route.kind
    outcome = getattr(route, "outcome", "open")  # open | out_of_hours | blacklisted | no_route
    if kind == "reject":
        return Destination("reject", status=route.status or 603, reason=outcome)
    if kind == "play":
        return Destination("play", route.target, prompt=route.target, reason=outcome)
    return Destination(kind, route.target, reason=outcome)
