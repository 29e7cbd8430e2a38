"""The one interface the CLI talks to: `registry.embedded` in-process, `registry.client` over HTTP.

Its request types (`registry/requests.py`) and result types (`registry/views.py`) live below
the service, so nothing under the interface imports it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from registry.progress import Progress
from registry.requests import AuditQuery, MirrorRequest
from registry.scanners.backdoor.settings import BackdoorSettings
from registry.views import (  # server
    AttestResult,
    AuditEventView,
    BomResult,
    CheckpointView,
    DecisionView,
    ExceptionRequestView,
    ExceptionView,
    FindingStateView,
    FindingView,
    MirrorResult,
    ModelSummary,
    NotificationDeliveryView,
    PullResult,
    QuarantineView,
    RescanResult,
    ScanOutcome,
    SyncResult,
    TokenCreated,
    TokenView,
    TriageView,
    WorkloadReviewView,
)


class Registry(Protocol):
    def mirror(self, request: MirrorRequest, *, progress: Progress) -> MirrorResult: ...
    def models(self) -> list[ModelSummary]: ...
    def inspect(self, ref: str) -> CheckpointView: ...
    def attest(self, ref: str, *, allow_findings: bool = False) -> AttestResult: ...
    # `modelctl bom`: an ML-BOM (cyclonedx | spdx), signed as an attestation where it can be.
    def bom(self, ref: str, fmt: str) -> BomResult: ...
    def quarantine(self, target: str, reason: str) -> QuarantineView: ...
    def release(self, target: str, reason: str) -> QuarantineView: ...
    def quarantine_list(self) -> list[QuarantineView]: ...
    def exception_request(
        self,
        ref: str,
        *,
        waive: list[str],
        reason: str,
        expires_at: datetime,
        environments: list[str] | None,
    ) -> ExceptionRequestView: ...
    def exception_approve(self, request_id: int) -> ExceptionView: ...
    def exception_reject(self, request_id: int) -> ExceptionRequestView: ...
    def exception_requests(self, status: str | None = None) -> list[ExceptionRequestView]: ...
    def exception_list(self, ref: str | None = None) -> list[ExceptionView]: ...
    def exception_revoke(self, exception_id: int) -> ExceptionView: ...
    def scan(
        self, ref: str, scanners: Sequence[str] = (), *, backdoor: BackdoorSettings | None = None
    ) -> ScanOutcome: ...
    def rescan(self, scanners: Sequence[str] = (), *, dry_run: bool = False) -> RescanResult: ...
    def sync(self, sources: Sequence[str] = (), *, dry_run: bool = False) -> SyncResult: ...
    # -- findings and their triage (two people: requester and a different approver) --
    def finding_list(self, ref: str) -> list[FindingView]: ...
    def finding_triage(
        self, finding_id: str, *, decision: str, reason: str, expires_at: datetime
    ) -> TriageView: ...
    def finding_approve(self, request_id: int) -> TriageView: ...
    def finding_revoke(self, request_id: int, reason: str = "") -> TriageView: ...
    def triage_list(
        self, *, finding_id: str | None = None, status: str | None = None
    ) -> list[TriageView]: ...
    # confirmed / assigned (ADR 0025): change no decision; confirming ends a false positive
    def finding_confirm(
        self, finding_id: str, *, withdraw: bool = False, reason: str = ""
    ) -> FindingStateView: ...
    def finding_assign(self, finding_id: str, assignee: str | None) -> FindingStateView: ...
    def review_workload(self, review: dict[str, Any], environment: str) -> WorkloadReviewView: ...

    def policy_check(
        self, ref: str, environment: str, policy_text: str | None = None, policy_file: str = ""
    ) -> DecisionView: ...
    # `modelctl pull` (added): decide, then write the verified files into `dest`.
    def pull(
        self,
        ref: str,
        environment: str,
        dest: Path,
        *,
        force: bool = False,
        layout: str = "plain",
        progress: Progress,
    ) -> PullResult: ...
    # -- the server (added for `modelctl serve` / remote mode) --
    def token_create(
        self,
        name: str,
        role: str,
        *,
        expires_at: datetime | None = None,
        environments: Sequence[str] | None = None,
    ) -> TokenCreated: ...
    def token_list(self) -> list[TokenView]: ...
    def token_revoke(self, key: str) -> TokenView: ...
    def audit_log(self, query: AuditQuery) -> list[AuditEventView]: ...
    def notification_deliveries(
        self, *, state: str | None = None, limit: int = 100
    ) -> list[NotificationDeliveryView]: ...
    def close(self) -> None: ...
