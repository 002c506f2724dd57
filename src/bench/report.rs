//! `bench report`: every system's result lines (`results/*.jsonl`, schema in
//! `docs/bench.md`) merged into markdown tables and a recall-against-QPS plot.
//!
//! The summary picks, per case and system, the single-thread operating point a user would
//! pick: the fastest ef whose recall@10 is at least [`RECALL_FLOOR`] (or the best recall
//! when none reaches it), and shows the 2-thread figure at the same ef beside it.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// The recall an operating point must reach to count in the summary.
pub const RECALL_FLOOR: f64 = 0.95;

/// Reads every `results/*.jsonl` of a dataset folder, in file-name order.
pub fn read_results(dir: &Path) -> Result<Vec<Value>> {
    let results = dir.join("results");
    let mut files: Vec<_> = std::fs::read_dir(&results)
        .map_err(Error::io(&results))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut lines = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(Error::io(&path))?;
        for (i, l) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v: Value = serde_json::from_str(l).map_err(|e| {
                Error::invalid(
                    "results file",
                    format!("{} line {}: {e}", path.display(), i + 1),
                )
            })?;
            lines.push(v);
        }
    }
    Ok(lines)
}

/// One search measurement, as the report reads it.
#[derive(Debug, Clone)]
struct Point {
    system: String,
    case: String,
    selectivity: f64,
    threads: u64,
    ef: Option<u64>,
    recall: f64,
    qps: f64,
    p50: Option<f64>,
    p99: Option<f64>,
}

fn points(lines: &[Value]) -> Vec<Point> {
    lines
        .iter()
        .filter(|l| l.get("measure").and_then(Value::as_str) == Some("search"))
        .filter_map(|l| {
            Some(Point {
                system: l.get("system")?.as_str()?.to_owned(),
                case: l.get("case")?.as_str()?.to_owned(),
                selectivity: l.get("selectivity").and_then(Value::as_f64).unwrap_or(1.0),
                threads: l.get("threads")?.as_u64()?,
                ef: l.get("ef").and_then(Value::as_u64),
                recall: l.get("recall_at_10")?.as_f64()?,
                qps: l.get("qps")?.as_f64()?,
                p50: l.get("p50_ms").and_then(Value::as_f64),
                p99: l.get("p99_ms").and_then(Value::as_f64),
            })
        })
        .collect()
}

/// Each distinct key of `items`, in the order it first appears.
fn first_seen<T, K: PartialEq>(items: impl IntoIterator<Item = T>, key: impl Fn(T) -> K) -> Vec<K> {
    let mut out: Vec<K> = Vec::new();
    for item in items {
        let k = key(item);
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// Cases in the order they first appear (unfiltered first, as `cases.json` lists them).
fn case_order(points: &[Point]) -> Vec<(String, f64)> {
    let names = first_seen(points, |p| p.case.clone());
    names
        .into_iter()
        .map(|c| {
            let selectivity = points
                .iter()
                .find(|p| p.case == c)
                .map_or(1.0, |p| p.selectivity);
            (c, selectivity)
        })
        .collect()
}

fn systems(points: &[Point]) -> Vec<String> {
    first_seen(points, |p| p.system.clone())
}

/// The single-thread operating point of `system` on `case` (see the module doc).
fn operating_point<'a>(points: &'a [Point], system: &str, case: &str) -> Option<&'a Point> {
    let mine: Vec<&Point> = points
        .iter()
        .filter(|p| p.system == system && p.case == case && p.threads == 1)
        .collect();
    let good = mine
        .iter()
        .filter(|p| p.recall >= RECALL_FLOOR)
        .max_by(|a, b| a.qps.total_cmp(&b.qps));
    good.or_else(|| {
        mine.iter()
            .max_by(|a, b| a.recall.total_cmp(&b.recall).then(a.qps.total_cmp(&b.qps)))
    })
    .copied()
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "—".to_owned(), |x| format!("{x:.digits$}"))
}

fn mib(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |b| format!("{:.0}", b / 1048576.0))
}

