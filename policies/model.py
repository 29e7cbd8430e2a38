"""The policy document as typed, frozen values (spec: policies/README.md)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from attestations.verdicts import Severity, Verdict

if TYPE_CHECKING:  # containment imports Mode from here
    from policies.containment import Containment, ContainmentProfile

API_VERSION = "modelctl.dev/v1"

#: The signer name the caller resolves to the registry's own key (not known to the YAML).
REGISTRY_SIGNER = "registry"

#: Check-id prefixes that no exception may waive: signatures, digests, quarantine, and a
#: malicious verdict (only a finding-level "false positive" triage by two people gets past it).
#: `containment` (which profile the pod needs) is the policy's choice, not a finding to waive;
#: pod checks are waived per workload (`spec.containment.exceptions`).
UNWAIVABLE_PREFIXES = (
    "attestations",
    "signers",
    "digest",
    "quarantine",
    "malicious",
    "containment",
)

#: Checks that deny in every mode (enforce, warn, audit): never turned into warnings.
HARD_CHECKS = ("quarantine", "digest", "malicious")

#: The longest an exception granted through the registry may run, when a policy does not say
#: (`spec.waivers.maxExpiry`).
DEFAULT_WAIVER_MAX_EXPIRY = timedelta(days=90)

#: The verdicts a policy may name, in the order its messages list them (the rank is
#: `attestations.verdicts.Verdict`'s; this is only the listing order users have seen).
VERDICTS: tuple[str, ...] = tuple(
    v.value
    for v in (
        Verdict.CLEAN,
        Verdict.SUSPICIOUS,
        Verdict.MALICIOUS,
        Verdict.MALFORMED,
        Verdict.UNSUPPORTED,
        Verdict.ERROR,
    )
)
#: `maxSeverity` values: "none" (no finding at all) below every `Severity`, least first.
SEVERITIES: tuple[str, ...] = ("none", *(s.value for s in Severity))

#: File formats whose loading runs a pickle VM (what `formats.pickleBased` governs). A NeMo
#: archive holds a torch checkpoint, and a TorchScript archive's records are unpickled: a file
#: both the pickle scanner and their own scanner report on stays pickle-based either way.
PICKLE_BASED_FORMATS = frozenset(
    {
        "pickle",
        "pytorch",
        "pytorch-zip",
        "joblib",
        "numpy-pickle",
        "keras-pickle",
        "dill",
        "nemo",
        "torchscript",
    }
)


class Mode(enum.StrEnum):
    ENFORCE = "enforce"
    WARN = "warn"
    AUDIT = "audit"


class PickleBased(enum.StrEnum):
    DENY = "deny"
    ALLOW_IF_SCANS_CLEAN = "allow-if-scans-clean"
    ALLOW = "allow"


@dataclass(frozen=True, slots=True)
class Glob:
    """A source-URI glob: `*` within one path segment, `**` across segments, `?`, `[...]`."""

    pattern: str
    regex: re.Pattern[str] = field(compare=False, repr=False)

    def matches(self, text: str) -> bool:
        return self.regex.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class KeySigner:
    name: str
    pem: str | None
    key_hint: str | None
    not_after: datetime | None
    kind: Literal["key"] = "key"


@dataclass(frozen=True, slots=True)
class RegistrySigner:
    """The registry's own key: resolved by the caller, which reports `signer="registry"`."""

    name: str
    not_after: datetime | None
    kind: Literal["registry"] = "registry"


@dataclass(frozen=True, slots=True)
class KeylessSigner:
    name: str
    issuer: str
    subject: re.Pattern[str]
    not_after: datetime | None
    kind: Literal["keyless"] = "keyless"


@dataclass(frozen=True, slots=True)
class CertificateSigner:
    name: str
    roots: tuple[str, ...]
    san: re.Pattern[str]
    not_after: datetime | None
    kind: Literal["certificate"] = "certificate"
    #: Count signatures whose signing certificate is itself a CA (CA:TRUE leaf).
    allow_ca_leaf: bool = False


Signer = KeySigner | RegistrySigner | KeylessSigner | CertificateSigner


@dataclass(frozen=True, slots=True)
class Sources:
    allow: tuple[Glob, ...]
    deny: tuple[Glob, ...]


@dataclass(frozen=True, slots=True)
class Pin:
    source: Glob
    commits: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Revisions:
    require_pinned: bool
    pins: tuple[Pin, ...]


