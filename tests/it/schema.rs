//! The bundled schema: its shape, the rules that keep tenants apart, cascading erasure, the
//! seed README's example queries (answers and query plans) and the daily rollups. Every
//! answer is checked against an oracle computed another way: SQLite's own catalog pragmas,
//! direct counts, or Rust over the raw rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use d1vec::catalog::{Access, BUNDLED_TABLES};
use d1vec::rollup::{self, RollupRange, RollupReport};
use rusqlite::types::Value;
use rusqlite::{Connection, Row, ToSql};

use crate::fixtures;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn fetch<T>(
    conn: &Connection,
    sql: &str,
    p: &[&dyn ToSql],
    f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Vec<T> {
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let rows = stmt.query_map(p, f).unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

fn strings(conn: &Connection, sql: &str, p: &[&dyn ToSql]) -> Vec<String> {
    fetch(conn, sql, p, |r| r.get(0))
}

fn count(conn: &Connection, sql: &str, p: &[&dyn ToSql]) -> i64 {
    conn.query_row(sql, p, |r| r.get(0)).unwrap()
}

fn columns(conn: &Connection, table: &str) -> Vec<String> {
    strings(
        conn,
        "SELECT name FROM pragma_table_info(?1) ORDER BY cid",
        &[&table],
    )
}

/// Tables whose rows belong to one tenant, according to the catalog.
fn tenant_tables() -> Vec<&'static str> {
    BUNDLED_TABLES
        .iter()
        .filter(|t| {
            matches!(
                t.access,
                Access::TenantPrivate | Access::TenantReadOnly | Access::Hidden
            )
        })
        .map(|t| t.name)
        .collect()
}

fn is_tenant_table(name: &str) -> bool {
    tenant_tables().iter().any(|t| t.eq_ignore_ascii_case(name))
}

#[derive(Debug)]
struct IndexInfo {
    name: String,
    unique: bool,
    origin: String,
    columns: Vec<String>,
}

fn indexes(conn: &Connection, table: &str) -> Vec<IndexInfo> {
    let list: Vec<(String, bool, String)> = fetch(
        conn,
        "SELECT name, \"unique\", origin FROM pragma_index_list(?1)",
        &[&table],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    );
    list.into_iter()
        .map(|(name, unique, origin)| IndexInfo {
            columns: strings(
                conn,
                "SELECT name FROM pragma_index_info(?1) ORDER BY seqno",
                &[&name],
            ),
            name,
            unique,
            origin,
        })
        .collect()
}

#[derive(Debug)]
struct ForeignKey {
    parent: String,
    from: Vec<String>,
    to: Vec<Option<String>>,
    on_delete: String,
}

fn foreign_keys(conn: &Connection, table: &str) -> Vec<ForeignKey> {
    let rows: Vec<(i64, String, String, Option<String>, String)> = fetch(
        conn,
        "SELECT id, \"table\", \"from\", \"to\", on_delete
         FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
        &[&table],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    );
    let mut fks: BTreeMap<i64, ForeignKey> = BTreeMap::new();
    for (id, parent, from, to, on_delete) in rows {
        let fk = fks.entry(id).or_insert_with(|| ForeignKey {
            parent,
            from: Vec::new(),
            to: Vec::new(),
            on_delete,
        });
        fk.from.push(from);
        fk.to.push(to);
    }
    fks.into_values().collect()
}

fn recompute(conn: &mut Connection, range: RollupRange) -> RollupReport {
    let tx = conn.transaction().unwrap();
    let report = rollup::recompute(&tx, &range).unwrap();
    tx.commit().unwrap();
    report
}

/// The fixture with its rollups computed.
fn analysed() -> Connection {
    let mut conn = fixtures::loaded();
    recompute(&mut conn, RollupRange::All);
    conn
}

/// Every row of a table, in a total order.
fn dump(conn: &Connection, table: &str) -> Vec<Vec<Value>> {
    let n = columns(conn, table).len();
    let order: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let sql = format!("SELECT * FROM {table} ORDER BY {}", order.join(", "));
    fetch(conn, &sql, &[], |r| (0..n).map(|i| r.get(i)).collect())
}

fn approx_eq(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn approx_opt(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => approx_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// Shape
// ---------------------------------------------------------------------------------------

#[test]
fn thirty_tables_in_catalog_order_and_forty_plus_indexes() {
    let conn = fixtures::bundled();
    let tables = strings(
        &conn,
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
         ORDER BY rowid",
        &[],
    );
    let expected: Vec<&str> = BUNDLED_TABLES.iter().map(|t| t.name).collect();
    assert_eq!(tables, expected);
    assert_eq!(tables.len(), 30);

    let explicit = strings(
        &conn,
        "SELECT name FROM sqlite_schema
         WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'",
        &[],
    );
    assert!(explicit.len() >= 40, "{} indexes", explicit.len());
    let other_objects = count(
        &conn,
        "SELECT COUNT(*) FROM sqlite_schema WHERE type NOT IN ('table', 'index')",
        &[],
    );
    assert_eq!(
        other_objects, 0,
        "no views or triggers in the bundled schema"
    );

    // The spec's composite index, column for column, with published_at descending.
    let spec_index: Vec<(String, bool)> = fetch(
        &conn,
        "SELECT name, \"desc\" FROM pragma_index_xinfo('idx_posts_tenant_platform_date')
         WHERE key ORDER BY seqno",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?)),
    );
    assert_eq!(
        spec_index,
        vec![
            ("tenant_id".to_owned(), false),
            ("platform".to_owned(), false),
            ("published_at".to_owned(), true),
        ]
    );
}

#[test]
fn every_table_is_a_rowid_table_with_a_primary_key() {
    let conn = fixtures::bundled();
    for t in BUNDLED_TABLES {
        let (kind, without_rowid): (String, bool) = conn
            .query_row(
                "SELECT type, wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
                [t.name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            (kind.as_str(), without_rowid),
            ("table", false),
            "{}",
            t.name
        );
        let pk = count(
            &conn,
            "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE pk > 0",
            &[&t.name],
        );
        assert!(pk > 0, "{} has no primary key", t.name);
    }
}

#[test]
fn catalog_access_matches_the_tenant_id_column() {
    let conn = fixtures::bundled();
    for t in BUNDLED_TABLES {
        let cols = columns(&conn, t.name);
        assert!(!cols.is_empty(), "{} missing", t.name);
        assert_eq!(
            cols.iter().any(|c| c == "tenant_id"),
            is_tenant_table(t.name),
            "{}",
            t.name
        );
        for hidden in t.hidden_columns {
            assert!(cols.iter().any(|c| c == hidden), "{}.{hidden}", t.name);
        }
        if t.access == Access::SharedKAnonymous {
            let tc: (String, bool, Option<String>) = conn
                .query_row(
                    "SELECT type, \"notnull\", dflt_value FROM pragma_table_info(?1)
                     WHERE name = 'tenant_count'",
                    [t.name],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap();
            assert_eq!(tc, ("INTEGER".to_owned(), true, Some("0".to_owned())));
        }
    }
}

#[test]
fn every_tenant_table_has_an_index_led_by_tenant_id() {
    let conn = fixtures::bundled();
    for table in tenant_tables() {
        let idx = indexes(&conn, table);
        assert!(
            idx.iter()
                .any(|i| i.columns.first().map(String::as_str) == Some("tenant_id")),
            "{table}: {idx:?}"
        );
    }
}

#[test]
fn unique_keys_of_tenant_tables_include_tenant_id() {
    let conn = fixtures::bundled();
    let mut seen = 0;
    for table in tenant_tables() {
        for i in indexes(&conn, table) {
            if i.unique && i.origin != "pk" {
                seen += 1;
                assert!(
                    i.columns.iter().any(|c| c == "tenant_id"),
                    "{table}.{} = {:?}",
                    i.name,
                    i.columns
                );
            }
        }
    }
    assert!(seen >= 15, "only {seen} unique keys checked");
}

#[test]
fn references_between_tenant_tables_carry_tenant_id() {
    let conn = fixtures::bundled();
    let mut composite = 0;
    for t in BUNDLED_TABLES {
        let fks = foreign_keys(&conn, t.name);
        let child_is_tenant = is_tenant_table(t.name);
        if child_is_tenant && t.name != "tenants" {
            assert!(
                fks.iter().any(|fk| fk.parent == "tenants"
                    && fk.from == ["tenant_id"]
                    && fk.to == [Some("tenant_id".to_owned())]
                    && fk.on_delete == "CASCADE"),
                "{}: tenant_id must reference tenants ON DELETE CASCADE: {fks:?}",
                t.name
            );
        }
        for fk in &fks {
            // Every reference names its parent columns.
            assert!(fk.to.iter().all(Option::is_some), "{}: {fk:?}", t.name);
            let to_tenants = fk.parent == "tenants";
            if child_is_tenant {
                // Only the reference to tenants cascades; nothing else acts on delete.
                let expected = if to_tenants { "CASCADE" } else { "NO ACTION" };
                assert_eq!(fk.on_delete, expected, "{}: {fk:?}", t.name);
            } else {
                assert_ne!(fk.on_delete, "CASCADE", "{}: {fk:?}", t.name);
            }
            if child_is_tenant && is_tenant_table(&fk.parent) && !to_tenants {
                composite += 1;
                let pos = fk.from.iter().position(|c| c == "tenant_id");
                let pos = pos.unwrap_or_else(|| panic!("{}: {fk:?} lacks tenant_id", t.name));
                assert_eq!(
                    fk.to[pos].as_deref(),
                    Some("tenant_id"),
                    "{}: {fk:?}",
                    t.name
                );
                assert!(fk.from.len() >= 2, "{}: {fk:?}", t.name);
            }
        }
    }
    assert!(composite >= 15, "only {composite} composite references");
}

#[test]
fn migration_files_use_plain_ddl_only() {
    for (name, sql) in fixtures::MIGRATIONS {
        // Comments hold no statement separator and no unbalanced quote, so that even a
        // splitter that ignores comments cuts the file at the same places.
        for comment in sql.lines().filter_map(|l| l.split_once("--").map(|c| c.1)) {
            assert!(!comment.contains(';'), "{name}: {comment}");
            assert_eq!(comment.matches('\'').count() % 2, 0, "{name}: {comment}");
        }
        let code: String = sql
            .lines()
            .map(|l| l.split("--").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n")
            .to_ascii_uppercase();
        let words: BTreeSet<&str> = code
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .collect();
        for banned in [
            "BEGIN",
            "COMMIT",
            "ROLLBACK",
            "SAVEPOINT",
            "PRAGMA",
            "TEMP",
            "TEMPORARY",
            "ATTACH",
        ] {
            assert!(!words.contains(banned), "{name} contains {banned}");
        }
        for banned in ["WITHOUT ROWID", "_CF_", "IF NOT EXISTS"] {
            assert!(!code.contains(banned), "{name} contains {banned}");
        }
        for stmt in code.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            assert!(
                [
                    "CREATE TABLE ",
                    "CREATE INDEX ",
                    "CREATE UNIQUE INDEX ",
                    "INSERT INTO "
                ]
                .iter()
                .any(|p| stmt.starts_with(p)),
                "{name}: {stmt}"
            );
        }
    }
}

#[test]
fn statement_by_statement_as_d1_runs_them_gives_the_same_schema() {
    // D1 cuts a file into statements before running them; the crate's splitter must find
    // exactly the statements SQLite's own batch execution does.
    let whole = fixtures::bundled();
    let split = Connection::open_in_memory().unwrap();
    split.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    let mut statements = 0;
    for (name, sql) in fixtures::MIGRATIONS {
        for stmt in d1vec::sql::split::split_statements(sql).unwrap() {
            let mut prepared = split
                .prepare(&stmt)
                .unwrap_or_else(|e| panic!("{name}: {e}\n{stmt}"));
            prepared.raw_execute().unwrap();
            statements += 1;
        }
    }
    let schema = |c: &Connection| dump(c, "sqlite_schema");
    assert_eq!(schema(&split), schema(&whole));
    assert_eq!(
        dump(&split, "role_permissions"),
        dump(&whole, "role_permissions")
    );
    let objects = count(
        &whole,
        "SELECT COUNT(*) FROM sqlite_schema WHERE sql IS NOT NULL",
        &[],
    );
    // one statement per table and explicit index, plus the RBAC seed
    assert_eq!(statements, objects + 1);
}

// ---------------------------------------------------------------------------------------
// Data rules
// ---------------------------------------------------------------------------------------

#[test]
fn fixture_data_is_consistent_and_fills_every_table() {
    let conn = analysed();
    let violations = count(&conn, "SELECT COUNT(*) FROM pragma_foreign_key_check", &[]);
    assert_eq!(violations, 0);
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    for t in BUNDLED_TABLES {
        let rows = count(&conn, &format!("SELECT COUNT(*) FROM {}", t.name), &[]);
        assert!(rows > 0, "{} is empty", t.name);
    }
    // Some shared rows reach k-anonymity and some do not.
    let k = d1vec::catalog::K_ANONYMITY;
    for table in [
        "skill_metrics_daily",
        "guard_metrics_daily",
        "platform_benchmarks",
    ] {
        let above = count(
            &conn,
            &format!("SELECT COUNT(*) FROM {table} WHERE tenant_count >= ?1"),
            &[&k],
        );
        let below = count(
            &conn,
            &format!("SELECT COUNT(*) FROM {table} WHERE tenant_count < ?1"),
            &[&k],
        );
        assert!(
            above > 0 && below > 0,
            "{table}: {above} above, {below} below"
        );
    }
}

fn assert_fk_refused(conn: &Connection, sql: &str) {
    let err = conn.execute(sql, []).unwrap_err();
    assert_eq!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ConstraintViolation),
        "{sql}: {err}"
    );
    assert!(err.to_string().contains("FOREIGN KEY"), "{sql}: {err}");
}

#[test]
fn rows_cannot_point_at_another_tenants_rows() {
    let conn = fixtures::loaded();
    // Controls: the same statements within one tenant succeed.
    conn.execute(
        "INSERT INTO published_posts (post_id, tenant_id, campaign_id, platform)
         VALUES ('p_ok', 'tenant_002', 'cmp_2_1', 'linkedin')",
        [],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO content_drafts (draft_id, request_id, tenant_id, body, version)
         VALUES ('d_ok', 'req_2_03', 'tenant_002', 'x', 9)",
        [],
    )
    .unwrap();
    assert_fk_refused(
        &conn,
        "INSERT INTO published_posts (post_id, tenant_id, campaign_id, platform)
         VALUES ('p_bad', 'tenant_002', 'cmp_1_1', 'linkedin')",
    );
    assert_fk_refused(
        &conn,
        "INSERT INTO content_drafts (draft_id, request_id, tenant_id, body, version)
         VALUES ('d_bad', 'req_1_03', 'tenant_002', 'x', 9)",
    );
    assert_fk_refused(
        &conn,
        "INSERT INTO engagement_events (event_id, tenant_id, post_id, kind)
         VALUES ('e_bad', 'tenant_002', 'post_1_03', 'like')",
    );
    assert_fk_refused(
        &conn,
        "UPDATE scheduled_posts SET connection_id = 'conn_1_linkedin'
         WHERE schedule_id = 'sch_2_03'",
    );
    assert_fk_refused(
        &conn,
        "INSERT INTO conversions (conversion_id, tenant_id, post_id, kind)
         VALUES ('c_bad', 'tenant_002', 'post_1_03', 'lead')",
    );

    // Unique per tenant, not globally.
    conn.execute(
        "INSERT INTO users (user_id, tenant_id, email) VALUES ('u_x', 'tenant_002', ?1)",
        ["owner@tenant1.example"],
    )
    .unwrap();
    let dup = conn
        .execute(
            "INSERT INTO users (user_id, tenant_id, email) VALUES ('u_y', 'tenant_001', ?1)",
            ["owner@tenant1.example"],
        )
        .unwrap_err();
    assert!(dup.to_string().contains("UNIQUE"), "{dup}");
}

#[test]
fn deleting_a_tenant_erases_everything_it_owns() {
    let conn = analysed();
    let victim = "tenant_005";
    let per_tenant = |conn: &Connection| -> BTreeMap<(&'static str, String), i64> {
        let mut counts = BTreeMap::new();
        for table in tenant_tables() {
            let sql = format!("SELECT tenant_id, COUNT(*) FROM {table} GROUP BY tenant_id");
            for (tenant, n) in fetch(conn, &sql, &[], |r| Ok((r.get(0)?, r.get(1)?))) {
                counts.insert((table, tenant), n);
            }
        }
        counts
    };
    let shared: Vec<(&str, Vec<Vec<Value>>)> = BUNDLED_TABLES
        .iter()
        .filter(|t| !is_tenant_table(t.name) && t.name != "skills")
        .map(|t| (t.name, dump(&conn, t.name)))
        .collect();
    let before = per_tenant(&conn);
    for table in tenant_tables() {
        assert!(
            before
                .get(&(table, victim.to_owned()))
                .copied()
                .unwrap_or(0)
                > 0,
            "the fixture has no {victim} rows in {table}"
        );
    }

    let deleted = conn
        .execute("DELETE FROM tenants WHERE tenant_id = ?1", [victim])
        .unwrap();
    assert_eq!(deleted, 1);

    let after = per_tenant(&conn);
    let expected: BTreeMap<_, _> = before
        .into_iter()
        .filter(|((_, tenant), _)| tenant != victim)
        .collect();
    assert_eq!(after, expected);
    // Direct counts agree: nothing of the victim anywhere.
    for table in tenant_tables() {
        let left = count(
            &conn,
            &format!("SELECT COUNT(*) FROM {table} WHERE tenant_id = ?1"),
            &[&victim],
        );
        assert_eq!(left, 0, "{table}");
    }
    // Shared rows stay; the contributed skill forgets its origin.
    for (table, rows) in shared {
        assert_eq!(dump(&conn, table), rows, "{table}");
    }
    let origins: Vec<(String, Option<String>)> = fetch(
        &conn,
        "SELECT skill_id, origin_tenant_id FROM skills ORDER BY skill_id",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?)),
    );
    let expected: Vec<(String, Option<String>)> = fixtures::SKILLS
        .iter()
        .map(|(id, _, _, _, origin)| {
            let origin = origin.filter(|o| *o != victim).map(str::to_owned);
            ((*id).to_owned(), origin)
        })
        .collect();
    assert_eq!(origins, expected);
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM pragma_foreign_key_check", &[]),
        0
    );
}

