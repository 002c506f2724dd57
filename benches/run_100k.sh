#!/usr/bin/env bash
# The README's Performance table: 100,000 x 1536 cosine, d1vec beside hnswlib, faiss and
# numpy on the same folder, in one run. About 15 minutes on a 2-core machine; run it on a quiet one.
#   bash benches/run_100k.sh [DIR]        (default: bench-100k)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-bench-100k}
QUERIES=${QUERIES:-200}
EF=${EF:-16,32,64,128,256}
cargo build --release
D1VEC=target/release/d1vec
[ -f "$DIR/base.fvecs" ] || "$D1VEC" bench gen --dims 1536 --n 100000 --queries 1000 --out "$DIR"
# Also measures each filter at first sight (fresh handles, and a timestamp window new per
# query) against repeats, the first answer warm and with the database's files evicted from
# the page cache, and RSS (empty-database baseline, after open, first query, all queries).
"$D1VEC" bench run "$DIR" --queries "$QUERIES" --ef "$EF" --threads 1,2 --exact-queries 100 --cold-runs 5
# hnswlib's filter is a Python callback per visited node (5-10 QPS on the 0.1 % tenant at
# 100k): a full filtered sweep would take hours, so it runs unfiltered and on that one tenant.
benches/peers/run.sh "$DIR" --queries "$QUERIES" --ef "$EF" --threads 1,2 --build-threads 2 \
  --systems hnswlib --cases "unfiltered" --out "$DIR/results/peers-hnswlib.jsonl"
benches/peers/run.sh "$DIR" --queries "$QUERIES" --ef "$EF" --threads 1,2 --build-threads 2 \
  --systems faiss-hnsw,numpy-exact
"$D1VEC" bench report "$DIR" --output "$DIR/report.md" --plot "$DIR/recall-qps.png"
