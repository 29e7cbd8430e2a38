"""`/k8s/admission`: AdmissionReview v1 for Pods, against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from policies import CheckResult, CheckStatus, Decision, Mode
from registry.api.app import create_app
from registry.service.decision_cache import DecisionCache
from registry.service.k8s_review import (
    MalformedReview,
    parse_admission_review,
    parse_reference,
)
from registry.settings import Settings
from tests.api_server import LiveServer, live_server
from tests.fakes.hfhub import FakeHub
from tests.test_hf_endpoint import hub, mirror_and_attest, model_files, reader_token
from tests.test_policy_cli import CARD, _safetensors

__all__ = ["hub"]  # the fixture, shared with the HF endpoint tests


class Webhook:
    def __init__(self, live: LiveServer, token: str, digest: str, commit: str) -> None:
        self.live = live
        self.token = token
        self.digest = digest  # org/tiny's admitted checkpoint
        self.commit = commit  # its source (hub) commit

    def post(
        self, body: Any, *, path: str = "/k8s/admission", token: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        if isinstance(body, bytes):
            return httpx.post(self.live.url + path, content=body, headers=headers, timeout=30)
        return httpx.post(self.live.url + path, json=body, headers=headers, timeout=30)

    def review(self, pod: dict[str, Any], *, path: str = "/k8s/admission") -> dict[str, Any]:
        uid = str(uuid.uuid4())
        answer = self.post(review(pod, uid=uid), path=path)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["apiVersion"] == "admission.k8s.io/v1"
        assert body["kind"] == "AdmissionReview"
        assert body["response"]["uid"] == uid
        response: dict[str, Any] = body["response"]
        return response

    @property
    def cache(self) -> DecisionCache:
        cache = self.live.app.state.k8s_decisions
        assert isinstance(cache, DecisionCache)
        return cache


def review(
    pod: dict[str, Any], *, uid: str = "u-1", kind: str = "Pod", op: str = "CREATE"
) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "llm-0",
            "namespace": "inference-prod",
            "operation": op,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "oldObject": None,
            "dryRun": False,
        },
    }


def contained(name: str, image: str, **extra: Any) -> dict[str, Any]:
    """A container that meets the shipped `strict` containment profile."""
    return {
        "name": name,
        "image": image,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
        **extra,
    }


def pod(
    annotations: dict[str, str] | None = None, init_args: list[str] | None = None
) -> dict[str, Any]:
    """A pod that meets the shipped `strict` profile: what the model checks see unchanged."""
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "containers": [contained("kserve-container", "vllm:1")],
    }
    if init_args is not None:
        spec["initContainers"] = [
            contained("storage-initializer", "kserve/storage-initializer", args=init_args)
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "llm-0",
            "labels": {"modelctl.dev/egress": "none"},
            "annotations": annotations or {},
        },
        "spec": spec,
    }


@pytest.fixture
def webhook(run_cli: Any, hub: FakeHub, isolated_env: Path) -> Iterator[Webhook]:
    digest = mirror_and_attest(run_cli, hub, "org/tiny", model_files())
    hub.add_repo("org/unsigned", {"README.md": CARD, "model.safetensors": _safetensors()})
    assert run_cli("mirror", "hf://org/unsigned").code == 0
    token = reader_token(isolated_env, "apiserver")
    with live_server(create_app(Settings.from_env())) as live:
        yield Webhook(live, token, digest, hub.commit("org/tiny").sha)


def test_annotated_admitted_model_is_allowed(webhook: Webhook) -> None:
    got = webhook.review(pod({"modelctl.dev/model": f"org/tiny@{webhook.digest}"}))
    assert got["allowed"] is True
    assert "status" not in got


def test_unsigned_model_is_denied_with_the_failing_checks(webhook: Webhook, run_cli: Any) -> None:
    unsigned = run_cli("inspect", "org/unsigned", "--json").json()["digest"]
    got = webhook.review(
        pod({"modelctl.dev/model": f"org/tiny@{webhook.digest}, org/unsigned@{unsigned}"})
    )
    assert got["allowed"] is False
    assert got["status"]["code"] == 403
    message = got["status"]["message"]
    assert "1 of 2 model reference(s) not admitted to 'prod'" in message
    assert f"org/unsigned@{unsigned}" in message
    assert "https://model_signing/signature/v1.0" in message
    assert f"org/tiny@{webhook.digest} (" not in message  # the admitted one is not blamed
    # dev is bound in warn mode: allowed, with the failures as warnings
    dev = webhook.review(
        pod({"modelctl.dev/model.0": f"org/unsigned@{unsigned}"}), path="/k8s/admission/dev"
    )
    assert dev["allowed"] is True
    assert any("model_signing" in w for w in dev["warnings"])
    # no policy bound to the environment: fail closed
    qa = webhook.review(
        pod({"modelctl.dev/model": f"org/tiny@{webhook.digest}"}), path="/k8s/admission/qa"
    )
    assert qa["allowed"] is False
    assert "no policy is bound" in qa["status"]["message"]


def test_several_annotations_and_kserve_references(webhook: Webhook) -> None:
    got = webhook.review(
        pod(
            {
                "modelctl.dev/model.main": f"org/tiny@{webhook.digest}",
                "modelctl.dev/model.draft": f"org/tiny@{webhook.commit}",
                "internal.serving.kserve.io/storage-initializer-sourceuri": f"hf://org/tiny:{webhook.commit}",
            },
            init_args=[f"hf://org/tiny:{webhook.commit}", "/mnt/models"],
        )
    )
    assert got["allowed"] is True, got
    unpinned = webhook.review(pod(init_args=["hf://org/tiny", "/mnt/models"]))
    assert unpinned["allowed"] is False
    assert "unpinned" in unpinned["status"]["message"]
    assert "initContainers[storage-initializer].args[0]" in unpinned["status"]["message"]
    unknown = webhook.review(pod({"modelctl.dev/model": "org/other@" + "ab" * 20}))
    assert unknown["allowed"] is False
    assert "no such checkpoint" in unknown["status"]["message"]
    tag = webhook.review(pod({"modelctl.dev/model": "org/tiny@v1"}))
    assert tag["allowed"] is False
    typo = webhook.review(pod({"modelctl.dev/models": f"org/tiny@{webhook.digest}"}))
    assert typo["allowed"] is False
    assert "unknown modelctl annotation" in typo["status"]["message"]
    plain = webhook.review(pod())
    assert plain["allowed"] is True


def test_kserve_uri_names_the_hub_repository_whatever_the_registry_name(
    webhook: Webhook, run_cli: Any, hub: FakeHub
) -> None:
    commit = hub.add_repo("org/other", model_files())
    mirrored = run_cli("mirror", "hf://org/other", "--name", "acme/renamed", "--json")
    assert mirrored.code == 0
    kserve = pod(init_args=[f"hf://org/other:{commit}", "/mnt/models"])
    denied = webhook.review(kserve)  # mirrored, not attested yet
    assert denied["allowed"] is False
    assert "model_signing" in denied["status"]["message"]
    assert run_cli("attest", f"acme/renamed@{mirrored.json()['digest']}").code == 0
    assert webhook.review(kserve)["allowed"] is True
    # the annotation syntax is about registry names: org/other is not one
    named = webhook.review(pod({"modelctl.dev/model": f"org/other@{commit}"}))
    assert named["allowed"] is False
    assert "no such checkpoint" in named["status"]["message"]
    assert webhook.review(pod({"modelctl.dev/model": f"acme/renamed@{commit}"}))["allowed"]


def test_quarantine_denies_even_when_the_decision_is_cached(webhook: Webhook, run_cli: Any) -> None:
    annotated = pod({"modelctl.dev/model": f"org/tiny@{webhook.digest}"})
    assert webhook.review(annotated)["allowed"] is True
    assert webhook.review(annotated)["allowed"] is True
    assert webhook.cache.hits >= 1  # the second review did not evaluate the policy again
    assert (
        run_cli("quarantine", f"org/tiny@{webhook.digest}", "--reason", "CVE-2026-0001").code == 0
    )
    got = webhook.review(annotated)
    assert got["allowed"] is False
    assert "quarantined: CVE-2026-0001" in got["status"]["message"]
    assert run_cli("release", f"org/tiny@{webhook.digest}", "--reason", "fixed").code == 0
    assert webhook.review(annotated)["allowed"] is True


def test_any_state_change_in_the_audit_log_drops_cached_decisions(webhook: Webhook) -> None:
    """A cached allow does not outlive a change of facts (a new scan, a revoked waiver or
    triage, written by any server): the webhook follows the audit log, as the status board
    does, and decides again at the next review, not after the cache's max age."""
    from registry.db.engine import unit_of_work
    from registry.db.models import AuditEvent
    from registry.embedded import EmbeddedRegistry

    annotated = pod({"modelctl.dev/model": f"org/tiny@{webhook.digest}"})
    assert webhook.review(annotated)["allowed"] is True
    assert webhook.review(annotated)["allowed"] is True
    hits, misses = webhook.cache.hits, webhook.cache.misses
    assert hits >= 1
    other = EmbeddedRegistry(Settings.from_env())  # another process's write, seen in the log
    try:
        with unit_of_work(other.sessions) as session:
            session.add(AuditEvent(actor="t", action="future.fact", subject="x", details={}))
    finally:
        other.close()
    assert webhook.review(annotated)["allowed"] is True
    assert (webhook.cache.hits, webhook.cache.misses) == (hits, misses + 1)  # decided again
    assert webhook.review(annotated)["allowed"] is True
    assert webhook.cache.hits == hits + 1  # and cached again until the next change


