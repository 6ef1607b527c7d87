"""`a.workflows`: Python step handlers (plain and async def) run by a background worker on
every backend; runs submitted, awaited, watched, logged, cancelled, signalled and retried;
bad input refused with typed errors."""

import asyncio
import threading
import time

import pytest

import ate
from ate.workflows import StepFailed

CHAIN = {
    "nodes": [
        {"id": "fetch", "step": "fetch"},
        {"id": "left", "step": "double", "depends_on": ["fetch"]},
        {"id": "right", "step": "double_async", "depends_on": ["fetch"]},
        {"id": "join", "step": "join", "depends_on": ["left", "right"]},
    ]
}


def register_steps(a, calls):
    @a.workflows.step("fetch")
    def fetch(ctx, data):
        calls.append(("fetch", ctx.attempt, threading.current_thread() is threading.main_thread()))
        ctx.log("info", "fetched", {"n": data["input"]["n"]})
        return data["input"]["n"]

    @a.workflows.step("double")
    def double(ctx, data):
        return data["deps"]["fetch"] * 2

    @a.workflows.step("double_async")
    async def double_async(ctx, data):
        await asyncio.sleep(0.01)
        return data["deps"]["fetch"] * 2

    @a.workflows.step("join")
    def join(ctx, data):
        return {"sum": data["deps"]["left"] + data["deps"]["right"], "key": ctx.idempotency_key}


def test_runs_complete_with_python_handlers(client):
    calls = []
    register_steps(client, calls)
    assert client.workflows.steps() == ["double", "double_async", "fetch", "join"]
    acme = client.tenants.create("acme", "Acme").id
    with client.workflows.start_worker("py-1", concurrency=4) as worker:
        assert worker.running
        run = client.workflows.submit(acme, CHAIN, {"n": 21}, labels={"team": "data"})
        assert run.status in ("running", "succeeded") and len(run.nodes) == 4
        done = client.workflows.wait(acme, run.id, timeout=30)
    assert not worker.running
    assert done.status == "succeeded" and done.finished
    assert done.node("join").output == {"sum": 84, "key": f"{run.id}/join"}
    assert done.node("right").output == 42  # the async def handler
    assert calls == [("fetch", 1, False)], "ran once, off the main thread"
    assert done.labels == {"team": "data"} and done.input == {"n": 21}
    logs = client.workflows.logs(acme, run.id, min_level="info")
    assert [(e.node, e.message, e.fields) for e in logs] == [("fetch", "fetched", {"n": 21})]
    listed = client.workflows.list(acme, status="succeeded", label=("team", "data"))
    assert [r.id for r in listed] == [run.id]
    with pytest.raises(KeyError):
        done.node("nope")


def test_failures_retry_then_fail_with_the_handlers_error(client):
    attempts = []

    @client.workflows.step("flaky")
    def flaky(ctx, data):
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise ConnectionError("try again")  # any exception: retried
        raise StepFailed("bad data", kind="validation")  # not retried

    acme = client.tenants.create("acme", "Acme").id
    dag = {"nodes": [{"id": "f", "step": "flaky", "retry": {"initial_interval_ms": 10, "max_attempts": 5}}]}
    with client.workflows.start_worker("py-2"):
        run = client.workflows.submit(acme, dag)
        done = client.workflows.wait(acme, run.id, timeout=30)
    assert attempts == [1, 2]
    assert done.status == "failed"
    node = done.node("f")
    assert node.error == {"kind": "validation", "message": "bad data", "retryable": False}
    # Retried from the failure: the node runs again (and fails again, for good).
    with client.workflows.start_worker("py-3"):
        again = client.workflows.retry(acme, run.id)
        assert again.status == "running"
        done = client.workflows.wait(acme, run.id, timeout=30)
    assert done.status == "failed" and attempts == [1, 2, 1, 2]


