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
use crate::vectorize::{EngineOptions, Memory, VectorIndex};
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
    /// Fresh index handles per filtered case whose filter is the same for every query: in
    /// each, the first query with the filter is timed as cold (first sight), then
    /// [`WARM_PER_HANDLE`] more as warm (default 5). A case with a filter per query is
    /// measured over all its queries in one fresh handle instead.
    pub cold_runs: usize,
    /// Answer one query, emit the `open` line and stop (the first-answer probe).
    pub first_only: bool,
    /// Where sealed segments' search data lives (`EngineOptions::memory`).
    pub memory: Memory,
}

/// Warm (repeated-filter) queries timed in each fresh handle after its cold query.
pub const WARM_PER_HANDLE: usize = 10;

impl Default for MeasureOptions {
    fn default() -> Self {
        MeasureOptions {
            threads: vec![1, 2],
            efs: vec![16, 32, 64, 128, 256],
            queries: None,
            exact_queries: 200,
            cold_runs: 5,
            first_only: false,
            memory: Memory::Mapped,
        }
    }
}

/// The k of every measured query.
const K: usize = 10;

/// Resident memory of this process in bytes (Linux; `None` elsewhere).
pub fn rss_bytes() -> Option<u64> {
    parse_vmrss(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// The `VmRSS:` figure of a `/proc/<pid>/status` text, in bytes (the kernel writes kB).
pub fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let kib: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => kib.checked_mul(1024),
        Some(_) => None,
    }
}

/// This process's resident memory with an empty database open (a fresh file in the
/// system's temporary folder, removed after): the floor every other figure sits on.
pub fn baseline_rss() -> Result<Option<u64>> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("d1vec-baseline-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
    let rss = {
        let db = Database::open(dir.join("empty.sqlite"));
        let rss = rss_bytes();
        drop(db?);
        rss
    };
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rss)
}

/// Bytes of every file of the database at `db` (see [`super::pagecache::database_files`]).
pub fn index_bytes(db: &Path) -> u64 {
    super::pagecache::database_files(db)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
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
            "first answer {:.1} ms in process, rss: baseline {:.1} MiB, after open {:.1} MiB, after the first query {:.1} MiB",
            get("first_answer_ms_in_process").as_f64().unwrap_or(0.0),
            get("rss_baseline_bytes").as_f64().unwrap_or(0.0) / 1048576.0,
            get("rss_after_open_bytes").as_f64().unwrap_or(0.0) / 1048576.0,
            get("rss_after_first_query_bytes").as_f64().unwrap_or(0.0) / 1048576.0
        )),
        "filter_cold" => Some(format!(
            "{:<11} {:<12} first sight p50 {:.2} ms p99 {:.2} ms ({:.0} qps), repeated p50 {:.2} ms p99 {:.2} ms ({:.0} qps)",
            get("system").as_str().unwrap_or(""),
            get("case").as_str().unwrap_or(""),
            get("cold_p50_ms").as_f64().unwrap_or(0.0),
            get("cold_p99_ms").as_f64().unwrap_or(0.0),
            get("cold_qps").as_f64().unwrap_or(0.0),
            get("warm_p50_ms").as_f64().unwrap_or(0.0),
            get("warm_p99_ms").as_f64().unwrap_or(0.0),
            get("warm_qps").as_f64().unwrap_or(0.0),
        )),
        "first_answer" => Some(format!(
            "first answer, fresh process: {:.0} ms warm, {:.0} ms with the files evicted",
            get("warm_ms").as_f64().unwrap_or(0.0),
            get("evicted_ms").as_f64().unwrap_or(0.0),
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
    /// Query `i` with filter `i`.
    PerQuery(Vec<Value>),
}

impl Scope {
    fn via(&self) -> &'static str {
        match self {
            Scope::All => "all",
            Scope::Namespace(_) => "namespace",
            Scope::Filter(_) => "filter",
            Scope::PerQuery(_) => "filter per query",
        }
    }
}