/// The markdown tables for a set of result lines: a summary per case, build and footprint
/// per system, and the full sweep.
pub fn markdown(lines: &[Value]) -> String {
    let pts = points(lines);
    let mut out = String::new();
    if let Some(first) = lines.first() {
        let _ = writeln!(
            out,
            "Dataset `{}`: {} x {} {}, recall@10 against exact ground truth.\n",
            first.get("dataset").and_then(Value::as_str).unwrap_or("?"),
            first.get("n").unwrap_or(&Value::Null),
            first.get("dims").unwrap_or(&Value::Null),
            first.get("metric").and_then(Value::as_str).unwrap_or("?"),
        );
    }
    let _ = writeln!(
        out,
        "Search, per case: each system at its fastest single-thread setting with recall@10 >= {RECALL_FLOOR} \
         (or its best recall), and 2 threads at the same setting.\n"
    );
    let _ = writeln!(
        out,
        "| case | rows passing | system | ef | recall@10 | QPS 1 thread | QPS 2 threads | 2T / 1T | p50 ms | p99 ms | d1vec QPS ÷ this |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let systems = systems(&pts);
    for (case, selectivity) in case_order(&pts) {
        let d1vec_qps = operating_point(&pts, "d1vec", &case).map(|p| p.qps);
        for system in &systems {
            let Some(p) = operating_point(&pts, system, &case) else {
                continue;
            };
            let two = pts
                .iter()
                .find(|q| q.system == *system && q.case == case && q.threads == 2 && q.ef == p.ef)
                .map(|q| q.qps);
            let _ = writeln!(
                out,
                "| {case} | {:.2} % | {system} | {} | {:.3} | {:.0} | {} | {} | {} | {} | {} |",
                selectivity * 100.0,
                p.ef.map_or_else(|| "exact".to_owned(), |e| e.to_string()),
                p.recall,
                p.qps,
                fmt_opt(two, 0),
                fmt_opt(two.map(|t| t / p.qps), 2),
                fmt_opt(p.p50, 2),
                fmt_opt(p.p99, 2),
                fmt_opt(d1vec_qps.map(|d| d / p.qps), 2),
            );
        }
    }
    out.push('\n');
    filters_cold(lines, &mut out);
    footprint(lines, &systems, &mut out);
    out.push_str("\n<details><summary>Full sweep</summary>\n\n");
    let _ = writeln!(
        out,
        "| case | system | threads | ef | recall@10 | QPS | p50 ms | p99 ms |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
    for p in &pts {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.4} | {:.0} | {} | {} |",
            p.case,
            p.system,
            p.threads,
            p.ef.map_or_else(|| "exact".to_owned(), |e| e.to_string()),
            p.recall,
            p.qps,
            fmt_opt(p.p50, 2),
            fmt_opt(p.p99, 2)
        );
    }
    out.push_str("\n</details>\n");
    out
}

/// `bytes` as MiB, with its share of `of` when both are known: `156 (11.1 %)`.
fn mib_share(bytes: Option<f64>, of: Option<f64>) -> String {
    match (bytes, of) {
        (Some(b), Some(d)) if d > 0.0 => format!("{:.0} ({:.1} %)", b / 1048576.0, 100.0 * b / d),
        _ => mib(bytes),
    }
}

/// First sight against repeats of each filtered case (`filter_cold` lines), one row per
/// case and system that measured it.
fn filters_cold(lines: &[Value], out: &mut String) {
    let cold: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("measure").and_then(Value::as_str) == Some("filter_cold"))
        .collect();
    if cold.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "Filters, first sight (cold: a filter the process has never seen, in a fresh index \
         handle) against repeated (warm), one thread, default settings.\n"
    );
    let _ = writeln!(
        out,
        "| case | rows passing | system | queries cold / warm | cold p50 ms | cold p99 ms | cold QPS | warm p50 ms | warm p99 ms | warm QPS | cold ÷ warm QPS | recall@10 cold |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for l in cold {
        let f = |k: &str| l.get(k).and_then(Value::as_f64);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            l.get("case").and_then(Value::as_str).unwrap_or("?"),
            fmt_opt(f("selectivity").map(|s| s * 100.0), 2) + " %",
            l.get("system").and_then(Value::as_str).unwrap_or("?"),
            fmt_opt(f("cold_queries"), 0),
            fmt_opt(f("warm_queries"), 0),
            fmt_opt(f("cold_p50_ms"), 2),
            fmt_opt(f("cold_p99_ms"), 2),
            fmt_opt(f("cold_qps"), 0),
            fmt_opt(f("warm_p50_ms"), 2),
            fmt_opt(f("warm_p99_ms"), 2),
            fmt_opt(f("warm_qps"), 0),
            fmt_opt(f("cold_qps").zip(f("warm_qps")).map(|(c, w)| c / w), 2),
            fmt_opt(f("cold_recall_at_10"), 3),
        );
    }
    out.push('\n');
}

