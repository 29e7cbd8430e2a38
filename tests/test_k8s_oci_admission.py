"""The admission webhook on OCI model references (issue 17, item 4): KServe `storageUri:
oci://…`, ModelCar containers and Kubernetes image volumes, admitted by OCI manifest digest
only when that digest is a checkpoint admitted to the environment. Against a real uvicorn
server and a real OCI registry on loopback; the objects are built with the `kubernetes`
client's models."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import V1ImageVolumeSource, V1Pod, V1Volume, V1VolumeMount

from registry.service.k8s_review import OCI_TAG_REFUSED, parse_admission_review, parse_reference
from tests.k8s_objects import (
    admission_review,
    as_sent,
    contained_container,
    inference_service,
    model_pod_spec,
    to_json,
)
from tests.oci_registry import RunningRegistry, start_registry
from tests.test_k8s_admission import Webhook, hub, webhook  # noqa: F401 - fixtures

DIGEST = "sha256:" + "d" * 64


@dataclass
class Pushed:
    webhook: Webhook
    registry: RunningRegistry
    oci_digest: str

    @property
    def image(self) -> str:
        """The pushed artifact as a pod names an image: HOST/REPO@sha256:…"""
        return f"{self.registry.host}/team/tiny@{self.oci_digest}"

    def answer(self, obj: dict[str, Any], path: str = "/k8s/admission") -> dict[str, Any]:
        response = self.webhook.post(admission_review(obj), path=path)
        assert response.status_code == 200, response.text
        got: dict[str, Any] = response.json()["response"]
        return got


@pytest.fixture
def pushed(
    webhook: Webhook,  # noqa: F811
    run_cli: Any,
    tmp_path: Path,
) -> Iterator[Pushed]:
    """org/tiny (admitted to prod) pushed to a loopback registry as team/tiny:v1."""
    for running in start_registry(tmp_path / "oci"):
        result = run_cli("push", "org/tiny", running.ref("team/tiny:v1"), "--env", "prod", "--json")
        assert result.code == 0, result.stderr
        yield Pushed(webhook, running, result.json()["oci_digest"])


def modelcar_pod(image: str) -> dict[str, Any]:
    """A contained model server with KServe's ModelCar sidecar running the model image."""
    meta, spec = model_pod_spec()
    spec.containers.append(contained_container("modelcar", image=image))
    return as_sent(to_json(V1Pod(api_version="v1", kind="Pod", metadata=meta, spec=spec)))


def image_volume_pod(reference: str) -> dict[str, Any]:
    """A contained model server reading the model from a Kubernetes image volume."""
    meta, spec = model_pod_spec()
    spec.volumes = [
        V1Volume(
            name="model",
            image=V1ImageVolumeSource(reference=reference, pull_policy="IfNotPresent"),
        )
    ]
    spec.containers[0].volume_mounts = [
        V1VolumeMount(name="model", mount_path="/mnt/models", read_only=True)
    ]
    return as_sent(to_json(V1Pod(api_version="v1", kind="Pod", metadata=meta, spec=spec)))


def test_kserve_oci_storage_uri_modelcar_and_image_volume_are_admitted_by_digest(
    pushed: Pushed,
) -> None:
    isvc = pushed.answer(inference_service(f"oci://{pushed.image}"))
    assert isvc["allowed"] is True, isvc
    modelcar = pushed.answer(modelcar_pod(pushed.image))
    assert modelcar["allowed"] is True, modelcar
    volume = pushed.answer(image_volume_pod(pushed.image))
    assert volume["allowed"] is True, volume


def test_tags_and_unknown_digests_are_refused_with_a_reason(pushed: Pushed) -> None:
    tagged = f"{pushed.registry.host}/team/tiny:v1"
    for obj in (
        inference_service(f"oci://{tagged}"),
        modelcar_pod(tagged),
        image_volume_pod(tagged),
    ):
        got = pushed.answer(obj)
        assert got["allowed"] is False
        assert "unpinned OCI reference" in got["status"]["message"]
    unknown = f"{pushed.registry.host}/team/tiny@{DIGEST}"
    for obj in (modelcar_pod(unknown), image_volume_pod(unknown)):
        got = pushed.answer(obj)
        assert got["allowed"] is False
        assert f"unknown OCI manifest {DIGEST}" in got["status"]["message"]
    # An environment with no policy bound: fail closed, whatever the digest.
    qa = pushed.answer(modelcar_pod(pushed.image), path="/k8s/admission/qa")
    assert qa["allowed"] is False


def test_quarantine_by_any_digest_denies_the_oci_reference(pushed: Pushed, run_cli: Any) -> None:
    pod = image_volume_pod(pushed.image)
    assert pushed.answer(pod)["allowed"] is True
    assert pushed.answer(pod)["allowed"] is True  # cached
    assert run_cli("quarantine", "org/tiny", "--reason", "CVE-2026-0017").code == 0
    got = pushed.answer(pod)
    assert got["allowed"] is False
    assert "quarantined: CVE-2026-0017" in got["status"]["message"]
    assert run_cli("release", "org/tiny", "--reason", "fixed").code == 0
    assert pushed.answer(pod)["allowed"] is True
    # The OCI manifest digest itself, quarantined.
    assert run_cli("quarantine", pushed.oci_digest, "--reason", "bad artifact").code == 0
    got = pushed.answer(pod)
    assert got["allowed"] is False
    assert f"{pushed.oci_digest} is quarantined: bad artifact" in got["status"]["message"]


def test_a_digest_mirrored_under_another_name_is_decided_for_every_name(
    pushed: Pushed, run_cli: Any
) -> None:
    # The same artifact mirrored as acme/copy: its referrers (signed by this registry's key)
    # verify, so it is admitted too; a quarantine of either name's bytes denies the digest.
    mirrored = run_cli(
        "mirror", pushed.registry.ref(f"team/tiny@{pushed.oci_digest}"), "--name", "acme/copy"
    )
    assert mirrored.code == 0, mirrored.stderr
    assert pushed.answer(modelcar_pod(pushed.image))["allowed"] is True
    assert run_cli("quarantine", "acme/copy", "--reason", "held").code == 0
    got = pushed.answer(modelcar_pod(pushed.image))
    assert got["allowed"] is False
    assert "quarantined: held" in got["status"]["message"]


def test_oci_reference_syntax() -> None:
    assert parse_reference(f"oci://reg.example/team/m@{DIGEST}", "x").oci_digest == DIGEST
    tag = parse_reference("oci://reg.example/team/m:v1", "x")
    assert tag.problem == OCI_TAG_REFUSED
    for bad in ("oci://reg.example/UPPER@" + DIGEST, "oci://reg.example", "oci://h/m@sha256:ab"):
        assert parse_reference(bad, "x").problem is not None, bad
    parsed = parse_admission_review(admission_review(image_volume_pod(f"h:5000/m@{DIGEST}")))
    assert [(r.where, r.oci_digest) for r in parsed.references] == [
        ("volumes[model].image.reference", DIGEST)
    ]
    plain = parse_admission_review(admission_review(modelcar_pod("h/m:latest")))
    assert plain.references[0].where == "containers[modelcar].image (ModelCar)"
    assert plain.references[0].problem == OCI_TAG_REFUSED
