"""A small client of the OCI distribution API: what `push` and the `oci://` source need.

Blobs: HEAD (a layer the registry holds is not sent again), monolithic streamed PUT for small
blobs, chunked PATCH uploads for large ones, resumed from the registry's own `Range` after a
dropped connection. Manifests: PUT and GET by tag or digest, a GET always re-hashed (a tag is
pinned to the digest of the bytes we received, never to a header). Referrers: the OCI 1.1
referrers API, with the tag-schema fallback (`sha256-<hex>` holding an image index) for
registries without it. Auth: basic, and the bearer-token flow on a 401 challenge (see
`oci_auth`). Why our own client and not `oras`: docs/adr/0021-oci-client.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import httpx

from registry.errors import AuthenticationRequired, IntegrityFailure, NotFound, UpstreamError
from registry.mirror.oci_auth import Credentials, parse_challenge
from registry.mirror.oci_ref import OciRef

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_ACCEPT = f"{MANIFEST_TYPE}, {INDEX_TYPE}"
#: Manifests are small JSON documents; anything larger is refused rather than buffered.
MAX_MANIFEST = 4 << 20
#: Blobs above this go up in PATCH chunks of `CHUNK_SIZE` (resumable); below, one streamed PUT.
CHUNKED_THRESHOLD = 256 << 20
CHUNK_SIZE = 64 << 20
READ_SIZE = 1 << 20
ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    body: bytes
    media_type: str
    digest: str  # "sha256:<hex>" of `body`, computed here


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class OciClient:
    """One repository of one registry. Not thread-safe; one per command."""

    def __init__(
        self,
        ref: OciRef,
        *,
        credentials: Credentials | None = None,
        push: bool = False,
        timeout: float = 60.0,
        chunked_threshold: int = CHUNKED_THRESHOLD,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.ref = ref
        self._credentials = credentials
        self._scope = f"repository:{ref.repository}:{'pull,push' if push else 'pull'}"
        self._http = httpx.Client(base_url=ref.base_url, timeout=timeout, follow_redirects=True)
        self._authorization: str | None = None
        self.chunked_threshold = chunked_threshold
        self.chunk_size = chunk_size

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OciClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------------
    def _path(self, tail: str) -> str:
        return f"/v2/{self.ref.repository}/{tail}"

    def _send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        if self._authorization:
            request.headers["Authorization"] = self._authorization
        try:
            return self._http.send(request, stream=stream)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{self.ref.uri}: {type(exc).__name__}: {exc}") from exc

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | Iterator[bytes] | None = None,
        stream: bool = False,
        retry: bool = True,
    ) -> httpx.Response:
        """Send once; on a 401 authenticate and send again (only bodies we can replay)."""
        attempts = ATTEMPTS if retry and method in ("GET", "HEAD") else 1
        for attempt in range(attempts):
            try:
                response = self._send(
                    self._http.build_request(method, url, headers=headers, content=content),
                    stream=stream,
                )
            except UpstreamError:
                if attempt + 1 == attempts:
                    raise
                continue
            if response.status_code == 401 and not isinstance(content, Iterator):
                response.close()
                self._authenticate(response)
                response = self._send(
                    self._http.build_request(method, url, headers=headers, content=content),
                    stream=stream,
                )
            if response.status_code >= 500 and attempt + 1 < attempts:
                response.close()
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _authenticate(self, response: httpx.Response) -> None:
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        creds = self._credentials
        if challenge is not None and challenge.scheme == "basic":
            if creds is None:
                raise AuthenticationRequired(f"{self.ref.uri}: the registry wants credentials")
            self._authorization = _basic(creds)
            return
        if challenge is None or challenge.scheme != "bearer" or "realm" not in challenge.params:
            raise AuthenticationRequired(f"{self.ref.uri}: 401 without a usable challenge")
        realm = challenge.params["realm"]
        params = {"scope": challenge.params.get("scope", self._scope)}
        if "service" in challenge.params:
            params["service"] = challenge.params["service"]
        headers = {"Authorization": _basic(creds)} if creds else {}
        if not realm.startswith("https://") and httpx.URL(realm).host not in (
            "127.0.0.1",
            "localhost",
            "::1",
        ):
            raise AuthenticationRequired(f"{self.ref.uri}: refused a token realm over HTTP")
        try:
            token_response = httpx.get(realm, params=params, headers=headers, timeout=30)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{self.ref.uri}: token service: {exc}") from exc
        if token_response.status_code in (401, 403):
            raise AuthenticationRequired(
                f"{self.ref.uri}: the token service refused the credentials "
                f"(HTTP {token_response.status_code})"
            )
        if token_response.status_code != 200:
            raise UpstreamError(f"{self.ref.uri}: token service: HTTP {token_response.status_code}")
        try:
            body = token_response.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise UpstreamError(f"{self.ref.uri}: the token service sent no token")
        self._authorization = f"Bearer {token}"

    def _check(self, response: httpx.Response, what: str, *ok: int) -> httpx.Response:
        code = response.status_code
        if code in ok:
            return response
        response.read()
        detail = _error_detail(response)
        if code == 401:
            raise AuthenticationRequired(f"{self.ref.uri}: {what}: unauthorised{detail}")
        if code == 403:
            raise AuthenticationRequired(f"{self.ref.uri}: {what}: forbidden{detail}")
        if code == 404:
            raise NotFound(f"{self.ref.uri}: {what}: not found{detail}")
        if code == 400 and _error_code(response) == "DIGEST_INVALID":
            raise IntegrityFailure(f"{self.ref.uri}: {what}: digest mismatch{detail}")
        raise UpstreamError(f"{self.ref.uri}: {what}: HTTP {code}{detail}")

    # -- blobs -------------------------------------------------------------------------------
    def blob_exists(self, digest: str) -> bool:
        response = self.request("HEAD", self._path(f"blobs/{digest}"))
        if response.status_code == 404:
            return False
        self._check(response, f"blob {digest}", 200)
        return True

    def upload_blob(self, digest: str, size: int, opener: Callable[[], BinaryIO]) -> bool:
        """Send a blob unless the registry has it; True when bytes were sent."""
        if self.blob_exists(digest):
            return False
        location = self._start_upload(digest)
        if size <= self.chunked_threshold:
            with opener() as f:
                response = self.request(
                    "PUT",
                    _with_digest(location, digest),
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(size),
                    },
                    content=_read_chunks(f, size),
                )
            self._check(response, f"upload of {digest}", 201)
            return True
        self._upload_chunked(location, digest, size, opener)
        return True

    def _start_upload(self, digest: str) -> str:
        response = self.request("POST", self._path("blobs/uploads/"), content=b"")
        self._check(response, f"upload of {digest}", 202)
        return _location(response)

    def _upload_chunked(
        self, location: str, digest: str, size: int, opener: Callable[[], BinaryIO]
    ) -> None:
        offset = 0
        failures = 0
        while offset < size:
            end = min(offset + self.chunk_size, size)
            with opener() as f:
                _skip(f, offset)
                try:
                    response = self.request(
                        "PATCH",
                        location,
                        headers={
                            "Content-Type": "application/octet-stream",
                            "Content-Range": f"{offset}-{end - 1}",
                            "Content-Length": str(end - offset),
                        },
                        content=_read_chunks(f, end - offset),
                    )
                    self._check(response, f"upload of {digest}", 202)
                except UpstreamError:
                    failures += 1
                    if failures >= ATTEMPTS:
                        raise
                    # Resume where the registry says it holds bytes up to, not where we were.
                    location, offset = self._upload_status(location, digest)
                    continue
            location = _location(response)
            offset = end
        response = self.request("PUT", _with_digest(location, digest), content=b"")
        self._check(response, f"upload of {digest}", 201)

    def _upload_status(self, location: str, digest: str) -> tuple[str, int]:
        response = self._check(self.request("GET", location), f"upload of {digest}", 204)
        held = response.headers.get("Range", "")
        _, _, last = held.partition("-")
        offset = int(last) + 1 if last.isdigit() else 0
        return _location(response) if "Location" in response.headers else location, offset

    @contextmanager
    def open_blob(self, digest: str, offset: int = 0) -> Iterator[Iterator[bytes]]:
        """Stream a blob from `offset`; the caller hashes what it reads."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        response = self.request("GET", self._path(f"blobs/{digest}"), headers=headers, stream=True)
        try:
            self._check(response, f"blob {digest}", 206 if offset else 200, 200)
            if offset and response.status_code == 200:
                raise UpstreamError(f"{self.ref.uri}: blob {digest}: range not honoured")
            yield _iter_response(response, self.ref.uri, digest)
        finally:
            response.close()

    # -- manifests ---------------------------------------------------------------------------
    def put_manifest(self, reference: str, body: bytes, media_type: str) -> tuple[str, bool]:
        """PUT a manifest; its digest and whether the registry took the subject (OCI 1.1)."""
        response = self.request(
            "PUT",
            self._path(f"manifests/{reference}"),
            headers={"Content-Type": media_type},
            content=body,
        )
        self._check(response, f"manifest {reference}", 201)
        digest = sha256_digest(body)
        sent = response.headers.get("Docker-Content-Digest")
        if sent and sent != digest:
            raise IntegrityFailure(f"{self.ref.uri}: registry stored {sent}, we sent {digest}")
        return digest, "OCI-Subject" in response.headers

    def get_manifest(self, reference: str) -> FetchedManifest:
        response = self.request(
            "GET",
            self._path(f"manifests/{reference}"),
            headers={"Accept": MANIFEST_ACCEPT},
            stream=True,
        )
        try:
            self._check(response, f"manifest {reference}", 200)
            body = self._read_capped(response, f"manifest {reference}")
        finally:
            response.close()
        digest = sha256_digest(body)
        if reference.startswith("sha256:") and digest != reference:
            raise IntegrityFailure(
                f"{self.ref.uri}: manifest {reference} has bytes hashing to {digest}"
            )
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return FetchedManifest(body=body, media_type=media_type, digest=digest)

    def _read_capped(self, response: httpx.Response, what: str) -> bytes:
        """A JSON document's body, refused past `MAX_MANIFEST` before it is all buffered."""
        body = bytearray()
        try:
            for chunk in response.iter_bytes(READ_SIZE):
                body += chunk
                if len(body) > MAX_MANIFEST:
                    raise UpstreamError(f"{self.ref.uri}: {what} is larger than 4 MiB")
        except httpx.HTTPError as exc:
            raise UpstreamError(f"{self.ref.uri}: {what}: {type(exc).__name__}: {exc}") from exc
        return bytes(body)

    # -- referrers ---------------------------------------------------------------------------
    def referrers(self, digest: str) -> list[dict[str, Any]]:
        """The descriptors of manifests whose subject is `digest` (API, else tag schema)."""
        response = self.request(
            "GET", self._path(f"referrers/{digest}"), headers={"Accept": INDEX_TYPE}, stream=True
        )
        try:
            if response.status_code == 200 and response.headers.get("Content-Type", "").startswith(
                INDEX_TYPE
            ):
                return _manifests_of(self._read_capped(response, f"referrers of {digest}"))
        finally:
            response.close()
        try:
            index = self.get_manifest(fallback_tag(digest))
        except NotFound:
            return []
        return _manifests_of(index.body)

    def add_to_fallback_index(self, subject: str, descriptor: dict[str, Any]) -> None:
        """Record a referrer under the tag schema, for a registry without the referrers API."""
        tag = fallback_tag(subject)
        try:
            manifests = _manifests_of(self.get_manifest(tag).body)
        except NotFound:
            manifests = []
        manifests = [m for m in manifests if m.get("digest") != descriptor["digest"]]
        manifests.append(descriptor)
        index = {"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": manifests}
        self.put_manifest(tag, canonical_json(index), INDEX_TYPE)