def test_signals_cancel_and_watch(client):
    acme = client.tenants.create("acme", "Acme").id
    started = threading.Event()

    @client.workflows.step("block")
    def block(ctx, data):
        started.set()
        while not ctx.is_cancelled():
            ctx.heartbeat()
            time.sleep(0.01)
        raise StepFailed("stopped")

    @client.workflows.step("ship")
    def ship(ctx, data):
        return data["deps"]["approve"]

    approval = {"nodes": [{"id": "approve", "signal": "approval"}, {"id": "ship", "step": "ship", "depends_on": ["approve"]}]}
    with client.workflows.start_worker("py-4"):
        run = client.workflows.submit(acme, approval)
        events = client.workflows.watch(acme, run.id)
        with pytest.raises(ate.InvalidInputError, match="nope"):
            client.workflows.signal(acme, run.id, "nope")
        client.workflows.signal(acme, run.id, "approval", {"by": "ana"})
        done = client.workflows.wait(acme, run.id, timeout=30)
        assert done.node("ship").output == {"by": "ana"}
        seen = []
        for event in events:
            seen.append(event)
            if event.status == "succeeded":
                break
        assert all(e.run == run.id for e in seen)
        assert ("approve", "succeeded") in seen[0].nodes
        assert [e.revision for e in seen] == sorted(e.revision for e in seen)

        blocking = client.workflows.submit(acme, {"nodes": [{"id": "b", "step": "block"}]})
        assert started.wait(30)
        client.workflows.cancel(acme, blocking.id)
        done = client.workflows.wait(acme, blocking.id, timeout=30)
        assert done.status == "cancelled"
        assert client.workflows.cancel(acme, blocking.id).status == "cancelled"  # idempotent


def test_bad_input_is_refused(client):
    acme = client.tenants.create("acme", "Acme").id
    client.workflows.register("known", lambda ctx, data: None)
    cases = [
        ({"nodes": []}, "at least one node"),
        ({"nodes": [{"id": "a", "step": "unknown"}]}, "unknown"),
        ({"nodes": [{"id": "a", "step": "known", "depends_on": ["b"]}, {"id": "b", "step": "known", "depends_on": ["a"]}]}, "cycle"),
        ({"nodes": [{"id": "a", "step": "known", "extra": 1}]}, "extra"),
        ({"nodes": [{"id": "a", "step": "known"}, {"id": "a", "step": "known"}]}, "used twice"),
    ]
    for dag, says in cases:
        with pytest.raises(ate.InvalidInputError, match=says):
            client.workflows.submit(acme, dag)
    with pytest.raises(ate.InvalidInputError, match="JSON"):
        client.workflows.submit(acme, {"nodes": [{"id": "a", "step": "known"}]}, {"x": object()})
    with pytest.raises(ate.InvalidInputError, match="naive"):
        import datetime

        client.workflows.submit(acme, {"nodes": [{"id": "a", "step": "known"}]}, start_at=datetime.datetime(2030, 1, 1))
    with pytest.raises(ate.InvalidInputError, match="registered already"):
        client.workflows.register("known", lambda ctx, data: None)
    with pytest.raises(ate.InvalidInputError, match="callable"):
        client.workflows.register("other", 42)
    with pytest.raises(ate.InvalidInputError):
        client.workflows.register("Bad Name", lambda ctx, data: None)
    with pytest.raises(ate.InvalidInputError, match="timeout"):
        client.workflows.submit(acme, {"nodes": [{"id": "a", "step": "known"}]}, timeout=-1)
    assert len(client.workflows.list(acme)) == 0, "nothing stored"
    other = client.tenants.create("globex", "Globex").id
    run = client.workflows.submit(acme, {"nodes": [{"id": "a", "step": "known"}]})
    with pytest.raises(ate.NotFoundError):
        client.workflows.get(other, run.id)
    with pytest.raises(ate.NotFoundError):
        client.workflows.cancel(other, run.id)
    with pytest.raises(TimeoutError):
        client.workflows.wait(acme, run.id, timeout=0.2)  # no worker runs it


def test_a_worker_needs_steps(client):
    with pytest.raises(ate.InvalidInputError, match="no step handlers"):
        client.workflows.start_worker("empty")


async def test_the_async_surface(db_url):
    async with await ate.AsyncAte.open(db_url, actor="system:asyncio") as a:
        acme = (await a.tenants.create("acme", "Acme")).id

        @a.workflows.step("hello")
        async def hello(ctx, data):
            return f"hello {data['input']}"

        async with await a.workflows.start_worker("aio") as worker:
            events = await a.workflows.watch(acme)  # before submitting: nothing is missed
            run = await a.workflows.submit(acme, {"nodes": [{"id": "h", "step": "hello"}]}, "world")
            done = await a.workflows.wait(acme, run.id, timeout=30)
            assert done.node("h").output == "hello world"
            async for event in events:
                assert event.run == run.id
                if event.status == "succeeded":
                    break
        assert not worker.running
        assert (await a.workflows.get(acme, run.id)).status == "succeeded"
