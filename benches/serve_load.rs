//! A bounded loopback load test of `d1vec serve`: 32 concurrent clients mix Vectorize
//! queries, upserts and D1 SQL against one server for 60 s, then the database is checked
//! for every acknowledged write, and the server's own cost per query is measured against
//! the same query made directly on the library.
//!
//! `cargo bench --bench serve_load` (release). `D1VEC_LOAD_SECS` and `D1VEC_LOAD_CLIENTS`
//! shorten or reshape the run. Exits non-zero on any error response or lost write.

use std::sync::Arc;
use std::time::{Duration, Instant};

use d1vec::index::Metric;
use d1vec::serve::{spawn, ServeOptions};
use d1vec::vectorize::types::{QueryOptions, Vector};
use d1vec::vectorize::CreateIndex;
use d1vec::Database;
use serde_json::{json, Value as Json};

const DIMS: usize = 64;
const PRELOAD: usize = 5_000;
const ACCOUNT: &str = "load";
const INDEX: &str = "load";

/// A small deterministic generator (xorshift64*), so runs are repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
    fn vector(&mut self) -> Vec<f64> {
        (0..DIMS).map(|_| self.unit()).collect()
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Query,
    Upsert,
    SqlWrite,
    SqlRead,
}

/// What one client saw: latencies per operation, error responses, acknowledged writes.
#[derive(Default)]
struct ClientLog {
    latencies: Vec<(Op, Duration)>,
    errors: Vec<String>,
    acked_vectors: Vec<(String, Vec<f64>)>,
    acked_rows: u64,
}

fn post(
    client: &reqwest::blocking::Client,
    url: &str,
    body: reqwest::blocking::Body,
    ndjson: bool,
) -> Result<Json, String> {
    let content_type = if ndjson {
        "application/x-ndjson"
    } else {
        "application/json"
    };
    let response = client
        .post(url)
        .bearer_auth("load-test")
        .header("content-type", content_type)
        .body(body)
        .send()
        .map_err(|e| format!("transport: {e}"))?;
    let status = response.status();
    let text = response.text().map_err(|e| format!("body: {e}"))?;
    let envelope: Json = serde_json::from_str(&text)
        .map_err(|e| format!("{status}: not JSON ({e}): {text:.200}"))?;
    if !status.is_success() || envelope["success"] != json!(true) {
        return Err(format!("{status}: {text:.300}"));
    }
    Ok(envelope["result"].clone())
}

