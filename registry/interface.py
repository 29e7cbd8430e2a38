"""The one interface the CLI talks to. Embedded now; a remote HTTP client implements it later."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from registry.scanners.backdoor.settings import BackdoorSettings
from registry.service.progress import Progress
from registry.views import (  # server
    AttestResult,
    AuditEventView,
    CheckpointView,
    DecisionView,
    ExceptionRequestView,
    ExceptionView,
    FindingView,
    MirrorResult,
    ModelSummary,
    PullResult,
    QuarantineView,
    ScanOutcome,
    TokenCreated,
    TokenView,
    TriageView,
)


@dataclass(frozen=True, slots=True)
class MirrorRequest:
    source: str  # hf://org/name[@rev], ms://org/name[@rev] or a local folder
    name: str | None = None  # NS/NAME; defaults to the source's org/name
    revision: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    scan: bool = True  # run every scanner on what was stored


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters on the audit log; all optional, combined with AND. Newest first."""

    actor: str | None = None
    action: str | None = None  # exact, or a prefix ending in "." (e.g. "token.")
    subject: str | None = None  # substring
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100


class Registry(Protocol):
    def mirror(self, request: MirrorRequest, *, progress: Progress) -> MirrorResult: ...
    def models(self) -> list[ModelSummary]: ...
    def inspect(self, ref: str) -> CheckpointView: ...
    def attest(self, ref: str, *, allow_findings: bool = False) -> AttestResult: ...
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
    def close(self) -> None: ...
