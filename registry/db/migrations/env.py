"""Alembic environment: runs on the connection the caller hands over (never a URL of its own)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from registry.db.models import Base

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("modelctl migrations run through registry.db.engine.migrate()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
