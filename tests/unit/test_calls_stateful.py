"""One call under any interleaving: the caller hangs up or cancels, the agent's phones ring,
answer, refuse or hang up, digits and prompt ends arrive, time passes (retransmissions,
Timer B, the 2xx that is never ACKed, IVR timeouts). Whatever happens, the call ends exactly
once, nothing of it (leg, endpoint, session, IVR state, transaction) outlives it, and no
endpoint is used after it was closed (the fake raises, as the real one does)."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from sip.message import Request

from .callfakes import CallRig, FakeEndpoint, InCall, OutCall, Phone


class AgentLeg:
    """An INVITE the engine sent to one of 1003's phones, and that phone's side of it."""

    def __init__(self, call: InCall) -> None:
        self.call = call
        self.state = "new"  # new, ringing, answered, refused, byed, cancelled
        self.pending: list[Request] = []  # requests from the engine not yet answered

    def handle(self) -> None:
        """Answer the engine's BYE and CANCEL as a well-behaved phone does."""
        for req in self.pending:
            if req.method == "BYE":
                self.call.respond(200, to=req)
                self.state = "byed"
            elif req.method == "CANCEL":
                self.call.respond(200, to=req)
                if self.state in ("new", "ringing"):
                    self.call.respond(487)
                    self.state = "cancelled"
        self.pending.clear()


class CallMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.rig = CallRig()
        self.phones = [Phone(self.rig, "1003", port=5071, rtp_port=31000),
                       Phone(self.rig, "1003", port=5072, rtp_port=31100)]
        for p in self.phones:
            p.register()
        self.legs: list[AgentLeg] = []
        self.caller: OutCall
        self.acked = False
        self.caller_gone = False  # the caller sent BYE or CANCEL
        self.agents_answer_at_end = True

    # -- plumbing ----------------------------------------------------------------------
    def poll(self) -> None:
        """Sort what the engine sent to the agents' phones by leg; the caller reads its own."""
        by_call = {leg.call.invite.call_id: leg for leg in self.legs}
        for phone in self.phones:
            for s in phone.inbox():
                msg = s.msg
                if not isinstance(msg, Request):
                    continue
                leg = by_call.get(msg.call_id)
                if msg.method == "INVITE" and leg is None:
                    leg = by_call[msg.call_id] = AgentLeg(InCall(phone, msg))
                    self.legs.append(leg)
                elif leg is not None and msg.method in ("BYE", "CANCEL"):
                    leg.pending.append(msg)
        self.caller.read()

    def caller_answered(self) -> bool:
        final = self.caller.final
        return final is not None and final.status == 200

    def ended_events(self) -> int:
        return len(self.rig.events_of("call.ended"))

    @property
    def caller_ep(self) -> FakeEndpoint | None:
        return self.rig.media.allocated[0] if self.rig.media.allocated else None

    # -- the call ----------------------------------------------------------------------
    @initialize(kind=st.sampled_from(["ivr", "extension"]), agents_answer_at_end=st.booleans())
    def place_call(self, kind: str, agents_answer_at_end: bool) -> None:
        # phones that stop answering (CANCEL, BYE) must not keep anything alive either
        self.agents_answer_at_end = agents_answer_at_end
        if kind == "ivr":
            self.caller = Phone.trunk(self.rig).call("19001000")
        else:
            self.caller = Phone(self.rig, "1001", port=5062).call("1003")
        self.poll()

    @precondition(lambda self: self.caller_answered() and not self.acked)
    @rule()
    def caller_acks(self) -> None:
        self.caller.ack()
        self.acked = True
        self.poll()

    @precondition(lambda self: self.caller_answered() and not self.caller_gone)
    @rule()
    def caller_byes(self) -> None:
        self.caller_gone = True
        self.caller.bye()
        self.poll()

    @precondition(lambda self: self.caller.final is None and not self.caller_gone)
    @rule()
    def caller_cancels(self) -> None:
        self.caller_gone = True
        self.caller.cancel()
        if self.caller.final is not None and self.caller.final.status >= 300:
            self.caller.ack_failure()
        self.poll()

    @rule(digit=st.sampled_from(["1", "2", "9", "9", "5", "#"]), info=st.booleans())
    def caller_presses(self, digit: str, info: bool) -> None:
        if info:
            if self.caller_answered() and not self.caller_gone:
                self.caller.info(digit)
        elif self.caller_ep is not None:
            self.caller_ep.dtmf(digit)
        self.poll()

    @rule()
    def prompt_ends(self) -> None:
        ep = self.caller_ep
        if ep is not None and ep.playing is not None and not ep.loop:
            ep.finish_prompt()
        self.poll()

    @rule()
    def caller_answers_requests(self) -> None:
        for req in self.caller.received:
            if req.method == "BYE":
                self.caller.answer_request(req)
                self.caller_gone = True
        self.caller.received.clear()
        self.poll()

    # -- the agent's phones ------------------------------------------------------------
    @rule(i=st.integers(0, 3), status=st.sampled_from([180, 200, 486, 503]))
    def agent_responds(self, i: int, status: int) -> None:
        if i >= len(self.legs):
            return
        leg = self.legs[i]
        if leg.state not in ("new", "ringing"):
            return
        if status == 200:
            leg.call.answer()
            leg.state = "answered"
        else:
            leg.call.respond(status)
            leg.state = "ringing" if status == 180 else "refused"
        self.poll()

    @rule(i=st.integers(0, 3))
    def agent_hangs_up(self, i: int) -> None:
        if i < len(self.legs) and self.legs[i].state == "answered":
            self.legs[i].call.bye()
            self.legs[i].state = "byed"
            self.poll()

    @rule(i=st.integers(0, 3))
    def agent_answers_requests(self, i: int) -> None:
        if i < len(self.legs):
            self.legs[i].handle()
            self.poll()

    @rule(seconds=st.sampled_from([0.5, 2.0, 5.0, 40.0]))
    def time_passes(self, seconds: float) -> None:
        self.rig.advance(seconds)
        self.poll()

    # -- what must always hold -----------------------------------------------------------
    @invariant()
    def ends_at_most_once_and_leaves_nothing(self) -> None:
        ended = self.ended_events()
        assert ended <= 1
        calls = self.rig.engine.calls.calls
        assert len(calls) + ended == 1  # live, or ended: never both, never neither
        if ended:
            assert self.rig.media.open_endpoints == []
            assert self.rig.engine.calls.ivr._prompt_token == {}
            for ep in self.rig.media.allocated:
                assert ep.bridged_to is None

    @invariant()
    def only_live_legs_hold_endpoints(self) -> None:
        for call in self.rig.engine.calls.calls.values():
            for leg in call.callees:
                if not leg.session.active:
                    assert leg.media is None or leg.media.closed

    def teardown(self) -> None:
        if not hasattr(self, "caller"):
            return
        # the caller hangs up if it still can; every phone then behaves until time runs out
        if self.ended_events() == 0:
            if self.caller_answered():
                if not self.acked:
                    self.caller.ack()
                self.caller.bye()
            elif self.caller.final is None:
                self.caller.cancel()
                if self.caller.final is not None and self.caller.final.status >= 300:
                    self.caller.ack_failure()
        for _ in range(6):
            self.poll()
            for leg in self.legs:
                if self.agents_answer_at_end:
                    leg.handle()
            for req in self.caller.received:
                if req.method == "BYE":
                    self.caller.answer_request(req)
            self.caller.received.clear()
            self.rig.advance(40.0)
        assert self.ended_events() == 1
        assert self.rig.call_state() == {}, self.rig.call_state()
        assert self.rig.engine.sessions == {}
        assert self.rig.engine.layer.clients == {}
        assert self.rig.engine.layer.servers == {}


TestCallMachine = CallMachine.TestCase
TestCallMachine.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)
