"""a.storage: encrypted objects from Python, with bytes and with streamed file objects.

Runs on SQLite file + fs, in-memory SQLite + memory and PostgreSQL + S3 (the loopback test
server); the Rust conformance suite runs every combination.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import io
import os
import pathlib
import stat

import pytest

import ate
from conftest import MASTER_KEY


def blob(n: int, seed: int = 0) -> bytes:
    """Deterministic, incompressible-looking bytes."""
    out = bytearray()
    block = hashlib.sha256(seed.to_bytes(8, "big")).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


@pytest.fixture
def acme(store):
    return store.tenants.create("acme", "Acme").id


def test_bytes_round_trip(store, acme):
    data = blob(100_000)
    info = store.storage.put(acme, "reports/q3.csv", data, content_type="text/csv", metadata={"owner": "ana"})
    assert isinstance(info, ate.ObjectInfo)
    assert (info.path, info.size, info.content_type, info.key_version, info.format_version) == (
        "reports/q3.csv",
        100_000,
        "text/csv",
        1,
        1,
    )
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.metadata == {"owner": "ana"}
    assert info.tenant_id == acme
    assert store.storage.stat(acme, "reports/q3.csv") == info
    assert store.storage.get(acme, "reports/q3.csv") == data
    assert store.storage.get(acme, "reports/q3.csv", verify_checksum=True) == data
    # Other bytes-like inputs are accepted as they are.
    for i, value in enumerate([bytearray(b"abc"), memoryview(b"xabcx")[1:4], b""]):
        store.storage.put(acme, f"like/{i}", value)
        assert store.storage.get(acme, f"like/{i}") == bytes(value)


@pytest.mark.parametrize("size", [0, 1, 16 * 1024, 16 * 1024 * 3, 16 * 1024 * 3 + 1, 9 * 1024 * 1024 + 5])
def test_streamed_file_objects(store, acme, tmp_path, size):
    """Files go in and out a part at a time; exact multiples of the chunk size included."""
    data = blob(size, seed=size)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    with open(src, "rb") as f:
        info = store.storage.put(acme, "big", f)
    assert info.size == size and info.sha256 == hashlib.sha256(data).hexdigest()
    dst = tmp_path / "out.bin"
    with open(dst, "wb") as f:
        got = store.storage.download(acme, "big", f, verify_checksum=True)
    assert got == info
    assert dst.read_bytes() == data
    sink = io.BytesIO()
    store.storage.download(acme, "big", sink)
    assert sink.getvalue() == data


def test_file_objects_are_streamed_in_parts(store, acme):
    """A put reads bounded parts and a download writes pieces: never the whole object."""
    data = blob(9 * 1024 * 1024 + 1)

    class Recorder(io.RawIOBase):
        def __init__(self):
            self.src = io.BytesIO(data)
            self.reads: list[int] = []
            self.writes: list[int] = []
            self.out = bytearray()

        def read(self, n=-1):
            self.reads.append(n)
            return self.src.read(n)

        def write(self, b):
            self.writes.append(len(b))
            self.out += b
            return len(b)

    rec = Recorder()
    store.storage.put(acme, "f", rec)
    assert len(rec.reads) >= 3 and all(0 < n <= 8 * 1024 * 1024 for n in rec.reads), rec.reads
    store.storage.download(acme, "f", rec)
    assert bytes(rec.out) == data
    assert len(rec.writes) >= 9 and max(rec.writes) <= 1024 * 1024, rec.writes


def test_streaming_reader(store, acme):
    data = blob(3 * 1024 * 1024 + 17)
    store.storage.put(acme, "r", io.BytesIO(data))
    with store.storage.open(acme, "r") as reader:
        assert isinstance(reader, ate.ObjectReader)
        assert reader.info.size == len(data)
        pieces = list(reader)
    assert all(0 < len(p) <= 1024 * 1024 for p in pieces) and len(pieces) >= 4
    assert b"".join(pieces) == data
    reader = store.storage.open(acme, "r")
    assert reader.read(10) == data[:10]
    assert reader.read(0) == b""
    assert reader.read(2 * 1024 * 1024) == data[10 : 10 + 2 * 1024 * 1024]
    assert reader.read() == data[10 + 2 * 1024 * 1024 :]
    assert reader.read() == b""
    assert next(reader, None) is None


def test_ranges(store, acme):
    data = blob(70_000)
    store.storage.put(acme, "f", data)
    for start, end in [(0, 1), (16383, 16385), (5, 70_000), (69_999, 70_000), (40_000, 40_000)]:
        assert store.storage.get_range(acme, "f", start, end) == data[start:end]
    for start, end in [(10, 5), (0, 70_001), (70_001, 70_002), (-1, 5), (0, -1)]:
        with pytest.raises(ate.InvalidInputError):
            store.storage.get_range(acme, "f", start, end)
    store.storage.put(acme, "empty", b"")
    assert store.storage.get_range(acme, "empty", 0, 0) == b""
    with pytest.raises(ate.InvalidInputError):
        store.storage.get_range(acme, "empty", 0, 1)


def test_list_copy_delete(store, acme):
    for path in ["a/1", "a/2", "a/3", "b/1", "a"]:
        store.storage.put(acme, path, path.encode())
    page = store.storage.list(acme, "a/", limit=2)
    assert [o.path for o in page] == ["a/1", "a/2"] and page.next_cursor
    rest = store.storage.list(acme, "a/", limit=2, cursor=page.next_cursor)
    assert [o.path for o in rest] == ["a/3"] and rest.next_cursor is None
    assert len(store.storage.list(acme)) == 5
    copied = store.storage.copy(acme, "a/1", "c/1")
    assert store.storage.get(acme, "c/1") == b"a/1"
    assert copied.id != store.storage.stat(acme, "a/1").id
    assert store.storage.delete(acme, "a/1") is None
    with pytest.raises(ate.NotFoundError):
        store.storage.get(acme, "a/1")
    with pytest.raises(ate.NotFoundError):
        store.storage.delete(acme, "a/1")
    with pytest.raises(ate.InvalidInputError):
        store.storage.list(acme, limit=0)
    with pytest.raises(ate.InvalidInputError):
        store.storage.list(acme, cursor="garbage")


def test_list_dir_lists_one_level(store, acme):
    for path in ["a", "a/x", "a0", "b/c/d", "b/e", *[f"big/{i}" for i in range(5)]]:
        store.storage.put(acme, path, b"1")
    page = store.storage.list_dir(acme)
    assert isinstance(page, ate.storage.DirPage)
    assert [o.path for o in page.objects] == ["a", "a0"]
    assert page.directories == ["a/", "b/", "big/"] and page.next_cursor is None
    assert [o.size for o in page.objects] == [1, 1]
    # Pages of two entries: every entry once, whatever the subdirectories hold.
    seen, cursor = [], None
    while True:
        p = store.storage.list_dir(acme, "", limit=2, cursor=cursor)
        seen += [o.path for o in p.objects] + p.directories
        cursor = p.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == ["a", "a/", "a0", "b/", "big/"]
    b = store.storage.list_dir(acme, "b/")
    assert ([o.path for o in b.objects], b.directories) == (["b/e"], ["b/c/"])
    assert len(store.storage.list_dir(acme, "nothing/").objects) == 0
    for bad in ["a", "a//", "../"]:
        with pytest.raises(ate.InvalidInputError):
            store.storage.list_dir(acme, bad)
    with pytest.raises(ate.InvalidInputError):
        store.storage.list_dir(acme, cursor=store.storage.list(acme, limit=1).next_cursor)


def test_get_range_of_reads_the_version_described(store, acme):
    data = blob(100_000)
    info = store.storage.put(acme, "r", data)
    assert store.storage.get_range_of(info, 16_380, 16_400) == data[16_380:16_400]
    listed = next(iter(store.storage.list(acme)))
    assert store.storage.get_range_of(listed, 0, 100_000) == data
    assert store.storage.get_range_of(store.storage.stat(acme, "r"), 5, 5) == b""
    with pytest.raises(ate.InvalidInputError):
        store.storage.get_range_of(info, 10, 100_001)
    with pytest.raises(ate.InvalidInputError):
        store.storage.get_range_of(info, -1, 5)
    with pytest.raises(TypeError):
        store.storage.get_range_of("r", 0, 5)
    store.storage.put(acme, "r", b"new")
    with pytest.raises(ate.ConflictError, match="changed since it was opened"):
        store.storage.get_range_of(info, 0, 3)


def test_writer_streams_and_commits_once(store, acme):
    store.storage.put(acme, "w", b"old")
    parts = [blob(300_000, seed=i) for i in range(4)]
    w = store.storage.writer(acme, "w", content_type="application/x-test", metadata={"k": 1})
    assert isinstance(w, ate.storage.ObjectWriter) and not w.closed
    for p in parts[:2]:
        assert w.write(p) == len(p)
    w.write(memoryview(parts[2]))
    w.write(bytearray(parts[3]))
    assert w.written == sum(map(len, parts))
    assert store.storage.get(acme, "w") == b"old", "nothing visible before the commit"
    info = w.commit()
    assert (info.size, info.content_type, info.metadata) == (sum(map(len, parts)), "application/x-test", {"k": 1})
    assert store.storage.get(acme, "w", verify_checksum=True) == b"".join(parts)
    assert w.closed
    with pytest.raises(ate.InvalidInputError, match="closed"):
        w.write(b"more")
    with pytest.raises(ate.InvalidInputError, match="closed"):
        w.commit()
    w.abort()  # nothing to do once closed
    # As a context manager: commit on a normal exit, abort on an exception.
    with store.storage.writer(acme, "ctx") as w:
        w.write(b"ctx")
    assert store.storage.get(acme, "ctx") == b"ctx"
    with pytest.raises(RuntimeError):
        with store.storage.writer(acme, "ctx") as w:
            w.write(b"half")
            raise RuntimeError("boom")
    assert store.storage.get(acme, "ctx") == b"ctx"
    w = store.storage.writer(acme, "aborted")
    w.write(b"x")
    w.abort()
    with pytest.raises(ate.NotFoundError):
        store.storage.stat(acme, "aborted")
    # Bad input: nothing is started or written.
    with pytest.raises(ate.InvalidInputError, match="bytes-like"):
        store.storage.writer(acme, "s").write("text, not bytes")
    with pytest.raises(ate.InvalidInputError):
        store.storage.writer(acme, "a//b")
    with pytest.raises(ate.InvalidInputError):
        store.storage.writer(acme, "m", metadata=["not", "an", "object"])
    with pytest.raises(ate.NotFoundError):
        store.storage.stat(acme, "s")


def test_writer_respects_the_quota(storage_urls):
    database_url, storage_url = storage_urls
    with ate.Ate(database_url, storage_url=storage_url, master_key=MASTER_KEY) as a:
        t = a.tenants.create("small", "Small", quotas={"max_storage_bytes": 1000}).id
        w = a.storage.writer(t, "big")
        w.write(b"x" * 2000)
        with pytest.raises(ate.QuotaExceededError):
            w.commit()
        assert len(a.storage.list(t)) == 0


@pytest.mark.parametrize("path", ["", "../x", "a/../b", "/lead", "a\\b", "nul\0", "x" * 1025, "a//b", "trail/"])
def test_bad_paths_store_nothing(store, acme, path):
    with pytest.raises(ate.InvalidInputError):
        store.storage.put(acme, path, b"x")
    assert len(store.storage.list(acme)) == 0


def test_bad_data_and_files_store_nothing(store, acme, tmp_path):
    with pytest.raises(ate.InvalidInputError, match="bytes-like or a binary file"):
        store.storage.put(acme, "f", "text is not bytes")  # type: ignore[arg-type]
    with pytest.raises(ate.InvalidInputError, match="bytes-like or a binary file"):
        store.storage.put(acme, "f", 12)  # type: ignore[arg-type]
    (tmp_path / "t.txt").write_text("hello")
    with open(tmp_path / "t.txt") as text_mode, pytest.raises(ate.InvalidInputError, match="binary mode"):
        store.storage.put(acme, "f", text_mode)  # type: ignore[arg-type]

    class Failing(io.RawIOBase):
        """Yields two parts, then the disk fails."""

        def __init__(self):
            self.calls = 0

        def readable(self):
            return True

        def read(self, n=-1):
            self.calls += 1
            if self.calls > 2:
                raise OSError("disk on fire")
            return b"x" * n

    with pytest.raises(OSError, match="disk on fire"):
        store.storage.put(acme, "f", Failing())
    with pytest.raises(ate.InvalidInputError):
        store.storage.put(acme, "f", b"x", metadata={"not": object()})
    with pytest.raises(ate.InvalidInputError):
        store.storage.put(acme, "f", b"x", content_type="")
    with pytest.raises(ate.NotFoundError):
        store.storage.stat(acme, "f")
    assert len(store.storage.list(acme)) == 0

    class Full(io.RawIOBase):
        def writable(self):
            return True

        def write(self, b):
            raise OSError("no space left")

    store.storage.put(acme, "g", b"data")
    with pytest.raises(OSError, match="no space left"):
        store.storage.download(acme, "g", Full())


def test_tenants_are_isolated(store, acme):
    other = store.tenants.create("other", "Other").id
    store.storage.put(acme, "secret", b"acme only")
    for call in (
        lambda: store.storage.get(other, "secret"),
        lambda: store.storage.stat(other, "secret"),
        lambda: store.storage.copy(other, "secret", "mine"),
        lambda: store.storage.delete(other, "secret"),
    ):
        with pytest.raises(ate.NotFoundError):
            call()
    assert len(store.storage.list(other)) == 0
    assert store.storage.get(acme, "secret") == b"acme only"
    with pytest.raises(ate.InvalidInputError):
        store.storage.get("not-an-id", "secret")


def test_key_rotation_reencryption_and_shredding(store, acme):
    store.storage.put(acme, "old", b"under v1")
    assert store.storage.rotate_key(acme).version == 2
    store.storage.put(acme, "new", b"under v2")
    assert store.storage.stat(acme, "old").key_version == 1
    assert store.storage.stat(acme, "new").key_version == 2
    assert [(k.version, k.state) for k in store.storage.keys(acme)] == [(1, "decrypt_only"), (2, "active")]
    assert store.storage.get(acme, "old") == b"under v1"
    progress = store.storage.reencrypt(acme, batch=1)
    assert isinstance(progress, ate.ReencryptProgress)
    assert (progress.reencrypted, progress.remaining, progress.key_version, progress.done) == (1, 0, 2, True)
    assert store.storage.stat(acme, "old").key_version == 2
    with pytest.raises(ate.InvalidInputError):
        store.storage.reencrypt(acme, batch=0)
    assert store.storage.destroy_keys(acme) == 2
    assert {k.state for k in store.storage.keys(acme)} == {"destroyed"}
    with pytest.raises(ate.NotFoundError, match="destroyed"):
        store.storage.get(acme, "old")
    with pytest.raises(ate.NotFoundError):
        store.storage.get_range(acme, "new", 0, 1)


# Needs a database and blobs that outlive a client, so not the in-memory combination.
@pytest.mark.parametrize("storage_urls", ["sqlite_file+fs", "postgres+s3"], indirect=True)
def test_master_key_rotation(storage_urls):
    database_url, storage_url = storage_urls
    new_key = bytes(reversed(range(32)))
    with ate.Ate(database_url, storage_url=storage_url, master_key=MASTER_KEY) as a:
        t = a.tenants.create("acme", "Acme").id
        a.storage.put(t, "f", b"survives")
        a.storage.rotate_key(t)
    with ate.Ate(database_url, storage_url=storage_url, master_key=new_key) as a:
        with pytest.raises(ate.AteError):
            a.storage.get(t, "f")  # wrapped under a key this client does not hold
    with ate.Ate(database_url, storage_url=storage_url, master_key=new_key, retired_master_keys=[MASTER_KEY]) as a:
        assert a.storage.rotate_master_key() == 2
        assert a.storage.rotate_master_key() == 0
    with ate.Ate(database_url, storage_url=storage_url, master_key=new_key) as a:
        assert a.storage.get(t, "f") == b"survives"


@pytest.mark.parametrize("storage_urls", ["sqlite_file+fs", "postgres+s3"], indirect=True)
def test_key_cache_seconds_bounds_how_long_another_clients_shredding_goes_unseen(storage_urls, tmp_path):
    database_url, storage_url = storage_urls
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_bytes(b"in a snapshot")
    opened = lambda **kw: ate.Ate(database_url, storage_url=storage_url, master_key=MASTER_KEY, **kw)  # noqa: E731
    with opened() as admin, opened(key_cache_seconds=3600) as cached, opened(key_cache_seconds=0) as uncached:
        t = admin.tenants.create("acme", "Acme").id
        admin.storage.put(t, "f", b"secret")
        project = admin.projects.create(t, "code")
        snapshot = admin.projects.import_dir(t, project.id, tree)
        for client in (cached, uncached):
            assert client.storage.get(t, "f") == b"secret"  # unwraps (and caches) the data key
            assert client.projects.read_file(t, snapshot.id, "a.txt") == b"in a snapshot"
        assert admin.storage.destroy_keys(t) == 1  # in another client: another key cache
        with pytest.raises(ate.NotFoundError, match="destroyed"):
            admin.storage.get(t, "f")  # in the client that destroyed them: at once
        # A client without a cache sees the shredding at once; one with an hour-long cache
        # keeps the keys it has (what the bound is for).
        with pytest.raises(ate.NotFoundError, match="destroyed"):
            uncached.storage.get(t, "f")
        with pytest.raises(ate.NotFoundError, match="destroyed"):
            uncached.projects.read_file(t, snapshot.id, "a.txt")
        assert cached.storage.get(t, "f") == b"secret"
        assert cached.projects.read_file(t, snapshot.id, "a.txt") == b"in a snapshot"
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ate.InvalidInputError, match="key_cache_seconds"):
            opened(key_cache_seconds=bad)


def test_garbage_collection(store, acme):
    store.storage.put(acme, "kept", b"x")
    report = store.storage.collect_garbage(acme, grace=datetime.timedelta(0))
    assert isinstance(report, ate.GcReport) and report.deleted == 0
    with pytest.raises(ate.InvalidInputError):
        store.storage.collect_garbage(acme, grace=datetime.timedelta(seconds=-1))
    assert store.storage.get(acme, "kept") == b"x"


def flip_byte(root, tenant_id, info, at):
    """Flips one bit of a stored object's blob (on `fs`), at byte offset `at`."""
    path = root / "t" / tenant_id / "o" / info.id
    raw = bytearray(path.read_bytes())
    raw[at] ^= 1
    path.write_bytes(bytes(raw))


