"""The Kubernetes manifests in deploy/ are valid objects (the Kubernetes 1.33 OpenAPI schemas,
strict: an unknown or misspelt field fails) and say only what the code does: the commands and
options the containers run exist, the settings are ones modelctl reads, the webhook paths are
routes of the app for environments the shipped policy binds, and the image's user is the one
the pods run as."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import pytest
import typer
import yaml  # type: ignore[import-untyped]  # no stubs in the dev set
from fastapi.testclient import TestClient
from typer import _click  # Typer's vendored Click: the types its groups use

from cli.main import app as cli_app
from policies import default_policies_text
from registry.api.app import create_app
from registry.service.workloads import TEMPLATE_PATHS
from registry.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES_VERSION = "1.33.0"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                docs.append(
                    (f"{path.relative_to(ROOT)}:{doc['kind']}/{doc['metadata']['name']}", doc)
                )
    return docs


DOCUMENTS = _documents()


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in DOCUMENTS if doc["kind"] == kind]


def _pod_specs() -> list[dict[str, Any]]:
    specs = [d["spec"]["template"]["spec"] for d in _of_kind("Deployment") + _of_kind("Job")]
    return [s for s in specs if any("modelctl" in c["image"] for c in s["containers"])]


def test_the_manifests_are_there() -> None:
    kinds = {doc["kind"] for _, doc in DOCUMENTS}
    assert {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Job",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ValidatingWebhookConfiguration",
    } <= kinds


@pytest.mark.parametrize(("name", "doc"), DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_every_manifest_validates_against_the_kubernetes_schema(
    name: str, doc: dict[str, Any]
) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validator_catches_a_misspelt_field() -> None:
    (deployment, *_) = _of_kind("Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def _command(name: str) -> Any:
    group = typer.main.get_group(cli_app)  # commands load lazily: ask the group, as click does
    command = group.get_command(_click.Context(group), name)
    assert command is not None, f"the manifests run `modelctl {name}`, which does not exist"
    return command


def test_the_containers_run_commands_and_options_that_exist() -> None:
    for spec in _pod_specs():
        for container in spec["containers"]:
            name, *options = container["args"]
            command = _command(name)
            known = {opt for p in command.params for opt in p.opts}
            for option in options:
                assert option.split("=", 1)[0] in known, f"modelctl {name} has no {option}"


def test_every_setting_in_the_config_map_is_one_modelctl_reads() -> None:
    source = (ROOT / "registry" / "settings.py").read_text(encoding="utf-8")
    source += (ROOT / "registry" / "web" / "session.py").read_text(encoding="utf-8")
    (config,) = [c for c in _of_kind("ConfigMap") if c["metadata"]["name"] == "modelctl-config"]
    for key in config["data"]:
        assert key.startswith("AWS_") or f'"{key}"' in source, f"{key} is not a modelctl setting"
    # and the shared settings parse as modelctl's own
    Settings.from_env({k: v for k, v in config["data"].items() if k.startswith("MODELCTL_")})


def test_the_pods_are_hardened_and_run_as_the_images_user() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    user = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    assert user is not None
    for spec in _pod_specs():
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == int(user.group(1))
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["limits"]


def test_every_server_and_worker_shares_one_transparency_log() -> None:
    (config,) = [c for c in _of_kind("ConfigMap") if c["metadata"]["name"] == "modelctl-config"]
    log_dir, log_key = config["data"]["MODELCTL_LOG_DIR"], config["data"]["MODELCTL_LOG_KEY"]
    assert config["data"]["MODELCTL_LOG_ORIGIN"]  # not the per-pod hostname default
    (claim,) = _of_kind("PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for deployment in _of_kind("Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
        shared = volumes[mounts[log_dir]]
        assert shared["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        key_mount = next(p for p in mounts if log_key.startswith(p + "/"))
        assert volumes[mounts[key_mount]]["secret"]["secretName"] == "modelctl-log-key"


def test_the_webhook_paths_are_routes_for_the_shipped_environments(tmp_path: Path) -> None:
    app = create_app(Settings.from_env({}, home=tmp_path), start_worker=False)
    policy = list(yaml.safe_load_all(default_policies_text()))
    binding = next(d for d in policy if d["kind"] == "ModelPolicyBinding")
    environments = set(binding["spec"]["environments"])
    (config,) = _of_kind("ValidatingWebhookConfiguration")
    seen = set()
    for hook in config["webhooks"]:
        service = hook["clientConfig"]["service"]
        env = hook["namespaceSelector"]["matchLabels"]["modelctl.dev/environment"]
        assert service["path"] == f"/k8s/admission/{env}"
        with TestClient(app) as client:  # in-process: the route answers (a bad review: 4xx)
            answer = client.post(service["path"], json={})
        assert answer.status_code not in (404, 405), service["path"]
        assert answer.status_code < 500
        assert env in environments
        assert hook["failurePolicy"] == ("Ignore" if env == "dev" else "Fail")
        assert hook["sideEffects"] == "NoneOnDryRun"  # reviews are recorded, dry runs never
        kinds = {r for rule in hook["rules"] for r in rule["resources"]}
        reviewed = {f"{k.lower()}s" for k in TEMPLATE_PATHS} | {"pods", "inferenceservices"}
        assert reviewed | {"networkpolicies"} <= kinds, "the webhook reviews more than it is sent"
        seen.add(env)
    assert seen == environments
    (namespace,) = _of_kind("Namespace")  # never selected: the webhook never gates itself
    assert "modelctl.dev/environment" not in namespace["metadata"].get("labels", {})
    (service,) = _of_kind("Service")
    assert service["metadata"]["name"] == "modelctl"
    assert service["spec"]["ports"][0]["port"] == 443
