//! Writers that queue instead of failing: 16 SQL writers, 16 vector upserters and 16 vector
//! deleters, each a separate `d1vec` process stream, against one database file at once.
//!
//! The regression: a vector write used to build the index's in-memory state inside its
//! `BEGIN IMMEDIATE`, so on an index with a few thousand unsealed vectors every fresh
//! process held SQLite's write lock for a whole load, and parallel writers failed with
//! "database is locked" after the 5 s busy timeout. The fixture recreates that: 1,200
//! unsealed 128-dimension vectors, which a fresh process would have to put into an HNSW
//! graph before writing. (Run with `D1VEC_CONCURRENCY_BIN` set to a build from before the
//! fix, nearly every command fails.)
//!
//! Oracle: the final state computed here from what each writer was told to do. Every
//! process exits 0 with nothing on stderr; the table holds exactly the rows written; the
//! index holds exactly the expected ids, each with its expected values, namespace and
//! metadata; every delete took effect; the mutation sequence advanced once per vector
//! command (no write lost or merged); and queries by the written vectors' values find them
//! first, through a state that this process had loaded before the storm (so it must notice
//! it went stale and reload).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use d1vec::index::Metric;
use d1vec::vectorize::types::{QueryOptions, ReturnMetadata, Vector};
use d1vec::vectorize::{CreateIndex, VectorIndex};
use d1vec::Database;
use serde_json::{json, Map, Value};

const INDEX: &str = "conc";
const DIMS: usize = 128;
/// Unsealed vectors present before the writers start.
const BASE: usize = 1200;
/// Writers of each kind.
const WRITERS: usize = 16;
/// Commands each writer runs, one after the other.
const ROUNDS: usize = 3;
/// Rows per SQL command, vectors per upsert command, ids per delete command.
const PER_COMMAND: usize = 4;

/// splitmix64, so that every value below is a pure function of its seed.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Deterministic values in [-1, 1), exactly representable as f32.
fn values(seed: u64) -> Vec<f64> {
    (0..DIMS as u64)
        .map(|d| {
            let unit = (mix(seed.wrapping_mul(1_000_003) ^ d) >> 40) as f32 / (1u64 << 24) as f32;
            f64::from(unit * 2.0 - 1.0)
        })
        .collect()
}

fn base_vector(i: usize) -> Vector {
    Vector::new(format!("base-{i:04}"), values(i as u64)).with_namespace(format!("ns{}", i % 5))
}

/// The ids deleter `w` deletes in round `r`: base vectors no other writer touches.
fn deleted_ids(w: usize, r: usize) -> Vec<String> {
    (0..PER_COMMAND)
        .map(|k| format!("base-{:04}", (w * ROUNDS + r) * PER_COMMAND + k))
        .collect()
}

/// What upserter `w` writes in round `r`: new vectors, plus a replacement of one base
/// vector (new values, namespace and metadata) that no deleter touches.
fn upserted(w: usize, r: usize) -> Vec<Vector> {
    let mut out: Vec<Vector> = (0..PER_COMMAND - 1)
        .map(|k| {
            let mut meta = Map::new();
            meta.insert("writer".into(), json!(w));
            meta.insert("round".into(), json!(r));
            Vector::new(
                format!("up-{w:02}-{r}-{k}"),
                values(1_000_000 + (w * 100 + r * 10 + k) as u64),
            )
            .with_namespace(format!("w{w}"))
            .with_metadata(meta)
        })
        .collect();
    let replaced = 1000 + w * ROUNDS + r;
    let mut meta = Map::new();
    meta.insert("replaced_by".into(), json!(w));
    out.push(
        Vector::new(
            format!("base-{replaced:04}"),
            values(2_000_000 + replaced as u64),
        )
        .with_namespace("replaced")
        .with_metadata(meta),
    );
    out
}

