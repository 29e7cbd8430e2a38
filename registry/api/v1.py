"""`/v1`: the REST API. Each route checks the caller's role, calls the registry, returns views.

The shapes are the `registry.views` models, each route's `response_model`: the same JSON as
`modelctl --json` (docs/api.md), and what the remote client parses back. Over 600 lines: one
route list per API version, read top to bottom; a split by area (as `registry/web/`) is open.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from attestations.utc import aware_or_none
from registry.api.blobs import blob_response, gate_read
from registry.api.deps import check_scope, get_registry, registry_for, require
from registry.api.problems import PROBLEM_JSON, PROBLEM_RESPONSES, ApiProblem
from registry.db.ids import MAX_ROW_ID
from registry.embedded import EmbeddedRegistry
from registry.errors import InputError
from registry.refs import Ref
from registry.requests import AuditQuery
from registry.scanners.backdoor.settings import DEFAULT_MAX_PARAMS
from registry.service import bulk as bulk_service
from registry.service import checkpoints, gate
from registry.service import scan as scan_service
from registry.service.jobs import JobKind, JobView, MirrorJob, ScanJob
from registry.service.tokens import Principal
from registry.views import (
    AttestationList,
    AttestationView,
    Attested,
    AuditLog,
    BomResult,
    BulkResultView,
    CheckpointView,
    DecisionView,
    ExceptionList,
    ExceptionRequestList,
    ExceptionRequestView,
    ExceptionView,
    FindingList,
    FindingStateView,
    Health,
    ModelList,
    NewToken,
    NotificationDeliveries,
    QuarantineList,
    QuarantineView,
    RescanResult,
    ScanList,
    SyncResult,
    TokenList,
    TokenView,
    TriageList,
    TriageView,
    WhoAmI,
)
from registry.worker import check_mirror_source

router = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES)

Reader = Annotated[EmbeddedRegistry, Depends(registry_for("read"))]
REF_QUERY = Query(
    min_length=3,
    max_length=500,
    description="NS/NAME, NS/NAME@sha256:DIGEST or NS/NAME@REV",
)


@router.get("/health", tags=["server"], response_model=Health)
def health(registry: Annotated[EmbeddedRegistry, Depends(get_registry)]) -> dict[str, Any]:
    """Liveness and readiness: answers once the database is reachable."""
    registry.models_count()
    return {"status": "ok"}


@router.get("/whoami", tags=["server"], response_model=WhoAmI)
def whoami(principal: Annotated[Principal, Depends(require("read"))]) -> dict[str, Any]:
    """The caller as the server sees them."""
    return {"name": principal.name, "role": principal.role.label, "actor": principal.actor}


@router.get("/models", tags=["models"], response_model=ModelList)
def list_models(registry: Reader) -> dict[str, Any]:
    """Every model and its checkpoints (as `modelctl models --json`)."""
    return {"models": [m.to_json() for m in registry.models()]}


@router.get("/resolve", tags=["checkpoints"], response_model=CheckpointView)
def resolve(registry: Reader, ref: Annotated[str, REF_QUERY]) -> dict[str, Any]:
    """The checkpoint a reference names (as `modelctl inspect --json`)."""
    return registry.inspect(ref).to_json()


# -- tokens (admin) ------------------------------------------------------------------------------


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="Unique; the audit log's actor.")
    role: Literal["reader", "publisher", "security", "admin"] = "reader"
    expires_at: datetime | None = Field(default=None, description="RFC 3339; none: no expiry.")
    environments: list[Annotated[str, Field(max_length=63)]] | None = Field(
        default=None,
        max_length=50,
        description="The environments the token may name (/hf/{env}, the webhook, byte reads); "
        "none: every environment.",
    )


Admin = Annotated[EmbeddedRegistry, Depends(registry_for("token.manage"))]


@router.post("/tokens", tags=["tokens"], status_code=201, response_model=NewToken)
def create_token(registry: Admin, body: TokenRequest) -> dict[str, Any]:
    """Create a token; the response is the only time its secret (`token`) is shown."""
    return registry.token_create(
        body.name,
        body.role,
        expires_at=aware_or_none(body.expires_at),
        environments=body.environments,
    ).to_json()


@router.get("/tokens", tags=["tokens"], response_model=TokenList)
def list_tokens(registry: Admin) -> dict[str, Any]:
    """Every token, never a secret."""
    return {"tokens": [t.to_json() for t in registry.token_list()]}


@router.post("/tokens/{token}/revoke", tags=["tokens"], response_model=TokenView)
def revoke_token(
    registry: Admin, token: Annotated[str, Path(min_length=1, max_length=100)]
) -> dict[str, Any]:
    """Revoke a token by id or name: every later request with it is a 401."""
    return registry.token_revoke(token).to_json()


# -- audit log (security) ------------------------------------------------------------------------


@router.get("/audit", tags=["audit"], response_model=AuditLog)
def audit_log(
    registry: Annotated[EmbeddedRegistry, Depends(registry_for("audit.read"))],
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    subject: Annotated[str | None, Query(max_length=500)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The append-only audit log, newest first, filtered (all filters AND)."""
    query = AuditQuery(
        actor=actor,
        action=action,
        subject=subject,
        since=aware_or_none(since),
        until=aware_or_none(until),
        limit=limit,
    )
    return {"events": [e.to_json() for e in registry.audit_log(query)]}


