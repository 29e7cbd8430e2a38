"""Policy errors: part of the trust core's one exception tree (`attestations.errors`)."""

from __future__ import annotations

from attestations.errors import InvalidInputError, MalformedDocumentError


class PolicyError(MalformedDocumentError):
    """A policy document that does not load: names the file, the line and the field path.

    `line` and `column` are 1-based; `path` is the field path inside the document
    (`spec.scans[0].maxAge`), empty for document-level problems.
    """

    def __init__(
        self, message: str, *, filename: str, line: int, column: int = 1, path: str = ""
    ) -> None:
        where = f"{filename}:{line}:{column}"
        text = f"{where}: {path}: {message}" if path else f"{where}: {message}"
        super().__init__(text, details=message)
        self.filename = filename
        self.line = line
        self.column = column
        self.path = path
        self.reason = message


class WorkloadShapeError(InvalidInputError):
    """A Pod (or pod template) whose fields have the wrong types: it cannot be checked."""
