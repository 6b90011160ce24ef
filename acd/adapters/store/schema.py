"""The current shape of the store's tables, as SQLAlchemy Core ``Table`` objects.

Owns the table definitions that queries are written against.  The database is
created and evolved only by the alembic revisions in ``migrations/versions``; a
test compares this module with the migrated database, so a new revision must
update both.  Revisions never import this module: they freeze the shape they create.
"""

from __future__ import annotations

import sqlalchemy as sa

# Deterministic constraint names, so later revisions can drop or alter them by name
# on PostgreSQL and in SQLite batch mode.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Upserts burn a PostgreSQL sequence value on every conflict, and every refresh of a
# binding is an upsert: 32-bit ids would run out within months on a busy registrar.
# SQLite needs exactly INTEGER for the primary key to alias the rowid.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

bindings = sa.Table(
    "bindings",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("aor", sa.Text, nullable=False),
    sa.Column("contact", sa.Text, nullable=False),
    sa.Column("contact_params", sa.Text, nullable=False),
    # Double, not REAL: float4 turns q=0.7 into 0.699999988 on the way back.
    sa.Column("q", sa.Double, nullable=True),
    sa.Column("call_id", sa.Text, nullable=False),
    # RFC 3261 §8.1.1.5 allows any 32-bit unsigned CSeq, beyond a signed int4.
    sa.Column("cseq", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.Column("registered_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("user_agent", sa.Text, nullable=True),
    sa.Column("instance_id", sa.Text, nullable=True),
    sa.Column("reg_id", sa.Integer, nullable=True),
    sa.UniqueConstraint("aor", "contact"),
)

trunk_state = sa.Table(
    "trunk_state",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("last_change", sa.Double, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)
