#!/usr/bin/env python3
"""Measure hnswlib, faiss (IndexHNSWFlat) and an exact numpy scan on a d1vec benchmark folder.

The folder layout and the result schema are docs/bench.md's contract. This script reads
DIR/{base,query}.fvecs, DIR/groundtruth.ivecs, DIR/meta.ndjson, DIR/cases.json and the per-case
DIR/gt_*.ivecs when present (computing exact truth with numpy when a truth file is missing), and
writes one JSON line per measurement to DIR/results/peers.jsonl for the systems `hnswlib`,
`faiss-hnsw` and `numpy-exact`. Progress goes to stderr.

Usually run through run.sh, which builds the virtual environment first.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata

import numpy as np

SYSTEMS = ("hnswlib", "faiss-hnsw", "numpy-exact")
METRICS = ("cosine", "euclidean", "dot-product")
MAX_DIMS = 1 << 20
TRUTH_K = 100
QUERY_CHUNK = 256
# Up to this many base values (rows x dims) a one-thread build is measured too by default.
CHEAP_BUILD = 32_000_000


class PeersError(Exception):
    """A problem with the dataset folder or the arguments, reported without a traceback."""


def log(msg):
    print(f"[peers {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# .fvecs / .ivecs


def read_fvecs(path, limit=None):
    """All vectors of an .fvecs file (or the first `limit`) as a C-contiguous float32 matrix.

    Read in blocks of rows straight into the result, so memory is the matrix plus one block."""
    try:
        size = os.path.getsize(path)
        f = open(path, "rb")
    except OSError as e:
        raise PeersError(f"cannot read {path}: {e.strerror}") from None
    with f:
        head = f.read(4)
        if len(head) < 4:
            raise PeersError(f"{path}: holds no vector")
        dims = int.from_bytes(head, "little", signed=True)
        if not 1 <= dims <= MAX_DIMS:
            raise PeersError(f"{path}: vector 0 declares {dims} dimensions (1..{MAX_DIMS} allowed)")
        row_bytes = 4 * (dims + 1)
        if size % row_bytes:
            raise PeersError(
                f"{path}: {size} bytes is not a whole number of {dims}-dimension vectors "
                f"({row_bytes} bytes each): truncated or of mixed dimensions"
            )
        n = size // row_bytes if limit is None else min(size // row_bytes, limit)
        out = np.empty((n, dims), dtype=np.float32)
        block = np.empty((max(1, min(n, (8 << 20) // row_bytes)), dims + 1), dtype="<i4")
        f.seek(0)
        for start in range(0, n, len(block)):
            rows = min(len(block), n - start)
            got = f.readinto(memoryview(block[:rows]).cast("B"))
            if got != rows * row_bytes:
                raise PeersError(f"{path}: changed while being read")
            bad = np.flatnonzero(block[:rows, 0] != dims)
            if bad.size:
                i = int(bad[0])
                raise PeersError(
                    f"{path}: vector {start + i} declares {block[i, 0]} dimensions, vector 0 {dims}")
            out[start : start + rows] = block[:rows, 1:].view("<f4")
    return out


def read_ivecs(path, limit=None):
    """The rows of an .ivecs file (each its own length) as a list of int64 arrays."""
    try:
        raw = np.fromfile(path, dtype="<i4")
    except OSError as e:
        raise PeersError(f"cannot read {path}: {e.strerror}") from None
    rows, pos = [], 0
    while pos < raw.size and (limit is None or len(rows) < limit):
        d = int(raw[pos])
        if d < 0 or pos + 1 + d > raw.size:
            raise PeersError(f"{path}: row {len(rows)} (at byte {4 * pos}) is truncated or corrupt")
        rows.append(raw[pos + 1 : pos + 1 + d].astype(np.int64))
        pos += 1 + d
    return rows


def write_ivecs(path, rows):
    """Write rows of integers as .ivecs (used by the synthetic dataset maker)."""
    with open(path, "wb") as f:
        for row in rows:
            row = np.asarray(row, dtype="<i4")
            f.write(np.int32(row.size).astype("<i4").tobytes())
            f.write(row.tobytes())


def write_fvecs(path, matrix):
    """Write a float matrix as .fvecs (used by the synthetic dataset maker)."""
    matrix = np.asarray(matrix, dtype="<f4")
    n, d = matrix.shape
    out = np.empty((n, d + 1), dtype="<i4")
    out[:, 0] = d
    out[:, 1:] = matrix.view("<i4")
    out.tofile(path)


# ---------------------------------------------------------------------------------------------
# metric


def prepare(metric, x):
    """The vectors as the index sees them, scaled in place: unit length under cosine (a zero row
    stays zero, so its distance to anything is 1), unchanged otherwise."""
    if metric == "cosine":
        for start in range(0, len(x), 4096):
            part = x[start : start + 4096]
            norms = np.sqrt(np.einsum("ij,ij->i", part, part, dtype=np.float64))
            norms[norms == 0] = 1.0
            part /= norms.astype(np.float32)[:, None]
    return x


def distances(metric, queries, base, base_sq):
    """Distances between each query and each base row, in the dtype of the inputs, up to a
    per-query constant (ranking is all that matters): -dot, or squared L2 less |q|^2."""
    dots = queries @ base.T
    if metric == "euclidean":
        return base_sq[None, :] - 2.0 * dots
    return -dots


# ---------------------------------------------------------------------------------------------
# filters


def _kind(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "other"


_MISSING = object()


def _lookup(row, key):
    if key in row:
        return row[key]
    cur = row
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def _eq(v, arg):
    return v is not _MISSING and _kind(v) == _kind(arg) and v == arg


def _op(op, arg, v):
    if op == "$eq":
        return _eq(v, arg)
    if op == "$ne":
        return not _eq(v, arg)
    if op == "$in":
        return any(_eq(v, a) for a in arg)
    if op == "$nin":
        return not any(_eq(v, a) for a in arg)
    if v is _MISSING or _kind(v) != _kind(arg) or _kind(v) not in ("number", "string"):
        return False
    if op == "$gt":
        return v > arg
    if op == "$gte":
        return v >= arg
    if op == "$lt":
        return v < arg
    if op == "$lte":
        return v <= arg
    raise PeersError(f"filter operator {op} is not supported")


def filter_mask(flt, meta, n):
    """The rows a Vectorize metadata filter passes, as a boolean mask over the base rows."""
    if flt is None:
        return np.ones(n, dtype=bool)
    if not isinstance(flt, dict) or not flt:
        raise PeersError(f"filter {json.dumps(flt)} is not a non-empty object")
    if meta is None:
        raise PeersError("cases.json has a filter but meta.ndjson is missing")
    mask = np.ones(n, dtype=bool)
    for key, cond in flt.items():
        if isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond):
            ops = list(cond.items())
        else:
            ops = [("$eq", cond)]
        for op, arg in ops:
            if op in ("$in", "$nin") and not isinstance(arg, list):
                raise PeersError(f"filter {key}: {op} needs a list")
            values = [_lookup(row, key) for row in meta]
            mask &= np.fromiter((_op(op, arg, v) for v in values), dtype=bool, count=n)
    return mask


# ---------------------------------------------------------------------------------------------
# ground truth and recall


def exact_truth(metric, base, queries, rows, k):
    """Per query, the exact top-k among `rows` (base row numbers), best first, ties to the
    smaller row number, computed in float64. Rows with a non-finite distance are left out."""
    if rows.size == 0:
        return [np.empty(0, dtype=np.int64) for _ in range(len(queries))]
    sub = base[rows].astype(np.float64)
    sub_sq = np.einsum("ij,ij->i", sub, sub)
    out = []
    for start in range(0, len(queries), 64):
        q = queries[start : start + 64].astype(np.float64)
        dist = distances(metric, q, sub, sub_sq)
        for d in dist:
            finite = np.flatnonzero(np.isfinite(d))
            if finite.size > k:
                kth = np.partition(d[finite], k - 1)[k - 1]
                finite = finite[d[finite] <= kth]
            order = finite[np.lexsort((finite, d[finite]))][:k]
            out.append(rows[order])
    return out


def recall_at(results, truth, passing, k):
    """Mean over queries of |returned ∩ true top-k| / min(k, rows passing) (docs/bench.md);
    `passing` is one count for every query or a list with one per query."""
    per_query = passing if isinstance(passing, list) else [passing] * len(results)
    scores = []
    for r, t, p in zip(results, truth, per_query):
        denom = min(k, p)
        scores.append(1.0 if denom == 0 else len(set(r[:k].tolist()) & set(t[:k].tolist())) / denom)
    return float(np.mean(scores)) if scores else 0.0


def percentiles_ms(seconds):
    if not seconds:
        return None, None, None
    ms = np.asarray(seconds) * 1e3
    p = np.percentile(ms, [50, 95, 99])
    return round(float(p[0]), 4), round(float(p[1]), 4), round(float(p[2]), 4)


# ---------------------------------------------------------------------------------------------
# dataset


class Dataset:
    """A benchmark folder, loaded: vectors, cases with their masks and truth."""

    def __init__(self, folder, max_queries):
        self.folder = os.path.abspath(folder)
        self.name = os.path.basename(self.folder.rstrip("/"))
        self.base_path = os.path.join(self.folder, "base.fvecs")
        self.query_path = os.path.join(self.folder, "query.fvecs")
        for p in (self.base_path, self.query_path):
            if not os.path.isfile(p):
                raise PeersError(f"{p} is missing (docs/bench.md lists the required files)")
        spec = self._load_cases()
        self.metric = spec.get("metric", "cosine")
        if self.metric not in METRICS:
            raise PeersError(f"cases.json: metric {self.metric!r} is not one of {METRICS}")
        self.k = int(spec.get("k", 10))
        base = read_fvecs(self.base_path)
        self.n, self.dims = base.shape
        queries = read_fvecs(self.query_path, limit=max_queries)
        if queries.shape[1] != self.dims:
            raise PeersError(f"query.fvecs has {queries.shape[1]} dimensions, base.fvecs {self.dims}")
        self.base = prepare(self.metric, base)
        del base
        self.queries = prepare(self.metric, queries)
        self.nq = len(self.queries)
        self.meta = self._load_meta()
        self.ts = None
        if self.meta is not None:
            self.ts = np.array([row.get("ts") if isinstance(row.get("ts"), (int, float)) and
                                not isinstance(row.get("ts"), bool) else np.nan
                                for row in self.meta], dtype=np.float64)
        self.cases = [self._load_case(c) for c in spec["cases"]]
        self.base = None  # only the truth needed it; each system reads base.fvecs itself

    def _load_cases(self):
        path = os.path.join(self.folder, "cases.json")
        if not os.path.isfile(path):
            log("no cases.json: measuring the unfiltered case only (d1vec bench run derives the rest)")
            return {"cases": [{"name": "unfiltered", "filter": None, "groundtruth": "groundtruth.ivecs"}]}
        try:
            with open(path) as f:
                spec = json.load(f)
        except (OSError, ValueError) as e:
            raise PeersError(f"{path}: {e}") from None
        if not isinstance(spec, dict) or not isinstance(spec.get("cases"), list):
            raise PeersError(f"{path}: expected an object with a \"cases\" list")
        return spec

    def _load_meta(self):
        path = os.path.join(self.folder, "meta.ndjson")
        if not os.path.isfile(path):
            return None
        meta = []
        with open(path) as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as e:
                    raise PeersError(f"{path}:{line_no}: {e}") from None
                if not isinstance(row, dict):
                    raise PeersError(f"{path}:{line_no}: not a JSON object")
                meta.append(row)
        if len(meta) != self.n:
            raise PeersError(f"{path} has {len(meta)} rows, base.fvecs {self.n}")
        return meta

    def mask_of(self, flt):
        """The rows `flt` passes; a window {"ts": {"$gte": lo, "$lt": hi}} (what d1vec bench
        gen writes per query) by one vectorised comparison, anything else by filter_mask."""
        if (self.ts is not None and isinstance(flt, dict) and list(flt) == ["ts"]
                and isinstance(flt["ts"], dict) and sorted(flt["ts"]) == ["$gte", "$lt"]):
            lo, hi = flt["ts"]["$gte"], flt["ts"]["$lt"]
            return (self.ts >= lo) & (self.ts < hi)
        return filter_mask(flt, self.meta, self.n)

    def _load_case(self, case):
        name = case.get("name")
        if not isinstance(name, str):
            raise PeersError(f"cases.json: a case without a name: {json.dumps(case)}")
        if case.get("query_filters") is not None:
            return self._load_per_query_case(name, case)
        mask = filter_mask(case.get("filter"), self.meta, self.n)
        rows = np.flatnonzero(mask)
        if "rows" in case and case["rows"] != rows.size:
            log(f"case {name!r}: cases.json says {case['rows']} rows, the filter passes {rows.size}")
        gt_name = case.get("groundtruth")
        gt_path = os.path.join(self.folder, gt_name) if gt_name else None
        if gt_path and os.path.isfile(gt_path):
            truth = read_ivecs(gt_path, limit=self.nq)
            if len(truth) < self.nq:
                raise PeersError(f"{gt_path} has {len(truth)} rows for {self.nq} queries")
            source = gt_name
        else:
            t0 = time.perf_counter()
            truth = exact_truth(self.metric, self.base, self.queries, rows, TRUTH_K)
            source = f"numpy ({time.perf_counter() - t0:.1f} s)"
        log(f"case {name!r}: {rows.size} rows pass, truth from {source}")
        return {
            "name": name,
            "mask": mask,
            "rows": rows,
            "selectivity": case.get("selectivity", rows.size / self.n if self.n else 0.0),
            "truth": truth,
            "query_filters": None,
        }

    def _load_per_query_case(self, name, case):
        """A case whose query i has its own filter (case["query_filters"][i]): masks are made
        when asked (their cost is the first-sight cost), so only the counts are kept here."""
        filters = case["query_filters"][: self.nq]
        if len(filters) < self.nq:
            raise PeersError(f"case {name!r}: {len(filters)} query filters for {self.nq} queries")
        passing = [int(self.mask_of(f).sum()) for f in filters]
        gt_name = case.get("groundtruth")
        gt_path = os.path.join(self.folder, gt_name) if gt_name else None
        if gt_path and os.path.isfile(gt_path):
            truth = read_ivecs(gt_path, limit=self.nq)
            source = gt_name
        else:
            truth = [exact_truth(self.metric, self.base, self.queries[i : i + 1],
                                 np.flatnonzero(self.mask_of(f)), TRUTH_K)[0]
                     for i, f in enumerate(filters)]
            source = "numpy"
        log(f"case {name!r}: a filter per query, {min(passing)}..{max(passing)} rows pass, truth from {source}")
        return {
            "name": name,
            "mask": None,
            "rows": None,
            "passing": passing,
            "selectivity": case.get("selectivity", float(np.mean(passing)) / max(1, self.n)),
            "truth": truth,
            "query_filters": filters,
        }


# ---------------------------------------------------------------------------------------------
# systems


class Hnswlib:
    """hnswlib: 'ip' on unit vectors for cosine, 'l2' (squared) for euclidean; filters are a
    Python callable over labels (the row numbers)."""

    name = "hnswlib"

    def __init__(self, metric):
        import hnswlib

        self.lib = hnswlib
        self.space = {"cosine": "ip", "euclidean": "l2", "dot-product": "ip"}[metric]
        self.version = f"hnswlib {metadata.version('hnswlib')}"
        self.index = None

    def build(self, x, m, ef_construction, threads):
        index = self.lib.Index(space=self.space, dim=x.shape[1])
        index.init_index(max_elements=len(x), ef_construction=ef_construction, M=m, random_seed=100)
        index.add_items(x, np.arange(len(x)), num_threads=threads)
        self.index = index

    def save(self, folder):
        path = os.path.join(folder, "hnswlib.bin")
        self.index.save_index(path)
        return path

    def filter_ctx(self, case):
        if case["rows"].size == len(case["mask"]):
            return None
        return case["mask"].tolist().__getitem__

    def set_ef(self, ef):
        self.index.set_ef(ef)

    def _query(self, q, k, ctx, threads):
        labels, _ = self.index.knn_query(q, k=k, num_threads=threads, filter=ctx)
        return list(labels.astype(np.int64))

    def search(self, q, k, ctx, threads):
        try:
            return self._query(q, k, ctx, threads)
        except RuntimeError:
            # hnswlib refuses a batch when a query found fewer than k results: answer each
            # query alone with the largest k it can fill.
            out = []
            for row in q:
                for kk in range(k, -1, -1):
                    if kk == 0:
                        out.append(np.empty(0, dtype=np.int64))
                        break
                    try:
                        out.extend(self._query(row[None, :], kk, ctx, 1))
                        break
                    except RuntimeError:
                        continue
            return out

    def free(self):
        self.index = None


class FaissHnsw:
    """faiss IndexHNSWFlat: inner product on unit vectors for cosine, L2 for euclidean;
    filters are an IDSelectorBitmap in SearchParametersHNSW."""

    name = "faiss-hnsw"

    def __init__(self, metric):
        import faiss

        self.faiss = faiss
        self.metric = faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
        self.version = f"faiss-cpu {metadata.version('faiss-cpu')}"
        self.index = None
        self.ef = None

    def build(self, x, m, ef_construction, threads):
        self.faiss.omp_set_num_threads(threads)
        index = self.faiss.IndexHNSWFlat(x.shape[1], m, self.metric)
        index.hnsw.efConstruction = ef_construction
        index.add(x)
        self.index = index

    def save(self, folder):
        path = os.path.join(folder, "faiss-hnsw.index")
        self.faiss.write_index(self.index, path)
        return path

    def filter_ctx(self, case):
        if case["rows"].size == len(case["mask"]):
            return None
        bitmap = np.packbits(case["mask"], bitorder="little")
        # The selector reads the numpy buffer by pointer: keep both alive together.
        return (bitmap, self.faiss.IDSelectorBitmap(len(case["mask"]), self.faiss.swig_ptr(bitmap)))

    def set_ef(self, ef):
        self.ef = ef

    def search(self, q, k, ctx, threads):
        self.faiss.omp_set_num_threads(threads)
        params = self.faiss.SearchParametersHNSW()
        params.efSearch = self.ef
        if ctx is not None:
            params.sel = ctx[1]
        _, labels = self.index.search(q, k, params=params)
        return [row[row >= 0].astype(np.int64) for row in labels]

    def free(self):
        self.index = None


class NumpyExact:
    """An exact scan with numpy over only the rows a case's filter passes (the rows are copied
    out per case, as a per-tenant store would hold them); BLAS threads set by threadpoolctl."""

    name = "numpy-exact"

    def __init__(self, metric):
        from threadpoolctl import ThreadpoolController

        self.metric = metric
        self.pools = ThreadpoolController()
        blas = [p for p in self.pools.info() if p["user_api"] == "blas" and "numpy" in p["filepath"]]
        kernel = f" ({blas[0]['internal_api']} {blas[0]['version']}, {blas[0].get('architecture')})" if blas else ""
        self.version = f"numpy {np.__version__}{kernel}"
        self.base = None

    def build(self, x, m, ef_construction, threads):
        self.base = x

    def save(self, folder):
        path = os.path.join(folder, "base.npy")
        np.save(path, self.base)
        return path

    def filter_ctx(self, case):
        sub = np.ascontiguousarray(self.base[case["rows"]])
        return sub, case["rows"], np.einsum("ij,ij->i", sub, sub)

    def set_ef(self, ef):
        pass

    def search(self, q, k, ctx, threads):
        sub, rows, sub_sq = ctx
        out = []
        with self.pools.limit(limits=threads, user_api="blas"):
            for start in range(0, len(q), QUERY_CHUNK):
                dist = distances(self.metric, q[start : start + QUERY_CHUNK], sub, sub_sq)
                kk = min(k, dist.shape[1])
                if kk == 0:
                    out.extend(np.empty(0, dtype=np.int64) for _ in range(len(dist)))
                    continue
                if kk < dist.shape[1]:
                    top = np.argpartition(dist, kk - 1, axis=1)[:, :kk]
                else:
                    top = np.tile(np.arange(kk), (len(dist), 1))
                order = np.argsort(np.take_along_axis(dist, top, axis=1), axis=1, kind="stable")
                out.extend(rows[np.take_along_axis(top, order, axis=1)])
        return out

    def free(self):
        self.base = None


ADAPTERS = {"hnswlib": Hnswlib, "faiss-hnsw": FaissHnsw, "numpy-exact": NumpyExact}


# ---------------------------------------------------------------------------------------------
# the open probe: a fresh process that loads a saved index and answers


def vmrss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


def probe(args):
    """Child process: load the index at args.index, answer query 0, say so on stdout, then
    answer every query and report the resident set sizes as one JSON line."""
    if args.probe_start_only:
        # Interpreter start and the system's imports only: the share of a first answer that
        # is Python's, reported apart.
        import importlib
        importlib.import_module({"hnswlib": "hnswlib", "faiss-hnsw": "faiss"}.get(args.probe, "numpy"))
        print("answered", flush=True)
        print(json.dumps({}), flush=True)
        return
    queries = prepare(args.metric, read_fvecs(args.query_file, limit=args.queries))
    q0 = queries[:1]
    if args.probe == "hnswlib":
        import hnswlib

        rss_baseline = vmrss_bytes()
        space = {"cosine": "ip", "euclidean": "l2", "dot-product": "ip"}[args.metric]
        index = hnswlib.Index(space=space, dim=args.dims)
        index.load_index(args.index)
        index.set_ef(args.ef[0])
        rss_open = vmrss_bytes()

        def answer(q):
            return index.knn_query(q, k=args.k, num_threads=1)

    elif args.probe == "faiss-hnsw":
        import faiss

        rss_baseline = vmrss_bytes()
        index = faiss.read_index(args.index)
        index.hnsw.efSearch = args.ef[0]
        rss_open = vmrss_bytes()

        def answer(q):
            return index.search(q, args.k)

    else:
        rss_baseline = vmrss_bytes()
        base = np.load(args.index)
        sq = np.einsum("ij,ij->i", base, base)
        rss_open = vmrss_bytes()

        def answer(q):
            dist = distances(args.metric, q, base, sq)
            k = min(args.k, dist.shape[1])
            top = np.argpartition(dist, k - 1, axis=1)[:, :k]
            return np.take_along_axis(top, np.argsort(np.take_along_axis(dist, top, 1), 1), 1)

    answer(q0)
    print("answered", flush=True)
    rss_first = vmrss_bytes()
    for start in range(0, len(queries), QUERY_CHUNK):
        answer(queries[start : start + QUERY_CHUNK])
    print(json.dumps({"rss_baseline_bytes": rss_baseline, "rss_after_open_bytes": rss_open,
                      "rss_after_first_query_bytes": rss_first,
                      "rss_after_queries_bytes": vmrss_bytes()}), flush=True)


def evict(path):
    """fsync, then posix_fadvise(DONTNEED) the file (best effort, Linux); returns an error text
    or None. The same eviction d1vec's harness applies to its database files."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        return None
    except (OSError, AttributeError) as e:
        return str(e)


