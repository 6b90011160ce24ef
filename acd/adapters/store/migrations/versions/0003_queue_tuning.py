"""Queue settings changed through the admin API, kept across restarts and reloads.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_tuning",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("changes", sa.Text, nullable=False),  # JSON object, as the API took it
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_queue_tuning"),
    )


def downgrade() -> None:
    op.drop_table("queue_tuning")
