"""policy exceptions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

Exceptions granted through the registry (`modelctl exception add`), with mandatory expiry.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('policy_exceptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('waive', sa.JSON(), nullable=False),
    sa.Column('environments', sa.JSON(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('approver', sa.String(length=200), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_by', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_policy_exceptions_checkpoint_id_checkpoints'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_policy_exceptions'))
    )
    with op.batch_alter_table('policy_exceptions', schema=None) as batch_op:
        batch_op.create_index('ix_policy_exceptions_checkpoint', ['checkpoint_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('policy_exceptions', schema=None) as batch_op:
        batch_op.drop_index('ix_policy_exceptions_checkpoint')

    op.drop_table('policy_exceptions')
