//! The vector engine's figures for the README and the planner's threshold, measured on
//! synthetic clustered vectors. Not a test: run it in release mode.
//!
//! ```sh
//! cargo run --release --example vecbench -- build  /tmp/vb 100000 1536
//! cargo run --release --example vecbench -- query  /tmp/vb 100000 1536   # a fresh process
//! cargo run --release --example vecbench -- sweep  /tmp/vb 100000 1536   # planner threshold
//! ```
//! Namespaces of fixed sizes stand for tenants: `n100` (0.1 % of 100k), `n1000` (1 %), and
//! `n500`..`n16000` for the threshold sweep; the rest is `rest`.

use std::time::Instant;

use d1vec::index::{exact, Metric};
use d1vec::vectorize::types::{QueryOptions, Vector};
use d1vec::vectorize::{CreateIndex, EngineOptions};
use d1vec::Database;

const BUCKETS: &[(&str, usize)] = &[
    ("n100", 100),
    ("n500", 500),
    ("n1000", 1000),
    ("n2000", 2000),
    ("n4000", 4000),
    ("n8000", 8000),
    ("n16000", 16000),
];

/// splitmix64: a tiny deterministic generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn gauss(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Clustered, text-embedding-like data: 200 centres, each point a centre plus noise, so
/// that near neighbours are not trivially separated.
fn dataset(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng(seed);
    let centres: Vec<Vec<f64>> = (0..200)
        .map(|_| (0..dims).map(|_| rng.gauss()).collect())
        .collect();
    (0..n)
        .map(|_| {
            let c = &centres[(rng.next() % 200) as usize];
            c.iter().map(|x| (x + 0.9 * rng.gauss()) as f32).collect()
        })
        .collect()
}

