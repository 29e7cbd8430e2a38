"""Strict loading of `ContainmentProfile` documents and a policy's `spec.containment`.

Called by `policies.loader` with its node wrapper (same errors: file, line, field path; unknown
fields refused). Kept apart so the loader stays one walk over the model policy's own sections.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from policies import cel_engine
from policies.containment import (
    DEFAULT_MODEL_PATHS,
    EGRESS_CLASSES,
    LIMITABLE_RESOURCES,
    POD_CHECK_IDS,
    CapabilitiesRule,
    Containment,
    ContainmentException,
    ContainmentProfile,
    ModelMountsRule,
    ProfileSelector,
    SecretsRule,
    ServiceAccountTokenRule,
    WorkloadScope,
)

if TYPE_CHECKING:  # the loader imports this module; its node type is only needed for typing
    from policies.loader import _Node

_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$")
#: A Kubernetes object name (DNS-1123 subdomain) or a glob over one.
_K8S_NAME = re.compile(r"^[a-z0-9*?]([a-z0-9.*?-]{0,251}[a-z0-9*?])?$")
_CAPABILITY = re.compile(r"^[A-Z_]{2,40}$")
_PROFILE_FIELDS = {
    "forbidHostNamespaces",
    "forbidHostPath",
    "forbidPrivileged",
    "forbidPrivilegeEscalation",
    "capabilities",
    "runAsNonRoot",
    "readOnlyRootFilesystem",
    "serviceAccountToken",
    "secrets",
    "modelMounts",
    "resourceLimits",
    "egress",
}
_WORKLOAD_KINDS = (
    "Pod",
    "Deployment",
    "StatefulSet",
    "Job",
    "CronJob",
    "InferenceService",
)


def profile(  # noqa: PLR0917  the document's parts, each already read by the loader
    name: str, revision: int, description: str, spec: _Node, digest: str, line: int
) -> ContainmentProfile:
    f = spec.mapping(set(), _PROFILE_FIELDS)
    if not f:
        spec.fail("a profile that requires nothing contains nothing; name at least one check")

    def flag(key: str) -> bool:
        return f[key].boolean() if key in f else False

    caps = None
    if "capabilities" in f:
        c = f["capabilities"].mapping({"drop"}, {"allowAdd"})
        drop = tuple(c["drop"].strings(lambda n: n.string(_CAPABILITY, "capability (e.g. ALL)")))
        if not drop:
            c["drop"].fail("name the capabilities to drop (e.g. [ALL])")
        add = (
            tuple(c["allowAdd"].strings(lambda n: n.string(_CAPABILITY, "capability")))
            if "allowAdd" in c
            else ()
        )
        caps = CapabilitiesRule(drop=drop, allow_add=add)
    token = None
    if "serviceAccountToken" in f:
        t = f["serviceAccountToken"].mapping(set(), {"allowServiceAccounts"})
        allowed = (
            t["allowServiceAccounts"].strings(_k8s_name) if "allowServiceAccounts" in t else []
        )
        token = ServiceAccountTokenRule(allow_service_accounts=tuple(allowed))
    secrets = None
    if "secrets" in f:
        s = f["secrets"].mapping({"allow"}, set())
        secrets = SecretsRule(allow=tuple(s["allow"].strings(_k8s_name)))
    mounts = None
    if "modelMounts" in f:
        m = f["modelMounts"].mapping(set(), {"paths"})
        paths = tuple(m["paths"].strings(_mount_path)) if "paths" in m else DEFAULT_MODEL_PATHS
        if not paths:
            m["paths"].fail("name at least one model path, or omit paths for /mnt/models")
        mounts = ModelMountsRule(paths=paths)
    limits: tuple[str, ...] = ()
    if "resourceLimits" in f:
        limits = tuple(f["resourceLimits"].strings(lambda n: n.choice(LIMITABLE_RESOURCES)))
        if not limits:
            f["resourceLimits"].fail("name the resources (e.g. [cpu, memory])")
    egress: tuple[str, ...] = ()
    if "egress" in f:
        egress = tuple(f["egress"].strings(lambda n: n.choice(EGRESS_CLASSES)))
        if not egress:
            f["egress"].fail("name the allowed egress classes (none, allowlist)")
    return ContainmentProfile(
        name=name,
        revision=revision,
        digest=digest,
        description=description,
        forbid_host_namespaces=flag("forbidHostNamespaces"),
        forbid_host_path=flag("forbidHostPath"),
        forbid_privileged=flag("forbidPrivileged"),
        forbid_privilege_escalation=flag("forbidPrivilegeEscalation"),
        capabilities=caps,
        run_as_non_root=flag("runAsNonRoot"),
        read_only_root_filesystem=flag("readOnlyRootFilesystem"),
        service_account_token=token,
        secrets=secrets,
        model_mounts=mounts,
        resource_limits=limits,
        egress=egress,
        filename=spec.ctx.filename,
        line=line,
    )


def _k8s_name(node: _Node) -> str:
    return node.string(_K8S_NAME, "Kubernetes name (lower-case, digits, '-', '.')")


def _mount_path(node: _Node) -> str:
    path = node.string()
    if not path.startswith("/") or "/../" in f"{path}/" or len(path) > 1024:
        node.fail(f"not an absolute mount path: {path!r}")
    return path.rstrip("/") or "/"


def containment(node: _Node, profiles: dict[str, ContainmentProfile]) -> Containment:
    """`spec.containment: {profile, select: [{id, when, profile, reason}], exceptions: [...]}`."""
    f = node.mapping({"profile"}, {"select", "exceptions"})
    default = _profile_ref(f["profile"], profiles)
    selectors: list[ProfileSelector] = []
    for n in f["select"].sequence() if "select" in f else []:
        s = n.mapping({"id", "when", "profile", "reason"}, set())
        sid = s["id"].string(_NAME, "selector id")
        if any(x.id == sid for x in selectors):
            s["id"].fail(f"a second selector with id {sid!r}")
        when = s["when"].string()
        try:
            compiled = cel_engine.compile_rule(when, selector=True)
        except cel_engine.CelCompileError as exc:
            s["when"].fail(f"selector {sid!r} does not compile: {exc}")
        selectors.append(
            ProfileSelector(
                id=sid,
                when=when,
                profile=_profile_ref(s["profile"], profiles),
                reason=s["reason"].string(),
                compiled=compiled,
            )
        )
    exceptions: list[ContainmentException] = []
    for n in f["exceptions"].sequence() if "exceptions" in f else []:
        granted = _exception(n)
        if any(e.id == granted.id for e in exceptions):
            n.fail(f"a second containment exception with id {granted.id!r}")
        exceptions.append(granted)
    return Containment(default=default, select=tuple(selectors), exceptions=tuple(exceptions))


def _profile_ref(node: _Node, profiles: dict[str, ContainmentProfile]) -> ContainmentProfile:
    name = node.string(_NAME, "profile name")
    found = profiles.get(name)
    if found is None:
        known = ", ".join(sorted(profiles)) or "none declared"
        node.fail(f"unknown containment profile {name!r} (declared: {known})")
    return found


def _exception(node: _Node) -> ContainmentException:
    f = node.mapping(
        {"id", "scope", "waive", "reason", "requestedBy", "approver", "expires"},
        {"environments", "ticket"},
    )
    s = f["scope"].mapping({"namespace"}, {"kind", "name"})
    scope = WorkloadScope(
        namespace=_k8s_name(s["namespace"]),
        kind=s["kind"].choice(_WORKLOAD_KINDS) if "kind" in s else None,
        name=_k8s_name(s["name"]) if "name" in s else None,
    )
    waive: set[str] = set()
    for n in f["waive"].sequence():
        waive.add(n.choice(POD_CHECK_IDS))
    if not waive:
        f["waive"].fail("waives nothing")
    requested_by = f["requestedBy"].string()
    approver = f["approver"].string()
    if requested_by.strip().lower() == approver.strip().lower():
        f["approver"].fail(
            "an exception needs two people: the approver may not be the one who requested it"
        )
    if "ticket" in f:
        f["ticket"].string()
    envs = (
        frozenset(f["environments"].strings(lambda n: n.string(_NAME, "environment")))
        if "environments" in f
        else None
    )
    return ContainmentException(
        id=f["id"].string(_NAME, "exception id"),
        scope=scope,
        waive=frozenset(waive),
        reason=f["reason"].string(),
        requested_by=requested_by,
        approver=approver,
        expires=f["expires"].timestamp(),
        environments=envs,
        line=node.line,
    )
