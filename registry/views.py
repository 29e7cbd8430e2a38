"""What the registry returns to its callers: frozen pydantic models, the same embedded or remote.

They are the one wire layer: the API declares them as `response_model`, the remote client
parses them back with `model_validate`, and `to_json()` (a dump by alias) gives the stable
machine output documented in docs/formats/cli-json.md: fields may be added, never renamed or
removed. Where the JSON name or shape differs from the attribute (`flagged` is
`flagged_files`, `policy_name`/`policy_digest` are `policy.{name,digest}`), an alias or a
computed field says so, and validation accepts the JSON form back.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    computed_field,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)

from attestations.intoto import rfc3339


def iso(ts: datetime) -> str:
    """RFC 3339 in UTC (SQLite hands back naive datetimes; they are stored in UTC)."""
    return rfc3339(ts)


#: A moment, written as RFC 3339 in UTC with a `Z` (naive values are taken as UTC).
Timestamp = Annotated[datetime, PlainSerializer(iso, return_type=str, when_used="json")]


class WireModel(BaseModel):
    """A frozen view. Extra keys are ignored on the way in because the JSON carries computed
    fields (`ref`, `total_size`, `attested`, `active`) that are derived again, not stored."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        """The documented JSON (docs/formats/cli-json.md): every field by its JSON name."""
        return self.model_dump(mode="json", by_alias=True)


def _none_if_empty(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """An empty scope is written as null, as it always was."""
    return value or None


class FileView(WireModel):
    path: str
    size: int
    sha256: str  # lowercase hex


class SourceView(WireModel):
    uri: str
    commit: str
    revisions: tuple[str, ...] = ()
    include: tuple[str, ...] | None = None  # the mirror's --include globs (None: not recorded)
    exclude: tuple[str, ...] | None = None  # the mirror's --exclude globs (None: not recorded)
    complete: bool | None = None  # every file of the commit (None: unknown, not complete)

    @property
    def filter_text(self) -> str:
        """How the checkpoint was cut from its source, for people."""
        if self.complete:
            filtered = bool(self.include or self.exclude)
            return "the whole commit" + (" (the filter left no file out)" if filtered else "")
        if self.include is None and self.exclude is None:
            return "unknown (recorded before filters were kept): not known to be the whole commit"
        globs = [f"--include {g!r}" for g in self.include or ()]
        globs += [f"--exclude {g!r}" for g in self.exclude or ()]
        return f"mirrored with {' '.join(globs) or 'a filter'}: not the whole commit"


class AttestationView(WireModel):
    id: int
    predicate_type: str
    subject_digest: str  # "sha256:<hex>"
    signer: str
    created_at: Timestamp
    bundle_sha256: str
    #: Its entry in the registry's transparency log (`modelctl log verify --entry N`,
    #: `GET /v1/log/proof/N`); None for uploaded attestations and older ones.
    log_index: int | None = None


class ScanView(WireModel):
    id: int
    scanner: str
    version: str
    ruleset_version: str
    verdict: str
    started_at: Timestamp
    finished_at: Timestamp
    attestation_id: int | None
    #: Files this scanner did not find clean (`flagged_files` in JSON).
    flagged: int = Field(
        validation_alias=AliasChoices("flagged", "flagged_files"),
        serialization_alias="flagged_files",
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def attested(self) -> bool:
        return self.attestation_id is not None


class OciRepresentationView(WireModel):
    """An OCI manifest carrying exactly a checkpoint's files (docs/formats/identity.md)."""

    registry: str  # HOST[:PORT]
    repository: str
    digest: str  # "sha256:<hex>" of the OCI manifest
    media_type: str
    origin: str  # pushed | mirrored
    tag: str | None = None  # the tag given when it was recorded (a tag can move; the digest binds)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ref(self) -> str:
        return f"oci://{self.registry}/{self.repository}@{self.digest}"


class CheckpointView(WireModel):
    name: str
    digest: str  # "sha256:<hex>", the manifest digest
    source: SourceView
    created_at: Timestamp
    files: tuple[FileView, ...]
    #: The model card's `base_model:` (this checkpoint is a fine-tune of it); None: none.
    base_model: str | None = None
    scans: tuple[ScanView, ...] = ()
    attestations: tuple[AttestationView, ...] = ()
    decisions: tuple[dict[str, Any], ...] = ()
    quarantine: dict[str, Any] | None = None  # set while the checkpoint is quarantined
    #: The OCI manifests it was pushed as or mirrored from (the same bytes, another form).
    oci: tuple[OciRepresentationView, ...] = ()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ref(self) -> str:
        return f"{self.name}@{self.digest}"


