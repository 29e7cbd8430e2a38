"""finding states: confirmed and assigned

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05

- `finding_states`: per stable finding id, who confirmed it (a real problem: never loosens a
  decision) and whom it is assigned to. The two-person false positive stays in
  `finding_triage` (0010). See docs/adr/0025-finding-triage-states.md.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'finding_states',
        sa.Column('finding_id', sa.String(length=64), nullable=False),
        sa.Column('scanner', sa.String(length=100), nullable=False),
        sa.Column('rule', sa.String(length=200), nullable=False),
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('file_sha256', sa.String(length=64), nullable=False),
        sa.Column('confirmed_by', sa.String(length=200), nullable=True),
        sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('assignee', sa.String(length=200), nullable=True),
        sa.Column('assigned_by', sa.String(length=200), nullable=True),
        sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('finding_id', name=op.f('pk_finding_states')),
    )


def downgrade() -> None:
    op.drop_table('finding_states')
