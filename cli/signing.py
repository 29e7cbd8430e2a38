"""`modelctl keys generate`, `modelctl sign`, `modelctl verify`: model signatures on folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from attestations.bundle import Bundle
from attestations.errors import InvalidInputError
from attestations.folder import FolderVerification, sign_folder, verify_folder
from attestations.intoto import Statement
from attestations.keys import (
    KeySigner,
    PublicKeyVerifier,
    generate_key,
    load_private_key,
    load_public_key,
)
from attestations.model_signature import PREDICATE_TYPE
from attestations.signing import SignatureVerifier, Signer
from cli import render
from cli.options import JsonOption, State, VerboseOption, emit, state_of
from registry.errors import InputError
from registry.fsutil import atomic_write

PASSPHRASE_ENV = "MODELCTL_KEY_PASSPHRASE"  # noqa: S105 (the variable's name, not a secret)
keys_app = typer.Typer(help="Signing keys.", no_args_is_help=True)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from exc


def _passphrase(env_name: str, *, confirm: bool, needed: bool) -> bytes | None:
    """From the environment, else a prompt on a terminal, else none."""
    value = os.environ.get(env_name)
    if value:
        return value.encode()
    if not needed:
        return None
    if not sys.stdin.isatty():
        raise InputError(f"the key needs a passphrase: set {env_name} (no terminal to ask on)")
    entered: str = typer.prompt("Key passphrase", hide_input=True, confirmation_prompt=confirm)
    return entered.encode()


@keys_app.command("generate")
def keys_generate(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Folder for the key pair.")] = Path("."),
    name: Annotated[str, typer.Option("--name", help="File name stem.")] = "modelctl",
    curve: Annotated[str, typer.Option("--curve", help="P-256 or P-384.")] = "P-256",
    passphrase_env: Annotated[
        str, typer.Option("--passphrase-env", help="Variable holding the passphrase.")
    ] = PASSPHRASE_ENV,
    unsafe_no_passphrase: Annotated[
        bool,
        typer.Option(
            "--unsafe-no-passphrase", help="Store the private key unencrypted (not recommended)."
        ),
    ] = False,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Make an EC key pair: NAME.key (encrypted PKCS#8) and NAME.pub."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    if curve not in ("P-256", "P-384"):
        raise InputError(f"--curve must be P-256 or P-384, not {curve!r}")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is not a folder")
    if unsafe_no_passphrase:
        print("modelctl: warning: the private key is written UNENCRYPTED", file=sys.stderr)
        passphrase = None
    else:
        passphrase = _passphrase(passphrase_env, confirm=True, needed=True)
    pair = generate_key(curve, passphrase=passphrase)  # type: ignore[arg-type]
    out.mkdir(mode=0o700, parents=True, exist_ok=True)  # `--out keys/` on a fresh machine
    private, public = out / f"{name}.key", out / f"{name}.pub"
    for path in (private, public):
        if path.exists() or path.is_symlink():
            raise InputError(f"{path} already exists; refusing to overwrite it")
    atomic_write(private, pair.private_pem, mode=0o600, overwrite=False)
    try:
        atomic_write(public, pair.public_pem, mode=0o644, overwrite=False)
    except BaseException:
        private.unlink(missing_ok=True)  # never leave half a key pair
        raise
    emit(
        state,
        {"private_key": str(private), "public_key": str(public), "key_hint": pair.hint},
        f"private key  {private}{' (unencrypted)' if passphrase is None else ''}\n"
        f"public key   {public}\nkey hint     sha256:{pair.hint}",
    )


def _signer(
    key: Path | None,
    certificate: Path | None,
    certificate_chain: Path | None,
    sigstore: bool,
    identity_token: str | None,
    trust_config: Path | None,
    passphrase_env: str,
) -> Signer:
    if sigstore:
        if key or certificate:
            raise InputError("--sigstore signs keylessly: do not pass --key or --certificate")
        token = identity_token or os.environ.get("SIGSTORE_ID_TOKEN")
        if not token:
            raise InputError(
                "--sigstore needs an OIDC identity token: --identity-token or SIGSTORE_ID_TOKEN"
            )
        # The keyless module loads only on the keyless paths (2.5 ms at every start-up else).
        from attestations.sigstore_keyless import SigstoreSigner  # noqa: PLC0415

        return SigstoreSigner(token, trust_config=trust_config)
    if key is None:
        raise InputError(
            "pass --key PRIVATE.pem (with --certificate for certificate signing) or --sigstore"
        )
    pem = _read(key, "private key")
    encrypted = b"ENCRYPTED" in pem.split(b"\n", 1)[0] or b"Proc-Type: 4,ENCRYPTED" in pem
    private = load_private_key(pem, _passphrase(passphrase_env, confirm=False, needed=encrypted))
    if certificate is None:
        if certificate_chain is not None:
            raise InputError("--certificate-chain needs --certificate (the signing certificate)")
        return KeySigner(private)
    # X.509 chains load only for certificate signing (cryptography's x509: 17 ms at start-up)
    from attestations.certificates import CertificateSigner, load_certificates  # noqa: PLC0415

    chain = load_certificates(_read(certificate, "certificate"))
    if certificate_chain is not None:
        chain += load_certificates(_read(certificate_chain, "certificate chain"))
    return CertificateSigner(private, chain)


IgnorePathsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--ignore-paths",
        help="Leave out this path, exact and relative to the model folder (repeatable).",
    ),
]


def _model_path(path: Path) -> None:
    """A model is a folder or one regular file (OMS 6.1); anything else is refused."""
    if not (path.is_dir() or path.is_file()):
        raise InputError(f"{path} is neither a model folder nor a model file")


def sign(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="The model folder, or a single model file.")],
    key: Annotated[Path | None, typer.Option("--key", help="EC private key (PEM).")] = None,
    output: Annotated[Path, typer.Option("--output", help="Signature file.")] = Path("model.sig"),
    certificate: Annotated[
        Path | None, typer.Option("--certificate", help="Signing certificate for --key (PEM).")
    ] = None,
    certificate_chain: Annotated[
        Path | None, typer.Option("--certificate-chain", help="Intermediates (PEM) to include.")
    ] = None,
    sigstore: Annotated[bool, typer.Option("--sigstore", help="Keyless Sigstore signing.")] = False,
    identity_token: Annotated[
        str | None, typer.Option("--identity-token", help="OIDC token for --sigstore.")
    ] = None,
    trust_config: Annotated[
        Path | None, typer.Option("--trust-config", help="Private Sigstore trust config.")
    ] = None,
    passphrase_env: Annotated[
        str, typer.Option("--passphrase-env", help="Variable holding the key passphrase.")
    ] = PASSPHRASE_ENV,
    ignore_paths: IgnorePathsOption = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Sign a model folder or file: a model_signing v1.0 (OMS) compatible Sigstore bundle."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    _model_path(folder)
    signer = _signer(
        key, certificate, certificate_chain, sigstore, identity_token, trust_config, passphrase_env
    )
    bundle = sign_folder(
        folder, signer, signature_path=output, ignore_paths=tuple(ignore_paths or ())
    )
    atomic_write(output, bundle.to_bytes())
    statement = Statement.from_payload(bundle.envelope.payload)
    digest = statement.subjects[0].digest["sha256"]
    resources = len(statement.predicate.get("resources", []))
    emit(
        state,
        {
            "signature": str(output),
            "subject_digest": f"sha256:{digest}",
            "method": signer.method,
            "resources": resources,
        },
        f"signed {folder} → {output}\n  subject  sha256:{digest}\n"
        f"  files    {resources}\n  method   {signer.method}",
    )


def _verifier(
    public_key: Path | None,
    identity: str | None,
    issuer: str | None,
    trusted_root: Path | None,
    certificate_chain: Path | None,
    san: str | None,
    subject: str | None = None,
) -> SignatureVerifier:
    chosen = [
        public_key is not None,
        identity is not None or issuer is not None,
        certificate_chain is not None,
    ]
    if sum(chosen) != 1:
        raise InputError(
            "say whom to trust, once: --public-key PEM, or --identity ID --issuer URL, "
            "or --certificate-chain PEM --san PATTERN (or --subject PATTERN)"
        )
    if public_key is not None:
        try:
            return PublicKeyVerifier([load_public_key(_read(public_key, "public key"))])
        except InvalidInputError as exc:
            raise InputError(f"{public_key}: {exc.message}") from exc
    if (san or subject) and certificate_chain is None:
        raise InputError("--san and --subject pin a certificate: pass --certificate-chain ROOTS")
    if certificate_chain is not None:
        if not san and not subject:
            raise InputError(
                "--certificate-chain needs --san PATTERN (or --subject PATTERN for a "
                "certificate without a SAN): chain validity alone is no identity"
            )
        from attestations.certificates import (  # noqa: PLC0415 - as in _signer
            CertificateChainVerifier,
            load_certificates,
        )

        roots = load_certificates(_read(certificate_chain, "certificate chain"))
        return CertificateChainVerifier(roots, san, subject_pattern=subject)
    if not identity or not issuer:
        raise InputError("keyless verification needs both --identity and --issuer")
    if trusted_root is None:
        raise InputError("keyless verification offline needs --trusted-root trusted_root.json")
    from attestations.sigstore_keyless import (  # noqa: PLC0415 - as in _signer
        SigstoreIdentityVerifier,
    )

    return SigstoreIdentityVerifier(identity=identity, issuer=issuer, trusted_root=trusted_root)


def verification_json(folder: Path, signature: Path, result: FolderVerification) -> dict[str, Any]:
    signer = result.signature.signer
    ser = result.signature.predicate.serialization
    return {
        "verified": True,
        "model": str(folder),
        "signature": str(signature),
        "subject_digest": str(result.signature.subject_digest),
        "predicate_type": result.signature.predicate_type,
        "signer": {
            "method": signer.method,
            "key_hint": signer.key_hint,
            "subject": signer.subject,
            "issuer": signer.issuer,
            "leaf_is_ca": signer.leaf_is_ca,
        },
        "serialization": {
            "method": ser.method,
            "hash_type": ser.hash_type,
            "allow_symlinks": ser.allow_symlinks,
            "ignore_paths": list(ser.ignore_paths),
        },
        "verifier_ignore_paths": list(result.verifier_ignored),
        "unsigned_files": list(result.unsigned),
        "files": result.files,
        "bytes": result.bytes,
        "checks": list(result.checks),
    }


def verify(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            help="The model folder or file; or an OCI artifact: oci://HOST/REPO@sha256:…|:TAG, "
            "oci-layout:PATH[:TAG] or a directory holding an OCI image layout.",
            metavar="MODEL",
        ),
    ],
    signature: Annotated[
        Path | None,
        typer.Option(
            "--signature",
            help="The signature bundle (an OCI artifact: default, its attached referrers).",
        ),
    ] = None,
    public_key: Annotated[
        Path | None, typer.Option("--public-key", help="Trusted EC public key (PEM).")
    ] = None,
    identity: Annotated[
        str | None, typer.Option("--identity", help="Exact Sigstore identity.")
    ] = None,
    issuer: Annotated[
        str | None, typer.Option("--issuer", help="OIDC issuer URL of the identity.")
    ] = None,
    trusted_root: Annotated[
        Path | None, typer.Option("--trusted-root", help="Pinned Sigstore trusted_root.json.")
    ] = None,
    certificate_chain: Annotated[
        Path | None, typer.Option("--certificate-chain", help="Trusted root certificates (PEM).")
    ] = None,
    san: Annotated[
        str | None, typer.Option("--san", help="Regex the signing certificate's SAN must match.")
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option(
            "--subject",
            help="Regex the signing certificate's subject DN must match (RFC 4514 text).",
        ),
    ] = None,
    allow_ignore: Annotated[
        list[str] | None, typer.Option("--allow-ignore", help="Accept these ignore_paths.")
    ] = None,
    ignore_paths: IgnorePathsOption = None,
    ignore_unsigned_files: Annotated[
        bool,
        typer.Option(
            "--ignore-unsigned-files",
            help="Accept files nobody signed (listed in the output); signed files still verify.",
        ),
    ] = False,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Verify a model folder or file, or an OCI artifact, against its signature: signer,
    statement, every byte (an artifact's layers are streamed and hashed, never unpacked)."""
    state = state_of(ctx, json_output=json_output, verbose=verbose)
    if _is_oci_target(target):
        _verify_oci(
            state,
            target,
            signature,
            _verifier(public_key, identity, issuer, trusted_root, certificate_chain, san, subject),
        )
        return
    folder = Path(target)
    _model_path(folder)
    if signature is None:
        raise InputError("--signature BUNDLE is required to verify a folder or a file")
    verifier = _verifier(
        public_key, identity, issuer, trusted_root, certificate_chain, san, subject
    )
    bundle = Bundle.from_bytes(_read(signature, "signature"))
    result = verify_folder(
        folder,
        bundle,
        verifier,
        signature_path=signature,
        allow_ignore=tuple(allow_ignore or ()),
        ignore_paths=tuple(ignore_paths or ()),
        allow_unsigned=ignore_unsigned_files,
    )
    what = "every file matches" if folder.is_dir() else "the file matches"
    lines = [
        f"verified {folder}: {what} the signature",
        f"  subject  {result.signature.subject_digest}",
        f"  signer   {result.signature.signer.describe()}",
        f"  files    {result.files}, {render.human_size(result.bytes)}",
    ]
    if result.signature.signer.leaf_is_ca:
        lines.append("  note     the signing certificate is a CA certificate (CA:TRUE)")
    if result.verifier_ignored:
        lines.append(
            f"  ignored  {', '.join(result.verifier_ignored)} (--ignore-paths, unverified)"
        )
    if result.unsigned:
        shown = ", ".join(result.unsigned[:5]) + (" …" if len(result.unsigned) > 5 else "")
        lines.append(f"  unsigned {shown} (--ignore-unsigned-files: present, not verified)")
    if result.signature.predicate_type != PREDICATE_TYPE:
        lines.append(f"  format   legacy {result.signature.predicate_type} (model_signing 0.2)")
    if state.verbose:
        lines += [f"  ✓ {c}" for c in result.checks]
    emit(state, verification_json(folder, signature, result), "\n".join(lines))


