//! Tenant isolation against an adversary: every way we know to reach outside a tenant's
//! scope through SQL is either refused or confined to the tenant's rows, and in both cases
//! the database is byte-for-byte unchanged afterwards (the oracle is an admin snapshot of
//! every table taken before and after each attempt).

use d1vec::sql::migrate;
use d1vec::{params, Database, Error};
use serde_json::Value;

/// Two tenants with a few rows each in private, shared and rollup tables.
fn setup() -> Database {
    let db = Database::open_in_memory().unwrap();
    db.apply_migrations(&migrate::bundled()).unwrap();
    db.exec(
        "INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('t_a','A','pro','eu'),('t_b','B','pro','us'),('t''q','Q','free','us');
         INSERT INTO users (user_id, tenant_id, email, role) VALUES ('u_a','t_a','a@a.test','owner'),('u_b','t_b','b@b.test','owner');
         INSERT INTO campaigns (campaign_id, tenant_id, name) VALUES ('c_a1','t_a','A spring'),('c_a2','t_a','A fall'),('c_b1','t_b','B secret');
         INSERT INTO campaigns (campaign_id, tenant_id, name) VALUES ('c_q1','t''q','Q one');
         INSERT INTO skills (skill_id, name, category, status, origin_tenant_id) VALUES ('s1','Hook','opening','active','t_b');
         INSERT INTO skill_metrics_daily (skill_id, date, uses, approval_rate, pass_rate, tenant_count) VALUES ('s1','2026-01-01',10,0.5,0.5,7),('s1','2026-01-02',3,0.9,0.9,2);
         INSERT INTO tenant_keys (key_id, tenant_id, version, wrapped_key, algorithm, status) VALUES ('k_b','t_b',1,X'00112233','AES-256-GCM','active');",
    )
    .unwrap();
    db
}

/// Every row of every table, as the admin sees it.
fn snapshot(db: &Database) -> Vec<(String, Vec<Vec<Value>>)> {
    let tables = db
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .raw(false)
        .unwrap();
    tables
        .into_iter()
        .map(|t| {
            let name = t[0].as_str().unwrap().to_owned();
            let rows = db
                .prepare(&format!("SELECT * FROM \"{name}\" ORDER BY rowid"))
                .raw(false)
                .unwrap();
            (name, rows)
        })
        .collect()
}

#[derive(Debug)]
enum Expect {
    /// Refused as a tenant violation.
    Violation,
    /// Refused as SQL D1 does not allow.
    NotAllowed,
    /// Refused with SQLite's own `UNIQUE constraint failed`, exactly as for a key the
    /// tenant's own row holds.
    Unique,
    /// Refused with any error (an SQL error such as a missing column also keeps data safe).
    AnyError,
    /// Allowed, but every returned row belongs to the tenant (no `t_b` anywhere).
    Scoped,
}

