"""A content-addressed blob store in an S3-compatible bucket (boto3; docs/adr/0014).

`MODELCTL_BLOB_STORE=s3://BUCKET/PREFIX`; endpoint, credentials and region come from the standard
AWS variables and config files (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...), as boto3 reads them.

Layout under PREFIX: `blobs/sha256/<2 hex>/<64 hex>` for blobs, `tmp/upload-<uuid>` and
`tmp/resume-<sha256 of the resume key>` for bytes whose digest is not yet known or verified.

How a blob becomes visible (never a partial or unverified object under a digest's key):
- The bytes stream into a multipart upload, one part at a time (bounded memory: `PART_SIZE`
  times `IN_FLIGHT` parts), hashed as they arrive.
- When the expected sha256 is known and nothing is to be resumed, the multipart upload targets
  the blob's own key and is *completed only after* size and digests match, with `If-None-Match: *`
  so that two writers of the same blob do not race (the loser's bytes are dropped; dedup).
- Otherwise the bytes complete into a temporary key, are verified, and are copied server-side to
  the blob's key with `If-None-Match: *`; the temporary object is then deleted.
- Small blobs (one part) are one conditional `PutObject` at commit.
- An aborted upload aborts its multipart upload; a kept partial (`abort(keep_partial=True)`)
  becomes the readable object `tmp/resume-...`, re-hashed and copied server-side by the next
  upload with the same resume key. `modelctl gc` aborts multipart uploads that crashed
  processes left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:  # without the `s3` extra the module imports; `S3BlobStore` says what is missing

    class BotoCoreError(Exception):  # type: ignore[no-redef]  # never raised: no boto3, no store
        pass

    class ClientError(Exception):  # type: ignore[no-redef]
        response: dict[str, Any]


from attestations.digests import Digest
from attestations.errors import InvalidInputError
from registry.blobs.base import BlobEntry, LeftoverUpload, StoredBlob, blob_key
from registry.blobs.checks import Expected
from registry.errors import InputError, NotFound, StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: Bytes per uploaded part. S3 needs >= 5 MiB for every part but the last and allows 10,000
#: parts, so the part size doubles every `PARTS_PER_STEP` parts: 8 MiB parts up to 8 GB,
#: and room for blobs of several TB without knowing their size in advance.
PART_SIZE = 8 << 20
PARTS_PER_STEP = 1000
MIN_PART_SIZE = 5 << 20
#: Largest single CopyObject; larger blobs are copied in parts (UploadPartCopy).
MAX_COPY_SIZE = 5 << 30
#: Parts in flight per upload: keeps a loopback or LAN link busy while hashing (ADR 0015).
IN_FLIGHT = 4
#: Read size for streaming a blob out.
READ_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ends with "/"

    @classmethod
    def parse(cls, spec: str) -> S3Location:
        """`s3://BUCKET/PREFIX` → location; `InputError` for anything else."""
        if not spec.startswith("s3://"):
            raise InputError(f"blob store {spec!r} is not an s3:// URL")
        bucket, _, prefix = spec[len("s3://") :].partition("/")
        if not bucket or "/" in bucket or not bucket.replace("-", "").replace(".", "").isalnum():
            raise InputError(f"blob store {spec!r}: {bucket!r} is not a bucket name")
        prefix = prefix.strip("/")
        if any(part in {"", ".", ".."} for part in prefix.split("/")) and prefix:
            raise InputError(f"blob store {spec!r}: the prefix has empty, . or .. parts")
        return cls(bucket=bucket, prefix=f"{prefix}/" if prefix else "")

    def blob(self, digest: Digest) -> str:
        return f"{self.prefix}blobs/{blob_key(digest)}"

    @property
    def blobs(self) -> str:
        return f"{self.prefix}blobs/sha256/"

    @property
    def tmp(self) -> str:
        return f"{self.prefix}tmp/"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _is_missing(exc: ClientError) -> bool:
    return _code(exc) in {"404", "NoSuchKey", "NotFound"} or _status(exc) == 404


def _is_taken(exc: ClientError) -> bool:
    """A conditional create lost: the key exists (412) or another write to it was racing (409)."""
    return _code(exc) in {"PreconditionFailed", "ConditionalRequestConflict"} or _status(exc) in {
        409,
        412,
    }


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def part_size(part_number: int) -> int:
    """Size of part `part_number` (1-based): doubles every `PARTS_PER_STEP` parts."""
    return PART_SIZE << ((part_number - 1) // PARTS_PER_STEP)


class S3BlobStore:
    def __init__(self, spec: str, *, client: S3Client | None = None) -> None:
        self.location = S3Location.parse(spec)
        self.spec = spec
        try:
            # Only here: boto3 is the optional `s3` extra and costs 0.2 s to import.
            import boto3  # noqa: PLC0415
            from botocore.config import Config  # noqa: PLC0415
        except ImportError as exc:
            raise InputError(
                f"blob store {spec!r} needs boto3: pip install 'modelctl[s3]'"
            ) from exc
        try:
            self.client: S3Client = client or boto3.client(
                "s3",
                config=Config(
                    max_pool_connections=32,
                    retries={"mode": "standard", "max_attempts": 3},
                    connect_timeout=5,
                    read_timeout=60,
                ),
            )
        except (BotoCoreError, ValueError) as exc:
            raise StorageError(f"blob store {spec}: {_one_line(exc)}") from exc
        self.parts = ThreadPoolExecutor(max_workers=16, thread_name_prefix="s3-part")
        self.check()

    # -- start-up --------------------------------------------------------------------------

    def check(self) -> None:
        """Fail at start-up, in one line, when the bucket cannot be reached or read."""
        try:
            self.client.head_bucket(Bucket=self.location.bucket)
        except ClientError as exc:
            what = "does not exist" if _is_missing(exc) else _one_line(exc)
            raise StorageError(f"blob store {self.spec}: bucket {what}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"blob store {self.spec}: {_one_line(exc)}") from exc

    # -- reader ------------------------------------------------------------------------------

    def exists(self, digest: Digest) -> bool:
        try:
            self.client.head_object(Bucket=self.location.bucket, Key=self.location.blob(digest))
        except ClientError as exc:
            if _is_missing(exc):
                return False
            raise self._error("cannot read", exc) from exc
        except BotoCoreError as exc:
            raise self._error("cannot read", exc) from exc
        return True

    def size(self, digest: Digest) -> int:
        try:
            head = self.client.head_object(
                Bucket=self.location.bucket, Key=self.location.blob(digest)
            )
        except ClientError as exc:
            if _is_missing(exc):
                raise NotFound(f"blob {digest} is not in the store") from exc
            raise self._error("cannot read", exc) from exc
        except BotoCoreError as exc:
            raise self._error("cannot read", exc) from exc
        return int(head["ContentLength"])

    def open(self, digest: Digest) -> BinaryIO:
        """The blob as a seekable file: it streams from one GET while read in order, and a
        seek (the scanners jump to a ZIP's directory or a pickle's spans) starts a ranged GET
        where it lands. Never the whole object in memory."""
        return self._file(digest, 0, None)

    def open_range(self, digest: Digest, start: int, end: int) -> BinaryIO:
        """Bytes `start..end` (inclusive) of a blob: one ranged GET, never the whole object."""
        if start < 0 or end < start:
            raise InputError(f"bad byte range {start}-{end}")
        return self._file(digest, start, end + 1)

    def _file(self, digest: Digest, start: int, stop: int | None) -> BinaryIO:
        raw = _ObjectFile(self, self.location.blob(digest), str(digest), start, stop)
        return io.BufferedReader(raw, buffer_size=READ_CHUNK)

    # -- writer ------------------------------------------------------------------------------

    def free_space(self) -> int | None:
        return None  # an object store does not say

    def upload(
        self,
        *,
        expected_sha256: Digest | None = None,
        expected_size: int | None = None,
        expected_git_sha1: str | None = None,
        resume_key: str | None = None,
        label: str = "",
    ) -> S3BlobUpload:
        expected = Expected.of(
            sha256=expected_sha256, size=expected_size, git_sha1=expected_git_sha1, label=label
        )
        return S3BlobUpload(self, expected, resume_key)

    # -- sweeping (modelctl gc) ---------------------------------------------------------------

    def list_blobs(self) -> Iterator[BlobEntry]:
        for obj in self._list(self.location.blobs):
            try:
                digest = Digest(obj["Key"].rsplit("/", 1)[-1])
            except InvalidInputError:
                continue  # not a blob of ours: left alone
            if obj["Key"] == self.location.blob(digest):
                yield BlobEntry(digest, int(obj["Size"]), obj["LastModified"])

    def delete(self, digest: Digest) -> None:
        self.delete_key(self.location.blob(digest))

    def leftover_uploads(self) -> list[LeftoverUpload]:
        """Temporary objects, kept partials and multipart uploads never completed or aborted."""
        found = [
            LeftoverUpload(
                name=f"object:{obj['Key']}",
                started=obj["LastModified"],
                resumable=obj["Key"].startswith(f"{self.location.tmp}resume-"),
            )
            for obj in self._list(self.location.tmp)
        ]
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(
                Bucket=self.location.bucket, Prefix=self.location.prefix
            ):
                found.extend(
                    LeftoverUpload(
                        name=f"multipart:{u['UploadId']}:{u['Key']}",
                        started=u["Initiated"],
                        resumable=False,
                    )
                    for u in page.get("Uploads", [])
                )
        except (ClientError, BotoCoreError) as exc:
            raise self._error("cannot list uploads in", exc) from exc
        return found

    def remove_upload(self, leftover: LeftoverUpload) -> None:
        kind, _, rest = leftover.name.partition(":")
        if kind == "object" and rest.startswith(self.location.tmp):
            self.delete_key(rest)
        elif kind == "multipart":
            upload_id, _, key = rest.partition(":")
            with contextlib.suppress(ClientError):  # already gone: someone else aborted it
                self.client.abort_multipart_upload(
                    Bucket=self.location.bucket, Key=key, UploadId=upload_id
                )

    def _list(self, prefix: str) -> Iterator[Any]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.location.bucket, Prefix=prefix):
                yield from page.get("Contents", [])
        except (ClientError, BotoCoreError) as exc:
            raise self._error("cannot list", exc) from exc

    def delete_key(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.location.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise self._error("cannot delete from", exc) from exc

    def _error(self, what: str, exc: BaseException) -> StorageError:
        return StorageError(f"{what} the blob store {self.spec}: {_one_line(exc)}")


class _ObjectFile(io.RawIOBase):
    """Bytes `start..stop` of one object, read through ranged GETs, with transport errors as
    `StorageError` and a missing object as `NotFound` (raised at open, by the first GET)."""

    def __init__(
        self, store: S3BlobStore, key: str, name: str, start: int, stop: int | None
    ) -> None:
        self._store = store
        self._key = key
        self._name = name
        self._start = start
        self._pos = 0  # relative to start
        self._body: Any = None
        self._body_pos = 0
        last = "" if stop is None else str(stop - 1)
        object_size = self._get(f"bytes={start}-{last}")
        end = object_size if stop is None else min(stop, object_size)
        self._length = max(0, end - start)

    def _get(self, byte_range: str) -> int:
        """Open a body for `byte_range`; the object's size (from Content-Range)."""
        try:
            response = self._store.client.get_object(
                Bucket=self._store.location.bucket, Key=self._key, Range=byte_range
            )
        except ClientError as exc:
            if _is_missing(exc):
                raise NotFound(f"blob {self._name} is not in the store") from exc
            if _code(exc) == "InvalidRange":  # starts at or past the end (an empty blob)
                return self._head_size()
            raise self._store._error("cannot read", exc) from exc
        except BotoCoreError as exc:
            raise self._store._error("cannot read", exc) from exc
        self._body, self._body_pos = response["Body"], self._pos
        content_range = str(response.get("ContentRange", ""))  # "bytes a-b/size"
        if "/" in content_range:
            return int(content_range.rsplit("/", 1)[-1])
        return int(response["ContentLength"])  # a server that ignored Range sent it all

    def _head_size(self) -> int:
        try:
            head = self._store.client.head_object(Bucket=self._store.location.bucket, Key=self._key)
        except (ClientError, BotoCoreError) as exc:
            raise self._store._error("cannot read", exc) from exc
        return int(head["ContentLength"])

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        if base + offset < 0:
            raise OSError(f"blob {self._name}: seek before the start")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._length - self._pos)
        if want <= 0:
            return 0
        if self._body is None or self._body_pos != self._pos:
            self._drop_body()
            begin = self._start + self._pos
            self._get(f"bytes={begin}-{self._start + self._length - 1}")
        try:
            data = self._body.read(want)
        except (BotoCoreError, OSError) as exc:
            raise StorageError(f"blob {self._name}: read failed: {_one_line(exc)}") from exc
        view[: len(data)] = data
        self._pos += len(data)
        self._body_pos = self._pos
        return len(data)

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        if not self.closed:
            self._drop_body()
        super().close()


