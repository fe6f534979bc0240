"""training runs: the lease of the process training a run, and the interrupted status

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

OLD_STATUSES = "status IN ('queued', 'running', 'finished', 'failed', 'stopped')"
NEW_STATUSES = "status IN ('queued', 'running', 'finished', 'failed', 'stopped', 'interrupted')"


def upgrade() -> None:
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_pid', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('lease_host', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint(batch_op.f('ck_training_runs_status'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_training_runs_status'), sa.text(NEW_STATUSES))


def downgrade() -> None:
    op.execute("UPDATE training_runs SET status = 'stopped' WHERE status = 'interrupted'")
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_training_runs_status'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_training_runs_status'), sa.text(OLD_STATUSES))
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('lease_host')
        batch_op.drop_column('lease_pid')
