/**
 * Workers' `Vectorize` (`VectorizeIndex`) and `D1Database` binding interfaces over
 * `d1vec serve`, which speaks Cloudflare's v4 REST API on localhost. Code written against the
 * bindings a Worker receives in `env` runs unchanged in node scripts and tests:
 *
 * ```ts
 * const cf = d1vecBindings({ baseUrl: "http://127.0.0.1:8787/client/v4", token: "t" });
 * const env = { VECTORIZE: cf.vectorize("docs"), DB: cf.d1("my-db") };
 * ```
 *
 * Each method is one REST call (a D1 batch is one call, run by the server in one
 * transaction). Pointed at `https://api.cloudflare.com/client/v4` with a real account id and
 * token, the same code reaches hosted D1 and Vectorize.
 */

/** Where the server is and how to authenticate. */
export interface D1vecOptions {
    /** The API base, e.g. `http://127.0.0.1:8787/client/v4` (as wrangler's `CLOUDFLARE_API_BASE_URL`). */
    baseUrl: string;
    /** The account id in the paths; `d1vec serve` accepts any. Default `"local"`. */
    accountId?: string;
    /** The bearer token (`d1vec serve --token`, or a tenant-bound token). */
    token?: string;
    /** The fetch to use; default the global one (node >= 18). */
    fetch?: typeof fetch;
}

/** The two binding factories. */
export interface D1vecBindings {
    /** The `Vectorize` binding of the index `name`. */
    vectorize(name: string): Vectorize;
    /** The `D1Database` binding of the database `id` (its uuid; `d1vec serve` also takes its name). */
    d1(id: string): D1Database;
}

/** A Cloudflare API error: the HTTP status and the envelope's `errors`. */
export class CloudflareApiError extends Error {
    /** The HTTP status of the answer. */
    readonly status: number;
    /** The first error's code (e.g. Vectorize's 40xxx), or 0 when the answer had none. */
    readonly code: number;
    /** Every `{code, message}` the envelope carried. */
    readonly errors: { code: number; message: string }[];

    constructor(message: string, status: number, errors: { code: number; message: string }[]) {
        super(message);
        this.name = "CloudflareApiError";
        this.status = status;
        this.code = errors[0]?.code ?? 0;
        this.errors = errors;
    }
}

/** Makes the bindings for one server (or Cloudflare account). */
export function d1vecBindings(options: D1vecOptions): D1vecBindings {
    const api = new Api(options);
    return {
        vectorize: (name) => new VectorizeBinding(api, name),
        d1: (id) => new D1DatabaseBinding(api, id),
    };
}

// ---------------------------------------------------------------------------------------
// Transport

class Api {
    private readonly root: string;
    private readonly headers: Record<string, string>;
    private readonly fetchFn: typeof fetch;

    constructor(options: D1vecOptions) {
        if (!options.baseUrl) throw new TypeError("d1vecBindings: baseUrl is required");
        const account = encodeURIComponent(options.accountId ?? "local");
        this.root = `${options.baseUrl.replace(/\/+$/, "")}/accounts/${account}`;
        this.headers = options.token ? { authorization: `Bearer ${options.token}` } : {};
        this.fetchFn = options.fetch ?? globalThis.fetch;
        if (typeof this.fetchFn !== "function") throw new TypeError("d1vecBindings: no fetch (node >= 18, or pass options.fetch)");
    }

