"""CRM consumer tests over SQLite and PostgreSQL: engine event sequences in, CDRs, legs,
recordings, contacts, tickets and agent history out; redelivery, out-of-order arrival and
concurrency.

The event sequences (``Script``) carry the fields acd/calls.py, acd/queueing.py,
acd/recording.py and acd/voicemail.py emit.  PostgreSQL runs get a fresh schema per test
(see tests/unit/test_store.py) and fail in CI when the server is missing.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from acd.adapters.store import Store
from acd.adapters.store import schema as s
from acd.crm import CrmConfig, CrmService
from acd.events import Event
from tests.conftest import require
from tests.unit.test_store import PG_URLS, Backend, postgres_backend, postgres_url

T0 = 1_700_000_000.0
CALLER = "+84912345678"
HOTLINE = "19001000"


class Wall:
    """A settable wall clock for processing times."""

    def __init__(self, t: float = T0 + 10_000) -> None:
        self.t = t

    def __call__(self) -> float:
        self.t += 0.001
        return self.t


class Script:
    """Builds the events of calls as the engine publishes them."""

    def __init__(self, node: str = "node-a") -> None:
        self.node = node
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)

    def ev(self, type_: str, ref: str | None, at: float, **data: Any) -> Event:
        payload = {"call": ref, **data} if ref and type_.startswith(
            ("call.", "recording.", "voicemail.", "ivr.")) else dict(data)
        return Event(type_, payload, f"{ref or 'x'}-e{next(self._ids)}", next(self._seq), at,
                     self.node, ref)

    def started(self, ref: str, t: float, direction: str = "inbound", frm: str = CALLER,
                to: str = HOTLINE, **extra: Any) -> Event:
        inbound = direction == "inbound"
        return self.ev("call.started", ref, t, direction=direction, **{"from": frm}, to=to,
                       hotline=to if inbound else None, trunk="carrier" if inbound else None,
                       account=None if inbound else "1001", sip_call_id=f"sip-{ref}", **extra)

    def ended(self, ref: str, t: float, t0: float, *, direction: str = "inbound",
              frm: str = CALLER, to: str = HOTLINE, reason: str = "caller hung up",
              by: str = "caller", status: int | None = None, agent: str | None = None,
              queue: str | None = "sales", talk: float = 0.0, ring: float = 0.0,
              **extra: Any) -> Event:
        inbound = direction == "inbound"
        return self.ev(
            "call.ended", ref, t, reason=reason, hangup_by=by, status=status,
            direction=direction, **{"from": frm}, to=to, hotline=to if inbound else None,
            account=None if inbound else "1001", trunk="carrier", sip_call_id=f"sip-{ref}",
            answered=True, connected_to=agent, queue=queue, agent=agent,
            duration=round(t - t0, 3), talk_time=talk, ring_time=ring, **extra)

    def queue_call(self, ref: str, t: float = T0, frm: str = CALLER, agent: str = "1002",
                   recording: bool = True) -> list[Event]:
        """IVR, queue, a first agent not answering, a second answering, a recording."""
        q = {"queue": "sales", "caller": ref, "hotline": HOTLINE, "from": frm}
        evs = [
            self.started(ref, t, frm=frm),
            self.ev("call.answered", ref, t + 0.5, by="engine"),
            self.ev("ivr.entered", ref, t + 0.6, node="menu"),
            self.ev("ivr.digit", ref, t + 3, digit="1"),
            self.ev("ivr.exit", ref, t + 3.1, to="queue:sales"),
            self.ev("queue.entered", ref, t + 3.2, position=1, priority=0, **q),
            self.ev("queue.offered", ref, t + 3.3, agent="1001", offer_id=7, deadline=0, **q),
            self.ev("agent.state_changed", None, t + 3.3, agent="1001", layer="occupancy",
                    old="idle", new="reserved", reason="offer", time=1.0),
            self.ev("queue.ring_noanswer", ref, t + 18.3, agent="1001", offer_id=7,
                    reason="no_answer", ring_time=15.0, **q),
            self.ev("queue.offered", ref, t + 18.4, agent=agent, offer_id=8, deadline=0, **q),
            self.ev("queue.connected", ref, t + 21.0, agent=agent, offer_id=8,
                    hold_time=17.8, **q),
            self.ev("call.connected", ref, t + 21.0, party=agent, trunk=None, agent=agent,
                    queue="sales"),
            self.ended(ref, t + 81.0, t, frm=frm, agent=agent, talk=60.0, ring=21.0),
        ]
        if recording:
            evs.append(self.ev("recording.ready", ref, t + 81.2,
                               path=f"/rec/{ref}.wav", duration=60.0, size=960_044,
                               channels=2, format="stereo", hotline=HOTLINE, queue="sales",
                               agent=agent, **{"from": frm}))
        return evs

    def abandoned(self, ref: str, t: float = T0, frm: str = CALLER) -> list[Event]:
        q = {"queue": "sales", "caller": ref, "hotline": HOTLINE, "from": frm}
        return [
            self.started(ref, t, frm=frm),
            self.ev("call.answered", ref, t + 0.5, by="engine"),
            self.ev("queue.entered", ref, t + 1, position=3, priority=0, **q),
            self.ev("queue.abandoned", ref, t + 40, wait=39.0, position=2, **q),
            self.ended(ref, t + 40, t, frm=frm),
        ]

    def timeout_to_voicemail(self, ref: str, t: float = T0, frm: str = CALLER) -> list[Event]:
        q = {"queue": "sales", "caller": ref, "hotline": HOTLINE, "from": frm}
        return [
            self.started(ref, t, frm=frm),
            self.ev("queue.entered", ref, t + 1, position=1, priority=0, **q),
            self.ev("queue.timeout", ref, t + 121, wait=120.0, position=1, **q),
            self.ev("voicemail.recorded", ref, t + 150, mailbox="sales",
                    path=f"/vm/{ref}.wav", duration=25.0, caller=frm, reason="silence"),
            self.ended(ref, t + 150, t, frm=frm, reason="voicemail", by="engine"),
        ]

    def out_of_hours(self, ref: str, t: float = T0, frm: str = CALLER) -> list[Event]:
        return [self.started(ref, t, frm=frm, route="out_of_hours"),
                self.ended(ref, t + 8, t, frm=frm, reason="played", by="engine", queue=None,
                           route="out_of_hours")]

    def blacklisted(self, ref: str, t: float = T0, frm: str = CALLER) -> list[Event]:
        return [self.started(ref, t, frm=frm, route="blacklisted"),
                self.ended(ref, t + 0.1, t, frm=frm, reason="rejected", by="engine", status=603,
                           queue=None, route="blacklisted")]

    def outbound(self, ref: str, to: str, t: float = T0, answered: bool = True) -> list[Event]:
        evs = [self.started(ref, t, direction="outbound", frm="1001", to=to)]
        if answered:
            evs.append(self.ev("call.connected", ref, t + 9, party=to, trunk="carrier",
                               agent=None, queue=None))
            evs.append(self.ended(ref, t + 70, t, direction="outbound", frm="1001", to=to,
                                  reason="callee hung up", by="callee", queue=None,
                                  talk=61.0, ring=9.0))
        else:
            evs.append(self.ended(ref, t + 30, t, direction="outbound", frm="1001", to=to,
                                  reason="timeout", by="engine", status=480, queue=None))
        return evs


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        yield Backend(f"sqlite+aiosqlite:///{tmp_path}/crm.sqlite3")
    else:
        require(await postgres_url() is not None,
                f"PostgreSQL unreachable at {' or '.join(PG_URLS)}")
        async with postgres_backend() as pg:
            yield pg


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    st = await backend.open()
    yield st
    await st.close()


@pytest.fixture
def crm(store: Store) -> CrmService:
    return CrmService(store, wall=Wall())


async def feed(crm: CrmService, events: list[Event]) -> int:
    n = 0
    for ev in events:
        n += await crm.handle_many([ev])
    return n


TABLES = (s.cdrs, s.cdr_legs, s.recordings, s.contacts, s.tickets, s.ticket_events,
          s.agent_status_history, s.call_events, s.processed_events)


async def dump(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Every CRM row, sorted: equal dumps are equal databases."""
    out = {}
    async with store.engine.connect() as conn:
        for table in TABLES:
            rows = [dict(r) for r in (await conn.execute(sa.select(table))).mappings()]
            out[table.name] = sorted(rows, key=repr)
    return out


