//! `bench measure`: the search half of `bench run`, meant to run in a fresh process on a
//! database `bench run` built. It answers one query first (the cold-start figure), then
//! sweeps every case × strategy × ef × thread count and emits one result line each.
//!
//! Strategies: `d1vec` is the planner as shipped (exact scan at or below
//! `exact_max_candidates`, the graph above); `d1vec-exact` forces the exact scan. A case
//! whose filter is one tenant's equality is asked through the tenant's namespace, the way
//! a tenant session asks (the rows are the same); every other case through its filter.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use serde_json::{json, Map, Value};

use super::cases::Case;
use super::folder;
use super::progress::Progress;
use super::run::{common_fields, line, DB_FILE, INDEX};
use crate::error::{Error, Result};
use crate::vectorize::types::QueryOptions;
use crate::vectorize::{EngineOptions, VectorIndex};
use crate::Database;

/// What to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasureOptions {
    /// Thread counts serving the query list (default 1 and 2).
    pub threads: Vec<usize>,
    /// The graph's ef values to sweep (default 16, 32, 64, 128, 256).
    pub efs: Vec<usize>,
    /// Use only the first this many queries (default all).
    pub queries: Option<usize>,
    /// Queries for the forced exact scan on cases passing over 5 % of the rows (each such
    /// query reads that share of all vectors; default 200).
    pub exact_queries: usize,
}

impl Default for MeasureOptions {
    fn default() -> Self {
        MeasureOptions {
            threads: vec![1, 2],
            efs: vec![16, 32, 64, 128, 256],
            queries: None,
            exact_queries: 200,
        }
    }
}

/// The k of every measured query.
const K: usize = 10;

/// Resident memory of this process in bytes (Linux; `None` elsewhere).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// One line of human-readable summary for a result line (for progress output).
pub fn summary(line: &Value) -> Option<String> {
    let get = |k: &str| line.get(k).cloned().unwrap_or(Value::Null);
    match line.get("measure")?.as_str()? {
        "search" => Some(format!(
            "{:<11} {:<12} ef={:<4} threads={} recall@10={:.4} qps={:.0}",
            get("system").as_str().unwrap_or(""),
            get("case").as_str().unwrap_or(""),
            get("ef"),
            get("threads"),
            get("recall_at_10").as_f64().unwrap_or(0.0),
            get("qps").as_f64().unwrap_or(0.0),
        )),
        "open" => Some(format!(
            "first answer {:.1} ms in process, rss after open {:.1} MiB",
            get("first_answer_ms_in_process").as_f64().unwrap_or(0.0),
            get("rss_after_open_bytes").as_f64().unwrap_or(0.0) / 1048576.0
        )),
        _ => None,
    }
}

/// How a case's queries are put to the index.
#[derive(Debug, Clone)]
enum Scope {
    All,
    Namespace(String),
    Filter(Value),
}

fn scope_of(case: &Case) -> Scope {
    match &case.filter {
        None => Scope::All,
        Some(Value::Object(f)) if f.len() == 1 => match f.get("tenant") {
            Some(Value::String(t)) => Scope::Namespace(t.clone()),
            _ => Scope::Filter(Value::Object(f.clone())),
        },
        Some(f) => Scope::Filter(f.clone()),
    }
}

fn query_options(scope: &Scope) -> QueryOptions {
    let o = QueryOptions::new().with_top_k(K);
    match scope {
        Scope::All => o,
        Scope::Namespace(ns) => o.with_namespace(ns.clone()),
        Scope::Filter(f) => o.with_filter(f.clone()),
    }
}

