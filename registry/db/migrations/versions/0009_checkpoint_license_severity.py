"""checkpoint license and scan max severity

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

Two columns the Models page filters on, so it needs neither the blob store nor the scan
reports per request:
- `checkpoints.license`: the model card's `license:` ("unknown" when it has none), recorded at
  mirror time; NULL for checkpoints recorded before this revision until they are next decided
  (the card is in the blob store, which a migration does not open).
- `scans.max_severity`: the worst finding severity of the scan's report (NULL: no findings),
  computed here for existing rows from `report`, in batches.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# Frozen copy of the rule in registry/service/scan.py (a migration must not follow later code).
_SEVERITIES = ("info", "low", "medium", "high", "critical")
_BATCH = 500


def _max_severity(report: Any) -> str | None:
    worst = -1
    files = report.get("files", []) if isinstance(report, dict) else []
    for entry in files if isinstance(files, list) else []:
        findings = entry.get("findings", []) if isinstance(entry, dict) else []
        for finding in findings if isinstance(findings, list) else []:
            if isinstance(finding, dict) and finding.get("severity") in _SEVERITIES:
                worst = max(worst, _SEVERITIES.index(finding["severity"]))
    return _SEVERITIES[worst] if worst >= 0 else None


def upgrade() -> None:
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('license', sa.String(length=100), nullable=True))
    with op.batch_alter_table('scans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_severity', sa.String(length=10), nullable=True))

    scans = sa.table(
        'scans',
        sa.column('id', sa.Integer()),
        sa.column('report', sa.JSON()),
        sa.column('max_severity', sa.String()),
    )
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.select(scans.c.id, scans.c.report)
            .where(scans.c.id > last)
            .order_by(scans.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        last = rows[-1].id
        updates = [
            {'sid': row.id, 'sev': sev}
            for row in rows
            if (sev := _max_severity(row.report)) is not None
        ]
        if updates:
            bind.execute(
                scans.update()
                .where(scans.c.id == sa.bindparam('sid'))
                .values(max_severity=sa.bindparam('sev')),
                updates,
            )


def downgrade() -> None:
    with op.batch_alter_table('scans', schema=None) as batch_op:
        batch_op.drop_column('max_severity')
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.drop_column('license')