def test_webhook_quarantine_by_digest_denies_every_name_even_when_cached(
    webhook: Webhook, run_cli: Any
) -> None:
    mirrored = run_cli("mirror", "hf://org/tiny", "--name", "acme/copy", "--json")
    assert mirrored.json()["digest"] == webhook.digest  # the same bytes under another name
    assert run_cli("attest", "acme/copy").code == 0
    copy = pod({"modelctl.dev/model": f"acme/copy@{webhook.digest}"})
    assert webhook.review(copy)["allowed"] is True
    assert webhook.review(copy)["allowed"] is True  # cached
    assert run_cli("quarantine", "org/tiny", "--reason", "CVE-2026-0003").code == 0
    got = webhook.review(copy)
    assert got["allowed"] is False
    assert "quarantined: CVE-2026-0003" in got["status"]["message"]
    assert run_cli("release", "org/tiny", "--reason", "fixed").code == 0
    assert webhook.review(copy)["allowed"] is True
    config = run_cli("inspect", "acme/copy", "--json").json()["files"][0]["sha256"]
    assert run_cli("quarantine", f"sha256:{config}", "--reason", "bad file").code == 0
    by_file = webhook.review(copy)
    assert by_file["allowed"] is False
    assert f"quarantined by file sha256:{config}: bad file" in by_file["status"]["message"]


