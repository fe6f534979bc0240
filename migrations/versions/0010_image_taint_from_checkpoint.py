"""generated images take their taint from their checkpoint: drop generated_images.tainted and .taint

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

An image is made by one checkpoint and holds nothing of anyone beyond what that checkpoint
learned, so its taint is its checkpoint's: a revocation marks the checkpoints (about a hundred
rows) instead of copying the mark onto each of their images (100,000 rows at seed scale).

Data: a checkpoint whose images carry a taint it lacks (nothing writes that, but the columns
allowed it) takes those entries first, so no image becomes untainted by this migration.
Downgrade: each image gets its checkpoint's taint back.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_checkpoints = sa.table('checkpoints', sa.column('id', sa.Integer()), sa.column('tainted', sa.Boolean()),
                        sa.column('taint', sa.JSON()))
_images = sa.table('generated_images', sa.column('checkpoint_id', sa.Integer()), sa.column('tainted', sa.Boolean()),
                   sa.column('taint', sa.JSON()))


def _entries(value: Any) -> list[Any]:
    """A taint list as stored (SQLite may hand JSON back as text)."""
    value = json.loads(value) if isinstance(value, str) else value
    return list(value or [])


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(_images.c.checkpoint_id, _images.c.taint, _checkpoints.c.taint)
                        .join(_checkpoints, _checkpoints.c.id == _images.c.checkpoint_id)
                        .where(_images.c.tainted.is_(True))).all()
    merged: dict[int, list[Any]] = {}
    for checkpoint_id, image_taint, checkpoint_taint in rows:
        entries = merged.setdefault(checkpoint_id, _entries(checkpoint_taint))
        entries.extend(e for e in _entries(image_taint) if e not in entries)
    for checkpoint_id, entries in merged.items():
        bind.execute(_checkpoints.update().where(_checkpoints.c.id == checkpoint_id).values(tainted=True, taint=entries))

    with op.batch_alter_table('generated_images', schema=None) as batch_op:
        batch_op.drop_column('taint')
        batch_op.drop_column('tainted')


def downgrade() -> None:
    with op.batch_alter_table('generated_images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tainted', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('taint', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))

    owner = _checkpoints.c.id == _images.c.checkpoint_id
    op.execute(_images.update().values(
        tainted=sa.select(_checkpoints.c.tainted).where(owner).scalar_subquery(),
        taint=sa.select(_checkpoints.c.taint).where(owner).scalar_subquery()))
