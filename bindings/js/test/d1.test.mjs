// The D1Database binding against `d1vec serve`: prepare/bind/first/all/run/raw/batch/exec,
// with the library's answer (the d1vec CLI on the same database file) as the oracle.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { d1vecBindings } from "../dist/index.js";
import { bin, startServer } from "./server.mjs";

describe("D1Database binding", { skip: bin ? false : "D1VEC_BIN is not set" }, () => {
    let server;
    let db;
    /** The library's rows for `sql` (the last statement's). */
    const libRows = (sql) => {
        const r = server.cli("d1", "execute", "--command", sql);
        return r[r.length - 1].results;
    };

    before(async () => {
        server = await startServer();
        const res = await fetch(`${server.base}/accounts/local/d1/database`, { headers: { authorization: `Bearer ${server.token}` } });
        const body = await res.json();
        assert.ok(body.success && body.result.length >= 1, `d1 list: ${JSON.stringify(body)}`);
        db = d1vecBindings({ baseUrl: server.base, token: server.token }).d1(body.result[0].uuid);
    });
    after(async () => {
        assert.equal(await server.stop(), 0, "server exit status on SIGTERM");
    });

    test("exec runs several statements and counts them", async () => {
        const r = await db.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER, active, avatar BLOB); CREATE INDEX users_name ON users(name)");
        assert.equal(r.count, 2);
        assert.equal(typeof r.duration, "number");
        assert.deepEqual(libRows("SELECT name FROM sqlite_master WHERE tbl_name = 'users' ORDER BY name"), [{ name: "users" }, { name: "users_name" }]);
    });

    test("run with bound values reports changes and last_row_id", async () => {
        const r = await db.prepare("INSERT INTO users (name, age, active) VALUES (?, ?, ?)").bind("Ada", 36, true).run();
        assert.equal(r.success, true);
        assert.equal(r.meta.changes, 1);
        assert.equal(r.meta.last_row_id, 1);
        assert.deepEqual(r.results, []);
        await db.prepare("INSERT INTO users (name, age, active) VALUES (?1, ?2, ?3)").bind("Grace", null, false).run();
        await db.prepare("INSERT INTO users (name, age) VALUES (?, ?)").bind("it's; quoted", 7.5).run();
        assert.deepEqual(libRows("SELECT id, name, age, active FROM users ORDER BY id"), [
            { id: 1, name: "Ada", age: 36, active: 1 },
            { id: 2, name: "Grace", age: null, active: 0 },
            { id: 3, name: "it's; quoted", age: 7.5, active: null },
        ]);
    });

    test("all() gives the library's rows and D1's result shape", async () => {
        const sql = "SELECT id, name, age, active FROM users WHERE id >= ? ORDER BY id";
        const r = await db.prepare(sql).bind(1).all();
        assert.equal(r.success, true);
        assert.deepEqual(r.results, libRows(sql.replace("?", "1")));
        for (const k of ["duration", "rows_read", "rows_written", "changes", "last_row_id", "size_after"]) assert.equal(typeof r.meta[k], "number", `meta.${k}`);
        assert.equal(typeof r.meta.changed_db, "boolean");
    });

    test("first() and first(column)", async () => {
        const q = db.prepare("SELECT name, age FROM users WHERE id = ?");
        assert.deepEqual(await q.bind(1).first(), { name: "Ada", age: 36 });
        assert.equal(await q.bind(1).first("name"), "Ada");
        assert.equal(await q.bind(99).first(), null);
        assert.equal(await q.bind(99).first("name"), null);
        await assert.rejects(q.bind(1).first("nosuch"), /D1_COLUMN_NOTFOUND/);
    });

    test("raw() gives rows as arrays, with column names on request", async () => {
        const sql = "SELECT id, name FROM users ORDER BY id";
        const want = libRows(sql).map((r) => [r.id, r.name]);
        assert.deepEqual(await db.prepare(sql).raw(), want);
        assert.deepEqual(await db.prepare(sql).raw({ columnNames: true }), [["id", "name"], ...want]);
    });

    test("a blob binds as bytes and reads back as an array of bytes", async () => {
        await db.prepare("UPDATE users SET avatar = ? WHERE id = 1").bind(new Uint8Array([0, 1, 254, 255])).run();
        const got = await db.prepare("SELECT avatar, typeof(avatar) AS t FROM users WHERE id = 1").first();
        assert.deepEqual(got, libRows("SELECT avatar, typeof(avatar) AS t FROM users WHERE id = 1")[0]);
        assert.equal(got.t, "blob");
        assert.deepEqual(got.avatar, [0, 1, 254, 255]);
    });

    test("batch runs its statements in order, in one transaction", async () => {
        const rs = await db.batch([
            db.prepare("INSERT INTO users (name) VALUES (?)").bind("Linus"),
            db.prepare("SELECT count(*) AS n FROM users"),
        ]);
        assert.equal(rs.length, 2);
        assert.equal(rs[0].meta.changes, 1);
        assert.deepEqual(rs[1].results, [{ n: 4 }]);
        // A failing statement rolls back the whole batch.
        await assert.rejects(
            db.batch([db.prepare("INSERT INTO users (name) VALUES (?)").bind("Ken"), db.prepare("INSERT INTO nosuch VALUES (1)")]),
            /D1_ERROR: .*no such table: nosuch/,
        );
        assert.deepEqual(libRows("SELECT count(*) AS n FROM users WHERE name = 'Ken'"), [{ n: 0 }]);
    });

    test("an SQL error is thrown as D1_ERROR with the library's message", async () => {
        let libMessage;
        try {
            server.cli("d1", "execute", "--command", "SELECT * FROM nosuch");
        } catch (e) {
            libMessage = JSON.parse(e.stderr).error;
        }
        await assert.rejects(db.prepare("SELECT * FROM nosuch").all(), (e) => e.message.startsWith("D1_ERROR: ") && e.message.includes(libMessage));
    });

    test("a NOT NULL violation changes nothing", async () => {
        await assert.rejects(db.prepare("INSERT INTO users (name) VALUES (?)").bind(null).run(), /NOT NULL/);
        assert.deepEqual(libRows("SELECT count(*) AS n FROM users"), [{ n: 4 }]);
    });

    test("undefined cannot be bound", () => {
        assert.throws(() => db.prepare("SELECT ?").bind(undefined), /D1_TYPE_ERROR/);
    });
});