def test_tampered_blob_fails_integrity(tmp_path):
    root = tmp_path / "blobs"
    with ate.Ate(f"sqlite://{tmp_path}/ate.db", storage_url=f"fs://{root}", master_key=MASTER_KEY) as a:
        t = a.tenants.create("acme", "Acme").id
        data = blob(3 * 1024 * 1024)
        flip_byte(root, t, a.storage.put(t, "f", data), 2 * 1024 * 1024)
        with pytest.raises(ate.IntegrityError):
            a.storage.get(t, "f")
        reader = a.storage.open(t, "f")
        assert next(reader) == data[: 1024 * 1024]  # pieces before the damage authenticate
        with pytest.raises(ate.IntegrityError):
            list(reader)
        with pytest.raises(ate.IntegrityError):
            reader.read()  # a failed stream keeps failing
        assert a.storage.get_range(t, "f", 0, 100) == data[:100]
        with pytest.raises(ate.IntegrityError):  # the damaged chunk (ciphertext is offset by tags)
            a.storage.get_range(t, "f", 2 * 1024 * 1024 - 32 * 1024, 2 * 1024 * 1024)


def test_configuration_errors(tmp_path):
    with pytest.raises(ate.InvalidInputError, match="needs master_key"):
        ate.Ate("sqlite::memory:", storage_url="memory://")
    with pytest.raises(ate.InvalidInputError, match="only used with storage_url"):
        ate.Ate("sqlite::memory:", master_key=MASTER_KEY)
    with pytest.raises(ate.InvalidInputError, match="31 bytes"):
        ate.Ate("sqlite::memory:", storage_url="memory://", master_key=b"k" * 31)
    with pytest.raises(ate.InvalidInputError, match="32 bytes or a key file path"):
        ate.Ate("sqlite::memory:", storage_url="memory://", master_key=1234)  # type: ignore[arg-type]
    with pytest.raises(ate.InvalidInputError, match="unknown scheme"):
        ate.Ate("sqlite::memory:", storage_url="ftp://x", master_key=MASTER_KEY)
    with pytest.raises(ate.InvalidInputError):
        ate.Ate("sqlite::memory:", storage_url="fs://relative", master_key=MASTER_KEY)
    with ate.Ate("sqlite::memory:") as plain:
        with pytest.raises(ate.InvalidInputError, match="storage is not configured"):
            plain.storage
    # A key file must be private to its owner; then a path (str or PathLike) works.
    key_file = tmp_path / "master.key"
    key_file.write_bytes(MASTER_KEY.hex().encode())
    key_file.chmod(0o644)
    with pytest.raises(ate.InvalidInputError, match="chmod 600"):
        ate.Ate("sqlite::memory:", storage_url="memory://", master_key=key_file)
    key_file.chmod(stat.S_IRUSR | stat.S_IWUSR)
    for key in (key_file, str(key_file)):
        with ate.Ate("sqlite::memory:", storage_url="memory://", master_key=key) as a:
            t = a.tenants.create("acme", "Acme").id
            assert a.storage.get(t, a.storage.put(t, "f", b"ok").path) == b"ok"
    assert "memory" in repr(ate.Ate("sqlite::memory:", storage_url="memory://", master_key=MASTER_KEY).storage)


