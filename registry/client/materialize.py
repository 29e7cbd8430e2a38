"""Materialize a signed checkpoint into a folder, verified as it is written (no database).

The half of `modelctl pull` that both registries share: the embedded one
(`registry/service/pull.py` finds the signed checkpoint in its database, then calls
`pull_checkpoint` with its local blob store) and the remote one (`registry/client/remote.py`
fetches the signature bundles over HTTP, checks them with the pinned key through
`signed_from_bundles`, then calls `pull_checkpoint` with blobs read over HTTP).

The truth is the registry's *signed* model_signing v1.0 statement, never a database column:
the newest stored model-signature attestation that verifies with the registry's public key
and whose subject is the checkpoint's manifest digest gives the file list (path -> sha256).
Every blob streams from the store into a staging folder beside the destination
(`PARENT/.NAME.pull-RANDOM/`), hashed while it is written (1 MiB chunks, files in parallel,
each fsynced); one digest that differs from the signed one aborts the pull, naming the file.
Only when every file matches is the staging folder renamed into place, so on any failure the
destination is untouched. An existing destination is refused unless `force`, which swaps it
(old renamed aside, new renamed in, old removed).

What lands where:

* `plain` (default): `DEST/` holds exactly the signed files, nothing else, so
  `modelctl verify DEST --signature DEST.modelctl/model.sig --public-key REGISTRY.pub` passes
  offline. The evidence goes in the sibling folder `DEST.modelctl/` (not inside `DEST`, where
  `decision.json` would be an unsigned extra file and fail verification):
  `model.sig` (the signature bundle exactly as stored) and `decision.json` (the admission
  decision, as `policy check --json` prints it).
* `hf-cache`: DEST is a Hugging Face cache folder (`cache_dir`, may already exist and hold
  other models). The destination is `DEST/models--NS--NAME/`: `blobs/<sha256>`,
  `snapshots/<commit>/<path>` as relative symlinks to the blobs, and `refs/main` (plus one
  ref for each branch or tag the checkpoint was mirrored as) holding the commit, so
  `transformers` / `huggingface_hub` load it with `HF_HUB_OFFLINE=1`. The commit is the
  source's git commit when it is one, else the manifest digest's hex. The evidence goes in
  `DEST/models--NS--NAME/.modelctl/` (huggingface_hub ignores it).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, cast

from attestations.bundle import Bundle
from attestations.digests import Digest
from attestations.errors import AttestationError
from attestations.keys import PublicKeyVerifier, load_public_key
from attestations.model_signature import verify_model_signature
from registry.blobs.base import BlobReader
from registry.errors import Denied, InputError, IntegrityFailure, NotFound, StorageError
from registry.progress import Progress
from registry.views import DecisionView, PullResult

Layout = Literal["plain", "hf-cache"]
LAYOUTS: tuple[Layout, ...] = ("plain", "hf-cache")
CHUNK = 1 << 20
SIDECAR_SUFFIX = ".modelctl"
SIGNATURE_NAME = "model.sig"
DECISION_NAME = "decision.json"
_GIT_COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint as its verified model signature describes it."""

    name: str  # NS/NAME
    digest: str  # "sha256:<hex>", the manifest digest = the signed subject
    commit: str  # the source commit (a folder's is its digest)
    bundle: bytes  # the signature bundle, as stored
    files: tuple[tuple[str, str], ...]  # (path, sha256 hex), as signed
    sizes: Mapping[str, int]  # path -> size, for progress only
    revisions: tuple[str, ...] = ()  # source branches and tags mirrored as this checkpoint


