"""Settings and bounds, read once from the environment into frozen objects."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from registry.errors import InputError

DEFAULT_HOME = Path("~/.local/share/modelctl")
_PROXY_GLOB = re.compile(r"(hf|ms)://[A-Za-z0-9._*?\[\]-]+/[A-Za-z0-9._*?\[\]-]+")


@dataclass(frozen=True, slots=True)
class Limits:
    """Every bound on outside input lives here."""

    max_files: int = 100_000
    max_file_size: int = 2 * 1024**4  # 2 TiB: larger than any real shard, small enough to bound
    max_total_size: int = 16 * 1024**4
    max_listing_bytes: int = 64 * 1024**2


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    database_url: str
    blob_store: str
    hf_endpoint: str | None = None
    hf_token: str | None = None
    modelscope_endpoint: str | None = None
    modelscope_token: str | None = None
    signing_key: Path | None = None  # PEM; default: $MODELCTL_HOME/keys/registry.key
    signing_key_passphrase: str | None = None
    download_workers: int = 8
    # The admission policy this registry enforces (MODELCTL_POLICY); None: the shipped defaults.
    policy_file: Path | None = None
    # Local ingest is hashing plus disk writes: two threads a core keep both busy.
    hash_workers: int = field(default_factory=lambda: min(32, 2 * (os.cpu_count() or 1)))
    limits: Limits = field(default_factory=Limits)
    # The server (`modelctl serve`): reads without a token when true; writes always need one.
    public_reads: bool = False
    max_upload_bytes: int = 4 * 1024**2  # an attestation bundle upload; larger is 413
    mirror_roots: tuple[
        Path, ...
    ] = ()  # folders the server may mirror from (MODELCTL_MIRROR_ROOTS)
    trusted_keys: tuple[Path, ...] = ()  # PEM public keys whose uploaded attestations verify
    run_worker: bool = True  # `modelctl serve` runs jobs itself (MODELCTL_SERVE_WORKER=false: not)
    # Pull-through (MODELCTL_PROXY_SOURCES): hub globs whose models `/hf` mirrors on first ask.
    proxy_sources: tuple[str, ...] = ()
    # Watched models' new upstream commits are mirrored every this many seconds by the
    # workers (MODELCTL_SYNC_INTERVAL; 0: only `modelctl sync` does).
    sync_interval: float = 0.0
    # Workers queue re-scans of checkpoints judged by older scanner rules when they start
    # (MODELCTL_RESCAN_ON_START=false: only `modelctl rescan` does).
    rescan_on_start: bool = True
    # A running job whose worker sent no heartbeat for this long is taken over by another
    # (MODELCTL_JOB_LEASE_SECONDS; workers beat every half second).
    job_lease_seconds: float = 60.0
    # The transparency log's checkpoint origin (MODELCTL_LOG_ORIGIN); None: modelctl.local/<host>.
    log_origin: str | None = None
    # Where the log's tiles live (MODELCTL_LOG_DIR) and its Ed25519 key (MODELCTL_LOG_KEY):
    # several servers append to one log, so they share the folder and the key.
    log_dir: Path | None = None
    log_key: Path | None = None

    @property
    def log_root(self) -> Path:
        """Folder of the transparency log's tiles and checkpoint (`MODELCTL_HOME/log`)."""
        return self.log_dir or self.home / "log"

    @property
    def log_key_path(self) -> Path:
        return self.log_key or self.home / "keys" / "log.ed25519"

    @property
    def signing_key_path(self) -> Path:
        return self.signing_key or self.home / "keys" / "registry.key"

    @property
    def embedded_database(self) -> bool:
        """The embedded SQLite database: migrated on open by every command, servers included.
        A shared database (PostgreSQL) is migrated only by `modelctl migrate`."""
        return self.database_url.startswith("sqlite")

    @property
    def blob_root(self) -> Path:
        """Folder of the local blob store (`file://` or a bare path in MODELCTL_BLOB_STORE)."""
        spec = self.blob_store
        if spec.startswith("file://"):
            return Path(spec[len("file://") :])
        if "://" in spec:
            raise InputError(f"unsupported blob store {spec!r}: only local folders for now")
        return Path(spec)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, home: Path | None = None
    ) -> Settings:
        env = os.environ if env is None else env
        home = (home or Path(env.get("MODELCTL_HOME") or DEFAULT_HOME)).expanduser().resolve()
        database_url = env.get("MODELCTL_DATABASE_URL") or f"sqlite:///{home / 'registry.db'}"
        blob_store = env.get("MODELCTL_BLOB_STORE") or str(home / "blobs")
        workers = env.get("MODELCTL_DOWNLOAD_WORKERS")
        try:
            download_workers = int(workers) if workers else 8
        except ValueError as exc:
            raise InputError(
                f"MODELCTL_DOWNLOAD_WORKERS must be an integer, not {workers!r}"
            ) from exc
        if not 1 <= download_workers <= 64:
            raise InputError("MODELCTL_DOWNLOAD_WORKERS must be between 1 and 64")
        return cls(
            home=home,
            database_url=database_url,
            blob_store=blob_store,
            hf_endpoint=env.get("HF_ENDPOINT") or None,
            hf_token=env.get("HF_TOKEN") or None,
            modelscope_endpoint=env.get("MODELSCOPE_ENDPOINT") or None,
            modelscope_token=env.get("MODELSCOPE_API_TOKEN") or None,
            download_workers=download_workers,
            signing_key=Path(env["MODELCTL_SIGNING_KEY"])
            if env.get("MODELCTL_SIGNING_KEY")
            else None,
            signing_key_passphrase=env.get("MODELCTL_SIGNING_KEY_PASSPHRASE") or None,
            public_reads=_flag(env, "MODELCTL_PUBLIC_READS"),
            mirror_roots=_paths(env.get("MODELCTL_MIRROR_ROOTS")),
            trusted_keys=_paths(env.get("MODELCTL_TRUSTED_KEYS")),
            run_worker=_flag(env, "MODELCTL_SERVE_WORKER", default=True),
            proxy_sources=parse_proxy_globs(env.get("MODELCTL_PROXY_SOURCES")),
            sync_interval=_seconds(env, "MODELCTL_SYNC_INTERVAL"),
            rescan_on_start=_flag(env, "MODELCTL_RESCAN_ON_START", default=True),
            job_lease_seconds=_lease(env),
            policy_file=Path(env["MODELCTL_POLICY"]).expanduser()
            if env.get("MODELCTL_POLICY")
            else None,
            log_origin=env.get("MODELCTL_LOG_ORIGIN") or None,
            log_dir=Path(env["MODELCTL_LOG_DIR"]).expanduser()
            if env.get("MODELCTL_LOG_DIR")
            else None,
            log_key=Path(env["MODELCTL_LOG_KEY"]).expanduser()
            if env.get("MODELCTL_LOG_KEY")
            else None,
        )


