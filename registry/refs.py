"""Model names and checkpoint references (DESIGN §4).

REF is `NS/NAME`, `NS/NAME@sha256:<manifest digest>` or `NS/NAME@<source commit or tag>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from attestations.digests import SHA256_PREFIX, Digest
from attestations.errors import InvalidInputError
from registry.errors import InputError

_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,254}")


@dataclass(frozen=True, slots=True)
class ModelName:
    namespace: str
    name: str

    @classmethod
    def parse(cls, text: str) -> ModelName:
        ns, sep, name = text.partition("/")
        if not sep or not _PART.fullmatch(ns) or not _PART.fullmatch(name) or ".." in text:
            raise InputError(
                f"bad model name {text!r:.100}: expected NAMESPACE/NAME "
                "(letters, digits, '.', '_', '-')"
            )
        return cls(ns, name)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Ref:
    model: ModelName
    digest: Digest | None = None
    revision: str | None = None  # a source commit (or its prefix) or a branch/tag name

    @classmethod
    def parse(cls, text: str) -> Ref:
        name, sep, selector = text.partition("@")
        model = ModelName.parse(name)
        if not sep:
            return cls(model)
        if selector.startswith(SHA256_PREFIX):
            try:
                return cls(model, digest=Digest.parse(selector))
            except InvalidInputError as exc:
                raise InputError(f"bad digest in reference {text!r:.120}: {exc.message}") from exc
        if not _REVISION.fullmatch(selector) or ".." in selector:
            raise InputError(f"bad revision in reference {text!r:.120}")
        return cls(model, revision=selector)

    def __str__(self) -> str:
        if self.digest is not None:
            return f"{self.model}@{self.digest}"
        if self.revision is not None:
            return f"{self.model}@{self.revision}"
        return str(self.model)
