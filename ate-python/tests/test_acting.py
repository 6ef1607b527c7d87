"""a.acting_as(principal): one way to act for a verified principal, in every domain.

A tenant's principal can neither read, list, overwrite, copy nor delete another tenant's
objects (typed exceptions, the victim's object unchanged afterwards), and does all of it in
its own tenant; the same through the asyncio client. Tenants, audit, auth and registry act
as the view's principal too. Storage runs on SQLite file + fs, in-memory SQLite + memory and
PostgreSQL + S3 (the loopback test server).
"""

from __future__ import annotations

import io

import pytest

import ate
from conftest import MASTER_KEY

ISS, AUD = "https://auth.example", "ate-tests"
PASSWORD = "correct horse battery staple"
STORAGE = ["storage:read", "storage:write", "storage:delete"]


def open_client(database_url, storage_url=None, **kw):
    if storage_url is not None:
        kw["storage_url"] = storage_url
    return ate.Ate(
        database_url, master_key=MASTER_KEY, auth_issuer=ISS, auth_audience=AUD,
        insecure_fast_password_hashing=True, actor="system:pytest", **kw,
    )


async def open_async_client(database_url, storage_url):
    return await ate.AsyncAte.open(
        database_url, storage_url=storage_url, master_key=MASTER_KEY, auth_issuer=ISS,
        auth_audience=AUD, insecure_fast_password_hashing=True, actor="system:pytest",
    )


def principal_of(a, tenant_id, email, *, permissions=(), roles=None):
    """A verified principal for a new user of ``tenant_id``, made by the platform."""
    a.auth.create_user(tenant_id, email, password=PASSWORD, permissions=list(permissions), roles=roles)
    return a.auth.verify(a.auth.login(tenant_id, email, PASSWORD).access_token)


def snapshot(a, tenant_id, path):
    """What the host sees of one object: its index entry and its bytes."""
    return a.storage.stat(tenant_id, path), a.storage.get(tenant_id, path, verify_checksum=True)


def test_a_tenant_principal_cannot_touch_another_tenants_objects(storage_urls):
    with open_client(*storage_urls) as a:
        acme = a.tenants.create("acme", "Acme").id
        globex = a.tenants.create("globex", "Globex").id
        a.storage.put(globex, "secret", b"globex only", content_type="text/plain", metadata={"v": 1})
        before = snapshot(a, globex, "secret")
        mallory = a.acting_as(principal_of(a, acme, "mallory@acme.example", permissions=STORAGE))
        assert mallory.principal.tenant_id == acme and not mallory.principal.is_platform_admin

        denied = {
            "get": lambda: mallory.storage.get(globex, "secret"),
            "get_range": lambda: mallory.storage.get_range(globex, "secret", 0, 3),
            "open": lambda: mallory.storage.open(globex, "secret"),
            "download": lambda: mallory.storage.download(globex, "secret", io.BytesIO()),
            "stat": lambda: mallory.storage.stat(globex, "secret"),
            "list": lambda: mallory.storage.list(globex),
            "overwrite": lambda: mallory.storage.put(globex, "secret", b"owned by mallory"),
            "overwrite from a file": lambda: mallory.storage.put(globex, "secret", io.BytesIO(b"owned")),
            "put beside": lambda: mallory.storage.put(globex, "planted", b"x"),
            "copy": lambda: mallory.storage.copy(globex, "secret", "stolen"),
            "delete": lambda: mallory.storage.delete(globex, "secret"),
            "keys": lambda: mallory.storage.keys(globex),
            "rotate_key": lambda: mallory.storage.rotate_key(globex),
            "reencrypt": lambda: mallory.storage.reencrypt(globex),
            "destroy_keys": lambda: mallory.storage.destroy_keys(globex),
            "collect_garbage": lambda: mallory.storage.collect_garbage(globex),
            "verify": lambda: mallory.storage.verify(globex, repair=True),
            "rotate_master_key": lambda: mallory.storage.rotate_master_key(),
        }
        for name, call in denied.items():
            with pytest.raises(ate.PermissionDeniedError):
                call()
                pytest.fail(f"{name} succeeded for another tenant's principal")

        # The victim's object is exactly as it was, and nothing was added anywhere.
        assert snapshot(a, globex, "secret") == before
        assert [o.path for o in a.storage.list(globex)] == ["secret"]
        assert len(a.storage.list(acme)) == 0
        assert [k.state for k in a.storage.keys(globex)] == ["active"]

        # Its own tenant: everything works.
        info = mallory.storage.put(acme, "notes/a.txt", b"first")
        assert info.tenant_id == acme
        assert mallory.storage.get(acme, "notes/a.txt") == b"first"
        assert mallory.storage.put(acme, "notes/a.txt", b"second").size == 6  # overwrite
        assert mallory.storage.get(acme, "notes/a.txt") == b"second"
        assert mallory.storage.stat(acme, "notes/a.txt").sha256 == a.storage.stat(acme, "notes/a.txt").sha256
        assert mallory.storage.get_range(acme, "notes/a.txt", 1, 4) == b"eco"
        with mallory.storage.open(acme, "notes/a.txt") as reader:
            assert reader.read() == b"second"
        out = io.BytesIO()
        mallory.storage.download(acme, "notes/a.txt", out, verify_checksum=True)
        assert out.getvalue() == b"second"
        mallory.storage.copy(acme, "notes/a.txt", "notes/b.txt")
        assert [o.path for o in mallory.storage.list(acme, "notes/")] == ["notes/a.txt", "notes/b.txt"]
        assert mallory.storage.delete(acme, "notes/a.txt") is None
        with pytest.raises(ate.NotFoundError):
            mallory.storage.get(acme, "notes/a.txt")
        assert a.storage.get(acme, "notes/b.txt") == b"second"  # the host sees what it wrote
        # Key management needs its own permissions, even in its own tenant.
        with pytest.raises(ate.PermissionDeniedError):
            mallory.storage.rotate_key(acme)
        assert snapshot(a, globex, "secret") == before


