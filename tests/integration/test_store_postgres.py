"""PostgreSQL-only store behaviour: concurrent migration, lost connections, refused data.

The shared suite (tests/unit/test_store.py) already runs every store test on
PostgreSQL; this file covers what only a real server can show.  Each test gets its
own schema through ``search_path`` (see ``postgres_backend``), dropped afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import sqlalchemy as sa

from acd.adapters.store import DeleteAor, Store, UpsertBinding, WriteBehind
from acd.adapters.store.migrate import current_revision, head_revision
from tests.unit.test_store import (
    Backend,
    _asyncpg_dsn,
    binding,
    postgres_backend,
    run_sync,
    wait_for,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg() -> AsyncIterator[Backend]:
    async with postgres_backend() as backend:
        yield backend


async def test_concurrent_starts_migrate_once(pg: Backend) -> None:
    async with asyncio.timeout(30):
        opened = await asyncio.gather(*(pg.open() for _ in range(4)), return_exceptions=True)
    stores = [s for s in opened if isinstance(s, Store)]
    try:
        assert [s for s in opened if not isinstance(s, Store)] == []
        assert await run_sync(stores[0], current_revision) == head_revision()
        versions = await run_sync(
            stores[0], lambda c: c.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar()
        )
        assert versions == 1
    finally:
        for s in stores:
            await s.close()


async def test_tables_stay_in_their_schema(pg: Backend) -> None:
    store = await pg.open()
    try:
        schema = pg.connect_args["server_settings"]["search_path"]
        tables = await run_sync(store, lambda c: set(sa.inspect(c).get_table_names(schema=schema)))
        assert {"bindings", "trunk_state", "agent_state", "alembic_version"} <= tables
    finally:
        await store.close()


async def test_writer_survives_killed_connections(pg: Backend) -> None:
    store = await pg.open()
    writer = WriteBehind(store, interval=0.01, min_backoff=0.01)
    writer.start()
    app = pg.connect_args["server_settings"]["application_name"]
    admin = await asyncpg.connect(_asyncpg_dsn(pg.url))
    try:
        writer.submit(UpsertBinding(binding("1001", "sip:before@h")))
        await wait_for(lambda: writer.flushed == 1)

        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1",
            app,
        )
        assert killed >= 1

        writer.submit(DeleteAor("1001"))
        writer.submit(UpsertBinding(binding("1001", "sip:after@h")))
        await wait_for(lambda: writer.pending == 0 and writer.flushed == 3)
        assert [r.contact for r in await store.load_bindings()] == ["sip:after@h"]
    finally:
        await writer.close()
        await admin.close()
        await store.close()


async def test_text_postgres_refuses_is_dropped_alone(pg: Backend) -> None:
    store = await pg.open()
    try:
        writer = WriteBehind(store)
        good = [binding("1001", f"sip:{i}@h") for i in range(3)]
        writer.submit(UpsertBinding(good[0]))
        # PostgreSQL text cannot hold NUL; SQLite can, so only this server refuses it.
        writer.submit(UpsertBinding(binding("1001", "sip:nul@h", user_agent="evil\x00ua")))
        writer.submit(UpsertBinding(good[1]))
        writer.submit(UpsertBinding(binding("1001", "sip:huge@h", cseq=2**63)))
        writer.submit(UpsertBinding(good[2]))

        await writer.flush()

        assert (writer.pending, writer.flushed, writer.rejected) == (0, 3, 2)
        assert await store.load_bindings() == good
        await writer.close()
    finally:
        await store.close()
