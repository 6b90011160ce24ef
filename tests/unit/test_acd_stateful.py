"""The ACD on calls under any interleaving: trunk callers arrive for sales (1001, 1002, longest
idle) and support (1003 on two phones, ring-all), hang up or finish their prompts; agents'
phones ring, answer, refuse, hang up, answer our CANCEL/BYE late or not at all for a while,
register and unregister, dial *21 / *22 or each other's extensions; time passes (ring
timeouts, retry delays, wrap-ups, announcements, max_wait to voicemail), sometimes with the
messages that arrive next read before the timers due (a lease running out as the answer comes).

Always: no phone has two live queue legs at once and an agent's live legs are for one caller;
an answered queue leg is bridged to its caller; an agent busy on another call is not rung for
the queue; QueueService holds at most one offer or connected call per agent; no call ends twice
nor any caller leaves its queue twice. At the end, once everyone hung up and time ran out, every call
ended exactly once and nothing of them survives (calls, sessions, endpoints, QueueService
state, transactions).

Phones send 100 Trying as soon as an INVITE arrives, as their transaction layer must (RFC 3261
§17.2.1): without any provisional our CANCEL has to wait (§9.1) and a silent phone would keep
an old INVITE while the distributor, which has moved on, offers it the next caller."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from .acdfakes import AgentPhone, Ring, bye_to, caller_ep, queue_state
from .callfakes import CallRig, FakeEndpoint, OutCall, Phone

# (user, port): 1003 has a desk phone and a mobile
PHONES = (("1001", 5071), ("1002", 5072), ("1003", 5073), ("1003", 5074))
ENDINGS = ("queue.connected", "queue.abandoned", "queue.timeout", "queue.full",
           "queue.exit_empty")


@dataclass(eq=False)
class Direct:
    """A call from an agent's phone to another agent's extension (not a queue call)."""

    out: OutCall
    agent: str
    acked: bool = False
    gone: bool = False


@dataclass(eq=False)
class Caller:
    out: OutCall
    ep: FakeEndpoint
    ref: str
    gone: bool = False  # we sent BYE, or answered the engine's


class AcdMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.rig = CallRig()
        self.phones = [AgentPhone(self.rig, user, port) for user, port in PHONES]
        self.registered = [True] * len(self.phones)
        self.callers: list[Caller] = []
        self.directs: list[Direct] = []
        self.numbers = itertools.count(1)

    # -- plumbing ----------------------------------------------------------------------
    def poll(self) -> None:
        for phone in self.phones:
            for ring in phone.poll():
                ring.call.respond(100)
        for c in self.callers:
            c.out.read()
        for d in self.directs:
            self.direct_reads(d)

    @staticmethod
    def direct_reads(d: Direct) -> None:
        """The dialling phone ACKs a final response and answers the engine's BYE."""
        out = d.out
        out.read()
        final = out.final
        if final is not None and not d.acked:
            d.acked = True
            if final.status == 200:
                out.ack()
            else:
                out.ack_failure()
                d.gone = True
        for req in out.received:
            if req.method == "BYE":
                out.answer_request(req)
                d.gone = True
        out.received.clear()

    def advance(self, seconds: float) -> None:
        """Time passes; each phone sends its 100 Trying within a quarter of a second."""
        end = self.rig.clock.now() + seconds
        while self.rig.clock.now() < end:
            self.rig.advance(min(0.25, end - self.rig.clock.now()))
            self.poll()

    def rings(self, i: int, *states: str) -> list[Ring]:
        self.poll()
        return [r for r in self.phones[i].rings if r.state in states]

    @staticmethod
    def live_queue_ring(r: Ring) -> bool:
        """Ringing or answered for a queue offer, and not ended by us (CANCEL or BYE)."""
        return r.live and r.header["x-acd-queue"] != "" and not (
            {"CANCEL", "BYE"} & set(r.methods()))

    def answer_byes(self, c: Caller) -> None:
        c.out.read()
        for req in c.out.received:
            if req.method == "BYE":
                c.out.answer_request(req)
                c.gone = True
        c.out.received.clear()

    # -- callers ---------------------------------------------------------------------------
    @precondition(lambda self: sum(not c.gone for c in self.callers) < 5)
    @rule(queue=st.sampled_from(["sales", "support"]))
    def caller_arrives(self, queue: str) -> None:
        number = f"0912{next(self.numbers):06d}"  # 0900000... is blacklisted
        n = len(self.rig.media.allocated)
        out = Phone.trunk(self.rig, number).call("19002000" if queue == "sales" else "19001000")
        assert out.statuses == [100, 200], out.statuses
        out.ack()
        ep = self.rig.media.allocated[n]
        if queue == "support":
            ep.dtmf("2")  # the IVR's main menu
        ref = self.rig.events_of("call.started")[-1].data["call"]
        self.callers.append(Caller(out, ep, ref))
        self.poll()

    @rule(j=st.integers(0, 9))
    def caller_hangs_up(self, j: int) -> None:
        if j < len(self.callers) and not self.callers[j].gone:
            c = self.callers[j]
            c.gone = True
            c.out.bye()
            self.poll()

    @rule(j=st.integers(0, 9))
    def caller_prompt_ends(self, j: int) -> None:
        """An announcement or the voicemail greeting played to its end."""
        if j < len(self.callers):
            ep = self.callers[j].ep
            if ep.playing is not None and not ep.loop:
                ep.finish_prompt()
                self.poll()

    @rule()
    def callers_answer_byes(self) -> None:
        for c in self.callers:
            self.answer_byes(c)

    # -- agents' phones --------------------------------------------------------------------
    @rule(i=st.integers(0, 3), action=st.sampled_from(
        ["ring", "answer", "answer", "busy", "decline", "hangup", "handle"]))
    def phone_acts(self, i: int, action: str) -> None:
        if action == "handle":
            self.phones[i].handle_all()
        elif action == "hangup":
            for r in self.rings(i, "answered"):
                if "BYE" not in r.methods():
                    r.bye()
                    break
        elif action == "ring":
            for r in self.rings(i, "new"):
                r.ring()
                break
        else:
            # a pending (unanswered) CANCEL is fair game: the 200 or error crosses it
            for r in self.rings(i, "new", "ringing"):
                if action == "answer":
                    r.answer()
                else:
                    r.refuse(486 if action == "busy" else 603)
                break
        self.poll()

    @rule(i=st.integers(0, 3))
    def phone_toggles_registration(self, i: int) -> None:
        if self.registered[i]:
            self.phones[i].unregister()
        else:
            self.phones[i].register()
        self.registered[i] = not self.registered[i]
        self.poll()

    @rule(i=st.sampled_from([0, 1, 2]), code=st.sampled_from(["*21", "*22"]))
    def agent_dials_feature_code(self, i: int, code: str) -> None:
        c = self.phones[i].dial(code)
        assert c.statuses[-1] == 200, c.statuses
        c.ack()
        ep = caller_ep(self.rig, c)
        ep.finish_prompt()
        bye_to(c)
        self.poll()

    @precondition(lambda self: sum(not d.gone for d in self.directs) < 2)
    @rule(i=st.integers(0, 3), extension=st.sampled_from(["1001", "1002", "1003"]))
    def agent_dials_an_extension(self, i: int, extension: str) -> None:
        phone = self.phones[i]
        if phone.user == extension:
            return
        self.directs.append(Direct(phone.dial(extension), phone.user))
        self.poll()

    @rule(k=st.integers(0, 5))
    def direct_caller_ends(self, k: int) -> None:
        if k < len(self.directs) and not self.directs[k].gone:
            d = self.directs[k]
            d.gone = True
            if d.out.final is None:
                d.out.cancel()
            elif d.out.final.status == 200:
                d.out.bye()
            self.poll()

    @rule(seconds=st.sampled_from([0.25, 1.0, 2.0, 5.0, 15.0, 30.0, 60.0]))
    def time_passes(self, seconds: float) -> None:
        self.advance(seconds)

    @rule(seconds=st.sampled_from([0.25, 2.0, 15.0]))
    def clock_jumps(self, seconds: float) -> None:
        """Time moves on but the timers due have not run yet: whatever arrives next is read
        first (an answer as its ring timeout falls due, say)."""
        self.rig.clock.advance(seconds)

    # -- what must always hold -----------------------------------------------------------
    @invariant()
    def one_live_queue_leg_per_phone_and_one_caller_per_agent(self) -> None:
        self.poll()
        by_agent: dict[str, set[str]] = {}
        for phone in self.phones:
            live = [r for r in phone.rings if self.live_queue_ring(r)]
            assert len(live) <= 1, (phone, live)
            for r in live:
                by_agent.setdefault(r.header["x-acd-agent"], set()).add(
                    r.header["x-acd-call-id"])
        for agent, callers in by_agent.items():
            assert len(callers) <= 1, (agent, callers)

    @invariant()
    def an_answered_queue_leg_is_bridged_to_its_caller(self) -> None:
        """Unless one side hung up, an agent's answer is the caller's conversation. (An
        answer after our CANCEL is the phone's mistake: we hang it up if its transaction is
        still there, and otherwise the phone ends it itself when no ACK comes, §13.3.1.4.)"""
        dist = self.rig.engine.queues.dist
        for phone in self.phones:
            for r in phone.rings:
                if r.state != "answered" or {"BYE", "CANCEL"} & set(r.methods()) \
                        or not r.header["x-acd-queue"]:
                    continue
                peer = r.endpoint(self.rig).bridged_to
                caller = next(c for c in self.callers if c.ref == r.header["x-acd-call-id"])
                assert peer is caller.ep, (r, peer)
                snap = dist.agent(r.header["x-acd-agent"])
                assert (snap.occupancy, snap.caller) == ("in_call", caller.ref), snap

    @invariant()
    def an_agent_on_another_call_is_not_rung_for_the_queue(self) -> None:
        """Seen from the phones (agent ids are the phones' users here): one that dialled an
        extension, or rings or talks for one, belongs to a busy agent."""
        busy = {d.agent for d in self.directs if not d.gone}
        busy |= {phone.user for phone in self.phones for r in phone.rings
                 if r.live and not r.header["x-acd-queue"]
                 and not {"CANCEL", "BYE"} & set(r.methods())}
        for phone in self.phones:
            for r in phone.rings:
                if self.live_queue_ring(r) and r.state != "answered":
                    assert r.header["x-acd-agent"] not in busy, (r, busy)

    @invariant()
    def queue_service_holds_one_offer_or_call_per_agent(self) -> None:
        qs = self.rig.engine.queues
        agents = [entry.offer.agent for entry in qs.offers.values()]
        agents += list(qs.agent_calls.values())
        assert len(agents) == len(set(agents)), (qs.offers, qs.agent_calls)
        for ref in qs.callers:
            assert ref not in qs.agent_calls

    @invariant()
    def nothing_ends_twice(self) -> None:
        ended = Counter(e.data["call"] for e in self.rig.events_of("call.ended"))
        assert all(n == 1 for n in ended.values()), ended
        left = Counter(e.data["caller"] for e in self.rig.events if e.type in ENDINGS)
        assert all(n == 1 for n in left.values()), left
        calls = self.rig.engine.calls.calls
        assert not set(ended) & set(calls)  # an ended call is gone from the engine
        assert not set(left) & set(self.rig.engine.queues.callers)

    def teardown(self) -> None:
        # every caller still there hangs up; the phones behave until time runs out
        for c in self.callers:
            self.answer_byes(c)
            if not c.gone and c.ref in self.rig.engine.calls.calls:
                c.out.bye()
            c.gone = True
        for d in self.directs:
            self.direct_reads(d)
            if not d.gone:
                d.gone = True
                if d.out.final is None:
                    d.out.cancel()
                elif d.out.final.status == 200:
                    d.out.bye()
        for _ in range(4):
            for d in self.directs:
                self.direct_reads(d)
            for phone in self.phones:
                phone.handle_all()
            for c in self.callers:
                self.answer_byes(c)
            self.advance(40.0)
        started = Counter(e.data["call"] for e in self.rig.events_of("call.started"))
        ended = Counter(e.data["call"] for e in self.rig.events_of("call.ended"))
        assert ended == started
        assert self.rig.call_state() == {}, self.rig.call_state()
        assert queue_state(self.rig) == {}, queue_state(self.rig)
        assert self.rig.engine.sessions == {}
        assert self.rig.engine.layer.clients == {}
        assert self.rig.engine.layer.servers == {}
        for aid in ("1001", "1002", "1003"):
            snap = self.rig.engine.queues.dist.agent(aid)
            assert (snap.occupancy, snap.offer_id, snap.caller) == ("idle", None, None), snap


TestAcdMachine = AcdMachine.TestCase
TestAcdMachine.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
