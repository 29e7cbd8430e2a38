"""quarantine by digest; exception requester

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04

A quarantine names bytes, not a checkpoint row: `kind` (checkpoint | file) and `digest` (the
manifest digest or a file's sha256, hex) replace `checkpoint_id`, so the same bytes under
another name, now or later, are quarantined too. Existing rows become checkpoint quarantines
of their checkpoint's manifest digest. `policy_exceptions.requested_by` records the principal
that asked for an exception (the approver is another one).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('quarantines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('digest', sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE quarantines SET kind = 'checkpoint', digest = ("
        "SELECT checkpoints.manifest_digest FROM checkpoints "
        "WHERE checkpoints.id = quarantines.checkpoint_id)"
    )
    with op.batch_alter_table('quarantines', schema=None) as batch_op:
        batch_op.alter_column('kind', existing_type=sa.String(length=20), nullable=False)
        batch_op.alter_column('digest', existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_index('ix_quarantines_checkpoint')
        batch_op.drop_constraint('fk_quarantines_checkpoint_id_checkpoints', type_='foreignkey')
        batch_op.drop_column('checkpoint_id')
        batch_op.create_index('ix_quarantines_kind_digest', ['kind', 'digest'], unique=False)
    with op.batch_alter_table('policy_exceptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requested_by', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('policy_exceptions', schema=None) as batch_op:
        batch_op.drop_column('requested_by')
    with op.batch_alter_table('quarantines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('checkpoint_id', sa.Integer(), nullable=True))
    # A file quarantine has no one checkpoint: it cannot be expressed before 0011 and is
    # dropped; a checkpoint quarantine goes back to the oldest checkpoint with its digest.
    op.execute("DELETE FROM quarantines WHERE kind <> 'checkpoint'")
    op.execute(
        "UPDATE quarantines SET checkpoint_id = ("
        "SELECT MIN(checkpoints.id) FROM checkpoints "
        "WHERE checkpoints.manifest_digest = quarantines.digest)"
    )
    op.execute("DELETE FROM quarantines WHERE checkpoint_id IS NULL")
    with op.batch_alter_table('quarantines', schema=None) as batch_op:
        batch_op.drop_index('ix_quarantines_kind_digest')
        batch_op.alter_column('checkpoint_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(
            'fk_quarantines_checkpoint_id_checkpoints', 'checkpoints', ['checkpoint_id'], ['id'],
            ondelete='CASCADE',
        )
        batch_op.create_index('ix_quarantines_checkpoint', ['checkpoint_id'], unique=False)
        batch_op.drop_column('digest')
        batch_op.drop_column('kind')