def test_s3_server_down(tmp_path):
    """An unreachable S3 endpoint is Unavailable and retryable, and nothing is recorded."""
    url = "s3://bucket/p/?endpoint=http://127.0.0.1:9&region=us-east-1"
    with ate.Ate(f"sqlite://{tmp_path}/ate.db", storage_url=url, master_key=MASTER_KEY) as a:
        t = a.tenants.create("acme", "Acme").id
        with pytest.raises(ate.UnavailableError) as e:
            a.storage.put(t, "f", b"x")
        assert e.value.retryable
        assert len(a.storage.list(t)) == 0


async def test_async_storage(storage_urls, tmp_path):
    database_url, storage_url = storage_urls
    async with await ate.AsyncAte.open(database_url, storage_url=storage_url, master_key=MASTER_KEY) as a:
        t = (await a.tenants.create("acme", "Acme")).id
        data = blob(2 * 1024 * 1024 + 3)
        infos = await asyncio.gather(*(a.storage.put(t, f"f{i}", data[i:]) for i in range(4)))
        assert [i.size for i in infos] == [len(data) - i for i in range(4)]
        assert await a.storage.get(t, "f0", verify_checksum=True) == data
        assert await a.storage.get_range(t, "f1", 0, 5) == data[1:6]
        src = tmp_path / "src.bin"
        src.write_bytes(data)
        with open(src, "rb") as f:
            await a.storage.put(t, "file", f)
        out = io.BytesIO()
        await a.storage.download(t, "file", out, verify_checksum=True)
        assert out.getvalue() == data
        reader = await a.storage.open(t, "file")
        assert isinstance(reader, ate.AsyncObjectReader)
        assert await reader.read(3) == data[:3]
        pieces = [p async for p in reader]
        assert data[:3] + b"".join(pieces) == data
        assert [o.path for o in await a.storage.list(t, "f")] == ["f0", "f1", "f2", "f3", "file"]
        f1 = await a.storage.stat(t, "f1")
        assert await a.storage.get_range_of(f1, 3, 2_000_000) == data[4:2_000_001]
        top = await a.storage.list_dir(t)
        assert [o.path for o in top.objects][:2] == ["f0", "f1"] and top.directories == []
        w = await a.storage.writer(t, "dir/streamed")
        assert isinstance(w, ate.storage.AsyncObjectWriter)
        assert await w.write(data[:1000]) == 1000
        await w.write(data[1000:2000])
        assert (await w.commit()).size == 2000
        assert (await a.storage.list_dir(t)).directories == ["dir/"]
        async with await a.storage.writer(t, "dir/ctx") as w:
            await w.write(b"ctx")
        assert await a.storage.get(t, "dir/ctx") == b"ctx"
        with pytest.raises(RuntimeError):
            async with await a.storage.writer(t, "dir/ctx") as w:
                await w.write(b"half")
                raise RuntimeError("boom")
        assert await a.storage.get(t, "dir/ctx") == b"ctx"
        w = await a.storage.writer(t, "dir/gone")
        await w.abort()
        with pytest.raises(ate.InvalidInputError, match="closed"):
            await w.write(b"x")
        await a.storage.copy(t, "f0", "g")
        assert await a.storage.delete(t, "f0") is None
        with pytest.raises(ate.NotFoundError):
            await a.storage.stat(t, "f0")
        assert (await a.storage.rotate_key(t)).version == 2
        assert (await a.storage.reencrypt(t)).done
        assert len(await a.storage.keys(t)) == 2
        assert (await a.storage.collect_garbage(t)).deleted == 0
        assert await a.storage.destroy_keys(t) == 2
        with pytest.raises(ate.NotFoundError):
            await a.storage.get(t, "g")


