//! `bench run`: ingest a dataset folder through d1vec's real write path, seal and compact,
//! then measure searches in a fresh process ([`super::measure`]), and write
//! `results/d1vec.jsonl` (schema in `docs/bench.md`).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::folder::{self, Folder};
use super::measure::{self, MeasureOptions};
use super::pagecache;
use super::progress::Progress;
use crate::error::{Error, Result};
use crate::index::GraphParams;
use crate::vectorize::filter::IndexType;
use crate::vectorize::types::Vector;
use crate::vectorize::CreateIndex;
use crate::Database;

/// The index's name inside the benchmark database.
pub const INDEX: &str = "bench";
/// The benchmark database, relative to the dataset folder.
pub const DB_FILE: &str = "d1vec/db.sqlite";
/// Metadata properties indexed when `meta.ndjson` has them.
pub const INDEXED: &[(&str, IndexType)] = &[
    ("tenant", IndexType::String),
    ("category", IndexType::String),
    ("ts", IndexType::Number),
];

/// How to run the benchmark.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// What to measure, and how.
    pub measure: MeasureOptions,
    /// Vectors per write call (Vectorize's Worker API takes at most 1,000).
    pub batch: usize,
    /// Measure in a fresh process running this `d1vec` binary (`bench measure`), or, when
    /// `None`, in this process (then `first_answer_ms` is not from a cold start).
    pub binary: Option<PathBuf>,
    /// Reuse the database a previous run built (and its `build` and `disk` lines) and only
    /// measure the searches again.
    pub skip_ingest: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            measure: MeasureOptions::default(),
            batch: 1_000,
            binary: None,
            skip_ingest: false,
        }
    }
}

/// Fields every result line carries.
pub fn common_fields(folder_dir: &Path, n: usize, dims: usize, metric: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("dataset".into(), json!(folder::dataset_name(folder_dir)));
    m.insert("n".into(), json!(n));
    m.insert("dims".into(), json!(dims));
    m.insert("metric".into(), json!(metric));
    m.insert("version".into(), json!(version()));
    m
}

/// `d1vec <version> (<git commit>)` when run from a checkout, else the version alone.
pub fn version() -> String {
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match commit {
        Some(c) => format!("d1vec {} ({c})", env!("CARGO_PKG_VERSION")),
        None => format!("d1vec {}", env!("CARGO_PKG_VERSION")),
    }
}

/// A result line: the common fields, then `fields`.
pub fn line(common: &Map<String, Value>, system: &str, measure: &str, fields: Value) -> Value {
    let mut m = common.clone();
    m.insert("system".into(), json!(system));
    m.insert("measure".into(), json!(measure));
    if let Value::Object(extra) = fields {
        m.extend(extra);
    }
    Value::Object(m)
}