def test_malformed_reviews(webhook: Webhook) -> None:
    not_json = webhook.post(b"{nope")
    assert not_json.status_code == 400
    assert not_json.headers["content-type"].startswith("application/problem+json")
    no_uid = webhook.post(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}
    )
    assert no_uid.status_code == 400
    assert no_uid.json()["reason"] == "malformed_review"
    wrong_version = webhook.post({**review(pod()), "apiVersion": "admission.k8s.io/v1beta1"})
    assert wrong_version.status_code == 200  # a uid to echo: answered, and denied
    assert wrong_version.json()["response"]["allowed"] is False
    assert wrong_version.json()["response"]["status"]["code"] == 400
    assert wrong_version.json()["response"]["status"]["reason"] == "BadRequest"
    bad_pod = review(pod())
    bad_pod["request"]["object"]["metadata"]["annotations"] = {"modelctl.dev/model": 7}
    answer = webhook.post(bad_pod).json()["response"]
    assert answer["allowed"] is False
    assert "malformed AdmissionReview" in answer["status"]["message"]
    secret = webhook.post(review(pod(), kind="Secret")).json()["response"]
    assert secret["allowed"] is False
    assert "modelctl reviews Pods, their controllers" in secret["status"]["message"]
    no_template = webhook.post(review(pod(), kind="Deployment")).json()["response"]
    assert no_template["allowed"] is False
    assert "Deployment has no spec.template" in no_template["status"]["message"]
    deleted = webhook.post(review({}, op="DELETE")).json()["response"]
    assert deleted["allowed"] is True
    huge = webhook.post(b"[" + b"0," * (2 * 1024 * 1024) + b"0]")
    assert huge.status_code == 413