fn sql_rows(w: usize, r: usize) -> String {
    (0..PER_COMMAND)
        .map(|k| {
            format!(
                "INSERT INTO events (writer, round, k, note) VALUES ({w}, {r}, {k}, 'w{w}r{r}k{k}');"
            )
        })
        .collect()
}

/// Set to another `d1vec` binary to run the writers with it (e.g. a build from before
/// the fix, to watch the old failure); the fixture and the checks stay this build's.
const BIN_ENV: &str = "D1VEC_CONCURRENCY_BIN";

fn run(db: &Path, args: &[String]) -> Output {
    let bin = std::env::var_os(BIN_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_d1vec")));
    Command::new(bin)
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("D1VEC_TENANT")
        .output()
        .unwrap()
}

fn ndjson(path: &Path, vs: &[Vector]) {
    let mut f = std::fs::File::create(path).unwrap();
    for v in vs {
        writeln!(
            f,
            "{}",
            json!({"id": v.id, "values": v.values, "namespace": v.namespace, "metadata": v.metadata})
        )
        .unwrap();
    }
}

fn list_all(ix: &VectorIndex) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = ix.list_vectors(Some(1000), cursor.as_deref()).unwrap();
        ids.extend(page.vectors.into_iter().map(|v| v.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return ids,
        }
    }
}

/// The stored vectors, by id, read 20 at a time.
fn get_all(ix: &VectorIndex, ids: &[String]) -> BTreeMap<String, Vector> {
    ids.chunks(20)
        .flat_map(|c| ix.get_by_ids(c).unwrap())
        .map(|v| (v.id.clone(), v))
        .collect()
}

