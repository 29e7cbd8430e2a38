"""A local folder as a mirror source.

Symlinks, devices, FIFOs and sockets are refused (not skipped): a model folder that holds them
is not what it seems. Files are opened with O_NOFOLLOW, so a file swapped for a symlink after
the listing cannot redirect the read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from attestations.manifest import DEFAULT_IGNORED_PATHS
from registry.errors import InputError, UpstreamError
from registry.mirror.base import ByteSink, RemoteFile, Snapshot, SourceSpec, checked_path
from registry.settings import Limits

#: Reads of this size keep the hash loop at the machine's sha256 limit with few syscalls.
READ_SIZE = 4 << 20


class LocalFolderSource:
    def __init__(self, spec: SourceSpec, *, limits: Limits) -> None:
        self.spec = spec
        self.root = Path(spec.repo_id)
        self._limits = limits

    def resolve(self) -> Snapshot:
        files: list[RemoteFile] = []
        total = 0
        for dirpath, dirnames, all_filenames in os.walk(self.root, followlinks=False):
            rel_dir = Path(dirpath).relative_to(self.root)
            filenames = all_filenames
            if rel_dir == Path("."):
                dirnames[:] = [d for d in dirnames if d not in DEFAULT_IGNORED_PATHS]
                filenames = [f for f in filenames if f not in DEFAULT_IGNORED_PATHS]
            dirnames.sort()
            for name in [*dirnames]:
                full = Path(dirpath, name)
                if full.is_symlink():
                    rel = (rel_dir / name).as_posix()
                    raise InputError(f"{self.spec.uri}: refused symlink {ascii(rel)[:120]}")
            for name in sorted(filenames):
                rel = (rel_dir / name).as_posix()
                path = checked_path(rel, where=self.spec.uri)
                st = os.lstat(Path(dirpath, name))
                if stat.S_ISLNK(st.st_mode):
                    raise InputError(f"{self.spec.uri}: refused symlink {ascii(path)[:120]}")
                if not stat.S_ISREG(st.st_mode):
                    raise InputError(f"{self.spec.uri}: refused special file {ascii(path)[:120]}")
                if st.st_size > self._limits.max_file_size:
                    raise InputError(f"{self.spec.uri}: {path} is larger than the file size limit")
                total += st.st_size
                files.append(RemoteFile(path=path, size=st.st_size))
                if len(files) > self._limits.max_files:
                    raise InputError(f"{self.spec.uri}: more than {self._limits.max_files} files")
        if total > self._limits.max_total_size:
            raise InputError(f"{self.spec.uri}: larger than the total size limit")
        # A folder has no commit; the manifest digest pins it, filled in by the service.
        return Snapshot(uri=self.spec.uri, requested_revision=None, commit="", files=tuple(files))

    def fetch(self, snapshot: Snapshot, file: RemoteFile, sink: ByteSink) -> None:
        full = self.root / file.path
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(full, flags)
        except OSError as exc:
            raise UpstreamError(
                f"{snapshot.uri}: {file.path}: cannot open: {exc.strerror}"
            ) from exc
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise InputError(f"{snapshot.uri}: {file.path} is no longer a regular file")
            if sink.resume_offset:
                os.lseek(fd, sink.resume_offset, os.SEEK_SET)
            buf = bytearray(READ_SIZE)
            view = memoryview(buf)
            with os.fdopen(fd, "rb", buffering=0, closefd=False) as f:
                while n := f.readinto(view):
                    sink.write(view[:n])
        except OSError as exc:
            raise UpstreamError(
                f"{snapshot.uri}: {file.path}: read failed: {exc.strerror}"
            ) from exc
        finally:
            os.close(fd)