# --- inbound -------------------------------------------------------------------------------


async def test_inbound_queue_call_gives_cdr_legs_contact_ticket(crm: CrmService,
                                                                store: Store) -> None:
    events = Script().queue_call("c1", frm="0912 345-678")
    # the engine sends E.164 for trunk callers; a configured normalize covers the rest
    config = CrmConfig(normalize=lambda n: "+84" + n[1:] if n.startswith("0") else n)
    crm = CrmService(store, config, wall=Wall())
    applied = await feed(crm, events)
    assert applied == len(events) - 4  # ivr.* and agent.state_changed mean nothing here

    cdr = await crm.get_cdr("c1")
    assert (cdr.direction, cdr.hotline, cdr.queue, cdr.agent, cdr.outcome) == (
        "inbound", HOTLINE, "sales", "1002", "answered")
    assert (cdr.started_at, cdr.answered_at, cdr.ended_at) == (T0, T0 + 21.0, T0 + 81.0)
    assert (cdr.duration_seconds, cdr.talk_seconds, cdr.ring_seconds) == (81.0, 60.0, 21.0)
    assert (cdr.wait_seconds, cdr.hold_seconds) == (21.0, 17.8)
    assert (cdr.hangup_by, cdr.end_reason, cdr.sip_call_id, cdr.node) == (
        "caller", "caller hung up", "sip-c1", "node-a")
    assert [(leg.role, leg.party, leg.outcome) for leg in cdr.legs] == [
        ("caller", "0912 345-678", "answered"), ("agent", "1001", "no_answer"),
        ("agent", "1002", "answered")]
    assert cdr.legs[2].answered_at == T0 + 21.0 and cdr.legs[2].ended_at == T0 + 81.0

    contact = await crm.get_contact(cdr.contact_id)
    assert contact.phone == "+84912345678" and contact.created_at == T0
    detail = await crm.get_ticket(cdr.ticket_id)
    t = detail.ticket
    assert (t.call_ref, t.contact_id, t.channel, t.direction, t.hotline, t.queue) == (
        "c1", contact.id, "call", "inbound", HOTLINE, "sales")
    assert (t.assignee, t.status, t.priority, t.missed) == ("1002", "new", "normal", False)
    assert t.created_at == T0 and t.updated_at == T0 + 81.2
    assert [(e.kind, e.data.get("event")) for e in detail.events] == [
        ("created", None), ("call", "answered"), ("assignee", None), ("call", "ended"),
        ("recording", None)]

    rec = await crm.get_recording(cdr.recording_id)
    assert (rec.call_ref, rec.path, rec.duration, rec.channels, rec.size, rec.kind,
            rec.status) == ("c1", "/rec/c1.wav", 60.0, 2, 960_044, "call", "ready")
    assert detail.events[-1].data["recording_id"] == rec.id


