//! Searches run on pooled reader connections, beside each other and beside writers, and
//! reuse the candidate sets of repeated filters. These tests check that neither changes an
//! answer: a repeated filter sees every write made between its two runs (the brute-force
//! oracle decides), and answers from several threads at once equal those of one thread.

use std::sync::Arc;

use d1vec::index::Metric;
use d1vec::vectorize::filter::eval::IndexType;
use d1vec::vectorize::types::{QueryOptions, Vector};
use d1vec::vectorize::CreateIndex;
use d1vec::Database;
use serde_json::{json, Map, Value};

use super::oracle::brute;

fn vector(i: usize, kind: &str) -> Vector {
    let values: Vec<f64> = (0..8)
        .map(|d| (((i * 29 + d * 13) % 89) as f64 / 89.0) - 0.45 + d as f64 * 0.01)
        .collect();
    let mut meta = Map::new();
    meta.insert("kind".into(), json!(kind));
    meta.insert("n".into(), json!(i));
    Vector::new(format!("v{i:04}"), values).with_metadata(meta)
}

fn ids(db: &Database, q: &[f64], filter: &Value) -> Vec<String> {
    db.vectorize("paths")
        .unwrap()
        .query(
            q,
            &QueryOptions::new()
                .with_top_k(20)
                .with_filter(filter.clone()),
        )
        .unwrap()
        .matches
        .into_iter()
        .map(|m| m.id)
        .collect()
}

/// The oracle: the top 20 of the stored vectors passing `pass`.
fn want(stored: &[Vector], q: &[f64], pass: impl Fn(&Vector) -> bool) -> Vec<String> {
    let keep: Vec<&Vector> = stored.iter().filter(|v| pass(v)).collect();
    brute(&keep, q)
        .into_iter()
        .take(20)
        .map(|(id, _)| id)
        .collect()
}

fn kind_of(v: &Vector) -> &str {
    v.metadata
        .as_ref()
        .and_then(|m| m["kind"].as_str())
        .unwrap_or("")
}

#[test]
fn a_repeated_filter_sees_every_write_in_between() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db.sqlite")).unwrap();
    db.create_index(&CreateIndex::new("paths", 8, Metric::Cosine))
        .unwrap();
    let ix = db.vectorize("paths").unwrap();
    ix.create_metadata_index("kind", IndexType::String).unwrap();
    let mut stored: Vec<Vector> = (0..300)
        .map(|i| vector(i, if i % 3 == 0 { "faq" } else { "doc" }))
        .collect();
    ix.insert(&stored).unwrap();
    let q: Vec<f64> = (0..8).map(|d| 0.3 - d as f64 * 0.07).collect();
    let faq = json!({"kind": "faq"});
    let is_faq = |v: &Vector| kind_of(v) == "faq";
    assert_eq!(ids(&db, &q, &faq), want(&stored, &q, is_faq));
    // Twice: the second answer comes from the cached candidate set.
    assert_eq!(ids(&db, &q, &faq), want(&stored, &q, is_faq));

    // An upsert moves the best faq vectors out of the filter.
    let best: Vec<String> = ids(&db, &q, &faq).into_iter().take(5).collect();
    let moved: Vec<Vector> = best
        .iter()
        .map(|id| {
            let i: usize = id[1..].parse().unwrap();
            vector(i, "doc")
        })
        .collect();
    ix.upsert(&moved).unwrap();
    for m in &moved {
        let slot = stored.iter_mut().find(|v| v.id == m.id).unwrap();
        *slot = m.clone();
    }
    let after_upsert = ids(&db, &q, &faq);
    assert_eq!(after_upsert, want(&stored, &q, is_faq));
    assert!(best.iter().all(|id| !after_upsert.contains(id)));

    // New vectors join it; deleted ones leave it.
    let added: Vec<Vector> = (300..340).map(|i| vector(i, "faq")).collect();
    ix.insert(&added).unwrap();
    stored.extend(added);
    assert_eq!(ids(&db, &q, &faq), want(&stored, &q, is_faq));
    let gone: Vec<String> = ids(&db, &q, &faq).into_iter().step_by(2).collect();
    ix.delete_by_ids(&gone).unwrap();
    stored.retain(|v| !gone.contains(&v.id));
    assert_eq!(ids(&db, &q, &faq), want(&stored, &q, is_faq));

    // A range filter, repeated, then after a metadata index appears for its property (only
    // vectors written afterwards are covered, as on Vectorize).
    let err = db.vectorize("paths").unwrap().query(
        &q,
        &QueryOptions::new()
            .with_top_k(5)
            .with_filter(json!({"n": {"$lt": 100}})),
    );
    assert!(err.is_err(), "no metadata index on n yet");
    ix.create_metadata_index("n", IndexType::Number).unwrap();
    let range = json!({"n": {"$lt": 100}});
    assert!(ids(&db, &q, &range).is_empty(), "nothing covered yet");
    let rewritten: Vec<Vector> = stored
        .iter()
        .filter(|v| kind_of(v) == "doc")
        .cloned()
        .collect();
    ix.upsert(&rewritten).unwrap();
    let under_100_docs = |v: &Vector| {
        kind_of(v) == "doc" && v.metadata.as_ref().unwrap()["n"].as_u64().unwrap() < 100
    };
    assert_eq!(ids(&db, &q, &range), want(&stored, &q, under_100_docs));
    assert_eq!(ids(&db, &q, &range), want(&stored, &q, under_100_docs));
}