def _is_oci_target(target: str) -> bool:
    return target.startswith(("oci://", "oci-layout:")) or (Path(target) / "oci-layout").is_file()


def _verify_oci(
    state: State, target: str, signature: Path | None, verifier: SignatureVerifier
) -> None:
    # The OCI client (httpx) loads for this form of the command only.
    from registry.mirror.oci_verify import verify_target  # noqa: PLC0415

    bundle = Bundle.from_bytes(_read(signature, "signature")) if signature is not None else None
    result = verify_target(target, verifier, bundle=bundle)
    signer = result.signature.signer
    lines = [
        f"verified {result.where}: every layer matches the signature",
        f"  subject  {result.signature.subject_digest}",
        f"  signer   {signer.describe()}",
        f"  from     {result.signature_from}",
        f"  files    {len(result.layers)}, {render.human_size(result.bytes)}",
        *(f"  ✓ {layer.path}  {layer.digest}" for layer in result.layers),
    ]
    if state.verbose:
        lines += [f"  ✓ {c}" for c in result.checks]
    document = {
        "verified": True,
        "artifact": result.where,
        "oci_digest": result.oci_digest,
        "signature": result.signature_from,
        "subject_digest": str(result.signature.subject_digest),
        "predicate_type": result.signature.predicate_type,
        "signer": {
            "method": signer.method,
            "key_hint": signer.key_hint,
            "subject": signer.subject,
            "issuer": signer.issuer,
        },
        "files": [
            {"path": layer.path, "size": layer.size, "digest": layer.digest, "verified": True}
            for layer in result.layers
        ],
        "bytes": result.bytes,
        "checks": list(result.checks),
    }
    emit(state, document, "\n".join(lines))
