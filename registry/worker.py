"""Runs queued jobs (mirror, scan) on the embedded registry: in `modelctl serve` as a thread,
and in `modelctl worker` processes for scale-out. Each job runs as the actor who asked for it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from attestations.errors import AttestationError
from attestations.utc import utc_now
from registry.db.engine import unit_of_work
from registry.embedded import EmbeddedRegistry
from registry.errors import InputError, RegistryError, StorageError, kind_of
from registry.mirror.base import parse_source
from registry.requests import MirrorRequest
from registry.scanners.backdoor.settings import BackdoorSettings
from registry.service import jobs
from registry.service.notify import config as notify_config
from registry.service.notify import dispatcher
from registry.service.notify.send import DeliveryFailed, Sender
from registry.service.rescan import RESCAN_ACTOR
from registry.service.sync import SYNC_ACTOR
from registry.views import MirrorResult, ScanOutcome

log = logging.getLogger("modelctl.worker")
HEARTBEAT_SECONDS = 5.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def scan_payload(outcome: ScanOutcome) -> dict[str, Any]:
    """A scan outcome as JSON, with its checkpoint, so a remote client can rebuild it."""
    return {**outcome.to_json(), "checkpoint": outcome.checkpoint.to_json()}


def mirror_payload(result: MirrorResult) -> dict[str, Any]:
    return {
        "mirror": result.to_json(),
        "scan": scan_payload(result.scan) if result.scan is not None else None,
    }


def check_mirror_source(source: str, roots: tuple[Path, ...]) -> None:
    """The server mirrors from hubs; a folder on its disk only inside a configured root."""
    if source.startswith(("hf://", "ms://")):
        parse_source(source)  # the same InputError as a CLI mirror for a bad hub reference
        return
    refusal = InputError(
        f"{source!r:.200}: the server mirrors local folders only inside MODELCTL_MIRROR_ROOTS"
    )
    if not roots or "\x00" in source:
        raise refusal
    try:
        path = Path(os.path.realpath(source))
        inside = any(
            path == Path(os.path.realpath(r)) or Path(os.path.realpath(r)) in path.parents
            for r in roots
        )
        if inside:
            parse_source(str(path))
            return
    except OSError as exc:
        raise refusal from exc
    raise refusal


class JobProgress:
    """`Progress` that keeps the numbers for the heartbeat to write to the job row."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.state: dict[str, Any] = {}

    def begin(self, *, files: int, total_bytes: int, description: str) -> None:
        with self._lock:
            self.state = {
                "description": description,
                "files": files,
                "files_done": 0,
                "total_bytes": total_bytes,
                "bytes_done": 0,
            }

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self.state["bytes_done"] = self.state.get("bytes_done", 0) + nbytes

    def file_done(self, path: str, *, reused: bool) -> None:
        with self._lock:
            self.state["files_done"] = self.state.get("files_done", 0) + 1

    def end(self) -> None:
        pass

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.state)


