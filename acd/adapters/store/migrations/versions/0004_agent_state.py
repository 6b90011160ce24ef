"""Agents' availability (available, or why not), kept across restarts.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_state",
        sa.Column("agent", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),  # available, logged_out or a reason
        sa.Column("reason", sa.Text, nullable=True),  # what set it: api, feature code *22, ...
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("agent", name="pk_agent_state"),
    )


def downgrade() -> None:
    op.drop_table("agent_state")
