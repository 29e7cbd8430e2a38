"""The declared half of a BOM: the YAML front matter of a Hugging Face model card (README.md).

Only the fields a BOM asks for are read (`license`, `base_model`, `datasets`, `pipeline_tag`),
from at most `MAX_CARD_BYTES`, with YAML aliases refused (an alias bomb is hostile input, not a
card). A card that is missing, unreadable or malformed declares nothing: every field is then
absent, which the BOM says, rather than an error that would hide the verified part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml  # type: ignore[import-untyped]  # no stubs in the dev set

MAX_CARD_BYTES = 64 * 1024
MAX_VALUES = 64  # a card listing more datasets than this is cut: the BOM says so by the count
MAX_VALUE_CHARS = 300
_FRONT_MATTER = re.compile(rb"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class CardFields:
    license: tuple[str, ...] = ()
    base_models: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    task: tuple[str, ...] = ()


def read_card(head: bytes) -> CardFields:
    """The declared fields of a model card, from its first bytes (`MAX_CARD_BYTES` at most)."""
    match = _FRONT_MATTER.match(head[:MAX_CARD_BYTES])
    if match is None:
        return CardFields()
    try:
        text = match.group(1).decode("utf-8")
        if any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=yaml.SafeLoader)):
            return CardFields()
        data = yaml.safe_load(text)
    except (UnicodeDecodeError, yaml.YAMLError):
        return CardFields()
    if not isinstance(data, dict):
        return CardFields()
    return CardFields(
        license=_strings(data.get("license")),
        base_models=_strings(data.get("base_model")),
        datasets=_strings(data.get("datasets")),
        task=_strings(data.get("pipeline_tag")),
    )


def _strings(value: object) -> tuple[str, ...]:
    """A scalar or a list of scalars as non-empty one-line strings; anything else: nothing."""
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items[:MAX_VALUES]:
        if isinstance(item, str | int | float) and not isinstance(item, bool):
            text = " ".join(str(item).split())[:MAX_VALUE_CHARS]
            if text and text not in out:
                out.append(text)
    return tuple(out)
