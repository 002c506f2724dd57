//! Vectorize's per-index vector limit and upload limit, at and just past each value, and
//! the CLI's `--batch-size` default. The 20,000,000-vector limit is tested through a lowered
//! cap (`Database::set_max_vectors_per_index`), the code path the real limit takes; the
//! 100 MB limit through the NDJSON reader's byte cap.

use std::io::Cursor;

use d1vec::error::Error;
use d1vec::index::Metric;
use d1vec::vectorize::limits::{DEFAULT_FILE_BATCH, MAX_UPLOAD_BYTES, MAX_VECTORS_PER_INDEX};
use d1vec::vectorize::ndjson::{reader, Unparsable};
use d1vec::vectorize::types::Vector;
use d1vec::vectorize::CreateIndex;
use d1vec::Database;

fn vectors(prefix: &str, n: usize) -> Vec<Vector> {
    (0..n)
        .map(|i| Vector::new(format!("{prefix}{i}"), vec![i as f64 + 1.0, 1.0]))
        .collect()
}

#[test]
fn documented_values() {
    assert_eq!(MAX_VECTORS_PER_INDEX, 20_000_000);
    assert_eq!(MAX_UPLOAD_BYTES, 100_000_000);
    assert_eq!(DEFAULT_FILE_BATCH, 5000);
}

#[test]
fn vector_count_limit_at_and_past() {
    let db = Database::open_in_memory().unwrap();
    db.create_index(&CreateIndex::new("v", 2, Metric::Euclidean))
        .unwrap();
    db.set_max_vectors_per_index(10);
    let idx = db.vectorize("v").unwrap();
    idx.insert(&vectors("a", 7)).unwrap();
    // Exactly at the limit is fine.
    idx.insert(&vectors("b", 3)).unwrap();
    assert_eq!(idx.describe().unwrap().vector_count, 10);
    // One past it fails, names the index, the limit and the count, and changes nothing.
    let err = idx.insert(&vectors("c", 1)).unwrap_err();
    match &err {
        Error::Vectorize(e) => {
            assert_eq!(e.code, 40043);
            assert!(
                e.message.contains("`v`") && e.message.contains("11") && e.message.contains("10"),
                "{err}"
            );
        }
        other => panic!("{other}"),
    }
    assert_eq!(idx.describe().unwrap().vector_count, 10);
    // Upserting existing ids does not grow the index, even though it takes new vids.
    idx.upsert(&vectors("a", 7)).unwrap();
    // After a delete there is room again.
    idx.delete_by_ids(&["a0".to_owned()]).unwrap();
    idx.insert(&vectors("c", 1)).unwrap();
    assert_eq!(idx.describe().unwrap().vector_count, 10);
}

fn line(i: usize) -> String {
    format!("{{\"id\":\"v{i}\",\"values\":[1,2]}}\n")
}

#[test]
fn upload_limit_at_and_past() {
    let one = line(0).len();
    let text: String = (0..4).map(line).collect();
    // A cap of exactly two lines: batches of two pass.
    let batches: Vec<_> = reader(Cursor::new(text.clone()), 2, Unparsable::Error)
        .with_max_batch_bytes(2 * one)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2]);
    // One byte less: the first batch fails with 40044, naming the limit and the size.
    let mut r = reader(Cursor::new(text), 2, Unparsable::Error).with_max_batch_bytes(2 * one - 1);
    let err = r.next().unwrap().unwrap_err();
    assert_eq!(err.code, 40044);
    assert!(
        err.message.contains(&format!("max is {}", 2 * one - 1)),
        "{}",
        err.message
    );
    assert!(
        err.message.contains(&format!("{} bytes", 2 * one)),
        "{}",
        err.message
    );
    assert!(r.next().is_none(), "the reader stops after the error");
}

/// Without `--batch-size`, 5,001 vectors go in two batches (5,000 + 1), as two mutations.
#[test]
fn cli_batch_size_defaults_to_5000() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    super::cli::ok_json(
        &db,
        &[
            "vectorize",
            "create",
            "v",
            "--dimensions",
            "2",
            "--metric",
            "euclidean",
            "--json",
        ],
    );
    let file = dir.path().join("v.ndjson");
    std::fs::write(&file, (0..5001).map(line).collect::<String>()).unwrap();
    let out = super::cli::ok_json(
        &db,
        &[
            "--json",
            "vectorize",
            "insert",
            "v",
            "--file",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out["count"], 5001);
    assert_eq!(out["mutationIds"].as_array().unwrap().len(), 2);
}
