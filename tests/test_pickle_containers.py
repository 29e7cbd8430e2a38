"""The pickle-family scanner's containers: sniffing, strict zip, legacy torch, npy/npz, joblib
and compression wrappers. Every sample is built here; nothing is ever unpickled or loaded
(saving with numpy/joblib/pickle is safe, loading is not)."""

from __future__ import annotations

import bz2
import collections
import gzip
import io
import lzma
import os
import pickle
import struct
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import joblib  # type: ignore[import-untyped]
import numpy as np
import pytest

from registry.scanners.base import SNIFF_BYTES, FileVerdict, ScanLimits, Verdict
from registry.scanners.containers.sniff import Kind, sniff
from registry.scanners.pickle_scanner import PickleFamilyScanner

LIMITS = ScanLimits()
SCANNER = PickleFamilyScanner()

#: os.system('true') as raw protocol-2 opcodes (never loaded).
MALICIOUS = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R."
#: The same in protocol 0 text.
MALICIOUS_P0 = b"cos\nsystem\n(S'true'\ntR."


# -- targets --------------------------------------------------------------------------------------


class Counting(io.RawIOBase):
    """A seekable reader that counts the bytes it returns (and offers no fileno)."""

    def __init__(self, path: Path, counter: list[int]) -> None:
        self._f = path.open("rb", buffering=0)
        self._counter = counter

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._f.readinto(b)
        self._counter[0] += n or 0
        return n or 0

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        self._f.close()
        super().close()


@dataclass
class Target:
    file: Path
    counter: list[int] | None = None

    @property
    def path(self) -> str:
        return self.file.name

    @property
    def size(self) -> int:
        return self.file.stat().st_size

    def head(self) -> bytes:
        with self.open() as f:
            return f.read(SNIFF_BYTES)

    def open(self) -> BinaryIO:
        if self.counter is not None:
            return cast(BinaryIO, Counting(self.file, self.counter))
        return self.file.open("rb")


def scan(path: Path, limits: ScanLimits = LIMITS) -> FileVerdict:
    target = Target(path)
    assert SCANNER.applies_to(target), f"scanner does not apply to {path.name}"
    return SCANNER.scan(target, limits)


def rules(v: FileVerdict) -> set[str]:
    return {f.rule for f in v.findings}


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


# -- torch-like pickles (harmless stand-ins whose GLOBALs are rewritten to torch names) -----------


class FloatStorage:
    """Stands in for torch.FloatStorage (its GLOBAL is rewritten)."""


def _rebuild_tensor_v2(*args: object) -> None:
    """Stands in for torch._utils._rebuild_tensor_v2 (its GLOBAL is rewritten)."""


class _StorageRef:
    pass


class _Tensor:
    def __reduce__(self) -> tuple[Any, ...]:
        hooks: collections.OrderedDict[str, int] = collections.OrderedDict()
        return (_rebuild_tensor_v2, (_StorageRef(), 0, (2, 2), (2, 1), False, hooks))


class _TorchPickler(pickle.Pickler):
    def persistent_id(self, obj: object) -> object:
        if isinstance(obj, _StorageRef):
            return ("storage", FloatStorage, "0", "cpu", 4)
        return None


def torch_pickle(obj: object | None = None) -> bytes:
    buf = io.BytesIO()
    state = collections.OrderedDict(weight=_Tensor()) if obj is None else obj
    _TorchPickler(buf, protocol=2).dump(state)
    mod = __name__.encode()
    data = buf.getvalue()
    data = data.replace(
        b"c" + mod + b"\n_rebuild_tensor_v2\n", b"ctorch._utils\n_rebuild_tensor_v2\n"
    )
    data = data.replace(b"c" + mod + b"\nFloatStorage\n", b"ctorch\nFloatStorage\n")
    assert mod not in data
    return data