// ---------------------------------------------------------------------------------------
// The seed README's example queries: answers and plans
// ---------------------------------------------------------------------------------------

fn plan(conn: &Connection, sql: &str, p: &[&dyn ToSql]) -> Vec<String> {
    fetch(conn, &format!("EXPLAIN QUERY PLAN {sql}"), p, |r| r.get(3))
}

/// Asserts that the plan reaches each listed tenant table (`(name in the plan, table)`)
/// through an index, and never scans a tenant table without one.
#[track_caller]
fn assert_indexed(conn: &Connection, sql: &str, p: &[&dyn ToSql], tables: &[(&str, &str)]) {
    let lines = plan(conn, sql, p);
    let table_of = |shown: &str| -> String {
        tables
            .iter()
            .find(|(s, _)| *s == shown)
            .map_or_else(|| shown.to_owned(), |(_, t)| (*t).to_owned())
    };
    for line in &lines {
        let mut words = line.split_whitespace();
        if let (Some("SCAN"), Some(shown)) = (words.next(), words.next()) {
            if is_tenant_table(&table_of(shown)) {
                assert!(
                    line.contains("USING INDEX") || line.contains("USING COVERING INDEX"),
                    "{line}\nin plan {lines:#?}"
                );
            }
        }
    }
    for (shown, table) in tables {
        if !is_tenant_table(table) {
            continue;
        }
        let access: Vec<&String> = lines
            .iter()
            .filter(|l| {
                let mut w = l.split_whitespace();
                matches!(w.next(), Some("SEARCH" | "SCAN")) && w.next() == Some(shown)
            })
            .collect();
        assert!(!access.is_empty(), "{table} not in plan {lines:#?}");
        for line in access {
            assert!(
                line.starts_with("SEARCH ") && line.contains(" INDEX "),
                "{table} is not searched by index: {line}\nin plan {lines:#?}"
            );
        }
    }
}

