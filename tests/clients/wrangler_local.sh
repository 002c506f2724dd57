#!/usr/bin/env bash
# Interop check against the real wrangler: wrangler and d1vec must share one local D1
# database (the SQLite file under .wrangler/state/v3/d1/) and one migrations table.
#
#   tests/clients/wrangler_local.sh [path/to/d1vec]
#
# Needs node (>= 20.3) and npm; installs a pinned wrangler into tests/clients/node_modules
# (gitignored) on first run. No login and no network beyond the npm registry: only
# --local commands run. Skips (exit 0) when node or npm is missing.
set -euo pipefail

WRANGLER_VERSION=4.85.0 # the newest wrangler that runs on node 20 (4.90+ needs node 22)
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
d1vec="${1:-$root/target/release/d1vec}"
d1vec="$(cd "$(dirname "$d1vec")" && pwd)/$(basename "$d1vec")"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "wrangler_local: node/npm not found, skipped"
    exit 0
fi
[ -x "$d1vec" ] || { echo "wrangler_local: no d1vec binary at $d1vec" >&2; exit 1; }

export WRANGLER_SEND_METRICS=false CI=true NO_COLOR=1
wrangler="$here/node_modules/.bin/wrangler"
installed="$(node -p "require('$here/node_modules/wrangler/package.json').version" 2>/dev/null || true)"
if [ "$installed" != "$WRANGLER_VERSION" ]; then
    echo "== installing wrangler@$WRANGLER_VERSION"
    npm install --prefix "$here" --no-save --no-audit --no-fund --loglevel=error \
        "wrangler@$WRANGLER_VERSION" >/dev/null
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
# A custom migrations folder and table, so d1vec must read both from the config.
cat > wrangler.toml <<'TOML'
name = "interop"
compatibility_date = "2024-09-01"

[[d1_databases]]
binding = "DB"
database_name = "interop-db"
database_id = "5a9e3c1e-0b7d-4e38-9c51-2f6d1c0a7b11"
migrations_dir = "db/migrations"
migrations_table = "schema_history"
TOML
mkdir -p db/migrations
cat > db/migrations/0001_notes.sql <<'SQL'
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
INSERT INTO notes (body) VALUES ('from wrangler migration');
SQL

fail() { echo "wrangler_local: FAIL: $*" >&2; exit 1; }
# Compact JSON of the result rows of the last statement, from either tool's --json output,
# each row's keys sorted (d1vec prints a row's columns in name order, D1 in select order).
rows() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);const rs=r[r.length-1].results.map(o=>Object.fromEntries(Object.keys(o).sort().map(k=>[k,o[k]])));console.log(JSON.stringify(rs))})'; }
# Names of applied migrations, from `migrations list --json` (d1vec) or the table (wrangler).
applied_d1vec() { "$d1vec" --json d1 migrations list DB --local | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{console.log(JSON.parse(s).filter(m=>m.applied_at).map(m=>m.name).join(","))})'; }

echo "== wrangler applies 0001, d1vec sees it"
"$wrangler" d1 migrations apply DB --local >/dev/null
"$wrangler" d1 execute DB --local --command "INSERT INTO notes (body) VALUES ('by wrangler')" >/dev/null
[ "$(applied_d1vec)" = "0001_notes.sql" ] || fail "d1vec lists $(applied_d1vec), want 0001_notes.sql"
want='[{"body":"from wrangler migration","id":1},{"body":"by wrangler","id":2}]'
got="$("$d1vec" --json d1 execute DB --local --command "SELECT id, body FROM notes ORDER BY id" | rows)"
[ "$got" = "$want" ] || fail "d1vec read $got, want $want"

echo "== d1vec applies 0002 and writes, wrangler sees both"
cat > db/migrations/0002_tags.sql <<'SQL'
CREATE TABLE tags (note_id INTEGER NOT NULL REFERENCES notes(id), tag TEXT NOT NULL);
SQL
"$d1vec" d1 migrations apply DB --local >/dev/null
"$d1vec" d1 execute DB --local --yes --command "INSERT INTO tags VALUES (2, 'd1vec'); INSERT INTO notes (body) VALUES ('by d1vec')" >/dev/null
listing="$("$wrangler" d1 migrations list DB --local 2>&1)"
echo "$listing" | grep -q "No migrations to apply" || fail "wrangler still lists pending migrations: $listing"
want='[{"body":"by wrangler","tag":"d1vec"}]'
got="$("$wrangler" d1 execute DB --local --json --command "SELECT body, tag FROM notes JOIN tags ON tags.note_id = notes.id" | rows)"
[ "$got" = "$want" ] || fail "wrangler read $got, want $want"
got="$("$wrangler" d1 execute DB --local --json --command "SELECT name FROM schema_history ORDER BY id" | rows)"
[ "$got" = '[{"name":"0001_notes.sql"},{"name":"0002_tags.sql"}]' ] || fail "schema_history holds $got"

echo "== both agree on the whole table, and --persist-to moves both"
a="$("$wrangler" d1 execute DB --local --json --command "SELECT * FROM notes ORDER BY id" | rows)"
b="$("$d1vec" --json d1 execute DB --local --command "SELECT * FROM notes ORDER BY id" | rows)"
[ "$a" = "$b" ] || fail "wrangler $a vs d1vec $b"
"$wrangler" d1 execute interop-db --local --persist-to elsewhere --command "CREATE TABLE moved (x); INSERT INTO moved VALUES (7)" >/dev/null
got="$("$d1vec" --json d1 execute interop-db --persist-to elsewhere --command "SELECT x FROM moved" | rows)"
[ "$got" = '[{"x":7}]' ] || fail "d1vec under --persist-to read $got"

echo "== --remote is refused"
if "$d1vec" d1 execute DB --remote --command "SELECT 1" 2>err.txt; then fail "--remote ran"; fi
grep -q "hosted Cloudflare D1" err.txt || fail "--remote error: $(cat err.txt)"

echo "wrangler_local: OK (wrangler $WRANGLER_VERSION)"
