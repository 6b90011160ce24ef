"""Retention of the CRM consumer's working tables, over SQLite and PostgreSQL: old ledger
rows (processed_events) and the facts (call_events) of old calls go, recent ones and the
business record (CDRs, legs, tickets, recordings, contacts, agent history) stay; events
older than the horizon are ignored and counted, so a redelivery after a prune changes
nothing; a late event of a pruned call leaves its CDR alone; chunks; 0 keeps everything."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from acd.adapters.store import Store
from acd.adapters.store import schema as s
from acd.crm import CrmConfig, CrmService, Pruned
from acd.crm.retention import PRUNE_MARGIN
from acd.events import Event
from acd.runtime.daemon import Daemon
from tests.unit.test_crm import T0, Script, Wall, backend, dump, feed, store

__all__ = ["backend", "store"]  # fixtures, imported for pytest

DAY = 86400.0
HOUR = 3600.0
RETENTION = 30
NOW = T0 + 40 * DAY  # the prune's time: the horizon is T0 + 10 days
HORIZON = NOW - RETENTION * DAY
WORKING = ("call_events", "processed_events")


def service(store: Store, days: int = RETENTION) -> tuple[CrmService, Wall]:
    wall = Wall(T0)
    return CrmService(store, CrmConfig(event_retention_days=days), wall=wall), wall


async def feed_at(crm: CrmService, wall: Wall, t: float, events: list[Event]) -> int:
    """Deliver ``events`` one by one as if processed at ``t`` (soon after they happened)."""
    wall.t = t
    return await feed(crm, events)


def record(d: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The business record: every CRM table but the consumer's working ones."""
    return {k: v for k, v in d.items() if k not in WORKING}


async def ids(store: Store, table: sa.Table) -> set[str]:
    async with store.engine.connect() as conn:
        return set((await conn.execute(sa.select(table.c.event_id))).scalars())


def relevant(events: list[Event]) -> list[Event]:
    return [ev for ev in events if not ev.type.startswith(("ivr.", "agent.state_changed"))]


async def test_prune_deletes_old_working_rows_and_keeps_the_record(store: Store) -> None:
    crm, wall = service(store)
    sc = Script()
    old = sc.queue_call("old", t=T0)  # ended at T0 + 81
    lost = [sc.started("lost", T0 + 100), sc.ev("call.answered", "lost", T0 + 100.5,
                                                 by="engine")]  # never ended: a crash
    agent = [sc.ev("agent.status_changed", None, T0 + 200, agent="1001",
                   layer="availability", old="available", new="break", reason="api")]
    # started before the prune's cut, ended after the horizon: still open at the cut
    t_span = HORIZON - 2 * HOUR
    span = [sc.started("span", t_span),
            sc.ended("span", HORIZON + HOUR, t_span, queue=None)]
    # ended between the cut and the horizon: within the margin, kept this time
    t_margin = HORIZON - PRUNE_MARGIN / 2 - 50
    margin = sc.out_of_hours("margin", t=t_margin)
    recent = sc.queue_call("recent", t=T0 + 35 * DAY)
    await feed_at(crm, wall, T0 + 100, old)
    await feed_at(crm, wall, T0 + 101, lost + agent)
    await feed_at(crm, wall, t_span + 1, span[:1])
    await feed_at(crm, wall, HORIZON + HOUR + 1, span[1:])
    await feed_at(crm, wall, t_margin + 10, margin)
    await feed_at(crm, wall, T0 + 35 * DAY + 100, recent)
    before = await dump(store)
    old_cdr = await crm.get_cdr("old")

    pruned = await crm.prune_events(NOW)

    gone = relevant(old) + lost
    assert pruned == Pruned(processed_events=len(gone) + 1, call_events=len(gone),
                            chunks=1, complete=True)
    kept = {ev.id for ev in relevant(span + margin + recent)}
    assert await ids(store, s.processed_events) == kept
    assert await ids(store, s.call_events) == kept
    after = await dump(store)
    assert record(after) == record(before)  # CDRs, legs, tickets, recordings... untouched
    assert await crm.get_cdr("old") == old_cdr
    assert len(before["agent_status_history"]) == 1 and before["tickets"]
    assert await crm.prune_events(NOW) == Pruned(chunks=1)  # nothing more to do

    # an hour later the margin call goes; the spanning call once the horizon passes its end
    assert (await crm.prune_events(NOW + HOUR)).call_events == len(margin)
    assert (await crm.prune_events(NOW + 2 * HOUR + PRUNE_MARGIN)).call_events == 2
    assert await ids(store, s.call_events) == {ev.id for ev in relevant(recent)}
    assert record(await dump(store)) == record(before)


