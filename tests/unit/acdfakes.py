"""Helpers for the ACD-on-calls tests: agents' phones that keep what the engine sends them per
leg, trunk callers into a queue, and the "nothing left" check that includes QueueService.

`AgentPhone` wraps callfakes' `Phone`: every INVITE the engine sends becomes a `Ring`, and the
BYE, CANCEL and ACK requests that follow are kept on that Ring (callfakes' `Phone.incoming`
drops them, and the tests here are mostly about them).
"""

from __future__ import annotations

from collections.abc import Sequence

from acd.events import Event
from sip.message import Request

from .callfakes import CallRig, FakeEndpoint, InCall, OutCall, Phone, sdp_fields

__all__ = ["AgentPhone", "Ring", "bye_to", "caller_ep", "nothing_left", "queue_call",
           "queue_state"]


class Ring:
    """One INVITE the engine sent to an agent's phone, and that phone's side of it."""

    def __init__(self, phone: AgentPhone, call: InCall) -> None:
        self.phone = phone
        self.call = call
        # new, ringing, answered, refused, cancelled, byed (we hung up), ended (engine hung up)
        self.state = "new"
        self.requests: list[Request] = []  # in-dialog and CANCEL requests from the engine
        self._handled = 0

    def __repr__(self) -> str:
        return f"<Ring {self.phone.user}:{self.phone.port} {self.state} {self.methods()}>"

    @property
    def invite(self) -> Request:
        return self.call.invite

    @property
    def header(self) -> dict[str, str]:
        inv = self.invite
        return {name: inv.headers.get(name) or "" for name in (
            "x-acd-queue", "x-acd-hotline", "x-acd-agent", "x-acd-call-id", "from")}

    @property
    def rtp_port(self) -> int:
        """The engine's RTP port for this leg (in its SDP offer)."""
        return int(sdp_fields(self.invite.body)["port"])

    def endpoint(self, rig: CallRig) -> FakeEndpoint:
        (ep,) = [e for e in rig.media.allocated if e.local_port == self.rtp_port]
        return ep

    def methods(self) -> list[str]:
        self.phone._sort()
        return [r.method for r in self.requests]

    @property
    def live(self) -> bool:
        return self.state in ("new", "ringing", "answered")

    # what the phone does -------------------------------------------------------------------
    def ring(self) -> None:
        self.call.ring()
        self.state = "ringing"
        self.phone._sort()

    def answer(self) -> None:
        self.call.answer()
        self.state = "answered"
        self.phone._sort()

    def refuse(self, status: int) -> None:
        """A final error response; the engine's ACK of it is hop-by-hop (not kept here)."""
        self.call.respond(status)
        self.state = "refused"
        self.phone._sort()

    def bye(self) -> None:
        self.call.bye()
        self.state = "byed"
        self.phone._sort()

    def handle(self) -> None:
        """Answer the engine's BYE and CANCEL as a well-behaved phone: 200 to each; 487 to the
        INVITE when a CANCEL found it unanswered."""
        self.phone._sort()
        for req in self.requests[self._handled:]:
            if req.method == "BYE":
                self.call.respond(200, to=req)
                if self.state != "byed":
                    self.state = "ended"
            elif req.method == "CANCEL":
                self.call.respond(200, to=req)
                if self.state in ("new", "ringing"):
                    self.call.respond(487)
                    self.state = "cancelled"
        self._handled = len(self.requests)
        self.phone._sort()