class ScanOutcome(WireModel):
    """A registry scan: the full report (as `scan --json` prints it) and what was recorded."""

    checkpoint: CheckpointView
    report: dict[str, Any]
    recorded: tuple[ScanView, ...]

    @model_serializer(mode="plain")
    def _as_json(self) -> dict[str, Any]:
        # The report is the scanner's own document (docs/formats/scan.md), extended in place.
        out = dict(self.report)
        out["name"] = self.checkpoint.name
        out["digest"] = self.checkpoint.digest
        out["recorded"] = [s.to_json() for s in self.recorded]
        return out


class OpenFinding(WireModel):
    """A file the newest scans call malicious or hold a critical finding on (what `attest`
    refuses to sign without `--allow-findings`, and warns about when it is given)."""

    path: str
    scanner: str
    verdict: str
    rule: str
    message: str

    def line(self) -> str:
        return f"{self.path}: {self.verdict} ({self.scanner}: {self.rule}: {self.message:.160})"


class BomResult(WireModel):
    """An ML-BOM as issued (`modelctl bom`): the document, and its attestation when signed."""

    format: str  # cyclonedx | spdx
    media_type: str
    document: str  # the JSON document, exactly as signed (when `attestation` is set)
    attestation: AttestationView | None = None


class BundleResult(WireModel):
    """An air-gap bundle written (`bundle export`) or read and registered (`bundle import`)."""

    path: str
    checkpoints: tuple[str, ...]  # NS/NAME@sha256:… of each checkpoint
    files: int
    bytes: int  # file bytes in the bundle
    attestations: int
    new_bytes: int | None = None  # import: bytes the store did not hold before


class AttestResult(WireModel):
    checkpoint: CheckpointView
    issued: tuple[AttestationView, ...]
    model_signature: bytes  # the bundle, as signed, for `attest --signature-out`
    public_key_pem: bytes
    #: Signed anyway (`--allow-findings`): the files with open critical/malicious findings.
    findings: tuple[OpenFinding, ...] = ()

    @model_serializer(mode="plain")
    def _as_json(self) -> dict[str, Any]:
        return {
            "name": self.checkpoint.name,
            "digest": self.checkpoint.digest,
            "issued": [a.to_json() for a in self.issued],
            "findings": [f.to_json() for f in self.findings],
        }


class MirrorStats(WireModel):
    files: int
    bytes_total: int
    bytes_transferred: int  # what crossed the wire (or was read from the folder) this time
    blobs_created: int
    blobs_reused: int
    seconds: float

    @field_serializer("seconds")
    def _milliseconds(self, seconds: float) -> float:
        return round(seconds, 3)


class ReferrerCheckView(WireModel):
    """A statement found attached to a mirrored OCI artifact, and whether it verified."""

    digest: str  # the referrer manifest's digest
    predicate_type: str  # as the referrer's annotation claims it
    verified: bool  # True: it verified with a trusted key and was stored as an attestation
    reason: str = ""  # why not, when it did not


class MirrorResult(WireModel):
    checkpoint: CheckpointView
    created: bool  # False: these exact bytes were already registered under this name
    stats: MirrorStats
    scan: ScanOutcome | None = None
    referrers: tuple[ReferrerCheckView, ...] = ()  # oci:// sources only

    @model_serializer(mode="plain")
    def _as_json(self) -> dict[str, Any]:
        # The checkpoint, flattened, with what this mirror did.
        out = self.checkpoint.to_json()
        out["created"] = self.created
        out["stats"] = self.stats.to_json()
        if self.scan is not None:
            out["verdict"] = self.scan.report["verdict"]
        if self.referrers:
            out["referrers"] = [r.to_json() for r in self.referrers]
        return out


class CheckpointSummary(WireModel):
    digest: str
    source: SourceView
    created_at: Timestamp
    file_count: int
    total_size: int
    #: environment -> the live status (the bound policy evaluated now, not a recorded
    #: decision): {"status", "allowed", "mode", "policy", "reasons", "expires_at"}.
    environments: Mapping[str, Mapping[str, Any]] = Field(default_factory=dict)


class ModelSummary(WireModel):
    name: str
    checkpoints: tuple[CheckpointSummary, ...] = ()
    #: Bytes in the blob store that this model's checkpoints reference, each blob counted once
    #: (a blob shared with another model counts for both). What `modelctl gc` could free if
    #: the model's checkpoints went away, at most.
    storage_bytes: int = 0


class GcBlob(WireModel):
    digest: str
    size: int


