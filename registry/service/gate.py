"""The gate: the decision, made now, that lets a checkpoint's bytes leave the registry for an
environment. `hf_view` (what `/hf/{env}/` serves), `k8s_review` (what `/k8s/admission`
answers) and the gated `/v1` byte reads all decide through `Gatekeeper`.

Nothing here or in those modules trusts a stored column or an earlier decision to say
"admitted":

1. **Decide now.** Every resolution evaluates the environment's policy on facts gathered now
   (`admission.checkpoint_facts`: attestations re-verified with the registry key, latest scans,
   quarantine), with the registry's exceptions merged, exactly as `modelctl policy check` does;
   only the webhook keeps a decision, in `DecisionCache`, until the decision's expiry (capped),
   and it re-reads the quarantine state on every review.
2. **Serve what was signed.** The files of a served checkpoint are the ones its newest model
   signature that verifies with the registry key lists (`pull.signed_checkpoint`), never the
   database's file rows alone; a checkpoint without one is not served, even when admitted.
3. **Re-hash while streaming.** Every response body comes from `serving.verified_chunks`: the
   blob is hashed in full (also for a range: the bytes around it are hashed, not sent) and the
   last piece is held back until the whole blob matched the signed sha256, so a tampered blob
   ends the response short: the client sees a broken transfer, never the end of wrong bytes.

The commit id shown to Hugging Face clients (`sha`, `X-Repo-Commit`) is the first 40 hex
digits of the checkpoint's manifest digest (see `hf_view.served_commit`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from policies import CheckStatus, Decision, Facts, Mode, ModelPolicy, PolicySet, evaluate
from policies.model import PolicyException
from registry.blobs.base import BlobReader
from registry.db.models import Checkpoint, CheckpointFile, WaiverRow
from registry.errors import Denied, InputError, NotFound
from registry.service import admission

_ENV = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class NotAdmitted(Denied):
    """Checkpoints exist for the revision but none may be served to the environment.

    `reasons` are the failing checks (`check-id: message`) of the newest candidate.
    """


def check_environment(environment: str) -> str:
    if not _ENV.fullmatch(environment):
        raise InputError(f"bad environment name {environment!r:.80}")
    return environment


# -- the decision, now -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Gatekeeper:
    """Decides with one policy set, the blob store (model cards) and the registry's key."""

    policies: PolicySet
    blobs: BlobReader
    registry_public_key: bytes | None

    def decide(
        self, session: Session, checkpoint: Checkpoint, environment: str, now: datetime
    ) -> Decision:
        """The policy's decision for `checkpoint` in `environment` on facts gathered now.

        Raises `Denied` when no policy is bound to the environment (fail closed). Nothing is
        recorded: serving and reviewing are reads (`modelctl policy check` records decisions).
        """
        self.bound(environment)  # fail closed before gathering anything
        facts, granted = self.inputs(session, checkpoint, now)
        return self.evaluate(facts, granted, environment, now)

    def bound(self, environment: str) -> tuple[ModelPolicy, Mode]:
        bound = self.policies.for_environment(environment)
        if bound is None:
            raise Denied(
                f"no policy is bound to environment {environment!r}: denied (fail closed); "
                + known_environments_hint(self.policies, environment),
                reasons=[f"binding: no policy for {environment!r}"],
            )
        return bound

    def inputs(
        self, session: Session, checkpoint: Checkpoint, now: datetime
    ) -> tuple[Facts, tuple[PolicyException, ...]]:
        """The facts as of now (attestations verified now) and the registry's exceptions:
        gathered once, they serve a decision in every environment."""
        granted = admission.registry_exceptions(
            checkpoint.id,
            f"sha256:{checkpoint.manifest_digest}",
            list(
                session.scalars(select(WaiverRow).where(WaiverRow.checkpoint_id == checkpoint.id))
            ),
        )
        facts = admission.checkpoint_facts(
            checkpoint, blobs=self.blobs, registry_public_key=self.registry_public_key, now=now
        )
        return facts, granted

    def evaluate(
        self,
        facts: Facts,
        granted: tuple[PolicyException, ...],
        environment: str,
        now: datetime,
    ) -> Decision:
        """The decision in one environment on gathered inputs (`Denied` when unbound)."""
        policy, mode = self.bound(environment)
        if granted:
            policy = replace(policy, exceptions=(*policy.exceptions, *granted))
        return evaluate(
            policy,
            facts,
            now=now,
            mode=mode,
            environment=environment,
            containment_mode=self.policies.containment_mode(environment),
        )


