"""CRM: call detail records and legs, recordings, contacts, tickets and their history,
agent status history, the consumer's processed-event ledger and per-call event log.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

# Frozen here on purpose: revisions never import the live schema module.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LIVE_CONTACT = "merged_into IS NULL AND deleted_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_processed_events"),
    )
    op.create_index("ix_processed_events_at", "processed_events", ["at"])

    op.create_table(
        "call_events",
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("call_ref", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("node", sa.Text, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_call_events"),
    )
    op.create_index("ix_call_events_call_ref", "call_events", ["call_ref"])

    op.create_table(
        "cdrs",
        sa.Column("call_ref", sa.Text, nullable=False),
        sa.Column("sip_call_id", sa.Text, nullable=True),
        sa.Column("direction", sa.Text, nullable=True),
        sa.Column("from_number", sa.Text, nullable=True),
        sa.Column("to_number", sa.Text, nullable=True),
        sa.Column("hotline", sa.Text, nullable=True),
        sa.Column("trunk", sa.Text, nullable=True),
        sa.Column("account", sa.Text, nullable=True),
        sa.Column("queue", sa.Text, nullable=True),
        sa.Column("agent", sa.Text, nullable=True),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("answered_at", sa.Double, nullable=True),
        sa.Column("ended_at", sa.Double, nullable=True),
        sa.Column("wait_seconds", sa.Double, nullable=True),
        sa.Column("ring_seconds", sa.Double, nullable=True),
        sa.Column("talk_seconds", sa.Double, nullable=True),
        sa.Column("hold_seconds", sa.Double, nullable=True),
        sa.Column("duration_seconds", sa.Double, nullable=True),
        sa.Column("outcome", sa.Text, nullable=True),
        sa.Column("end_reason", sa.Text, nullable=True),
        sa.Column("hangup_by", sa.Text, nullable=True),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("recording_id", BigId, nullable=True),
        sa.Column("contact_id", BigId, nullable=True),
        sa.Column("ticket_id", BigId, nullable=True),
        sa.Column("node", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("call_ref", name="pk_cdrs"),
    )
    op.create_index("ix_cdrs_started_at_call_ref", "cdrs", ["started_at", "call_ref"])
    for col in ("hotline", "queue", "agent", "direction", "outcome"):
        op.create_index(f"ix_cdrs_{col}_started_at", "cdrs", [col, "started_at"])

    op.create_table(
        "cdr_legs",
        sa.Column("call_ref", sa.Text, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("party", sa.Text, nullable=True),
        sa.Column("started_at", sa.Double, nullable=True),
        sa.Column("answered_at", sa.Double, nullable=True),
        sa.Column("ended_at", sa.Double, nullable=True),
        sa.Column("outcome", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("call_ref", "seq", name="pk_cdr_legs"),
        sa.ForeignKeyConstraint(["call_ref"], ["cdrs.call_ref"], ondelete="CASCADE",
                                name="fk_cdr_legs_call_ref_cdrs"),
    )

    op.create_table(
        "recordings",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("call_ref", sa.Text, nullable=True),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("duration", sa.Double, nullable=True),
        sa.Column("channels", sa.Integer, nullable=True),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("mailbox", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_recordings"),
        sa.UniqueConstraint("event_id", name="uq_recordings_event_id"),
    )
    op.create_index("ix_recordings_call_ref", "recordings", ["call_ref"])

    op.create_table(
        "contacts",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("phone", sa.Text, nullable=True),
        sa.Column("email", sa.Text, nullable=True),
        sa.Column("notes", sa.Text, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("merged_into", BigId, nullable=True),
        sa.Column("deleted_at", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_contacts"),
        sa.ForeignKeyConstraint(["merged_into"], ["contacts.id"],
                                name="fk_contacts_merged_into_contacts"),
    )
    op.create_index("ix_contacts_phone", "contacts", ["phone"])
    op.create_index("uq_contacts_phone_live", "contacts", ["phone"], unique=True,
                    sqlite_where=sa.text(LIVE_CONTACT), postgresql_where=sa.text(LIVE_CONTACT))
    op.create_index("ix_contacts_lower_name", "contacts", [sa.text("lower(name)")])

    op.create_table(
        "tickets",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("call_ref", sa.Text, nullable=True),
        sa.Column("contact_id", BigId, nullable=True),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("direction", sa.Text, nullable=True),
        sa.Column("hotline", sa.Text, nullable=True),
        sa.Column("queue", sa.Text, nullable=True),
        sa.Column("assignee", sa.Text, nullable=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("priority", sa.Text, nullable=False),
        sa.Column("missed", sa.Boolean, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
        sa.UniqueConstraint("call_ref", name="uq_tickets_call_ref"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"],
                                name="fk_tickets_contact_id_contacts"),
    )
    for col in ("status", "assignee", "contact_id"):
        op.create_index(f"ix_tickets_{col}_id", "tickets", [col, "id"])

    op.create_table(
        "ticket_events",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("ticket_id", BigId, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("author", sa.Text, nullable=True),
        sa.Column("source", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ticket_events"),
        sa.UniqueConstraint("source", name="uq_ticket_events_source"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE",
                                name="fk_ticket_events_ticket_id_tickets"),
    )
    op.create_index("ix_ticket_events_ticket_id_at", "ticket_events", ["ticket_id", "at"])

    op.create_table(
        "agent_status_history",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("agent", sa.Text, nullable=False),
        sa.Column("layer", sa.Text, nullable=False),
        sa.Column("old", sa.Text, nullable=True),
        sa.Column("new", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("event_id", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_agent_status_history"),
    )
    op.create_index("ix_agent_status_history_agent_at", "agent_status_history",
                    ["agent", "at"])


def downgrade() -> None:
    for table in ("agent_status_history", "ticket_events", "tickets", "contacts",
                  "recordings", "cdr_legs", "cdrs", "call_events", "processed_events"):
        op.drop_table(table)
