"""garbage-collection marks

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-05

- `gc_marks`: blobs that `modelctl gc` found unreferenced (no checkpoint file names them), with
  when it first found them so. A later `gc` deletes a blob only when its mark is older than the
  grace period and it is still unreferenced; recording a checkpoint that uses the blob removes
  its mark (mark, grace, sweep). A swept blob's mark stays a while as a tombstone (`swept_at`):
  a mirror that found those bytes stored just before they went refuses to record them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0018'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'gc_marks',
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('marked_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('swept_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('sha256', name=op.f('pk_gc_marks')),
    )


def downgrade() -> None:
    op.drop_table('gc_marks')