def test_webhook_needs_a_token(webhook: Webhook) -> None:
    anonymous = httpx.post(webhook.live.url + "/k8s/admission", json=review(pod()))
    assert anonymous.status_code == 401
    assert webhook.post(review(pod()), token="mctl_0000000000000000_" + "x" * 43).status_code == 401


# -- pure parts ----------------------------------------------------------------------------


def test_reference_syntax() -> None:
    digest = "sha256:" + "a" * 64
    assert parse_reference(f"org/m@{digest}", "x").digest == digest
    assert parse_reference("org/m@" + "b" * 40, "x").commit == "b" * 40
    assert parse_reference("hf://org/m:" + "c" * 40, "x").commit == "c" * 40
    for bad in (
        "org/m",
        "org/m@main",
        "hf://org/m",
        "hf://org/m:main",
        "hf://org/m/x:" + "c" * 40,
        "s3://bucket/m",
        "../m@" + digest,
        "org/m@sha256:abc",
        "x" * 600,
    ):
        assert parse_reference(bad, "x").problem is not None, bad
    with pytest.raises(MalformedReview):
        parse_admission_review([1, 2])
    with pytest.raises(MalformedReview):
        parse_admission_review(review({"spec": {"initContainers": "no"}}))
    parsed = parse_admission_review(
        review(pod({"modelctl.dev/model": f"a/b@{digest}  c/d@{digest},a/b@{digest}"}))
    )
    assert [r.name for r in parsed.references] == ["a/b", "c/d"]  # duplicates kept once


def _decision(expires: datetime | None, quarantined: bool = False) -> Decision:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    status = CheckStatus.FAIL if quarantined else CheckStatus.PASS
    return Decision(
        allowed=not quarantined,
        mode=Mode.ENFORCE,
        environment="prod",
        policy_name="prod",
        policy_digest="sha256:" + "0" * 64,
        checkpoint_digest="sha256:" + "1" * 64,
        checks=(CheckResult("quarantine", status, "q"),),
        evaluated_at=now,
        expires_at=expires,
        exceptions_applied=(),
    )


def test_decision_cache_honours_expiry_cap_and_quarantine() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    cache = DecisionCache(max_age=timedelta(seconds=60), max_entries=2)
    cache.put("prod", "d1", _decision(now + timedelta(seconds=10)), now)
    assert cache.get("prod", "d1", now + timedelta(seconds=9)) is not None
    assert cache.get("prod", "d1", now + timedelta(seconds=10)) is None  # the decision's expiry
    cache.put("prod", "d2", _decision(None), now)
    assert cache.get("prod", "d2", now + timedelta(seconds=59)) is not None
    assert cache.get("prod", "d2", now + timedelta(seconds=61)) is None  # the cap
    assert cache.get("dev", "d2", now) is None  # per environment
    cache.put("prod", "d3", _decision(None, quarantined=True), now)
    assert cache.get("prod", "d3", now) is None  # never kept while quarantined
    denied = replace(_decision(None), allowed=False)
    cache.put("prod", "d4", denied, now)
    assert cache.get("prod", "d4", now) is None  # denials are decided again each time
    for name in ("a", "b", "c"):
        cache.put("prod", name, _decision(None), now)
    assert len(cache) == 2
    assert cache.get("prod", "a", now) is None  # least recently used went first
    cache.invalidate("c")
    assert cache.get("prod", "c", now) is None


# -- exact claims, token scopes, unknown annotations (on both databases) -------------------------


