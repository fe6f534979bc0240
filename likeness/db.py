"""Database engine, sessions and migrations. Whoever opens a unit of work owns its commit."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from likeness.config import make_private_dir, make_private_file, narrow_to_owner, private_umask
from likeness.errors import ConfigError, ServiceUnavailable

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (the app) work while the ingest writes; foreign keys are off by default.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


# SQLite's side files of a database in WAL mode; they hold the same data as the database.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def _private_sqlite_file(database: str) -> None:
    """The database file and its side files are the owner's alone (0600) in an owner-only folder
    (0700, when we create it): they hold personal data and password hashes. A database created
    wider by an older version is narrowed."""
    path = Path(database)
    make_private_dir(path.parent)
    make_private_file(path)
    for suffix in SQLITE_SIDE_FILES:
        narrow_to_owner(path.with_name(path.name + suffix))


def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
    # SQLite gives its -wal and -shm files the database file's mode; the umask covers the moment
    # they are created all the same.
    with private_umask():
        _sqlite_pragmas(dbapi_connection, record)


FOREIGN_KEYS_OFF = "likeness_foreign_keys_off"  # connection info: migrations/env.py turned enforcement off


def _sqlite_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    # A connection a migration ran on (foreign keys off: see migrations/env.py) enforces them
    # again before anyone else gets it; out of the pool it is outside any transaction.
    if record.info.pop(FOREIGN_KEYS_OFF, False):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def create_db_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse text
        raise ConfigError(f"LIKENESS_DATABASE_URL is not a database URL: {url!r}") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            _private_sqlite_file(parsed.database)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "checkout", _sqlite_checkout)
        return engine
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True)


def conflict_insert(session: Session, entity: Any) -> sqlite.Insert | postgresql.Insert:
    """An INSERT for ``entity`` that can say ON CONFLICT DO NOTHING / DO UPDATE, in the dialect
    of the session's database: the race-safe way to insert-or-get a row by a unique key when
    other processes may insert the same key at the same time."""
    name = session.get_bind().dialect.name
    if name == "sqlite":
        return sqlite.insert(entity)
    if name == "postgresql":
        return postgresql.insert(entity)
    raise ConfigError(f"the {name} database is not supported", hint="use SQLite or PostgreSQL")


def alembic_config() -> Config:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    return config


class Database:
    """An engine plus a session factory; `close()` releases the connections."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_db_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any error."""
        try:
            with self.sessions.begin() as session:
                yield session
        except OperationalError as exc:
            if "connect" in str(exc).lower():
                raise ServiceUnavailable(
                    f"cannot reach the database at {self.safe_url}",
                    hint="check LIKENESS_DATABASE_URL and that the server runs",
                ) from exc
            raise

    @property
    def safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def upgrade(self, revision: str = "head") -> None:
        """Migrate the schema to `revision` on our own connection."""
        config = alembic_config()
        try:
            with self.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
        except OperationalError as exc:
            raise ServiceUnavailable(f"cannot migrate the database at {self.safe_url}: {exc.orig}") from exc

    def current_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(alembic_config()).get_current_head()

    def require_current(self) -> None:
        """Refuse to work on a database that is missing or behind the code's schema."""
        try:
            current = self.current_revision()
        except OperationalError as exc:
            raise ServiceUnavailable(f"cannot reach the database at {self.safe_url}: {exc.orig}") from exc
        if current != self.head_revision():
            tables = inspect(self.engine).get_table_names()
            state = "has no schema" if not tables else f"is at revision {current}"
            raise ConfigError(
                f"the database at {self.safe_url} {state}, the code needs {self.head_revision()}",
                hint="run `likeness db upgrade`",
            )

    def close(self) -> None:
        self.engine.dispose()
