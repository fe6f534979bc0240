"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('subject_type', sa.String(length=40), nullable=False),
    sa.Column('subject_id', sa.String(length=100), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_subject', ['subject_type', 'subject_id'], unique=False)

    op.create_table('people',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_people')),
    sa.UniqueConstraint('code', name=op.f('uq_people_code'))
    )
    op.create_table('shoots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('shoot_date', sa.Date(), nullable=False),
    sa.Column('studio', sa.String(length=200), nullable=True),
    sa.Column('photographer', sa.String(length=200), nullable=True),
    sa.Column('camera', sa.String(length=200), nullable=True),
    sa.Column('lighting_preset', sa.String(length=200), nullable=True),
    sa.Column('reference_frame', sa.String(length=500), nullable=True),
    sa.Column('sitters', sa.JSON(), nullable=False),
    sa.Column('plan', sa.JSON(), nullable=False),
    sa.Column('source_path', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shoots')),
    sa.UniqueConstraint('name', name=op.f('uq_shoots_name'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('photographer', 'labeler', 'reviewer', 'admin')", name=op.f('ck_users_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('ingest_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shoot_id', sa.Integer(), nullable=False),
    sa.Column('relative_path', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shoot_id'], ['shoots.id'], name=op.f('fk_ingest_failures_shoot_id_shoots'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ingest_failures')),
    sa.UniqueConstraint('shoot_id', 'relative_path', name='uq_ingest_failures_shoot_path')
    )
    with op.batch_alter_table('ingest_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ingest_failures_shoot_id'), ['shoot_id'], unique=False)

    op.create_table('personal_data',
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('legal_name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=200), nullable=True),
    sa.Column('phone', sa.String(length=50), nullable=True),
    sa.Column('date_of_birth', sa.Date(), nullable=True),
    sa.Column('self_identified', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_personal_data_person_id_people'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('person_id', name=op.f('pk_personal_data'))
    )
    op.create_table('releases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('document_sha256', sa.String(length=64), nullable=False),
    sa.Column('document_name', sa.String(length=255), nullable=False),
    sa.Column('document_type', sa.String(length=50), nullable=False),
    sa.Column('signed_on', sa.Date(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('guardian_name', sa.String(length=200), nullable=True),
    sa.Column('witness_name', sa.String(length=200), nullable=True),
    sa.Column('revoked_on', sa.Date(), nullable=True),
    sa.Column('revoked_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_releases_person_id_people'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_releases'))
    )
    with op.batch_alter_table('releases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_releases_person_id'), ['person_id'], unique=False)

    op.create_table('shots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('shoot_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('sitter_code', sa.String(length=32), nullable=True),
    sa.Column('relative_path', sa.Text(), nullable=False),
    sa.Column('file_format', sa.String(length=16), nullable=False),
    sa.Column('file_size', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('orientation', sa.Integer(), nullable=False),
    sa.Column('make', sa.String(length=100), nullable=True),
    sa.Column('model', sa.String(length=100), nullable=True),
    sa.Column('lens', sa.String(length=200), nullable=True),
    sa.Column('serial', sa.String(length=100), nullable=True),
    sa.Column('iso', sa.Double(), nullable=True),
    sa.Column('shutter_s', sa.Double(), nullable=True),
    sa.Column('aperture', sa.Double(), nullable=True),
    sa.Column('focal_length_mm', sa.Double(), nullable=True),
    sa.Column('captured_at', sa.DateTime(), nullable=True),
    sa.Column('capture_date', sa.Date(), nullable=False),
    sa.Column('white_balance', sa.JSON(), nullable=True),
    sa.Column('exif', sa.JSON(), nullable=False),
    sa.Column('preview_sha256', sa.String(length=64), nullable=True),
    sa.Column('preview_source', sa.String(length=16), nullable=True),
    sa.Column('face_count', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=True),
    sa.Column('reason_detail', sa.Text(), nullable=True),
    sa.Column('qa', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('accepted', 'quarantined', 'rejected')", name=op.f('ck_shots_status')),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_shots_person_id_people')),
    sa.ForeignKeyConstraint(['shoot_id'], ['shoots.id'], name=op.f('fk_shots_shoot_id_shoots'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shots')),
    sa.UniqueConstraint('sha256', name=op.f('uq_shots_sha256'))
    )
    with op.batch_alter_table('shots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shots_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shots_shoot_id'), ['shoot_id'], unique=False)

    op.create_table('faces',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shot_id', sa.Integer(), nullable=False),
    sa.Column('face_index', sa.Integer(), nullable=False),
    sa.Column('box', sa.JSON(), nullable=False),
    sa.Column('score', sa.Double(), nullable=False),
    sa.Column('landmarks', sa.JSON(), nullable=False),
    sa.Column('yaw', sa.Double(), nullable=True),
    sa.Column('pitch', sa.Double(), nullable=True),
    sa.Column('roll', sa.Double(), nullable=True),
    sa.Column('ear_right', sa.Double(), nullable=True),
    sa.Column('ear_left', sa.Double(), nullable=True),
    sa.Column('iris_right', sa.Double(), nullable=True),
    sa.Column('iris_left', sa.Double(), nullable=True),
    sa.Column('quad', sa.JSON(), nullable=False),
    sa.Column('crop_sha256', sa.String(length=64), nullable=True),
    sa.Column('crop_size', sa.Integer(), nullable=False),
    sa.Column('qa', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['shot_id'], ['shots.id'], name=op.f('fk_faces_shot_id_shots'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_faces')),
    sa.UniqueConstraint('shot_id', 'face_index', name='uq_faces_shot_face')
    )
    with op.batch_alter_table('faces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_faces_shot_id'), ['shot_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('faces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_faces_shot_id'))

    op.drop_table('faces')
    with op.batch_alter_table('shots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shots_shoot_id'))
        batch_op.drop_index(batch_op.f('ix_shots_person_id'))

    op.drop_table('shots')
    with op.batch_alter_table('releases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_releases_person_id'))

    op.drop_table('releases')
    op.drop_table('personal_data')
    with op.batch_alter_table('ingest_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ingest_failures_shoot_id'))

    op.drop_table('ingest_failures')
    op.drop_table('users')
    op.drop_table('shoots')
    op.drop_table('people')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_subject')

    op.drop_table('audit_events')
