"""browser sessions ended on the server

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05

- `web_session_ends`: session ids signed out (or ended) before their cookie expired; a cookie
  whose id is here is refused, so a copied cookie dies with the sign-out.
- `web_user_cutoffs`: per principal, sessions issued before `not_before` are refused ("sign out
  everywhere", an admin ending a compromised account's sessions).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'web_session_ends',
        sa.Column('sid', sa.String(length=64), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('sid', name=op.f('pk_web_session_ends')),
    )
    op.create_index(
        op.f('ix_web_session_ends_expires_at'), 'web_session_ends', ['expires_at']
    )
    op.create_table(
        'web_user_cutoffs',
        sa.Column('principal', sa.String(length=300), nullable=False),
        sa.Column('not_before', sa.BigInteger(), nullable=False),
        sa.Column('set_by', sa.String(length=300), nullable=False),
        sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('principal', name=op.f('pk_web_user_cutoffs')),
    )


def downgrade() -> None:
    op.drop_table('web_user_cutoffs')
    op.drop_index(op.f('ix_web_session_ends_expires_at'), table_name='web_session_ends')
    op.drop_table('web_session_ends')