fn client_loop(id: usize, base: &str, d1: &str, until: Instant) -> ClientLog {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1));
    let mut log = ClientLog::default();
    let index_url = format!("{base}/accounts/{ACCOUNT}/vectorize/v2/indexes/{INDEX}");
    let d1_url = format!("{base}/accounts/{ACCOUNT}/d1/database/{d1}/query");
    let mut seq = 0u64;
    while Instant::now() < until {
        let op = match rng.next() % 10 {
            _ if std::env::var_os("D1VEC_LOAD_QUERY_ONLY").is_some() => Op::Query,
            0..=5 => Op::Query,
            6 | 7 => Op::Upsert,
            8 => Op::SqlWrite,
            _ => Op::SqlRead,
        };
        let started = Instant::now();
        let outcome = match op {
            Op::Query => {
                let body = json!({"vector": rng.vector(), "topK": 10, "returnMetadata": "none"});
                post(
                    &client,
                    &format!("{index_url}/query"),
                    body.to_string().into(),
                    false,
                )
                .and_then(|r| match r["matches"].as_array() {
                    Some(m) if m.len() == 10 => Ok(()),
                    _ => Err(format!("query answered {r:.200}")),
                })
            }
            Op::Upsert => {
                seq += 1;
                let vid = format!("c{id}-{seq}");
                let values = rng.vector();
                let line = json!({"id": vid, "values": values, "metadata": {"client": id as u64}});
                let outcome = post(
                    &client,
                    &format!("{index_url}/upsert"),
                    format!("{line}\n").into(),
                    true,
                );
                if outcome.is_ok() {
                    log.acked_vectors.push((vid, values));
                }
                outcome.map(|_| ())
            }
            Op::SqlWrite => {
                seq += 1;
                let body = json!({"sql": "INSERT INTO load_rows (client, seq) VALUES (?1, ?2)", "params": [id, seq]});
                let outcome = post(&client, &d1_url, body.to_string().into(), false);
                if outcome.is_ok() {
                    log.acked_rows += 1;
                }
                outcome.map(|_| ())
            }
            Op::SqlRead => {
                let body = json!({"sql": "SELECT count(*) AS n FROM load_rows WHERE client = ?1", "params": [id]});
                post(&client, &d1_url, body.to_string().into(), false).map(|_| ())
            }
        };
        log.latencies.push((op, started.elapsed()));
        if let Err(e) = outcome {
            log.errors.push(format!("{op:?}: {e}"));
        }
    }
    log
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The server's own cost per query: the same queries, one client, over HTTP and direct.
fn overhead(db: &Database, base: &str) -> (Duration, Duration) {
    let index = db.vectorize(INDEX).expect("index");
    let client = reqwest::blocking::Client::new();
    let url = format!("{base}/accounts/{ACCOUNT}/vectorize/v2/indexes/{INDEX}/query");
    let mut rng = Rng(7);
    let queries: Vec<Vec<f64>> = (0..500).map(|_| rng.vector()).collect();
    let options = QueryOptions {
        top_k: 10,
        ..QueryOptions::default()
    };
    // Warm both paths first.
    for q in queries.iter().take(50) {
        index.query(q, &options).expect("direct query");
        let body = json!({"vector": q, "topK": 10});
        post(&client, &url, body.to_string().into(), false).expect("http query");
    }
    let started = Instant::now();
    for q in &queries {
        index.query(q, &options).expect("direct query");
    }
    let direct = started.elapsed() / queries.len() as u32;
    let started = Instant::now();
    for q in &queries {
        let body = json!({"vector": q, "topK": 10});
        post(&client, &url, body.to_string().into(), false).expect("http query");
    }
    let http = started.elapsed() / queries.len() as u32;
    (direct, http)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a listing; there is nothing to list.
    }
    let seconds = env_or("D1VEC_LOAD_SECS", 60);
    let clients = env_or("D1VEC_LOAD_CLIENTS", 32) as usize;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Arc::new(Database::open(dir.path().join("load.sqlite")).expect("open"));
    db.exec("CREATE TABLE load_rows (client INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (client, seq))")
        .expect("table");
    db.create_index(&CreateIndex::new(INDEX, DIMS, Metric::Cosine))
        .expect("index");
    let mut rng = Rng(1);
    let preload: Vec<Vector> = (0..PRELOAD)
        .map(|i| Vector::new(format!("p{i}"), rng.vector()))
        .collect();
    let index = db.vectorize(INDEX).expect("index");
    for chunk in preload.chunks(1000) {
        index.insert(chunk).expect("preload");
    }

    let server = spawn(
        Arc::clone(&db),
        ServeOptions {
            listen: "127.0.0.1:0".parse().expect("address"),
            ..ServeOptions::default()
        },
    )
    .expect("serve");
    let base = server.base_url();
    let d1 = reqwest::blocking::Client::new()
        .get(format!("{base}/accounts/{ACCOUNT}/d1/database"))
        .bearer_auth("load-test")
        .send()
        .and_then(|r| r.json::<Json>())
        .expect("list databases")["result"][0]["uuid"]
        .as_str()
        .expect("a database uuid")
        .to_owned();

    let (direct, http) = overhead(&db, &base);
    println!(
        "server overhead per query (1 client, topK 10, {DIMS} dims, {PRELOAD} vectors): direct {:.3} ms, over HTTP {:.3} ms, difference {:.3} ms",
        ms(direct),
        ms(http),
        ms(http.saturating_sub(direct))
    );

    println!("load: {clients} clients for {seconds} s (60% query, 20% upsert, 10% SQL write, 10% SQL read)");
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let logs: Vec<ClientLog> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|id| {
                let (base, d1) = (&base, &d1);
                s.spawn(move || client_loop(id, base, d1, until))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let elapsed = started.elapsed();
    server.shutdown().expect("graceful shutdown");

    let mut failures = 0usize;
    for op in [Op::Query, Op::Upsert, Op::SqlWrite, Op::SqlRead] {
        let mut lat: Vec<Duration> = logs
            .iter()
            .flat_map(|l| {
                l.latencies
                    .iter()
                    .filter(|(o, _)| *o == op)
                    .map(|(_, d)| *d)
            })
            .collect();
        lat.sort();
        println!(
            "{op:>9?}: {:>7} requests, {:>8.1}/s, p50 {:>7.2} ms, p99 {:>7.2} ms",
            lat.len(),
            lat.len() as f64 / elapsed.as_secs_f64(),
            ms(percentile(&lat, 0.50)),
            ms(percentile(&lat, 0.99))
        );
    }
    let errors: Vec<&String> = logs.iter().flat_map(|l| &l.errors).collect();
    println!("error responses: {}", errors.len());
    for e in errors.iter().take(10) {
        println!("  {e}");
    }
    failures += errors.len();

    // Every acknowledged write must be in the database after the shutdown.
    let index = db.vectorize(INDEX).expect("index");
    let mut acked_vectors = 0usize;
    let mut lost_vectors = 0usize;
    for log in &logs {
        for chunk in log.acked_vectors.chunks(20) {
            let ids: Vec<String> = chunk.iter().map(|(id, _)| id.clone()).collect();
            let found = index.get_by_ids(&ids).expect("get_by_ids");
            for (id, values) in chunk {
                acked_vectors += 1;
                let stored = found.iter().find(|v| &v.id == id);
                let same = stored.is_some_and(|v| {
                    v.values
                        .iter()
                        .zip(values)
                        .all(|(a, b)| (a - (*b as f32 as f64)).abs() < 1e-6)
                });
                if !same {
                    lost_vectors += 1;
                }
            }
        }
    }
    let mut acked_rows = 0u64;
    let mut lost_rows = 0u64;
    for (id, log) in logs.iter().enumerate() {
        let stored = db
            .prepare("SELECT count(*) AS n FROM load_rows WHERE client = ?1")
            .bind([id as i64])
            .first_column("n")
            .expect("count")
            .and_then(|n| n.as_u64())
            .unwrap_or(0);
        acked_rows += log.acked_rows;
        lost_rows += log.acked_rows.saturating_sub(stored);
    }
    println!("acknowledged writes: {acked_vectors} vectors ({lost_vectors} lost), {acked_rows} rows ({lost_rows} lost)");
    failures += lost_vectors + lost_rows as usize;
    if failures > 0 {
        eprintln!("serve_load: FAILED ({failures} errors or lost writes)");
        std::process::exit(1);
    }
    println!("serve_load: ok");
}
