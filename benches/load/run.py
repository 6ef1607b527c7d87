#!/usr/bin/env python3
"""Load benchmark of `ate serve` (issue 13), with `wrk` on loopback, each figure read as a
ratio against a baseline measured in the same run:

  (a) GET /api/auth/verify with a valid token   vs  a bare axum handler returning the same
      JSON (`load_baseline`): goal >= 0.7x its throughput; also against that handler
      behind the same off-the-shelf tower-http layers and access log and no ATE code
      (`load_baseline --layers`), to show what the stack alone costs;
  (b) GET /svc/demo/health through the gateway  vs  GET /health on the upstream directly
      (`upstream_demo`): goal >= 0.5x direct throughput and <= +1 ms p50.

Client, server and upstream share the machine's cores. Release builds of the three
binaries are made first (`cargo build --release`); `wrk` comes from Debian (`apt-get
install wrk`). Usage:

  benches/load/run.py [--duration 15] [--connections 32] [--rounds 2]

Prints one table (and `--json` the raw figures); record it in benches/README.md with the
command line. `ate serve` runs with its defaults (SQLite in a temporary directory, JSON
access logs to a file) except the per-client and per-tenant rate limits, which are off so
that they do not cap the figure.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADMIN_PASSWORD = "load benchmark admin passphrase"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def start(cmd, env=None, stderr=None, cwd=None):
    """Starts a program that prints `listening on URL`; returns (process, url)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, env=env, text=True, cwd=cwd)
    for line in p.stdout:
        if line.startswith("listening on "):
            # Keep reading so the program never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
            return p, line.split()[-1].strip()
    raise SystemExit(f"{cmd[0]} exited before listening")


def call(method, url, token=None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read()
        return json.loads(text) if text else None


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url, token, duration, connections):
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url]
    if token:
        cmd[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for q in ("50", "99"):
        m = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        lat[q] = float(m.group(1)) * UNITS[m.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} non-2xx answers:\n{out}")
    return {"rps": rps, "p50_ms": lat["50"], "p99_ms": lat["99"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2, help="alternating runs of each pair")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk")
    log("building release binaries ...")
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "examples",
         "--bin", "ate", "--bin", "upstream_demo", "--bin", "load_baseline"],
        cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    bin_dir = os.path.join(target, "release")
    procs = []
    with tempfile.TemporaryDirectory() as work:
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("ATE_")}
            env.update({
                "ATE_ADMIN__PASSWORD": ADMIN_PASSWORD,
                "ATE_HTTP__CLIENT_RATE_PER_SEC": "0",
                "ATE_HTTP__TENANT_RATE_PER_SEC": "0",
                "ATE_HTTP__MAX_CONCURRENCY": "4096",
            })
            access_log = open(os.path.join(work, "ate.log"), "w")
            ate, base = start([os.path.join(bin_dir, "ate"), "serve", "--listen", "127.0.0.1:0"],
                              env=env, stderr=access_log, cwd=work)
            procs.append(ate)
            token = call("POST", f"{base}/api/auth/login", body={
                "tenant": "operators", "email": "admin@ate.example", "password": ADMIN_PASSWORD,
            })["access_token"]
            bare, bare_url = start([os.path.join(bin_dir, "load_baseline")])
            procs.append(bare)
            layered, layered_url = start([os.path.join(bin_dir, "load_baseline"), "--layers"],
                                         stderr=open(os.path.join(work, "layered.log"), "w"))
            procs.append(layered)
            up, up_url = start([os.path.join(bin_dir, "upstream_demo"), "--id", "demo-1",
                                "--service", "demo", "--issuer", "urn:ate:serve",
                                "--jwks", f"{base}/api/auth/jwks"])
            procs.append(up)
            call("POST", f"{base}/api/services", token,
                 {"service": "demo", "id": "demo-1", "endpoint": up_url})
            call("PUT", f"{base}/api/services/demo/instances/demo-1/status", token,
                 {"status": "passing"})
            pairs = {
                "a": ((f"{bare_url}/verify", None), (f"{base}/api/auth/verify", token)),
                "l": ((f"{layered_url}/verify", None), (f"{base}/api/auth/verify", token)),
                "b": ((f"{up_url}/health", None), (f"{base}/svc/demo/health", token)),
            }
            # Warm-up: connections, caches, the hub's balancer.
            for pair in pairs.values():
                for url, tok in pair:
                    wrk(url, tok, 2, args.connections)
            results = {k: {"baseline": [], "ate": []} for k in pairs}
            for _ in range(args.rounds):
                for k, (baseline, ours) in pairs.items():
                    results[k]["baseline"].append(wrk(*baseline, args.duration, args.connections))
                    results[k]["ate"].append(wrk(*ours, args.duration, args.connections))
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=30)

    def best(runs, key):
        return max(r[key] for r in runs) if key == "rps" else min(r[key] for r in runs)

    rows = []
    for k, label, goal in (("a", "verify vs bare axum", ">= 0.70x"),
                           ("l", "verify vs axum + the same tower-http layers", "(for reading a)"),
                           ("b", "gateway vs direct", ">= 0.50x, <= +1 ms p50")):
        b, o = results[k]["baseline"], results[k]["ate"]
        rows.append({
            "case": label,
            "baseline_rps": best(b, "rps"), "ate_rps": best(o, "rps"),
            "ratio": best(o, "rps") / best(b, "rps"),
            "baseline_p50_ms": best(b, "p50_ms"), "ate_p50_ms": best(o, "p50_ms"),
            "baseline_p99_ms": best(b, "p99_ms"), "ate_p99_ms": best(o, "p99_ms"),
            "goal": goal,
        })
    if args.json:
        print(json.dumps({"rows": rows, "raw": results}, indent=2))
        return
    print(f"wrk -t1 -c{args.connections} -d{args.duration}s, best of {args.rounds} alternating rounds")
    print("| case | baseline req/s | ate req/s | ratio | p50 baseline → ate (ms) | p99 baseline → ate (ms) | goal |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['case']} | {r['baseline_rps']:,.0f} | {r['ate_rps']:,.0f} | {r['ratio']:.2f}× "
              f"| {r['baseline_p50_ms']:.2f} → {r['ate_p50_ms']:.2f} "
              f"| {r['baseline_p99_ms']:.2f} → {r['ate_p99_ms']:.2f} | {r['goal']} |")


if __name__ == "__main__":
    main()