class _Multipart:
    """One multipart upload: parts go up in the background, at most `IN_FLIGHT` at a time."""

    def __init__(self, store: S3BlobStore, key: str, label: str) -> None:
        self._store = store
        self._s3 = store.client
        self._bucket = store.location.bucket
        self.key = key
        self._label = label
        self._slots = threading.BoundedSemaphore(IN_FLIGHT)
        self._futures: list[Future[dict[str, Any]]] = []
        self.next_part = 1
        try:
            self.upload_id = self._s3.create_multipart_upload(Bucket=self._bucket, Key=key)[
                "UploadId"
            ]
        except (ClientError, BotoCoreError) as exc:
            raise store._error(f"{label}: cannot start an upload to", exc) from exc

    def send(self, data: bytes) -> None:
        self._raise_failed()
        number = self.next_part
        self.next_part += 1
        self._slots.acquire()  # back-pressure: the caller waits while IN_FLIGHT parts are up

        def put() -> dict[str, Any]:
            try:
                etag = self._s3.upload_part(
                    Bucket=self._bucket,
                    Key=self.key,
                    UploadId=self.upload_id,
                    PartNumber=number,
                    Body=data,
                )["ETag"]
                return {"PartNumber": number, "ETag": etag}
            finally:
                self._slots.release()

        self._futures.append(self._store.parts.submit(put))

    def copy_from(self, source_key: str, size: int) -> None:
        """Append the first `size` bytes of `source_key` as parts, server-side."""
        ranges = _copy_ranges(size)
        for start, end in ranges:
            number = self.next_part
            self.next_part += 1
            try:
                etag = self._s3.upload_part_copy(
                    Bucket=self._bucket,
                    Key=self.key,
                    UploadId=self.upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": self._bucket, "Key": source_key},
                    CopySourceRange=f"bytes={start}-{end}",
                )["CopyPartResult"]["ETag"]
            except (ClientError, BotoCoreError) as exc:
                raise self._store._error(f"{self._label}: cannot copy within", exc) from exc
            done: Future[dict[str, Any]] = Future()
            done.set_result({"PartNumber": number, "ETag": etag})
            self._futures.append(done)

    def _raise_failed(self) -> None:
        for f in self._futures:
            if f.done() and f.exception() is not None:
                self._wait()

    def _wait(self) -> list[dict[str, Any]]:
        parts = []
        for f in self._futures:
            try:
                parts.append(f.result())
            except (ClientError, BotoCoreError) as exc:
                raise self._store._error(f"{self._label}: cannot write to", exc) from exc
        return parts

    def complete(self, *, if_absent: bool) -> bool:
        """Complete the upload; False when `if_absent` and the key already exists."""
        parts = self._wait()
        args: dict[str, Any] = {
            "Bucket": self._bucket,
            "Key": self.key,
            "UploadId": self.upload_id,
            "MultipartUpload": {"Parts": parts},
        }
        if if_absent:
            args["IfNoneMatch"] = "*"
        try:
            self._s3.complete_multipart_upload(**args)
        except ClientError as exc:
            if if_absent and _is_taken(exc):
                self.abort()
                return False
            raise self._store._error(f"{self._label}: cannot complete an upload to", exc) from exc
        except BotoCoreError as exc:
            raise self._store._error(f"{self._label}: cannot complete an upload to", exc) from exc
        return True

    def abort(self) -> None:
        wait(self._futures)  # parts still in flight would outlive the abort
        with contextlib.suppress(ClientError, BotoCoreError):  # gc aborts what this leaves
            self._s3.abort_multipart_upload(
                Bucket=self._bucket, Key=self.key, UploadId=self.upload_id
            )


