// The Vectorize binding against `d1vec serve`: every method, with the library's answer (the
// d1vec CLI on the same database file) or the vectors written as the oracle.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { d1vecBindings, CloudflareApiError } from "../dist/index.js";
import { bin, canon, round, startServer } from "./server.mjs";

const vectors = [
    { id: "a", values: [1, 0, 0], metadata: { kind: "x", n: 1 } },
    { id: "b", values: [0, 1, 0], namespace: "ns1", metadata: { kind: "y", n: 2 } },
    { id: "c", values: [0.6, 0.8, 0] },
    { id: "d", values: new Float32Array([0, 0.6, 0.8]), metadata: { kind: "x", n: 3, tags: ["p", "q"] } },
];
/** A vector as the API gives it back: plain number arrays, no absent keys. */
const plain = (v) => canon({ ...v, values: Array.from(v.values) });

describe("Vectorize binding", { skip: bin ? false : "D1VEC_BIN is not set" }, () => {
    let server;
    let index;
    const lib = (...args) => server.cli(...args);

    before(async () => {
        server = await startServer((cli) => {
            cli("vectorize", "create", "docs", "--dimensions", "3", "--metric", "cosine");
            cli("vectorize", "create-metadata-index", "docs", "--propertyName", "kind", "--type", "string");
        });
        index = d1vecBindings({ baseUrl: server.base, token: server.token }).vectorize("docs");
    });
    after(async () => {
        assert.equal(await server.stop(), 0, "server exit status on SIGTERM");
    });

    test("insert, then getByIds gives back what was written", async () => {
        const m = await index.insert(vectors);
        assert.equal(typeof m.mutationId, "string");
        const got = await index.getByIds(["a", "b", "c", "d", "missing"]);
        assert.deepEqual(round(canon(got)), round(vectors.map(plain)));
        assert.deepEqual(canon(got), canon(lib("vectorize", "get-vectors", "docs", "--ids", "a", "b", "c", "d", "missing")));
    });

    test("insert keeps an existing id's vector; upsert replaces it", async () => {
        await index.insert([{ id: "a", values: [0, 0, 1] }]);
        assert.deepEqual(round((await index.getByIds(["a"]))[0].values), [1, 0, 0]);
        await index.upsert([{ id: "a", values: [0, 0, 1], metadata: { kind: "z" } }]);
        assert.deepEqual(canon(await index.getByIds(["a"])), [canon({ id: "a", values: [0, 0, 1], metadata: { kind: "z" } })]);
    });

    test("describe", async () => {
        const info = await index.describe();
        const want = lib("vectorize", "info", "docs");
        assert.equal(info.vectorCount, 4);
        assert.equal(info.vectorCount, want.vectorCount);
        assert.equal(info.dimensions, 3);
        assert.equal(info.processedUpToMutation, want.processedUpToMutation);
    });

    test("query matches the library's answer (values, metadata, topK)", async () => {
        const got = await index.query([1, 0.2, 0], { topK: 3, returnValues: true, returnMetadata: "all" });
        const want = lib("vectorize", "query", "docs", "--vector", "1", "0.2", "0", "--top-k", "3", "--return-values", "--return-metadata", "all");
        assert.deepEqual(round(canon(got)), round(canon(want)));
        assert.equal(got.count, 3);
    });

    test("query with a filter, a namespace, and returnMetadata as a boolean", async () => {
        const filtered = await index.query(new Float32Array([0, 0.6, 0.8]), { topK: 5, returnMetadata: true, filter: { kind: "x" } });
        const want = lib("vectorize", "query", "docs", "--vector", "0", "0.6", "0.8", "--top-k", "5", "--return-metadata", "all", "--filter", '{"kind":"x"}');
        assert.deepEqual(round(canon(filtered)), round(canon(want)));
        assert.deepEqual(filtered.matches.map((m) => m.id), ["d"]);
        const ns = await index.query([0, 1, 0], { namespace: "ns1", returnMetadata: false });
        assert.deepEqual(ns.matches.map((m) => m.id), ["b"]);
        assert.equal(ns.matches[0].metadata, undefined);
    });

    test("queryById matches the library's answer", async () => {
        const got = await index.queryById("c", { topK: 2 });
        const want = lib("vectorize", "query", "docs", "--vector-id", "c", "--top-k", "2");
        assert.deepEqual(round(canon(got)), round(canon(want)));
    });

    test("a wrong dimension is refused with the library's error code, and nothing changes", async () => {
        let libCode;
        try {
            lib("vectorize", "query", "docs", "--vector", "1", "0");
        } catch (e) {
            libCode = JSON.parse(e.stderr).code;
        }
        assert.ok(libCode, "the library refused the query");
        await assert.rejects(index.query([1, 0]), (e) => e instanceof CloudflareApiError && e.code === libCode && e.status >= 400 && e.status < 500);
        await assert.rejects(index.insert([{ id: "bad", values: [1, 2] }]), (e) => e instanceof CloudflareApiError && e.status >= 400);
        assert.deepEqual(await index.getByIds(["bad"]), []);
    });

    test("deleteByIds", async () => {
        const m = await index.deleteByIds(["b", "c"]);
        assert.equal(typeof m.mutationId, "string");
        assert.deepEqual(await index.getByIds(["b", "c"]), []);
        assert.deepEqual(lib("vectorize", "get-vectors", "docs", "--ids", "b", "c"), []);
        assert.equal((await index.describe()).vectorCount, 2);
    });

    test("an unknown index is refused with the library's code", async () => {
        let libCode;
        try {
            lib("vectorize", "info", "nosuch");
        } catch (e) {
            libCode = JSON.parse(e.stderr).code;
        }
        const other = d1vecBindings({ baseUrl: server.base, token: server.token }).vectorize("nosuch");
        await assert.rejects(other.describe(), (e) => e instanceof CloudflareApiError && e.code === libCode);
    });

    test("a wrong token is refused", async () => {
        const wrong = d1vecBindings({ baseUrl: server.base, token: "wrong" }).vectorize("docs");
        await assert.rejects(wrong.describe(), (e) => e instanceof CloudflareApiError && (e.status === 401 || e.status === 403) && e.code === 10000);
    });
});
