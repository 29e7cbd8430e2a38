"""Record the webhook's decision about a workload: a `workload_decisions` row with the evidence
(each model's decision, the pod's posture, every containment check) and, when the registry key
is available, the signed VSA (`attestations.workload_decision`).

`DecisionRecorder` writes them from a thread, in batches, after the answer is sent: signing is
cheap, but a commit (an fsync) per review would dominate the webhook's latency. The queue is
bounded; when it is full the review waits for room (and fails, closed, if none comes), so no
decision goes unrecorded while the process lives. `flush()` waits for what is queued.

Written without an audit event on purpose: the webhook follows the audit log to drop cached
model decisions, and a review that wrote to it would empty the cache on every pod. The table is
append-only and nothing reads it to decide. The caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from attestations.dsse import INTOTO_PAYLOAD_TYPE
from attestations.keys import KeySigner
from attestations.workload_decision import (
    WorkloadDecisionRecord,
    object_digest,
    workload_decision_statement,
)
from policies import PolicySet
from registry.db.engine import unit_of_work
from registry.db.models import WorkloadDecision
from registry.errors import UpstreamError
from registry.service.decide import check_result_rows
from registry.service.k8s_review import PodReview, PodVerdict
from registry.signing_key import tool_version


def worth_recording(review: PodReview, verdict: PodVerdict) -> bool:
    """A decision about a model (admitted or not), a denial, or a NetworkPolicy that warns:
    not the pods that run no model (nothing was decided about them)."""
    if review.dry_run or review.operation not in ("CREATE", "UPDATE"):
        return False
    return bool(review.references) or not verdict.allowed or bool(verdict.warnings)


def evidence(verdict: PodVerdict) -> dict[str, Any]:
    models = [
        {
            "ref": v.reference.text,
            "where": v.reference.where,
            "allowed": v.allowed,
            "message": v.message,
            "digests": [d.checkpoint_digest for d in v.decisions],
            "profiles": sorted(
                {d.containment.profile.label for d in v.decisions if d.containment is not None}
            ),
        }
        for v in verdict.verdicts
    ]
    containment = [
        {
            "pod": where,
            "mode": c.mode.value if c.mode is not None else None,
            "allowed": c.allowed,
            "profiles": [
                {"profile": r.profile, "checks": list(check_result_rows(r.checks))}
                for r in c.reports
            ],
            "exceptions": list(c.exceptions_applied),
            "audited": list(c.audited),
            "posture": dict(c.posture),
        }
        for where, c in verdict.containment
    ]
    return {"models": models, "containment": containment, "warnings": list(verdict.warnings)}


def record_review(
    session: Session,
    review: PodReview,
    verdict: PodVerdict,
    obj: Mapping[str, Any],
    *,
    environment: str,
    policies: PolicySet,
    signer: KeySigner | None,
    now: datetime,
) -> WorkloadDecision:
    """Keep the decision as made; sign it as a VSA when `signer` is given."""
    bound = policies.for_environment(environment)
    proof = evidence(verdict)
    record = WorkloadDecisionRecord(
        namespace=review.namespace,
        kind=review.kind,
        name=review.name,
        object_sha256=object_digest(obj),
        environment=environment,
        allowed=verdict.allowed,
        message=verdict.message,
        policy_name=bound[0].name if bound else "",
        policy_digest=bound[0].digest if bound else "sha256:" + "0" * 64,
        models=proof["models"],
        containment=proof["containment"],
        warnings=proof["warnings"],
        evaluated_at=now,
        tool_version=tool_version(),
    )
    row = WorkloadDecision(
        environment=environment,
        namespace=review.namespace[:253],
        kind=review.kind[:63],
        name=review.name[:253],
        operation=review.operation[:20],
        review_uid=review.uid,
        object_sha256=record.object_sha256,
        allowed=verdict.allowed,
        message=verdict.message,
        evidence=proof,
        decided_at=now,
    )
    if signer is not None:
        statement = workload_decision_statement(record)
        data = signer.sign(INTOTO_PAYLOAD_TYPE, statement.to_payload()).to_bytes()
        row.bundle = data
        row.bundle_sha256 = hashlib.sha256(data).hexdigest()
    session.add(row)
    session.flush()
    return row


_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PendingRecord:
    review: PodReview
    verdict: PodVerdict
    obj: Mapping[str, Any]
    environment: str
    policies: PolicySet
    now: datetime


class DecisionRecorder:
    """Records (and signs) workload decisions from one thread, a batch per transaction."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        signer: KeySigner | None,
        *,
        max_queue: int = 10_000,
        batch: int = 256,
        put_timeout: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._signer = signer
        self._queue: queue.Queue[PendingRecord | None] = queue.Queue(maxsize=max_queue)
        self._batch = batch
        self._put_timeout = put_timeout
        self._thread = threading.Thread(target=self._run, name="workload-decisions", daemon=True)
        self._thread.start()
        self.written = 0
        self.failed = 0

    def submit(self, item: PendingRecord) -> None:
        """Queue a decision; raises `UpstreamError` when the writer cannot keep up."""
        try:
            self._queue.put(item, timeout=self._put_timeout)
        except queue.Full as exc:
            raise UpstreamError("the decision log is not keeping up: review refused") from exc

    def flush(self) -> None:
        """Wait until every queued decision is written (or failed)."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._queue.task_done()
                return
            items = [first]
            while len(items) < self._batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # stop after this batch
                    self._queue.task_done()
                    break
                items.append(nxt)
            self._write(items)
            for _ in items:
                self._queue.task_done()

    def _write(self, items: list[PendingRecord]) -> None:
        try:
            with unit_of_work(self._sessions) as session:
                for item in items:
                    record_review(
                        session,
                        item.review,
                        item.verdict,
                        item.obj,
                        environment=item.environment,
                        policies=item.policies,
                        signer=self._signer,
                        now=item.now,
                    )
            self.written += len(items)
        except SQLAlchemyError:
            self.failed += len(items)
            _log.exception("could not record %d workload decision(s)", len(items))