@router.get("/notifications/deliveries", tags=["audit"], response_model=NotificationDeliveries)
def notification_deliveries(
    registry: Annotated[EmbeddedRegistry, Depends(registry_for("audit.read"))],
    state: Annotated[str | None, Query(pattern="^(pending|delivered|failed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The outbound notification delivery log (webhooks, email), newest first."""
    found = registry.notification_deliveries(state=state, limit=limit)
    return {"deliveries": [d.to_json() for d in found]}


# -- checkpoints ---------------------------------------------------------------------------------

DIGEST = r"^sha256:[0-9a-f]{64}$"
Namespace = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")]
Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")]
DigestParam = Annotated[str, Path(pattern=DIGEST, description="sha256:<manifest digest>")]
CHECKPOINT = "/checkpoints/{namespace}/{name}/{digest}"
EnvQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=63,
        description="The environment whose policy must admit the bytes (pull, /hf decide alike)",
    ),
]
ReasonQuery = Annotated[
    str | None,
    Query(max_length=200, description="Why, for a forensic read without `env` (audited)"),
]


def _ref(namespace: str, name: str, digest: str) -> str:
    return f"{namespace}/{name}@{digest}"


@router.get(CHECKPOINT, tags=["checkpoints"], response_model=CheckpointView)
def get_checkpoint(
    registry: Reader, namespace: Namespace, name: Name, digest: DigestParam
) -> dict[str, Any]:
    """One checkpoint: files, scans, attestations, decisions, quarantine."""
    return registry.inspect(_ref(namespace, name, digest)).to_json()


@router.head(
    CHECKPOINT + "/files/{path:path}",
    tags=["files"],
    operation_id="head_file",
    response_class=Response,
    responses={200: {"description": "The file's headers"}},
)
@router.get(
    CHECKPOINT + "/files/{path:path}",
    tags=["files"],
    operation_id="download_file",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The file's bytes"},
        206: {"content": {"application/octet-stream": {}}, "description": "A byte range"},
        304: {"description": "Not modified (If-None-Match)"},
        416: PROBLEM_RESPONSES[400] | {"description": "Range not satisfiable"},
    },
)
def download_file(
    request: Request,
    registry: Reader,
    principal: Annotated[Principal, Depends(require("read"))],
    namespace: Namespace,
    name: Name,
    digest: DigestParam,
    path: str,
    env: EnvQuery = None,
    reason: ReasonQuery = None,
) -> Response:
    """A file of a checkpoint, re-hashed as it streams. `ETag` is its sha256; one `Range`.

    Needs `env`: an environment whose policy admits the checkpoint now (warn-mode failures in
    `X-Modelctl-Warning`); without one, an unscoped security token reads it, audited."""
    ref = _ref(namespace, name, digest)
    info = registry.file_info(ref, path)
    headers = gate_read(
        request,
        registry,
        principal,
        environment=env,
        reason=reason,
        subject=f"{ref}/{info.path}",
        holders=lambda session: [checkpoints.resolve_ref(session, Ref.parse(ref))],
    )
    return blob_response(
        request, registry, info.sha256, info.size, filename=info.path, extra_headers=headers
    )


