"""The pod-spec checks of a containment profile: pure functions of a Pod's JSON (as the API
server sends it) and a `ContainmentProfile`.

Every container counts: `initContainers`, `containers` and `ephemeralContainers` (what
`kubectl debug` adds), so a model cannot hide where the checks do not look. Each check is one
`CheckResult` (`pod.<name>`) whose message says what to change, naming the containers and
volumes at fault. The pod's `posture` (what it actually asks for) goes into the evidence.

Kubernetes defaults count as the API server applies them: `allowPrivilegeEscalation` unset is
*true*, `automountServiceAccountToken` unset is *true*, a root filesystem is writable unless
said otherwise. Only what the pod says explicitly can pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from policies.containment import EGRESS_LABEL, ContainmentProfile
from policies.errors import WorkloadShapeError
from policies.evaluate import CheckResult, CheckStatus

#: The storage initializer writes the model into its volume: the one container whose mount of
#: a model volume may be writable (it is an init container and runs before the model does).
STORAGE_INITIALIZER = "storage-initializer"
#: The CSI driver of the Secrets Store (secrets mounted from a vault): counted as a Secret.
SECRETS_STORE_DRIVER = "secrets-store.csi.k8s.io"
#: Labels under this prefix are ours; a misspelt one (`modelctl.dev/Egress`) is refused, lest
#: a NetworkPolicy that selects the right key never select the pod.
LABEL_PREFIX = "modelctl.dev/"
KNOWN_LABELS = frozenset({EGRESS_LABEL, "modelctl.dev/skip"})
_SHOWN = 6


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WorkloadShapeError(f"{what} is not an object")
    return value


def _list(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise WorkloadShapeError(f"{what} is not a list")
    return value


def _opt_bool(value: object, what: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise WorkloadShapeError(f"{what} is not true or false")


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise WorkloadShapeError(f"{what} is not a string")
    return value


@dataclass(frozen=True, slots=True)
class Container:
    kind: str  # initContainers, containers, ephemeralContainers
    name: str
    spec: Mapping[str, Any]
    security: Mapping[str, Any]

    @property
    def where(self) -> str:
        return f"{self.kind}[{self.name}]"


@dataclass(frozen=True, slots=True)
class PodView:
    """The parts of a Pod the checks read, type-checked once."""

    labels: Mapping[str, str]
    spec: Mapping[str, Any]
    pod_security: Mapping[str, Any]
    containers: tuple[Container, ...]
    volumes: tuple[Mapping[str, Any], ...]

    @classmethod
    def parse(cls, pod: Mapping[str, Any]) -> PodView:
        metadata = _obj(pod.get("metadata"), "metadata")
        labels = _obj(metadata.get("labels"), "metadata.labels")
        for key, value in labels.items():
            _str(value, f"label {key!r:.80}")
        spec = _obj(pod.get("spec"), "spec")
        containers: list[Container] = []
        for kind in ("initContainers", "containers", "ephemeralContainers"):
            for i, raw in enumerate(_list(spec.get(kind), f"spec.{kind}")):
                c = _obj(raw, f"spec.{kind}[{i}]")
                name = c.get("name")
                name = name if isinstance(name, str) and name else f"#{i}"
                security = _obj(c.get("securityContext"), f"spec.{kind}[{i}].securityContext")
                containers.append(Container(kind, name[:80], c, security))
        volumes = tuple(
            _obj(v, f"spec.volumes[{i}]")
            for i, v in enumerate(_list(spec.get("volumes"), "spec.volumes"))
        )
        return cls(
            labels=MappingProxyType(dict(labels)),
            spec=spec,
            pod_security=_obj(spec.get("securityContext"), "spec.securityContext"),
            containers=tuple(containers),
            volumes=volumes,
        )


@dataclass(frozen=True, slots=True)
class PodReport:
    """The checks a profile ran on one pod, and the pod's posture (for the evidence)."""

    profile: str
    checks: tuple[CheckResult, ...]
    posture: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.status is CheckStatus.FAIL)


def _result(check_id: str, bad: list[str], fix: str, ok: str) -> CheckResult:
    if not bad:
        return CheckResult(check_id, CheckStatus.PASS, ok)
    shown = ", ".join(bad[:_SHOWN]) + (
        f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    )
    return CheckResult(
        check_id, CheckStatus.FAIL, f"{shown}: {fix}", MappingProxyType({"at": bad[:50]})
    )