def torch_zip_bytes(data_pkl: bytes | None = None, extra: list[tuple[str, bytes]] = ()) -> bytes:  # type: ignore[assignment]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate-name samples
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for name, payload in [
                ("archive/data.pkl", torch_pickle() if data_pkl is None else data_pkl),
                ("archive/byteorder", b"little"),
                ("archive/data/0", b"\x00" * 16),
                ("archive/version", b"3\n"),
                ("archive/.data/serialization_id", b"1234567890"),
                *extra,
            ]:
                zf.writestr(name, payload)
    return buf.getvalue()


def patch_all(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new)


def local_offset(data: bytes, name: bytes) -> int:
    i = data.index(name)
    while data[i - 30 : i - 26] != b"PK\x03\x04":
        i = data.index(name, i + 1)
    return i - 30


def central_offset(data: bytes, name: bytes) -> int:
    i = data.index(b"PK\x01\x02")
    while data[i + 46 : i + 46 + len(name)] != name:
        i = data.index(b"PK\x01\x02", i + 1)
    return i


# -- raw pickles and sniffing ---------------------------------------------------------------------


@pytest.mark.parametrize("protocol", range(6))
def test_raw_pickle_every_protocol_is_sniffed_and_clean(tmp_path: Path, protocol: int) -> None:
    obj = {"a": [1, 2.5, "x", b"y", None, True], "b": (1, 2)}
    p = write(tmp_path, "weights.bin", pickle.dumps(obj, protocol=protocol))
    assert sniff(p.read_bytes()[:SNIFF_BYTES]) is Kind.PICKLE
    assert scan(p).verdict is Verdict.CLEAN


@pytest.mark.parametrize("payload", [MALICIOUS, MALICIOUS_P0])
def test_raw_malicious_pickle_any_name(tmp_path: Path, payload: bytes) -> None:
    assert scan(write(tmp_path, "model.txt", payload)).verdict is Verdict.MALICIOUS


def test_sniffing_ignores_non_pickles(tmp_path: Path) -> None:
    samples = {
        "readme": b"This is a model card.\n",
        "json": b'{"a": 1}',
        "random": os.urandom(4096),
        "safetensors": struct.pack("<Q", 20) + b'{"__metadata__":{}}  ',
        "bad-proto": b"\x80\x09junk",
    }
    for name, data in samples.items():
        assert not SCANNER.applies_to(Target(write(tmp_path, name, data))), name


# -- PyTorch zip ----------------------------------------------------------------------------------


def test_torch_zip_clean(tmp_path: Path) -> None:
    v = scan(write(tmp_path, "model.weights", torch_zip_bytes()))
    assert v.verdict is Verdict.CLEAN, v.findings


def test_torch_zip_malicious_data_pkl(tmp_path: Path) -> None:
    v = scan(write(tmp_path, "model.pt", torch_zip_bytes(MALICIOUS)))
    assert v.verdict is Verdict.MALICIOUS


@pytest.mark.parametrize("flag", [0x1, 0x20, 0x40])
def test_zip_flag_tricks(tmp_path: Path, flag: int) -> None:
    data = bytearray(torch_zip_bytes(MALICIOUS))
    lo = local_offset(bytes(data), b"archive/data.pkl")
    co = central_offset(bytes(data), b"archive/data.pkl")
    struct.pack_into("<H", data, lo + 6, flag)
    struct.pack_into("<H", data, co + 8, flag)
    v = scan(write(tmp_path, "m.pt", bytes(data)))
    assert v.verdict is Verdict.MALICIOUS  # read as torch reads it: the flag is ignored
    assert rules(v) & {"zip.encrypted", "zip.flags"}


def test_zip_local_central_name_mismatch(tmp_path: Path) -> None:
    data = bytearray(torch_zip_bytes(MALICIOUS))
    lo = local_offset(bytes(data), b"archive/data.pkl")
    data[lo + 30 : lo + 46] = b"archive/zata.pkl"
    v = scan(write(tmp_path, "m.pt", bytes(data)))
    assert "zip.name-mismatch" in rules(v)
    assert v.verdict is Verdict.MALICIOUS