    /** One call; returns the envelope's `result`, or throws CloudflareApiError. */
    async call<T>(method: string, path: string, body?: { json: unknown } | { ndjson: string }): Promise<T> {
        const headers: Record<string, string> = { ...this.headers };
        let payload: string | undefined;
        if (body && "json" in body) {
            headers["content-type"] = "application/json";
            payload = JSON.stringify(body.json);
        } else if (body) {
            headers["content-type"] = "application/x-ndjson";
            payload = body.ndjson;
        }
        const response = await this.fetchFn(`${this.root}${path}`, { method, headers, body: payload });
        const text = await response.text();
        let envelope: { success?: boolean; result?: unknown; errors?: { code: number; message: string }[] };
        try {
            envelope = JSON.parse(text);
        } catch {
            throw new CloudflareApiError(`${method} ${path}: HTTP ${response.status}, not JSON: ${text.slice(0, 200)}`, response.status, []);
        }
        if (!response.ok || envelope.success !== true) {
            const errors = Array.isArray(envelope.errors) ? envelope.errors : [];
            const first = errors[0];
            const what = first ? `${first.message} (code ${first.code})` : `HTTP ${response.status}`;
            throw new CloudflareApiError(what, response.status, errors);
        }
        return envelope.result as T;
    }
}

const seg = encodeURIComponent;

// ---------------------------------------------------------------------------------------
// Vectorize (the shapes of @cloudflare/workers-types' `Vectorize`, V2)

/** A vector's metadata value. */
export type VectorizeVectorMetadataValue = string | number | boolean | string[];
/** A vector's metadata. */
export type VectorizeVectorMetadata = VectorizeVectorMetadataValue | Record<string, VectorizeVectorMetadataValue>;
/** Float arrays a vector may be given as. */
export type VectorFloatArray = Float32Array | Float64Array;
/** A vector to insert or upsert, or one read back. */
export interface VectorizeVector {
    id: string;
    values: VectorFloatArray | number[];
    namespace?: string;
    metadata?: Record<string, VectorizeVectorMetadata>;
}
/** How much metadata a query returns. */
export type VectorizeMetadataRetrievalLevel = "all" | "indexed" | "none";
/** A metadata filter (`{"field": value}` or `{"field": {"$op": value}}`). */
export type VectorizeVectorMetadataFilter = Record<string, unknown>;
/** Query options, as the binding takes them. */
export interface VectorizeQueryOptions {
    topK?: number;
    namespace?: string;
    returnValues?: boolean;
    returnMetadata?: boolean | VectorizeMetadataRetrievalLevel;
    filter?: VectorizeVectorMetadataFilter;
}
/** One match of a query. */
export interface VectorizeMatch {
    id: string;
    score: number;
    values?: number[];
    namespace?: string;
    metadata?: Record<string, VectorizeVectorMetadata>;
}
/** A query's answer. */
export interface VectorizeMatches {
    count: number;
    matches: VectorizeMatch[];
}
/** A write's answer: its mutation id. */
export interface VectorizeAsyncMutation {
    mutationId: string;
}
/** `describe()`'s answer (the REST API's `info`). */
export interface VectorizeIndexInfo {
    vectorCount: number;
    dimensions: number;
    processedUpToDatetime: string | number | null;
    processedUpToMutation: string | number | null;
}
/** The Workers Vectorize binding. */
export interface Vectorize {
    describe(): Promise<VectorizeIndexInfo>;
    query(vector: VectorFloatArray | number[], options?: VectorizeQueryOptions): Promise<VectorizeMatches>;
    queryById(vectorId: string, options?: VectorizeQueryOptions): Promise<VectorizeMatches>;
    insert(vectors: VectorizeVector[]): Promise<VectorizeAsyncMutation>;
    upsert(vectors: VectorizeVector[]): Promise<VectorizeAsyncMutation>;
    deleteByIds(ids: string[]): Promise<VectorizeAsyncMutation>;
    getByIds(ids: string[]): Promise<VectorizeVector[]>;
}
/** The legacy name of the same binding. */
export type VectorizeIndex = Vectorize;

class VectorizeBinding implements Vectorize {
    private readonly base: string;

    constructor(
        private readonly api: Api,
        name: string,
    ) {
        this.base = `/vectorize/v2/indexes/${seg(name)}`;
    }

    describe(): Promise<VectorizeIndexInfo> {
        return this.api.call("GET", `${this.base}/info`);
    }

