"""INVITE sessions (RFC 3261 §13-§15, RFC 3264 usage, RFC 4028 session timers): one call leg
as a user agent, either side.

`UasSession` answers an incoming INVITE: provisional responses, a 2xx retransmitted until the
ACK arrives (§13.3.1.4; BYE when it never does), CANCEL before the answer (487), and
`UacSession` places an outgoing one: early dialogs from tagged provisionals, ACK for every
2xx (re-sent for retransmissions), CANCEL only once a provisional has arrived (§9.1), ACK and
BYE for a 2xx that wins the race against our CANCEL. Both handle in-dialog BYE, re-INVITE
and UPDATE offers (491 on glare), INFO and OPTIONS, and send BYE and re-INVITEs (hold).

The session owns its `Dialog` and talks to a `SessionListener` (the call): it reports what
happened; the listener decides. Everything runs on the injected `SessionHost` (transaction
layer, timers, clock, identifiers, our Via/Contact): no sockets, no asyncio.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum
from typing import Protocol

from sip.builder import IdSource, make_cancel
from sip.dialog import Address, Dialog, DialogId
from sip.headers import split_list
from sip.message import Request, Response
from sip.timers import TimerHandle, Timers
from sip.transaction import ClientTransaction, ServerTransaction, State, TransactionLayer

__all__ = ["SessionHost", "SessionListener", "SessionState", "UacSession", "UasSession"]

MIN_SE = 90  # RFC 4028 §4: the smallest session interval we accept


class SessionState(Enum):
    INITIAL = "initial"
    EARLY = "early"  # a provisional with a To tag: early dialog
    ANSWERED = "answered"  # UAS: 2xx sent, waiting for the ACK
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class SessionHost(Protocol):
    layer: TransactionLayer
    timers: Timers
    ids: IdSource

    @property
    def user_agent(self) -> str: ...

    def now(self) -> float: ...

    def via(self, peer: Address) -> str:
        """A Via value for a new request towards `peer`, with a fresh branch."""
        ...

    def contact(self, peer: Address) -> str: ...

    def dialog_created(self, session: InviteSession) -> None: ...

    def session_ended(self, session: InviteSession) -> None: ...


class SessionListener(Protocol):
    def on_early(self, session: InviteSession, response: Response) -> None: ...

    def on_answered(self, session: InviteSession, sdp: bytes) -> None:
        """UAC: a 2xx arrived (and was ACKed). UAS: the ACK for our 2xx arrived."""
        ...

    def on_offer(self, session: InviteSession, sdp: bytes) -> bytes | None:
        """A re-INVITE/UPDATE offer: return our answer, or None to refuse it (488)."""
        ...

    def on_info(self, session: InviteSession, content_type: str, body: bytes) -> None: ...

    def on_terminated(self, session: InviteSession, reason: str, status: int | None) -> None:
        """Always the last call: reason is cancelled, bye, rejected, failed, timeout, no-ack,
        session-expired or hangup (ours); status the SIP status where one applies."""
        ...


_DTMF_TYPES = ("application/dtmf-relay", "application/dtmf")


class InviteSession:
    """What both sides share: the dialog, in-dialog requests, hang-up, re-INVITE."""

    uac = False

    def __init__(self, host: SessionHost, listener: SessionListener) -> None:
        self.host = host
        self.listener = listener
        self.state = SessionState.INITIAL
        self.dialog: Dialog | None = None
        self.remote_sdp = b""
        self.local_sdp = b""
        self.end_reason: str | None = None
        self._reinvite_out: ClientTransaction | None = None
        self._reinvite_in: ServerTransaction | None = None
        self._timers: dict[str, TimerHandle] = {}
        self.session_expires: int | None = None
        self.tag: object = None  # for the listener's own bookkeeping
        self._hangup_pending = False  # hung up while our 2xx waits for its ACK

    # helpers -----------------------------------------------------------------------------
    @property
    def id(self) -> DialogId | None:
        return self.dialog.id if self.dialog else None

    @property
    def active(self) -> bool:
        return self.state is not SessionState.TERMINATED

    def _after(self, name: str, delay: float, fn: Callable[[], None]) -> None:
        self._cancel_timer(name)
        self._timers[name] = self.host.timers.call_at(self.host.now() + delay, fn)

    def _cancel_timer(self, name: str) -> None:
        t = self._timers.pop(name, None)
        if t is not None:
            t.cancel()

    def _terminate(self, reason: str, status: int | None = None) -> None:
        if self.state is SessionState.TERMINATED:
            return
        self.state = SessionState.TERMINATED
        self.end_reason = reason
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()
        self.host.session_ended(self)
        self.listener.on_terminated(self, reason, status)

    def _send_in_dialog(self, method: str, body: bytes = b"", content_type: str | None = None,
                        owner: object | None = None) -> ClientTransaction | None:
        d = self.dialog
        if d is None or d.peer is None:
            return None
        req = d.new_request(method, self.host.via(d.peer), self.host.contact(d.peer))
        req.headers.insert(len(req.headers) - 1, "User-Agent", self.host.user_agent)
        if body:
            req.set_body(body, content_type or "application/sdp")
        return self.host.layer.send_request(req, d.peer, owner or _Ignore())  # type: ignore[arg-type]

    # commands ----------------------------------------------------------------------------
    def hangup(self) -> None:
        """End the call from our side: BYE once confirmed (subclasses handle earlier states)."""
        if self.state is SessionState.ANSWERED:
            # §15: no BYE before the ACK of our 2xx (or its 64*T1 timeout), or the BYE may
            # overtake the 2xx and the caller be left with a call we think is over
            self._hangup_pending = True
            return
        if self.state is SessionState.CONFIRMED:
            self._send_in_dialog("BYE")
            self._terminate("hangup")

    def reinvite(self, sdp: bytes) -> bool:
        """Send a re-INVITE with a new offer (hold/unhold). False if one is already pending."""
        if self.state is not SessionState.CONFIRMED or self._reinvite_out is not None \
                or self._reinvite_in is not None:
            return False
        self.local_sdp = sdp
        self._reinvite_out = self._send_in_dialog("INVITE", sdp, owner=_ReinviteOwner(self, sdp))
        return True

    def send_info_dtmf(self, digit: str, duration_ms: int = 160) -> None:
        body = f"Signal={digit}\r\nDuration={duration_ms}\r\n".encode()
        self._send_in_dialog("INFO", body, "application/dtmf-relay")

    # in-dialog requests ------------------------------------------------------------------
    def on_request(self, txn: ServerTransaction, req: Request) -> None:
        d = self.dialog
        assert d is not None
        if not d.accept_remote_cseq(req.cseq.seq):
            txn.respond(txn.make_response(500, "Out of order CSeq"))
            return
        method = req.method
        if method == "BYE":
            txn.respond(self._response(txn, 200))
            self._terminate("bye")
        elif method == "INVITE":
            self._on_reinvite(txn, req)
        elif method == "UPDATE":
            self._on_update(txn, req)
        elif method == "INFO":
            ctype = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
            if req.body and ctype not in _DTMF_TYPES:
                resp = self._response(txn, 415)
                resp.headers.insert(len(resp.headers) - 1, "Accept", ", ".join(_DTMF_TYPES))
                txn.respond(resp)
                return
            txn.respond(self._response(txn, 200))
            if req.body:
                self.listener.on_info(self, ctype, req.body)
        elif method == "OPTIONS":
            txn.respond(self._response(txn, 200))
        else:
            txn.respond(self._response(txn, 405))

    def _response(self, txn: ServerTransaction, status: int, reason: str | None = None) -> Response:
        if self.dialog is not None:
            txn.to_tag = self.dialog.local_tag
        return txn.make_response(status, reason)

    def _on_reinvite(self, txn: ServerTransaction, req: Request) -> None:
        if self._reinvite_out is not None:
            txn.respond(self._response(txn, 491))  # glare (RFC 3261 §14.2)
            return
        if self._reinvite_in is not None or self.state is not SessionState.CONFIRMED:
            resp = self._response(txn, 500, "Server Internal Error (re-INVITE pending)")
            resp.headers.insert(len(resp.headers) - 1, "Retry-After", "1")
            txn.respond(resp)
            return
        assert self.dialog is not None
        self.dialog.refresh_target(req)
        answer = self.local_sdp
        if req.body:
            got = self.listener.on_offer(self, req.body)
            if got is None:
                txn.respond(self._response(txn, 488))
                return
            self.remote_sdp, answer = req.body, got
            self.local_sdp = got
        self._session_refreshed(req)
        resp = self._ok_with_sdp(txn, answer)
        self._reinvite_in = txn
        txn.respond(resp)
        self._start_2xx_retransmission(txn, resp, reinvite=True)

    def _on_update(self, txn: ServerTransaction, req: Request) -> None:
        answer = b""
        if req.body:
            if self._reinvite_out is not None:
                txn.respond(self._response(txn, 491))
                return
            got = self.listener.on_offer(self, req.body)
            if got is None:
                txn.respond(self._response(txn, 488))
                return
            self.remote_sdp, answer = req.body, got
            self.local_sdp = got
        self._session_refreshed(req)
        txn.respond(self._ok_with_sdp(txn, answer))

    def _ok_with_sdp(self, txn: ServerTransaction, sdp: bytes) -> Response:
        resp = self._response(txn, 200)
        assert self.dialog is not None and self.dialog.peer is not None
        h = resp.headers
        h.insert(len(h) - 1, "Contact", self.host.contact(self.dialog.peer))
        if self.session_expires:
            h.insert(len(h) - 1, "Session-Expires", f"{self.session_expires};refresher=uac")
            h.insert(len(h) - 1, "Require", "timer")
        if sdp:
            resp.set_body(sdp, "application/sdp")
        return resp

    # 2xx retransmission until ACK (§13.3.1.4) ---------------------------------------------
    def _start_2xx_retransmission(self, txn: ServerTransaction, resp: Response, *,
                                  reinvite: bool) -> None:
        cfg = self.host.layer.config
        interval = cfg.t1

        def retransmit() -> None:
            nonlocal interval
            txn.respond(resp)
            interval = min(2 * interval, cfg.t2)
            self._after("2xx", interval, retransmit)

        def give_up() -> None:
            # its own timer: checked only at retransmissions, 64*T1 would pass unnoticed
            # until the next one (T2 later)
            self._cancel_timer("2xx")
            if reinvite:
                self._reinvite_in = None
            self._send_in_dialog("BYE")
            self._terminate("no-ack", 408)

        self._after("2xx", interval, retransmit)
        self._after("2xx-deadline", cfg.b, give_up)

    def on_ack(self, req: Request) -> None:
        if self._reinvite_in is not None:
            if req.cseq.seq != self._reinvite_in.request.cseq.seq:
                return  # a late ACK of an earlier 2xx: not the one we are waiting for
            self._reinvite_in = None
            self._cancel_timer("2xx")
            self._cancel_timer("2xx-deadline")
            return
        if self.state is SessionState.ANSWERED:
            self._cancel_timer("2xx")
            self._cancel_timer("2xx-deadline")
            self.state = SessionState.CONFIRMED
            if self._hangup_pending:
                self._send_in_dialog("BYE")
                self._terminate("hangup")
                return
            if req.body:  # late offer: our 2xx carried the offer, the ACK the answer
                self.remote_sdp = req.body
            self.listener.on_answered(self, self.remote_sdp)

    # session timers (RFC 4028), as the non-refresher ----------------------------------------
    def _session_refreshed(self, req: Request) -> None:
        if self.session_expires:
            # the non-refresher ends the session when SE - min(32, SE/3) passes unrefreshed
            se = self.session_expires
            self._after("session", se - min(32, se / 3), self._session_expired)

    def _session_expired(self) -> None:
        self._send_in_dialog("BYE")
        self._terminate("session-expired", 408)

    # re-INVITE we sent ---------------------------------------------------------------------
    def _retry_reinvite(self, sdp: bytes) -> None:
        self.reinvite(sdp)

    def _reinvite_response(self, txn: ClientTransaction, resp: Response, sdp: bytes) -> None:
        if resp.status < 200:
            return
        d = self.dialog
        if 200 <= resp.status < 300 and d is not None and d.peer is not None:
            ack = d.ack(txn.request.cseq.seq, self.host.via(d.peer))
            self.host.layer.send_stateless(ack.serialize(), d.peer)
            if self._reinvite_out is txn:
                self._reinvite_out = None
                d.refresh_target(resp)
                if resp.body:
                    self.remote_sdp = resp.body
            return
        if self._reinvite_out is not txn:
            return
        self._reinvite_out = None
        if resp.status == 491:
            # §14.1: retry after 2.1-4 s if we own the Call-ID (we are the UAC), else 0-2 s
            jitter = self.host.ids.fraction()
            delay = 2.1 + 1.9 * jitter if self.uac else 2.0 * jitter
            self._after("glare", delay, lambda: self._retry_reinvite(sdp))
        elif resp.status in (408, 481):
            self.hangup()


class UasSession(InviteSession):
    """The leg of a call that arrived: we are the UAS of its INVITE."""

    uac = False

    def __init__(self, host: SessionHost, txn: ServerTransaction, invite: Request,
                 listener: SessionListener) -> None:
        super().__init__(host, listener)
        self.txn = txn
        self.invite = invite
        self.remote_sdp = invite.body
        self.local_tag = host.ids.tag()
        txn.to_tag = self.local_tag
        self._se_requested = self._requested_session_expires(invite)

    @staticmethod
    def _requested_session_expires(invite: Request) -> int | None:
        se = invite.headers.get("session-expires") or invite.headers.get("x")
        supported = [t.lower() for v in invite.headers.get_all("supported") for t in split_list(v)]
        if se is None or "timer" not in supported:
            return None
        value = se.split(";")[0].strip()
        return int(value) if value.isdigit() else None

    def _ensure_dialog(self) -> Dialog:
        if self.dialog is None:
            self.dialog = Dialog.from_uas(self.invite, self.local_tag, self.txn.source)
            self.host.dialog_created(self)
        return self.dialog

    def check_session_timer(self) -> bool:
        """RFC 4028: refuse (422) an interval below our minimum; True if the INVITE may go on."""
        se = self._se_requested
        if se is not None and se < MIN_SE:
            resp = self.txn.make_response(422)
            resp.headers.insert(len(resp.headers) - 1, "Min-SE", str(MIN_SE))
            self.txn.respond(resp)
            self._terminate("rejected", 422)
            return False
        return True

    def ring(self, sdp: bytes = b"") -> None:
        """180 Ringing, or 183 Session Progress with early media SDP."""
        if self.state not in (SessionState.INITIAL, SessionState.EARLY):
            return
        self._ensure_dialog()
        resp = self.txn.make_response(183 if sdp else 180)
        assert self.dialog is not None and self.dialog.peer is not None
        resp.headers.insert(len(resp.headers) - 1, "Contact", self.host.contact(self.dialog.peer))
        if sdp:
            self.local_sdp = sdp
            resp.set_body(sdp, "application/sdp")
        self.state = SessionState.EARLY
        self.txn.respond(resp)

    def answer(self, sdp: bytes, extra_headers: Sequence[tuple[str, str]] = ()) -> None:
        """200 OK with our SDP, retransmitted until the ACK arrives."""
        if self.state not in (SessionState.INITIAL, SessionState.EARLY):
            return
        self._ensure_dialog()
        self.local_sdp = sdp
        if self._se_requested is not None:
            self.session_expires = max(self._se_requested, MIN_SE)
        resp = self._ok_with_sdp(self.txn, sdp)
        for name, value in extra_headers:
            resp.headers.insert(len(resp.headers) - 1, name, value)
        self.state = SessionState.ANSWERED
        self.txn.respond(resp)
        self._start_2xx_retransmission(self.txn, resp, reinvite=False)
        if self.session_expires:
            self._session_refreshed(self.invite)

    def reject(self, status: int, reason: str | None = None,
               headers: Sequence[tuple[str, str]] = ()) -> None:
        if self.state not in (SessionState.INITIAL, SessionState.EARLY):
            return
        resp = self.txn.make_response(status, reason)
        for name, value in headers:
            resp.headers.insert(len(resp.headers) - 1, name, value)
        self.txn.respond(resp)
        self._terminate("rejected", status)

    def hangup(self) -> None:
        if self.state in (SessionState.INITIAL, SessionState.EARLY):
            self.reject(480, "Temporarily Unavailable")
        else:
            super().hangup()

    def on_request(self, txn: ServerTransaction, req: Request) -> None:
        early_bye = req.method == "BYE" and self.state is SessionState.EARLY
        super().on_request(txn, req)
        if early_bye and self.state is SessionState.TERMINATED:
            # §15.1.2: a BYE on the early dialog leaves the INVITE to be answered, or its
            # server transaction would wait for a final response forever
            self.txn.respond(self.txn.make_response(487))

    def on_cancel(self) -> None:
        """The caller CANCELled: 487 for the INVITE if it is still unanswered."""
        if self.state in (SessionState.INITIAL, SessionState.EARLY):
            self.txn.respond(self.txn.make_response(487))
            self._terminate("cancelled", 487)


class UacSession(InviteSession):
    """The leg we place: we are the UAC of its INVITE."""

    uac = True

    def __init__(self, host: SessionHost, invite: Request, target: Address,
                 listener: SessionListener) -> None:
        super().__init__(host, listener)
        self.invite = invite
        self.target = target
        self.local_sdp = invite.body
        self.txn: ClientTransaction | None = None
        self._cancel_wanted = False
        self._cancel_sent = False
        self._got_provisional = False
        self._released: set[str] = set()  # To tags of forks we ACKed and hung up
        self.final_status: int | None = None

    def start(self) -> None:
        self.txn = self.host.layer.send_request(self.invite, self.target, self)

    def cancel(self) -> None:
        """Stop ringing. Before any provisional the CANCEL waits for one (§9.1)."""
        if self.state in (SessionState.CONFIRMED, SessionState.ANSWERED):
            self.hangup()
            return
        if self.state is SessionState.TERMINATED or self._cancel_wanted:
            return
        self._cancel_wanted = True
        if self._got_provisional:
            self._send_cancel()

    def _send_cancel(self) -> None:
        if self._cancel_sent or self.txn is None:
            return
        self._cancel_sent = True
        cancel = make_cancel(self.invite)
        self.host.layer.send_request(cancel, self.target, _Ignore())
        # not one of the session's timers: it must outlive the session (a BYE on the early
        # dialog ends the session with our INVITE still pending)
        self.host.timers.call_at(self.host.now() + self.host.layer.config.b,
                                 self._cancel_expired)

    def _cancel_expired(self) -> None:
        # §9.1: no final response 64*T1 after the CANCEL: the INVITE counts as cancelled.
        # Its transaction (Proceeding has no timer of its own) would otherwise stay forever.
        if self.txn is not None and self.txn.state in (State.CALLING, State.PROCEEDING):
            self.txn._terminate()
        self._terminate("cancelled", 408)

    def hangup(self) -> None:
        if self.state in (SessionState.INITIAL, SessionState.EARLY):
            self.cancel()
        else:
            super().hangup()

    def on_request(self, txn: ServerTransaction, req: Request) -> None:
        early_bye = req.method == "BYE" and self.state is SessionState.EARLY
        super().on_request(txn, req)
        if early_bye and self.state is SessionState.TERMINATED:
            # our INVITE is still pending: CANCEL it, or its transaction never ends
            self._cancel_wanted = True
            if self._got_provisional:
                self._send_cancel()

    # ClientOwner ---------------------------------------------------------------------------
    def on_response(self, txn: ClientTransaction, resp: Response) -> None:
        status = resp.status
        if status < 200:
            self._got_provisional = True  # 100 Trying counts (§9.1)
            if status > 100:
                if resp.to.tag and self.state is SessionState.INITIAL:
                    self.dialog = Dialog.from_uac(self.invite, resp, self.target)
                    self.state = SessionState.EARLY
                    self.host.dialog_created(self)
                if not self._cancel_wanted:
                    self.listener.on_early(self, resp)
            if self._cancel_wanted:
                self._send_cancel()
            return
        if status < 300:
            self._on_2xx(txn, resp)
            return
        self.final_status = status
        self._terminate("cancelled" if self._cancel_wanted else "failed", status)

    def _on_2xx(self, txn: ClientTransaction, resp: Response) -> None:
        tag = resp.to.tag or ""
        d = self.dialog
        if tag in self._released:
            # a retransmission from a fork we already hung up: the ACK is all it needs
            other = Dialog.from_uac(self.invite, resp, self.target)
            assert other.peer is not None
            ack = other.ack(self.invite.cseq.seq, self.host.via(other.peer))
            self.host.layer.send_stateless(ack.serialize(), other.peer)
            return
        if (d is not None and d.remote_tag != tag and d.confirmed) or (
                self.state is SessionState.TERMINATED and (d is None or d.remote_tag != tag)):
            # a second fork answered, or one answered after the session ended (a BYE on an
            # early dialog): ACK it and hang it up (§13.2.2.4), without registering it
            self._released.add(tag)
            self._ack_and_bye(Dialog.from_uac(self.invite, resp, self.target))
            return
        if d is None or d.remote_tag != tag:
            if d is not None:
                # another fork's early dialog: unregister it, only the answered one is kept
                self.host.session_ended(self)
            d = self.dialog = Dialog.from_uac(self.invite, resp, self.target)
            self.host.dialog_created(self)
        elif not d.confirmed:
            # §13.2.2.4: confirming an early dialog recomputes its route set from the 2xx
            d.route_set = list(reversed(resp.headers.get_list("record-route")))
        d.refresh_target(resp)
        assert d.peer is not None
        ack = d.ack(self.invite.cseq.seq, self.host.via(d.peer))
        self.host.layer.send_stateless(ack.serialize(), d.peer)
        if d.confirmed:
            return  # retransmitted 2xx: the ACK above was all it needed
        d.confirmed = True
        self.final_status = resp.status
        if self._cancel_wanted or self.state is SessionState.TERMINATED:
            # our CANCEL lost the race against this 2xx: the call is not wanted any more
            bye = d.new_request("BYE", self.host.via(d.peer), self.host.contact(d.peer))
            self.host.layer.send_request(bye, d.peer, _Ignore())
            self._terminate("cancelled", resp.status)
            return
        self.state = SessionState.CONFIRMED
        self.remote_sdp = resp.body
        self.listener.on_answered(self, resp.body)

    def _ack_and_bye(self, d: Dialog) -> None:
        assert d.peer is not None
        ack = d.ack(self.invite.cseq.seq, self.host.via(d.peer))
        self.host.layer.send_stateless(ack.serialize(), d.peer)
        bye = d.new_request("BYE", self.host.via(d.peer), self.host.contact(d.peer))
        self.host.layer.send_request(bye, d.peer, _Ignore())

    def on_stray_2xx(self, resp: Response) -> None:
        """A 2xx retransmission after the INVITE transaction ended (Timer M): ACK it again."""
        if self.dialog is not None and self.dialog.peer is not None:
            ack = self.dialog.ack(self.invite.cseq.seq, self.host.via(self.dialog.peer))
            self.host.layer.send_stateless(ack.serialize(), self.dialog.peer)

    def on_timeout(self, txn: ClientTransaction) -> None:
        if txn is self.txn:
            self._terminate("cancelled" if self._cancel_wanted else "timeout", 408)


class _Ignore:
    """Owner of requests whose outcome changes nothing (BYE, CANCEL, INFO)."""

    def on_response(self, txn: ClientTransaction, response: Response) -> None:
        return None

    def on_timeout(self, txn: ClientTransaction) -> None:
        return None


class _ReinviteOwner:
    __slots__ = ("sdp", "session")

    def __init__(self, session: InviteSession, sdp: bytes) -> None:
        self.session, self.sdp = session, sdp

    def on_response(self, txn: ClientTransaction, response: Response) -> None:
        self.session._reinvite_response(txn, response, self.sdp)

    def on_timeout(self, txn: ClientTransaction) -> None:
        if self.session._reinvite_out is txn:
            self.session._reinvite_out = None
            self.session.hangup()