def known_environments_hint(policies: PolicySet, environment: str) -> str:
    """`known environments: dev, prod, staging; did you mean prod?` (the nearest name)."""
    known = policies.environments()
    if not known:
        return "no environment is bound by the policy"
    hint = f"known environments: {', '.join(known)}"
    near = difflib.get_close_matches(environment.lower(), known, n=1, cutoff=0.6)
    return hint + (f"; did you mean {near[0]}?" if near else "")


def failing_checks(decision: Decision) -> list[str]:
    """`check-id: message` for every check that failed (what a denial is explained by)."""
    return [f"{c.id}: {c.message}" for c in decision.checks if c.status is CheckStatus.FAIL]


def warning_checks(decision: Decision) -> list[str]:
    return [f"{c.id}: {c.message}" for c in decision.checks if c.status is CheckStatus.WARN]


#: The response header that carries warn-mode failures wherever bytes leave over HTTP
#: (`/hf/{env}` and gated `/v1` byte reads); the webhook uses AdmissionReview `warnings`.
WARNING_HEADER = "X-Modelctl-Warning"
MAX_WARNING_HEADER = 1024


def warning_header(decision: Decision, environment: str) -> str | None:
    """One header value listing the checks that failed but only warn (`warn` mode), or None.

    Printable ASCII only (check messages quote names from outside; a header must be latin-1
    and one line) and at most MAX_WARNING_HEADER characters."""
    warned = warning_checks(decision)
    if not warned:
        return None
    text = (
        f"{len(warned)} check(s) failed in warn mode for {environment!r}, allowed anyway: "
        + "; ".join(warned)
    )
    safe = "".join(c if " " <= c <= "~" else "?" for c in text)
    if len(safe) > MAX_WARNING_HEADER:
        safe = safe[: MAX_WARNING_HEADER - 3] + "..."
    return safe


# -- raw byte reads (`/v1/.../files/…`, `/v1/blobs/…`) ------------------------------------------

#: A blob shared by more checkpoints than this is decided for its newest ones only.
MAX_BLOB_CHECKPOINTS = 20


def checkpoints_holding_blob(session: Session, sha256: str) -> list[Checkpoint]:
    """The checkpoints whose file list holds the blob, newest first (at most
    MAX_BLOB_CHECKPOINTS)."""
    holders = select(CheckpointFile.checkpoint_id).where(CheckpointFile.sha256 == sha256)
    return list(
        session.scalars(
            select(Checkpoint)
            .where(Checkpoint.id.in_(holders))
            .order_by(Checkpoint.id.desc())
            .limit(MAX_BLOB_CHECKPOINTS)
        )
    )


def admit_bytes(
    session: Session,
    gate: Gatekeeper,
    candidates: Sequence[Checkpoint],
    environment: str,
    *,
    what: str,
    now: datetime | None = None,
) -> Decision:
    """The decision that lets `what` (a file or a blob) leave the registry for `environment`:
    that of the first of `candidates` admitted there now, decided as pull and `/hf` decide.

    A blob is as readable as the most admitted checkpoint holding it: the same bytes are served
    for that checkpoint anyway. Raises NotAdmitted naming the failing checks of the first
    candidate (NotFound when there is none).
    """
    now = now or datetime.now(UTC)
    check_environment(environment)
    if not candidates:
        raise NotFound(f"no checkpoint holds {what}")
    refusal: list[str] | None = None
    for checkpoint in candidates:
        decision = gate.decide(session, checkpoint, environment, now)
        if decision.allowed:
            return decision
        refusal = refusal or failing_checks(decision) or ["policy: denied"]
    assert refusal is not None
    holders = (
        "its checkpoint is not"
        if len(candidates) == 1
        else f"none of the {len(candidates)} checkpoints holding it is"
    )
    raise NotAdmitted(
        f"{what}: {holders} admitted to {environment!r}: {'; '.join(refusal)}",
        reasons=refusal,
    )
