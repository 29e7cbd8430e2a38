"""The scanners' own errors.

The scanners are a library: they raise these, and the registry's callers (CLI, API, embedded
registry) translate them at the boundary into `registry.errors.InputError`, so exit codes and
HTTP problems are decided in one place outside the library.
"""

from __future__ import annotations


class ScanInputError(ValueError):
    """The caller asked for something the scanners cannot do (e.g. an unknown scanner id).
    `message` is one line, fit to show to the user as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