async def test_old_events_are_ignored_and_a_redelivery_after_a_prune_changes_nothing(
        store: Store) -> None:
    crm, wall = service(store)
    events = Script().queue_call("c1", t=T0)
    await feed_at(crm, wall, T0 + 100, events)
    cdr = await crm.get_cdr("c1")
    wall.t = NOW
    assert (await crm.prune_events(NOW)).call_events == len(relevant(events))
    pruned = await dump(store)
    assert pruned["call_events"] == [] and pruned["processed_events"] == []

    with capture_logs() as logs:
        assert await crm.handle_many(events) == 0  # the whole call redelivered at once
    assert crm.stats.expired == len(relevant(events))
    assert [e for e in logs if e["event"] == "crm.expired_events_ignored"] == [
        {"event": "crm.expired_events_ignored", "log_level": "info",
         "count": len(relevant(events)), "retention_days": RETENTION,
         "total": len(relevant(events))}]
    assert await feed(crm, events) == 0  # and event by event
    assert crm.stats.expired == 2 * len(relevant(events))
    assert await dump(store) == pruned  # not applied, not claimed
    assert await crm.get_cdr("c1") == cdr


async def test_expired_events_are_dropped_from_a_batch_of_fresh_ones(store: Store) -> None:
    crm, wall = service(store)
    sc = Script()
    wall.t = NOW
    stale = sc.abandoned("stale", t=HORIZON - 60)
    fresh = sc.abandoned("fresh", t=HORIZON + 60)
    assert await crm.handle_many(stale + fresh) == len(fresh)
    assert crm.stats.expired == len(stale)
    assert (await crm.get_cdr("fresh")).outcome == "abandoned"
    assert await ids(store, s.processed_events) == {ev.id for ev in fresh}
    assert [c.call_ref for c in (await crm.list_cdrs())[0]] == ["fresh"]


async def test_a_late_event_of_a_pruned_call_leaves_its_cdr_alone(store: Store) -> None:
    crm, wall = service(store)
    sc = Script()
    events = sc.queue_call("c1", t=T0, recording=False)
    await feed_at(crm, wall, T0 + 100, events)
    cdr = await crm.get_cdr("c1")
    ticket = await crm.get_ticket(cdr.ticket_id)
    await crm.prune_events(NOW)
    # first delivered only now (a consumer that was down), stamped after the horizon
    late = sc.ev("recording.ready", "c1", NOW - 60, path="/rec/c1.wav", duration=60.0,
                 size=960_044, channels=2, format="stereo")
    with capture_logs() as logs:
        assert await feed_at(crm, wall, NOW, [late]) == 1
    assert await crm.get_cdr("c1") == cdr  # not re-projected from what is left of it
    assert await crm.get_ticket(cdr.ticket_id) == ticket
    [rec] = await crm.call_recordings("c1")  # the recording is still on record
    assert (rec.path, rec.status) == ("/rec/c1.wav", "ready")
    assert await ids(store, s.call_events) == set()
    assert [(e["event"], e["events"]) for e in logs if e["event"].startswith("crm.")] == [
        ("crm.closed_call_events", 1)]
    # a crashed call (never ended) older than the horizon is closed too
    lost = sc.started("lost", T0 + 500)
    await feed_at(crm, wall, T0 + 501, [lost])
    before = await crm.get_cdr("lost")
    await feed_at(crm, wall, NOW, [sc.ended("lost", NOW - 30, T0 + 500)])
    assert await crm.get_cdr("lost") == before


