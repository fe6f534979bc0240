"""dataset snapshots and their members; training runs record their snapshot

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dataset_snapshots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('spec_text', sa.Text(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('resolution', sa.Integer(), nullable=False),
    sa.Column('label_encoding', sa.JSON(), nullable=False),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.Column('built_on', sa.Date(), nullable=False),
    sa.Column('built_by', sa.String(length=100), nullable=False),
    sa.Column('tainted', sa.Boolean(), nullable=False),
    sa.Column('taint', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dataset_snapshots')),
    sa.UniqueConstraint('sha256', name=op.f('uq_dataset_snapshots_sha256'))
    )
    op.create_table('dataset_snapshot_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('snapshot_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('face_id', sa.Integer(), nullable=True),
    sa.Column('shot_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('release_id', sa.Integer(), nullable=False),
    sa.Column('crop_sha256', sa.String(length=64), nullable=False),
    sa.Column('split', sa.String(length=8), nullable=False),
    sa.Column('label', sa.JSON(), nullable=False),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.CheckConstraint("split IN ('train', 'val')", name=op.f('ck_dataset_snapshot_members_split')),
    sa.ForeignKeyConstraint(['face_id'], ['faces.id'], name=op.f('fk_dataset_snapshot_members_face_id_faces'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_dataset_snapshot_members_person_id_people')),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_dataset_snapshot_members_release_id_releases')),
    sa.ForeignKeyConstraint(['shot_id'], ['shots.id'], name=op.f('fk_dataset_snapshot_members_shot_id_shots')),
    sa.ForeignKeyConstraint(['snapshot_id'], ['dataset_snapshots.id'], name=op.f('fk_dataset_snapshot_members_snapshot_id_dataset_snapshots')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dataset_snapshot_members')),
    sa.UniqueConstraint('snapshot_id', 'position', name='uq_dataset_snapshot_members_snapshot_position')
    )
    with op.batch_alter_table('dataset_snapshot_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dataset_snapshot_members_face_id'), ['face_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dataset_snapshot_members_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dataset_snapshot_members_release_id'), ['release_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dataset_snapshot_members_shot_id'), ['shot_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dataset_snapshot_members_snapshot_id'), ['snapshot_id'], unique=False)

    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('snapshot_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('external', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index(batch_op.f('ix_training_runs_snapshot_id'), ['snapshot_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_training_runs_snapshot_id_dataset_snapshots'), 'dataset_snapshots', ['snapshot_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_training_runs_snapshot_id_dataset_snapshots'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_training_runs_snapshot_id'))
        batch_op.drop_column('external')
        batch_op.drop_column('snapshot_id')

    with op.batch_alter_table('dataset_snapshot_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dataset_snapshot_members_snapshot_id'))
        batch_op.drop_index(batch_op.f('ix_dataset_snapshot_members_shot_id'))
        batch_op.drop_index(batch_op.f('ix_dataset_snapshot_members_release_id'))
        batch_op.drop_index(batch_op.f('ix_dataset_snapshot_members_person_id'))
        batch_op.drop_index(batch_op.f('ix_dataset_snapshot_members_face_id'))

    op.drop_table('dataset_snapshot_members')
    op.drop_table('dataset_snapshots')
