"""Alembic environment of the store, shipped inside the package and run by ``migrate.py``.

Owns ``env.py`` (which only runs on a connection handed over by ``migrate.py``) and
the revisions in ``versions/``.  There is no alembic.ini: nothing depends on the cwd.

To add a revision, copy the latest file in ``versions/`` to ``NNNN_<what>.py``, set
``revision = "NNNN"`` and ``down_revision`` to the previous one, write ``upgrade()``
with ``alembic.op`` (use ``op.batch_alter_table`` to alter an existing table, which
SQLite needs), and update ``schema.py`` to match; ``tests/unit/test_store.py``
checks that the migrated database and ``schema.py`` agree on both backends.
"""
