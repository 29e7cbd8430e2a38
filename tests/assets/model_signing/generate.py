"""Golden signatures from every model_signing release on PyPI (for test_model_signing_golden.py).

At test-BUILD time (never in a test run) this script installs each model_signing release into a
separate throwaway venv, and has that release sign the fixed model folder and single file under
this directory with the committed TEST keys and TEST PKI (no network beyond PyPI, no Sigstore):

    <version>/key.sig           folder, EC key (P-256)
    <version>/key-file.sig      the single-file model, EC key
    <version>/key-ignore.sig    folder with `ignore-me` left out when signing (0.3.0 and later)
    <version>/key-shards.sig    folder, shard serialization, 64-byte shards (0.3.0 and later)
    <version>/cert.sig          folder, certificate chain leaf → intermediate → root (P-384 leaf)
    <version>/cert-ca-leaf.sig  folder, a leaf marked CA:TRUE with no SAN, like model_signing's
                                own test PKI

It also writes this modelctl version's own signatures under `modelctl-<version>/`, through the
real command line, which every later modelctl must keep verifying.

Nothing existing is overwritten: a version folder that is already there is skipped, so the
committed outputs stay evidence of what each release wrote. The PKI and keys under `pki/` are
made once, on the first run. They are TEST material, committed on purpose: they sign nothing
but these fixtures and must never be trusted for anything else.

    .venv/bin/python tests/assets/model_signing/generate.py            # say what is missing
    .venv/bin/python tests/assets/model_signing/generate.py --write    # make what is missing
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
PKI = HERE / "pki"
MODEL = HERE / "model"
SINGLE = HERE / "single" / "model.bin"

#: The releases from 0.2.0 on (`pip index versions model-signing` lists them; 0.1.x, before the
#: Sigstore bundle format, are left out, as in the issue's range 0.2.x to 1.1.1).
RELEASES = ("0.2.0", "0.3.0", "0.3.1", "1.0.0", "1.0.1", "1.1.0", "1.1.1")
#: Undeclared dependencies: 1.x imports pyOpenSSL; up to 1.0.1 it imports sigstore_protobuf_specs,
#: which only sigstore 3.x still brings.
EXTRA_PINS: dict[str, tuple[str, ...]] = dict.fromkeys(
    ("0.2.0", "0.3.0", "0.3.1", "1.0.0", "1.0.1"), ("sigstore<4",)
)

MODEL_FILES: dict[str, bytes] = {
    "signme-1": b"first signed file of the golden model\n",
    "signme-2": bytes(range(256)) * 2,  # 512 bytes: eight 64-byte shards
    "subdir/adapter.bin": b"\x00\x01adapter weights\xff",
    "ignore-me": b"a local file some signatures leave out on purpose\n",
}
SINGLE_FILE = b"a single-file model (think .gguf or .onnx)\n" * 4
LEAF_SAN = "golden-signer@modelctl.test"
VALID_DAYS = 36500  # test PKI: valid for a century, so fixtures never expire under the tests


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    path_length: int | None = None,
    code_signing_leaf: bool = False,
    san: str | None = None,
) -> x509.Certificate:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if code_signing_leaf:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    else:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    if san is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(san)]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki() -> None:
    """Keys and certificates, once: root → intermediate → leaf, plus a CA:TRUE leaf."""
    PKI.mkdir(parents=True)
    root_key = ec.generate_private_key(ec.SECP256R1())
    inter_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP384R1())
    ca_leaf_key = ec.generate_private_key(ec.SECP384R1())
    signing_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert("golden-root-ca", root_key, "golden-root-ca", root_key, ca=True)
    inter = _cert("golden-intermediate-ca", inter_key, "golden-root-ca", root_key, ca=True)
    leaf = _cert(
        "golden-signer",
        leaf_key,
        "golden-intermediate-ca",
        inter_key,
        ca=False,
        code_signing_leaf=True,
        san=LEAF_SAN,
    )
    # What model_signing's own scripts issue: the signing certificate is itself a CA.
    ca_leaf = _cert(
        "golden-ca-leaf",
        ca_leaf_key,
        "golden-intermediate-ca",
        inter_key,
        ca=True,
        code_signing_leaf=True,
    )
    pem = serialization.Encoding.PEM
    (PKI / "root-ca.pem").write_bytes(root.public_bytes(pem))
    (PKI / "intermediate-ca.pem").write_bytes(inter.public_bytes(pem))
    (PKI / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (PKI / "ca-leaf.pem").write_bytes(ca_leaf.public_bytes(pem))
    _write_key(PKI / "leaf.key", leaf_key)
    _write_key(PKI / "ca-leaf.key", ca_leaf_key)
    _write_key(PKI / "signing.key", signing_key)
    (PKI / "signing.pub").write_bytes(
        signing_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def make_models() -> None:
    for rel, data in MODEL_FILES.items():
        path = MODEL / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    SINGLE.parent.mkdir(parents=True, exist_ok=True)
    SINGLE.write_bytes(SINGLE_FILE)


# Runs inside the release's own venv: argv = version, out folder, pki folder, model, single file.
_DRIVER = r"""
import pathlib, sys
version, out, pki, model, single = sys.argv[1:6]
out, pki, model, single = map(pathlib.Path, (out, pki, model, single))
major = tuple(int(p) for p in version.split("."))

