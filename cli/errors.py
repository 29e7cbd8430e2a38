"""The one place that maps errors to exit codes (DESIGN §4).

0 success · 1 the answer is no (denied, tampered, bad signature) · 2 usage, input or
environment error. Every non-zero exit prints one line on stderr saying why.
"""

from __future__ import annotations

from attestations.errors import AttestationError, VerificationError
from registry.errors import Denied, IntegrityFailure, RegistryError

EXIT_OK = 0
EXIT_NO = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def exit_code_for(error: RegistryError | AttestationError) -> int:
    if isinstance(error, IntegrityFailure | Denied | VerificationError):
        return EXIT_NO
    return EXIT_ERROR


def kind_of(error: RegistryError | AttestationError) -> str:
    """A stable, machine-readable name for the error class, for `--json` output."""
    name = type(error).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