def test_a_view_has_only_its_principals_permissions(storage_urls):
    """The view acts as the principal, not as the client: a user without storage
    permissions is refused in its own tenant, and a read-only one cannot write."""
    with open_client(*storage_urls) as a:
        acme = a.tenants.create("acme", "Acme").id
        a.storage.put(acme, "report", b"q3")
        nobody = a.acting_as(principal_of(a, acme, "nobody@acme.example"))
        reader = a.acting_as(principal_of(a, acme, "reader@acme.example", permissions=["storage:read"]))
        for call in (lambda: nobody.storage.get(acme, "report"), lambda: nobody.storage.list(acme)):
            with pytest.raises(ate.PermissionDeniedError):
                call()
        assert reader.storage.get(acme, "report") == b"q3"
        with pytest.raises(ate.PermissionDeniedError):
            reader.storage.put(acme, "report", b"changed")
        with pytest.raises(ate.PermissionDeniedError):
            reader.storage.delete(acme, "report")
        assert a.storage.get(acme, "report") == b"q3"


async def test_async_tenant_principal_cannot_touch_another_tenants_objects(storage_urls):
    a = await open_async_client(*storage_urls)
    async with a:
        acme = (await a.tenants.create("acme", "Acme")).id
        globex = (await a.tenants.create("globex", "Globex")).id
        await a.storage.put(globex, "secret", b"globex only", metadata={"v": 1})
        before = (await a.storage.stat(globex, "secret"), await a.storage.get(globex, "secret"))
        await a.auth.create_user(acme, "mallory@acme.example", password=PASSWORD, permissions=STORAGE)
        token = (await a.auth.login(acme, "mallory@acme.example", PASSWORD)).access_token
        mallory = a.acting_as(await a.auth.verify(token))
        assert isinstance(mallory, ate.AsyncAte) and mallory.principal.tenant_id == acme

        denied = {
            "get": lambda: mallory.storage.get(globex, "secret"),
            "get_range": lambda: mallory.storage.get_range(globex, "secret", 0, 3),
            "open": lambda: mallory.storage.open(globex, "secret"),
            "download": lambda: mallory.storage.download(globex, "secret", io.BytesIO()),
            "stat": lambda: mallory.storage.stat(globex, "secret"),
            "list": lambda: mallory.storage.list(globex),
            "overwrite": lambda: mallory.storage.put(globex, "secret", b"owned by mallory"),
            "copy": lambda: mallory.storage.copy(globex, "secret", "stolen"),
            "delete": lambda: mallory.storage.delete(globex, "secret"),
            "rotate_key": lambda: mallory.storage.rotate_key(globex),
        }
        for name, call in denied.items():
            with pytest.raises(ate.PermissionDeniedError):
                await call()
                pytest.fail(f"{name} succeeded for another tenant's principal")
        assert (await a.storage.stat(globex, "secret"), await a.storage.get(globex, "secret")) == before
        assert [o.path for o in await a.storage.list(globex)] == ["secret"]

        await mallory.storage.put(acme, "mine", b"first")
        await mallory.storage.put(acme, "mine", b"second")
        assert await mallory.storage.get(acme, "mine") == b"second"
        assert (await mallory.storage.stat(acme, "mine")).size == 6
        reader = await mallory.storage.open(acme, "mine")
        assert await reader.read() == b"second"
        await mallory.storage.copy(acme, "mine", "copy")
        assert [o.path for o in await mallory.storage.list(acme)] == ["copy", "mine"]
        assert await mallory.storage.delete(acme, "mine") is None
        with pytest.raises(ate.NotFoundError):
            await mallory.storage.get(acme, "mine")
        # A view does not own the connections: closing it leaves the client working.
        async with mallory:
            pass
        assert await mallory.close() is None
        assert await a.storage.get(acme, "copy") == b"second"
        assert await mallory.storage.get(acme, "copy") == b"second"


