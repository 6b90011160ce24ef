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

# queue settings changed through the admin API (revision 0003): the changes as JSON
queue_tuning = sa.Table(
    "queue_tuning",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("changes", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

# each agent's availability as last set (revision 0004): "available", "logged_out" or a
# not-available reason ("lunch", "auto_paused"); ``reason`` says what set it ("api",
# "feature code *22"); no row means the status the config gives at start
agent_state = sa.Table(
    "agent_state",
    metadata,
    sa.Column("agent", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("updated_at", sa.Double, nullable=False),
)


# --- CRM: call detail records, recordings, contacts, tickets (revision 0002) ------------
# Times are UTC epoch seconds as doubles, like the events they come from.

processed_events = sa.Table(
    "processed_events",
    metadata,
    # The consumer's idempotency ledger: an event id is inserted in the same transaction
    # as the event's effect, so a redelivered event finds it and changes nothing.
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("at", sa.Double, nullable=False),
    sa.Index(None, "at"),
)

call_events = sa.Table(
    "call_events",
    metadata,
    # Every event of a call that bears on its CDR or ticket; the CDR, legs and ticket
    # fields are recomputed from this set, so arrival order does not matter.
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("call_ref", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("node", sa.Text, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Index(None, "call_ref"),
)

cdrs = sa.Table(
    "cdrs",
    metadata,
    sa.Column("call_ref", sa.Text, primary_key=True),
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
    # NULL while the call is up: a row exists from the call's first event on.
    sa.Column("outcome", sa.Text, nullable=True),
    sa.Column("end_reason", sa.Text, nullable=True),
    sa.Column("hangup_by", sa.Text, nullable=True),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("recording_id", BigId, nullable=True),
    sa.Column("contact_id", BigId, nullable=True),
    sa.Column("ticket_id", BigId, nullable=True),
    sa.Column("node", sa.Text, nullable=True),
    # Keyset pagination walks (started_at, call_ref) newest first.
    sa.Index(None, "started_at", "call_ref"),
    sa.Index(None, "hotline", "started_at"),
    sa.Index(None, "queue", "started_at"),
    sa.Index(None, "agent", "started_at"),
    sa.Index(None, "direction", "started_at"),
    sa.Index(None, "outcome", "started_at"),
)

cdr_legs = sa.Table(
    "cdr_legs",
    metadata,
    sa.Column("call_ref", sa.Text, sa.ForeignKey("cdrs.call_ref", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("party", sa.Text, nullable=True),
    sa.Column("started_at", sa.Double, nullable=True),
    sa.Column("answered_at", sa.Double, nullable=True),
    sa.Column("ended_at", sa.Double, nullable=True),
    sa.Column("outcome", sa.Text, nullable=True),
)

recordings = sa.Table(
    "recordings",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("call_ref", sa.Text, nullable=True),
    # The event that reported it: a redelivered recording.ready adds no second row.
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
    sa.UniqueConstraint("event_id"),
    sa.Index(None, "call_ref"),
)

contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("phone", sa.Text, nullable=True),
    sa.Column("email", sa.Text, nullable=True),
    sa.Column("notes", sa.Text, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("merged_into", BigId, sa.ForeignKey("contacts.id"), nullable=True),
    sa.Column("deleted_at", sa.Double, nullable=True),
    sa.Index(None, "phone"),
    # One live contact per number; merged and deleted ones keep theirs for lookups.
    sa.Index(
        "uq_contacts_phone_live",
        "phone",
        unique=True,
        sqlite_where=sa.text("merged_into IS NULL AND deleted_at IS NULL"),
        postgresql_where=sa.text("merged_into IS NULL AND deleted_at IS NULL"),
    ),
)
# Name search compares lower(name); prefix matches can use this index.
sa.Index("ix_contacts_lower_name", sa.func.lower(contacts.c.name))

tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("call_ref", sa.Text, nullable=True),
    sa.Column("contact_id", BigId, sa.ForeignKey("contacts.id"), nullable=True),
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
    sa.UniqueConstraint("call_ref"),
    sa.Index(None, "status", "id"),
    sa.Index(None, "assignee", "id"),
    sa.Index(None, "contact_id", "id"),
)

ticket_events = sa.Table(
    "ticket_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("author", sa.Text, nullable=True),
    # Entries derived from call events carry a unique source and are rewritten in place
    # when more of the call arrives; people's entries have none.
    sa.Column("source", sa.Text, nullable=True),
    sa.UniqueConstraint("source"),
    sa.Index(None, "ticket_id", "at"),
)

agent_status_history = sa.Table(
    "agent_status_history",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("agent", sa.Text, nullable=False),
    sa.Column("layer", sa.Text, nullable=False),
    sa.Column("old", sa.Text, nullable=True),
    sa.Column("new", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("event_id", sa.Text, nullable=True),
    sa.Index(None, "agent", "at"),
)
