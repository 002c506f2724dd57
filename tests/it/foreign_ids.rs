//! One answer for foreign ids: on a private index, another tenant's vector ids behave for a
//! tenant exactly as ids that exist nowhere, on every vector call, writes included.
//!
//! The bug: tenant A inserting an id held in tenant B's namespace got a 403 "held outside
//! the tenant's namespace", while `getByIds` of the same id answered `[]`; the refusal told
//! A that the id exists elsewhere. The rule now: on a private index each namespace is its
//! own id space, so B's `x` and A's `x` are two vectors, and A's calls never meet B's.
//!
//! Oracle: two databases that differ only in whether other parties (tenant B, and the admin
//! surface without a namespace and in a third namespace) hold the probe id `x`. Tenant A runs
//! the same script of calls in both, covering every vector call (reads, queries, the SQL
//! function, list-vectors, describe, insert, upsert, delete); the transcripts must be equal,
//! whole, once the mutation ids (random) and times are replaced by their order of
//! appearance. And in the database where B holds `x`, B's vectors, B's view and B's
//! `describe()` must be exactly as before A's script (compared with the admin view).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use d1vec::index::Metric;
use d1vec::vectorize::filter::eval::IndexType;
use d1vec::vectorize::types::{QueryOptions, ReturnMetadata, Vector};
use d1vec::vectorize::{CreateIndex, Scope, VectorIndex};
use d1vec::{Database, Param, TenantSession};
use serde_json::{json, Map, Value};

use crate::cli::d1vec;

const INDEX: &str = "priv";
/// The probe id, and the id the same holders use in the database where `x` exists nowhere.
const PROBE: &str = "x";
const ELSEWHERE: &str = "z";

