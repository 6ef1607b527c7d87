"""Backends for the Python tests, mirroring the Rust conformance matrix.

Each test that takes ``db_url`` runs on a SQLite file, in-memory SQLite and PostgreSQL.
PostgreSQL needs ATE_TEST_POSTGRES_URL (a fresh schema is made per test and dropped after);
without it those cases are skipped with a reason, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import uuid

import pytest

import ate

IN_CI = os.environ.get("CI", "").lower() in ("true", "1")
PG_URL = os.environ.get("ATE_TEST_POSTGRES_URL")


def _ensure_database(psycopg):
    """Creates the database named in ATE_TEST_POSTGRES_URL if it does not exist yet."""
    from psycopg import conninfo, errors, sql

    try:
        psycopg.connect(PG_URL).close()
        return
    except psycopg.OperationalError as e:
        if "does not exist" not in str(e):
            raise
    params = conninfo.conninfo_to_dict(PG_URL)
    name = params.get("dbname")
    params["dbname"] = "postgres"
    with psycopg.connect(conninfo.make_conninfo(**params), autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except (errors.DuplicateDatabase, errors.UniqueViolation):
            pass  # created concurrently


def _postgres_url():
    if not PG_URL:
        if IN_CI:
            pytest.fail("CI=true but ATE_TEST_POSTGRES_URL is not set: PostgreSQL tests cannot be skipped in CI")
        pytest.skip("ATE_TEST_POSTGRES_URL is not set")
    import psycopg

    _ensure_database(psycopg)
    schema = f"py_{uuid.uuid4().hex}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options[search_path]={schema}", schema


@pytest.fixture(params=["sqlite_file", "sqlite_memory", "postgres"])
def db_url(request, tmp_path):
    if request.param == "sqlite_file":
        yield f"sqlite://{tmp_path}/ate.db"
    elif request.param == "sqlite_memory":
        yield "sqlite::memory:"
    else:
        url, schema = _postgres_url()
        yield url
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def client(db_url):
    with ate.Ate(db_url, actor="system:pytest") as a:
        yield a


def run_sql(path, *statements):
    """Runs SQL against a SQLite file from a separate process.

    Never open ATE's database with Python's own sqlite3 in the test process: that is a
    second copy of SQLite, and POSIX file locks do not separate two copies in one process,
    so neither would see the other's locks.
    """
    import subprocess
    import sys

    script = "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nfor s in sys.argv[2:]: c.execute(s)\nc.commit()\n"
    subprocess.run([sys.executable, "-c", script, str(path), *statements], check=True)


@pytest.fixture
def sqlite_path(tmp_path):
    return tmp_path / "ate.db"


@pytest.fixture
def file_client(sqlite_path):
    with ate.Ate(f"sqlite://{sqlite_path}", actor="system:pytest") as a:
        yield a


S3_ENDPOINT = os.environ.get("ATE_TEST_S3_ENDPOINT")
S3_BUCKET = "ate-test"


def _s3_url():
    """A fresh prefix in the test bucket of the loopback S3 server started by scripts/test."""
    if not S3_ENDPOINT:
        if IN_CI:
            pytest.fail("CI=true but ATE_TEST_S3_ENDPOINT is not set: S3 tests cannot be skipped in CI")
        pytest.skip("ATE_TEST_S3_ENDPOINT is not set")
    import urllib.error
    import urllib.request

    try:  # the test server accepts unsigned requests; creating an existing bucket is fine
        urllib.request.urlopen(urllib.request.Request(f"{S3_ENDPOINT}/{S3_BUCKET}", method="PUT"), timeout=10)
    except urllib.error.HTTPError as e:
        if e.code != 409:
            raise
    return f"s3://{S3_BUCKET}/py-{uuid.uuid4().hex}/?endpoint={S3_ENDPOINT}"


# Each blob backend once, each metadata backend once: the full matrix runs in Rust.
STORAGE_COMBOS = ["sqlite_file+fs", "sqlite_memory+memory", "postgres+s3"]


@pytest.fixture(params=STORAGE_COMBOS)
def storage_urls(request, tmp_path):
    """(database_url, storage_url) for one metadata × blob backend combination."""
    db, blobs = request.param.split("+")
    schema = None
    if db == "sqlite_file":
        database_url = f"sqlite://{tmp_path}/ate.db"
    elif db == "sqlite_memory":
        database_url = "sqlite::memory:"
    else:
        database_url, schema = _postgres_url()
    if blobs == "fs":
        storage_url = f"fs://{tmp_path}/blobs"
    elif blobs == "memory":
        storage_url = "memory://"
    else:
        storage_url = _s3_url()
    yield database_url, storage_url
    if schema:
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


MASTER_KEY = bytes(range(32))


@pytest.fixture
def store(storage_urls):
    database_url, storage_url = storage_urls
    with ate.Ate(database_url, storage_url=storage_url, master_key=MASTER_KEY, actor="system:pytest") as a:
        yield a
