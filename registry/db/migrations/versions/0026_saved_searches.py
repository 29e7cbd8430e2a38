"""saved searches

Revision ID: 0026
Revises: 0024
Create Date: 2026-12-05

- `saved_searches`: a principal's named filter of the checkpoints list (the query string the
  list and the bulk preview read), unique per (owner, name).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0026'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'saved_searches',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('owner', sa.String(length=300), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('query', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_saved_searches')),
        sa.UniqueConstraint('owner', 'name', name='uq_saved_searches_owner_name'),
    )
    op.create_index(
        'ix_scans_finished_severity', 'scans', ['finished_at', 'max_severity']
    )
    op.create_index(
        'ix_scans_severity_checkpoint', 'scans', ['max_severity', 'checkpoint_id', 'finished_at']
    )
    op.create_index(
        'ix_decisions_evaluated_env', 'decisions', ['evaluated_at', 'environment', 'allowed']
    )


def downgrade() -> None:
    op.drop_index('ix_decisions_evaluated_env', table_name='decisions')
    op.drop_index('ix_scans_severity_checkpoint', table_name='scans')
    op.drop_index('ix_scans_finished_severity', table_name='scans')
    op.drop_table('saved_searches')