/// Runs the whole benchmark on `dir`; returns the result lines (also written to
/// `dir/results/d1vec.jsonl`).
pub fn run(dir: &Path, options: &RunOptions, progress: &dyn Progress) -> Result<Vec<Value>> {
    let mut folder = folder::open_and_complete(dir, progress)?;
    let n = folder.rows();
    let metric = folder.cases.metric;
    let common = common_fields(dir, n, folder.dims, metric.as_str());
    let mut lines = Vec::new();

    let db_path = dir.join(DB_FILE);
    let db_dir = db_path.parent().unwrap_or(dir).to_path_buf();
    if options.skip_ingest {
        lines = previous_build_lines(dir)?;
        drop(folder);
        return finish(dir, options, lines, progress);
    }
    if db_dir.exists() {
        std::fs::remove_dir_all(&db_dir).map_err(Error::io(&db_dir))?;
    }
    let (ingest_s, seal_s, compact_s) = {
        let db = Database::open(&db_path)?;
        db.create_index(&CreateIndex::new(INDEX, folder.dims, metric))?;
        let ix = db.vectorize(INDEX)?;
        for (property, ty) in indexed_properties(&folder) {
            ix.create_metadata_index(property, ty)?;
        }
        // Load the (empty) state first: writes then build the graph as they go, as measured.
        ix.warm()?;
        let started = Instant::now();
        ingest(&ix, &folder, options.batch.max(1), progress)?;
        let ingest_s = started.elapsed().as_secs_f64();
        // The raw rows are not needed again: free them before the compaction needs room
        // for its own copy (6 GB each at 1,000,000 x 1,536).
        folder.base = Vec::new();
        progress.begin("seal", 0);
        let started = Instant::now();
        ix.seal()?;
        let seal_s = started.elapsed().as_secs_f64();
        progress.end();
        progress.begin("compact", 0);
        let started = Instant::now();
        ix.compact()?;
        let compact_s = started.elapsed().as_secs_f64();
        progress.end();
        (ingest_s, seal_s, compact_s)
    };
    let graph = GraphParams::default();
    lines.push(line(
        &common,
        "d1vec",
        "build",
        json!({
            "threads": rayon::current_num_threads(),
            "seconds": ingest_s,
            "vectors_per_s": n as f64 / ingest_s.max(1e-9),
            "M": graph.m,
            "ef_construction": graph.ef_construction,
            "seal_seconds": seal_s,
            "compact_seconds": compact_s,
            "write_path": "sqlite+index",
            "batch": options.batch,
        }),
    ));
    progress.note(&format!(
        "ingest {:.0} vectors/s ({ingest_s:.1} s), seal {seal_s:.1} s, compact {compact_s:.1} s",
        n as f64 / ingest_s.max(1e-9)
    ));
    let files = disk_usage(&db_dir);
    let bytes: u64 = files.values().filter_map(Value::as_u64).sum();
    lines.push(line(
        &common,
        "d1vec",
        "disk",
        json!({ "bytes": bytes, "files": files }),
    ));
    drop(folder);
    finish(dir, options, lines, progress)
}

/// The `build` and `disk` lines of the last run's results, for `skip_ingest`.
fn previous_build_lines(dir: &Path) -> Result<Vec<Value>> {
    if !dir.join(DB_FILE).exists() {
        return Err(Error::invalid(
            "--skip-ingest",
            format!(
                "no benchmark database at {}: run without it first",
                dir.join(DB_FILE).display()
            ),
        ));
    }
    let previous = super::report::read_results(dir)?;
    let kept: Vec<Value> = previous
        .into_iter()
        .filter(|l| l["system"] == "d1vec" && (l["measure"] == "build" || l["measure"] == "disk"))
        .collect();
    if kept.is_empty() {
        return Err(Error::invalid(
            "--skip-ingest",
            "results/d1vec.jsonl holds no build line: run without it first",
        ));
    }
    Ok(kept)
}

/// Measures the searches (in a fresh process when asked) after `lines` and writes them all.
fn finish(
    dir: &Path,
    options: &RunOptions,
    mut lines: Vec<Value>,
    progress: &dyn Progress,
) -> Result<Vec<Value>> {
    let bytes: u64 = lines
        .iter()
        .find(|l| l["measure"] == "disk")
        .and_then(|l| l["bytes"].as_u64())
        .unwrap_or(0);
    // The searches first, on the page cache the build left: evicting the files first made
    // every sweep after the warm-up pass read pages from disk as the ef grew.
    let measured = match &options.binary {
        Some(binary) => measure_in_child(binary, dir, &options.measure, progress)?,
        None => {
            let mut out = Vec::new();
            measure::measure(dir, &options.measure, progress, &mut |v| out.push(v))?;
            out
        }
    };
    for mut m in measured {
        if m.get("measure").and_then(Value::as_str) == Some("open") {
            m["disk_bytes"] = json!(bytes);
        }
        lines.push(m);
    }
    if let Some(binary) = &options.binary {
        let first = first_answers(binary, dir, options.measure.memory, progress)?;
        if let Some(s) = measure::summary(&first) {
            progress.note(&s);
        }
        lines.push(first);
    }
    write_results(dir, "d1vec.jsonl", &lines)?;
    Ok(lines)
}

/// The metadata properties to index: those of [`INDEXED`] the folder's metadata holds.
fn indexed_properties(folder: &Folder) -> Vec<(&'static str, IndexType)> {
    let Some(first) = folder.meta.first() else {
        return Vec::new();
    };
    INDEXED
        .iter()
        .filter(|(p, _)| first.get(*p).is_some())
        .copied()
        .collect()
}

