#!/usr/bin/env bash
# Builds @d1vec/bindings with its pinned TypeScript and runs its tests (node's test runner)
# against `d1vec serve` instances they start from the given binary.
#
#   bindings/js/test.sh [path/to/d1vec]
#
# Skips (exit 0) when node or npm is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
d1vec="${1:-$root/target/release/d1vec}"
d1vec="$(cd "$(dirname "$d1vec")" && pwd)/$(basename "$d1vec")"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "bindings/js: node/npm not found, skipped"
    exit 0
fi
[ -x "$d1vec" ] || { echo "bindings/js: no d1vec binary at $d1vec" >&2; exit 1; }
cd "$here"
want="$(node -p "require('./package.json').devDependencies.typescript")"
have="$(node -p "require('./node_modules/typescript/package.json').version" 2>/dev/null || true)"
if [ "$have" != "$want" ]; then
    npm install --no-audit --no-fund --loglevel=error >/dev/null
fi
rm -rf dist
./node_modules/.bin/tsc -p tsconfig.json
D1VEC_BIN="$d1vec" node --test --test-reporter=spec test/*.test.mjs
