//! The read path asks SQLite only for what the answer returns, and never answers older than
//! a write that returned before the query began.
//!
//! Statement counts come from `Stats::sql_statements` (SQLite's statement trace on every
//! connection of the database). Oracle for every answer: brute-force cosine over the
//! vectors the test knows are stored (a model kept beside the writes), ties by id.

use std::collections::BTreeMap;
use std::io::Write;

use d1vec::index::Metric;
use d1vec::vectorize::types::{QueryOptions, ReturnMetadata, Vector};
use d1vec::vectorize::CreateIndex;
use d1vec::Database;
use serde_json::json;

use crate::cli::ok_json;
use crate::oracle::cosine;

const DIMS: usize = 8;

fn vector(seed: u64) -> Vec<f64> {
    crate::oracle::seeded_vector(seed, DIMS)
}

/// What the test knows is stored: id -> (namespace, values).
type Model = BTreeMap<String, (Option<String>, Vec<f64>)>;

/// The ids brute force ranks first for `q`, within `namespace` if given.
fn brute(model: &Model, q: &[f64], k: usize, namespace: Option<&str>) -> Vec<String> {
    let mut all: Vec<(f64, &String)> = model
        .iter()
        .filter(|(_, (ns, _))| namespace.is_none() || ns.as_deref() == namespace)
        .map(|(id, (_, v))| (cosine(q, v), id))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    all.into_iter().take(k).map(|(_, id)| id.clone()).collect()
}

fn ids(m: &d1vec::vectorize::types::Matches) -> Vec<String> {
    m.matches.iter().map(|m| m.id.clone()).collect()
}

fn options(k: usize) -> QueryOptions {
    QueryOptions {
        top_k: k,
        ..QueryOptions::default()
    }
}

fn seed(db: &Database, n: u64) -> Model {
    db.create_index(&CreateIndex::new("r", DIMS, Metric::Cosine))
        .unwrap();
    let index = db.vectorize("r").unwrap();
    let mut model = Model::new();
    let batch: Vec<Vector> = (0..n)
        .map(|i| {
            let ns = if i % 3 == 0 { "a" } else { "b" };
            let v = vector(i);
            model.insert(format!("v{i:03}"), (Some(ns.to_owned()), v.clone()));
            let mut vec = Vector::new(format!("v{i:03}"), v);
            vec.namespace = Some(ns.to_owned());
            vec.metadata = json!({"i": i}).as_object().cloned();
            vec
        })
        .collect();
    index.upsert(&batch).unwrap();
    model
}

/// Statements `f` ran on the database's connections.
fn statements<T>(db: &Database, f: impl FnOnce() -> T) -> (u64, T) {
    let before = db.vector_stats().sql_statements;
    let out = f();
    (db.vector_stats().sql_statements - before, out)
}

fn warm_queries_run_no_sql(db: &Database) {
    let model = seed(db, 60);
    let index = db.vectorize("r").unwrap();
    let q = vector(10_000);
    // Warm-up: the first query loads and validates the state.
    let (first, _) = statements(db, || index.query(&q, &options(5)).unwrap());
    assert!(first > 0, "the first query reads SQLite");

    // No values, no metadata: answered from memory, with or without a namespace.
    for ns in [None, Some("a"), Some("b"), Some("nowhere")] {
        let opts = QueryOptions {
            namespace: ns.map(str::to_owned),
            ..options(5)
        };
        let (n, got) = statements(db, || index.query(&q, &opts).unwrap());
        assert_eq!(n, 0, "namespace {ns:?} ran {n} statements");
        assert_eq!(ids(&got), brute(&model, &q, 5, ns), "namespace {ns:?}");
        for m in &got.matches {
            assert_eq!(m.namespace, model[&m.id].0, "namespace from memory");
            assert!(m.values.is_none() && m.metadata.is_none());
        }
    }

    // Values or metadata: only the hits' rows, in one read transaction (BEGIN, one
    // statement per hit, COMMIT), and nothing more.
    for (values, meta) in [
        (true, ReturnMetadata::None),
        (false, ReturnMetadata::All),
        (false, ReturnMetadata::Indexed),
    ] {
        let opts = QueryOptions {
            return_values: values,
            return_metadata: meta,
            ..options(4)
        };
        let (n, got) = statements(db, || index.query(&q, &opts).unwrap());
        assert_eq!(got.count, 4);
        assert_eq!(n, 4 + 2, "values {values}, metadata {meta:?}");
        assert_eq!(ids(&got), brute(&model, &q, 4, None));
        for m in &got.matches {
            if values {
                let want = &model[&m.id].1;
                let got = m.values.as_ref().unwrap();
                assert!(got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6));
            }
            if meta == ReturnMetadata::All {
                let i: u64 = m.id[1..].parse().unwrap();
                assert_eq!(m.metadata.as_ref().unwrap()["i"], json!(i));
            }
        }
    }

    // A filter: SQL the first time (until the filter index is in memory), none when the
    // same filter comes again at the same seq.
    index
        .create_metadata_index("i", d1vec::vectorize::filter::eval::IndexType::Number)
        .unwrap();
    let filtered = QueryOptions {
        filter: Some(json!({"i": {"$lt": 30}})),
        ..options(3)
    };
    // (The metadata index covers vectors written after it: none yet.)
    let (n, got) = statements(db, || index.query(&q, &filtered).unwrap());
    assert!(n > 0);
    assert_eq!(got.count, 0);
    let (n, again) = statements(db, || index.query(&q, &filtered).unwrap());
    assert_eq!(n, 0, "a cached filter at the same seq");
    assert_eq!(again.count, 0);

    // A write of this process: the next query reads SQLite once and sees it, then none.
    let near: Vec<f64> = q.iter().map(|x| x * 2.0).collect();
    index.upsert(&[Vector::new("near", near)]).unwrap();
    let (n, got) = statements(db, || index.query(&q, &options(1)).unwrap());
    assert!(n > 0);
    assert_eq!(ids(&got), ["near"]);
    let (n, got) = statements(db, || index.query(&q, &options(1)).unwrap());
    assert_eq!(n, 0);
    assert_eq!(ids(&got), ["near"]);
    index.delete_by_ids(&["near".to_owned()]).unwrap();
    let got = index.query(&q, &options(5)).unwrap();
    assert_eq!(ids(&got), brute(&model, &q, 5, None));
}

