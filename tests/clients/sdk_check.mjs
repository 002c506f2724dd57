// The `cloudflare` npm SDK (pinned) against `d1vec serve`: its vectorize.indexes.* and
// d1.database.* methods, each answer compared with the library's (the d1vec CLI on the same
// database file) or with the data the check wrote. Run by cloudflare_api.sh.
import { createRequire } from "node:module";
import { canon, check, cli, env, runChecks, same } from "./lib.mjs";

const require = createRequire(import.meta.url);
const Cloudflare = require("cloudflare").default ?? require("cloudflare");
// maxRetries 0: a server error must show as one, not be retried away.
const cf = new Cloudflare({ apiToken: env.token, baseURL: env.base, maxRetries: 0 });
const acc = { account_id: env.account };
const IDX = "sdk-idx";
const vs = [
    { id: "s1", values: [1, 0, 0, 0], metadata: { color: "red", size: 3 } },
    { id: "s2", values: [0, 1, 0, 0], metadata: { color: "blue", size: 1 } },
    { id: "s3", values: [0.5, 0.5, 0.5, 0.5], namespace: "left" },
];
const ndjson = (list) => list.map((v) => JSON.stringify(v)).join("\n") + "\n";
const stored = (ids) => canon(cli("vectorize", "get-vectors", IDX, "--ids", ...ids));
const state = {};

/** Everything an auto-paginated list yields. */
async function all(page) {
    const out = [];
    for await (const x of page) out.push(x);
    return out;
}

