"""The verdict and severity vocabulary, defined once for scanners, policies and the UI.

A scan gives each file one `Verdict`; a finding carries one `Severity`. Both are `StrEnum`s,
so their JSON form is the plain string (`"clean"`, `"high"`) that scan results, decision
bundles and the API have always carried.

Verdicts are ordered from best to worst; a file's verdict is the worst of its scanners'::

    clean < unsupported < suspicious < malformed < error < malicious

`error` ranks above `malformed`. A `malformed` file was read far enough to show that it breaks
its format or a bound: the scanner knows what is wrong with it. An `error` means the scanner
itself failed (a crash, a time or memory limit) and says nothing about the bytes, which may be
exactly what a hostile file aims for; so it must not be hidden behind a verdict that implies
the file was understood. Only `malicious`, a positive finding, ranks higher. The order is
total, so the worst of several verdicts is always the same one.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Verdict(StrEnum):
    # Declaration order is the rank: best first, worst last.
    CLEAN = "clean"
    UNSUPPORTED = "unsupported"
    SUSPICIOUS = "suspicious"
    MALFORMED = "malformed"
    ERROR = "error"
    MALICIOUS = "malicious"

    @property
    def rank(self) -> int:
        """Worse verdicts rank higher; a file's verdict is its scanners' worst."""
        return _VERDICT_RANK[self]


_VERDICT_RANK = {v: i for i, v in enumerate(Verdict)}


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The worst of `verdicts`; `clean` when there are none."""
    return max(verdicts, key=lambda v: v.rank, default=Verdict.CLEAN)


class Severity(StrEnum):
    # Declaration order is the rank: least first.
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}
