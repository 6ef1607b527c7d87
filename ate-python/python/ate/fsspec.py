"""ATE's encrypted storage as an fsspec filesystem (protocol ``ate``), for pandas, polars,
pyarrow, DuckDB and anything else that opens files through fsspec.

>>> import ate, fsspec, os, tempfile
>>> key = os.urandom(32)
>>> db = "sqlite://" + os.path.join(tempfile.mkdtemp(), "ate.db")
>>> a = ate.Ate(db, storage_url="memory://", master_key=key)
>>> _ = a.tenants.create(slug="acme", name="Acme Corp")
>>> fs = fsspec.filesystem("ate", client=a)
>>> with fs.open("ate://acme/reports/q3.csv", "wb") as f:   # encrypted as it is written
...     _ = f.write(b"region,total\\nemea,42\\n")
>>> fs.ls("acme/reports", detail=False)
['acme/reports/q3.csv']
>>> fs.cat_file("ate://acme/reports/q3.csv", start=0, end=6)   # decrypts one chunk
b'region'

**Paths.** ``ate://<tenant>/<path>`` addresses the object at ``<path>`` of a tenant, named
by its slug or id. Directories are implied by object paths (``a/b/c.csv`` makes ``a`` and
``a/b``); there are no empty ones, so ``mkdir`` does nothing. Read-only, a project's
snapshot files are ``ate://<tenant>/projects/<project>/<snapshot>/<path>``, with the
project named by its name or id and the snapshot by its id or ``latest`` (the newest). The
``projects`` directory at a tenant's top level is that tree: objects whose path starts with
``projects/`` are reachable through ``a.storage``, not through this filesystem.

**Configuration** (keywords, or pandas' and polars' ``storage_options``): either
``client=`` an existing ``ate.Ate`` (a view from ``a.acting_as(principal)`` acts as that
principal), or ``database_url``, ``storage_url`` and ``master_key`` (32 bytes or, better, a
key file path: the keywords are the filesystem's identity and stay in memory with it) plus
the principal to act as: ``token=`` an access token (verified with ``auth_issuer`` and
``auth_audience`` at every call, so an expired or revoked token stops working) or
``principal=`` an ``ate.Principal`` the host verified (used as given); with neither, the
filesystem acts as the platform administrator ``actor`` (default ``"system:fsspec"``).
Clients opened from keywords are shared by every filesystem with the same keywords.

Every permission check applies: a user reaches only its own tenant (another tenant's path
raises ``PermissionError``), with the permissions it holds there (``storage:read`` to read,
``storage:write`` to write, ``storage:delete`` to remove).

**Reads** are random access: a file opened in ``rb`` fetches only the byte ranges it is asked
for (a read smaller than ``block_size``, 512 KiB by default, fetches that much ahead) and ATE
decrypts only the 16 KiB chunks those ranges touch, so a Parquet reader that projects one
column reads about that column. An open file reads the version it opened: if the object is
replaced or deleted meanwhile, its next read raises ``ate.ConflictError`` instead of mixing
two versions. An object's entry (what ``info`` and ``open`` look up) is reused for up to
``info_cache_seconds`` (1 by default; ``0`` looks it up every time), so a reader that asks
for it several times per file (pyarrow: five times per ``read_table``) pays for one lookup.
Writes through the filesystem and ``invalidate_cache`` drop it at once; a change made
through another handle is seen within that time, and a file opened from an entry that has
since been replaced raises ``ate.ConflictError`` on its first read (never the old bytes
mixed with new ones). **Writes** (``wb``) stream: each block is encrypted and uploaded as it fills, and the
object appears at its path only when the file is closed; leaving a ``with`` block by an
exception discards it. ``mv`` copies then removes (objects are encrypted under their own id,
so a move re-encrypts).

Errors are the builtin exceptions fsspec users expect: ``FileNotFoundError``,
``PermissionError``, ``IsADirectoryError``, ``NotADirectoryError`` and ``ValueError`` for bad
paths; the ATE error is chained as ``__cause__``.
"""

from __future__ import annotations

