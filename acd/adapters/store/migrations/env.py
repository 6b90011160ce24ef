"""Alembic env script: migrate the connection that ``migrate.upgrade`` put in the config.

Owns nothing else; it never opens connections, so there is exactly one way in.
"""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection)
# The caller already holds the transaction (and on PostgreSQL a lock); alembic
# joins it rather than committing on its own.
with context.begin_transaction():
    context.run_migrations()
