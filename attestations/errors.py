"""One exception tree for the trust core, split by who is at fault."""

from __future__ import annotations


class AttestationError(Exception):
    """Base of every error this package raises."""

    def __init__(self, message: str, *, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInputError(AttestationError):
    """The caller gave us something malformed (a bad digest string, a hostile path)."""


class UnsafePathError(InvalidInputError):
    """A file path that could escape the model folder or is otherwise not allowed."""


class VerificationError(AttestationError):
    """Bytes or documents do not match what they claim to be."""


class DigestMismatchError(VerificationError):
    """A digest computed over bytes differs from the one expected."""


class MalformedDocumentError(InvalidInputError):
    """A statement, envelope or bundle that does not parse or breaks its format's rules."""


class SignatureVerificationError(VerificationError):
    """A signature that does not verify, or a signer the policy does not accept."""


class MissingDependencyError(AttestationError):
    """An optional package this operation needs is not installed (an environment error)."""


class SigningError(AttestationError):
    """A signer could not produce a signature (bad key, wrong passphrase, no network)."""
