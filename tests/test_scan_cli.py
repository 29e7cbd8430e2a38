"""`modelctl scan`: a local target like a linter; a registry checkpoint recorded and attested."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from attestations.bundle import Bundle
from attestations.intoto import Statement
from attestations.keys import PublicKeyVerifier, load_public_key
from registry.db.engine import make_engine
from tests.helpers import write_tree

CORPUS = Path(__file__).parent / "assets" / "corpus"
MALICIOUS = CORPUS / "pickle" / "os_system_global_reduce_p0.pkl"
TORCH_BENIGN = next((CORPUS / "torch").glob("*benign*"), None) or next(
    (CORPUS / "pickle_benign").iterdir()
)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = write_tree(tmp_path / "model", {"config.json": b'{"model_type": "llama"}'})
    shutil.copy(TORCH_BENIGN, folder / "pytorch_model.bin")
    return folder


def test_scan_a_malicious_file_exits_1_with_the_finding(run_cli: Any) -> None:
    result = run_cli("scan", str(MALICIOUS), "--json")
    assert result.code == 1
    body = result.json()
    assert body["verdict"] == "malicious"
    (entry,) = body["files"]
    assert entry["path"] == MALICIOUS.name
    assert entry["verdict"] == "malicious"
    assert any(f["rule"] == "pickle.global.dangerous" for f in entry["findings"])
    text = run_cli("scan", str(MALICIOUS))
    assert text.code == 1
    assert "malicious" in text.stdout


def test_a_failing_scan_says_why_in_one_line_on_stderr(run_cli: Any) -> None:
    for args in ((), ("--json",)):
        result = run_cli("scan", str(MALICIOUS), *args)
        assert result.code == 1
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("modelctl: error: ")
        assert "finding(s) at or above --fail-on high" in line
        assert "pickle.global.dangerous" in line
        assert MALICIOUS.name in line
    # --json keeps stdout the report alone.
    assert run_cli("scan", str(MALICIOUS), "--json").json()["verdict"] == "malicious"
    assert run_cli("scan", str(MALICIOUS), "--fail-on", "never").stderr == ""


def test_fail_on_threshold(run_cli: Any) -> None:
    assert run_cli("scan", str(MALICIOUS), "--fail-on", "never").code == 0
    assert run_cli("scan", str(MALICIOUS), "--fail-on", "critical").code == 1
    bad = run_cli("scan", str(MALICIOUS), "--fail-on", "sometimes")
    assert bad.code == 2


def test_scan_a_folder_lists_every_file(run_cli: Any, model: Path) -> None:
    shutil.copy(MALICIOUS, model / "optimizer.pt")
    (model / "notes.txt").write_text("hello")
    body = run_cli("scan", str(model), "--json").json()
    verdicts = {f["path"]: f["verdict"] for f in body["files"]}
    assert verdicts["optimizer.pt"] == "malicious"
    assert verdicts["pytorch_model.bin"] == "clean"
    assert verdicts["notes.txt"] == "clean"
    assert verdicts["config.json"] == "clean"
    assert body["verdict"] == "malicious"


def test_scanner_selection(run_cli: Any) -> None:
    only_gguf = run_cli("scan", str(MALICIOUS), "--scanner", "gguf", "--json")
    assert only_gguf.code == 0
    assert only_gguf.json()["files"][0]["verdict"] == "clean"  # gguf does not apply
    unknown = run_cli("scan", str(MALICIOUS), "--scanner", "nope")
    assert unknown.code == 2
    assert "unknown scanner nope" in unknown.stderr


def test_missing_target(run_cli: Any) -> None:
    result = run_cli("scan", "./no/such/thing")
    assert result.code == 2
    assert "no such file or folder" in result.stderr


def test_mirror_scans_by_default_and_records_attested_runs(
    run_cli: Any, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    monkeypatch.setenv("MODELCTL_SIGNING_KEY_PASSPHRASE", "pw")
    shutil.copy(MALICIOUS, model / "optimizer.pt")
    mirrored = run_cli("mirror", str(model), "--name", "acme/m", "--json")
    # Registered (admission decides), and the exit code says what the scan found (--fail-on).
    assert mirrored.code == 1, mirrored.stderr
    assert "at or above --fail-on high" in mirrored.stderr
    body = mirrored.json()
    assert body["verdict"] == "malicious"
    scans = {s["scanner"]: s for s in body["scans"]}
    assert set(scans) == {
        "pickle",
        "safetensors",
        "gguf",
        "keras",
        "onnx",
        "chat-template",
        "tensorflow",
        "nemo",
        "skops",
        "torchscript",
        "unsupported-formats",
        "hydra-config",
        "model-folder",
    }
    assert scans["pickle"]["verdict"] == "malicious"
    assert scans["pickle"]["flagged_files"] == 1
    assert all(s["attested"] for s in scans.values())
    # Each run is a signed statement about exactly these bytes.
    pub = tmp_path / "registry.pub"
    run_cli("attest", "acme/m", "--allow-findings", "--public-key-out", str(pub))
    verifier = PublicKeyVerifier([load_public_key(pub.read_bytes())])
    engine = make_engine(f"sqlite:///{isolated_env / 'registry.db'}")
    with engine.connect() as conn:
        rows = (
            conn.execute(
                text("SELECT bundle FROM attestations WHERE predicate_type LIKE '%/scan/v1'")
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert len(rows) == 13  # one per default scanner
    for raw in rows:
        statement = Statement.from_payload(verifier.verify(Bundle.from_bytes(raw)).payload)
        assert f"sha256:{statement.subjects[0].digest['sha256']}" == body["digest"]
        if statement.predicate["scanner"]["id"] == "pickle":
            files = {f["path"]: f for f in statement.predicate["files"]}
            assert files["optimizer.pt"]["verdict"] == "malicious"
            assert files["optimizer.pt"]["digest"]["sha256"] == next(
                f["sha256"] for f in body["files"] if f["path"] == "optimizer.pt"
            )


def test_scan_without_the_key_is_recorded_unattested(run_cli: Any, model: Path) -> None:
    run_cli("mirror", str(model), "--name", "acme/m", "--no-scan")
    assert run_cli("inspect", "acme/m", "--json").json()["scans"] == []
    result = run_cli("scan", "acme/m", "--json")
    assert result.code == 0, result.stderr
    body = result.json()
    assert body["name"] == "acme/m"
    assert body["verdict"] == "clean"
    assert [r["attested"] for r in body["recorded"]] == [False] * 13
    assert "not attested" in run_cli("scan", "acme/m").stdout
    assert len(run_cli("inspect", "acme/m", "--json").json()["scans"]) == 26  # 2 runs x 13
    assert json.loads(run_cli("inspect", "acme/m", "--json").stdout)["attestations"] == []


def test_mirror_fail_on_exits_1_but_records_the_checkpoint(
    run_cli: Any, model: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELCTL_DATABASE_URL", database_url)
    clean = run_cli("mirror", str(model), "--name", "acme/clean")
    assert clean.code == 0, clean.stderr  # the default (--fail-on high) passes a clean model
    shutil.copy(MALICIOUS, model / "optimizer.pt")
    mirrored = run_cli("mirror", str(model), "--name", "acme/m", "--json")
    assert mirrored.code == 1
    [line] = mirrored.stderr.splitlines()
    assert line.startswith("modelctl: error: mirrored acme/m@sha256:")
    assert "at or above --fail-on high (worst: critical" in line
    assert "optimizer.pt" in line
    digest = mirrored.json()["digest"]  # stdout is still the one JSON document
    # Recorded all the same: it is evidence, and admission denies it.
    assert run_cli("inspect", f"acme/m@{digest}", "--json").json()["digest"] == digest
    again = run_cli("mirror", str(model), "--name", "acme/m2", "--fail-on", "never")
    assert again.code == 0, again.stderr
    assert run_cli("mirror", str(model), "--name", "acme/m3", "--fail-on", "critical").code == 1
    unscanned = run_cli("mirror", str(model), "--name", "acme/m4", "--no-scan")
    assert unscanned.code == 0  # nothing scanned, nothing to fail on
    bad = run_cli("mirror", str(model), "--name", "acme/m5", "--fail-on", "severe")
    assert bad.code == 2
    assert "--fail-on must be one of" in bad.stderr
    assert run_cli("inspect", "acme/m5").code == 2  # refused before anything was mirrored
