"""Pick the source implementation for a parsed SOURCE."""

from __future__ import annotations

from registry.mirror.base import Source, SourceSpec
from registry.mirror.local import LocalFolderSource
from registry.settings import Settings


def open_source(spec: SourceSpec, settings: Settings) -> Source:
    if spec.kind == "hf":
        # The hub clients load only for their own scheme: huggingface_hub costs 0.4 s, the
        # ModelScope client 0.2 s, on every command that opens the registry otherwise.
        from registry.mirror.hf import HuggingFaceSource  # noqa: PLC0415

        return HuggingFaceSource(
            spec, endpoint=settings.hf_endpoint, token=settings.hf_token, limits=settings.limits
        )
    if spec.kind == "ms":
        from registry.mirror.modelscope import ModelScopeSource  # noqa: PLC0415 - as above

        return ModelScopeSource(
            spec,
            endpoint=settings.modelscope_endpoint,
            token=settings.modelscope_token,
            limits=settings.limits,
        )
    if spec.kind == "oci":
        from registry.mirror.oci import OciSource  # noqa: PLC0415 - httpx, as above

        return OciSource(spec, limits=settings.limits)
    return LocalFolderSource(spec, limits=settings.limits)
