"""The model card's `base_model:` (README.md YAML front matter): which model a fine-tune
declares as its base. A pure parser (no YAML library, no I/O): the registry records it at
mirror, the differential backdoor scan reads it."""

from __future__ import annotations

BASE_MODEL_MAX = 300


def _base_model_value(value: str) -> str:
    value = value.split(" #", 1)[0].strip()
    if value.startswith("["):
        value = value[1:].split(",", 1)[0].split("]", 1)[0].strip()
    return value.strip("'\"").strip()


def parse_base_model(front: bytes) -> str | None:
    """`base_model:` of a card's front matter: `base_model: org/name`, a flow list or a block
    list (the first item when it lists several). None when absent or not a plain name."""
    try:
        lines = front.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return None
    for i, line in enumerate(lines):
        if not line.startswith("base_model:"):
            continue
        value = _base_model_value(line[len("base_model:") :])
        if not value and i + 1 < len(lines) and lines[i + 1].lstrip().startswith("- "):
            value = _base_model_value(lines[i + 1].lstrip()[2:])
        ok = value and len(value) <= BASE_MODEL_MAX and value.isprintable() and " " not in value
        return value if ok else None
    return None