/// Runs the measurements on `dir`'s benchmark database, handing each result line to `emit`
/// as soon as it is measured; the first line (`open`) comes right after the first answer.
pub fn measure(
    dir: &Path,
    options: &MeasureOptions,
    progress: &dyn Progress,
    emit: &mut dyn FnMut(Value),
) -> Result<()> {
    let started = Instant::now();
    let db = Database::open(dir.join(DB_FILE))?;
    let ix = db.vectorize(INDEX)?;
    let first = folder::first_query(dir)?;
    let first: Vec<f64> = first.iter().map(|&x| f64::from(x)).collect();
    ix.query(&first, &QueryOptions::new().with_top_k(K))?;
    let first_ms = started.elapsed().as_secs_f64() * 1000.0;
    let rss_open = rss_bytes();

    let info = ix.describe()?;
    let n = usize::try_from(info.vector_count).unwrap_or(usize::MAX);
    let dims = ix.dimensions();
    let metric = ix.metric();
    let common = common_fields(dir, n, dims, metric.as_str());
    emit(line(
        &common,
        "d1vec",
        "open",
        json!({
            "first_answer_ms_in_process": first_ms,
            "rss_after_open_bytes": rss_open,
            "fresh_process": false,
        }),
    ));

    let (qdims, mut queries) = folder::read_queries(dir)?;
    if qdims != dims {
        return Err(Error::invalid(
            "query.fvecs",
            format!("{qdims} dimensions, the index has {dims}"),
        ));
    }
    if let Some(limit) = options.queries {
        queries.truncate(limit * dims);
    }
    let queries: Vec<Vec<f64>> = queries
        .chunks_exact(dims)
        .map(|q| q.iter().map(|&x| f64::from(x)).collect())
        .collect();
    let meta = folder::read_meta(dir, n)?;
    let rows: HashMap<String, i32> = (0..n)
        .map(|row| (folder::row_id(&meta, row), row as i32))
        .collect();
    let cases = super::cases::CaseSet::load(&dir.join(super::cases::CASES_FILE))?;

    for case in &cases.cases {
        let truth = folder::read_truth(dir, case)?;
        let scope = scope_of(case);
        // One unmeasured pass first: the fresh process maps the segment files lazily, and the
        // first timed setting would otherwise pay every page fault of the case.
        db.set_vector_options(EngineOptions::default());
        run_queries(&ix, &queries, &scope, 1)?;
        for system in ["d1vec", "d1vec-exact"] {
            let exact = system == "d1vec-exact";
            let efs: Vec<Option<usize>> = if exact {
                vec![None]
            } else {
                options.efs.iter().map(|&e| Some(e)).collect()
            };
            let count = if exact && case.selectivity > 0.05 {
                options.exact_queries.min(queries.len())
            } else {
                queries.len()
            };
            let mut all_exact_before = false;
            for ef in efs {
                if all_exact_before {
                    break;
                }
                db.set_vector_options(EngineOptions {
                    ef_search: ef.unwrap_or(EngineOptions::default().ef_search),
                    exact_max_candidates: if exact {
                        usize::MAX
                    } else {
                        EngineOptions::default().exact_max_candidates
                    },
                    ..EngineOptions::default()
                });
                for &threads in &options.threads {
                    let before = db.vector_stats();
                    let run = run_queries(&ix, &queries[..count], &scope, threads)?;
                    let after = db.vector_stats();
                    let recall = recall_at_k(&run.answers, &truth, &rows, case.rows);
                    let graph = after.graph_searches - before.graph_searches;
                    let exact_n = after.exact_searches - before.exact_searches;
                    let fallbacks = after.exact_fallbacks - before.exact_fallbacks;
                    all_exact_before = graph == 0;
                    let mut fields = Map::new();
                    fields.insert("case".into(), json!(case.name));
                    fields.insert("selectivity".into(), json!(case.selectivity));
                    fields.insert("threads".into(), json!(threads));
                    fields.insert("ef".into(), json!(ef));
                    fields.insert("k".into(), json!(K));
                    fields.insert("queries".into(), json!(count));
                    fields.insert("recall_at_10".into(), json!(recall));
                    fields.insert("qps".into(), json!(count as f64 / run.wall_s.max(1e-12)));
                    for (name, p) in [("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
                        fields.insert(name.into(), json!(run.percentile_ms(p)));
                    }
                    fields.insert(
                        "via".into(),
                        json!(match scope {
                            Scope::All => "all",
                            Scope::Namespace(_) => "namespace",
                            Scope::Filter(_) => "filter",
                        }),
                    );
                    fields.insert(
                        "planner".into(),
                        json!({"exact": exact_n, "graph": graph, "fallback": fallbacks}),
                    );
                    let l = line(&common, system, "search", Value::Object(fields));
                    if let Some(s) = summary(&l) {
                        progress.note(&s);
                    }
                    emit(l);
                }
            }
        }
    }
    emit(line(
        &common,
        "d1vec",
        "memory",
        json!({"when": "after_queries", "rss_bytes": rss_bytes()}),
    ));
    Ok(())
}

/// The answers and timings of one pass over the queries.
struct QueryRun {
    answers: Vec<Vec<String>>,
    /// Per-query latency in seconds (single-thread passes only).
    latencies: Vec<f64>,
    wall_s: f64,
}

impl QueryRun {
    fn percentile_ms(&self, p: f64) -> Option<f64> {
        if self.latencies.is_empty() {
            return None;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort_by(f64::total_cmp);
        let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
        Some(sorted[idx] * 1000.0)
    }
}

fn run_queries(
    ix: &VectorIndex,
    queries: &[Vec<f64>],
    scope: &Scope,
    threads: usize,
) -> Result<QueryRun> {
    let options = query_options(scope);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::invalid("threads", e.to_string()))?;
    let ask = |q: &Vec<f64>| -> Result<Vec<String>> {
        Ok(ix
            .query(q, &options)?
            .matches
            .into_iter()
            .map(|m| m.id)
            .collect())
    };
    // Warm the caches and the planner's state before timing.
    for q in queries.iter().take(5) {
        ask(q)?;
    }
    pool.install(|| {
        let started = Instant::now();
        if threads <= 1 {
            let mut answers = Vec::with_capacity(queries.len());
            let mut latencies = Vec::with_capacity(queries.len());
            for q in queries {
                let t = Instant::now();
                answers.push(ask(q)?);
                latencies.push(t.elapsed().as_secs_f64());
            }
            Ok(QueryRun {
                answers,
                latencies,
                wall_s: started.elapsed().as_secs_f64(),
            })
        } else {
            let answers = queries.par_iter().map(ask).collect::<Result<Vec<_>>>()?;
            Ok(QueryRun {
                answers,
                latencies: Vec::new(),
                wall_s: started.elapsed().as_secs_f64(),
            })
        }
    })
}

/// Mean over queries of |returned ∩ true top-k| / min(k, rows passing).
fn recall_at_k(
    answers: &[Vec<String>],
    truth: &[Vec<i32>],
    rows: &HashMap<String, i32>,
    passing: usize,
) -> f64 {
    if answers.is_empty() {
        return 0.0;
    }
    let want = K.min(passing);
    if want == 0 {
        return 1.0;
    }
    let total: f64 = answers
        .iter()
        .zip(truth)
        .map(|(got, true_rows)| {
            let top: Vec<i32> = true_rows.iter().take(K).copied().collect();
            let hit = got
                .iter()
                .filter(|id| rows.get(*id).is_some_and(|r| top.contains(r)))
                .count();
            hit as f64 / want as f64
        })
        .sum();
    total / answers.len() as f64
}
