// wrangler (pinned) against `d1vec serve`: every Vectorize and D1 command wrangler has for
// the API, each answer compared with the library's answer on the same database file (read
// through the d1vec CLI) or with the data the check wrote (the NDJSON and SQL below).
// Run by cloudflare_api.sh, which starts the server and sets the environment.
import fs from "node:fs";
import path from "node:path";
import { canon, check, cli, env, jsonTail, run, runChecks, same } from "./lib.mjs";

const wranglerBin = process.env.WRANGLER_BIN;
const w = (...args) => run(wranglerBin, args);
/** wrangler ARGS, which must succeed; returns its stdout. */
function wOk(...args) {
    const r = w(...args);
    if (r.status !== 0) throw new Error(`wrangler ${args.join(" ").slice(0, 80)} exited ${r.status}: ${tail(r.stdout + r.stderr)}`);
    return r.stdout;
}
/** The end of a command's output, without colours, wrangler's banner or its log-file line. */
const tail = (text) =>
    text
        .replace(/\x1b\[[0-9;]*m/g, "")
        .split("\n")
        .filter((l) => l.trim() && !/wrangler 4\.|^─+$|Logs were written|open an issue/.test(l))
        .join("\n")
        .slice(-700);
const file = (name, text) => {
    fs.mkdirSync(path.dirname(path.join(env.work, name)), { recursive: true });
    fs.writeFileSync(path.join(env.work, name), text);
    return name;
};

// The vectors every check starts from: the oracle for what the index holds after insert.
const v1 = [
    { id: "a", values: [1, 0, 0], metadata: { kind: "x", n: 1 } },
    { id: "b", values: [0, 1, 0], namespace: "ns1", metadata: { kind: "y", n: 2 } },
    { id: "c", values: [0.6, 0.8, 0] },
    { id: "d", values: [0, 0.6, 0.8], metadata: { kind: "x", n: 3 } },
];
const v2 = [
    { id: "c", values: [0, 0, 1], metadata: { kind: "z" } },
    { id: "e", values: [0.8, 0, 0.6] },
];
const ndjson = (vs) => vs.map((v) => JSON.stringify(v)).join("\n") + "\n";
const stored = (ids) => canon(cli("vectorize", "get-vectors", "idx", "--ids", ...ids));
const IDX = "idx";

let dbUuid = null;
const state = {};

const checks = [
    ["vectorize create", () => {
        const got = JSON.parse(wOk("vectorize", "create", IDX, "--dimensions", "3", "--metric", "cosine", "--json"));
        same(canon(got), canon(cli("vectorize", "get", IDX)), "create's answer");
    }],
    ["vectorize create (duplicate name is refused)", () => {
        const r = w("vectorize", "create", IDX, "--dimensions", "3", "--metric", "cosine");
        check(r.status !== 0, `a second create of ${IDX} succeeded:\n${r.stdout}`);
        const code = libCode("vectorize", "create", IDX, "--dimensions", "3", "--metric", "cosine");
        check((r.stdout + r.stderr).includes(`[code: ${code}]`), `wrangler's error lacks the library's [code: ${code}]: ${tail(r.stdout + r.stderr)}`);
        return `code ${code}`;
    }],
    ["vectorize list", () => {
        same(canon(JSON.parse(wOk("vectorize", "list", "--json"))), canon(cli("vectorize", "list")), "list");
    }],
    ["vectorize get", () => {
        same(canon(JSON.parse(wOk("vectorize", "get", IDX, "--json"))), canon(cli("vectorize", "get", IDX)), "get");
    }],
    ["vectorize get (unknown index is refused with the library's code)", () => {
        const r = w("vectorize", "get", "nosuch");
        check(r.status !== 0, "get of an unknown index succeeded");
        const code = libCode("vectorize", "get", "nosuch");
        check((r.stdout + r.stderr).includes(`[code: ${code}]`), `wrangler's error lacks [code: ${code}]: ${tail(r.stdout + r.stderr)}`);
        return `code ${code}`;
    }],
    ["vectorize create-metadata-index", () => {
        wOk("vectorize", "create-metadata-index", IDX, "--propertyName", "kind", "--type", "string");
        same(canon(cli("vectorize", "list-metadata-index", IDX)), { metadataIndexes: [{ indexType: "string", propertyName: "kind" }] }, "metadata indexes after create");
    }],
    ["vectorize list-metadata-index", () => {
        const got = JSON.parse(wOk("vectorize", "list-metadata-index", IDX, "--json"));
        same(canon(got), canon(cli("vectorize", "list-metadata-index", IDX).metadataIndexes), "list-metadata-index");
    }],
    ["vectorize insert (multipart NDJSON)", () => {
        const out = JSON.parse(wOk("vectorize", "insert", IDX, "--file", file("v1.ndjson", ndjson(v1)), "--json"));
        check(out.count === v1.length, `wrangler counted ${out.count}`);
        same(stored(v1.map((v) => v.id)), canon(v1), "vectors after insert");
    }],
    ["vectorize upsert (multipart NDJSON)", () => {
        wOk("vectorize", "upsert", IDX, "--file", file("v2.ndjson", ndjson(v2)));
        same(stored(["a", "c", "e"]), canon([v1[0], ...v2]), "vectors after upsert");
    }],
    ["vectorize info", () => {
        const got = JSON.parse(wOk("vectorize", "info", IDX, "--json"));
        same(canon(got), canon(cli("vectorize", "info", IDX)), "info");
        check(got.vectorCount === 5, `vectorCount ${got.vectorCount}, want 5`);
    }],
    ["vectorize query --vector (values, metadata, topK)", () => {
        const args = ["--vector", "1", "0", "0", "--top-k", "3", "--return-values", "--return-metadata", "all"];
        same(canon(jsonTail(wOk("vectorize", "query", IDX, ...args))), canon(cli("vectorize", "query", IDX, ...args)), "query");
    }],
    ["vectorize query --vector --filter", () => {
        const args = ["--vector", "0", "0.6", "0.8", "--top-k", "5", "--return-metadata", "indexed", "--filter", '{"kind":"x"}'];
        const got = jsonTail(wOk("vectorize", "query", IDX, ...args));
        same(canon(got), canon(cli("vectorize", "query", IDX, ...args)), "filtered query");
        check(got.matches.every((m) => ["a", "d"].includes(m.id)), `filter {kind:x} matched ${got.matches.map((m) => m.id)}`);
    }],
    ["vectorize query --namespace", () => {
        const args = ["--vector", "0", "1", "0", "--namespace", "ns1", "--return-metadata", "none"];
        const got = jsonTail(wOk("vectorize", "query", IDX, ...args));
        same(canon(got), canon(cli("vectorize", "query", IDX, ...args)), "namespace query");
        check(got.matches.length === 1 && got.matches[0].id === "b", `namespace ns1 matched ${got.matches.map((m) => m.id)}`);
    }],
    ["vectorize query --vector-id", () => {
        const args = ["--vector-id", "a", "--top-k", "2"];
        same(canon(jsonTail(wOk("vectorize", "query", IDX, ...args))), canon(cli("vectorize", "query", IDX, ...args)), "query by id");
    }],
    ["vectorize get-vectors", () => {
        same(canon(jsonTail(wOk("vectorize", "get-vectors", IDX, "--ids", "a", "b", "zz"))), stored(["a", "b", "zz"]), "get-vectors");
    }],
    // `--cursor=C`, not `--cursor C`: a cursor may start with "-", which wrangler's and
    // d1vec's argument parsers would take for a flag.
    ["vectorize list-vectors (two pages by cursor)", () => {
        const p1 = JSON.parse(wOk("vectorize", "list-vectors", IDX, "--count", "3", "--json"));
        const l1 = cli("vectorize", "list-vectors", IDX, "--count", "3");
        for (const k of ["count", "totalCount", "isTruncated", "vectors"]) same(canon(p1[k]), canon(l1[k]), `list-vectors page 1 ${k}`);
        check(p1.isTruncated && p1.nextCursor, "page 1 of 5 ids by 3 is not truncated");
        const p2 = JSON.parse(wOk("vectorize", "list-vectors", IDX, "--count", "3", `--cursor=${p1.nextCursor}`, "--json"));
        const l2 = cli("vectorize", "list-vectors", IDX, "--count", "3", `--cursor=${l1.nextCursor}`);
        for (const k of ["count", "totalCount", "isTruncated", "vectors"]) same(canon(p2[k]), canon(l2[k]), `list-vectors page 2 ${k}`);
        const ids = [...p1.vectors, ...p2.vectors].map((v) => v.id).sort();
        same(ids, ["a", "b", "c", "d", "e"], "ids over both pages");
    }],
    ["vectorize delete-vectors", () => {
        wOk("vectorize", "delete-vectors", IDX, "--ids", "a", "e");
        same(stored(["a", "b", "e"]), canon([v1[1]]), "vectors after delete-vectors");
    }],
    ["vectorize delete-metadata-index", () => {
        wOk("vectorize", "delete-metadata-index", IDX, "--propertyName", "kind");
        same(cli("vectorize", "list-metadata-index", IDX), { metadataIndexes: [] }, "metadata indexes after delete");
    }],
    ["vectorize delete", () => {
        wOk("vectorize", "delete", IDX, "--force");
        check(!cli("vectorize", "list").some((i) => i.name === IDX), `${IDX} still listed by the library`);
    }],

    ["d1 list", () => {
        const got = JSON.parse(wOk("d1", "list", "--json"));
        check(Array.isArray(got) && got.length >= 1, `d1 list gave ${JSON.stringify(got)}`);
        for (const d of got) check(typeof d.uuid === "string" && typeof d.name === "string", `a listed database lacks uuid/name: ${JSON.stringify(d)}`);
        dbUuid = got[0].uuid;
        state.primaryName = got[0].name;
        // The config the remaining D1 commands use: the served primary under binding DB.
        file("wrangler.toml", `name = "clients"\ncompatibility_date = "2024-09-01"\n\n[[d1_databases]]\nbinding = "DB"\ndatabase_name = "${got[0].name}"\ndatabase_id = "${dbUuid}"\nmigrations_dir = "migrations"\n`);
        return `${got.length} database(s), primary ${got[0].name}`;
    }],
    ["d1 info", () => {
        const got = JSON.parse(wOk("d1", "info", "DB", "--json"));
        check(got.uuid === dbUuid && got.name === state.primaryName, `info names ${got.uuid}/${got.name}`);
        check(typeof got.num_tables === "number", `num_tables is ${JSON.stringify(got.num_tables)}`);
    }],
    ["d1 execute --remote --command (several statements)", () => {
        const got = JSON.parse(wOk("d1", "execute", "DB", "--remote", "--json", "--command",
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, score REAL); INSERT INTO notes (body, score) VALUES ('one; with a semicolon', 1.5), ('it''s two', NULL); SELECT id, body, score FROM notes ORDER BY id"));
        check(Array.isArray(got) && got.length === 3 && got.every((r) => r.success === true), `want 3 successful results, got ${JSON.stringify(got)}`);
        check(got[1].meta.changes === 2, `INSERT reported changes ${got[1].meta.changes}`);
        same(got[2].results, [{ id: 1, body: "one; with a semicolon", score: 1.5 }, { id: 2, body: "it's two", score: null }], "rows read back");
    }],
    ["d1 execute --remote --command (read, against the library)", () => {
        const sql = "SELECT id, body, score, typeof(score) AS t FROM notes ORDER BY id";
        const got = JSON.parse(wOk("d1", "execute", "DB", "--remote", "--json", "--command", sql));
        const lib = cli("d1", "execute", "--command", sql);
        same(got.map((r) => ({ results: r.results, success: r.success })), lib.map((r) => ({ results: r.results, success: r.success })), "SELECT");
    }],
    ["d1 execute --remote --command (SQL error)", () => {
        const r = w("d1", "execute", "DB", "--remote", "--command", "SELECT * FROM nosuch");
        check(r.status !== 0, "a query of a missing table succeeded");
        check(/no such table: nosuch/.test(r.stdout + r.stderr), `error lacks "no such table: nosuch": ${tail(r.stdout + r.stderr)}`);
    }],
    ["d1 execute --remote --file (import: init, upload, ingest, poll)", () => {
        const sql = "CREATE TABLE tags (note_id INTEGER NOT NULL, tag TEXT NOT NULL);\nINSERT INTO tags VALUES (1, 'a;b');\nINSERT INTO tags VALUES (2, 'c');\n-- a comment; with a semicolon\nINSERT INTO tags VALUES (2, 'd');\n";
        const out = wOk("d1", "execute", "DB", "--remote", "--yes", "--file", file("data.sql", sql));
        const total = jsonTail(out)[0].results[0]["Total queries executed"];
        check(total === 4, `wrangler reports ${total} queries executed, want 4`);
        same(cli("d1", "execute", "--command", "SELECT note_id, tag FROM tags ORDER BY note_id, tag")[0].results,
            [{ note_id: 1, tag: "a;b" }, { note_id: 2, tag: "c" }, { note_id: 2, tag: "d" }], "rows the file wrote");
    }],
    ["d1 migrations apply --remote", () => {
        file("migrations/0001_people.sql", "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO people (name) VALUES ('Ada');\n");
        file("migrations/0002_pets.sql", "CREATE TABLE pets (owner INTEGER REFERENCES people(id), name TEXT);\n");
        wOk("d1", "migrations", "apply", "DB", "--remote");
        same(cli("d1", "execute", "--command", "SELECT name FROM d1_migrations ORDER BY id")[0].results,
            [{ name: "0001_people.sql" }, { name: "0002_pets.sql" }], "applied migrations");
        same(cli("d1", "execute", "--command", "SELECT name FROM people")[0].results, [{ name: "Ada" }], "people");
        const again = wOk("d1", "migrations", "apply", "DB", "--remote");
        check(again.includes("No migrations to apply"), `second apply:\n${again}`);
    }],
    ["d1 export --remote", () => {
        wOk("d1", "export", "DB", "--remote", "--output", "remote.sql");
        cli("d1", "export", "--output", path.join(env.work, "library.sql"));
        const got = fs.readFileSync(path.join(env.work, "remote.sql"), "utf8");
        const want = fs.readFileSync(path.join(env.work, "library.sql"), "utf8");
        check(got === want, `export differs from the library's (${got.length} vs ${want.length} bytes); first differing line: ${firstDiffLine(got, want)}`);
        check(got.includes("one; with a semicolon"), "export lacks a row");
    }],
    ["d1 create", () => {
        wOk("d1", "create", "second-db");
        const d = JSON.parse(wOk("d1", "list", "--json")).find((x) => x.name === "second-db");
        check(d && d.uuid && d.uuid !== dbUuid, `second-db not listed with its own uuid`);
        state.second = d.uuid;
    }],
    ["d1 execute --remote on a created database (found by name, separate data)", () => {
        wOk("d1", "execute", "second-db", "--remote", "--command", "CREATE TABLE only_second (x); INSERT INTO only_second VALUES (42)");
        const got = JSON.parse(wOk("d1", "execute", "second-db", "--remote", "--json", "--command", "SELECT x FROM only_second"));
        same(got[0].results, [{ x: 42 }], "second-db rows");
        same(cli("d1", "execute", "--command", "SELECT name FROM sqlite_master WHERE name = 'only_second'")[0].results, [], "the primary's tables");
    }],
    ["d1 create (duplicate name is refused)", () => {
        const r = w("d1", "create", "second-db");
        check(r.status !== 0, "a second create of second-db succeeded");
        // wrangler turns Cloudflare's code 7502 into this sentence.
        check((r.stdout + r.stderr).includes("A database with that name already exists"), `not refused with code 7502: ${tail(r.stdout + r.stderr)}`);
    }],
    ["d1 delete", () => {
        wOk("d1", "delete", "second-db", "-y");
        check(!JSON.parse(wOk("d1", "list", "--json")).some((x) => x.name === "second-db"), "second-db still listed");
    }],
    ["wrong token is refused", () => {
        const r = run(wranglerBin, ["vectorize", "list", "--json"], { env: { ...process.env, CLOUDFLARE_API_TOKEN: "not-the-token" } });
        check(r.status !== 0, `a wrong token listed indexes:\n${r.stdout}`);
        // Cloudflare's answer to a bad token: code 10000, "Authentication error".
        check((r.stdout + r.stderr).includes("[code: 10000]"), `not refused with code 10000: ${tail(r.stdout + r.stderr)}`);
    }],
];

/** The code of the library's refusal of `d1vec --json ARGS` (it must refuse). */
function libCode(...args) {
    const r = run(env.d1vec, ["--db", env.db, "--json", ...args]);
    check(r.status !== 0, `the library accepted d1vec ${args.join(" ")}`);
    return JSON.parse(r.stderr).code;
}
function firstDiffLine(a, b) {
    const x = a.split("\n");
    const y = b.split("\n");
    for (let i = 0; i < Math.max(x.length, y.length); i++) if (x[i] !== y[i]) return `line ${i + 1}: ${JSON.stringify(x[i])} vs ${JSON.stringify(y[i])}`;
    return "none";
}

const failed = await runChecks("wrangler ", checks);
process.exit(failed ? 1 : 0);
