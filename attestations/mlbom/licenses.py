"""A model card's `license:` as an SPDX license expression, when it is one.

Hub license ids are lower case (`apache-2.0`) and some are not SPDX ids at all (`other`,
`llama3`, `openrail`). SPDX ids are case-insensitive, so `apache-2.0` *is* `Apache-2.0`: that is
written canonically. Anything else stays as the card wrote it, never mapped to a different
license.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def _licensing() -> Any:
    from license_expression import (  # type: ignore[import-untyped]  # noqa: PLC0415
        get_spdx_licensing,  # imported on use: it loads a license table
    )

    return get_spdx_licensing()


def spdx_expression(value: str) -> str | None:
    """The canonical SPDX expression `value` is, or None when it is not one."""
    from license_expression import ExpressionError  # noqa: PLC0415 - loaded with the table

    try:
        # strict: every key must be a known SPDX id or exception. (`validate` is not used: on
        # some malformed input, e.g. "MIT AND", it fails inside its own error handling.)
        parsed = _licensing().parse(value, validate=True, strict=True)
    except ExpressionError:  # ExpressionParseError included: not an SPDX expression
        return None
    return None if parsed is None else str(parsed.render())