def test_zip_bad_crc(tmp_path: Path) -> None:
    data = bytearray(torch_zip_bytes())
    lo = local_offset(bytes(data), b"archive/data.pkl")
    co = central_offset(bytes(data), b"archive/data.pkl")
    struct.pack_into("<I", data, lo + 14, 0xDEADBEEF)
    struct.pack_into("<I", data, co + 16, 0xDEADBEEF)
    v = scan(write(tmp_path, "m.pt", bytes(data)))
    assert "zip.crc-mismatch" in rules(v)
    assert v.verdict is Verdict.MALFORMED


def test_zip_duplicate_names_scans_every_copy(tmp_path: Path) -> None:
    # The malicious copy first, a benign one last (what ZipFile.open(name) returns).
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("archive/data.pkl", MALICIOUS)
            zf.writestr("archive/data.pkl", torch_pickle())
            zf.writestr("archive/byteorder", b"little")
    v = scan(write(tmp_path, "m.pt", buf.getvalue()))
    assert "zip.duplicate-name" in rules(v)
    assert v.verdict is Verdict.MALICIOUS


def test_zip_two_data_pkl(tmp_path: Path) -> None:
    data = torch_zip_bytes(extra=[("other/data.pkl", MALICIOUS)])
    v = scan(write(tmp_path, "m.pt", data))
    assert {"torch.multiple-data-pkl", "torch.prefix-mismatch"} <= rules(v)
    assert v.verdict is Verdict.MALICIOUS


def test_pickle_zip_polyglot(tmp_path: Path) -> None:
    p = write(tmp_path, "m.pt", MALICIOUS)
    with zipfile.ZipFile(p, "a") as zf:  # appends a zip with correct absolute offsets
        zf.writestr("archive/data.pkl", torch_pickle())
        zf.writestr("archive/byteorder", b"little")
    assert sniff(p.read_bytes()[:SNIFF_BYTES]) is Kind.PICKLE
    v = scan(p)
    assert {"container.zip-polyglot", "zip.prefix-bytes"} <= rules(v)
    assert v.verdict is Verdict.MALICIOUS


def test_zip_with_junk_prefix_is_found_by_its_directory(tmp_path: Path) -> None:
    p = write(tmp_path, "m.bin", b"\x00\x01 not a pickle " * 4)
    with zipfile.ZipFile(p, "a") as zf:
        zf.writestr("archive/data.pkl", torch_pickle())
        zf.writestr("archive/data/0", b"\x00" * 16)  # the storage the pickle names
    assert sniff(p.read_bytes()[:SNIFF_BYTES]) is None
    v = scan(p)
    assert "zip.prefix-bytes" in rules(v)
    assert v.verdict is Verdict.SUSPICIOUS


def test_zip_trailing_bytes(tmp_path: Path) -> None:
    v = scan(write(tmp_path, "m.pt", torch_zip_bytes() + b"appended"))
    assert v.verdict is not Verdict.CLEAN
    assert rules(v) & {"zip.trailing-bytes", "zip.no-eocd"}


def test_zip_overlapping_members(tmp_path: Path) -> None:
    data = bytearray(torch_zip_bytes())
    first = local_offset(bytes(data), b"archive/data.pkl")
    co = central_offset(bytes(data), b"archive/byteorder")
    struct.pack_into("<I", data, co + 42, first)  # byteorder's record now points at data.pkl's
    v = scan(write(tmp_path, "m.pt", bytes(data)))
    assert v.verdict is not Verdict.CLEAN
    assert "zip.overlap" in rules(v)


