"""Service discovery, health checks, balancing, metrics and alerts: ``a.registry``.

>>> import ate
>>> a = ate.Ate("sqlite::memory:")
>>> web = a.registry.register("web", "web-1", "http://127.0.0.1:8081", weight=2)
>>> web.status  # new instances start critical until their checks pass
'critical'
>>> _ = a.registry.set_status("web", "web-1", "passing")   # no checks here: set by hand
>>> with a.registry.pick("web", strategy="round_robin") as pick:
...     url = pick.instance.endpoint                        # call it; an exception = failure
>>> "ate_requests_total" in a.registry.metrics_text()
True

Instances live in the client's database (SQLite or PostgreSQL), so every process on that
database shares them; health checks, balancing state, circuit breakers, window statistics
and alert rules live in this client's memory.

**asyncio.** ``ate.AsyncAte`` has the same surface on ``a.registry`` (an ``AsyncRegistry``),
where every method returns an awaitable except ``on_alert``, which only stores the callback;
nothing blocks the event loop, not even the first call, which opens the registry's tables.
``pick`` returns a ``PendingPick``: ``await`` it for a ``Pick``, or pick and finish in one
block with ``async with a.registry.pick("web") as pick:``. A ``Pick`` is also an async
context manager.

**Health checks.** ``http_check(url)`` (2xx passing, 429 warning, anything else critical),
``tcp_check("host:port")`` (connected is passing) and ``ttl_check(ttl)`` (the instance must
``heartbeat`` within ``ttl`` seconds). A check may also be a dict with one of the keys
``http``, ``tcp``, ``ttl`` and the same keywords, e.g. ``{"http": url, "interval": 5.0}``.
The timeout must be shorter than the interval. A check's id is ``id=`` or derived as
``"{service}/{instance_id}:{kind}:{n}"`` (``"{tenant}/{service}/..."`` for a tenant's
instance), ``n`` counting the checks of that kind from 1; ``a.registry.check_results(id)``
returns its last results.

**Picks.** ``pick(service, strategy=...)`` with ``least_request`` (default), ``round_robin``,
``weighted``, ``random`` or ``consistent_hash`` (same ``key``, same instance). Finish a
``Pick`` with ``success()`` or ``failure(kind)``, or use it as a context manager (normal exit
a success, an exception a failure of kind ``unavailable``); dropping it unfinished records
nothing (cancelled). No instance available raises ``ate.UnavailableError``.

**Alerts.** ``add_alert_rule(...)`` with one condition; events (``AlertEvent``, firing or
resolved) are delivered to each ``on_alert(callback)`` and kept for ``alert_events()``
(polling), and recorded in the database's alert history. A callback runs on a worker thread
with the GIL held; if it raises, the exception goes to ``sys.unraisablehook`` and the
delivery counts as failed: the same event (same ``id``) is offered again at the next
evaluation (every second, or ``evaluate_alerts()``), to the callbacks that have not taken it.

**Tenancy.** Calls act as the client's principal: its platform administrator, or a
``Principal`` from ``a.auth.verify`` on a client made with ``a.acting_as(principal)``, or,
for one call, ``actor=principal``. ``tenant=`` chooses a tenant's scope (default: the
principal's tenant, else the platform); a tenant sees its own and the platform's instances,
never another tenant's. Statistics, metrics text, check results, breaker states and alerts
span every tenant's services, so they are for platform administrators: a client acting as a
tenant's user gets ``ate.PermissionDeniedError`` from them.
"""

from ate._ate import (
    AlertEvent,
    AsyncRegistry,
    CheckDefinition,
    CheckResult,
    Instance,
    PendingPick,
    Pick,
    Registry,
    Stats,
    http_check,
    tcp_check,
    ttl_check,
)

__all__ = [
    "AlertEvent",
    "AsyncRegistry",
    "CheckDefinition",
    "CheckResult",
    "Instance",
    "PendingPick",
    "Pick",
    "Registry",
    "Stats",
    "http_check",
    "tcp_check",
    "ttl_check",
]
