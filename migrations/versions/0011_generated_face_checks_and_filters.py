"""generated faces carry their automatic checks, attributes and the learned filter's decision;
face_filters holds each version of that filter

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

Data: existing images get no checks, no attributes and no decision (a person decides them, as
before).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('face_filters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('model_sha256', sa.String(length=64), nullable=False),
    sa.Column('features', sa.JSON(), nullable=False),
    sa.Column('thresholds', sa.JSON(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_face_filters')),
    sa.UniqueConstraint('version', name=op.f('uq_face_filters_version'))
    )
    with op.batch_alter_table('generated_images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('checks', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('attributes', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('decision', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('decision_score', sa.Double(), nullable=True))
        batch_op.add_column(sa.Column('decision_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('filter_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_generated_images_decision'), ['decision'], unique=False)
        batch_op.create_index(batch_op.f('ix_generated_images_filter_id'), ['filter_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_generated_images_filter_id_face_filters'), 'face_filters', ['filter_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('generated_images', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_generated_images_filter_id_face_filters'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_generated_images_filter_id'))
        batch_op.drop_index(batch_op.f('ix_generated_images_decision'))
        batch_op.drop_column('filter_id')
        batch_op.drop_column('decision_reason')
        batch_op.drop_column('decision_score')
        batch_op.drop_column('decision')
        batch_op.drop_column('attributes')
        batch_op.drop_column('checks')

    op.drop_table('face_filters')
