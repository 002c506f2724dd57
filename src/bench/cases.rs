//! The benchmark's query cases (`cases.json`): unfiltered, and filters over `meta.ndjson`
//! passing about 0.1 %, 1 %, 10 % and 50 % of the rows, a category and a timestamp range.
//!
//! A case's rows are found with d1vec's reference filter evaluator
//! ([`crate::vectorize::filter::matches`]), so the harness and the engine agree on what a
//! filter means; the property types are inferred from the data (strings, numbers, booleans).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::progress::Progress;
use super::truth::ground_truth_with_progress;
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
/// 10 %; a set of tenants nearest 50 % (`$in`); the category nearest 10 %; and a timestamp
/// range holding about a quarter of the rows. A field missing from the metadata drops its
/// cases.
pub fn derive(meta: &[Value], metric: Metric, k: usize) -> CaseSet {
    let n = meta.len();
    let mut cases = vec![unfiltered_case(n)];
    let case = |name: String, filter: Value, rows: usize, file: String| Case {
        name,
        filter: Some(filter),
        rows,
        selectivity: rows as f64 / n.max(1) as f64,
        groundtruth: file,
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
    }
    CaseSet { metric, k, cases }
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

/// Computes a case's exact ground truth (depth `k`) and writes it to `path`.
#[allow(clippy::too_many_arguments)]
pub fn compute_truth(
    metric: Metric,
    base: &[f32],
    dims: usize,
    queries: &[f32],
    k: usize,
    case: &Case,
    meta: &[Value],
    path: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    let allow = case
        .filter
        .as_ref()
        .map(|f| rows_passing(meta, f))
        .transpose()?;
    progress.begin(
        &format!("ground truth: {}", case.name),
        (queries.len() / dims.max(1)) as u64,
    );
    let rows = ground_truth_with_progress(
        metric,
        base,
        dims,
        queries,
        k,
        allow.as_ref().map(|a| a as &dyn crate::index::Allow),
        &|| progress.advance(1),
    );
    progress.end();
    write_ivecs(path, rows)?;
    Ok(())
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
        let set = derive(&m, Metric::Cosine, 10);
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
                "ts range"
            ]
        );
        for case in &set.cases[1..] {
            let rows = rows_passing(&m, case.filter.as_ref().unwrap()).unwrap();
            assert_eq!(rows.len(), case.rows, "{}", case.name);
        }
        let rows: Vec<usize> = set.cases.iter().map(|c| c.rows).collect();
        assert_eq!(rows, [1000, 1, 10, 100, 600, 100, 250]);
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
    fn the_case_file_round_trips() {
        let set = derive(&meta(200), Metric::Euclidean, 10);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CASES_FILE);
        set.save(&path).unwrap();
        assert_eq!(CaseSet::load(&path).unwrap(), set);
    }
}
