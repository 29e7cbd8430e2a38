"""NetworkPolicies in model namespaces: warn when one would open egress to pods that carry the
egress label (`modelctl.dev/egress: none|allowlist`). Pure; the webhook answers with the
warnings and allows the object (NetworkPolicies are additive: a warning at `kubectl apply` is
where the mistake can still be fixed by the person making it).

NetworkPolicies only add allowances: a policy that selects a labelled pod and allows egress
widens what that pod can reach, whatever other policies say. So:
- pods labelled `none` may reach nothing: any egress rule that applies to them is a warning;
- pods labelled `allowlist` may reach named in-cluster peers (a pod selector, or a namespace
  selector with a pod selector): a rule with no `to` (everywhere), an `ipBlock` (addresses,
  possibly outside the cluster) or a namespace selector alone (every pod of those namespaces)
  is a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.containment import EGRESS_CLASSES, EGRESS_LABEL
from registry.errors import InputError


class NetworkPolicyError(InputError):
    """A NetworkPolicy of the wrong shape."""


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise NetworkPolicyError(f"{what} is not an object")
    return value


def _list(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise NetworkPolicyError(f"{what} is not a list")
    return value


def selected_classes(pod_selector: Mapping[str, Any]) -> set[str]:
    """The egress classes of the labelled pods `pod_selector` can select (conservative: a
    selector that says nothing about the label may select pods of every class)."""
    classes = set(EGRESS_CLASSES)
    labels = _obj(pod_selector.get("matchLabels"), "podSelector.matchLabels")
    if EGRESS_LABEL in labels:
        classes &= {str(labels[EGRESS_LABEL])}
    for i, raw in enumerate(_list(pod_selector.get("matchExpressions"), "matchExpressions")):
        expr = _obj(raw, f"podSelector.matchExpressions[{i}]")
        if expr.get("key") != EGRESS_LABEL:
            continue
        values = {str(v) for v in _list(expr.get("values"), "values")}
        op = expr.get("operator")
        if op == "In":
            classes &= values
        elif op == "NotIn":
            classes -= values
        elif op == "DoesNotExist":
            classes = set()
    return classes


def _applies_to_egress(spec: Mapping[str, Any]) -> bool:
    types = _list(spec.get("policyTypes"), "spec.policyTypes")
    if types:
        return "Egress" in types
    return spec.get("egress") is not None  # the API server's default for policyTypes


def _rule_opens(rule: Mapping[str, Any], where: str) -> str | None:
    """Why the rule lets an `allowlist` pod reach more than named in-cluster peers, or None."""
    peers = _list(rule.get("to"), f"{where}.to")
    if not peers:
        return "it has no `to`: every destination"
    for j, raw in enumerate(peers):
        peer = _obj(raw, f"{where}.to[{j}]")
        if peer.get("ipBlock") is not None:
            cidr = _obj(peer.get("ipBlock"), "ipBlock").get("cidr")
            return f"to[{j}] is an ipBlock ({str(cidr)[:45]}): addresses, possibly outside"
        if peer.get("namespaceSelector") is not None and peer.get("podSelector") is None:
            return f"to[{j}] selects whole namespaces (add a podSelector)"
    return None


def egress_warnings(policy: Mapping[str, Any]) -> list[str]:
    """One line per egress rule that widens what a labelled pod can reach."""
    meta = _obj(policy.get("metadata"), "metadata")
    name = f"{meta.get('namespace') or ''}/{meta.get('name') or meta.get('generateName') or ''}"
    spec = _obj(policy.get("spec"), "spec")
    if not _applies_to_egress(spec):
        return []
    classes = selected_classes(_obj(spec.get("podSelector"), "spec.podSelector"))
    rules = _list(spec.get("egress"), "spec.egress")
    out: list[str] = []
    for i, raw in enumerate(rules):
        rule = _obj(raw, f"spec.egress[{i}]")
        if "none" in classes:
            out.append(
                f"NetworkPolicy {name}: egress[{i}] opens egress to pods labelled "
                f"{EGRESS_LABEL}=none (they may reach nothing): narrow spec.podSelector "
                f"(e.g. {EGRESS_LABEL}: allowlist) or remove the rule"
            )
            continue
        why = _rule_opens(rule, f"spec.egress[{i}]") if "allowlist" in classes else None
        if why is not None:
            out.append(
                f"NetworkPolicy {name}: egress[{i}] opens egress to pods labelled "
                f"{EGRESS_LABEL}=allowlist beyond named in-cluster peers: {why}"
            )
    return out
