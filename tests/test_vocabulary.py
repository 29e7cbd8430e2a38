"""One vocabulary: verdicts and severities, the error map, the UTC helper (issue 13 item 5)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from attestations.errors import AttestationError, SignatureVerificationError, SigningError
from attestations.utc import aware, aware_or_none, utc_now
from attestations.verdicts import Severity, Verdict, worst
from policies.model import SEVERITIES, VERDICTS
from registry.errors import (
    Denied,
    InputError,
    IntegrityFailure,
    NotFound,
    RegistryError,
    StorageError,
    TwoPersonRule,
    exit_code_for,
    http_status_for,
    kind_of,
)
from registry.scanners import base
from registry.service.read.common import VERDICT_RANK


def test_error_ranks_above_malformed_and_below_malicious() -> None:
    assert worst([Verdict.ERROR, Verdict.MALFORMED]) is Verdict.ERROR
    assert worst([Verdict.MALFORMED, Verdict.ERROR]) is Verdict.ERROR
    assert worst([Verdict.ERROR, Verdict.MALICIOUS]) is Verdict.MALICIOUS
    assert worst([]) is Verdict.CLEAN
    assert [v.value for v in sorted(Verdict, key=lambda v: v.rank)] == [
        "clean",
        "unsupported",
        "suspicious",
        "malformed",
        "error",
        "malicious",
    ]


def test_one_definition_everywhere() -> None:
    assert base.Verdict is Verdict
    assert base.Severity is Severity
    assert set(VERDICTS) == {v.value for v in Verdict}
    assert SEVERITIES == ("none", "info", "low", "medium", "high", "critical")
    assert {v.value: v.rank for v in Verdict} == VERDICT_RANK
    assert json.dumps([Verdict.ERROR, Severity.HIGH]) == '["error", "high"]'


@pytest.mark.parametrize(
    ("error", "kind", "exit_code", "status"),
    [
        (Denied("no"), "denied", 1, 403),
        (IntegrityFailure("bad"), "integrity_failure", 1, 422),
        (SignatureVerificationError("bad"), "signature_verification_error", 1, 422),
        (NotFound("gone"), "not_found", 2, 404),
        (TwoPersonRule("same"), "two_person_rule", 2, 403),
        (InputError("bad"), "input_error", 2, 400),
        (StorageError("db"), "storage_error", 2, 503),
        (SigningError("key"), "signing_error", 2, 500),
    ],
)
def test_one_error_map(
    error: RegistryError | AttestationError, kind: str, exit_code: int, status: int
) -> None:
    assert kind_of(error) == kind
    assert exit_code_for(error) == exit_code
    assert http_status_for(error) == status


def test_utc_helper() -> None:
    naive = datetime(2026, 1, 1, 12, 0)  # noqa: DTZ001  naive on purpose
    assert aware(naive) == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    other = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert aware(other) is other
    assert aware_or_none(None) is None
    assert utc_now().tzinfo is UTC
