"""The registry's error tree, split by who is at fault.

The CLI maps these to exit codes in one place (`cli.errors`): `Denied` and
`IntegrityFailure` are "the answer is no" (exit 1); everything else is a usage, input or
environment error (exit 2).
"""

from __future__ import annotations

from collections.abc import Sequence


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
