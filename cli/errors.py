"""The one place that maps errors to exit codes (DESIGN §4).

0 success · 1 the answer is no (denied, tampered, bad signature) · 2 usage, input or
environment error. Every non-zero exit prints one line on stderr saying why.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

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


def refuse(reason: str) -> NoReturn:
    """Exit 1 (the answer is no) with its one-line reason on stderr, as every error exits.

    For commands whose answer is printed on stdout (`scan`, `policy lint`, `policy check`,
    `mirror --fail-on`): stdout, `--json` included, stays the answer; stderr says why it is no.
    """
    line = " ".join(reason.split())  # one line, whatever the reason held
    print(f"modelctl: error: {line}", file=sys.stderr)
    raise typer.Exit(EXIT_NO)
