"""The migrations and the models describe one schema: Alembic's autogenerate, run against a
database upgraded to head, finds nothing to change (on SQLite and on PostgreSQL)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from likeness.models import Base
from likeness.workbench import Workbench


def test_models_match_the_migrated_schema(workbench: Workbench) -> None:
    with workbench.db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": False})
        drift = compare_metadata(context, Base.metadata)
    assert drift == [], f"models and migrations disagree: {drift}"
