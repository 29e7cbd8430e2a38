"""Pure evaluation: facts + policy + a fake clock -> a decision with every check's result."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from attestations.errors import InvalidInputError
from policies import (
    AttestationFact,
    CheckStatus,
    Decision,
    Facts,
    FileFact,
    FindingFact,
    Mode,
    ModelPolicy,
    PolicyError,
    ScanFact,
    ScannedFileFact,
    default_policies_text,
    evaluate,
    load_default_policies,
    load_policies,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32
COMMIT = "0e9e39f249a16976918f6564b8830bc894c89659"
SIGNATURE = "https://model_signing/signature/v1.0"
PROVENANCE = "https://slsa.dev/provenance/v1"
SCANNERS = (
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
)
DEFAULTS = load_default_policies()
DEFAULTS_TEXT = default_policies_text()


def env(name: str) -> tuple[ModelPolicy, Mode]:
    found = DEFAULTS.for_environment(name)
    assert found is not None
    return found


def decide(facts: Facts, name: str, *, now: datetime = NOW) -> Decision:
    policy, mode = env(name)
    return evaluate(policy, facts, now=now, mode=mode, environment=name)


def good_facts(**changes: object) -> Facts:
    facts = Facts(
        name="acme/bert",
        digest=DIGEST,
        source_uri="hf://acme/bert",
        commit=COMMIT,
        files=(
            FileFact("config.json", 10, "01" * 32, "json"),
            FileFact("model.safetensors", 1000, "02" * 32, "safetensors"),
        ),
        license="apache-2.0",
        attestations=(
            AttestationFact(SIGNATURE, "registry", DIGEST, NOW - timedelta(days=1)),
            AttestationFact(PROVENANCE, "registry", DIGEST, NOW - timedelta(days=1)),
        ),
        scans=tuple(
            ScanFact(s, "1.0.0", "clean", NOW - timedelta(days=2), "none") for s in SCANNERS
        ),
    )
    return dataclasses.replace(facts, **changes)  # type: ignore[arg-type]


def status(decision: Decision, check_id: str) -> CheckStatus:
    check = decision.check(check_id)
    assert check is not None, [c.id for c in decision.checks]
    return check.status


@pytest.mark.parametrize("name", ["dev", "staging", "prod"])
def test_good_checkpoint_allowed_everywhere(name: str) -> None:
    decision = decide(good_facts(), name)
    assert decision.allowed, decision.reasons
    assert decision.reasons == ()
    assert all(c.status is CheckStatus.PASS for c in decision.checks)


def test_unsigned_denied_in_prod_allowed_with_warning_in_dev() -> None:
    unsigned = good_facts(attestations=())
    prod = decide(unsigned, "prod")
    assert not prod.allowed
    assert status(prod, f"attestations.{SIGNATURE}") is CheckStatus.FAIL
    assert "missing https://model_signing/signature/v1.0 attestation" in " ".join(prod.reasons)
    dev = decide(unsigned, "dev")
    assert dev.allowed
    assert dev.mode is Mode.WARN
    assert status(dev, f"attestations.{SIGNATURE}") is CheckStatus.WARN
    assert dev.reasons


def test_audit_mode_allows_and_records() -> None:
    policy, _ = env("prod")
    decision = evaluate(policy, good_facts(attestations=()), now=NOW, mode=Mode.AUDIT)
    assert decision.allowed
    assert status(decision, f"attestations.{SIGNATURE}") is CheckStatus.FAIL


def test_malicious_scan_denied_where_enforced() -> None:
    scans = tuple(
        ScanFact(s, "1.0.0", "malicious" if s == "pickle" else "clean", NOW, "critical")
        for s in SCANNERS
    )
    for name in ("staging", "prod"):
        decision = decide(good_facts(scans=scans), name)
        assert not decision.allowed
        assert "verdict malicious" in " ".join(decision.reasons)
    dev = decide(good_facts(scans=scans), "dev")
    assert status(dev, "scans.pickle") is CheckStatus.WARN
    assert status(dev, "malicious") is CheckStatus.FAIL  # malicious denies in every mode
    assert not dev.allowed


def test_unsupported_format_is_refused_where_enforced_and_warned_in_dev() -> None:
    """A model format the registry recognises but cannot analyse (issue 14, class 5) is never
    admitted silently: `unsupported` fails the scan check like any verdict but `clean`."""
    scans = tuple(
        ScanFact(s, "1.0.0", "unsupported" if s == "unsupported-formats" else "clean", NOW, "high")
        for s in SCANNERS
    )
    for name in ("staging", "prod"):
        decision = decide(good_facts(scans=scans), name)
        assert not decision.allowed
        assert status(decision, "scans.unsupported-formats") is CheckStatus.FAIL
        assert "unsupported" in " ".join(decision.reasons)
    dev = decide(good_facts(scans=scans), "dev")
    assert status(dev, "scans.unsupported-formats") is CheckStatus.WARN
    # A checkpoint scanned before a new scanner existed has no scan of it: refused until rescanned.
    before = tuple(f for f in good_facts().scans if f.scanner != "tensorflow")
    old = decide(good_facts(scans=before), "prod")
    assert not old.allowed
    assert "no tensorflow scan" in " ".join(old.reasons)


def test_errored_or_missing_scan_is_never_clean() -> None:
    errored = tuple(ScanFact(s, "1.0.0", "error", NOW, None) for s in SCANNERS)
    assert status(decide(good_facts(scans=errored), "dev"), "scans.pickle") is CheckStatus.WARN
    assert not decide(good_facts(scans=errored), "prod").allowed
    missing = decide(good_facts(scans=good_facts().scans[1:]), "prod")
    assert not missing.allowed
    assert "no pickle scan" in missing.reasons[0]


def test_stale_scan_denied() -> None:
    # The scans finished two days before NOW; prod allows 30 days (a fake clock, no sleeps).
    fresh = decide(good_facts(), "prod", now=NOW + timedelta(days=28) - timedelta(seconds=1))
    assert fresh.allowed
    assert fresh.expires_at == NOW + timedelta(days=28)
    stale = decide(good_facts(), "prod", now=NOW + timedelta(days=28))
    assert not stale.allowed
    assert "stale" in stale.reasons[0]
    assert decide(good_facts(), "staging", now=NOW + timedelta(days=28)).allowed


def test_pickle_denied_in_prod_allowed_if_clean_in_staging() -> None:
    files = (*good_facts().files, FileFact("pytorch_model.bin", 100, "03" * 32, "pytorch"))
    prod = decide(good_facts(files=files), "prod")
    assert not prod.allowed
    assert status(prod, "formats.pickle-based") is CheckStatus.FAIL
    assert decide(good_facts(files=files), "staging").allowed


@pytest.mark.parametrize("fmt", ["nemo", "torchscript"])
def test_archives_that_hold_pickles_are_pickle_based(fmt: str) -> None:
    # Their own scanner's format may be the one recorded for the file: it must not let a
    # pickle-bearing archive past `pickleBased: deny`.
    files = (*good_facts().files, FileFact("model.bin", 100, "03" * 32, fmt))
    prod = decide(good_facts(files=files), "prod")
    assert status(prod, "formats.pickle-based") is CheckStatus.FAIL


def test_unpinned_revision_and_unknown_license_denied_in_prod() -> None:
    assert status(decide(good_facts(commit="main"), "prod"), "revisions.pinned") is CheckStatus.FAIL
    decision = decide(good_facts(license=None), "prod")
    assert status(decision, "licenses") is CheckStatus.FAIL
    assert "license unknown" in decision.reasons[0]
    assert status(decide(good_facts(license="wtfpl"), "prod"), "licenses") is CheckStatus.FAIL


@pytest.mark.parametrize("name", ["dev", "staging", "prod"])
def test_quarantine_denies_in_every_environment(name: str) -> None:
    decision = decide(good_facts(quarantined=True), name)
    assert not decision.allowed
    assert status(decision, "quarantine") is CheckStatus.FAIL
    policy, _ = env(name)
    audit = evaluate(policy, good_facts(quarantined=True), now=NOW, mode=Mode.AUDIT)
    assert not audit.allowed


def test_untrusted_signer_does_not_count() -> None:
    atts = (
        AttestationFact(SIGNATURE, "mallory", DIGEST, NOW),
        AttestationFact(PROVENANCE, "registry", DIGEST, NOW),
    )
    decision = decide(good_facts(attestations=atts), "prod")
    assert not decision.allowed
    assert "untrusted signers: mallory" in decision.reasons[0]


def test_attestation_over_other_subject_does_not_count() -> None:
    other = "sha256:" + "cd" * 32
    atts = (
        AttestationFact(SIGNATURE, "registry", other, NOW),
        AttestationFact(PROVENANCE, "registry", DIGEST, NOW),
    )
    assert not decide(good_facts(attestations=atts), "prod").allowed


KEYED = """\
apiVersion: modelctl.dev/v1
kind: ModelPolicy
metadata: {name: keyed}
spec:
  signers:
    - name: release
      kind: key
      key: {hint: release-2026}
      notAfter: 2026-12-01T00:00:00Z
    - name: ci
      kind: keyless
      keyless:
        issuer: https://token.actions.githubusercontent.com
        subjectPattern: '^https://github\\.com/acme/.+$'
  attestations:
    - predicateType: https://model_signing/signature/v1.0
      signers: [release, ci]
      threshold: 2
  exceptions:
    - id: EXC-7
      scope: {name: "acme/*"}
      waive: [rules.small]
      reason: known large model
      approver: alice@example.com
      expires: 2026-11-25T00:00:00Z
  rules:
    - id: small
      expression: checkpoint.files.all(f, f.size < 500)
      message: a file is 500 bytes or larger
    - id: hf-only
      expression: checkpoint.source.uri.startsWith("hf://")
      message: only Hugging Face sources
    - id: has-field
      expression: checkpoint.source.nope == "x"
      message: never reached
