"""Errors as RFC 9457 problem details (`application/problem+json`) with a `reason` code.

Where registry errors become HTTP: the status follows who is at fault (`registry.errors`'
one error map, which the CLI and the worker read too), `reason` is a stable machine-readable
code (`registry.errors.kind_of`: the CLI's `--json` `kind`), and a 5xx
never carries internals (the detail is generic; the server log has the rest, without secrets).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from attestations.errors import AttestationError
from registry.errors import (
    RegistryError,
    StorageError,
    UpstreamError,
    http_status_for,
    kind_of,
)

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("modelctl.api")


class ApiProblem(Exception):
    """Raised by routes and dependencies for a problem that is not a registry error."""

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        reasons: Sequence[str] = (),
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.title = title or _TITLES.get(status, "Error")
        self.headers = headers or {}
        self.reasons = list(reasons)


_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Payload too large",
    416: "Range not satisfiable",
    422: "Unprocessable content",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
}


def problem(
    status: int,
    reason: str,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    reasons: Sequence[str] = (),
    instance: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://modelctl.dev/problems/{reason}",
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": " ".join(detail.split()),
        "reason": reason,
    }
    if reasons:
        body["reasons"] = list(reasons)
    if instance:
        body["instance"] = instance
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem JSON."""

    async def on_registry_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RegistryError | AttestationError)
        status = http_status_for(exc)
        if status >= 500:
            log.error("%s %s: %s: %s", request.method, request.url.path, kind_of(exc), exc)
            detail = (
                "the registry's storage failed; the server log has the details"
                if isinstance(exc, StorageError)
                else str(exc)
                if isinstance(exc, UpstreamError)
                else "the server failed; the server log has the details"
            )
            return problem(status, kind_of(exc), detail, instance=request.url.path)
        reasons = exc.reasons if isinstance(exc, RegistryError) else []
        return problem(status, kind_of(exc), str(exc), reasons=reasons)

    async def on_api_problem(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiProblem)
        return problem(
            exc.status,
            exc.reason,
            exc.detail,
            title=exc.title,
            headers=exc.headers,
            reasons=exc.reasons,
        )

    async def on_http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "")
        return problem(exc.status_code, reason, detail, headers=dict(exc.headers or {}))

    async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return problem(422, "invalid_request", "; ".join(parts) or "invalid request")

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Never the exception text: it may hold SQL, paths or a connection string.
        log.error(
            "%s %s: unexpected %s",
            request.method,
            request.url.path,
            type(exc).__name__,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        return problem(500, "internal_error", "the server failed; the server log has the details")

    app.add_exception_handler(RegistryError, on_registry_error)
    app.add_exception_handler(AttestationError, on_registry_error)
    app.add_exception_handler(ApiProblem, on_api_problem)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)


#: For route decorators: the problem responses every route may give, in the OpenAPI document.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": _TITLES[status],
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for status in (400, 401, 403, 404, 422)
}
