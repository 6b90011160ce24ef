"""Store and write-behind tests: one suite over SQLite and PostgreSQL, plus pure queue tests.

PostgreSQL runs use ``postgresql+asyncpg://postgres@127.0.0.1:5432/test`` (or the
``root`` role) and a fresh schema per test, selected through ``search_path``, that
is dropped afterwards: the run starts clean (no tables, no alembic_version) and
never touches other users' tables in the ``test`` database.  They are marked
``postgres`` and skipped when the server is unreachable.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acd.adapters.store import (
    AgentStateRow,
    BindingRow,
    DeleteAor,
    DeleteBinding,
    Store,
    StoreOp,
    TrunkStateRow,
    UpsertAgentState,
    UpsertBinding,
    UpsertQueueTuning,
    UpsertTrunkState,
    WriteBehind,
)
from acd.adapters.store.migrate import alembic_config, current_revision, head_revision
from acd.adapters.store.schema import metadata

PG_URLS = (
    "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
    "postgresql+asyncpg://root@127.0.0.1:5432/test",
)

WEIRD_CONTACT = "sip:user@host;unknownparam=x?Route=%3Csip:example.com%3E"
WEIRD_PARAMS = ';expires=3600;+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>";q=0.7'


# --- backends -------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    url: str
    connect_args: dict[str, Any] = field(default_factory=dict)

    async def open(self) -> Store:
        return await Store.open(self.url, connect_args=self.connect_args)


def _asyncpg_dsn(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


_probed: list[str | None] = []


async def postgres_url() -> str | None:
    """The first PostgreSQL URL that accepts a connection, probed once per run."""
    import asyncpg

    if not _probed:
        found = None
        for url in PG_URLS:
            try:
                conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=3)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                continue
            await conn.close()
            found = url
            break
        _probed.append(found)
    return _probed[0]


@asynccontextmanager
async def postgres_backend() -> AsyncIterator[Backend]:
    """A Backend on a brand-new PostgreSQL schema, dropped on exit."""
    import asyncpg

    url = await postgres_url()
    if url is None:
        pytest.skip(f"PostgreSQL unreachable at {' or '.join(PG_URLS)}")
    schema = f"acd_store_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        yield Backend(url, {"server_settings": {"search_path": schema, "application_name": schema}})
    finally:
        # Sessions a failed test left open would hold locks and hang the DROP.
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            schema,
        )
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        # A missing parent directory on purpose: open() must create it.
        yield Backend(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/acd.sqlite3")
    else:
        async with postgres_backend() as pg:
            yield pg


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    s = await backend.open()
    yield s
    await s.close()


def binding(aor: str = "1001", contact: str = WEIRD_CONTACT, **kw: Any) -> BindingRow:
    values: dict[str, Any] = {
        "contact_params": WEIRD_PARAMS,
        "call_id": "a84b4c76e66710@pc33.example.com",
        "cseq": 314159,
        "expires_at": 1_700_003_600.123456,
        "registered_at": 1_700_000_000.5,
        "updated_at": 1_700_000_000.654321,
        "source": "udp:192.0.2.4:5060",
        "q": 0.7,
        "user_agent": "Lintéphone/5.2 (ünïcode)",
        "instance_id": "<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>",
        "reg_id": 1,
    }
    values.update(kw)
    return BindingRow(aor=aor, contact=contact, **values)


async def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


async def run_sync(store: Store, fn: Callable[[sa.Connection], Any]) -> Any:
    async with store.engine.connect() as conn:
        return await conn.run_sync(fn)


# --- migrations -----------------------------------------------------------------------


async def test_open_migrates_and_reopen_keeps_data(backend: Backend) -> None:
    store = await backend.open()
    try:
        assert await run_sync(store, current_revision) == head_revision()
        tables = await run_sync(store, lambda c: set(sa.inspect(c).get_table_names()))
        assert {"bindings", "trunk_state", "queue_tuning", "agent_state",
                "alembic_version"} <= tables
        await store.apply([UpsertBinding(binding())])
    finally:
        await store.close()

    again = await backend.open()
    try:
        assert await run_sync(again, current_revision) == head_revision()
        assert await again.load_bindings() == [binding()]
        versions = await run_sync(
            again, lambda c: c.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar()
        )
        assert versions == 1
    finally:
        await again.close()


async def test_concurrent_opens_in_one_process(backend: Backend, tmp_path: Path) -> None:
    other = Backend(f"sqlite+aiosqlite:///{tmp_path}/other.sqlite3")
    async with asyncio.timeout(30):
        opened = await asyncio.gather(
            *(b.open() for b in (backend, other, backend, other, backend)),
            return_exceptions=True,
        )
    stores = [s for s in opened if isinstance(s, Store)]
    try:
        assert [e for e in opened if not isinstance(e, Store)] == []
        for s in stores:
            assert await run_sync(s, current_revision) == head_revision()
    finally:
        for s in stores:
            await s.close()


async def test_migrated_database_matches_schema_module(store: Store) -> None:
    def diff(conn: sa.Connection) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, metadata))

    assert await run_sync(store, diff) == []


async def test_agent_state_revision_downgrades_and_upgrades(backend: Backend) -> None:
    """Revision 0004 (agent_state) goes down to 0003 dropping only its table, and up again."""
    store = await backend.open()
    try:
        await store.apply([UpsertQueueTuning("sales", '{"ring_timeout": 20}', 1.0),
                           UpsertAgentState(AgentStateRow(agent="1001", status="lunch",
                                                          updated_at=2.0))])

        def back_to_0003(conn: sa.Connection) -> None:
            command.downgrade(alembic_config(conn), "0003")

        async with store.engine.begin() as conn:
            await conn.run_sync(back_to_0003)
        assert await run_sync(store, current_revision) == "0003"
        tables = await run_sync(store, lambda c: set(sa.inspect(c).get_table_names()))
        assert "agent_state" not in tables and "queue_tuning" in tables
    finally:
        await store.close()
    again = await backend.open()
    try:
        assert await run_sync(again, current_revision) == head_revision()
        assert await again.load_queue_tuning() == {"sales": ('{"ring_timeout": 20}', 1.0)}
        assert await again.load_agent_states() == []
    finally:
        await again.close()


# --- apply and load -------------------------------------------------------------------


async def test_round_trip_is_byte_exact(store: Store) -> None:
    rows = [
        binding(),
        binding(contact="sip:1001@198.51.100.7:5062;transport=TCP;ob", q=None, user_agent=None),
        binding(
            aor="1002",
            contact='<sip:odd@h>;x="a b"',
            cseq=2**32 - 1,
            reg_id=None,
            instance_id=None,
            contact_params="",
        ),
    ]
    await store.apply([UpsertBinding(r) for r in rows])

    loaded = await store.load_bindings()
    assert loaded == rows
    assert all(r.id is not None for r in loaded)
    assert loaded[0].contact == WEIRD_CONTACT
    assert loaded[0].contact_params == WEIRD_PARAMS
    assert loaded[0].q == 0.7
    assert loaded[0].expires_at == 1_700_003_600.123456


async def test_upsert_overwrites_every_column_and_keeps_id(store: Store) -> None:
    await store.apply([UpsertBinding(binding())])
    [first] = await store.load_bindings()
    newer = binding(
        cseq=314160,
        expires_at=1_800_000_000.0,
        source="tcp:192.0.2.5:40000",
        q=None,
        user_agent="other",
        contact_params=";expires=60",
        reg_id=2,
    )
    await store.apply([UpsertBinding(newer)])
    [second] = await store.load_bindings()
    assert second == newer
    assert second.id == first.id


async def test_deletes(store: Store) -> None:
    a1, a2 = binding("1001", "sip:a@h"), binding("1001", "sip:b@h")
    b1 = binding("1002", "sip:a@h")
    await store.apply([UpsertBinding(r) for r in (a1, a2, b1)])

    await store.apply([DeleteBinding("1001", "sip:a@h"), DeleteBinding("1001", "sip:nope@h")])
    assert await store.load_bindings() == [a2, b1]

    await store.apply([DeleteAor("1001")])
    assert await store.load_bindings() == [b1]


async def test_batch_applies_in_order(store: Store) -> None:
    a, b = binding("1001", "sip:a@h"), binding("1001", "sip:b@h")
    await store.apply([UpsertBinding(a), DeleteAor("1001"), UpsertBinding(b)])
    assert await store.load_bindings() == [b]

    await store.apply([DeleteBinding("1001", "sip:a@h"), UpsertBinding(a)])
    assert sorted(r.contact for r in await store.load_bindings()) == ["sip:a@h", "sip:b@h"]


async def test_same_key_twice_in_one_batch_last_wins(store: Store) -> None:
    await store.apply([UpsertBinding(binding(cseq=1)), UpsertBinding(binding(cseq=2))])
    assert [r.cseq for r in await store.load_bindings()] == [2]


async def test_batch_is_one_transaction(store: Store) -> None:
    kept = binding("1000", "sip:kept@h")
    await store.apply([UpsertBinding(kept)])
    bad = replace(binding("1003", "sip:bad@h"), call_id=None)  # type: ignore[arg-type]
    with pytest.raises(sa.exc.IntegrityError):
        await store.apply(
            [
                UpsertBinding(binding("1001", "sip:new@h")),
                DeleteAor("1000"),
                UpsertTrunkState(TrunkStateRow(name="t", state="registered", last_change=1.0)),
                UpsertAgentState(AgentStateRow(agent="1001", status="lunch", updated_at=1.0)),
                UpsertBinding(bad),
            ]
        )
    assert await store.load_bindings() == [kept]
    assert await store.load_trunk_states() == []
    assert await store.load_agent_states() == []


async def test_trunk_state_upsert(store: Store) -> None:
    await store.apply(
        [
            UpsertTrunkState(
                TrunkStateRow(
                    name="carrier-b", state="failed", last_change=1.5, detail="403 Forbidden"
                )
            ),
            UpsertTrunkState(TrunkStateRow(name="carrier-a", state="registering", last_change=2.0)),
        ]
    )
    await store.apply(
        [
            UpsertTrunkState(
                TrunkStateRow(
                    name="carrier-a",
                    state="registered",
                    last_change=3.25,
                    detail="200 OK; expires=3600",
                )
            ),
        ]
    )
    assert await store.load_trunk_states() == [
        TrunkStateRow(
            name="carrier-a", state="registered", last_change=3.25, detail="200 OK; expires=3600"
        ),
        TrunkStateRow(name="carrier-b", state="failed", last_change=1.5, detail="403 Forbidden"),
    ]


async def test_agent_state_round_trip_and_upsert(store: Store) -> None:
    assert await store.load_agent_states() == []
    await store.apply([
        UpsertAgentState(AgentStateRow(agent="1002", status="available", reason="api",
                                       updated_at=1_700_000_000.25)),
        UpsertAgentState(AgentStateRow(agent="1001", status="break",
                                       reason="feature code *22", updated_at=1_700_000_001.5)),
        UpsertAgentState(AgentStateRow(agent="agent 9 (ünïcode)", status="auto_paused",
                                       updated_at=3.0)),
    ])
    # an overwrite replaces every column, the reason going back to NULL included
    await store.apply([UpsertAgentState(AgentStateRow(agent="1002", status="lunch",
                                                      updated_at=1_700_000_002.125))])
    assert await store.load_agent_states() == [
        AgentStateRow(agent="1001", status="break", reason="feature code *22",
                      updated_at=1_700_000_001.5),
        AgentStateRow(agent="1002", status="lunch", reason=None, updated_at=1_700_000_002.125),
        AgentStateRow(agent="agent 9 (ünïcode)", status="auto_paused", updated_at=3.0),
    ]


async def test_writer_coalesces_agent_state_by_agent(store: Store) -> None:
    writer = WriteBehind(store)
    for i, status in enumerate(["break", "available", "lunch", "available", "meeting"]):
        writer.submit(UpsertAgentState(AgentStateRow(agent="1001", status=status,
                                                     updated_at=float(i))))
    writer.submit(UpsertAgentState(AgentStateRow(agent="1002", status="lunch", updated_at=9.0)))
    assert (writer.pending, writer.submitted) == (2, 6)
    await writer.flush()
    assert [(r.agent, r.status, r.updated_at) for r in await store.load_agent_states()] == [
        ("1001", "meeting", 4.0), ("1002", "lunch", 9.0)]


# --- SQLite specifics -----------------------------------------------------------------


async def test_sqlite_relative_url_creates_parent_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = await Store.open("sqlite+aiosqlite:///var/acd.sqlite3")
    try:
        await store.apply([UpsertBinding(binding())])
    finally:
        await store.close()
    assert (tmp_path / "var" / "acd.sqlite3").is_file()


async def test_sqlite_uses_wal_and_busy_timeout(tmp_path: Path) -> None:
    store = await Store.open(
        f"sqlite+aiosqlite:///{tmp_path}/acd.sqlite3", sqlite_busy_timeout_ms=1234
    )
    try:
        async with store.engine.connect() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
            timeout = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
    finally:
        await store.close()
    assert (mode, timeout) == ("wal", 1234)


# --- write-behind against a real store ------------------------------------------------


class FlakyStore:
    """Delegates to a Store, but the first ``failures`` batches raise like a lost DB."""

    def __init__(self, store: Store, failures: int) -> None:
        self.store = store
        self.failures = failures
        self.calls = 0

    async def apply(self, ops: Sequence[StoreOp]) -> None:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise sa.exc.OperationalError("INSERT ...", {}, ConnectionResetError("db gone"))
        await self.store.apply(ops)


async def test_writer_coalesces_by_key(store: Store) -> None:
    writer = WriteBehind(store)
    for i in range(1000):
        writer.submit(UpsertBinding(binding(cseq=i, updated_at=float(i))))
    assert (writer.pending, writer.submitted) == (1, 1000)

    await writer.flush()

    assert (writer.pending, writer.flushed) == (0, 1)
    assert await store.load_bindings() == [binding(cseq=999, updated_at=999.0)]


async def test_writer_survives_db_failure(store: Store) -> None:
    flaky = FlakyStore(store, failures=2)
    writer = WriteBehind(flaky, interval=0.01, min_backoff=0.01)
    rows = [binding("1001", f"sip:{i}@h") for i in range(50)]
    with structlog.testing.capture_logs() as logs:
        writer.start()
        for r in rows:
            writer.submit(UpsertBinding(r))
        writer.submit(UpsertTrunkState(TrunkStateRow(name="t", state="up", last_change=1.0)))
        await wait_for(lambda: writer.flushed == 51)
        await writer.close()

    assert writer.failed_batches == 2
    assert writer.pending == 0
    assert await store.load_bindings() == rows
    assert len(await store.load_trunk_states()) == 1
    assert [e["event"] for e in logs].count("store.flush_failed") == 2


async def test_close_flushes(store: Store) -> None:
    writer = WriteBehind(store, interval=60)
    writer.start()
    rows = [binding("1001", f"sip:{i}@h") for i in range(20)]
    for r in rows:
        writer.submit(UpsertBinding(r))
    writer.submit(DeleteBinding("1001", "sip:0@h"))

    await writer.close()

    assert await store.load_bindings() == rows[1:]
    with pytest.raises(RuntimeError):
        writer.submit(DeleteAor("1001"))


async def test_batch_size_triggers_flush_before_interval(store: Store) -> None:
    writer = WriteBehind(store, interval=60, batch_size=10)
    writer.start()
    try:
        for i in range(9):
            writer.submit(UpsertBinding(binding("1001", f"sip:{i}@h")))
        await asyncio.sleep(0.1)
        assert writer.flushed == 0
        writer.submit(UpsertBinding(binding("1001", "sip:9@h")))
        await wait_for(lambda: writer.flushed == 10, timeout=2)
    finally:
        await writer.close()
    assert len(await store.load_bindings()) == 10


async def test_interval_flushes_without_being_asked(store: Store) -> None:
    writer = WriteBehind(store, interval=0.02)
    writer.start()
    try:
        writer.submit(UpsertBinding(binding()))
        await wait_for(lambda: writer.flushed == 1, timeout=2)
        assert await store.load_bindings() == [binding()]
    finally:
        await writer.close()


async def test_large_backlog_goes_in_several_batches(store: Store) -> None:
    calls: list[int] = []

    class Counting:
        async def apply(self, ops: Sequence[StoreOp]) -> None:
            calls.append(len(ops))
            await store.apply(ops)

    writer = WriteBehind(Counting(), batch_size=500)
    for i in range(1234):
        writer.submit(UpsertBinding(binding(f"{i % 7}", f"sip:{i}@h")))
    await writer.flush()
    assert calls == [500, 500, 234]
    assert len(await store.load_bindings()) == 1234


# --- write-behind against fakes -------------------------------------------------------


State = tuple[dict[tuple[str, str], BindingRow], dict[str, TrunkStateRow]]


def apply_to_model(state: State, op: StoreOp) -> None:
    rows, trunks = state
    if isinstance(op, UpsertBinding):
        rows[(op.row.aor, op.row.contact)] = op.row
    elif isinstance(op, DeleteBinding):
        rows.pop((op.aor, op.contact), None)
    elif isinstance(op, DeleteAor):
        for key in [k for k in rows if k[0] == op.aor]:
            del rows[key]
    else:
        trunks[op.row.name] = op.row


class ModelSink:
    """An in-memory OpSink that yields to the loop and fails on demand."""

    def __init__(self) -> None:
        self.state: State = ({}, {})
        self.fail_next = 0
        self.poison: set[int] = set()  # cseq values the "database" rejects as bad data

    async def apply(self, ops: Sequence[StoreOp]) -> None:
        await asyncio.sleep(0)
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionResetError("db gone")
        if any(isinstance(op, UpsertBinding) and op.row.cseq in self.poison for op in ops):
            raise sa.exc.DataError("INSERT ...", {}, ValueError("invalid byte sequence"))
        for op in ops:
            apply_to_model(self.state, op)


_aors = st.sampled_from(["a", "b"])
_contacts = st.sampled_from(["sip:x@h", "sip:y@h", "sip:z@h"])
_ops = st.one_of(
    st.builds(
        lambda a, c, n: UpsertBinding(binding(a, c, cseq=n)), _aors, _contacts, st.integers(0, 9)
    ),
    st.builds(DeleteBinding, _aors, _contacts),
    st.builds(DeleteAor, _aors),
    st.builds(
        lambda t, n: UpsertTrunkState(TrunkStateRow(name=t, state=str(n), last_change=n)),
        st.sampled_from(["t1", "t2"]),
        st.integers(0, 9),
    ),
)
_steps = st.lists(st.one_of(_ops, st.sampled_from(["flush", "yield", "fail"])), max_size=60)
DISTINCT_KEYS = 2 * 3 + 2 + 2  # binding keys + DeleteAor keys + trunk keys


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_steps, batch_size=st.integers(1, 4), background=st.booleans())
def test_coalescing_equals_applying_every_op_in_order(
    steps: list[StoreOp | str], batch_size: int, background: bool
) -> None:
    """Whatever the flush timing, failures and concurrency, the end state is the same."""

    async def scenario() -> tuple[State, State, int]:
        sink = ModelSink()
        writer = WriteBehind(sink, interval=0.001, batch_size=batch_size, min_backoff=0.001)
        if background:
            writer.start()
        expected: State = ({}, {})
        tasks: list[asyncio.Task[None]] = []
        max_pending = 0
        for step in steps:
            if step == "flush":
                tasks.append(asyncio.create_task(writer.flush()))
            elif step == "yield":
                await asyncio.sleep(0)
            elif step == "fail":
                sink.fail_next += 1
            else:
                assert not isinstance(step, str)
                writer.submit(step)
                apply_to_model(expected, step)
            max_pending = max(max_pending, writer.pending)
        await asyncio.gather(*tasks, return_exceptions=True)
        sink.fail_next = 0
        await writer.close()
        assert writer.pending == 0
        return sink.state, expected, max_pending

    actual, expected, max_pending = asyncio.run(scenario())
    assert actual == expected
    assert max_pending <= DISTINCT_KEYS


async def test_flush_raises_and_keeps_ops_for_later() -> None:
    sink = ModelSink()
    writer = WriteBehind(sink)
    writer.submit(UpsertBinding(binding("a", "sip:x@h", cseq=1)))
    writer.submit(DeleteAor("b"))
    sink.fail_next = 1

    with pytest.raises(ConnectionResetError):
        await writer.flush()
    assert (writer.pending, writer.failed_batches, writer.flushed) == (2, 1, 0)
    assert "db gone" in (writer.last_error or "")

    writer.submit(UpsertBinding(binding("a", "sip:x@h", cseq=2)))
    await writer.flush()
    assert (writer.pending, writer.flushed) == (0, 2)
    assert sink.state[0] == {("a", "sip:x@h"): binding("a", "sip:x@h", cseq=2)}


async def test_bad_data_drops_only_the_culprit() -> None:
    sink = ModelSink()
    sink.poison = {666}
    writer = WriteBehind(sink)
    good = [binding("a", f"sip:{i}@h", cseq=i) for i in range(5)]
    for r in good[:2]:
        writer.submit(UpsertBinding(r))
    writer.submit(UpsertBinding(binding("a", "sip:bad@h", cseq=666)))
    for r in good[2:]:
        writer.submit(UpsertBinding(r))

    with structlog.testing.capture_logs() as logs:
        await writer.flush()

    assert (writer.pending, writer.flushed, writer.rejected) == (0, 5, 1)
    assert sorted(sink.state[0].values(), key=lambda r: r.cseq) == good
    assert any(e["event"] == "store.op_rejected" and "sip:bad@h" in e["op"] for e in logs)


async def test_close_gives_up_after_timeout_but_keeps_ops() -> None:
    sink = ModelSink()
    sink.fail_next = 10**9
    writer = WriteBehind(sink, min_backoff=0.01, max_backoff=0.02)
    writer.start()
    writer.submit(DeleteAor("a"))
    with structlog.testing.capture_logs() as logs:
        await writer.close(timeout=0.2)
    assert writer.pending == 1
    assert any(e["event"] == "store.close_timeout" for e in logs)

    sink.fail_next = 0
    await writer.flush()
    assert writer.pending == 0


async def test_retries_back_off_instead_of_spinning() -> None:
    sink = ModelSink()
    sink.fail_next = 10**9
    attempts = 0
    original = sink.apply

    async def counting(ops: Sequence[StoreOp]) -> None:
        nonlocal attempts
        attempts += 1
        await original(ops)

    sink.apply = counting  # type: ignore[method-assign]
    writer = WriteBehind(sink, interval=0.001, min_backoff=0.02, max_backoff=0.1)
    writer.start()
    writer.submit(DeleteAor("a"))
    await asyncio.sleep(0.5)
    await writer.close(timeout=0)
    # 0.02 + 0.04 + 0.08 + 0.1 + 0.1 + ... : about 7 attempts in 0.5 s, not hundreds.
    assert 3 <= attempts <= 10


async def test_close_without_start_still_writes() -> None:
    sink = ModelSink()
    writer = WriteBehind(sink)
    writer.submit(UpsertBinding(binding("a", "sip:x@h")))
    await writer.close()
    assert sink.state[0] == {("a", "sip:x@h"): binding("a", "sip:x@h")}


async def test_in_flight_counts_the_batch_being_written() -> None:
    seen: list[tuple[int, int]] = []

    class Watching:
        async def apply(self, ops: Sequence[StoreOp]) -> None:
            seen.append((writer.pending, writer.in_flight))

    writer = WriteBehind(Watching(), batch_size=2)
    for c in ("sip:x@h", "sip:y@h", "sip:z@h"):
        writer.submit(UpsertBinding(binding("a", c)))
    await writer.flush()
    assert seen == [(1, 2), (0, 1)]
    assert writer.in_flight == 0


def test_delete_aor_supersedes_pending_ops_of_that_aor() -> None:
    writer = WriteBehind(ModelSink())
    for contact in ("sip:x@h", "sip:y@h"):
        writer.submit(UpsertBinding(binding("a", contact)))
    writer.submit(DeleteBinding("a", "sip:z@h"))
    writer.submit(UpsertBinding(binding("b", "sip:x@h")))
    writer.submit(DeleteAor("a"))
    writer.submit(UpsertBinding(binding("a", "sip:w@h")))
    # b's binding, the DeleteAor, and the binding registered after it.
    assert writer.pending == 3


def test_submit_works_without_an_event_loop() -> None:
    writer = WriteBehind(ModelSink())
    writer.submit(DeleteAor("a"))
    writer.submit(DeleteAor("a"))
    assert (writer.pending, writer.submitted) == (1, 2)
