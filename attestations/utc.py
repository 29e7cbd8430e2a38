"""The one UTC helper: every timestamp modelctl keeps or compares is timezone-aware UTC.

`utc_now()` is the clock (the column default of every row, and what a caller passes as
`now`). `aware()` repairs a timestamp that lost its zone on the way in: SQLite returns
naive datetimes from `DateTime(timezone=True)` columns, and an ISO string without an offset
parses naive; both are UTC by construction here, so UTC is attached. An aware timestamp is
returned as it is. Where a *user* gives a naive time, the callers refuse it instead (an
expiry must say its zone); `aware()` is only for values this code wrote itself.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def aware(ts: datetime) -> datetime:
    """`ts`, with UTC attached when it has no zone."""
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def aware_or_none(ts: datetime | None) -> datetime | None:
    return None if ts is None else aware(ts)
