"""The workflow bench's peers: DBOS Transact and procrastinate on the same PostgreSQL.

Run by `benches/peers/run.sh` (which makes a throwaway virtualenv): the same workloads as
`benches/benches/workflow.rs`, so that its figures and these can be read side by side.

* one_node: RUNS trivial one-step workflows (DBOS) or jobs (procrastinate), enqueued first,
  then run by the library's own workers with 32 places (ATE: 2 workers x 16): steps per
  second;
* chain10: RUNS / 10 workflows of ten steps one after the other (DBOS: ten `@DBOS.step`
  calls in one workflow; procrastinate: each job defers the next): steps per second;
* submit_to_start: SAMPLES single submissions to an idle worker, the time until the
  step starts: p50 and p99.

Each library gets a database of its own (created and dropped here), on the server of
ATE_TEST_POSTGRES_URL. Prints one line per figure, in criterion's style.
"""

import asyncio
import os
import statistics
import sys
import threading
import time
import urllib.parse

import psycopg

RUNS = int(os.environ.get("PEERS_RUNS", "4000"))
SAMPLES = int(os.environ.get("PEERS_SAMPLES", "200"))
PLACES = 32


def database(base_url: str, name: str) -> str:
    """Creates (afresh) database `name` on the server of `base_url`; its URL."""
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urllib.parse.urlsplit(base_url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def report(lib: str, what: str, value: str) -> None:
    print(f"peers/{lib}/{what:<24} {value}", flush=True)


def percentile(samples: list, q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---------------------------------------------------------------------------- DBOS


def bench_dbos(url: str) -> None:
    from dbos import DBOS

    DBOS(config={"name": "ate-peers", "system_database_url": url, "log_level": "WARNING"})
    done = {"steps": 0}
    lock = threading.Lock()
    started_at: dict = {}

    @DBOS.step()
    def noop() -> None:
        with lock:
            done["steps"] += 1

    @DBOS.workflow()
    def one() -> None:
        noop()

    @DBOS.workflow()
    def chain() -> None:
        for _ in range(10):
            noop()

    @DBOS.step()
    def stamp(key: str) -> None:
        started_at[key] = time.perf_counter()

    @DBOS.workflow()
    def timed(key: str) -> None:
        stamp(key)

    DBOS.launch()
    # Queues poll the database; 10 ms between polls, not the default second, so that
    # polling does not cap them.
    queue = DBOS.register_queue(
        "bench", worker_concurrency=PLACES, polling_interval_sec=0.01
    )

    for name, workflow, runs, steps in (
        ("one_node", one, RUNS, RUNS),
        ("chain10", chain, RUNS // 10, RUNS),
    ):
        done["steps"] = 0
        began = time.perf_counter()
        handles = [queue.enqueue(workflow) for _ in range(runs)]
        enqueued = time.perf_counter() - began
        for handle in handles:
            handle.get_result()
        took = time.perf_counter() - began
        assert done["steps"] >= steps, done
        report(
            "dbos",
            name,
            f"{steps / took:8.0f} steps/s (enqueueing took {enqueued:.1f} s of {took:.1f} s)",
        )

    for how, start in (
        ("queued", lambda key: queue.enqueue(timed, key)),
        ("started", lambda key: DBOS.start_workflow(timed, key)),
    ):
        latencies = []
        for i in range(SAMPLES):
            key = f"{how}-{i}"
            began = time.perf_counter()
            start(key).get_result()
            latencies.append((started_at[key] - began) * 1000)
        report(
            "dbos",
            f"submit_to_start_{how}",
            f"p50 {percentile(latencies, 0.5):.2f} ms, p99 {percentile(latencies, 0.99):.2f} ms ({SAMPLES} samples)",
        )
    DBOS.destroy()


# --------------------------------------------------------------------- procrastinate


async def bench_procrastinate(url: str) -> None:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
    counts = {"steps": 0}
    started_at: dict = {}

    @app.task(name="noop", queue="bench")
    async def noop() -> None:
        counts["steps"] += 1

    @app.task(name="link", queue="bench")
    async def link(left: int) -> None:
        counts["steps"] += 1
        if left > 1:
            await link.defer_async(left=left - 1)

    @app.task(name="timed", queue="bench")
    async def timed(key: str) -> None:
        started_at[key] = time.perf_counter()

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        for name, first, runs, steps in (
            ("one_node", lambda: noop.batch_defer_async(*([{}] * RUNS)), RUNS, RUNS),
            (
                "chain10",
                lambda: link.batch_defer_async(*([{"left": 10}] * (RUNS // 10))),
                RUNS // 10,
                RUNS,
            ),
        ):
            counts["steps"] = 0
            began = time.perf_counter()
            await first()
            enqueued = time.perf_counter() - began
            # Runs until the queue is empty (wait=False), with PLACES jobs at a time.
            await app.run_worker_async(
                queues=["bench"], concurrency=PLACES, wait=False, install_signal_handlers=False
            )
            took = time.perf_counter() - began
            assert counts["steps"] == steps, counts
            report(
                "procrastinate",
                name,
                f"{steps / took:8.0f} steps/s (enqueueing took {enqueued:.1f} s of {took:.1f} s)",
            )

        worker = asyncio.create_task(
            app.run_worker_async(
                queues=["bench"], concurrency=PLACES, install_signal_handlers=False
            )
        )
        await asyncio.sleep(1.0)  # listening
        latencies = []
        for i in range(SAMPLES):
            key = f"s{i}"
            began = time.perf_counter()
            await timed.defer_async(key=key)
            while key not in started_at:
                await asyncio.sleep(0.0002)
            latencies.append((started_at[key] - began) * 1000)
        worker.cancel()
        try:
            await worker
        except asyncio.CancelledError:
            pass
        report(
            "procrastinate",
            "submit_to_start",
            f"p50 {percentile(latencies, 0.5):.2f} ms, p99 {percentile(latencies, 0.99):.2f} ms ({SAMPLES} samples)",
        )


def main() -> int:
    base = os.environ.get("ATE_TEST_POSTGRES_URL")
    if not base:
        print("ATE_TEST_POSTGRES_URL is not set: nothing to compare with", file=sys.stderr)
        return 2
    which = sys.argv[1:] or ["dbos", "procrastinate"]
    if "dbos" in which:
        bench_dbos(database(base, "ate_peers_dbos"))
    if "procrastinate" in which:
        asyncio.run(bench_procrastinate(database(base, "ate_peers_procrastinate")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
