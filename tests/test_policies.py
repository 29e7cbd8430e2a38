"""Policy documents: strict loading (file, line, field path), the digest, defaults and lint."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest

from attestations.errors import AttestationError
from policies import (
    LintLevel,
    Mode,
    PolicyError,
    default_policies_text,
    lint,
    load_default_policies,
    load_policies,
)
from policies.cel_engine import activation, compile_rule, run_rule

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

BASE = """\
apiVersion: modelctl.dev/v1
kind: ModelPolicy
metadata:
  name: p
spec:
  signers:
    - { name: registry, kind: registry }
  attestations:
    - { predicateType: "https://model_signing/signature/v1.0", signers: [registry] }
"""


def load_error(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        load_policies(textwrap.dedent(text), "p.yaml")
    return info.value


def test_base_policy_loads() -> None:
    (policy,) = load_policies(BASE, "p.yaml").policies
    assert policy.name == "p"
    assert policy.attestations[0].signers == ("registry",)


def test_unknown_field_names_file_line_and_path() -> None:
    err = load_error(BASE + "  scans:\n    - scanner: pickle\n      maxAgee: 30d\n")
    assert (err.filename, err.line, err.path) == ("p.yaml", 12, "spec.scans[0].maxAgee")
    assert "unknown field" in err.reason
    assert str(err).startswith("p.yaml:12:")
    assert isinstance(err, AttestationError)  # one error tree


def test_unknown_top_level_field() -> None:
    err = load_error(BASE + "extra: 1\n")
    assert (err.line, err.path) == (10, "extra")


def test_wrong_type() -> None:
    err = load_error(BASE.replace("signers: [registry] }", "signers: [registry], threshold: two }"))
    assert err.path == "spec.attestations[0].threshold"
    assert err.line == 9
    assert "integer" in err.reason


def test_wrong_api_version_and_kind() -> None:
    assert "apiVersion" in load_error(BASE.replace("modelctl.dev/v1", "v2")).reason
    assert load_error(BASE.replace("ModelPolicy", "Policy")).path == "kind"


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ("  sources:\n    allow: ['hf://org/[abc']\n", "spec.sources.allow[0]"),
        ("  sources:\n    deny: ['org/*']\n", "spec.sources.deny[0]"),
        (
            "  signers:\n    - name: ci\n      kind: keyless\n      keyless:\n"
            "        issuer: https://token.actions.githubusercontent.com\n"
            "        subjectPattern: '^(unclosed'\n",
            "spec.signers[0].keyless.subjectPattern",
        ),
    ],
)
def test_bad_patterns(extra: str, path: str) -> None:
    text = BASE.replace("  signers:\n    - { name: registry, kind: registry }\n", "") + extra
    err = load_error(text)
    assert err.path == path
    assert "bad" in err.reason


def test_duplicate_keys_aliases_and_tags_refused() -> None:
    assert "duplicate" in load_error(BASE + "  signers: []\n").reason
    assert "alias" in load_error(BASE + "  licenses:\n    allow: &a [mit]\n  formats: *a\n").reason
    assert "tag" in load_error(BASE.replace("name: p", "name: !!python/name:os.system p")).reason


def test_yaml_syntax_error_has_line() -> None:
    err = load_error(BASE + "  scans: [\n")
    assert err.line >= 10
    assert "YAML" in err.reason


def test_cel_syntax_error_at_load() -> None:
    err = load_error(BASE + "  rules:\n    - { id: r1, expression: 'license ==', message: m }\n")
    assert err.path == "spec.rules[0].expression"
    assert "Syntax error" in err.reason
    assert err.line == 11


def test_cel_type_error_at_load() -> None:
    err = load_error(BASE + "  rules:\n    - { id: r1, expression: 'license > 3', message: m }\n")
    assert "no matching overload" in err.reason
    err = load_error(
        BASE + "  rules:\n    - { id: r1, expression: 'checkpont.name', message: m }\n"
    )
    assert "undeclared reference" in err.reason
    err = load_error(BASE + "  rules:\n    - { id: r1, expression: 'license', message: m }\n")
    assert "not bool" in err.reason


EXCEPTION = """\
  exceptions:
    - id: EXC-1
      scope: {{ name: "acme/*" }}
      waive: [{waive}]
      reason: legacy
      approver: alice@example.com
{expires}"""


def test_exception_without_expiry_refused() -> None:
    err = load_error(BASE + EXCEPTION.format(waive="licenses", expires=""))
    assert err.path == "spec.exceptions[0]"
    assert "expires" in err.reason


@pytest.mark.parametrize(
    "check",
    ["attestations.https://model_signing/signature/v1.0", "digest", "signers", "quarantine"],
)
def test_exception_waiving_signature_or_digest_refused(check: str) -> None:
    text = BASE + EXCEPTION.format(
        waive=f'"{check}"', expires="      expires: 2027-01-01T00:00:00Z\n"
    )
    err = load_error(text)
    assert err.path == "spec.exceptions[0].waive[0]"
    assert "cannot be waived" in err.reason


def test_exception_expiry_needs_time_zone() -> None:
    text = BASE + EXCEPTION.format(waive="licenses", expires="      expires: 2027-01-01T00:00:00\n")
    assert "time zone" in load_error(text).reason


def test_unknown_signer_and_threshold() -> None:
    assert "unknown signer" in load_error(BASE.replace("[registry]", "[mallory]")).reason
    err = load_error(BASE.replace("signers: [registry] }", "signers: [registry], threshold: 2 }"))
    assert "threshold" in err.reason


def test_binding_must_name_known_policy() -> None:
    binding = (
        "---\napiVersion: modelctl.dev/v1\nkind: ModelPolicyBinding\nmetadata: {name: b}\n"
        "spec:\n  environments:\n    prod: {policy: nope, mode: enforce}\n"
    )
    assert "unknown policy" in load_error(BASE + binding).reason
    bad_mode = binding.replace("nope", "p").replace("enforce", "permissive")
    assert "one of" in load_error(BASE + bad_mode).reason
    ps = load_policies(BASE + binding.replace("nope", "p").replace("prod", "qa"), "p.yaml")
    found = ps.for_environment("qa")
    assert found is not None
    assert found[1] is Mode.ENFORCE
    assert ps.for_environment("prod") is None  # unbound: the caller denies


def test_policy_digest_is_stable_and_canonical() -> None:
    (a,) = load_policies(BASE, "a.yaml").policies
    reordered = (
        "# a comment\nkind: ModelPolicy\napiVersion: modelctl.dev/v1\nmetadata: {name: p}\n"
        "spec:\n  attestations:\n"
        "    - signers: [registry]\n      predicateType: https://model_signing/signature/v1.0\n"
        "  signers: [{kind: registry, name: registry}]\n"
    )
    (b,) = load_policies(reordered, "b.yaml").policies
    assert a.digest == b.digest
    assert a.digest.startswith("sha256:")
    assert len(a.digest) == 71
    (c,) = load_policies(BASE.replace("name: p", "name: q"), "c.yaml").policies
    assert c.digest != a.digest


def test_defaults_load_and_lint_clean() -> None:
    ps = load_default_policies()
    assert {p.name for p in ps.policies} == {"dev", "staging", "prod"}
    for env, mode in (("dev", Mode.WARN), ("staging", Mode.ENFORCE), ("prod", Mode.ENFORCE)):
        found = ps.for_environment(env)
        assert found is not None
        assert found[0].name == env
        assert found[1] is mode
    prod = ps.policy("prod")
    assert prod is not None
    assert {s.scanner for s in prod.scans} == {
        "pickle",
        "safetensors",
        "gguf",
        "chat-template",
        "keras",
        "onnx",
        "tensorflow",
        "nemo",
        "skops",
        "torchscript",
        "unsupported-formats",
        "hydra-config",
        "model-folder",
    }
    assert lint(default_policies_text(), "default.yaml", now=NOW) == []


def test_lint_reports_load_errors_and_warnings() -> None:
    (err,) = lint(BASE + "bogus: 1\n", "p.yaml", now=NOW)
    assert (err.level, err.line, err.path) == (LintLevel.ERROR, 10, "bogus")
    empty = "apiVersion: modelctl.dev/v1\nkind: ModelPolicy\nmetadata: {name: e}\nspec: {}\n"
    (msg,) = lint(empty, "e.yaml", now=NOW)
    assert msg.level is LintLevel.WARNING
    assert "requires nothing" in msg.message
    past = (
        BASE
        + EXCEPTION.format(waive="rules.r9", expires="      expires: 2026-01-01T00:00:00Z\n")
        + "  rules:\n    - { id: never, expression: '1 == 2', message: m }\n"
    )
    messages = [m.message for m in lint(past, "p.yaml", now=NOW)]
    assert any("expired at 2026-01-01" in m for m in messages)
    assert any("never checks" in m for m in messages)
    assert any("can never be true" in m for m in messages)


def test_rule_engine_error_shapes() -> None:
    act = activation({"checkpoint": {}, "attestations": [], "scans": [], "license": "", "now": NOW})
    assert run_rule(compile_rule("license == ''"), act).ok
    assert not run_rule(compile_rule("license == 'mit'"), act).ok
    outcome = run_rule(compile_rule("checkpoint.source.uri == 'x'"), act)
    assert not outcome.ok
    assert outcome.error is not None
    assert "Key not found" in outcome.error
