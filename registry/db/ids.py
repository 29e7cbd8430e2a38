"""The range of row ids, for every door that takes an id from outside.

Primary keys are `Integer` columns: 32-bit on PostgreSQL, where comparing one with 2**31 or
more is a `DataError` (an internal error, a 500) rather than "no such row". Ids outside
1..MAX_ROW_ID name no row on either database, so doors refuse them before any query.
"""

from __future__ import annotations

#: The largest value an `Integer` primary key can hold on PostgreSQL (and so on any database).
MAX_ROW_ID = 2**31 - 1


def parse_row_id(text: str) -> int | None:
    """`text` as a row id when it is one (ASCII digits, 1..MAX_ROW_ID), else None.

    `str.isdigit` alone is not enough: it accepts `²` and other digits `int` refuses."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_ROW_ID)):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ROW_ID else None