#[test]
fn get_tenant_brand_profile() {
    let conn = fixtures::loaded();
    let sql = "SELECT * FROM brand_profiles WHERE tenant_id = ?;";
    assert_indexed(
        &conn,
        sql,
        &[&"tenant_003"],
        &[("brand_profiles", "brand_profiles")],
    );
    let all: Vec<(String, String, String)> = fetch(
        &conn,
        "SELECT tenant_id, brand_name, voice_vector_id FROM brand_profiles",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    );
    for tenant in ["tenant_003", "tenant_999"] {
        let got: Vec<(String, String, String)> = fetch(&conn, sql, &[&tenant], |r| {
            Ok((
                r.get("tenant_id")?,
                r.get("brand_name")?,
                r.get("voice_vector_id")?,
            ))
        });
        let want: Vec<_> = all.iter().filter(|p| p.0 == tenant).cloned().collect();
        assert_eq!(got, want);
    }
}

const TOP_SKILLS: &str = "SELECT s.skill_id, s.name, AVG(m.approval_rate) as avg_approval
FROM skills s
JOIN skill_metrics_daily m ON s.skill_id = m.skill_id
WHERE m.date >= date('now', '-30 days')
  AND s.status = 'active'
GROUP BY s.skill_id
ORDER BY avg_approval DESC
LIMIT 10;";

