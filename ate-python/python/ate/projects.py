"""Codebase projects: ``a.projects`` imports codebases (a directory, or a tar, tar.gz,
tar.zst or zip archive) into immutable, deduplicated, encrypted snapshots, lists and reads
their files, reports languages and statistics, and backs projects up; ``a.analysis`` records
what analyzers found. Both need a client opened with ``storage_url`` and ``master_key``.

>>> import ate, io, os, pathlib, tempfile
>>> a = ate.Ate("sqlite::memory:", storage_url="memory://", master_key=os.urandom(32))
>>> acme = a.tenants.create(slug="acme", name="Acme Corp").id
>>> api = a.projects.create(acme, "billing-api", labels={"team": "payments"})
>>> src = pathlib.Path(tempfile.mkdtemp())
>>> _ = (src / "main.py").write_text("# entry point\\nprint('hi')\\n\\n")
>>> _ = (src / "README.md").write_text("# Billing\\n")
>>> seen = []
>>> snap = a.projects.import_dir(acme, api.id, src, label="v1", progress=seen.append)
>>> (snap.files, len(seen), seen[-1].files)
(2, 2, 2)
>>> [(l.language, l.files, l.code, l.comments, l.blanks) for l in snap.languages]
[('Python', 1, 1, 1, 1), ('Markdown', 1, 0, 1, 0)]
>>> [f.path for f in a.projects.files(acme, snap.id, language="Python")]
['main.py']
>>> with a.projects.open_file(acme, snap.id, "main.py") as f:
...     _ = f.seek(14)
...     f.read(5)
b'print'
>>> result = a.analysis.create(acme, api.id, "lint", "ruff", "0.8.0", snapshot_id=snap.id)
>>> _ = a.analysis.put_payload(acme, result.id, "report.json", b'{"ok": true}',
...                            content_type="application/json")
>>> a.analysis.update(acme, result.id, status="succeeded", summary={"findings": 0}).status
'succeeded'
>>> a.analysis.read_payload(acme, result.id, "report.json")
b'{"ok": true}'

Imports are atomic: a failed, refused or interrupted import (a hostile archive, a quota
exceeded, an exception from the ``progress`` callback, which is then re-raised) leaves no
snapshot and charges nothing. ``import_archive`` takes a path or a binary file object and
streams it (bounded memory); ``format`` (``"tar"``, ``"tar.gz"``, ``"tar.zst"``,
``"zip"``) is detected from the first bytes when not given. ``export_tar`` writes a
snapshot back as a tar stream, ``backup``/``restore`` move a whole project (snapshots,
analysis results and payloads) through a file sealed under a 32-byte key the operator
keeps, into any ATE database and blob store.

Every call acts as the client's principal: ``projects:read``, ``projects:write``,
``projects:delete``, ``analysis:read``, ``analysis:write``, ``analysis:delete``,
``backup:export`` and ``backup:restore`` in the project's tenant; another tenant's projects
are ``ate.NotFoundError`` or ``ate.PermissionDeniedError``. ``ate.AsyncAte`` offers the same
methods as awaitables (``AsyncProjects``, ``AsyncAnalysis``; ``open_file`` gives an
``AsyncSnapshotFile``).

``a.projects.verify(tenant_id, project_id=None, read_all=False, repair=False, grace=None)``
is the operator's integrity check of a tenant's projects (a platform administrator's task):
every pack has its blob of the recorded size (``read_all``: SHA-256), every chunk lies inside
its pack under a usable key, every snapshot file lists indexed chunks adding up to its size
(``read_all``: every file is read back and compared with its SHA-256), snapshot totals and
the project's stored bytes (what the quota is charged) match what exists, analysis payloads
have their blobs and authenticate, and pack or payload blobs nothing records are orphans. It
returns an ``ate.VerifyReport`` (the one ``a.storage.verify`` returns for objects) and changes
nothing unless ``repair=True``, which deletes orphan blobs older than ``grace``.
"""

from __future__ import annotations

import io
import os
from typing import Any

from ate._ate import (
    AnalysisPage,
    AnalysisResult,
    Analysis,
    AsyncAnalysis,
    AsyncProjects,
    BackupSummary,
    DirectoryStats,
    FileEntry,
    FilePage,
    ImportProgress,
    LanguageStats,
    Payload,
    Project,
    ProjectPage,
    Projects,
    ProjectStats,
    RestoreReport,
    Snapshot,
    SnapshotDiff,
    SnapshotPage,
    TenantUsage,
)