def _copy_ranges(size: int) -> list[tuple[int, int]]:
    """Split `size` bytes into inclusive ranges of at most 5 GiB (and at least 5 MiB each,
    given `size` >= 5 MiB), as UploadPartCopy requires."""
    count = max(1, -(-size // MAX_COPY_SIZE))
    step = -(-size // count)
    return [(start, min(size, start + step) - 1) for start in range(0, size, step)]


class S3BlobUpload:
    """An append-only hashing sink into the bucket (see the module docstring for the steps)."""

    def __init__(self, store: S3BlobStore, expected: Expected, resume_key: str | None) -> None:
        self._store = store
        self._loc = store.location
        self._expected = expected
        self._label = expected.label
        self._hasher = expected.new_hasher()
        self._buffer = bytearray()
        self._done = False
        self._resume_key = (
            f"{self._loc.tmp}resume-{hashlib.sha256(resume_key.encode()).hexdigest()}"
            if resume_key is not None
            else None
        )
        if self._resume_key is not None:
            self._target = self._resume_key
        elif expected.sha256 is not None:
            self._target = self._loc.blob(expected.sha256)  # complete only once verified
        else:
            self._target = f"{self._loc.tmp}upload-{uuid.uuid4().hex}"
        self._multipart: _Multipart | None = None
        self.resume_offset = self._absorb_partial() if self._resume_key is not None else 0

    @property
    def _direct(self) -> bool:
        """Whether the multipart upload targets the blob's own key."""
        return self._target.startswith(self._loc.blobs)

    def _absorb_partial(self) -> int:
        """Re-hash the bytes an interrupted upload kept and carry them into this upload."""
        assert self._resume_key is not None
        s3, bucket, key = self._store.client, self._loc.bucket, self._resume_key
        try:
            size = int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if _is_missing(exc):
                return 0
            raise self._store._error(f"{self._label}: cannot read", exc) from exc
        except BotoCoreError as exc:
            raise self._store._error(f"{self._label}: cannot read", exc) from exc
        if size == 0 or (self._expected.size is not None and size > self._expected.size):
            self._store.delete_key(key)  # not a prefix of this blob: start again
            return 0
        keep_in_memory = size < MIN_PART_SIZE
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
            while chunk := body.read(READ_CHUNK):
                self._hasher.update(chunk)
                if keep_in_memory:
                    self._buffer += chunk
            body.close()
        except (ClientError, BotoCoreError) as exc:
            raise self._store._error(f"{self._label}: cannot read", exc) from exc
        if self._hasher.size != size:
            raise StorageError(f"{self._label}: the kept partial changed while it was read")
        if not keep_in_memory:
            self._multipart = _Multipart(self._store, self._target, self._label)
            self._multipart.copy_from(key, size)
        return size

    def write(self, data: bytes | memoryview, /) -> int:
        if self._done:
            raise StorageError(f"{self._label}: upload already finished")
        view = memoryview(data)
        self._hasher.update(view)
        self._expected.check_size_so_far(self._hasher.size)
        self._buffer += view
        while True:
            want = part_size(self._multipart.next_part if self._multipart else 1)
            if len(self._buffer) < want:
                break
            self._send(bytes(self._buffer[:want]))
            del self._buffer[:want]
        return len(view)

    def _send(self, part: bytes) -> None:
        if self._multipart is None:
            self._multipart = _Multipart(self._store, self._target, self._label)
        self._multipart.send(part)

    def tell(self) -> int:
        return self._hasher.size

    def commit(self) -> StoredBlob:
        if self._done:
            raise StorageError(f"{self._label}: upload already finished")
        self._done = True
        result = self._hasher.result()
        try:
            self._expected.check(result)  # before anything appears under the digest
            final = self._loc.blob(result.sha256)
            if self._multipart is None:
                created = self._put_small(final)
            else:
                if self._buffer:
                    self._multipart.send(bytes(self._buffer))
                    self._buffer = bytearray()
                if self._direct:
                    created = self._multipart.complete(if_absent=True)
                else:
                    self._multipart.complete(if_absent=False)
                    created = self._copy_to(result.sha256, result.size)
        except BaseException:
            self._discard()
            raise
        self._drop_temp()
        return StoredBlob(
            digest=result.sha256,
            size=result.size,
            key=blob_key(result.sha256),
            git_sha1=result.git_sha1,
            created=created,
        )

    def _put_small(self, final: str) -> bool:
        try:
            self._store.client.put_object(
                Bucket=self._loc.bucket, Key=final, Body=bytes(self._buffer), IfNoneMatch="*"
            )
        except ClientError as exc:
            if _is_taken(exc):
                return False
            raise self._store._error(f"{self._label}: cannot write to", exc) from exc
        except BotoCoreError as exc:
            raise self._store._error(f"{self._label}: cannot write to", exc) from exc
        finally:
            self._buffer = bytearray()
        return True

    def _copy_to(self, digest: Digest, size: int) -> bool:
        """Server-side copy of the verified temporary object to the blob's key, if absent."""
        s3, bucket, source = self._store.client, self._loc.bucket, self._target
        final = self._loc.blob(digest)
        if self._store.exists(digest):
            return False  # dedup: no copy at all
        if size <= MAX_COPY_SIZE:
            try:
                s3.copy_object(
                    Bucket=bucket,
                    Key=final,
                    CopySource={"Bucket": bucket, "Key": source},
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                if _is_taken(exc):
                    return False
                raise self._store._error(f"{self._label}: cannot copy within", exc) from exc
            except BotoCoreError as exc:
                raise self._store._error(f"{self._label}: cannot copy within", exc) from exc
            return True
        copy = _Multipart(self._store, final, self._label)
        try:
            copy.copy_from(source, size)
            return copy.complete(if_absent=True)
        except BaseException:
            copy.abort()
            raise

    def _drop_temp(self) -> None:
        if not self._direct:
            with contextlib.suppress(StorageError):  # gc removes what a failed delete leaves
                self._store.delete_key(self._target)

    def _discard(self) -> None:
        """Throw every byte away: the multipart upload, the temporary or kept object."""
        self._buffer = bytearray()
        if self._multipart is not None:
            self._multipart.abort()
            self._multipart = None
        self._drop_temp()

    def abort(self, *, keep_partial: bool = False) -> None:
        if self._done:
            return
        self._done = True
        if not (keep_partial and self._resume_key is not None):
            self._discard()
            return
        # Keep what arrived as the readable object tmp/resume-...: the next upload with this
        # resume key re-hashes it and copies it server-side (a multipart upload's parts cannot
        # be read back).
        try:
            if self._multipart is None:
                self._store.client.put_object(
                    Bucket=self._loc.bucket, Key=self._resume_key, Body=bytes(self._buffer)
                )
            else:
                if self._buffer:
                    self._multipart.send(bytes(self._buffer))
                self._multipart.complete(if_absent=False)
        except (ClientError, BotoCoreError, StorageError):
            self._discard()  # nothing kept is better than a partial that is not a prefix
            raise
        finally:
            self._buffer = bytearray()

    def __enter__(self) -> S3BlobUpload:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object, /) -> None:
        if not self._done:
            self.abort(keep_partial=False)
