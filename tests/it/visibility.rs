//! Delayed visibility (`IndexOptions::visibility_delay`): with a delay `d`, a query within
//! `d` of a write does not see it and a query after `d` does, for insert, upsert and
//! delete; queued writes apply in mutation order and `processedUpToMutation` follows them;
//! the default stays immediate. Real (short) delays: the "within d" checks run right after
//! the write and assert that less than `d` has passed, so a stalled machine fails loudly
//! instead of passing by accident.

use std::time::{Duration, Instant};

use d1vec::index::Metric;
use d1vec::vectorize::types::{QueryOptions, Vector};
use d1vec::vectorize::{CreateIndex, IndexOptions, VectorIndex};
use d1vec::Database;

const D: Duration = Duration::from_millis(1500);

fn setup() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db.sqlite")).unwrap();
    db.create_index(&CreateIndex::new("v", 2, Metric::Euclidean))
        .unwrap();
    (dir, db)
}

fn delayed(db: &Database) -> VectorIndex {
    db.vectorize("v")
        .unwrap()
        .with_options(IndexOptions::default().with_visibility_delay(D))
}

/// Ids the index returns for a query at the origin (every vector, nearest first), and the
/// stored values of `a`, as another handle without a delay sees them.
fn seen(db: &Database) -> (Vec<String>, Option<Vec<f64>>) {
    let idx = db.vectorize("v").unwrap();
    let m = idx
        .query(&[0.0, 0.0], &QueryOptions::new().with_top_k(10))
        .unwrap();
    let ids = m.matches.into_iter().map(|m| m.id).collect();
    let a = idx
        .get_by_ids(&["a".to_owned()])
        .unwrap()
        .into_iter()
        .next()
        .map(|v| v.values);
    (ids, a)
}

#[track_caller]
fn within(start: Instant) {
    assert!(
        start.elapsed() < D,
        "the machine stalled past the delay; the 'within d' check means nothing"
    );
}

fn wait_out(start: Instant) {
    let left = (start + D + Duration::from_millis(50)).saturating_duration_since(Instant::now());
    std::thread::sleep(left);
}

#[test]
fn insert_becomes_visible_after_the_delay() {
    let (_dir, db) = setup();
    let before = db.vectorize("v").unwrap().describe().unwrap();
    let t = Instant::now();
    let m = delayed(&db)
        .insert(&[Vector::new("a", vec![1.0, 0.0])])
        .unwrap();
    assert_eq!(seen(&db), (vec![], None));
    let info = db.vectorize("v").unwrap().describe().unwrap();
    within(t);
    assert_eq!(info.vector_count, 0);
    assert_eq!(
        info.processed_up_to_mutation,
        before.processed_up_to_mutation
    );
    wait_out(t);
    assert_eq!(seen(&db), (vec!["a".to_owned()], Some(vec![1.0, 0.0])));
    let info = db.vectorize("v").unwrap().describe().unwrap();
    assert_eq!(info.vector_count, 1);
    assert_eq!(info.processed_up_to_mutation, Some(m.mutation_id));
}

#[test]
fn upsert_becomes_visible_after_the_delay() {
    let (_dir, db) = setup();
    db.vectorize("v")
        .unwrap()
        .insert(&[Vector::new("a", vec![1.0, 0.0])])
        .unwrap();
    let t = Instant::now();
    delayed(&db)
        .upsert(&[Vector::new("a", vec![0.0, 3.0])])
        .unwrap();
    assert_eq!(seen(&db), (vec!["a".to_owned()], Some(vec![1.0, 0.0])));
    within(t);
    wait_out(t);
    assert_eq!(seen(&db), (vec!["a".to_owned()], Some(vec![0.0, 3.0])));
}

#[test]
fn delete_becomes_visible_after_the_delay() {
    let (_dir, db) = setup();
    db.vectorize("v")
        .unwrap()
        .insert(&[
            Vector::new("a", vec![1.0, 0.0]),
            Vector::new("b", vec![2.0, 0.0]),
        ])
        .unwrap();
    let t = Instant::now();
    delayed(&db).delete_by_ids(&["a".to_owned()]).unwrap();
    assert_eq!(
        seen(&db),
        (vec!["a".to_owned(), "b".to_owned()], Some(vec![1.0, 0.0]))
    );
    within(t);
    wait_out(t);
    assert_eq!(seen(&db), (vec!["b".to_owned()], None));
}

/// Writes apply in the order they were made: an immediate write made while delayed ones are
/// queued waits behind them (otherwise the delayed delete would remove the newer vector).
/// `processedUpToMutation` steps through the mutation ids in that order. A bad batch still
/// fails at once and queues nothing.
#[test]
fn queued_writes_apply_in_mutation_order() {
    let (_dir, db) = setup();
    let slow = delayed(&db);
    let t = Instant::now();
    let m1 = slow.insert(&[Vector::new("a", vec![1.0, 0.0])]).unwrap();
    let m2 = slow.delete_by_ids(&["a".to_owned()]).unwrap();
    let bad = slow.insert(&[Vector::new("x", vec![1.0, 0.0, 0.0])]);
    assert!(bad.is_err(), "wrong dimensions fail at write time");
    let m3 = db
        .vectorize("v")
        .unwrap()
        .insert(&[Vector::new("a", vec![5.0, 5.0])])
        .unwrap();
    assert_eq!(seen(&db), (vec![], None));
    within(t);
    wait_out(t);
    assert_eq!(seen(&db), (vec!["a".to_owned()], Some(vec![5.0, 5.0])));
    let info = db.vectorize("v").unwrap().describe().unwrap();
    assert_eq!(info.processed_up_to_mutation, Some(m3.mutation_id));
    assert_ne!(m1.mutation_id, m2.mutation_id);
}

#[test]
fn default_is_immediate() {
    let (_dir, db) = setup();
    let idx = db.vectorize("v").unwrap();
    assert_eq!(idx.options().visibility_delay, Duration::ZERO);
    let m = idx.insert(&[Vector::new("a", vec![1.0, 0.0])]).unwrap();
    assert_eq!(seen(&db), (vec!["a".to_owned()], Some(vec![1.0, 0.0])));
    assert_eq!(
        idx.describe().unwrap().processed_up_to_mutation,
        Some(m.mutation_id)
    );
}

/// The queue is in SQLite: a write queued by one process (the CLI) is applied by a later
/// one once due.
#[test]
fn cli_visibility_delay_outlives_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let run = |args: &[&str]| super::cli::ok_json(&db, args);
    run(&[
        "--json",
        "vectorize",
        "create",
        "v",
        "--dimensions",
        "2",
        "--metric",
        "euclidean",
    ]);
    let file = dir.path().join("v.ndjson");
    std::fs::write(&file, "{\"id\":\"a\",\"values\":[1,0]}\n").unwrap();
    let t = Instant::now();
    run(&[
        "--json",
        "vectorize",
        "insert",
        "v",
        "--file",
        file.to_str().unwrap(),
        "--visibility-delay",
        "1500ms",
    ]);
    let info = run(&["--json", "vectorize", "info", "v"]);
    within(t);
    assert_eq!(info["vectorCount"], 0);
    wait_out(t);
    let info = run(&["--json", "vectorize", "info", "v"]);
    assert_eq!(info["vectorCount"], 1);
}
