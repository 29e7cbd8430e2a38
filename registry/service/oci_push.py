"""Publish a signed checkpoint to an OCI registry as a ModelPack artifact (`modelctl push`).

Order matters, so that a reader never sees a manifest whose blobs are missing: every layer
(streamed from the blob store, skipped when the registry already holds it), then the config,
then the manifest under the tag, then one referrer per stored statement (the model signature
first, then the scan attestations), each an OCI 1.1 artifact whose subject is the model
manifest. A registry without the referrers API gets the tag-schema index as well. A push that
fails half way leaves only content-addressed blobs behind, and running it again completes it:
what is there is not sent again.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from attestations.bundle import BUNDLE_V03_MEDIA_TYPE
from attestations.digests import Digest
from registry.blobs.base import BlobReader
from registry.client.materialize import SignedCheckpoint
from registry.mirror import modelpack
from registry.mirror.oci import PREDICATE_ANNOTATION
from registry.mirror.oci_client import MANIFEST_TYPE, OciClient, sha256_digest
from registry.mirror.oci_ref import OciRef
from registry.progress import Progress
from registry.views import OciReferrerView, PushResult


@dataclass(frozen=True, slots=True)
class Statement:
    predicate_type: str
    bundle: bytes


def push_checkpoint(
    signed: SignedCheckpoint,
    statements: Sequence[Statement],
    *,
    created_at: str,
    target: OciRef,
    client: OciClient,
    blobs: BlobReader,
    environment: str | None,
    progress: Progress,
    on_manifest: Callable[[str], Statement | None] | None = None,
) -> PushResult:
    """`on_manifest(oci_digest)`, once the manifest is in the registry, records it and may
    give one more statement (the identity statement, which names the digest) to attach second,
    after the model signature."""
    started = time.monotonic()
    artifact = modelpack.build_artifact(
        name=signed.name,
        checkpoint_digest=signed.digest,
        created_at=created_at,
        files=signed.files,
        sizes=signed.sizes,
    )
    progress.begin(
        files=len(artifact.layers),
        total_bytes=sum(int(layer["size"]) for layer in artifact.layers),
        description=f"{signed.name} -> {target}",
    )
    sent = sent_bytes = 0
    try:
        for layer in artifact.layers:
            digest, size = str(layer["digest"]), int(layer["size"])
            stored = Digest.parse(digest)
            uploaded = client.upload_blob(digest, size, partial(blobs.open, stored))
            if uploaded:
                sent += 1
                sent_bytes += size
            progress.advance(size)
            progress.file_done(layer["annotations"][modelpack.FILEPATH], reused=not uploaded)
    finally:
        progress.end()
    _put_small_blob(client, artifact.config)
    oci_digest, _ = client.put_manifest(target.tag or "latest", artifact.manifest, MANIFEST_TYPE)
    extra = on_manifest(oci_digest) if on_manifest is not None else None
    if extra is not None:
        statements = [*statements[:1], extra, *statements[1:]]
    referrers = [
        OciReferrerView(
            predicate_type=statement.predicate_type,
            digest=_attach(client, oci_digest, len(artifact.manifest), statement, created_at),
        )
        for statement in statements
    ]
    return PushResult(
        name=signed.name,
        digest=signed.digest,
        target=str(target),
        oci_digest=oci_digest,
        environment=environment,
        layers=len(artifact.layers),
        layers_sent=sent,
        bytes_sent=sent_bytes,
        referrers=tuple(referrers),
        seconds=time.monotonic() - started,
    )


def _put_small_blob(client: OciClient, data: bytes) -> dict[str, object]:
    digest = sha256_digest(data)
    client.upload_blob(digest, len(data), lambda: io.BytesIO(data))
    return {"digest": digest, "size": len(data)}


def _attach(
    client: OciClient, subject: str, subject_size: int, statement: Statement, created_at: str
) -> str:
    bundle = _put_small_blob(client, statement.bundle)
    _put_small_blob(client, modelpack.EMPTY_BLOB)
    annotations = {
        PREDICATE_ANNOTATION: statement.predicate_type,
        "org.opencontainers.image.created": created_at,
    }
    body = modelpack.referrer_manifest(
        subject=subject,
        subject_size=subject_size,
        artifact_type=BUNDLE_V03_MEDIA_TYPE,
        layer={"mediaType": BUNDLE_V03_MEDIA_TYPE, **bundle},
        annotations=annotations,
    )
    digest, subject_taken = client.put_manifest(sha256_digest(body), body, MANIFEST_TYPE)
    if not subject_taken:  # no referrers API: keep the tag-schema index up to date
        client.add_to_fallback_index(
            subject,
            {
                "mediaType": MANIFEST_TYPE,
                "digest": digest,
                "size": len(body),
                "artifactType": BUNDLE_V03_MEDIA_TYPE,
                "annotations": annotations,
            },
        )
    return digest
