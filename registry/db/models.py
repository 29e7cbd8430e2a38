"""Tables. ORM rows only: HTTP and CLI schemas live elsewhere (`registry.views`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from attestations.decision import PREDICATE_TYPE as VSA_PREDICATE_TYPE
from attestations.utc import utc_now

# Stable constraint names, so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


#: What a quarantine's digest names (`Quarantine.kind`).
QUARANTINE_CHECKPOINT = "checkpoint"
QUARANTINE_FILE = "file"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Model(Base):
    """A name (`namespace/name`) under which checkpoints are registered."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("namespace", "name", name="uq_models_namespace_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace: Mapped[str] = mapped_column(String(96))
    name: Mapped[str] = mapped_column(String(96))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    checkpoints: Mapped[list[Checkpoint]] = relationship(
        back_populates="model", order_by="Checkpoint.id"
    )

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"


class Blob(Base):
    """Bytes in the blob store, named by their sha256. Shared by every checkpoint using them."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Checkpoint(Base):
    """One exact set of bytes under a model name, identified by its manifest digest."""

    __tablename__ = "checkpoints"
    __table_args__ = (
        UniqueConstraint("model_id", "manifest_digest", name="uq_checkpoints_model_digest"),
        Index("ix_checkpoints_manifest_digest", "manifest_digest"),
        Index("ix_checkpoints_source_commit", "source_commit"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="RESTRICT"))
    manifest_digest: Mapped[str] = mapped_column(String(64))
    source_uri: Mapped[str] = mapped_column(Text)
    source_commit: Mapped[str] = mapped_column(String(128))
    file_count: Mapped[int] = mapped_column(Integer)
    total_size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    #: `license:` of the model card (README.md front matter), lower-cased; "unknown" when the
    #: card has none or there is no card; NULL when not read yet (recorded before 0009).
    license: Mapped[str | None] = mapped_column(String(100), nullable=True)
    #: `base_model:` of the model card (README.md front matter), as declared (the first when
    #: it lists several): the model this one is a fine-tune of. NULL: none declared (or
    #: recorded before 0023). A policy can require a differential backdoor scan against it.
    base_model: Mapped[str | None] = mapped_column(String(300), nullable=True)
    #: The `--include` / `--exclude` globs of the mirror that recorded the checkpoint (empty
    #: lists: none given); NULL when not recorded (before 0012).
    mirror_include: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    mirror_exclude: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    #: True when the checkpoint holds every file its source listed at `source_commit` (so a pod
    #: fetching the whole commit gets exactly these bytes); False for a filtered subset; NULL
    #: unknown (before 0012), which counts as not complete.
    complete: Mapped[bool | None] = mapped_column(nullable=True)

    model: Mapped[Model] = relationship(back_populates="checkpoints")
    files: Mapped[list[CheckpointFile]] = relationship(
        back_populates="checkpoint", cascade="all, delete-orphan", order_by="CheckpointFile.id"
    )
    revisions: Mapped[list[CheckpointRevision]] = relationship(
        back_populates="checkpoint", cascade="all, delete-orphan", order_by="CheckpointRevision.id"
    )
    attestations: Mapped[list[Attestation]] = relationship(
        back_populates="checkpoint", cascade="all, delete-orphan", order_by="Attestation.id"
    )
    #: The attestations a decision may rest on: all but earlier admission decisions (VSAs),
    #: which accumulate with every check and are its outputs, never its inputs. Deciding loads
    #: this, so a check costs the same after a million decisions as after one.
    evidence_attestations: Mapped[list[Attestation]] = relationship(
        primaryjoin=f"and_(Checkpoint.id == Attestation.checkpoint_id, "
        f"Attestation.predicate_type != '{VSA_PREDICATE_TYPE}')",
        order_by="Attestation.id",
        viewonly=True,
    )
    scans: Mapped[list[Scan]] = relationship(
        back_populates="checkpoint", cascade="all, delete-orphan", order_by="Scan.id"
    )
    #: Quarantines of this checkpoint's manifest digest, under whatever name they were made:
    #: a quarantine binds bytes, so it covers every name holding them, now and later.
    #: Any kind: a digest blocked before the registry knew it is recorded as a file's, and
    #: must hold a checkpoint that later turns out to have it as its manifest digest.
    quarantines: Mapped[list[Quarantine]] = relationship(
        primaryjoin="foreign(Quarantine.digest) == Checkpoint.manifest_digest",
        order_by="Quarantine.id",
        viewonly=True,
    )
    #: Quarantines of the sha256 of one of this checkpoint's files (a known-bad file).
    file_quarantines: Mapped[list[Quarantine]] = relationship(
        secondary="checkpoint_files",
        primaryjoin="Checkpoint.id == CheckpointFile.checkpoint_id",
        secondaryjoin="and_(foreign(Quarantine.digest) == CheckpointFile.sha256, "
        f"Quarantine.kind == '{QUARANTINE_FILE}')",
        order_by="Quarantine.id",
        viewonly=True,
    )
    decisions: Mapped[list[Decision]] = relationship(
        cascade="all, delete-orphan", order_by="Decision.id"
    )
    #: The OCI manifests these bytes were pushed as or mirrored from (docs/formats/identity.md).
    oci_representations: Mapped[list[OciRepresentation]] = relationship(
        back_populates="checkpoint",
        cascade="all, delete-orphan",
        order_by="OciRepresentation.id",
    )


#: How an OCI representation came to be recorded (`OciRepresentation.origin`).
OCI_PUSHED = "pushed"
OCI_MIRRORED = "mirrored"


class OciRepresentation(Base):
    """One OCI manifest that carries exactly this checkpoint's files (one layer per file, the
    layer digest the file's sha256): where it lives and its digest. The digest is what binds
    (a tag is only remembered); the admission webhook maps an OCI digest to checkpoints here.
    """

    __tablename__ = "oci_representations"
    __table_args__ = (
        UniqueConstraint(
            "checkpoint_id",
            "registry",
            "repository",
            "manifest_digest",
            name="uq_oci_representations_checkpoint_place",
        ),
        Index("ix_oci_representations_manifest_digest", "manifest_digest"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"))
    #: The registry, HOST[:PORT] (column `registry`: `registry` is SQLAlchemy's own attribute).
    host: Mapped[str] = mapped_column("registry", String(260))
    repository: Mapped[str] = mapped_column(String(255))
    manifest_digest: Mapped[str] = mapped_column(String(64))  # hex of the OCI manifest's sha256
    media_type: Mapped[str] = mapped_column(String(200))
    origin: Mapped[str] = mapped_column(String(20))  # OCI_PUSHED | OCI_MIRRORED
    tag: Mapped[str | None] = mapped_column(String(128), nullable=True)  # as given; not binding
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    checkpoint: Mapped[Checkpoint] = relationship(back_populates="oci_representations")


class CheckpointRevision(Base):
    """A source revision (branch or tag) that resolved to this checkpoint's commit when mirrored.

    A record of what was asked for, not a moving pointer: a later mirror of the same branch
    that finds other bytes makes another checkpoint and another row.
    """

    __tablename__ = "checkpoint_revisions"
    __table_args__ = (
        UniqueConstraint("checkpoint_id", "revision", name="uq_checkpoint_revisions_revision"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"))
    revision: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    checkpoint: Mapped[Checkpoint] = relationship(back_populates="revisions")


class Attestation(Base):
    """A signed statement about a checkpoint, kept verbatim as the bundle that was signed."""

    __tablename__ = "attestations"
    __table_args__ = (
        Index("ix_attestations_subject_digest", "subject_digest"),
        Index("ix_attestations_predicate_type", "predicate_type"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"))
    predicate_type: Mapped[str] = mapped_column(String(200))
    subject_digest: Mapped[str] = mapped_column(String(64))
    signer: Mapped[str] = mapped_column(String(300))
    bundle: Mapped[bytes] = mapped_column(LargeBinary)
    bundle_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    #: The transparency log entry of an attestation the registry signed (None: uploaded, or
    #: signed before the log existed).
    log_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    checkpoint: Mapped[Checkpoint] = relationship(back_populates="attestations")


class Scan(Base):
    """One scanner's run over a checkpoint: its verdict and the full report, as recorded."""

    __tablename__ = "scans"
    __table_args__ = (
        Index("ix_scans_checkpoint_scanner", "checkpoint_id", "scanner_id"),
        # The trends page (migration 0026): weekly counts and first critical findings read
        # these columns only, never the report JSON in the rows.
        Index("ix_scans_finished_severity", "finished_at", "max_severity"),
        Index("ix_scans_severity_checkpoint", "max_severity", "checkpoint_id", "finished_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"))
    scanner_id: Mapped[str] = mapped_column(String(100))
    scanner_version: Mapped[str] = mapped_column(String(50))
    ruleset_version: Mapped[str] = mapped_column(String(50))
    verdict: Mapped[str] = mapped_column(String(20))
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The worst severity among the report's findings; NULL when it has none.
    max_severity: Mapped[str | None] = mapped_column(String(10), nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attestation_id: Mapped[int | None] = mapped_column(
        ForeignKey("attestations.id", ondelete="SET NULL"), nullable=True
    )

    checkpoint: Mapped[Checkpoint] = relationship(back_populates="scans")


class Quarantine(Base):
    """Bytes withdrawn from every environment until released (history is kept).

    It names a digest, never a model name: a checkpoint's manifest digest (`kind` checkpoint:
    every checkpoint with those bytes, under any name) or a file's sha256 (`kind` file: every
    checkpoint holding that file). Checkpoints registered later are covered on arrival, and a
    file digest nobody holds yet may be quarantined ahead of time (a known-bad hash).
    """

    __tablename__ = "quarantines"
    __table_args__ = (Index("ix_quarantines_kind_digest", "kind", "digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # checkpoint | file
    digest: Mapped[str] = mapped_column(String(64))  # hex, no `sha256:` prefix
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    released_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    release_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Decision(Base):
    """An admission decision as it was made (and, when the key is available, signed as a VSA)."""

    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_checkpoint_env", "checkpoint_id", "environment"),
        # The trends page (migration 0026): decisions per environment and week.
        Index("ix_decisions_evaluated_env", "evaluated_at", "environment", "allowed"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"))
    environment: Mapped[str] = mapped_column(String(100))
    allowed: Mapped[bool] = mapped_column()
    mode: Mapped[str] = mapped_column(String(20))
    policy_name: Mapped[str] = mapped_column(String(200))
    policy_digest: Mapped[str] = mapped_column(String(80))
    checks: Mapped[list[Any]] = mapped_column(JSON)
    evaluated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attestation_id: Mapped[int | None] = mapped_column(
        ForeignKey("attestations.id", ondelete="SET NULL"), nullable=True
    )


class WorkloadDecision(Base):
    """The webhook's decision about one Kubernetes object (a Pod, a controller, an
    InferenceService, a NetworkPolicy): kept as made, with the pod's posture and every
    containment check, and signed as a VSA (`bundle`) when the registry key is available."""

    __tablename__ = "workload_decisions"
    __table_args__ = (
        Index("ix_workload_decisions_object", "environment", "namespace", "kind", "name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment: Mapped[str] = mapped_column(String(100))
    namespace: Mapped[str] = mapped_column(String(253))
    kind: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(253))
    operation: Mapped[str] = mapped_column(String(20))
    review_uid: Mapped[str] = mapped_column(String(128))
    object_sha256: Mapped[str] = mapped_column(String(64))
    allowed: Mapped[bool] = mapped_column()
    message: Mapped[str] = mapped_column(Text)
    #: {"models": [...], "containment": [...], "warnings": [...]}: the statement's `modelctl`.
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    bundle: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    bundle_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


class WaiverRow(Base):
    """An exception granted through the registry: waives named checks for one checkpoint."""

    __tablename__ = "policy_exceptions"
    __table_args__ = (Index("ix_policy_exceptions_checkpoint", "checkpoint_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"))
    waive: Mapped[list[str]] = mapped_column(JSON)
    environments: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    #: The principal that approved it (an audit actor); free text before migration 0011.
    approver: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    actor: Mapped[str] = mapped_column(String(200))
    #: The principal that requested it (never the approver); NULL before migration 0011.
    requested_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)

    checkpoint: Mapped[Checkpoint] = relationship()


class CheckpointFile(Base):
    """A file of a checkpoint: its path in the model folder and the blob holding its bytes."""

    __tablename__ = "checkpoint_files"
    __table_args__ = (
        UniqueConstraint("checkpoint_id", "path", name="uq_checkpoint_files_path"),
        Index("ix_checkpoint_files_sha256", "sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256", ondelete="RESTRICT"))

    checkpoint: Mapped[Checkpoint] = relationship(back_populates="files")


class AuditEvent(Base):
    """Append-only record of every state change: who, what, when, details."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ApiToken(Base):
    """An API token for `modelctl serve`: only the SHA-256 of the secret is kept."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        UniqueConstraint("key_id", name="uq_api_tokens_key_id"),
        UniqueConstraint("name", name="uq_api_tokens_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32))  # public half, printed in the token
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    created_by: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: The environments the token may name (`/hf/{env}`, the webhook, byte reads); NULL: all.
    environments: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)


class Job(Base):
    """Work the server does in the background (mirror, scan), claimed by one worker at a time.

    A worker claims a queued job (or a running one whose heartbeat is stale: its worker died)
    with `FOR UPDATE SKIP LOCKED` on PostgreSQL, and heartbeats while it runs.
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_id", "state", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # mirror | scan
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(
        String(20), default="queued"
    )  # queued|running|succeeded|failed
    actor: Mapped[str] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class GcMark(Base):
    """A blob `modelctl gc` found unreferenced, and since when (mark, grace, sweep).

    Recording a checkpoint that uses the blob deletes its mark; `gc` deletes the blob only when
    the mark is older than the grace period and nothing references it at the sweep.
    """

    __tablename__ = "gc_marks"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    marked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    #: Set when the blob was swept: the row stays for a grace period as a tombstone, so that a
    #: mirror which found the bytes stored just before they went refuses to record them.
    swept_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ExceptionRequest(Base):
    """A requested exception awaiting a second person's approval (the web UI's queue).

    Approving one grants a `policy_exceptions` row (linked here) with the approver's name;
    a pending or rejected request waives nothing.
    """

    __tablename__ = "exception_requests"
    __table_args__ = (Index("ix_exception_requests_status", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"))
    waive: Mapped[list[str]] = mapped_column(JSON)
    environments: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20), default="pending")  # approved | rejected
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    exception_id: Mapped[int | None] = mapped_column(
        ForeignKey("policy_exceptions.id", ondelete="SET NULL"), nullable=True
    )

    checkpoint: Mapped[Checkpoint] = relationship()


class FindingTriage(Base):
    """A finding-level decision ("false positive"), requested by one principal and approved
    by another. Keyed by the finding's stable id (scanner, rule, file sha256, location), so it
    holds across re-scans and for the same bytes under every name. Only an approved, unrevoked,
    unexpired row counts; a pending one changes nothing.
    """

    __tablename__ = "finding_triage"
    __table_args__ = (
        Index("ix_finding_triage_finding", "finding_id"),
        Index("ix_finding_triage_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    finding_id: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(20))  # false-positive
    status: Mapped[str] = mapped_column(String(20), default="pending")  # approved | revoked
    reason: Mapped[str] = mapped_column(Text)
    #: What the finding was when the request was made (for people; the id is what counts).
    scanner: Mapped[str] = mapped_column(String(100))
    rule: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(Text)
    file_sha256: Mapped[str] = mapped_column(String(64))
    requested_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    approved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class FindingState(Base):
    """A finding's triage state besides the two-person false positive (`FindingTriage`):
    confirmed (a real problem; it never loosens a decision) and whom it is assigned to.
    One row per stable finding id, so it holds across re-scans and names; every change is an
    audit event, which keeps the history.
    """

    __tablename__ = "finding_states"

    finding_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: What the finding was when first triaged (for people; the id is what counts).
    scanner: Mapped[str] = mapped_column(String(100))
    rule: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(Text)
    file_sha256: Mapped[str] = mapped_column(String(64))
    confirmed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    assignee: Mapped[str | None] = mapped_column(String(200), nullable=True)
    assigned_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class IdempotencyKey(Base):
    """A write request made with an `Idempotency-Key` header and the response it got, so a
    retried request is answered with that response instead of doing the work twice.

    Keyed by the caller (`scope`: SHA-256 of the credential it presented, never the credential)
    and the key it chose; `fingerprint` is SHA-256 over the method, path, query and body, so a
    key reused for a different request is refused rather than answered with the wrong result.
    A `pending` row is a request in flight; `done` holds the response (status below 500).
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotency_keys_scope_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10))  # pending | done
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(200), nullable=True)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class TransparencyLogHead(Base):
    """The transparency log's append lock and the size the database last saw it reach.

    Appends take this row `FOR UPDATE`, so servers sharing the database append one at a time;
    the size lets an append refuse log files that went backwards (restored or truncated).
    """

    __tablename__ = "transparency_log_heads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class NotificationDelivery(Base):
    """One notification to one target: the delivery log, and the outbox the dispatcher works.

    Unique on (event key, target): an event read twice from the audit log (at-least-once) is
    delivered once. `state` is pending until delivered or out of attempts (failed).
    """

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("event_key", "target", name="uq_notification_deliveries_event_target"),
        Index("ix_notification_deliveries_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_key: Mapped[str] = mapped_column(String(200))  # e.g. "audit:42", "expiry:7:2026-12-05"
    event: Mapped[str] = mapped_column(String(50))  # finding | denial | quarantine | ...
    target: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(20))  # webhook | email
    subject: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class NotificationCursor(Base):
    """How far the dispatcher has read the audit log (one row, `name` = "audit")."""

    __tablename__ = "notification_cursor"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    audit_id: Mapped[int] = mapped_column(Integer)


