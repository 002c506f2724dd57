//! The benchmark's query cases (`cases.json`): unfiltered, and filters over `meta.ndjson`
//! passing about 0.1 %, 1 %, 10 % and 50 % of the rows, a category, a timestamp range, and
//! a timestamp window that is new for every query (so every query is a filter's first sight).
//!
//! A case's rows are found with d1vec's reference filter evaluator
//! ([`crate::vectorize::filter::matches`]), so the harness and the engine agree on what a
//! filter means; the property types are inferred from the data (strings, numbers, booleans).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::truth::{Candidates, MultiTruth};
use super::vecs::write_ivecs;
use crate::error::{Error, Result};
use crate::index::{IdBitset, Metric};
use crate::vectorize::filter::{indexed_value, matches, parse_filter, IndexType};

/// The cases file's name in a dataset folder.
pub const CASES_FILE: &str = "cases.json";

/// `cases.json`: the metric, the k of recall@k, and the cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseSet {
    /// The metric the ground truth was computed by (`cosine`, `euclidean`, `dot-product`).
    #[serde(with = "metric_name")]
    pub metric: Metric,
    /// The k of recall@k.
    pub k: usize,
    /// The cases, unfiltered first.
    pub cases: Vec<Case>,
}

/// One query case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// A short label (`unfiltered`, `tenant 1%`, …).
    pub name: String,
    /// The Vectorize metadata filter, or null for every row.
    pub filter: Option<Value>,
    /// Rows the filter passes.
    pub rows: usize,
    /// `rows` over all rows.
    pub selectivity: f64,
    /// The ground-truth file, relative to the dataset folder.
    pub groundtruth: String,
    /// A filter per query (query `i` is asked with `query_filters[i]`), for cases whose
    /// filter values are new for every query; then `filter` is null, `rows` is the fewest
    /// rows any query's filter passes and `selectivity` the mean share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_filters: Option<Vec<Value>>,
    /// With `query_filters`: the rows each query's filter passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_rows: Option<Vec<usize>>,
}

impl Case {
    /// The filter query `i` is asked with (`None`: every row).
    pub fn filter_of(&self, i: usize) -> Option<&Value> {
        match &self.query_filters {
            Some(filters) => filters.get(i),
            None => self.filter.as_ref(),
        }
    }

    /// The rows query `i`'s filter passes.
    pub fn rows_of(&self, i: usize) -> usize {
        self.query_rows
            .as_ref()
            .and_then(|r| r.get(i).copied())
            .unwrap_or(self.rows)
    }

    /// Whether any query of the case is filtered.
    pub fn is_filtered(&self) -> bool {
        self.filter.is_some() || self.query_filters.is_some()
    }
}

mod metric_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::index::Metric;

    pub fn serialize<S: Serializer>(m: &Metric, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(m.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Metric, D::Error> {
        let name = String::deserialize(d)?;
        Metric::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown metric `{name}`")))
    }
}

impl CaseSet {
    /// Reads `cases.json`.
    pub fn load(path: &Path) -> Result<CaseSet> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::invalid("cases.json", format!("{}: {e}", path.display())))
    }

    /// Writes `cases.json` (pretty-printed).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::invalid("cases.json", e.to_string()))?;
        std::fs::write(path, text + "\n").map_err(Error::io(path))
    }

    /// The only case of a folder without metadata: every row.
    pub fn unfiltered(metric: Metric, k: usize, n: usize) -> CaseSet {
        CaseSet {
            metric,
            k,
            cases: vec![unfiltered_case(n)],
        }
    }
}

fn unfiltered_case(n: usize) -> Case {
    Case {
        name: "unfiltered".into(),
        filter: None,
        rows: n,
        selectivity: 1.0,
        groundtruth: "groundtruth.ivecs".into(),
        query_filters: None,
        query_rows: None,
    }
}

/// A file-name-safe rendering of a metadata value.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect()
}

