"""quarantines and decisions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

Quarantines (kept as history: a release closes one) and admission decisions as made.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('quarantines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('released_by', sa.String(length=200), nullable=True),
    sa.Column('release_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_quarantines_checkpoint_id_checkpoints'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quarantines'))
    )
    with op.batch_alter_table('quarantines', schema=None) as batch_op:
        batch_op.create_index('ix_quarantines_checkpoint', ['checkpoint_id'], unique=False)

    op.create_table('decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('environment', sa.String(length=100), nullable=False),
    sa.Column('allowed', sa.Boolean(), nullable=False),
    sa.Column('mode', sa.String(length=20), nullable=False),
    sa.Column('policy_name', sa.String(length=200), nullable=False),
    sa.Column('policy_digest', sa.String(length=80), nullable=False),
    sa.Column('checks', sa.JSON(), nullable=False),
    sa.Column('evaluated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attestation_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['attestation_id'], ['attestations.id'], name=op.f('fk_decisions_attestation_id_attestations'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_decisions_checkpoint_id_checkpoints'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_decisions'))
    )
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.create_index('ix_decisions_checkpoint_env', ['checkpoint_id', 'environment'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_decisions_checkpoint_env')

    op.drop_table('decisions')
    with op.batch_alter_table('quarantines', schema=None) as batch_op:
        batch_op.drop_index('ix_quarantines_checkpoint')

    op.drop_table('quarantines')
