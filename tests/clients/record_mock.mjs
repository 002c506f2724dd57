// A recording stand-in for Cloudflare's v4 API: answers every request wrangler and the
// `cloudflare` SDK send for D1 and Vectorize with a plausible envelope, and appends one JSON
// line per request (method, path, query, headers without Authorization, body) to a log.
// It was used to write /work/notes/wrangler-requests.md; keep it to re-record after a
// wrangler or SDK upgrade:
//
//   node tests/clients/record_mock.mjs LOGFILE   # prints "listening PORT", runs until killed
//
// It is a test tool, not an oracle: the answers are shaped like Cloudflare's, their values
// are made up.
import http from "node:http";
import crypto from "node:crypto";
import fs from "node:fs";

const logFile = process.argv[2] ?? "requests.jsonl";
const ok = (result, extra = {}) => ({ result, success: true, errors: [], messages: [], ...extra });
const fail = (code, message) => ({ result: null, success: false, errors: [{ code, message }], messages: [] });
const now = "2026-12-04T19:00:00.000000Z";
const index = (name) => ({
    name,
    description: "",
    config: { dimensions: 3, metric: "cosine" },
    created_on: now,
    modified_on: now,
});
const db = (name, uuid) => ({
    uuid,
    name,
    created_at: now,
    version: "production",
    num_tables: 1,
    file_size: 12288,
    jurisdiction: null,
});
const dbs = [db("interop-db", "5a9e3c1e-0b7d-4e38-9c51-2f6d1c0a7b11")];
const uploads = new Map();
let port = 0;

function answer(method, path, query, body) {
    const m = path.match(/^\/client\/v4\/accounts\/[^/]+\/(.*)$/);
    if (path === "/client/v4/graphql") return [200, { data: null, errors: null }];
    if (method === "PUT" && path.startsWith("/upload/")) return ["upload", null];
    if (method === "GET" && path.startsWith("/download/")) return ["download", null];
    if (!m) return [404, fail(10000, `no route ${method} ${path}`)];
    const rest = m[1];
    let r;
    if ((r = rest.match(/^vectorize\/v2\/indexes\/?$/))) {
        if (method === "POST") return [200, ok({ ...index(body.name), description: body.description ?? "", config: body.config })];
        return [200, ok([index("idx")])];
    }
    if ((r = rest.match(/^vectorize\/v2\/indexes\/([^/]+)(\/.*)?$/))) {
        const [, name, sub = ""] = r;
        switch (`${method} ${sub}`) {
            case "GET ":
                return [200, ok(index(name))];
            case "DELETE ":
                return [200, ok(null)];
            case "GET /info":
                return [200, ok({ dimensions: 3, vectorCount: 2, processedUpToMutation: "m-1", processedUpToDatetime: now })];
            case "POST /insert":
            case "POST /upsert":
            case "POST /delete_by_ids":
            case "POST /metadata_index/create":
            case "POST /metadata_index/delete":
                return [200, ok({ mutationId: "m-" + crypto.randomUUID() })];
            case "POST /query":
                return [200, ok({ count: 1, matches: [{ id: "a", score: 0.99, values: [1, 0, 0], metadata: { k: "v" }, namespace: null }] })];
            case "POST /get_by_ids":
                return [200, ok([{ id: "a", values: [1, 0, 0], metadata: { k: "v" }, namespace: null }])];
            case "GET /list":
                return [200, ok({ count: 2, totalCount: 2, isTruncated: false, nextCursor: null, cursorExpirationTimestamp: null, vectors: [{ id: "a" }, { id: "b" }] })];
            case "GET /metadata_index/list":
                return [200, ok({ metadataIndexes: [{ propertyName: "k", indexType: "String" }] })];
        }
    }
    if (rest === "d1/database") {
        if (method === "POST") {
            const d = db(body.name, crypto.randomUUID());
            dbs.push(d);
            return [200, ok({ uuid: d.uuid, name: d.name, created_at: now })];
        }
        const page = Number(query.get("page") ?? 1);
        const per = Number(query.get("per_page") ?? 100);
        const slice = dbs.slice((page - 1) * per, page * per);
        return [200, ok(slice, { result_info: { page, per_page: per, count: slice.length, total_count: dbs.length } })];
    }
    if ((r = rest.match(/^d1\/database\/([^/]+)(\/.*)?$/))) {
        const [, id, sub = ""] = r;
        const found = dbs.find((d) => d.uuid === id || d.name === id);
        if (!found) return [404, fail(7404, `The database ${id} could not be found`)];
        const meta = { served_by: "mock", duration: 0.1, changes: 0, last_row_id: 0, changed_db: false, size_after: 12288, rows_read: 1, rows_written: 0 };
        switch (`${method} ${sub}`) {
            case "GET ":
                return [200, ok(found)];
            case "DELETE ":
                dbs.splice(dbs.indexOf(found), 1);
                return [200, ok(null)];
            case "POST /query": {
                // wrangler's migrations read their table's rows; answer none applied.
                return [200, ok([{ results: [], success: true, meta }])];
            }
            case "POST /raw":
                return [200, ok([{ results: { columns: ["x"], rows: [[1]] }, success: true, meta }])];
            case "POST /import":
                if (body.action === "init") {
                    const filename = `${body.etag}.sql`;
                    return [200, ok({ success: true, filename, upload_url: `http://127.0.0.1:${port}/upload/${filename}` })];
                }
                if (body.action === "ingest")
                    return [200, ok({ success: true, status: "active", at_bookmark: "0000-ingest", messages: ["ingest started"], type: "import" })];
                return [200, ok({ success: true, status: "complete", at_bookmark: "0000-done", messages: [], type: "import", result: { num_queries: 2, final_bookmark: "0000-final", meta: { ...meta, rows_written: 1 } } })];
            case "POST /export":
                if (!body.current_bookmark)
                    return [200, ok({ success: true, status: "active", at_bookmark: "0000-export", messages: ["Generating dump"], type: "export" })];
                return [200, ok({ success: true, status: "complete", at_bookmark: "0000-export", messages: ["Uploaded part 1"], type: "export", result: { filename: "dump.sql", signed_url: `http://127.0.0.1:${port}/download/dump.sql` } })];
        }
    }
    return [404, fail(10000, `no route ${method} ${path}`)];
}

const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
        const raw = Buffer.concat(chunks);
        const url = new URL(req.url, "http://x");
        const headers = { ...req.headers };
        if (headers.authorization) headers.authorization = headers.authorization.replace(/ .*/, " <redacted>");
        const text = raw.toString("utf8");
        let body = null;
        try {
            body = text ? JSON.parse(text) : null;
        } catch {
            body = null;
        }
        fs.appendFileSync(
            logFile,
            JSON.stringify({ method: req.method, path: url.pathname, query: url.search, headers, body: body ?? (text.length > 4000 ? text.slice(0, 4000) + "..." : text) }) + "\n",
        );
        const [status, out] = answer(req.method, url.pathname, url.searchParams, body);
        if (status === "upload") {
            uploads.set(url.pathname, raw);
            res.writeHead(200, { etag: `"${crypto.createHash("md5").update(raw).digest("hex")}"` });
            return res.end();
        }
        if (status === "download") {
            res.writeHead(200, { "content-type": "application/sql" });
            return res.end("CREATE TABLE t (x);\nINSERT INTO t VALUES (1);\n");
        }
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(out));
    });
});
server.listen(0, "127.0.0.1", () => {
    port = server.address().port;
    console.log(`listening ${port}`);
});