def run_probe(system, index_path, ds, ef, queries, start_only=False):
    """Start a probe, timing from the parent's spawn to the child's first answer."""
    cmd = [
        sys.executable, os.path.abspath(__file__), "--probe", system, "--index", index_path,
        "--metric", ds.metric, "--dims", str(ds.dims), "--query-file", ds.query_path,
        "--queries", str(queries), "--k", str(ds.k), "--ef", str(ef), ds.folder,
    ] + (["--probe-start-only"] if start_only else [])
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    first = child.stdout.readline()
    first_ms = (time.perf_counter() - t0) * 1e3
    rest = child.stdout.read()
    if child.wait() != 0 or first.strip() != "answered":
        raise PeersError(f"the open probe for {system} failed (exit {child.returncode})")
    return first_ms, json.loads(rest.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# measuring


class Results:
    """Writes result lines as they come to a .partial file, renamed into place at the end."""

    def __init__(self, path, ds):
        self.path = path
        self.partial = path + ".partial"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.out = open(self.partial, "w")
        self.common = {"dataset": ds.name, "n": ds.n, "dims": ds.dims, "metric": ds.metric}

    def emit(self, system, version, measure, **fields):
        line = {"system": system, "measure": measure, **self.common, "version": version, **fields,
                "load_avg_1m": round(os.getloadavg()[0], 2)}
        self.out.write(json.dumps(line) + "\n")
        self.out.flush()

    def close(self):
        self.out.close()
        os.replace(self.partial, self.path)


def measure_system(adapter, ds, args, results):
    name, version = adapter.name, adapter.version
    graph = name != "numpy-exact"
    log(f"{name}: {version}")

    # build: from the vectors on disk to a searchable index; the last build is kept
    for threads in (args.build_threads if graph else [1]):
        adapter.free()
        t0 = time.perf_counter()
        x = prepare(ds.metric, read_fvecs(ds.base_path))
        adapter.build(x, args.M, args.ef_construction, threads)
        seconds = time.perf_counter() - t0
        del x
        log(f"{name}: built with {threads} thread(s) in {seconds:.2f} s ({ds.n / seconds:,.0f} vectors/s)")
        results.emit(
            name, version, "build", threads=threads, seconds=round(seconds, 4),
            vectors_per_s=round(ds.n / seconds, 1),
            M=args.M if graph else None, ef_construction=args.ef_construction if graph else None,
        )

    # disk and open
    tmp = tempfile.mkdtemp(prefix=f"peers-{name}-")
    try:
        path = adapter.save(tmp)
        size = os.path.getsize(path)
        results.emit(name, version, "disk", bytes=size, files={os.path.basename(path): size})
        probe_ef = max(args.ef)
        runs = []
        for _ in range(args.open_runs):
            first_ms, rss = run_probe(name, path, ds, probe_ef, ds.nq)
            runs.append(first_ms)
        start_ms = statistics.median(
            run_probe(name, path, ds, probe_ef, 1, start_only=True)[0] for _ in range(args.open_runs))
        evicted_runs, evict_errors = [], None
        for _ in range(args.open_runs):
            evict_errors = evict(path)
            evicted_runs.append(run_probe(name, path, ds, probe_ef, 1)[0])
        log(f"{name}: {size:,} bytes on disk, first answer in a fresh process after "
            f"{statistics.median(runs):.0f} ms (runs: {', '.join(f'{r:.0f}' for r in runs)}), "
            f"{statistics.median(evicted_runs):.0f} ms with the index file evicted; Python start and "
            f"imports {start_ms:.0f} ms")
        results.emit(
            name, version, "open", first_answer_ms=round(statistics.median(runs), 2),
            first_answer_ms_runs=[round(r, 2) for r in runs],
            first_answer_evicted_ms=round(statistics.median(evicted_runs), 2),
            first_answer_evicted_ms_runs=[round(r, 2) for r in evicted_runs],
            eviction_error=evict_errors, process_start_ms=round(start_ms, 2),
            rss_baseline_bytes=rss["rss_baseline_bytes"],
            rss_after_open_bytes=rss["rss_after_open_bytes"],
            rss_after_first_query_bytes=rss["rss_after_first_query_bytes"], index_bytes=size,
        )
        results.emit(
            name, version, "memory", when="after_queries", rss_bytes=rss["rss_after_queries_bytes"],
            index_bytes=size, queries=ds.nq, ef=probe_ef if graph else None,
            process="fresh probe, unfiltered queries",
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # search
    for case in ds.cases:
        if args.cases and case["name"] not in args.cases:
            continue
        if case["query_filters"] is not None:
            measure_per_query_case(adapter, ds, args, results, case, graph)
            continue
        passing = int(case["rows"].size)
        k = min(ds.k, passing) if name == "hnswlib" else ds.k
        if case["rows"].size < ds.n and k > 0 and args.cold_runs > 0:
            measure_fixed_cold(adapter, ds, args, results, case, graph, k)
        ctx = adapter.filter_ctx(case)
        for ef in (args.ef if graph else [None]):
            adapter.set_ef(ef)
            none = [np.empty(0, dtype=np.int64)] * ds.nq
            if k > 0:
                adapter.search(ds.queries[: min(10, ds.nq)], k, ctx, 1)  # warm up
            lat = []
            lat_queries = ds.nq if graph or args.exact_latency_queries <= 0 else min(ds.nq, args.exact_latency_queries)
            if 1 in args.threads and k > 0:
                for i in range(lat_queries):
                    t0 = time.perf_counter()
                    adapter.search(ds.queries[i : i + 1], k, ctx, 1)
                    lat.append(time.perf_counter() - t0)
            for threads in args.threads:
                t0 = time.perf_counter()
                found = adapter.search(ds.queries, k, ctx, threads) if k > 0 else none
                seconds = time.perf_counter() - t0
                recall = recall_at(found, case["truth"], passing, ds.k)
                p50, p95, p99 = percentiles_ms(lat) if threads == 1 else (None, None, None)
                log(f"{name}: {case['name']!r} ef={ef} threads={threads}: recall@10 {recall:.4f}, "
                    f"{ds.nq / seconds:,.0f} qps" + (f", p50 {p50} ms, p99 {p99} ms" if p50 is not None else ""))
                results.emit(
                    name, version, "search", case=case["name"], selectivity=case["selectivity"],
                    threads=threads, ef=ef, k=ds.k, queries=ds.nq, recall_at_10=round(recall, 6),
                    qps=round(ds.nq / seconds, 2), p50_ms=p50, p95_ms=p95, p99_ms=p99,
                    latency_queries=len(lat) if threads == 1 else None,
                )
    adapter.free()


def cold_fields(cold, warm, cold_found, warm_found, truth_of, passing_of, k):
    """The `filter_cold` line's figures (docs/bench.md), from (query, seconds) samples."""
    out = {}
    for side, samples, found in (("cold", cold, cold_found), ("warm", warm, warm_found)):
        secs = [s for _, s in samples]
        p50, _, p99 = percentiles_ms(secs)
        total = sum(secs)
        out[f"{side}_queries"] = len(secs)
        out[f"{side}_p50_ms"] = p50
        out[f"{side}_p99_ms"] = p99
        out[f"{side}_mean_ms"] = round(1e3 * total / len(secs), 4) if secs else None
        out[f"{side}_qps"] = round(len(secs) / total, 2) if total > 0 else None
        out[f"{side}_recall_at_10"] = round(recall_at(
            found, [truth_of(i) for i, _ in samples], [passing_of(i) for i, _ in samples], k), 6) if secs else None
    return out


def measure_fixed_cold(adapter, ds, args, results, case, graph, k):
    """First sight of a case's one filter: the filter context (hnswlib's callable, faiss'
    bitmap selector, numpy's copy of the passing rows) is built anew, then one query, timed
    together; warm = the same query again with that context. At the largest ef."""
    ef = max(args.ef) if graph else None
    adapter.set_ef(ef)
    cold, warm, cold_found, warm_found = [], [], [], []
    for r in range(min(args.cold_runs, ds.nq)):
        q = ds.queries[r : r + 1]
        t0 = time.perf_counter()
        ctx = adapter.filter_ctx(case)
        cold_found.extend(adapter.search(q, k, ctx, 1))
        cold.append((r, time.perf_counter() - t0))
        t0 = time.perf_counter()
        warm_found.extend(adapter.search(q, k, ctx, 1))
        warm.append((r, time.perf_counter() - t0))
    passing = int(case["rows"].size)
    fields = cold_fields(cold, warm, cold_found, warm_found, lambda i: case["truth"][i],
                         lambda i: passing, ds.k)
    results.emit(adapter.name, adapter.version, "filter_cold", case=case["name"],
                 selectivity=case["selectivity"], threads=1, ef=ef, k=ds.k, **fields)


def measure_per_query_case(adapter, ds, args, results, case, graph):
    """A case with a filter per query: each query builds its own mask and filter context
    (timed: that is what a new filter costs these libraries) and is answered (cold), then
    answered again with that context (warm). One thread; a `search` line per ef with the
    cold figures, and one `filter_cold` line at the largest ef."""
    name, version = adapter.name, adapter.version
    passing = case["passing"]
    for ef in (args.ef if graph else [None]):
        adapter.set_ef(ef)
        cold, warm, cold_found, warm_found = [], [], [], []
        for i, flt in enumerate(case["query_filters"]):
            q = ds.queries[i : i + 1]
            k = min(ds.k, passing[i]) if name == "hnswlib" else ds.k
            if k == 0:
                cold_found.append(np.empty(0, dtype=np.int64))
                warm_found.append(np.empty(0, dtype=np.int64))
                cold.append((i, 0.0))
                warm.append((i, 0.0))
                continue
            t0 = time.perf_counter()
            mask = ds.mask_of(flt)
            ctx = adapter.filter_ctx({"mask": mask, "rows": np.flatnonzero(mask)})
            cold_found.extend(adapter.search(q, k, ctx, 1))
            cold.append((i, time.perf_counter() - t0))
            t0 = time.perf_counter()
            warm_found.extend(adapter.search(q, k, ctx, 1))
            warm.append((i, time.perf_counter() - t0))
        fields = cold_fields(cold, warm, cold_found, warm_found, lambda i: case["truth"][i],
                             lambda i: passing[i], ds.k)
        log(f"{name}: {case['name']!r} ef={ef}: first sight recall@10 {fields['cold_recall_at_10']}, "
            f"{fields['cold_qps']} qps; repeated {fields['warm_qps']} qps")
        results.emit(
            name, version, "search", case=case["name"], selectivity=case["selectivity"],
            threads=1, ef=ef, k=ds.k, queries=ds.nq, recall_at_10=fields["cold_recall_at_10"],
            qps=fields["cold_qps"], p50_ms=fields["cold_p50_ms"], p95_ms=None,
            p99_ms=fields["cold_p99_ms"], latency_queries=ds.nq, filter_per_query=True,
        )
        if ef == (max(args.ef) if graph else None):
            results.emit(name, version, "filter_cold", case=case["name"],
                         selectivity=case["selectivity"], threads=1, ef=ef, k=ds.k, **fields)


def int_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: every value must be at least 1")
    return values


def system_list(text):
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in names if v not in SYSTEMS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown system(s) {unknown}; known: {', '.join(SYSTEMS)}")
    return names


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir", help="the dataset folder (docs/bench.md)")
    p.add_argument("--threads", type=int_list, default=[1, 2], help="search threads (default 1,2)")
    p.add_argument("--build-threads", type=int_list, default=None,
                   help="build threads, each measured; the last build is searched "
                        f"(default 1,2 up to {CHEAP_BUILD:,} values in base.fvecs, else 2)")
    p.add_argument("--ef", type=int_list, default=[16, 32, 64, 128, 256], help="ef sweep")
    p.add_argument("--queries", type=int, default=None, help="use the first N queries (default all)")
    p.add_argument("--M", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=128)
    p.add_argument("--systems", type=system_list, default=list(SYSTEMS), help=",".join(SYSTEMS))
    p.add_argument("--open-runs", type=int, default=3, help="fresh-process opens per system (median kept)")
    p.add_argument("--exact-latency-queries", type=int, default=200,
                   help="single-query calls timed for numpy-exact (0: all)")
    p.add_argument("--out", default=None, help="default DIR/results/peers.jsonl")
    p.add_argument("--cases", type=lambda s: [c.strip() for c in s.split(",") if c.strip()],
                   default=None, help="only these cases (names from cases.json, comma-separated)")
    # the open probe (internal)
    p.add_argument("--probe", choices=SYSTEMS, help=argparse.SUPPRESS)
    p.add_argument("--index", help=argparse.SUPPRESS)
    p.add_argument("--metric", choices=METRICS, help=argparse.SUPPRESS)
    p.add_argument("--dims", type=int, help=argparse.SUPPRESS)
    p.add_argument("--query-file", help=argparse.SUPPRESS)
    p.add_argument("--k", type=int, default=10, help=argparse.SUPPRESS)
    p.add_argument("--probe-start-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cold-runs", type=int, default=5,
                   help="first-sight samples per filtered case (filter context built anew each time)")
    args = p.parse_args(argv)
    if args.queries is not None and args.queries < 1:
        p.error("--queries must be at least 1")
    if args.open_runs < 1:
        p.error("--open-runs must be at least 1")
    return args


def main(argv):
    args = parse_args(argv)
    if args.probe:
        probe(args)
        return 0
    t_start = time.perf_counter()
    ds = Dataset(args.dir, args.queries)
    log(f"{ds.name}: {ds.n} x {ds.dims} {ds.metric}, {ds.nq} queries, {len(ds.cases)} case(s)")
    if args.build_threads is None:
        args.build_threads = [1, 2] if ds.n * ds.dims <= CHEAP_BUILD else [2]
    out = args.out or os.path.join(ds.folder, "results", "peers.jsonl")
    results = Results(out, ds)
    for name in args.systems:
        adapter = ADAPTERS[name](ds.metric)
        measure_system(adapter, ds, args, results)
    results.close()
    log(f"wrote {out} in {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except PeersError as e:
        print(f"peers: {e}", file=sys.stderr)
        sys.exit(2)