/// Build, disk, first answer and memory, one row per system that reported any.
fn footprint(lines: &[Value], systems: &[String], out: &mut String) {
    let find = |system: &str, measure: &str| {
        lines.iter().find(|l| {
            l.get("system").and_then(Value::as_str) == Some(system)
                && l.get("measure").and_then(Value::as_str) == Some(measure)
        })
    };
    let all = first_seen(
        systems.iter().cloned().chain(
            lines
                .iter()
                .filter_map(|l| l.get("system")?.as_str().map(str::to_owned)),
        ),
        |s| s,
    );
    let _ = writeln!(
        out,
        "| system | build threads | build s | vectors/s | seal s | compact s | disk MiB | first answer ms, warm | first answer ms, evicted | of which process start ms | RSS baseline MiB | RSS after open MiB (% of index) | RSS after first query MiB (%) | RSS after queries MiB (%) |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for system in &all {
        let build = find(system, "build");
        let disk = find(system, "disk");
        let open = find(system, "open");
        let first = find(system, "first_answer");
        let memory = find(system, "memory");
        if build.is_none() && disk.is_none() && open.is_none() {
            continue;
        }
        let f = |l: Option<&Value>, k: &str| l.and_then(|l| l.get(k)).and_then(Value::as_f64);
        let disk_bytes = f(disk, "bytes").or_else(|| f(open, "index_bytes"));
        let index = f(open, "index_bytes").or(disk_bytes);
        let warm = f(first, "warm_ms").or_else(|| f(open, "first_answer_ms"));
        let evicted = f(first, "evicted_ms").or_else(|| f(open, "first_answer_evicted_ms"));
        let _ = writeln!(
            out,
            "| {system} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            fmt_opt(f(build, "threads"), 0),
            fmt_opt(f(build, "seconds"), 1),
            fmt_opt(f(build, "vectors_per_s"), 0),
            fmt_opt(f(build, "seal_seconds"), 1),
            fmt_opt(f(build, "compact_seconds"), 1),
            mib(disk_bytes),
            fmt_opt(warm, 0),
            fmt_opt(evicted, 0),
            fmt_opt(f(open, "process_start_ms"), 0),
            mib(f(open, "rss_baseline_bytes")),
            mib_share(f(open, "rss_after_open_bytes"), index),
            mib_share(
                f(open, "rss_after_first_query_bytes")
                    .or_else(|| f(first, "rss_after_first_query_bytes")),
                index
            ),
            mib_share(f(memory, "rss_bytes"), index),
        );
    }
}

/// Finds a TrueType font for the plot's labels: `D1VEC_FONT`, then common system paths.
fn load_font() -> Option<&'static [u8]> {
    let mut candidates: Vec<std::path::PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("D1VEC_FONT") {
        candidates.push(p.into());
    }
    for p in [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/Library/Fonts/Arial.ttf",
        "/System/Library/Fonts/Supplemental/Arial.ttf",
        "C:\\Windows\\Fonts\\arial.ttf",
    ] {
        candidates.push(p.into());
    }
    let bytes = candidates.iter().find_map(|p| std::fs::read(p).ok())?;
    // Registered once per process and kept for its life, as plotters requires.
    Some(Box::leak(bytes.into_boxed_slice()))
}