@router.head(
    "/blobs/{digest}",
    tags=["files"],
    operation_id="head_blob",
    response_class=Response,
    responses={200: {"description": "The blob's headers"}},
)
@router.get(
    "/blobs/{digest}",
    tags=["files"],
    operation_id="download_blob",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The blob's bytes"},
        206: {"content": {"application/octet-stream": {}}, "description": "A byte range"},
    },
)
def download_blob(
    request: Request,
    registry: Reader,
    principal: Annotated[Principal, Depends(require("read"))],
    digest: DigestParam,
    env: EnvQuery = None,
    reason: ReasonQuery = None,
) -> Response:
    """A blob by its sha256, re-hashed as it streams (what remote `pull` reads).

    Needs `env`: readable when at least one checkpoint holding the blob is admitted there now;
    without one, an unscoped security token reads it, audited."""
    sha256 = digest.removeprefix("sha256:")
    size = registry.blob_size(sha256)
    headers = gate_read(
        request,
        registry,
        principal,
        environment=env,
        reason=reason,
        subject=digest,
        holders=lambda session: gate.checkpoints_holding_blob(session, sha256),
    )
    return blob_response(request, registry, sha256, size, extra_headers=headers)


# -- attestations --------------------------------------------------------------------------------


@router.get(CHECKPOINT + "/attestations", tags=["attestations"], response_model=AttestationList)
def list_attestations(
    registry: Reader, namespace: Namespace, name: Name, digest: DigestParam
) -> dict[str, Any]:
    return {
        "attestations": [
            a.to_json() for a in registry.attestation_list(_ref(namespace, name, digest))
        ]
    }


@router.get(
    CHECKPOINT + "/attestations/{attestation_id}",
    tags=["attestations"],
    response_class=Response,
    responses={200: {"content": {"application/json": {}}, "description": "The bundle, verbatim"}},
)
def get_attestation(
    registry: Reader,
    namespace: Namespace,
    name: Name,
    digest: DigestParam,
    attestation_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
) -> Response:
    """The bundle exactly as it was signed and stored (verify it yourself)."""
    data = registry.attestation_bundle(_ref(namespace, name, digest), attestation_id)
    return Response(data, media_type="application/json")


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise ApiProblem(413, "payload_too_large", f"the body is over the {limit}-byte limit")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiProblem(413, "payload_too_large", f"the body is over the {limit}-byte limit")
    return bytes(body)


@router.post(
    CHECKPOINT + "/attestations",
    tags=["attestations"],
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
            "description": "A Sigstore bundle (DSSE) signed by a trusted key",
        }
    },
    responses={413: PROBLEM_RESPONSES[400] | {"description": "Payload too large"}},
    response_model=AttestationView,
)
async def upload_attestation(
    request: Request,
    registry: Annotated[EmbeddedRegistry, Depends(registry_for("attestation.upload"))],
    namespace: Namespace,
    name: Name,
    digest: DigestParam,
) -> dict[str, Any]:
    """Add an attestation: verified (signature by a trusted key, subject = this checkpoint)
    before it is stored verbatim; refused with a reason otherwise."""
    data = await _read_capped(request, request.app.state.settings.max_upload_bytes)
    view = await anyio.to_thread.run_sync(
        registry.attestation_upload, _ref(namespace, name, digest), data
    )
    return view.to_json()


@router.post(
    CHECKPOINT + "/attest", tags=["attestations"], status_code=201, response_model=Attested
)
def attest(
    registry: Annotated[EmbeddedRegistry, Depends(registry_for("attest"))],
    namespace: Namespace,
    name: Name,
    digest: DigestParam,
    allow_findings: Annotated[
        bool, Query(description="Sign even with open critical or malicious findings.")
    ] = False,
) -> dict[str, Any]:
    """(Re)issue the registry's signed model signature and provenance for the checkpoint.
    Refused (403) while the newest scans hold critical or malicious findings, unless
    `allow_findings`; the response then lists them under `findings`."""
    result = registry.attest(_ref(namespace, name, digest), allow_findings=allow_findings)
    return {
        **result.to_json(),
        "checkpoint": result.checkpoint.to_json(),
        "model_signature": base64.b64encode(result.model_signature).decode("ascii"),
        "public_key_pem": result.public_key_pem.decode("ascii"),
    }