def check_pod(profile: ContainmentProfile, pod: Mapping[str, Any]) -> PodReport:
    """Run every check `profile` asks for on `pod` (the Pod object as JSON).

    Raises `WorkloadShapeError` for a pod of the wrong shape (a field of the wrong type)."""
    view = PodView.parse(pod)
    checks: list[CheckResult] = []
    if profile.forbid_host_namespaces:
        checks.append(_host_namespaces(view))
    if profile.forbid_host_path:
        checks.append(_host_path(view))
    if profile.forbid_privileged:
        checks.append(_privileged(view))
    if profile.forbid_privilege_escalation:
        checks.append(_privilege_escalation(view))
    if profile.capabilities is not None:
        checks.append(_capabilities(view, profile))
    if profile.run_as_non_root:
        checks.append(_run_as_non_root(view))
    if profile.read_only_root_filesystem:
        checks.append(_read_only_root(view))
    if profile.service_account_token is not None:
        checks.append(_service_account_token(view, profile))
    if profile.secrets is not None:
        checks.append(_secrets(view, profile))
    if profile.model_mounts is not None:
        checks.append(_model_mounts(view, profile))
    if profile.resource_limits:
        checks.append(_resource_limits(view, profile))
    if profile.egress:
        checks.append(_egress_label(view, profile))
    return PodReport(profile.label, tuple(checks), MappingProxyType(posture(view)))


# ---- the checks -------------------------------------------------------------------------


def _host_namespaces(view: PodView) -> CheckResult:
    bad = [
        f"spec.{key}: true"
        for key in ("hostNetwork", "hostPID", "hostIPC")
        if _opt_bool(view.spec.get(key), f"spec.{key}") is True
    ]
    return _result(
        "pod.host-namespaces",
        bad,
        "remove hostNetwork/hostPID/hostIPC (or set them to false)",
        "no host network, PID or IPC namespace",
    )


def _host_path(view: PodView) -> CheckResult:
    bad = [f"volume {_vname(v)}" for v in view.volumes if v.get("hostPath") is not None]
    return _result(
        "pod.host-path",
        bad,
        "replace hostPath volumes (use an emptyDir, a PVC or an image volume)",
        "no hostPath volume",
    )


def _privileged(view: PodView) -> CheckResult:
    bad = [
        c.where
        for c in view.containers
        if _opt_bool(c.security.get("privileged"), f"{c.where}.privileged") is True
    ]
    return _result(
        "pod.privileged",
        bad,
        "set securityContext.privileged: false (or remove it)",
        "no privileged container",
    )


def _privilege_escalation(view: PodView) -> CheckResult:
    bad = [
        c.where
        for c in view.containers
        if _opt_bool(
            c.security.get("allowPrivilegeEscalation"), f"{c.where}.allowPrivilegeEscalation"
        )
        is not False
    ]
    return _result(
        "pod.privilege-escalation",
        bad,
        "set securityContext.allowPrivilegeEscalation: false in each container (unset means true)",
        "every container sets allowPrivilegeEscalation: false",
    )


def _cap_name(value: object, where: str) -> str:
    return _str(value, where).upper().removeprefix("CAP_")


def _capabilities(view: PodView, profile: ContainmentProfile) -> CheckResult:
    rule = profile.capabilities
    assert rule is not None
    need = {c.upper() for c in rule.drop}
    allowed = {c.upper() for c in rule.allow_add}
    bad: list[str] = []
    for c in view.containers:
        caps = _obj(c.security.get("capabilities"), f"{c.where}.capabilities")
        drop = {_cap_name(x, f"{c.where}.drop") for x in _list(caps.get("drop"), "drop")}
        add = {_cap_name(x, f"{c.where}.add") for x in _list(caps.get("add"), "add")}
        missing = sorted(need - drop) if "ALL" not in drop else []
        extra = sorted(add - allowed)
        if missing:
            bad.append(f"{c.where} drops no {'/'.join(missing)}")
        if extra:
            bad.append(f"{c.where} adds {'/'.join(extra)}")
    return _result(
        "pod.capabilities",
        bad,
        f"set securityContext.capabilities.drop: [{', '.join(rule.drop)}] and add only "
        f"[{', '.join(rule.allow_add)}]",
        f"every container drops {', '.join(rule.drop)}",
    )


