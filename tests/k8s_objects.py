"""Kubernetes objects for the containment tests, built with the official client's models and
serialised as the API server sends them to a webhook: camelCase JSON, with the defaults it
fills in before admission (image pull policy, termination message path, restart and DNS
policy, the scheduler, and, unless the pod opts out, the service account token volume that the
ServiceAccount admission plugin adds to every container)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from kubernetes.client import (
    ApiClient,
    V1Capabilities,
    V1Container,
    V1CronJob,
    V1CronJobSpec,
    V1Deployment,
    V1DeploymentSpec,
    V1EmptyDirVolumeSource,
    V1Job,
    V1JobSpec,
    V1JobTemplateSpec,
    V1LabelSelector,
    V1ObjectMeta,
    V1Pod,
    V1PodSpec,
    V1PodTemplateSpec,
    V1ResourceRequirements,
    V1SecurityContext,
    V1StatefulSet,
    V1StatefulSetSpec,
    V1Volume,
    V1VolumeMount,
)

_API = ApiClient()

TOKEN_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def to_json(obj: Any) -> dict[str, Any]:
    out = _API.sanitize_for_serialization(obj)
    assert isinstance(out, dict)
    return out


def contained_container(name: str, image: str = "vllm/vllm-openai:v0.9", **kw: Any) -> V1Container:
    """A container that meets the shipped `strict` profile."""
    return V1Container(
        name=name,
        image=image,
        security_context=V1SecurityContext(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            run_as_non_root=True,
            run_as_user=1000,
            capabilities=V1Capabilities(drop=["ALL"]),
        ),
        resources=V1ResourceRequirements(limits={"cpu": "2", "memory": "8Gi"}),
        **kw,
    )


def model_pod_spec(model_ref: str | None = None) -> tuple[V1ObjectMeta, V1PodSpec]:
    """The metadata and spec of a contained model server: egress none, no token, the model
    in an emptyDir at /mnt/models mounted read-only."""
    meta = V1ObjectMeta(
        name="llm-0",
        labels={"app": "llm", "modelctl.dev/egress": "none"},
        annotations={"modelctl.dev/model": model_ref} if model_ref else {},
    )
    spec = V1PodSpec(
        automount_service_account_token=False,
        containers=[
            contained_container(
                "server",
                volume_mounts=[
                    V1VolumeMount(name="model", mount_path="/mnt/models", read_only=True)
                ],
            )
        ],
        volumes=[V1Volume(name="model", empty_dir=V1EmptyDirVolumeSource())],
    )
    return meta, spec


def model_pod(model_ref: str | None = None) -> dict[str, Any]:
    meta, spec = model_pod_spec(model_ref)
    return as_sent(to_json(V1Pod(api_version="v1", kind="Pod", metadata=meta, spec=spec)))


def as_sent(pod: dict[str, Any]) -> dict[str, Any]:
    """`pod` with what the API server fills in before validating webhooks see it."""
    pod = copy.deepcopy(pod)
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    inject_token = spec.get("automountServiceAccountToken") is not False
    if inject_token:
        volume = f"kube-api-access-{uuid.uuid4().hex[:5]}"
        spec.setdefault("volumes", []).append(
            {
                "name": volume,
                "projected": {
                    "defaultMode": 420,
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {
                            "configMap": {
                                "name": "kube-root-ca.crt",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            }
                        },
                        {
                            "downwardAPI": {
                                "items": [
                                    {
                                        "path": "namespace",
                                        "fieldRef": {
                                            "apiVersion": "v1",
                                            "fieldPath": "metadata.namespace",
                                        },
                                    }
                                ]
                            }
                        },
                    ],
                },
            }
        )
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(kind) or []:
            c.setdefault("imagePullPolicy", "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            if kind != "ephemeralContainers":
                c.setdefault("resources", {})
            if inject_token:
                c.setdefault("volumeMounts", []).append(
                    {"name": volume, "mountPath": TOKEN_MOUNT, "readOnly": True}
                )
    return pod


def template(meta: V1ObjectMeta, spec: V1PodSpec) -> V1PodTemplateSpec:
    return V1PodTemplateSpec(
        metadata=V1ObjectMeta(labels=meta.labels, annotations=meta.annotations), spec=spec
    )


def controller(kind: str, meta: V1ObjectMeta, spec: V1PodSpec) -> dict[str, Any]:
    """A Deployment, StatefulSet, Job or CronJob running the pod, as the API server sends it
    (the pod template with the defaults filled in)."""
    selector = V1LabelSelector(match_labels={"app": "llm"})
    top = V1ObjectMeta(name="llm", namespace="inference-prod")
    tpl = template(meta, spec)
    obj: Any
    if kind == "Deployment":
        obj = V1Deployment(
            api_version="apps/v1",
            kind=kind,
            metadata=top,
            spec=V1DeploymentSpec(selector=selector, template=tpl),
        )
    elif kind == "StatefulSet":
        obj = V1StatefulSet(
            api_version="apps/v1",
            kind=kind,
            metadata=top,
            spec=V1StatefulSetSpec(selector=selector, service_name="llm", template=tpl),
        )
    elif kind == "Job":
        obj = V1Job(api_version="batch/v1", kind=kind, metadata=top, spec=V1JobSpec(template=tpl))
    else:
        assert kind == "CronJob"
        obj = V1CronJob(
            api_version="batch/v1",
            kind=kind,
            metadata=top,
            spec=V1CronJobSpec(
                schedule="0 * * * *", job_template=V1JobTemplateSpec(spec=V1JobSpec(template=tpl))
            ),
        )
    out = to_json(obj)
    node = out["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else out["spec"]
    node["template"] = as_sent(node["template"])
    return out


def inference_service(
    storage_uri: str, *, egress: str = "none", predictor: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A KServe `serving.kserve.io/v1beta1` InferenceService (no model class in the client:
    its CRD's JSON shape) whose predictor runs a contained model server."""
    server = to_json(contained_container("kserve-container"))
    server.pop("image")
    server.pop("name")
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "llm",
            "namespace": "inference-prod",
            "labels": {"modelctl.dev/egress": egress},
        },
        "spec": {
            "predictor": {
                "automountServiceAccountToken": False,
                "minReplicas": 1,
                "model": {
                    "modelFormat": {"name": "huggingface"},
                    "storageUri": storage_uri,
                    **server,
                },
                **(predictor or {}),
            }
        },
    }


def admission_review(
    obj: dict[str, Any],
    *,
    namespace: str = "inference-prod",
    operation: str = "CREATE",
    sub_resource: str | None = None,
) -> dict[str, Any]:
    group, _, version = str(obj["apiVersion"]).rpartition("/")
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": obj["kind"]},
        "resource": {"group": group, "version": version, "resource": obj["kind"].lower() + "s"},
        "name": obj.get("metadata", {}).get("name", ""),
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": "alice"},
        "object": obj,
        "oldObject": None,
        "dryRun": False,
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