async def test_second_call_from_same_number_reuses_contact(crm: CrmService) -> None:
    sc = Script()
    await feed(crm, sc.queue_call("c1"))
    await feed(crm, sc.abandoned("c2", t=T0 + 500))
    a, b = await crm.get_cdr("c1"), await crm.get_cdr("c2")
    assert a.contact_id == b.contact_id is not None
    assert a.ticket_id != b.ticket_id
    tickets, _ = await crm.list_tickets(contact=a.contact_id)
    assert [t.call_ref for t in tickets] == ["c2", "c1"]


async def test_redelivery_changes_nothing(crm: CrmService, store: Store) -> None:
    events = Script().queue_call("c1")
    await feed(crm, events)
    before = await dump(store)
    assert await feed(crm, events) == 0
    assert await crm.handle_many(events) == 0
    assert await dump(store) == before
    assert crm.stats.duplicates == 2 * (len(events) - 4)


async def test_recording_before_call_ended_same_end_state(store: Store) -> None:
    sc = Script()
    in_order = sc.queue_call("a")
    crm = CrmService(store, wall=Wall())
    await feed(crm, in_order)
    # the same call again under another ref, recording.ready first and call.ended last
    swapped = Script().queue_call("b", frm="+84999999999")
    ended, rec = swapped[-2], swapped[-1]
    await feed(crm, [rec, *swapped[:-2], ended])

    a, b = await crm.get_cdr("a"), await crm.get_cdr("b")
    assert _strip(a, "a") == _strip(b, "b")
    ta, tb = await crm.get_ticket(a.ticket_id), await crm.get_ticket(b.ticket_id)
    assert _strip(ta.ticket, "a") == _strip(tb.ticket, "b")
    assert [(e.kind, e.at) for e in ta.events] == [(e.kind, e.at) for e in tb.events]
    assert b.recording_id is not None and tb.events[-1].kind == "recording"


