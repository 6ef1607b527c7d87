"""Workflows: ``a.workflows`` runs DAGs of steps durably, on the client's database.

Steps are Python callables registered by name; a worker runs them on background threads
(the GIL is held only while a handler's Python runs) and survives nothing it should not:
a run's state lives in the database, so a crashed process's steps run again elsewhere.

>>> import ate
>>> a = ate.Ate("sqlite::memory:")
>>> acme = a.tenants.create(slug="acme", name="Acme").id
>>> @a.workflows.step("count")
... def count(ctx, data):
...     ctx.info("counting")
...     return {"files": len(data["input"]["files"])}
>>> @a.workflows.step("report")
... async def report(ctx, data):              # async def works too
...     return f"{data['deps']['count']['files']} files"
>>> dag = {"nodes": [{"id": "count", "step": "count"},
...                  {"id": "report", "step": "report", "depends_on": ["count"]}]}
>>> with a.workflows.start_worker("doc") as worker:
...     run = a.workflows.submit(acme, dag, {"files": ["a.py", "b.py"]})
...     done = a.workflows.wait(acme, run.id, timeout=30)
>>> done.status, done.node("report").output
('succeeded', '2 files')
>>> [e.message for e in a.workflows.logs(acme, run.id)]
['counting']

A handler is called as ``handler(ctx, data)``: ``data`` is ``{"input": <the run's input>,
"deps": {<dependency id>: <its output>}}``; ``ctx`` is a ``StepContext`` (tenant, run, node,
attempt, ``idempotency_key``, ``is_cancelled()``, ``heartbeat()``, ``log()``/``info()``). It
returns any JSON-serializable value. Raising fails the attempt: ``StepFailed(message,
kind=..., retryable=False)`` fails it for good (or says it may be retried); any other
exception is retried under the node's retry policy.

``submit`` takes the DAG as a dict (``{"nodes": [...]}``, each node with ``id``, ``step`` or
``signal``, ``depends_on``, ``when``, ``retry``, ``timeouts``, ``continue_on_failure``), an
input, and ``idempotency_key``, ``priority``, ``labels``, ``start_at`` (an aware datetime),
``timeout`` (seconds). Its steps must be registered on this client. ``get``, ``list``,
``wait``, ``watch`` (an iterator of ``RunEvent`` as changes commit), ``logs``, ``cancel``,
``signal`` and ``retry`` act as the client's principal like every other domain.
``ate.AsyncAte`` offers the same as awaitables (``AsyncWorkflows``; ``async for`` over
``await a.workflows.watch(...)``).
"""

from ate._ate import (
    AsyncRunEvents,
    AsyncWorker,
    AsyncWorkflows,
    LogEntry,
    LogPage,
    Run,
    RunEvent,
    RunEvents,
    RunNode,
    RunPage,
    StepContext,
    StepDecorator,
    Worker,
    Workflows,
)


class StepFailed(Exception):
    """Raised by a step handler to fail its attempt with a kind, and to say whether the
    attempt may be retried (by default it may not: the node fails)."""

    def __init__(self, message: str, *, kind: str = "step_failed", retryable: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __repr__(self) -> str:
        return f"StepFailed({str(self)!r}, kind={self.kind!r}, retryable={self.retryable!r})"


__all__ = [
    "Workflows",
    "AsyncWorkflows",
    "Worker",
    "AsyncWorker",
    "StepContext",
    "StepDecorator",
    "StepFailed",
    "Run",
    "RunNode",
    "RunPage",
    "RunEvent",
    "RunEvents",
    "AsyncRunEvents",
    "LogEntry",
    "LogPage",
]
