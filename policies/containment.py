"""Containment profiles: what a pod that runs a model must look like, as typed, frozen values.

A `ContainmentProfile` (its own YAML document, `kind: ContainmentProfile`, named and versioned)
lists the pod-spec requirements; a `ModelPolicy`'s `spec.containment` picks one per checkpoint
from what is known about it (CEL over the facts), so a model nobody has backdoor-scanned lately
runs only in a pod that could not reach anything if it were compromised. The checks themselves
are in `policies.pod_checks`; the choice is made by `evaluate` (check `containment`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from policies.model import Mode

#: The pod label the namespace's NetworkPolicies select; its values are the egress classes.
EGRESS_LABEL = "modelctl.dev/egress"
EGRESS_CLASSES: tuple[str, ...] = ("none", "allowlist")
#: Where KServe mounts the model (the storage initializer's emptyDir): a model path unless a
#: profile names others.
DEFAULT_MODEL_PATHS: tuple[str, ...] = ("/mnt/models",)
#: Resources a profile may require limits for.
LIMITABLE_RESOURCES: tuple[str, ...] = ("cpu", "memory", "ephemeral-storage", "nvidia.com/gpu")


@dataclass(frozen=True, slots=True)
class ServiceAccountTokenRule:
    """`automountServiceAccountToken: false`, unless the pod runs as an allowlisted account."""

    allow_service_accounts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SecretsRule:
    """Secrets a pod may read (env, envFrom, secret or projected volumes, CSI secret stores).
    An empty allowlist: no Secret at all."""

    allow: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ModelMountsRule:
    """Every mount of a model volume is read-only (KServe's storage-initializer init container
    writes the model and is the one exception)."""

    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CapabilitiesRule:
    drop: tuple[str, ...]  # each container drops these ("ALL" covers every one)
    allow_add: tuple[str, ...]  # and adds none but these


@dataclass(frozen=True, slots=True)
class ContainmentProfile:
    """One named, versioned profile. `None`/`False` means "not checked by this profile"."""

    name: str
    revision: int
    digest: str
    description: str
    forbid_host_namespaces: bool
    forbid_host_path: bool
    forbid_privileged: bool
    forbid_privilege_escalation: bool
    capabilities: CapabilitiesRule | None
    run_as_non_root: bool
    read_only_root_filesystem: bool
    service_account_token: ServiceAccountTokenRule | None
    secrets: SecretsRule | None
    model_mounts: ModelMountsRule | None
    resource_limits: tuple[str, ...]
    egress: tuple[str, ...]  # allowed values of the egress label; empty: not checked
    filename: str
    line: int

    @property
    def label(self) -> str:
        return f"{self.name} r{self.revision}"


@dataclass(frozen=True, slots=True)
class ProfileSelector:
    """`spec.containment.select[]`: the first whose CEL `when` holds picks `profile`."""

    id: str
    when: str
    profile: ContainmentProfile
    reason: str
    compiled: Any = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ContainmentRequirement:
    """What a decision asks of the pods that run the checkpoint: the profile, why it was
    chosen, and how failures are handled (the binding's `containmentMode`)."""

    profile: ContainmentProfile
    mode: Mode
    because: str  # the selector id and its reason, or "default"


@dataclass(frozen=True, slots=True)
class WorkloadScope:
    """Which workloads an exception covers: a namespace, optionally a kind and a name glob."""

    namespace: str
    kind: str | None
    name: str | None  # fnmatch-style glob on the workload's name

    def covers(self, namespace: str, kind: str, name: str) -> bool:
        return (
            namespace == self.namespace
            and (self.kind is None or self.kind == kind)
            and (self.name is None or fnmatchcase(name, self.name))
        )


@dataclass(frozen=True, slots=True)
class ContainmentException:
    """`spec.containment.exceptions[]`: pod checks waived for a namespace or one workload,
    until `expires`, requested by one person and approved by another."""

    id: str
    scope: WorkloadScope
    waive: frozenset[str]
    reason: str
    requested_by: str
    approver: str
    expires: datetime
    environments: frozenset[str] | None
    line: int


@dataclass(frozen=True, slots=True)
class Containment:
    """`spec.containment` of a ModelPolicy: the profile when no selector matches, the
    selectors in order, and the workload-scoped exceptions."""

    default: ContainmentProfile
    select: tuple[ProfileSelector, ...]
    exceptions: tuple[ContainmentException, ...] = ()


#: Every pod check id, in the order they run (the ids exceptions may waive).
POD_CHECK_IDS: tuple[str, ...] = (
    "pod.host-namespaces",
    "pod.host-path",
    "pod.privileged",
    "pod.privilege-escalation",
    "pod.capabilities",
    "pod.run-as-non-root",
    "pod.read-only-root-filesystem",
    "pod.service-account-token",
    "pod.secrets",
    "pod.model-mounts",
    "pod.resource-limits",
    "pod.egress-label",
)


def profile_check_ids(profile: ContainmentProfile) -> tuple[str, ...]:
    """The pod check ids `profile` runs, in `POD_CHECK_IDS` order."""
    on = {
        "pod.host-namespaces": profile.forbid_host_namespaces,
        "pod.host-path": profile.forbid_host_path,
        "pod.privileged": profile.forbid_privileged,
        "pod.privilege-escalation": profile.forbid_privilege_escalation,
        "pod.capabilities": profile.capabilities is not None,
        "pod.run-as-non-root": profile.run_as_non_root,
        "pod.read-only-root-filesystem": profile.read_only_root_filesystem,
        "pod.service-account-token": profile.service_account_token is not None,
        "pod.secrets": profile.secrets is not None,
        "pod.model-mounts": profile.model_mounts is not None,
        "pod.resource-limits": bool(profile.resource_limits),
        "pod.egress-label": bool(profile.egress),
    }
    return tuple(c for c in POD_CHECK_IDS if on[c])
