"""What every read page shares: the verdict ranking, severities, page sizes, the LIKE
escaping and the newest-scan subquery."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Select, func, select

from attestations.verdicts import Severity, Verdict
from registry.db.models import Scan

#: A stored verdict string's rank (`attestations.verdicts`: higher is worse, `error` above
#: `malformed`). A string the vocabulary does not know ranks as `error`: fail closed.
VERDICT_RANK = {v.value: v.rank for v in Verdict}
UNKNOWN_VERDICT_RANK = Verdict.ERROR.rank
#: Least first.
SEVERITIES = tuple(s.value for s in Severity)
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with the wildcards in it taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def latest_scan_ids() -> Select[int]:
    """The newest scan row per (checkpoint, scanner)."""
    return select(func.max(Scan.id)).group_by(Scan.checkpoint_id, Scan.scanner_id)


def report_findings(report: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(report, dict):
        return
    for entry in report.get("files", []):
        if not isinstance(entry, dict):
            continue
        for finding in entry.get("findings", []):
            if isinstance(finding, dict):
                yield {
                    **finding,
                    "path": entry.get("path", ""),
                    "sha256": str(entry.get("sha256") or ""),
                }
