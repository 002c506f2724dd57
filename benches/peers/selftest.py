#!/usr/bin/env python3
"""Check peers.py on a synthetic folder against synth.py's independent oracle (about a minute).

1. The truth peers.py computes when the gt files are missing (its filter evaluator plus its
   partition-based top-k) equals synth.py's full-sort truth over synth.py's own masks.
2. A full run writes every measure for every system with the schema's fields, numpy-exact
   has recall 1.0 on every case, and the graphs reach high recall at the largest ef.

    python selftest.py          (run.sh --selftest runs it in the virtual environment)
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

import peers
import synth

HERE = os.path.dirname(os.path.abspath(__file__))
COMMON = {"system", "measure", "dataset", "n", "dims", "metric", "version"}
FIELDS = {
    "build": {"threads", "seconds", "vectors_per_s", "M", "ef_construction"},
    "disk": {"bytes", "files"},
    "open": {"first_answer_ms", "rss_after_open_bytes", "index_bytes"},
    "memory": {"when", "rss_bytes"},
    "search": {"case", "selectivity", "threads", "ef", "k", "queries", "recall_at_10", "qps",
               "p50_ms", "p95_ms", "p99_ms"},
}
failures = []
passes = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    (passes if cond else failures).append(what)


def truth_matches(folder):
    spec = synth.make(folder, 3000, 64, 50, seed=11, truth=True)
    oracle = {c["name"]: peers.read_ivecs(os.path.join(folder, c["groundtruth"])) for c in spec["cases"]}
    for c in spec["cases"]:
        os.remove(os.path.join(folder, c["groundtruth"]))
    ds = peers.Dataset(folder, None)
    for case in ds.cases:
        want = oracle[case["name"]]
        same = len(want) == len(case["truth"]) and all(
            np.array_equal(a, b) for a, b in zip(want, case["truth"]))
        check(same, f"computed truth equals the oracle: {case['name']!r} ({case['rows'].size} rows)")


def full_run(folder):
    spec = synth.make(folder, 5000, 128, 200, seed=7, truth=True)
    cmd = [sys.executable, os.path.join(HERE, "peers.py"), folder, "--ef", "16,64,256",
           "--threads", "1,2", "--build-threads", "2", "--open-runs", "1"]
    check(subprocess.run(cmd).returncode == 0, "peers.py exits 0")
    with open(os.path.join(folder, "results", "peers.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    for line in lines:
        missing = (COMMON | FIELDS[line["measure"]]) - set(line)
        if missing:
            check(False, f"{line['system']} {line['measure']} line lacks {sorted(missing)}")
    names = [c["name"] for c in spec["cases"]]
    for system in peers.SYSTEMS:
        mine = [l for l in lines if l["system"] == system]
        check({l["measure"] for l in mine} == set(FIELDS), f"{system}: every measure written")
        search = [l for l in mine if l["measure"] == "search"]
        check({l["case"] for l in search} == set(names), f"{system}: every case measured")
        top = {l["case"]: l["recall_at_10"] for l in search if l["ef"] in (None, 256) and l["threads"] == 1}
        if system == "numpy-exact":
            check(all(r == 1.0 for r in top.values()), f"numpy-exact: recall 1.0 on every case {top}")
        elif system == "hnswlib":
            check(all(r >= 0.9 for r in top.values()), f"hnswlib: recall >= 0.9 at ef 256 on every case {top}")
        else:
            check(top["unfiltered"] >= 0.95, f"faiss-hnsw: unfiltered recall >= 0.95 at ef 256 ({top})")
        lat = [l for l in search if l["threads"] == 1]
        check(all(l["p50_ms"] is not None and l["p50_ms"] <= l["p99_ms"] for l in lat),
              f"{system}: latency percentiles on the threads=1 lines")


def main():
    root = tempfile.mkdtemp(prefix="peers-selftest-")
    try:
        truth_matches(os.path.join(root, "truth"))
        full_run(os.path.join(root, "synthetic-5k"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{len(passes)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