def test_zip64_inconsistent_end_records(tmp_path: Path) -> None:
    data = torch_zip_bytes()
    eocd = data.rindex(b"PK\x05\x06")
    _s, _d, _cd, n_disk, n_total, cd_size, cd_off, _c = struct.unpack(
        "<4sHHHHIIH", data[eocd : eocd + 22]
    )
    rec64 = struct.pack(
        "<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, n_disk + 1, n_total + 1, cd_size, cd_off
    )
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, eocd, 1)
    v = scan(write(tmp_path, "m.pt", data[:eocd] + rec64 + locator + data[eocd:]))
    assert "zip.zip64-mismatch" in rules(v)
    assert v.verdict is not Verdict.CLEAN


class _Unseekable(io.RawIOBase):
    def __init__(self) -> None:
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.buf += bytes(b)
        return len(b)


def test_data_descriptors_checked(tmp_path: Path) -> None:
    sink = _Unseekable()
    with zipfile.ZipFile(sink, "w") as zf:  # unseekable: zipfile writes data descriptors
        zf.writestr("archive/data.pkl", torch_pickle())
        zf.writestr("archive/byteorder", b"little")
        zf.writestr("archive/data/0", b"\x00" * 16)
    good = bytes(sink.buf)
    assert scan(write(tmp_path, "good.pt", good)).verdict is Verdict.CLEAN
    bad = bytearray(good)
    desc = good.index(b"PK\x07\x08")
    struct.pack_into("<I", bad, desc + 8, 1)  # the descriptor's compressed size
    v = scan(write(tmp_path, "bad.pt", bytes(bad)))
    assert "zip.descriptor-mismatch" in rules(v)
    assert v.verdict is not Verdict.CLEAN


def test_storage_records_must_match_what_the_pickle_declares(tmp_path: Path) -> None:
    """torch sizes a storage from the pickle's numel; a record of another size is malformed."""
    short = torch_zip_bytes().replace(b"archive/data/0", b"archive/data/9")
    v = scan(write(tmp_path, "missing.pt", short))
    assert "torch.storage.size-mismatch" in rules(v)
    assert v.verdict is Verdict.MALFORMED
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", torch_pickle())
        zf.writestr("archive/data/0", b"\x00" * 12)  # 3 floats where the pickle says 4
    v = scan(write(tmp_path, "short.pt", buf.getvalue()))
    assert "torch.storage.size-mismatch" in rules(v)
    assert v.verdict is Verdict.MALFORMED


def test_torchscript_pickles_are_scanned_here_and_its_code_by_the_torchscript_scanner(
    tmp_path: Path,
) -> None:
    # The code/ members are judged by registry.scanners.torchscript (tests/test_model_formats.py).
    data = torch_zip_bytes(extra=[("archive/constants.pkl", pickle.dumps((), protocol=2))])
    v = scan(write(tmp_path, "m.pt", data))
    assert "torch.torchscript" in rules(v)
    assert v.verdict is Verdict.CLEAN


# -- the big archive: only pickle members are read ------------------------------------------------


