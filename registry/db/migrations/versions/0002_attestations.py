"""attestations

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Signed attestations about checkpoints, stored verbatim (the bundle bytes as signed), with
their predicate type and subject digest indexed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('attestations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('predicate_type', sa.String(length=200), nullable=False),
    sa.Column('subject_digest', sa.String(length=64), nullable=False),
    sa.Column('signer', sa.String(length=300), nullable=False),
    sa.Column('bundle', sa.LargeBinary(), nullable=False),
    sa.Column('bundle_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_attestations_checkpoint_id_checkpoints'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attestations'))
    )
    with op.batch_alter_table('attestations', schema=None) as batch_op:
        batch_op.create_index('ix_attestations_predicate_type', ['predicate_type'], unique=False)
        batch_op.create_index('ix_attestations_subject_digest', ['subject_digest'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('attestations', schema=None) as batch_op:
        batch_op.drop_index('ix_attestations_subject_digest')
        batch_op.drop_index('ix_attestations_predicate_type')

    op.drop_table('attestations')
