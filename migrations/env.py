"""Alembic environment: migrates on a connection handed in, or on the configured database."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from likeness.db import FOREIGN_KEYS_OFF
from likeness.models import Base


def _configure_and_run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    checked = sqlite and _foreign_keys_off(connection)
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=sqlite,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        if checked:
            _foreign_key_check(connection)


def _foreign_keys_off(connection: Connection) -> bool:
    """SQLite's batch mode rebuilds a table by copy, drop and rename; with foreign keys enforced
    the drop fails while other tables' rows refer to it (SQLite's documented procedure for such
    changes turns enforcement off, then checks). The pragma only works outside a transaction:
    True when it was turned off, so the caller checks before commit; the engine turns it on again
    when the connection next leaves the pool (likeness.db)."""
    raw = connection.connection.dbapi_connection
    if raw is None or getattr(raw, "in_transaction", True):
        return False
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.connection.info[FOREIGN_KEYS_OFF] = True
    return True


def _foreign_key_check(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        table, rowid, parent, _ = broken[0]
        raise RuntimeError(f"migration left {len(broken)} rows referring to missing rows "
                           f"(first: {table} row {rowid} -> {parent})")


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
