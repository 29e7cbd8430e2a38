"""What a recorded source URI (`hf://org/name`, `ms://org/name`, `file:///…`) says on the web."""

from __future__ import annotations

_HUB_WEB = {"hf": "https://huggingface.co/", "ms": "https://modelscope.cn/models/"}


def hub_parts(uri: str | None) -> tuple[str, str, str] | None:
    """(hub, org, name) of a hub source; None for a folder or anything else."""
    if uri is None or "://" not in uri:
        return None
    scheme, rest = uri.split("://", 1)
    parts = rest.split("/")
    if scheme not in _HUB_WEB or len(parts) != 2 or not all(parts):
        return None
    return scheme, parts[0], parts[1]


def web_url(uri: str | None) -> str | None:
    """The hub page of a hub source (what a reader can open); None for a local folder."""
    parts = hub_parts(uri)
    if parts is None:
        return None
    kind, org, name = parts
    return f"{_HUB_WEB[kind]}{org}/{name}"
