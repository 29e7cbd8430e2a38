"""Pick the source implementation for a parsed SOURCE."""

from __future__ import annotations

from registry.mirror.base import Source, SourceSpec
from registry.settings import Settings


def open_source(spec: SourceSpec, settings: Settings) -> Source:
    if spec.kind == "hf":
        from registry.mirror.hf import HuggingFaceSource

        return HuggingFaceSource(
            spec, endpoint=settings.hf_endpoint, token=settings.hf_token, limits=settings.limits
        )
    if spec.kind == "ms":
        from registry.mirror.modelscope import ModelScopeSource

        return ModelScopeSource(
            spec,
            endpoint=settings.modelscope_endpoint,
            token=settings.modelscope_token,
            limits=settings.limits,
        )
    from registry.mirror.local import LocalFolderSource

    return LocalFolderSource(spec, limits=settings.limits)