BomFormatParam = Annotated[
    Literal["cyclonedx", "spdx"], Query(description="cyclonedx (1.6 ML-BOM) or spdx (3.0.1, AI)")
]


@router.get(
    CHECKPOINT + "/bom",
    tags=["attestations"],
    response_class=Response,
    responses={
        200: {
            "content": {"application/vnd.cyclonedx+json": {}, "application/spdx+json": {}},
            "description": "The ML-BOM in the format asked for (its own schema, not ours)",
        }
    },
)
def get_bom(
    registry: Reader,
    namespace: Namespace,
    name: Name,
    digest: DigestParam,
    format: BomFormatParam = "cyclonedx",
) -> Response:
    """A fresh ML-BOM of the checkpoint, every field tagged verified, declared or absent.
    Read-only: nothing is signed or stored (POST issues a signed one)."""
    result = registry.bom(_ref(namespace, name, digest), format, sign=False)
    return Response(result.document.encode(), media_type=result.media_type)


@router.post(CHECKPOINT + "/bom", tags=["attestations"], status_code=201, response_model=BomResult)
def issue_bom(
    registry: Annotated[EmbeddedRegistry, Depends(registry_for("attest"))],
    namespace: Namespace,
    name: Name,
    digest: DigestParam,
    format: BomFormatParam = "cyclonedx",
) -> dict[str, Any]:
    """Issue an ML-BOM and sign it as an attestation of the checkpoint (registry key)."""
    return registry.bom(_ref(namespace, name, digest), format).to_json()


@router.get(
    "/public-key",
    tags=["server"],
    response_class=Response,
    responses={200: {"content": {"application/x-pem-file": {}}, "description": "PEM"}},
)
def public_key(registry: Annotated[EmbeddedRegistry, Depends(get_registry)]) -> Response:
    """The registry's public key: pin it (MODELCTL_REGISTRY_KEY) to verify what you pull.
    Public by nature: no token needed, even when reads are token-gated."""
    pem = registry.public_key_pem()
    if pem is None:
        raise ApiProblem(404, "no_public_key", "the registry has no signing key yet")
    return Response(pem, media_type="application/x-pem-file")


# -- scans and mirrors (jobs) --------------------------------------------------------------------


@router.get(CHECKPOINT + "/scans", tags=["scans"], response_model=ScanList)
def list_scans(
    registry: Reader, namespace: Namespace, name: Name, digest: DigestParam
) -> dict[str, Any]:
    """The recorded scanner runs of a checkpoint (results)."""
    view = registry.inspect(_ref(namespace, name, digest))
    return {"scans": [s.to_json() for s in view.scans]}


class BackdoorOptions(BaseModel):
    """What `modelctl scan --scanner backdoor` lets a caller set (the rest is the server's)."""

    model_config = ConfigDict(extra="forbid")

    max_params: int = Field(default=DEFAULT_MAX_PARAMS, ge=1, le=10**12)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class ScanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: str = Field(min_length=3, max_length=500)
    scanners: list[Annotated[str, Field(max_length=100)]] = Field(default=[], max_length=50)
    backdoor: BackdoorOptions | None = None


class MirrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=1000)
    name: str | None = Field(default=None, max_length=200)
    revision: str | None = Field(default=None, max_length=255)
    include: list[Annotated[str, Field(max_length=500)]] = Field(default=[], max_length=100)
    exclude: list[Annotated[str, Field(max_length=500)]] = Field(default=[], max_length=100)
    scan: bool = True