#[test]
fn find_top_performing_skills() {
    let conn = analysed();
    assert_indexed(
        &conn,
        TOP_SKILLS,
        &[],
        &[("s", "skills"), ("m", "skill_metrics_daily")],
    );
    let got: Vec<(String, String, Option<f64>)> = fetch(&conn, TOP_SKILLS, &[], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    });

    // Oracle: Rust over the raw rows of both tables.
    let cutoff: String = conn
        .query_row("SELECT date('now', '-30 days')", [], |r| r.get(0))
        .unwrap();
    let skills: Vec<(String, String, String)> = fetch(
        &conn,
        "SELECT skill_id, name, status FROM skills",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    );
    let metrics: Vec<(String, String, Option<f64>)> = fetch(
        &conn,
        "SELECT skill_id, date, approval_rate FROM skill_metrics_daily",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    );
    let mut want: Vec<(String, String, Option<f64>)> = Vec::new();
    for (id, name, status) in &skills {
        if status != "active" {
            continue;
        }
        let rows: Vec<Option<f64>> = metrics
            .iter()
            .filter(|(s, d, _)| s == id && d.as_str() >= cutoff.as_str())
            .map(|m| m.2)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let rates: Vec<f64> = rows.into_iter().flatten().collect();
        let avg = (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64);
        want.push((id.clone(), name.clone(), avg));
    }
    // SQLite sorts NULL below every number, so NULL comes last in DESC order.
    let key = |a: &Option<f64>| a.map_or(f64::NEG_INFINITY, |v| v);
    want.sort_by(|a, b| key(&b.2).total_cmp(&key(&a.2)));
    want.truncate(10);

    assert_eq!(want.len(), 4, "every active skill was used in the window");
    assert!(
        metrics.iter().any(|m| m.1 < cutoff),
        "some rows fall outside"
    );
    assert_eq!(got.len(), want.len());
    for w in got.windows(2) {
        assert!(key(&w[0].2) >= key(&w[1].2), "{got:?}");
    }
    let by_id: BTreeMap<_, _> = got.iter().map(|g| (g.0.clone(), g)).collect();
    for (id, name, avg) in &want {
        let g = by_id
            .get(id)
            .unwrap_or_else(|| panic!("{id} missing from {got:?}"));
        assert_eq!(&g.1, name);
        assert!(approx_opt(g.2, *avg), "{id}: {:?} vs {avg:?}", g.2);
    }
}