fn meta(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

const VB: [f64; 4] = [1.0, 0.0, 0.0, 0.0];
const VN: [f64; 4] = [0.0, 1.0, 0.0, 0.0];
const VA: [f64; 4] = [0.9, 0.1, 0.0, 0.1];

/// A database with tenants `ta` and `tb`, the private index, and the other parties'
/// vectors under `held` (the probe id, or an id nobody asks about).
fn world(held: &str) -> Database {
    let db = Database::open_in_memory().unwrap();
    db.apply_bundled().unwrap();
    db.exec("INSERT INTO tenants (tenant_id, name) VALUES ('ta', 'A'), ('tb', 'B')")
        .unwrap();
    db.create_index(&CreateIndex::new(INDEX, 4, Metric::Cosine).scope(Scope::Private))
        .unwrap();
    let admin = db.vectorize(INDEX).unwrap();
    admin
        .create_metadata_index("kind", IndexType::String)
        .unwrap();
    db.tenant("tb")
        .unwrap()
        .vectorize(INDEX)
        .unwrap()
        .upsert(&[
            Vector::new("b1", vec![0.7, 0.7, 0.0, 0.0]),
            Vector::new(held, VB.to_vec()).with_metadata(meta(json!({"kind": "secret"}))),
        ])
        .unwrap();
    admin
        .upsert(&[
            Vector::new(held, VN.to_vec()).with_metadata(meta(json!({"kind": "secret"}))),
            Vector::new(held, vec![0.0, 0.0, 1.0, 0.0]).with_namespace("ns-other"),
        ])
        .unwrap();
    db.tenant("ta")
        .unwrap()
        .vectorize(INDEX)
        .unwrap()
        .upsert(&[
            Vector::new("a1", vec![0.8, 0.2, 0.1, 0.0])
                .with_metadata(meta(json!({"kind": "secret"}))),
            Vector::new("a2", vec![0.1, 0.9, 0.0, 0.2]),
        ])
        .unwrap();
    db
}

/// A call's whole outcome as JSON: `{"ok": response}` or `{"err": {code, message}}`.
fn outcome<T: serde::Serialize>(r: d1vec::Result<T>) -> Value {
    match r {
        Ok(v) => json!({ "ok": serde_json::to_value(v).unwrap() }),
        Err(e) => json!({"err": {"code": e.json_code(), "message": e.to_string()}}),
    }
}

/// Tenant A's script: every vector call, with the probe id where a call takes ids.
fn script(a: &TenantSession) -> Vec<(String, Value)> {
    let ix = a.vectorize(INDEX).unwrap();
    let all = || {
        QueryOptions::new()
            .with_top_k(10)
            .with_values(true)
            .with_metadata(ReturnMetadata::All)
    };
    let mut out: Vec<(String, Value)> = Vec::new();
    let mut rec = |what: &str, v: Value| out.push((what.to_owned(), v));
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let sql = |q: &[f64]| {
        let text = serde_json::to_string(q).unwrap();
        outcome(
            a.prepare("SELECT id, score, namespace FROM vectorize_query(?1, ?2, 10) ORDER BY rank")
                .bind(vec![Param::Text(INDEX.into()), Param::Text(text)])
                .all()
                .map(|r| r.results),
        )
    };
    let reads = |rec: &mut dyn FnMut(&str, Value), when: &str| {
        rec(
            &format!("{when}: get x"),
            outcome(ix.get_by_ids(&ids(&[PROBE]))),
        );
        rec(
            &format!("{when}: get x, a1, x"),
            outcome(ix.get_by_ids(&ids(&[PROBE, "a1", PROBE]))),
        );
        rec(
            &format!("{when}: queryById x"),
            outcome(ix.query_by_id(PROBE, &all())),
        );
        rec(
            &format!("{when}: queryById x in ta"),
            outcome(ix.query_by_id(PROBE, &all().with_namespace("ta"))),
        );
        rec(
            &format!("{when}: query B's values"),
            outcome(ix.query(&VB, &all())),
        );
        rec(
            &format!("{when}: query the admin's values, filtered"),
            outcome(ix.query(&VN, &all().with_filter(json!({"kind": "secret"})))),
        );
        rec(&format!("{when}: vectorize_query"), sql(&VB));
        rec(
            &format!("{when}: list-vectors"),
            outcome(ix.list_vectors(None, None)),
        );
        rec(
            &format!("{when}: list-vectors by 1"),
            outcome(ix.list_vectors(Some(1), None)),
        );
        rec(&format!("{when}: describe"), outcome(ix.describe()));
    };
    reads(&mut rec, "at first");
    rec("delete x", outcome(ix.delete_by_ids(&ids(&[PROBE]))));
    reads(&mut rec, "after delete");
    rec(
        "insert x",
        outcome(ix.insert(&[
            Vector::new(PROBE, VA.to_vec()).with_metadata(meta(json!({"kind": "secret"}))),
        ])),
    );
    reads(&mut rec, "after insert");
    rec(
        "insert x again",
        outcome(ix.insert(&[Vector::new(PROBE, VB.to_vec())])),
    );
    reads(&mut rec, "after a second insert");
    rec(
        "upsert x twice in a batch",
        outcome(ix.upsert(&[
            Vector::new(PROBE, VN.to_vec()),
            Vector::new(PROBE, VB.to_vec()).with_metadata(meta(json!({"kind": "mine"}))),
        ])),
    );
    reads(&mut rec, "after upsert");
    rec(
        "delete x, a2",
        outcome(ix.delete_by_ids(&ids(&[PROBE, "a2"]))),
    );
    reads(&mut rec, "after the last delete");
    out
}

/// Replaces mutation ids, cursors and times by stable tokens: the n-th distinct mutation
/// id seen becomes `mutation-n`, every time and cursor a fixed mark.
fn normalize(v: &mut Value, seen: &mut HashMap<String, usize>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                match (k.as_str(), &*v) {
                    ("mutationId" | "processedUpToMutation", Value::String(s)) => {
                        let n = seen.len();
                        let n = *seen.entry(s.clone()).or_insert(n);
                        *v = json!(format!("mutation-{n}"));
                    }
                    (
                        "processedUpToDatetime" | "cursorExpirationTimestamp" | "nextCursor",
                        Value::String(_),
                    ) => {
                        *v = json!("<present>");
                    }
                    _ => normalize(v, seen),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|v| normalize(v, seen)),
        _ => {}
    }
}