import errno
import hashlib
import mimetypes
import os
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from fsspec.caching import BaseCache
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

import ate
from ate._errors import NotFoundError

__all__ = ["AteFileSystem", "AteFile"]

#: The top-level directory of each tenant that holds its projects' snapshots.
PROJECTS = "projects"
_PAGE = 1000
_DEFAULT_BLOCK = 512 * 1024


class _Entries:
    """Object entries (``ObjectInfo``) by (tenant id, key), each kept for ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}

    def get(self, tenant: str, key: str) -> Any:
        if self.seconds <= 0:
            return None
        with self._lock:
            hit = self._entries.get((tenant, key))
            if hit is None:
                return None
            if time.monotonic() >= hit[0]:
                del self._entries[(tenant, key)]
                return None
            return hit[1]

    def put(self, tenant: str, key: str, entry: Any) -> None:
        if self.seconds <= 0:
            return
        with self._lock:
            if len(self._entries) >= _PAGE:  # bound the memory: drop what has expired
                now = time.monotonic()
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) < _PAGE:
                self._entries[(tenant, key)] = (time.monotonic() + self.seconds, entry)

    def drop(self, tenant: Optional[str] = None, key: Optional[str] = None) -> None:
        """Forgets one entry, every entry under ``key`` (a directory), or everything."""
        with self._lock:
            if tenant is None:
                self._entries.clear()
                return
            self._entries = {
                (t, k): v
                for (t, k), v in self._entries.items()
                if t != tenant or not (key is None or k == key or k.startswith(key + "/"))
            }


@dataclass(frozen=True)
class _Where:
    """What a path names, once resolved."""

    kind: str  # root | tenant | object | projects | project | snapshot | snapfile
    seg: str = ""  # the tenant segment as written (slug or id)
    tenant: str = ""  # the tenant id
    key: str = ""  # object path, or path inside a snapshot
    project: str = ""  # project segment as written
    project_id: str = ""
    snapshot: str = ""  # snapshot segment as written
    snapshot_id: str = ""

    @property
    def read_only(self) -> bool:
        return self.kind in ("root", "tenant", "projects", "project", "snapshot", "snapfile")

    @property
    def base(self) -> str:
        """The path of this location's snapshot (for snapshot files) or tenant."""
        if self.kind in ("snapshot", "snapfile"):
            return f"{self.seg}/{PROJECTS}/{self.project}/{self.snapshot}"
        return self.seg


def _not_found(path: str, cause: Optional[BaseException] = None) -> FileNotFoundError:
    e = FileNotFoundError(errno.ENOENT, f"no such file or directory: {path!r}", path)
    e.__cause__ = cause
    return e


@contextmanager
def _translated(path: str) -> Iterator[None]:
    """ATE's not-found as ``FileNotFoundError`` (the others already derive from builtins)."""
    try:
        yield
    except NotFoundError as e:
        raise _not_found(path, e) from e


def _is_uuid(s: str) -> bool:
    try:
        uuid.UUID(s)
        return True
    except ValueError:
        return False


