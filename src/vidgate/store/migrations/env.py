"""Alembic environment: vidgate runs migrations with a connection it hands over.

``vidgate.store.migrate`` puts a live synchronous connection in
``config.attributes["connection"]``; the ``alembic`` command line is not needed.
"""

from __future__ import annotations

from alembic import context

from vidgate.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `vidgate migrate` (it supplies the connection)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
