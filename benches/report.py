#!/usr/bin/env python3
"""Prints each bench group's results as ratios against its baseline from the same run.

Usage: python3 benches/report.py [target/criterion]

Reads criterion's estimates (new/estimates.json) for every benchmark; in each group the
benchmark whose name starts with "baseline" is the reference (1.00x). A ratio above 1
means slower than the baseline.
"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
if not root.is_dir():
    sys.exit(f"no criterion results under {root}; run cargo bench first")

for group in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "report"):
    results = {}
    for bench in sorted(p for p in group.iterdir() if p.is_dir() and p.name != "report"):
        est = bench / "new" / "estimates.json"
        if est.is_file():
            data = json.loads(est.read_text())
            results[bench.name] = (data["median"]["point_estimate"], data["median"]["standard_error"])
    base = next((v for k, v in results.items() if k.startswith("baseline")), None)
    width = max([24, *map(len, results)])
    print(f"{group.name}")
    for name, (ns, err) in results.items():
        ratio = f"{ns / base[0]:6.2f}x" if base else "   n/a"
        if ns < 10_000:  # sub-10 µs operations (picks, outcomes) read better in ns
            print(f"  {name:<{width}} {ns:10.1f} ns  (±{err:.1f})  {ratio}")
        else:
            print(f"  {name:<{width}} {ns / 1000:10.1f} µs  (±{err / 1000:.1f})  {ratio}")