class GcReport(WireModel):
    """What one `modelctl gc` run found and did (docs/formats/cli-json.md)."""

    dry_run: bool
    grace_seconds: int
    stored: int  # blobs in the store
    referenced: int  # distinct blobs checkpoints reference
    young: int  # unreferenced, but published inside the grace (an upload in flight?)
    marked: tuple[GcBlob, ...]  # marked now; a later run deletes them after the grace
    waiting: int  # marked earlier; the grace is not over
    deleted: tuple[GcBlob, ...]  # swept (with --dry-run: would be)
    bytes_freed: int
    uploads_removed: tuple[str, ...]  # leftover uploads removed (or that would be)


class PolicyRef(WireModel):
    """The policy document a decision was made with."""

    name: str
    digest: str


class WorkloadReviewView(WireModel):
    """The webhook's answer about one Kubernetes object (`check-pod`, `/k8s/admission`):
    allowed or not, why, and the warnings `kubectl` would print."""

    kind: str
    namespace: str
    name: str
    environment: str
    allowed: bool
    #: 200 for an answer; 400 when the object cannot be read (check-pod exits 2).
    code: int
    message: str
    warnings: tuple[str, ...]


class DecisionView(WireModel):
    """An admission decision about one checkpoint in one environment."""

    name: str
    digest: str
    environment: str
    allowed: bool
    mode: str
    policy_name: str = Field(exclude=True)
    policy_digest: str = Field(exclude=True)
    checks: tuple[dict[str, Any], ...]
    evaluated_at: Timestamp
    expires_at: Timestamp | None
    reasons: tuple[str, ...]
    #: Decided with a policy document other than the registry's: not recorded, not a status.
    what_if: bool = False

    @model_validator(mode="before")
    @classmethod
    def _policy_from_json(cls, data: Any) -> Any:
        # JSON nests the policy: {"policy": {"name", "digest"}}.
        if isinstance(data, dict) and isinstance(data.get("policy"), dict):
            data = dict(data)
            policy = data.pop("policy")
            data.setdefault("policy_name", policy.get("name"))
            data.setdefault("policy_digest", policy.get("digest"))
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def policy(self) -> PolicyRef:
        return PolicyRef(name=self.policy_name, digest=self.policy_digest)

    @property
    def warnings(self) -> tuple[str, ...]:
        """`check-id: message` of every check that failed in warn mode (allowed anyway)."""
        return tuple(
            f"{c.get('id')}: {c.get('message')}" for c in self.checks if c.get("status") == "warn"
        )


# -- pull (added for `modelctl pull`) -----------------------------------------------------------


class PullResult(WireModel):
    """A checkpoint pulled into a folder, every byte checked against the signed manifest."""

    name: str
    digest: str
    environment: str
    layout: str  # "plain" or "hf-cache"
    destination: str  # what was renamed into place
    model_path: str  # the folder holding the model files (a snapshot folder for hf-cache)
    #: model.sig: the signature bundle, as stored (`signature` in JSON).
    signature_path: str = Field(
        validation_alias=AliasChoices("signature_path", "signature"),
        serialization_alias="signature",
    )
    #: decision.json: the admission decision (`decision_file` in JSON).
    decision_path: str = Field(
        validation_alias=AliasChoices("decision_path", "decision_file"),
        serialization_alias="decision_file",
    )
    files: int
    bytes: int
    seconds: float
    replaced: bool  # --force replaced an existing destination
    decision: DecisionView

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ref(self) -> str:
        return f"{self.name}@{self.digest}"

    @field_serializer("seconds")
    def _milliseconds(self, seconds: float) -> float:
        return round(seconds, 3)


class ExceptionView(WireModel):
    id: int
    ref: str
    waive: tuple[str, ...]
    environments: tuple[str, ...] | None
    reason: str
    approver: str
    expires_at: Timestamp
    created_at: Timestamp
    revoked_at: Timestamp | None
    requested_by: str | None = None  # the principal that asked (None: granted before 0011)

    _empty_scope_is_none = field_validator("environments")(_none_if_empty)


class FindingView(WireModel):
    """A finding of a checkpoint's newest scans, with its stable id and triage state."""

    id: str  # fnd-<24 hex>: (scanner, rule, file sha256, location)
    scanner: str
    path: str
    sha256: str  # the file's (the manifest digest for `.`)
    file_verdict: str
    rule: str
    severity: str
    message: str
    blocking: bool  # makes a malicious verdict: denies until triaged
    triage: str | None  # "false positive until …", "pending request N", or None
    occurrences: int = 1  # findings at the same location share the id (the first is shown)
    #: new | false-positive-requested | false-positive | confirmed (ADR 0025)
    state: str = "new"
    confirmed_by: str | None = None
    assignee: str | None = None
    pending_request: int | None = None  # a false-positive request awaiting a second person


