"""`/v1/docs`: the endpoints of the OpenAPI document as one static page, and security headers
for every HTML response.

The page is rendered on the server from `app.openapi()` and carries no script at all: the
registry's origin serves no third-party JavaScript (FastAPI's default Swagger UI loads unpinned
code from a CDN, which would then run with the registry's origin and cookies). The machine-
readable document stays at `/v1/openapi.json`.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

router = APIRouter(include_in_schema=False)

#: For HTML the registry renders: no script at all, styles only from its own origin, never
#: framed, forms only to itself (the web UI sends the same policy from `registry.web._plumbing`).
HTML_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_METHODS = ("get", "head", "post", "put", "patch", "delete")


@router.get("/v1/docs", response_class=HTMLResponse)
def docs_page(request: Request) -> HTMLResponse:
    """The API's endpoints by tag, from the OpenAPI document (no JavaScript)."""
    schema = request.app.openapi()
    return HTMLResponse(render_docs(schema), headers={"Cache-Control": "no-store"})


def render_docs(schema: dict[str, Any]) -> str:
    info = schema.get("info", {})
    title = escape(str(info.get("title", "API")))
    by_tag: dict[str, list[str]] = {}
    for path, operations in sorted(schema.get("paths", {}).items()):
        for method in _METHODS:
            operation = operations.get(method)
            if operation is None:
                continue
            tag = (operation.get("tags") or ["other"])[0]
            described = str(operation.get("description") or "").strip().split("\n")[0]
            summary = described or operation.get("summary") or operation.get("operationId") or ""
            by_tag.setdefault(str(tag), []).append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{escape(path)}</code></td>"
                f"<td>{escape(str(summary))}</td></tr>"
            )
    sections = "".join(
        f"<h2>{escape(tag)}</h2><table>{''.join(rows)}</table>"
        for tag, rows in sorted(by_tag.items())
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{title}: API</title>"
        '<link rel="stylesheet" href="/ui/static/style.css"></head><body><main>'
        f"<h1>{title} {escape(str(info.get('version', '')))}</h1>"
        f"<p>{escape(str(info.get('description', '')))}</p>"
        '<p>The machine-readable document: <a href="/v1/openapi.json">/v1/openapi.json</a>.</p>'
        f"{sections}</main></body></html>"
    )


class SecurityHeaders:
    """Add `HTML_SECURITY_HEADERS` to every `text/html` response that does not set its own
    (the web UI sets the same ones), and `nosniff` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                html = headers.get("content-type", "").startswith("text/html")
                for name, value in HTML_SECURITY_HEADERS.items():
                    if name not in headers and (html or name == "X-Content-Type-Options"):
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