class WebSessionEnd(Base):
    """A browser session ended before its cookie expired (signed out, or ended by an admin).

    Cookies are stateless (signed, `registry.web.session`); this row is what makes a signed-out
    cookie worthless if it was copied. Rows are pruned once the cookie would have expired anyway.
    """

    __tablename__ = "web_session_ends"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class WebUserCutoff(Base):
    """Every browser session of a person (or an API token's sessions) signed in before
    `not_before` is over: "sign out everywhere", or an admin ending a compromised account's
    sessions. `principal` is the audit name (`oidc:alice@example.com`, `token:NAME`)."""

    __tablename__ = "web_user_cutoffs"

    principal: Mapped[str] = mapped_column(String(300), primary_key=True)
    not_before: Mapped[int] = mapped_column(BigInteger)  # epoch seconds, as cookies carry
    set_by: Mapped[str] = mapped_column(String(300))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class SavedSearch(Base):
    """A principal's named filter of the checkpoints list: the query string the list and the
    bulk preview read (`registry.service.bulk`), private to its owner (the audit name)."""

    __tablename__ = "saved_searches"
    __table_args__ = (UniqueConstraint("owner", "name", name="uq_saved_searches_owner_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(300))
    name: Mapped[str] = mapped_column(String(100))
    query: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
