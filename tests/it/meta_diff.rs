//! `meta` reveals nothing: the same session statements, run against two databases that
//! differ only in what the tenant may not see (another tenant's rows, inserted between
//! and after this tenant's; rollup rows below k), give identical results and identical
//! `meta` (`changes`, `last_row_id`, `rows_read`, `rows_written`, `changed_db`).

use d1vec::sql::migrate;
use d1vec::Database;
use serde_json::Value;

const BASE: &str = "
INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('t_a','A','pro','eu'),('t_b','B','pro','us');
CREATE TABLE app_notes (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id), body TEXT);
INSERT INTO skills (skill_id, name, category, status) VALUES ('s1','Hook','opening','active');
INSERT INTO campaigns (campaign_id, tenant_id, name, budget) VALUES ('c_a1','t_a','A one',10);
INSERT INTO skill_metrics_daily (skill_id, date, uses, approval_rate, pass_rate, tenant_count) VALUES ('s1','2026-01-01',10,0.5,0.5,7);
";

/// What only the other tenant (and the suppressed rollups) add: rows on both sides of the
/// tenant's own, in every table the statements below touch.
const OTHERS: &str = "
INSERT INTO campaigns (campaign_id, tenant_id, name, budget) VALUES ('c_b1','t_b','B one',500),('c_b2','t_b','B two',501),('c_b3','t_b','B three',502);
INSERT INTO app_notes (id, tenant_id, body) VALUES (100,'t_b','b'),(101,'t_b','b'),(102,'t_b','b');
INSERT INTO skill_metrics_daily (skill_id, date, uses, approval_rate, pass_rate, tenant_count) VALUES ('s1','2026-01-02',3,0.9,0.9,2),('s1','2025-12-31',4,0.9,0.9,1);
";

const LATER: &str = "
INSERT INTO campaigns (campaign_id, tenant_id, name, budget) VALUES ('c_b9','t_b','B nine',9);
INSERT INTO app_notes (tenant_id, body) VALUES ('t_b','later');
";

/// The session's statements, in order.
const STATEMENTS: &[&str] = &[
    "SELECT count(*) AS n FROM campaigns",
    "SELECT campaign_id, name, budget FROM campaigns ORDER BY budget LIMIT 1",
    "SELECT count(*) AS n FROM skill_metrics_daily",
    "SELECT date FROM skill_metrics_daily ORDER BY date LIMIT 1",
    "SELECT skill_id, date, uses FROM skill_metrics_daily WHERE date > '2025-01-01' ORDER BY uses DESC LIMIT 1",
    "INSERT INTO campaigns (campaign_id, name, budget) VALUES ('c_a2', 'A two', 20)",
    "INSERT INTO app_notes (id, body) VALUES (7, 'mine')",
    "SELECT * FROM app_notes",
    "UPDATE campaigns SET budget = budget + 1",
    "UPDATE campaigns SET budget = 0 WHERE campaign_id = 'c_b1'",
    "DELETE FROM campaigns WHERE campaign_id = 'c_b2'",
    "DELETE FROM campaigns WHERE campaign_id = 'c_a2'",
    "INSERT INTO campaigns (campaign_id, name) SELECT 'c_a_' || campaign_id, name FROM campaigns",
    "SELECT 1 AS one",
    "SELECT count(*) AS n FROM campaigns WHERE budget > 100",
];

fn database(with_others: bool) -> Database {
    let db = Database::open_in_memory().unwrap();
    db.apply_migrations(&migrate::bundled()).unwrap();
    db.exec(BASE).unwrap();
    if with_others {
        db.exec(OTHERS).unwrap();
    }
    db
}

/// Each statement's rows and meta (duration left out), or its error text.
fn run(db: &Database, with_others: bool) -> Vec<Value> {
    let session = db.tenant("t_a").unwrap();
    let mut out = Vec::new();
    for (i, sql) in STATEMENTS.iter().enumerate() {
        if with_others && i == STATEMENTS.len() / 2 {
            // The other tenant writes in the middle of the session's work.
            db.exec(LATER).unwrap();
        }
        out.push(match session.prepare(sql).all() {
            Ok(r) => serde_json::json!({
                "sql": sql,
                "results": r.results,
                "changes": r.meta.changes,
                "last_row_id": r.meta.last_row_id,
                "rows_read": r.meta.rows_read,
                "rows_written": r.meta.rows_written,
                "changed_db": r.meta.changed_db,
            }),
            Err(e) => serde_json::json!({"sql": sql, "error": e.to_string()}),
        });
    }
    out
}

#[test]
fn meta_is_the_same_whatever_other_tenants_hold() {
    let alone = run(&database(false), false);
    let crowded = run(&database(true), true);
    for (a, b) in alone.iter().zip(&crowded) {
        assert_eq!(a, b, "the answers differ");
    }
    // The statements did real work: the oracle is not comparing two empty runs.
    let changed: u64 = alone.iter().filter_map(|r| r["changes"].as_u64()).sum();
    assert!(changed >= 5, "{alone:#?}");
    let ids: Vec<i64> = alone
        .iter()
        .filter_map(|r| r["last_row_id"].as_i64())
        .collect();
    assert!(
        ids.contains(&7),
        "an INTEGER PRIMARY KEY insert reports its key: {ids:?}"
    );
}

#[test]
fn the_admin_still_gets_sqlite_s_own_counters() {
    // The admin surface is unscoped: its meta is SQLite's (scan steps, table-wide rowid).
    let db = database(true);
    let r = db
        .prepare("INSERT INTO campaigns (campaign_id, tenant_id, name) VALUES ('c_x','t_b','x')")
        .run()
        .unwrap();
    let rowid = db
        .prepare("SELECT rowid AS r FROM campaigns WHERE campaign_id = 'c_x'")
        .first()
        .unwrap()
        .unwrap();
    assert_eq!(Value::from(r.meta.last_row_id), rowid["r"]);
    let r = db
        .prepare("SELECT count(*) AS n FROM campaigns")
        .all()
        .unwrap();
    assert!(r.meta.rows_read >= 1);
}