def _run_as_non_root(view: PodView) -> CheckResult:
    pod_flag = _opt_bool(view.pod_security.get("runAsNonRoot"), "spec.securityContext")
    pod_user = view.pod_security.get("runAsUser")
    bad: list[str] = []
    for c in view.containers:
        flag = _opt_bool(c.security.get("runAsNonRoot"), f"{c.where}.runAsNonRoot")
        user = c.security.get("runAsUser", pod_user)
        effective = flag if flag is not None else pod_flag
        if effective is not True or user == 0:
            bad.append(c.where + (" runs as user 0" if user == 0 else ""))
    return _result(
        "pod.run-as-non-root",
        bad,
        "set securityContext.runAsNonRoot: true (pod or container) and a non-zero runAsUser",
        "every container runs as non-root",
    )


def _read_only_root(view: PodView) -> CheckResult:
    bad = [
        c.where
        for c in view.containers
        if _opt_bool(c.security.get("readOnlyRootFilesystem"), f"{c.where}.readOnlyRootFilesystem")
        is not True
    ]
    return _result(
        "pod.read-only-root-filesystem",
        bad,
        "set securityContext.readOnlyRootFilesystem: true (mount an emptyDir where it writes)",
        "every container has a read-only root filesystem",
    )


def _service_account(view: PodView) -> str:
    name = view.spec.get("serviceAccountName") or view.spec.get("serviceAccount") or "default"
    return _str(name, "spec.serviceAccountName")


def _service_account_token(view: PodView, profile: ContainmentProfile) -> CheckResult:
    rule = profile.service_account_token
    assert rule is not None
    account = _service_account(view)
    allowlisted = account in rule.allow_service_accounts
    automount = _opt_bool(
        view.spec.get("automountServiceAccountToken"), "spec.automountServiceAccountToken"
    )
    bad: list[str] = []
    if automount is not False and not allowlisted:
        bad.append(f"service account {account!r} token mounted (automount unset or true)")
    for v in view.volumes:
        sources = _list(_obj(v.get("projected"), "projected").get("sources"), "sources")
        projects = any(_obj(s, "source").get("serviceAccountToken") is not None for s in sources)
        if projects and not allowlisted:
            bad.append(f"volume {_vname(v)} projects a service account token")
    allowed = ", ".join(rule.allow_service_accounts) or "none"
    return _result(
        "pod.service-account-token",
        bad,
        f"set spec.automountServiceAccountToken: false (allowlisted accounts: {allowed})",
        f"no service account token ({account})"
        if not allowlisted
        else f"service account {account} is allowlisted",
    )


def pod_secrets(view: PodView) -> list[tuple[str, str]]:
    """(where, secret name) for every Secret the pod reads."""
    out: list[tuple[str, str]] = []
    for c in view.containers:
        for i, env in enumerate(_list(c.spec.get("env"), f"{c.where}.env")):
            source = _obj(_obj(env, "env").get("valueFrom"), "valueFrom")
            ref = source.get("secretKeyRef")
            if ref is not None:
                out.append((f"{c.where}.env[{i}]", str(_obj(ref, "secretKeyRef").get("name"))))
        for i, env in enumerate(_list(c.spec.get("envFrom"), f"{c.where}.envFrom")):
            ref = _obj(env, "envFrom").get("secretRef")
            if ref is not None:
                out.append((f"{c.where}.envFrom[{i}]", str(_obj(ref, "secretRef").get("name"))))
    for v in view.volumes:
        where = f"volume {_vname(v)}"
        if v.get("secret") is not None:
            out.append((where, str(_obj(v.get("secret"), where).get("secretName"))))
        for s in _list(_obj(v.get("projected"), where).get("sources"), where):
            ref = _obj(s, where).get("secret")
            if ref is not None:
                out.append((where, str(_obj(ref, where).get("name"))))
        csi = _obj(v.get("csi"), where)
        if csi.get("driver") == SECRETS_STORE_DRIVER:
            out.append(
                (
                    where,
                    f"csi:{_obj(csi.get('volumeAttributes'), where).get('secretProviderClass')}",
                )
            )
    return out


def _secrets(view: PodView, profile: ContainmentProfile) -> CheckResult:
    rule = profile.secrets
    assert rule is not None
    bad = [
        f"{where} reads Secret {name!r}"
        for where, name in pod_secrets(view)
        if name not in rule.allow
    ]
    fix = (
        "remove every Secret (env, envFrom, secret/projected volumes): this profile allows none"
        if not rule.allow
        else f"read only the allowlisted Secrets ({', '.join(rule.allow)})"
    )
    return _result("pod.secrets", bad, fix, "no Secret outside the allowlist")


def _under(path: str, roots: tuple[str, ...]) -> bool:
    path = path.rstrip("/") or "/"
    return any(path == r or path.startswith(r + "/") for r in roots)