/// What B and the admin surface see of the other parties' vectors.
fn others_view(db: &Database, held: &str) -> Value {
    let b = db.tenant("tb").unwrap();
    let bx = b.vectorize(INDEX).unwrap();
    json!({
        "admin": outcome(db.vectorize(INDEX).unwrap().get_by_ids(&[held.into(), "b1".into()])),
        "b get": outcome(bx.get_by_ids(&[held.into(), "b1".into()])),
        "b describe": outcome(bx.describe()),
        "b query": outcome(bx.query(&VB, &QueryOptions::new().with_top_k(10).with_metadata(ReturnMetadata::All))),
        "b list": outcome(bx.list_vectors(None, None)),
    })
}

#[test]
fn another_tenants_ids_answer_exactly_as_ids_that_exist_nowhere() {
    let foreign = world(PROBE);
    let nowhere = world(ELSEWHERE);
    let before = others_view(&foreign, PROBE);
    let a_foreign = script(&foreign.tenant("ta").unwrap());
    let a_nowhere = script(&nowhere.tenant("ta").unwrap());
    assert_eq!(a_foreign.len(), a_nowhere.len());
    let (mut seen_f, mut seen_n) = (HashMap::new(), HashMap::new());
    for ((what, f), (_, n)) in a_foreign.into_iter().zip(a_nowhere) {
        let (mut f, mut n) = (f, n);
        normalize(&mut f, &mut seen_f);
        normalize(&mut n, &mut seen_n);
        assert_eq!(
            f, n,
            "{what}: tenant A can tell that another party holds `{PROBE}`"
        );
    }
    // Writes went somewhere: A's own vector, in A's namespace (checked in the transcript
    // too: the reads after "insert x" return it).
    assert!(
        seen_f.len() >= 5,
        "the script's writes returned mutation ids"
    );
    // B's vectors, B's view and B's describe() are exactly as before A's script.
    assert_eq!(
        others_view(&foreign, PROBE),
        before,
        "A's calls changed what B or the admin surface see"
    );
    // The admin surface sees every namespace's `x` (A deleted its own at the end).
    let admin = foreign.vectorize(INDEX).unwrap();
    let held: Vec<Option<String>> = admin
        .get_by_ids(&[PROBE.into()])
        .unwrap()
        .into_iter()
        .map(|v| v.namespace)
        .collect();
    assert_eq!(held, [None, Some("ns-other".into()), Some("tb".into())]);
}

#[test]
fn a_tenants_own_id_lives_beside_another_tenants_same_id() {
    let db = world(PROBE);
    let a = db.tenant("ta").unwrap().vectorize(INDEX).unwrap();
    let b = db.tenant("tb").unwrap().vectorize(INDEX).unwrap();
    a.insert(&[Vector::new(PROBE, VA.to_vec())]).unwrap();
    let mine = a.get_by_ids(&[PROBE.into()]).unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].namespace.as_deref(), Some("ta"));
    assert_eq!(
        mine[0].values,
        VA.iter().map(|&x| f64::from(x as f32)).collect::<Vec<_>>()
    );
    let theirs = b.get_by_ids(&[PROBE.into()]).unwrap();
    assert_eq!(theirs[0].values, VB.to_vec());
    // queryById finds each tenant's own `x`: the best match is itself.
    let top = |ix: &VectorIndex| {
        ix.query_by_id(PROBE, &QueryOptions::new().with_top_k(1))
            .unwrap()
            .matches[0]
            .clone()
    };
    assert_eq!(
        (top(&a).id, top(&a).namespace),
        (PROBE.into(), Some("ta".into()))
    );
    assert_eq!(
        (top(&b).id, top(&b).namespace),
        (PROBE.into(), Some("tb".into()))
    );
    // Deleting A's `x` leaves B's.
    a.delete_by_ids(&[PROBE.into()]).unwrap();
    assert!(a.get_by_ids(&[PROBE.into()]).unwrap().is_empty());
    assert_eq!(b.get_by_ids(&[PROBE.into()]).unwrap().len(), 1);
}