"""


def keyed_facts(**changes: object) -> Facts:
    atts = (
        AttestationFact(SIGNATURE, "release-2026", DIGEST, NOW),
        AttestationFact(
            SIGNATURE,
            "https://github.com/acme/mirror/.github/workflows/m.yml@refs/heads/main",
            DIGEST,
            NOW,
            issuer="https://token.actions.githubusercontent.com",
        ),
    )
    return good_facts(attestations=atts, **changes)


def keyed_policy() -> ModelPolicy:
    (policy,) = load_policies(KEYED, "keyed.yaml").policies
    return policy


def test_k_of_n_and_expired_key() -> None:
    policy = keyed_policy()
    check_id = f"attestations.{SIGNATURE}"
    ok = evaluate(policy, keyed_facts(), now=NOW)
    assert status(ok, check_id) is CheckStatus.PASS
    late = evaluate(policy, keyed_facts(), now=datetime(2026, 12, 2, tzinfo=UTC))
    assert status(late, check_id) is CheckStatus.FAIL
    assert "key expired" in late.check(check_id).message  # type: ignore[union-attr]
    one = keyed_facts()
    only_ci = dataclasses.replace(one, attestations=one.attestations[1:])
    assert status(evaluate(policy, only_ci, now=NOW), check_id) is CheckStatus.FAIL
    wrong_issuer = dataclasses.replace(
        one,
        attestations=(
            one.attestations[0],
            dataclasses.replace(one.attestations[1], issuer="https://evil.example"),
        ),
    )
    assert status(evaluate(policy, wrong_issuer, now=NOW), check_id) is CheckStatus.FAIL


def test_cel_rules_true_false_and_runtime_error() -> None:
    decision = evaluate(keyed_policy(), keyed_facts(), now=NOW)
    assert status(decision, "rules.hf-only") is CheckStatus.PASS
    small = decision.check("rules.small")
    assert small is not None
    assert small.status is CheckStatus.WAIVED  # 1000-byte safetensors, waived by EXC-7
    error = decision.check("rules.has-field")
    assert error is not None
    assert error.status is CheckStatus.FAIL
    assert "Key not found" in error.message
    assert not decision.allowed
    ms = evaluate(keyed_policy(), keyed_facts(source_uri="ms://acme/bert"), now=NOW)
    hf_only = ms.check("rules.hf-only")
    assert hf_only is not None
    assert hf_only.status is CheckStatus.FAIL
    assert hf_only.message == "only Hugging Face sources"


def test_exception_waives_until_it_expires() -> None:
    text = KEYED.replace(
        """    - id: has-field
      expression: checkpoint.source.nope == "x"
      message: never reached
