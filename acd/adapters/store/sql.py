"""The SQL store: one SQLAlchemy Core async code path for SQLite and PostgreSQL.

Owns the engine (SQLite file creation, WAL and busy timeout; PostgreSQL pool
settings), migrating at ``open``, batched ``apply`` of ``StoreOp`` in one
transaction, and the loaders used at startup.  Nothing on the call path awaits
this class directly: the call path goes through ``WriteBehind``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from itertools import groupby
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .migrate import upgrade_to_head
from .ops import (
    AgentStateRow,
    BindingRow,
    DeleteAor,
    DeleteBinding,
    StoreOp,
    TrunkStateRow,
    UpsertAgentState,
    UpsertBinding,
    UpsertQueueTuning,
    UpsertTrunkState,
)
from .schema import agent_state, bindings, queue_tuning, trunk_state

DEFAULT_URL = "sqlite+aiosqlite:///var/acd.sqlite3"

# Execution option read by the SQLite "begin" hook below.
_SQLITE_BEGIN = "acd_sqlite_begin"

_BINDING_COLUMNS = tuple(c.name for c in bindings.columns if c.name != "id")
_TRUNK_COLUMNS = tuple(c.name for c in trunk_state.columns)
_AGENT_STATE_COLUMNS = tuple(c.name for c in agent_state.columns)


class Store:
    """Database access for the ACD; build it with ``await Store.open(url)``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._write_engine = _immediate(engine)
        self._insert: Callable[[sa.Table], Any] = (
            postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        )
        self._upsert_binding = self._upsert(bindings, ("aor", "contact"), _BINDING_COLUMNS)
        self._upsert_trunk = self._upsert(trunk_state, ("name",), _TRUNK_COLUMNS)
        self._upsert_tuning = self._upsert(queue_tuning, ("name",),
                                           ("name", "changes", "updated_at"))
        self._upsert_agent_state = self._upsert(agent_state, ("agent",), _AGENT_STATE_COLUMNS)
        self._delete_binding = bindings.delete().where(
            bindings.c.aor == sa.bindparam("b_aor"),
            bindings.c.contact == sa.bindparam("b_contact"),
        )
        self._delete_aor = bindings.delete().where(bindings.c.aor == sa.bindparam("b_aor"))

    @classmethod
    async def open(
        cls,
        url: str = DEFAULT_URL,
        *,
        connect_args: Mapping[str, Any] | None = None,
        sqlite_busy_timeout_ms: int = 5000,
    ) -> Store:
        """Create the engine for ``url`` and migrate the database to the latest schema.

        ``connect_args`` go to the driver, e.g. ``{"server_settings": {"search_path":
        "acd"}}`` to keep the tables in a PostgreSQL schema of their own.
        """
        engine = _create_engine(url, dict(connect_args or {}), sqlite_busy_timeout_ms)
        try:
            async with _migration_lock(), _immediate(engine).begin() as conn:
                await conn.run_sync(upgrade_to_head)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)

    @property
    def write_engine(self) -> AsyncEngine:
        """The engine for transactions that read before they write: on SQLite they take
        the write lock at BEGIN (see ``_immediate``); elsewhere it is ``engine``."""
        return self._write_engine

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    async def apply(self, ops: Sequence[StoreOp]) -> None:
        """Apply ``ops`` in order, all or nothing, in one transaction."""
        if not ops:
            return
        async with self._write_engine.begin() as conn:
            # Runs of the same op type become one executemany: one round trip per run
            # on asyncpg instead of one per op.  Both drivers execute the rows one by
            # one, so a key repeated within a run is fine: the later row wins.
            for _, run in groupby(ops, key=type):
                stmt, params = self._statement(list(run))
                await conn.execute(stmt, params)

    async def load_bindings(self) -> list[BindingRow]:
        """Every stored binding, expired or not, in insertion order."""
        query = sa.select(bindings).order_by(bindings.c.id)
        async with self.engine.connect() as conn:
            result = await conn.execute(query)
            return [BindingRow(**row) for row in result.mappings()]

    async def load_trunk_states(self) -> list[TrunkStateRow]:
        """The last stored state of every trunk, by name."""
        query = sa.select(trunk_state).order_by(trunk_state.c.name)
        async with self.engine.connect() as conn:
            result = await conn.execute(query)
            return [TrunkStateRow(**row) for row in result.mappings()]

    async def load_queue_tuning(self) -> dict[str, tuple[str, float]]:
        """Queue name -> (changes as JSON, when) for every queue tuned through the API."""
        async with self.engine.connect() as conn:
            result = await conn.execute(sa.select(queue_tuning))
            return {r.name: (r.changes, r.updated_at) for r in result}

    async def load_agent_states(self) -> list[AgentStateRow]:
        """Every agent's stored availability, by agent id (agents no longer configured too)."""
        query = sa.select(agent_state).order_by(agent_state.c.agent)
        async with self.engine.connect() as conn:
            result = await conn.execute(query)
            return [AgentStateRow(**row) for row in result.mappings()]

    def _upsert(self, table: sa.Table, keys: Sequence[str], columns: Sequence[str]) -> Any:
        stmt = self._insert(table)
        return stmt.on_conflict_do_update(
            index_elements=[table.c[k] for k in keys],
            set_={c: stmt.excluded[c] for c in columns if c not in keys},
        )

    def _statement(self, run: list[StoreOp]) -> tuple[Any, list[dict[str, Any]]]:
        """The statement and executemany parameters for a run of ops of one type."""
        first = run[0]
        if isinstance(first, UpsertBinding):
            rows = [_binding_params(op.row) for op in run if isinstance(op, UpsertBinding)]
            return self._upsert_binding, rows
        if isinstance(first, DeleteBinding):
            keys = [(op.aor, op.contact) for op in run if isinstance(op, DeleteBinding)]
            return self._delete_binding, [{"b_aor": a, "b_contact": c} for a, c in keys]
        if isinstance(first, DeleteAor):
            return self._delete_aor, [{"b_aor": op.aor} for op in run if isinstance(op, DeleteAor)]
        if isinstance(first, UpsertTrunkState):
            rows = [_trunk_params(op.row) for op in run if isinstance(op, UpsertTrunkState)]
            return self._upsert_trunk, rows
        if isinstance(first, UpsertQueueTuning):
            return self._upsert_tuning, [
                {"name": op.name, "changes": op.changes, "updated_at": op.updated_at}
                for op in run if isinstance(op, UpsertQueueTuning)]
        if isinstance(first, UpsertAgentState):
            return self._upsert_agent_state, [
                {c: getattr(op.row, c) for c in _AGENT_STATE_COLUMNS}
                for op in run if isinstance(op, UpsertAgentState)]
        raise TypeError(f"not a store op: {first!r}")


