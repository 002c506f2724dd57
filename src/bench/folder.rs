//! Reading a dataset folder (see `docs/bench.md`), from `bench gen` or any other tool, and
//! completing what it lacks: `cases.json` from `meta.ndjson`, and every case's exact ground
//! truth.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::cases::{self, CaseSet};
use super::progress::Progress;
use super::vecs::{read_fvecs, read_ivecs, FvecsReader};
use crate::error::{Error, Result};
use crate::index::Metric;

/// Ground-truth depth written when the harness computes missing ground truth.
pub const TRUTH_DEPTH: usize = 100;
/// Base rows per block of a ground-truth pass.
pub const TRUTH_BLOCK_ROWS: usize = 2048;

/// A dataset folder, read.
#[derive(Debug, Clone)]
pub struct Folder {
    /// The folder.
    pub dir: PathBuf,
    /// Dimensions.
    pub dims: usize,
    /// Base vectors, row-major.
    pub base: Vec<f32>,
    /// Per base row, its `meta.ndjson` object (empty without the file).
    pub meta: Vec<Value>,
    /// The cases (from `cases.json`, derived, or unfiltered only).
    pub cases: CaseSet,
}

impl Folder {
    /// Base rows.
    pub fn rows(&self) -> usize {
        self.base.len() / self.dims.max(1)
    }

    /// The Vectorize id of base row `row`: `meta.ndjson`'s `id`, or the row number.
    pub fn id_of(&self, row: usize) -> String {
        row_id(&self.meta, row)
    }
}

/// The id of `row` given the metadata rows (possibly empty).
pub fn row_id(meta: &[Value], row: usize) -> String {
    meta.get(row)
        .and_then(|m| m.get("id"))
        .and_then(Value::as_str)
        .map_or_else(|| row.to_string(), str::to_owned)
}

/// The folder's name, for the `dataset` field of results.
pub fn dataset_name(dir: &Path) -> String {
    dir.canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string())
}

/// Reads `meta.ndjson` if present: one JSON object per line, as many lines as base rows.
pub fn read_meta(dir: &Path, rows: usize) -> Result<Vec<Value>> {
    let path = dir.join("meta.ndjson");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let file = std::fs::File::open(&path).map_err(Error::io(&path))?;
    let mut meta = Vec::with_capacity(rows);
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(Error::io(&path))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line)
            .map_err(|e| Error::invalid("meta.ndjson", format!("line {}: {e}", i + 1)))?;
        if !value.is_object() {
            return Err(Error::invalid(
                "meta.ndjson",
                format!("line {}: not a JSON object", i + 1),
            ));
        }
        meta.push(value);
    }
    if meta.len() != rows {
        return Err(Error::invalid(
            "meta.ndjson",
            format!("{} lines for {rows} base rows", meta.len()),
        ));
    }
    Ok(meta)
}

/// Reads only the first query vector (for the time-to-first-answer probe).
pub fn first_query(dir: &Path) -> Result<Vec<f32>> {
    let path = dir.join("query.fvecs");
    let mut reader = FvecsReader::open(&path)?;
    let mut out = Vec::new();
    match reader.next_into(&mut out)? {
        Some(_) => Ok(out),
        None => Err(Error::invalid("query.fvecs", "holds no vector")),
    }
}

/// Reads the query vectors: `(dims, row-major values)`.
pub fn read_queries(dir: &Path) -> Result<(usize, Vec<f32>)> {
    Ok(read_fvecs(dir.join("query.fvecs"))?)
}

/// Reads a case's ground truth.
pub fn read_truth(dir: &Path, case: &cases::Case) -> Result<Vec<Vec<i32>>> {
    Ok(read_ivecs(dir.join(&case.groundtruth))?)
}

/// Reads a folder and writes what it lacks (`cases.json`, ground truth files).
pub fn open_and_complete(dir: &Path, progress: &dyn Progress) -> Result<Folder> {
    progress.begin("reading base.fvecs", 0);
    let (dims, base) = read_fvecs(dir.join("base.fvecs"))?;
    progress.end();
    let rows = base.len() / dims.max(1);
    let meta = read_meta(dir, rows)?;
    let (qdims, queries) = read_queries(dir)?;
    if qdims != dims {
        return Err(Error::invalid(
            "query.fvecs",
            format!("{qdims} dimensions, base.fvecs has {dims}"),
        ));
    }
    let cases_path = dir.join(cases::CASES_FILE);
    let cases = if cases_path.exists() {
        CaseSet::load(&cases_path)?
    } else {
        let set = if meta.is_empty() {
            CaseSet::unfiltered(Metric::Cosine, 10, rows)
        } else {
            cases::derive(&meta, Metric::Cosine, 10, queries.len() / dims.max(1))
        };
        set.save(&cases_path)?;
        set
    };
    let missing: Vec<&cases::Case> = cases
        .cases
        .iter()
        .filter(|c| !dir.join(&c.groundtruth).exists())
        .collect();
    if !missing.is_empty() {
        // One pass over the rows for every missing case, in blocks (bounded extra memory).
        let mut job = cases::truth_job(cases.metric, dims, &queries, TRUTH_DEPTH, &missing, &meta)?;
        progress.begin("ground truth (every case)", rows as u64);
        for block in base.chunks(TRUTH_BLOCK_ROWS * dims.max(1)) {
            job.add_block(block);
            progress.advance((block.len() / dims.max(1)) as u64);
        }
        progress.end();
        cases::write_truths(dir, &missing, job.finish())?;
    }
    Ok(Folder {
        dir: dir.to_path_buf(),
        dims,
        base,
        meta,
        cases,
    })
}
