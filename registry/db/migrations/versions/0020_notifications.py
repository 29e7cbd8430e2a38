"""notification deliveries

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05

- `notification_deliveries`: the delivery log and outbox of outbound notifications (webhooks,
  email): one row per event and target, unique on both, so an audit event read twice is
  delivered once; attempts, the next attempt's time and the last error.
- `notification_cursor`: the newest audit event id the dispatcher has read.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'notification_deliveries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event_key', sa.String(length=200), nullable=False),
        sa.Column('event', sa.String(length=50), nullable=False),
        sa.Column('target', sa.String(length=100), nullable=False),
        sa.Column('channel', sa.String(length=20), nullable=False),
        sa.Column('subject', sa.Text(), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('state', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_deliveries')),
        sa.UniqueConstraint(
            'event_key', 'target', name='uq_notification_deliveries_event_target'
        ),
    )
    op.create_index(
        'ix_notification_deliveries_due',
        'notification_deliveries',
        ['state', 'next_attempt_at'],
    )
    op.create_table(
        'notification_cursor',
        sa.Column('name', sa.String(length=50), nullable=False),
        sa.Column('audit_id', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_notification_cursor')),
    )


def downgrade() -> None:
    op.drop_table('notification_cursor')
    op.drop_index('ix_notification_deliveries_due', table_name='notification_deliveries')
    op.drop_table('notification_deliveries')
