"""`MODELCTL_NOTIFY_CONFIG` (a JSON file) and `MODELCTL_SMTP_*`: where notifications go.

Parsed once into frozen objects; anything wrong is an `InputError` naming the bad field, so a
worker with a broken configuration refuses to start instead of dropping notifications.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from registry.errors import InputError

_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,100}")
MAX_CONFIG_BYTES = 1024 * 1024


class EventKind(StrEnum):
    """What a notification is about (a target's `events` list names these)."""

    FINDINGS = "findings"  # a scan found critical or high findings the last scan did not
    DENIED = "denied"  # a checkpoint allowed in an environment is now denied there
    QUARANTINED = "quarantined"
    EXCEPTION_EXPIRING = "exception_expiring"  # an exception expires within `expiry_days`
    UPSTREAM_COMMIT = "upstream_commit"  # a watched model has a new upstream commit


class PayloadFormat(StrEnum):
    JSON = "json"
    SLACK = "slack"  # {"text": ...}: Slack, Mattermost and Teams incoming webhooks


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    name: str
    url: str
    secret: bytes
    events: frozenset[EventKind]
    format: PayloadFormat


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    events: frozenset[EventKind]
    user: str | None = None
    password: str | None = None
    starttls: bool = False
    name: str = "email"


Target = WebhookTarget | SmtpTarget


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    targets: tuple[Target, ...]
    expiry_days: int = 7
    max_attempts: int = 5
    backoff_seconds: float = 30.0  # first retry after this, doubling each time

    def targets_for(self, kind: EventKind) -> list[Target]:
        return [t for t in self.targets if kind in t.events]


def load(env: Mapping[str, str]) -> NotifyConfig | None:
    """The configuration in `env`, or None when no notification is configured."""
    path = env.get("MODELCTL_NOTIFY_CONFIG")
    document: dict[str, Any] = _read(Path(path).expanduser()) if path else {}
    targets: list[Target] = [_webhook(t, env, i) for i, t in enumerate(_list(document, "targets"))]
    # Every field is checked even when no target is left: a typo is refused, not ignored.
    expiry_days = _int(document, "expiry_days", 7, 1, 365)
    max_attempts = _int(document, "max_attempts", 5, 1, 20)
    backoff_seconds = float(_int(document, "backoff_seconds", 30, 0, 86400))
    smtp = _smtp(env)
    if smtp is not None:
        targets.append(smtp)
    if not targets:
        return None
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise InputError("MODELCTL_NOTIFY_CONFIG: target names must be unique")
    return NotifyConfig(
        targets=tuple(targets),
        expiry_days=expiry_days,
        max_attempts=max_attempts,
        backoff_seconds=backoff_seconds,
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise InputError(f"MODELCTL_NOTIFY_CONFIG: cannot read {str(path)!r:.200}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise InputError("MODELCTL_NOTIFY_CONFIG: larger than 1 MiB")
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"MODELCTL_NOTIFY_CONFIG: not JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise InputError("MODELCTL_NOTIFY_CONFIG: expected a JSON object")
    unknown = set(document) - {"targets", "expiry_days", "max_attempts", "backoff_seconds"}
    if unknown:
        raise InputError(f"MODELCTL_NOTIFY_CONFIG: unknown field {sorted(unknown)[0]!r:.60}")
    return document


def _list(document: Mapping[str, Any], key: str) -> list[Any]:
    value = document.get(key, [])
    if not isinstance(value, list):
        raise InputError(f"MODELCTL_NOTIFY_CONFIG: {key} must be a list")
    return value


def _int(document: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = document.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"MODELCTL_NOTIFY_CONFIG: {key} must be an integer from {low} to {high}")
    return value


def _events(value: object, where: str) -> frozenset[EventKind]:
    if value is None:
        return frozenset(EventKind)
    if not isinstance(value, list) or not value:
        raise InputError(f"{where}: events must be a non-empty list")
    try:
        return frozenset(EventKind(v) for v in value)
    except ValueError as exc:
        known = ", ".join(k.value for k in EventKind)
        raise InputError(f"{where}: unknown event in {value!r:.100}; known: {known}") from exc


def _webhook(item: object, env: Mapping[str, str], index: int) -> WebhookTarget:
    where = f"MODELCTL_NOTIFY_CONFIG: targets[{index}]"
    if not isinstance(item, dict):
        raise InputError(f"{where}: expected an object")
    unknown = set(item) - {"name", "url", "secret_env", "events", "format"}
    if unknown:
        raise InputError(f"{where}: unknown field {sorted(unknown)[0]!r:.60}")
    name, url, secret_env = item.get("name"), item.get("url"), item.get("secret_env")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(f"{where}: name must be 1-100 letters, digits, '.', '_' or '-'")
    if not isinstance(url, str) or not re.fullmatch(r"https?://[^\s]{1,2000}", url):
        raise InputError(f"{where}: url must be an http:// or https:// URL")
    # The secret itself never sits in the file: the file names the variable that holds it.
    if not isinstance(secret_env, str) or not _ENV_NAME.fullmatch(secret_env):
        raise InputError(f"{where}: secret_env must name an environment variable")
    secret = env.get(secret_env) or ""
    if len(secret) < 16:
        raise InputError(f"{where}: ${secret_env} must hold a secret of at least 16 characters")
    try:
        payload_format = PayloadFormat(item.get("format", "json"))
    except ValueError as exc:
        raise InputError(f"{where}: format must be json or slack") from exc
    return WebhookTarget(
        name=name,
        url=url,
        secret=secret.encode(),
        events=_events(item.get("events"), where),
        format=payload_format,
    )


def _smtp(env: Mapping[str, str]) -> SmtpTarget | None:
    host = env.get("MODELCTL_SMTP_HOST")
    if not host:
        return None
    raw_port = env.get("MODELCTL_SMTP_PORT") or "25"
    if not raw_port.isdigit() or not 1 <= int(raw_port) <= 65535:
        raise InputError(f"MODELCTL_SMTP_PORT must be a port number, not {raw_port!r:.20}")
    sender = env.get("MODELCTL_SMTP_FROM") or ""
    recipients = tuple(r.strip() for r in (env.get("MODELCTL_SMTP_TO") or "").split(",") if r)
    if "@" not in sender or not recipients or any("@" not in r for r in recipients):
        raise InputError(
            "MODELCTL_SMTP_HOST is set: MODELCTL_SMTP_FROM and MODELCTL_SMTP_TO "
            "(comma-separated) must be email addresses"
        )
    events_raw = env.get("MODELCTL_SMTP_EVENTS")
    events = (
        _events([e.strip() for e in events_raw.split(",") if e.strip()], "MODELCTL_SMTP_EVENTS")
        if events_raw
        else frozenset(EventKind)
    )
    starttls = (env.get("MODELCTL_SMTP_STARTTLS") or "").lower() in {"1", "true", "yes", "on"}
    return SmtpTarget(
        host=host,
        port=int(raw_port),
        sender=sender,
        recipients=recipients,
        events=events,
        user=env.get("MODELCTL_SMTP_USER") or None,
        password=env.get("MODELCTL_SMTP_PASSWORD") or None,
        starttls=starttls,
    )
