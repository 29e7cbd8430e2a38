"""The model card's `base_model:` (README.md YAML front matter): which model a fine-tune
declares as its base. Read with the BOM's card reader (`attestations.mlbom.modelcard`: safe
YAML, aliases refused, bounded); the registry records it at mirror, the differential backdoor
scan reads it."""

from __future__ import annotations

from attestations.mlbom.modelcard import MAX_CARD_BYTES, read_card

__all__ = ["MAX_CARD_BYTES", "base_model_of"]


def base_model_of(head: bytes) -> str | None:
    """The first `base_model:` a card declares (a string or a list of them), from its first
    bytes; None when it declares none, or the front matter is missing or malformed."""
    declared = read_card(head).base_models
    return declared[0] if declared else None
