"""The pods a Kubernetes object will run: a Pod itself, a controller's pod template, or each
component of a KServe `InferenceService`, as Pod-shaped JSON the checks can read.

Reviewing the controller means a denial reaches whoever applies the manifest (`kubectl apply`
fails), not a ReplicaSet event nobody reads; its pods are reviewed again when they are created.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from registry.errors import InputError

#: Controllers and where their pod template lives.
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
INFERENCE_SERVICE = "InferenceService"
KSERVE_COMPONENTS = ("predictor", "transformer", "explainer")
#: Model-serving specs of a KServe component (`model` and the per-framework shorthands): each
#: becomes the `kserve-container`; its `storageUri(s)` name the model.
KSERVE_MODEL_SPECS = (
    "model",
    "sklearn",
    "xgboost",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "huggingface",
    "pmml",
    "lightgbm",
    "paddle",
    "art",
    "alibi",
)
_MODEL_SPEC_ONLY = frozenset(
    {"storageUri", "storageUris", "modelFormat", "runtime", "protocolVersion", "runtimeVersion"}
)
#: Component fields that are KServe's, not the PodSpec's.
_KSERVE_EXTENSION = frozenset(
    {
        "minReplicas",
        "maxReplicas",
        "scaleTarget",
        "scaleMetric",
        "scaleMetricType",
        "autoScaling",
        "containerConcurrency",
        "timeout",
        "canaryTrafficPercent",
        "logger",
        "batcher",
        "labels",
        "annotations",
        "deploymentStrategy",
        "workerSpec",
        *KSERVE_MODEL_SPECS,
    }
)
KINDS = ("Pod", *TEMPLATE_PATHS, INFERENCE_SERVICE)


class WorkloadError(InputError):
    """An object whose pod template cannot be read (wrong types, missing template)."""


@dataclass(frozen=True, slots=True)
class PodTemplate:
    """One pod the object will run: where it came from, the Pod-shaped JSON, and the storage
    URIs KServe will fetch for it (`(where, uri)`)."""

    where: str  # "" for a Pod, "spec.template", "spec.predictor", ...
    pod: Mapping[str, Any]
    storage_uris: tuple[tuple[str, str], ...] = ()


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WorkloadError(f"{what} is not an object")
    return value


def pod_templates(kind: str, obj: Mapping[str, Any]) -> list[PodTemplate]:
    """The pods `obj` (of `kind`, one of `KINDS`) will run."""
    if kind == "Pod":
        return [PodTemplate("", obj)]
    if kind == INFERENCE_SERVICE:
        return _inference_service(obj)
    node: Mapping[str, Any] = obj
    path = TEMPLATE_PATHS[kind]
    for i, key in enumerate(path):
        node = _obj(node.get(key), ".".join(path[: i + 1]))
    where = ".".join(path)
    if not node:
        raise WorkloadError(f"{kind} has no {where}")
    return [PodTemplate(where, node)]


def _inference_service(isvc: Mapping[str, Any]) -> list[PodTemplate]:
    metadata = _obj(isvc.get("metadata"), "metadata")
    spec = _obj(isvc.get("spec"), "spec")
    out = []
    for component in KSERVE_COMPONENTS:
        comp = _obj(spec.get(component), f"spec.{component}")
        if comp:
            out.append(_component(f"spec.{component}", comp, metadata))
    if not out:
        raise WorkloadError("InferenceService has no spec.predictor")
    return out


def _component(where: str, comp: Mapping[str, Any], metadata: Mapping[str, Any]) -> PodTemplate:
    """A KServe component as the pod it becomes: its PodSpec fields, its model spec as the
    `kserve-container`, and the labels and annotations of the service and the component."""
    pod_spec = {k: v for k, v in comp.items() if k not in _KSERVE_EXTENSION}
    containers = list(pod_spec.get("containers") or [])
    if not isinstance(pod_spec.get("containers", []), list):
        raise WorkloadError(f"{where}.containers is not a list")
    uris: list[tuple[str, str]] = []
    for key in KSERVE_MODEL_SPECS:
        model = _obj(comp.get(key), f"{where}.{key}")
        if not model:
            continue
        container = {k: v for k, v in model.items() if k not in _MODEL_SPEC_ONLY}
        container.setdefault("name", "kserve-container")
        containers.insert(0, container)
        uris += _storage_uris(f"{where}.{key}", model)
    pod_spec["containers"] = containers
    labels = {
        **_obj(metadata.get("labels"), "metadata.labels"),
        **_obj(comp.get("labels"), f"{where}.labels"),
    }
    annotations = {
        **_obj(metadata.get("annotations"), "metadata.annotations"),
        **_obj(comp.get("annotations"), f"{where}.annotations"),
    }
    pod = {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec}
    return PodTemplate(where, pod, tuple(uris))


def _storage_uris(where: str, model: Mapping[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    uri = model.get("storageUri")
    if uri is not None:
        if not isinstance(uri, str):
            raise WorkloadError(f"{where}.storageUri is not a string")
        out.append((f"{where}.storageUri", uri))
    many = model.get("storageUris")
    if many is not None:
        if not isinstance(many, list):
            raise WorkloadError(f"{where}.storageUris is not a list")
        for i, item in enumerate(many):
            entry = _obj(item, f"{where}.storageUris[{i}]")
            value = entry.get("uri")
            if not isinstance(value, str):
                raise WorkloadError(f"{where}.storageUris[{i}].uri is not a string")
            out.append((f"{where}.storageUris[{i}]", value))
    return out
