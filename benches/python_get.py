"""Storage.get of a 64 MiB object through Python: a fresh `bytes` (`get`) and a reused
`bytearray` (`get_into`), on a SQLite file and `fs` blobs in a temporary directory under
`target/`. Best of 7, GB/s of plaintext.

    python benches/python_get.py   (after `maturin develop --release` in ate-python)
"""

import os, time, tempfile, pathlib, ate
tmp = pathlib.Path(tempfile.mkdtemp(dir=pathlib.Path(__file__).resolve().parents[1] / "target"))
with ate.Ate(f"sqlite://{tmp}/ate.db", storage_url=f"fs://{tmp}/blobs", master_key=bytes(range(32))) as a:
    t = a.tenants.create("acme", "Acme").id
    data = os.urandom(64 << 20)
    a.storage.put(t, "f", data)
    best = 9
    for _ in range(7):
        s = time.perf_counter(); b = a.storage.get(t, "f"); best = min(best, time.perf_counter() - s)
    assert b == data
    print("get 64 MiB:", round(len(data) / best / 1e9, 2), "GB/s")
    if hasattr(a.storage, "get_into"):
        out = bytearray(len(data)); best = 9
        for _ in range(7):
            s = time.perf_counter(); a.storage.get_into(t, "f", out); best = min(best, time.perf_counter() - s)
        assert out == data
        print("get_into 64 MiB (reused bytearray):", round(len(data) / best / 1e9, 2), "GB/s")