@router.post("/scans", tags=["scans"], status_code=202, response_model=JobView)
def start_scan(
    registry: Annotated[EmbeddedRegistry, Depends(registry_for("scan"))], body: ScanRequest
) -> dict[str, Any]:
    """Queue a scan of a stored checkpoint; follow it at /v1/jobs/{id}."""
    registry.inspect(body.ref)  # an unknown checkpoint is a 404 now, not a failed job later
    scan_service.select_scanners(tuple(body.scanners))  # so is an unknown scanner
    params: dict[str, Any] = {"ref": body.ref, "scanners": body.scanners}
    if body.backdoor is not None:
        params["backdoor"] = body.backdoor.model_dump()
    return registry.job_enqueue(JobKind.SCAN, ScanJob.model_validate(params)).to_json()


class RescanBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scanners: list[Annotated[str, Field(max_length=100)]] = Field(default=[], max_length=50)
    dry_run: bool = False


@router.post("/rescans", tags=["scans"], response_model=RescanResult)
def start_rescan(
    registry: Annotated[EmbeddedRegistry, Depends(registry_for("scan"))], body: RescanBody
) -> dict[str, Any]:
    """Queue a scan of every checkpoint whose newest scan by these scanners (the default set
    when empty) predates the scanners this registry runs; `dry_run` lists them only."""
    return registry.rescan(tuple(body.scanners), dry_run=body.dry_run).to_json()


class SyncBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[Annotated[str, Field(max_length=300)]] = Field(default=[], max_length=100)
    dry_run: bool = False


@router.post("/syncs", tags=["mirrors"], response_model=SyncResult)
def start_sync(
    registry: Annotated[EmbeddedRegistry, Depends(registry_for("mirror"))], body: SyncBody
) -> dict[str, Any]:
    """Mirror the new upstream commits of watched hub models (these sources, else those
    MODELCTL_PROXY_SOURCES covers): one mirror-and-scan job per new commit."""
    return registry.sync(tuple(body.sources), dry_run=body.dry_run).to_json()


@router.post("/mirrors", tags=["mirrors"], status_code=202, response_model=JobView)
def start_mirror(
    registry: Annotated[EmbeddedRegistry, Depends(registry_for("mirror"))], body: MirrorBody
) -> dict[str, Any]:
    """Queue a mirror (hf://, ms://, or a folder inside MODELCTL_MIRROR_ROOTS)."""
    check_mirror_source(body.source, registry.settings.mirror_roots)
    return registry.job_enqueue(
        JobKind.MIRROR, MirrorJob.model_validate(body.model_dump())
    ).to_json()


@router.get("/jobs/{job_id}", tags=["jobs"], response_model=JobView)
def get_job(registry: Reader, job_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)]) -> dict[str, Any]:
    """A job's state, progress and, once done, its result or error."""
    return registry.job(job_id).to_json()


# -- quarantine ----------------------------------------------------------------------------------


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


@router.post(CHECKPOINT + "/quarantine", tags=["quarantine"], response_model=QuarantineView)
def quarantine(
    registry: Annotated[EmbeddedRegistry, Depends(registry_for("quarantine"))],
    namespace: Namespace,
    name: Name,
    digest: DigestParam,
    body: ReasonBody,
) -> dict[str, Any]:
    """Withdraw this checkpoint's bytes (its manifest digest) from every environment, under
    every name, until released. The answer lists every checkpoint it holds."""
    return registry.quarantine(_ref(namespace, name, digest), body.reason).to_json()


@router.post(CHECKPOINT + "/release", tags=["quarantine"], response_model=QuarantineView)
def release(
    registry: Annotated[EmbeddedRegistry, Depends(registry_for("release"))],
    namespace: Namespace,
    name: Name,
    digest: DigestParam,
    body: ReasonBody,
) -> dict[str, Any]:
    """End the quarantine of this checkpoint's manifest digest (policies decide again).

    `still_quarantined_by` names any other quarantine (e.g. of one of its files) that holds it.
    """
    return registry.release(_ref(namespace, name, digest), body.reason).to_json()


class DigestQuarantineBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$", description="sha256:<64 hex>")
    reason: str = Field(min_length=1, max_length=2000)


@router.get("/quarantines", tags=["quarantine"], response_model=QuarantineList)
def list_quarantines(registry: Reader) -> dict[str, Any]:
    """Every active quarantine and the checkpoints (every name) it holds now."""
    return {"quarantines": [q.to_json() for q in registry.quarantine_list()]}