def test_every_domain_acts_as_the_views_principal(tmp_path):
    with open_client(f"sqlite://{tmp_path}/ate.db") as a:
        assert a.principal.is_platform_admin and a.principal.subject == "system:pytest"
        acme, _ = a.auth.register("acme", "Acme", "owner@acme.example", PASSWORD)
        globex, globex_owner = a.auth.register("globex", "Globex", "owner@globex.example", PASSWORD)
        owner = a.auth.verify(a.auth.login(acme.id, "owner@acme.example", PASSWORD).access_token)
        me = a.acting_as(owner)
        assert me.principal == owner and "user:" in repr(me)

        # Tenants: its own is readable; another, and creating tenants, are not.
        assert me.tenants.get(acme.id).slug == "acme"
        with pytest.raises(ate.PermissionDeniedError):
            me.tenants.get(globex.id)
        with pytest.raises(ate.PermissionDeniedError):
            me.tenants.create("initech", "Initech")
        assert [t.id for t in me.tenants.list()] == [acme.id]

        # Audit: an admin reads its own tenant's log only, and appends only with audit:write.
        assert me.audit.verify_chain(acme.id).intact
        for call in (
            lambda: me.audit.query(globex.id),
            lambda: me.audit.head(globex.id),
            lambda: me.audit.verify_chain(globex.id),
            lambda: me.audit.append(globex.id, "user:x", "app_forged"),
            lambda: me.audit.append(acme.id, "user:x", "app_event"),
        ):
            with pytest.raises(ate.PermissionDeniedError):
                call()
        head = a.audit.head(globex.id)
        recorder = a.acting_as(principal_of(a, acme.id, "rec@acme.example", permissions=["audit:write"]))
        event = recorder.audit.append(acme.id, "user:x", "app_event", metadata={"n": 1})
        assert event.tenant_id == acme.id and event.action == "app_event"
        with pytest.raises(ate.PermissionDeniedError):
            recorder.audit.append(globex.id, "user:x", "app_forged")
        assert a.audit.head(globex.id) == head  # nothing reached the other tenant's chain

        # Auth: management calls act as the view's principal without actor=.
        assert {u.email for u in me.auth.list_users(acme.id)} >= {"owner@acme.example"}
        for call in (
            lambda: me.auth.list_users(globex.id),
            lambda: me.auth.get_user(globex.id, globex_owner.id),
            lambda: me.auth.disable_user(globex.id, globex_owner.id),
            lambda: me.auth.rotate_signing_key(),
        ):
            with pytest.raises(ate.PermissionDeniedError):
                call()
        assert a.auth.get_user(globex.id, globex_owner.id).status == "active"
        # actor= still acts as a given principal for one call.
        assert len(me.auth.list_users(globex.id, actor=a.principal)) == 1

        # Registry: instances land in the principal's tenant; hub-wide reads are refused.
        with pytest.raises(ate.PermissionDeniedError):  # an admin lacks registry:write
            me.registry.register("api", "a-1", "http://127.0.0.1:1")
        me = a.acting_as(principal_of(a, acme.id, "ops@acme.example", permissions=["registry:read", "registry:write"]))
        inst = me.registry.register("api", "a-1", "http://127.0.0.1:1")
        assert inst.tenant == acme.id
        me.registry.set_status("api", "a-1", "passing")
        assert [i.id for i in me.registry.discover("api")] == ["a-1"]
        assert a.registry.discover("api") == []  # the platform does not see a tenant's instance
        assert me.registry.pick("api").instance.id == "a-1"
        with pytest.raises(ate.PermissionDeniedError):  # another tenant's scope
            me.registry.deregister("api", "a-1", tenant=globex.id)
        with pytest.raises(ate.PermissionDeniedError):
            me.registry.register("api", "planted", "http://127.0.0.1:2", tenant=globex.id)
        assert a.registry.discover("api", tenant=globex.id, include_unhealthy=True) == []
        for call in (
            lambda: me.registry.metrics_text(),
            lambda: me.registry.stats("api"),
            lambda: me.registry.record("api", "a-1", 0.1),
            lambda: me.registry.breaker_states("api"),
            lambda: me.registry.check_results("any"),
            lambda: me.registry.add_alert_rule("r", "r", service="api", instance_critical=True),
            lambda: me.registry.alert_states(),
            lambda: me.registry.alert_events(),
            lambda: me.registry.evaluate_alerts(),
            lambda: me.registry.on_alert(print),
        ):
            with pytest.raises(ate.PermissionDeniedError):
                call()
        assert a.registry.alert_states() == {}  # nothing was added by the refused call
        assert a.registry.metrics_text().endswith("# EOF\n")  # the platform reads them

        # A view does not own the connections.
        with a.acting_as(owner) as view:
            assert view.tenants.get(acme.id).id == acme.id
        assert view.close() is None
        assert a.tenants.get(globex.id).id == globex.id
        assert view.tenants.get(acme.id).id == acme.id


