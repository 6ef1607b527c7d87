"""The asyncio twin: the same surface, awaited."""

import asyncio

import pytest

import ate


async def test_async_surface(db_url):
    async with await ate.AsyncAte.open(db_url, actor="system:asyncio") as a:
        assert isinstance(a, ate.AsyncAte)
        t = await a.tenants.create("acme", "Acme")
        assert isinstance(t, ate.Tenant)
        assert await a.tenants.get(t.id) == t
        assert await a.tenants.get_by_slug("acme") == t
        await a.tenants.update(t.id, name="Acme Inc")
        await a.tenants.suspend(t.id, "review")
        await a.tenants.reactivate(t.id)
        page = await a.tenants.list()
        assert [x.slug for x in page] == ["acme"]

        events = await asyncio.gather(
            *(a.audit.append(t.id, f"user:{i}", "authn_login_fail", outcome="failure") for i in range(10))
        )
        assert sorted(e.seq for e in events) == list(range(5, 15))
        log = await a.audit.query(t.id, limit=100)
        assert [e.seq for e in log] == list(range(1, 15))
        assert log.items[0].actor == "system:asyncio"
        report = await a.audit.verify_chain(t.id)
        assert report.intact and report.events_checked == 14
        assert (await a.audit.head(t.id)).seq == 14

        await a.tenants.delete(t.id)
        assert await a.tenants.purge_due() == []


async def test_async_errors_raise_when_awaited(db_url):
    a = await ate.AsyncAte.open(db_url)
    await a.tenants.create("acme", "Acme")
    with pytest.raises(ate.AlreadyExistsError):
        await a.tenants.create("acme", "Again")
    with pytest.raises(ate.NotFoundError):
        await a.tenants.get_by_slug("ghost")
    with pytest.raises(ate.InvalidInputError):
        await a.tenants.get("not-an-id")
    await a.close()


async def test_async_open_errors():
    with pytest.raises(ate.InvalidInputError):
        await ate.AsyncAte.open("nonsense")
    with pytest.raises(ate.UnavailableError):
        await ate.AsyncAte.open("postgres://nobody@127.0.0.1:1/none")


async def test_event_loop_stays_responsive(tmp_path):
    """Awaiting ATE calls never blocks the loop: a ticker keeps ticking meanwhile."""
    a = await ate.AsyncAte.open(f"sqlite://{tmp_path}/ate.db")
    t = await a.tenants.create("acme", "Acme")
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    for i in range(30):
        await a.audit.append(t.id, "user:x", "authn_login_fail", outcome="failure")
    task.cancel()
    assert ticks > 30
    assert await a.close() is None
