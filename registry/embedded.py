"""The embedded registry: the service in-process, on the database and blob store in Settings.

Each method is one unit of work: it opens a session, calls the service, and commits.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path  # pull
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from attestations.decision import DecisionRecord
from attestations.digests import Digest
from attestations.errors import AttestationError
from attestations.identity import PREDICATE_TYPE as IDENTITY_PREDICATE_TYPE
from attestations.keys import KeySigner
from policies import DEFAULTS_FILE, PolicyError, PolicySet, default_policies_text, load_policies
from registry import signing_key
from registry.blobs.base import BlobStore
from registry.blobs.factory import open_blob_store
from registry.client import materialize
from registry.db.engine import (
    make_engine,
    migrate,
    require_current_schema,
    session_factory,
    unit_of_work,
)
from registry.db.models import (
    OCI_MIRRORED,
    OCI_PUSHED,
    Attestation,
    AuditEvent,
    Blob,
    Model,
    WaiverRow,
)
from registry.errors import Denied, InputError, NotFound, RegistryError, StorageError
from registry.mirror.base import parse_source
from registry.mirror.factory import open_source
from registry.progress import Progress
from registry.refs import ModelName, Ref
from registry.requests import (
    AuditQuery,  # server
    MirrorRequest,
)
from registry.scanners.backdoor.settings import BackdoorSettings
from registry.scanners.base import ScanLimits
from registry.service import (
    admission,
    attest,
    audit,
    bundle_export,
    bundle_import,
    checkpoints,
    decide,
    exception_requests,
    findings,
    jobs,
    quarantines,
    serving,
    tokens,
)
from registry.service import bom as bom_service
from registry.service import bulk as bulk_service
from registry.service import gc as gc_service
from registry.service import pull as pull_service
from registry.service import rescan as rescan_service
from registry.service import scan as scan_service
from registry.service import sync as sync_service
from registry.service.gate import Gatekeeper
from registry.service.jobs import JobKind, JobPayload, JobView  # server
from registry.service.live_status import LiveStatuses, StatusBoard, context_key
from registry.service.notify import log as notify_log
from registry.settings import Settings
from registry.signing_key import registry_signer, tool_version
from registry.tlog.append import SESSION_KEY as TLOG_SESSION_KEY
from registry.tlog.files import LogWriter
from registry.tlog.key import log_signer
from registry.views import (  # server
    AttestationView,
    AttestResult,
    AuditEventView,
    BomResult,
    BundleResult,
    CheckpointView,
    DecisionView,
    ExceptionRequestView,
    ExceptionView,
    FileView,
    FindingStateView,
    FindingView,
    GcBlob,
    GcReport,
    MirrorResult,
    ModelSummary,
    NotificationDeliveryView,
    PullResult,  # pull
    PushResult,
    QuarantineView,
    ReferrerCheckView,
    RescanResult,
    ScanOutcome,
    SyncItem,
    SyncResult,
    TokenCreated,
    TokenView,
    TriageView,
    WorkloadReviewView,
)

if TYPE_CHECKING:  # the OCI modules load for push and oci:// mirrors only (httpx)
    from sqlalchemy.orm import Session

    from registry.db.models import Checkpoint
    from registry.mirror.oci_ref import OciRef
    from registry.service import oci_push as oci_push_types


class EmbeddedRegistry:
    def __init__(self, settings: Settings, *, migrate_schema: bool = True) -> None:
        """Open the blob store and the database. With `migrate_schema` (one-shot commands and
        the embedded SQLite default) an old schema is upgraded; without it (servers and
        workers on a shared database) it is refused, naming `modelctl migrate`."""
        self.settings = settings
        if settings.database_url.startswith("sqlite"):
            try:
                settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise StorageError(f"cannot create {settings.home}: {exc.strerror}") from exc
        # The store first: a blob store spec that names no store fails before any migration.
        self.blobs: BlobStore = open_blob_store(settings.blob_store)
        self.engine = make_engine(settings.database_url)
        try:
            if migrate_schema:
                migrate(self.engine)
            else:
                require_current_schema(self.engine)
        except OperationalError as exc:
            self.engine.dispose()
            raise StorageError(f"cannot open the database: {exc.orig}") from exc
        except BaseException:
            self.engine.dispose()  # no pooled connection outlives a refused start
            raise
        self.log = LogWriter(settings.log_root, functools.partial(log_signer, settings))
        self.sessions = session_factory(self.engine, info={TLOG_SESSION_KEY: self.log})
        self._policy_cache: dict[tuple[str, str], PolicySet] = {}
        self._policy_lock = threading.Lock()
        #: Live statuses for lists and counts, shared by `as_actor` copies (see live_status).
        self.status_board = StatusBoard()
        #: Who the audit log names for what this handle changes (see `as_actor`).
        self.actor = checkpoints.current_actor()

    def as_actor(self, actor: str) -> EmbeddedRegistry:
        """The same registry (engine, sessions, blobs) acting for `actor`, e.g. `token:ci`.

        The server binds each request's caller this way; the copy must not be closed.
        """
        bound = copy.copy(self)
        bound.actor = actor
        return bound

    def close(self) -> None:
        self.engine.dispose()

    def mirror(self, request: MirrorRequest, *, progress: Progress) -> MirrorResult:
        spec = parse_source(request.source)
        if request.revision is not None:
            if spec.kind == "local":
                raise InputError("--revision applies to hf:// and ms:// sources only")
            if spec.revision is not None and spec.revision != request.revision:
                raise InputError(
                    f"revision given twice: {spec.revision!r} in SOURCE and {request.revision!r}"
                )
            spec = replace(spec, revision=request.revision)
        name = ModelName.parse(request.name or spec.default_name)
        source = open_source(spec, self.settings)
        fetched_referrers: list[Any] = []
        oci_origin: OciOrigin | None = None
        try:
            transferred = checkpoints.transfer(
                source=source,
                blobs=self.blobs,
                file_filter=checkpoints.FileFilter(request.include, request.exclude),
                limits=self.settings.limits,
                workers=self.settings.download_workers
                if spec.kind != "local"
                else self.settings.hash_workers,
                progress=progress,
            )
            if spec.kind == "oci":
                fetched_referrers, oci_origin = _oci_origin(source, transferred.snapshot)
        finally:
            close = getattr(source, "close", None)  # a source holding connections (oci://)
            if callable(close):
                close()
        # Two mirrors may race to create the same model or blob rows: the loser retries once.
        for attempt in range(2):
            try:
                with unit_of_work(self.sessions) as session:
                    checkpoint, created = checkpoints.record_checkpoint(
                        session,
                        name=name,
                        snapshot=transferred.snapshot,
                        manifest=transferred.manifest,
                        fetched=transferred.fetched,
                        actor=self.actor,
                        license=transferred.license,
                        base_model=transferred.base_model,
                        file_filter=transferred.file_filter,
                        complete=transferred.complete,
                    )
                    self._record_mirrored(session, checkpoint, oci_origin)
                    result = checkpoints.mirror_result(
                        checkpoint, created=created, transferred=transferred
                    )
                break
            except IntegrityError as exc:
                if attempt == 1:
                    raise StorageError(f"could not record the checkpoint: {exc.orig}") from exc
            except SQLAlchemyError as exc:
                raise StorageError(f"could not record the checkpoint: {exc}") from exc
        if fetched_referrers:
            result = result.model_copy(
                update={
                    "referrers": self._accept_referrers(result.checkpoint.ref, fetched_referrers)
                }
            )
        if not request.scan:
            return result
        # The checkpoint is committed first: a scan that fails leaves it registered, unscanned.
        outcome = self.scan(result.checkpoint.ref)
        return result.model_copy(update={"checkpoint": outcome.checkpoint, "scan": outcome})

    def _accept_referrers(self, ref: str, fetched: Sequence[Any]) -> tuple[ReferrerCheckView, ...]:
        """Store each statement mirrored with an OCI artifact that verifies with a trusted key
        (as an uploaded attestation would be); record the others as such, never trusting them."""
        checks: list[ReferrerCheckView] = []
        for referrer in fetched:
            reason = referrer.problem
            if referrer.bundle is not None:
                try:
                    self.attestation_upload(ref, referrer.bundle)
                except (RegistryError, AttestationError) as exc:
                    reason = exc.message
            checks.append(
                ReferrerCheckView(
                    digest=referrer.digest,
                    predicate_type=referrer.predicate_type,
                    verified=not reason,
                    reason=reason,
                )
            )
        with unit_of_work(self.sessions) as session:
            session.add(
                AuditEvent(
                    actor=self.actor,
                    action="checkpoint.oci_referrers",
                    subject=ref,
                    details={"referrers": [c.to_json() for c in checks]},
                )
            )
        return tuple(checks)

    def gc(self, *, grace: timedelta, dry_run: bool, now: datetime | None = None) -> GcReport:
        """Delete blobs no checkpoint references, mark → grace → sweep (`service/gc.py`), and
        leftover uploads older than the grace. With `dry_run` nothing is written or deleted."""
        now = now or datetime.now(UTC)
        stored = list(self.blobs.list_blobs())
        with unit_of_work(self.sessions) as session:
            found = gc_service.plan(
                stored,
                gc_service.referenced_digests(session),
                gc_service.marks(session),
                now=now,
                grace=grace,
                swept=gc_service.tombstones(session),
            )
            if not dry_run:
                gc_service.write_marks(session, found, now)
        deleted = []
        for entry in found.due:
            if not dry_run:
                try:
                    with unit_of_work(self.sessions) as session:
                        released = gc_service.release(
                            session, entry.digest.hex, cutoff=now - grace, now=now
                        )
                except IntegrityError:
                    released = False  # a checkpoint took the blob at this moment: keep it
                if not released:
                    continue
                self.blobs.delete(entry.digest)
            deleted.append(GcBlob(digest=str(entry.digest), size=entry.size))
        leftovers = gc_service.stale_uploads(self.blobs.leftover_uploads(), now=now, grace=grace)
        if not dry_run:
            for leftover in leftovers:
                self.blobs.remove_upload(leftover)
        report = GcReport(
            dry_run=dry_run,
            grace_seconds=int(grace.total_seconds()),
            stored=found.stored,
            referenced=found.referenced,
            young=len(found.young),
            marked=tuple(GcBlob(digest=str(e.digest), size=e.size) for e in found.to_mark),
            waiting=len(found.waiting),
            deleted=tuple(deleted),
            bytes_freed=sum(b.size for b in deleted),
            uploads_removed=tuple(sorted(u.name for u in leftovers)),
        )
        if not dry_run and (deleted or leftovers):
            with unit_of_work(self.sessions) as session:
                session.add(
                    AuditEvent(
                        actor=self.actor,
                        action="blobs.gc",
                        subject="blob store",
                        details={
                            "deleted": [b.digest for b in deleted],
                            "bytes_freed": report.bytes_freed,
                            "uploads_removed": len(leftovers),
                        },
                    )
                )
        return report

    def models_count(self) -> int:
        """How many models are registered (one cheap query: the server's health check)."""
        with unit_of_work(self.sessions) as session:
            return int(session.scalar(select(func.count()).select_from(Model)) or 0)

    def models(self) -> list[ModelSummary]:
        """Every model and checkpoint, with its live status in each bound environment."""
        live = self.live_statuses()
        envs = decide.environments(live.gate.policies)
        with unit_of_work(self.sessions) as session:
            statuses = live.statuses(session, live.all_ids(session), envs)
            return checkpoints.list_models(
                session,
                statuses={key: status.to_json() for key, status in statuses.items()},
                environments=envs,
            )

    def live_statuses(self) -> LiveStatuses:
        """The status board bound to the policy and key in force now (what lists show)."""
        text, _ = self.policy_source()
        key = self.registry_public_key()
        gate = Gatekeeper(policies=self.policy_set(), blobs=self.blobs, registry_public_key=key)
        return LiveStatuses(self.status_board, gate, context_key(text, key))

    def optional_signer(self) -> KeySigner | None:
        """The registry key when its passphrase is configured; scans are recorded either way."""
        if not self.settings.signing_key_passphrase:
            return None
        return registry_signer(self.settings)

    def scan(
        self, ref: str, scanners: Sequence[str] = (), *, backdoor: BackdoorSettings | None = None
    ) -> ScanOutcome:
        parsed = Ref.parse(ref)
        file_scanners, folder_scanners = scan_service.select_scanners(scanners, backdoor=backdoor)
        signer = self.optional_signer()
        with unit_of_work(self.sessions) as session:
            checkpoint = checkpoints.resolve_ref(session, parsed)
            report, rows = scan_service.scan_checkpoint(
                session,
                checkpoint,
                blobs=self.blobs,
                scanners=file_scanners,
                folder_scanners=folder_scanners,
                signer=signer,
                limits=ScanLimits(),
                actor=self.actor,
            )
            session.flush()
            return ScanOutcome(
                checkpoint=checkpoints.checkpoint_view(checkpoint),
                report=report.to_json(),
                recorded=tuple(checkpoints.scan_view(r) for r in rows),
            )

    def registry_public_key(self) -> bytes | None:
        return signing_key.registry_public_key(self.settings)

    def policy_source(self) -> tuple[str, str]:
        """The registry's own policy document and its name: MODELCTL_POLICY, else the shipped
        defaults. `policy check`, `pull`, the API, /hf, the webhook and the UI all apply it."""
        configured = self.settings.policy_file
        if configured is None:
            return default_policies_text(), f"policies/{DEFAULTS_FILE}"
        try:
            return configured.read_text(encoding="utf-8"), str(configured)
        except (OSError, UnicodeDecodeError) as exc:
            raise StorageError(
                f"cannot read the registry's policy {configured} (MODELCTL_POLICY): {exc}"
            ) from exc

    def policy_set(self, policy_text: str | None = None, policy_file: str = "") -> PolicySet:
        """The given policy text, else the registry's own (`policy_source`), loaded.

        Loading type-checks every CEL rule, so a loaded set is kept per (source, content).
        """
        if policy_text is None:
            policy_text, policy_file = self.policy_source()
        key = (policy_file, hashlib.sha256(policy_text.encode()).hexdigest())
        with self._policy_lock:
            cached = self._policy_cache.get(key)
        if cached is None:
            try:
                cached = load_policies(policy_text, policy_file)
            except PolicyError as exc:
                raise InputError(exc.message) from exc
            with self._policy_lock:  # server threads share it (and `as_actor` copies)
                while len(self._policy_cache) >= 8:
                    self._policy_cache.pop(next(iter(self._policy_cache)))
                self._policy_cache[key] = cached
        return cached

    def review_workload(self, review: dict[str, Any], environment: str) -> WorkloadReviewView:
        """The webhook's decision on an AdmissionReview, in-process: the same parse and review
        (`k8s_review`), decided now (no cache), with the registry's own policy."""
        from registry.service import k8s_review  # noqa: PLC0415 - only check-pod needs it
        from registry.service.decision_cache import DecisionCache  # noqa: PLC0415

        request = review.get("request") if isinstance(review.get("request"), dict) else {}
        kind = (request or {}).get("kind") or {}
        ident = {
            "kind": str(kind.get("kind", "") if isinstance(kind, dict) else ""),
            "namespace": str((request or {}).get("namespace") or ""),
            "name": str((request or {}).get("name") or ""),
            "environment": environment,
        }
        try:
            parsed = k8s_review.parse_admission_review(review)
        except k8s_review.MalformedReview as exc:
            return WorkloadReviewView(
                **ident, allowed=False, code=400, message=exc.message, warnings=()
            )
        gate = Gatekeeper(
            policies=self.policy_set(),
            blobs=self.blobs,
            registry_public_key=self.registry_public_key(),
        )
        cache = DecisionCache(max_age=timedelta(0))  # decided now, nothing kept
        with unit_of_work(self.sessions) as session:
            verdict = k8s_review.review_pod(session, gate, cache, parsed, environment)
        return WorkloadReviewView(
            **ident,
            allowed=verdict.allowed,
            code=200,
            message=verdict.message,
            warnings=verdict.warnings,
        )

    def policy_check(
        self,
        ref: str,
        environment: str,
        policy_text: str | None = None,
        policy_file: str = "",
        *,
        now: datetime | None = None,
    ) -> DecisionView:
        """The decision now. Under the registry's own policy it is recorded (row, signed VSA,
        audit event) when its outcome differs from the newest recorded one; a what-if (another
        policy document) is answered and never recorded, so it never becomes a status."""
        what_if = policy_text is not None and policy_text != self.policy_source()[0]
        gate = Gatekeeper(
            policies=self.policy_set(policy_text, policy_file),
            blobs=self.blobs,
            registry_public_key=self.registry_public_key(),
        )
        now = now or datetime.now(UTC)
        with unit_of_work(self.sessions) as session:
            checkpoint = checkpoints.resolve_ref(session, Ref.parse(ref))
            name = checkpoint.model.full_name
            digest = f"sha256:{checkpoint.manifest_digest}"
            decision = gate.decide(session, checkpoint, environment, now)
            check_rows = decide.check_rows(decision)
            if not what_if:
                admission.record_decision_if_changed(
                    session,
                    checkpoint,
                    DecisionRecord(
                        name=name,
                        manifest_digest=Digest.parse(digest),
                        environment=environment,
                        allowed=decision.allowed,
                        mode=str(decision.mode.value),
                        policy_name=decision.policy_name,
                        policy_digest=decision.policy_digest,
                        checks=check_rows,
                        evaluated_at=decision.evaluated_at,
                        expires_at=decision.expires_at,
                        input_attestations=[
                            a.bundle_sha256 for a in admission.evidence_attestations(checkpoint)
                        ],
                        tool_version=tool_version(),
                    ),
                    signer=self.optional_signer(),
                    actor=self.actor,
                )
        return DecisionView(
            name=name,
            digest=digest,
            environment=environment,
            allowed=decision.allowed,
            mode=str(decision.mode.value),
            policy_name=decision.policy_name,
            policy_digest=decision.policy_digest,
            checks=check_rows,
            evaluated_at=decision.evaluated_at,
            expires_at=decision.expires_at,
            reasons=decision.reasons,
            what_if=what_if,
        )

    def exception_request(
        self,
        ref: str,
        *,
        waive: list[str],
        reason: str,
        expires_at: datetime,
        environments: list[str] | None,
    ) -> ExceptionRequestView:
        """Ask for an exception as this principal; it waives nothing until another approves."""
        parsed = Ref.parse(ref)
        policies = self.policy_set()
        with unit_of_work(self.sessions) as session:
            checkpoint = checkpoints.resolve_ref(session, parsed)
            row = exception_requests.request(
                session,
                checkpoint,
                waive=waive,
                reason=reason,
                expires_at=expires_at,
                environments=environments,
                actor=self.actor,
                policies=policies,
            )
            return exception_requests.request_view(row)

    def exception_approve(self, request_id: int) -> ExceptionView:
        """Grant a pending request as this principal (never the one that asked)."""
        policies = self.policy_set()
        with unit_of_work(self.sessions) as session:
            row = exception_requests.approve(
                session, request_id, actor=self.actor, policies=policies
            )
            return exception_view(row)

    def exception_reject(self, request_id: int) -> ExceptionRequestView:
        with unit_of_work(self.sessions) as session:
            row = exception_requests.reject(session, request_id, actor=self.actor)
            return exception_requests.request_view(row)

    def exception_requests(self, status: str | None = None) -> list[ExceptionRequestView]:
        with unit_of_work(self.sessions) as session:
            rows = exception_requests.list_requests(session, status=status)
            return [exception_requests.request_view(r) for r in rows]

    def exception_list(self, ref: str | None = None) -> list[ExceptionView]:
        with unit_of_work(self.sessions) as session:
            query = select(WaiverRow).order_by(WaiverRow.id)
            if ref is not None:
                checkpoint = checkpoints.resolve_ref(session, Ref.parse(ref))
                query = query.where(WaiverRow.checkpoint_id == checkpoint.id)
            return [exception_view(r) for r in session.scalars(query)]

    def exception_revoke(self, exception_id: int) -> ExceptionView:
        with unit_of_work(self.sessions) as session:
            row = admission.revoke_exception(
                session, exception_id, actor=self.actor, now=datetime.now(UTC)
            )
            return exception_view(row)

    # -- findings and their triage (registry/service/findings.py) -------------------------------
    def finding_list(self, ref: str) -> list[FindingView]:
        with unit_of_work(self.sessions) as session:
            checkpoint = checkpoints.resolve_ref(session, Ref.parse(ref))
            return findings.checkpoint_findings(
                session, checkpoint, findings.latest_scans(checkpoint), datetime.now(UTC)
            )

    def finding_triage(
        self, finding_id: str, *, decision: str, reason: str, expires_at: datetime
    ) -> TriageView:
        with unit_of_work(self.sessions) as session:
            return findings.request(
                session,
                finding_id,
                decision=decision,
                reason=reason,
                expires_at=expires_at,
                actor=self.actor,
                now=datetime.now(UTC),
            )

    def finding_approve(self, request_id: int) -> TriageView:
        with unit_of_work(self.sessions) as session:
            return findings.approve(session, request_id, actor=self.actor, now=datetime.now(UTC))

    def finding_revoke(self, request_id: int, reason: str = "") -> TriageView:
        with unit_of_work(self.sessions) as session:
            return findings.revoke(
                session, request_id, actor=self.actor, now=datetime.now(UTC), reason=reason
            )

    def triage_list(
        self, *, finding_id: str | None = None, status: str | None = None
    ) -> list[TriageView]:
        with unit_of_work(self.sessions) as session:
            return findings.list_triage(
                session, finding=finding_id, status=status, now=datetime.now(UTC)
            )

    def finding_confirm(
        self, finding_id: str, *, withdraw: bool = False, reason: str = ""
    ) -> FindingStateView:
        with unit_of_work(self.sessions) as session:
            change = findings.withdraw_confirmation if withdraw else findings.confirm
            return change(
                session, finding_id, actor=self.actor, now=datetime.now(UTC), reason=reason
            )

    def finding_assign(self, finding_id: str, assignee: str | None) -> FindingStateView:
        with unit_of_work(self.sessions) as session:
            return findings.assign(
                session, finding_id, assignee, actor=self.actor, now=datetime.now(UTC)
            )

    def quarantine(self, target: str, reason: str) -> QuarantineView:
        """Quarantine REF's manifest digest under every name, or a bare `sha256:` digest."""
        with unit_of_work(self.sessions) as session:
            row = quarantines.quarantine(session, target, reason=reason, actor=self.actor)
            return quarantines.view(session, row)

    def release(self, target: str, reason: str) -> QuarantineView:
        """Undo exactly the quarantine `target` names; say what still holds those bytes."""
        with unit_of_work(self.sessions) as session:
            row, still = quarantines.release(session, target, reason=reason, actor=self.actor)
            return quarantines.view(session, row, still_quarantined_by=still)

    def quarantine_list(self) -> list[QuarantineView]:
        """Every active quarantine with the checkpoints it holds now."""
        with unit_of_work(self.sessions) as session:
            return [quarantines.view(session, row) for row in quarantines.active(session)]

    def attest(self, ref: str, *, allow_findings: bool = False) -> AttestResult:
        parsed = Ref.parse(ref)
        signer = registry_signer(self.settings)
        with unit_of_work(self.sessions) as session:
            checkpoint = checkpoints.resolve_ref(session, parsed)
            return attest.attest_checkpoint(
                session,
                checkpoint,
                signer=signer,
                tool_version=tool_version(),
                actor=self.actor,
                allow_findings=allow_findings,
            )

    def bom(self, ref: str, fmt: str, *, sign: bool = True) -> BomResult:
        """An ML-BOM of the checkpoint; signed and stored as an attestation when the registry
        key is configured and `sign` (the API's read-only GET passes False)."""
        chosen = bom_service.bom_format(fmt)
        signer = self.optional_signer() if sign else None
        with unit_of_work(self.sessions) as session:
            checkpoint = checkpoints.resolve_ref(session, Ref.parse(ref))
            facts = bom_service.bom_facts(
                checkpoint,
                blobs=self.blobs,
                registry_public_key=self.registry_public_key(),
                tool_version=tool_version(),
                now=datetime.now(UTC),
            )
            return bom_service.issue_bom(
                session, checkpoint, chosen, facts, signer=signer, actor=self.actor
            )

    # -- air-gap bundles (registry/service/bundle_export.py, bundle_import.py) ------------------
    def bundle_export(self, refs: Sequence[str], out: Path, *, progress: Progress) -> BundleResult:
        """Write REFs, their attestations and decisions, the registry key and a signed index."""
        if not refs:
            raise InputError("name at least one checkpoint to export")
        bundle_export.check_out_path(out)
        signer = registry_signer(self.settings)
        public_key = self.registry_public_key()
        if public_key is None:  # registry_signer made the key: this is a storage failure
            raise StorageError("the registry's public key is missing after loading its key")
        with unit_of_work(self.sessions) as session:
            found: dict[int, Any] = {}
            for ref in refs:
                checkpoint = checkpoints.resolve_ref(session, Ref.parse(ref))
                # Quarantined bytes leave by no door: an air-gap bundle is one.
                held = quarantines.holding(session, checkpoint)
                if held:
                    raise Denied(
                        f"{ref} is quarantined ({quarantines.describe(held[0])}): not exported",
                        reasons=[quarantines.describe(row) for row in held],
                    )
                found.setdefault(checkpoint.id, checkpoint)
            chosen = list(found.values())
            result = bundle_export.export_bundle(
                chosen,
                blobs=self.blobs,
                signer=signer,
                registry_public_key=public_key,
                tool_version=tool_version(),
                out=out,
                progress=progress,
            )
            session.add_all(bundle_export.audit_export(chosen, result, self.actor))
        return result

    def bundle_import(
        self, path: Path, *, trust_keys: Sequence[bytes] = (), progress: Progress
    ) -> BundleResult:
        """Verify everything in the bundle (see bundle_import), then register it in one unit
        of work; with the registry key configured, the registry then signs the imported
        checkpoints itself (what `pull` checks), as `attest` would."""
        trusted = [*self.trusted_attestation_keys(), *trust_keys]
        label = str(path)
        try:
            stream = open(path, "rb", buffering=0)  # noqa: SIM115 - closed after the one pass
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
        with stream:
            verified = bundle_import.read_bundle(
                stream,
                label=label,
                trusted_keys=trusted,
                blobs=self.blobs,
                progress=progress,
                workers=self.settings.hash_workers,
            )
        signer = self.optional_signer()
        with unit_of_work(self.sessions) as session:
            registered = bundle_import.register_bundle(
                session, verified, trusted_keys=trusted, actor=self.actor, label=label
            )
            if signer is not None:
                for checkpoint in registered:
                    attest.attest_checkpoint(
                        session,
                        checkpoint,
                        signer=signer,
                        tool_version=tool_version(),
                        actor=self.actor,
                    )
        index = verified.index
        return BundleResult(
            path=label,
            checkpoints=tuple(f"{c.name}@{c.digest}" for c in index.checkpoints),
            files=sum(len(c.manifest) for c in index.checkpoints),
            bytes=sum(m.size for m in index.blobs()),
            attestations=len(verified.attestations),
            new_bytes=verified.new_bytes,
        )

    def inspect(self, ref: str) -> CheckpointView:
        parsed = Ref.parse(ref)
        with unit_of_work(self.sessions) as session:
            return checkpoints.inspect(session, parsed)

    # -- pull (`modelctl pull`; files: registry/client/materialize.py, row: service/pull.py) -
    def pull(
        self,
        ref: str,
        environment: str,
        dest: Path,
        *,
        force: bool = False,
        layout: str = "plain",
        progress: Progress,
    ) -> PullResult:
        checked_layout = materialize.check_layout(layout)
        decision = self.policy_check(ref, environment)
        materialize.require_admitted(decision)
        # The decided digest, not `ref` again: a moving revision cannot swap the checkpoint.
        with unit_of_work(self.sessions) as session:
            checkpoint = checkpoints.resolve_ref(
                session, Ref.parse(f"{decision.name}@{decision.digest}")
            )
            signed = pull_service.signed_checkpoint(checkpoint, self.registry_public_key())
        result = materialize.pull_checkpoint(
            signed,
            decision,
            blobs=self.blobs,
            dest=dest,
            force=force,
            layout=checked_layout,
            workers=self.settings.hash_workers,
            progress=progress,
        )
        with unit_of_work(self.sessions) as session:
            pull_service.record_pull(session, result, actor=self.actor)
        return result

    def push(self, ref: str, target: str, environment: str, *, progress: Progress) -> PushResult:
        """Publish a signed checkpoint as a ModelPack artifact with its statements as referrers.

        Only what `environment` admits (like pull: the one gate, so a malicious verdict or a
        quarantine found after signing stops it), and the decided digest (not `ref` again) is
        what goes out."""
        # The HTTP client loads for this command only (httpx: 90 ms on every other command).
        from registry.mirror.oci_auth import load_credentials  # noqa: PLC0415
        from registry.mirror.oci_client import OciClient  # noqa: PLC0415
        from registry.mirror.oci_ref import parse_oci_ref  # noqa: PLC0415
        from registry.service import oci_push  # noqa: PLC0415

        oci_target = parse_oci_ref(target)
        if oci_target.digest:
            raise InputError(f"push target {target!r}: give a tag, not a digest")
        decision = self.policy_check(ref, environment)
        materialize.require_admitted(decision)
        ref = f"{decision.name}@{decision.digest}"
        with unit_of_work(self.sessions) as session:
            checkpoint = checkpoints.resolve_ref(session, Ref.parse(ref))
            # Quarantined bytes leave by no door (checked again inside the transaction).
            held = quarantines.holding(session, checkpoint)
            if held:
                raise Denied(
                    f"{ref} is quarantined ({quarantines.describe(held[0])}): not pushed",
                    reasons=[quarantines.describe(row) for row in held],
                )
            signed = pull_service.signed_checkpoint(checkpoint, self.registry_public_key())
            statements = [
                oci_push.Statement(a.predicate_type, bytes(a.bundle))
                for a in sorted(
                    checkpoint.evidence_attestations,
                    key=lambda a: (a.bundle != signed.bundle, a.id),
                )
                # The identity statement goes fresh, naming the manifest pushed now.
                if a.predicate_type != IDENTITY_PREDICATE_TYPE
            ]
            # The signed admission decision (VSA) goes with it.
            decisions = [
                d
                for d in checkpoint.decisions
                if d.environment == environment and d.attestation_id is not None
            ]
            newest = max(decisions, key=lambda d: d.id, default=None)
            vsa = session.get(Attestation, newest.attestation_id) if newest else None
            if newest is not None and newest.allowed and vsa is not None:
                statements.append(oci_push.Statement(vsa.predicate_type, bytes(vsa.bundle)))
            created_at = checkpoint.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with OciClient(
            oci_target, credentials=load_credentials(oci_target.host), push=True
        ) as client:
            result = oci_push.push_checkpoint(
                signed,
                statements,
                created_at=created_at,
                target=oci_target,
                client=client,
                blobs=self.blobs,
                environment=environment,
                progress=progress,
                on_manifest=functools.partial(self._record_pushed, ref, oci_target),
            )
        with unit_of_work(self.sessions) as session:
            session.add(
                AuditEvent(
                    actor=self.actor,
                    action="checkpoint.push",
                    subject=result.ref,
                    details={
                        "target": result.target,
                        "oci_digest": result.oci_digest,
                        "environment": environment,
                        "layers_sent": result.layers_sent,
                        "referrers": [r.digest for r in result.referrers],
                    },
                )
            )
        return result

    def _record_mirrored(
        self,
        session: Session,
        checkpoint: Checkpoint,
        origin: OciOrigin | None,
    ) -> None:
        """The OCI manifest a checkpoint was mirrored from, and (with the key at hand) the
        identity statement naming it; in the mirror's own transaction."""
        if origin is None:  # not an oci:// mirror
            return
        from registry.service import oci_identity  # noqa: PLC0415 - see push

        host, repository, digest, media_type, tag = origin
        oci_identity.record(
            session,
            checkpoint,
            registry=host,
            repository=repository,
            digest=digest,
            media_type=media_type,
            origin=OCI_MIRRORED,
            tag=tag,
        )
        signer = self.optional_signer()
        if signer is not None:
            oci_identity.sign_identity(session, checkpoint, signer)

    def _record_pushed(
        self, ref: str, target: OciRef, oci_digest: str
    ) -> oci_push_types.Statement | None:
        """Record the OCI manifest a checkpoint was just pushed as, and sign the identity
        statement that binds it (when the registry key is at hand): the statement to attach."""
        from registry.mirror.oci_client import MANIFEST_TYPE  # noqa: PLC0415 - see push
        from registry.service import oci_identity, oci_push  # noqa: PLC0415 - see push

        signer = self.optional_signer()
        with unit_of_work(self.sessions) as session:
            checkpoint = checkpoints.resolve_ref(session, Ref.parse(ref))
            oci_identity.record(
                session,
                checkpoint,
                registry=target.host,
                repository=target.repository,
                digest=oci_digest,
                media_type=MANIFEST_TYPE,
                origin=OCI_PUSHED,
                tag=target.tag or "latest",
            )
            if signer is None:
                return None
            row = oci_identity.sign_identity(session, checkpoint, signer)
            return oci_push.Statement(row.predicate_type, bytes(row.bundle))

    # -- server: API tokens and the audit log (added for `modelctl serve`) ----------------------
    def token_create(
        self,
        name: str,
        role: str,
        *,
        expires_at: datetime | None = None,
        environments: Sequence[str] | None = None,
    ) -> TokenCreated:
        with unit_of_work(self.sessions) as session:
            return tokens.create(
                session,
                name=name,
                role=tokens.Role.parse(role),
                actor=self.actor,
                expires_at=expires_at,
                environments=environments,
            )

    def token_list(self) -> list[TokenView]:
        with unit_of_work(self.sessions) as session:
            return tokens.list_tokens(session)

    def token_revoke(self, key: str) -> TokenView:
        with unit_of_work(self.sessions) as session:
            return tokens.revoke(session, key, actor=self.actor)

    def audit_log(self, query: AuditQuery) -> list[AuditEventView]:
        with unit_of_work(self.sessions) as session:
            return audit.events(session, query)

    def notification_deliveries(
        self, *, state: str | None = None, limit: int = 100
    ) -> list[NotificationDeliveryView]:
        """The notification delivery log, newest first (`modelctl notify deliveries`)."""
        with unit_of_work(self.sessions) as session:
            return notify_log.deliveries(session, state=state, limit=limit)

    # -- server: files, attestations, jobs (added for `modelctl serve`) ------------------------
    def file_info(self, ref: str, path: str) -> FileView:
        """The file at `path` in a checkpoint (its digest and size); hostile paths refused."""
        with unit_of_work(self.sessions) as session:
            sha256, size = serving.find_file(session, Ref.parse(ref), path)
        return FileView(path=path, size=size, sha256=sha256)

    def blob_size(self, sha256: str) -> int:
        """Size of a blob that some checkpoint references (else NotFound)."""
        digest = Digest.parse(f"sha256:{sha256}")
        with unit_of_work(self.sessions) as session:
            row = session.get(Blob, digest.hex)
            if row is None:
                raise NotFound(f"no blob sha256:{digest.hex}")
            return int(row.size)

    def attestation_list(self, ref: str) -> list[AttestationView]:
        with unit_of_work(self.sessions) as session:
            checkpoint = checkpoints.resolve_ref(session, Ref.parse(ref))
            return [checkpoints.attestation_view(a) for a in checkpoint.attestations]

    def attestation_bundle(self, ref: str, attestation_id: int) -> bytes:
        """An attestation's bundle exactly as it was signed and stored."""
        with unit_of_work(self.sessions) as session:
            checkpoint = checkpoints.resolve_ref(session, Ref.parse(ref))
            return bytes(serving.attestation_of(checkpoint, attestation_id).bundle)

    def trusted_attestation_keys(self) -> list[bytes]:
        """Keys an uploaded attestation may be signed with: the registry's and the configured."""
        keys = [k for k in [self.registry_public_key()] if k is not None]
        for path in self.settings.trusted_keys:
            try:
                keys.append(path.read_bytes())
            except OSError as exc:
                raise StorageError(f"cannot read trusted key {path}: {exc.strerror}") from exc
        return keys

    def attestation_upload(self, ref: str, data: bytes) -> AttestationView:
        """Verify an attestation bundle (see `serving.accept_attestation`), then store it."""
        keys = self.trusted_attestation_keys()
        with unit_of_work(self.sessions) as session:
            checkpoint = checkpoints.resolve_ref(session, Ref.parse(ref))
            row = serving.accept_attestation(
                session, checkpoint, data, trusted_keys=keys, actor=self.actor
            )
            return checkpoints.attestation_view(row)

    def public_key_pem(self) -> bytes | None:
        """The registry's public key (what remote clients pin to verify signatures)."""
        return self.registry_public_key()

    def job_enqueue(self, kind: JobKind | str, params: JobPayload | dict[str, Any]) -> JobView:
        with unit_of_work(self.sessions) as session:
            return jobs.enqueue(session, kind, params, actor=self.actor)

    def job(self, job_id: int) -> JobView:
        with unit_of_work(self.sessions) as session:
            return jobs.get(session, job_id)

    def sync(self, sources: Sequence[str] = (), *, dry_run: bool = False) -> SyncResult:
        """Mirror the new upstream commits of watched hub models (`sources`, else every hub
        source matching MODELCTL_PROXY_SOURCES that the registry holds): one mirror-and-scan
        job per new commit, none where one is queued. `dry_run` only looks upstream."""
        with unit_of_work(self.sessions) as session:
            if sources:
                named = {}
                for text in sources:
                    if not text.startswith(("hf://", "ms://")):  # never a path on this machine
                        raise InputError(
                            f"sync watches hub models: hf://ORG/NAME, not {text!r:.100}"
                        )
                    spec = parse_source(text)
                    if spec.revision is not None:
                        raise InputError(f"sync watches hub models: hf://ORG/NAME, not {text!r}")
                    named[spec.uri] = sync_service.name_for(session, spec.uri) or spec.repo_id
                watched = named
            else:
                watched = sync_service.watched(session, self.settings.proxy_sources)
        items = [self._sync_one(uri, name, dry_run=dry_run) for uri, name in watched.items()]
        return SyncResult(dry_run=dry_run, sources=tuple(items))

    def _sync_one(self, uri: str, name: str, *, dry_run: bool) -> SyncItem:
        try:  # one upstream round trip, outside any transaction
            commit = open_source(parse_source(uri), self.settings).resolve().commit
        except RegistryError as exc:
            return SyncItem(source=uri, name=name, state="error", error=exc.message)
        with unit_of_work(self.sessions) as session:
            if sync_service.holds(session, uri, commit):
                state, job_id = "up-to-date", None
            elif sync_service.pending(session, uri):
                state, job_id = "already-queued", None
            elif dry_run:
                state, job_id = "new", None
            else:
                state, job_id = "queued", sync_service.queue(session, uri, commit, name)
        return SyncItem(source=uri, name=name, state=state, upstream_commit=commit, job_id=job_id)

    def rescan(self, scanners: Sequence[str] = (), *, dry_run: bool = False) -> RescanResult:
        """Queue a scan of every checkpoint whose newest scan by one of `scanners` (the default
        set when empty) is older than the scanner this registry runs; `dry_run` only finds."""
        current = scan_service.current_versions(scanners)
        defaults = frozenset(scan_service.current_versions(()))
        with unit_of_work(self.sessions) as session:
            stale = rescan_service.find_stale(session, current, required=defaults)
            if not dry_run:
                stale = rescan_service.queue(session, stale, defaults=defaults, actor=self.actor)
            return RescanResult(dry_run=dry_run, checkpoints=tuple(stale))

    # -- bulk actions (registry/service/bulk.py, ADR 0026) ------------------------------------

    def bulk_preview(
        self, action: bulk_service.BulkAction, flt: bulk_service.BulkFilter
    ) -> bulk_service.Preview:
        """Exactly the checkpoints `flt` selects now, their state, and what `action` changes."""
        envs = decide.environments(self.policy_set())
        live = self.live_statuses()
        with unit_of_work(self.sessions) as session:
            return bulk_service.select_checkpoints(
                session, action, flt, envs, now=datetime.now(UTC), live=live
            )

    def bulk_apply(
        self,
        action: bulk_service.BulkAction,
        flt: bulk_service.BulkFilter,
        bound: Sequence[str],
        *,
        reason: str = "",
    ) -> bulk_service.BulkResult:
        """Act on the refs a preview showed (`bound`) that `flt` still selects, one audit entry
        each; a checkpoint the preview did not show is left alone (`unseen`), as is a bound one
        the filter no longer selects (`gone`). A quarantine or re-scan is one transaction: all
        of the items or none."""
        if action is bulk_service.BulkAction.QUARANTINE and not reason.strip():
            raise InputError("a quarantine needs a --reason")
        preview = self.bulk_preview(action, flt)
        acting, gone, unseen = bulk_service.bind(preview, bound)
        bound_set = set(bound)
        outcomes = [
            bulk_service.Outcome(ref=i.ref, result="unchanged", detail=i.change)
            for i in preview.items
            if i.ref in bound_set and not i.acts
        ]
        described = flt.describe()
        if action is bulk_service.BulkAction.DECIDE:
            envs = decide.environments(self.policy_set())
            for item in acting:
                allowed = {env: self.policy_check(item.ref, env).allowed for env in envs}
                with unit_of_work(self.sessions) as session:
                    bulk_service.record_redecide(
                        session, item.ref, allowed, actor=self.actor, filter_text=described
                    )
                detail = ", ".join(
                    f"{e}: {'allowed' if a else 'denied'}" for e, a in allowed.items()
                )
                outcomes.append(bulk_service.Outcome(ref=item.ref, result="decided", detail=detail))
        else:
            with unit_of_work(self.sessions) as session:
                for item in acting:
                    if action is bulk_service.BulkAction.QUARANTINE:
                        quarantines.quarantine(session, item.ref, reason=reason, actor=self.actor)
                        outcomes.append(bulk_service.Outcome(ref=item.ref, result="quarantined"))
                    else:
                        job_id = bulk_service.queue_scan(
                            session, item.ref, actor=self.actor, filter_text=described
                        )
                        outcomes.append(
                            bulk_service.Outcome(ref=item.ref, result="queued", job_id=job_id)
                        )
        return bulk_service.BulkResult(
            action=action,
            dry_run=False,
            outcomes=tuple(outcomes),
            gone=tuple(gone),
            unseen=tuple(unseen),
        )


def exception_view(row: WaiverRow) -> ExceptionView:
    return ExceptionView(
        id=row.id,
        ref=f"{row.checkpoint.model.full_name}@sha256:{row.checkpoint.manifest_digest}",
        waive=tuple(row.waive),
        environments=tuple(row.environments) if row.environments else None,
        reason=row.reason,
        approver=row.approver,
        expires_at=row.expires_at,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        requested_by=row.requested_by,
    )


#: Where an `oci://` mirror came from: host, repository, manifest digest, media type, tag.
OciOrigin = tuple[str, str, str, str, "str | None"]


def _oci_origin(source: object, snapshot: Any) -> tuple[list[Any], OciOrigin]:
    """The statements attached to an OCI artifact just mirrored (hash-checked, not yet
    trusted) and the manifest it came from."""
    from registry.mirror.oci import OciSource, fetch_referrers  # noqa: PLC0415 - see push

    assert isinstance(source, OciSource)  # the factory's choice for oci://
    origin = (
        source.ref.host,
        source.ref.repository,
        snapshot.commit,
        source.manifest_media_type,
        source.ref.tag,
    )
    return list(fetch_referrers(source, snapshot)), origin
