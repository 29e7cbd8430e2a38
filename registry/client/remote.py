"""The remote registry: the `Registry` interface over HTTP to `modelctl serve` (httpx).

Every call maps to one `/v1` route (docs/api.md) and rebuilds the same views the embedded
registry returns, so the CLI prints the same output. Problem responses become the same
registry errors (by their `reason` code) with the server's one-line detail.

`pull` takes no word of the server's for the bytes: it fetches the registry's signed model
signature, verifies it with the public key the client pinned (MODELCTL_REGISTRY_KEY), then
streams every blob through `registry.client.materialize`, re-hashing while writing, exactly as the
embedded pull does. Mirror and scan run on the server as jobs; the client follows them.

Every view is parsed back with its own pydantic model (`registry.views`), the one the server
declares as the route's response model.
"""

from __future__ import annotations

import base64
import io
import ipaddress
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, NoReturn
from urllib.parse import quote, urlsplit

import httpx

from attestations.digests import Digest
from attestations.model_signature import PREDICATE_TYPE as MODEL_SIGNATURE
from registry.client import materialize
from registry.errors import (
    AmbiguousReference,
    AuthenticationRequired,
    Denied,
    Forbidden,
    InputError,
    IntegrityFailure,
    NotFound,
    RegistryError,
    StorageError,
    TwoPersonRule,
    UpstreamError,
)
from registry.finding_ids import check_finding_id
from registry.progress import NoProgress, Progress
from registry.refs import Ref
from registry.requests import AuditQuery, MirrorRequest
from registry.scanners.backdoor.settings import BackdoorSettings
from registry.views import (
    AttestationView,
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
    MirrorStats,
    ModelSummary,
    NotificationDeliveryView,
    OpenFinding,
    PullResult,
    QuarantineView,
    RescanResult,
    ScanOutcome,
    ScanView,
    SyncResult,
    TokenCreated,
    TokenView,
    TriageView,
    WorkloadReviewView,
)

TOKEN_ENV = "MODELCTL_TOKEN"  # noqa: S105 - the name of the variable, not a secret
KEY_ENV = "MODELCTL_REGISTRY_KEY"
POLL_SECONDS = 0.2
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: POSTs that write nothing (a what-if) or whose answer the server never keeps (a token).
_NOT_IDEMPOTENT = ("/v1/admission/check", "/v1/tokens")
#: Pauses before retrying a write that got no answer (connection refused or dropped).
_WRITE_RETRY_DELAYS = (0.2, 1.0)
JOB_TIMEOUT_SECONDS = 24 * 3600.0

#: Problem `reason` -> the registry error the embedded registry would have raised.
_ERRORS: dict[str, type[RegistryError]] = {
    "not_found": NotFound,
    "ambiguous_reference": AmbiguousReference,
    "denied": Denied,
    "not_admitted": Denied,  # a byte read the environment's policy refuses
    "environment_out_of_scope": Denied,  # the token is scoped to other environments
    "forbidden": Forbidden,
    "two_person_rule": TwoPersonRule,
    "integrity_failure": IntegrityFailure,
    "signature_verification_error": IntegrityFailure,
    "model_signature_error": IntegrityFailure,
    "digest_mismatch_error": IntegrityFailure,
    "verification_error": IntegrityFailure,
    "storage_error": StorageError,
    "upstream_error": UpstreamError,
    "authentication_required": UpstreamError,
    "token_required": AuthenticationRequired,
    "token_invalid": AuthenticationRequired,
    "role_insufficient": AuthenticationRequired,
}


# -- views from JSON: each view's model validates its own JSON; two are nested in job results --


def checkpoint_from_json(d: dict[str, Any]) -> CheckpointView:
    return CheckpointView.model_validate(d)


def decision_from_json(d: dict[str, Any]) -> DecisionView:
    return DecisionView.model_validate(d)


def scan_outcome_from_json(d: dict[str, Any]) -> ScanOutcome:
    """A scan job's result: the report, extended with name, digest, recorded and checkpoint."""
    report = {k: v for k, v in d.items() if k not in {"name", "digest", "recorded", "checkpoint"}}
    return ScanOutcome(
        checkpoint=CheckpointView.model_validate(d["checkpoint"]),
        report=report,
        recorded=tuple(ScanView.model_validate(s) for s in d.get("recorded", ())),
    )


def mirror_from_json(d: dict[str, Any]) -> MirrorResult:
    """A mirror job's result: the flattened checkpoint with its stats, and the scan if any."""
    m = d["mirror"]
    return MirrorResult(
        checkpoint=CheckpointView.model_validate(m),
        created=m["created"],
        stats=MirrorStats.model_validate(m["stats"]),
        scan=scan_outcome_from_json(d["scan"]) if d.get("scan") else None,
    )