def _sparse_stored_zip(path: Path, members: list[tuple[str, bytes | int]]) -> None:
    crc_zero: dict[int, int] = {}

    def zero_crc(n: int) -> int:
        if n not in crc_zero:
            block = bytes(1 << 24)
            crc = 0
            left = n
            while left:
                step = min(left, len(block))
                crc = zlib.crc32(block[:step], crc)
                left -= step
            crc_zero[n] = crc
        return crc_zero[n]

    central = bytearray()
    with path.open("wb") as f:
        for name, payload in members:
            size = payload if isinstance(payload, int) else len(payload)
            crc = zero_crc(size) if isinstance(payload, int) else zlib.crc32(payload)
            offset = f.tell()
            raw = name.encode()
            f.write(
                struct.pack(
                    "<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, size, size, len(raw), 0
                )
            )
            f.write(raw)
            if isinstance(payload, int):
                f.seek(size, os.SEEK_CUR)  # a hole: zeros that take no disk
            else:
                f.write(payload)
            central += struct.pack(
                "<4sHHHHHHIIIHHHHHII",
                b"PK\x01\x02",
                20,
                20,
                0,
                0,
                0,
                0,
                crc,
                size,
                size,
                len(raw),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            central += raw
        cd_offset = f.tell()
        f.write(central)
        f.write(
            struct.pack(
                "<4sHHHHIIH",
                b"PK\x05\x06",
                0,
                0,
                len(members),
                len(members),
                len(central),
                cd_offset,
                0,
            )
        )


def test_two_gigabyte_checkpoint_reads_only_pickles(tmp_path: Path) -> None:
    p = tmp_path / "big.pt"
    quarter = 512 * 1024**2
    _sparse_stored_zip(
        p,
        [
            ("archive/data.pkl", torch_pickle()),
            ("archive/byteorder", b"little"),
            ("archive/data/0", b"\x00" * 16),  # the storage the pickle names
            *[(f"archive/data/{i}", quarter) for i in range(1, 5)],
            ("archive/version", b"3\n"),
        ],
    )
    assert p.stat().st_size > 2 * 1024**3
    counter = [0]
    target = Target(p, counter)
    assert SCANNER.applies_to(target)
    v = SCANNER.scan(target, LIMITS)
    assert v.verdict is Verdict.CLEAN, v.findings
    # Only the pickles are read; the wall-clock bound (0.5 s) is in bench/scan_speed.py.
    assert counter[0] < 16 * 1024, counter[0]


# -- legacy torch formats -------------------------------------------------------------------------

MAGIC = 0x1950A86A20F9469CFC6C


def legacy_stacked(main: bytes, storage: bytes = struct.pack("<q", 4) + bytes(16)) -> bytes:
    return (
        pickle.dumps(MAGIC, protocol=2)
        + pickle.dumps(1001, protocol=2)
        + pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2)
        + main
        + pickle.dumps(["0"], protocol=2)
        + storage
    )


def test_legacy_stacked_clean(tmp_path: Path) -> None:
    v = scan(write(tmp_path, "old.pt", legacy_stacked(torch_pickle())))
    assert v.verdict is Verdict.CLEAN, v.findings


def test_legacy_stacked_malicious_main(tmp_path: Path) -> None:
    assert scan(write(tmp_path, "old.pt", legacy_stacked(MALICIOUS))).verdict is Verdict.MALICIOUS


def test_legacy_stacked_hidden_trailer(tmp_path: Path) -> None:
    data = legacy_stacked(torch_pickle()) + b"hidden"
    v = scan(write(tmp_path, "old.pt", data))
    assert "torch.legacy.trailing-bytes" in rules(v)


def test_legacy_magic_built_by_eval_is_not_trusted(tmp_path: Path) -> None:
    magic_by_eval = b"\x80\x02cbuiltins\neval\nX\x16\x00\x00\x000x1950a86a20f9469cfc6c\x85R."
    v = scan(write(tmp_path, "old.pt", magic_by_eval + legacy_stacked(torch_pickle())[22:]))
    assert v.verdict is Verdict.MALICIOUS