def signed_from_bundles(
    *,
    name: str,
    manifest_digest: str,
    commit: str,
    bundles: Sequence[bytes],
    sizes: Mapping[str, int],
    registry_public_key: bytes | None,
    revisions: Sequence[str] = (),
) -> SignedCheckpoint:
    """The first of `bundles` (newest first) that is a model signature verifying with the
    registry's key, for exactly `manifest_digest`. Used in-process and by the remote client,
    which fetched the bundles over HTTP and checks them with the key it pinned."""
    ref = f"{name}@sha256:{manifest_digest}"
    if registry_public_key is None:
        raise IntegrityFailure(
            f"{ref}: the registry's public key is not available, so its signature cannot be "
            "checked (set MODELCTL_SIGNING_KEY_PASSPHRASE or provide the .pub file)"
        )
    verifier = PublicKeyVerifier([load_public_key(registry_public_key)])
    for data in bundles:
        try:
            verified = verify_model_signature(Bundle.from_bytes(data), verifier)
        except AttestationError:
            continue  # does not verify: never trusted
        ser = verified.predicate.serialization
        if verified.subject_digest.hex != manifest_digest:
            continue
        if ser.method != "files" or ser.hash_type != "sha256":
            continue
        return SignedCheckpoint(
            name=name,
            digest=f"sha256:{manifest_digest}",
            commit=commit,
            bundle=bytes(data),
            files=tuple((r.path, r.digest.hex()) for r in verified.predicate.resources),
            sizes=dict(sizes),
            revisions=tuple(revisions),
        )
    raise IntegrityFailure(
        f"{ref}: no model signature that verifies with the registry's key; "
        f"run `modelctl attest {ref}` first"
    )


def _open_output(path: Path) -> BinaryIO:
    """A new file (never an existing one). Module level so tests can inject write failures."""
    return open(path, "xb", buffering=0)


#: Start asynchronous writeback every this many bytes, so the final fsync has little left.
WRITEBACK_EVERY = 32 << 20


def _copy_verified(
    blobs: BlobReader, sha256: str, out: Path, progress: Progress, cancelled: threading.Event
) -> tuple[str, int]:
    """Stream one blob into `out`, hashing while writing; fsync. Returns (sha256 hex, size)."""
    h = hashlib.sha256()
    view = memoryview(bytearray(CHUNK))
    written = flushed = 0
    with blobs.open(Digest(sha256)) as src, _open_output(out) as dst:
        readinto = cast(io.BufferedIOBase, src).readinto
        while n := readinto(view):
            if cancelled.is_set():
                return "", written
            chunk = view[:n]
            h.update(chunk)
            done = 0
            while done < n:
                done += dst.write(chunk[done:]) or 0
            written += n
            progress.advance(n)
            if written - flushed >= WRITEBACK_EVERY:
                with contextlib.suppress(OSError, AttributeError):
                    fd = dst.fileno()
                    os.posix_fadvise(fd, flushed, written - flushed, os.POSIX_FADV_DONTNEED)
                flushed = written
        os.fsync(dst.fileno())
    return h.hexdigest(), written


@dataclass(frozen=True, slots=True)
class _Job:
    path: str  # as signed (what errors name)
    sha256: str
    out: Path


def _run_jobs(jobs: Sequence[_Job], blobs: BlobReader, *, workers: int, progress: Progress) -> int:
    """Copy every job in parallel; the first failure cancels the rest and is raised."""
    cancelled = threading.Event()

    def one(job: _Job) -> int:
        try:
            got, size = _copy_verified(blobs, job.sha256, job.out, progress, cancelled)
        except NotFound as exc:
            raise IntegrityFailure(
                f"{job.path}: its blob sha256:{job.sha256} is missing from the store",
                reasons=[job.path],
            ) from exc
        except OSError as exc:
            raise StorageError(
                f"cannot write {job.path} to {job.out.parent}: {exc.strerror or exc}"
            ) from exc
        if cancelled.is_set():
            return size
        if got != job.sha256:
            raise IntegrityFailure(
                f"{job.path}: the stored bytes hash to sha256:{got}, the signed manifest says "
                f"sha256:{job.sha256}; nothing was written to the destination",
                reasons=[job.path],
            )
        progress.file_done(job.path, reused=False)
        return size

    total = 0
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs) or 1))) as pool:
        futures = [pool.submit(one, j) for j in jobs]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        if any(f.exception() is not None for f in done):
            cancelled.set()
        wait(futures)
    errors = [e for e in (f.exception() for f in futures) if e is not None]
    if errors:  # a digest mismatch is the news, even if other files failed to write meanwhile
        raise next((e for e in errors if isinstance(e, IntegrityFailure)), errors[0])
    for f in futures:
        total += f.result()
    return total


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_small(path: Path, data: bytes) -> None:
    with _open_output(path) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _stage_plain(signed: SignedCheckpoint, root: Path) -> tuple[list[_Job], Callable[[], None]]:
    jobs: list[_Job] = []
    for path, sha in signed.files:
        out = root.joinpath(*path.split("/"))
        out.parent.mkdir(parents=True, exist_ok=True)
        jobs.append(_Job(path, sha, out))
    return jobs, lambda: None