const ESCAPES: &[(&str, Expect)] = &[
    // Reads of base tables, directly or through names the user chooses.
    ("SELECT * FROM main.campaigns", Expect::Violation),
    ("SELECT * FROM \"main\".\"campaigns\"", Expect::Violation),
    ("SELECT * FROM MAIN.Campaigns", Expect::Violation),
    ("WITH campaigns AS (SELECT * FROM main.campaigns) SELECT * FROM campaigns", Expect::Violation),
    ("WITH x AS (SELECT * FROM main.campaigns) SELECT * FROM x", Expect::Violation),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r, main.campaigns WHERE n < 3) SELECT * FROM r", Expect::Violation),
    ("SELECT name FROM campaigns UNION ALL SELECT name FROM main.campaigns", Expect::Violation),
    ("SELECT * FROM campaigns WHERE campaign_id IN (SELECT campaign_id FROM main.campaigns)", Expect::Violation),
    ("SELECT (SELECT name FROM main.campaigns WHERE tenant_id = 't_b')", Expect::Violation),
    ("SELECT c.name FROM campaigns c JOIN main.campaigns m ON m.tenant_id = 't_b'", Expect::Violation),
    ("SELECT count(*) FROM main.users", Expect::Violation),
    ("SELECT * FROM (SELECT * FROM main.campaigns) AS campaigns", Expect::Violation),
    ("SELECT EXISTS (SELECT 1 FROM main.campaigns WHERE name = 'B secret')", Expect::Violation),
    // Schema and internals.
    ("SELECT * FROM sqlite_master", Expect::Violation),
    ("SELECT * FROM sqlite_schema", Expect::Violation),
    ("SELECT * FROM sqlite_temp_master", Expect::Violation),
    ("SELECT sql FROM temp.sqlite_schema", Expect::Violation),
    ("SELECT * FROM pragma_table_list", Expect::AnyError),
    ("SELECT * FROM pragma_table_info('campaigns')", Expect::AnyError),
    ("PRAGMA table_list", Expect::Violation),
    ("PRAGMA main.table_info(campaigns)", Expect::Violation),
    ("PRAGMA foreign_keys = OFF", Expect::Violation),
    ("EXPLAIN SELECT * FROM campaigns", Expect::Violation),
    ("EXPLAIN QUERY PLAN SELECT * FROM campaigns", Expect::Violation),
    ("ANALYZE", Expect::Violation),
    ("SELECT * FROM dbstat", Expect::AnyError),
    ("SELECT * FROM sqlite_dbpage", Expect::AnyError),
    ("VACUUM INTO '/tmp/d1vec-stolen.db'", Expect::Violation),
    // Hidden and bookkeeping tables.
    ("SELECT * FROM tenant_keys", Expect::Violation),
    ("SELECT * FROM d1_migrations", Expect::Violation),
    ("SELECT origin_tenant_id FROM skills", Expect::AnyError),
    // Session escape hatches.
    ("ATTACH DATABASE ':memory:' AS x", Expect::NotAllowed),
    ("DETACH DATABASE temp", Expect::NotAllowed),
    ("CREATE TEMP VIEW x AS SELECT * FROM main.campaigns", Expect::Violation),
    ("CREATE TEMP TRIGGER tr INSTEAD OF INSERT ON campaigns BEGIN SELECT 1; END", Expect::NotAllowed),
    ("CREATE VIEW v AS SELECT * FROM main.campaigns", Expect::Violation),
    ("CREATE TABLE stolen AS SELECT * FROM campaigns", Expect::Violation),
    ("DROP VIEW campaigns", Expect::Violation),
    ("DROP TABLE main.campaigns", Expect::Violation),
    ("ALTER TABLE campaigns RENAME TO c2", Expect::AnyError),
    ("CREATE INDEX ix ON campaigns(name)", Expect::AnyError),
    ("SELECT load_extension('/tmp/evil.so')", Expect::NotAllowed),
    ("BEGIN", Expect::NotAllowed),
    ("SAVEPOINT s1", Expect::NotAllowed),
    ("COMMIT", Expect::NotAllowed),
    // Writes that would cross tenants or touch what tenants may only read.
    ("INSERT INTO campaigns (campaign_id, tenant_id, name) VALUES ('x1','t_b','planted')", Expect::Violation),
    ("UPDATE campaigns SET tenant_id = 't_b'", Expect::Violation),
    ("UPDATE main.campaigns SET name = 'pwned'", Expect::Violation),
    ("DELETE FROM main.campaigns", Expect::Violation),
    ("INSERT INTO main.campaigns (campaign_id, tenant_id, name) VALUES ('x2','t_a','direct')", Expect::Violation),
    ("INSERT OR REPLACE INTO campaigns (campaign_id, name) VALUES ('c_b1','replaced')", Expect::Unique),
    ("REPLACE INTO users (user_id, email, role) VALUES ('u_b','x@x.test','owner')", Expect::Unique),
    ("UPDATE OR REPLACE campaigns SET campaign_id = 'c_b1' WHERE campaign_id = 'c_a1'", Expect::Unique),
    ("INSERT INTO campaigns (campaign_id, name) SELECT campaign_id || 'x', name FROM main.campaigns", Expect::Violation),
    ("UPDATE campaigns SET name = (SELECT name FROM main.campaigns WHERE tenant_id = 't_b')", Expect::Violation),
    ("DELETE FROM campaigns WHERE campaign_id IN (SELECT campaign_id FROM main.campaigns WHERE tenant_id = 't_b')", Expect::Violation),
    ("INSERT INTO campaigns (campaign_id, name) VALUES ('x3','n') RETURNING (SELECT count(*) FROM main.campaigns)", Expect::AnyError),
    ("INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('t_new','N','pro','us')", Expect::Violation),
    ("UPDATE tenants SET plan = 'enterprise'", Expect::Violation),
    ("DELETE FROM tenants", Expect::Violation),
    ("INSERT INTO skills (skill_id, name, category) VALUES ('s2','x','y')", Expect::Violation),
    ("DELETE FROM skill_metrics_daily", Expect::Violation),
    ("INSERT INTO audit_logs (audit_id, tenant_id, actor, action, resource_type, outcome, hash) VALUES ('a','t_a','x','y','z','success','h')", Expect::Violation),
    ("INSERT INTO campaigns (campaign_id, name) VALUES ('x4','n'); INSERT INTO main.campaigns (campaign_id, tenant_id, name) VALUES ('x5','t_b','n')", Expect::Violation),
    // Allowed, but confined to the tenant.
    ("SELECT * FROM campaigns", Expect::Scoped),
    ("SELECT * FROM campaigns WHERE tenant_id = 't_b'", Expect::Scoped),
    ("SELECT * FROM temp.campaigns", Expect::Scoped),
    ("SELECT * FROM users, campaigns", Expect::Scoped),
    ("SELECT * FROM tenants", Expect::Scoped),
    ("SELECT * FROM skill_metrics_daily", Expect::Scoped),
    ("SELECT * FROM skill_metrics_daily WHERE tenant_count < 5", Expect::Scoped),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT n, (SELECT count(*) FROM campaigns) AS c FROM r", Expect::Scoped),
    ("SELECT value FROM json_each('[1,2,3]')", Expect::Scoped),
    ("SELECT * FROM skills", Expect::Scoped),
];

