//! The `d1vec` binary end to end: flags, JSON output, errors and exit codes, tenant scoping,
//! and the export → execute round trip that moves data to hosted D1.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Runs the `d1vec` binary on `db` with `args`.
pub(crate) fn d1vec(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_d1vec"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("D1VEC_TENANT")
        .output()
        .unwrap()
}

/// Runs a command that must succeed; returns its JSON output.
#[track_caller]
pub(crate) fn ok_json(db: &Path, args: &[&str]) -> Value {
    let out = d1vec(db, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn migrate_execute_scope_and_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/db.sqlite");
    let applied = ok_json(&db, &["--json", "d1", "migrations", "apply"]);
    assert_eq!(applied["applied"].as_array().unwrap().len(), 6);
    let listed = ok_json(&db, &["--json", "d1", "migrations", "list"]);
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["applied_at"].is_string()));

    ok_json(
        &db,
        &["--json", "d1", "execute", "--command",
          "INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('a','A','pro','us'),('b','B','pro','eu');
           INSERT INTO campaigns (campaign_id, tenant_id, name) VALUES ('ca','a','mine'),('cb','b','theirs')"],
    );
    let res = ok_json(
        &db,
        &[
            "--json",
            "--tenant",
            "a",
            "d1",
            "execute",
            "--command",
            "SELECT campaign_id FROM campaigns",
        ],
    );
    assert_eq!(res[0]["success"], true);
    assert_eq!(
        res[0]["results"],
        serde_json::json!([{"campaign_id": "ca"}])
    );
    assert!(res[0]["meta"]["duration"].is_number());

    let out = d1vec(
        &db,
        &[
            "--json",
            "--tenant",
            "a",
            "d1",
            "execute",
            "--command",
            "SELECT * FROM main.campaigns",
        ],
    );
    assert!(!out.status.success());
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["code"], 403);
    assert!(
        err["error"].as_str().unwrap().contains("tenant `a`"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let out = d1vec(
        &db,
        &["d1", "execute", "--command", "SELECT * FROM nowhere"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such table"));
}

#[test]
fn export_then_execute_reproduces_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.sqlite");
    ok_json(&src, &["--json", "d1", "migrations", "apply"]);
    ok_json(
        &src,
        &["--json", "d1", "execute", "--command",
          "INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('a','It''s A','pro','us');
           INSERT INTO campaigns (campaign_id, tenant_id, name, budget) VALUES ('c1','a','line1\nline2', 0.1)"],
    );
    let dump = dir.path().join("dump.sql");
    ok_json(
        &src,
        &["--json", "d1", "export", "--output", dump.to_str().unwrap()],
    );
    let dst = dir.path().join("dst.sqlite");
    ok_json(
        &dst,
        &["--json", "d1", "execute", "--file", dump.to_str().unwrap()],
    );
    let q = "SELECT tenant_id, name, budget FROM campaigns";
    assert_eq!(
        ok_json(&src, &["--json", "d1", "execute", "--command", q])[0]["results"],
        ok_json(&dst, &["--json", "d1", "execute", "--command", q])[0]["results"]
    );
    let status = ok_json(&dst, &["--json", "d1", "migrations", "list"]);
    assert!(
        status
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["applied_at"].is_string()),
        "migration state travels with the dump"
    );
}

#[test]
fn paging_and_rollup_commands() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    ok_json(&db, &["--json", "d1", "execute", "--command",
        "CREATE TABLE t (id TEXT PRIMARY KEY, at INTEGER NOT NULL); INSERT INTO t VALUES ('a',1),('b',2),('c',3)"]);
    let p1 = ok_json(
        &db,
        &[
            "--json",
            "d1",
            "page",
            "--command",
            "SELECT * FROM t",
            "--order-by",
            "at",
            "--id-column",
            "id",
            "--limit",
            "2",
        ],
    );
    assert_eq!(p1["rows"].as_array().unwrap().len(), 2);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let p2 = ok_json(
        &db,
        &[
            "--json",
            "d1",
            "page",
            "--command",
            "SELECT * FROM t",
            "--order-by",
            "at",
            "--id-column",
            "id",
            "--limit",
            "2",
            "--cursor",
            cursor,
        ],
    );
    assert_eq!(p2["rows"], serde_json::json!([{"id": "a", "at": 1}]));
    assert!(p2["next_cursor"].is_null());

    let db2 = dir.path().join("app.sqlite");
    ok_json(&db2, &["--json", "d1", "migrations", "apply"]);
    let report = ok_json(&db2, &["--json", "rollup", "--since", "2026-01-01"]);
    assert!(report["tables"].is_array());
    let out = d1vec(&db2, &["rollup", "--date", "yesterday"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("yesterday"));
}