""",
        "",
    )
    (policy,) = load_policies(text, "keyed.yaml").policies
    before = evaluate(policy, keyed_facts(), now=NOW)
    assert before.allowed, before.reasons
    assert before.exceptions_applied == ("EXC-7",)
    assert status(before, "rules.small") is CheckStatus.WAIVED
    assert before.expires_at == datetime(2026, 11, 25, tzinfo=UTC)
    after = evaluate(policy, keyed_facts(), now=datetime(2026, 11, 25, tzinfo=UTC))
    assert not after.allowed
    assert status(after, "rules.small") is CheckStatus.FAIL
    other = evaluate(policy, keyed_facts(name="other/model"), now=NOW)
    assert status(other, "rules.small") is CheckStatus.FAIL


def test_decision_expiry_is_earliest_deadline() -> None:
    decision = decide(good_facts(), "prod")
    assert decision.expires_at == NOW - timedelta(days=2) + timedelta(days=30)
    policy = keyed_policy()
    without_exception = dataclasses.replace(policy, exceptions=(), rules=())
    keyed = evaluate(without_exception, keyed_facts(), now=NOW)
    assert keyed.expires_at == datetime(2026, 12, 1, tzinfo=UTC)  # key notAfter


def test_decision_records_policy_digest_and_is_deterministic() -> None:
    policy, _ = env("prod")
    a = decide(good_facts(), "prod")
    b = decide(good_facts(), "prod")
    assert a == b
    assert a.policy_digest == policy.digest
    assert a.policy_digest == load_default_policies().policy("prod").digest  # type: ignore[union-attr]
    assert a.checkpoint_digest == DIGEST


def test_malformed_digest_denied_in_warn_mode() -> None:
    decision = decide(good_facts(digest="sha256:nope"), "dev")
    assert not decision.allowed
    assert status(decision, "digest") is CheckStatus.FAIL


def test_naive_clock_refused() -> None:
    policy, _ = env("dev")
    with pytest.raises(InvalidInputError, match="timezone"):
        evaluate(policy, good_facts(), now=datetime(2026, 1, 1))  # noqa: DTZ001  naive on purpose


def test_cel_rules_see_timestamps_and_attestations() -> None:
    rules = (
        "  rules:\n"
        "    - id: fresh\n"
        "      expression: scans.all(s, now - timestamp(s.finishedAt) < duration('72h'))\n"
        "      message: a scan is older than three days\n"
        "    - id: signed\n"
        "      expression: attestations.exists(a, a.signer == 'registry' && a.subject == "
        "checkpoint.digest)\n"
        "      message: no registry attestation\n"
    )
    docs = DEFAULTS_TEXT.split("\n---\n")
    profiles = [d for d in docs if "kind: ContainmentProfile" in d]  # prod's spec names them
    text = "\n---\n".join([docs[0].rstrip("\n") + "\n" + rules, *profiles])
    (policy,) = load_policies(text, "p.yaml").policies
    assert evaluate(policy, good_facts(), now=NOW).allowed
    late = evaluate(policy, good_facts(), now=NOW + timedelta(days=1))
    assert status(late, "rules.fresh") is CheckStatus.FAIL
    assert late.check("rules.fresh").message == "a scan is older than three days"  # type: ignore[union-attr]


# -- issue 12: malicious from any scanner, spec.verdicts, digest-pinned folders, hints ----------


def _backdoor(verdict: str, *findings: FindingFact, path: str = ".") -> ScanFact:
    files = (ScannedFileFact(path, "cd" * 32, verdict, findings),) if verdict != "clean" else ()
    return ScanFact("backdoor", "0.1.0", verdict, NOW, "critical", files)


TRIGGER = FindingFact("fnd-" + "1" * 24, "backdoor.trigger", "critical", "fires on 'cf-7'")
NOTE = FindingFact("fnd-" + "2" * 24, "backdoor.note", "info", "probed 200 motifs")


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("name", ["dev", "staging", "prod"])
def test_malicious_from_a_scanner_no_policy_names_denies_in_every_mode(
    name: str, mode: Mode
) -> None:
    facts = good_facts(scans=(*good_facts().scans, _backdoor("malicious", TRIGGER, NOTE)))
    policy, _ = env(name)
    decision = evaluate(policy, facts, now=NOW, mode=mode, environment=name)
    assert not decision.allowed
    check = decision.check("malicious")
    assert check is not None
    assert check.status is CheckStatus.FAIL
    assert f"backdoor: .: {TRIGGER.id} backdoor.trigger (critical)" in check.message
    assert NOTE.id not in check.message  # an info finding does not make it malicious
    assert check.evidence["untriaged"] == [TRIGGER.id]


def test_only_a_triage_of_every_blocking_finding_lets_it_pass() -> None:
    second = FindingFact("fnd-" + "3" * 24, "backdoor.trigger", "high", "fires on 'zz'")
    scans = (*good_facts().scans, _backdoor("malicious", TRIGGER, second, NOTE))
    until = NOW + timedelta(days=3)
    partly = decide(good_facts(scans=scans, triaged={TRIGGER.id: until}), "prod")
    assert not partly.allowed
    assert partly.check("malicious").evidence["untriaged"] == [second.id]  # type: ignore[union-attr]
    both = decide(good_facts(scans=scans, triaged={TRIGGER.id: until, second.id: until}), "prod")
    assert both.allowed, both.reasons
    assert both.expires_at == until  # no longer than the triage that let it pass
    expired = decide(good_facts(scans=scans, triaged={TRIGGER.id: NOW, second.id: until}), "prod")
    assert not expired.allowed
    # A malicious scan that names no finding cannot be triaged: it stays denied.
    silent = decide(good_facts(scans=(*good_facts().scans, _backdoor("malicious"))), "prod")
    assert "names no finding" in " ".join(silent.reasons)


def test_the_newest_scan_of_a_scanner_decides() -> None:
    old = dataclasses.replace(_backdoor("malicious", TRIGGER), finished_at=NOW - timedelta(1))
    newer = _backdoor("clean")
    assert decide(good_facts(scans=(*good_facts().scans, old, newer)), "prod").allowed


def test_malicious_cannot_be_waived_by_a_policy_exception() -> None:
    text = DEFAULTS_TEXT.replace(
        "    pickleBased: deny\n",
        "    pickleBased: deny\n  exceptions:\n    - { id: E1, scope: { name: 'acme/*' }, "
        "waive: [malicious], reason: r, approver: a, expires: 2099-01-01T00:00:00Z }\n",
        1,
    )
    with pytest.raises(PolicyError, match="cannot be waived"):
        load_policies(text, "x.yaml")


def test_verdicts_deny_covers_every_scanner_and_warns_in_dev() -> None:
    errored = ScanFact("backdoor", "0.1.0", "error", NOW, None)
    scans = (*good_facts().scans, errored)
    for name in ("staging", "prod"):
        decision = decide(good_facts(scans=scans), name)
        assert not decision.allowed
        assert status(decision, "verdicts.error") is CheckStatus.FAIL
        assert status(decision, "verdicts.malformed") is CheckStatus.PASS
    dev = decide(good_facts(scans=scans), "dev")
    assert dev.allowed
    assert status(dev, "verdicts.error") is CheckStatus.WARN


@pytest.mark.parametrize(
    ("verdicts", "error"),
    [
        ("{ deny: [malicious] }", "denied by every policy already"),
        ("{ deny: [clean] }", "must be one of"),
        ("{ deny: [] }", "denies nothing"),
        ("{ deny: [error, error] }", "listed twice"),
        ("{ deny: [error], allow: [x] }", "unknown field"),
    ],
)
def test_verdicts_block_is_strict(verdicts: str, error: str) -> None:
    text = DEFAULTS_TEXT.replace("  verdicts:\n    deny: [malformed, error]\n", "", 3).replace(
        "    pickleBased: deny\n", f"    pickleBased: deny\n  verdicts: {verdicts}\n", 1
    )
    with pytest.raises(PolicyError, match=error):
        load_policies(text, "x.yaml")


def test_a_folder_is_pinned_by_its_own_digest_only() -> None:
    local = good_facts(source_uri="file:///models/bert", commit=DIGEST)
    assert status(decide(local, "prod"), "revisions.pinned") is CheckStatus.PASS
    other = good_facts(source_uri="file:///models/bert", commit="sha256:" + "cd" * 32)
    decision = decide(other, "prod")
    assert status(decision, "revisions.pinned") is CheckStatus.FAIL


def test_deny_messages_say_what_to_run() -> None:
    decision = decide(good_facts(attestations=(), scans=()), "prod")
    reasons = " ".join(decision.reasons)
    assert f"run: modelctl attest acme/bert@{DIGEST}" in reasons
    assert f"run: modelctl scan acme/bert@{DIGEST} --scanner pickle" in reasons


# -- waivers: exact ids and a maximum expiry (policies.waivers) --------------------------------

_EVERY_BLOCK = """
apiVersion: modelctl.dev/v1
kind: ModelPolicy
metadata: { name: all }
spec:
  sources: { allow: ["hf://**"] }
  revisions: { requirePinned: true, pins: [{ source: "hf://acme/*", commits: [COMMIT] }] }
  licenses: { allow: [apache-2.0] }
  formats: { pickleBased: deny, allow: [json, safetensors] }
  attestations: [{ predicateType: "https://slsa.dev/provenance/v1", signers: [registry] }]
  scans: [{ scanner: pickle }]
  rules: [{ id: small, expression: 'checkpoint.files.size() < 10', message: too many }]
  waivers: { maxExpiry: 14d }
