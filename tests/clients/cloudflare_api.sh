#!/usr/bin/env bash
# Real clients against `d1vec serve`: the pinned wrangler and `cloudflare` SDK run every
# Vectorize and D1 API command they have against a server on a fresh database, and each
# answer is compared with the library's (the d1vec CLI on the same file) or with the data
# written; then the JS binding's tests (bindings/js) run against a server of their own.
#
#   tests/clients/cloudflare_api.sh [path/to/d1vec]
#
# Needs node (>= 20.3) and npm; installs pinned packages into tests/clients/node_modules and
# bindings/js/node_modules (both gitignored) on first run. No network beyond the npm registry.
# Prints one line per command tried ("ok   ..." or "FAIL ...: what differed"). Skips (exit 0)
# when node or npm is missing. The server must stop cleanly on SIGTERM (exit status 0).
set -euo pipefail

WRANGLER_VERSION=4.85.0 # the newest wrangler that runs on node 20 (4.90+ needs node 22)
CLOUDFLARE_SDK_VERSION=7.3.0 # the newest `cloudflare` SDK (runs on node 20)
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
d1vec="${1:-$root/target/release/d1vec}"
d1vec="$(cd "$(dirname "$d1vec")" && pwd)/$(basename "$d1vec")"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "cloudflare_api: node/npm not found, skipped"
    exit 0
fi
[ -x "$d1vec" ] || { echo "cloudflare_api: no d1vec binary at $d1vec" >&2; exit 1; }

version_of() { node -p "require('$here/node_modules/$1/package.json').version" 2>/dev/null || true; }
if [ "$(version_of wrangler)" != "$WRANGLER_VERSION" ] || [ "$(version_of cloudflare)" != "$CLOUDFLARE_SDK_VERSION" ]; then
    echo "== installing wrangler@$WRANGLER_VERSION cloudflare@$CLOUDFLARE_SDK_VERSION"
    # One command for both: a later `npm install --no-save` would prune the other.
    npm install --prefix "$here" --no-save --no-audit --no-fund --loglevel=error \
        "wrangler@$WRANGLER_VERSION" "cloudflare@$CLOUDFLARE_SDK_VERSION" >/dev/null
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -TERM "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

token="cloudflare-api-test-token"
# Port 0: the server picks a free port and names it in its first log line.
"$d1vec" --db "$work/db.sqlite" serve --listen 127.0.0.1:0 --token "$token" >"$work/server.log" 2>&1 &
server_pid=$!
base=""
for _ in $(seq 1 200); do
    base="$(grep -o 'http://127\.0\.0\.1:[0-9]*/client/v4' "$work/server.log" | head -n 1 || true)"
    [ -n "$base" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; echo "cloudflare_api: FAIL: the server exited at start" >&2; exit 1; }
    sleep 0.1
done
[ -n "$base" ] || { cat "$work/server.log" >&2; echo "cloudflare_api: FAIL: the server named no address in 20 s" >&2; exit 1; }
echo "== d1vec serve on $base"

export CLOUDFLARE_API_BASE_URL="$base" CLOUDFLARE_API_TOKEN="$token" CLOUDFLARE_ACCOUNT_ID=local
export WRANGLER_SEND_METRICS=false CI=true NO_COLOR=1 FORCE_COLOR=0 WRANGLER_LOG_PATH="$work/wrangler-logs"
export D1VEC_BIN="$d1vec" D1VEC_DB="$work/db.sqlite" WORK="$work/project" WRANGLER_BIN="$here/node_modules/.bin/wrangler"
mkdir -p "$WORK"

failed=0
echo "== wrangler $WRANGLER_VERSION"
node "$here/wrangler_check.mjs" || failed=1
echo "== cloudflare SDK $CLOUDFLARE_SDK_VERSION"
node "$here/sdk_check.mjs" || failed=1

echo "== SIGTERM"
kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=""
if [ "$status" -eq 0 ]; then
    echo "ok   server exited cleanly on SIGTERM"
else
    echo "FAIL server exited with status $status on SIGTERM; its log:"
    tail -n 20 "$work/server.log"
    failed=1
fi
if grep -q "$token" "$work/server.log"; then
    echo "FAIL the server's log contains the token"
    failed=1
fi

echo "== JS binding (bindings/js)"
if "$root/bindings/js/test.sh" "$d1vec"; then :; else failed=1; fi

if [ "$failed" -ne 0 ]; then
    echo "cloudflare_api: FAIL (see the FAIL lines above)"
    exit 1
fi
echo "cloudflare_api: OK (wrangler $WRANGLER_VERSION, cloudflare $CLOUDFLARE_SDK_VERSION)"