#[test]
fn forty_eight_writer_processes_queue_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conc.sqlite");
    let db = Database::open(&path).unwrap();
    db.exec(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, writer INTEGER NOT NULL, round INTEGER NOT NULL, k INTEGER NOT NULL, note TEXT NOT NULL)",
    )
    .unwrap();
    db.create_index(&CreateIndex::new(INDEX, DIMS, Metric::Cosine))
        .unwrap();
    let ix = db.vectorize(INDEX).unwrap();
    let base: Vec<Vector> = (0..BASE).map(base_vector).collect();
    for chunk in base.chunks(1000) {
        ix.insert(chunk).unwrap();
    }
    // Load the state here, before the storm: afterwards it is stale, and must be reloaded.
    let t = Instant::now();
    ix.warm().unwrap();
    eprintln!("concurrency: warm {:.2?}", t.elapsed());
    let seq_before = db
        .prepare("SELECT seq FROM d1vec_indexes WHERE name = ?1")
        .bind([INDEX])
        .first_column("seq")
        .unwrap()
        .and_then(|v| v.as_i64())
        .unwrap();

    // Every command line, per writer stream.
    let mut streams: Vec<Vec<Vec<String>>> = Vec::new();
    for w in 0..WRITERS {
        streams.push(
            (0..ROUNDS)
                .map(|r| {
                    vec![
                        "d1".into(),
                        "execute".into(),
                        "--command".into(),
                        sql_rows(w, r),
                    ]
                })
                .collect(),
        );
        streams.push(
            (0..ROUNDS)
                .map(|r| {
                    let file: PathBuf = dir.path().join(format!("up-{w}-{r}.ndjson"));
                    ndjson(&file, &upserted(w, r));
                    vec![
                        "vectorize".into(),
                        "upsert".into(),
                        INDEX.into(),
                        "--file".into(),
                        file.to_string_lossy().into_owned(),
                    ]
                })
                .collect(),
        );
        streams.push(
            (0..ROUNDS)
                .map(|r| {
                    let mut args: Vec<String> = vec![
                        "vectorize".into(),
                        "delete-vectors".into(),
                        INDEX.into(),
                        "--ids".into(),
                    ];
                    args.extend(deleted_ids(w, r));
                    args
                })
                .collect(),
        );
    }
    let started = Instant::now();
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = streams
            .iter()
            .map(|commands| {
                let path = &path;
                s.spawn(move || {
                    let mut failed = Vec::new();
                    for args in commands {
                        let out = run(path, args);
                        if !out.status.success() || !out.stderr.is_empty() {
                            failed.push(format!(
                                "{} {} ({}): {}",
                                args[0],
                                args[1],
                                out.status,
                                String::from_utf8_lossy(&out.stderr).trim()
                            ));
                        }
                    }
                    failed
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let took = started.elapsed();
    eprintln!(
        "concurrency: {} processes in {took:.2?}",
        3 * WRITERS * ROUNDS
    );
    assert!(
        failures.is_empty(),
        "{} of {} commands failed:\n{}",
        failures.len(),
        3 * WRITERS * ROUNDS,
        failures.join("\n")
    );
    assert!(
        took < Duration::from_secs(60),
        "the writers took {took:?}: they queue far too slowly"
    );

    // SQL: exactly the rows written.
    let rows = db
        .prepare("SELECT writer, round, k, note FROM events ORDER BY writer, round, k")
        .all()
        .unwrap()
        .results;
    let want: Vec<Value> = (0..WRITERS)
        .flat_map(|w| {
            (0..ROUNDS).flat_map(move |r| {
                (0..PER_COMMAND).map(move |k| {
                    json!({"writer": w, "round": r, "k": k, "note": format!("w{w}r{r}k{k}")})
                })
            })
        })
        .collect();
    let got: Vec<Value> = rows.into_iter().map(Value::Object).collect();
    assert_eq!(got, want, "the SQL writers' rows");

    // Vectors: the expected final set, each with its expected content.
    let mut expected: BTreeMap<String, Vector> =
        base.into_iter().map(|v| (v.id.clone(), v)).collect();
    for w in 0..WRITERS {
        for r in 0..ROUNDS {
            for id in deleted_ids(w, r) {
                assert!(
                    expected.remove(&id).is_some(),
                    "fixture: {id} deleted twice"
                );
            }
            for v in upserted(w, r) {
                expected.insert(v.id.clone(), v);
            }
        }
    }
    let ids = list_all(&ix);
    assert_eq!(
        ids,
        expected.keys().cloned().collect::<Vec<_>>(),
        "the index's ids"
    );
    let stored = get_all(&ix, &ids);
    for (id, want) in &expected {
        let got = &stored[id];
        assert_eq!(got, want, "vector {id}");
    }
    assert_eq!(ix.describe().unwrap().vector_count, expected.len() as u64);
    let seq_after = db
        .prepare("SELECT seq FROM d1vec_indexes WHERE name = ?1")
        .bind([INDEX])
        .first_column("seq")
        .unwrap()
        .and_then(|v| v.as_i64())
        .unwrap();
    assert_eq!(
        seq_after - seq_before,
        (2 * WRITERS * ROUNDS) as i64,
        "one mutation per vector command"
    );

    // Search sees every write: each new vector, queried by its own values, comes first.
    for w in 0..WRITERS {
        for v in upserted(w, ROUNDS - 1) {
            let got = ix
                .query(
                    &v.values,
                    &QueryOptions::new()
                        .with_top_k(3)
                        .with_metadata(ReturnMetadata::All),
                )
                .unwrap();
            assert_eq!(got.matches[0].id, v.id, "query by the values of {}", v.id);
            assert!((got.matches[0].score - 1.0).abs() < 1e-4);
            assert_eq!(got.matches[0].metadata, v.metadata);
        }
    }
    // And no deleted vector is found by its values.
    for id in deleted_ids(0, 0) {
        let i: usize = id["base-".len()..].parse().unwrap();
        let got = ix
            .query(&values(i as u64), &QueryOptions::new().with_top_k(1))
            .unwrap();
        assert_ne!(got.matches[0].id, id, "deleted {id} is still found");
    }
    eprintln!("concurrency: checks {:.2?}", started.elapsed() - took);
}

/// The same race inside one process, where the loaded state follows the writes: 8 threads
/// upsert and delete through one `Database` (sealing every 64 vectors) while searching.
/// Writers commit one at a time but apply to the state after their commit, in any order;
/// a state that missed a write must be reloaded, never patched out of order.
///
/// Oracle: each thread finds its own write at once (read your writes, by the vector's
/// values, score 1) and never finds what it deleted; at the end the index holds exactly the
/// expected vectors, and every query equals a brute-force scoring of them, both in this
/// process and through a fresh `Database`, which rebuilds the state from SQLite and files.
#[test]
fn threads_writing_and_searching_one_index_agree_with_brute_force() {
    use crate::oracle::brute;
    use d1vec::vectorize::EngineOptions;
    const THREADS: usize = 8;
    const CALLS: usize = 25;
    const DIM: usize = 16;
    let short = |seed: u64| -> Vec<f64> { values(seed)[..DIM].to_vec() };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("threads.sqlite");
    let options = EngineOptions {
        seal_at: 64,
        ..EngineOptions::default()
    };
    let db = Database::open(&path).unwrap();
    db.set_vector_options(options);
    db.create_index(&CreateIndex::new("t", DIM, Metric::Cosine))
        .unwrap();
    db.vectorize("t").unwrap().warm().unwrap();
    let kept: Vec<Vector> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let db = &db;
                s.spawn(move || {
                    let ix = db.vectorize("t").unwrap();
                    let mut kept = Vec::new();
                    for c in 0..CALLS {
                        let batch: Vec<Vector> = (0..4)
                            .map(|k| {
                                let seed = 5_000_000 + (t * 1000 + c * 10 + k) as u64;
                                Vector::new(format!("t{t}-{c}-{k}"), short(seed))
                                    .with_namespace(format!("n{}", (t + k) % 3))
                            })
                            .collect();
                        ix.upsert(&batch).unwrap();
                        let probe = &batch[c % 4];
                        let got = ix
                            .query(&probe.values, &QueryOptions::new().with_top_k(1))
                            .unwrap();
                        assert_eq!(got.matches[0].id, probe.id, "thread {t} call {c}");
                        // Every third call deletes one of the vectors it just wrote.
                        let gone = batch[(c + 1) % 4].clone();
                        if c % 3 == 0 {
                            ix.delete_by_ids(std::slice::from_ref(&gone.id)).unwrap();
                            let got = ix
                                .query(&gone.values, &QueryOptions::new().with_top_k(1))
                                .unwrap();
                            assert_ne!(got.matches.first().map(|m| &m.id), Some(&gone.id));
                        }
                        kept.extend(batch.into_iter().filter(|v| c % 3 != 0 || v.id != gone.id));
                    }
                    kept
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let check = |db: &Database, what: &str| {
        let ix = db.vectorize("t").unwrap();
        let mut ids = list_all(&ix);
        ids.sort();
        let mut want: Vec<String> = kept.iter().map(|v| v.id.clone()).collect();
        want.sort();
        assert_eq!(ids, want, "{what}: ids");
        let scope: Vec<&Vector> = kept.iter().collect();
        for q in 0..20u64 {
            let query = short(9_000_000 + q);
            let got = ix
                .query(&query, &QueryOptions::new().with_top_k(10))
                .unwrap();
            let truth = brute(&scope, &query);
            let got_ids: Vec<&str> = got.matches.iter().map(|m| m.id.as_str()).collect();
            let want_ids: Vec<&str> = truth.iter().take(10).map(|(id, _)| id.as_str()).collect();
            assert_eq!(got_ids, want_ids, "{what}: query {q}");
        }
    };
    check(&db, "in the writing process");
    drop(db);
    let fresh = Database::open(&path).unwrap();
    fresh.set_vector_options(options);
    check(&fresh, "through a fresh Database");
    assert_eq!(
        fresh.vector_stats().rebuilt_segments,
        0,
        "no segment file was damaged"
    );
}