class FindingStateView(WireModel):
    """A finding's triage state: confirmed, assigned, and its false-positive triage."""

    finding_id: str
    scanner: str
    rule: str
    path: str
    file_sha256: str
    state: str  # new | false-positive-requested | false-positive | confirmed
    confirmed_by: str | None
    confirmed_at: Timestamp | None
    assignee: str | None
    assigned_by: str | None
    assigned_at: Timestamp | None


class TriageView(WireModel):
    """A finding-level decision: requested by one principal, approved by another."""

    id: int
    finding_id: str
    decision: str  # false-positive
    status: str  # pending | approved | revoked
    reason: str
    scanner: str
    rule: str
    path: str
    file_sha256: str
    requested_by: str
    created_at: Timestamp
    expires_at: Timestamp
    approved_by: str | None
    approved_at: Timestamp | None
    revoked_by: str | None
    revoked_at: Timestamp | None
    active: bool  # approved, not revoked, not expired


# -- server: API tokens, audit log, jobs (added for `modelctl serve`) ---------------------------


class TokenView(WireModel):
    id: int
    name: str
    role: str
    created_at: Timestamp
    created_by: str
    expires_at: Timestamp | None
    revoked_at: Timestamp | None
    environments: tuple[str, ...] | None = None  # the scope; None: every environment


class TokenCreated(WireModel):
    token: TokenView
    secret: str  # shown once; never stored, never logged

    @model_serializer(mode="plain")
    def _as_json(self) -> dict[str, Any]:
        # The token's view, flattened, with the secret under "token".
        return {**self.token.to_json(), "token": self.secret}


class AuditEventView(WireModel):
    id: int
    at: Timestamp
    actor: str
    action: str
    subject: str
    details: dict[str, Any]


class ExceptionRequestView(WireModel):
    """A requested exception: it waives nothing until another principal approves it."""

    id: int
    ref: str
    waive: tuple[str, ...]
    environments: tuple[str, ...] | None
    reason: str
    expires_at: Timestamp
    status: str  # pending | approved | rejected
    requested_by: str
    requested_at: Timestamp
    decided_by: str | None
    exception_id: int | None

    _empty_scope_is_none = field_validator("environments")(_none_if_empty)


class QuarantineView(WireModel):
    """A quarantine of bytes: a manifest digest (`kind` checkpoint) or a file's sha256 (`file`),
    with every checkpoint it covers now, under every name."""

    id: int
    kind: str  # checkpoint | file
    digest: str  # sha256:<hex>
    reason: str
    by: str
    since: Timestamp
    covers: tuple[str, ...]  # NS/NAME@sha256:<manifest digest>, every name
    paths: tuple[str, ...] = ()  # for a file quarantine: the paths that file has
    released_at: Timestamp | None = None
    released_by: str | None = None
    release_reason: str | None = None
    #: After a release: other quarantines that still hold some of what this one covered.
    still_quarantined_by: tuple[str, ...] = ()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def active(self) -> bool:
        return self.released_at is None


# -- response bodies of /v1 that wrap the views (docs/api.md) -----------------------------------


class Health(WireModel):
    status: str


class WhoAmI(WireModel):
    name: str
    role: str
    actor: str


class ModelList(WireModel):
    models: tuple[ModelSummary, ...]


class TokenList(WireModel):
    tokens: tuple[TokenView, ...]


class NewToken(TokenView):
    """A token just created: its view and, this once, its secret."""

    token: str


class AuditLog(WireModel):
    events: tuple[AuditEventView, ...]


class AttestationList(WireModel):
    attestations: tuple[AttestationView, ...]


class Attested(WireModel):
    """What `POST .../attest` returns: the issued attestations with the signed bundle."""

    name: str
    digest: str
    issued: tuple[AttestationView, ...]
    findings: tuple[OpenFinding, ...] = ()
    checkpoint: CheckpointView
    model_signature: str  # base64 of the signature bundle
    public_key_pem: str


class ScanList(WireModel):
    scans: tuple[ScanView, ...]


class QuarantineList(WireModel):
    quarantines: tuple[QuarantineView, ...]


class ExceptionList(WireModel):
    exceptions: tuple[ExceptionView, ...]


class ExceptionRequestList(WireModel):
    requests: tuple[ExceptionRequestView, ...]


class FindingList(WireModel):
    findings: tuple[FindingView, ...]


class TriageList(WireModel):
    triage: tuple[TriageView, ...]