class Notifier:
    """Outbound notifications, in their own thread of the worker so that a slow receiver
    delays neither requests nor jobs (`registry.service.notify.dispatcher` has the steps)."""

    def __init__(self, registry: EmbeddedRegistry, config: notify_config.NotifyConfig) -> None:
        self.registry = registry
        self.config = config
        self.targets = {t.name: t for t in config.targets}
        self.sender = Sender()
        # Audit ids already read by a committed round (at most LOOKBACK + BATCH ids apart):
        # the look-back window is re-read for late commits, not re-judged event by event.
        self.seen: set[int] = set()

    def tick(self) -> int:
        """One round: read new events into the delivery log, then attempt what is due; how
        many attempts were made."""
        sessions = self.registry.sessions
        try:
            with unit_of_work(sessions) as session:
                _, read = dispatcher.collect(session, self.config, utc_now(), self.seen)
        except IntegrityError:  # another worker logged the same notifications first:
            read = []  # this round's rows are theirs; the next round reads on from there
        if read:  # only now: had the round rolled back, its events must be read again
            newest = max(read)
            floor = newest - dispatcher.LOOKBACK - dispatcher.BATCH
            self.seen = {i for i in (*self.seen, *read) if i > floor}
        with unit_of_work(sessions) as session:
            claimed = dispatcher.claim(session, utc_now())
        for delivery_id, target_name, payload in claimed:
            error = self._attempt(target_name, payload)
            with unit_of_work(sessions) as session:
                dispatcher.record_attempt(session, delivery_id, self.config, error, utc_now())
        return len(claimed)

    def _attempt(self, target_name: str, payload: dict[str, Any]) -> str | None:
        target = self.targets.get(target_name)
        if target is None:
            return f"target {target_name!r} is no longer configured"
        try:
            self.sender.deliver(target, payload)
        except DeliveryFailed as exc:
            log.warning("notification %s to %s: %s", payload.get("id"), target_name, exc.reason)
            return exc.reason
        return None

    def close(self) -> None:
        self.sender.close()

    def run_forever(self, stop: threading.Event, *, poll_seconds: float = 1.0) -> None:
        try:
            while not stop.is_set():
                try:
                    worked = self.tick()
                except Exception:  # the database is away: wait and try again
                    log.warning("the notification dispatcher failed a round", exc_info=True)
                    worked = 0
                if not worked:
                    stop.wait(poll_seconds)
        finally:
            self.close()