/// Writes every base row through `VectorIndex::insert`, `batch` rows per call: namespace
/// = the row's tenant (as a tenant session would), metadata = its `meta.ndjson` object
/// without the id.
fn ingest(
    ix: &crate::vectorize::VectorIndex,
    folder: &Folder,
    batch: usize,
    progress: &dyn Progress,
) -> Result<()> {
    let n = folder.rows();
    progress.begin("ingest (SQLite + index)", n as u64);
    let mut start = 0;
    while start < n {
        let end = (start + batch).min(n);
        let vectors: Vec<Vector> = (start..end)
            .map(|row| {
                let values = folder.base[row * folder.dims..(row + 1) * folder.dims]
                    .iter()
                    .map(|&x| f64::from(x))
                    .collect();
                let mut v = Vector::new(folder.id_of(row), values);
                if let Some(Value::Object(meta)) = folder.meta.get(row) {
                    let mut meta = meta.clone();
                    meta.remove("id");
                    if let Some(tenant) = meta.get("tenant").and_then(Value::as_str) {
                        v = v.with_namespace(tenant);
                    }
                    v = v.with_metadata(meta);
                }
                v
            })
            .collect();
        ix.insert_batch(&vectors, batch)?;
        progress.advance((end - start) as u64);
        start = end;
    }
    progress.end();
    Ok(())
}

/// File name -> bytes, for every file under `dir` (recursively, names relative to it).
fn disk_usage(dir: &Path) -> Map<String, Value> {
    fn walk(base: &Path, dir: &Path, out: &mut Map<String, Value>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else if let Ok(meta) = entry.metadata() {
                let name = path
                    .strip_prefix(base)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                out.insert(name, json!(meta.len()));
            }
        }
    }
    let mut out = Map::new();
    walk(dir, dir, &mut out);
    out
}

/// The `first_answer` line: a fresh process (`bench measure --first-only`) opens the
/// database and answers one query, timed from spawn to its answer; first with every file
/// of the database evicted from the page cache ([`pagecache`]), then again with them
/// cached by that run (warm). The line says, per file, what eviction left resident.
fn first_answers(
    binary: &Path,
    dir: &Path,
    memory: crate::vectorize::Memory,
    progress: &dyn Progress,
) -> Result<Value> {
    let db = dir.join(DB_FILE);
    let files = pagecache::database_files(&db);
    let evicted = pagecache::evict_all(&files);
    let cold = first_answer_child(binary, dir, memory, progress)?;
    let warm = first_answer_child(binary, dir, memory, progress)?;
    let sum = |f: fn(&pagecache::Evicted) -> Option<u64>| -> Option<u64> {
        evicted.iter().map(f).sum::<Option<u64>>()
    };
    let ms = |v: &Value| v.get("first_answer_ms").cloned().unwrap_or(Value::Null);
    let in_process = |v: &Value| {
        v.get("first_answer_ms_in_process")
            .cloned()
            .unwrap_or(Value::Null)
    };
    let mut out = cold.clone();
    if let Value::Object(m) = &mut out {
        m.retain(|k, _| {
            matches!(
                k.as_str(),
                "dataset" | "n" | "dims" | "metric" | "version" | "system"
            )
        });
        m.insert("measure".into(), json!("first_answer"));
        m.insert("evicted_ms".into(), ms(&cold));
        m.insert("evicted_in_process_ms".into(), in_process(&cold));
        m.insert("warm_ms".into(), ms(&warm));
        m.insert("warm_in_process_ms".into(), in_process(&warm));
        m.insert(
            "rss_after_first_query_bytes".into(),
            warm.get("rss_after_first_query_bytes")
                .cloned()
                .unwrap_or(Value::Null),
        );
        m.insert(
            "files_bytes".into(),
            json!(evicted.iter().map(|e| e.bytes).sum::<u64>()),
        );
        m.insert(
            "resident_before_eviction_bytes".into(),
            json!(sum(|e| e.resident_before)),
        );
        m.insert(
            "resident_after_eviction_bytes".into(),
            json!(sum(|e| e.resident_after)),
        );
        m.insert(
            "eviction_errors".into(),
            json!(evicted.iter().filter(|e| e.error.is_some()).count()),
        );
        let per_file: Vec<Value> = evicted
            .iter()
            .map(|e| {
                json!({
                    "file": e.path.strip_prefix(dir).unwrap_or(&e.path).display().to_string(),
                    "bytes": e.bytes,
                    "resident_before": e.resident_before,
                    "resident_after": e.resident_after,
                    "error": e.error,
                })
            })
            .collect();
        m.insert("evicted".into(), Value::Array(per_file));
    }
    Ok(out)
}

