"""Webhook signatures: HMAC-SHA256 over `<timestamp>.<body>` (the Stripe/Slack scheme).

Headers: `X-Modelctl-Timestamp: <unix seconds>` and `X-Modelctl-Signature: v1=<hex>`. A
receiver recomputes the HMAC with the shared secret over the timestamp header, a dot and the
raw body bytes, compares in constant time, and refuses a timestamp older than a few minutes
(a replayed request). `verify` is that recipe, for receivers written in Python and the tests.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Modelctl-Timestamp"
SIGNATURE_HEADER = "X-Modelctl-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(
    secret: bytes,
    timestamp_header: str,
    signature_header: str,
    body: bytes,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """Whether a request's headers sign `body` with `secret`, sent within `tolerance`."""
    if not timestamp_header.isdigit():
        return False
    timestamp = int(timestamp_header)
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return hmac.compare_digest(expected.encode(), signature_header.strip().encode())
