"""OCI representations of a checkpoint

Revision ID: 0024
Revises: 0021
Create Date: 2026-12-05

- `oci_representations`: per checkpoint, the OCI manifests it was pushed as or mirrored from
  (registry, repository, manifest digest, media type, origin, the tag as given), unique per
  checkpoint and place, indexed by manifest digest for the admission webhook's look-up.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0024'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'oci_representations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('checkpoint_id', sa.Integer(), nullable=False),
        sa.Column('registry', sa.String(length=260), nullable=False),
        sa.Column('repository', sa.String(length=255), nullable=False),
        sa.Column('manifest_digest', sa.String(length=64), nullable=False),
        sa.Column('media_type', sa.String(length=200), nullable=False),
        sa.Column('origin', sa.String(length=20), nullable=False),
        sa.Column('tag', sa.String(length=128), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['checkpoint_id'],
            ['checkpoints.id'],
            name=op.f('fk_oci_representations_checkpoint_id_checkpoints'),
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_oci_representations')),
        sa.UniqueConstraint(
            'checkpoint_id',
            'registry',
            'repository',
            'manifest_digest',
            name='uq_oci_representations_checkpoint_place',
        ),
    )
    op.create_index(
        'ix_oci_representations_manifest_digest', 'oci_representations', ['manifest_digest']
    )


def downgrade() -> None:
    op.drop_index('ix_oci_representations_manifest_digest', table_name='oci_representations')
    op.drop_table('oci_representations')