async def test_async_views_act_in_every_domain(tmp_path):
    a = await ate.AsyncAte.open(
        f"sqlite://{tmp_path}/ate.db", master_key=MASTER_KEY, auth_issuer=ISS, auth_audience=AUD,
        insecure_fast_password_hashing=True,
    )
    acme, _ = await a.auth.register("acme", "Acme", "owner@acme.example", PASSWORD)
    globex, _ = await a.auth.register("globex", "Globex", "owner@globex.example", PASSWORD)
    owner = await a.auth.verify((await a.auth.login(acme.id, "owner@acme.example", PASSWORD)).access_token)
    me = a.acting_as(owner)
    assert (await me.tenants.get(acme.id)).id == acme.id
    assert (await me.audit.verify_chain(acme.id)).intact
    assert {u.email for u in await me.auth.list_users(acme.id)} == {"owner@acme.example"}
    with pytest.raises(ate.PermissionDeniedError):  # an admin lacks registry:write
        await me.registry.register("api", "a-1", "http://127.0.0.1:1")
    for pending in (
        me.tenants.get(globex.id),
        me.audit.query(globex.id),
        me.auth.list_users(globex.id),
        me.registry.metrics_text(),
    ):
        with pytest.raises(ate.PermissionDeniedError):
            await pending
    await a.close()
