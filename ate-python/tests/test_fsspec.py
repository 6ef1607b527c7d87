"""The ``ate://`` fsspec filesystem, through fsspec itself and the real data libraries from
PyPI: pandas (CSV, Parquet), polars, pyarrow datasets over a prefix and DuckDB, plus fsspec's
own abstract test classes. Reads are counted to show that a Parquet column projection
fetches only the byte ranges the reader asks for; cross-tenant paths are refused.
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import time
import posixpath

import pytest

fsspec = pytest.importorskip("fsspec")
from fsspec.tests.abstract import (  # noqa: E402
    AbstractCopyTests,
    AbstractFixtures,
    AbstractGetTests,
    AbstractOpenTests,
    AbstractPipeTests,
    AbstractPutTests,
)

import ate  # noqa: E402
from ate.fsspec import AteFile, AteFileSystem  # noqa: E402
from conftest import MASTER_KEY  # noqa: E402

ISS, AUD = "https://auth.example", "ate-fsspec-tests"
PASSWORD = "correct horse battery staple"


def open_client(database_url, storage_url):
    return ate.Ate(
        database_url, storage_url=storage_url, master_key=MASTER_KEY, auth_issuer=ISS,
        auth_audience=AUD, insecure_fast_password_hashing=True, actor="system:pytest",
    )


@pytest.fixture
def a(storage_urls):
    with open_client(*storage_urls) as client:
        client.tenants.create("acme", "Acme")
        client.tenants.create("globex", "Globex")
        yield client


@pytest.fixture
def fs(a):
    return fsspec.filesystem("ate", client=a)


def user(a, slug, email, permissions):
    tenant = a.tenants.get_by_slug(slug).id
    a.auth.create_user(tenant, email, password=PASSWORD, permissions=list(permissions))
    return a.auth.login(tenant, email, PASSWORD).access_token


# ---------------------------------------------------------------------------------------
# Registration and configuration.


def test_the_ate_protocol_is_registered_by_entry_point():
    names = {e.name: e.value for e in importlib.metadata.entry_points(group="fsspec.specs")}
    assert names.get("ate") == "ate.fsspec:AteFileSystem"
    assert fsspec.get_filesystem_class("ate") is AteFileSystem


def test_keywords_open_a_shared_client_and_pandas_takes_them_as_storage_options(tmp_path):
    import pandas as pd

    key_file = tmp_path / "master.key"
    key_file.write_bytes(MASTER_KEY)
    key_file.chmod(0o600)
    options = {
        "database_url": f"sqlite://{tmp_path}/ate.db",
        "storage_url": f"fs://{tmp_path}/blobs",
        "master_key": str(key_file),
    }
    with ate.Ate(options["database_url"], storage_url=options["storage_url"], master_key=MASTER_KEY) as admin:
        admin.tenants.create("acme", "Acme")
    df = pd.DataFrame({"region": ["emea", "apac"], "total": [42, 7]})
    df.to_csv("ate://acme/reports/q3.csv", index=False, storage_options=options)
    back = pd.read_csv("ate://acme/reports/q3.csv", storage_options=options)
    assert back.equals(df)
    one = fsspec.filesystem("ate", **options)
    assert fsspec.filesystem("ate", **options).client is one.client
    # Keyword-configured filesystems pickle (e.g. to worker processes) as their keywords.
    import pickle

    again = pickle.loads(pickle.dumps(one))
    assert again.cat_file("acme/reports/q3.csv").startswith(b"region,total")
    # Nothing readable on disk: the blob is ciphertext.
    blobs = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert blobs and all(b"emea" not in p.read_bytes() for p in blobs)
    with pytest.raises(ValueError, match="client="):
        AteFileSystem(storage_url="memory://")
    with pytest.raises(ValueError, match="not both"):
        AteFileSystem(client=one.client, database_url=options["database_url"])


def test_a_token_in_the_options_acts_as_that_user(tmp_path):
    options = {
        "database_url": f"sqlite://{tmp_path}/ate.db",
        "storage_url": "memory://",
        "master_key": MASTER_KEY,
        "auth_issuer": ISS,
        "auth_audience": AUD,
    }
    with ate.Ate(options["database_url"], storage_url="memory://", master_key=MASTER_KEY,
                 auth_issuer=ISS, auth_audience=AUD, insecure_fast_password_hashing=True) as a:
        a.tenants.create("acme", "Acme")
        a.tenants.create("globex", "Globex")
        token = user(a, "acme", "ana@acme.example", ["storage:read", "storage:write", "tenant:read"])
    fs = fsspec.filesystem("ate", token=token, **options)
    assert fs.principal.subject.startswith("user:")
    fs.pipe_file("ate://acme/mine.txt", b"mine")
    assert fs.cat_file("acme/mine.txt") == b"mine"
    assert fs.ls("", detail=False) == ["acme"]
    with pytest.raises(PermissionError):
        fs.pipe_file("ate://globex/theirs.txt", b"no")
    with pytest.raises(ate.UnauthenticatedError):
        fsspec.filesystem("ate", token="not-a-token", **options)


# ---------------------------------------------------------------------------------------
# The filesystem's own operations.


def test_files_directories_listing_and_info(fs, a):
    fs.pipe({
        "ate://acme/reports/2024/q3.csv": b"region,total\nemea,42\n",
        "ate://acme/reports/2024/q4.csv": b"region,total\napac,7\n",
        "ate://acme/reports/readme.txt": b"hello",
        "ate://acme/top.bin": bytes(range(256)) * 100,
    })
    assert fs.ls("ate://acme", detail=False) == ["acme/reports", "acme/top.bin"]
    assert fs.ls("acme/reports/", detail=False) == ["acme/reports/2024", "acme/reports/readme.txt"]
    info = fs.info("ate://acme/reports/2024/q3.csv")
    assert info["type"] == "file" and info["size"] == 21
    assert info["content_type"] == "text/csv" and len(info["sha256"]) == 64
    assert fs.info("acme/reports")["type"] == "directory"
    assert fs.info("acme")["type"] == "directory"
    assert fs.isdir("acme/reports/2024") and fs.isfile("acme/top.bin")
    assert fs.exists("acme/reports") and not fs.exists("acme/report")
    assert fs.ls("acme/top.bin", detail=False) == ["acme/top.bin"]
    assert fs.find("acme") == [
        "acme/reports/2024/q3.csv", "acme/reports/2024/q4.csv", "acme/reports/readme.txt", "acme/top.bin",
    ]
    assert fs.find("acme/reports", maxdepth=1, withdirs=True) == [
        "acme/reports", "acme/reports/2024", "acme/reports/readme.txt",
    ]
    assert fs.glob("ate://acme/reports/*/*.csv") == ["acme/reports/2024/q3.csv", "acme/reports/2024/q4.csv"]
    assert fs.glob("acme/**/*.txt") == ["acme/reports/readme.txt"]
    assert fs.du("acme/reports") == 21 + 20 + 5
    assert fs.modified("acme/top.bin") >= fs.created("acme/top.bin")
    assert fs.ukey("acme/top.bin") == fs.info("acme/top.bin")["sha256"]
    # The tenant may be named by its id too; the root lists the tenants.
    acme = a.tenants.get_by_slug("acme").id
    assert fs.cat_file(f"ate://{acme}/reports/readme.txt") == b"hello"
    assert fs.ls("", detail=False) == ["acme", "globex"]
    assert fs.ls("globex") == [], "an empty tenant lists as an empty directory"


def test_byte_ranges_and_random_access(fs):
    data = os.urandom(300_000)
    fs.pipe_file("acme/blob.bin", data)
    assert fs.cat_file("acme/blob.bin") == data
    assert fs.cat_file("acme/blob.bin", start=100_000, end=100_010) == data[100_000:100_010]
    assert fs.cat_file("acme/blob.bin", start=-10) == data[-10:]
    assert fs.cat_file("acme/blob.bin", start=5, end=-5) == data[5:-5]
    assert fs.cat_file("acme/blob.bin", start=299_990, end=10**9) == data[299_990:]
    assert fs.cat_file("acme/blob.bin", start=10, end=5) == b""
    assert fs.read_block("acme/blob.bin", 1000, 500) == data[1000:1500]
    with fs.open("ate://acme/blob.bin", "rb", block_size=4096) as f:
        assert isinstance(f, AteFile) and f.size == 300_000
        f.seek(250_000)
        assert f.read(10) == data[250_000:250_010]
        f.seek(-20, 2)
        assert f.read() == data[-20:]
        f.seek(7)
        assert f.read(3) == data[7:10] and f.tell() == 10


def test_streamed_writes_appear_on_close_and_vanish_on_error(fs, a):
    parts = [os.urandom(700_000) for _ in range(4)]
    with fs.open("ate://acme/big.bin", "wb", block_size=1 << 20) as f:
        for p in parts:
            f.write(p)
        assert not fs.exists("acme/big.bin"), "nothing is visible before the close"
    assert fs.cat_file("acme/big.bin") == b"".join(parts)
    # Leaving the block by an exception keeps the old object.
    with pytest.raises(RuntimeError):
        with fs.open("acme/big.bin", "wb") as f:
            f.write(b"half")
            raise RuntimeError("boom")
    assert fs.cat_file("acme/big.bin") == b"".join(parts)
    # Text mode, and an empty file.
    with fs.open("acme/notes.txt", "w") as f:
        f.write("héllo\n")
    assert fs.cat_file("acme/notes.txt") == "héllo\n".encode()
    fs.touch("acme/empty")
    assert fs.cat_file("acme/empty") == b"" and fs.info("acme/empty")["size"] == 0
    # A transaction commits every file at its end, none if it fails.
    with pytest.raises(KeyError):
        with fs.transaction:
            with fs.open("acme/tx/1", "wb") as f:
                f.write(b"1")
            raise KeyError("abandon")
    assert not fs.exists("acme/tx/1")
    with fs.transaction:
        with fs.open("acme/tx/2", "wb") as f:
            f.write(b"2")
    assert fs.cat_file("acme/tx/2") == b"2"
    with pytest.raises(FileExistsError):
        fs.open("acme/notes.txt", "xb")
    with fs.open("acme/new.txt", "xb") as f:
        f.write(b"new")
    assert fs.cat_file("acme/new.txt") == b"new"
    with pytest.raises(ValueError, match="'rb', 'wb' or 'xb'"):
        fs.open("acme/notes.txt", "ab")


def test_an_open_file_reads_the_version_it_opened(fs):
    first = os.urandom(200_000)
    fs.pipe_file("acme/v.bin", first)
    with fs.open("acme/v.bin", "rb", block_size=1024) as f:
        assert f.read(10) == first[:10]
        fs.pipe_file("acme/v.bin", b"replaced")  # another writer, meanwhile
        with pytest.raises(ate.ConflictError, match="changed since it was opened"):
            f.read(100_000)
    assert fs.cat_file("acme/v.bin") == b"replaced"


def test_entries_are_reused_briefly_and_dropped_by_writes(a):
    """``info``/``open`` reuse an object's entry for ``info_cache_seconds``: a change made
    through another handle shows after ``invalidate_cache`` or the expiry, one made through
    the filesystem at once; a file opened from an entry since replaced raises
    ``ConflictError`` instead of serving other bytes; ``0`` turns the reuse off."""
    acme = a.tenants.get_by_slug("acme").id
    fs = fsspec.filesystem("ate", client=a, info_cache_seconds=60, skip_instance_cache=True)
    fs.pipe_file("acme/e.txt", b"one")
    assert fs.info("acme/e.txt")["size"] == 3
    a.storage.put(acme, "e.txt", b"three")  # another handle
    assert fs.info("ate://acme/e.txt")["size"] == 3  # the kept entry
    with fs.open("acme/e.txt", "rb") as f:
        with pytest.raises(ate.ConflictError, match="changed since it was opened"):
            f.read()
    fs.invalidate_cache("acme/e.txt")
    assert fs.info("acme/e.txt")["size"] == 5 and fs.cat_file("acme/e.txt") == b"three"
    # Writes through the filesystem drop the entry: pipe, wb files, put, cp, rm.
    fs.pipe_file("acme/e.txt", b"four")
    assert fs.info("acme/e.txt")["size"] == 4
    with fs.open("acme/e.txt", "wb") as f:
        f.write(b"fivee")
    assert fs.info("acme/e.txt")["size"] == 5 and fs.cat_file("acme/e.txt") == b"fivee"
    fs.pipe_file("acme/src.txt", b"copied!")
    fs.cp("acme/src.txt", "acme/e.txt")
    assert fs.info("acme/e.txt")["size"] == 7
    fs.rm("acme/e.txt")
    assert not fs.exists("acme/e.txt")
    # Dropping a directory drops what is below it; dropping everything, everything.
    fs.pipe({"acme/dir/x": b"x", "acme/other": b"o"})
    assert fs.info("acme/dir/x")["size"] == 1 and fs.info("acme/other")["size"] == 1
    a.storage.put(acme, "dir/x", b"xx")
    a.storage.put(acme, "other", b"oo")
    fs.invalidate_cache("acme/dir")
    assert fs.info("acme/dir/x")["size"] == 2 and fs.info("acme/other")["size"] == 1
    fs.invalidate_cache()
    assert fs.info("acme/other")["size"] == 2
    # An entry expires.
    brief = fsspec.filesystem("ate", client=a, info_cache_seconds=0.2, skip_instance_cache=True)
    assert brief.info("acme/other")["size"] == 2
    a.storage.put(acme, "other", b"ooo")
    time.sleep(0.3)
    assert brief.info("acme/other")["size"] == 3
    # 0: every lookup reads the index.
    fresh = fsspec.filesystem("ate", client=a, info_cache_seconds=0, skip_instance_cache=True)
    assert fresh.info("acme/other")["size"] == 3
    a.storage.put(acme, "other", b"oooo")
    assert fresh.info("acme/other")["size"] == 4
    assert fresh.cat_file("acme/other") == b"oooo"


def test_copy_move_remove(fs, a):
    fs.pipe({"acme/d/a.txt": b"a", "acme/d/sub/b.txt": b"b", "acme/keep.txt": b"k"})
    fs.cp("acme/d/a.txt", "acme/copy.txt")
    assert fs.cat_file("acme/copy.txt") == b"a"
    fs.mv("acme/copy.txt", "acme/moved.txt")
    assert not fs.exists("acme/copy.txt") and fs.cat_file("acme/moved.txt") == b"a"
    fs.cp("acme/d", "acme/d2", recursive=True)
    assert fs.find("acme/d2") == ["acme/d2/a.txt", "acme/d2/sub/b.txt"]
    fs.mv("acme/d2", "acme/d3", recursive=True)
    assert not fs.exists("acme/d2") and fs.find("acme/d3") == ["acme/d3/a.txt", "acme/d3/sub/b.txt"]
    # Across tenants (a platform administrator may): streamed through, re-encrypted.
    fs.cp("acme/keep.txt", "globex/from-acme.txt")
    assert fs.cat_file("globex/from-acme.txt") == b"k"
    fs.rm("acme/d", recursive=True)
    assert not fs.exists("acme/d") and fs.exists("acme/keep.txt")
    fs.rm_file("acme/keep.txt")
    assert not fs.exists("acme/keep.txt")


def test_errors_are_the_builtin_exceptions(fs, a):
    fs.pipe_file("acme/dir/file.txt", b"x")
    with pytest.raises(FileNotFoundError) as e:
        fs.cat_file("acme/nope.txt")
    assert isinstance(e.value.__cause__, ate.NotFoundError)
    with pytest.raises(FileNotFoundError):
        fs.open("acme/nope.txt", "rb")
    with pytest.raises(FileNotFoundError):
        fs.info("ate://nosuchtenant/x")
    with pytest.raises(FileNotFoundError):
        fs.ls("acme/nothing/here")
    with pytest.raises(FileNotFoundError):
        fs.rm_file("acme/nope.txt")
    with pytest.raises(IsADirectoryError):
        fs.open("acme/dir", "rb")
    with pytest.raises(IsADirectoryError):
        fs.cat_file("acme/dir")
    for bad in ["acme/a//b", "acme/../x", "acme/a\\b"]:
        with pytest.raises(ValueError):
            fs.pipe_file(bad, b"x")
    # The root, the tenant level and the snapshot tree are read-only.
    for ro in ["", "acme", "acme/projects/web/latest/x.txt"]:
        with pytest.raises((PermissionError, FileNotFoundError)):
            fs.pipe_file(ro, b"x")
    with pytest.raises(PermissionError):
        fs.pipe_file("acme/projects", b"x")
    assert fs.cat_file("acme/dir/file.txt") == b"x", "nothing changed"


def test_a_token_is_checked_at_every_call(a):
    token = user(a, "acme", "tim@acme.example", ["storage:read", "storage:write", "tenant:read"])
    fs = fsspec.filesystem("ate", client=a, token=token)
    fs.pipe_file("acme/t.txt", b"t")
    assert fs.cat_file("acme/t.txt") == b"t"
    with fs.open("acme/t.txt") as f:
        a.auth.logout(token)  # revoked while a file is open
        with pytest.raises(ate.UnauthenticatedError):
            f.read()
    for op in (lambda: fs.cat_file("acme/t.txt"), lambda: fs.ls("acme"), lambda: fs.pipe_file("acme/u", b"u")):
        with pytest.raises(ate.UnauthenticatedError):
            op()
    with pytest.raises(ValueError, match="not both"):
        AteFileSystem(client=a, token=token, principal=a.principal)


def test_cross_tenant_paths_are_refused(a, fs):
    fs.pipe_file("globex/secret.txt", b"globex only")
    globex = a.tenants.get_by_slug("globex").id
    token = user(a, "acme", "mallory@acme.example", ["storage:read", "storage:write", "storage:delete", "tenant:read"])
    mallory = fsspec.filesystem("ate", client=a, principal=a.auth.verify(token))
    for path in ["ate://globex/secret.txt", f"ate://{globex}/secret.txt"]:
        for op in (mallory.cat_file, mallory.info, mallory.ls, mallory.rm_file, mallory.find):
            with pytest.raises(PermissionError):
                op(path)
        with pytest.raises(PermissionError):
            mallory.pipe_file(path, b"overwritten")
        with pytest.raises(PermissionError):
            mallory.open(path, "rb")
    with pytest.raises(PermissionError):
        mallory.cp("acme/x", "globex/secret.txt")
    # An unknown slug looks the same as another tenant's: no way to probe which exist.
    with pytest.raises(PermissionError):
        mallory.cat_file("ate://no-such-tenant/x")
    assert fs.cat_file("globex/secret.txt") == b"globex only"
    # In its own tenant the user works, within its permissions.
    mallory.pipe_file("acme/mine.txt", b"mine")
    assert mallory.cat_file("acme/mine.txt") == b"mine"
    reader = fsspec.filesystem(
        "ate", client=a.acting_as(a.auth.verify(user(a, "acme", "r@acme.example", ["storage:read"]))),
    )
    assert reader.cat_file(f"ate://{a.tenants.get_by_slug('acme').id}/mine.txt") == b"mine"
    with pytest.raises(PermissionError, match="tenant:read"):
        reader.cat_file("ate://acme/mine.txt")  # the slug needs tenant:read: use the id
    with pytest.raises(PermissionError):
        reader.pipe_file(f"{a.tenants.get_by_slug('acme').id}/w.txt", b"no write permission")


def test_snapshot_files_are_read_only_files(fs, a, tmp_path):
    import pandas as pd

    acme = a.tenants.get_by_slug("acme").id
    project = a.projects.create(acme, "web")
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / "main.py").write_text("print('hi')\n")
    (src / "data" / "sales.csv").write_text("region,total\nemea,42\napac,7\n")
    snap = a.projects.import_dir(acme, project.id, src)
    assert fs.ls("acme", detail=False) == ["acme/projects"]
    assert fs.ls("acme/projects", detail=False) == ["acme/projects/web"]
    assert fs.ls("acme/projects/web", detail=False) == [f"acme/projects/web/{snap.id}"]
    base = f"acme/projects/web/{snap.id}"
    assert fs.ls(base, detail=False) == [f"{base}/data", f"{base}/main.py"]
    assert fs.cat_file("ate://acme/projects/web/latest/main.py") == b"print('hi')\n"
    assert fs.cat_file(f"{base}/main.py", start=6, end=10) == b"'hi'"
    assert fs.info(f"{base}/main.py")["language"] == "Python"
    assert fs.find(base) == [f"{base}/data/sales.csv", f"{base}/main.py"]
    assert fs.isdir(f"{base}/data")
    df = pd.read_csv(fs.open("acme/projects/web/latest/data/sales.csv"))
    assert df["total"].sum() == 49
    with pytest.raises(PermissionError):
        fs.pipe_file(f"{base}/main.py", b"changed")
    with pytest.raises(PermissionError):
        fs.rm_file(f"{base}/main.py")
    with pytest.raises(FileNotFoundError):
        fs.cat_file("acme/projects/web/latest/nope.py")
    with pytest.raises(FileNotFoundError):
        fs.ls("acme/projects/nope")
    with pytest.raises(FileNotFoundError):
        fs.ls("acme/projects/web/not-a-snapshot")
    # A snapshot file copies out into an object.
    fs.cp(f"{base}/main.py", "acme/copied.py")
    assert fs.cat_file("acme/copied.py") == b"print('hi')\n"


# ---------------------------------------------------------------------------------------
# The data libraries.


def frame(rows=1000):
    import pandas as pd

    return pd.DataFrame({
        "id": range(rows),
        "region": [["emea", "apac", "amer"][i % 3] for i in range(rows)],
        "total": [i * 0.5 for i in range(rows)],
    })


def test_pandas_csv_and_parquet_round_trip(fs):
    import pandas as pd

    df = frame()
    with fs.open("acme/sales.csv", "w") as f:
        df.to_csv(f, index=False)
    assert pd.read_csv(fs.open("ate://acme/sales.csv")).equals(df)
    with fs.open("acme/sales.parquet", "wb") as f:
        df.to_parquet(f)
    assert pd.read_parquet("acme/sales.parquet", filesystem=fs).equals(df)
    assert pd.read_parquet("acme/sales.parquet", filesystem=fs, columns=["total"])["total"].sum() == df["total"].sum()


def test_polars(fs):
    import polars as pl

    df = pl.DataFrame({"id": list(range(500)), "name": [f"n{i}" for i in range(500)]})
    with fs.open("acme/pl/data.parquet", "wb") as f:
        df.write_parquet(f)
    with fs.open("acme/pl/data.csv", "wb") as f:
        df.write_csv(f)
    with fs.open("acme/pl/data.parquet", "rb") as f:
        assert pl.read_parquet(f).equals(df)
    with fs.open("acme/pl/data.csv", "rb") as f:
        assert pl.read_csv(f).equals(df)


def test_polars_with_storage_options(tmp_path):
    import polars as pl

    key_file = tmp_path / "master.key"
    key_file.write_bytes(MASTER_KEY)
    key_file.chmod(0o600)
    # polars takes string options only: the master key comes from its file.
    options = {"database_url": f"sqlite://{tmp_path}/ate.db", "storage_url": "memory://", "master_key": str(key_file)}
    fs = fsspec.filesystem("ate", **options)
    fs.client.tenants.create("acme", "Acme")
    df = pl.DataFrame({"x": [1, 2, 3]})
    with fs.open("acme/x.parquet", "wb") as f:
        df.write_parquet(f)
    # polars' own reader knows no ate://; through pyarrow it goes through fsspec.
    assert pl.read_parquet("ate://acme/x.parquet", use_pyarrow=True, storage_options=options).equals(df)
    # A lazy scan over an fsspec-backed pyarrow dataset.
    import pyarrow.dataset as ds

    lazy = pl.scan_pyarrow_dataset(ds.dataset("acme/x.parquet", filesystem=fs))
    assert lazy.filter(pl.col("x") > 1).collect()["x"].to_list() == [2, 3]


def test_pyarrow_dataset_over_a_prefix(fs):
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    table = pa.table({
        "year": [2023, 2023, 2024, 2024, 2024],
        "region": ["emea", "apac", "emea", "apac", "amer"],
        "total": [1.0, 2.0, 3.0, 4.0, 5.0],
    })
    pq.write_to_dataset(table, "acme/sales", partition_cols=["year"], filesystem=fs)
    assert sorted(fs.ls("acme/sales", detail=False)) == ["acme/sales/year=2023", "acme/sales/year=2024"]
    dataset = ds.dataset("acme/sales", filesystem=fs, format="parquet", partitioning="hive")
    assert dataset.to_table().num_rows == 5
    recent = dataset.to_table(filter=ds.field("year") == 2024, columns=["total"])
    assert sorted(recent["total"].to_pylist()) == [3.0, 4.0, 5.0]
    # A column projection through pyarrow's own reader.
    assert pq.read_table("acme/sales/year=2023", filesystem=fs, columns=["region"]).num_rows == 2


def test_duckdb_reads_through_fsspec(fs):
    import duckdb

    df = frame()
    with fs.open("acme/duck/a.parquet", "wb") as f:
        df.iloc[:600].to_parquet(f)
    with fs.open("acme/duck/b.parquet", "wb") as f:
        df.iloc[600:].to_parquet(f)
    with fs.open("acme/duck/sales.csv", "w") as f:
        df.to_csv(f, index=False)
    con = duckdb.connect()
    con.register_filesystem(fs)
    total = con.execute("SELECT sum(total) FROM read_parquet('ate://acme/duck/*.parquet')").fetchone()[0]
    assert total == df["total"].sum()
    by_region = con.execute(
        "SELECT region, count(*) FROM read_csv('ate://acme/duck/sales.csv') GROUP BY region ORDER BY region"
    ).fetchall()
    assert by_region == [("amer", 333), ("apac", 333), ("emea", 334)]
    con.close()


class CountingStorage:
    """``a.storage`` with every byte that leaves ATE counted (``get_range``, ``get_range_of``,
    ``get``)."""

    def __init__(self, storage):
        self._storage = storage
        self.ranges: list[tuple[int, int]] = []

    def get_range(self, tenant_id, path, start, end):
        data = self._storage.get_range(tenant_id, path, start, end)
        self.ranges.append((start, start + len(data)))
        return data

    def get_range_of(self, info, start, end):
        data = self._storage.get_range_of(info, start, end)
        self.ranges.append((start, start + len(data)))
        return data

    def get(self, tenant_id, path, **kw):
        data = self._storage.get(tenant_id, path, **kw)
        self.ranges.append((0, len(data)))
        return data

    def __getattr__(self, name):
        return getattr(self._storage, name)

    @property
    def bytes_read(self):
        return sum(e - s for s, e in self.ranges)


class CountingClient:
    def __init__(self, client):
        self._client = client
        self.storage = CountingStorage(client.storage)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_a_parquet_column_projection_fetches_only_the_ranges_asked_for(a):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(7)
    table = pa.table({f"c{i}": rng.random(200_000) for i in range(8)})
    counting = CountingClient(a)
    fs = AteFileSystem(client=counting, block_size=64 * 1024)
    with fs.open("acme/wide.parquet", "wb") as f:
        pq.write_table(table, f, compression="none", row_group_size=50_000)
    size = fs.info("acme/wide.parquet")["size"]
    column_bytes = sum(
        pq.ParquetFile(io.BytesIO(fs.cat_file("acme/wide.parquet"))).metadata.row_group(g).column(3).total_compressed_size
        for g in range(4)
    )
    counting.storage.ranges.clear()
    got = pq.read_table("acme/wide.parquet", filesystem=fs, columns=["c3"])
    assert got.column("c3").equals(table.column("c3"))
    read = counting.storage.bytes_read
    # One of eight columns (~1/8 of the file), the footer, and at most one read-ahead block
    # per range the reader asked for: far from the whole file.
    spans = sorted(counting.storage.ranges)
    assert column_bytes <= read <= column_bytes + 64 * 1024 * (len(counting.storage.ranges) + 1), (
        read, column_bytes, counting.storage.ranges,
    )
    assert read < size / 4, (read, size)
    print(f"projection read {read} of {size} bytes (column {column_bytes}) in {len(spans)} ranges")
    # Every range fetched lies inside the file, and no byte of it was fetched twice.
    spans = sorted(counting.storage.ranges)
    assert all(0 <= s < e <= size for s, e in spans)
    assert all(e1 <= s2 for (_, e1), (s2, _) in zip(spans, spans[1:])), spans


# ---------------------------------------------------------------------------------------
# fsspec's abstract test classes (copy, get, put, open, pipe).


class AteFixtures(AbstractFixtures):
    @pytest.fixture(scope="class")
    @classmethod
    def fs(cls):
        client = ate.Ate("sqlite::memory:", storage_url="memory://", master_key=MASTER_KEY)
        client.tenants.create("acme", "Acme")
        yield fsspec.filesystem("ate", client=client)
        client.close()

    @pytest.fixture
    def fs_join(self):
        return posixpath.join

    @pytest.fixture
    def fs_path(self):
        return "acme/abstract"

    @pytest.fixture
    def supports_empty_directories(self):
        return False


class TestAteCopy(AbstractCopyTests, AteFixtures):
    pass


class TestAteGet(AbstractGetTests, AteFixtures):
    pass


class TestAtePut(AbstractPutTests, AteFixtures):
    pass


class TestAteOpen(AbstractOpenTests, AteFixtures):
    pass


class TestAtePipe(AbstractPipeTests, AteFixtures):
    pass