    query(vector: VectorFloatArray | number[], options: VectorizeQueryOptions = {}): Promise<VectorizeMatches> {
        return this.api.call("POST", `${this.base}/query`, { json: { ...queryBody(options), vector: Array.from(vector) } });
    }

    queryById(vectorId: string, options: VectorizeQueryOptions = {}): Promise<VectorizeMatches> {
        return this.api.call("POST", `${this.base}/query`, { json: { ...queryBody(options), vectorId } });
    }

    insert(vectors: VectorizeVector[]): Promise<VectorizeAsyncMutation> {
        return this.api.call("POST", `${this.base}/insert`, { ndjson: toNdjson(vectors) });
    }

    upsert(vectors: VectorizeVector[]): Promise<VectorizeAsyncMutation> {
        return this.api.call("POST", `${this.base}/upsert`, { ndjson: toNdjson(vectors) });
    }

    deleteByIds(ids: string[]): Promise<VectorizeAsyncMutation> {
        return this.api.call("POST", `${this.base}/delete_by_ids`, { json: { ids } });
    }

    getByIds(ids: string[]): Promise<VectorizeVector[]> {
        return this.api.call("POST", `${this.base}/get_by_ids`, { json: { ids } });
    }
}

/** The REST body of a query's options; the binding's boolean `returnMetadata` maps to all/none. */
function queryBody(options: VectorizeQueryOptions): Record<string, unknown> {
    const body: Record<string, unknown> = {};
    if (options.topK !== undefined) body.topK = options.topK;
    if (options.namespace !== undefined) body.namespace = options.namespace;
    if (options.returnValues !== undefined) body.returnValues = options.returnValues;
    if (options.returnMetadata !== undefined) {
        body.returnMetadata = options.returnMetadata === true ? "all" : options.returnMetadata === false ? "none" : options.returnMetadata;
    }
    if (options.filter !== undefined) body.filter = options.filter;
    return body;
}