def _strip(obj: Any, ref: str) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(obj)
    for k in ("call_ref", "contact_id", "ticket_id", "recording_id", "id", "sip_call_id",
              "from_number", "subject"):
        d.pop(k, None)
    if "legs" in d:
        d["legs"] = [{**leg, "party": None} for leg in d["legs"]]
    return d


@pytest.mark.parametrize(("scenario", "outcome"), [
    ("abandoned", "abandoned"), ("timeout_to_voicemail", "voicemail"),
    ("out_of_hours", "out_of_hours")])
async def test_missed_calls_flagged(crm: CrmService, scenario: str, outcome: str) -> None:
    await feed(crm, getattr(Script(), scenario)("c1"))
    cdr = await crm.get_cdr("c1")
    assert cdr.outcome == outcome and cdr.agent is None
    t = (await crm.get_ticket(cdr.ticket_id)).ticket
    assert t.missed is True and t.assignee is None and t.status == "new"
    assert t.subject.startswith("Missed call from +84912345678")
    missed, _ = await crm.list_tickets(missed=True)
    assert [m.id for m in missed] == [t.id]
    assert (await crm.list_tickets(missed="false"))[0] == []


async def test_voicemail_is_linked_as_recording(crm: CrmService) -> None:
    await feed(crm, Script().timeout_to_voicemail("c1"))
    cdr = await crm.get_cdr("c1")
    rec = await crm.get_recording(cdr.recording_id)
    assert (rec.kind, rec.path, rec.duration) == ("voicemail", "/vm/c1.wav", 25.0)
    assert cdr.hold_seconds == 120.0
    events = (await crm.get_ticket(cdr.ticket_id)).events
    assert [e.data.get("kind") for e in events if e.kind == "recording"] == ["voicemail"]


async def test_blacklisted_call_has_cdr_and_contact_but_no_ticket(crm: CrmService) -> None:
    await feed(crm, Script().blacklisted("c1"))
    cdr = await crm.get_cdr("c1")
    assert cdr.outcome == "blacklisted" and cdr.ticket_id is None
    assert cdr.contact_id is not None
    assert (await crm.list_tickets())[0] == []


async def test_blacklist_learnt_late_drops_the_ticket(crm: CrmService) -> None:
    sc = Script()
    started, ended = sc.blacklisted("c1")
    plain = sc.started("c1", T0)  # an engine that says nothing at call start
    await feed(crm, [Event(plain.type, plain.data, started.id, started.seq, started.ts,
                           started.node, started.call_id), ended])
    assert (await crm.get_cdr("c1")).ticket_id is None
    assert (await crm.list_tickets())[0] == []


async def test_failed_recording_is_kept_but_not_linked(crm: CrmService) -> None:
    sc = Script()
    evs = sc.queue_call("c1", recording=False)
    evs.append(sc.ev("recording.failed", "c1", T0 + 81.1, path="/rec/c1.wav",
                     error="disk full"))
    await feed(crm, evs)
    cdr = await crm.get_cdr("c1")
    assert cdr.recording_id is None
    [rec] = await crm.call_recordings("c1")
    assert (rec.status, rec.error) == ("failed", "disk full")


@pytest.mark.parametrize("size", [float("inf"), float("nan"), -1, 2**63, "12", True])
async def test_recording_with_an_impossible_size_is_kept_with_size_unknown(
        crm: CrmService, size: object) -> None:
    sc = Script()
    evs = sc.queue_call("c1", recording=False)
    evs.append(sc.ev("recording.ready", "c1", T0 + 81.1, path="/rec/c1.wav", size=size,
                     duration=float("inf"), channels=2))
    await feed(crm, evs)
    [rec] = await crm.call_recordings("c1")
    assert (rec.path, rec.size, rec.duration, rec.channels) == ("/rec/c1.wav", None, None, 2)
    assert (await crm.get_cdr("c1")).recording_id == rec.id


# --- outbound ------------------------------------------------------------------------------