def parse_proxy_globs(text: str | None) -> tuple[str, ...]:
    """`MODELCTL_PROXY_SOURCES`: `hf://ORG/NAME` / `ms://ORG/NAME` globs, separated by commas
    or whitespace (`hf://Qwen/*, hf://google/gemma-*`). Raises InputError."""
    globs = tuple(g for g in re.split(r"[,\s]+", text or "") if g)
    for glob in globs:
        if not _PROXY_GLOB.fullmatch(glob):
            raise InputError(
                f"MODELCTL_PROXY_SOURCES: bad entry {glob!r:.100}; "
                "expected hf://ORG/NAME or ms://ORG/NAME globs, e.g. hf://Qwen/*"
            )
    return globs


def _seconds(env: Mapping[str, str], name: str) -> float:
    raw = env.get(name) or "0"
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 7 * 86400:
        raise InputError(f"{name} must be a number of seconds from 0 to 604800, not {raw!r:.40}")
    return value


def _lease(env: Mapping[str, str]) -> float:
    raw = env.get("MODELCTL_JOB_LEASE_SECONDS") or "60"
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 2 <= value <= 86400:
        raise InputError(
            f"MODELCTL_JOB_LEASE_SECONDS must be from 2 to 86400 seconds, not {raw!r:.40}"
        )
    return value


def _paths(value: str | None) -> tuple[Path, ...]:
    return tuple(Path(p).expanduser() for p in (value or "").split(os.pathsep) if p)


def _flag(env: Mapping[str, str], name: str, *, default: bool = False) -> bool:
    value = (env.get(name) or "").strip().lower()
    if not value:
        return default
    if value in {"0", "false", "no", "off"}:
        return False
    if value in {"1", "true", "yes", "on"}:
        return True
    raise InputError(f"{name} must be true or false, not {value!r}")
