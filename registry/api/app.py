"""The application factory. Nothing is created at import time: `create_app(settings)`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.api import docs, hf, k8s, log, problems, v1
from registry.api.docs import SecurityHeaders
from registry.api.idempotency import Idempotency
from registry.embedded import EmbeddedRegistry
from registry.settings import Settings
from registry.web import routes as web
from registry.web.oidc_settings import OidcSettings
from registry.worker import start_worker_thread

API_VERSION = "1"


def create_app(
    settings: Settings, *, registry: EmbeddedRegistry | None = None, start_worker: bool = True
) -> FastAPI:
    """The server app on one registry handle (made from `settings` unless one is given).

    The handle lives on `app.state.registry` (see `registry.api.deps`); the app closes it at
    shutdown only when it made it. Unless `start_worker` is false (or the settings say so),
    the app runs queued jobs in a thread while it is up.
    """
    OidcSettings.from_env()  # a half-configured single sign-on stops the server here, in one line
    owned = registry is None
    handle = registry if registry is not None else EmbeddedRegistry(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker = None
        if settings.run_worker and start_worker:
            worker = start_worker_thread(handle)
        try:
            yield
        finally:
            recorder = getattr(_app.state, "k8s_recorder", None)
            if recorder is not None:  # the webhook's decisions still queued are written
                await anyio.to_thread.run_sync(recorder.close)
            if worker is not None:
                thread, stop = worker
                stop.set()
                await anyio.to_thread.run_sync(thread.join)
            if owned:
                handle.close()

    app = FastAPI(
        title="modelctl registry",
        version=API_VERSION,
        description="Model supply-chain registry: models, checkpoints, files, attestations, "
        "scans, admission, quarantine, exceptions and the audit log. Errors are "
        "`application/problem+json` with a `reason` code (docs/api.md).",
        lifespan=lifespan,
        openapi_url="/v1/openapi.json",
        docs_url=None,  # no CDN Swagger UI: /v1/docs is a static page (registry.api.docs)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.registry = handle
    problems.install(app)
    app.add_middleware(Idempotency)  # inside the body limit: it reads bounded bodies only
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes)
    app.add_middleware(SecurityHeaders)  # outermost: on every response, 413s included
    _add_problem_schema(app)

    app.include_router(v1.router)
    app.include_router(log.router)
    app.include_router(docs.router)
    app.include_router(hf.router)
    app.include_router(k8s.router)
    app.include_router(web.router)
    return app


def _add_problem_schema(app: FastAPI) -> None:
    """Declare the problem+json body once, so routes can refer to it."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = {
            "type": "object",
            "required": ["type", "title", "status", "detail", "reason"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "reason": {"type": "string"},
                "reasons": {"type": "array", "items": {"type": "string"}},
                "instance": {"type": "string"},
            },
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class BodyLimit:
    """Refuse request bodies over `limit` bytes with a 413 problem, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            response = problems.problem(
                413, "payload_too_large", f"the body is over the {self.limit}-byte limit"
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise problems.ApiProblem(
                        413, "payload_too_large", f"the body is over the {self.limit}-byte limit"
                    )
            return message

        await self.app(scope, limited, send)


def app_from_env() -> FastAPI:
    """`create_app` on the settings in the environment: the factory each uvicorn worker
    process calls under `modelctl serve --workers N`."""
    return create_app(Settings.from_env())
