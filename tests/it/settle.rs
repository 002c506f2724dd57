//! Searches running while writes commit, in one process (what `d1vec serve` does under
//! load). Two regressions found by `benches/serve_load.rs`:
//!
//! - the in-memory state could fall one write behind for good when two writers' updates ran
//!   out of commit order, and every search after rebuilt it from SQLite (seconds each);
//! - a search whose state already held a write newer than its snapshot dropped that write's
//!   vectors as missing and answered fewer than topK.
//!
//! Oracle: the class of interleavings is every order of upserts (new ids and replaced ids)
//! from several threads against searches from several others. Every answer must hold
//! exactly topK matches, each of them a vector some snapshot held (a preloaded id or a
//! written one), scores descending; after the storm, the state answers the same as brute
//! force over the stored vectors; and the searches rebuilt the state at most once more than
//! the one warm-up load.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use d1vec::index::Metric;
use d1vec::vectorize::types::{QueryOptions, Vector};
use d1vec::vectorize::CreateIndex;
use d1vec::Database;

const DIMS: usize = 16;
const PRELOAD: usize = 400;
const WRITERS: usize = 4;
const WRITES: usize = 60;
const READERS: usize = 4;
const TOP_K: usize = 10;

fn vector(seed: u64) -> Vec<f64> {
    crate::oracle::seeded_vector(seed, DIMS)
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn searches_under_concurrent_writes_answer_top_k_without_reloading() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path().join("settle.sqlite")).unwrap());
    db.create_index(&CreateIndex::new("s", DIMS, Metric::Cosine))
        .unwrap();
    let index = db.vectorize("s").unwrap();
    let preload: Vec<Vector> = (0..PRELOAD)
        .map(|i| Vector::new(format!("p{i}"), vector(i as u64)))
        .collect();
    index.insert(&preload).unwrap();
    let options = QueryOptions {
        top_k: TOP_K,
        ..QueryOptions::default()
    };
    index.query(&vector(999_999), &options).unwrap(); // the warm-up load
    let loads_before = db.vector_stats().state_loads;

    let mut known: HashSet<String> = (0..PRELOAD).map(|i| format!("p{i}")).collect();
    for w in 0..WRITERS {
        for n in 0..WRITES {
            known.insert(format!("w{w}-{n}"));
        }
    }
    let known = Arc::new(known);
    let done = Arc::new(AtomicBool::new(false));
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let db = Arc::clone(&db);
                s.spawn(move || {
                    let index = db.vectorize("s").unwrap();
                    for n in 0..WRITES {
                        // New ids, and every third write also replaces a preloaded vector.
                        let mut batch = vec![Vector::new(
                            format!("w{w}-{n}"),
                            vector(1_000 + (w * WRITES + n) as u64),
                        )];
                        if n % 3 == 0 {
                            let p = (w * 97 + n) % PRELOAD;
                            batch.push(Vector::new(format!("p{p}"), vector(50_000 + n as u64)));
                        }
                        index.upsert(&batch).unwrap();
                    }
                })
            })
            .collect();
        let readers: Vec<_> = (0..READERS)
            .map(|r| {
                let (db, known, done) = (Arc::clone(&db), Arc::clone(&known), Arc::clone(&done));
                let options = options.clone();
                s.spawn(move || {
                    let index = db.vectorize("s").unwrap();
                    let mut answered = 0usize;
                    let mut seed = 10_000 * (r as u64 + 1);
                    while !done.load(Ordering::Acquire) || answered < 20 {
                        seed += 1;
                        let m = index.query(&vector(seed), &options).unwrap();
                        assert_eq!(m.count, TOP_K, "a search answered {m:?}");
                        assert_eq!(m.matches.len(), TOP_K);
                        for pair in m.matches.windows(2) {
                            assert!(pair[0].score >= pair[1].score, "{m:?}");
                        }
                        for hit in &m.matches {
                            assert!(known.contains(&hit.id), "unknown id {}", hit.id);
                        }
                        answered += 1;
                    }
                    answered
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Release);
        for r in readers {
            assert!(r.join().unwrap() >= 20);
        }
    });
    let reloads = db.vector_stats().state_loads - loads_before;
    assert!(
        reloads <= 1,
        "searches rebuilt the state {reloads} times while writes committed"
    );

    // After the storm the state equals brute force over what SQLite stores.
    let mut ids: Vec<String> = known.iter().cloned().collect();
    ids.sort();
    let mut stored = Vec::new();
    for chunk in ids.chunks(20) {
        stored.extend(index.get_by_ids(chunk).unwrap());
    }
    assert_eq!(stored.len(), known.len());
    for q in 0..5u64 {
        let probe = vector(77_000 + q);
        let mut brute: Vec<(f64, &str)> = stored
            .iter()
            .map(|v| (cosine(&probe, &v.values), v.id.as_str()))
            .collect();
        brute.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        let got = index.query(&probe, &options).unwrap();
        let want: Vec<&str> = brute.iter().take(TOP_K).map(|(_, id)| *id).collect();
        let got_ids: Vec<&str> = got.matches.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(got_ids, want, "probe {q}");
    }
}
