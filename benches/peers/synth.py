#!/usr/bin/env python3
"""Write a small synthetic dataset folder in docs/bench.md's layout, for testing peers.py.

Clustered unit vectors, a meta.ndjson with skewed tenants (one of them holding ~0.1% of the
rows, fewer than k on small sets), a cases.json exercising every filter form the harness writes,
and (unless --no-truth) ground-truth files computed here by a plain full sort in float64: an
oracle independent of peers.py's own truth code and filter evaluator.

    python synth.py OUT_DIR [--n 5000] [--dims 128] [--queries 200] [--seed 7] [--no-truth]
"""

import argparse
import json
import os

import numpy as np

from peers import write_fvecs, write_ivecs

TENANTS = ["t00", "t01", "t02", "t03", "t04", "t05", "t06", "t07"]
TENANT_P = [0.30, 0.20, 0.20, 0.12, 0.10, 0.05, 0.029, 0.001]
CATEGORIES = ["news", "blog", "docs", "forum"]
CATEGORY_P = [0.12, 0.38, 0.30, 0.20]
TS0, TS1 = 1_690_000_000, 1_710_000_000
TRUTH_K = 100


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make(out, n, dims, queries, seed, truth):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(32, dims))
    base = unit(centers[rng.integers(0, 32, n)] + 0.35 * rng.normal(size=(n, dims)))
    query = unit(centers[rng.integers(0, 32, queries)] + 0.35 * rng.normal(size=(queries, dims)))
    tenant = rng.choice(len(TENANTS), size=n, p=TENANT_P)
    tenant[0] = 7  # the tiny tenant exists even on small sets
    category = rng.choice(len(CATEGORIES), size=n, p=CATEGORY_P)
    ts = rng.integers(TS0, TS1, size=n)

    os.makedirs(out, exist_ok=True)
    write_fvecs(os.path.join(out, "base.fvecs"), base)
    write_fvecs(os.path.join(out, "query.fvecs"), query)
    with open(os.path.join(out, "meta.ndjson"), "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"v{i}", "tenant": TENANTS[tenant[i]],
                                "category": CATEGORIES[category[i]], "ts": int(ts[i])}) + "\n")

    lo, hi = TS0 + 5_000_000, TS0 + 10_000_000
    cases = [
        ("unfiltered", None, np.ones(n, bool), "groundtruth.ivecs"),
        ("tenant 0.1%", {"tenant": "t07"}, tenant == 7, "gt_tenant_t07.ivecs"),
        ("tenant eq", {"tenant": {"$eq": "t05"}}, tenant == 5, "gt_tenant_t05.ivecs"),
        ("tenants 50%", {"tenant": {"$in": ["t00", "t01"]}}, tenant <= 1, "gt_tenants_50.ivecs"),
        ("category", {"category": "news"}, category == 0, "gt_category.ivecs"),
        ("ts range", {"ts": {"$gte": lo, "$lt": hi}}, (ts >= lo) & (ts < hi), "gt_ts_range.ivecs"),
    ]
    spec = {"metric": "cosine", "k": 10, "cases": []}
    for name, flt, mask, gt in cases:
        rows = int(mask.sum())
        spec["cases"].append({"name": name, "filter": flt, "rows": rows,
                              "selectivity": rows / n, "groundtruth": gt})
        if truth:
            write_ivecs(os.path.join(out, gt), brute_truth(base, query, mask))
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(spec, f, indent=1)
    return spec


def brute_truth(base, query, mask):
    """Top-100 allowed rows per query by cosine distance, ties to the smaller row: a full sort."""
    rows = np.flatnonzero(mask)
    dist = 1.0 - query.astype(np.float64) @ base[rows].astype(np.float64).T
    return [rows[np.lexsort((rows, d))][:TRUTH_K] for d in dist]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--dims", type=int, default=128)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-truth", action="store_true", help="leave the truth files out")
    a = p.parse_args()
    make(a.out, a.n, a.dims, a.queries, a.seed, not a.no_truth)


if __name__ == "__main__":
    main()
