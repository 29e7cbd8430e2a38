"""A real S3 protocol server on loopback for the tests: moto's `ThreadedMotoServer`.

One server per test session (and per xdist worker); each test gets its own bucket and the
standard AWS variables pointing at the server, so the store under test is built exactly as a
deployment builds it (`MODELCTL_BLOB_STORE=s3://BUCKET/PREFIX` plus `AWS_*`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def aws_env(monkeypatch: pytest.MonkeyPatch, endpoint: str, tmp_path: Path) -> None:
    """The standard AWS variables for the moto server; no config file of the developer's."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "modelctl-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "modelctl-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)


def make_bucket(endpoint: str) -> str:
    import boto3

    name = f"modelctl-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_spec(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """`s3://<fresh bucket>/registry` with the AWS variables set for the moto server."""
    aws_env(monkeypatch, moto_endpoint, tmp_path)
    return f"s3://{make_bucket(moto_endpoint)}/registry"