async def test_outbound_attaches_to_latest_open_ticket(crm: CrmService) -> None:
    sc = Script()
    await feed(crm, sc.abandoned("c1"))
    await feed(crm, sc.abandoned("c2", t=T0 + 100))
    first = (await crm.get_cdr("c1")).ticket_id
    second = (await crm.get_cdr("c2")).ticket_id
    await crm.update_ticket(second, status="solved")
    await feed(crm, sc.outbound("o1", "+84912345678", t=T0 + 1000))

    out = await crm.get_cdr("o1")
    assert (out.direction, out.outcome, out.ticket_id) == ("outbound", "answered", first)
    assert [(leg.role, leg.party) for leg in out.legs] == [
        ("caller", "1001"), ("callee", "+84912345678")]
    detail = await crm.get_ticket(first)
    assert detail.ticket.call_ref == "c1" and detail.ticket.missed is True
    joined = [e for e in detail.events if e.data.get("call") == "o1"]
    assert [(e.kind, e.data["event"]) for e in joined] == [
        ("call", "started"), ("call", "answered"), ("call", "ended")]
    assert detail.ticket.updated_at == T0 + 1070


async def test_outbound_without_open_ticket_creates_one(store: Store) -> None:
    crm = CrmService(store, CrmConfig(agent_of_account={"1001": "alice"}.get), wall=Wall())
    await feed(crm, Script().outbound("o1", "+84987654321", answered=False))
    cdr = await crm.get_cdr("o1")
    assert cdr.outcome == "missed"
    t = (await crm.get_ticket(cdr.ticket_id)).ticket
    assert (t.call_ref, t.direction, t.missed, t.assignee, t.subject) == (
        "o1", "outbound", False, "alice", "Call to +84987654321")
    assert (await crm.get_contact(t.contact_id)).phone == "+84987654321"


@pytest.mark.parametrize("mode", ["attach", "off"])
async def test_outbound_modes_that_open_nothing(store: Store, mode: str) -> None:
    crm = CrmService(store, CrmConfig(outbound_tickets=mode), wall=Wall())
    await feed(crm, Script().outbound("o1", "+84987654321"))
    cdr = await crm.get_cdr("o1")
    assert cdr.outcome == "answered" and cdr.ticket_id is None and cdr.contact_id is None
    assert (await crm.list_tickets())[0] == []


async def test_internal_calls_get_cdr_only(crm: CrmService) -> None:
    sc = Script()
    await feed(crm, [sc.started("i1", T0, direction="internal", frm="1001", to="1002"),
                     sc.ended("i1", T0 + 5, T0, direction="internal", frm="1001", to="1002",
                              queue=None, reason="cancelled")])
    cdr = await crm.get_cdr("i1")
    assert (cdr.direction, cdr.outcome, cdr.ticket_id, cdr.contact_id) == (
        "internal", "missed", None, None)


# --- agents, concurrency -----------------------------------------------------------------


async def test_agent_status_history(crm: CrmService) -> None:
    sc = Script()
    evs = [sc.ev("agent.status_changed", None, T0 + i, agent="1001", layer="availability",
                 old=old, new=new, reason="api") for i, (old, new) in
           enumerate([("available", "break"), ("break", "available")])]
    assert await feed(crm, evs + evs) == 2
    items, nxt = await crm.list_agent_status(agent="1001", limit=1)
    assert [(i.old, i.new, i.at) for i in items] == [("break", "available", T0 + 1)]
    more, end = await crm.list_agent_status(agent="1001", cursor=nxt)
    assert [(i.old, i.new) for i in more] == [("available", "break")] and end is None


async def test_concurrent_handles_of_different_calls(crm: CrmService, store: Store) -> None:
    sc = Script()
    calls = [sc.queue_call(f"c{i}", t=T0 + i, frm=f"+8490000{i % 5:04d}") for i in range(20)]

    async def deliver(events: list[Event]) -> None:
        for ev in events:
            await crm.handle(ev)

    async with asyncio.timeout(60):
        await asyncio.gather(*(deliver(evs) for evs in calls))
    cdrs, _ = await crm.list_cdrs(limit=100)
    assert len(cdrs) == 20 and {c.outcome for c in cdrs} == {"answered"}
    tickets, _ = await crm.list_tickets(limit=100)
    assert len(tickets) == 20
    assert len({t.contact_id for t in tickets}) == 5  # one contact per distinct number
    contacts = (await dump(store))["contacts"]
    assert sorted(c["phone"] for c in contacts) == sorted(f"+8490000{i:04d}" for i in range(5))
