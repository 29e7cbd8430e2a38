"""finding triage

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

Finding-level "false positive" decisions: the only way past a malicious verdict. Keyed by the
finding's stable id (scanner, rule, file sha256, location); requested by one principal,
approved by another, with a mandatory expiry; revocable. History is kept.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('finding_triage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('finding_id', sa.String(length=64), nullable=False),
    sa.Column('decision', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('scanner', sa.String(length=100), nullable=False),
    sa.Column('rule', sa.String(length=200), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('file_sha256', sa.String(length=64), nullable=False),
    sa.Column('requested_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('approved_by', sa.String(length=200), nullable=True),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_by', sa.String(length=200), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_finding_triage'))
    )
    with op.batch_alter_table('finding_triage', schema=None) as batch_op:
        batch_op.create_index('ix_finding_triage_finding', ['finding_id'], unique=False)
        batch_op.create_index('ix_finding_triage_status', ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('finding_triage', schema=None) as batch_op:
        batch_op.drop_index('ix_finding_triage_status')
        batch_op.drop_index('ix_finding_triage_finding')

    op.drop_table('finding_triage')