@dataclass(frozen=True, slots=True)
class Licenses:
    allow: frozenset[str]
    allow_unknown: bool


@dataclass(frozen=True, slots=True)
class Formats:
    pickle_based: PickleBased
    allow: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class RequiredAttestation:
    predicate_type: str
    signers: tuple[str, ...]
    threshold: int

    @property
    def check_id(self) -> str:
        return f"attestations.{self.predicate_type}"


@dataclass(frozen=True, slots=True)
class ScanRequirement:
    scanner: str
    min_version: tuple[int, ...] | None
    max_age: timedelta | None
    forbid: frozenset[str]
    max_severity: str | None
    #: For a fine-tune (its card declares `base_model:`), the newest scan must have compared
    #: it with that base (the backdoor scanner's differential mode). No effect on other models.
    differential: bool = False

    @property
    def check_id(self) -> str:
        return f"scans.{self.scanner}"


@dataclass(frozen=True, slots=True)
class Verdicts:
    """`spec.verdicts`: verdicts denied from the newest scan of *every* scanner on record,
    whether or not `scans` names it (one check `verdicts.<verdict>` each)."""

    deny: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    expression: str
    message: str
    compiled: Any = field(compare=False, repr=False)

    @property
    def check_id(self) -> str:
        return f"rules.{self.id}"


@dataclass(frozen=True, slots=True)
class ExceptionScope:
    name: Glob | None
    digest: str | None
    source: Glob | None


@dataclass(frozen=True, slots=True)
class PolicyException:
    id: str
    scope: ExceptionScope
    waive: frozenset[str]
    reason: str
    approver: str
    expires: datetime
    environments: frozenset[str] | None
    line: int


@dataclass(frozen=True, slots=True)
class ModelPolicy:
    name: str
    digest: str
    signers: tuple[Signer, ...]
    sources: Sources | None
    revisions: Revisions | None
    licenses: Licenses | None
    formats: Formats | None
    attestations: tuple[RequiredAttestation, ...]
    scans: tuple[ScanRequirement, ...]
    rules: tuple[Rule, ...]
    exceptions: tuple[PolicyException, ...]
    filename: str
    line: int
    verdicts: Verdicts | None = None
    #: `spec.waivers.maxExpiry`: the longest a registry exception under this policy may run.
    waiver_max_expiry: timedelta = DEFAULT_WAIVER_MAX_EXPIRY
    #: `spec.containment`: the profile the pods running its models must meet, chosen per
    #: checkpoint; None: the policy asks nothing of the pod.
    containment: Containment | None = None

    def signer(self, name: str) -> Signer | None:
        for s in self.signers:
            if s.name == name:
                return s
        if name == REGISTRY_SIGNER:
            return RegistrySigner(name=REGISTRY_SIGNER, not_after=None)
        return None


@dataclass(frozen=True, slots=True)
class EnvironmentBinding:
    policy: str
    mode: Mode
    #: How pod checks against the containment profile are handled; the `mode` when unset.
    containment_mode: Mode | None = None


@dataclass(frozen=True, slots=True)
class ModelPolicyBinding:
    name: str
    environments: tuple[tuple[str, EnvironmentBinding], ...]
    filename: str
    line: int

    def environment(self, env: str) -> EnvironmentBinding | None:
        for name, binding in self.environments:
            if name == env:
                return binding
        return None


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Everything one or more policy files declared; policy names are unique."""

    policies: tuple[ModelPolicy, ...]
    bindings: tuple[ModelPolicyBinding, ...]
    profiles: tuple[ContainmentProfile, ...] = ()

    def policy(self, name: str) -> ModelPolicy | None:
        return next((p for p in self.policies if p.name == name), None)

    def environments(self) -> tuple[str, ...]:
        """Every environment some binding names, sorted."""
        return tuple(sorted({env for b in self.bindings for env, _ in b.environments}))

    def for_environment(self, env: str) -> tuple[ModelPolicy, Mode] | None:
        """The policy and mode bound to `env`; None when no binding names it (deny)."""
        for binding in self.bindings:
            bound = binding.environment(env)
            if bound is not None:
                policy = self.policy(bound.policy)
                return None if policy is None else (policy, bound.mode)
        return None

    def containment_mode(self, env: str) -> Mode | None:
        """The mode of the pod checks in `env` (`containmentMode`, else the binding's mode)."""
        for binding in self.bindings:
            bound = binding.environment(env)
            if bound is not None:
                return bound.containment_mode or bound.mode
        return None
