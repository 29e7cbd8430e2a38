"""transparency log head

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05

- `transparency_log_heads`: one row (id 1), the append lock of the registry's transparency log
  (taken `FOR UPDATE` so several servers append one at a time) and the tree size the database
  last saw, so an append refuses log files that went backwards. The log itself is files.
- `attestations.log_index`: where the registry's transparency log holds the entry for an
  attestation the registry signed (NULL for uploaded ones and those signed before 0019).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'transparency_log_heads',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_transparency_log_heads')),
    )
    op.execute(
        'INSERT INTO transparency_log_heads (id, size, updated_at) '
        'VALUES (1, 0, CURRENT_TIMESTAMP)'
    )
    with op.batch_alter_table('attestations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('log_index', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('attestations', schema=None) as batch_op:
        batch_op.drop_column('log_index')
    op.drop_table('transparency_log_heads')
