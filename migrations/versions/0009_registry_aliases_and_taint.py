"""checkpoint aliases replace checkpoint stages; taint on runs, checkpoints and generated images;
runs record the checkpoint they were resumed or fine-tuned from

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

Data: the newest checkpoint with stage 'production' gets the alias `production` (set by
"migration", with an audit event). Stage 'candidate' was every checkpoint's default, not anyone's
choice, so it becomes no alias; 'archived' (a checkpoint without aliases) is dropped as well.
Downgrade: the checkpoint holding `production` gets stage 'production', every other 'candidate'.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

STAGES = "stage IN ('candidate', 'production', 'archived')"
MIGRATION_ACTOR = "migration"

_checkpoints = sa.table('checkpoints', sa.column('id', sa.Integer()), sa.column('stage', sa.String()),
                        sa.column('created_at', sa.DateTime(timezone=True)))
_aliases = sa.table('checkpoint_aliases', sa.column('name', sa.String()), sa.column('checkpoint_id', sa.Integer()),
                    sa.column('set_by', sa.String()), sa.column('set_at', sa.DateTime(timezone=True)))
_audit = sa.table('audit_events', sa.column('at', sa.DateTime(timezone=True)), sa.column('actor', sa.String()),
                  sa.column('action', sa.String()), sa.column('subject_type', sa.String()),
                  sa.column('subject_id', sa.String()), sa.column('details', sa.JSON()))


def upgrade() -> None:
    op.create_table('checkpoint_aliases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('set_by', sa.String(length=100), nullable=False),
    sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_checkpoint_aliases_checkpoint_id_checkpoints')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkpoint_aliases')),
    sa.UniqueConstraint('name', name=op.f('uq_checkpoint_aliases_name'))
    )
    with op.batch_alter_table('checkpoint_aliases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkpoint_aliases_checkpoint_id'), ['checkpoint_id'], unique=False)

    bind = op.get_bind()
    production = bind.execute(
        sa.select(_checkpoints.c.id).where(_checkpoints.c.stage == 'production')
        .order_by(_checkpoints.c.created_at.desc(), _checkpoints.c.id.desc()).limit(1)).scalar()
    if production is not None:
        now = dt.datetime.now(dt.UTC)
        bind.execute(_aliases.insert().values(name='production', checkpoint_id=production,
                                              set_by=MIGRATION_ACTOR, set_at=now))
        bind.execute(_audit.insert().values(
            at=now, actor=MIGRATION_ACTOR, action='registry.alias.set', subject_type='checkpoint_alias',
            subject_id='production', details={'alias': 'production', 'checkpoint_id': production,
                                              'previous_checkpoint_id': None, 'from': "stage 'production'"}))

    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_checkpoints_stage'), type_='check')
        batch_op.drop_column('stage')
        batch_op.add_column(sa.Column('taint', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))

    with op.batch_alter_table('generated_images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('taint', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))

    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parent_checkpoint_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('tainted', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('taint', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch_op.create_index(batch_op.f('ix_training_runs_parent_checkpoint_id'), ['parent_checkpoint_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_training_runs_parent_checkpoint_id_checkpoints'), 'checkpoints', ['parent_checkpoint_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_training_runs_parent_checkpoint_id_checkpoints'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_training_runs_parent_checkpoint_id'))
        batch_op.drop_column('taint')
        batch_op.drop_column('tainted')
        batch_op.drop_column('parent_checkpoint_id')

    with op.batch_alter_table('generated_images', schema=None) as batch_op:
        batch_op.drop_column('taint')

    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.drop_column('taint')
        batch_op.add_column(sa.Column('stage', sa.String(length=12), nullable=False, server_default='candidate'))

    production = sa.select(_aliases.c.checkpoint_id).where(_aliases.c.name == 'production').scalar_subquery()
    op.execute(_checkpoints.update().where(_checkpoints.c.id == production).values(stage='production'))

    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.alter_column('stage', server_default=None)
        batch_op.create_check_constraint(batch_op.f('ck_checkpoints_stage'), sa.text(STAGES))

    with op.batch_alter_table('checkpoint_aliases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkpoint_aliases_checkpoint_id'))

    op.drop_table('checkpoint_aliases')
