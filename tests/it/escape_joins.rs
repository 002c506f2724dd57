//! Join forms against every table a session can name, generated, with two oracles.
//!
//! The adversarial review found that `NATURAL JOIN` and `JOIN … USING` read base tables
//! past the authorizer: SQLite synthesizes the join's column references itself and never
//! asks about them. The fix makes the database's tables unnameable from a session (see
//! ARCHITECTURE.md, "Tenant isolation"). These tests cover the class, not the instances:
//!
//! - **Database A** holds the fixture: eight tenants' rows, shared tables, k-anonymous
//!   rollups with rows on both sides of k, the hidden `skills.origin_tenant_id`, wrapped
//!   keys, an application table with `AUTOINCREMENT` (so `sqlite_sequence` has rows),
//!   `ANALYZE` statistics (`sqlite_stat1`/`sqlite_stat4`), a private vector index with two
//!   tenants' vectors (`d1vec_*` tables).
//! - **Database B** is A less everything tenant T may not see: other tenants' rows, rollup
//!   rows under k, every row of the hidden tables, the hidden column's values.
//!
//! A generated query pairs a left side built from A's *invisible* rows (so a leak would
//! match) with one table reference (any table of A, SQLite's schema tables, with no
//! qualifier, `main.` or `temp.`) in one of twenty join forms: NATURAL (inner, LEFT, RIGHT,
//! FULL), USING (inner, LEFT, FULL with the coalesced column), CROSS, comma, ON, `IN
//! (SELECT …)`, `EXISTS`, scalar subqueries, window functions over joins, compound selects
//! and CTEs. Then:
//!
//! 1. T's session on A and T's session on B give the same answer (both refused, or the
//!    same rows): nothing T may not see changes any answer;
//! 2. when the reference is an unqualified table T may read, the session's answer on A
//!    equals the admin's answer on B, which holds exactly what T may see;
//! 3. no error message carries a session secret (32 hex digits).

use std::collections::BTreeMap;
use std::path::Path;

use d1vec::index::Metric;
use d1vec::vectorize::types::Vector;
use d1vec::vectorize::{CreateIndex, Scope};
use d1vec::{Database, Error, TenantSession};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

use crate::fixtures;

/// The tenant whose session is attacked from.
const T: &str = fixtures::TENANTS[0];

/// A table a query can name, what it holds, and rows of it T may not see.
struct Target {
    /// The name as written after a qualifier.
    name: String,
    columns: Vec<String>,
    /// Rows of A that T may not see (or any rows, for tables T sees whole), as SQL literals.
    secret_rows: Vec<Vec<String>>,
    /// Whether T may read the table by its unqualified name, exactly as the admin reads it
    /// on B (a tenant, shared or k-anonymous table without hidden columns).
    admin_comparable: bool,
}

fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => u8::from(*b).to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Array(bytes) => {
            let hex: String = bytes
                .iter()
                .map(|b| format!("{:02x}", b.as_u64().unwrap_or(0)))
                .collect();
            format!("X'{hex}'")
        }
        Value::Object(_) => "NULL".into(),
    }
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Builds A at `a` and B at `b`.
fn build(a: &Path, b: &Path) {
    let conn = fixtures::loaded();
    {
        let tx = conn.unchecked_transaction().unwrap();
        d1vec::rollup::recompute(&tx, &d1vec::rollup::RollupRange::All).unwrap();
        tx.commit().unwrap();
    }
    conn.execute_batch(
        "CREATE TABLE app_events (id INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id), body TEXT);
         CREATE INDEX app_events_tenant ON app_events (tenant_id);
         INSERT INTO app_events (tenant_id, body) SELECT tenant_id, 'event of ' || tenant_id FROM tenants;
         INSERT INTO tenant_keys (key_id, tenant_id, version, wrapped_key, algorithm, status)
             SELECT 'k99_' || tenant_id, tenant_id, 99, X'00112233', 'AES-256-GCM', 'active' FROM tenants;
         ANALYZE;",
    )
    .unwrap();
    for path in [a, b] {
        conn.execute("VACUUM INTO ?1", [path.to_str().unwrap()])
            .unwrap();
    }
    drop(conn);
    // B: A less everything T may not see (foreign keys off: the point is the rows, not
    // their order of deletion).
    let raw = rusqlite::Connection::open(b).unwrap();
    raw.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    let t = literal(&Value::from(T));
    let mut script = vec!["UPDATE skills SET origin_tenant_id = NULL".to_owned()];
    for internal in ["sqlite_sequence", "sqlite_stat1", "sqlite_stat4"] {
        script.push(format!("DELETE FROM {internal}"));
    }
    let tables: Vec<(String, bool)> = raw
        .prepare(
            "SELECT name, EXISTS (SELECT 1 FROM pragma_table_info(s.name) AS p WHERE p.name = 'tenant_id')
             FROM sqlite_schema AS s WHERE type = 'table' AND s.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (table, has_tenant) in tables {
        use d1vec::catalog::Access;
        match d1vec::catalog::classify(&table, has_tenant) {
            Access::TenantPrivate | Access::TenantReadOnly => script.push(format!(
                "DELETE FROM {} WHERE tenant_id IS NOT {t}",
                ident(&table)
            )),
            Access::SharedKAnonymous => script.push(format!(
                "DELETE FROM {} WHERE tenant_count < {}",
                ident(&table),
                d1vec::catalog::K_ANONYMITY
            )),
            Access::Hidden => script.push(format!("DELETE FROM {}", ident(&table))),
            Access::Shared => {}
        }
    }
    raw.execute_batch(&script.join(";\n")).unwrap();
    drop(raw);
    // The same private vector index in both; A holds three tenants' vectors, B only T's.
    for (path, tenants) in [(a, 3), (b, 1)] {
        let db = Database::open(path).unwrap();
        db.create_index(&CreateIndex::new("notes", 3, Metric::Cosine).scope(Scope::Private))
            .unwrap();
        let index = db.vectorize("notes").unwrap();
        for (i, tenant) in fixtures::TENANTS.iter().take(tenants).enumerate() {
            let v =
                Vector::new(format!("note-{i}"), vec![1.0, i as f64, 0.5]).with_namespace(*tenant);
            index.upsert(&[v]).unwrap();
        }
    }
}

/// Every table of `db` with whether it has a `tenant_id` column.
fn tables_of(db: &Database) -> Vec<(String, bool)> {
    db.prepare(
        "SELECT name, EXISTS (SELECT 1 FROM pragma_table_info(s.name) AS p WHERE p.name = 'tenant_id') AS t
         FROM sqlite_schema AS s WHERE type = 'table' AND s.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
           AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name",
    )
    .all()
    .unwrap()
    .results
    .iter()
    .map(|r| {
        (
            r["name"].as_str().unwrap().to_owned(),
            r["t"] == 1,
        )
    })
    .collect()
}

fn rows(db: &Database, sql: &str) -> Vec<BTreeMap<String, Value>> {
    db.prepare(sql)
        .all()
        .unwrap()
        .results
        .into_iter()
        .map(|r| r.into_iter().collect())
        .collect()
}

/// The tables a query may name, from A, each with rows T may not see.
fn targets(a: &Database) -> Vec<Target> {
    use d1vec::catalog::Access;
    let t = literal(&Value::from(T));
    let mut out = Vec::new();
    let mut add = |name: &str, secret_sql: String, admin_comparable: bool| {
        let columns: Vec<String> = a
            .prepare(&format!("SELECT * FROM {name} LIMIT 0"))
            .all()
            .unwrap()
            .columns;
        let secret_rows = rows(a, &secret_sql)
            .into_iter()
            .map(|r| columns.iter().map(|c| literal(&r[c])).collect())
            .collect();
        out.push(Target {
            name: name.to_owned(),
            columns,
            secret_rows,
            admin_comparable,
        });
    };
    for (table, has_tenant) in tables_of(a) {
        let q = ident(&table);
        let (secret, comparable) = match d1vec::catalog::classify(&table, has_tenant) {
            Access::TenantPrivate | Access::TenantReadOnly => (
                format!("SELECT * FROM {q} WHERE tenant_id IS NOT {t} LIMIT 12"),
                true,
            ),
            Access::SharedKAnonymous => (
                format!("SELECT * FROM {q} WHERE tenant_count < 5 LIMIT 12"),
                true,
            ),
            Access::Shared if table == "skills" => (
                format!("SELECT * FROM {q} WHERE origin_tenant_id IS NOT NULL LIMIT 12"),
                false,
            ),
            Access::Shared => (format!("SELECT * FROM {q} LIMIT 12"), true),
            Access::Hidden => (format!("SELECT * FROM {q} LIMIT 12"), false),
        };
        add(&q, secret, comparable);
    }
    for internal in ["sqlite_sequence", "sqlite_stat1", "sqlite_stat4"] {
        add(
            internal,
            format!("SELECT * FROM {internal} LIMIT 12"),
            false,
        );
    }
    for schema in [
        "sqlite_schema",
        "sqlite_master",
        "sqlite_temp_schema",
        "sqlite_temp_master",
    ] {
        add(schema, format!("SELECT * FROM {schema} LIMIT 40"), false);
    }
    out
}

/// One generated query: which target, qualifier and form, and the left side's picks.
#[derive(Debug, Clone)]
struct Case {
    target: usize,
    qualifier: usize,
    form: usize,
    columns: Vec<usize>,
    rows: Vec<usize>,
}

const QUALIFIERS: [&str; 3] = ["", "main.", "temp."];
const FORMS: usize = 20;

fn case_strategy(targets: usize) -> impl Strategy<Value = Case> {
    (
        0..targets,
        0..QUALIFIERS.len(),
        0..FORMS,
        prop::collection::vec(any::<usize>(), 1..4),
        prop::collection::vec(any::<usize>(), 1..3),
    )
        .prop_map(|(target, qualifier, form, columns, rows)| Case {
            target,
            qualifier,
            form,
            columns,
            rows,
        })
}

/// The SQL of `case`: a left side `l` built from the target's invisible rows, joined to
/// the target in the case's form. `c` is the first column the left side shares.
fn render(targets: &[Target], case: &Case) -> String {
    let target = &targets[case.target];
    let mut cols: Vec<usize> = case
        .columns
        .iter()
        .map(|&i| i % target.columns.len())
        .collect();
    cols.dedup();
    let names: Vec<String> = cols.iter().map(|&i| ident(&target.columns[i])).collect();
    let selects: Vec<String> = case
        .rows
        .iter()
        .map(|&r| {
            let values: Vec<String> = if target.secret_rows.is_empty() {
                cols.iter().map(|_| "NULL".to_owned()).collect()
            } else {
                let row = &target.secret_rows[r % target.secret_rows.len()];
                cols.iter().map(|&i| row[i].clone()).collect()
            };
            let parts: Vec<String> = values
                .iter()
                .zip(&names)
                .map(|(v, n)| format!("{v} AS {n}"))
                .collect();
            format!("SELECT {}", parts.join(", "))
        })
        .collect();
    let l = format!("({})", selects.join(" UNION ALL "));
    let r = format!("{}{}", QUALIFIERS[case.qualifier], target.name);
    let c = &names[0];
    match case.form {
        0 => format!("SELECT l.* FROM {l} AS l NATURAL JOIN {r}"),
        1 => format!("SELECT l.* FROM {l} AS l JOIN {r} USING ({c})"),
        2 => format!("SELECT count(*) AS n FROM {l} AS l LEFT JOIN {r} USING ({c})"),
        3 => format!("SELECT l.* FROM {l} AS l NATURAL RIGHT JOIN {r}"),
        4 => format!("SELECT {c} FROM {l} AS l FULL JOIN {r} USING ({c})"),
        5 => format!("SELECT * FROM {l} AS l NATURAL FULL JOIN {r}"),
        6 => format!("SELECT count(*) AS n FROM {l} AS l CROSS JOIN {r}"),
        7 => format!("SELECT count(*) AS n FROM {l} AS l, {r}"),
        8 => format!("SELECT l.* FROM {l} AS l JOIN {r} AS r ON r.{c} = l.{c}"),
        9 => format!("SELECT l.* FROM {l} AS l WHERE l.{c} IN (SELECT {c} FROM {r})"),
        10 => format!(
            "SELECT l.* FROM {l} AS l WHERE EXISTS (SELECT 1 FROM {r} AS r WHERE r.{c} = l.{c})"
        ),
        11 => format!("SELECT (SELECT count(*) FROM {r}) AS n"),
        12 => format!("SELECT l.*, count(*) OVER () AS n FROM {l} AS l NATURAL JOIN {r}"),
        13 => format!(
            "SELECT row_number() OVER (PARTITION BY {c}) AS n FROM {l} AS l JOIN {r} USING ({c})"
        ),
        14 => format!("SELECT {c} FROM {l} UNION SELECT {c} FROM {r}"),
        15 => format!("SELECT {c} FROM {l} INTERSECT SELECT {c} FROM {r}"),
        16 => format!("SELECT {c} FROM {l} EXCEPT SELECT {c} FROM {r}"),
        17 => format!(
            "WITH x AS (SELECT l.* FROM {l} AS l NATURAL JOIN {r}) SELECT count(*) AS n FROM x"
        ),
        18 => format!("SELECT 1 AS one WHERE EXISTS (SELECT 1 FROM {l} AS l NATURAL JOIN {r})"),
        _ => format!("SELECT count(*) AS n FROM {l} AS l NATURAL LEFT JOIN {r}"),
    }
}

type Answer = Result<Vec<String>, String>;

/// A statement's answer as sorted row texts, or its error's text.
fn answer(result: d1vec::Result<d1vec::D1Result>) -> Answer {
    match result {
        Ok(r) => {
            let mut rows: Vec<String> = r
                .results
                .iter()
                .map(|row| serde_json::to_string(row).unwrap())
                .collect();
            rows.sort();
            Ok(rows)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Whether `text` holds 32 hex digits in a row (a session secret's shape).
fn carries_secret(text: &str) -> bool {
    let mut run = 0;
    for ch in text.chars() {
        run = if ch.is_ascii_hexdigit() { run + 1 } else { 0 };
        if run >= 32 {
            return true;
        }
    }
    false
}

struct World {
    _dir: tempfile::TempDir,
    a_admin: Database,
    b_admin: Database,
    targets: Vec<Target>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.sqlite"), dir.path().join("b.sqlite"));
    build(&a, &b);
    let a_admin = Database::open(&a).unwrap();
    let b_admin = Database::open(&b).unwrap();
    let targets = targets(&a_admin);
    World {
        _dir: dir,
        a_admin,
        b_admin,
        targets,
    }
}

fn check(
    world: &World,
    sa: &TenantSession,
    sb: &TenantSession,
    sql: &str,
    target: &Target,
    qualified: bool,
) -> Result<(), String> {
    let on_a = answer(sa.prepare(sql).all());
    let on_b = answer(sb.prepare(sql).all());
    for a in [&on_a, &on_b] {
        if let Err(e) = a {
            if carries_secret(e) {
                return Err(format!("{sql}\n  error carries a secret: {e}"));
            }
        }
    }
    match (&on_a, &on_b) {
        (Err(_), Err(_)) => {}
        (Ok(x), Ok(y)) if x == y => {}
        _ => {
            return Err(format!(
                "{sql}\n  session on A: {on_a:?}\n  session on B: {on_b:?}"
            ))
        }
    }
    if let Ok(rows) = &on_a {
        if target.admin_comparable && !qualified {
            let admin = answer(world.b_admin.prepare(sql).all());
            if admin.as_ref() != Ok(rows) {
                return Err(format!(
                    "{sql}\n  session on A: {on_a:?}\n  admin on B (what the tenant may see): {admin:?}"
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn generated_join_forms_see_only_what_the_tenant_may_see() {
    let world = world();
    let sa = world.a_admin.tenant(T).unwrap();
    let sb = world.b_admin.tenant(T).unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 600,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = case_strategy(world.targets.len());
    let forms_answered = std::cell::RefCell::new([0usize; FORMS]);
    let result = runner.run(&strategy, |case| {
        let sql = render(&world.targets, &case);
        let target = &world.targets[case.target];
        check(&world, &sa, &sb, &sql, target, case.qualifier != 0).map_err(TestCaseError::fail)?;
        if sa.prepare(&sql).all().is_ok() {
            forms_answered.borrow_mut()[case.form] += 1;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The generator reaches answered queries in most forms (refusals alone prove little).
    let forms_answered = forms_answered.into_inner();
    let answered = forms_answered.iter().filter(|&&n| n > 0).count();
    assert!(answered >= 15, "answered forms: {forms_answered:?}");
}

#[test]
fn every_form_against_every_table_and_qualifier() {
    // The exhaustive sweep behind the proptest: each form, each target, each qualifier,
    // with the left side built from the target's first invisible row.
    let world = world();
    let sa = world.a_admin.tenant(T).unwrap();
    let sb = world.b_admin.tenant(T).unwrap();
    let mut failures = Vec::new();
    for target in 0..world.targets.len() {
        for qualifier in 0..QUALIFIERS.len() {
            for form in 0..FORMS {
                let case = Case {
                    target,
                    qualifier,
                    form,
                    columns: vec![0, 1, 2],
                    rows: vec![0],
                };
                let sql = render(&world.targets, &case);
                if let Err(e) = check(
                    &world,
                    &sa,
                    &sb,
                    &sql,
                    &world.targets[target],
                    qualifier != 0,
                ) {
                    failures.push(e);
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_reviews_reproductions_are_refused_or_scoped() {
    let world = world();
    let session = world.a_admin.tenant(T).unwrap();
    let other = fixtures::TENANTS[1];
    let campaign = rows(
        &world.a_admin,
        &format!("SELECT campaign_id, budget FROM campaigns WHERE tenant_id = '{other}' AND budget IS NOT NULL LIMIT 1"),
    )
    .remove(0);
    let (id, budget) = (
        literal(&campaign["campaign_id"]),
        literal(&campaign["budget"]),
    );
    let o = literal(&Value::from(other));
    let probes = [
        format!("SELECT l.* FROM (SELECT {id} AS campaign_id, {o} AS tenant_id, {budget} AS budget) AS l NATURAL JOIN main.campaigns"),
        format!("SELECT l.* FROM (SELECT {id} AS campaign_id, {o} AS tenant_id, {budget} AS budget) AS l NATURAL JOIN campaigns"),
        format!("SELECT l.* FROM (SELECT {id} AS campaign_id) AS l JOIN main.campaigns USING (campaign_id)"),
        "SELECT l.* FROM (SELECT 'table' AS type, 'campaigns' AS name) AS l NATURAL JOIN temp.sqlite_schema".to_owned(),
        "SELECT l.* FROM (SELECT 'notes' AS name) AS l NATURAL JOIN d1vec_indexes".to_owned(),
        format!("SELECT l.* FROM (SELECT 'note-1' AS id, {o} AS namespace) AS l NATURAL JOIN d1vec_vectors"),
        format!("SELECT l.* FROM (SELECT {o} AS origin_tenant_id) AS l NATURAL JOIN main.skills"),
    ];
    for sql in &probes {
        match session.prepare(sql).all() {
            Err(_) => {}
            Ok(r) => assert!(
                r.results.is_empty(),
                "{sql} returned another tenant's rows: {:?}",
                r.results
            ),
        }
    }
    // The review's control: a plain read of the base table stays refused.
    assert!(matches!(
        session.prepare("SELECT * FROM main.campaigns").all(),
        Err(Error::TenantViolation { .. })
    ));
}

#[test]
fn conditions_never_run_on_rows_the_tenant_may_not_see() {
    // An adversarial review's find: through an index without `tenant_id`, SQLite could test
    // a user's condition on another tenant's index entry before the view's filter, and a
    // condition that fails (`json_extract('{}', col)` prints `col` in its error; an integer
    // overflow is a yes/no oracle) revealed the row. Every filtered view is now fenced, so a
    // condition sees only rows the view yields: on A and on B (A less what the tenant may
    // not see) the answers, errors included, are identical.
    let world = world();
    let sa = world.a_admin.tenant(T).unwrap();
    let sb = world.b_admin.tenant(T).unwrap();
    let mut probes = Vec::new();
    for target in &world.targets {
        if !target.admin_comparable || target.secret_rows.is_empty() {
            continue;
        }
        for (i, column) in target.columns.iter().enumerate() {
            let c = ident(column);
            let value = &target.secret_rows[0][i];
            probes.push(format!(
                "SELECT 1 AS one FROM {} WHERE {c} = {value} AND json_extract('{{}}', CAST({c} AS TEXT))",
                target.name
            ));
            probes.push(format!(
                "SELECT 1 AS one FROM {} WHERE {c} >= {value} AND (CASE WHEN {c} = {value} THEN abs(-9223372036854775807 - 1) ELSE 0 END)",
                target.name
            ));
        }
    }
    assert!(probes.len() > 100, "{} probes", probes.len());
    let mut failures = Vec::new();
    for sql in &probes {
        let (a, b) = (answer(sa.prepare(sql).all()), answer(sb.prepare(sql).all()));
        if a != b {
            failures.push(format!("{sql}\n  on A: {a:?}\n  on B: {b:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} probes differ:\n{}",
        failures.len(),
        probes.len(),
        failures.join("\n")
    );
}
