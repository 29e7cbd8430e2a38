"""Exit codes (DESIGN §4), read from the one error map in `registry.errors`.

0 success · 1 the answer is no (denied, tampered, bad signature) · 2 usage, input or
environment error. Every non-zero exit prints one line on stderr saying why.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from registry.errors import EXIT_ERROR, EXIT_NO, exit_code_for, kind_of

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_NO",
    "EXIT_OK",
    "exit_code_for",
    "kind_of",
    "refuse",
]

EXIT_OK = 0
EXIT_INTERRUPTED = 130


def refuse(reason: str) -> NoReturn:
    """Exit 1 (the answer is no) with its one-line reason on stderr, as every error exits.

    For commands whose answer is printed on stdout (`scan`, `policy lint`, `policy check`,
    `mirror --fail-on`): stdout, `--json` included, stays the answer; stderr says why it is no.
    """
    line = " ".join(reason.split())  # one line, whatever the reason held
    print(f"modelctl: error: {line}", file=sys.stderr)
    raise typer.Exit(EXIT_NO)
