// Shared helpers of the real-client checks (wrangler_check.mjs, sdk_check.mjs): run a
// command, read d1vec's own answer through its CLI, compare JSON, and print one line per
// check. A failed check throws; the caller prints what differed and exits non-zero.
import { execFileSync, spawnSync } from "node:child_process";

/** The environment the checks share, from cloudflare_api.sh. */
export const env = {
    d1vec: need("D1VEC_BIN"),
    db: need("D1VEC_DB"),
    work: need("WORK"),
    base: need("CLOUDFLARE_API_BASE_URL"),
    token: need("CLOUDFLARE_API_TOKEN"),
    account: need("CLOUDFLARE_ACCOUNT_ID"),
};

function need(name) {
    const v = process.env[name];
    if (!v) throw new Error(`${name} is not set (run through tests/clients/cloudflare_api.sh)`);
    return v;
}

/** The library's answer: `d1vec --db DB --json ARGS...`, parsed. Throws with stderr on failure. */
export function cli(...args) {
    const r = spawnSync(env.d1vec, ["--db", env.db, "--json", ...args], { cwd: env.work, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`d1vec ${args.join(" ")} exited ${r.status}: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout);
}

/** Runs a program; returns {status, stdout, stderr} (never throws on a non-zero exit). */
export function run(program, args, options = {}) {
    const r = spawnSync(program, args, { cwd: env.work, encoding: "utf8", timeout: 120_000, ...options });
    if (r.error) throw r.error;
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * The JSON value a command printed after its log lines: from the first line that opens a
 * JSON object or array ("{" or "[" alone, or a whole-line value) to the end.
 */
export function jsonTail(text) {
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
        const l = lines[i].trim();
        if (l === "{" || l === "[" || /^[[{].*[\]}]$/.test(l)) {
            try {
                return JSON.parse(lines.slice(i).join("\n"));
            } catch {
                // a log line that merely starts with a bracket: keep looking
            }
        }
    }
    throw new Error(`no JSON in output:\n${text}`);
}

/** A value with every object's keys sorted, so two answers compare by content. */
export function canon(v) {
    if (Array.isArray(v)) return v.map(canon);
    if (v && typeof v === "object") return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])]));
    return v;
}

/**
 * The first difference between two JSON values as "path: got X, want Y", or null when equal.
 * Numbers are equal within `tol` (relative), since scores and values cross f32 and f64.
 */
export function diff(got, want, tol = 1e-6, path = "$") {
    if (typeof got === "number" && typeof want === "number") {
        return Math.abs(got - want) <= tol * Math.max(1, Math.abs(want)) ? null : `${path}: got ${got}, want ${want}`;
    }
    if (Array.isArray(got) !== Array.isArray(want) || typeof got !== typeof want || (got === null) !== (want === null)) {
        return `${path}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`;
    }
    if (Array.isArray(got)) {
        if (got.length !== want.length) return `${path}: got ${got.length} items ${JSON.stringify(got)}, want ${want.length} ${JSON.stringify(want)}`;
        for (let i = 0; i < got.length; i++) {
            const d = diff(got[i], want[i], tol, `${path}[${i}]`);
            if (d) return d;
        }
        return null;
    }
    if (got && typeof got === "object") {
        const keys = new Set([...Object.keys(got), ...Object.keys(want)]);
        for (const k of [...keys].sort()) {
            if (!(k in got)) return `${path}.${k}: missing, want ${JSON.stringify(want[k])}`;
            if (!(k in want)) return `${path}.${k}: unexpected ${JSON.stringify(got[k])}`;
            const d = diff(got[k], want[k], tol, `${path}.${k}`);
            if (d) return d;
        }
        return null;
    }
    return got === want ? null : `${path}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`;
}

/** Throws when `got` differs from `want`, naming the place. */
export function same(got, want, what, tol) {
    const d = diff(got, want, tol);
    if (d) throw new Error(`${what} differs from the library: ${d}`);
}

/** Throws with `message` unless `cond`. */
export function check(cond, message) {
    if (!cond) throw new Error(message);
}

/**
 * Runs the named checks in order, printing "ok   NAME" or "FAIL NAME: why" for each; returns
 * the number that failed. A check may return a string, printed after its name.
 */
export async function runChecks(prefix, checks) {
    let failed = 0;
    for (const [name, fn] of checks) {
        try {
            const note = await fn();
            console.log(`ok   ${prefix}${name}${note ? `  (${note})` : ""}`);
        } catch (e) {
            failed++;
            console.log(`FAIL ${prefix}${name}: ${e.message}`);
        }
    }
    return failed;
}

/** execFileSync that returns stdout (utf8). */
export function sh(program, args, options = {}) {
    return execFileSync(program, args, { cwd: env.work, encoding: "utf8", ...options });
}