@router.post("/quarantines", tags=["quarantine"], response_model=QuarantineView)
def quarantine_digest(
    registry: Annotated[EmbeddedRegistry, Depends(registry_for("quarantine"))],
    body: DigestQuarantineBody,
) -> dict[str, Any]:
    """Quarantine a bare digest: a manifest digest, or a file's sha256 (every checkpoint holding
    that file, now or later; one nobody holds yet is quarantined ahead of time)."""
    return registry.quarantine(body.digest, body.reason).to_json()


@router.post("/quarantines/release", tags=["quarantine"], response_model=QuarantineView)
def release_digest(
    registry: Annotated[EmbeddedRegistry, Depends(registry_for("release"))],
    body: DigestQuarantineBody,
) -> dict[str, Any]:
    """End the quarantine of a bare digest (exactly that one)."""
    return registry.release(body.digest, body.reason).to_json()


# -- bulk actions (registry/service/bulk.py, ADR 0026) ---------------------------------------


class BulkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: dict[str, Annotated[str, Field(max_length=200)]] = Field(
        max_length=20,
        description="the list's filters: q, source, org, env, decision, verdict, severity, "
        "license, format, rule (a finding's rule id)",
    )
    dry_run: bool = Field(default=True, description="preview only (the default)")
    refs: list[Annotated[str, Field(max_length=500)]] | None = Field(
        default=None,
        max_length=bulk_service.MAX_BULK,
        description="the refs a preview listed: only these are acted on (when still selected)",
    )
    reason: str = Field(default="", max_length=2000, description="for a quarantine")


@router.post("/bulk/{action}", tags=["bulk"], response_model=BulkResultView)
def bulk_action(
    registry: Annotated[EmbeddedRegistry, Depends(get_registry)],
    principal: Annotated[Principal, Depends(require("read"))],
    action: Literal["quarantine", "rescan", "decide"],
    body: BulkBody,
) -> dict[str, Any]:
    """Preview (`dry_run`, a read) or do a quarantine, re-scan or re-decision of every
    checkpoint the filter selects, one audit entry each. With `refs` (a preview's refs) only
    those still selected are acted on; a checkpoint selected now but not named is left alone
    (`unseen`). Acting needs the role the single action needs."""
    kind = bulk_service.parse_action(action)
    unknown = sorted(set(body.filter) - set(bulk_service.FILTER_KEYS))
    if unknown:
        raise InputError(f"unknown filter {unknown[0]!r:.40}")
    flt = bulk_service.BulkFilter.from_mapping(body.filter)
    bound = registry.as_actor(principal.actor)
    if body.dry_run:
        return bulk_service.preview_view(bound.bulk_preview(kind, flt)).to_json()
    needed = bulk_service.PERMISSION[kind]
    if not principal.may(needed):
        raise ApiProblem(
            403,
            "role_insufficient",
            f"token {principal.name!r} has role {principal.role.label}; a bulk {kind} needs "
            f"{needed}",
        )
    refs = body.refs
    if refs is None:
        refs = [i.ref for i in bound.bulk_preview(kind, flt).items]
    result = bound.bulk_apply(kind, flt, refs, reason=body.reason)
    return bulk_service.result_view(result, flt).to_json()


# -- exceptions: requested by one principal, approved by another -------------------------------


class ExceptionRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: str = Field(min_length=3, max_length=500)
    waive: list[Annotated[str, Field(max_length=200)]] = Field(min_length=1, max_length=50)
    reason: str = Field(min_length=1, max_length=2000)
    expires_at: datetime
    environments: list[Annotated[str, Field(max_length=100)]] | None = Field(
        default=None, max_length=50
    )


@router.get("/exceptions", tags=["exceptions"], response_model=ExceptionList)
def list_exceptions(
    registry: Reader, ref: Annotated[str | None, Query(min_length=3, max_length=500)] = None
) -> dict[str, Any]:
    return {"exceptions": [e.to_json() for e in registry.exception_list(ref)]}