const checks = [
    ["vectorize.indexes.create", async () => {
        const got = await cf.vectorize.indexes.create({ ...acc, name: IDX, description: "from the sdk", config: { dimensions: 4, metric: "euclidean" } });
        same(canon(got), canon(cli("vectorize", "get", IDX)), "create's answer");
        check(got.description === "from the sdk", `description ${JSON.stringify(got.description)}`);
    }],
    ["vectorize.indexes.list", async () => {
        same(canon(await all(cf.vectorize.indexes.list(acc))), canon(cli("vectorize", "list")), "list");
    }],
    ["vectorize.indexes.get", async () => {
        same(canon(await cf.vectorize.indexes.get(IDX, acc)), canon(cli("vectorize", "get", IDX)), "get");
    }],
    ["vectorize.indexes.get (unknown index: APIError with the library's code)", async () => {
        const lib = JSON.parse(runLibError("vectorize", "get", "nosuch"));
        try {
            await cf.vectorize.indexes.get("nosuch", acc);
        } catch (e) {
            check(e.status >= 400 && e.status < 500, `status ${e.status}`);
            check(e.errors?.[0]?.code === lib.code, `errors ${JSON.stringify(e.errors)}, want code ${lib.code}`);
            return `${e.status}, code ${lib.code}`;
        }
        throw new Error("get of an unknown index succeeded");
    }],
    ["vectorize.indexes.metadataIndex.create", async () => {
        const got = await cf.vectorize.indexes.metadataIndex.create(IDX, { ...acc, propertyName: "color", indexType: "string" });
        check(typeof got?.mutationId === "string", `answer ${JSON.stringify(got)}`);
    }],
    ["vectorize.indexes.metadataIndex.list", async () => {
        const got = await cf.vectorize.indexes.metadataIndex.list(IDX, acc);
        same(canon(got), canon(cli("vectorize", "list-metadata-index", IDX)), "metadata index list");
        same(got.metadataIndexes.map((m) => m.propertyName), ["color"], "metadata index names");
    }],
    ["vectorize.indexes.insert (NDJSON body)", async () => {
        const got = await cf.vectorize.indexes.insert(IDX, { ...acc, body: ndjson(vs) });
        check(typeof got?.mutationId === "string", `answer ${JSON.stringify(got)}`);
        same(stored(vs.map((v) => v.id)), canon(vs), "vectors after insert");
    }],
    ["vectorize.indexes.upsert (NDJSON body)", async () => {
        const next = { id: "s2", values: [0, 0, 1, 0], metadata: { color: "green" } };
        await cf.vectorize.indexes.upsert(IDX, { ...acc, body: ndjson([next]) });
        same(stored(["s1", "s2"]), canon([vs[0], next]), "vectors after upsert");
    }],
    ["vectorize.indexes.info", async () => {
        const got = await cf.vectorize.indexes.info(IDX, acc);
        same(canon(got), canon(cli("vectorize", "info", IDX)), "info");
        check(got.vectorCount === 3, `vectorCount ${got.vectorCount}`);
    }],
    ["vectorize.indexes.query", async () => {
        const got = await cf.vectorize.indexes.query(IDX, { ...acc, vector: [1, 0.1, 0, 0], topK: 2, returnValues: true, returnMetadata: "all" });
        same(canon(got), canon(cli("vectorize", "query", IDX, "--vector", "1", "0.1", "0", "0", "--top-k", "2", "--return-values", "--return-metadata", "all")), "query");
    }],
    ["vectorize.indexes.query (filter)", async () => {
        const got = await cf.vectorize.indexes.query(IDX, { ...acc, vector: [0, 0, 1, 0], topK: 3, returnMetadata: "all", filter: { color: { $in: ["red", "green"] } } });
        same(canon(got), canon(cli("vectorize", "query", IDX, "--vector", "0", "0", "1", "0", "--top-k", "3", "--return-metadata", "all", "--filter", '{"color":{"$in":["red","green"]}}')), "filtered query");
        same(got.matches.map((m) => m.id).sort(), ["s1", "s2"], "filtered ids");
    }],
    ["vectorize.indexes.getByIDs", async () => {
        same(canon(await cf.vectorize.indexes.getByIDs(IDX, { ...acc, ids: ["s3", "s1", "nope"] })), stored(["s3", "s1", "nope"]), "getByIDs");
    }],
    ["vectorize.indexes.listVectors", async () => {
        const got = await cf.vectorize.indexes.listVectors(IDX, { ...acc, count: 2 });
        const lib = cli("vectorize", "list-vectors", IDX, "--count", "2");
        for (const k of ["count", "totalCount", "isTruncated", "vectors"]) same(canon(got[k]), canon(lib[k]), `listVectors ${k}`);
        const rest = await cf.vectorize.indexes.listVectors(IDX, { ...acc, count: 2, cursor: got.nextCursor });
        same([...got.vectors, ...rest.vectors].map((v) => v.id).sort(), ["s1", "s2", "s3"], "ids over both pages");
    }],
    ["vectorize.indexes.deleteByIDs", async () => {
        const got = await cf.vectorize.indexes.deleteByIDs(IDX, { ...acc, ids: ["s1"] });
        check(typeof got?.mutationId === "string", `answer ${JSON.stringify(got)}`);
        same(stored(["s1"]), [], "s1 after delete");
    }],
    ["vectorize.indexes.metadataIndex.delete", async () => {
        await cf.vectorize.indexes.metadataIndex.delete(IDX, { ...acc, propertyName: "color" });
        same(cli("vectorize", "list-metadata-index", IDX), { metadataIndexes: [] }, "metadata indexes after delete");
    }],
    ["vectorize.indexes.delete", async () => {
        await cf.vectorize.indexes.delete(IDX, acc);
        check(!cli("vectorize", "list").some((i) => i.name === IDX), `${IDX} still listed by the library`);
    }],

    ["d1.database.list (auto-paginated, per_page 1)", async () => {
        const got = await all(cf.d1.database.list({ ...acc, per_page: 1 }));
        check(got.length >= 1, "no database listed");
        const names = got.map((d) => d.name);
        check(new Set(names).size === names.length, `a page repeated: ${names}`);
        state.primary = got[0];
        return `${got.length} database(s)`;
    }],
    ["d1.database.get", async () => {
        const got = await cf.d1.database.get(state.primary.uuid, acc);
        check(got.uuid === state.primary.uuid && got.name === state.primary.name, `get gave ${JSON.stringify(got)}`);
    }],
    ["d1.database.create", async () => {
        const got = await cf.d1.database.create({ ...acc, name: "sdk-db" });
        check(typeof got.uuid === "string" && got.name === "sdk-db", `create gave ${JSON.stringify(got)}`);
        state.db = got.uuid;
        const listed = await all(cf.d1.database.list({ ...acc, name: "sdk-db" }));
        check(listed.some((d) => d.uuid === got.uuid), `sdk-db not listed: ${JSON.stringify(listed)}`);
    }],
    ["d1.database.query (one statement, params)", async () => {
        await all(cf.d1.database.query(state.db, { ...acc, sql: "CREATE TABLE kv (k TEXT PRIMARY KEY, v)" }));
        const ins = await all(cf.d1.database.query(state.db, { ...acc, sql: "INSERT INTO kv VALUES (?, ?), (?, ?)", params: ["a", "1", "b", "x"] }));
        check(ins.length === 1 && ins[0].success && ins[0].meta.changes === 2, `insert gave ${JSON.stringify(ins)}`);
        const got = await all(cf.d1.database.query(state.db, { ...acc, sql: "SELECT k, v, typeof(v) AS t FROM kv WHERE k >= ? ORDER BY k", params: ["a"] }));
        same(got[0].results, [{ k: "a", v: "1", t: "text" }, { k: "b", v: "x", t: "text" }], "rows (string params bind as text)");
    }],
    ["d1.database.query (batch)", async () => {
        const got = await all(cf.d1.database.query(state.db, { ...acc, batch: [{ sql: "SELECT count(*) AS n FROM kv" }, { sql: "SELECT v FROM kv WHERE k = ?", params: ["b"] }] }));
        same(got.map((r) => r.results), [[{ n: 2 }], [{ v: "x" }]], "batch results");
    }],
    ["d1.database.raw", async () => {
        const got = await all(cf.d1.database.raw(state.db, { ...acc, sql: "SELECT k, v FROM kv ORDER BY k" }));
        same(got[0].results, { columns: ["k", "v"], rows: [["a", "1"], ["b", "x"]] }, "raw results");
    }],
    ["d1.database.query on the primary, against the library", async () => {
        cli("d1", "execute", "--command", "CREATE TABLE IF NOT EXISTS sdk_rows (i INTEGER, f REAL, t TEXT, n); DELETE FROM sdk_rows; INSERT INTO sdk_rows VALUES (1, 2.5, 'x', NULL), (-7, 0.1, '', 'y')");
        const sql = "SELECT * FROM sdk_rows ORDER BY i";
        const got = await all(cf.d1.database.query(state.primary.uuid, { ...acc, sql }));
        const lib = cli("d1", "execute", "--command", sql);
        same(got.map((r) => ({ results: r.results, success: r.success })), lib.map((r) => ({ results: r.results, success: r.success })), "SELECT");
    }],
    ["d1.database.query (SQL error: APIError)", async () => {
        try {
            await all(cf.d1.database.query(state.db, { ...acc, sql: "SELECT * FROM nosuch" }));
        } catch (e) {
            check(/no such table: nosuch/.test(JSON.stringify(e.errors ?? e.message)), `error ${e.message}`);
            return `${e.status}`;
        }
        throw new Error("a query of a missing table succeeded");
    }],
    ["d1.database.delete", async () => {
        await cf.d1.database.delete(state.db, acc);
        const listed = await all(cf.d1.database.list(acc));
        check(!listed.some((d) => d.uuid === state.db), "sdk-db still listed");
    }],
    ["wrong token is refused (APIError, code 10000)", async () => {
        const wrong = new Cloudflare({ apiToken: "not-the-token", baseURL: env.base, maxRetries: 0 });
        try {
            await wrong.vectorize.indexes.list(acc);
        } catch (e) {
            check(e.status === 401 || e.status === 403, `status ${e.status}`);
            check(e.errors?.[0]?.code === 10000, `errors ${JSON.stringify(e.errors)}`);
            return `${e.status}`;
        }
        throw new Error("a wrong token listed indexes");
    }],
];

function runLibError(...args) {
    // The library's refusal as the CLI prints it on stderr: {"code", "error"}.
    return require("node:child_process").spawnSync(env.d1vec, ["--db", env.db, "--json", ...args], { encoding: "utf8" }).stderr;
}

const failed = await runChecks("sdk ", checks);
process.exit(failed ? 1 : 0);
