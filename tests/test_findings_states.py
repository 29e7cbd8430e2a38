"""Findings confirmed and assigned (issue 20 item 3, ADR 0025) through the CLI on a real
embedded registry: the state keeps to the finding's stable id across re-scans and names;
confirming never loosens a decision (it ends a false positive); every change is audited."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.test_findings_triage import (
    CORPUS,
    as_user,
    check,
    local_model,
    mirror_attested,
    registry_env,
    row,
    scan,
)

__all__ = ["registry_env"]  # the fixture, used by name


def _finding(run_cli: Any, ref: str) -> dict[str, Any]:
    [found] = run_cli("finding", "list", ref, "--json").json()["findings"]
    assert isinstance(found, dict)
    return found


def test_confirm_and_assign_hold_across_a_rescan_and_another_name(
    run_cli: Any, registry_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bad = (CORPUS / "pickle" / "os_system_global_reduce_p0.pkl").read_bytes()
    first = mirror_attested(run_cli, local_model(tmp_path, {"extra.pkl": bad}), "org/one")
    found = _finding(run_cli, first)
    assert (found["state"], found["assignee"], found["confirmed_by"]) == ("new", None, None)
    fid = found["id"]

    assigned = run_cli("finding", "assign", fid, "carol", "--json")
    assert assigned.code == 0, assigned.stderr
    assert assigned.json()["assignee"] == "carol"
    assert assigned.json()["assigned_by"] == "local:alice"
    confirmed = run_cli("finding", "confirm", fid, "--reason", "reproduced in a sandbox")
    assert confirmed.code == 0, confirmed.stderr
    assert confirmed.stdout.strip() == (
        f"{fid}: confirmed, confirmed by local:alice, assigned to carol "
        "(pickle: extra.pkl pickle.global.dangerous)"
    )
    twice = run_cli("finding", "confirm", fid)
    assert twice.code == 2
    assert "already confirmed by local:alice" in twice.stderr

    scan(run_cli, first)  # a re-scan: the same id, the same state
    other = tmp_path / "other"
    shutil.copytree(tmp_path / "model", other)
    (other / "notes.txt").write_text("another checkpoint, the same pickle")
    second = mirror_attested(run_cli, other, "org/two")
    for ref in (first, second):
        again = _finding(run_cli, ref)
        assert again["id"] == fid
        assert again["state"] == "confirmed"
        assert again["assignee"] == "carol"
        listed = run_cli("finding", "list", ref).stdout
        assert "(confirmed by local:alice, assigned to carol)" in listed
        assert row(check(run_cli, ref, "staging"), "malicious")["status"] == "fail"

    unassigned = run_cli("finding", "assign", fid, "--none", "--json")
    assert unassigned.json()["assignee"] is None
    both = run_cli("finding", "assign", fid, "dave", "--none")
    assert both.code == 2
    bad_name = run_cli("finding", "assign", fid, "not a name")
    assert bad_name.code == 2
    assert "is not a user name" in bad_name.stderr
    unknown = run_cli("finding", "confirm", "fnd-" + "0" * 24)
    assert unknown.code == 2
    assert "no recorded scan reports finding" in unknown.stderr
    audit = run_cli("audit", "--action", "finding.", "--json")
    assert audit.code == 0, audit.stderr
    actions = [e["action"] for e in audit.json()["events"]]
    assert actions.count("finding.assign") == 2
    assert actions.count("finding.confirm") == 1


def test_confirming_ends_a_false_positive_and_blocks_new_ones_until_withdrawn(
    run_cli: Any, registry_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bad = (CORPUS / "pickle" / "os_system_global_reduce_p0.pkl").read_bytes()
    ref = mirror_attested(run_cli, local_model(tmp_path, {"extra.pkl": bad}))
    fid = _finding(run_cli, ref)["id"]
    request = run_cli(
        "finding", "triage", fid, "--false-positive", "--reason", "fixture", "--expires", "5d",
        "--json",
    ).json()  # fmt: skip
    as_user(registry_env, "bob")
    assert run_cli("finding", "approve", str(request["id"])).code == 0
    assert row(check(run_cli, ref, "staging"), "malicious")["status"] == "pass"
    assert _finding(run_cli, ref)["state"] == "false-positive"

    as_user(registry_env, "carol")
    confirmed = run_cli("finding", "confirm", fid, "--json")
    assert confirmed.json()["state"] == "confirmed"
    # Confirming loosened nothing: the false positive ended, and the deny is back.
    assert row(check(run_cli, ref, "staging"), "malicious")["status"] == "fail"
    [ended] = run_cli("finding", "requests", "--finding", fid, "--json").json()["triage"]
    assert ended["status"] == "revoked"
    assert ended["revoked_by"] == "local:carol"
    refused = run_cli(
        "finding", "triage", fid, "--false-positive", "--reason", "r", "--expires", "1d"
    )
    assert refused.code == 2
    assert "withdraw the confirmation first" in refused.stderr

    withdrawn = run_cli("finding", "confirm", fid, "--withdraw", "--json")
    assert withdrawn.code == 0, withdrawn.stderr
    assert withdrawn.json()["state"] == "new"
    assert row(check(run_cli, ref, "staging"), "malicious")["status"] == "fail"  # still denied
    asked = run_cli(
        "finding", "triage", fid, "--false-positive", "--reason", "r", "--expires", "1d"
    )
    assert asked.code == 0, asked.stderr
    assert _finding(run_cli, ref)["state"] == "false-positive-requested"
    assert row(check(run_cli, ref, "staging"), "malicious")["status"] == "fail"  # pending
