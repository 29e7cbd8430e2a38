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

MAX_EXAMPLES = 8


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