#[test]
fn the_admin_surface_on_a_private_index_addresses_ids_per_namespace() {
    let db = world(PROBE);
    let admin = db.vectorize(INDEX).unwrap();
    // queryById: the namespace option picks one; without it, an id in several is refused
    // with the namespaces named; an id in one namespace needs no option.
    let e = admin.query_by_id(PROBE, &QueryOptions::new()).unwrap_err();
    assert_eq!(e.json_code(), 40032, "{e}");
    assert!(e.to_string().contains("ns-other, tb"), "{e}");
    let in_tb = admin
        .query_by_id(
            PROBE,
            &QueryOptions::new().with_top_k(1).with_namespace("tb"),
        )
        .unwrap();
    assert_eq!(in_tb.matches[0].namespace.as_deref(), Some("tb"));
    assert_eq!(
        admin
            .query_by_id("b1", &QueryOptions::new().with_top_k(1))
            .unwrap()
            .matches[0]
            .id,
        "b1"
    );
    // An admin upsert addresses (namespace, id): moving `x` to tb replaces tb's only.
    admin
        .upsert(&[Vector::new(PROBE, VA.to_vec()).with_namespace("tb")])
        .unwrap();
    let b = db.tenant("tb").unwrap().vectorize(INDEX).unwrap();
    let now: Vec<(Option<String>, Vec<f64>)> = admin
        .get_by_ids(&[PROBE.into()])
        .unwrap()
        .into_iter()
        .map(|v| (v.namespace, v.values))
        .collect();
    let f32s = |v: &[f64]| v.iter().map(|&x| f64::from(x as f32)).collect::<Vec<_>>();
    assert_eq!(
        now,
        [
            (None, VN.to_vec()),
            (Some("ns-other".into()), vec![0.0, 0.0, 1.0, 0.0]),
            (Some("tb".into()), f32s(&VA)),
        ]
    );
    assert_eq!(b.get_by_ids(&[PROBE.into()]).unwrap()[0].values, f32s(&VA));
    // An admin delete removes the id from every namespace.
    admin.delete_by_ids(&[PROBE.into()]).unwrap();
    assert!(admin.get_by_ids(&[PROBE.into()]).unwrap().is_empty());
    assert_eq!(admin.describe().unwrap().vector_count, 3, "b1, a1, a2");
}

/// `describe()` in a session: the count and the last mutation are the tenant's own. Other
/// tenants' writes never move them; the tenant's own calls (a delete of nothing included)
/// and admin writes into its namespace do; before any, they are `null`.
#[test]
fn describe_in_a_session_moves_only_with_the_tenants_namespace() {
    let db = Database::open_in_memory().unwrap();
    db.apply_bundled().unwrap();
    db.exec("INSERT INTO tenants (tenant_id, name) VALUES ('ta', 'A'), ('tb', 'B')")
        .unwrap();
    db.create_index(&CreateIndex::new(INDEX, 4, Metric::Cosine).scope(Scope::Private))
        .unwrap();
    let a = db.tenant("ta").unwrap().vectorize(INDEX).unwrap();
    let b = db.tenant("tb").unwrap().vectorize(INDEX).unwrap();
    let admin = db.vectorize(INDEX).unwrap();
    let info = |ix: &VectorIndex| {
        let d = ix.describe().unwrap();
        (
            d.vector_count,
            d.processed_up_to_mutation,
            d.processed_up_to_datetime.is_some(),
        )
    };
    assert_eq!(info(&a), (0, None, false));
    let b_write = b
        .upsert(&[Vector::new("b1", VB.to_vec())])
        .unwrap()
        .mutation_id;
    assert_eq!(info(&a), (0, None, false), "B's write moved A's describe()");
    assert_eq!(info(&b), (1, Some(b_write.clone()), true));
    let a_write = a
        .upsert(&[Vector::new("a1", VA.to_vec())])
        .unwrap()
        .mutation_id;
    assert_eq!(info(&a), (1, Some(a_write), true));
    let a_noop = a.delete_by_ids(&["nothing".into()]).unwrap().mutation_id;
    assert_eq!(
        info(&a),
        (1, Some(a_noop.clone()), true),
        "a tenant sees its own call processed"
    );
    assert_eq!(
        info(&b),
        (1, Some(b_write.clone()), true),
        "A's calls moved B's describe()"
    );
    // Admin writes: into A's namespace they count for A; elsewhere, for nobody but the index.
    let elsewhere = admin
        .upsert(&[Vector::new("n1", VN.to_vec()).with_namespace("ns-other")])
        .unwrap()
        .mutation_id;
    assert_eq!(info(&a), (1, Some(a_noop), true));
    assert_eq!(info(&admin).1, Some(elsewhere));
    let into_a = admin
        .upsert(&[Vector::new("a2", VN.to_vec()).with_namespace("ta")])
        .unwrap()
        .mutation_id;
    assert_eq!(info(&a), (2, Some(into_a.clone()), true));
    let indexed = admin
        .create_metadata_index("kind", IndexType::String)
        .unwrap()
        .mutation_id;
    assert_eq!(
        info(&a),
        (2, Some(into_a), true),
        "a metadata index touches no namespace"
    );
    // The admin surface reports the whole index: every vector, the last mutation of all.
    assert_eq!(info(&admin), (4, Some(indexed), true));
    assert_eq!(info(&b).1.as_deref(), Some(b_write.as_str()));
}

