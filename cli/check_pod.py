"""`modelctl check-pod FILE.yaml --env ENV`: the webhook's decision, offline, for CI.

Each document of the manifest (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
CronJob, InferenceService, NetworkPolicy) is sent through the same review as a `CREATE`
AdmissionReview: in-process (embedded) or to the registry's `/k8s/admission/{env}` (remote).
Exit 0: every object admitted; 1: one is denied (the failing checks on stderr); 2: the file
cannot be read (not YAML, an object of the wrong shape, too large).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml  # type: ignore[import-untyped]  # no stubs in the dev set

from cli import render
from cli.errors import refuse
from cli.options import JsonOption, VerboseOption, emit, open_registry, state_of
from registry.errors import InputError
from registry.service.workloads import KINDS
from registry.views import WorkloadReviewView

#: The API server refuses objects over 3 MiB; a manifest file of many is bounded too.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_OBJECTS = 500
REVIEWED_KINDS = frozenset({*KINDS, "NetworkPolicy"})


def _no_aliases(node: yaml.Node, seen: set[int]) -> None:
    """A node reached twice is an alias: refused, so a few lines cannot expand to gigabytes."""
    if id(node) in seen:
        raise InputError("YAML aliases are not allowed in a manifest checked by modelctl")
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _no_aliases(item, seen)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _no_aliases(key, seen)
            _no_aliases(value, seen)


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """Every non-empty document of a (multi-document) YAML manifest, as JSON-like objects."""
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise InputError(f"{path}: larger than {MAX_MANIFEST_BYTES >> 20} MiB")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    objects: list[dict[str, Any]] = []
    try:
        for node in yaml.compose_all(text, Loader=yaml.SafeLoader):
            if node is None:
                continue
            _no_aliases(node, set())
            obj = yaml.SafeLoader(text).construct_document(node)
            if not isinstance(obj, dict):
                raise InputError(f"{path}: a document is not a Kubernetes object")
            objects.append(obj)
            if len(objects) > MAX_OBJECTS:
                raise InputError(f"{path}: more than {MAX_OBJECTS} objects")
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not YAML: {' '.join(str(exc).split())[:300]}") from exc
    return objects


def admission_review(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The AdmissionReview the API server would send for `kubectl apply` of `obj`."""
    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    if not isinstance(kind, str) or not isinstance(api_version, str):
        raise InputError("a document has no kind or apiVersion")
    group, _, version = api_version.rpartition("/")
    ns = (meta or {}).get("namespace") or namespace
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": kind},
            "name": str((meta or {}).get("name") or (meta or {}).get("generateName") or ""),
            "namespace": str(ns),
            "operation": "CREATE",
            "userInfo": {"username": "modelctl check-pod"},
            "object": obj,
            "dryRun": True,
        },
    }


def check_pod(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A manifest: Pod, Deployment, … (multi-document).")],
    env: Annotated[str, typer.Option("--env", help="The environment: dev, staging, prod, …")],
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="For objects that name none.")
    ] = "default",
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Decide, offline, whether the webhook would admit a manifest: its models and their pods'
    containment. Exit 0 admitted, 1 denied, 2 unreadable."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    objects = read_manifest(file)
    reviewed = [o for o in objects if o.get("kind") in REVIEWED_KINDS]
    skipped = [str(o.get("kind")) for o in objects if o.get("kind") not in REVIEWED_KINDS]
    answers: list[WorkloadReviewView] = []
    with open_registry(state) as registry:
        for obj in reviewed:
            answers.append(registry.review_workload(admission_review(obj, namespace), env))
    unreadable = [a for a in answers if a.code == 400]
    if unreadable:
        first = unreadable[0]
        raise InputError(f"{file}: {first.kind} {first.namespace}/{first.name}: {first.message}")
    denied = [a for a in answers if not a.allowed]
    emit(
        state,
        {
            "file": str(file),
            "environment": env,
            "allowed": not denied,
            "objects": [a.to_json() for a in answers],
            "skipped": skipped,
        },
        render.workload_reviews_text(answers, skipped),
    )
    if denied:
        refuse(
            f"denied: {len(denied)} of {len(answers)} object(s) not admitted to {env!r}: "
            + " | ".join(f"{a.kind} {a.namespace}/{a.name}: {a.message}" for a in denied)
        )