fn mentions_other_tenant(rows: &[serde_json::Map<String, Value>]) -> bool {
    let text = serde_json::to_string(rows).unwrap();
    text.contains("t_b")
        || text.contains("B secret")
        || text.contains("u_b")
        || text.contains("\"2026-01-02\"")
}

#[test]
fn every_escape_attempt_is_refused_or_scoped_and_changes_nothing() {
    let db = setup();
    let before = snapshot(&db);
    let a = db.tenant("t_a").unwrap();
    let mut failures = Vec::new();
    for (sql, expect) in ESCAPES {
        // One statement goes through prepare() (no script splitting); scripts through execute().
        let got = if sql.contains("; ") {
            a.execute(sql)
        } else {
            a.prepare(sql).all().map(|r| vec![r])
        };
        let ok = match (expect, &got) {
            (Expect::Violation, Err(Error::TenantViolation { tenant, .. })) => tenant == "t_a",
            (Expect::NotAllowed, Err(Error::NotAllowed(_))) => true,
            (Expect::Unique, Err(Error::Sql(e))) => {
                e.to_string().starts_with("UNIQUE constraint failed: ")
            }
            (Expect::AnyError, Err(_)) => true,
            (Expect::Scoped, Ok(results)) => {
                results.iter().all(|r| !mentions_other_tenant(&r.results))
            }
            _ => false,
        };
        if !ok {
            failures.push(format!("{sql}\n    expected {expect:?}, got {got:?}"));
        }
        assert_eq!(snapshot(&db), before, "database changed after: {sql}");
    }
    assert!(
        failures.is_empty(),
        "{} escapes misbehaved:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(ESCAPES.len() >= 40);
}

#[test]
fn scoped_reads_equal_admin_reads_with_a_tenant_filter() {
    let db = setup();
    let a = db.tenant("t_a").unwrap();
    let mine = a
        .prepare("SELECT campaign_id, name FROM campaigns ORDER BY campaign_id")
        .raw(false)
        .unwrap();
    let admin = db
        .prepare(
            "SELECT campaign_id, name FROM campaigns WHERE tenant_id = ?1 ORDER BY campaign_id",
        )
        .bind(["t_a"])
        .raw(false)
        .unwrap();
    assert_eq!(mine, admin);
    assert_eq!(mine.len(), 2);
}

#[test]
fn tenant_writes_are_stamped_counted_and_confined() {
    let db = setup();
    let a = db.tenant("t_a").unwrap();
    let r = a
        .prepare("INSERT INTO campaigns (campaign_id, name, budget) VALUES (?1, ?2, ?3)")
        .bind(params!["c_a3", "A winter", 12.5])
        .run()
        .unwrap();
    assert_eq!(r.meta.changes, 1);
    let rowid = db
        .prepare("SELECT rowid AS r, tenant_id, status FROM campaigns WHERE campaign_id = 'c_a3'")
        .first()
        .unwrap()
        .unwrap();
    assert_eq!(rowid["tenant_id"], "t_a");
    assert_eq!(
        rowid["status"], "draft",
        "column defaults apply through the view"
    );
    // The table's rowid is not its key: it counts every tenant's inserts, so a session is
    // told 0 rather than the table-wide rowid.
    assert_ne!(rowid["r"], Value::from(0));
    assert_eq!(r.meta.last_row_id, 0);

    let upd = a
        .prepare("UPDATE campaigns SET budget = budget + 1")
        .run()
        .unwrap();
    assert_eq!(upd.meta.changes, 3);
    let del = a
        .prepare("DELETE FROM campaigns WHERE campaign_id = 'c_a3'")
        .run()
        .unwrap();
    assert_eq!(del.meta.changes, 1);
    let b_rows = db
        .prepare("SELECT name, budget FROM campaigns WHERE tenant_id = 't_b'")
        .raw(false)
        .unwrap();
    assert_eq!(
        b_rows,
        vec![vec![Value::from("B secret"), Value::from(0.0)]]
    );
}

#[test]
fn a_tenant_id_with_a_quote_is_escaped() {
    let db = setup();
    let q = db.tenant("t'q").unwrap();
    let rows = q
        .prepare("SELECT campaign_id FROM campaigns")
        .raw(false)
        .unwrap();
    assert_eq!(rows, vec![vec![Value::from("c_q1")]]);
    q.prepare("INSERT INTO campaigns (campaign_id, name) VALUES ('c_q2', 'two')")
        .run()
        .unwrap();
    let owner = db
        .prepare("SELECT tenant_id FROM campaigns WHERE campaign_id = 'c_q2'")
        .first_column("tenant_id")
        .unwrap();
    assert_eq!(owner, Some(Value::from("t'q")));
}

#[test]
fn a_failed_batch_in_a_tenant_session_rolls_back_entirely() {
    let db = setup();
    let before = snapshot(&db);
    let a = db.tenant("t_a").unwrap();
    let err = a
        .batch(&[
            a.prepare("INSERT INTO campaigns (campaign_id, name) VALUES ('ok1','fine')"),
            a.prepare(
                "INSERT INTO campaigns (campaign_id, tenant_id, name) VALUES ('bad','t_b','x')",
            ),
        ])
        .unwrap_err();
    assert!(matches!(err, Error::TenantViolation { .. }), "{err:?}");
    assert_eq!(snapshot(&db), before);
}

#[test]
fn error_messages_never_carry_the_session_secret() {
    let db = setup();
    let a = db.tenant("t_a").unwrap();
    for sql in [
        "SELECT nosuch FROM campaigns",
        "SELECT * FROM campaigns WHERE",
        "INSERT INTO campaigns (campaign_id) VALUES ('c_a1')",
    ] {
        let e = a.execute(sql).unwrap_err().to_string();
        assert!(!e.contains("d1vec_"), "{sql}: {e}");
    }
}
