"""The real daemon on loopback with SIPp as the phone: REGISTER with digest, the contract's
accounts, bindings listed by the admin API and kept across a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require
from tests.integration.harness import Daemon, free_port, run_sipp

pytestmark = pytest.mark.integration


@pytest.fixture
def daemon(tmp_path: Path):
    d = Daemon.demo(tmp_path / "daemon").start()
    yield d
    code = d.stop()
    assert code == 0, d.log()


def test_register_digest_and_list(daemon: Daemon, tmp_path: Path) -> None:
    port = free_port()
    r = run_sipp("register-only.xml", daemon.sip, tmp_path, "-m", "1", "-key", "user", "1001",
                 "-key", "expires", "300", "-key", "contact_port", str(port),
                 "-au", "1001", "-ap", "pass1001", "-timeout", "10s", port=port)
    assert r.returncode == 0, r.errors + r.messages
    assert "401 Unauthorized" in r.messages and "200 OK" in r.messages
    items = daemon.get("/registrations")["items"]
    mine = [i for i in items if i["aor"] == "1001"]
    assert len(mine) == 1
    assert mine[0]["contact"] == f"sip:1001@127.0.0.1:{port};transport=UDP"
    assert mine[0]["source"] == f"udp:127.0.0.1:{port}"
    assert 290 <= mine[0]["expires_in"] <= 300


def test_wrong_password_is_refused(daemon: Daemon, tmp_path: Path) -> None:
    r = run_sipp("register-auth.xml", daemon.sip, tmp_path, "-m", "1", "-key", "user", "1002",
                 "-key", "expires", "120", "-key", "contact_port", "5999",
                 "-au", "1002", "-ap", "not-the-password", "-timeout", "10s")
    assert r.returncode != 0
    # a second challenge, never a 200
    assert r.messages.count("401 Unauthorized") >= 2
    assert "200 OK" not in r.messages
    assert daemon.get("/registrations")["items"] == []


def test_unknown_user_looks_like_wrong_password(daemon: Daemon, tmp_path: Path) -> None:
    def second_answer(user: str, password: str) -> str:
        r = run_sipp("register-auth.xml", daemon.sip, tmp_path / user, "-m", "1",
                     "-key", "user", user, "-key", "expires", "120", "-key", "contact_port",
                     "5999", "-au", user, "-ap", password, "-timeout", "10s")
        answers = [blk for blk in r.messages.split("-----") if "received" in blk]
        assert len(answers) >= 2
        first_line = answers[1].split("SIP/2.0", 1)[1].split("\n", 1)[0]
        return first_line.strip()

    assert second_answer("1003", "bad") == second_answer("9999", "bad") == "401 Unauthorized"


def test_load_2000_registrations_at_200_per_second(daemon: Daemon, tmp_path: Path) -> None:
    r = run_sipp("register-auth.xml", daemon.sip, tmp_path, "-m", "2000", "-r", "200",
                 "-d", "500", "-key", "user", "1004", "-key", "expires", "120",
                 "-key", "contact_port", "5998", "-au", "1004", "-ap", "pass1004",
                 "-timeout", "40s", trace=False, timeout=60)
    assert r.returncode == 0, r.errors
    assert r.count("SuccessfulCall(C)") == 2000
    assert r.count("FailedCall(C)") == 0


def _postgres_url(tmp_path: Path) -> str:
    """A fresh PostgreSQL schema for one daemon (the shared `test` database stays clean)."""
    import asyncio

    import asyncpg

    schema = f"acd_daemon_{tmp_path.name[-20:].replace('-', '_').lower()}"

    async def make() -> None:
        conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test", timeout=3)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.execute(f'CREATE SCHEMA "{schema}"')
        finally:
            await conn.close()

    try:
        asyncio.run(make())
    except (OSError, asyncpg.PostgresError) as exc:
        require(False, f"PostgreSQL on 127.0.0.1:5432 is not reachable: {exc}")
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/test?schema={schema}"


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres",
                                                              marks=pytest.mark.postgres)])
def test_bindings_survive_restart(tmp_path: Path, backend: str) -> None:
    url = _postgres_url(tmp_path) if backend == "postgres" else None
    d = Daemon.demo(tmp_path / "daemon", store_url=url).start()
    try:
        r = run_sipp("register-only.xml", d.sip, tmp_path, "-m", "1", "-key", "user", "1003",
                     "-key", "expires", "600", "-key", "contact_port", "5997",
                     "-au", "1003", "-ap", "pass1003", "-timeout", "10s")
        assert r.returncode == 0, r.errors
        assert [i["aor"] for i in d.get("/registrations")["items"]] == ["1003"]
    finally:
        assert d.stop() == 0
    d2 = Daemon(d.workdir, d.config_text, d.sip_port, d.admin_port).start()
    try:
        items = d2.get("/registrations")["items"]
        assert [(i["aor"], i["contact"]) for i in items] == [
            ("1003", "sip:1003@127.0.0.1:5997;transport=UDP")]
    finally:
        assert d2.stop() == 0