/// Row counts per distinct string value of `key`.
fn value_counts(meta: &[Value], key: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for row in meta {
        if let Some(v) = row.get(key).and_then(Value::as_str) {
            *counts.entry(v.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

/// The value whose share is closest to `target` on a log scale.
fn closest(counts: &BTreeMap<String, usize>, n: usize, target: f64) -> Option<(String, usize)> {
    counts.iter().map(|(v, &c)| (v.clone(), c)).min_by(|a, b| {
        let d = |c: usize| ((c as f64 / n as f64) / target).ln().abs();
        d(a.1).total_cmp(&d(b.1)).then_with(|| a.0.cmp(&b.0))
    })
}

/// The cases a `meta.ndjson` supports: unfiltered; single tenants nearest 0.1 %, 1 % and
/// 10 %; a set of tenants nearest 50 % (`$in`); the category nearest 10 %; a timestamp
/// range holding about a quarter of the rows; and, for `queries` queries, a timestamp
/// window per query (see [`ts_windows`]). A field missing from the metadata drops its cases.
pub fn derive(meta: &[Value], metric: Metric, k: usize, queries: usize) -> CaseSet {
    let n = meta.len();
    let mut cases = vec![unfiltered_case(n)];
    let case = |name: String, filter: Value, rows: usize, file: String| Case {
        name,
        filter: Some(filter),
        rows,
        selectivity: rows as f64 / n.max(1) as f64,
        groundtruth: file,
        query_filters: None,
        query_rows: None,
    };
    let tenants = value_counts(meta, "tenant");
    let mut seen = Vec::new();
    for (label, target) in [("0.1%", 0.001), ("1%", 0.01), ("10%", 0.1)] {
        if let Some((t, rows)) = closest(&tenants, n, target) {
            if !seen.contains(&t) {
                seen.push(t.clone());
                let file = format!("gt_tenant_{}.ivecs", slug(&t));
                cases.push(case(
                    format!("tenant {label}"),
                    json!({ "tenant": t }),
                    rows,
                    file,
                ));
            }
        }
    }
    if tenants.len() >= 2 {
        // Largest first, adding a tenant while it brings the total closer to half.
        let mut by_size: Vec<(&String, &usize)> = tenants.iter().collect();
        by_size.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let half = n as f64 / 2.0;
        let (mut chosen, mut rows) = (Vec::new(), 0usize);
        for (t, &c) in by_size {
            if ((rows + c) as f64 - half).abs() < (rows as f64 - half).abs() {
                chosen.push(t.clone());
                rows += c;
            }
        }
        chosen.sort();
        if chosen.len() >= 2 {
            let filter = json!({ "tenant": { "$in": chosen } });
            cases.push(case(
                "tenants 50%".into(),
                filter,
                rows,
                "gt_tenants_50.ivecs".into(),
            ));
        }
    }
    if let Some((c, rows)) = closest(&value_counts(meta, "category"), n, 0.1) {
        let file = format!("gt_category_{}.ivecs", slug(&c));
        cases.push(case(
            "category".into(),
            json!({ "category": c }),
            rows,
            file,
        ));
    }
    let mut ts: Vec<i64> = meta
        .iter()
        .filter_map(|r| r.get("ts").and_then(Value::as_i64))
        .collect();
    if ts.len() >= 4 {
        ts.sort_unstable();
        let (lo, hi) = (ts[ts.len() * 2 / 5], ts[ts.len() * 13 / 20]);
        if lo < hi {
            let filter = json!({ "ts": { "$gte": lo, "$lt": hi } });
            let rows = ts.iter().filter(|&&t| t >= lo && t < hi).count();
            cases.push(case(
                "ts range".into(),
                filter,
                rows,
                "gt_ts_range.ivecs".into(),
            ));
        }
        if let Some(windows) = ts_windows(&ts, queries) {
            let rows: Vec<usize> = windows.iter().map(|w| w.rows).collect();
            let mean = rows.iter().sum::<usize>() as f64 / rows.len().max(1) as f64;
            cases.push(Case {
                name: TS_WINDOW_CASE.into(),
                filter: None,
                rows: rows.iter().copied().min().unwrap_or(0),
                selectivity: mean / n.max(1) as f64,
                groundtruth: "gt_ts_window.ivecs".into(),
                query_filters: Some(windows.iter().map(TsWindow::filter).collect()),
                query_rows: Some(rows),
            });
        }
    }
    CaseSet { metric, k, cases }
}

/// The name of the case whose timestamp window is new for every query.
pub const TS_WINDOW_CASE: &str = "ts window (new per query)";

/// Share of the rows a per-query timestamp window holds.
const TS_WINDOW_SHARE: f64 = 0.25;

/// One query's timestamp window: `lo <= ts < hi`, passing `rows` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsWindow {
    /// The first timestamp passing.
    pub lo: i64,
    /// The first timestamp past the window.
    pub hi: i64,
    /// Rows passing.
    pub rows: usize,
}

impl TsWindow {
    /// The Vectorize filter of the window.
    pub fn filter(&self) -> Value {
        json!({ "ts": { "$gte": self.lo, "$lt": self.hi } })
    }

    /// Whether `ts` is inside the window.
    pub fn contains(&self, ts: i64) -> bool {
        self.lo <= ts && ts < self.hi
    }
}

/// Per query, a window over `sorted` timestamps holding about [`TS_WINDOW_SHARE`] of them,
/// starting at a rank drawn per query (seeded by the query's number, so the same folder
/// gives the same windows): distinct filter values for every query, each passing 10-50 %
/// of the rows. `None` when there are too few distinct timestamps or no queries.
pub fn ts_windows(sorted: &[i64], queries: usize) -> Option<Vec<TsWindow>> {
    let n = sorted.len();
    let width = ((n as f64 * TS_WINDOW_SHARE) as usize).max(1);
    if queries == 0 || n < 8 || width >= n {
        return None;
    }
    let count = |lo: i64, hi: i64| {
        sorted.partition_point(|&t| t < hi) - sorted.partition_point(|&t| t < lo)
    };
    let windows: Vec<TsWindow> = (0..queries)
        .map(|i| {
            let mut rng = crate::rng::Rng(
                0x7453_5749_4e44_4f57 ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            let start = rng.below(n - width);
            let (lo, hi) = (sorted[start], sorted[start + width]);
            TsWindow {
                lo,
                hi,
                rows: count(lo, hi),
            }
        })
        .collect();
    // Windows over heavily repeated timestamps could collapse; such data has no such case.
    let ok = windows
        .iter()
        .all(|w| w.rows as f64 >= n as f64 * 0.10 && w.rows as f64 <= n as f64 * 0.50);
    ok.then_some(windows)
}

/// The index type a metadata property's values have (the first typed value decides).
fn inferred_type(meta: &[Value], path: &str) -> Option<IndexType> {
    meta.iter().find_map(|row| match row.get(path) {
        Some(Value::String(_)) => Some(IndexType::String),
        Some(Value::Number(_)) => Some(IndexType::Number),
        Some(Value::Bool(_)) => Some(IndexType::Boolean),
        _ => None,
    })
}

/// The row numbers `filter` passes, by the reference evaluator.
pub fn rows_passing(meta: &[Value], filter: &Value) -> Result<IdBitset> {
    let parsed = parse_filter(filter).map_err(|e| Error::invalid("case filter", e.to_string()))?;
    let mut types = BTreeMap::new();
    for property in parsed.clauses.keys() {
        if let Some(ty) = inferred_type(meta, property) {
            types.insert(property.clone(), ty);
        }
    }
    let type_of = |p: &str| types.get(p).copied();
    let mut set = IdBitset::new();
    for (i, row) in meta.iter().enumerate() {
        let lookup = |p: &str| match types.get(p) {
            Some(&ty) => indexed_value(Some(row), p, ty),
            None => crate::vectorize::filter::Indexed::Absent,
        };
        let pass = matches(&parsed, &type_of, &lookup)
            .map_err(|e| Error::invalid("case filter", e.to_string()))?;
        if pass {
            set.insert(i as u64);
        }
    }
    Ok(set)
}

/// `(lo, hi)` when `filter` is exactly a window `{"ts": {"$gte": lo, "$lt": hi}}` (what
/// [`ts_windows`] writes).
fn as_ts_window(filter: &Value) -> Option<(f64, f64)> {
    let outer = filter.as_object().filter(|o| o.len() == 1)?;
    let inner = outer.get("ts")?.as_object().filter(|o| o.len() == 2)?;
    Some((inner.get("$gte")?.as_f64()?, inner.get("$lt")?.as_f64()?))
}

/// The rows each query of `case` may return, for [`MultiTruth`]. Timestamp windows are
/// found by comparing each row's numeric `ts` directly (the reference evaluator gives the
/// same rows, at a thousandth of the cost: a case has a window per query); any other
/// filter by [`rows_passing`].
pub fn candidates(case: &Case, meta: &[Value]) -> Result<Candidates> {
    if let Some(filters) = &case.query_filters {
        let ts: Vec<Option<f64>> = meta
            .iter()
            .map(|row| row.get("ts").and_then(Value::as_f64))
            .collect();
        let sets = filters
            .iter()
            .map(|f| match as_ts_window(f) {
                Some((lo, hi)) => Ok(ts
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.is_some_and(|t| lo <= t && t < hi))
                    .map(|(i, _)| i as u64)
                    .collect()),
                None => rows_passing(meta, f),
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok(Candidates::PerQuery(sets));
    }
    Ok(match &case.filter {
        None => Candidates::All,
        Some(f) => Candidates::Rows(rows_passing(meta, f)?),
    })
}

/// A ground-truth computation (depth `k`) of every case of `cases`, to be fed base rows.
pub fn truth_job(
    metric: Metric,
    dims: usize,
    queries: &[f32],
    k: usize,
    cases: &[&Case],
    meta: &[Value],
) -> Result<MultiTruth> {
    let sets = cases
        .iter()
        .map(|c| candidates(c, meta))
        .collect::<Result<Vec<_>>>()?;
    Ok(MultiTruth::new(metric, dims, queries, k, sets))
}

/// Writes each case's answers (from [`MultiTruth::finish`], same order) to its ground-truth
/// file in `dir`; returns the paths.
pub fn write_truths(
    dir: &Path,
    cases: &[&Case],
    truths: Vec<Vec<Vec<i32>>>,
) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for (case, rows) in cases.iter().zip(truths) {
        let path = dir.join(&case.groundtruth);
        write_ivecs(&path, rows)?;
        files.push(path);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tenants a..f holding 1, 10, 100, 289, 300 and 300 rows of 1,000.
    fn meta(n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| {
                let tenant = match i % 1000 {
                    0 => "a",
                    1..=10 => "b",
                    11..=110 => "c",
                    111..=399 => "d",
                    400..=699 => "e",
                    _ => "f",
                };
                json!({"id": format!("v{i}"), "tenant": tenant,
                       "category": if i % 10 == 3 { "news" } else { "docs" }, "ts": i as i64})
            })
            .collect()
    }

    #[test]
    fn derived_filters_pass_the_rows_they_claim() {
        let m = meta(1000);
        let set = derive(&m, Metric::Cosine, 10, 30);
        let names: Vec<&str> = set.cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "unfiltered",
                "tenant 0.1%",
                "tenant 1%",
                "tenant 10%",
                "tenants 50%",
                "category",
                "ts range",
                TS_WINDOW_CASE
            ]
        );
        for case in &set.cases[1..7] {
            let rows = rows_passing(&m, case.filter.as_ref().unwrap()).unwrap();
            assert_eq!(rows.len(), case.rows, "{}", case.name);
        }
        let rows: Vec<usize> = set.cases.iter().map(|c| c.rows).collect();
        assert_eq!(rows, [1000, 1, 10, 100, 600, 100, 250, 250]);
        assert_eq!(
            set.cases[4].filter,
            Some(json!({"tenant": {"$in": ["e", "f"]}}))
        );
        assert_eq!(set.cases[5].filter, Some(json!({"category": "news"})));
        assert_eq!(
            set.cases[6].filter,
            Some(json!({"ts": {"$gte": 400, "$lt": 650}}))
        );
    }

    #[test]
    fn every_query_gets_its_own_window_passing_what_it_claims() {
        let m = meta(1000);
        let set = derive(&m, Metric::Cosine, 10, 30);
        let case = set.cases.iter().find(|c| c.name == TS_WINDOW_CASE).unwrap();
        let filters = case.query_filters.as_ref().unwrap();
        let rows = case.query_rows.as_ref().unwrap();
        assert_eq!((filters.len(), rows.len()), (30, 30));
        assert_eq!(case.filter, None);
        let distinct: std::collections::BTreeSet<String> =
            filters.iter().map(Value::to_string).collect();
        assert!(distinct.len() >= 25, "windows repeat: {}", distinct.len());
        let Candidates::PerQuery(sets) = candidates(case, &m).unwrap() else {
            panic!("a per-query case gives per-query candidates");
        };
        for (i, f) in filters.iter().enumerate() {
            // The fast path and the reference evaluator agree, and so do the counts.
            let reference = rows_passing(&m, f).unwrap();
            assert_eq!(sets[i], reference, "{f}");
            assert_eq!(reference.len(), rows[i]);
            assert!((100..=500).contains(&rows[i]), "{}", rows[i]);
            assert_eq!(case.filter_of(i), Some(f));
            assert_eq!(case.rows_of(i), rows[i]);
        }
        assert_eq!(case.rows, *rows.iter().min().unwrap());
        // Too few queries or rows: no such case.
        assert!(ts_windows(&[1, 2, 3], 5).is_none());
        assert!(ts_windows(&(0..100).collect::<Vec<_>>(), 0).is_none());
        // All timestamps equal: a window cannot hold a quarter, so no case.
        assert!(ts_windows(&[5; 100], 4).is_none());
    }

    #[test]
    fn the_case_file_round_trips() {
        let set = derive(&meta(200), Metric::Euclidean, 10, 5);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CASES_FILE);
        set.save(&path).unwrap();
        assert_eq!(CaseSet::load(&path).unwrap(), set);
    }
}