fn scope_of(case: &Case) -> Scope {
    if let Some(filters) = &case.query_filters {
        return Scope::PerQuery(filters.clone());
    }
    match &case.filter {
        None => Scope::All,
        Some(Value::Object(f)) if f.len() == 1 => match f.get("tenant") {
            Some(Value::String(t)) => Scope::Namespace(t.clone()),
            _ => Scope::Filter(Value::Object(f.clone())),
        },
        Some(f) => Scope::Filter(f.clone()),
    }
}

/// The options query `i` of a case is asked with.
fn query_options(scope: &Scope, i: usize) -> QueryOptions {
    let o = QueryOptions::new().with_top_k(K);
    match scope {
        Scope::All => o,
        Scope::Namespace(ns) => o.with_namespace(ns.clone()),
        Scope::Filter(f) => o.with_filter(f.clone()),
        Scope::PerQuery(filters) => match filters.get(i) {
            Some(f) => o.with_filter(f.clone()),
            None => o,
        },
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
    let db_path = dir.join(DB_FILE);
    // The baseline first: it must not include the benchmark database's state.
    let rss_baseline = if options.first_only {
        None
    } else {
        baseline_rss()?
    };
    let started = Instant::now();
    let db = Database::open(&db_path)?;
    db.set_vector_options(EngineOptions {
        memory: options.memory,
        ..EngineOptions::default()
    });
    let ix = db.vectorize(INDEX)?;
    let rss_open = rss_bytes();
    let first = folder::first_query(dir)?;
    let first: Vec<f64> = first.iter().map(|&x| f64::from(x)).collect();
    ix.query(&first, &QueryOptions::new().with_top_k(K))?;
    let first_ms = started.elapsed().as_secs_f64() * 1000.0;
    let rss_first = rss_bytes();
    let bytes = index_bytes(&db_path);

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
            "rss_baseline_bytes": rss_baseline,
            "rss_after_open_bytes": rss_open,
            "rss_after_first_query_bytes": rss_first,
            "index_bytes": bytes,
            "fresh_process": false,
        }),
    ));
    if options.first_only {
        return Ok(());
    }
    // TODO(integrator): `--memory mapped|resident` sets `EngineOptions.memory` (being added
    // with the resident mode) on `db` here and on the fresh handles of `measure_cold`, and is
    // passed on by `run::measure_in_child`; every result line should then carry `memory`.

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
    drop(meta);
    let cases = super::cases::CaseSet::load(&dir.join(super::cases::CASES_FILE))?;

    for case in &cases.cases {
        let truth = folder::read_truth(dir, case)?;
        let scope = scope_of(case);
        if case.is_filtered() && options.cold_runs > 0 {
            // Before anything in this process has asked this filter.
            let cold = measure_cold(
                &db_path,
                &queries,
                &scope,
                options.cold_runs,
                options.memory,
            )?;
            let mut fields = cold.fields(case, &truth, &rows);
            fields.insert("via".into(), json!(scope.via()));
            let l = line(&common, "d1vec", "filter_cold", Value::Object(fields));
            if let Some(s) = summary(&l) {
                progress.note(&s);
            }
            emit(l);
        }
        // One unmeasured pass first: the fresh process maps the segment files lazily, and the
        // first timed setting would otherwise pay every page fault of the case.
        db.set_vector_options(EngineOptions {
            memory: options.memory,
            ..EngineOptions::default()
        });
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
                    memory: options.memory,
                    ..EngineOptions::default()
                });
                for &threads in &options.threads {
                    let before = db.vector_stats();
                    let run = run_queries(&ix, &queries[..count], &scope, threads)?;
                    let after = db.vector_stats();
                    let recall = recall_at_k(run.answers.iter().enumerate(), &truth, &rows, case);
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
                        fields.insert(name.into(), json!(percentile_ms(&run.latencies, p)));
                    }
                    fields.insert("via".into(), json!(scope.via()));
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
    let rss = rss_bytes();
    emit(line(
        &common,
        "d1vec",
        "memory",
        json!({
            "when": "after_queries",
            "rss_bytes": rss,
            "index_bytes": bytes,
            "rss_share_of_index": rss.map(|r| r as f64 / bytes.max(1) as f64),
        }),
    ));
    Ok(())
}

