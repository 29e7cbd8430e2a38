"""The embedded registry: the service in-process, on the database and blob store in Settings.

Each method is one unit of work: it opens a session, calls the service, and commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path  # pull
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from attestations.decision import DecisionRecord
from attestations.digests import Digest
from attestations.keys import KeySigner
from registry.blobs.local import LocalBlobStore
from registry.db.engine import make_engine, migrate, session_factory, unit_of_work
from registry.db.models import WaiverRow
from registry.errors import Denied, InputError, StorageError
from registry.interface import MirrorRequest
from registry.mirror.base import parse_source
from registry.mirror.factory import open_source
from registry.scanners import catalog
from registry.scanners.backdoor.settings import BackdoorSettings
from registry.scanners.base import ScanLimits
from registry.service import admission, attest, checkpoints
from registry.service import scan as scan_service
from registry.service.progress import Progress
from registry.service.refs import ModelName, Ref
from registry.settings import Settings
from registry.signing_key import registry_signer, tool_version
from registry.views import (
    AttestResult,
    CheckpointView,
    DecisionView,
    ExceptionView,
    MirrorResult,
    ModelSummary,
    PullResult,  # pull
    ScanOutcome,
)


class EmbeddedRegistry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        if settings.database_url.startswith("sqlite"):
            try:
                settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise StorageError(f"cannot create {settings.home}: {exc.strerror}") from exc
        self.engine = make_engine(settings.database_url)
        try:
            migrate(self.engine)
        except OperationalError as exc:
            raise StorageError(f"cannot open the database: {exc.orig}") from exc
        self.sessions = session_factory(self.engine)
        self.blobs = LocalBlobStore(settings.blob_root)

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
                        actor=checkpoints.current_actor(),
                    )
                    result = checkpoints.mirror_result(
                        checkpoint, created=created, transferred=transferred
                    )
                break
            except IntegrityError as exc:
                if attempt == 1:
                    raise StorageError(f"could not record the checkpoint: {exc.orig}") from exc
            except SQLAlchemyError as exc:
                raise StorageError(f"could not record the checkpoint: {exc}") from exc
        if not request.scan:
            return result
        # The checkpoint is committed first: a scan that fails leaves it registered, unscanned.
        outcome = self.scan(result.checkpoint.ref)
        return replace(result, checkpoint=outcome.checkpoint, scan=outcome)

    def models(self) -> list[ModelSummary]:
        with unit_of_work(self.sessions) as session:
            return checkpoints.list_models(session)

    def _optional_signer(self) -> KeySigner | None:
        """The registry key when its passphrase is configured; scans are recorded either way."""
        if not self.settings.signing_key_passphrase:
            return None
        return registry_signer(self.settings)

    def scan(
        self, ref: str, scanners: Sequence[str] = (), *, backdoor: BackdoorSettings | None = None
    ) -> ScanOutcome:
        parsed = Ref.parse(ref)
        file_scanners, folder_scanners = catalog.select(scanners, backdoor=backdoor)
        signer = self._optional_signer()
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
                actor=checkpoints.current_actor(),
            )
            session.flush()
            return ScanOutcome(
                checkpoint=checkpoints.checkpoint_view(checkpoint),
                report=report.to_json(),
                recorded=tuple(checkpoints.scan_view(r) for r in rows),
            )

    def _registry_public_key(self) -> bytes | None:
        pub = self.settings.signing_key_path.with_suffix(".pub")
        if pub.is_file():
            return pub.read_bytes()
        if self.settings.signing_key_passphrase and self.settings.signing_key_path.is_file():
            return registry_signer(self.settings).public_pem
        return None

    def policy_check(
        self,
        ref: str,
        environment: str,
        policy_text: str | None = None,
        policy_file: str = "",
        *,
        now: datetime | None = None,
    ) -> DecisionView:
        from policies import PolicyError, evaluate, load_default_policies, load_policies

        try:
            policy_set = (
                load_policies(policy_text, policy_file)
                if policy_text is not None
                else load_default_policies()
            )
        except PolicyError as exc:
            raise InputError(exc.message) from exc
        bound = policy_set.for_environment(environment)
        if bound is None:
            raise Denied(
                f"no policy is bound to environment {environment!r}: denied (fail closed)",
                reasons=[f"binding: no policy for {environment!r}"],
            )
        policy, mode = bound
        parsed = Ref.parse(ref)
        now = now or datetime.now(UTC)
        with unit_of_work(self.sessions) as session:
            checkpoint = checkpoints.resolve_ref(session, parsed)
            granted = admission.registry_exceptions(
                checkpoint.id,
                f"sha256:{checkpoint.manifest_digest}",
                list(
                    session.scalars(
                        select(WaiverRow).where(WaiverRow.checkpoint_id == checkpoint.id)
                    )
                ),
            )
            if granted:
                policy = replace(policy, exceptions=(*policy.exceptions, *granted))
            facts = admission.checkpoint_facts(
                checkpoint,
                blobs=self.blobs,
                registry_public_key=self._registry_public_key(),
                now=now,
            )
            decision = evaluate(policy, facts, now=now, mode=mode, environment=environment)
            check_rows = tuple(
                {
                    "id": c.id,
                    "status": str(c.status.value),
                    "message": c.message,
                    "evidence": {k: _jsonable(v) for k, v in c.evidence.items()},
                }
                for c in decision.checks
            )
            admission.record_decision(
                session,
                checkpoint,
                DecisionRecord(
                    name=facts.name,
                    manifest_digest=Digest.parse(facts.digest),
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
                signer=self._optional_signer(),
                actor=checkpoints.current_actor(),
            )
        return DecisionView(
            name=facts.name,
            digest=facts.digest,
            environment=environment,
            allowed=decision.allowed,
            mode=str(decision.mode.value),
            policy_name=decision.policy_name,
            policy_digest=decision.policy_digest,
            checks=check_rows,
            evaluated_at=decision.evaluated_at,
            expires_at=decision.expires_at,
            reasons=decision.reasons,
        )

    def exception_add(
        self,
        ref: str,
        *,
        waive: list[str],
        reason: str,
        approver: str,
        expires_at: datetime,
        environments: list[str] | None,
    ) -> ExceptionView:
        parsed = Ref.parse(ref)
        with unit_of_work(self.sessions) as session:
            checkpoint = checkpoints.resolve_ref(session, parsed)
            row = admission.add_exception(
                session,
                checkpoint,
                waive=waive,
                reason=reason,
                approver=approver,
                expires_at=expires_at,
                environments=environments,
                actor=checkpoints.current_actor(),
                now=datetime.now(UTC),
            )
            return exception_view(row)

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
                session, exception_id, actor=checkpoints.current_actor(), now=datetime.now(UTC)
            )
            return exception_view(row)

    def quarantine(self, ref: str, reason: str) -> CheckpointView:
        parsed = Ref.parse(ref)
        with unit_of_work(self.sessions) as session:
            checkpoint = checkpoints.resolve_ref(session, parsed)
            admission.quarantine(
                session, checkpoint, reason=reason, actor=checkpoints.current_actor()
            )
            return checkpoints.checkpoint_view(checkpoint)

    def release(self, ref: str, reason: str) -> CheckpointView:
        parsed = Ref.parse(ref)
        with unit_of_work(self.sessions) as session:
            checkpoint = checkpoints.resolve_ref(session, parsed)
            admission.release(session, checkpoint, reason=reason, actor=checkpoints.current_actor())
            return checkpoints.checkpoint_view(checkpoint)

    def attest(self, ref: str) -> AttestResult:
        parsed = Ref.parse(ref)
        signer = registry_signer(self.settings)
        with unit_of_work(self.sessions) as session:
            checkpoint = checkpoints.resolve_ref(session, parsed)
            return attest.attest_checkpoint(
                session,
                checkpoint,
                signer=signer,
                tool_version=tool_version(),
                actor=checkpoints.current_actor(),
            )

    def inspect(self, ref: str) -> CheckpointView:
        parsed = Ref.parse(ref)
        with unit_of_work(self.sessions) as session:
            return checkpoints.inspect(session, parsed)

    # -- pull (added for `modelctl pull`; logic in registry/service/pull.py) -------------------
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
        from registry.service import pull as pull_service

        if layout not in pull_service.LAYOUTS:
            raise InputError(f"unknown layout {layout!r}: expected plain or hf-cache")
        decision = self.policy_check(ref, environment)
        if not decision.allowed:
            raise Denied(
                f"{decision.name}@{decision.digest} is not admitted to {environment!r}: "
                + "; ".join(decision.reasons),
                reasons=decision.reasons,
            )
        # The decided digest, not `ref` again: a moving revision cannot swap the checkpoint.
        with unit_of_work(self.sessions) as session:
            checkpoint = checkpoints.resolve_ref(
                session, Ref.parse(f"{decision.name}@{decision.digest}")
            )
            signed = pull_service.signed_checkpoint(checkpoint, self._registry_public_key())
        return pull_service.pull_checkpoint(
            signed,
            decision,
            blobs=self.blobs,
            dest=dest,
            force=force,
            layout="hf-cache" if layout == "hf-cache" else "plain",
            workers=self.settings.hash_workers,
            progress=progress,
        )


def _jsonable(value: object) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


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
    )