/// The reproduction on the command line: `insert` of an id held in another tenant's
/// namespace answers as an insert of an id that exists nowhere, and so does every other
/// command on it (outputs compared whole, mutation ids and times normalised).
#[test]
fn cli_answers_the_same_for_a_foreign_id_and_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let run_world = |name: &str, held: &str| -> Vec<Value> {
        let path = dir.path().join(format!("{name}.sqlite"));
        {
            let db = Database::open(&path).unwrap();
            db.apply_bundled().unwrap();
            db.exec("INSERT INTO tenants (tenant_id, name) VALUES ('ta', 'A'), ('tb', 'B')")
                .unwrap();
            db.create_index(&CreateIndex::new(INDEX, 4, Metric::Cosine).scope(Scope::Private))
                .unwrap();
        }
        let file = |vs: Value| {
            let p = dir
                .path()
                .join(format!("{name}-{}.ndjson", vs["id"].as_str().unwrap()));
            let mut f = std::fs::File::create(&p).unwrap();
            writeln!(f, "{vs}").unwrap();
            p
        };
        let b_file = file(json!({"id": held, "values": VB}));
        let ok = |args: &[&str]| -> Value {
            let out = d1vec(&path, args);
            json!({
                "status": out.status.success(),
                "stdout": serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null),
                "stderr": String::from_utf8_lossy(&out.stderr),
            })
        };
        let b_insert = ok(&[
            "--json",
            "--tenant",
            "tb",
            "vectorize",
            "insert",
            INDEX,
            "--file",
            b_file.to_str().unwrap(),
        ]);
        assert_eq!(b_insert["status"], true, "{b_insert}");
        let a_file = file(json!({"id": PROBE, "values": VA}));
        let a = |args: &[&str]| {
            let mut all = vec!["--json", "--tenant", "ta", "vectorize"];
            all.extend_from_slice(args);
            ok(&all)
        };
        vec![
            a(&["get-vectors", INDEX, "--ids", PROBE]),
            a(&["query", INDEX, "--vector-id", PROBE]),
            a(&["delete-vectors", INDEX, "--ids", PROBE]),
            a(&["insert", INDEX, "--file", a_file.to_str().unwrap()]),
            a(&["get-vectors", INDEX, "--ids", PROBE]),
            a(&["query", INDEX, "--vector-id", PROBE, "--return-values"]),
            a(&["upsert", INDEX, "--file", a_file.to_str().unwrap()]),
            a(&["list-vectors", INDEX]),
            a(&["info", INDEX]),
        ]
    };
    let foreign = run_world("foreign", PROBE);
    let inserted = foreign[3].clone();
    let nowhere = run_world("nowhere", ELSEWHERE);
    let (mut seen_f, mut seen_n) = (HashMap::new(), HashMap::new());
    for (i, (mut f, mut n)) in foreign.into_iter().zip(nowhere).enumerate() {
        normalize(&mut f, &mut seen_f);
        normalize(&mut n, &mut seen_n);
        normalize_ids(&mut f);
        normalize_ids(&mut n);
        assert_eq!(f, n, "command {i}");
    }
    assert_eq!(
        inserted["status"], true,
        "A's insert of `x` failed: {inserted}"
    );
}