function toNdjson(vectors: VectorizeVector[]): string {
    if (!Array.isArray(vectors)) throw new TypeError("Vectorize: vectors must be an array");
    return vectors.map((v) => JSON.stringify({ ...v, values: Array.from(v.values) })).join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------
// D1 (the shapes of @cloudflare/workers-types' `D1Database`)

/** A result's `meta`, as D1 reports it. */
export interface D1Meta {
    duration: number;
    size_after: number;
    rows_read: number;
    rows_written: number;
    last_row_id: number;
    changed_db: boolean;
    changes: number;
    served_by_region?: string;
    served_by_primary?: boolean;
    timings?: { sql_duration_ms: number };
    total_attempts?: number;
    [key: string]: unknown;
}
/** One statement's result. */
export interface D1Result<T = Record<string, unknown>> {
    results: T[];
    success: true;
    meta: D1Meta;
}
/** `exec()`'s answer. */
export interface D1ExecResult {
    count: number;
    duration: number;
}
/** The Workers D1 binding. */
export interface D1Database {
    prepare(query: string): D1PreparedStatement;
    batch<T = unknown>(statements: D1PreparedStatement[]): Promise<D1Result<T>[]>;
    exec(query: string): Promise<D1ExecResult>;
}
/** A statement with its bound values. */
export interface D1PreparedStatement {
    bind(...values: unknown[]): D1PreparedStatement;
    first<T = unknown>(colName: string): Promise<T | null>;
    first<T = Record<string, unknown>>(): Promise<T | null>;
    run<T = Record<string, unknown>>(): Promise<D1Result<T>>;
    all<T = Record<string, unknown>>(): Promise<D1Result<T>>;
    raw<T = unknown[]>(options: { columnNames: true }): Promise<[string[], ...T[]]>;
    raw<T = unknown[]>(options?: { columnNames?: false }): Promise<T[]>;
}

class D1DatabaseBinding implements D1Database {
    readonly base: string;

    constructor(
        readonly api: Api,
        id: string,
    ) {
        this.base = `/d1/database/${seg(id)}`;
    }

    prepare(query: string): D1PreparedStatement {
        return new D1Statement(this, query, []);
    }

    async batch<T = unknown>(statements: D1PreparedStatement[]): Promise<D1Result<T>[]> {
        if (!Array.isArray(statements) || statements.length === 0) return [];
        const batch = statements.map((s) => {
            if (!(s instanceof D1Statement) || s.db !== this) throw new TypeError("D1_ERROR: batch() takes statements prepared on this database");
            return s.body();
        });
        return d1Call(this, "query", { batch });
    }

    async exec(query: string): Promise<D1ExecResult> {
        const results = await d1Call<D1Result[]>(this, "query", { sql: query });
        return { count: results.length, duration: results.reduce((sum, r) => sum + (r.meta?.duration ?? 0), 0) };
    }
}

class D1Statement implements D1PreparedStatement {
    constructor(
        readonly db: D1DatabaseBinding,
        private readonly sql: string,
        private readonly params: unknown[],
    ) {}

    bind(...values: unknown[]): D1PreparedStatement {
        return new D1Statement(this.db, this.sql, values.map(bindValue));
    }

    /** The REST body of this statement. */
    body(): { sql: string; params?: unknown[] } {
        return this.params.length ? { sql: this.sql, params: this.params } : { sql: this.sql };
    }

    async all<T = Record<string, unknown>>(): Promise<D1Result<T>> {
        const results = await d1Call<D1Result<T>[]>(this.db, "query", this.body());
        const last = results[results.length - 1];
        if (!last) throw new Error("D1_ERROR: the server answered no result");
        return last;
    }

    run<T = Record<string, unknown>>(): Promise<D1Result<T>> {
        return this.all<T>();
    }

    first<T = unknown>(colName: string): Promise<T | null>;
    first<T = Record<string, unknown>>(): Promise<T | null>;
    async first<T>(colName?: string): Promise<T | null> {
        const { results } = await this.all<Record<string, unknown>>();
        const row = results[0];
        if (row === undefined) return null;
        if (colName === undefined) return row as T;
        if (!(colName in row)) throw new Error(`D1_COLUMN_NOTFOUND: Column not found (${colName})`);
        return row[colName] as T;
    }

    raw<T = unknown[]>(options: { columnNames: true }): Promise<[string[], ...T[]]>;
    raw<T = unknown[]>(options?: { columnNames?: false }): Promise<T[]>;
    async raw<T>(options?: { columnNames?: boolean }): Promise<T[] | [string[], ...T[]]> {
        const results = await d1Call<{ results: { columns: string[]; rows: T[] } }[]>(this.db, "raw", this.body());
        const last = results[results.length - 1];
        if (!last) throw new Error("D1_ERROR: the server answered no result");
        const { columns, rows } = last.results;
        return options?.columnNames ? [columns, ...rows] : rows;
    }
}

/** A value as D1's binding takes it: booleans become 1/0, byte arrays arrays of bytes. */
function bindValue(value: unknown): unknown {
    if (value === null || typeof value === "number" || typeof value === "string") return value;
    if (typeof value === "boolean") return value ? 1 : 0;
    if (typeof value === "bigint") return Number(value);
    if (value instanceof ArrayBuffer) return Array.from(new Uint8Array(value));
    if (ArrayBuffer.isView(value)) return Array.from(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
    throw new TypeError(`D1_TYPE_ERROR: Type '${typeof value}' not supported for value '${String(value)}'`);
}

/** A D1 call; a refusal is thrown as D1 does, `D1_ERROR: <message>` (with `cause`). */
async function d1Call<T>(db: D1DatabaseBinding, action: "query" | "raw", body: unknown): Promise<T> {
    try {
        return await db.api.call<T>("POST", `${db.base}/${action}`, { json: body });
    } catch (e) {
        if (e instanceof CloudflareApiError) {
            const message = e.errors[0]?.message ?? e.message;
            throw new Error(message.startsWith("D1_") ? message : `D1_ERROR: ${message}`, { cause: e });
        }
        throw e;
    }
}
