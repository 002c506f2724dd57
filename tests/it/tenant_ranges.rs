//! Tenant-contiguous segments: a namespace query on the exact path scans each sealed
//! segment's range of that namespace plus its members in the mutable segment. Oracle:
//! brute-force cosine over the rows SQLite holds (read with a connection of its own), for
//! namespaces of 0, 1 and many vectors, after writes, seals, deletes, compaction and reopen.

use std::collections::BTreeMap;
use std::path::Path;

use d1vec::index::Metric;
use d1vec::vectorize::types::{QueryOptions, Vector};
use d1vec::vectorize::{CreateIndex, EngineOptions};
use d1vec::Database;
use proptest::prelude::*;

const DIMS: usize = 8;
const INDEX: &str = "ranges";

fn vector(seed: u64) -> Vec<f64> {
    crate::oracle::seeded_vector(seed, DIMS)
}

fn options() -> EngineOptions {
    EngineOptions {
        // Small segments, so a namespace spans several sealed files and the mutable one;
        // every namespace is scored exactly, so the range scan is the path a namespace takes.
        seal_at: 16,
        exact_max_candidates: 1 << 20,
        ..EngineOptions::default()
    }
}

fn open(path: &Path) -> Database {
    let db = Database::open(path).unwrap();
    db.set_vector_options(options());
    db
}