def _binding_params(row: BindingRow) -> dict[str, Any]:
    return {c: getattr(row, c) for c in _BINDING_COLUMNS}


def _trunk_params(row: TrunkStateRow) -> dict[str, Any]:
    return {c: getattr(row, c) for c in _TRUNK_COLUMNS}


def _create_engine(url: str, connect_args: dict[str, Any], busy_timeout_ms: int) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # `?schema=name` in the URL keeps our tables in a PostgreSQL schema of their own
        # (asyncpg takes the search path only as a dict, which a URL cannot carry)
        schema = parsed.query.get("schema")
        if isinstance(schema, str) and schema:
            parsed = parsed.difference_update_query(["schema"])
            settings = dict(connect_args.get("server_settings", {}))
            settings.setdefault("search_path", schema)
            connect_args = {**connect_args, "server_settings": settings}
        # Connections die with PostgreSQL restarts and failovers; ping before use so a
        # stale pool costs a reconnect, not a failed batch.
        return create_async_engine(parsed, connect_args=connect_args, pool_pre_ping=True,
                                   json_serializer=_json_dumps)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(parsed, connect_args=connect_args, json_serializer=_json_dumps)
    _configure_sqlite(engine, busy_timeout_ms)
    return engine


def _json_dumps(value: Any) -> str:
    # Event data from the in-process bus may hold values JSON cannot (paths, enums): kept
    # as their text rather than failing the whole transaction.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    """WAL, busy timeout, and real transactions (DDL included) on every connection."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # The sqlite3 module's own transaction handling skips DDL and defers locks;
        # switching it off lets "begin" below decide, so migrations are atomic too.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        # WAL: readers (admin API, reports) never block the writer and vice versa.
        cursor.execute("PRAGMA journal_mode=WAL")
        # A second process (CLI, another daemon on the same file) waits, not fails.
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        # In WAL mode NORMAL cannot corrupt; it may lose the last commits on power
        # loss, which re-REGISTERs repair.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


_migration_locks: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = WeakKeyDictionary()


def _migration_lock() -> asyncio.Lock:
    """One migration at a time per event loop, whatever the database.

    alembic keeps the running migration in module globals (``alembic.context``,
    ``alembic.op``), and ``run_sync`` yields to the loop at every driver round trip,
    so two stores opening at once in one process would run in each other's context.
    """
    loop = asyncio.get_running_loop()
    lock = _migration_locks.get(loop)
    if lock is None:
        lock = _migration_locks[loop] = asyncio.Lock()
    return lock


def _immediate(engine: AsyncEngine) -> AsyncEngine:
    """The same engine, with SQLite transactions taking the write lock at BEGIN.

    A deferred transaction that reads before it writes fails with SQLITE_BUSY,
    without waiting out the busy timeout, when another connection wrote meanwhile;
    BEGIN IMMEDIATE waits for the lock instead.  Other dialects ignore the option.
    """
    return engine.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
