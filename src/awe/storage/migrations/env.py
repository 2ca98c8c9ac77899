"""Alembic environment: runs on the connection awe hands over in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from awe.storage.migrate import context_options
from awe.storage.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, **context_options(connection))
with context.begin_transaction():
    context.run_migrations()
