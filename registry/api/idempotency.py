"""`Idempotency-Key` on `/v1` writes: a retried POST does not make a second job or row.

An ASGI middleware, so that every write route gets the same behaviour without knowing of it
(registry/service/idempotency.py has the rules). It applies to authenticated `POST`, `PUT`,
`PATCH` and `DELETE` requests under `/v1/` that carry the header, except token requests (their
answer holds a secret the registry never stores); everything else passes through untouched.
The response streams to the client as it is made and is kept (in full: write responses are
small JSON documents, and the body limit bounds requests) for replay.
"""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.api import problems
from registry.service import idempotency

HEADER = "idempotency-key"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Writes whose response must never be stored: a token's secret is shown once and the registry
#: keeps only its hash, so a token request is never replayed (nor kept).
NOT_KEPT = ("/v1/tokens",)


def _sessions(scope: Scope) -> Any:
    return scope["app"].state.registry.sessions


def _begin(scope: Scope, caller: str, key: str, fingerprint: str) -> idempotency.Outcome:
    with _sessions(scope)() as session:
        return idempotency.begin(session, caller, key, fingerprint)


def _finish(scope: Scope, row_id: int, status: int, content_type: str | None, body: bytes) -> None:
    with _sessions(scope)() as session:
        idempotency.finish(session, row_id, status, content_type, body)


class Idempotency:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in WRITE_METHODS
            or not scope["path"].startswith("/v1/")
            or scope["path"].startswith(NOT_KEPT)
        ):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = headers.get(HEADER)
        credential = headers.get("authorization")
        if key is None or not credential:  # anonymous writes are refused by the routes
            await self.app(scope, receive, send)
            return
        if not idempotency.valid_key(key):
            response = problems.problem(
                400,
                "bad_request",
                "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces",
            )
            await response(scope, receive, send)
            return
        body = await _read_body(receive)
        fingerprint = hashlib.sha256(
            b"\0".join(
                (scope["method"].encode(), scope["path"].encode(), scope["query_string"], body)
            )
        ).hexdigest()
        caller = hashlib.sha256(credential.encode("utf-8", "surrogateescape")).hexdigest()
        outcome = await run_in_threadpool(_begin, scope, caller, key, fingerprint)
        if isinstance(outcome, idempotency.Replay):
            await _replay(outcome, send)
            return
        if isinstance(outcome, idempotency.Refuse):
            response = problems.problem(outcome.status, outcome.reason, outcome.detail)
            await response(scope, receive, send)
            return
        await self._run(scope, body, send, outcome.row_id)

    async def _run(self, scope: Scope, body: bytes, send: Send, row_id: int) -> None:
        sent = False
        status = 500
        content_type: str | None = None
        chunks: list[bytes] = []

        async def replayed_receive() -> Message:
            nonlocal sent
            if sent:  # the body was read once; what follows is the client going away
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        finished = False

        async def capture(message: Message) -> None:
            nonlocal status, content_type, finished
            if message["type"] == "http.response.start":
                status = int(message["status"])
                content_type = Headers(raw=message.get("headers", [])).get("content-type")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    # Kept before the client has the whole answer: a retry sent the moment
                    # it arrives is replayed, never refused as still in progress.
                    await run_in_threadpool(
                        _finish, scope, row_id, status, content_type, b"".join(chunks)
                    )
                    finished = True
            await send(message)

        try:
            await self.app(scope, replayed_receive, capture)
        except BaseException:
            if not finished:
                await run_in_threadpool(_finish, scope, row_id, 500, None, b"")
            raise
        if not finished:  # an app that never ended its body: the key is given back
            await run_in_threadpool(_finish, scope, row_id, 500, None, b"")


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def _replay(outcome: idempotency.Replay, send: Send) -> None:
    headers = [
        (b"idempotent-replayed", b"true"),
        (b"content-length", str(len(outcome.body)).encode()),
    ]
    if outcome.content_type:
        headers.append((b"content-type", outcome.content_type.encode("latin-1")))
    await send({"type": "http.response.start", "status": outcome.status, "headers": headers})
    await send({"type": "http.response.body", "body": outcome.body, "more_body": False})
