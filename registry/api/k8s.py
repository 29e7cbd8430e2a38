"""`POST /k8s/admission[/{env}]`: a Kubernetes validating admission webhook for Pods
(AdmissionReview `admission.k8s.io/v1`; docs/k8s-admission.md).

The pod is allowed iff every model it references (registry.service.k8s_review
`parse_admission_review` says where we look) is admitted to the environment now. The
environment is the path's `{env}` (one webhook entry per environment, each selecting its
namespaces by label), else `MODELCTL_K8S_ENVIRONMENT`, else `prod`; never something the pod
itself says. Decisions are cached per (environment, checkpoint) until their expiry, at most
`MODELCTL_K8S_CACHE_SECONDS` (default 60); quarantine is read on every review.

Malformed input: a body we cannot answer at all (not JSON, not an AdmissionReview, no
`request.uid` to echo) is a 400 problem, which the API server treats as a failed call (then
`failurePolicy: Fail` rejects the pod with our message in the event). A review with a uid but a
malformed pod gets a normal review response that denies it with `status.code` 400 and says
what is wrong, which the API server shows to the user as is.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from registry.api.deps import check_scope, get_registry, require
from registry.api.hf import gatekeeper
from registry.api.problems import ApiProblem
from registry.db.engine import unit_of_work
from registry.embedded import EmbeddedRegistry
from registry.errors import InputError
from registry.service import k8s_review, workload_record
from registry.service.decision_cache import DecisionCache
from registry.service.gate import check_environment
from registry.service.k8s_review import MalformedReview, PodReview, PodVerdict
from registry.service.tokens import Principal
from registry.service.workload_record import DecisionRecorder, PendingRecord

ENV_VARIABLE = "MODELCTL_K8S_ENVIRONMENT"
CACHE_VARIABLE = "MODELCTL_K8S_CACHE_SECONDS"
DEFAULT_ENVIRONMENT = "prod"
#: kube-apiserver refuses requests over 3 MiB, so a review is never larger than that.
MAX_REVIEW_BYTES = 3 * 1024 * 1024 + 64 * 1024
MAX_MESSAGE = 4000
MAX_WARNINGS = 10

router = APIRouter(prefix="/k8s", tags=["kubernetes"], include_in_schema=False)
Checker = Annotated[Principal, Depends(require("admission.check"))]


def decision_cache(request: Request) -> DecisionCache:
    cache = getattr(request.app.state, "k8s_decisions", None)
    if cache is None:
        raw = os.environ.get(CACHE_VARIABLE) or "60"
        try:
            seconds = int(raw)
        except ValueError as exc:
            raise InputError(f"{CACHE_VARIABLE} must be a number of seconds, not {raw!r}") from exc
        if not 0 <= seconds <= 3600:
            raise InputError(f"{CACHE_VARIABLE} must be between 0 and 3600")
        cache = DecisionCache(max_age=timedelta(seconds=seconds))
        request.app.state.k8s_decisions = cache
    assert isinstance(cache, DecisionCache)
    return cache


def review_response(
    uid: str, allowed: bool, message: str, *, code: int, warnings: tuple[str, ...] = ()
) -> dict[str, Any]:
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        reason = "BadRequest" if code == 400 else "Forbidden"
        response["status"] = {"code": code, "reason": reason, "message": message}
    if warnings:
        response["warnings"] = _bounded_warnings(warnings)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def _bounded_warnings(warnings: tuple[str, ...]) -> list[str]:
    """At most MAX_WARNINGS, each at most 240 characters (the API server keeps a warning to 256)
    and one line; the last says how many more there were, so none vanishes unannounced."""
    shown = [" ".join(w.split()) for w in warnings[:MAX_WARNINGS]]
    shown = [w if len(w) <= 240 else w[:237] + "..." for w in shown]
    if len(warnings) > MAX_WARNINGS:
        shown[-1] = f"{len(warnings) - MAX_WARNINGS + 1} more warn-mode failure(s) not listed"
    return shown


async def _read_body(request: Request) -> object:
    body = b""
    async for part in request.stream():
        body += part
        if len(body) > MAX_REVIEW_BYTES:
            raise ApiProblem(413, "payload_too_large", "the AdmissionReview is larger than 3 MiB")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ApiProblem(400, "malformed_review", "the body is not JSON") from exc


def decision_recorder(request: Request, registry: EmbeddedRegistry) -> DecisionRecorder:
    """The app's recorder of workload decisions, started on first use with the registry key
    (loaded once: decrypting it is slow; None without a passphrase: recorded unsigned)."""
    recorder = getattr(request.app.state, "k8s_recorder", None)
    if recorder is None:
        with _RECORDER_LOCK:
            recorder = getattr(request.app.state, "k8s_recorder", None)
            if recorder is None:
                recorder = DecisionRecorder(registry.sessions, registry.optional_signer())
                request.app.state.k8s_recorder = recorder
    assert isinstance(recorder, DecisionRecorder)
    return recorder


_RECORDER_LOCK = threading.Lock()


def _review(
    request: Request,
    registry: EmbeddedRegistry,
    review: PodReview,
    environment: str,
    document: dict[str, Any],
) -> PodVerdict:
    gate = gatekeeper(request, registry)
    cache = decision_cache(request)
    live = registry.live_statuses()
    now = datetime.now(UTC)
    with unit_of_work(registry.sessions) as session:
        cache.follow(live.board.sync(session, live.context))  # state changed: decide again
        verdict = k8s_review.review_pod(session, gate, cache, review, environment, now=now)
    if workload_record.worth_recording(review, verdict):
        decision_recorder(request, registry).submit(
            PendingRecord(
                review,
                verdict,
                document["request"].get("object") or {},
                environment,
                gate.policies,
                now,
            )
        )
    return verdict


async def _admission(
    request: Request, registry: EmbeddedRegistry, environment: str, who: Principal
) -> JSONResponse:
    try:
        check_environment(environment)
    except InputError as exc:
        raise ApiProblem(404, "not_found", exc.message) from exc
    # The API server's token decides which environments it may have reviewed: a token scoped
    # to prod cannot send pods to the dev policy's weaker rules (a 403 fails the call closed).
    check_scope(who, environment)
    document = await _read_body(request)
    uid = k8s_review.review_uid(document)
    try:
        review = k8s_review.parse_admission_review(document)
    except MalformedReview as exc:
        if uid is None:
            raise ApiProblem(400, "malformed_review", exc.message) from exc
        return JSONResponse(
            review_response(uid, False, f"malformed AdmissionReview: {exc.message}", code=400)
        )
    assert isinstance(document, dict)  # parsed: an AdmissionReview object
    verdict = await run_in_threadpool(_review, request, registry, review, environment, document)
    return JSONResponse(
        review_response(
            review.uid, verdict.allowed, verdict.message, code=403, warnings=verdict.warnings
        )
    )


@router.post("/admission")
async def admission_default(
    request: Request,
    registry: Annotated[EmbeddedRegistry, Depends(get_registry)],
    _who: Checker,
) -> JSONResponse:
    environment = os.environ.get(ENV_VARIABLE) or DEFAULT_ENVIRONMENT
    return await _admission(request, registry, environment, _who)


@router.post("/admission/{env}")
async def admission_for(
    request: Request,
    env: str,
    registry: Annotated[EmbeddedRegistry, Depends(get_registry)],
    _who: Checker,
) -> JSONResponse:
    return await _admission(request, registry, env, _who)