# -- re-scans when the rules change (registry/service/rescan.py) ---------------------------------


class StaleScan(WireModel):
    """One scanner whose newest scan of a checkpoint is older than the scanner that runs now."""

    scanner: str
    recorded_version: str
    recorded_ruleset: str
    current_version: str
    current_ruleset: str


class StaleCheckpoint(WireModel):
    """A checkpoint to re-scan, the scanners that are stale on it, and the job (once queued)."""

    ref: str
    stale: tuple[StaleScan, ...]
    job_id: int | None = None
    #: True when a queued or running scan job already covers it (nothing new was queued).
    already_queued: bool = False


class RescanResult(WireModel):
    """What a sweep found and did: `dry_run` finds without queuing."""

    dry_run: bool
    checkpoints: tuple[StaleCheckpoint, ...]

    @property
    def queued(self) -> int:
        return sum(1 for c in self.checkpoints if c.job_id is not None)


# -- upstream sync (registry/service/sync.py) ------------------------------------------------


class SyncItem(WireModel):
    """One watched hub source: its upstream head and what the sync did about it."""

    source: str
    name: str
    #: `up-to-date`, `queued` (job_id set), `already-queued`, `new` (dry run) or `error`.
    state: str
    upstream_commit: str | None = None
    job_id: int | None = None
    error: str | None = None


class SyncResult(WireModel):
    dry_run: bool
    sources: tuple[SyncItem, ...]

    @property
    def queued(self) -> int:
        return sum(1 for s in self.sources if s.job_id is not None)


class NotificationDeliveryView(WireModel):
    """One entry of the notification delivery log."""

    id: int
    event_key: str
    event: str
    target: str
    channel: str  # webhook | email
    subject: str
    state: str  # pending | delivered | failed
    attempts: int
    next_attempt_at: Timestamp | None  # None once delivered or failed
    last_error: str | None
    created_at: Timestamp
    delivered_at: Timestamp | None


class NotificationDeliveries(WireModel):
    deliveries: tuple[NotificationDeliveryView, ...]


class LogProof(WireModel):
    """`GET /v1/log/proof/{index}`: an entry of the transparency log, its RFC 6962 inclusion
    proof (base64 hashes) and the signed checkpoint (a C2SP signed note) it leads to."""

    index: int
    tree_size: int
    entry: str
    leaf_hash: str
    proof: tuple[str, ...]
    checkpoint: str
    key: str  # the log's verifier key (signed-note vkey)


class OciReferrerView(WireModel):
    """One signed statement attached to a pushed artifact as an OCI 1.1 referrer."""

    predicate_type: str
    digest: str  # the referrer manifest's digest


class PushResult(WireModel):
    """A checkpoint published as a ModelPack artifact, with its statements as referrers."""

    name: str
    digest: str  # the checkpoint's manifest digest (the OMS subject)
    target: str  # oci://HOST/REPO:TAG as given
    oci_digest: str  # the OCI manifest's digest: TARGET@OCI_DIGEST pins what was pushed
    environment: str | None  # the environment that admitted it (--env), if any
    layers: int
    layers_sent: int  # layers the registry lacked; the others were already there
    bytes_sent: int
    referrers: tuple[OciReferrerView, ...]
    seconds: float

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ref(self) -> str:
        return f"{self.name}@{self.digest}"

    @field_serializer("seconds")
    def _milliseconds(self, seconds: float) -> float:
        return round(seconds, 3)


# -- bulk actions (registry/service/bulk.py, ADR 0026) -----------------------------------------


class BulkItemView(WireModel):
    """One checkpoint a bulk filter selects: its state now and what the action changes."""

    ref: str  # NS/NAME@sha256:<manifest digest>: what a confirmation binds
    statuses: dict[str, str]  # environment -> live status
    verdict: str | None  # worst newest-scan verdict; None: never scanned
    quarantined: bool
    change: str
    acts: bool  # False: the action changes nothing here


class BulkOutcomeView(WireModel):
    ref: str
    result: str  # quarantined | queued | decided | unchanged
    detail: str = ""
    job_id: int | None = None


class BulkResultView(WireModel):
    """A bulk action: the preview (`dry_run`), or what it did to the bound refs."""

    action: str  # quarantine | rescan | decide
    dry_run: bool
    filter: dict[str, str]
    items: tuple[BulkItemView, ...] = ()  # the preview (dry run)
    outcomes: tuple[BulkOutcomeView, ...] = ()  # what was done (confirmed)
    gone: tuple[str, ...] = ()  # bound refs the filter no longer selects: left alone
    unseen: tuple[str, ...] = ()  # selected now, not in the bound refs: left alone
