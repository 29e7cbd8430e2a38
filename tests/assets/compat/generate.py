"""Write the signed outputs of this modelctl version under `tests/assets/compat/v<VERSION>/`.

Every later version must keep verifying what an earlier one signed (`tests/test_compat.py`).
This script makes one version's set, once, through the real command line on a throwaway
registry home: it mirrors the fixed model folder (which scans it), attests it and evaluates the
dev and prod policies, all signed with the committed compat test key, then copies the stored
bundles out of that registry's SQLite database byte for byte.

It never overwrites: an existing version folder is refused, and nothing is written without
`--write`. A version's outputs are evidence of what that version emitted, so they are made once
and then only read; a later version adds its own folder (and a new release bumps `version` in
pyproject.toml first).

    .venv/bin/python tests/assets/compat/generate.py            # say what would be written
    .venv/bin/python tests/assets/compat/generate.py --write    # write v<VERSION>/ once

The key under `keys/` is a TEST KEY, committed on purpose, with its passphrase below: it signs
nothing but these fixtures and must never be trusted for anything else.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
KEYS = HERE / "keys"
KEY_NAME = "compat-test"
TEST_KEY_PASSPHRASE = "modelctl-compat-test-key"  # a committed test key, never a real one
MODEL_NAME = "compat/tiny"

# The fixed model folder: small, text only, the same for every version.
MODEL_FILES: dict[str, bytes] = {
    "README.md": b"# compat/tiny\n\nA fixed model folder for modelctl's compatibility fixtures.\n",
    "config.json": b'{"architectures": ["CompatForCausalLM"], "hidden_size": 4}\n',
    "tokenizer/vocab.txt": b"<pad>\n<s>\n</s>\nhello\nworld\n",
}

# Predicate type -> file name stem (scans get the scanner id appended, decisions the env).
STEMS = {
    "https://model_signing/signature/v1.0": "model-signature",
    "https://slsa.dev/provenance/v1": "provenance",
    "https://modelctl.dev/attestations/scan/v1": "scan",
    "https://slsa.dev/verification_summary/v1": "decision",
}


def write_model(folder: Path) -> None:
    for rel, data in MODEL_FILES.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _modelctl(env: dict[str, str], *args: str, ok: tuple[int, ...] = (0,)) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in ok:
        raise SystemExit(f"modelctl {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done.stdout


def _name_of(predicate_type: str, payload: dict[str, object]) -> str:
    stem = STEMS[predicate_type]
    predicate = payload["predicate"]
    assert isinstance(predicate, dict)
    if stem == "scan":
        return f"scan-{predicate['scanner']['id']}.sigstore.json"
    if stem == "decision":
        return f"decision-{predicate['modelctl']['environment']}.sigstore.json"
    return f"{stem}.sigstore.json"


def generate(out: Path) -> list[str]:
    """Make the set into `out` (which must not exist); returns the file names written."""
    import base64

    with tempfile.TemporaryDirectory(prefix="modelctl-compat-") as scratch:
        work = Path(scratch)
        source = work / "compat-tiny"
        write_model(source)
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            MODELCTL_HOME=str(work / "home"),
            MODELCTL_KEY_PASSPHRASE=TEST_KEY_PASSPHRASE,
            MODELCTL_SIGNING_KEY=str(KEYS / f"{KEY_NAME}.key"),
            MODELCTL_SIGNING_KEY_PASSPHRASE=TEST_KEY_PASSPHRASE,
        )
        if not (KEYS / f"{KEY_NAME}.key").exists():
            _modelctl(env, "keys", "generate", "--out", str(KEYS), "--name", KEY_NAME)
        _modelctl(env, "mirror", str(source), "--name", MODEL_NAME)
        _modelctl(env, "attest", MODEL_NAME)
        for environment in ("dev", "prod"):
            _modelctl(env, "policy", "check", MODEL_NAME, "--env", environment, ok=(0, 1))

        out.mkdir(parents=True)
        write_model(out / "model")
        written: list[str] = []
        with sqlite3.connect(work / "home" / "registry.db") as db:
            rows = db.execute("SELECT predicate_type, bundle FROM attestations ORDER BY id")
            for predicate_type, bundle in rows:
                envelope = json.loads(bundle)["dsseEnvelope"]
                payload = json.loads(base64.b64decode(envelope["payload"]))
                name = _name_of(predicate_type, payload)
                if name in written:
                    raise SystemExit(f"two bundles would be {name}")
                (out / name).write_bytes(bundle)
                written.append(name)
    return sorted(written)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write v<VERSION>/ (once)")
    args = parser.parse_args()
    version = importlib.metadata.version("modelctl")
    out = HERE / f"v{version}"
    if out.exists():
        raise SystemExit(f"{out} exists: outputs of a released version are never regenerated")
    if not args.write:
        print(f"would write {out} (pass --write)")
        return
    try:
        names = generate(out)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    print(f"wrote {out}: {', '.join(names)}")


if __name__ == "__main__":
    main()
