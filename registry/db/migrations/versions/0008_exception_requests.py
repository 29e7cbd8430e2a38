"""exception requests

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

Requested exceptions awaiting approval (the web UI's request-then-approve queue). Approval
grants a `policy_exceptions` row; the request keeps who asked, who decided and when.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('exception_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('waive', sa.JSON(), nullable=False),
    sa.Column('environments', sa.JSON(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('requested_by', sa.String(length=200), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sa.String(length=200), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('exception_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_exception_requests_checkpoint_id_checkpoints'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['exception_id'], ['policy_exceptions.id'], name=op.f('fk_exception_requests_exception_id_policy_exceptions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exception_requests'))
    )
    with op.batch_alter_table('exception_requests', schema=None) as batch_op:
        batch_op.create_index('ix_exception_requests_status', ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('exception_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_exception_requests_status')

    op.drop_table('exception_requests')
