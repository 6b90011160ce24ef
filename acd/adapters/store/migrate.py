"""Bring a database to the latest store schema with alembic, from code, at startup.

Owns the alembic ``Config`` built in code (script location = the ``migrations``
package next to this file, so neither an alembic.ini nor the cwd matter) and the
one public entry point ``upgrade_to_head``, meant for ``AsyncConnection.run_sync``
inside the caller's transaction.  Upgrading an up-to-date database is a no-op.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Any constant works; it only has to be the same in every process migrating this
# database, so that concurrent starts apply each revision once.
_PG_MIGRATION_LOCK = 0x_AC_D5_70_8E


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An alembic config for the shipped migrations, optionally bound to a connection."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The revision the shipped migrations end at."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations shipped"
    return head


def current_revision(connection: sa.Connection) -> str | None:
    """The revision the database is at, ``None`` if it was never migrated."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(connection: sa.Connection) -> None:
    """Apply every missing revision on ``connection``, inside its open transaction."""
    if connection.dialect.name == "postgresql":
        # Serializes concurrent starts; released by the caller's commit or rollback.
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    command.upgrade(alembic_config(connection), "head")