async def test_async_storage_keeps_the_loop_responsive(tmp_path):
    a = await ate.AsyncAte.open(f"sqlite://{tmp_path}/ate.db", storage_url=f"fs://{tmp_path}/b", master_key=MASTER_KEY)
    t = (await a.tenants.create("acme", "Acme")).id
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await a.storage.put(t, "big", blob(32 * 1024 * 1024))
    await a.storage.get(t, "big")
    task.cancel()
    assert ticks > 10
    await a.close()


async def test_async_open_reads_key_files_when_awaited(tmp_path):
    """AsyncAte.open does no file I/O on the event loop: a key file is read by the awaited
    work, so its errors come from the await, not from the call."""
    key_file = tmp_path / "master.key"
    key_file.write_bytes(MASTER_KEY.hex().encode())
    key_file.chmod(0o644)
    pending = ate.AsyncAte.open("sqlite::memory:", storage_url="memory://", master_key=key_file)
    with pytest.raises(ate.InvalidInputError, match="chmod 600"):
        await pending
    key_file.chmod(stat.S_IRUSR | stat.S_IWUSR)
    async with await ate.AsyncAte.open(
        "sqlite::memory:", storage_url="memory://", master_key=str(key_file), retired_master_keys=[key_file]
    ) as a:
        t = (await a.tenants.create("acme", "Acme")).id
        await a.storage.put(t, "f", b"ok")
        assert await a.storage.get(t, "f") == b"ok"
    # Arguments that need no file are still checked at the call.
    with pytest.raises(ate.InvalidInputError, match="31 bytes"):
        ate.AsyncAte.open("sqlite::memory:", storage_url="memory://", master_key=b"k" * 31)