/// `(post_id, tenant_id, platform, published_at)` of every post.
fn all_posts(conn: &Connection) -> Vec<(String, String, String, String)> {
    fetch(
        conn,
        "SELECT post_id, tenant_id, platform, published_at FROM published_posts",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
}

#[test]
fn get_recent_posts() {
    let conn = fixtures::loaded();
    let sql = "SELECT * FROM published_posts
WHERE tenant_id = ?
ORDER BY published_at DESC
LIMIT 50;";
    assert_indexed(
        &conn,
        sql,
        &[&"tenant_002"],
        &[("published_posts", "published_posts")],
    );
    assert!(
        !plan(&conn, sql, &[&"tenant_002"])
            .iter()
            .any(|l| l.contains("TEMP B-TREE")),
        "the index gives the order"
    );
    let posts = all_posts(&conn);
    for tenant in fixtures::TENANTS {
        let got = strings(&conn, sql, &[&tenant]);
        let mut want: Vec<_> = posts.iter().filter(|p| p.1 == tenant).collect();
        want.sort_by(|a, b| b.3.cmp(&a.3));
        let want: Vec<String> = want.iter().take(50).map(|p| p.0.clone()).collect();
        assert!(!want.is_empty());
        assert_eq!(got, want, "{tenant}");
    }
}

#[test]
fn calculate_roi_by_campaign() {
    let conn = fixtures::loaded();
    // The spec's SQL, unchanged.
    let sql = "SELECT
  p.campaign_id,
  COUNT(DISTINCT p.post_id) as total_posts,
  SUM(c.value) as total_revenue,
  (SUM(c.value) - (COUNT(DISTINCT p.post_id) * 50)) /
    (COUNT(DISTINCT p.post_id) * 50) * 100 as roi_percent
FROM published_posts p
LEFT JOIN conversions c ON p.post_id = c.post_id
WHERE p.tenant_id = ?
  AND p.campaign_id IS NOT NULL
GROUP BY p.campaign_id
ORDER BY roi_percent DESC;";
    assert_indexed(
        &conn,
        sql,
        &[&"tenant_001"],
        &[("p", "published_posts"), ("c", "conversions")],
    );

    let posts: Vec<(String, String, Option<String>)> = fetch(
        &conn,
        "SELECT post_id, tenant_id, campaign_id FROM published_posts",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    );
    let conversions: Vec<(Option<String>, f64)> =
        fetch(&conn, "SELECT post_id, value FROM conversions", &[], |r| {
            Ok((r.get(0)?, r.get(1)?))
        });
    let mut non_integer_roi = false;
    for tenant in fixtures::TENANTS {
        let got: Vec<(String, i64, Option<f64>, Option<f64>)> =
            fetch(&conn, sql, &[&tenant], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            });
        // Oracle: per campaign, its posts and the conversions credited to them.
        let mut by_campaign: BTreeMap<&str, (i64, Option<f64>)> = BTreeMap::new();
        for (post, _, campaign) in posts.iter().filter(|p| p.1 == tenant) {
            let Some(campaign) = campaign else { continue };
            let entry = by_campaign.entry(campaign).or_insert((0, None));
            entry.0 += 1;
            for (_, value) in conversions.iter().filter(|c| c.0.as_ref() == Some(post)) {
                entry.1 = Some(entry.1.unwrap_or(0.0) + value);
            }
        }
        let mut want: Vec<(String, i64, Option<f64>, Option<f64>)> = by_campaign
            .into_iter()
            .map(|(campaign, (n, revenue))| {
                let cost = (n * 50) as f64;
                let roi = revenue.map(|r| (r - cost) / cost * 100.0);
                (campaign.to_owned(), n, revenue, roi)
            })
            .collect();
        let key = |r: &Option<f64>| r.map_or(f64::NEG_INFINITY, |v| v);
        want.sort_by(|a, b| key(&b.3).total_cmp(&key(&a.3)));

        assert!(!want.is_empty(), "{tenant}");
        assert_eq!(got.len(), want.len(), "{tenant}: {got:?} vs {want:?}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((&g.0, g.1), (&w.0, w.1), "{tenant}");
            assert!(approx_opt(g.2, w.2), "{tenant}: {g:?} vs {w:?}");
            assert!(approx_opt(g.3, w.3), "{tenant}: {g:?} vs {w:?}");
            non_integer_roi |= g.3.is_some_and(|r| r.fract() != 0.0);
        }
    }
    // conversions.value is REAL, so SUM is REAL and the division is not an integer one.
    assert!(non_integer_roi);
}

#[test]
fn cursor_pagination_walks_every_post_once() {
    let conn = fixtures::loaded();
    // Enough posts for several pages; whole-second offsets never collide with the
    // fixture's whole-minute times.
    conn.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 120)
         INSERT INTO published_posts (post_id, tenant_id, platform, published_at)
         SELECT 'extra_' || i, 'tenant_001', 'twitter',
                strftime('%Y-%m-%dT%H:%M:%fZ', date('now'), '-' || (i * 7) || ' hours',
                         '+17 seconds')
         FROM n;",
    )
    .unwrap();
    let sql = "SELECT * FROM published_posts
WHERE tenant_id = ? AND published_at < ?
ORDER BY published_at DESC
LIMIT 50;";
    let cursor0 = "9999-12-31T23:59:59.999Z";
    assert_indexed(
        &conn,
        sql,
        &[&"tenant_001", &cursor0],
        &[("published_posts", "published_posts")],
    );

    let mut seen: Vec<String> = Vec::new();
    let mut pages = Vec::new();
    let mut cursor = cursor0.to_owned();
    loop {
        let page: Vec<(String, String)> = fetch(&conn, sql, &[&"tenant_001", &cursor], |r| {
            Ok((r.get("post_id")?, r.get("published_at")?))
        });
        let Some(last) = page.last() else { break };
        cursor = last.1.clone();
        pages.push(page.len());
        seen.extend(page.into_iter().map(|p| p.0));
        assert!(pages.len() < 20, "pagination does not end");
    }
    let mut want: Vec<_> = all_posts(&conn)
        .into_iter()
        .filter(|p| p.1 == "tenant_001")
        .collect();
    want.sort_by(|a, b| b.3.cmp(&a.3));
    let want: Vec<String> = want.into_iter().map(|p| p.0).collect();
    assert!(pages.len() >= 3, "{pages:?}");
    assert!(
        pages[..pages.len() - 1].iter().all(|&n| n == 50),
        "{pages:?}"
    );
    assert_eq!(seen, want);
}

#[test]
fn composite_index_query() {
    let conn = fixtures::loaded();
    let sql = "SELECT * FROM published_posts
WHERE tenant_id = 'tenant_001'
  AND platform = 'linkedin'
  AND published_at >= '2025-10-01'
ORDER BY published_at DESC;";
    assert_indexed(&conn, sql, &[], &[("published_posts", "published_posts")]);
    assert!(plan(&conn, sql, &[])
        .iter()
        .any(|l| l.contains("idx_posts_tenant_platform_date")));
    let got = strings(&conn, sql, &[]);
    let mut want: Vec<_> = all_posts(&conn)
        .into_iter()
        .filter(|p| p.1 == "tenant_001" && p.2 == "linkedin" && p.3.as_str() >= "2025-10-01")
        .collect();
    want.sort_by(|a, b| b.3.cmp(&a.3));
    let want: Vec<String> = want.into_iter().map(|p| p.0).collect();
    assert!(want.len() >= 10);
    assert_eq!(got, want);
}