/// Every stored vector as SQLite holds it: id -> (namespace, values).
fn sqlite_rows(path: &Path) -> BTreeMap<String, (Option<String>, Vec<f32>)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT v.id, v.namespace, v.vals FROM d1vec_vectors v JOIN d1vec_indexes i \
             ON i.index_id = v.index_id WHERE i.name = ?1",
        )
        .unwrap();
    let rows = stmt
        .query_map([INDEX], |r| {
            let blob: Vec<u8> = r.get(2)?;
            let values = blob
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            Ok((
                r.get::<_, String>(0)?,
                (r.get::<_, Option<String>>(1)?, values),
            ))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

fn cosine(a: &[f64], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * f64::from(*y)).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Asks every namespace (and one that never existed) with two topK values and compares
/// with brute force over SQLite's rows: the same scores rank by rank, every returned id in
/// the namespace with its true score, and as many matches as the namespace can give.
fn check(db: &Database, path: &Path, namespaces: &[String], when: &str) {
    let rows = sqlite_rows(path);
    let ix = db.vectorize(INDEX).unwrap();
    let mut asked: Vec<&str> = namespaces.iter().map(String::as_str).collect();
    asked.push("never-written");
    for (qi, ns) in asked.iter().enumerate() {
        let q = vector(10_000 + qi as u64);
        let mut truth: Vec<(f64, &String)> = rows
            .iter()
            .filter(|(_, (n, _))| n.as_deref() == Some(*ns))
            .map(|(id, (_, v))| (cosine(&q, v), id))
            .collect();
        truth.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        for k in [3, 50] {
            let got = ix
                .query(
                    &q,
                    &QueryOptions {
                        top_k: k,
                        namespace: Some((*ns).to_owned()),
                        ..QueryOptions::default()
                    },
                )
                .unwrap();
            assert_eq!(
                got.matches.len(),
                k.min(truth.len()),
                "{when}: namespace {ns}, topK {k}: count"
            );
            for (rank, m) in got.matches.iter().enumerate() {
                let (n, v) = rows
                    .get(&m.id)
                    .unwrap_or_else(|| panic!("{when}: {} is not stored", m.id));
                assert_eq!(
                    n.as_deref(),
                    Some(*ns),
                    "{when}: {} from another namespace",
                    m.id
                );
                assert!(
                    (m.score - cosine(&q, v)).abs() < 1e-5,
                    "{when}: {} scored {} (true {})",
                    m.id,
                    m.score,
                    cosine(&q, v)
                );
                assert!(
                    (m.score - truth[rank].0).abs() < 1e-5,
                    "{when}: namespace {ns} rank {rank}: {} ({}) where brute force has {} ({})",
                    m.id,
                    m.score,
                    truth[rank].1,
                    truth[rank].0
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Namespace sizes 0, 1 and many, plus vectors without a namespace; deletes; seals
    /// along the way; compaction; reopen.
    #[test]
    fn a_namespace_scan_equals_brute_force_over_sqlite_rows(
        sizes in prop::collection::vec(prop_oneof![Just(0usize), Just(1usize), 2usize..45], 1..5),
        loose in 0usize..20,
        batch in 5usize..30,
        delete_every in 2usize..6,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let namespaces: Vec<String> = (0..sizes.len()).map(|i| format!("t{i}")).collect();
        let mut all: Vec<Vector> = Vec::new();
        let mut seed = 0u64;
        for (ns, &size) in namespaces.iter().zip(&sizes) {
            for _ in 0..size {
                seed += 1;
                all.push(Vector::new(format!("v{seed}"), vector(seed)).with_namespace(ns));
            }
        }
        for _ in 0..loose {
            seed += 1;
            all.push(Vector::new(format!("v{seed}"), vector(seed)));
        }
        // Interleave namespaces, as tenants write at the same time.
        all.sort_by_key(|v| (v.id.len() * 7919 + v.id.bytes().map(usize::from).sum::<usize>()) % 97);
        {
            let db = open(&path);
            db.create_index(&CreateIndex::new(INDEX, DIMS, Metric::Cosine)).unwrap();
            let ix = db.vectorize(INDEX).unwrap();
            for chunk in all.chunks(batch) {
                ix.upsert(chunk).unwrap();
            }
            check(&db, &path, &namespaces, "after writes and seals");
            let doomed: Vec<String> = all.iter().step_by(delete_every).map(|v| v.id.clone()).collect();
            for chunk in doomed.chunks(20) {
                ix.delete_by_ids(chunk).unwrap();
            }
            check(&db, &path, &namespaces, "after deletes");
            ix.compact().unwrap();
            check(&db, &path, &namespaces, "after compaction");
            // New writes after compaction land in the mutable segment beside the ranges.
            let more: Vec<Vector> = namespaces
                .iter()
                .enumerate()
                .map(|(i, ns)| Vector::new(format!("late{i}"), vector(50_000 + i as u64)).with_namespace(ns))
                .collect();
            ix.upsert(&more).unwrap();
            check(&db, &path, &namespaces, "after writes past compaction");
        }
        let db = open(&path);
        check(&db, &path, &namespaces, "after reopen");
        let stats = db.vector_stats();
        prop_assert_eq!(stats.graph_searches, 0, "every namespace query was exact");
    }
}

/// A seal that cannot write its file (here: a directory stands where the segment file
/// goes) fails with an error and loses nothing: the vectors it moved out for writing are
/// back in the mutable segment, every namespace still equals brute force, and a later seal
/// succeeds once the path is free.
#[test]
fn a_failed_seal_keeps_every_vector_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let db = Database::open(&path).unwrap();
    // No automatic seal: the explicit one below is the first.
    db.set_vector_options(EngineOptions {
        seal_at: usize::MAX,
        exact_max_candidates: 1 << 20,
        ..EngineOptions::default()
    });
    db.create_index(&CreateIndex::new(INDEX, DIMS, Metric::Cosine))
        .unwrap();
    let ix = db.vectorize(INDEX).unwrap();
    let namespaces = vec!["a".to_owned(), "b".to_owned()];
    let rows: Vec<Vector> = (1..=30u64)
        .map(|i| {
            Vector::new(format!("v{i}"), vector(i)).with_namespace(&namespaces[i as usize % 2])
        })
        .collect();
    ix.upsert(&rows).unwrap();
    check(&db, &path, &namespaces, "before the seal");
    // The first index has id 1 and its vids run 1..=30: the file would be this one.
    let index_dir = dir.path().join("db.sqlite.vectors").join("1");
    let blocker = index_dir.join(format!("{:016}-{:016}.seg", 1, 30));
    std::fs::create_dir_all(blocker.join("occupied")).unwrap();
    assert!(ix.seal().is_err(), "a seal onto a directory must fail");
    check(&db, &path, &namespaces, "after the failed seal");
    std::fs::remove_dir_all(&blocker).unwrap();
    ix.seal().unwrap();
    assert!(blocker.is_file(), "the seal wrote its file");
    check(&db, &path, &namespaces, "after the seal");
    drop(ix);
    drop(db);
    let db = open(&path);
    check(&db, &path, &namespaces, "after reopen");
}
