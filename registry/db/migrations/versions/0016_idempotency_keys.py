"""idempotency keys for API writes

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-05

- `idempotency_keys`: a write request made with an `Idempotency-Key` header and the response it
  got (status, content type, body), per caller (`scope`, a SHA-256 of the credential) and key,
  so a retried POST is answered from here instead of making a second job or row.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0016'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'idempotency_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('scope', sa.String(length=64), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('state', sa.String(length=10), nullable=False),
        sa.Column('status', sa.Integer(), nullable=True),
        sa.Column('content_type', sa.String(length=200), nullable=True),
        sa.Column('body', sa.LargeBinary(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_keys')),
        sa.UniqueConstraint('scope', 'key', name='uq_idempotency_keys_scope_key'),
    )


def downgrade() -> None:
    op.drop_table('idempotency_keys')
