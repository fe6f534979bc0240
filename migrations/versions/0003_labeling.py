"""labeling: Label Studio projects, pushed tasks, labels with history

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('label_projects',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('server_url', sa.String(length=300), nullable=False),
    sa.Column('ls_project_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('config_sha256', sa.String(length=64), nullable=False),
    sa.Column('pull_cursor', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_projects')),
    sa.UniqueConstraint('server_url', 'ls_project_id', name='uq_label_projects_server_project')
    )
    op.create_table('label_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('face_id', sa.Integer(), nullable=False),
    sa.Column('ls_task_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['face_id'], ['faces.id'], name=op.f('fk_label_tasks_face_id_faces'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['label_projects.id'], name=op.f('fk_label_tasks_project_id_label_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_tasks')),
    sa.UniqueConstraint('project_id', 'face_id', name='uq_label_tasks_project_face'),
    sa.UniqueConstraint('project_id', 'ls_task_id', name='uq_label_tasks_project_task')
    )
    with op.batch_alter_table('label_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_label_tasks_face_id'), ['face_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_label_tasks_project_id'), ['project_id'], unique=False)

    op.create_table('labels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('face_id', sa.Integer(), nullable=False),
    sa.Column('attribute', sa.String(length=40), nullable=False),
    sa.Column('value', sa.String(length=80), nullable=True),
    sa.Column('known', sa.Boolean(), nullable=False),
    sa.Column('raw', sa.JSON(), nullable=True),
    sa.Column('source', sa.String(length=12), nullable=False),
    sa.Column('annotator', sa.String(length=200), nullable=False),
    sa.Column('ls_task_id', sa.Integer(), nullable=True),
    sa.Column('ls_annotation_id', sa.Integer(), nullable=True),
    sa.Column('ls_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('current', 'superseded', 'retracted')", name=op.f('ck_labels_state')),
    sa.ForeignKeyConstraint(['face_id'], ['faces.id'], name=op.f('fk_labels_face_id_faces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_labels'))
    )
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.create_index('ix_labels_annotation', ['ls_annotation_id'], unique=False)
        batch_op.create_index('ix_labels_face_attribute_state', ['face_id', 'attribute', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_labels_face_id'), ['face_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_labels_face_id'))
        batch_op.drop_index('ix_labels_face_attribute_state')
        batch_op.drop_index('ix_labels_annotation')

    op.drop_table('labels')
    with op.batch_alter_table('label_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_label_tasks_project_id'))
        batch_op.drop_index(batch_op.f('ix_label_tasks_face_id'))

    op.drop_table('label_tasks')
    op.drop_table('label_projects')