class _AteCached(type(AbstractFileSystem)):  # type: ignore[misc]
    """fsspec's instance cache keys instances by the text of their arguments: a client or
    principal object is not identified by its text, so those instances are not cached."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("client") is not None or kwargs.get("principal") is not None:
            kwargs["skip_instance_cache"] = True
        return super().__call__(*args, **kwargs)


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def _shared_client(options: dict[str, Any]) -> Any:
    """One client per set of connection keywords, shared by every filesystem using them."""
    digest = hashlib.sha256(repr(sorted(options.items())).encode()).hexdigest()
    with _clients_lock:
        client = _clients.get(digest)
        if client is None:
            database_url = options.pop("database_url")
            client = ate.Ate(database_url, **options)
            _clients[digest] = client
        return client


class AteFileSystem(AbstractFileSystem, metaclass=_AteCached):
    """ATE's encrypted objects and snapshot files as an fsspec filesystem (see the module
    documentation for paths and keywords)."""

    protocol = "ate"
    root_marker = ""

    def __init__(
        self,
        database_url: Optional[str] = None,
        *,
        client: Any = None,
        storage_url: Optional[str] = None,
        master_key: Any = None,
        retired_master_keys: Any = None,
        token: Optional[str] = None,
        principal: Any = None,
        auth_issuer: Optional[str] = None,
        auth_audience: Optional[str] = None,
        actor: str = "system:fsspec",
        key_cache_seconds: float = 1.0,
        info_cache_seconds: float = 1.0,
        block_size: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if client is not None:
            if database_url is not None or storage_url is not None or master_key is not None:
                raise ValueError("pass either client= or database_url/storage_url/master_key, not both")
        else:
            if not database_url or not storage_url or master_key is None:
                raise ValueError(
                    "the ate filesystem needs client= (an ate.Ate) or database_url, storage_url "
                    "and master_key"
                )
            options: dict[str, Any] = {
                "database_url": database_url,
                "storage_url": storage_url,
                "master_key": master_key,
                "actor": actor,
                "key_cache_seconds": key_cache_seconds,
            }
            if retired_master_keys is not None:
                options["retired_master_keys"] = tuple(retired_master_keys)
            if auth_issuer is not None or auth_audience is not None:
                options["auth_issuer"] = auth_issuer
                options["auth_audience"] = auth_audience
            client = _shared_client(options)
        if token is not None and principal is not None:
            raise ValueError("pass either token= or principal=, not both")
        self._base = client
        self._token = token
        self._fixed = client if principal is None else client.acting_as(principal)
        if token is not None:
            self._base.auth.verify(token)  # a bad token fails here, not at the first read
        self.blocksize = block_size or _DEFAULT_BLOCK
        self._entries = _Entries(float(info_cache_seconds))
        self._slugs: dict[str, str] = {}
        self._slugs_lock = threading.Lock()

    # -- paths -------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]  # type: ignore[return-value]
        path = str(path)
        for prefix in ("ate://", "ate::"):
            if path.startswith(prefix):
                path = path[len(prefix) :]
        return path.strip("/")

    def unstrip_protocol(self, name: str) -> str:
        return f"ate://{self._strip_protocol(name)}"

    @property
    def client(self) -> Any:
        """The ``ate.Ate`` every call goes through, acting as the filesystem's principal.
        With ``token=``, the token is verified again for each call (cheap: ATE's
        verification cache), so an expired or revoked token stops working at once."""
        if self._token is None:
            return self._fixed
        return self._base.acting_as(self._base.auth.verify(self._token))

    @property
    def principal(self) -> Any:
        """The principal every call acts as."""
        return self.client.principal

    def _tenant_id(self, seg: str, path: str) -> str:
        if _is_uuid(seg):
            return seg
        with self._slugs_lock:
            known = self._slugs.get(seg)
        if known is not None:
            return known
        try:
            tenant = self.client.tenants.get_by_slug(seg)
        except NotFoundError as e:
            own = self.principal.tenant_id
            if own is not None:
                raise PermissionError(
                    errno.EACCES,
                    f"{self.principal.subject} acts in tenant {own} only; {path!r} names "
                    f"another tenant",
                    path,
                ) from e
            raise _not_found(path, e) from e
        except ate.PermissionDeniedError as e:
            raise PermissionError(
                errno.EACCES,
                f"resolving the tenant slug {seg!r} needs tenant:read; name the tenant by "
                f"its id in the path instead ({e})",
                path,
            ) from e
        with self._slugs_lock:
            self._slugs[seg] = tenant.id
        return tenant.id

    def _where(self, path: str) -> _Where:
        path = self._strip_protocol(path)
        if not path:
            return _Where("root")
        seg, _, rest = path.partition("/")
        tenant = self._tenant_id(seg, path)
        if not rest:
            return _Where("tenant", seg, tenant)
        if rest != PROJECTS and not rest.startswith(PROJECTS + "/"):
            return _Where("object", seg, tenant, key=rest)
        parts = rest.split("/", 3)[1:]
        if not parts:
            return _Where("projects", seg, tenant)
        projects = self.client.projects
        with _translated(path):
            if _is_uuid(parts[0]):
                project_id = projects.get(tenant, parts[0]).id
            else:
                project_id = projects.get_by_name(tenant, parts[0]).id
        if len(parts) == 1:
            return _Where("project", seg, tenant, project=parts[0], project_id=project_id)
        snapshot_id = self._snapshot_id(tenant, project_id, parts[1], path)
        return _Where(
            "snapfile" if len(parts) == 3 else "snapshot",
            seg,
            tenant,
            key=parts[2] if len(parts) == 3 else "",
            project=parts[0],
            project_id=project_id,
            snapshot=parts[1],
            snapshot_id=snapshot_id,
        )

    def _snapshot_id(self, tenant: str, project_id: str, seg: str, path: str) -> str:
        projects = self.client.projects
        with _translated(path):
            if seg == "latest":
                page = projects.snapshots(tenant, project_id, limit=1)
                if not page.items:
                    raise _not_found(path)
                return page.items[0].id
            if not _is_uuid(seg):
                raise _not_found(path)
            snap = projects.snapshot(tenant, seg)
        if snap.project_id != project_id:
            raise _not_found(path)
        return snap.id

    @contextmanager
    def _changing(self, where: _Where) -> Iterator[None]:
        """Around a write of ``where``: its known entry is dropped once the write is over
        (whether it succeeded or not), so the next lookup sees what the write did."""
        try:
            yield
        finally:
            self._entries.drop(where.tenant, where.key)

    def invalidate_cache(self, path: Optional[str] = None) -> None:
        """Forgets the object entries kept for ``info``/``open`` (all of them, or those of
        ``path`` and below)."""
        super().invalidate_cache(path)
        name = None if path is None else self._strip_protocol(path)
        if not name:
            self._entries.drop()
            return
        seg, _, rest = name.partition("/")
        try:
            tenant = self._tenant_id(seg, name)
        except PermissionError:
            return  # nothing of another tenant is kept
        self._entries.drop(tenant, rest or None)

    def _writable(self, path: str) -> _Where:
        where = self._where(path)
        if where.kind != "object":
            raise PermissionError(
                errno.EROFS,
                f"{self._strip_protocol(path) or 'the root'!r} is read-only: objects live "
                f"under ate://<tenant>/<path>, and snapshots cannot be changed",
                path,
            )
        return where

    # -- entries -----------------------------------------------------------------------

    @staticmethod
    def _dir(name: str) -> dict[str, Any]:
        return {"name": name, "size": 0, "type": "directory"}

    @staticmethod
    def _object_info(seg: str, o: Any) -> dict[str, Any]:
        return {
            "name": f"{seg}/{o.path}",
            "size": o.size,
            "type": "file",
            "created": o.created_at,
            "mtime": o.updated_at,
            "content_type": o.content_type,
            "sha256": o.sha256,
            "key_version": o.key_version,
            "metadata": o.metadata,
        }

    @staticmethod
    def _snapfile_info(base: str, f: Any) -> dict[str, Any]:
        return {
            "name": f"{base}/{f.path}",
            "size": f.size,
            "type": "file" if f.kind == "file" else "other",
            "kind": f.kind,
            "sha256": f.sha256,
            "language": f.language,
            "mode": f.mode,
        }

    def _objects(self, tenant: str, prefix: str) -> Iterator[Any]:
        storage, cursor = self.client.storage, None
        while True:
            page = storage.list(tenant, prefix, limit=_PAGE, cursor=cursor)
            yield from page.items
            cursor = page.next_cursor
            if cursor is None:
                return

    def _snapfiles(self, where: _Where, prefix: str) -> Iterator[Any]:
        projects, cursor = self.client.projects, None
        while True:
            page = projects.files(
                where.tenant, where.snapshot_id, path_prefix=prefix or None, limit=_PAGE, cursor=cursor
            )
            yield from page.items
            cursor = page.next_cursor
            if cursor is None:
                return

    # -- listing -----------------------------------------------------------------------

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        name = self._strip_protocol(path)
        with _translated(name):
            where = self._where(name)
            entries = self._ls(name, where)
        if not entries and where.kind in ("object", "snapfile"):
            with _translated(name):  # a file lists as itself; a missing path raises
                entries = [self._info(name, where)[0]]
        entries.sort(key=lambda e: e["name"])
        return entries if detail else [e["name"] for e in entries]

    def _ls(self, name: str, where: _Where) -> list[dict[str, Any]]:
        if where.kind == "root":
            return [self._dir(s) for s in self._tenant_segments()]
        if where.kind in ("tenant", "object"):
            entries = self._ls_objects(where)
            if where.kind == "tenant" and self._has_projects(where.tenant):
                entries.append(self._dir(f"{where.seg}/{PROJECTS}"))
            return entries
        projects = self.client.projects
        if where.kind == "projects":
            out, cursor = [], None
            while True:
                page = projects.list(where.tenant, limit=_PAGE, cursor=cursor)
                out += [self._dir(f"{name}/{p.name}") for p in page.items]
                cursor = page.next_cursor
                if cursor is None:
                    return out
        if where.kind == "project":
            out, cursor = [], None
            while True:
                page = projects.snapshots(where.tenant, where.project_id, limit=_PAGE, cursor=cursor)
                out += [self._dir(f"{name}/{s.id}") for s in page.items]
                cursor = page.next_cursor
                if cursor is None:
                    return out
        prefix = f"{where.key}/" if where.key else ""
        files: list[dict[str, Any]] = []
        dirs: set[str] = set()
        for f in self._snapfiles(where, prefix):
            rest = f.path[len(prefix) :]
            if "/" in rest:
                dirs.add(f"{where.base}/{prefix}{rest.split('/', 1)[0]}")
            else:
                files.append(self._snapfile_info(where.base, f))
        return files + [self._dir(d) for d in sorted(dirs)]

    def _ls_objects(self, where: _Where) -> list[dict[str, Any]]:
        prefix = f"{where.key}/" if where.key else ""
        out: list[dict[str, Any]] = []
        storage, cursor = self.client.storage, None
        while True:
            page = storage.list_dir(where.tenant, prefix, limit=_PAGE, cursor=cursor)
            out += [self._object_info(where.seg, o) for o in page.objects]
            out += [
                self._dir(f"{where.seg}/{d.rstrip('/')}")
                for d in page.directories
                if prefix or d != PROJECTS + "/"
            ]
            cursor = page.next_cursor
            if cursor is None:
                return out

    def _tenant_segments(self) -> list[str]:
        own = self.principal.tenant_id
        if own is not None and not self.principal.is_platform_admin:
            try:
                return [self.client.tenants.get(own).slug]
            except (ate.PermissionDeniedError, NotFoundError):
                return [own]
        out, cursor = [], None
        while True:
            page = self.client.tenants.list(status="active", limit=_PAGE, cursor=cursor)
            out += [t.slug for t in page.items]
            cursor = page.next_cursor
            if cursor is None:
                return out

    def _has_projects(self, tenant: str) -> bool:
        try:
            return len(self.client.projects.list(tenant, limit=1)) > 0
        except (ate.PermissionDeniedError, ate.InvalidInputError):
            return False  # not allowed to see them, or no storage for projects

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        name = self._strip_protocol(path)
        with _translated(name):
            return self._info(name, self._where(name))[0]

    def _info(self, name: str, where: _Where) -> tuple[dict[str, Any], Any]:
        """``info`` of a resolved location and, for an object, its ``ObjectInfo`` (the
        version it is now), else ``None``."""
        if where.kind in ("root", "tenant", "projects", "project", "snapshot"):
            return self._dir(name), None
        client = self.client  # with token=, verified here even when the entry is known
        if where.kind == "object":
            known = self._entries.get(where.tenant, where.key)
            if known is not None:
                return self._object_info(where.seg, known), known
            try:
                o = client.storage.stat(where.tenant, where.key)
                self._entries.put(where.tenant, where.key, o)
                return self._object_info(where.seg, o), o
            except NotFoundError:
                page = client.storage.list_dir(where.tenant, where.key + "/", limit=1)
                if page.objects or page.directories:
                    return self._dir(name), None
                raise
        try:
            entry = client.projects.file(where.tenant, where.snapshot_id, where.key)
            return self._snapfile_info(where.base, entry), None
        except NotFoundError:
            page = client.projects.files(where.tenant, where.snapshot_id, path_prefix=where.key + "/", limit=1)
            if len(page):
                return self._dir(name), None
            raise

    def find(
        self,
        path: str,
        maxdepth: Optional[int] = None,
        withdirs: bool = False,
        detail: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Everything below `path`. Object trees and snapshot trees are read with one flat
        listing (not one per directory)."""
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        name = self._strip_protocol(path)
        with _translated(name):
            where = self._where(name)
        if where.kind not in ("object", "snapshot", "snapfile"):
            return super().find(name, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs)
        prefix = f"{where.key}/" if where.key else ""
        base = f"{where.base}/{prefix}".rstrip("/")
        with _translated(name):
            if where.kind == "object":
                items = [
                    (o.path[len(prefix) :], self._object_info(where.seg, o))
                    for o in self._objects(where.tenant, prefix)
                ]
            else:
                items = [
                    (f.path[len(prefix) :], self._snapfile_info(where.base, f))
                    for f in self._snapfiles(where, prefix)
                ]
        out: dict[str, dict[str, Any]] = {}
        for rest, entry in items:
            parts = rest.split("/")
            if maxdepth is not None and len(parts) > maxdepth:
                if withdirs:
                    for depth in range(1, maxdepth + 1):
                        d = f"{base}/{'/'.join(parts[:depth])}"
                        out.setdefault(d, self._dir(d))
                continue
            if withdirs:
                for depth in range(1, len(parts)):
                    d = f"{base}/{'/'.join(parts[:depth])}"
                    out.setdefault(d, self._dir(d))
            out[entry["name"]] = entry
        if out and withdirs and where.key:
            out[name] = self._dir(name)
        if not out:
            try:
                entry = self.info(name)
                if entry["type"] == "file":
                    out[name] = entry
            except FileNotFoundError:
                pass
        names = sorted(out)
        return {n: out[n] for n in names} if detail else names

    def exists(self, path: str, **kwargs: Any) -> bool:
        try:
            self.info(path)
            return True
        except FileNotFoundError:
            return False

    def created(self, path: str) -> Any:
        return self.info(path).get("created")

    def modified(self, path: str) -> Any:
        return self.info(path).get("mtime")

    def ukey(self, path: str) -> str:
        info = self.info(path)
        return str(info.get("sha256") or info["name"])

    # -- reading -----------------------------------------------------------------------

    def _read(self, where: _Where, start: int, end: int, handle: Any = None) -> bytes:
        """Bytes ``[start, end)``: of the object version ``handle`` (an ``ObjectInfo``) when
        given, else of whatever the path names now."""
        if end <= start:
            return b""
        if handle is not None:
            return self.client.storage.get_range_of(handle, start, end)
        if where.kind == "object":
            return self.client.storage.get_range(where.tenant, where.key, start, end)
        return self.client.projects.read_file(where.tenant, where.snapshot_id, where.key, start=start, end=end)

    def _file(self, path: str) -> tuple[_Where, dict[str, Any], Any]:
        """A readable file's location, info and, for an object, the version it is now (its
        ``ObjectInfo``, so later reads see that version); a directory raises
        ``IsADirectoryError``."""
        where = self._where(path)
        info, handle = self._info(path, where)
        if info["type"] == "directory":
            raise IsADirectoryError(errno.EISDIR, f"is a directory: {path!r}", path)
        if info["type"] != "file":
            raise OSError(errno.EINVAL, f"not a regular file: {path!r} ({info.get('kind')})", path)
        return where, info, handle

    def cat_file(
        self, path: str, start: Optional[int] = None, end: Optional[int] = None, **kwargs: Any
    ) -> bytes:
        name = self._strip_protocol(path)
        with _translated(name):
            where, info, handle = self._file(name)
            size = info["size"]
            lo = 0 if start is None else (max(size + start, 0) if start < 0 else min(start, size))
            hi = size if end is None else (max(size + end, 0) if end < 0 else min(end, size))
            return self._read(where, lo, hi, handle)

    def get_file(self, rpath: str, lpath: str, callback: Any = None, outfile: Any = None, **kwargs: Any) -> None:
        name = self._strip_protocol(rpath)
        if outfile is None and self.isdir(name):
            os.makedirs(lpath, exist_ok=True)
            return
        with _translated(name):
            where, _, _ = self._file(name)
            if where.kind != "object":
                return super().get_file(name, lpath, callback=callback, outfile=outfile, **kwargs)
            if outfile is not None:
                self.client.storage.download(where.tenant, where.key, outfile)
                return
            os.makedirs(os.path.dirname(os.path.abspath(lpath)), exist_ok=True)
            with open(lpath, "wb") as f:
                self.client.storage.download(where.tenant, where.key, f)

    # -- writing -----------------------------------------------------------------------

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        name = self._strip_protocol(path)
        where = self._writable(name)
        if mode == "create" and self.exists(name):
            raise FileExistsError(errno.EEXIST, f"file exists: {name!r}", name)
        with _translated(name), self._changing(where):
            self.client.storage.put(where.tenant, where.key, value, content_type=_content_type(name))

    def put_file(self, lpath: str, rpath: str, callback: Any = None, mode: str = "overwrite", **kwargs: Any) -> None:
        if os.path.isdir(lpath):
            return  # directories are implied by the objects under them
        name = self._strip_protocol(rpath)
        where = self._writable(name)
        if mode == "create" and self.exists(name):
            raise FileExistsError(errno.EEXIST, f"file exists: {name!r}", name)
        with open(lpath, "rb") as f, _translated(name), self._changing(where):
            self.client.storage.put(where.tenant, where.key, f, content_type=_content_type(name))

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        src, dst = self._strip_protocol(path1), self._strip_protocol(path2)
        target = self._writable(dst)
        with _translated(src), self._changing(target):
            try:
                where, info, handle = self._file(src)
            except IsADirectoryError:
                return  # directories are implied by the objects copied into them
            if where.kind == "object" and where.tenant == target.tenant:
                self.client.storage.copy(where.tenant, where.key, target.key)
                return
            writer = self.client.storage.writer(
                target.tenant, target.key, content_type=info.get("content_type") or _content_type(dst)
            )
            with writer:
                offset = 0
                while offset < info["size"]:
                    piece = self._read(where, offset, min(offset + (8 << 20), info["size"]), handle)
                    writer.write(piece)
                    offset += len(piece)

    def rm_file(self, path: str) -> None:
        name = self._strip_protocol(path)
        where = self._writable(name)
        with _translated(name), self._changing(where):
            self.client.storage.delete(where.tenant, where.key)

    def rm(self, path: Any, recursive: bool = False, maxdepth: Optional[int] = None) -> None:
        paths = self.expand_path(path, recursive=recursive, maxdepth=maxdepth)
        for p in paths:
            self._writable(p)
        for p in reversed(paths):
            try:
                self.rm_file(p)
            except FileNotFoundError:
                pass  # a directory, gone with the objects under it (or removed meanwhile)

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self._writable(path)  # directories exist through the objects under them

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self._writable(path)

    def rmdir(self, path: str) -> None:
        self._writable(path)
        if self.ls(path):
            raise OSError(errno.ENOTEMPTY, f"directory not empty: {path!r}", path)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: Any = None,
        autocommit: bool = True,
        cache_options: Optional[dict[str, Any]] = None,
        **kwargs: Any,
    ) -> "AteFile":
        return AteFile(
            self,
            path,
            mode=mode,
            block_size=block_size or self.blocksize,
            autocommit=autocommit,
            cache_options=cache_options,
            **kwargs,
        )


