"""The bound policies (`/ui/policies`) and the dry run of a candidate policy document."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from policies import PolicyError, load_policies
from registry.db.engine import unit_of_work
from registry.errors import InputError
from registry.service import decide
from registry.service.read import checkpoint as read_checkpoint
from registry.web._plumbing import (
    Caller,
    FormBody,
    _actor,
    _policy_set,
    _policy_source,
    _reader,
    _registry,
    _signers,
    page,
    render,
)

router = APIRouter(include_in_schema=False)


@router.get("/ui/policies")
@page
def policies_page(request: Request) -> Response:
    caller = _reader(request)
    return _policies(request, caller, None, None)


def _policies(
    request: Request, caller: Caller, dry: dict[str, Any] | None, candidate: str | None
) -> Response:
    policy_set = _policy_set(request)
    bound = []
    for env in decide.environments(policy_set):
        found = policy_set.for_environment(env)
        if found is not None:
            bound.append((env, found[0], str(found[1].value)))
    return render(
        request,
        "policies.html",
        caller,
        bound=bound,
        yaml_text=_policy_source(request)[0],
        policy_source=_policy_source(request)[1],
        dry=dry,
        candidate=candidate if candidate is not None else _policy_source(request)[0],
        signers=_signers(request),
    )


@router.post("/ui/policies/dry-run")
@page
def dry_run_action(request: Request, form: FormBody) -> Response:
    """What would change if this policy document applied, over every current checkpoint.

    Records nothing: the policy in force and the candidate are both evaluated now, on the same
    facts gathered once per checkpoint, in every environment either of them binds.
    """
    caller = _actor(request, form, "admission.check")
    text = form.get("policy", "")
    try:
        candidate = load_policies(text, "candidate.yaml")
    except PolicyError as exc:
        raise InputError(f"the candidate policy does not load: {exc.message}") from exc
    registry = _registry(request)
    current = _policy_set(request)
    envs = decide.environments(current)
    envs += [e for e in decide.environments(candidate) if e not in envs]
    pub = registry.registry_public_key()
    flips: list[dict[str, Any]] = []
    counted = 0
    started = time.monotonic()
    now = datetime.now(UTC)
    with unit_of_work(registry.sessions) as s:
        for cp in read_checkpoint.all_checkpoints(s, limit=5000):
            counted += 1
            before, after = decide.compare_now(
                s,
                cp,
                current,
                candidate,
                envs,
                blobs=registry.blobs,
                registry_public_key=pub,
                now=now,
            )
            for was, will in zip(before, after, strict=True):
                allowed_before = was.decision is not None and was.decision.allowed
                allowed_after = will.decision is not None and will.decision.allowed
                if allowed_before != allowed_after:
                    flips.append(
                        {
                            "ref": f"{cp.model.full_name}@sha256:{cp.manifest_digest}",
                            "ns": cp.model.namespace,
                            "name": cp.model.name,
                            "digest": cp.manifest_digest,
                            "env": will.environment,
                            "before": allowed_before,
                            "after": allowed_after,
                            "failed": [
                                c.id
                                for c in (will.decision.checks if will.decision else ())
                                if str(c.status.value) == "fail"
                            ],
                        }
                    )
    dry = {"flips": flips, "checkpoints": counted, "seconds": time.monotonic() - started}
    return _policies(request, caller, dry, text)
