"""Mirror sources: the only place that talks to model hubs (huggingface_hub, modelscope_hub)."""

from registry.mirror.base import RemoteFile, Snapshot, Source, SourceSpec, parse_source

__all__ = ["RemoteFile", "Snapshot", "Source", "SourceSpec", "parse_source"]
