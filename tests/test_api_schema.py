"""Property tests of the API against its own OpenAPI document (schemathesis), bounded.

A fixed, small number of examples per operation, a deterministic seed (`derandomize`), no
example database, no deadline flakiness, and a timeout: `make test` runs it like any other
test. Every response must be documented (status, content type, schema) and never a 5xx.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from registry.api.app import create_app
from registry.settings import Settings
from tests.api_server import Seeded, live_server, seed
from tests.fakes.hfhub import FakeHub

MAX_EXAMPLES = 8


@pytest.fixture
def seeded(
    run_cli: Any, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Seeded]:
    """A registry with one mirrored, attested checkpoint (org/tiny), as tests/test_api.py has."""
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
        monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
        yield seed(run_cli, hub, tmp_path)


# Built at import (schemathesis parametrizes from the document); removed after the module.
_HOME = Path(tempfile.mkdtemp(prefix="modelctl-schema-"))
APP = create_app(Settings.from_env({}, home=_HOME), start_worker=False)
TOKEN = APP.state.registry.token_create("schema-admin", "admin").secret
schema = schemathesis.openapi.from_asgi("/v1/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    APP.state.registry.close()
    shutil.rmtree(_HOME, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
@pytest.mark.timeout(300)
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case[Any]) -> None:
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
    case.validate_response(
        response,
        checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
    )


# -- response bodies of a scripted session, checked against the document's own schemas -------


def _json_operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(method, path, status, schema) of every 2xx JSON response the document declares."""
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {}).get("application/json")
                if status.startswith("2") and content is not None:
                    yield method, path, status, content.get("schema", {})


#: JSON answers that are documents of their own, served as stored, not a view of the registry.
OPAQUE = {("get", "/v1/checkpoints/{namespace}/{name}/{digest}/attestations/{attestation_id}")}
#: Routes that always answer with a problem (the success response is never sent).
GONE = {("post", "/v1/exceptions")}


def test_every_v1_json_response_names_its_model() -> None:
    missing = [
        (method, path)
        for method, path, _, schema in _json_operations(APP.openapi())
        if path.startswith("/v1/") and (method, path) not in OPAQUE | GONE and "$ref" not in schema
    ]
    assert missing == []


class _BodyChecker:
    """Calls the live API and validates each 2xx body against the operation's schema."""

    def __init__(self, url: str, doc: dict[str, Any], tokens: dict[str, str]) -> None:
        self.url, self.doc, self.tokens = url, doc, tokens
        self.checked: set[tuple[str, str]] = set()

    def call(self, method: str, template: str, role: str, **kw: Any) -> Any:
        path = template.format(**kw.pop("path", {}))
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        response = httpx.request(method, self.url + path, headers=headers, **kw)
        assert 200 <= response.status_code < 300, (method, path, response.text[:300])
        operation = self.doc["paths"][template][method.lower()]
        content = operation["responses"][str(response.status_code)]["content"]
        schema = {**content["application/json"]["schema"], "components": self.doc["components"]}
        body = response.json()
        errors = [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(body)]
        assert errors == [], (method, template, errors[:5])
        self.checked.add((method.lower(), template))
        return body


def test_response_bodies_match_the_openapi_schemas(seeded: Seeded) -> None:
    with live_server(create_app(Settings.from_env(), start_worker=False)) as server:
        registry = server.app.state.registry
        tokens = {
            role: registry.token_create(f"bodies-{role}", role).secret
            for role in ("reader", "security", "admin")
        }
        api = _BodyChecker(server.url, server.app.openapi(), tokens)
        namespace, name = seeded.ref.split("@")[0].split("/")
        cp = {"namespace": namespace, "name": name, "digest": seeded.digest}
        checkpoint = "/v1/checkpoints/{namespace}/{name}/{digest}"
        api.call("GET", "/v1/health", "reader")
        api.call("GET", "/v1/whoami", "reader")
        api.call("GET", "/v1/models", "reader")
        api.call("GET", "/v1/resolve", "reader", params={"ref": seeded.ref})
        api.call("GET", checkpoint, "reader", path=cp)
        api.call("GET", checkpoint + "/attestations", "reader", path=cp)
        api.call("GET", checkpoint + "/scans", "reader", path=cp)
        api.call("GET", checkpoint + "/findings", "reader", path=cp)
        api.call(
            "POST", "/v1/admission/check", "reader", json={"ref": seeded.ref, "environment": "dev"}
        )
        reason = {"reason": "CVE-2099-9"}
        api.call("POST", checkpoint + "/quarantine", "security", path=cp, json=reason)
        api.call("GET", "/v1/quarantines", "reader")
        api.call("POST", checkpoint + "/release", "security", path=cp, json={"reason": "fixed"})
        api.call("GET", "/v1/exceptions", "reader")
        api.call("GET", "/v1/exception-requests", "reader")
        api.call("GET", "/v1/triage", "reader")
        made = api.call(
            "POST", "/v1/tokens", "admin", json={"name": "bodies-new", "role": "reader"}
        )
        api.call("GET", "/v1/tokens", "admin")
        api.call("POST", "/v1/tokens/{token}/revoke", "admin", path={"token": made["name"]})
        api.call("GET", "/v1/audit", "admin")
        job = api.call("POST", "/v1/scans", "admin", json={"ref": seeded.ref})
        api.call("GET", "/v1/jobs/{job_id}", "reader", path={"job_id": job["id"]})
        bulk = {"filter": {"q": namespace}}
        api.call("POST", "/v1/bulk/{action}", "reader", path={"action": "decide"}, json=bulk)
        done = api.call(
            "POST",
            "/v1/bulk/{action}",
            "security",
            path={"action": "quarantine"},
            json={**bulk, "dry_run": False, "reason": "bulk", "refs": [seeded.ref]},
        )
        assert [o["result"] for o in done["outcomes"]] == ["quarantined"]
    assert len(api.checked) == 22