/// The CLI prints `mutationIds` as a list: normalise those too.
fn normalize_ids(v: &mut Value) {
    if let Some(ids) = v
        .get_mut("stdout")
        .and_then(|s| s.get_mut("mutationIds"))
        .and_then(Value::as_array_mut)
    {
        for id in ids {
            *id = json!("<mutation>");
        }
    }
}

/// The version-1 tables, as d1vec wrote them before ids were per namespace.
const V1_SCHEMA: &str = "
CREATE TABLE d1vec_indexes (index_id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT,
    dimensions INTEGER NOT NULL, metric TEXT NOT NULL, scope TEXT NOT NULL CHECK (scope IN ('private', 'shared')),
    created_on TEXT NOT NULL, modified_on TEXT NOT NULL, next_vid INTEGER NOT NULL DEFAULT 1,
    seq INTEGER NOT NULL DEFAULT 0, last_mutation TEXT, last_mutation_at TEXT);
CREATE TABLE d1vec_vectors (index_id INTEGER NOT NULL, vid INTEGER NOT NULL, id TEXT NOT NULL, namespace TEXT,
    vals BLOB NOT NULL, metadata TEXT, seq INTEGER NOT NULL, PRIMARY KEY (index_id, vid));
CREATE UNIQUE INDEX d1vec_vectors_id ON d1vec_vectors (index_id, id);
CREATE INDEX d1vec_vectors_ns ON d1vec_vectors (index_id, namespace, vid);
CREATE TABLE d1vec_tombstones (index_id INTEGER NOT NULL, vid INTEGER NOT NULL, id TEXT NOT NULL, namespace TEXT,
    row_seq INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (index_id, vid));
CREATE TABLE d1vec_metadata_indexes (index_id INTEGER NOT NULL, property TEXT NOT NULL,
    index_type TEXT NOT NULL CHECK (index_type IN ('string', 'number', 'boolean')),
    created_seq INTEGER NOT NULL, PRIMARY KEY (index_id, property));
CREATE TABLE d1vec_meta_values (index_id INTEGER NOT NULL, property TEXT NOT NULL, vid INTEGER NOT NULL, val,
    PRIMARY KEY (index_id, property, vid));
CREATE INDEX d1vec_meta_values_val ON d1vec_meta_values (index_id, property, val, vid);
CREATE TABLE d1vec_mutations (index_id INTEGER NOT NULL, seq INTEGER NOT NULL, mutation_id TEXT NOT NULL,
    kind TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (index_id, seq));
INSERT INTO d1vec_indexes VALUES (1, 'priv', NULL, 2, 'cosine', 'private', '2026-01-01T00:00:00.000Z',
    '2026-01-01T00:00:03.000Z', 4, 3, 'm3', '2026-01-01T00:00:03.000Z');
INSERT INTO d1vec_indexes VALUES (2, 'pub', NULL, 2, 'cosine', 'shared', '2026-01-01T00:00:00.000Z',
    '2026-01-01T00:00:00.000Z', 2, 1, 'p1', '2026-01-01T00:00:00.000Z');
INSERT INTO d1vec_mutations VALUES (1, 1, 'm1', 'upsert', '2026-01-01T00:00:01.000Z'),
    (1, 2, 'm2', 'upsert', '2026-01-01T00:00:02.000Z'), (1, 3, 'm3', 'delete', '2026-01-01T00:00:03.000Z'),
    (2, 1, 'p1', 'upsert', '2026-01-01T00:00:00.000Z');
