"""Containment by architecture, the pure parts: profiles (strict YAML), the profile a decision
requires (CEL over the facts), every pod-spec check on Kubernetes objects as the API server
sends them, controllers and InferenceServices, NetworkPolicies, workload exceptions, modes."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs in the dev set
from kubernetes.client import (
    V1Container,
    V1EphemeralContainer,
    V1IPBlock,
    V1LabelSelector,
    V1NetworkPolicy,
    V1NetworkPolicyEgressRule,
    V1NetworkPolicyPeer,
    V1NetworkPolicySpec,
    V1ObjectMeta,
)

from policies import CheckStatus, Mode, PolicyError, ScanFact, evaluate, load_policies
from policies.containment import ContainmentRequirement
from policies.pod_checks import check_pod
from policies.pod_decision import Workload, contain
from registry.service.k8s_review import MalformedReview, parse_admission_review
from registry.service.netpol_review import egress_warnings
from tests.k8s_objects import (
    admission_review,
    as_sent,
    controller,
    inference_service,
    model_pod,
    model_pod_spec,
    to_json,
)
from tests.test_policies_eval import DEFAULTS, DEFAULTS_TEXT, NOW, good_facts

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
DIGEST = "sha256:" + "ab" * 32
REF = f"acme/bert@{DIGEST}"
STRICT = next(p for p in DEFAULTS.profiles if p.name == "strict")
STANDARD = next(p for p in DEFAULTS.profiles if p.name == "standard")


def backdoor(verdict: str, age_days: int) -> ScanFact:
    return ScanFact("backdoor", "1.0.0", verdict, NOW - timedelta(days=age_days), "none")


def required(facts: Any, env: str = "prod") -> ContainmentRequirement:
    found = DEFAULTS.for_environment(env)
    assert found is not None
    policy, mode = found
    decision = evaluate(
        policy,
        facts,
        now=NOW,
        mode=mode,
        environment=env,
        containment_mode=DEFAULTS.containment_mode(env),
    )
    assert decision.containment is not None
    check = decision.check("containment")
    assert check is not None
    assert check.evidence["profile"] == decision.containment.profile.name
    return decision.containment


# -- which profile ---------------------------------------------------------------------------


def test_the_shipped_policy_picks_strict_without_a_fresh_clean_backdoor_scan() -> None:
    plain = good_facts()
    assert required(plain).profile.name == "strict"
    assert "no-fresh-backdoor-scan" in required(plain).because
    fresh = good_facts(scans=(*plain.scans, backdoor("clean", 3)))
    assert required(fresh).profile.name == "standard"
    stale = good_facts(scans=(*plain.scans, backdoor("clean", 31)))
    assert required(stale).profile.name == "strict"
    suspicious = good_facts(scans=(*plain.scans, backdoor("clean", 9), backdoor("suspicious", 2)))
    assert required(suspicious).profile.name == "strict"
    triaged = good_facts(
        scans=fresh.scans, triaged={"f-1": NOW + timedelta(days=5)}
    )  # a finding cleared by triage: the model may still hide something
    assert required(triaged).profile.name == "strict"


def test_each_environment_carries_its_containment_mode() -> None:
    assert required(good_facts(), "prod").mode is Mode.ENFORCE
    assert required(good_facts(), "staging").mode is Mode.WARN
    assert required(good_facts(), "dev").mode is Mode.AUDIT


def _profile_doc(spec: str, name: str = "p", revision: str = "revision: 1") -> str:
    return (
        "apiVersion: modelctl.dev/v1\nkind: ContainmentProfile\n"
        f"metadata: {{ name: {name}, {revision} }}\nspec:\n{spec}"
    )


def _policy_doc(containment: str) -> str:
    return (
        "apiVersion: modelctl.dev/v1\nkind: ModelPolicy\nmetadata: { name: x }\nspec:\n"
        f"  containment:\n{containment}"
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (_profile_doc("  forbidHostPath: true\n  hostpath: true\n"), "unknown field"),
        (_profile_doc("  forbidHostPath: true\n", revision="description: d"), "'revision'"),
        (_profile_doc("  forbidHostPath: yes-please\n"), "expected true or false"),
        (_profile_doc("  egress: [open]\n"), "must be one of none, allowlist"),
        (_profile_doc("  resourceLimits: [gpu]\n"), "must be one of cpu"),
        (_profile_doc("  capabilities: { drop: [] }\n"), "name the capabilities"),
        (_profile_doc("  modelMounts: { paths: [relative/dir] }\n"), "not an absolute"),
        (_profile_doc("  secrets: { allow: [Bad_Name] }\n"), "Kubernetes name"),
        (_profile_doc("  {}\n"), "requires nothing"),
        (
            _profile_doc("  forbidHostPath: true\n")
            + "\n---\n"
            + _profile_doc("  egress: [none]\n"),
            "a second containment profile",
        ),
        (_policy_doc("    profile: missing\n"), "unknown containment profile 'missing'"),
        (
            _policy_doc(
                "    profile: p\n    select:\n      - { id: s, when: 'scans.size()', "
                "profile: p, reason: r }\n"
            )
            + "\n---\n"
            + _profile_doc("  forbidHostPath: true\n"),
            "not bool",
        ),
    ],
)
def test_profiles_are_strict_yaml(text: str, error: str) -> None:
    with pytest.raises(PolicyError, match=error):
        load_policies(text, "p.yaml")


def _exception(**changes: str) -> str:
    fields = {
        "id": "gpu-debug",
        "scope": "{ namespace: inference-prod, name: 'llm*' }",
        "waive": "[pod.egress-label]",
        "reason": "egress to the weights cache while we move it",
        "requestedBy": "alice",
        "approver": "bob",
        "expires": "2026-12-01T00:00:00Z",
        **changes,
    }
    body = ", ".join(f"{k}: {v}" for k, v in fields.items())
    return _policy_doc(f"    profile: strict\n    exceptions:\n      - {{ {body} }}\n")


def _with_strict(text: str) -> str:
    profile = next(d for d in DEFAULTS_TEXT.split("\n---\n") if "name: strict" in d)
    return text + "\n---\n" + profile


def test_containment_exceptions_need_two_people_a_real_check_and_a_scope() -> None:
    loaded = load_policies(_with_strict(_exception()), "p.yaml").policies[0]
    assert loaded.containment is not None
    (exc,) = loaded.containment.exceptions
    assert exc.scope.covers("inference-prod", "Deployment", "llm-7d9f")
    assert not exc.scope.covers("inference-dev", "Deployment", "llm")
    with pytest.raises(PolicyError, match="two people"):
        load_policies(_with_strict(_exception(approver="Alice")), "p.yaml")
    with pytest.raises(PolicyError, match=r"must be one of pod\.host-namespaces"):
        load_policies(_with_strict(_exception(waive="[pod.egress]")), "p.yaml")
    with pytest.raises(PolicyError, match="missing required field 'namespace'"):
        load_policies(_with_strict(_exception(scope="{ name: llm }")), "p.yaml")
    with pytest.raises(PolicyError, match="missing required field 'expires'"):
        load_policies(_with_strict(_exception().replace(", expires: 2026-12-01T00:00:00Z", "")))


# -- the pod checks ----------------------------------------------------------------------------


def test_a_contained_pod_as_the_api_server_sends_it_passes_every_strict_check() -> None:
    report = check_pod(STRICT, model_pod(REF))
    assert [c.id for c in report.checks] == [
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
    ]
    assert report.failed == (), [c.message for c in report.failed]
    assert report.posture["egress"] == "none"


def _server(pod: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = pod["spec"]["containers"][0]
    return container


def _set(path: str, value: Any) -> Any:
    def change(pod: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node: Any = pod
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        node[leaf] = value

    return change


def _delete(path: str) -> Any:
    def change(pod: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node: Any = pod
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[leaf]

    return change


def _secret_env(pod: dict[str, Any]) -> None:
    _server(pod)["env"] = [
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "t"}}}
    ]


def _secret_volume(pod: dict[str, Any]) -> None:
    pod["spec"]["volumes"].append({"name": "creds", "secret": {"secretName": "s3-creds"}})


def _projected_secret(pod: dict[str, Any]) -> None:
    sources = [{"secret": {"name": "api-keys"}}]
    pod["spec"]["volumes"].append({"name": "p", "projected": {"sources": sources}})


def _host_path(pod: dict[str, Any]) -> None:
    pod["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/var/lib/models"}})


def _writable_model(pod: dict[str, Any]) -> None:
    _server(pod)["volumeMounts"][0]["readOnly"] = False


def _debug_container(pod: dict[str, Any]) -> None:
    debug = to_json(V1EphemeralContainer(name="debugger", image="busybox"))
    pod["spec"]["ephemeralContainers"] = [debug]


def _token_back(pod: dict[str, Any]) -> dict[str, Any]:
    del pod["spec"]["automountServiceAccountToken"]
    return as_sent(pod)  # the ServiceAccount plugin injects the token volume again


def _no_label(pod: dict[str, Any]) -> None:
    del pod["metadata"]["labels"]["modelctl.dev/egress"]


def _allowlist_label(pod: dict[str, Any]) -> None:
    pod["metadata"]["labels"]["modelctl.dev/egress"] = "allowlist"


def _odd_label(pod: dict[str, Any]) -> None:
    pod["metadata"]["labels"]["Modelctl.dev/Egress"] = "none"


SEC = "spec.containers.0.securityContext"

CHECKS: list[tuple[str, Any, str, str]] = [
    ("host network", _set("spec.hostNetwork", True), "pod.host-namespaces", "hostNetwork"),
    ("host PID", _set("spec.hostPID", True), "pod.host-namespaces", "hostPID"),
    ("host IPC", _set("spec.hostIPC", True), "pod.host-namespaces", "hostIPC"),
    ("hostPath volume", _host_path, "pod.host-path", "replace hostPath volumes"),
    ("privileged", _set(f"{SEC}.privileged", True), "pod.privileged", "privileged: false"),
    (
        "escalation unset (defaults to true)",
        _delete(f"{SEC}.allowPrivilegeEscalation"),
        "pod.privilege-escalation",
        "allowPrivilegeEscalation: false",
    ),
    (
        "capability added",
        _set(f"{SEC}.capabilities", {"drop": ["ALL"], "add": ["NET_RAW"]}),
        "pod.capabilities",
        "adds NET_RAW",
    ),
    (
        "nothing dropped",
        _delete(f"{SEC}.capabilities"),
        "pod.capabilities",
        "drops no ALL",
    ),
    ("root", _set(f"{SEC}.runAsUser", 0), "pod.run-as-non-root", "runs as user 0"),
    (
        "runAsNonRoot unset",
        _delete(f"{SEC}.runAsNonRoot"),
        "pod.run-as-non-root",
        "runAsNonRoot: true",
    ),
    (
        "writable root",
        _set(f"{SEC}.readOnlyRootFilesystem", False),
        "pod.read-only-root-filesystem",
        "readOnlyRootFilesystem: true",
    ),
    ("service account token", _token_back, "pod.service-account-token", "automount"),
    ("secret env", _secret_env, "pod.secrets", "Secret 'hf-token'"),
    ("secret volume", _secret_volume, "pod.secrets", "Secret 's3-creds'"),
    ("projected secret", _projected_secret, "pod.secrets", "Secret 'api-keys'"),
    ("writable model", _writable_model, "pod.model-mounts", "readOnly: true"),
    (
        "no limits",
        _set("spec.containers.0.resources", {}),
        "pod.resource-limits",
        "no cpu/memory limit",
    ),
    ("no egress label", _no_label, "pod.egress-label", "no modelctl.dev/egress label"),
    ("allowlist where none is required", _allowlist_label, "pod.egress-label", "allowed: none"),
    ("egress label in another case", _odd_label, "pod.egress-label", "is not a modelctl label"),
    ("a debug container", _debug_container, "pod.privilege-escalation", "ephemeralContainers"),
]


@pytest.mark.parametrize(("name", "change", "check_id", "says"), CHECKS, ids=[c[0] for c in CHECKS])
def test_each_check_fails_with_what_to_change(
    name: str, change: Any, check_id: str, says: str
) -> None:
    pod = model_pod(REF)
    result = change(pod)
    pod = result if isinstance(result, dict) else pod
    report = check_pod(STRICT, pod)
    failed = {c.id: c.message for c in report.failed}
    assert check_id in failed, (name, failed)
    assert says in failed[check_id], failed[check_id]
    if name != "a debug container":  # that one fails several checks: it sets nothing
        assert list(failed) == [check_id], failed


def test_standard_lets_through_what_only_strict_forbids() -> None:
    pod = model_pod(REF)
    pod["metadata"]["labels"]["modelctl.dev/egress"] = "allowlist"
    _secret_env(pod)
    _server(pod)["securityContext"]["readOnlyRootFilesystem"] = False
    assert check_pod(STANDARD, pod).failed == ()
    assert {c.id for c in check_pod(STRICT, pod).failed} == {
        "pod.egress-label",
        "pod.secrets",
        "pod.read-only-root-filesystem",
    }


def test_a_malformed_pod_is_refused_not_passed() -> None:
    from policies.errors import WorkloadShapeError

    pod = model_pod(REF)
    _server(pod)["securityContext"]["privileged"] = "true"  # a string, not a bool
    with pytest.raises(WorkloadShapeError, match="not true or false"):
        check_pod(STRICT, pod)
    pod = model_pod(REF)
    pod["spec"]["volumes"] = {"name": "x"}
    with pytest.raises(WorkloadShapeError, match=r"spec\.volumes is not a list"):
        check_pod(STRICT, pod)


# -- where models hide ---------------------------------------------------------------------------


def test_models_in_init_and_ephemeral_containers_are_found() -> None:
    uri = "hf://evil/model:" + "c" * 40
    pod = model_pod()
    pod["spec"]["initContainers"] = [to_json(V1Container(name="fetch", image="x", args=[uri]))]
    pod["spec"]["ephemeralContainers"] = [
        to_json(V1EphemeralContainer(name="dbg", image="x", command=["python", "-m", "x", uri]))
    ]
    review = parse_admission_review(admission_review(pod))
    assert [r.where for r in review.references] == [
        "initContainers[fetch].args[0]",
        "ephemeralContainers[dbg].command[3]",
    ]
    debug = parse_admission_review(admission_review(pod, operation="UPDATE", sub_resource="x"))
    assert len(debug.references) == 2  # `kubectl debug` is an UPDATE: reviewed too


def test_a_manifest_with_too_many_references_is_refused() -> None:
    pod = model_pod()
    pod["metadata"]["annotations"] = {f"modelctl.dev/model.m{i}": REF + str(i) for i in range(70)}
    with pytest.raises(MalformedReview, match="more than 64"):
        parse_admission_review(admission_review(pod))


# -- controllers and InferenceServices ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "Job", "CronJob"])
def test_controllers_are_reviewed_by_their_pod_template(kind: str) -> None:
    obj = controller(kind, *model_pod_spec(REF))
    review = parse_admission_review(admission_review(obj))
    (tpl,) = review.templates
    where = "spec.jobTemplate.spec.template" if kind == "CronJob" else "spec.template"
    assert tpl.template.where == where
    assert [r.where for r in review.references] == [f"{where} annotation modelctl.dev/model"]
    assert check_pod(STRICT, tpl.template.pod).failed == ()
    # an annotation on the controller itself never reaches the pods: refused, not ignored
    obj["metadata"]["annotations"] = {"modelctl.dev/model": REF}
    misplaced = parse_admission_review(admission_review(obj))
    problems = [r.problem for r in misplaced.references if r.problem]
    assert problems == [
        f"pods do not get the {kind}'s annotations: put it on {where}.metadata.annotations"
    ]


def test_inference_service_predictor_is_the_pod_kserve_will_run() -> None:
    uri = "hf://acme/bert:" + "d" * 40
    isvc = inference_service(uri)
    review = parse_admission_review(admission_review(isvc))
    (tpl,) = review.templates
    assert tpl.template.where == "spec.predictor"
    (ref,) = review.references
    assert (ref.where, ref.commit) == ("spec.predictor.model.storageUri", "d" * 40)
    assert check_pod(STRICT, tpl.template.pod).failed == ()
    loose = inference_service(uri, egress="allowlist", predictor={"hostNetwork": True})
    (tpl,) = parse_admission_review(admission_review(loose)).templates
    assert {c.id for c in check_pod(STRICT, tpl.template.pod).failed} == {
        "pod.host-namespaces",
        "pod.egress-label",
    }


# -- exceptions and modes ------------------------------------------------------------------------


def _requirement(mode: Mode) -> ContainmentRequirement:
    return ContainmentRequirement(STRICT, mode, "default")


def test_modes_decide_what_a_failing_check_does() -> None:
    pod = model_pod(REF)
    pod["spec"]["hostNetwork"] = True
    work = Workload("inference-prod", "Pod", "llm-0", "prod")
    enforce = contain(pod, [_requirement(Mode.ENFORCE)], workload=work, exceptions=(), now=NOW)
    assert not enforce.allowed
    assert enforce.failures == (
        "profile strict r1: pod.host-namespaces: spec.hostNetwork: true: remove "
        "hostNetwork/hostPID/hostIPC (or set them to false)",
    )
    warn = contain(pod, [_requirement(Mode.WARN)], workload=work, exceptions=(), now=NOW)
    assert warn.allowed
    assert warn.warnings == enforce.failures
    audit = contain(pod, [_requirement(Mode.AUDIT)], workload=work, exceptions=(), now=NOW)
    assert audit.allowed
    assert not audit.warnings
    assert audit.audited == enforce.failures
    both = contain(
        pod,
        [_requirement(Mode.AUDIT), _requirement(Mode.ENFORCE)],
        workload=work,
        exceptions=(),
        now=NOW,
    )
    assert not both.allowed  # the strictest mode among the models wins


def test_a_workload_exception_waives_its_checks_in_its_scope_until_it_expires() -> None:
    policy = load_policies(_with_strict(_exception()), "p.yaml").policies[0]
    assert policy.containment is not None
    exceptions = policy.containment.exceptions
    pod = model_pod(REF)
    del pod["metadata"]["labels"]["modelctl.dev/egress"]
    req = [_requirement(Mode.ENFORCE)]
    mine = Workload("inference-prod", "Deployment", "llm-api", "prod")
    got = contain(pod, req, workload=mine, exceptions=exceptions, now=NOW)
    assert got.allowed
    assert got.exceptions_applied == ("gpu-debug",)
    waived = next(c for c in got.reports[0].checks if c.id == "pod.egress-label")
    assert waived.status is CheckStatus.WAIVED
    assert "requested by alice, approved by bob" in waived.message
    other = Workload("inference-prod", "Deployment", "api", "prod")
    assert not contain(pod, req, workload=other, exceptions=exceptions, now=NOW).allowed
    later = NOW + timedelta(days=30)
    assert not contain(pod, req, workload=mine, exceptions=exceptions, now=later).allowed
    pod["spec"]["hostNetwork"] = True  # a check the exception does not name
    assert not contain(pod, req, workload=mine, exceptions=exceptions, now=NOW).allowed


# -- NetworkPolicies -----------------------------------------------------------------------------


def _netpol(selector: dict[str, str] | None, rules: list[V1NetworkPolicyEgressRule]) -> Any:
    return to_json(
        V1NetworkPolicy(
            api_version="networking.k8s.io/v1",
            kind="NetworkPolicy",
            metadata=V1ObjectMeta(name="open", namespace="inference-prod"),
            spec=V1NetworkPolicySpec(
                pod_selector=V1LabelSelector(match_labels=selector),
                policy_types=["Egress"],
                egress=rules,
            ),
        )
    )


def test_network_policies_that_open_egress_to_labelled_pods_warn() -> None:
    anywhere = V1NetworkPolicyEgressRule()
    internet = V1NetworkPolicyEgressRule(
        to=[V1NetworkPolicyPeer(ip_block=V1IPBlock(cidr="0.0.0.0/0"))]
    )
    gateway = V1NetworkPolicyEgressRule(
        to=[
            V1NetworkPolicyPeer(
                namespace_selector=V1LabelSelector(
                    match_labels={"kubernetes.io/metadata.name": "gateway"}
                ),
                pod_selector=V1LabelSelector(match_labels={"app": "inference-gateway"}),
            )
        ]
    )
    (everything,) = egress_warnings(_netpol(None, [anywhere]))
    assert "modelctl.dev/egress=none (they may reach nothing)" in everything
    (cidr,) = egress_warnings(_netpol({"modelctl.dev/egress": "allowlist"}, [internet]))
    assert "ipBlock (0.0.0.0/0)" in cidr
    assert egress_warnings(_netpol({"modelctl.dev/egress": "allowlist"}, [gateway])) == []
    assert egress_warnings(_netpol({"app": "web"}, [gateway]))  # may select labelled pods too
    none_only = _netpol({"modelctl.dev/egress": "none"}, [])
    assert egress_warnings(none_only) == []  # deny-all
    ingress_only = copy.deepcopy(none_only)
    ingress_only["spec"] = {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]}
    assert egress_warnings(ingress_only) == []


def test_the_shipped_network_policies_open_nothing_they_should_not() -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "networkpolicies.yaml").read_text()))
    policies = [d for d in documents if d and d["kind"] == "NetworkPolicy"]
    assert {p["metadata"]["name"] for p in policies} >= {
        "model-egress-deny-all",
        "model-egress-allowlist",
    }
    for policy in policies:
        assert egress_warnings(policy) == [], policy["metadata"]["name"]
        review = parse_admission_review(admission_review(policy))
        assert review.network_policy is not None


def test_lint_warns_about_containment_exceptions_and_constant_selectors() -> None:
    from policies import lint

    assert lint(DEFAULTS_TEXT, "default.yaml", now=NOW) == []
    text = _with_strict(_exception(waive="[pod.egress-label, pod.host-path]"))
    text = text.replace(
        "    exceptions:",
        "    select:\n      - { id: always, when: 'true', profile: strict, reason: r }\n"
        "    exceptions:",
    )
    messages = [str(m) for m in lint(text, "p.yaml", now=NOW)]
    assert any("containment.select.always: is always True" in m for m in messages), messages
    later = lint(text, "p.yaml", now=NOW + timedelta(days=30))
    assert any(m.message.startswith("expired at 2026-12-01") for m in later)
    far = _with_strict(_exception(expires="2027-12-01T00:00:00Z"))
    assert any("runs past waivers.maxExpiry" in str(m) for m in lint(far, "p.yaml", now=NOW))