fn namespace_of(i: usize) -> &'static str {
    let mut start = 0;
    for (name, size) in BUCKETS {
        if i >= start && i < start + size {
            return name;
        }
        start += size;
    }
    "rest"
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<f64>()
                    .unwrap_or(0.0)
            })
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    if e.path().is_dir() {
                        dir_bytes(&e.path())
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// `v` scaled to unit length, as the engine stores cosine vectors.
fn prepared(v: &[f32]) -> Vec<f32> {
    let mut out = v.to_vec();
    d1vec::index::distance::normalize_in_place(&mut out);
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, dir) = (args[1].as_str(), std::path::PathBuf::from(&args[2]));
    let n: usize = args.get(3).map_or(100_000, |s| s.parse().unwrap());
    let dims: usize = args.get(4).map_or(1536, |s| s.parse().unwrap());
    let db_path = dir.join("bench.sqlite");
    match mode {
        "build" => {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let data = dataset(n, dims, 7);
            let db = Database::open(&db_path).unwrap();
            db.set_vector_options(EngineOptions {
                seal_at: usize::MAX,
                ..EngineOptions::default()
            });
            db.create_index(&CreateIndex::new("bench", dims, Metric::Cosine))
                .unwrap();
            let ix = db.vectorize("bench").unwrap();
            let t = Instant::now();
            for (b, chunk) in data.chunks(1000).enumerate() {
                let vs: Vec<Vector> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let id = b * 1000 + i;
                        Vector::new(format!("v{id}"), v.iter().map(|&x| f64::from(x)).collect())
                            .with_namespace(namespace_of(id))
                    })
                    .collect();
                ix.upsert(&vs).unwrap();
            }
            let ingest = t.elapsed().as_secs_f64();
            let t = Instant::now();
            ix.seal().unwrap();
            let seal = t.elapsed().as_secs_f64();
            let raw = (n * dims * 4) as f64;
            println!(
                "{{\"n\":{n},\"dims\":{dims},\"ingest_s\":{ingest:.2},\"ingest_vps\":{:.0},\"seal_s\":{seal:.2},\"sqlite_bytes\":{},\"index_bytes\":{},\"raw_vector_bytes\":{raw}}}",
                n as f64 / ingest,
                std::fs::metadata(&db_path).map(|m| m.len()).unwrap_or(0) + std::fs::metadata(dir.join("bench.sqlite-wal")).map(|m| m.len()).unwrap_or(0),
                dir_bytes(&dir.join("bench.sqlite.vectors"))
            );
        }
        "query" => {
            let started = Instant::now();
            let db = Database::open(&db_path).unwrap();
            let ix = db.vectorize("bench").unwrap();
            let data = dataset(n, dims, 7);
            let mut rng = Rng(99);
            let queries: Vec<Vec<f32>> = (0..100)
                .map(|_| {
                    data[(rng.next() % n as u64) as usize]
                        .iter()
                        .map(|x| x + 0.3 * rng.gauss() as f32)
                        .collect()
                })
                .collect();
            let rss_before_open = rss_mib();
            let t = Instant::now();
            let first = ix
                .query(
                    &queries[0].iter().map(|&x| f64::from(x)).collect::<Vec<_>>(),
                    &QueryOptions::new().with_top_k(10),
                )
                .unwrap();
            let first_answer_ms = t.elapsed().as_secs_f64() * 1000.0;
            let rss_after_open = rss_mib();
            assert_eq!(first.count, 10);
            let prep: Vec<Vec<f32>> = data.iter().map(|v| prepared(v)).collect();
            let ids: Vec<u64> = (0..n as u64).collect();
            let flat: Vec<f32> = prep.iter().flatten().copied().collect();
            for (label, ns) in [
                ("unfiltered", None),
                ("tenant_1pct", Some("n1000")),
                ("tenant_0.1pct", Some("n100")),
            ] {
                let mut recall = 0.0;
                let mut elapsed = 0.0;
                let before = db.vector_stats();
                for q in &queries {
                    let qp = prepared(q);
                    let allow: Option<d1vec::index::IdBitset> = ns.map(|ns| {
                        (0..n)
                            .filter(|&i| namespace_of(i) == ns)
                            .map(|i| i as u64)
                            .collect()
                    });
                    let truth = exact::top_k_matrix(
                        Metric::Cosine,
                        &qp,
                        &ids,
                        &flat,
                        dims,
                        10,
                        allow.as_ref().map(|a| a as &dyn d1vec::index::Allow),
                    );
                    let mut opts = QueryOptions::new().with_top_k(10);
                    if let Some(ns) = ns {
                        opts = opts.with_namespace(ns);
                    }
                    let qv: Vec<f64> = q.iter().map(|&x| f64::from(x)).collect();
                    let t = Instant::now();
                    let got = ix.query(&qv, &opts).unwrap();
                    elapsed += t.elapsed().as_secs_f64();
                    let want: Vec<String> = truth
                        .iter()
                        .take(10)
                        .map(|h| format!("v{}", h.id))
                        .collect();
                    recall += got.matches.iter().filter(|m| want.contains(&m.id)).count() as f64
                        / want.len().min(10) as f64;
                }
                let after = db.vector_stats();
                println!(
                    "{{\"case\":\"{label}\",\"recall_at_10\":{:.4},\"qps_1_thread\":{:.1},\"exact_paths\":{},\"graph_paths\":{}}}",
                    recall / queries.len() as f64,
                    queries.len() as f64 / elapsed,
                    after.exact_searches - before.exact_searches,
                    after.graph_searches - before.graph_searches
                );
            }
            println!(
                "{{\"first_answer_ms_after_open\":{first_answer_ms:.1},\"process_ms_to_first_answer\":{:.1},\"rss_mib_before_open\":{rss_before_open:.1},\"rss_mib_after_first_query\":{rss_after_open:.1},\"index_file_mib\":{:.1},\"raw_vector_mib\":{:.1}}}",
                0.0,
                dir_bytes(&dir.join("bench.sqlite.vectors")) as f64 / 1048576.0,
                (n * dims * 4) as f64 / 1048576.0
            );
            let _ = started;
        }
        "open" => {
            // Fresh process, nothing else loaded: time and memory to the first answer.
            let started = Instant::now();
            let db = Database::open(&db_path).unwrap();
            let ix = db.vectorize("bench").unwrap();
            let mut rng = Rng(5);
            let q: Vec<f64> = (0..dims).map(|_| rng.gauss()).collect();
            let got = ix.query(&q, &QueryOptions::new().with_top_k(10)).unwrap();
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            println!(
                "{{\"open_to_first_answer_ms\":{ms:.1},\"matches\":{},\"rss_mib\":{:.1},\"index_file_mib\":{:.1}}}",
                got.count,
                rss_mib(),
                dir_bytes(&dir.join("bench.sqlite.vectors")) as f64 / 1048576.0
            );
        }
        "sweep" => {
            // The planner threshold: per candidate-set size, the time of the exact path and of
            // the graph path (forced through exact_max_candidates), one thread.
            let db = Database::open(&db_path).unwrap();
            let ix = db.vectorize("bench").unwrap();
            let mut rng = Rng(11);
            let queries: Vec<Vec<f64>> = (0..50)
                .map(|_| (0..dims).map(|_| rng.gauss()).collect())
                .collect();
            for (ns, size) in BUCKETS {
                let mut times = [0.0f64; 2];
                for (slot, limit) in [(0, usize::MAX), (1, 0)] {
                    db.set_vector_options(EngineOptions {
                        exact_max_candidates: limit,
                        ..EngineOptions::default()
                    });
                    let _ = ix.query(
                        &queries[0],
                        &QueryOptions::new().with_top_k(10).with_namespace(*ns),
                    );
                    let t = Instant::now();
                    for q in &queries {
                        ix.query(q, &QueryOptions::new().with_top_k(10).with_namespace(*ns))
                            .unwrap();
                    }
                    times[slot] = t.elapsed().as_secs_f64() * 1000.0 / queries.len() as f64;
                }
                println!(
                    "{{\"candidates\":{size},\"exact_ms\":{:.3},\"graph_ms\":{:.3}}}",
                    times[0], times[1]
                );
            }
        }
        other => panic!("unknown mode {other}"),
    }
}
