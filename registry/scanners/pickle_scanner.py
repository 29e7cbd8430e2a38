"""The pickle-family scanner: raw pickles (protocols 0-5), PyTorch zip / legacy tar / legacy
stacked checkpoints, joblib (plain and compressed), NumPy .npy / .npz, and pickles wrapped in
gzip, bz2, xz, lzma, zlib or 7z.

Routing is by content (see `containers.sniff`), never by file name. Every pickle stream found is
handed to the pickle-machine emulator (`pickle_vm.scan_pickle_bytes`); nothing is unpickled.
Container anomalies that two reasonable readers would resolve differently are findings of their
own (`suspicious` or `malformed`), so an ambiguous file is refused rather than best-effort
scanned. The file's verdict is the worst of its members' and its container's.
"""

from __future__ import annotations

import importlib
import io
from typing import BinaryIO

from registry.scanners.base import (
    SNIFF_BYTES,
    FileVerdict,
    Finding,
    ScanLimits,
    ScanTarget,
    Severity,
    Verdict,
    worst,
)
from registry.scanners.containers.compressed import decompress, read_7z
from registry.scanners.containers.encrypted_zip import (
    ENCRYPTED_RULE,
    is_encrypted,
    plain_encrypted_archive,
)
from registry.scanners.containers.issues import ContainerError, Issue, malformed, suspicious
from registry.scanners.containers.npy import npy_data_bytes, read_npy_header
from registry.scanners.containers.pickle_spans import PickleSpan
from registry.scanners.containers.sniff import COMPRESSED, Kind, sniff
from registry.scanners.containers.torch_legacy import (
    is_legacy_stacked,
    read_legacy_stacked,
    read_tar,
    split_legacy_tar_member,
)
from registry.scanners.containers.zip_reader import (
    ZipArchive,
    ZipEntry,
    has_zip_directory,
    read_zip,
    read_zip_member,
    zip_member_head,
)
from registry.scanners.pickle_policy import classify_global
from registry.scanners.pickle_vm import GlobalClassifier, analyze_pickle, scan_pickle_bytes
from registry.scanners.torchscript import classify_torchscript_global, is_torchscript_archive

SCANNER_ID = "pickle"
#: The format of the files this scanner recognises (by content), as policies see it.
FORMAT = "pickle"

#: Bytes per element of torch's storage types (torch/storage.py `_element_size` by dtype);
#: UntypedStorage counts bytes. An unknown type is not sized, only checked for its record.
_STORAGE_ELEMENT_BYTES = {
    "UntypedStorage": 1, "ByteStorage": 1, "CharStorage": 1, "BoolStorage": 1,
    "QUInt8Storage": 1, "QInt8Storage": 1, "QUInt4x2Storage": 1, "QUInt2x4Storage": 1,
    "Float8_e4m3fnStorage": 1, "Float8_e5m2Storage": 1,
    "ShortStorage": 2, "HalfStorage": 2, "BFloat16Storage": 2,
    "IntStorage": 4, "FloatStorage": 4, "QInt32Storage": 4,
    "LongStorage": 8, "DoubleStorage": 8, "ComplexFloatStorage": 8,
    "ComplexDoubleStorage": 16,
}  # fmt: skip

#: Small torch bookkeeping records: read and checked, never unpickled.
_TORCH_SMALL = ("byteorder", "version", ".data/version", ".data/serialization_id")
_SMALL_LIMIT = 4096


def _ruleset_version() -> str:
    try:
        policy = importlib.import_module("registry.scanners.pickle_policy")
    except ImportError:
        return "1"
    value = getattr(policy, "RULESET_VERSION", None)
    return value if isinstance(value, str) else "1"


def _join(parent: str | None, name: str | None) -> str | None:
    if parent is None:
        return name
    if name is None:
        return parent
    return f"{parent}!{name}"


