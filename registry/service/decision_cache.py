"""`DecisionCache`: the webhook's allowing decisions, kept until they may no longer hold."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime, timedelta

from policies import CheckStatus, Decision


class DecisionCache:
    """Allowing decisions by (environment, checkpoint digest), kept until the decision's
    expiry, until the audit log shows any state change (`follow`: a new scan, a revoked
    waiver or triage, on any server), at most `max_age` (a backstop), at most `max_entries`
    (least recently used go first).

    Denials are not kept: a checkpoint attested a moment ago is admitted on the next review,
    and a denial costs one evaluation. Only decisions made while the checkpoint was not
    quarantined are kept, and the caller reads the quarantine state before every lookup: a
    quarantine denies at once, whatever is cached.
    """

    def __init__(self, *, max_age: timedelta = timedelta(seconds=60), max_entries: int = 4096):
        self.max_age = max_age
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], tuple[Decision, float]] = OrderedDict()
        self._generation: int | None = None
        self.hits = 0
        self.misses = 0

    def get(self, environment: str, digest: str, now: datetime) -> Decision | None:
        with self._lock:
            entry = self._entries.get((environment, digest))
            if entry is None or entry[1] <= now.timestamp():
                if entry is not None:
                    del self._entries[(environment, digest)]
                self.misses += 1
                return None
            self._entries.move_to_end((environment, digest))
            self.hits += 1
            return entry[0]

    def put(self, environment: str, digest: str, decision: Decision, now: datetime) -> None:
        until = now + self.max_age
        if decision.expires_at is not None:
            until = min(until, decision.expires_at)
        quarantine = decision.check("quarantine")
        if (
            not decision.allowed
            or until <= now
            or quarantine is None
            or quarantine.status is not CheckStatus.PASS
        ):
            return
        with self._lock:
            self._entries[(environment, digest)] = (decision, until.timestamp())
            self._entries.move_to_end((environment, digest))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def follow(self, generation: int) -> None:
        """Forget everything when the audit log moved (`StatusBoard.sync`'s generation): a new
        malicious scan, a revoked waiver or triage denies at the next review, not after
        `max_age`, on every server."""
        with self._lock:
            if generation != self._generation:
                self._generation = generation
                self._entries.clear()

    def invalidate(self, digest: str | None = None) -> None:
        with self._lock:
            if digest is None:
                self._entries.clear()
            else:
                for key in [k for k in self._entries if k[1] == digest]:
                    del self._entries[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
