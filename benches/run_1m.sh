#!/usr/bin/env bash
# The README's 1,000,000 x 1536 table: d1vec beside hnswlib, faiss and numpy on one folder:
# build (ingest + seal), disk, first answer (warm and with the files evicted), RSS, and QPS at
# recall@10 >= 0.95. Several hours on a 2-core machine; run it on a quiet one.
# Needs about 6 GB for base.fvecs, about 15 GB more for d1vec's database and the peers'
# saved indexes, and up to ~14 GB of memory (the peers hold the base matrix and their index).
#   bash benches/run_1m.sh [DIR]        (default: bench-1m)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-bench-1m}
QUERIES=${QUERIES:-200}
EF=${EF:-32,64,128,256,512}
cargo build --release
D1VEC=target/release/d1vec
# Generation streams the base rows in blocks and computes every case's exact ground truth in
# the same pass (memory: one block, the metadata and 1,000 queries; not the 6 GB of vectors).
[ -f "$DIR/base.fvecs" ] || "$D1VEC" bench gen --dims 1536 --n 1000000 --queries 1000 --out "$DIR"
"$D1VEC" bench run "$DIR" --queries "$QUERIES" --ef "$EF" --threads 1,2 --exact-queries 20 --cold-runs 5
# hnswlib's Python filter callback makes filtered sweeps take hours at this size: unfiltered only.
benches/peers/run.sh "$DIR" --queries "$QUERIES" --ef "$EF" --threads 1,2 --build-threads 2 \
  --systems hnswlib --cases "unfiltered" --out "$DIR/results/peers-hnswlib.jsonl"
benches/peers/run.sh "$DIR" --queries "$QUERIES" --ef "$EF" --threads 1,2 --build-threads 2 \
  --systems faiss-hnsw --out "$DIR/results/peers-faiss.jsonl"
# numpy's exact scan reads 6 GB per query: 50 single-query latency samples are enough.
benches/peers/run.sh "$DIR" --queries "$QUERIES" --threads 1,2 --exact-latency-queries 50 \
  --systems numpy-exact --out "$DIR/results/peers-numpy.jsonl"
"$D1VEC" bench report "$DIR" --output "$DIR/report.md" --plot "$DIR/recall-qps.png"