__all__ = [
    "Projects",
    "AsyncProjects",
    "Analysis",
    "AsyncAnalysis",
    "Project",
    "ProjectPage",
    "Snapshot",
    "SnapshotPage",
    "LanguageStats",
    "DirectoryStats",
    "FileEntry",
    "FilePage",
    "SnapshotDiff",
    "ProjectStats",
    "TenantUsage",
    "ImportProgress",
    "AnalysisResult",
    "AnalysisPage",
    "Payload",
    "BackupSummary",
    "RestoreReport",
    "SnapshotFile",
    "AsyncSnapshotFile",
]


def _new_position(position: int, size: int, offset: int, whence: int) -> int:
    if whence == os.SEEK_SET:
        target = offset
    elif whence == os.SEEK_CUR:
        target = position + offset
    elif whence == os.SEEK_END:
        target = size + offset
    else:
        raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
    if target < 0:
        raise ValueError(f"negative seek position {target}")
    return target


class SnapshotFile(io.RawIOBase):
    """One file of a snapshot as a read-only, seekable raw binary file. Each read fetches
    only the chunks it covers. ``a.projects.open_file`` wraps it in an
    ``io.BufferedReader``."""

    def __init__(self, projects: Projects, tenant_id: str, snapshot_id: str, path: str, size: int):
        super().__init__()
        self._projects = projects
        self._tenant_id = tenant_id
        self._snapshot_id = snapshot_id
        self.name = path
        self.size = size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()  # type: ignore[attr-defined]
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._checkClosed()  # type: ignore[attr-defined]
        self._position = _new_position(self._position, self.size, offset, whence)
        return self._position

    #: The most one call fetches (the store refuses reads over 64 MiB at once).
    READ_PIECE = 8 << 20

    def _fetch(self, wanted: int) -> bytes:
        wanted = min(wanted, self.size - self._position, self.READ_PIECE)
        if wanted <= 0:
            return b""
        data = self._projects.read_file(
            self._tenant_id, self._snapshot_id, self.name,
            start=self._position, end=self._position + wanted,
        )
        self._position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        self._checkClosed()  # type: ignore[attr-defined]
        view = memoryview(buffer).cast("B")
        data = self._fetch(len(view))
        view[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        """The rest of the file, fetched in pieces of up to ``READ_PIECE`` bytes (not the
        8 KiB at a time of ``io.RawIOBase.readall``)."""
        self._checkClosed()  # type: ignore[attr-defined]
        pieces = []
        while True:
            data = self._fetch(self.READ_PIECE)
            if not data:
                return b"".join(pieces)
            pieces.append(data)

    def __repr__(self) -> str:
        return f"SnapshotFile(path={self.name!r}, size={self.size})"


class AsyncSnapshotFile:
    """One file of a snapshot for asyncio: ``await f.read(n)``, ``f.seek``, ``f.tell``,
    ``async with``. Each read fetches only the chunks it covers."""

    #: The most one ``read()`` without a size fetches at a time.
    READ_PIECE = 8 << 20

    def __init__(self, projects: AsyncProjects, tenant_id: str, snapshot_id: str, path: str, size: int):
        self._projects = projects
        self._tenant_id = tenant_id
        self._snapshot_id = snapshot_id
        self.name = path
        self.size = size
        self._position = 0
        self.closed = False

    def _check(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file.")

    def tell(self) -> int:
        self._check()
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check()
        self._position = _new_position(self._position, self.size, offset, whence)
        return self._position

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes from the current position (all the rest if negative)."""
        self._check()
        left = max(0, self.size - self._position)
        wanted = left if size is None or size < 0 else min(size, left)
        pieces = []
        while wanted > 0:
            n = min(wanted, self.READ_PIECE)
            data = await self._projects.read_file(
                self._tenant_id, self._snapshot_id, self.name,
                start=self._position, end=self._position + n,
            )
            if not data:
                break
            pieces.append(data)
            self._position += len(data)
            wanted -= len(data)
        return b"".join(pieces)

    async def close(self) -> None:
        self.closed = True

    async def __aenter__(self) -> "AsyncSnapshotFile":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncSnapshotFile(path={self.name!r}, size={self.size})"


def _open_file(projects: Projects, tenant_id: str, snapshot_id: str, path: str, size: int) -> io.BufferedReader:
    return io.BufferedReader(SnapshotFile(projects, tenant_id, snapshot_id, path, size), buffer_size=1 << 20)


def _open_async_file(
    projects: AsyncProjects, tenant_id: str, snapshot_id: str, path: str, size: int
) -> AsyncSnapshotFile:
    return AsyncSnapshotFile(projects, tenant_id, snapshot_id, path, size)

