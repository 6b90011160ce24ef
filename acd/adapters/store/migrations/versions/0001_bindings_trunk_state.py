"""Registrar bindings and trunk registration state.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bindings",
        sa.Column(
            "id",
            # BIGINT: conflicting upserts burn sequence values; INTEGER aliases the rowid.
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            autoincrement=True,
        ),
        sa.Column("aor", sa.Text, nullable=False),
        sa.Column("contact", sa.Text, nullable=False),
        sa.Column("contact_params", sa.Text, nullable=False),
        sa.Column("q", sa.Double, nullable=True),
        sa.Column("call_id", sa.Text, nullable=False),
        sa.Column("cseq", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("registered_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("user_agent", sa.Text, nullable=True),
        sa.Column("instance_id", sa.Text, nullable=True),
        sa.Column("reg_id", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_bindings"),
        sa.UniqueConstraint("aor", "contact", name="uq_bindings_aor_contact"),
    )
    op.create_table(
        "trunk_state",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("last_change", sa.Double, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_trunk_state"),
    )


def downgrade() -> None:
    op.drop_table("trunk_state")
    op.drop_table("bindings")
