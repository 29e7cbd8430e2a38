"""Admission policy: documents, facts and pure evaluation to a decision.

Imports only `attestations` (and PyYAML, cel-expr-python). Format: policies/README.md.
"""

from __future__ import annotations

from importlib import resources

from policies.errors import PolicyError
from policies.evaluate import CheckResult, CheckStatus, Decision, evaluate
from policies.facts import (
    AttestationFact,
    Facts,
    FileFact,
    FindingFact,
    ScanFact,
    ScannedFileFact,
)
from policies.lint import LintLevel, LintMessage, lint
from policies.loader import load_policies
from policies.model import REGISTRY_SIGNER, Mode, ModelPolicy, ModelPolicyBinding, PolicySet

DEFAULTS_FILE = "defaults/default.yaml"


def default_policies_text() -> str:
    return resources.files(__name__).joinpath(DEFAULTS_FILE).read_text(encoding="utf-8")


def load_default_policies() -> PolicySet:
    """The shipped `dev`, `staging` and `prod` policies and their binding."""
    return load_policies(default_policies_text(), f"policies/{DEFAULTS_FILE}")


__all__ = [
    "REGISTRY_SIGNER",
    "AttestationFact",
    "CheckResult",
    "CheckStatus",
    "Decision",
    "Facts",
    "FileFact",
    "FindingFact",
    "LintLevel",
    "LintMessage",
    "Mode",
    "ModelPolicy",
    "ModelPolicyBinding",
    "PolicyError",
    "PolicySet",
    "ScanFact",
    "ScannedFileFact",
    "evaluate",
    "lint",
    "load_default_policies",
    "load_policies",
]
