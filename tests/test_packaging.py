"""What a plain `pip install .` gives: declared dependencies suffice, optional parts fail cleanly.

`tests/no_extras.py` says how a no-extras install is simulated offline (every undeclared
third-party module made unimportable in a child interpreter) and why not a real fresh venv.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from attestations.folder import sign_folder
from attestations.keys import KeySigner
from tests.helpers import write_tree
from tests.no_extras import Run, declared_distributions, run_without_extras, undeclared_modules
from tests.test_certificates import SAN_PATTERN, make_pki, pem, signer_for

SIGSTORE_HINT = "pip install 'modelctl[sigstore]'"


@pytest.fixture(scope="module")
def signed_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A model folder signed by a key and by a certificate chain, with the trust files."""
    base = tmp_path_factory.mktemp("signed")
    model = write_tree(base / "model", {"config.json": b"{}\n", "weights.bin": b"\x00" * 64})
    key = ec.generate_private_key(ec.SECP256R1())
    (base / "key.sig").write_bytes(
        sign_folder(model, KeySigner(key), signature_path=base / "key.sig").to_bytes()
    )
    (base / "key.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    pki = make_pki(ec.SECP256R1())
    (base / "cert.sig").write_bytes(
        sign_folder(model, signer_for(pki), signature_path=base / "cert.sig").to_bytes()
    )
    (base / "roots.pem").write_bytes(pem(pki.root.cert))
    (base / "trusted_root.json").write_text("{}")  # never read: sigstore is missing first
    return {"base": base, "model": model}


def _one_clean_line(run: Run) -> str:
    assert "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("modelctl: error: ")
    return lines[0]


def test_the_simulation_blocks_the_optional_parts_and_keeps_the_declared_ones() -> None:
    blocked = set(undeclared_modules())
    assert {"sigstore", "torch", "transformers", "model_signing", "pytest"} <= blocked
    assert not blocked & {"cryptography", "typer", "sqlalchemy", "fastapi", "yaml", "attestations"}
    assert {"cryptography", "typer", "huggingface-hub"} <= declared_distributions()


def test_every_module_imports_with_the_declared_dependencies_only(tmp_path: Path) -> None:
    """No module-level import of an undeclared package (cryptography used to be one)."""
    run = run_without_extras("import-all", home=tmp_path / "home")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout) == {}


def test_verify_with_a_public_key_needs_no_extra(
    signed_model: dict[str, Path], tmp_path: Path
) -> None:
    base = signed_model["base"]
    run = run_without_extras(
        "verify", str(signed_model["model"]), "--signature", str(base / "key.sig"),
        "--public-key", str(base / "key.pub"), "--json",
        home=tmp_path / "home",
    )  # fmt: skip
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["signer"]["method"] == "key"


def test_verify_with_a_certificate_chain_needs_no_extra(
    signed_model: dict[str, Path], tmp_path: Path
) -> None:
    base = signed_model["base"]
    run = run_without_extras(
        "verify", str(signed_model["model"]), "--signature", str(base / "cert.sig"),
        "--certificate-chain", str(base / "roots.pem"), "--san", SAN_PATTERN, "--json",
        home=tmp_path / "home",
    )  # fmt: skip
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["signer"]["method"] == "certificate"


def test_keyless_verify_without_sigstore_is_one_clean_line(
    signed_model: dict[str, Path], tmp_path: Path
) -> None:
    base = signed_model["base"]
    run = run_without_extras(
        "verify", str(signed_model["model"]), "--signature", str(base / "key.sig"),
        "--identity", "alice@example.com", "--issuer", "https://issuer.example",
        "--trusted-root", str(base / "trusted_root.json"),
        home=tmp_path / "home",
    )  # fmt: skip
    assert run.code == 2
    line = _one_clean_line(run)
    assert "Sigstore keyless verification needs the optional package sigstore" in line
    assert SIGSTORE_HINT in line


def test_keyless_verify_without_sigstore_in_json(
    signed_model: dict[str, Path], tmp_path: Path
) -> None:
    base = signed_model["base"]
    run = run_without_extras(
        "verify", str(signed_model["model"]), "--signature", str(base / "key.sig"),
        "--identity", "alice@example.com", "--issuer", "https://issuer.example",
        "--trusted-root", str(base / "trusted_root.json"), "--json",
        home=tmp_path / "home",
    )  # fmt: skip
    assert run.code == 2
    _one_clean_line(run)
    body = json.loads(run.stdout)
    assert body["kind"] == "missing_dependency_error"
    assert SIGSTORE_HINT in body["error"]


def test_keyless_sign_without_sigstore_is_one_clean_line(
    signed_model: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "model.sig"
    run = run_without_extras(
        "sign", str(signed_model["model"]), "--sigstore", "--identity-token", "x.y.z",
        "--output", str(out),
        home=tmp_path / "home",
    )  # fmt: skip
    assert run.code == 2
    line = _one_clean_line(run)
    assert "Sigstore keyless signing needs the optional package sigstore" in line
    assert SIGSTORE_HINT in line
    assert not out.exists()


def test_version_without_extras(tmp_path: Path) -> None:
    run = run_without_extras("--version", "--json", home=tmp_path / "home")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["name"] == "modelctl"


def test_pdf_report_without_weasyprint_is_one_clean_line(tmp_path: Path) -> None:
    out = tmp_path / "r.pdf"
    run = run_without_extras(
        "report", "--env", "prod", "--format", "pdf", "--out", str(out), home=tmp_path / "home"
    )
    assert run.code == 2
    assert "pip install 'modelctl[pdf]'" in _one_clean_line(run)
    assert not out.exists()


def test_an_s3_store_without_the_extra_is_one_clean_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELCTL_BLOB_STORE", "s3://bucket/prefix")
    run = run_without_extras("models", home=tmp_path / "home")
    assert run.code == 2
    assert "needs boto3: pip install 'modelctl[s3]'" in _one_clean_line(run)


def test_every_data_file_the_packages_read_is_packaged() -> None:
    """Templates, styles, policies, migrations: a file a package reads at run time that
    package-data does not name works in a checkout and is missing from an installed wheel."""
    import fnmatch
    import subprocess
    import tomllib

    root = Path(__file__).resolve().parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    globs = config["tool"]["setuptools"]["package-data"]
    tracked = subprocess.run(
        ["git", "ls-files", *globs], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    missing = []
    for path in tracked:
        package, _, rest = path.partition("/")
        if path.endswith((".md", ".c")):  # read by people and by the build, not at run time
            continue
        if path.endswith(".py") and "/migrations/" not in path:
            continue
        if package in globs and not any(fnmatch.fnmatch(rest, g) for g in globs[package]):
            missing.append(path)
    assert missing == [], f"not in [tool.setuptools.package-data]: {missing}"
