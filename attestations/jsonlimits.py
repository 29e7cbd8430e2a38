"""JSON from outside the registry, parsed with a bound on how deep it nests.

`json.loads` recurses once per nesting level and raises `RecursionError` (an internal error,
not a verdict) on a few kilobytes of `[[[[...`; code that walks the result recursively would do
the same later. Every document this package reads (a Sigstore bundle, an in-toto Statement)
nests a handful of levels, so anything deeper than `MAX_JSON_DEPTH` is refused as malformed.
"""

from __future__ import annotations

import json

from attestations.errors import MalformedDocumentError

#: Bundles and Statements nest about ten levels (predicates a few more); 64 leaves room.
MAX_JSON_DEPTH = 64


def loads_bounded(data: bytes | str, *, what: str, max_depth: int = MAX_JSON_DEPTH) -> object:
    """Parse `data`; `MalformedDocumentError` when it is not JSON or nests past `max_depth`."""
    try:
        obj = json.loads(data)
    except RecursionError:
        raise MalformedDocumentError(f"{what} nests deeper than {max_depth} levels") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedDocumentError(f"{what} is not JSON: {exc}") from exc
    if depth_exceeds(obj, max_depth):
        raise MalformedDocumentError(f"{what} nests deeper than {max_depth} levels")
    return obj


def depth_exceeds(obj: object, max_depth: int) -> bool:
    """Whether arrays and objects nest deeper than `max_depth` (without recursing)."""
    pending: list[tuple[object, int]] = [(obj, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children: list[object] = list(value.values())
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > max_depth:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False