@pytest.mark.parametrize("storage_urls", ["sqlite_file+fs"], indirect=True)
def test_verify_reports_damage_and_repairs_orphans(storage_urls):
    database_url, storage_url = storage_urls
    root = pathlib.Path(storage_url.removeprefix("fs://"))
    with ate.Ate(database_url, storage_url=storage_url, master_key=MASTER_KEY) as a:
        t = a.tenants.create("acme", "Acme").id
        infos = {p: a.storage.put(t, p, blob(n, seed=n)) for p, n in [("ok", 10), ("gone", 20), ("flipped", 40_000)]}
        report = a.storage.verify(t, read_all=True)
        assert isinstance(report, ate.VerifyReport)
        assert report.clean and report.problems == []
        assert (report.tenant_id, report.objects, report.blobs, report.in_progress) == (t, 3, 3, 0)
        assert report.bytes_read == sum((root / "t" / t / "o" / i.id).stat().st_size for i in infos.values())

        (root / "t" / t / "o" / infos["gone"].id).unlink()
        flipped = root / "t" / t / "o" / infos["flipped"].id
        data = bytearray(flipped.read_bytes())
        data[30_000] ^= 1
        flipped.write_bytes(bytes(data))
        orphan = root / "t" / t / "o" / "018f0000-0000-7000-8000-000000000001"  # a UUIDv7 of 2024
        orphan.write_bytes(b"half an upload")

        quick = a.storage.verify(t)  # sizes and headers only: the flipped chunk is not read
        assert [(p.kind, p.path) for p in quick.problems] == [("missing_blob", "gone"), ("orphan_blob", None)]
        assert not quick.clean and orphan.exists()
        full = asyncio.run(_verify_async(database_url, storage_url, t))
        assert [(p.kind, p.path, p.repaired) for p in full.problems] == [
            ("missing_blob", "gone", False),
            ("corrupt", "flipped", False),
            ("orphan_blob", None, False),
        ]
        assert full.problems[0].object_id == infos["gone"].id and "missing" in full.problems[0].detail

        repaired = a.storage.verify(t, repair=True)
        assert [(p.kind, p.repaired) for p in repaired.problems] == [("missing_blob", False), ("orphan_blob", True)]
        assert not orphan.exists()
        # Younger than the grace period: an upload in progress, left alone.
        orphan.write_bytes(b"uploading")
        young = a.storage.verify(t, repair=True, grace=datetime.timedelta(days=365 * 100))
        assert young.in_progress == 1 and orphan.exists()
        for bad in (datetime.timedelta(seconds=-1), datetime.timedelta.max):
            with pytest.raises(ate.InvalidInputError, match="grace"):
                a.storage.verify(t, grace=bad)
            with pytest.raises(ate.InvalidInputError, match="grace"):
                a.storage.collect_garbage(t, grace=bad)


