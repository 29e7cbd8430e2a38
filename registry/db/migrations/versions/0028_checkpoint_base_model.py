"""the base model a checkpoint's card declares

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-05

- `checkpoints.base_model`: the model card's `base_model:` (README.md front matter), as
  declared; NULL when none is declared (or the checkpoint was recorded before this revision,
  until it is mirrored again). A policy can require a differential backdoor scan of a
  fine-tune against it (`scans: [{scanner: backdoor, differential: true}]`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('checkpoints') as batch:
        batch.add_column(sa.Column('base_model', sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('checkpoints') as batch:
        batch.drop_column('base_model')
