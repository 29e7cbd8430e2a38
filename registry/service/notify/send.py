"""One attempt to hand one notification to one receiver. Raises `DeliveryFailed` with a
one-line reason; the dispatcher records it and tries again later."""

from __future__ import annotations

import smtplib
import time
from typing import Any

import httpx

from registry.service.notify.config import SmtpTarget, Target, WebhookTarget
from registry.service.notify.payloads import email_message, webhook_body
from registry.service.notify.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature

TIMEOUT_SECONDS = 10.0


class DeliveryFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Sender:
    """Sends notifications; one HTTP client (connections and TLS context reused) per sender.
    Used by one thread: the worker's dispatcher."""

    def __init__(self) -> None:
        # No redirects: a signed body goes to the configured URL or nowhere.
        self._http = httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    def deliver(self, target: Target, payload: dict[str, Any]) -> None:
        if isinstance(target, WebhookTarget):
            self._post(target, payload)
        else:
            _mail(target, payload)

    def _post(self, target: WebhookTarget, payload: dict[str, Any]) -> None:
        body = webhook_body(payload, target.format)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "modelctl-notify/1",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(target.secret, timestamp, body),
            "X-Modelctl-Event": str(payload["event"]),
            "X-Modelctl-Delivery": str(payload["id"]),
        }
        try:
            response = self._http.post(target.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}"[:300]) from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"HTTP {response.status_code} from the receiver")


def _mail(target: SmtpTarget, payload: dict[str, Any]) -> None:
    message = email_message(payload, target)
    try:
        with smtplib.SMTP(target.host, target.port, timeout=TIMEOUT_SECONDS) as smtp:
            if target.starttls:
                smtp.starttls()
            if target.user and target.password:
                smtp.login(target.user, target.password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}"[:300]) from exc
