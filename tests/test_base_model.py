"""The base relation a fine-tune's model card declares (`base_model:`): recorded at mirror,
shown by `inspect`, and a policy's `differential: true` scan requirement for fine-tunes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from policies import Facts, PolicyError, ScanFact, evaluate, load_policies
from registry.scanners.backdoor.card import base_model_of
from registry.service.admission import report_differential_base
from tests.helpers import write_tree

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "cd" * 32

POLICY = """\
apiVersion: modelctl.dev/v1
kind: ModelPolicy
metadata: {name: fine-tunes}
spec:
  scans:
    - {scanner: backdoor, differential: true, maxAge: 30d, forbid: [malicious, suspicious]}
---
apiVersion: modelctl.dev/v1
kind: ModelPolicyBinding
metadata: {name: b}
spec:
  environments: {prod: {policy: fine-tunes, mode: enforce}}
"""


@pytest.mark.parametrize(
    ("card", "expected"),
    [
        (b"---\nlicense: mit\nbase_model: Org/SmolLM2-135M\n---\n# x\n", "Org/SmolLM2-135M"),
        (b"---\nbase_model:\n- org/a\n- org/b\n---\n", "org/a"),
        (b"---\nbase_model: ['org/x', 'org/y']\n---\n", "org/x"),
        (b"---\nbase_model: \"org/q\"  # the parent\n---\n", "org/q"),
        (b"---\nbase_model_relation: finetune\n---\n", None),
        (b"---\nbase_model:\nlicense: mit\n---\n", None),
        (b"---\na: &x [1]\nbase_model: *x\n---\n", None),  # an alias: hostile, nothing
        (b"---\nbase_model: org/unclosed\n", None),  # no end of the front matter
        (b"# no front matter\nbase_model: org/z\n", None),
    ],
)  # fmt: skip
def test_card_base_model_parsing(card: bytes, expected: str | None) -> None:
    assert base_model_of(card) == expected


def test_mirror_records_the_base_and_inspect_shows_it(run_cli: Any, tmp_path: Path) -> None:
    card = b"---\nlicense: apache-2.0\nbase_model: acme/base-7b\n---\n# a fine-tune\n"
    folder = write_tree(tmp_path / "ft", {"README.md": card, "config.json": b"{}"})
    assert run_cli("mirror", str(folder), "--name", "acme/ft", "--json").code == 0
    shown = run_cli("inspect", "acme/ft", "--json")
    assert shown.code == 0, shown.stderr
    assert shown.json()["base_model"] == "acme/base-7b"
    assert "base model acme/base-7b" in run_cli("inspect", "acme/ft").stdout
    plain = write_tree(tmp_path / "plain", {"README.md": b"# no front matter\n"})
    assert run_cli("mirror", str(plain), "--name", "acme/plain").code == 0
    assert run_cli("inspect", "acme/plain", "--json").json()["base_model"] is None
    assert "base model" not in run_cli("inspect", "acme/plain").stdout


def _facts(base: str | None, differential_base: str | None) -> Facts:
    scan = ScanFact("backdoor", "0.2.0", "clean", NOW - timedelta(days=1))
    return Facts(
        name="acme/ft",
        digest=DIGEST,
        source_uri="file:///x",
        commit=DIGEST,
        files=(),
        license="mit",
        attestations=(),
        scans=(dataclasses.replace(scan, differential_base=differential_base),),
        base_model=base,
    )


def test_policy_requires_a_differential_scan_for_fine_tunes_only() -> None:
    policies = load_policies(POLICY, "fine-tunes.yaml")
    found = policies.for_environment("prod")
    assert found is not None
    policy, mode = found
    assert policy.scans[0].differential is True

    def decide(facts: Facts) -> Any:
        return evaluate(policy, facts, now=NOW, mode=mode, environment="prod")

    plain = decide(_facts(None, None))  # not a fine-tune: an ordinary scan is enough
    assert plain.allowed
    tuned = decide(_facts("acme/base-7b", None))
    assert not tuned.allowed
    check = tuned.check("scans.backdoor")
    assert check is not None
    assert "not differential" in check.message
    assert "--base acme/base-7b" in check.message
    assert decide(_facts("acme/base-7b", "acme/base-7b")).allowed


def test_differential_must_be_a_boolean() -> None:
    with pytest.raises(PolicyError, match="differential"):
        load_policies(POLICY.replace("differential: true", "differential: yes-please"), "p.yaml")


def test_a_scan_report_names_its_differential_base() -> None:
    def report(evidence: dict[str, Any]) -> dict[str, Any]:
        return {"files": [{"path": ".", "findings": [{"rule": "r", "evidence": evidence}]}]}

    assert report_differential_base(report({"differential": {"base": "acme/base"}})) == "acme/base"
    assert report_differential_base(report({"verdict": "clean"})) is None
    assert report_differential_base(report({"differential": {"base": ""}})) is None
    assert report_differential_base({"files": "garbage"}) is None
    assert report_differential_base(None) is None