async def _verify_async(database_url, storage_url, tenant_id):
    a = await ate.AsyncAte.open(database_url, storage_url=storage_url, master_key=MASTER_KEY)
    try:
        return await a.storage.verify(tenant_id, read_all=True)
    finally:
        await a.close()


@pytest.mark.parametrize("size", [0, 1, 16384, 3 * 1024 * 1024 + 5])
def test_get_into_fills_a_callers_buffer(store, acme, size):
    data = blob(size)
    store.storage.put(acme, "f", data)
    assert store.storage.get(acme, "f", verify_checksum=True) == data
    out = bytearray(b"\xee" * (size + 3))
    assert store.storage.get_into(acme, "f", out, verify_checksum=True) == size
    assert out[:size] == data and out[size:] == b"\xee" * 3
    view = memoryview(bytearray(size))
    assert store.storage.get_into(acme, "f", view) == size
    assert view.tobytes() == data
    if size:
        with pytest.raises(ate.InvalidInputError, match="are needed"):
            store.storage.get_into(acme, "f", bytearray(size - 1))
    with pytest.raises(ate.InvalidInputError, match="read-only"):
        store.storage.get_into(acme, "f", bytes(size))
    with pytest.raises(ate.NotFoundError):
        store.storage.get_into(acme, "missing", bytearray(10))


