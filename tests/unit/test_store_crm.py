"""Store revision 0002 (CRM tables) on SQLite and PostgreSQL: a database at 0001 upgrades
with its bindings kept, the indexes the API's filters need exist (including the two that
alembic's comparison cannot see: the lower(name) expression and the partial unique phone),
and the partial unique index allows one live contact per number only."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from acd.adapters.store import Store, UpsertBinding
from acd.adapters.store.migrate import alembic_config, current_revision, head_revision
from tests.unit.test_crm import backend
from tests.unit.test_store import Backend, binding, run_sync

__all__ = ["backend"]  # fixture, imported for pytest

INDEXES = {
    "cdrs": {"ix_cdrs_started_at_call_ref", "ix_cdrs_hotline_started_at",
             "ix_cdrs_queue_started_at", "ix_cdrs_agent_started_at",
             "ix_cdrs_direction_started_at", "ix_cdrs_outcome_started_at"},
    "tickets": {"ix_tickets_status_id", "ix_tickets_assignee_id", "ix_tickets_contact_id_id"},
    "contacts": {"ix_contacts_phone", "uq_contacts_phone_live", "ix_contacts_lower_name"},
}


async def test_upgrade_from_0001_keeps_bindings(backend: Backend) -> None:
    store = await backend.open()
    try:
        await store.apply([UpsertBinding(binding())])

        def back_to_0001(conn: sa.Connection) -> None:
            command.downgrade(alembic_config(conn), "0001")

        async with store.engine.begin() as conn:
            await conn.run_sync(back_to_0001)
        assert await run_sync(store, current_revision) == "0001"
        tables = await run_sync(store, lambda c: set(sa.inspect(c).get_table_names()))
        assert "cdrs" not in tables
    finally:
        await store.close()
    again = await backend.open()
    try:
        assert await run_sync(again, current_revision) == head_revision()
        assert await again.load_bindings() == [binding()]
    finally:
        await again.close()


async def test_filter_indexes_exist(backend: Backend) -> None:
    store = await backend.open()
    try:
        for table, wanted in INDEXES.items():
            if store.dialect == "sqlite":
                rows = await run_sync(store, lambda c, t=table: c.exec_driver_sql(
                    f"SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='{t}'"
                ).scalars().all())
                names = set(rows)
            else:
                rows = await run_sync(store, lambda c, t=table: c.exec_driver_sql(
                    f"SELECT indexname FROM pg_indexes WHERE tablename = '{t}' "
                    "AND schemaname = current_schema()").scalars().all())
                names = set(rows)
            assert wanted <= names, (table, wanted - names)
    finally:
        await store.close()


async def test_one_live_contact_per_phone(backend: Backend) -> None:
    store: Store = await backend.open()
    try:
        async with store.engine.begin() as conn:
            ins = sa.text("INSERT INTO contacts (phone, created_at, updated_at, deleted_at, "
                          "merged_into) VALUES (:p, 0, 0, :d, :m)")
            await conn.execute(ins, {"p": "+84911111111", "d": None, "m": None})
            await conn.execute(ins, {"p": "+84911111111", "d": 5.0, "m": None})  # deleted
            await conn.execute(ins, {"p": "+84911111111", "d": None, "m": 1})  # merged
        try:
            async with store.engine.begin() as conn:
                await conn.execute(ins, {"p": "+84911111111", "d": None, "m": None})
        except sa.exc.IntegrityError:
            pass
        else:
            raise AssertionError("a second live contact with the same phone was accepted")
    finally:
        await store.close()
