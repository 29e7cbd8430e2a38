"""A checkpoint as a CNCF ModelPack artifact, and back: the OCI documents, built without I/O.

The artifact (docs/formats/oci-modelpack.md):

* an OCI image manifest (1.1) with `artifactType` `application/vnd.cncf.model.manifest.v1+json`;
* its config, `application/vnd.cncf.model.config.v1+json`: the model's name, its creation time
  and, as `descriptor.version`, the checkpoint's manifest digest (the OMS subject), with the
  layer digests as `modelfs.diffIds`;
* one uncompressed layer per file (`…weight.v1.raw`, `…weight.config.v1.raw`, `…doc.v1.raw`,
  `…code.v1.raw`), so each layer digest *is* the file's sha256 from the signed manifest, and
  `org.cncf.model.filepath` names the file.

Everything is serialised with sorted keys and no spaces, and the time is the checkpoint's own,
so pushing the same checkpoint twice gives the same manifest digest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from registry.errors import InputError, UpstreamError
from registry.mirror.base import RemoteFile, checked_path
from registry.mirror.oci_client import MANIFEST_TYPE, canonical_json, sha256_digest

ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
CONFIG_TYPE = "application/vnd.cncf.model.config.v1+json"
WEIGHT_RAW = "application/vnd.cncf.model.weight.v1.raw"
WEIGHT_CONFIG_RAW = "application/vnd.cncf.model.weight.config.v1.raw"
DOC_RAW = "application/vnd.cncf.model.doc.v1.raw"
CODE_RAW = "application/vnd.cncf.model.code.v1.raw"
RAW_LAYER_TYPES = frozenset({WEIGHT_RAW, WEIGHT_CONFIG_RAW, DOC_RAW, CODE_RAW})
#: One file, compressed (`mirror` reads them; `push` writes uncompressed layers only): the
#: layer digest is of the compressed bytes, the file's sha256 of what they decompress to.
COMPRESSIONS = ("gzip", "zstd")
COMPRESSED_LAYER_TYPES = {f"{t}+{c}": c for t in RAW_LAYER_TYPES for c in COMPRESSIONS}
FILEPATH = "org.cncf.model.filepath"
CHECKPOINT_DIGEST = "dev.modelctl.checkpoint.digest"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"

_WEIGHTS = {".safetensors", ".gguf", ".bin", ".pt", ".pth", ".onnx", ".h5", ".keras", ".ckpt"}
_FORMATS = {".safetensors": "safetensors", ".gguf": "gguf", ".onnx": "onnx", ".pt": "pytorch"}
_CONFIG_SUFFIXES = {".json", ".yaml", ".yml", ".txt", ".model", ".tiktoken", ".jinja"}
_DOCS = {".md", ".rst", ".pdf"}


def layer_media_type(path: str) -> str:
    """The ModelPack layer type of a file, by its name (an uncompressed, untarred layer)."""
    pure = PurePosixPath(path)
    suffix = pure.suffix.lower()
    if suffix in _DOCS or pure.name.upper().startswith(("README", "LICENSE", "NOTICE")):
        return DOC_RAW
    if suffix == ".py":
        return CODE_RAW
    if suffix in _CONFIG_SUFFIXES:
        return WEIGHT_CONFIG_RAW
    return WEIGHT_RAW


@dataclass(frozen=True, slots=True)
class Artifact:
    """The documents of one ModelPack artifact, ready to PUT."""

    config: bytes
    manifest: bytes
    layers: tuple[dict[str, Any], ...]  # descriptors, in file order

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)


def build_artifact(
    *,
    name: str,
    checkpoint_digest: str,
    created_at: str,
    files: Sequence[tuple[str, str]],
    sizes: Mapping[str, int],
) -> Artifact:
    """`files` are (path, sha256 hex) as signed; `checkpoint_digest` is "sha256:<hex>"."""
    layers = tuple(
        {
            "mediaType": layer_media_type(path),
            "digest": f"sha256:{hex_digest}",
            "size": sizes[path],
            "annotations": {FILEPATH: path},
        }
        for path, hex_digest in files
    )
    formats = {_FORMATS[s] for p, _ in files if (s := PurePosixPath(p).suffix.lower()) in _FORMATS}
    config_doc: dict[str, Any] = {
        "descriptor": {"name": name, "version": checkpoint_digest, "createdAt": created_at},
        "config": {"format": sorted(formats)[0]} if len(formats) == 1 else {},
        "modelfs": {"type": "layers", "diffIds": [layer["digest"] for layer in layers]},
    }
    config = canonical_json(config_doc)
    manifest_doc = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": sha256_digest(config), "size": len(config)},
        "layers": list(layers),
        "annotations": {
            CHECKPOINT_DIGEST: checkpoint_digest,
            "org.opencontainers.image.created": created_at,
            "org.opencontainers.image.title": name,
        },
    }
    return Artifact(config=config, manifest=canonical_json(manifest_doc), layers=layers)


def referrer_manifest(
    *,
    subject: str,
    subject_size: int,
    artifact_type: str,
    layer: dict[str, Any],
    annotations: Mapping[str, str],
) -> bytes:
    """An OCI 1.1 artifact manifest whose subject is the model manifest (empty config)."""
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "artifactType": artifact_type,
            "config": {
                "mediaType": EMPTY_TYPE,
                "digest": sha256_digest(EMPTY_BLOB),
                "size": len(EMPTY_BLOB),
            },
            "layers": [layer],
            "subject": {"mediaType": MANIFEST_TYPE, "digest": subject, "size": subject_size},
            "annotations": dict(annotations),
        }
    )


@dataclass(frozen=True, slots=True)
class Layer:
    """One file layer of a ModelPack manifest, as listed (nothing fetched yet)."""

    path: str
    digest: str  # sha256:<hex> of the layer's bytes (compressed when `compression` is set)
    size: int  # of the layer's bytes
    compression: str | None  # None (raw: the digest is the file's sha256), "gzip" or "zstd"

    @property
    def file(self) -> RemoteFile:
        """The file as a source lists it: its sha256 and size are known only when raw."""
        if self.compression is None:
            return RemoteFile(path=self.path, size=self.size, sha256=self.digest[7:])
        return RemoteFile(path=self.path, size=None)


def files_of_manifest(body: bytes, where: str) -> tuple[RemoteFile, ...]:
    """The files a ModelPack manifest lists (raw layers only), paths checked like any source's."""
    return tuple(layer.file for layer in layers_of_manifest(body, where))