def test_get_into_zeroes_a_failed_read(tmp_path):
    root = tmp_path / "blobs"
    with ate.Ate(f"sqlite://{tmp_path}/ate.db", storage_url=f"fs://{root}", master_key=MASTER_KEY) as a:
        t = a.tenants.create("acme", "Acme").id
        data = blob(3 * 1024 * 1024)
        # The last chunk: earlier pieces were written before it failed.
        flip_byte(root, t, a.storage.put(t, "f", data), -20)
        out = bytearray(b"\xaa" * len(data))
        with pytest.raises(ate.IntegrityError):
            a.storage.get_into(t, "f", out)
        assert not any(out), "a failed read leaves no part of the object behind"
        with pytest.raises(ate.IntegrityError):
            a.storage.get(t, "f")


async def test_async_get_into(tmp_path):
    a = await ate.AsyncAte.open(f"sqlite://{tmp_path}/ate.db", storage_url=f"fs://{tmp_path}/b", master_key=MASTER_KEY)
    t = (await a.tenants.create("acme", "Acme")).id
    data = blob(100_000)
    await a.storage.put(t, "f", data)
    out = bytearray(len(data) + 1)
    assert await a.storage.get_into(t, "f", out, verify_checksum=True) == len(data)
    assert out[: len(data)] == data
    with pytest.raises(ate.InvalidInputError, match="are needed"):
        await a.storage.get_into(t, "f", bytearray(10))
    with pytest.raises(ate.InvalidInputError, match="read-only"):
        await a.storage.get_into(t, "f", b"immutable")
    await a.close()
