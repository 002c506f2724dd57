#!/usr/bin/env bash
# The README's 1,000,000 x 1536 table: build (ingest + seal, then compaction), disk, first
# answer (warm and with the files evicted), RSS, and QPS at recall@10 >= 0.95; about an hour
# on a 2-core machine. PEERS=1 also measures hnswlib, faiss and numpy on the same folder
# (several hours more).
# Needs about 6 GB for base.fvecs, about 15 GB more for d1vec's database and the peers'
# saved indexes, and about 10 GB of memory: ingest holds the 6 GB of rows, the compaction a
# copy of the vectors and their codes (the peers, with PEERS=1, the matrix and their index).
#   bash benches/run_1m.sh [DIR]        (default: bench-1m)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-bench-1m}
QUERIES=${QUERIES:-200}
EF=${EF:-128,256,512,1024}
cargo build --release
D1VEC=target/release/d1vec
# Generation streams the base rows in blocks and computes every case's exact ground truth in
# the same pass (memory: one block, the metadata and the queries; not the 6 GB of vectors).
[ -f "$DIR/base.fvecs" ] || "$D1VEC" bench gen --dims 1536 --n 1000000 --queries "$QUERIES" --out "$DIR"
"$D1VEC" bench run "$DIR" --queries "$QUERIES" --ef "$EF" --threads 1,2 --exact-queries 20 --cold-runs 3
if [ "${PEERS:-0}" = 1 ]; then
  # hnswlib's Python filter callback makes filtered sweeps take hours at this size: unfiltered only.
benches/peers/run.sh "$DIR" --queries "$QUERIES" --ef "$EF" --threads 1,2 --build-threads 2 \
  --systems hnswlib --cases "unfiltered" --out "$DIR/results/peers-hnswlib.jsonl"
benches/peers/run.sh "$DIR" --queries "$QUERIES" --ef "$EF" --threads 1,2 --build-threads 2 \
  --systems faiss-hnsw --out "$DIR/results/peers-faiss.jsonl"
  # numpy's exact scan reads 6 GB per query: 50 single-query latency samples are enough.
benches/peers/run.sh "$DIR" --queries "$QUERIES" --threads 1,2 --exact-latency-queries 50 \
  --systems numpy-exact --out "$DIR/results/peers-numpy.jsonl"
fi
"$D1VEC" bench report "$DIR" --output "$DIR/report.md" --plot "$DIR/recall-qps.png"