""".replace("COMMIT", COMMIT)


@pytest.mark.parametrize("name", ["dev", "staging", "prod", "all"])
def test_check_ids_are_exactly_what_evaluate_emits(name: str) -> None:
    from policies.waivers import check_ids

    policy = load_policies(_EVERY_BLOCK).policies[0] if name == "all" else env(name)[0]
    emitted = {c.id for c in evaluate(policy, good_facts(), now=NOW).checks}
    assert check_ids(policy) == emitted


def test_waiver_problem_refuses_unknown_ids_listing_the_valid_ones() -> None:
    from policies.waivers import waiver_problem

    def problem(waive: list[str], envs: list[str] | None = None, days: int = 30) -> str | None:
        until = NOW + timedelta(days=days)
        return waiver_problem(DEFAULTS, waive=waive, environments=envs, expires_at=until, now=NOW)

    assert problem(["licenses"]) is None
    assert problem(["licenses"], ["prod"]) is None
    wrong = problem(["license"])
    assert wrong is not None
    assert "unknown check id 'license'" in wrong
    assert "licenses" in wrong
    assert "revisions.pinned" in wrong
    assert "attestations." not in wrong  # never offered: not waivable
    assert problem(["licenses"], ["dev"]) is not None  # dev's policy checks no license
    barred = problem(["attestations.https://slsa.dev/provenance/v1"])
    assert barred is not None
    assert "can never be waived" in barred
    assert problem(["quarantine"]) is not None
    assert problem(["digest"]) is not None
    assert problem(["licenses"], ["moon"]) == (
        "no policy is bound to environment 'moon' (bound: dev, prod, staging)"
    )
    too_long = problem(["licenses"], days=91)
    assert too_long is not None
    assert "at most 90 days" in too_long
    assert problem(["licenses"], days=90) is None


def test_waivers_max_expiry_is_strict_and_the_shortest_bound_wins() -> None:
    from policies import PolicyError
    from policies.waivers import waiver_problem

    shorter = DEFAULTS_TEXT.replace("maxExpiry: 90d", "maxExpiry: 7d", 1)  # prod only
    policies = load_policies(shorter)
    until = NOW + timedelta(days=8)
    anywhere = waiver_problem(
        policies, waive=["licenses"], environments=None, expires_at=until, now=NOW
    )
    assert anywhere is not None
    assert "at most 7 days" in anywhere
    staging = waiver_problem(
        policies, waive=["licenses"], environments=["staging"], expires_at=until, now=NOW
    )
    assert staging is None
    assert DEFAULTS.policy("prod") is not None
    assert {p.waiver_max_expiry for p in DEFAULTS.policies} == {timedelta(days=90)}
    for bad in ("maxExpiry: forever", "maxExpiry: 0d", "maxExpiry: 9d\n    extra: 1"):
        with pytest.raises(PolicyError):
            load_policies(DEFAULTS_TEXT.replace("maxExpiry: 90d", bad, 1))


def test_lint_warns_about_waivers_longer_than_a_year() -> None:
    from policies import lint

    long = DEFAULTS_TEXT.replace("maxExpiry: 90d", "maxExpiry: 400d", 1)
    messages = [m for m in lint(long, now=NOW) if "waivers.maxExpiry" in m.path]
    assert len(messages) == 1
    assert "400 days" in messages[0].message