#[test]
fn precomputed_aggregates_and_the_discouraged_forms() {
    let conn = analysed();
    let since: String = conn
        .query_row("SELECT date('now', '-20 days')", [], |r| r.get(0))
        .unwrap();
    // GOOD: the rollup table, by its primary key.
    let good = "SELECT * FROM skill_metrics_daily
WHERE skill_id = ? AND date >= ?;";
    assert!(plan(&conn, good, &[&"skill_001", &since])
        .iter()
        .any(|l| l.starts_with("SEARCH skill_metrics_daily USING INDEX")));
    let got: BTreeSet<String> = fetch(&conn, good, &[&"skill_001", &since], |r| r.get("date"))
        .into_iter()
        .collect();
    let want: BTreeSet<String> = dump(&conn, "skill_metrics_daily")
        .into_iter()
        .filter_map(|row| match (&row[0], &row[1]) {
            (Value::Text(s), Value::Text(d)) if s == "skill_001" && *d >= since => Some(d.clone()),
            _ => None,
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);

    // BAD (but valid SQL on this schema): the raw aggregate, and a deep OFFSET.
    let (n, avg): (i64, Option<f64>) = conn
        .query_row(
            "SELECT COUNT(*), AVG(pass_rate)
FROM revision_events
WHERE skill_id = ?;",
            ["skill_003"],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let raw: Vec<(Option<String>, Option<f64>)> = fetch(
        &conn,
        "SELECT skill_id, pass_rate FROM revision_events",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?)),
    );
    let mine: Vec<Option<f64>> = raw
        .iter()
        .filter(|r| r.0.as_deref() == Some("skill_003"))
        .map(|r| r.1)
        .collect();
    let rates: Vec<f64> = mine.iter().flatten().copied().collect();
    assert_eq!(n, mine.len() as i64);
    assert!(approx_opt(
        avg,
        Some(rates.iter().sum::<f64>() / rates.len() as f64)
    ));
    let deep = strings(
        &conn,
        "SELECT * FROM published_posts
WHERE tenant_id = ?
ORDER BY published_at DESC
LIMIT 50 OFFSET 10000;",
        &[&"tenant_001"],
    );
    assert!(deep.is_empty());
}

// ---------------------------------------------------------------------------------------
// Rollups against a Rust oracle over the raw rows
// ---------------------------------------------------------------------------------------

/// Rollup rows: key columns as text, value columns as numbers.
type Rows = BTreeMap<Vec<String>, Vec<Option<f64>>>;

/// `(table, select listing its key columns then its value columns, key count, position of
/// the date among the keys)`.
const ROLLUPS: [(&str, &str, usize, usize); 6] = [
    (
        "skill_metrics_daily",
        "SELECT skill_id, date, uses, approval_rate, pass_rate, tenant_count
         FROM skill_metrics_daily",
        2,
        1,
    ),
    (
        "guard_metrics_daily",
        "SELECT guard_id, date, evaluations, failures, tenant_count FROM guard_metrics_daily",
        2,
        1,
    ),
    (
        "platform_benchmarks",
        "SELECT platform, industry, date, metric, p25, p50, p75, tenant_count
         FROM platform_benchmarks",
        4,
        2,
    ),
    (
        "tenant_metrics_daily",
        "SELECT tenant_id, date, posts, impressions, engagements, conversions, revenue
         FROM tenant_metrics_daily",
        2,
        1,
    ),
    (
        "campaign_metrics_daily",
        "SELECT tenant_id, campaign_id, date, posts, conversions, revenue, spend
         FROM campaign_metrics_daily",
        3,
        2,
    ),
    (
        "api_usage_daily",
        "SELECT tenant_id, date, provider, model, calls, tokens, cost_usd FROM api_usage_daily",
        4,
        1,
    ),
];

fn actual(conn: &Connection) -> BTreeMap<&'static str, Rows> {
    ROLLUPS
        .iter()
        .map(|(table, sql, keys, _)| {
            let n = columns(conn, table).len();
            let rows = fetch(conn, sql, &[], |r| {
                let key = (0..*keys)
                    .map(|i| r.get(i))
                    .collect::<Result<Vec<String>, _>>()?;
                let values = (*keys..n)
                    .map(|i| r.get(i))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((key, values))
            });
            (*table, rows.into_iter().collect())
        })
        .collect()
}

/// The UTC day of a stored timestamp (all fixture times are `YYYY-MM-DDTHH:MM:SS.sssZ`).
fn day(ts: &str) -> String {
    ts[..10].to_owned()
}

fn int(n: usize) -> Option<f64> {
    Some(n as f64)
}

/// Linear interpolation between closest ranks, written as a weighted mean.
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pos = q * (v.len() - 1) as f64;
    let i = pos as usize;
    let frac = pos - i as f64;
    if i + 1 < v.len() {
        v[i] * (1.0 - frac) + v[i + 1] * frac
    } else {
        v[i]
    }
}

