"""a.registry: registration, health checks against real loopback servers, discovery, picks
with every strategy, recorded outcomes, metrics text, failover, bad input, alerts (callback
and polling) and the asyncio twin.

The end-to-end tests run on a SQLite file, in-memory SQLite and PostgreSQL; input checks
and alerts, which do not depend on the backend, on a SQLite file. Servers bind 127.0.0.1
port 0; every wait is a bounded loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import doctest
import inspect
import http.server
import socket
import threading
import time

import pytest

import ate
import ate.registry
from ate.registry import http_check, tcp_check, ttl_check

FAST = {"interval": 0.3, "timeout": 0.2}
STRATEGIES = ["least_request", "round_robin", "weighted", "random", "consistent_hash"]


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class HttpServer:
    """A real HTTP server on 127.0.0.1, port chosen by the OS, answering 200 to every GET."""

    def __init__(self):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.stopped = False

    def stop(self):
        if not self.stopped:
            self.stopped = True
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(timeout=5)


@pytest.fixture
def servers():
    made = []

    def make():
        s = HttpServer()
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def wait_until(predicate, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def ids(instances):
    return sorted(i.id for i in instances)


def test_register_check_discover_pick_record_metrics_and_failover(db_url, servers):
    s1, s2 = servers(), servers()
    with ate.Ate(db_url, actor="system:pytest") as a:
        r = a.registry
        assert a.registry is r  # one registry (one hub) per client
        first = r.register(
            "api", "api-1", s1.url, weight=3, tags=("v2", "blue"), capabilities=("search",),
            metadata={"zone": "a"}, checks=[http_check(f"{s1.url}/health", **FAST)],
        )
        assert first.status == "critical"  # new instances start critical (Consul's rule)
        assert (first.service, first.id, first.weight, first.environment, first.tenant) == ("api", "api-1", 3, "production", None)
        assert first.tags == frozenset({"v2", "blue"}) and first.capabilities == frozenset({"search"})
        assert first.metadata == {"zone": "a"} and first.endpoint.startswith(s1.url)
        r.register("api", "api-2", s2.url, environment="staging", checks=[{"http": f"{s2.url}/health", **FAST}])

        wait_until(lambda: len(r.discover("api")) == 2, "both instances passing")
        found = {i.id: i for i in r.discover("api")}
        assert found["api-1"].status == "passing" and found["api-1"].status_output
        assert ids(r.discover("api", capability="search")) == ["api-1"]
        assert ids(r.discover("api", tags=("v2",))) == ["api-1"]
        assert ids(r.discover("api", environment="staging")) == ["api-2"]
        assert ids(r.discover()) == ["api-1", "api-2"]
        results = r.check_results("api/api-1:http:1")
        assert results and results[-1].status == "passing" and results[-1].duration >= 0

        for strategy in STRATEGIES:
            if strategy == "least_request":
                # Sequential picks all tie at zero in flight; held ones spread by load.
                held = [r.pick("api", strategy=strategy) for _ in range(8)]
                seen = {p.instance.id for p in held}
                for p in held:
                    p.success()
            else:
                seen = set()
                for _ in range(40):
                    with r.pick("api", strategy=strategy) as pick:
                        seen.add(pick.instance.id)
            assert seen == {"api-1", "api-2"}, strategy
        sticky = {r.pick("api", strategy="consistent_hash", key="tenant-42").instance.id for _ in range(20)}
        assert len(sticky) == 1
        assert ids(r.discover("api", environment="production")) == ["api-1"]
        assert r.pick("api", environment="staging").instance.id == "api-2"

        r.record("api", "api-1", 0.25)
        r.record("api", "api-1", 0.5, error="unavailable")
        one = r.stats("api", instance="api-1")
        assert one.count >= 2 and one.errors == 1 and one.p99 is not None and one.p99 >= 0.2
        assert 0 < one.error_rate < 1 and one.rate_per_sec > 0
        assert r.stats("api").count > one.count
        assert r.stats("nobody-home").count == 0 and r.stats("nobody-home").p50 is None
        assert r.breaker_states("api") == {"platform/api-1": "closed", "platform/api-2": "closed"}

        text = r.metrics_text()
        lines = [line for line in text.splitlines() if line.startswith("ate_requests_total")]
        assert any('instance="api-1"' in line for line in lines), text
        assert any('instance="api-2"' in line for line in lines), text
        assert text.rstrip().endswith("# EOF")

        s2.stop()
        wait_until(lambda: ids(r.discover("api")) == ["api-1"], "api-2 critical after its server stopped")
        down = {i.id: i for i in r.discover("api", include_unhealthy=True)}["api-2"]
        assert down.status == "critical"
        for strategy in STRATEGIES:
            for _ in range(20):
                pick = r.pick("api", strategy=strategy)
                assert pick.instance.id == "api-1", strategy
                pick.success()

        gone = r.deregister("api", "api-1")
        assert gone.id == "api-1"
        with pytest.raises(ate.NotFoundError):
            r.check_results("api/api-1:http:1")  # its checks stopped with it
        # Only a critical instance left: below the panic threshold the hub balances over
        # every instance rather than refuse (Envoy's panic mode).
        assert r.pick("api").instance.id == "api-2"
        with pytest.raises(ate.UnavailableError):
            r.pick("nothing-registered")


def test_tcp_and_ttl_checks(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    try:
        with ate.Ate(f"sqlite://{tmp_path}/ate.db") as a:
            r = a.registry
            r.register("db", "db-1", f"tcp://127.0.0.1:{port}", checks=[tcp_check(f"127.0.0.1:{port}", **FAST)])
            r.register("worker", "w-1", "http://127.0.0.1:9", checks=[ttl_check(30.0)])
            wait_until(lambda: ids(r.discover("db")) == ["db-1"], "TCP check passing")
            assert r.discover("worker") == []  # no heartbeat yet
            assert r.heartbeat("worker", "w-1").id == "w-1"
            wait_until(lambda: ids(r.discover("worker")) == ["w-1"], "TTL check passing after a heartbeat")
            listener.close()
            wait_until(lambda: r.discover("db") == [], "TCP check critical once the listener closed")
    finally:
        listener.close()


def test_set_status_by_hand_and_pick_context_manager_outcomes(file_client):
    r = file_client.registry
    assert r.register("svc", "only", "http://127.0.0.1:1").status == "critical"
    assert r.discover("svc") == []  # critical until someone says otherwise
    assert r.set_status("svc", "only", "passing", "deployed").status_output == "deployed"

    with pytest.raises(RuntimeError):
        with r.pick("svc") as pick:
            raise RuntimeError("the call failed")
    assert pick.finished
    with r.pick("svc"):
        pass
    explicit = r.pick("svc")
    explicit.failure("internal")
    with pytest.raises(ate.InvalidInputError):
        explicit.success()  # finished once only
    r.pick("svc")  # dropped unfinished: cancelled, nothing recorded
    stats = r.stats("svc", instance="only")
    assert (stats.count, stats.errors) == (3, 2)
    assert ids(r.discover("svc")) == ["only"]


def test_bad_input_raises_typed_errors(file_client, servers):
    r = file_client.registry
    url = servers().url
    with pytest.raises(ate.InvalidInputError) as e:
        r.register("api", "x", "not a url")
    assert isinstance(e.value, ValueError) and "endpoint" in str(e.value)
    for weight in (0, -1):
        with pytest.raises(ate.InvalidInputError, match="weight"):
            r.register("api", "x", url, weight=weight)
    with pytest.raises(ate.InvalidInputError, match="timeout"):
        r.register("api", "x", url, checks=[http_check(url, interval=1.0, timeout=2.0)])
    with pytest.raises(ate.InvalidInputError):
        r.register("api", "x", url, checks=[{"tcp": "no-port-here", **FAST}])
    with pytest.raises(ate.InvalidInputError):
        r.register("api", "x", url, checks=[{"grpc": url}])
    with pytest.raises(ate.InvalidInputError):
        http_check(url, interval=-1.0)
    with pytest.raises(ate.InvalidInputError, match="environment"):
        r.register("api", "x", url, environment="moon")
    with pytest.raises(ate.InvalidInputError, match="tags"):
        r.register("api", "x", url, tags="v2")  # a lone str would be letters
    assert r.discover(include_unhealthy=True) == []  # nothing stayed behind

    r.register("api", "x", url, checks=[http_check(url, **FAST)])
    with pytest.raises(ate.AlreadyExistsError):
        r.register("api", "x", url)
    with pytest.raises(ate.AlreadyExistsError):
        r.register("api", "y", url, checks=[http_check(url, id="api/x:http:1", **FAST)])
    with pytest.raises(ate.NotFoundError):
        r.deregister("api", "nope")
    with pytest.raises(ate.NotFoundError):
        r.heartbeat("api", "nope")
    with pytest.raises(ate.NotFoundError):
        r.set_status("api", "nope", "passing")
    with pytest.raises(ate.InvalidInputError, match="strategy"):
        r.pick("api", strategy="fastest")
    with pytest.raises(ate.UnavailableError):
        r.pick("unknown-service")
    with pytest.raises(ate.InvalidInputError, match="health status"):
        r.set_status("api", "x", "fine")
    with pytest.raises(ate.InvalidInputError, match="error kind"):
        r.record("api", "x", 0.1, error="oops")
    with pytest.raises(ate.InvalidInputError):
        r.record("api", "x", -0.1)
    with pytest.raises(ate.InvalidInputError):
        r.add_alert_rule("r", "two conditions", service="api", error_rate_above=0.5, instance_critical=True)
    with pytest.raises(ate.InvalidInputError):
        r.add_alert_rule("r", "no condition", service="api")
    with pytest.raises(ate.InvalidInputError):
        r.add_alert_rule("r", "rate above 1", service="api", error_rate_above=1.5)
    with pytest.raises(ate.NotFoundError):
        r.remove_alert_rule("never-added")
    with pytest.raises(ate.InvalidInputError):
        r.on_alert("not callable")


def test_tenant_scope_is_enforced(file_client):
    acme = file_client.tenants.create(slug="acme", name="Acme")
    globex = file_client.tenants.create(slug="globex", name="Globex")
    r = file_client.registry
    mine = r.register("api", "a-1", "http://127.0.0.1:1", tenant=acme.id)
    assert mine.tenant == acme.id
    r.set_status("api", "a-1", "passing", tenant=acme.id)
    r.register("api", "shared", "http://127.0.0.1:2")
    r.set_status("api", "shared", "passing")
    assert ids(r.discover("api", tenant=acme.id)) == ["a-1", "shared"]
    assert ids(r.discover("api", tenant=globex.id)) == ["shared"]
    assert ids(r.discover("api")) == ["shared"]
    assert {r.pick("api", tenant=globex.id, strategy="round_robin").instance.id for _ in range(10)} == {"shared"}
    with pytest.raises(ate.NotFoundError):
        r.deregister("api", "a-1", tenant=globex.id)


def test_alert_rule_fires_to_callback_and_polling(file_client):
    r = file_client.registry
    received = []
    r.on_alert(received.append)
    assert r.add_alert_rule("api-errors", "API error rate", service="api", error_rate_above=0.5, window=60.0, severity="critical") is None
    assert r.alert_states() == {"api-errors": "inactive"}
    for _ in range(4):
        assert r.record("api", "api-1", 0.01, error="unavailable") is None
    report = r.evaluate_alerts()
    assert report["rules"] == 1
    wait_until(lambda: any(e.state == "firing" for e in received), "the firing event at the callback")
    firing = [e for e in received if e.state == "firing"]
    assert len(firing) == 1 and firing[0].rule_id == "api-errors" and firing[0].severity == "critical"
    assert firing[0].value == 1.0
    assert r.alert_states()["api-errors"] == "firing"
    polled = r.alert_events()
    assert [e.id for e in polled] == [firing[0].id]
    assert r.alert_events() == []  # drained

    assert r.remove_alert_rule("api-errors") is None
    assert r.alert_states() == {}


# The callback's exception is reported through sys.unraisablehook, as documented.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_instance_critical_alert_and_failing_callback_is_retried(file_client):
    r = file_client.registry
    calls = []

    def flaky(event):
        calls.append(event.id)
        if len(calls) == 1:
            raise RuntimeError("pager down")

    r.on_alert(flaky)
    r.register("api", "api-1", "http://127.0.0.1:1")  # critical: no checks, no status
    r.add_alert_rule("api-down", "API instance critical", service="api", instance_critical=True)
    wait_until(lambda: len(calls) >= 2, "the failed delivery retried")
    assert calls[0] == calls[1]  # the same event, offered again
    events = r.alert_events()
    assert [e.id for e in events] == [calls[0]]  # polled once despite the retry
    assert events[0].state == "firing" and events[0].rule_id == "api-down"

    r.set_status("api", "api-1", "passing")
    wait_until(lambda: any(e.state == "resolved" for e in r.alert_events()), "the resolved event")


def test_registry_docstring_examples_run():
    failures, tried = doctest.testmod(ate.registry, verbose=False)
    assert tried > 0 and failures == 0


async def test_async_registry(db_url, servers):
    s1 = servers()
    async with await ate.AsyncAte.open(db_url, actor="system:pytest") as a:
        r = a.registry
        inst = await r.register("api", "api-1", s1.url, checks=[http_check(f"{s1.url}/health", **FAST)])
        assert inst.status == "critical"
        with pytest.raises(ate.AlreadyExistsError):
            await r.register("api", "api-1", s1.url)
        deadline = time.monotonic() + 20
        while not await r.discover("api"):
            assert time.monotonic() < deadline, "timed out waiting for the check to pass"
            await __import__("asyncio").sleep(0.05)
        with await r.pick("api", strategy="round_robin") as pick:
            assert pick.instance.id == "api-1"
        assert (await r.heartbeat("api", "api-1")).id == "api-1"
        await r.record("api", "api-1", 0.1)
        assert (await r.stats("api")).count == 2
        assert "ate_requests_total" in await r.metrics_text()
        await r.add_alert_rule("slow", "slow", service="api", latency_p95_above=0.05)
        report = await r.evaluate_alerts()
        assert report["fired"] + report["queued"] >= 0 and (await r.alert_states())["slow"] in ("firing", "pending")
        await r.set_status("api", "api-1", "critical")
        assert await r.discover("api") == []
        assert [i.status for i in await r.discover("api", include_unhealthy=True)] == ["critical"]
        with pytest.raises(ate.UnavailableError):
            await r.pick("nothing-registered")
        assert (await r.deregister("api", "api-1")).id == "api-1"
        with pytest.raises(ate.NotFoundError):
            await r.deregister("api", "api-1")


async def test_async_registry_has_no_blocking_call(tmp_path):
    """Every AsyncRegistry method but on_alert returns an awaitable, the first of which
    builds the hub while the event loop keeps running; getting ``a.registry`` does no I/O."""
    a = await ate.AsyncAte.open(f"sqlite://{tmp_path}/ate.db", actor="system:pytest")
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    r = a.registry
    assert isinstance(r, ate.registry.AsyncRegistry) and a.registry is r
    first = r.metrics_text()  # builds the hub: opens the registry's tables
    assert inspect.isawaitable(first)
    assert isinstance(await first, str)
    task.cancel()
    assert ticks > before, "the event loop did not run while the hub was built"

    calls = {
        "register": lambda: r.register("api", "api-1", "http://127.0.0.1:1"),
        "set_status": lambda: r.set_status("api", "api-1", "passing"),
        "heartbeat": lambda: r.heartbeat("api", "api-1"),
        "discover": lambda: r.discover("api"),
        "record": lambda: r.record("api", "api-1", 0.02),
        "stats": lambda: r.stats("api"),
        "metrics_text": lambda: r.metrics_text(),
        "breaker_states": lambda: r.breaker_states("api"),
        "add_alert_rule": lambda: r.add_alert_rule("errors", "errors", service="api", error_rate_above=0.5),
        "alert_states": lambda: r.alert_states(),
        "evaluate_alerts": lambda: r.evaluate_alerts(),
        "alert_events": lambda: r.alert_events(),
        "remove_alert_rule": lambda: r.remove_alert_rule("errors"),
        "pick": lambda: r.pick("api"),
    }
    results = {}
    for name, call in calls.items():
        pending = call()
        assert inspect.isawaitable(pending), f"AsyncRegistry.{name} did not return an awaitable"
        results[name] = await pending
    assert results["register"].id == "api-1" and [i.id for i in results["discover"]] == ["api-1"]
    assert results["record"] is None and results["stats"].count == 1
    assert results["add_alert_rule"] is None and results["remove_alert_rule"] is None
    assert results["alert_states"] == {"errors": "inactive"}
    assert isinstance(results["alert_events"], list) and results["evaluate_alerts"]["rules"] == 1
    assert isinstance(results["pick"], ate.registry.Pick)
    results["pick"].success()
    check = r.check_results("no-such-check")
    assert inspect.isawaitable(check)
    with pytest.raises(ate.NotFoundError):
        await check
    with pytest.raises(ate.NotFoundError):
        await r.remove_alert_rule("errors")
    # Bad arguments still raise at the call, as on the blocking class.
    with pytest.raises(ate.InvalidInputError, match="latency_seconds"):
        r.record("api", "api-1", -1.0)
    await a.close()


async def test_async_pick_is_an_async_context_manager(tmp_path):
    async with await ate.AsyncAte.open(f"sqlite://{tmp_path}/ate.db", actor="system:pytest") as a:
        r = a.registry
        await r.register("api", "api-1", "http://127.0.0.1:1")
        await r.set_status("api", "api-1", "passing")

        pending = r.pick("api")
        assert isinstance(pending, ate.registry.PendingPick)
        async with pending as pick:  # picks on entry
            assert isinstance(pick, ate.registry.Pick) and not pick.finished
            assert pick.instance.id == "api-1"
        assert pick.finished  # a normal exit is a success
        assert (await r.stats("api")).count == 1 and (await r.stats("api")).errors == 0

        with pytest.raises(RuntimeError, match="boom"):
            async with r.pick("api") as failing:
                raise RuntimeError("boom")  # propagates, and counts as a failure
        assert failing.finished
        assert (await r.stats("api")).errors == 1

        async with await r.pick("api") as picked:  # a Pick is an async context manager too
            assert not picked.finished
        assert picked.finished and (await r.stats("api")).count == 3

        once = r.pick("api")
        (await once).success()
        with pytest.raises(ate.InvalidInputError, match="already awaited"):
            await once
        with pytest.raises(ate.UnavailableError):
            async with r.pick("nothing-registered"):
                pass


async def test_async_registry_access_does_no_io(tmp_path):
    """Getting ``a.registry`` never touches the database, so it cannot block the loop: on a
    closed client it still succeeds, and the error comes from the awaited call."""
    a = await ate.AsyncAte.open(f"sqlite://{tmp_path}/ate.db")
    await a.close()
    r = a.registry
    assert isinstance(r, ate.registry.AsyncRegistry)
    with pytest.raises(ate.UnavailableError):
        await r.discover("api")