/// First-sight (cold) and repeated (warm) answers of one filtered case.
#[derive(Debug, Default)]
struct ColdWarm {
    handles: usize,
    /// (query number, answer, latency in seconds).
    cold: Vec<(usize, Vec<String>, f64)>,
    warm: Vec<(usize, Vec<String>, f64)>,
}

impl ColdWarm {
    /// The `filter_cold` line's fields: for each side, queries, p50/p99/mean latency, QPS
    /// (queries over their summed latency, one thread) and recall@10.
    fn fields(
        &self,
        case: &Case,
        truth: &[Vec<i32>],
        rows: &HashMap<String, i32>,
    ) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("case".into(), json!(case.name));
        m.insert("selectivity".into(), json!(case.selectivity));
        m.insert("threads".into(), json!(1));
        m.insert("ef".into(), Value::Null);
        m.insert("k".into(), json!(K));
        m.insert("fresh_handles".into(), json!(self.handles));
        for (side, samples) in [("cold", &self.cold), ("warm", &self.warm)] {
            let lat: Vec<f64> = samples.iter().map(|s| s.2).collect();
            let total: f64 = lat.iter().sum();
            m.insert(format!("{side}_queries"), json!(samples.len()));
            m.insert(format!("{side}_p50_ms"), json!(percentile_ms(&lat, 0.50)));
            m.insert(format!("{side}_p99_ms"), json!(percentile_ms(&lat, 0.99)));
            m.insert(
                format!("{side}_mean_ms"),
                json!((!lat.is_empty()).then(|| total * 1000.0 / lat.len() as f64)),
            );
            m.insert(
                format!("{side}_qps"),
                json!((total > 0.0).then(|| lat.len() as f64 / total)),
            );
            m.insert(
                format!("{side}_recall_at_10"),
                json!(recall_at_k(
                    samples.iter().map(|s| (s.0, &s.1)),
                    truth,
                    rows,
                    case
                )),
            );
        }
        m
    }
}

/// Measures a filtered case's first sight against repeats, at the engine's default
/// settings, in fresh handles (a new `Database`: empty caches, state loaded first by
/// `warm()` so the load is not charged to the filter):
/// - one filter for every query: `runs` handles; in handle `r`, query `r` is the cold
///   sample, then [`WARM_PER_HANDLE`] further queries with the same filter are warm;
/// - a filter per query: one handle; each query is asked twice in a row, the first time
///   cold (its filter never seen), the second warm.
fn measure_cold(
    db_path: &Path,
    queries: &[Vec<f64>],
    scope: &Scope,
    runs: usize,
    memory: Memory,
) -> Result<ColdWarm> {
    let mut out = ColdWarm::default();
    if queries.is_empty() {
        return Ok(out);
    }
    let ask = |ix: &VectorIndex, i: usize| -> Result<(usize, Vec<String>, f64)> {
        let options = query_options(scope, i);
        let t = Instant::now();
        let matches = ix.query(&queries[i], &options)?;
        let seconds = t.elapsed().as_secs_f64();
        Ok((
            i,
            matches.matches.into_iter().map(|m| m.id).collect(),
            seconds,
        ))
    };
    let fresh = || -> Result<(Database, VectorIndex)> {
        let db = Database::open(db_path)?;
        db.set_vector_options(EngineOptions {
            memory,
            ..EngineOptions::default()
        });
        let ix = db.vectorize(INDEX)?;
        ix.warm()?;
        Ok((db, ix))
    };
    match scope {
        Scope::PerQuery(_) => {
            let (_db, ix) = fresh()?;
            out.handles = 1;
            for i in 0..queries.len() {
                out.cold.push(ask(&ix, i)?);
                out.warm.push(ask(&ix, i)?);
            }
        }
        _ => {
            for r in 0..runs.min(queries.len()) {
                let (_db, ix) = fresh()?;
                out.handles += 1;
                out.cold.push(ask(&ix, r)?);
                for j in 1..=WARM_PER_HANDLE {
                    out.warm.push(ask(&ix, (r + j * runs) % queries.len())?);
                }
            }
        }
    }
    Ok(out)
}

/// The answers and timings of one pass over the queries.
struct QueryRun {
    answers: Vec<Vec<String>>,
    /// Per-query latency in seconds (single-thread passes only).
    latencies: Vec<f64>,
    wall_s: f64,
}

