"""Alembic environment: migrates on a connection handed in, or on the configured database."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from likeness.models import Base


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    from likeness.config import Settings
    from likeness.db import create_db_engine

    engine = create_db_engine(Settings().resolved_database_url)
    with engine.begin() as connection:
        _configure_and_run(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported: run `likeness db upgrade`")
run_migrations_online()