/// Draws recall@10 (x) against single-thread QPS (y, log scale): one panel per case, one
/// curve per system, to a PNG. Needs a TrueType font (see `D1VEC_FONT`).
pub fn plot(lines: &[Value], path: &Path) -> Result<()> {
    use plotters::prelude::*;

    let font = load_font().ok_or_else(|| {
        Error::invalid(
            "--plot",
            "no TrueType font found: set D1VEC_FONT to a .ttf file (DejaVuSans.ttf works)",
        )
    })?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| Error::invalid("--plot", "the font file is not a usable TrueType font"))?;
    let pts = points(lines);
    let cases = case_order(&pts);
    if cases.is_empty() {
        return Err(Error::invalid("--plot", "no search results to draw"));
    }
    let systems = systems(&pts);
    let plot_err = |e: &dyn std::fmt::Display| Error::invalid("--plot", e.to_string());
    let columns = 2usize.min(cases.len());
    let rows = cases.len().div_ceil(columns);
    let root =
        BitMapBackend::new(path, (640 * columns as u32, 420 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(&e))?;
    let panels = root.split_evenly((rows, columns));
    let palette = [
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0xff, 0x7f, 0x0e),
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0x8c, 0x56, 0x4b),
        RGBColor(0x7f, 0x7f, 0x7f),
    ];
    for ((case, selectivity), panel) in cases.iter().zip(panels.iter()) {
        let mine: Vec<&Point> = pts
            .iter()
            .filter(|p| &p.case == case && p.threads == 1)
            .collect();
        let lo_recall = mine.iter().map(|p| p.recall).fold(1.0_f64, f64::min);
        let x_lo = (lo_recall - 0.02).clamp(0.0, 0.98);
        let (q_lo, q_hi) = mine.iter().fold((f64::MAX, 0.0_f64), |(lo, hi), p| {
            (lo.min(p.qps), hi.max(p.qps))
        });
        let (q_lo, q_hi) = ((q_lo * 0.7).max(0.1), (q_hi * 1.5).max(1.0));
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("{case} ({:.2} % of rows)", selectivity * 100.0),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(x_lo..1.005_f64, (q_lo..q_hi).log_scale())
            .map_err(|e| plot_err(&e))?;
        chart
            .configure_mesh()
            .x_desc("recall@10")
            .y_desc("QPS, 1 thread")
            .y_labels(8)
            .y_label_formatter(&|v| format!("{v:.0}"))
            .x_label_formatter(&|v| format!("{v:.2}"))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| plot_err(&e))?;
        for (i, system) in systems.iter().enumerate() {
            let mut curve: Vec<(f64, f64)> = mine
                .iter()
                .filter(|p| &p.system == system)
                .map(|p| (p.recall, p.qps))
                .collect();
            if curve.is_empty() {
                continue;
            }
            curve.sort_by(|a, b| a.0.total_cmp(&b.0));
            let color = palette[i % palette.len()];
            chart
                .draw_series(LineSeries::new(curve.clone(), color.stroke_width(2)))
                .map_err(|e| plot_err(&e))?
                .label(system.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart
                .draw_series(curve.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                .map_err(|e| plot_err(&e))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .position(SeriesLabelPosition::LowerLeft)
            .draw()
            .map_err(|e| plot_err(&e))?;
    }
    root.present().map_err(|e| plot_err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn common(system: &str, measure: &str) -> serde_json::Map<String, Value> {
        let v = json!({"dataset": "d", "n": 1000, "dims": 8, "metric": "cosine",
                       "version": "v", "system": system, "measure": measure});
        v.as_object().unwrap().clone()
    }

    fn with(system: &str, measure: &str, fields: Value) -> Value {
        let mut m = common(system, measure);
        m.extend(fields.as_object().unwrap().clone());
        Value::Object(m)
    }

    /// The table's row that starts with `start`, split into cells.
    fn row<'a>(md: &'a str, start: &str) -> Vec<&'a str> {
        let line = md
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no row {start:?} in\n{md}"));
        line.trim_matches('|').split('|').map(str::trim).collect()
    }

    #[test]
    fn the_report_shows_cold_and_warm_filters_first_answers_and_memory() {
        let mib = 1048576.0;
        let lines = vec![
            with(
                "d1vec",
                "build",
                json!({"threads": 2, "seconds": 10.0, "vectors_per_s": 100.0,
                                          "seal_seconds": 1.0, "compact_seconds": 2.0}),
            ),
            with("d1vec", "disk", json!({"bytes": 1000.0 * mib})),
            with(
                "d1vec",
                "first_answer",
                json!({"warm_ms": 12.4, "evicted_ms": 250.6}),
            ),
            with(
                "d1vec",
                "open",
                json!({"rss_baseline_bytes": 20.0 * mib,
                                         "rss_after_open_bytes": 40.0 * mib,
                                         "rss_after_first_query_bytes": 60.0 * mib,
                                         "index_bytes": 800.0 * mib}),
            ),
            with("d1vec", "memory", json!({"rss_bytes": 200.0 * mib})),
            with(
                "d1vec",
                "search",
                json!({"case": "unfiltered", "selectivity": 1.0, "threads": 1,
                                           "ef": 64, "recall_at_10": 0.97, "qps": 500.0}),
            ),
            with(
                "d1vec",
                "filter_cold",
                json!({"case": "ts window", "selectivity": 0.25,
                "cold_queries": 200, "warm_queries": 200, "cold_p50_ms": 3.0, "cold_p99_ms": 9.0,
                "cold_qps": 250.0, "warm_p50_ms": 1.5, "warm_p99_ms": 2.0, "warm_qps": 500.0,
                "cold_recall_at_10": 0.96}),
            ),
            with(
                "hnswlib",
                "open",
                json!({"first_answer_ms": 800.0, "first_answer_evicted_ms": 900.0,
                                           "process_start_ms": 300.0, "rss_after_open_bytes": 600.0 * mib,
                                           "index_bytes": 600.0 * mib}),
            ),
        ];
        let md = markdown(&lines);
        let cold = row(&md, "| ts window");
        assert_eq!(
            cold,
            [
                "ts window",
                "25.00 %",
                "d1vec",
                "200 / 200",
                "3.00",
                "9.00",
                "250",
                "1.50",
                "2.00",
                "500",
                "0.50",
                "0.960"
            ]
        );
        let d1 = row(&md, "| d1vec | 2");
        assert_eq!(
            d1,
            [
                "d1vec",
                "2",
                "10.0",
                "100",
                "1.0",
                "2.0",
                "1000",
                "12",
                "251",
                "—",
                "20",
                "40 (5.0 %)",
                "60 (7.5 %)",
                "200 (25.0 %)"
            ]
        );
        let peer = row(&md, "| hnswlib | —");
        assert_eq!(
            &peer[6..],
            ["600", "800", "900", "300", "—", "600 (100.0 %)", "—", "—"]
        );
        // Without cold lines there is no cold table.
        assert!(!markdown(&lines[..6]).contains("first sight"));
    }
}