/// The `p` quantile (nearest rank) of latencies in seconds, in ms; `None` when empty.
pub fn percentile_ms(latencies: &[f64], p: f64) -> Option<f64> {
    if latencies.is_empty() {
        return None;
    }
    let mut sorted = latencies.to_vec();
    sorted.sort_by(f64::total_cmp);
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[idx] * 1000.0)
}

fn run_queries(
    ix: &VectorIndex,
    queries: &[Vec<f64>],
    scope: &Scope,
    threads: usize,
) -> Result<QueryRun> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::invalid("threads", e.to_string()))?;
    let ask = |i: usize, q: &Vec<f64>| -> Result<Vec<String>> {
        Ok(ix
            .query(q, &query_options(scope, i))?
            .matches
            .into_iter()
            .map(|m| m.id)
            .collect())
    };
    // Warm the caches and the planner's state before timing.
    for (i, q) in queries.iter().enumerate().take(5) {
        ask(i, q)?;
    }
    pool.install(|| {
        let started = Instant::now();
        if threads <= 1 {
            let mut answers = Vec::with_capacity(queries.len());
            let mut latencies = Vec::with_capacity(queries.len());
            for (i, q) in queries.iter().enumerate() {
                let t = Instant::now();
                answers.push(ask(i, q)?);
                latencies.push(t.elapsed().as_secs_f64());
            }
            Ok(QueryRun {
                answers,
                latencies,
                wall_s: started.elapsed().as_secs_f64(),
            })
        } else {
            let answers = queries
                .par_iter()
                .enumerate()
                .map(|(i, q)| ask(i, q))
                .collect::<Result<Vec<_>>>()?;
            Ok(QueryRun {
                answers,
                latencies: Vec::new(),
                wall_s: started.elapsed().as_secs_f64(),
            })
        }
    })
}

