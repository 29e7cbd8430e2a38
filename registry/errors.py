"""The registry's error tree, split by who is at fault, and the one table that maps it.

`ERROR_MAP` (at the end) is the one place an error becomes a kind, an exit code and an HTTP
status: the CLI (`cli.main`), the API (`registry.api.problems`) and the job worker
(`registry.worker`) all read it. `Denied` and `IntegrityFailure` (and a failed verification)
are "the answer is no" (exit 1); everything else is a usage, input or environment error
(exit 2). Class names follow docs/adr/0009-exception-names.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from attestations.errors import AttestationError, InvalidInputError, VerificationError


class RegistryError(Exception):
    """Base of every error the registry raises on purpose. `message` is one line."""

    def __init__(self, message: str, *, reasons: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.reasons = list(reasons)


class InputError(RegistryError):
    """The caller's input is unusable: bad syntax, hostile paths, unknown options."""


class Forbidden(InputError):
    """The caller may not do this, whatever their role: e.g. approve their own request."""


class NotFound(InputError):
    """The named model, checkpoint, repository or revision does not exist."""


class AmbiguousReference(InputError):
    """A reference matches more than one checkpoint."""


class TwoPersonRule(InputError):
    """The same principal may not both request and approve (exit 2, HTTP 403)."""


class UpstreamError(RegistryError):
    """The source (hub, folder) failed: HTTP errors, dropped connections, missing files."""


class AuthenticationRequired(UpstreamError):
    """The source wants credentials we do not have, or refused the ones we sent."""


class Denied(RegistryError):
    """The policy says no (or nothing is bound: fail closed). `reasons` holds the failed checks."""


class IntegrityFailure(RegistryError):
    """Bytes do not match their expected digest or size. Never a warning."""


class StorageError(RegistryError):
    """The database or blob store failed underneath us."""


# -- the one error map ---------------------------------------------------------------------------

EXIT_NO = 1  # the answer is no: denied, tampered, bad signature
EXIT_ERROR = 2  # usage, input or environment error


@dataclass(frozen=True, slots=True)
class ErrorClass:
    """How one branch of the error tree is reported: exit code and HTTP status."""

    exit_code: int
    http_status: int


#: Most specific first: the first class an error is an instance of decides.
ERROR_MAP: tuple[tuple[type[Exception], ErrorClass], ...] = (
    (Forbidden, ErrorClass(EXIT_ERROR, 403)),
    (NotFound, ErrorClass(EXIT_ERROR, 404)),
    (AmbiguousReference, ErrorClass(EXIT_ERROR, 409)),
    (Denied, ErrorClass(EXIT_NO, 403)),
    (TwoPersonRule, ErrorClass(EXIT_ERROR, 403)),
    (IntegrityFailure, ErrorClass(EXIT_NO, 422)),
    (VerificationError, ErrorClass(EXIT_NO, 422)),
    (InvalidInputError, ErrorClass(EXIT_ERROR, 400)),
    (StorageError, ErrorClass(EXIT_ERROR, 503)),
    (UpstreamError, ErrorClass(EXIT_ERROR, 502)),
    (AttestationError, ErrorClass(EXIT_ERROR, 500)),  # signing failed on our side
)
#: Any other RegistryError (InputError and the rest): the caller's fault.
_DEFAULT = ErrorClass(EXIT_ERROR, 400)


def error_class(error: RegistryError | AttestationError) -> ErrorClass:
    return next((c for cls, c in ERROR_MAP if isinstance(error, cls)), _DEFAULT)


def exit_code_for(error: RegistryError | AttestationError) -> int:
    return error_class(error).exit_code


def http_status_for(error: RegistryError | AttestationError) -> int:
    return error_class(error).http_status


def kind_of(error: BaseException) -> str:
    """A stable machine-readable name: the CLI's `--json` `kind`, the API problem's `reason`,
    a failed job's `kind`. It is the class name in snake case (`IntegrityFailure` ->
    `integrity_failure`), which is why those class names are wire names (ADR 0009)."""
    name = type(error).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