def hf_commit(signed: SignedCheckpoint) -> str:
    return signed.commit if _GIT_COMMIT.fullmatch(signed.commit) else signed.digest.split(":")[-1]


#: A revision name that is safe as a path under `refs/`: no `..`, no empty or hidden parts.
_SAFE_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}(/[A-Za-z0-9_][A-Za-z0-9._-]{0,99}){0,3}")


def hf_refs(signed: SignedCheckpoint, commit: str) -> list[str]:
    """`main` plus the branches and tags this checkpoint was mirrored as, for offline loads.

    huggingface_hub resolves `revision="v1.0"` offline by reading `refs/v1.0`. Revision names
    come from the source, so only plain names become paths; a commit needs no ref.
    """
    refs = ["main"]
    for rev in sorted(set(signed.revisions)):
        if rev not in {"main", commit} and _SAFE_REF.fullmatch(rev) and ".." not in rev:
            refs.append(rev)
    return refs


def _stage_hf(signed: SignedCheckpoint, repo: Path) -> tuple[list[_Job], Callable[[], None]]:
    commit = hf_commit(signed)
    blobs_dir = repo / "blobs"
    snapshot = repo / "snapshots" / commit
    blobs_dir.mkdir(parents=True)
    (repo / "refs").mkdir()
    snapshot.mkdir(parents=True)
    jobs: list[_Job] = []
    seen: set[str] = set()
    for path, sha in signed.files:
        if sha not in seen:
            seen.add(sha)
            jobs.append(_Job(path, sha, blobs_dir / sha))

    def link() -> None:
        for path, sha in signed.files:
            place = snapshot.joinpath(*path.split("/"))
            place.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(blobs_dir / sha, place.parent), place)
        for ref in hf_refs(signed, commit):
            (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
            _write_small(repo / "refs" / ref, commit.encode())

    return jobs, link


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _install(pairs: Sequence[tuple[Path, Path]], stage: Path, *, force: bool) -> bool:
    """Rename each staged path onto its final one, all or nothing. True: something was replaced."""
    moved_aside: list[tuple[Path, Path]] = []
    installed: list[Path] = []
    try:
        for i, (staged, final) in enumerate(pairs):
            if _exists(final):
                if not force:
                    raise InputError(f"{final} already exists; pass --force to replace it")
                aside = stage / f"old-{i}"
                os.rename(final, aside)
                moved_aside.append((aside, final))
            os.rename(staged, final)
            installed.append(final)
    except BaseException:
        for final in reversed(installed):
            with contextlib.suppress(OSError):
                os.rename(final, stage / f"failed-{final.name}")
        for aside, final in reversed(moved_aside):
            with contextlib.suppress(OSError):
                os.rename(aside, final)
        raise
    for _, final in pairs:
        _fsync_dir(final.parent)
    return bool(moved_aside)


@dataclass(frozen=True, slots=True)
class _Plan:
    final: Path  # what is renamed into place
    sidecar: Path  # the folder holding model.sig and decision.json
    finals: tuple[Path, ...]  # every path the pull creates
    model_path: Path  # where the model files end up


def _plan(signed: SignedCheckpoint, dest: Path, layout: Layout) -> _Plan:
    if layout == "plain":
        sidecar = dest.with_name(dest.name + SIDECAR_SUFFIX)
        return _Plan(final=dest, sidecar=sidecar, finals=(dest, sidecar), model_path=dest)
    namespace, _, name = signed.name.partition("/")
    final = dest / f"models--{namespace}--{name}"
    return _Plan(
        final=final,
        sidecar=final / SIDECAR_SUFFIX,
        finals=(final,),
        model_path=final / "snapshots" / hf_commit(signed),
    )


def _stage(
    signed: SignedCheckpoint, stage: Path, layout: Layout
) -> tuple[Path, Path, list[_Job], Callable[[], None]]:
    """Create the staging folder: (model folder, evidence folder, copy jobs, finishing step)."""
    try:
        stage.mkdir()
        staged_model = stage / "model"
        staged_model.mkdir()
        if layout == "plain":
            jobs, finish = _stage_plain(signed, staged_model)
            staged_meta = stage / "meta"
        else:
            jobs, finish = _stage_hf(signed, staged_model)
            staged_meta = staged_model / SIDECAR_SUFFIX
        staged_meta.mkdir()
    except OSError as exc:
        raise StorageError(f"cannot stage the pull in {stage.parent}: {exc.strerror}") from exc
    return staged_model, staged_meta, jobs, finish


def check_layout(layout: str) -> Layout:
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    return layout  # narrowed by the membership test


def require_admitted(decision: DecisionView) -> None:
    """`Denied`, naming the failing checks, unless the decision allows the pull."""
    if not decision.allowed:
        raise Denied(
            f"{decision.name}@{decision.digest} is not admitted to {decision.environment!r}: "
            + "; ".join(decision.reasons),
            reasons=list(decision.reasons),
        )


def pull_checkpoint(
    signed: SignedCheckpoint,
    decision: DecisionView,
    *,
    blobs: BlobReader,
    dest: Path,
    force: bool,
    layout: Layout,
    workers: int,
    progress: Progress,
) -> PullResult:
    """Stage, verify, then rename into place. See the module docstring for the layouts."""
    started = time.monotonic()
    check_layout(layout)
    plan = _plan(signed, Path(os.path.abspath(dest)), layout)
    if not force:
        for path in plan.finals:
            if _exists(path):
                raise InputError(f"{path} already exists; pass --force to replace it")
    try:
        plan.final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {plan.final.parent}: {exc.strerror}") from exc
    stage = plan.final.parent / f".{plan.final.name}.pull-{secrets.token_hex(4)}"
    try:
        staged_model, staged_meta, jobs, finish = _stage(signed, stage, layout)
        progress.begin(
            files=len(jobs),
            total_bytes=sum(signed.sizes.get(j.path, 0) for j in jobs),
            description=f"{signed.name}@{signed.digest.split(':')[-1][:12]}",
        )
        try:
            total = _run_jobs(jobs, blobs, workers=workers, progress=progress)
        finally:
            progress.end()
        try:
            finish()
            _write_small(staged_meta / SIGNATURE_NAME, signed.bundle)
            _write_small(
                staged_meta / DECISION_NAME,
                (json.dumps(decision.to_json(), indent=2, sort_keys=True) + "\n").encode(),
            )
            pairs = [(staged_model, plan.final)]
            if layout == "plain":
                pairs.append((staged_meta, plan.sidecar))
            replaced = _install(pairs, stage, force=force)
        except OSError as exc:
            raise StorageError(f"cannot write {plan.final}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return PullResult(
        name=signed.name,
        digest=signed.digest,
        environment=decision.environment,
        layout=layout,
        destination=str(plan.final),
        model_path=str(plan.model_path),
        signature_path=str(plan.sidecar / SIGNATURE_NAME),
        decision_path=str(plan.sidecar / DECISION_NAME),
        files=len(signed.files),
        bytes=total,
        seconds=time.monotonic() - started,
        replaced=replaced,
        decision=decision,
    )