def legacy_tar(main: bytes) -> bytes:
    storage_args = pickle.dumps(("0", "cpu", FloatStorage), protocol=2).replace(
        b"c" + __name__.encode() + b"\nFloatStorage\n", b"ctorch\nFloatStorage\n"
    )
    storages = (
        pickle.dumps(1, protocol=2)
        + storage_args
        + struct.pack("<q", 4)
        + bytes(16)
        + pickle.dumps([], protocol=2)
    )
    members = {
        "sys_info": pickle.dumps({"little_endian": True}, protocol=2),
        "pickle": main,
        "tensors": pickle.dumps(0, protocol=2),
        "storages": storages,
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def test_legacy_tar_clean_and_malicious(tmp_path: Path) -> None:
    assert sniff(legacy_tar(torch_pickle())[:SNIFF_BYTES]) is Kind.TAR
    v = scan(write(tmp_path, "old.tar.pt", legacy_tar(torch_pickle())))
    assert v.verdict is Verdict.CLEAN, v.findings
    assert scan(write(tmp_path, "evil.pt", legacy_tar(MALICIOUS))).verdict is Verdict.MALICIOUS


# -- numpy ----------------------------------------------------------------------------------------


def _npy(arr: np.ndarray[Any, Any]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _object_array() -> np.ndarray[Any, Any]:
    return np.array([1, "a", None, 2.5], dtype=object)


def test_npy_object_array_clean(tmp_path: Path) -> None:
    v = scan(write(tmp_path, "a.npy", _npy(_object_array())))
    assert v.verdict is Verdict.CLEAN, v.findings


def test_npy_object_array_malicious(tmp_path: Path) -> None:
    benign = _npy(_object_array())
    header_end = benign.index(b"\n") + 1
    v = scan(write(tmp_path, "a.npy", benign[:header_end] + MALICIOUS))
    assert v.verdict is Verdict.MALICIOUS


def test_npz_clean_plain_and_object(tmp_path: Path) -> None:
    p = tmp_path / "a.npz"
    np.savez(p, plain=np.arange(10), obj=_object_array())
    assert scan(p).verdict is Verdict.CLEAN
    q = tmp_path / "b.npz"
    np.savez_compressed(q, plain=np.arange(10), obj=_object_array())
    assert scan(q).verdict is Verdict.CLEAN


def test_npz_malicious_member(tmp_path: Path) -> None:
    benign = _npy(_object_array())
    evil = benign[: benign.index(b"\n") + 1] + MALICIOUS
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("plain.npy", _npy(np.arange(4)))
        zf.writestr("obj.npy", evil)
    assert scan(write(tmp_path, "x.npz", buf.getvalue())).verdict is Verdict.MALICIOUS


# -- joblib ---------------------------------------------------------------------------------------


COMPRESS = [0, "zlib", "gzip", "bz2", "xz", "lzma"]


def _joblib_compress(compress: int | str) -> int | tuple[str, int]:
    return compress if isinstance(compress, int) else (compress, 3)


@pytest.mark.parametrize("compress", COMPRESS)
def test_joblib_dumps_of_python_objects_clean(tmp_path: Path, compress: int | str) -> None:
    p = tmp_path / "model.joblib"
    joblib.dump(
        {"names": ["a", "b"], "n": 3, "w": (1.5, None)}, p, compress=_joblib_compress(compress)
    )
    assert sniff(p.read_bytes()[:SNIFF_BYTES], p.stat().st_size) is not None
    v = scan(p)
    assert v.verdict is Verdict.CLEAN, v.findings


@pytest.mark.parametrize("compress", COMPRESS)
def test_joblib_malicious_in_every_variant(tmp_path: Path, compress: int | str) -> None:
    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, ("true",))

    p = tmp_path / "evil.joblib"
    joblib.dump({"model": Evil()}, p, compress=_joblib_compress(compress))  # dumping is safe
    assert scan(p).verdict is Verdict.MALICIOUS


@pytest.mark.parametrize("compress", [0, "gzip"])
def test_joblib_dumps_with_numpy_arrays_clean(tmp_path: Path, compress: int | str) -> None:
    p = tmp_path / "model.joblib"
    obj = {"coef": np.arange(12, dtype=np.float64).reshape(3, 4), "names": ["a", "b"]}
    joblib.dump(obj, p, compress=_joblib_compress(compress))
    v = scan(p)
    assert v.verdict is Verdict.CLEAN, v.findings


@pytest.mark.parametrize(
    "wrap",
    [
        zlib.compress,
        gzip.compress,
        bz2.compress,
        lzma.compress,
        lambda b: lzma.compress(b, format=lzma.FORMAT_ALONE),
        lambda b: b"ZF" + hex(len(b)).encode().ljust(19) + zlib.compress(b),
    ],
    ids=["zlib", "gzip", "bz2", "xz", "lzma", "joblib-zf"],
)
def test_compressed_malicious(tmp_path: Path, wrap: Callable[[bytes], bytes]) -> None:
    assert scan(write(tmp_path, "m.pkl.z", wrap(MALICIOUS))).verdict is Verdict.MALICIOUS
    v = scan(write(tmp_path, "t.pt.z", wrap(torch_zip_bytes(MALICIOUS))))
    assert v.verdict is Verdict.MALICIOUS


def test_gzip_bomb_is_malformed(tmp_path: Path) -> None:
    p = write(tmp_path, "bomb.gz", gzip.compress(bytes(64 * 1024**2)))
    v = scan(p)
    assert v.verdict is Verdict.MALFORMED
    assert "compression.bomb" in rules(v)


def test_truncated_gzip_is_malformed(tmp_path: Path) -> None:
    data = gzip.compress(pickle.dumps(list(range(1000)), protocol=4))
    assert scan(write(tmp_path, "t.gz", data[:-20])).verdict is Verdict.MALFORMED


def test_7z_wrapped(tmp_path: Path) -> None:
    import py7zr  # a runtime dependency: a missing one must fail, not skip

    p = tmp_path / "model.7z"
    with py7zr.SevenZipFile(p, "w") as archive:
        archive.writestr(torch_zip_bytes(MALICIOUS), "model.pt")
        archive.writestr(pickle.dumps([1, 2], protocol=4), "ok.pkl")
    assert sniff(p.read_bytes()[:8]) is Kind.SEVENZ
    assert scan(p).verdict is Verdict.MALICIOUS
    q = tmp_path / "clean.7z"
    with py7zr.SevenZipFile(q, "w") as archive:
        archive.writestr(torch_zip_bytes(), "model.pt")
    assert scan(q).verdict is Verdict.CLEAN


def test_7z_with_a_corrupt_lzma_member_is_malformed_not_a_crash(tmp_path: Path) -> None:
    import py7zr

    p = tmp_path / "model.7z"
    with py7zr.SevenZipFile(p, "w") as archive:
        archive.writestr(pickle.dumps(list(range(100)), protocol=4), "ok.pkl")
    raw = bytearray(p.read_bytes())
    raw[32] ^= 0xFF  # the first byte of the packed LZMA2 stream (right after the 32-byte header)
    v = scan(write(tmp_path, "corrupt.7z", bytes(raw)))
    assert v.verdict is Verdict.MALFORMED, v.findings
    assert rules(v) == {"7z.corrupt"}
    assert "LZMAError" in v.findings[0].message or "Corrupt" in v.findings[0].message


@pytest.mark.parametrize(
    "wrap",
    [
        zlib.compress,
        gzip.compress,
        bz2.compress,
        lzma.compress,
        lambda b: lzma.compress(b, format=lzma.FORMAT_ALONE),
        torch_zip_bytes,
        "7z",
    ],
    ids=["zlib", "gzip", "bz2", "xz", "lzma", "zip", "7z"],
)
def test_damaged_compressed_streams_never_crash_the_scanner(
    tmp_path: Path, wrap: Callable[[bytes], bytes] | str
) -> None:
    # Every single-byte flip of the wrapper: a verdict (often malformed), never a crash.
    body = pickle.dumps(list(range(200)), protocol=4)
    if wrap == "7z":
        import py7zr

        with py7zr.SevenZipFile(tmp_path / "w.7z", "w") as archive:
            archive.writestr(body, "ok.pkl")
        data = (tmp_path / "w.7z").read_bytes()
    else:
        assert callable(wrap)
        data = wrap(body)
    for offset in range(0, len(data), max(1, len(data) // 150)):
        damaged = bytearray(data)
        damaged[offset] ^= 0xFF
        target = Target(write(tmp_path, "d.pt", bytes(damaged)))
        if not SCANNER.applies_to(target):
            continue  # a damaged magic number: not this scanner's file any more
        v = SCANNER.scan(target, LIMITS)
        assert v.verdict is not Verdict.ERROR, (offset, v.findings)