class AgentPhone:
    """A phone registered as `user` at its own port."""

    def __init__(self, rig: CallRig, user: str, port: int, *, rtp_port: int | None = None,
                 register: bool = True) -> None:
        self.rig = rig
        self.user = user
        self.port = port
        self.phone = Phone(rig, user, port=port, rtp_port=rtp_port or 30000 + 2 * port)
        self.rings: list[Ring] = []
        self._by_call: dict[str, Ring] = {}
        self._fresh: list[Ring] = []
        if register:
            self.register()

    def __repr__(self) -> str:
        return f"<AgentPhone {self.user}:{self.port}>"

    def register(self, expires: int = 3600) -> None:
        # the UA reads its responses from what the network took since the last take: older
        # messages to this address (a dialled call's) must not pass for them
        self.rig.net.take()
        resp = self.phone.ua.register_authed(expires=expires)
        assert resp.status == 200, resp.status

    def unregister(self) -> None:
        self.register(expires=0)

    def dial(self, number: str) -> OutCall:
        """A call from this phone. Its own `Phone` at the same address reads the responses,
        so the calls the engine places here still reach `poll`."""
        dialer = Phone(self.rig, self.user, port=self.port, rtp_port=self.phone.rtp_port + 1000)
        return dialer.call(number)

    def _sort(self) -> None:
        for s in self.phone.inbox():
            msg = s.msg
            if not isinstance(msg, Request):
                continue
            ring = self._by_call.get(msg.call_id)
            if msg.method == "INVITE" and ring is None:
                ring = Ring(self, InCall(self.phone, msg))
                self._by_call[msg.call_id] = ring
                self.rings.append(ring)
                self._fresh.append(ring)
            elif ring is not None and msg.method != "INVITE":
                ring.requests.append(msg)

    def poll(self) -> list[Ring]:
        """Sort what the engine sent here since the last look; the Rings no poll returned yet
        (a Ring's own actions sort the inbox too, without claiming new Rings)."""
        self._sort()
        fresh, self._fresh = self._fresh, []
        return fresh

    def live(self) -> list[Ring]:
        self._sort()
        return [r for r in self.rings if r.live]

    def handle_all(self) -> None:
        self._sort()
        for r in self.rings:
            r.handle()


# -- callers ------------------------------------------------------------------------------


def queue_call(rig: CallRig, caller: str = "0912345678", number: str = "19002000"
               ) -> tuple[OutCall, FakeEndpoint]:
    """A trunk call to a queue hotline, answered (200) and ACKed; the caller's endpoint."""
    n = len(rig.media.allocated)
    c = Phone.trunk(rig, caller).call(number)
    assert c.statuses == [100, 200], c.statuses
    c.ack()
    return c, rig.media.allocated[n]


def caller_ep(rig: CallRig, c: OutCall) -> FakeEndpoint:
    """The caller's endpoint: the one whose port the engine's answer to `c` names."""
    final = c.final
    assert final is not None
    port = int(sdp_fields(final.body)["port"])
    (ep,) = [e for e in rig.media.allocated if e.local_port == port]
    return ep


def bye_to(c: OutCall) -> Request:
    """The BYE the engine sent to the caller; answered 200 as a phone would."""
    c.read()
    byes = [r for r in c.received if r.method == "BYE"]
    assert len(byes) == 1, [r.method for r in c.received]
    c.answer_request(byes[0])
    return byes[0]


# -- state --------------------------------------------------------------------------------


def queue_state(rig: CallRig) -> dict[str, object]:
    """What of a queue call could outlive it in QueueService; empty when nothing does."""
    qs = rig.engine.queues
    state: dict[str, object] = {
        "queue callers": dict(qs.callers),
        "offers": dict(qs.offers),
        "agent calls": dict(qs.agent_calls),
        "external calls": {a: refs for a, refs in qs._external.items() if refs},
        "busy devices": dict(qs._busy_agent),
    }
    return {k: v for k, v in state.items() if v}


def nothing_left(rig: CallRig) -> None:
    """No call, session, endpoint, IVR or queue state; once timers ran out, no transaction."""
    assert rig.call_state() == {}
    assert queue_state(rig) == {}
    rig.advance(40.0)
    assert rig.engine.layer.clients == {}
    assert rig.engine.layer.servers == {}
    assert rig.call_state() == {}
    assert queue_state(rig) == {}


def of_type(events: Sequence[Event], *types: str) -> list[Event]:
    return [e for e in events if e.type in types]