def fallback_tag(digest: str) -> str:
    return digest.replace(":", "-", 1)


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _manifests_of(body: bytes) -> list[dict[str, Any]]:
    try:
        manifests = json.loads(body).get("manifests", [])
    except (ValueError, AttributeError) as exc:
        raise UpstreamError("referrers: the registry sent an index that is not JSON") from exc
    return [m for m in manifests if isinstance(m, dict)] if isinstance(manifests, list) else []


def _basic(creds: Credentials) -> str:
    import base64  # noqa: PLC0415 - only for basic auth

    return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()


def _location(response: httpx.Response) -> str:
    location = response.headers.get("Location")
    if not location:
        raise UpstreamError("the registry sent no upload Location")
    return str(response.url.join(location))


def _with_digest(location: str, digest: str) -> str:
    return str(httpx.URL(location).copy_merge_params({"digest": digest}))


def _skip(f: BinaryIO, count: int) -> None:
    # The store's readers do not seek (they hash from byte 0): read past what was sent.
    while count > 0:
        data = f.read(min(READ_SIZE, count))
        if not data:
            raise UpstreamError("the blob store ended before the resume offset")
        count -= len(data)


def _read_chunks(f: BinaryIO, count: int) -> Iterator[bytes]:
    while count > 0:
        data = f.read(min(READ_SIZE, count))
        if not data:
            raise UpstreamError("the blob store ended before the blob's size")
        count -= len(data)
        yield data


def _iter_response(response: httpx.Response, uri: str, digest: str) -> Iterator[bytes]:
    # Raw reads when nothing is content-encoded: iter_bytes re-chunks every read (a copy),
    # which halves the throughput on loopback (251 vs 475 MiB/s, measured for ADR 0021).
    encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("identity", "")
    try:
        yield from (response.iter_bytes(READ_SIZE) if encoded else response.iter_raw())
    except httpx.HTTPError as exc:
        raise UpstreamError(f"{uri}: blob {digest}: {type(exc).__name__}: {exc}") from exc


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["errors"][0]["code"])
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def _error_detail(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        message = errors[0].get("message") or errors[0].get("code")
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""
    return f" ({str(message)[:200]})" if message else ""