class JobRunner:
    def __init__(
        self,
        registry: EmbeddedRegistry,
        *,
        name: str | None = None,
        notify: notify_config.NotifyConfig | None = None,
    ) -> None:
        self.registry = registry
        self.name = name or worker_name()
        self.lease = timedelta(seconds=registry.settings.job_lease_seconds)
        # Read (and refused when broken: InputError) as the worker starts, not at first use.
        config = notify if notify is not None else notify_config.load(os.environ)
        self.notifier = Notifier(registry, config) if config is not None else None

    def run_once(self) -> bool:
        """Claim and run one job; False when there was none."""
        with unit_of_work(self.registry.sessions) as session:
            job = jobs.claim(session, self.name, lease=self.lease)
        if job is None:
            return False
        progress = JobProgress()
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job.id, progress, stop), daemon=True)
        beat.start()
        result: dict[str, Any] | None = None
        error: dict[str, Any] | None = None
        try:
            result = self._run(job, progress)
        except StorageError as exc:  # its text may name tables or hosts: the log keeps it
            log.error("job %s (%s): %s", job.id, job.kind, exc.message)
            error = {
                "message": f"the {job.kind} job failed: the registry's storage failed "
                "(the server log has the details)",
                "kind": "storage_error",
                "reasons": [],
            }
        except (RegistryError, AttestationError) as exc:
            error = {
                "message": exc.message,
                "kind": kind_of(exc),
                "reasons": list(getattr(exc, "reasons", [])),
            }
        except Exception as exc:  # a bug: recorded without internals, logged in full
            log.exception("job %s (%s) failed", job.id, job.kind)
            error = {
                "message": f"the {job.kind} job failed on the server ({type(exc).__name__})",
                "kind": "internal_error",
                "reasons": [],
            }
        finally:
            stop.set()
            beat.join()
        with unit_of_work(self.registry.sessions) as session:
            jobs.finish(
                session,
                job.id,
                self.name,
                result=result,
                error=error,
                progress=progress.snapshot(),
            )
        return True

    def _heartbeat(self, job_id: int, progress: JobProgress, stop: threading.Event) -> None:
        while not stop.wait(min(HEARTBEAT_SECONDS, 0.5)):
            try:
                with unit_of_work(self.registry.sessions) as session:
                    jobs.heartbeat(session, job_id, self.name, progress.snapshot())
            except Exception:  # a missed beat is retried; the lease is long
                log.warning("heartbeat for job %s failed", job_id, exc_info=True)

    def _run(self, job: jobs.JobView, progress: JobProgress) -> dict[str, Any]:
        registry = self.registry.as_actor(job.actor)
        params = job.payload()
        if isinstance(params, jobs.MirrorJob):
            check_mirror_source(params.source, self.registry.settings.mirror_roots)
            result = registry.mirror(
                MirrorRequest(
                    source=params.source,
                    name=params.name,
                    revision=params.revision,
                    include=params.include,
                    exclude=params.exclude,
                    scan=params.scan,
                ),
                progress=progress,
            )
            payload = mirror_payload(result)
            if params.attest:
                payload["attest"] = self._attest_after_mirror(registry, result)
            return payload
        if isinstance(params, jobs.ScanJob):
            options = params.backdoor
            backdoor = BackdoorSettings(**options) if options is not None else None
            return scan_payload(registry.scan(params.ref, params.scanners, backdoor=backdoor))
        raise InputError(f"unknown job kind {job.kind!r}")

    def queue_rescans(self) -> int:
        """The start-up sweep: queue scans of checkpoints judged by older scanner rules (once
        per worker start; idempotent across workers). Returns how many jobs were queued."""
        if not self.registry.settings.rescan_on_start:
            return 0
        try:
            result = self.registry.as_actor(RESCAN_ACTOR).rescan()
        except Exception:  # the sweep must never keep a worker from running jobs
            log.warning("the start-up re-scan sweep failed", exc_info=True)
            return 0
        if result.queued:
            log.info("queued %d re-scan job(s): scanner rules changed", result.queued)
        return result.queued

    def sync_upstream(self) -> None:
        """The scheduled sync (MODELCTL_SYNC_INTERVAL): queue mirrors of watched models' new
        upstream commits. Several workers may run it: a queued mirror is never queued twice."""
        try:
            result = self.registry.as_actor(SYNC_ACTOR).sync()
        except Exception:  # a hub or database hiccup must not stop the worker
            log.warning("the scheduled upstream sync failed", exc_info=True)
            return
        for item in result.sources:
            if item.state == "error":
                log.warning("sync of %s: %s", item.source, item.error)
        if result.queued:
            log.info("sync queued %d mirror job(s) of new upstream commits", result.queued)

    @staticmethod
    def _attest_after_mirror(registry: EmbeddedRegistry, result: MirrorResult) -> dict[str, Any]:
        """Sign what was mirrored, as `modelctl attest` would: refused while findings block
        (the mirror stands; the refusal is in the job's result and the checkpoint unserved)."""
        ref = f"{result.checkpoint.name}@{result.checkpoint.digest}"
        try:
            attested = registry.attest(ref)
        except (RegistryError, AttestationError) as exc:
            return {"attested": False, "reason": exc.message}
        return {"attested": True, "issued": len(attested.issued)}

    def run_forever(self, stop: threading.Event, *, poll_seconds: float = 0.5) -> None:
        if self.notifier is not None:
            threading.Thread(
                target=self.notifier.run_forever,
                args=(stop,),
                name="modelctl-notify",
                daemon=True,
            ).start()
        self.queue_rescans()
        interval = self.registry.settings.sync_interval
        next_sync = time.monotonic() + interval
        while not stop.is_set():
            if interval and time.monotonic() >= next_sync:
                self.sync_upstream()
                next_sync = time.monotonic() + interval
            try:
                worked = self.run_once()
            except Exception:  # the database is away: wait and try again
                log.warning("the worker could not claim a job", exc_info=True)
                worked = False
            if not worked:
                stop.wait(poll_seconds)


def start_worker_thread(registry: EmbeddedRegistry) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    runner = JobRunner(registry)
    thread = threading.Thread(
        target=runner.run_forever, args=(stop,), name="modelctl-worker", daemon=True
    )
    thread.start()
    return thread, stop


def wait_for(registry: EmbeddedRegistry, job_id: int, timeout: float) -> jobs.JobView:
    """Poll until a job is done (tests, the embedded path)."""
    deadline = time.monotonic() + timeout
    while True:
        with unit_of_work(registry.sessions) as session:
            job = jobs.get(session, job_id)
        if job.done or time.monotonic() > deadline:
            return job
        time.sleep(0.05)
