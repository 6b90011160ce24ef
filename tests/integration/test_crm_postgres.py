"""CRM behaviour only a real PostgreSQL server shows: two consumers (separate engines, as two
daemons of a consumer group would be) writing the same call at once, first calls from one
new number racing for its contact, text PostgreSQL refuses (NUL), and connections killed
under the consumer.  Each test has a schema of its own (``?schema=`` in the store URL)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import asyncpg
import pytest
import sqlalchemy as sa

from acd.adapters.store import Store
from acd.adapters.store import schema as s
from acd.crm import CrmService, consume_inproc
from acd.events import Event, EventBus
from tests.conftest import require
from tests.unit.test_crm import T0, Script, Wall, dump
from tests.unit.test_store import PG_URLS, Backend, _asyncpg_dsn, postgres_backend, postgres_url

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg() -> AsyncIterator[Backend]:
    require(await postgres_url() is not None, f"PostgreSQL unreachable at {' or '.join(PG_URLS)}")
    async with postgres_backend() as backend:
        yield backend


async def test_schema_query_parameter_keeps_crm_tables_apart(pg: Backend) -> None:
    schema = pg.connect_args["server_settings"]["search_path"]
    store = await Store.open(f"{pg.url}?schema={schema}")
    try:
        tables = await _tables(store, schema)
        assert {"cdrs", "tickets", "contacts", "ticket_events", "processed_events"} <= tables
    finally:
        await store.close()


async def _tables(store: Store, schema: str) -> set[str]:
    async with store.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names(schema=schema)))


async def test_two_consumers_racing_on_every_call(pg: Backend) -> None:
    """Every event of 10 calls is handed to both of two services on separate engines, in
    different orders and batches: each call ends with one CDR, one ticket, one contact per
    number, and the same state as a single consumer would leave."""
    sc = Script()
    calls = [sc.queue_call(f"c{i}", t=T0 + i, frm=f"+8491000{i % 3:04d}") for i in range(10)]
    events = [ev for evs in calls for ev in evs]
    stores = [await pg.open() for _ in range(2)]
    try:
        services = [CrmService(st, wall=Wall()) for st in stores]

        async def run(svc: CrmService, evs: list[Event], seed: int) -> None:
            rng = random.Random(seed)
            evs = evs[:]
            rng.shuffle(evs)
            while evs:
                n = rng.randint(1, 6)
                await svc.handle_many(evs[:n])
                evs = evs[n:]

        async with asyncio.timeout(60):
            await asyncio.gather(*(run(svc, events, seed) for seed, svc in enumerate(services)),
                                 run(services[0], events, 7))
        state = await dump(stores[0])
        assert len(state["cdrs"]) == 10 and {c["outcome"] for c in state["cdrs"]} == {"answered"}
        assert len(state["tickets"]) == 10
        assert sorted(c["phone"] for c in state["contacts"]) == [
            f"+8491000{i:04d}" for i in range(3)]
        assert len(state["processed_events"]) == len(events) - 4 * 10
        retried = sum(svc.stats.retries for svc in services)
        assert sum(svc.stats.applied for svc in services) == len(events) - 40, retried
    finally:
        for st in stores:
            await st.close()

    # the same events, once, in order, on a fresh schema: the same rows (ids aside)
    async with postgres_backend() as other:
        single = await other.open()
        try:
            crm = CrmService(single, wall=Wall())
            for ev in events:
                await crm.handle(ev)
            alone = await dump(single)
        finally:
            await single.close()
    for table in ("cdrs", "cdr_legs"):
        assert _no_ids(state[table]) == _no_ids(alone[table])
    assert sorted(t["assignee"] for t in state["tickets"]) == \
        sorted(t["assignee"] for t in alone["tickets"])


def _no_ids(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    drop = {"contact_id", "ticket_id", "recording_id", "id"}
    return sorted(({k: v for k, v in r.items() if k not in drop} for r in rows), key=repr)


async def test_text_postgres_refuses_is_cleaned_not_fatal(pg: Backend) -> None:
    """NUL cannot be stored in PostgreSQL text; a caller id carrying one must not block the
    call's record (nor, through redelivery, the consumer)."""
    store = await pg.open()
    try:
        crm = CrmService(store, wall=Wall())
        sc = Script()
        evs = sc.abandoned("c1", frm="+849\x0012345678")
        for ev in evs:
            await crm.handle(ev)
        cdr = await crm.get_cdr("c1")
        assert cdr.outcome == "abandoned" and "\x00" not in (cdr.from_number or "")
        assert cdr.ticket_id is not None
    finally:
        await store.close()


async def test_inproc_consumer_survives_killed_connections(pg: Backend) -> None:
    store = await pg.open()
    admin = await asyncpg.connect(_asyncpg_dsn(pg.url))
    app = pg.connect_args["server_settings"]["application_name"]
    try:
        crm = CrmService(store, wall=Wall())
        sc = Script()
        bus = EventBus(sc.node, lambda: T0)
        consumer = await consume_inproc(bus, crm, backoff=(0.01, 0.05))
        first = sc.queue_call("c1")
        for ev in first[:6]:
            bus.publish(ev)
        assert await consumer.drained(timeout=10)
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1", app)
        assert killed >= 1
        for ev in first[6:]:
            bus.publish(ev)
        assert await consumer.drained(timeout=20)
        await consumer.stop()
        assert (await crm.get_cdr("c1")).outcome == "answered"
        async with store.engine.connect() as conn:
            n = (await conn.execute(sa.select(sa.func.count()).select_from(s.tickets)))
            assert n.scalar_one() == 1
    finally:
        await admin.close()
        await store.close()