@pytest.fixture
def on_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Name it before `webhook`: the registry the webhook fixture fills lives there."""
    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    return database_url


def scoped_token(home: Path, name: str, environments: list[str]) -> str:
    from registry.db.engine import unit_of_work
    from registry.embedded import EmbeddedRegistry
    from registry.service import tokens

    registry = EmbeddedRegistry(Settings.from_env(home=home))
    try:
        with unit_of_work(registry.sessions) as session:
            return tokens.create(
                session,
                name=name,
                role=tokens.Role.READER,
                actor="test",
                environments=environments,
            ).secret
    finally:
        registry.close()


def test_hf_commit_mirrored_with_include_is_not_admitted(
    on_database: str, webhook: Webhook, run_cli: Any, hub: FakeHub
) -> None:
    commit = hub.add_repo("org/part", model_files())
    subset = run_cli(
        "mirror", "hf://org/part", "--include", "*.json", "--include", "README.md", "--json"
    )
    assert subset.code == 0, subset.stderr
    assert subset.json()["source"]["complete"] is False
    assert run_cli("attest", f"org/part@{subset.json()['digest']}").code == 0
    # The subset itself is admitted: by digest, the pod gets exactly what was scanned.
    by_digest = pod({"modelctl.dev/model": f"org/part@{subset.json()['digest']}"})
    assert webhook.review(by_digest)["allowed"] is True
    # The whole commit is not: the pod would fetch the weights nobody scanned.
    kserve = pod(init_args=[f"hf://org/part:{commit}", "/mnt/models"])
    denied = webhook.review(kserve)
    assert denied["allowed"] is False
    message = denied["status"]["message"]
    assert "mirrored with --include '*.json' --include 'README.md': not the whole commit" in message
    source_uri = {
        "internal.serving.kserve.io/storage-initializer-sourceuri": f"hf://org/part:{commit}"
    }
    assert webhook.review(pod(source_uri))["allowed"] is False
    # inspect shows how the checkpoint was cut, in text and JSON
    shown = run_cli("inspect", f"org/part@{subset.json()['digest']}", "--json").json()["source"]
    assert (shown["include"], shown["exclude"], shown["complete"]) == (
        ["*.json", "README.md"],
        [],
        False,
    )
    text = run_cli("inspect", f"org/part@{subset.json()['digest']}").stdout
    assert "not the whole commit" in text
    # Mirrored whole and attested: now the commit is covered.
    whole = run_cli("mirror", "hf://org/part", "--json")
    assert whole.json()["source"]["complete"] is True
    assert run_cli("attest", f"org/part@{whole.json()['digest']}").code == 0
    assert webhook.review(kserve)["allowed"] is True


def test_webhook_refuses_an_environment_outside_the_tokens_scope(
    on_database: str, webhook: Webhook, isolated_env: Path
) -> None:
    prod_only = scoped_token(isolated_env, "apiserver-prod", ["prod"])
    body = review(pod({"modelctl.dev/model": f"org/tiny@{webhook.digest}"}))
    refused = webhook.post(body, path="/k8s/admission/dev", token=prod_only)
    assert refused.status_code == 403  # the API server fails the call: failurePolicy Fail
    assert refused.json()["reason"] == "environment_out_of_scope"
    assert "scoped to environment(s) prod, not 'dev'" in refused.json()["detail"]
    allowed = webhook.post(body, path="/k8s/admission/prod", token=prod_only)
    assert allowed.json()["response"]["allowed"] is True
    default = webhook.post(body, token=prod_only)  # the default environment is prod
    assert default.json()["response"]["allowed"] is True


def test_unknown_modelctl_annotation_refuses_the_pod(on_database: str, webhook: Webhook) -> None:
    for key in ("modelctl.dev/Model", "modelctl.dev/models", "modelctl.dev/image"):
        got = webhook.review(pod({key: f"org/tiny@{webhook.digest}"}))
        assert got["allowed"] is False, key
        message = got["status"]["message"]
        assert "unknown modelctl annotation" in message
        assert "modelctl.dev/model, modelctl.dev/model.<suffix>" in message
    # together with a valid reference, still refused
    mixed = pod(
        {"modelctl.dev/model": f"org/tiny@{webhook.digest}", "modelctl.dev/Model": "org/x@v1"}
    )
    assert webhook.review(mixed)["allowed"] is False


def test_webhook_warnings_are_bounded_and_none_vanishes_unannounced() -> None:
    from registry.api.k8s import review_response

    warnings = tuple(f"org/m@sha256:{i}: licenses: {'x' * 400}\nsecond line" for i in range(13))
    got = review_response("u", True, "ok", code=403, warnings=warnings)["response"]["warnings"]
    assert len(got) == 10
    assert all(len(w) <= 240 and "\n" not in w for w in got)
    assert got[0].startswith("org/m@sha256:0: licenses: xxx")
    assert got[-1] == "4 more warn-mode failure(s) not listed"
