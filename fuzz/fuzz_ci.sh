#!/bin/sh
# 60-second smoke run of every fuzz target (needs cargo-fuzz and a nightly toolchain).
set -eu
cd "$(dirname "$0")"
for target in sql_split filter_json ndjson_line segment_open cursor_decode bookmark sealed_field key_file wrangler_config; do
    cargo +nightly fuzz run "$target" "corpus/$target" -- -max_total_time=60
done
