"""The bytes sent for a notification: JSON for webhooks, `{"text": ...}` for Slack, email."""

from __future__ import annotations

import json
from email.message import EmailMessage
from typing import Any

from registry.service.notify.config import PayloadFormat, SmtpTarget


def webhook_body(payload: dict[str, Any], payload_format: PayloadFormat) -> bytes:
    """`payload` is a stored `Notification.to_json()`; the body is what gets signed."""
    if payload_format is PayloadFormat.SLACK:
        document: dict[str, Any] = {"text": f"[modelctl] {payload['summary']}"}
    else:
        document = payload
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def email_message(payload: dict[str, Any], target: SmtpTarget) -> EmailMessage:
    message = EmailMessage()
    # Header values are one line: a summary with a newline must not inject headers.
    summary = " ".join(str(payload["summary"]).split())[:200]
    message["Subject"] = f"[modelctl] {summary}"
    message["From"] = target.sender
    message["To"] = ", ".join(target.recipients)
    message.set_content(
        f"{payload['summary']}\n\n{json.dumps(payload, indent=2, sort_keys=True)}\n"
    )
    return message