INSERT INTO d1vec_vectors VALUES (1, 1, 'x', 'ta', x'0000803f00000000', NULL, 1),
    (1, 2, 'y', 'tb', x'000000000000803f', NULL, 2), (2, 1, 'x', NULL, x'0000803f00000000', NULL, 1);
INSERT INTO d1vec_tombstones VALUES (1, 3, 'gone', 'tb', 2, 3);
";

fn open_raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

/// A version-1 database (one id space per index) upgrades in place on first use: every
/// vector stays readable, private namespaces become id spaces, describe() per namespace is
/// rebuilt from the rows; a database of a newer version is refused and left untouched.
#[test]
fn version_1_tables_upgrade_and_newer_ones_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite");
    open_raw(&path).execute_batch(V1_SCHEMA).unwrap();
    let db = Database::open(&path).unwrap();
    db.apply_bundled().unwrap();
    db.exec("INSERT INTO tenants (tenant_id, name) VALUES ('ta', 'A'), ('tb', 'B')")
        .unwrap();
    let admin = db.vectorize("priv").unwrap();
    let got: Vec<(String, Option<String>)> = admin
        .get_by_ids(&["x".into(), "y".into()])
        .unwrap()
        .into_iter()
        .map(|v| (v.id, v.namespace))
        .collect();
    assert_eq!(
        got,
        [
            ("x".into(), Some("ta".into())),
            ("y".into(), Some("tb".into()))
        ]
    );
    let version: i64 = open_raw(&path)
        .query_row(
            "SELECT version FROM d1vec_versions WHERE component = 'vector_tables'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, 2);
    // Per-namespace describe(), rebuilt from the rows: ta's vector came with m1, tb's last
    // change is the delete m3 (its tombstone).
    let tb = db.tenant("tb").unwrap().vectorize("priv").unwrap();
    let ta = db.tenant("ta").unwrap().vectorize("priv").unwrap();
    assert_eq!(
        ta.describe().unwrap().processed_up_to_mutation.as_deref(),
        Some("m1")
    );
    assert_eq!(
        tb.describe().unwrap().processed_up_to_mutation.as_deref(),
        Some("m3")
    );
    // tb can now hold an `x` of its own; ta's is untouched.
    tb.insert(&[Vector::new("x", vec![0.0, 1.0])]).unwrap();
    assert_eq!(ta.get_by_ids(&["x".into()]).unwrap()[0].values, [1.0, 0.0]);
    assert_eq!(tb.get_by_ids(&["x".into()]).unwrap()[0].values, [0.0, 1.0]);
    // The shared index keeps one id space: an insert of `x` in a namespace keeps the old.
    let public = db.vectorize("pub").unwrap();
    public
        .insert(&[Vector::new("x", vec![0.0, 1.0]).with_namespace("n")])
        .unwrap();
    let px = public.get_by_ids(&["x".into()]).unwrap();
    assert_eq!(px.len(), 1);
    assert_eq!(
        (px[0].namespace.clone(), px[0].values.clone()),
        (None, vec![1.0, 0.0])
    );
    drop((admin, public, ta, tb, db));

    // A newer version: refused with an error naming it, nothing changed or deleted.
    open_raw(&path)
        .execute(
            "UPDATE d1vec_versions SET version = 3 WHERE component = 'vector_tables'",
            [],
        )
        .unwrap();
    let count = |p: &Path| -> i64 {
        open_raw(p)
            .query_row("SELECT count(*) FROM d1vec_vectors", [], |r| r.get(0))
            .unwrap()
    };
    let rows = count(&path);
    let db = Database::open(&path).unwrap();
    let e = db.vectorize("priv").unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("format version 3") && text.contains("newer d1vec"),
        "{text}"
    );
    assert!(db.list_indexes().is_err(), "every vector call is refused");
    assert_eq!(count(&path), rows, "the newer tables were changed");
    let version: i64 = open_raw(&path)
        .query_row("SELECT version FROM d1vec_versions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
}
