"""Containment at the webhook and in `modelctl check-pod`, against a real uvicorn server on
127.0.0.1 and the embedded registry: every mode, every controller kind, NetworkPolicies, signed
decisions with the pod's posture, and the CLI's exit codes (embedded and `--registry`)."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs in the dev set
from sqlalchemy import select

from attestations.bundle import Bundle
from attestations.intoto import Statement
from attestations.keys import PublicKeyVerifier, load_public_key
from attestations.workload_decision import object_digest
from policies import default_policies_text
from registry.db.engine import unit_of_work
from registry.db.models import WorkloadDecision
from registry.embedded import EmbeddedRegistry
from registry.settings import Settings
from tests.k8s_objects import (
    admission_review,
    controller,
    inference_service,
    model_pod,
    model_pod_spec,
)
from tests.test_k8s_admission import Webhook, hub, webhook

__all__ = ["hub", "webhook"]  # the fixtures: org/tiny mirrored, attested, and a reader token


def answer(hook: Webhook, obj: dict[str, Any], env: str, **kw: Any) -> dict[str, Any]:
    body = admission_review(obj, **kw)
    got = hook.post(body, path=f"/k8s/admission/{env}")
    assert got.status_code == 200, got.text
    response: dict[str, Any] = got.json()["response"]
    assert response["uid"] == body["request"]["uid"]
    return response


def loose(pod: dict[str, Any]) -> dict[str, Any]:
    """The same pod without its egress label and with a hostPath volume."""
    pod = copy.deepcopy(pod)
    del pod["metadata"]["labels"]["modelctl.dev/egress"]
    pod["spec"]["volumes"].append({"name": "cache", "hostPath": {"path": "/var/cache/hf"}})
    return pod


def recorded(hook: Webhook) -> list[WorkloadDecision]:
    """The decisions the webhook recorded, once its recorder has written what it queued."""
    recorder = getattr(hook.live.app.state, "k8s_recorder", None)
    if recorder is not None:
        recorder.flush()
    registry = EmbeddedRegistry(Settings.from_env())
    try:
        with unit_of_work(registry.sessions) as session:
            rows = list(session.scalars(select(WorkloadDecision).order_by(WorkloadDecision.id)))
            session.expunge_all()
            return rows
    finally:
        registry.close()


def test_containment_in_every_mode(webhook: Webhook) -> None:
    ref = f"org/tiny@{webhook.digest}"
    good = model_pod(ref)
    assert answer(webhook, good, "prod")["allowed"] is True
    bad = loose(good)
    denied = answer(webhook, bad, "prod")
    assert denied["allowed"] is False
    message = denied["status"]["message"]
    # org/tiny has no backdoor scan: the shipped prod policy asks for `strict`
    assert "containment (pod): profile strict r1: pod.host-path: volume cache" in message
    assert "pod.egress-label: no modelctl.dev/egress label" in message
    assert "not admitted" not in message  # the model itself is fine
    warned = answer(webhook, bad, "staging")  # staging: containmentMode warn
    assert warned["allowed"] is True
    assert any("pod.egress-label" in w for w in warned["warnings"])
    audited = answer(webhook, bad, "dev")  # dev: containmentMode audit
    assert audited["allowed"] is True
    assert not any("containment" in w for w in audited.get("warnings", []))
    rows = recorded(webhook)
    dev = next(r for r in rows if r.environment == "dev")
    (pod_evidence,) = dev.evidence["containment"]
    assert pod_evidence["mode"] == "audit"
    assert any("pod.host-path" in line for line in pod_evidence["audited"])


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "Job", "CronJob"])
def test_controllers_are_denied_at_apply_time(webhook: Webhook, kind: str) -> None:
    meta, spec = model_pod_spec(f"org/tiny@{webhook.digest}")
    assert answer(webhook, controller(kind, meta, spec), "prod")["allowed"] is True
    spec.host_pid = True
    denied = answer(webhook, controller(kind, meta, spec), "prod")
    assert denied["allowed"] is False
    where = "spec.jobTemplate.spec.template" if kind == "CronJob" else "spec.template"
    message = denied["status"]["message"]
    assert f"containment ({where}): profile strict r1: pod.host-namespaces" in message
    warned = answer(webhook, controller(kind, meta, spec), "staging")
    assert warned["allowed"] is True
    assert any(w.startswith(f"containment ({where}): ") for w in warned["warnings"])
    audited = answer(webhook, controller(kind, meta, spec), "dev")
    assert audited["allowed"] is True
    assert not any("containment" in w for w in audited.get("warnings", []))


def test_inference_services_and_their_storage_uri(webhook: Webhook) -> None:
    uri = f"hf://org/tiny:{webhook.commit}"
    assert answer(webhook, inference_service(uri), "prod")["allowed"] is True
    open_egress = answer(webhook, inference_service(uri, egress="allowlist"), "prod")
    assert open_egress["allowed"] is False
    assert "containment (spec.predictor)" in open_egress["status"]["message"]
    assert "allowed: none" in open_egress["status"]["message"]
    unpinned = answer(webhook, inference_service("hf://org/tiny"), "prod")
    assert unpinned["allowed"] is False
    assert "spec.predictor.model.storageUri" in unpinned["status"]["message"]


def test_network_policies_warn_and_are_allowed(webhook: Webhook) -> None:
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-all-egress", "namespace": "inference-prod"},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]},
    }
    got = answer(webhook, policy, "prod")
    assert got["allowed"] is True
    assert got["warnings"][0].startswith("NetworkPolicy inference-prod/allow-all-egress: egress[0]")
    shipped = Path(__file__).resolve().parent.parent / "deploy" / "networkpolicies.yaml"
    for doc in yaml.safe_load_all(shipped.read_text()):
        quiet = answer(webhook, doc, "prod")
        assert quiet["allowed"] is True
        assert "warnings" not in quiet


def test_decisions_are_recorded_and_signed_with_the_pods_posture(webhook: Webhook) -> None:
    ref = f"org/tiny@{webhook.digest}"
    bad = loose(model_pod(ref))
    assert answer(webhook, bad, "prod")["allowed"] is False
    assert answer(webhook, model_pod(ref), "prod", operation="CREATE")["allowed"] is True
    dry = admission_review(bad)
    dry["request"]["dryRun"] = True
    assert webhook.post(dry, path="/k8s/admission/prod").json()["response"]["allowed"] is False
    plain = model_pod()  # runs no model: nothing decided, nothing recorded
    assert answer(webhook, plain, "prod")["allowed"] is True
    rows = recorded(webhook)
    assert [(r.kind, r.allowed) for r in rows] == [("Pod", False), ("Pod", True)]
    denied = rows[0]
    assert denied.object_sha256 == object_digest(bad)
    assert denied.bundle is not None
    key = EmbeddedRegistry(Settings.from_env())
    try:
        public = key.registry_public_key()
    finally:
        key.close()
    assert public is not None
    verifier = PublicKeyVerifier([load_public_key(public)])
    statement = Statement.from_payload(verifier.verify(Bundle.from_bytes(denied.bundle)).payload)
    assert statement.predicate_type == "https://slsa.dev/verification_summary/v1"
    assert statement.subjects[0].name == "k8s://inference-prod/Pod/llm-0"
    assert statement.subjects[0].digest["sha256"] == object_digest(bad)
    assert statement.subjects[1].digest["sha256"] == webhook.digest.removeprefix("sha256:")
    vsa = statement.predicate
    assert vsa["verificationResult"] == "FAILED"
    (contained,) = vsa["modelctl"]["containment"]
    assert contained["posture"]["hostPathVolumes"] == ["cache"]
    assert contained["posture"]["egress"] is None
    checks = {c["id"]: c["status"] for c in contained["profiles"][0]["checks"]}
    assert checks["pod.host-path"] == "fail"
    assert checks["pod.privileged"] == "pass"
    assert vsa["modelctl"]["models"][0]["profiles"] == ["strict r1"]


def test_hostile_reviews_are_refused_with_a_reason(webhook: Webhook) -> None:
    ref = f"org/tiny@{webhook.digest}"
    pod = model_pod(ref)
    pod["spec"]["containers"][0]["securityContext"]["privileged"] = "false"  # a string
    got = answer(webhook, pod, "prod")
    assert got["allowed"] is False
    assert "malformed pod" in got["status"]["message"]
    hidden = model_pod()
    hidden["spec"]["ephemeralContainers"] = [
        {"name": "dbg", "image": "x", "args": ["hf://org/unknown:" + "e" * 40]}
    ]
    got = answer(webhook, hidden, "prod", operation="UPDATE", sub_resource="ephemeralcontainers")
    assert got["allowed"] is False
    assert "ephemeralContainers[dbg].args[0]" in got["status"]["message"]
    odd = model_pod(ref)
    odd["metadata"]["annotations"]["ModelCtl.dev/model"] = ref
    got = answer(webhook, odd, "prod")
    assert got["allowed"] is False
    assert "unknown modelctl annotation" in got["status"]["message"]
    typo = model_pod(ref)  # an unknown (misspelt) field never counts as the real one
    security = typo["spec"]["containers"][0]["securityContext"]
    security["readOnlyRootFileSystem"] = security.pop("readOnlyRootFilesystem")
    got = answer(webhook, typo, "prod")
    assert got["allowed"] is False
    assert "pod.read-only-root-filesystem: containers[server]" in got["status"]["message"]
    huge = model_pod(ref)
    huge["metadata"]["annotations"]["x"] = "y" * (4 * 1024 * 1024)
    too_big = webhook.post(admission_review(huge), path="/k8s/admission/prod")
    assert too_big.status_code == 413


# -- modelctl check-pod ------------------------------------------------------------------------


def _manifest(tmp_path: Path, *objects: dict[str, Any]) -> Path:
    path = tmp_path / f"m-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    return path


def test_check_pod_exit_codes_embedded_and_remote(
    webhook: Webhook, run_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meta, spec = model_pod_spec(f"org/tiny@{webhook.digest}")
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "llm"}}
    good = _manifest(
        tmp_path,
        controller("Deployment", meta, spec),
        inference_service(f"hf://org/tiny:{webhook.commit}"),
        service,
    )
    spec.host_network = True
    bad = _manifest(tmp_path, controller("Deployment", meta, spec), service)
    unreadable = tmp_path / "broken.yaml"
    unreadable.write_text("kind: Pod\nspec: [unclosed\n")
    wrong_shape = _manifest(tmp_path, {**model_pod(), "spec": {"containers": "nope"}})
    alias = tmp_path / "alias.yaml"
    alias.write_text("a: &x [1, 2]\nb: *x\n")

    def check(*args: str, registry: str | None = None) -> Any:
        where = ("--registry", registry) if registry else ()
        return run_cli(*where, "check-pod", *args)

    ok = check(str(good), "--env", "prod", "--json")
    assert ok.code == 0, ok.stderr
    body = ok.json()
    assert body["allowed"] is True
    assert [o["kind"] for o in body["objects"]] == ["Deployment", "InferenceService"]
    assert body["skipped"] == ["Service"]
    no = check(str(bad), "--env", "prod")
    assert no.code == 1
    assert "DENIED Deployment inference-prod/llm" in no.stdout
    assert "pod.host-namespaces" in no.stderr
    assert len(no.stderr.strip().splitlines()) == 1
    assert check(str(bad), "--env", "staging").code == 0  # warn mode
    huge = _manifest(tmp_path, *(copy.deepcopy(service) for _ in range(501)))
    for path in (unreadable, wrong_shape, alias, huge, tmp_path / "missing.yaml"):
        got = check(str(path), "--env", "prod")
        assert got.code == 2, (path, got.stderr)
        assert got.stderr.startswith("modelctl: error:")
        assert path != huge or "more than 500 objects" in got.stderr
    # the same answers from the registry's own webhook
    monkeypatch.setenv("MODELCTL_TOKEN", webhook.token)
    url = webhook.live.url
    assert check(str(good), "--env", "prod", registry=url).code == 0
    remote_no = check(str(bad), "--env", "prod", registry=url)
    assert remote_no.code == 1
    assert "pod.host-namespaces" in remote_no.stderr
    assert check(str(wrong_shape), "--env", "prod", registry=url).code == 2
    assert recorded(webhook) == []  # check-pod is a dry run: nothing recorded


def test_check_pod_honours_a_two_person_workload_exception(
    webhook: Webhook, run_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meta, spec = model_pod_spec(f"org/tiny@{webhook.digest}")
    spec.host_network = True
    manifest = _manifest(tmp_path, controller("Deployment", meta, spec))
    assert run_cli("check-pod", str(manifest), "--env", "prod").code == 1
    exception = (
        "      - { id: metrics-host-net, scope: { namespace: inference-prod, name: 'llm*' },\n"
        "          waive: [pod.host-namespaces], reason: node metrics, requestedBy: alice,\n"
        "          approver: bob, expires: 2099-01-01T00:00:00Z }\n"
    )
    text = default_policies_text().replace(
        "  containment:\n    profile: standard\n",
        "  containment:\n    profile: standard\n    exceptions:\n" + exception,
        1,  # the first policy document: prod
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    monkeypatch.setenv("MODELCTL_POLICY", str(policy))
    got = run_cli("check-pod", str(manifest), "--env", "prod")
    assert got.code == 0, got.stderr
    other = _manifest(tmp_path, controller("Deployment", meta, spec) | {"metadata": {"name": "x"}})
    assert run_cli("check-pod", str(other), "--env", "prod", "-n", "inference-prod").code == 1