fn oracle(conn: &Connection) -> BTreeMap<&'static str, Rows> {
    let mut out = BTreeMap::new();

    // skill_metrics_daily and guard_metrics_daily
    #[derive(Default)]
    struct SkillDay {
        uses: usize,
        approved: usize,
        decisions: usize,
        passed: usize,
        checks: usize,
        tenants: BTreeSet<String>,
    }
    let drafts: Vec<(String, Option<String>, String)> = fetch(
        conn,
        "SELECT tenant_id, skill_id, created_at FROM content_drafts",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    );
    type Event = (
        String,
        Option<String>,
        Option<String>,
        String,
        Option<i64>,
        String,
    );
    let events: Vec<Event> = fetch(
        conn,
        "SELECT tenant_id, skill_id, guard_id, event_type, passed, created_at
         FROM revision_events",
        &[],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        },
    );
    let mut skills: BTreeMap<(String, String), SkillDay> = BTreeMap::new();
    for (tenant, skill, at) in &drafts {
        if let Some(skill) = skill {
            let s = skills.entry((skill.clone(), day(at))).or_default();
            s.uses += 1;
            s.tenants.insert(tenant.clone());
        }
    }
    let mut guards: BTreeMap<(String, String), (usize, usize, BTreeSet<String>)> = BTreeMap::new();
    for (tenant, skill, guard, kind, passed, at) in &events {
        if let Some(skill) = skill {
            let s = skills.entry((skill.clone(), day(at))).or_default();
            s.tenants.insert(tenant.clone());
            match kind.as_str() {
                "review_approved" => {
                    s.approved += 1;
                    s.decisions += 1;
                }
                "review_rejected" => s.decisions += 1,
                "guard_check" => {
                    s.checks += 1;
                    s.passed += usize::from(*passed == Some(1));
                }
                _ => {}
            }
        }
        if let Some(guard) = guard {
            let g = guards.entry((guard.clone(), day(at))).or_default();
            g.0 += 1;
            g.1 += usize::from(*passed == Some(0));
            g.2.insert(tenant.clone());
        }
    }
    let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
    out.insert(
        "skill_metrics_daily",
        skills
            .into_iter()
            .map(|((skill, d), s)| {
                let values = vec![
                    int(s.uses),
                    ratio(s.approved, s.decisions),
                    ratio(s.passed, s.checks),
                    int(s.tenants.len()),
                ];
                (vec![skill, d], values)
            })
            .collect(),
    );
    out.insert(
        "guard_metrics_daily",
        guards
            .into_iter()
            .map(|((guard, d), (evals, fails, tenants))| {
                (
                    vec![guard, d],
                    vec![int(evals), int(fails), int(tenants.len())],
                )
            })
            .collect(),
    );

    // platform_benchmarks
    let posts: Vec<(String, String, Option<String>, String, String)> = fetch(
        conn,
        "SELECT post_id, tenant_id, campaign_id, platform, published_at FROM published_posts",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    );
    let metrics: HashMap<String, [i64; 5]> = fetch(
        conn,
        "SELECT post_id, impressions, clicks, likes, comments, shares FROM post_metrics",
        &[],
        |r| {
            Ok((
                r.get(0)?,
                [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?],
            ))
        },
    )
    .into_iter()
    .collect();
    let industry: HashMap<String, Option<String>> =
        fetch(conn, "SELECT tenant_id, industry FROM tenants", &[], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .into_iter()
        .collect();
    // (platform, industry, day) -> tenant -> [impressions, engagements, clicks]
    let mut groups: BTreeMap<(String, String, String), BTreeMap<String, [i64; 3]>> =
        BTreeMap::new();
    for (post, tenant, _, platform, at) in &posts {
        let Some([impressions, clicks, likes, comments, shares]) = metrics.get(post) else {
            continue;
        };
        let ind = industry[tenant]
            .clone()
            .unwrap_or_else(|| "unspecified".to_owned());
        let t = groups
            .entry((platform.clone(), ind, day(at)))
            .or_default()
            .entry(tenant.clone())
            .or_default();
        t[0] += impressions;
        t[1] += clicks + likes + comments + shares;
        t[2] += clicks;
    }
    let mut bench = Rows::new();
    for ((platform, ind, d), tenants) in groups {
        let seen: Vec<&[i64; 3]> = tenants.values().filter(|t| t[0] > 0).collect();
        if seen.is_empty() {
            continue;
        }
        for (metric, num) in [("engagement_rate", 1), ("click_through_rate", 2)] {
            let values: Vec<f64> = seen.iter().map(|t| t[num] as f64 / t[0] as f64).collect();
            bench.insert(
                vec![platform.clone(), ind.clone(), d.clone(), metric.to_owned()],
                vec![
                    Some(quantile(&values, 0.25)),
                    Some(quantile(&values, 0.5)),
                    Some(quantile(&values, 0.75)),
                    int(values.len()),
                ],
            );
        }
    }
    out.insert("platform_benchmarks", bench);

    // tenant_metrics_daily and campaign_metrics_daily
    let mut tenant_days: BTreeMap<Vec<String>, [f64; 5]> = BTreeMap::new();
    let mut campaign_days: BTreeMap<Vec<String>, [f64; 4]> = BTreeMap::new();
    let mut campaign_of_post: HashMap<(String, String), String> = HashMap::new();
    for (post, tenant, campaign, _, at) in &posts {
        tenant_days
            .entry(vec![tenant.clone(), day(at)])
            .or_default()[0] += 1.0;
        if let Some(c) = campaign {
            campaign_of_post.insert((tenant.clone(), post.clone()), c.clone());
            campaign_days
                .entry(vec![tenant.clone(), c.clone(), day(at)])
                .or_default()[0] += 1.0;
        }
    }
    let engagement: Vec<(String, String, i64, String)> = fetch(
        conn,
        "SELECT tenant_id, kind, quantity, occurred_at FROM engagement_events",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    );
    for (tenant, kind, quantity, at) in engagement {
        let t = tenant_days.entry(vec![tenant, day(&at)]).or_default();
        t[if kind == "impression" { 1 } else { 2 }] += quantity as f64;
    }
    let conversions: Vec<(String, Option<String>, f64, String)> = fetch(
        conn,
        "SELECT tenant_id, post_id, value, occurred_at FROM conversions",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    );
    for (tenant, post, value, at) in conversions {
        let t = tenant_days
            .entry(vec![tenant.clone(), day(&at)])
            .or_default();
        t[3] += 1.0;
        t[4] += value;
        let campaign = post.and_then(|p| campaign_of_post.get(&(tenant.clone(), p)));
        if let Some(c) = campaign {
            let c = campaign_days
                .entry(vec![tenant, c.clone(), day(&at)])
                .or_default();
            c[1] += 1.0;
            c[2] += value;
        }
    }
    let campaign_of_request: HashMap<(String, String), String> = fetch(
        conn,
        "SELECT tenant_id, request_id, campaign_id FROM content_requests
         WHERE campaign_id IS NOT NULL",
        &[],
        |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)),
    )
    .into_iter()
    .collect();
    type Run = (
        String,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
        i64,
        f64,
        String,
    );
    let runs: Vec<Run> = fetch(
        conn,
        "SELECT tenant_id, request_id, engine, provider, model, tokens_in + tokens_out,
                cost_usd, started_at
         FROM workflow_runs",
        &[],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        },
    );
    let mut usage: BTreeMap<Vec<String>, [f64; 3]> = BTreeMap::new();
    for (tenant, request, engine, provider, model, tokens, cost, at) in runs {
        if let Some(c) = request.and_then(|r| campaign_of_request.get(&(tenant.clone(), r))) {
            campaign_days
                .entry(vec![tenant.clone(), c.clone(), day(&at)])
                .or_default()[3] += cost;
        }
        let key = vec![
            tenant,
            day(&at),
            provider.unwrap_or(engine),
            model.unwrap_or_else(|| "unknown".to_owned()),
        ];
        let u = usage.entry(key).or_default();
        u[0] += 1.0;
        u[1] += tokens as f64;
        u[2] += cost;
    }
    let to_rows = |m: BTreeMap<Vec<String>, Vec<f64>>| -> Rows {
        m.into_iter()
            .map(|(k, v)| (k, v.into_iter().map(Some).collect()))
            .collect()
    };
    out.insert(
        "tenant_metrics_daily",
        to_rows(
            tenant_days
                .into_iter()
                .map(|(k, v)| (k, v.to_vec()))
                .collect(),
        ),
    );
    // campaign_metrics_daily's key is (tenant, campaign, date), as selected in ROLLUPS.
    out.insert(
        "campaign_metrics_daily",
        to_rows(
            campaign_days
                .into_iter()
                .map(|(k, v)| (k, v.to_vec()))
                .collect(),
        ),
    );
    out.insert(
        "api_usage_daily",
        to_rows(usage.into_iter().map(|(k, v)| (k, v.to_vec())).collect()),
    );
    out
}