#[test]
fn warm_queries_run_no_sql_on_a_file_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("r.sqlite")).unwrap();
    warm_queries_run_no_sql(&db);
}

#[test]
fn warm_queries_run_no_sql_in_memory() {
    let db = Database::open_in_memory().unwrap();
    warm_queries_run_no_sql(&db);
}

/// Two databases on one file (two sets of connections): every write one makes is in the
/// other's next query, whichever path that query takes; in between, the reader runs no SQL.
#[test]
fn a_write_by_another_connection_is_in_the_next_query() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.sqlite");
    let reader = Database::open(&path).unwrap();
    let mut model = seed(&reader, 40);
    let writer = Database::open(&path).unwrap();
    let r = reader.vectorize("r").unwrap();
    let w = writer.vectorize("r").unwrap();
    let q = vector(77_777);
    r.query(&q, &options(3)).unwrap();
    for step in 0..40u64 {
        match step % 4 {
            // A new vector right at the query: it must rank first at once.
            0 => {
                let near: Vec<f64> = q.iter().map(|x| x * (1.0 + step as f64)).collect();
                let id = format!("near{step}");
                w.upsert(&[Vector::new(id.clone(), near.clone())]).unwrap();
                model.insert(id, (None, near));
            }
            // Delete the best one: it must be gone at once.
            1 => {
                let best = brute(&model, &q, 1, None).remove(0);
                w.delete_by_ids(std::slice::from_ref(&best)).unwrap();
                model.remove(&best);
            }
            // A write to a user table only: no vector changed, answers stay.
            2 => {
                writer
                    .exec(&format!(
                        "CREATE TABLE IF NOT EXISTS t (x); INSERT INTO t VALUES ({step})"
                    ))
                    .unwrap();
            }
            // A checkpoint that restarts the WAL, then a replace of an existing id.
            _ => {
                // On a connection of its own: the Database refuses this pragma.
                let raw = rusqlite::Connection::open(&path).unwrap();
                let busy: i64 = raw
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
                    .unwrap();
                assert!(
                    busy == 0 || busy == 1,
                    "step {step}: checkpoint answered {busy}"
                );
                let id = format!("v{:03}", step);
                let v = vector(step + 5_000);
                w.upsert(&[Vector::new(id.clone(), v.clone())]).unwrap();
                model.insert(id, (None, v));
            }
        }
        let got = r.query(&q, &options(5)).unwrap();
        assert_eq!(ids(&got), brute(&model, &q, 5, None), "step {step}");
        // Nothing committed since: the next query is answered from memory.
        let (n, again) = statements(&reader, || r.query(&q, &options(5)).unwrap());
        assert_eq!(n, 0, "step {step}");
        assert_eq!(ids(&again), ids(&got));
    }
}

/// Another process (the CLI) writes the file while this one keeps it open and warm.
#[test]
fn a_write_by_another_process_is_in_the_next_query() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proc.sqlite");
    let db = Database::open(&path).unwrap();
    let mut model = seed(&db, 30);
    let index = db.vectorize("r").unwrap();
    let q = vector(4242);
    index.query(&q, &options(3)).unwrap();
    for step in 0..3u64 {
        let near: Vec<f64> = q.iter().map(|x| x * (2.0 + step as f64)).collect();
        let id = format!("cli{step}");
        let file = dir.path().join(format!("in{step}.ndjson"));
        let mut f = std::fs::File::create(&file).unwrap();
        writeln!(f, "{}", json!({"id": id, "values": near})).unwrap();
        drop(f);
        ok_json(
            &path,
            &[
                "--json",
                "vectorize",
                "upsert",
                "r",
                "--file",
                file.to_str().unwrap(),
            ],
        );
        model.insert(id.clone(), (None, near));
        let got = index.query(&q, &options(3)).unwrap();
        assert_eq!(ids(&got), brute(&model, &q, 3, None), "step {step}");
        assert_eq!(got.matches[0].id, id);
        // And a delete by the other process.
        ok_json(
            &path,
            &["--json", "vectorize", "delete-vectors", "r", "--ids", &id],
        );
        model.remove(&id);
        let got = index.query(&q, &options(3)).unwrap();
        assert_eq!(ids(&got), brute(&model, &q, 3, None), "step {step} delete");
    }
}
