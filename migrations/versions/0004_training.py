"""training: runs, checkpoints (snapshot blobs) and generated images

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('training_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('network', sa.JSON(), nullable=True),
    sa.Column('dataset_path', sa.Text(), nullable=False),
    sa.Column('dataset_fingerprint', sa.String(length=64), nullable=True),
    sa.Column('run_dir', sa.Text(), nullable=False),
    sa.Column('kimg', sa.Double(), nullable=False),
    sa.Column('total_kimg', sa.Double(), nullable=False),
    sa.Column('augment_p', sa.Double(), nullable=False),
    sa.Column('last_metrics', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('queued', 'running', 'finished', 'failed', 'stopped')", name=op.f('ck_training_runs_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_training_runs')),
    sa.UniqueConstraint('name', name=op.f('uq_training_runs_name'))
    )
    op.create_table('checkpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('kimg', sa.Double(), nullable=False),
    sa.Column('file_sha256', sa.String(length=64), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('grid_sha256', sa.String(length=64), nullable=True),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('stage', sa.String(length=12), nullable=False),
    sa.Column('tainted', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("stage IN ('candidate', 'production', 'archived')", name=op.f('ck_checkpoints_stage')),
    sa.ForeignKeyConstraint(['run_id'], ['training_runs.id'], name=op.f('fk_checkpoints_run_id_training_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkpoints')),
    sa.UniqueConstraint('run_id', 'kimg', name='uq_checkpoints_run_kimg')
    )
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkpoints_file_sha256'), ['file_sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_checkpoints_run_id'), ['run_id'], unique=False)

    op.create_table('generated_images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('psi', sa.Double(), nullable=False),
    sa.Column('label', sa.JSON(), nullable=True),
    sa.Column('label_key', sa.String(length=64), nullable=False),
    sa.Column('noise_mode', sa.String(length=8), nullable=False),
    sa.Column('image_sha256', sa.String(length=64), nullable=False),
    sa.Column('tainted', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_generated_images_checkpoint_id_checkpoints')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_generated_images')),
    sa.UniqueConstraint('checkpoint_id', 'seed', 'psi', 'label_key', 'noise_mode', name='uq_generated_images_recipe')
    )
    with op.batch_alter_table('generated_images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_generated_images_checkpoint_id'), ['checkpoint_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_generated_images_image_sha256'), ['image_sha256'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('generated_images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_generated_images_image_sha256'))
        batch_op.drop_index(batch_op.f('ix_generated_images_checkpoint_id'))

    op.drop_table('generated_images')
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkpoints_run_id'))
        batch_op.drop_index(batch_op.f('ix_checkpoints_file_sha256'))

    op.drop_table('checkpoints')
    op.drop_table('training_runs')
