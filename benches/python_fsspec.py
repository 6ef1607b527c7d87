"""One column of a ~100 MB Parquet file with pyarrow: from a local path, and through the
`ate://` fsspec filesystem (encrypted object, SQLite file + `fs` blobs), in the same
temporary directory under `target/`, in one process. Runs alternate (local, ate, local, …)
so both meet the same machine state; the median of each is reported, and the ratio.

    python benches/python_fsspec.py [rounds]   (after `maturin develop --release` in ate-python)

Issue 16's goal: the ate:// read at most 2x the local read's time.
"""

import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import ate

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 15
COLUMNS, ROWS = 10, 1_300_000  # 10 float64 columns: ~104 MB, ~10 MB per column

target = pathlib.Path(__file__).resolve().parents[1] / "target"
target.mkdir(exist_ok=True)
tmp = pathlib.Path(tempfile.mkdtemp(dir=target))
try:
    rng = np.random.default_rng(16)
    table = pa.table({f"c{i}": rng.random(ROWS) for i in range(COLUMNS)})
    local = tmp / "wide.parquet"
    pq.write_table(table, local, compression="snappy", row_group_size=ROWS // 4)
    size = local.stat().st_size

    with ate.Ate(f"sqlite://{tmp}/ate.db", storage_url=f"fs://{tmp}/blobs", master_key=bytes(range(32))) as a:
        a.tenants.create("acme", "Acme")
        fs = fsspec.filesystem("ate", client=a)
        fs.put_file(str(local), "acme/wide.parquet")
        assert fs.info("acme/wide.parquet")["size"] == size

        def read_local():
            return pq.read_table(local, columns=["c3"])

        # Each read starts with no object entry kept (`invalidate_cache`), so a run reuses
        # only what the read itself looked up, as a first read in a notebook would.
        def read_ate():
            fs.invalidate_cache()
            return pq.read_table("acme/wide.parquet", filesystem=fs, columns=["c3"])

        def read_ate_file():
            fs.invalidate_cache()
            with fs.open("ate://acme/wide.parquet") as f:
                return pq.read_table(f, columns=["c3"])

        runs = {"local": read_local, "ate": read_ate, "ate_file": read_ate_file}
        for f in runs.values():
            assert f().equals(read_local())
        times = {name: [] for name in runs}
        for _ in range(ROUNDS):
            for name, f in runs.items():
                start = time.perf_counter()
                f()
                times[name].append(time.perf_counter() - start)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"file {size / 1e6:.1f} MB, {COLUMNS} columns, read 1 column, {ROUNDS} rounds (median, min)")
        labels = {
            "local": "local path",
            "ate": "ate://, filesystem=fs",
            "ate_file": "ate://, fs.open() file",
        }
        for name, label in labels.items():
            print(f"  {label:24} {med[name] * 1e3:8.2f} ms   {min(times[name]) * 1e3:8.2f} ms")
        for name in ("ate", "ate_file"):
            print(f"  {labels[name]} / local = {med[name] / med['local']:.2f}x (goal <= 2x)")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
