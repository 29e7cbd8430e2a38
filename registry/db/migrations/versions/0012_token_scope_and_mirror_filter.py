"""token environment scope, checkpoint mirror filter and completeness

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04

- `api_tokens.environments`: the environments a token may name (`/hf/{env}`, the webhook,
  byte reads, admission checks); NULL means every environment, which is what every token made
  before this revision keeps.
- `checkpoints.mirror_include` / `checkpoints.mirror_exclude`: the `--include` / `--exclude`
  globs the checkpoint was mirrored with (NULL: not recorded, before this revision).
- `checkpoints.complete`: whether the checkpoint holds every file its source listed at the
  commit (true), a filtered subset (false), or unknown (NULL, rows recorded before this
  revision). Unknown counts as not complete: the webhook admits `hf://NS/NAME:<commit>` only for
  a checkpoint known to be the whole commit.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('environments', sa.JSON(), nullable=True))
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mirror_include', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('mirror_exclude', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('complete', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.drop_column('complete')
        batch_op.drop_column('mirror_exclude')
        batch_op.drop_column('mirror_include')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('environments')