#[track_caller]
fn assert_rows_match(table: &str, got: &Rows, want: &Rows) {
    let got_keys: Vec<_> = got.keys().collect();
    let want_keys: Vec<_> = want.keys().collect();
    assert_eq!(got_keys, want_keys, "{table}: keys differ");
    for (key, w) in want {
        let g = &got[key];
        assert_eq!(g.len(), w.len(), "{table} {key:?}");
        for (a, b) in g.iter().zip(w) {
            assert!(approx_opt(*a, *b), "{table} {key:?}: {g:?} vs {w:?}");
        }
    }
}

fn only_day(rows: &Rows, date_pos: usize, keep: impl Fn(&str) -> bool) -> Rows {
    rows.iter()
        .filter(|(k, _)| keep(&k[date_pos]))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn snapshot(conn: &Connection) -> Vec<Vec<Vec<Value>>> {
    ROLLUPS.iter().map(|(t, ..)| dump(conn, t)).collect()
}

#[test]
fn rollups_match_a_rust_oracle_over_raw_rows() {
    let mut conn = fixtures::loaded();
    let report = recompute(&mut conn, RollupRange::All);
    let got = actual(&conn);
    let want = oracle(&conn);
    for (table, ..) in ROLLUPS {
        assert!(
            !want[table].is_empty(),
            "{table}: the fixture gives no rows"
        );
        assert_rows_match(table, &got[table], &want[table]);
    }
    // The report names each table once, in ROLLUPS' set, with the rows now in it.
    let mut named: Vec<&str> = report.tables.iter().map(|(t, _)| t.as_str()).collect();
    named.sort_unstable();
    let mut expected: Vec<&str> = ROLLUPS.iter().map(|r| r.0).collect();
    expected.sort_unstable();
    assert_eq!(named, expected);
    for (table, written) in &report.tables {
        assert_eq!(*written, got[table.as_str()].len(), "{table}");
    }
    // The fixture's edge cases are present: a midnight crossing, a NULL industry, a run
    // billed to its engine.
    assert!(got["platform_benchmarks"]
        .keys()
        .any(|k| k[1] == "unspecified"));
    assert!(got["api_usage_daily"]
        .keys()
        .any(|k| k[2] == "openmanus" && k[3] == "unknown"));
}

#[test]
fn recompute_is_idempotent_and_transactional() {
    let mut conn = fixtures::loaded();
    let empty = snapshot(&conn);
    {
        let tx = conn.transaction().unwrap();
        rollup::recompute(&tx, &RollupRange::All).unwrap();
        // dropped: rolled back
    }
    assert_eq!(snapshot(&conn), empty);

    let first_report = recompute(&mut conn, RollupRange::All);
    let first = snapshot(&conn);
    assert_ne!(first, empty);
    let second_report = recompute(&mut conn, RollupRange::All);
    assert_eq!(second_report, first_report);
    assert_eq!(snapshot(&conn), first);

    let since: String = conn
        .query_row("SELECT date('now', '-12 days')", [], |r| r.get(0))
        .unwrap();
    recompute(&mut conn, RollupRange::Since(since.clone()));
    assert_eq!(snapshot(&conn), first);
    recompute(&mut conn, RollupRange::Day(since));
    assert_eq!(snapshot(&conn), first);
}

#[test]
fn recompute_of_one_day_touches_only_that_day() {
    let mut conn = analysed();
    let (d, e): (String, String) = conn
        .query_row(
            "SELECT date('now', '-6 days'), date('now', '-7 days')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let before = actual(&conn);

    // New raw activity on both days d and e.
    for (day, suffix) in [(&d, "d"), (&e, "e")] {
        let at = format!("{day}T12:00:00.000Z");
        conn.execute_batch(&format!(
            "INSERT INTO content_requests (request_id, tenant_id, platform, brief, campaign_id)
                 VALUES ('rq_{suffix}', 'tenant_004', 'tiktok', 'late', 'cmp_4_2');
             INSERT INTO content_drafts (draft_id, request_id, tenant_id, skill_id, body,
                                         created_at)
                 VALUES ('df_{suffix}', 'rq_{suffix}', 'tenant_004', 'skill_006', 'b', '{at}');
             INSERT INTO revision_events (event_id, tenant_id, draft_id, skill_id, guard_id,
                                          event_type, passed, created_at)
                 VALUES ('ev_{suffix}', 'tenant_004', 'df_{suffix}', 'skill_006', 'guard_004',
                         'guard_check', 0, '{at}');
             INSERT INTO workflow_runs (run_id, tenant_id, request_id, engine, provider, model,
                                        tokens_in, cost_usd, started_at)
                 VALUES ('wr_{suffix}', 'tenant_004', 'rq_{suffix}', 'dify', 'mistral', 'small',
                         77, 0.5, '{at}');
             INSERT INTO published_posts (post_id, tenant_id, campaign_id, platform,
                                          published_at)
                 VALUES ('pp_{suffix}', 'tenant_004', 'cmp_4_2', 'tiktok', '{at}');
             INSERT INTO post_metrics (post_id, tenant_id, impressions, clicks)
                 VALUES ('pp_{suffix}', 'tenant_004', 1000, 30);
             INSERT INTO conversions (conversion_id, tenant_id, post_id, kind, value,
                                      occurred_at)
                 VALUES ('cv_{suffix}', 'tenant_004', 'pp_{suffix}', 'purchase', 99.5, '{at}');"
        ))
        .unwrap();
    }

    let report = recompute(&mut conn, RollupRange::Day(d.clone()));
    let got = actual(&conn);
    let want = oracle(&conn);
    let mut total = 0;
    for (table, _, _, date_pos) in ROLLUPS {
        let is_d = |x: &str| x == d;
        // Day d now reflects the new rows...
        let got_d = only_day(&got[table], date_pos, is_d);
        assert_rows_match(table, &got_d, &only_day(&want[table], date_pos, is_d));
        assert_ne!(got_d, only_day(&before[table], date_pos, is_d), "{table}");
        total += got_d.len();
        // ...and every other day is exactly as before, including the now stale day e.
        let not_d = |x: &str| x != d;
        assert_eq!(
            only_day(&got[table], date_pos, not_d),
            only_day(&before[table], date_pos, not_d),
            "{table}"
        );
        let is_e = |x: &str| x == e;
        assert_ne!(
            only_day(&got[table], date_pos, is_e),
            only_day(&want[table], date_pos, is_e),
            "{table}: day e should be stale"
        );
    }
    assert_eq!(report.tables.iter().map(|t| t.1).sum::<usize>(), total);

    // Since(e) brings e up to date too.
    recompute(&mut conn, RollupRange::Since(e));
    let got = actual(&conn);
    for (table, ..) in ROLLUPS {
        assert_rows_match(table, &got[table], &want[table]);
    }
}