_GONE: dict[int | str, dict[str, Any]] = {
    410: {
        "description": "Gone: request, then approve by another principal",
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
}


@router.post("/exceptions", tags=["exceptions"], status_code=201, responses=_GONE)
def add_exception(
    _principal: Annotated[Principal, Depends(require("exception.add"))],
) -> dict[str, Any]:
    """Gone: an exception is requested (`POST /v1/exception-requests`) by one principal and
    approved (`POST /v1/exception-requests/{id}/approve`) by another."""
    raise ApiProblem(
        410,
        "gone",
        "exceptions are no longer granted in one step: POST /v1/exception-requests, then "
        "another principal POSTs /v1/exception-requests/{id}/approve",
    )


RequestId = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/exception-requests", tags=["exceptions"], response_model=ExceptionRequestList)
def list_exception_requests(
    registry: Reader,
    status: Annotated[Literal["pending", "approved", "rejected"] | None, Query()] = None,
) -> dict[str, Any]:
    return {"requests": [r.to_json() for r in registry.exception_requests(status)]}


@router.post(
    "/exception-requests", tags=["exceptions"], status_code=201, response_model=ExceptionRequestView
)
def request_exception(
    registry: Annotated[EmbeddedRegistry, Depends(registry_for("exception.request"))],
    body: ExceptionRequestBody,
) -> dict[str, Any]:
    """Ask for named checks to be waived for one checkpoint until an expiry within the policy's
    `waivers.maxExpiry`. Waives nothing until another principal approves it."""
    if body.expires_at.tzinfo is None:
        raise ApiProblem(422, "invalid_request", "expires_at needs a time zone")
    return registry.exception_request(
        body.ref,
        waive=body.waive,
        reason=body.reason,
        expires_at=body.expires_at,
        environments=body.environments,
    ).to_json()


@router.post(
    "/exception-requests/{request_id}/approve", tags=["exceptions"], response_model=ExceptionView
)
def approve_exception(
    registry: Annotated[EmbeddedRegistry, Depends(registry_for("exception.add"))],
    request_id: RequestId,
) -> dict[str, Any]:
    """Grant a pending request: 403 when the caller is the principal that asked for it."""
    return registry.exception_approve(request_id).to_json()


@router.post(
    "/exception-requests/{request_id}/reject",
    tags=["exceptions"],
    response_model=ExceptionRequestView,
)
def reject_exception(
    registry: Annotated[EmbeddedRegistry, Depends(registry_for("exception.add"))],
    request_id: RequestId,
) -> dict[str, Any]:
    return registry.exception_reject(request_id).to_json()


@router.post("/exceptions/{exception_id}/revoke", tags=["exceptions"], response_model=ExceptionView)
def revoke_exception(
    registry: Annotated[EmbeddedRegistry, Depends(registry_for("exception.revoke"))],
    exception_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
) -> dict[str, Any]:
    return registry.exception_revoke(exception_id).to_json()


# -- findings and their triage ------------------------------------------------------------------

FindingId = Annotated[str, Path(pattern=r"^fnd-[0-9a-f]{24}$", description="fnd-<24 hex>")]
Triager = Annotated[EmbeddedRegistry, Depends(registry_for("finding.triage"))]


class TriageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["false-positive"] = "false-positive"
    reason: str = Field(min_length=1, max_length=2000)
    expires_at: datetime = Field(description="RFC 3339 with a time zone; at most 90 days ahead")


class RevokeTriageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2000)


@router.get(CHECKPOINT + "/findings", tags=["findings"], response_model=FindingList)
def list_findings(
    registry: Reader, namespace: Namespace, name: Name, digest: DigestParam
) -> dict[str, Any]:
    """The findings of the checkpoint's newest scans: stable ids, whether each blocks (makes a
    malicious verdict), triage state."""
    found = registry.finding_list(_ref(namespace, name, digest))
    return {"findings": [f.to_json() for f in found]}


@router.post(
    "/findings/{finding_id}/triage", tags=["findings"], status_code=201, response_model=TriageView
)
def request_triage(registry: Triager, finding_id: FindingId, body: TriageBody) -> dict[str, Any]:
    """Request a finding-level decision; it counts once another principal approves it."""
    if body.expires_at.tzinfo is None:
        raise ApiProblem(422, "invalid_request", "expires_at needs a time zone")
    return registry.finding_triage(
        finding_id, decision=body.decision, reason=body.reason, expires_at=body.expires_at
    ).to_json()


class ConfirmBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    withdraw: bool = Field(default=False, description="Withdraw a confirmation instead")
    reason: str = Field(default="", max_length=2000)


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: str | None = Field(
        default=None, max_length=200, description="A user name; null or empty unassigns"
    )


@router.post("/findings/{finding_id}/confirm", tags=["findings"], response_model=FindingStateView)
def confirm_finding(
    registry: Triager, finding_id: FindingId, body: ConfirmBody | None = None
) -> dict[str, Any]:
    """Confirm a finding as a real problem (or withdraw that). It never loosens a decision:
    it ends the finding's pending or approved false-positive triage."""
    body = body or ConfirmBody()
    return registry.finding_confirm(
        finding_id, withdraw=body.withdraw, reason=body.reason
    ).to_json()


@router.post("/findings/{finding_id}/assign", tags=["findings"], response_model=FindingStateView)
def assign_finding(registry: Triager, finding_id: FindingId, body: AssignBody) -> dict[str, Any]:
    """Assign a finding to a user (null: unassign). Changes no decision."""
    return registry.finding_assign(finding_id, body.assignee).to_json()


@router.get("/triage", tags=["findings"], response_model=TriageList)
def list_triage(
    registry: Reader,
    finding: Annotated[str | None, Query(pattern=r"^fnd-[0-9a-f]{24}$")] = None,
    status: Literal["pending", "approved", "revoked"] | None = None,
) -> dict[str, Any]:
    """Triage requests and decisions, newest first."""
    return {
        "triage": [t.to_json() for t in registry.triage_list(finding_id=finding, status=status)]
    }


@router.post("/triage/{request_id}/approve", tags=["findings"], response_model=TriageView)
def approve_triage(
    registry: Triager, request_id: Annotated[int, Path(ge=1, le=2**62)]
) -> dict[str, Any]:
    """Approve a pending triage request: not by the principal who requested it (403)."""
    return registry.finding_approve(request_id).to_json()


@router.post("/triage/{request_id}/revoke", tags=["findings"], response_model=TriageView)
def revoke_triage(
    registry: Triager,
    request_id: Annotated[int, Path(ge=1, le=2**62)],
    body: RevokeTriageBody | None = None,
) -> dict[str, Any]:
    """End a triage (its finding blocks again) or withdraw a pending request."""
    return registry.finding_revoke(request_id, body.reason if body else "").to_json()


# -- admission -----------------------------------------------------------------------------------


class AdmissionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: str = Field(min_length=3, max_length=500)
    environment: str = Field(min_length=1, max_length=100)
    policy: str | None = Field(
        default=None,
        max_length=1_000_000,
        description="A policy document to decide with instead of the server's (security role)",
    )
    policy_file: str = Field(default="", max_length=500, description="Its name, for messages")


@router.post("/admission/check", tags=["admission"], response_model=DecisionView)
def admission_check(
    request: Request,
    registry: Annotated[EmbeddedRegistry, Depends(registry_for("admission.check"))],
    principal: Annotated[Principal, Depends(require("admission.check"))],
    body: AdmissionBody,
) -> dict[str, Any]:
    """Decide whether the checkpoint may be used in the environment, now.

    The answer is 200 whether it is allowed or denied: read `allowed`. Under the server's
    policy the decision is recorded (row, signed VSA, audit event) only when its outcome
    differs from the newest recorded one, so repeating a check writes nothing. A policy sent
    with the request needs the security role; its answer is a what-if (`what_if: true`):
    never recorded, never shown as the checkpoint's status.
    """
    text = body.policy
    source = body.policy_file
    check_scope(principal, body.environment)
    if text is not None and not principal.may("exception.add"):
        raise ApiProblem(
            403,
            "role_insufficient",
            "deciding with your own policy needs the security role; leave `policy` out to "
            "use the server's",
        )
    # Without a policy in the request the registry applies its own (MODELCTL_POLICY, else the
    # shipped set): the same one `pull`, /hf and the admission webhook enforce.
    return registry.policy_check(body.ref, body.environment, text, source).to_json()