def _content_type(path: str) -> Optional[str]:
    return mimetypes.guess_type(path)[0]


class _ReadAhead(BaseCache):
    """The default cache of ``AteFile``: a read smaller than ``blocksize`` fetches a block
    from its start (so a run of small sequential reads costs one fetch per block); a larger
    read fetches exactly what it asks for, with no read-ahead and no copy through the cache
    (random access such as a Parquet reader's column chunks reads only those bytes)."""

    name = "ate"

    def __init__(self, blocksize: int, fetcher: Any, size: int) -> None:
        super().__init__(blocksize, fetcher, size)
        self.cache = b""
        self.start = 0

    def _fetch(self, start: Optional[int], stop: Optional[int]) -> bytes:
        start = 0 if start is None else max(start, 0)
        stop = self.size if stop is None else min(stop, self.size)
        if start >= stop:
            return b""
        cached_end = self.start + len(self.cache)
        if self.start <= start and stop <= cached_end:
            self.hit_count += 1
            return self.cache[start - self.start : stop - self.start]
        self.miss_count += 1
        if stop - start >= self.blocksize:
            self.total_requested_bytes += stop - start
            return self.fetcher(start, stop)
        end = min(self.size, start + self.blocksize)
        self.total_requested_bytes += end - start
        self.cache = self.fetcher(start, end)
        self.start = start
        return self.cache[: stop - start]