class PickleFamilyScanner:
    """`Scanner` for everything that `pickle.load`, `torch.load`, `joblib.load` or
    `np.load(allow_pickle=True)` would unpickle."""

    id = SCANNER_ID
    version = "1.1.0"  # 1.1: pickles in TorchScript archives judged by its own unpickler
    ruleset_version = _ruleset_version()

    def applies_to(self, target: ScanTarget) -> bool:
        if sniff(target.head(), target.size) is not None:
            return True
        # A zip whose central directory is valid although the file starts with other bytes:
        # zipfile-based readers see an archive (a polyglot), so this scanner must look.
        with target.open() as f:
            return has_zip_directory(f, target.size)

    def scan(self, target: ScanTarget, limits: ScanLimits) -> FileVerdict:
        session = _Session(limits)
        with target.open() as f:
            session.scan_stream(f, target.size, member=None, depth=0)
        return session.result()


class _Session:
    """One file's scan: accumulates verdicts and findings from containers and the emulator."""

    def __init__(self, limits: ScanLimits) -> None:
        self.limits = limits
        self.verdicts: list[Verdict] = []
        self.findings: list[Finding] = []
        #: The global policy of the loader that reads the pickles at hand (TorchScript archives
        #: resolve their own classes, see `torchscript.classify_torchscript_global`).
        self.classify: GlobalClassifier = classify_global

    def result(self) -> FileVerdict:
        return FileVerdict(worst(self.verdicts), tuple(self.findings))

    # -- bookkeeping -------------------------------------------------------------------------

    def issue(self, issue: Issue, parent: str | None) -> None:
        self.verdicts.append(issue.verdict)
        self.findings.append(
            Finding(
                scanner=SCANNER_ID,
                rule=issue.rule,
                severity=issue.severity,
                message=issue.message,
                evidence=issue.evidence,
                offset=issue.offset,
                member=_join(parent, issue.member),
            )
        )

    def info(self, rule: str, message: str, member: str | None) -> None:
        self.findings.append(Finding(SCANNER_ID, rule, Severity.INFO, message, member=member))

    def vm(
        self, data: bytes | memoryview, member: str | None, depth: int, *, weights: bool
    ) -> None:
        """Run the pickle machine; `weights` for the pickles of a torch checkpoint, whose
        allowlist admits none of the harmless builtins other pickles may name."""
        verdict = scan_pickle_bytes(
            data,
            limits=self.limits,
            scanner_id=SCANNER_ID,
            member=member,
            depth=depth,
            weights=weights,
            classify=self.classify,
        )
        self.verdicts.append(verdict.verdict)
        self.findings.extend(verdict.findings)

    # -- dispatch ----------------------------------------------------------------------------

    def scan_bytes(self, data: bytes, member: str | None, depth: int) -> None:
        self.scan_stream(io.BytesIO(data), len(data), member=member, depth=depth)

    def scan_stream(self, f: BinaryIO, size: int, *, member: str | None, depth: int) -> None:
        if depth > self.limits.max_nesting:
            self.issue(malformed("container.nesting", "containers nested too deeply").issue, member)
            return
        f.seek(0)
        kind = sniff(f.read(SNIFF_BYTES), size)
        try:
            if kind is Kind.ZIP:
                self.zip(f, size, member, depth)
            elif kind is Kind.NPY:
                self.npy(f, size, member, depth)
            elif kind in COMPRESSED:
                self.compressed(f, size, kind, member, depth)
            elif kind is Kind.TAR:
                self.tar(f, member, depth)
            elif kind is Kind.PICKLE:
                self.pickle(f, size, member, depth)
        except ContainerError as exc:
            self.issue(exc.issue, member)
        if kind is not Kind.ZIP and has_zip_directory(f, size):
            # Pickle/zip (or anything/zip) polyglot: torch and pickle read the start, zipfile
            # readers the appended archive. Report it and scan the archive too.
            self.issue(
                suspicious(
                    "container.zip-polyglot",
                    "a zip archive is appended to content of another kind "
                    f"({kind.value if kind else 'unknown'}); readers disagree on what this is",
                ),
                member,
            )
            try:
                self.zip(f, size, member, depth)
            except ContainerError as exc:
                self.issue(exc.issue, member)

    # -- raw pickles, legacy stacked torch, joblib --------------------------------------------

    def pickle(self, f: BinaryIO, size: int, member: str | None, depth: int) -> None:
        if not is_legacy_stacked(f):
            # A raw pickle or a joblib file: the emulator walks every concatenated pickle.
            self.vm(_read_span(f, PickleSpan(0, size), self.limits), member, depth, weights=False)
            return
        layout = read_legacy_stacked(f, size, self.limits)
        for issue in layout.issues:
            self.issue(issue, member)
        parts: tuple[tuple[str, PickleSpan], ...] = (
            ("magic", layout.magic),
            ("protocol", layout.protocol),
            ("sys_info", layout.sys_info),
            ("main", layout.main),
            ("storage_keys", layout.storage_keys),
        )
        for label, span in parts:
            # Only the pickles are read; the raw storages after them never are.
            data = _read_span(f, span, self.limits)
            self.vm(data, _join(member, f"legacy:{label}"), depth, weights=True)

    # -- npy ---------------------------------------------------------------------------------

    def npy(self, f: BinaryIO, size: int, member: str | None, depth: int) -> None:
        f.seek(0)
        header = read_npy_header(f, member)
        if header.has_object:
            body = size - header.data_offset
            if body > self.limits.max_pickle_bytes:
                raise malformed("npy.object-too-large", "object array pickle exceeds the limit")
            f.seek(header.data_offset)
            self.vm(f.read(body), _join(member, "npy:object-data"), depth, weights=False)
            return
        expected = npy_data_bytes(header)
        if expected is None:
            return
        actual = size - header.data_offset
        if actual < expected:
            raise malformed("npy.truncated", "npy data is shorter than its shape and dtype say")
        if actual > expected:
            self.issue(
                suspicious(
                    "npy.trailing-bytes",
                    "bytes after the npy array data (np.load never reads them)",
                    offset=header.data_offset + expected,
                ),
                member,
            )

    # -- compression wrappers ------------------------------------------------------------------

    def compressed(
        self, f: BinaryIO, size: int, kind: Kind, member: str | None, depth: int
    ) -> None:
        if kind is Kind.SEVENZ:
            members, issues = read_7z(f, size, self.limits)
            for issue in issues:
                self.issue(issue, member)
            for m in members:
                self.scan_bytes(m.data, _join(member, m.name), depth + 1)
            return
        data = decompress(f, kind, size, self.limits)
        inner = _join(member, f"[{kind.value}]")
        if sniff(data[:SNIFF_BYTES], len(data)) is None:
            self.info(
                "container.no-pickle-content",
                f"{kind.value} content is not a pickle-family format",
                inner,
            )
        self.scan_bytes(data, inner, depth + 1)

    # -- tar (legacy torch) --------------------------------------------------------------------

    def tar(self, f: BinaryIO, member: str | None, depth: int) -> None:
        legacy = ("storages", "tensors", "pickle")
        f.seek(0)
        archive = read_tar(
            f, self.limits, lambda name, first, n: name in legacy or sniff(first, n) is not None
        )
        for issue in archive.issues:
            self.issue(issue, member)
        for m in archive.members:
            if m.data is None:
                continue
            name = _join(member, m.name)
            if m.name in ("storages", "tensors"):
                try:
                    split = split_legacy_tar_member(m.data, m.name, self.limits)
                except ContainerError as exc:
                    self.issue(exc.issue, member)
                    # still let the emulator see all of it
                    self.vm(m.data, name, depth, weights=True)
                    continue
                for issue in split.issues:
                    self.issue(issue, member)
                for span in split.spans:
                    self.vm(
                        m.data[span.start : span.end], f"{name}@{span.start}", depth, weights=True
                    )
            elif m.name == "pickle":
                self.vm(m.data, name, depth, weights=True)
            else:
                self.scan_bytes(m.data, name, depth + 1)

    # -- zip (PyTorch, npz, anything else) -----------------------------------------------------

    def zip(self, f: BinaryIO, size: int, member: str | None, depth: int) -> None:
        issues: list[Issue] = []
        try:
            archive = read_zip(f, size, self.limits, issues)
            unreadable = plain_encrypted_archive(f, archive)
            if unreadable is not None:
                # No model container in it: `unsupported`, not the differential refusal, and
                # the encrypted bytes are not read (see `containers.encrypted_zip`).
                issues = [i for i in issues if i.rule != ENCRYPTED_RULE] + [unreadable]
        finally:
            for issue in issues:
                self.issue(issue, member)
        prefix = self._torch_checks(archive, member)
        sizes = {e.name: e.size for e in archive.entries}
        outer = self.classify
        if prefix is not None and is_torchscript_archive({e.name for e in archive.entries}):
            self.classify = classify_torchscript_global
        try:
            self._zip_members(
                f,
                archive,
                prefix=prefix,
                sizes=sizes,
                member=member,
                depth=depth,
                skip_encrypted=unreadable is not None,
            )
        finally:
            self.classify = outer

    def _zip_members(
        self,
        f: BinaryIO,
        archive: ZipArchive,
        *,
        prefix: str | None,
        sizes: dict[str, int],
        member: str | None,
        depth: int,
        skip_encrypted: bool,
    ) -> None:
        for entry in archive.entries:
            if skip_encrypted and is_encrypted(entry):
                continue
            try:
                if prefix and entry.name == f"{prefix}/data.pkl":
                    self._torch_data_pkl(
                        f, entry, prefix=prefix, sizes=sizes, member=member, depth=depth
                    )
                    continue
                self._zip_member(f, entry, prefix, member, depth)
            except ContainerError as exc:
                self.issue(exc.issue, member)

    def _torch_data_pkl(
        self,
        f: BinaryIO,
        entry: ZipEntry,
        *,
        prefix: str,
        sizes: dict[str, int],
        member: str | None,
        depth: int,
    ) -> None:
        """The pickle torch unpickles, then every storage it names against its data record.

        torch sizes a storage from the pickle's numel and reads `<prefix>/data/<key>`; a record
        of another size is a file two readers see differently (CVE-2026-24747 class), and a
        missing one cannot load.
        """
        where = _join(member, entry.name)
        data, issues = read_zip_member(f, entry, self.limits.max_pickle_bytes)
        for issue in issues:
            self.issue(issue, member)
        analysis = analyze_pickle(
            data,
            limits=self.limits,
            scanner_id=SCANNER_ID,
            member=where,
            depth=depth,
            classify=self.classify,
        )
        self.verdicts.append(analysis.verdict)
        self.findings.extend(analysis.findings)
        for storage in analysis.storages[: self.limits.max_items]:
            record = f"{prefix}/data/{storage.key}"
            element = _STORAGE_ELEMENT_BYTES.get(storage.storage_type.rsplit(".", 1)[-1])
            actual = sizes.get(record)
            if actual is None:
                problem = f"storage {storage.key!r} has no {record} record"
            elif element is not None and actual != storage.numel * element:
                problem = (
                    f"storage {storage.key!r} declares {storage.numel} elements of "
                    f"{element} bytes, but {record} holds {actual} bytes"
                )
            else:
                continue
            self.issue(
                Issue(
                    rule="torch.storage.size-mismatch",
                    verdict=Verdict.MALFORMED,
                    severity=Severity.HIGH,
                    message=problem,
                    evidence={"key": storage.key, "numel": storage.numel, "record_bytes": actual},
                    member=entry.name,
                ),
                member,
            )

    def _torch_checks(self, archive: ZipArchive, member: str | None) -> str | None:
        """For a PyTorch archive, the record prefix torch uses (the first entry's folder)."""
        entries = archive.entries
        pkls = [e for e in entries if e.name == "data.pkl" or e.name.endswith("/data.pkl")]
        if not pkls:
            return None
        first = entries[0].name
        prefix = first.split("/", 1)[0] if "/" in first else ""
        if len(pkls) > 1:
            self.issue(
                suspicious(
                    "torch.multiple-data-pkl",
                    "more than one data.pkl: torch reads the one under the first record's "
                    "folder, other readers may pick another",
                    names=", ".join(e.name for e in pkls[:8]),
                ),
                member,
            )
        if not prefix:
            self.issue(
                suspicious(
                    "torch.no-prefix",
                    "the first record is not in a folder (torch refuses, others may not)",
                    first=first,
                ),
                member,
            )
        else:
            stray = [e.name for e in entries if not e.name.startswith(prefix + "/")]
            if stray:
                self.issue(
                    suspicious(
                        "torch.prefix-mismatch",
                        f"records outside the archive folder {prefix!r} torch reads from",
                        count=len(stray),
                        first=stray[0],
                    ),
                    member,
                )
            if f"{prefix}/data.pkl" not in {e.name for e in entries}:
                self.issue(
                    suspicious(
                        "torch.data-pkl-location",
                        f"no {prefix}/data.pkl: the data.pkl present is not the one torch reads",
                    ),
                    member,
                )
        if is_torchscript_archive({e.name for e in entries}):
            self.issue(
                Issue(
                    rule="torch.torchscript",
                    verdict=Verdict.CLEAN,
                    severity=Severity.INFO,
                    message="TorchScript archive: its pickles are scanned here, its code/ "
                    "by the torchscript scanner",
                ),
                member,
            )
        return prefix

    def _zip_member(
        self, f: BinaryIO, entry: ZipEntry, prefix: str | None, member: str | None, depth: int
    ) -> None:
        name = entry.name
        where = _join(member, name)
        if name.endswith("/") and entry.size == 0:
            return
        if prefix is not None:
            local = name[len(prefix) + 1 :] if prefix and name.startswith(prefix + "/") else name
            if local.startswith("data/"):
                return  # tensor storage bytes: torch never unpickles them, so they are not read
            if local in _TORCH_SMALL:
                data, issues = read_zip_member(f, entry, _SMALL_LIMIT)
                for issue in issues:
                    self.issue(issue, member)
                if local == "byteorder" and data not in (b"little", b"big"):
                    self.issue(
                        malformed(
                            "torch.byteorder", f"byteorder record is {data[:16]!r}", member=name
                        ).issue,
                        member,
                    )
                return
        if name.endswith((".pkl", ".pickle")):
            data, issues = read_zip_member(f, entry, self.limits.max_pickle_bytes)
            for issue in issues:
                self.issue(issue, member)
            self.vm(data, where, depth, weights=prefix is not None)  # in a torch archive
            return
        head = zip_member_head(f, entry, SNIFF_BYTES)
        kind = sniff(head, entry.size)
        if kind is Kind.NPY and not _npy_has_object(head):
            self._npy_in_zip(f, entry, head, member)
            return
        if kind is None:
            return
        data, issues = read_zip_member(f, entry, self.limits.max_pickle_bytes)
        for issue in issues:
            self.issue(issue, member)
        self.scan_bytes(data, where, depth + 1)

    def _npy_in_zip(self, f: BinaryIO, entry: ZipEntry, head: bytes, member: str | None) -> None:
        """A plain-dtype array in an npz: checked from its header, its data is never read."""
        try:
            header = read_npy_header(io.BytesIO(head), entry.name)
        except ContainerError as exc:
            self.issue(exc.issue, member)
            return
        expected = npy_data_bytes(header)
        if expected is not None and header.data_offset + expected != entry.size:
            self.issue(
                malformed(
                    "npy.size-mismatch",
                    "npz member size disagrees with its array header",
                    member=entry.name,
                    declared=entry.size,
                    expected=header.data_offset + expected,
                ).issue,
                member,
            )


def _npy_has_object(head: bytes) -> bool:
    try:
        return read_npy_header(io.BytesIO(head)).has_object
    except ContainerError:
        return True  # let the full path report it


def _read_span(f: BinaryIO, span: PickleSpan, limits: ScanLimits) -> bytes:
    """The bytes of one pickle stream, bounded by `max_pickle_bytes`."""
    n = span.end - span.start
    if n > limits.max_pickle_bytes:
        raise ContainerError(
            Issue(
                rule="pickle.limit.bytes",
                verdict=Verdict.ERROR,
                severity=Severity.HIGH,
                message=f"pickle stream of {n} bytes exceeds max_pickle_bytes "
                f"({limits.max_pickle_bytes})",
                offset=span.start,
            )
        )
    f.seek(span.start)
    return f.read(n)