/// One `bench measure --first-only` child: its `open` line, with `first_answer_ms` from
/// spawn to the line (printed right after the answer).
fn first_answer_child(
    binary: &Path,
    dir: &Path,
    memory: crate::vectorize::Memory,
    progress: &dyn Progress,
) -> Result<Value> {
    let mut command = Command::new(binary);
    command
        .arg("bench")
        .arg("measure")
        .arg(dir)
        .arg("--first-only")
        .arg("--memory")
        .arg(memory_flag(memory))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let lines = read_child(command, binary, progress, "first answer (fresh process)")?;
    lines
        .into_iter()
        .next()
        .ok_or_else(|| Error::invalid("bench measure", "the first-answer process printed nothing"))
}

/// Runs `binary bench measure …` and reads its result lines; `first_answer_ms` is the wall
/// time from spawning the process to reading its first line, which it prints right after
/// its first answer.
fn measure_in_child(
    binary: &Path,
    dir: &Path,
    options: &MeasureOptions,
    progress: &dyn Progress,
) -> Result<Vec<Value>> {
    let join = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let mut command = Command::new(binary);
    command
        .arg("bench")
        .arg("measure")
        .arg(dir)
        .arg("--threads")
        .arg(join(&options.threads))
        .arg("--ef")
        .arg(join(&options.efs))
        .arg("--exact-queries")
        .arg(options.exact_queries.to_string())
        .arg("--cold-runs")
        .arg(options.cold_runs.to_string())
        .arg("--memory")
        .arg(memory_flag(options.memory))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(q) = options.queries {
        command.arg("--queries").arg(q.to_string());
    }
    read_child(command, binary, progress, "searches (fresh process)")
}

/// The `--memory` flag's value for a mode.
pub(crate) fn memory_flag(memory: crate::vectorize::Memory) -> &'static str {
    match memory {
        crate::vectorize::Memory::Resident => "resident",
        crate::vectorize::Memory::Mapped => "mapped",
    }
}

/// Spawns `command` and reads its JSON lines (see [`measure_in_child`]).
fn read_child(
    mut command: Command,
    binary: &Path,
    progress: &dyn Progress,
    step: &str,
) -> Result<Vec<Value>> {
    progress.begin(step, 0);
    let started = Instant::now();
    let mut child = command.spawn().map_err(Error::io(binary))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::invalid("bench measure", "the child process has no stdout"))?;
    let mut lines = Vec::new();
    for (i, text) in BufReader::new(stdout).lines().enumerate() {
        let text = text.map_err(Error::io(binary))?;
        let mut value: Value = serde_json::from_str(&text)
            .map_err(|e| Error::invalid("bench measure output", format!("{e}: {text}")))?;
        if i == 0 {
            value["first_answer_ms"] = json!(started.elapsed().as_secs_f64() * 1000.0);
            value["fresh_process"] = json!(true);
        }
        if let Some(summary) = measure::summary(&value) {
            progress.note(&summary);
        }
        lines.push(value);
    }
    let status = child.wait().map_err(Error::io(binary))?;
    progress.end();
    if !status.success() {
        return Err(Error::invalid(
            "bench measure",
            format!("the measuring process failed ({status})"),
        ));
    }
    Ok(lines)
}

/// Writes `lines` to `dir/results/<file>`, one JSON object per line.
pub fn write_results(dir: &Path, file: &str, lines: &[Value]) -> Result<()> {
    let results = dir.join("results");
    std::fs::create_dir_all(&results).map_err(Error::io(&results))?;
    let path = results.join(file);
    let mut text = String::new();
    for l in lines {
        text.push_str(&l.to_string());
        text.push('\n');
    }
    std::fs::write(&path, text).map_err(Error::io(&path))
}