if major < (0, 3, 0):
    from model_signing.api import HashingConfig
    from model_signing.signature import key as key_sig, pki as pki_sig
    from model_signing.signing import in_toto, in_toto_signature

    def sign(target, signer, dest):
        manifest = HashingConfig().hash(target)
        payload = in_toto.DigestsIntotoPayload.from_manifest(manifest)
        in_toto_signature.IntotoSigner(signer).sign(payload).write(dest)

    key = key_sig.ECKeySigner.from_path(str(pki / "signing.key"))
    sign(model, key, out / "key.sig")
    sign(single, key, out / "key-file.sig")
    chain = [str(pki / "intermediate-ca.pem"), str(pki / "root-ca.pem")]
    sign(model, pki_sig.PKISigner.from_path(str(pki / "leaf.key"), str(pki / "leaf.pem"), chain),
         out / "cert.sig")
    sign(model, pki_sig.PKISigner.from_path(str(pki / "ca-leaf.key"), str(pki / "ca-leaf.pem"),
         chain), out / "cert-ca-leaf.sig")
    sys.exit(0)

from model_signing import hashing, signing

def offline_config():
    # Before 1.1.0 `Config()` sets up the keyless signer, which fetches Sigstore's trust root.
    config = signing.Config.__new__(signing.Config)
    config._hashing_config = hashing.Config()
    return config

def key_config():
    return offline_config().use_elliptic_key_signer(private_key=pki / "signing.key")

def cert_config(leaf):
    return offline_config().use_certificate_signer(
        private_key=pki / f"{leaf}.key",
        signing_certificate=pki / f"{leaf}.pem",
        certificate_chain=[pki / "intermediate-ca.pem", pki / "root-ca.pem"],
    )

def attempt(name, run):
    # Some releases cannot make some signatures (0.3.0's certificate signer has a typo); the
    # failure is recorded, so the tests know which fixture a release could not write.
    try:
        run(out / name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"

def ignoring():
    config = hashing.Config()
    try:
        return config.set_ignored_paths(paths=[model / "ignore-me"])
    except TypeError:  # 0.3.x takes the list positionally
        return config.set_ignored_paths([model / "ignore-me"])

failed = {}
attempt("key.sig", lambda dest: key_config().sign(model, dest))
attempt("key-file.sig", lambda dest: key_config().sign(single, dest))
def sharded():
    return hashing.Config().use_shard_serialization(shard_size=64)

attempt("key-ignore.sig", lambda to: key_config().set_hashing_config(ignoring()).sign(model, to))
attempt("key-shards.sig", lambda to: key_config().set_hashing_config(sharded()).sign(model, to))
attempt("cert.sig", lambda dest: cert_config("leaf").sign(model, dest))
attempt("cert-ca-leaf.sig", lambda dest: cert_config("ca-leaf").sign(model, dest))
if failed:
    import json
    (out / "could-not-sign.json").write_text(json.dumps(failed, indent=2, sort_keys=True) + "\n")
"""


def sign_with_release(version: str, out: Path, venvs: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix=f"model-signing-{version}-") as tmp:
        venv = venvs / f"v{version}" if venvs is not None else Path(tmp) / "venv"
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
            extra = EXTRA_PINS.get(version, ())
            subprocess.run([*pip, f"model-signing=={version}", "pyOpenSSL", *extra], check=True)
        staged = Path(tmp) / "out"
        staged.mkdir()
        outputs = (staged, PKI, MODEL, SINGLE)
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", _DRIVER, version, *map(str, outputs)],
            check=True,
            cwd=tmp,
        )
        _publish(staged, out)


def _publish(staged: Path, out: Path) -> None:
    """Move a finished set into place in one rename: never half a version folder."""
    names = sorted(p.name for p in staged.iterdir())
    if not names:
        raise SystemExit(f"nothing was signed for {out.name}")
    for path in staged.iterdir():
        json.loads(path.read_bytes())  # every output is a JSON bundle
    os.replace(staged, out)


def modelctl_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def sign_with_modelctl(out: Path) -> None:
    """This version's own signatures, through the real command line."""
    with tempfile.TemporaryDirectory(prefix="modelctl-golden-") as tmp:
        staged = Path(tmp) / "out"
        staged.mkdir()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        base = [sys.executable, "-m", "cli.main", "sign"]
        runs = {
            "key.sig": [str(MODEL), "--key", str(PKI / "signing.key")],
            "key-file.sig": [str(SINGLE), "--key", str(PKI / "signing.key")],
            "cert.sig": [
                str(MODEL),
                "--key",
                str(PKI / "leaf.key"),
                "--certificate",
                str(PKI / "leaf.pem"),
                "--certificate-chain",
                str(PKI / "intermediate-ca.pem"),
            ],
        }
        for name, args in runs.items():
            subprocess.run([*base, *args, "--output", str(staged / name)], check=True, env=env)
        _publish(staged, out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="make the missing fixtures")
    parser.add_argument(
        "--venvs",
        type=Path,
        help="keep one venv per release here (DIR/v<version>), made once and then reused",
    )
    args = parser.parse_args()
    targets = [(v, HERE / v) for v in RELEASES]
    own = HERE / f"modelctl-{modelctl_version()}"
    missing = [v for v, path in targets if not path.exists()]
    if not own.exists():
        missing.append(own.name)
    if not PKI.exists():
        missing.insert(0, "pki")
    if not args.write:
        print("missing: " + (", ".join(missing) or "nothing"))
        return 0
    if not PKI.exists():
        make_pki()
    make_models()
    for version, path in targets:
        if not path.exists():
            print(f"signing with model_signing {version}")
            sign_with_release(version, path, args.venvs)
    if not own.exists():
        print(f"signing with {own.name}")
        sign_with_modelctl(own)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
