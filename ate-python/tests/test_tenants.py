"""The tenants surface on every backend: objects with attributes, typed errors."""

import datetime
import threading

import pytest

import ate


def test_create_get_list(client):
    t = client.tenants.create(slug="acme", name="  Acme Corp ", quotas={"max_objects": 10})
    assert isinstance(t, ate.Tenant)
    assert (t.slug, t.name, t.status, t.revision) == ("acme", "Acme Corp", "active", 1)
    assert t.quotas["max_objects"] == 10 and t.quotas["max_users"] is None
    assert t.created_at.tzinfo is not None
    assert abs(t.created_at - datetime.datetime.now(datetime.timezone.utc)) < datetime.timedelta(minutes=1)
    assert client.tenants.get(t.id) == t
    assert client.tenants.get_by_slug("acme") == t
    assert "acme" in repr(t)

    for i in range(4):
        client.tenants.create(slug=f"team-{i}", name=f"Team {i}")
    page = client.tenants.list(limit=2)
    assert isinstance(page, ate.TenantPage) and len(page) == 2
    seen = [x.slug for x in page]
    while page.next_cursor:
        page = client.tenants.list(limit=2, cursor=page.next_cursor)
        seen += [x.slug for x in page.items]
    assert seen == ["acme", "team-0", "team-1", "team-2", "team-3"]


def test_lifecycle(client):
    t = client.tenants.create(slug="acme", name="Acme")
    u = client.tenants.update(t.id, name="Acme Inc", quotas={"max_storage_bytes": 1 << 30}, expected_revision=1)
    assert (u.name, u.revision, u.quotas["max_storage_bytes"]) == ("Acme Inc", 2, 1 << 30)
    with pytest.raises(ate.ConflictError):
        client.tenants.update(t.id, name="Stale", expected_revision=1)

    s = client.tenants.suspend(t.id, "payment overdue")
    assert (s.status, s.status_reason) == ("suspended", "payment overdue")
    assert client.tenants.list(status="suspended").items == [s]
    r = client.tenants.reactivate(t.id)
    assert r.status == "active" and r.status_reason is None

    d = client.tenants.delete(t.id)
    assert d.status == "deleted" and d.purge_at > d.deleted_at
    assert client.tenants.list().items == []
    with pytest.raises(ate.ConflictError):
        client.tenants.update(t.id, name="Frozen")
    with pytest.raises(ate.ConflictError):
        client.tenants.suspend(t.id, "too late")
    with pytest.raises(ate.AlreadyExistsError):
        client.tenants.create(slug="acme", name="Impostor")
    assert client.tenants.purge_due() == []  # 30 days of retention
    assert client.tenants.reactivate(t.id).status == "active"

    actions = [e.action for e in client.audit.query(t.id)]
    assert actions == [
        "tenant_created", "tenant_updated", "tenant_suspended",
        "tenant_reactivated", "tenant_deleted", "tenant_restored",
    ]
    assert all(e.actor == "system:pytest" for e in client.audit.query(t.id))


@pytest.mark.parametrize(
    "slug, fragment",
    [
        ("", "empty"),
        ("ab", "3 to 63"),
        ("a" * 64, "3 to 63"),
        ("Acme", "uppercase"),
        ("\u0430cme", "looks like \"acme\""),  # Cyrillic a
        ("acme_corp", "'_'"),
        ("admin", "reserved"),
    ],
)
def test_bad_slugs(client, slug, fragment):
    with pytest.raises(ate.InvalidInputError) as info:
        client.tenants.create(slug=slug, name="Name")
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)
    assert client.tenants.list().items == []


def test_bad_ids_names_and_quotas(client):
    for bad in ["", "nope", "2c5ea4c0-4067-41ab-9d6c-1e7a6f1d2a3b"]:
        with pytest.raises(ate.InvalidInputError, match="tenant id"):
            client.tenants.get(bad)
    for name in ["", "   ", "x" * 201, "bell\x07"]:
        with pytest.raises(ate.InvalidInputError):
            client.tenants.create(slug="fine", name=name)
    with pytest.raises(ate.InvalidInputError, match="unknown field"):
        client.tenants.create(slug="fine", name="Fine", quotas={"max_unicorns": 1})
    with pytest.raises(ate.InvalidInputError):
        client.tenants.create(slug="fine", name="Fine", quotas={"max_objects": -1})
    with pytest.raises(ate.InvalidInputError):
        client.tenants.list(limit=0)
    with pytest.raises(ate.InvalidInputError):
        client.tenants.list(status="sleeping")
    with pytest.raises(ate.InvalidInputError):
        client.tenants.list(cursor="garbage")
    assert client.tenants.list().items == []


def test_unknown_tenant(client):
    ghost = "01900000-0000-7000-8000-000000000000"
    for call in [
        lambda: client.tenants.get(ghost),
        lambda: client.tenants.suspend(ghost, "x"),
        lambda: client.tenants.delete(ghost),
        lambda: client.tenants.get_by_slug("ghost"),
        lambda: client.audit.query(ghost),
    ]:
        with pytest.raises(ate.NotFoundError) as info:
            call()
        assert info.value.kind == "not_found" and not info.value.retryable
        assert isinstance(info.value, LookupError)


def test_duplicate_slug_from_threads(db_url):
    # Threads share one client: creates run concurrently with the GIL released.
    with ate.Ate(db_url) as a:
        results = []

        def create(i):
            try:
                results.append(a.tenants.create(slug="race", name=f"Racer {i}"))
            except ate.AlreadyExistsError as e:
                results.append(e)

        threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(isinstance(r, ate.Tenant) for r in results) == 1
        assert sum(isinstance(r, ate.AlreadyExistsError) for r in results) == 7
        assert len(a.tenants.list().items) == 1


def test_blocking_calls_release_the_gil(sqlite_path):
    """A create that waits on a SQLite lock must not hold the GIL: while it waits, this
    thread keeps running Python, and it is this thread that finally releases the lock."""
    import subprocess
    import sys

    with ate.Ate(f"sqlite://{sqlite_path}") as a:
        # Another process takes the write lock and holds it until told to stop.
        holder = subprocess.Popen(
            [sys.executable, "-c",
             "import sqlite3,sys\n"
             "c=sqlite3.connect(sys.argv[1], isolation_level=None)\n"
             "c.execute('BEGIN IMMEDIATE')\n"
             "print('locked', flush=True)\n"
             "sys.stdin.readline()\n"
             "c.execute('ROLLBACK')\n",
             str(sqlite_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert holder.stdout.readline().strip() == "locked"
        done = threading.Event()
        outcome = []

        def create():
            try:
                outcome.append(a.tenants.create(slug="waiter", name="Waits for the lock"))
            except Exception as e:  # reported by the assertion below
                outcome.append(e)
            done.set()

        worker = threading.Thread(target=create)
        worker.start()
        ticks = 0
        while not done.is_set() and ticks < 20:  # needs the GIL while the worker waits
            ticks += 1
            done.wait(0.05)
        assert not done.is_set(), f"create should still be waiting for the lock: {outcome}"
        holder.stdin.write("go\n")
        holder.stdin.flush()
        holder.wait(timeout=10)
        worker.join(timeout=10)
        assert ticks == 20
        assert isinstance(outcome[0], ate.Tenant), outcome
