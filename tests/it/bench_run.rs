//! The benchmark harness end to end on tiny datasets: `bench gen` writes what
//! `docs/bench.md` promises (ground truth equal to a brute-force oracle here), `bench run`
//! ingests, measures in a fresh process and reports recall 1.0 for the exact strategies,
//! a folder made by another tool (vectors only) is completed and measured, and
//! `bench report` merges results into tables and a plot.

use std::collections::HashMap;
use std::path::Path;

use d1vec::bench::{read_fvecs, read_ivecs};
use serde_json::Value;

use super::cli::ok_json;
use super::oracle::cosine;

/// The exact top-`k` rows of `allowed` for `query`, by f64 cosine (ties by row).
fn brute_rows(base: &[f32], dims: usize, query: &[f32], allowed: &[usize], k: usize) -> Vec<i32> {
    let q: Vec<f64> = query.iter().map(|&x| f64::from(x)).collect();
    let mut scored: Vec<(usize, f64)> = allowed
        .iter()
        .map(|&r| {
            let v: Vec<f64> = base[r * dims..(r + 1) * dims]
                .iter()
                .map(|&x| f64::from(x))
                .collect();
            (r, cosine(&v, &q))
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.iter().take(k).map(|&(r, _)| r as i32).collect()
}

fn meta_rows(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("meta.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn search_lines(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["measure"] == "search").collect()
}

/// `bench gen` of 1,500 x 24 with 20 queries, 6 tenants, seed 7, into `out`.
fn gen_small(out: &Path) {
    let db = out.with_extension("unused.sqlite");
    ok_json(
        &db,
        &[
            "--json",
            "bench",
            "gen",
            "--dims",
            "24",
            "--n",
            "1500",
            "--queries",
            "20",
            "--tenants",
            "6",
            "--seed",
            "7",
            "--out",
            out.to_str().unwrap(),
        ],
    );
}

#[test]
fn gen_writes_the_layout_with_brute_force_ground_truth() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    gen_small(&dir);
    let (dims, base) = read_fvecs(dir.join("base.fvecs")).unwrap();
    let (qdims, queries) = read_fvecs(dir.join("query.fvecs")).unwrap();
    assert_eq!(
        (dims, qdims, base.len() / dims, queries.len() / dims),
        (24, 24, 1500, 20)
    );
    // Unit-length vectors, as text embedders emit.
    for row in base.chunks(dims) {
        let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
    let meta = meta_rows(&dir);
    assert_eq!(meta.len(), 1500);
    let mut ids = std::collections::HashSet::new();
    for m in &meta {
        assert!(m["id"].is_string() && m["tenant"].is_string() && m["category"].is_string());
        assert!(m["ts"].is_i64());
        assert!(ids.insert(m["id"].as_str().unwrap().to_owned()));
    }
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let cases = cases["cases"].as_array().unwrap();
    let names: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for want in [
        "unfiltered",
        "tenant 0.1%",
        "tenant 1%",
        "tenant 10%",
        "category",
        "ts range",
    ] {
        assert!(names.contains(&want), "{names:?}");
    }
    // Every case's ground truth equals brute force over the rows its filter passes,
    // with the filter evaluated here by hand.
    // A case with `query_filters` has one filter (and row count) per query.
    let passing = |filter: &Value| -> Vec<usize> {
        (0..meta.len())
            .filter(|&r| {
                let m = &meta[r];
                match filter {
                    Value::Null => true,
                    Value::Object(f) => f.iter().all(|(key, cond)| match cond {
                        Value::String(s) => m[key] == *s,
                        Value::Object(ops) => ops.iter().all(|(op, v)| match op.as_str() {
                            "$in" => v.as_array().unwrap().contains(&m[key]),
                            "$gte" => m[key].as_i64() >= v.as_i64(),
                            "$lt" => m[key].as_i64() < v.as_i64(),
                            other => panic!("unexpected operator {other}"),
                        }),
                        other => panic!("unexpected condition {other}"),
                    }),
                    other => panic!("unexpected filter {other}"),
                }
            })
            .collect()
    };
    for case in cases {
        let truth = read_ivecs(dir.join(case["groundtruth"].as_str().unwrap())).unwrap();
        assert_eq!(truth.len(), 20);
        for (qi, row) in truth.iter().enumerate() {
            let (allowed, rows) = match case.get("query_filters") {
                Some(per_query) => (
                    passing(&per_query[qi]),
                    case["query_rows"][qi].as_u64().unwrap() as usize,
                ),
                None => (
                    passing(&case["filter"]),
                    case["rows"].as_u64().unwrap() as usize,
                ),
            };
            assert_eq!(allowed.len(), rows, "{} query {qi}", case["name"]);
            let want = brute_rows(
                &base,
                dims,
                &queries[qi * dims..(qi + 1) * dims],
                &allowed,
                100,
            );
            assert_eq!(row, &want, "case {} query {qi}", case["name"]);
        }
    }
    // The same seed writes the same bytes.
    let again = tmp.path().join("again");
    gen_small(&again);
    for f in [
        "base.fvecs",
        "query.fvecs",
        "meta.ndjson",
        "cases.json",
        "groundtruth.ivecs",
    ] {
        assert_eq!(
            std::fs::read(dir.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn run_measures_in_a_fresh_process_and_exact_strategies_are_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let d = dir.to_str().unwrap();
    let db = tmp.path().join("unused.sqlite");
    ok_json(
        &db,
        &[
            "--json",
            "bench",
            "gen",
            "--dims",
            "32",
            "--n",
            "3000",
            "--queries",
            "40",
            "--tenants",
            "8",
            "--out",
            d,
        ],
    );
    let out = ok_json(
        &db,
        &[
            "--json",
            "bench",
            "run",
            d,
            "--ef",
            "16,64",
            "--threads",
            "1,2",
        ],
    );
    let lines = out.as_array().unwrap();
    // The same lines are in the results file.
    let written: Vec<Value> = std::fs::read_to_string(dir.join("results/d1vec.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(&written, lines);
    for l in lines {
        for field in [
            "system", "measure", "dataset", "n", "dims", "metric", "version",
        ] {
            assert!(!l[field].is_null(), "{field} missing in {l}");
        }
        assert_eq!(l["n"], 3000);
    }
    let build = lines.iter().find(|l| l["measure"] == "build").unwrap();
    assert!(build["vectors_per_s"].as_f64().unwrap() > 0.0);
    let open = lines.iter().find(|l| l["measure"] == "open").unwrap();
    assert_eq!(open["fresh_process"], true);
    assert!(open["first_answer_ms"].as_f64().unwrap() > 0.0);
    assert!(open["index_bytes"].as_u64().unwrap() > 3000 * 32 * 4);

    let searches = search_lines(lines);
    let cases: Vec<&str> = {
        let mut c: Vec<&str> = searches
            .iter()
            .map(|l| l["case"].as_str().unwrap())
            .collect();
        c.dedup();
        c
    };
    assert!(cases.len() >= 6, "{cases:?}");
    for l in &searches {
        let recall = l["recall_at_10"].as_f64().unwrap();
        let planner = &l["planner"];
        let all_exact = planner["graph"] == 0;
        if l["system"] == "d1vec-exact" || all_exact {
            assert_eq!(recall, 1.0, "an exact strategy missed: {l}");
        }
        if l["system"] == "d1vec-exact" {
            assert!(all_exact, "{l}");
        }
        assert!(l["qps"].as_f64().unwrap() > 0.0);
        if l["threads"] == 1 {
            assert!(l["p50_ms"].as_f64().unwrap() <= l["p99_ms"].as_f64().unwrap());
        }
    }
    // Both thread counts were measured for every case and strategy.
    let mut seen: HashMap<(String, String, u64), usize> = HashMap::new();
    for l in &searches {
        *seen
            .entry((
                l["case"].as_str().unwrap().to_owned(),
                l["system"].as_str().unwrap().to_owned(),
                l["threads"].as_u64().unwrap(),
            ))
            .or_default() += 1;
    }
    for ((case, system, _), _) in seen.iter() {
        for t in [1, 2] {
            assert!(
                seen.contains_key(&(case.clone(), system.clone(), t)),
                "{case} {system} {t}"
            );
        }
    }

    // The report merges the results and draws the plot.
    let plot = tmp.path().join("plot.png");
    let md = tmp.path().join("report.md");
    let report = super::cli::d1vec(
        &db,
        &[
            "bench",
            "report",
            d,
            "--plot",
            plot.to_str().unwrap(),
            "--output",
            md.to_str().unwrap(),
        ],
    );
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(
        text.contains("| tenant 1% |") && text.contains("d1vec-exact"),
        "{text}"
    );
    let png = std::fs::read(&plot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn run_completes_a_folder_made_by_another_tool() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("foreign");
    std::fs::create_dir_all(&dir).unwrap();
    // Plain vectors, not unit length, no metadata, no ground truth.
    let dims = 8;
    let noise =
        |i: u64| ((i.wrapping_mul(2_654_435_761) % 1_000_003) as f32 / 1_000_003.0 - 0.5) * 4.0;
    let base: Vec<f32> = (0..600 * dims as u64).map(noise).collect();
    let queries: Vec<f32> = (0..10 * dims as u64)
        .map(|i| noise(i + 7_777_777))
        .collect();
    d1vec::bench::write_fvecs(dir.join("base.fvecs"), dims, &base).unwrap();
    d1vec::bench::write_fvecs(dir.join("query.fvecs"), dims, &queries).unwrap();
    let d = dir.to_str().unwrap();
    let out = ok_json(
        &tmp.path().join("unused.sqlite"),
        &["--json", "bench", "run", d, "--ef", "32", "--threads", "1"],
    );
    let truth = read_ivecs(dir.join("groundtruth.ivecs")).unwrap();
    let all: Vec<usize> = (0..600).collect();
    for (qi, row) in truth.iter().enumerate() {
        let want = brute_rows(&base, dims, &queries[qi * dims..(qi + 1) * dims], &all, 100);
        // Compare scores, so that a near-tie computed in f32 does not count as a miss.
        let score = |r: i32| {
            let v: Vec<f64> = base[r as usize * dims..(r as usize + 1) * dims]
                .iter()
                .map(|&x| f64::from(x))
                .collect();
            let q: Vec<f64> = queries[qi * dims..(qi + 1) * dims]
                .iter()
                .map(|&x| f64::from(x))
                .collect();
            cosine(&v, &q)
        };
        for (got, want) in row.iter().zip(&want) {
            assert!((score(*got) - score(*want)).abs() < 1e-6, "query {qi}");
        }
    }
    let searches = search_lines(out.as_array().unwrap());
    assert!(searches.iter().all(|l| l["case"] == "unfiltered"));
    let exact = searches
        .iter()
        .find(|l| l["system"] == "d1vec-exact")
        .unwrap();
    assert_eq!(exact["recall_at_10"], 1.0);
}