/// Mean over the answered queries `(query number, ids)` of |returned ∩ true top-k| /
/// min(k, rows that query's filter passes).
fn recall_at_k<'a>(
    answers: impl Iterator<Item = (usize, &'a Vec<String>)>,
    truth: &[Vec<i32>],
    rows: &HashMap<String, i32>,
    case: &Case,
) -> f64 {
    let (mut total, mut count) = (0.0, 0usize);
    for (i, got) in answers {
        count += 1;
        let want = K.min(case.rows_of(i));
        if want == 0 {
            total += 1.0;
            continue;
        }
        let top: Vec<i32> = truth
            .get(i)
            .map(|t| t.iter().take(K).copied().collect())
            .unwrap_or_default();
        let hit = got
            .iter()
            .filter(|id| rows.get(*id).is_some_and(|r| top.contains(r)))
            .count();
        total += hit as f64 / want as f64;
    }
    if count == 0 {
        0.0
    } else {
        total / count as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmrss_is_read_in_bytes_and_anything_else_is_none() {
        let status = "Name:\td1vec\nVmPeak:\t  999 kB\nVmRSS:\t   15360 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_vmrss(status), Some(15360 * 1024));
        assert_eq!(parse_vmrss("VmRSS: 12"), Some(12 * 1024));
        assert_eq!(parse_vmrss("VmRSS: 12 MB"), None);
        assert_eq!(parse_vmrss("VmRSS: lots kB"), None);
        assert_eq!(parse_vmrss("VmSize: 12 kB"), None);
        assert_eq!(parse_vmrss(""), None);
        // This process (Linux): some memory, and the same order as the status file says.
        if cfg!(target_os = "linux") {
            assert!(rss_bytes().is_some_and(|b| b > 1 << 20));
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let lat: Vec<f64> = (1..=100).map(|i| i as f64 / 1000.0).collect();
        assert_eq!(percentile_ms(&lat, 0.5), Some(50.0));
        assert_eq!(percentile_ms(&lat, 0.99), Some(99.0));
        assert_eq!(percentile_ms(&[0.002], 0.99), Some(2.0));
        assert_eq!(percentile_ms(&[], 0.5), None);
    }

    fn case(rows: usize, query_rows: Option<Vec<usize>>) -> Case {
        Case {
            name: "c".into(),
            filter: None,
            rows,
            selectivity: 0.5,
            groundtruth: "gt.ivecs".into(),
            query_filters: query_rows.as_ref().map(|r| vec![json!({}); r.len()]),
            query_rows,
        }
    }

    #[test]
    fn recall_counts_each_answer_against_its_own_query() {
        let rows: HashMap<String, i32> = (0..20).map(|i| (format!("v{i}"), i)).collect();
        let truth: Vec<Vec<i32>> = vec![(0..10).collect(), (10..20).collect(), vec![3]];
        let ids = |r: std::ops::Range<i32>| r.map(|i| format!("v{i}")).collect::<Vec<_>>();
        let (a0, a1, a2) = (ids(0..10), ids(10..15), ids(3..4));
        // Query 1 answered half of its truth; query 0 all of it.
        let c = case(20, None);
        let r = recall_at_k([(0, &a0), (1, &a1)].into_iter(), &truth, &rows, &c);
        assert!((r - 0.75).abs() < 1e-12, "{r}");
        // Out of order, a subset: cold samples are not queries 0..n.
        let r = recall_at_k([(1, &a1)].into_iter(), &truth, &rows, &c);
        assert!((r - 0.5).abs() < 1e-12, "{r}");
        // A per-query case whose query 2 passes one row: one hit of one is full recall.
        let c = case(1, Some(vec![20, 20, 1]));
        let r = recall_at_k([(2, &a2)].into_iter(), &truth, &rows, &c);
        assert_eq!(r, 1.0);
        assert_eq!(recall_at_k(std::iter::empty(), &truth, &rows, &c), 0.0);
    }

    #[test]
    fn cold_and_warm_samples_become_their_own_figures() {
        let rows: HashMap<String, i32> = (0..20).map(|i| (format!("v{i}"), i)).collect();
        let truth: Vec<Vec<i32>> = vec![(0..10).collect(), (10..20).collect()];
        let all = |r: std::ops::Range<i32>| r.map(|i| format!("v{i}")).collect::<Vec<_>>();
        let cw = ColdWarm {
            handles: 2,
            cold: vec![(0, all(0..10), 0.010), (1, all(10..15), 0.030)],
            warm: vec![
                (0, all(0..10), 0.001),
                (1, all(10..20), 0.001),
                (1, all(10..20), 0.002),
            ],
        };
        let f = cw.fields(&case(20, None), &truth, &rows);
        assert_eq!(f["fresh_handles"], 2);
        assert_eq!(f["cold_queries"], 2);
        assert_eq!(f["warm_queries"], 3);
        assert_eq!(f["cold_p50_ms"].as_f64(), Some(10.0));
        assert_eq!(f["cold_p99_ms"].as_f64(), Some(30.0));
        assert!((f["cold_qps"].as_f64().unwrap() - 50.0).abs() < 1e-9);
        assert!((f["warm_qps"].as_f64().unwrap() - 750.0).abs() < 1e-9);
        assert!((f["cold_recall_at_10"].as_f64().unwrap() - 0.75).abs() < 1e-12);
        assert_eq!(f["warm_recall_at_10"].as_f64(), Some(1.0));
        // No samples: null figures, not zeros that would read as measurements.
        let f = ColdWarm::default().fields(&case(20, None), &truth, &rows);
        assert_eq!(f["cold_p50_ms"], Value::Null);
        assert_eq!(f["cold_qps"], Value::Null);
    }

    #[test]
    fn a_per_query_case_asks_each_query_with_its_own_filter() {
        let mut c = case(5, Some(vec![5, 6]));
        c.query_filters = Some(vec![json!({"ts": {"$gte": 1}}), json!({"ts": {"$gte": 2}})]);
        let scope = scope_of(&c);
        assert_eq!(scope.via(), "filter per query");
        assert_eq!(
            query_options(&scope, 0).filter,
            Some(json!({"ts": {"$gte": 1}}))
        );
        assert_eq!(
            query_options(&scope, 1).filter,
            Some(json!({"ts": {"$gte": 2}}))
        );
        let mut tenant = case(5, None);
        tenant.filter = Some(json!({"tenant": "t01"}));
        assert_eq!(scope_of(&tenant).via(), "namespace");
    }
}
