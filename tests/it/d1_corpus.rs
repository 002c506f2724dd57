//! The D1 SQL corpus (`tests/data/d1_corpus.tsv`): every statement gives the outcome D1's
//! documentation gives it (the file names the page for each). The oracle is the
//! documentation, recorded case by case; the expected values are SQLite's own (for math,
//! the IEEE results `f64` gives).

use d1vec::{Database, Error};
use serde_json::Value;

const CORPUS: &str = include_str!("../data/d1_corpus.tsv");

/// Expands the corpus macros; returns the SQL and how many NULLs to bind.
fn expand(sql: &str) -> (String, usize) {
    let mut out = String::new();
    let mut binds = 0;
    let mut rest = sql;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("closed macro") + start;
        let parts: Vec<&str> = rest[start + 2..end].splitn(3, ':').collect();
        let n: usize = parts[1].parse().expect("macro count");
        match parts[0] {
            "rep" => out.push_str(&parts[2].repeat(n)),
            "list" => out.push_str(&vec![parts[2]; n].join(", ")),
            "cols" => out.push_str(
                &(1..=n)
                    .map(|i| format!("c{i}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            "params" => {
                out.push_str(&vec!["?"; n].join(", "));
                binds += n;
            }
            other => panic!("unknown macro {other}"),
        }
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    (out, binds)
}

struct Case<'a> {
    line: usize,
    outcome: &'a str,
    expected: &'a str,
    source: &'a str,
    sql: &'a str,
}

fn cases() -> (Vec<&'static str>, Vec<Case<'static>>) {
    let mut setup = Vec::new();
    let mut cases = Vec::new();
    for (i, line) in CORPUS.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(sql) = line.strip_prefix("SETUP\t") {
            setup.push(sql);
            continue;
        }
        let cols: Vec<&str> = line.splitn(4, '\t').collect();
        assert_eq!(cols.len(), 4, "line {}: {line}", i + 1);
        cases.push(Case {
            line: i + 1,
            outcome: cols[0],
            expected: cols[1],
            source: cols[2],
            sql: cols[3],
        });
    }
    (setup, cases)
}

fn same_value(expected: &str, got: &Value) -> bool {
    if expected == "-" {
        return true;
    }
    if let Some(x) = expected.strip_prefix('~') {
        let want: f64 = x.parse().expect("number");
        let Some(g) = got.as_f64() else { return false };
        return (g - want).abs() <= 1e-9 * want.abs().max(1.0);
    }
    let want: Value = serde_json::from_str(expected).expect("expected is JSON");
    match (&want, got) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => &want == got,
    }
}

fn outcome_of(result: &Result<d1vec::sql::D1Result, Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(Error::NotAllowed(_)) => "not_allowed",
        Err(Error::D1Limit { .. }) => "d1_limit",
        Err(Error::LimitExceeded { .. }) => "limit_exceeded",
        Err(Error::ValueTooLarge { .. }) => "value_too_large",
        Err(Error::Sql(_)) => "sql_error",
        Err(_) => "other error",
    }
}

#[test]
fn corpus_has_at_least_150_cases_each_with_a_documented_source() {
    let (_, cases) = cases();
    assert!(cases.len() >= 150, "{} cases", cases.len());
    for c in &cases {
        assert!(
            ["@limits", "@ext", "@json", "@pragma", "@core"].contains(&c.source),
            "line {}: unknown source {}",
            c.line,
            c.source
        );
    }
    for outcome in [
        "ok",
        "not_allowed",
        "d1_limit",
        "limit_exceeded",
        "value_too_large",
    ] {
        assert!(
            cases.iter().any(|c| c.outcome == outcome),
            "no {outcome} case"
        );
    }
}

#[test]
fn every_statement_gives_d1s_documented_outcome() {
    let (setup, cases) = cases();
    let db = Database::open_in_memory().unwrap();
    for sql in setup {
        db.prepare(sql).run().unwrap();
    }
    let mut failures = Vec::new();
    for c in &cases {
        let (sql, binds) = expand(c.sql);
        let result = db
            .prepare(&sql)
            .bind((0..binds).map(|_| d1vec::sql::Param::Null))
            .all();
        let got = outcome_of(&result);
        let shown: String = c.sql.chars().take(90).collect();
        if got != c.outcome {
            failures.push(format!(
                "line {} ({}): want {}, got {got} {:?}: {shown}",
                c.line,
                c.source,
                c.outcome,
                result.as_ref().err().map(ToString::to_string)
            ));
            continue;
        }
        if let Ok(r) = &result {
            let first = r
                .columns
                .first()
                .and_then(|col| r.results.first().and_then(|row| row.get(col)))
                .cloned()
                .unwrap_or(Value::Null);
            if !same_value(c.expected, &first) {
                failures.push(format!(
                    "line {}: want {}, got {first}: {shown}",
                    c.line, c.expected
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn a_refusal_names_d1_and_changes_nothing() {
    let db = Database::open_in_memory().unwrap();
    let before = db
        .prepare("SELECT count(*) AS n FROM sqlite_schema")
        .first_column("n")
        .unwrap();
    for sql in [
        "CREATE VIRTUAL TABLE f USING fts4(x)",
        "CREATE VIRTUAL TABLE r USING rtree(id, a, b)",
        "SELECT * FROM dbstat",
        "SELECT soundex('x')",
    ] {
        let err = db.prepare(sql).all().unwrap_err();
        assert!(matches!(err, Error::NotAllowed(_)), "{sql}: {err:?}");
        assert!(err.to_string().contains("D1"), "{sql}: {err}");
    }
    let after = db
        .prepare("SELECT count(*) AS n FROM sqlite_schema")
        .first_column("n")
        .unwrap();
    assert_eq!(before, after);
}