def layers_of_manifest(body: bytes, where: str, *, compressed: bool = False) -> tuple[Layer, ...]:
    """The file layers of a ModelPack manifest; `compressed` also accepts `+gzip`/`+zstd`."""
    try:
        doc = json.loads(body)
        layers = doc["layers"]
    except (ValueError, KeyError, TypeError) as exc:
        raise UpstreamError(f"{where}: not an OCI image manifest") from exc
    if (
        doc.get("artifactType") != ARTIFACT_TYPE
        and doc.get("config", {}).get("mediaType") != CONFIG_TYPE
    ):
        raise InputError(f"{where}: not a ModelPack artifact (artifactType {ARTIFACT_TYPE})")
    files: list[Layer] = []
    seen: set[str] = set()
    for layer in layers if isinstance(layers, list) else []:
        media_type = layer.get("mediaType") if isinstance(layer, dict) else None
        compression = COMPRESSED_LAYER_TYPES.get(str(media_type)) if compressed else None
        if media_type not in RAW_LAYER_TYPES and compression is None:
            raise InputError(
                f"{where}: layer type {str(media_type)[:80]!r} is not supported "
                + (
                    "(one file per layer, raw or +gzip/+zstd; no tar layers)"
                    if compressed
                    else "(only uncompressed, untarred ModelPack layers)"
                )
            )
        path = checked_path(str((layer.get("annotations") or {}).get(FILEPATH, "")), where=where)
        digest, size = layer.get("digest"), layer.get("size")
        if not (isinstance(digest, str) and digest.startswith("sha256:") and len(digest) == 71):
            raise InputError(f"{where}: {path}: layer digest is not sha256")
        if not isinstance(size, int) or size < 0:
            raise InputError(f"{where}: {path}: bad layer size")
        if path in seen:
            raise InputError(f"{where}: {path} is listed twice")
        seen.add(path)
        files.append(Layer(path=path, digest=digest, size=size, compression=compression))
    if not files:
        raise InputError(f"{where}: the artifact has no files")
    return tuple(files)
