"""Alembic environment: always given a connection by prodmatch.stores.migrations.upgrade()."""

from __future__ import annotations

from alembic import context

import prodmatch.stores.sql  # noqa: F401  (defines every table on Base)
from prodmatch.stores.sql_engine import Base

connection = context.config.attributes["connection"]
# batch mode: SQLite cannot ALTER most things in place; Alembic copies the table instead
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