#[test]
fn parallel_searches_answer_as_one_thread_does_while_a_writer_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path().join("db.sqlite")).unwrap());
    db.create_index(&CreateIndex::new("paths", 8, Metric::Cosine))
        .unwrap();
    let ix = db.vectorize("paths").unwrap();
    ix.create_metadata_index("kind", IndexType::String).unwrap();
    let stored: Vec<Vector> = (0..600)
        .map(|i| vector(i, ["faq", "doc", "blog"][i % 3]))
        .collect();
    ix.insert(&stored).unwrap();
    let queries: Vec<Vec<f64>> = (0..40)
        .map(|j| {
            (0..8)
                .map(|d| ((j * 7 + d * 3) % 11) as f64 / 11.0 - 0.5)
                .collect()
        })
        .collect();
    let filters = [
        json!({"kind": "faq"}),
        json!({"kind": {"$in": ["doc", "blog"]}}),
    ];
    let serial: Vec<Vec<String>> = queries
        .iter()
        .flat_map(|q| filters.iter().map(|f| ids(&db, q, f)))
        .collect();
    // Another index takes writes meanwhile: the admin connection is busy, searches are not
    // held up by it and see the same data.
    db.create_index(&CreateIndex::new("other", 8, Metric::Cosine))
        .unwrap();
    let writer = {
        let db = Arc::clone(&db);
        std::thread::spawn(move || {
            let other = db.vectorize("other").unwrap();
            for b in 0..20 {
                let batch: Vec<Vector> = (b * 50..(b + 1) * 50).map(|i| vector(i, "x")).collect();
                other.insert(&batch).unwrap();
            }
        })
    };
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let db = Arc::clone(&db);
            let queries = queries.clone();
            let filters = filters.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                for (qi, q) in queries.iter().enumerate() {
                    for f in &filters {
                        out.push((qi, ids(&db, q, f)));
                    }
                }
                (t, out)
            })
        })
        .collect();
    for h in threads {
        let (_, out) = h.join().unwrap();
        let got: Vec<Vec<String>> = out.into_iter().map(|(_, ids)| ids).collect();
        assert_eq!(got, serial);
    }
    writer.join().unwrap();
    assert_eq!(
        db.vectorize("other")
            .unwrap()
            .describe()
            .unwrap()
            .vector_count,
        1000
    );
}