@pytest.mark.parametrize("chunk", [1, 7])
async def test_prune_goes_in_chunks_and_stops_at_the_cap(store: Store, chunk: int) -> None:
    crm, wall = service(store)
    sc = Script()
    agents = [sc.ev("agent.status_changed", None, T0 + i, agent="1001", layer="availability",
                    old="available", new="break", reason="api") for i in range(4)]
    calls = [ev for i in range(3) for ev in sc.abandoned(f"c{i}", t=T0 + 10 * i)]
    await feed_at(crm, wall, T0 + 100, agents + calls)
    record_before = record(await dump(store))
    rows = len(agents) + len(calls)  # 4 + 15 ledger rows, 15 facts

    first = await crm.prune_events(NOW, chunk=chunk, max_chunks=2)
    assert first.processed_events == 2 * chunk and first.chunks == 2
    assert first.complete is False
    assert len(await ids(store, s.processed_events)) == rows - 2 * chunk
    rest = await crm.prune_events(NOW, chunk=chunk)
    assert rest.complete is True
    assert rest.chunks == math.ceil((rows - 2 * chunk) / chunk) + (
        1 if (rows - 2 * chunk) % chunk == 0 else 0)  # a full last chunk needs a look more
    assert first.processed_events + rest.processed_events == rows
    assert first.call_events + rest.call_events == len(calls)
    assert (await dump(store))["call_events"] == []
    assert record(await dump(store)) == record_before


async def test_zero_keeps_everything_and_ignores_nothing(store: Store) -> None:
    crm, wall = service(store, days=0)
    events = Script().queue_call("c1", t=T0)
    await feed_at(crm, wall, NOW + 1000 * DAY, events)  # a thousand days late: applied
    assert crm.stats.expired == 0
    assert (await crm.get_cdr("c1")).outcome == "answered"
    before = await dump(store)
    assert await crm.prune_events(NOW + 2000 * DAY) == Pruned(chunks=0)
    assert await dump(store) == before
    # turned on while running (a config reload): the next prune follows
    crm.event_retention_days = RETENTION
    assert (await crm.prune_events(NOW + 1040 * DAY)).call_events == len(relevant(events))


async def test_retention_days_are_checked(store: Store) -> None:
    with pytest.raises(ValueError, match="event_retention_days"):
        CrmService(store, CrmConfig(event_retention_days=-1))
    crm, _ = service(store)
    for bad in (-1, 1.5, True, "30"):
        with pytest.raises(ValueError, match="event_retention_days"):
            crm.event_retention_days = bad  # type: ignore[assignment]
    assert crm.horizon(NOW) == HORIZON
    crm.event_retention_days = 0
    assert crm.horizon(NOW) is None
    with pytest.raises(ValueError, match="chunk"):
        await crm.prune_events(NOW, chunk=0)


async def test_daemon_logs_a_failed_prune_and_goes_on() -> None:
    class Broken:
        event_retention_days = RETENTION

        async def prune_events(self, now: float) -> Pruned:
            raise ConnectionRefusedError("db down")

    class Works(Broken):
        async def prune_events(self, now: float) -> Pruned:
            return Pruned(processed_events=3, call_events=2, chunks=1)

    clock = SimpleNamespace(wall=lambda: NOW)
    with capture_logs() as logs:
        assert await Daemon.prune_crm_events(
            SimpleNamespace(crm=Broken(), clock=clock)) is None  # type: ignore[arg-type]
        done = await Daemon.prune_crm_events(
            SimpleNamespace(crm=Works(), clock=clock))  # type: ignore[arg-type]
    assert done == Pruned(3, 2, 1)
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("crm event retention failed", "error"), ("old crm events pruned", "info")]
    assert logs[1]["processed_events"] == 3 and logs[1]["call_events"] == 2
    off = SimpleNamespace(crm=SimpleNamespace(event_retention_days=0), clock=clock)
    assert await Daemon.prune_crm_events(off) is None  # type: ignore[arg-type]