def _model_mounts(view: PodView, profile: ContainmentProfile) -> CheckResult:
    rule = profile.model_mounts
    assert rule is not None
    mounts: list[tuple[Container, Mapping[str, Any]]] = []
    for c in view.containers:
        for i, m in enumerate(_list(c.spec.get("volumeMounts"), f"{c.where}.volumeMounts")):
            mounts.append((c, _obj(m, f"{c.where}.volumeMounts[{i}]")))
    image_volumes = {_vname(v) for v in view.volumes if v.get("image") is not None}
    model_volumes = image_volumes | {
        str(m.get("name")) for _, m in mounts if _under(str(m.get("mountPath", "")), rule.paths)
    }
    bad: list[str] = []
    for c, m in mounts:
        if str(m.get("name")) not in model_volumes:
            continue
        if c.kind == "initContainers" and c.name == STORAGE_INITIALIZER:
            continue  # it writes the model, before the model runs
        if _opt_bool(m.get("readOnly"), f"{c.where}.readOnly") is not True:
            bad.append(f"{c.where} mounts {m.get('name')} at {m.get('mountPath')}")
    return _result(
        "pod.model-mounts",
        bad,
        "set readOnly: true on every mount of a model volume",
        "model volumes are mounted read-only"
        if model_volumes
        else f"no model volume (nothing mounted at {', '.join(rule.paths)})",
    )


def _resource_limits(view: PodView, profile: ContainmentProfile) -> CheckResult:
    bad: list[str] = []
    for c in view.containers:
        if c.kind == "ephemeralContainers":
            continue  # Kubernetes does not allow resources on them; the other checks apply
        limits = _obj(_obj(c.spec.get("resources"), "resources").get("limits"), "limits")
        missing = [r for r in profile.resource_limits if r not in limits]
        if missing:
            bad.append(f"{c.where} has no {'/'.join(missing)} limit")
    return _result(
        "pod.resource-limits",
        bad,
        f"set resources.limits for {', '.join(profile.resource_limits)} in each container",
        f"every container limits {', '.join(profile.resource_limits)}",
    )


def _egress_label(view: PodView, profile: ContainmentProfile) -> CheckResult:
    allowed = ", ".join(profile.egress)
    fix = (
        f"label the pod {EGRESS_LABEL}: {' or '.join(profile.egress)} "
        "(the value the namespace's NetworkPolicy selects)"
    )
    known = ", ".join(sorted(KNOWN_LABELS))
    odd = sorted(
        k for k in view.labels if k.lower().startswith(LABEL_PREFIX) and k not in KNOWN_LABELS
    )
    if odd:
        return _result(
            "pod.egress-label",
            [f"label {k!r:.80} is not a modelctl label (known: {known})" for k in odd],
            fix,
            "",
        )
    value = view.labels.get(EGRESS_LABEL)
    if value is None:
        return _result("pod.egress-label", [f"no {EGRESS_LABEL} label"], fix, "")
    if value not in profile.egress:
        return _result(
            "pod.egress-label", [f"{EGRESS_LABEL}={value[:40]!r} (allowed: {allowed})"], fix, ""
        )
    return _result("pod.egress-label", [], fix, f"{EGRESS_LABEL}={value}")


def _vname(volume: Mapping[str, Any]) -> str:
    name = volume.get("name")
    return name[:80] if isinstance(name, str) else "?"


def posture(view: PodView) -> dict[str, Any]:
    """What the pod asks for, in a few plain fields: the evidence a decision records."""
    return {
        "hostNamespaces": sorted(
            k for k in ("hostNetwork", "hostPID", "hostIPC") if view.spec.get(k) is True
        ),
        "serviceAccount": view.spec.get("serviceAccountName") or "default",
        "automountServiceAccountToken": view.spec.get("automountServiceAccountToken"),
        "egress": view.labels.get(EGRESS_LABEL),
        "hostPathVolumes": [_vname(v) for v in view.volumes if v.get("hostPath") is not None],
        "secrets": sorted({name for _, name in pod_secrets(view)}),
        "containers": [
            {
                "name": c.where,
                "privileged": c.security.get("privileged") is True,
                "allowPrivilegeEscalation": c.security.get("allowPrivilegeEscalation"),
                "readOnlyRootFilesystem": c.security.get("readOnlyRootFilesystem") is True,
                "runAsNonRoot": c.security.get(
                    "runAsNonRoot", view.pod_security.get("runAsNonRoot")
                ),
            }
            for c in view.containers[:32]
        ],
    }
