"""workload decisions: the webhook's signed decisions about pods and their controllers

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-05

- `workload_decisions`: one row per admission review that decided something (a workload that
  runs a model, a NetworkPolicy in a model namespace): the object (environment, namespace,
  kind, name, the sha256 of its JSON), the answer, the evidence (model decisions, the pod's
  posture, every containment check) and the signed VSA bundle when the registry key was
  available. Append-only; nothing reads it to decide.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0014'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'workload_decisions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('environment', sa.String(length=100), nullable=False),
        sa.Column('namespace', sa.String(length=253), nullable=False),
        sa.Column('kind', sa.String(length=63), nullable=False),
        sa.Column('name', sa.String(length=253), nullable=False),
        sa.Column('operation', sa.String(length=20), nullable=False),
        sa.Column('review_uid', sa.String(length=128), nullable=False),
        sa.Column('object_sha256', sa.String(length=64), nullable=False),
        sa.Column('allowed', sa.Boolean(), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('evidence', sa.JSON(), nullable=False),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('bundle', sa.LargeBinary(), nullable=True),
        sa.Column('bundle_sha256', sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(
        'ix_workload_decisions_object',
        'workload_decisions',
        ['environment', 'namespace', 'kind', 'name'],
    )


def downgrade() -> None:
    op.drop_index('ix_workload_decisions_object', table_name='workload_decisions')
    op.drop_table('workload_decisions')