class AteFile(AbstractBufferedFile):
    """A file of ``AteFileSystem``: random-access reads (``rb``) that fetch only the ranges
    asked for, or a streamed, encrypted put (``wb``) that appears at its path on close."""

    fs: AteFileSystem

    def __init__(
        self,
        fs: AteFileSystem,
        path: str,
        mode: str = "rb",
        block_size: Any = "default",
        autocommit: bool = True,
        cache_type: str = "ate",
        cache_options: Optional[dict[str, Any]] = None,
        content_type: Optional[str] = None,
        metadata: Optional[dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        if mode not in ("rb", "wb", "xb"):
            raise ValueError(f"the ate filesystem opens files in 'rb', 'wb' or 'xb' mode, not {mode!r}")
        name = fs._strip_protocol(path)
        self._writer: Any = None
        self._handle: Any = None
        self._content_type = content_type or _content_type(name)
        self._metadata = metadata
        if mode == "rb":
            with _translated(name):
                self._where, info, self._handle = fs._file(name)
            kwargs["size"] = info["size"]
            self.details = info
        else:
            self._where = fs._writable(name)
            if mode == "xb" and fs.exists(name):
                raise FileExistsError(errno.EEXIST, f"file exists: {name!r}", name)
            mode = "wb"
        super().__init__(
            fs,
            name,
            mode=mode,
            block_size=block_size,
            autocommit=autocommit,
            cache_type="none" if cache_type == "ate" else cache_type,
            cache_options=cache_options,
            **kwargs,
        )
        if mode == "rb" and cache_type == "ate":
            self.cache = _ReadAhead(self.blocksize, self._fetch_range, self.size)

    def _fetch_range(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        with _translated(self.path):
            return self.fs._read(self._where, start, end, self._handle)

    def _initiate_upload(self) -> None:
        with _translated(self.path):
            self._writer = self.fs.client.storage.writer(
                self._where.tenant,
                self._where.key,
                content_type=self._content_type,
                metadata=self._metadata,
            )

    def _upload_chunk(self, final: bool = False) -> bool:
        data = self.buffer.getbuffer()
        try:
            if len(data):
                self._writer.write(data)
        finally:
            data.release()
        if final and self.autocommit:
            self.commit()
        return True

    def commit(self) -> None:
        if self._writer is None:  # nothing flushed yet: an empty file
            self._initiate_upload()
        with self.fs._changing(self._where):
            self._writer.commit()

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.abort()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and self.mode == "wb" and not getattr(self, "closed", False):
            # Leaving the block by an exception: nothing is committed.
            self.closed = True
            self.discard()
            return
        self.close()