# -- the blob reader pull streams from -----------------------------------------------------------


class _ResponseReader(io.RawIOBase):
    """A streaming HTTP response body as a raw binary file (closed with the response)."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._chunks = response.iter_raw(1 << 20)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
            except httpx.HTTPError as exc:
                raise UpstreamError(f"the registry's download broke off: {exc}") from exc
        n = min(len(view), len(self._buffer))
        view[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()


class RemoteBlobs:
    """A `BlobReader` (and only that) over `/v1/blobs`, for `pull_checkpoint` (never trusted:
    the pull re-hashes every byte against the signed manifest). Every read names the pull's
    environment: the server lets bytes out only for an environment that admits them."""

    def __init__(self, remote: RemoteRegistry, environment: str) -> None:
        self._remote = remote
        self._params = {"env": environment}

    def open(self, digest: Digest) -> BinaryIO:
        request = self._remote.client.build_request(
            "GET", f"/v1/blobs/{digest}", params=self._params
        )
        try:
            response = self._remote.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"cannot reach the registry: {exc}") from exc
        if response.status_code != 200:
            response.read()
            response.close()
            self._remote.raise_problem(response)
        return io.BufferedReader(_ResponseReader(response), buffer_size=1 << 20)

    def exists(self, digest: Digest) -> bool:
        response = self._remote.client.head(f"/v1/blobs/{digest}", params=self._params)
        return response.status_code == 200

    def size(self, digest: Digest) -> int:
        response = self._remote.client.head(f"/v1/blobs/{digest}", params=self._params)
        if response.status_code != 200:
            self._remote.raise_problem(response)
        return int(response.headers["content-length"])


# -- the client ----------------------------------------------------------------------------------


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RemoteRegistry:
    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        registry_key: Path | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 300.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise InputError(f"--registry {url!r}: expected http(s)://HOST[:PORT]")
        if parts.scheme == "http" and token and not _loopback(parts.hostname):
            raise InputError(
                f"--registry {url}: refusing to send a token over plain HTTP to a remote host; "
                "use https://"
            )
        self.url = url.rstrip("/")
        self.registry_key = registry_key
        headers = {"User-Agent": "modelctl"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            follow_redirects=False,
            transport=transport,
        )

    def close(self) -> None:
        self.client.close()

    # -- plumbing ----------------------------------------------------------------------------
    def raise_problem(self, response: httpx.Response) -> NoReturn:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        reason = str(body.get("reason") or "")
        detail = str(body.get("detail") or f"HTTP {response.status_code} from {self.url}")
        reasons = [str(r) for r in body.get("reasons", []) if isinstance(r, str)]
        if response.status_code >= 500 and reason not in _ERRORS:
            raise UpstreamError(f"the registry at {self.url} failed: {detail}")
        cls = _ERRORS.get(reason, InputError)
        raise cls(detail, reasons=reasons)

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        # Writes carry an Idempotency-Key, so a write whose answer was lost on the way is
        # retried without doing the work twice (the server replays the first answer).
        retries = 0
        if method in _WRITE_METHODS and not path.startswith(_NOT_IDEMPOTENT):
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("Idempotency-Key", f"mctl-{uuid.uuid4().hex}")
            kwargs["headers"] = headers
            retries = len(_WRITE_RETRY_DELAYS)
        attempt = 0
        while True:
            try:
                response = self.client.request(method, path, **kwargs)
                break
            except httpx.TransportError as exc:
                if attempt >= retries:
                    raise UpstreamError(f"cannot reach the registry at {self.url}: {exc}") from exc
                time.sleep(_WRITE_RETRY_DELAYS[attempt])
                attempt += 1
            except httpx.HTTPError as exc:
                raise UpstreamError(f"cannot reach the registry at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            self.raise_problem(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._call(method, path, **kwargs).json()

    def _canonical(self, ref: str) -> str:
        """`/checkpoints/NS/NAME/sha256:HEX` for a ref (a revision is resolved by the server)."""
        parsed = Ref.parse(ref)  # the same InputError as embedded, before any request
        digest = str(parsed.digest) if parsed.digest is not None else self.inspect(ref).digest
        model = parsed.model
        return f"/v1/checkpoints/{quote(model.namespace)}/{quote(model.name)}/{digest}"

    def _follow(self, job: dict[str, Any], progress: Progress) -> dict[str, Any]:
        """Poll a job until it is done, reporting its progress; its result, or its error."""
        deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
        begun = False
        done_bytes = 0
        files_done = 0
        try:
            while True:
                state = job["progress"] or {}
                if not begun and "total_bytes" in state:
                    progress.begin(
                        files=int(state.get("files", 0)),
                        total_bytes=int(state["total_bytes"]),
                        description=str(state.get("description", "")),
                    )
                    begun = True
                if begun:
                    now_bytes = int(state.get("bytes_done", 0))
                    if now_bytes > done_bytes:
                        progress.advance(now_bytes - done_bytes)
                        done_bytes = now_bytes
                    for _ in range(int(state.get("files_done", 0)) - files_done):
                        progress.file_done("", reused=False)
                    files_done = max(files_done, int(state.get("files_done", 0)))
                if job["state"] in {"succeeded", "failed"}:
                    break
                if time.monotonic() > deadline:
                    raise UpstreamError(f"job {job['id']} did not finish in time")
                time.sleep(POLL_SECONDS)
                job = self._json("GET", f"/v1/jobs/{job['id']}")
        finally:
            if begun:
                progress.end()
        if job["state"] == "failed":
            error = job.get("error") or {}
            cls = _ERRORS.get(str(error.get("kind")), InputError)
            if error.get("kind") == "internal_error":
                cls = UpstreamError
            raise cls(
                str(error.get("message", f"job {job['id']} failed")),
                reasons=[str(r) for r in error.get("reasons", [])],
            )
        result = job.get("result")
        assert isinstance(result, dict)
        return result

    # -- the Registry interface ----------------------------------------------------------------
    def models(self) -> list[ModelSummary]:
        return [ModelSummary.model_validate(m) for m in self._json("GET", "/v1/models")["models"]]

    def inspect(self, ref: str) -> CheckpointView:
        Ref.parse(ref)
        return checkpoint_from_json(self._json("GET", "/v1/resolve", params={"ref": ref}))

    def mirror(self, request: MirrorRequest, *, progress: Progress) -> MirrorResult:
        job = self._json(
            "POST",
            "/v1/mirrors",
            json={
                "source": request.source,
                "name": request.name,
                "revision": request.revision,
                "include": list(request.include),
                "exclude": list(request.exclude),
                "scan": request.scan,
            },
        )
        return mirror_from_json(self._follow(job, progress))

    def scan(
        self, ref: str, scanners: Sequence[str] = (), *, backdoor: BackdoorSettings | None = None
    ) -> ScanOutcome:
        Ref.parse(ref)
        body: dict[str, Any] = {"ref": ref, "scanners": list(scanners)}
        if backdoor is not None:  # what the CLI exposes; the server keeps the rest of its budget
            body["backdoor"] = {
                "max_params": backdoor.max_params,
                "device": backdoor.device,
                "seed": backdoor.seed,
            }
        job = self._json("POST", "/v1/scans", json=body)
        return scan_outcome_from_json(self._follow(job, NoProgress()))

    def rescan(self, scanners: Sequence[str] = (), *, dry_run: bool = False) -> RescanResult:
        body = {"scanners": list(scanners), "dry_run": dry_run}
        return RescanResult.model_validate(self._json("POST", "/v1/rescans", json=body))

    def sync(self, sources: Sequence[str] = (), *, dry_run: bool = False) -> SyncResult:
        body = {"sources": list(sources), "dry_run": dry_run}
        return SyncResult.model_validate(self._json("POST", "/v1/syncs", json=body))

    def attest(self, ref: str, *, allow_findings: bool = False) -> AttestResult:
        query = "?allow_findings=true" if allow_findings else ""
        d = self._json("POST", self._canonical(ref) + "/attest" + query)
        return AttestResult(
            checkpoint=checkpoint_from_json(d["checkpoint"]),
            issued=tuple(AttestationView.model_validate(a) for a in d["issued"]),
            model_signature=base64.b64decode(d["model_signature"]),
            public_key_pem=d["public_key_pem"].encode("ascii"),
            findings=tuple(OpenFinding.model_validate(f) for f in d.get("findings", [])),
        )

    def bom(self, ref: str, fmt: str) -> BomResult:
        """POST: the server issues the BOM and signs it as an attestation (publisher role)."""
        d = self._json("POST", self._canonical(ref) + "/bom", params={"format": fmt})
        return BomResult.model_validate(d)

    def quarantine(self, target: str, reason: str) -> QuarantineView:
        if target.startswith("sha256:"):  # a bare digest: a manifest digest or a file's
            body = {"digest": target, "reason": reason}
            return QuarantineView.model_validate(self._json("POST", "/v1/quarantines", json=body))
        path = self._canonical(target) + "/quarantine"
        return QuarantineView.model_validate(self._json("POST", path, json={"reason": reason}))

    def release(self, target: str, reason: str) -> QuarantineView:
        if target.startswith("sha256:"):
            body = {"digest": target, "reason": reason}
            return QuarantineView.model_validate(
                self._json("POST", "/v1/quarantines/release", json=body)
            )
        path = self._canonical(target) + "/release"
        return QuarantineView.model_validate(self._json("POST", path, json={"reason": reason}))

    def quarantine_list(self) -> list[QuarantineView]:
        found = self._json("GET", "/v1/quarantines")["quarantines"]
        return [QuarantineView.model_validate(q) for q in found]

    def exception_request(
        self,
        ref: str,
        *,
        waive: list[str],
        reason: str,
        expires_at: datetime,
        environments: list[str] | None,
    ) -> ExceptionRequestView:
        Ref.parse(ref)
        body = {
            "ref": ref,
            "waive": waive,
            "reason": reason,
            "expires_at": expires_at.isoformat(),
            "environments": environments,
        }
        return ExceptionRequestView.model_validate(
            self._json("POST", "/v1/exception-requests", json=body)
        )

    def exception_approve(self, request_id: int) -> ExceptionView:
        path = f"/v1/exception-requests/{int(request_id)}/approve"
        return ExceptionView.model_validate(self._json("POST", path))

    def exception_reject(self, request_id: int) -> ExceptionRequestView:
        path = f"/v1/exception-requests/{int(request_id)}/reject"
        return ExceptionRequestView.model_validate(self._json("POST", path))

    def exception_requests(self, status: str | None = None) -> list[ExceptionRequestView]:
        params = {"status": status} if status is not None else {}
        found = self._json("GET", "/v1/exception-requests", params=params)["requests"]
        return [ExceptionRequestView.model_validate(r) for r in found]

    def exception_list(self, ref: str | None = None) -> list[ExceptionView]:
        params = {"ref": ref} if ref is not None else {}
        found = self._json("GET", "/v1/exceptions", params=params)["exceptions"]
        return [ExceptionView.model_validate(e) for e in found]

    def exception_revoke(self, exception_id: int) -> ExceptionView:
        return ExceptionView.model_validate(
            self._json("POST", f"/v1/exceptions/{int(exception_id)}/revoke")
        )

    # -- findings and their triage -----------------------------------------------------------
    def finding_list(self, ref: str) -> list[FindingView]:
        found = self._json("GET", self._canonical(ref) + "/findings")["findings"]
        return [FindingView.model_validate(f) for f in found]

    def finding_triage(
        self, finding_id: str, *, decision: str, reason: str, expires_at: datetime
    ) -> TriageView:
        fid = check_finding_id(finding_id)  # the same InputError as embedded, before a request
        body = {"decision": decision, "reason": reason, "expires_at": expires_at.isoformat()}
        return TriageView.model_validate(
            self._json("POST", f"/v1/findings/{fid}/triage", json=body)
        )

    def finding_approve(self, request_id: int) -> TriageView:
        return TriageView.model_validate(
            self._json("POST", f"/v1/triage/{int(request_id)}/approve")
        )

    def finding_revoke(self, request_id: int, reason: str = "") -> TriageView:
        path = f"/v1/triage/{int(request_id)}/revoke"
        return TriageView.model_validate(self._json("POST", path, json={"reason": reason}))

    def triage_list(
        self, *, finding_id: str | None = None, status: str | None = None
    ) -> list[TriageView]:
        params = {k: v for k, v in (("finding", finding_id), ("status", status)) if v}
        return [
            TriageView.model_validate(t)
            for t in self._json("GET", "/v1/triage", params=params)["triage"]
        ]

    def finding_confirm(
        self, finding_id: str, *, withdraw: bool = False, reason: str = ""
    ) -> FindingStateView:
        fid = check_finding_id(finding_id)
        body = {"withdraw": withdraw, "reason": reason}
        return FindingStateView.model_validate(
            self._json("POST", f"/v1/findings/{fid}/confirm", json=body)
        )

    def finding_assign(self, finding_id: str, assignee: str | None) -> FindingStateView:
        fid = check_finding_id(finding_id)
        return FindingStateView.model_validate(
            self._json("POST", f"/v1/findings/{fid}/assign", json={"assignee": assignee})
        )

    def review_workload(self, review: dict[str, Any], environment: str) -> WorkloadReviewView:
        """The webhook itself answers (`POST /k8s/admission/{env}`): the same decision a
        cluster gets, with the token's `admission.check` permission."""
        answer = self._json("POST", f"/k8s/admission/{quote(environment)}", json=review)
        response = answer.get("response") if isinstance(answer, dict) else None
        if not isinstance(response, dict) or not isinstance(response.get("allowed"), bool):
            raise UpstreamError(f"the registry at {self.url} sent no AdmissionReview response")
        raw_status = response.get("status")
        status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
        request = review["request"]
        warnings = response.get("warnings") or []
        return WorkloadReviewView(
            kind=str(request["kind"]["kind"]),
            namespace=str(request.get("namespace") or ""),
            name=str(request.get("name") or ""),
            environment=environment,
            allowed=response["allowed"],
            code=int(status.get("code") or 200) if not response["allowed"] else 200,
            message=str(status.get("message") or "allowed"),
            warnings=tuple(str(w) for w in warnings if isinstance(w, str)),
        )

    def policy_check(
        self, ref: str, environment: str, policy_text: str | None = None, policy_file: str = ""
    ) -> DecisionView:
        Ref.parse(ref)
        body: dict[str, Any] = {"ref": ref, "environment": environment}
        if policy_text is not None:
            body["policy"] = policy_text
            body["policy_file"] = policy_file
        return decision_from_json(self._json("POST", "/v1/admission/check", json=body))

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
        if self.registry_key is None:
            raise InputError(
                f"a remote pull checks the registry's signature itself: set {KEY_ENV} to the "
                f"registry's public key (PEM; GET {self.url}/v1/public-key once and check it)"
            )
        try:
            public_key = self.registry_key.read_bytes()
        except OSError as exc:
            raise InputError(f"{KEY_ENV}: cannot read {self.registry_key}: {exc.strerror}") from exc
        decision = self.policy_check(ref, environment)
        materialize.require_admitted(decision)
        # The decided digest, not `ref` again: a moving revision cannot swap the checkpoint.
        base = self._canonical(f"{decision.name}@{decision.digest}")
        checkpoint = checkpoint_from_json(self._json("GET", base))
        listed = self._json("GET", base + "/attestations")["attestations"]
        ids = sorted(
            (a["id"] for a in listed if a["predicate_type"] == MODEL_SIGNATURE), reverse=True
        )
        bundles = [self._call("GET", f"{base}/attestations/{i}").content for i in ids]
        signed = materialize.signed_from_bundles(
            name=checkpoint.name,
            manifest_digest=decision.digest.removeprefix("sha256:"),
            commit=checkpoint.source.commit,
            bundles=bundles,
            sizes={f.path: f.size for f in checkpoint.files},
            registry_public_key=public_key,
        )
        return materialize.pull_checkpoint(
            signed,
            decision,
            blobs=RemoteBlobs(self, environment),
            dest=dest,
            force=force,
            layout=checked_layout,
            workers=4,
            progress=progress,
        )

    # -- the server's own (tokens, audit) ------------------------------------------------------
    def token_create(
        self,
        name: str,
        role: str,
        *,
        expires_at: datetime | None = None,
        environments: Sequence[str] | None = None,
    ) -> TokenCreated:
        body: dict[str, Any] = {"name": name, "role": role}
        if expires_at is not None:
            body["expires_at"] = expires_at.isoformat()
        if environments is not None:
            body["environments"] = list(environments)
        d = self._json("POST", "/v1/tokens", json=body)
        return TokenCreated(token=TokenView.model_validate(d), secret=d["token"])

    def token_list(self) -> list[TokenView]:
        return [TokenView.model_validate(t) for t in self._json("GET", "/v1/tokens")["tokens"]]

    def token_revoke(self, key: str) -> TokenView:
        return TokenView.model_validate(
            self._json("POST", f"/v1/tokens/{quote(key, safe='')}/revoke")
        )

    def audit_log(self, query: AuditQuery) -> list[AuditEventView]:
        params: dict[str, Any] = {"limit": query.limit}
        for key in ("actor", "action", "subject"):
            if getattr(query, key):
                params[key] = getattr(query, key)
        if query.since:
            params["since"] = query.since.isoformat()
        if query.until:
            params["until"] = query.until.isoformat()
        found = self._json("GET", "/v1/audit", params=params)["events"]
        return [AuditEventView.model_validate(e) for e in found]

    def notification_deliveries(
        self, *, state: str | None = None, limit: int = 100
    ) -> list[NotificationDeliveryView]:
        params: dict[str, Any] = {"limit": limit}
        if state is not None:
            params["state"] = state
        found = self._json("GET", "/v1/notifications/deliveries", params=params)["deliveries"]
        return [NotificationDeliveryView.model_validate(d) for d in found]
