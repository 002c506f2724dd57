// Test support: a `d1vec serve` of its own on a fresh database (binary from env D1VEC_BIN),
// and the library's answers through the d1vec CLI on the same file, as the oracle.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** The d1vec binary, or undefined (the tests then skip). */
export const bin = process.env.D1VEC_BIN;

/**
 * Starts `d1vec serve` on 127.0.0.1:0 with an admin token, after `setup(cli)` prepared the
 * database through the CLI. Resolves once the server names its address.
 */
export async function startServer(setup = () => {}) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "d1vec-bindings-"));
    const db = path.join(dir, "db.sqlite");
    const token = "bindings-test-token";
    /** The library's answer: `d1vec --db DB --json ARGS...`, parsed (throws with stderr). */
    const cli = (...args) => {
        const r = spawnSync(bin, ["--db", db, "--json", ...args], { encoding: "utf8", cwd: dir });
        if (r.status !== 0) {
            const e = new Error(`d1vec ${args.join(" ")} exited ${r.status}: ${r.stderr.trim()}`);
            e.stderr = r.stderr;
            throw e;
        }
        return JSON.parse(r.stdout);
    };
    await setup(cli, dir);
    const child = spawn(bin, ["--db", db, "serve", "--listen", "127.0.0.1:0", "--token", token], { stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    const base = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`d1vec serve named no address in 20 s:\n${log}`)), 20_000);
        const seen = (chunk) => {
            log += chunk;
            const m = log.match(/http:\/\/127\.0\.0\.1:\d+\/client\/v4/);
            if (m) {
                clearTimeout(timer);
                resolve(m[0]);
            }
        };
        child.stdout.on("data", seen);
        child.stderr.on("data", seen);
        child.on("exit", (code) => reject(new Error(`d1vec serve exited ${code} at start:\n${log}`)));
    });
    /** SIGTERM; resolves with the exit code. */
    const stop = () =>
        new Promise((resolve) => {
            if (child.exitCode !== null) return resolve(child.exitCode);
            child.removeAllListeners("exit");
            child.on("exit", (code) => {
                fs.rmSync(dir, { recursive: true, force: true });
                resolve(code);
            });
            child.kill("SIGTERM");
        });
    return { base, token, db, dir, cli, stop };
}

/** A value with every object's keys sorted (answers compare by content, not key order). */
export function canon(v) {
    if (Array.isArray(v)) return v.map(canon);
    if (v && typeof v === "object") return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])]));
    return v;
}

/** `v` with every number rounded to 6 significant digits (f32 values cross JSON as f64). */
export function round(v) {
    if (typeof v === "number") return Number(v.toPrecision(6));
    if (Array.isArray(v)) return v.map(round);
    if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, round(x)]));
    return v;
}
