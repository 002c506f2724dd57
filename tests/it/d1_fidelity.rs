//! D1 fidelity: `meta` field by field against SQLite's own counters and the file's size,
//! `rows_written` counting index writes as D1 bills them, D1's limits that need a lowered
//! value to reach (time, database size), and `dump()`.

use d1vec::sql::{migrate, D1Limits};
use d1vec::{Database, Error};
use rusqlite::Connection;
use serde_json::{json, Value};

/// D1's documented `meta` keys, in the order its Worker API page lists them
/// (<https://developers.cloudflare.com/d1/worker-api/return-object/>).
const D1_META_KEYS: &[&str] = &[
    "served_by",
    "served_by_region",
    "served_by_primary",
    "timings",
    "duration",
    "changes",
    "last_row_id",
    "changed_db",
    "size_after",
    "rows_read",
    "rows_written",
    "total_attempts",
];

#[test]
fn limits_default_to_d1s_documented_values() {
    // https://developers.cloudflare.com/d1/platform/limits/
    let l = D1Limits::default();
    assert_eq!(l.max_value_bytes, 2_000_000);
    assert_eq!(l.max_statement_bytes, 100_000);
    assert_eq!(l.max_bound_parameters, 100);
    assert_eq!(l.max_columns, 100);
    assert_eq!(l.max_function_args, 32);
    assert_eq!(l.max_like_pattern_bytes, 50);
    assert_eq!(l.max_database_bytes, 10_000_000_000);
    assert_eq!(l.statement_timeout, std::time::Duration::from_secs(30));
}

#[test]
fn meta_has_every_field_d1_documents_in_its_order() {
    let db = Database::open_in_memory().unwrap();
    let r = db.prepare("CREATE TABLE t (x)").run().unwrap();
    let text = serde_json::to_string(&r.meta).unwrap();
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["meta"].as_object().unwrap().len(), D1_META_KEYS.len());
    let positions: Vec<usize> = D1_META_KEYS
        .iter()
        .map(|k| {
            text.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} missing: {text}"))
        })
        .collect();
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(positions, sorted, "keys out of D1's order: {text}");
    assert_eq!(v["meta"]["served_by_primary"], json!(true));
    assert_eq!(v["meta"]["served_by_region"], json!("local"));
    assert!(v["meta"]["served_by"]
        .as_str()
        .unwrap()
        .starts_with("d1vec-"));
    assert_eq!(v["meta"]["total_attempts"], json!(1));
    assert_eq!(r.meta.timings.sql_duration_ms, r.meta.duration);
    assert!(r.meta.changed_db, "CREATE TABLE changes the database");
    let sel = db.prepare("SELECT * FROM t").all().unwrap();
    assert!(!sel.meta.changed_db);
    assert_eq!(sel.meta.rows_written, 0);
    // A statement that writes nothing changes nothing.
    let none = db.prepare("UPDATE t SET x = 1 WHERE x = 2").run().unwrap();
    assert!(!none.meta.changed_db);
    assert_eq!(none.meta.rows_written, 0);
}

/// The oracle: SQLite's own counters for the same statements on a plain connection, and
/// the database file's size.
#[test]
fn meta_counters_and_size_match_sqlite_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.sqlite");
    let db = Database::open(&path).unwrap();
    let plain = Connection::open_in_memory().unwrap();
    let script = [
        "CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT, n INTEGER)",
        "INSERT INTO p (name, n) VALUES ('a', 1), ('b', 2), ('c', 3)",
        "INSERT INTO p (name, n) SELECT name || '2', n * 10 FROM p",
        "UPDATE p SET n = n + 1 WHERE n > 2",
        "DELETE FROM p WHERE name = 'a'",
        "INSERT INTO p (name, n) VALUES (printf('%.*c', 50000, 'x'), 0)",
        "SELECT * FROM p",
        "SELECT count(*) FROM p WHERE n > 5",
    ];
    for sql in script {
        let r = db.prepare(sql).run().unwrap();
        let mut stmt = plain.prepare(sql).unwrap();
        let readonly = stmt.readonly();
        let mut rows = stmt.raw_query();
        let mut returned = 0u64;
        while rows.next().unwrap().is_some() {
            returned += 1;
        }
        drop(rows);
        let scanned = stmt.get_status(rusqlite::StatementStatus::FullscanStep) as u64;
        drop(stmt);
        let changes = if readonly { 0 } else { plain.changes() };
        assert_eq!(r.meta.changes, changes, "{sql}");
        assert_eq!(r.meta.last_row_id, plain.last_insert_rowid(), "{sql}");
        assert_eq!(r.results.len() as u64, returned, "{sql}");
        assert_eq!(r.meta.rows_read, returned + scanned, "{sql}");
        // size_after: page_count * page_size, as a separate connection sees the committed
        // file, and the file itself once the WAL is checkpointed into it.
        let oracle = Connection::open(&path).unwrap();
        let pages: i64 = oracle
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        let page: i64 = oracle
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(r.meta.size_after, (pages * page) as u64, "{sql}");
        oracle
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let file = std::fs::metadata(&path).unwrap().len();
        assert_eq!(r.meta.size_after, file, "{sql}: file size");
    }
}

/// D1 bills a write to each index as one more row written ("Indexes will add an additional
/// written row when writes include the indexed column", pricing page). The oracle counts
/// the table's indexes from `sqlite_schema` and which of them hold a set column.
#[test]
fn rows_written_counts_index_writes_as_d1_does() {
    let db = Database::open_in_memory().unwrap();
    db.exec(
        "CREATE TABLE plain (id INTEGER PRIMARY KEY, a TEXT, b INTEGER, c TEXT);
         CREATE TABLE indexed (id INTEGER PRIMARY KEY, a TEXT, b INTEGER, c TEXT);
         CREATE INDEX indexed_a ON indexed (a);
         CREATE INDEX indexed_b ON indexed (b);
         CREATE TABLE keyed (k TEXT PRIMARY KEY, a TEXT UNIQUE, c TEXT);
         CREATE TABLE wr (k TEXT PRIMARY KEY, a TEXT, c TEXT) WITHOUT ROWID;
         CREATE INDEX wr_a ON wr (a);",
    )
    .unwrap();
    let indexes = |table: &str| -> u64 {
        db.prepare(
            "SELECT count(*) AS n FROM pragma_index_list(?1) WHERE origin <> 'pk' OR ?1 <> 'wr'",
        )
        .bind([table])
        .first_column("n")
        .unwrap()
        .and_then(|v| v.as_u64())
        .unwrap()
    };
    assert_eq!(indexes("plain"), 0);
    assert_eq!(indexes("indexed"), 2);
    assert_eq!(
        indexes("keyed"),
        2,
        "the TEXT primary key and the UNIQUE column"
    );
    assert_eq!(
        indexes("wr"),
        1,
        "a WITHOUT ROWID table's key is the table itself"
    );
    let rw = |sql: &str| db.prepare(sql).run().unwrap().meta;
    for table in ["plain", "indexed"] {
        let per_row = 1 + indexes(table);
        let m = rw(&format!(
            "INSERT INTO {table} (a, b, c) VALUES ('x', 1, 'p'), ('y', 2, 'q'), ('z', 3, 'r')"
        ));
        assert_eq!(
            (m.changes, m.rows_written),
            (3, 3 * per_row),
            "{table} insert"
        );
        // Only the table's row: no index holds c.
        let m = rw(&format!("UPDATE {table} SET c = c || '!'"));
        assert_eq!((m.changes, m.rows_written), (3, 3), "{table} update of c");
        // One index holds a.
        let m = rw(&format!("UPDATE {table} SET a = a || '!' WHERE b < 3"));
        let want = if table == "indexed" { 2 * 2 } else { 2 };
        assert_eq!(
            (m.changes, m.rows_written),
            (2, want),
            "{table} update of a"
        );
        // Both indexes hold a or b.
        let m = rw(&format!("UPDATE {table} SET a = a, b = b + 1 WHERE b = 4"));
        assert_eq!(
            m.rows_written,
            m.changes * per_row,
            "{table} update of a and b"
        );
        let m = rw(&format!("DELETE FROM {table} WHERE b > 1"));
        assert_eq!(m.rows_written, m.changes * per_row, "{table} delete");
    }
    let m = rw("INSERT INTO keyed VALUES ('k1', 'a1', 'c'), ('k2', 'a2', 'c')");
    assert_eq!(m.rows_written, 2 * 3);
    let m = rw("INSERT INTO wr VALUES ('k1', 'a1', 'c'), ('k2', 'a2', 'c')");
    assert_eq!(
        (m.changes, m.rows_written),
        (2, 2 * 2),
        "WITHOUT ROWID: table + wr_a"
    );
    let m = rw("UPDATE wr SET c = 'd'");
    assert_eq!(m.rows_written, 2);
    let m = rw("DELETE FROM wr");
    assert_eq!(m.rows_written, 2 * 2);
    // Rows a trigger writes count too, with their own table's indexes.
    db.exec(
        "CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);
         CREATE INDEX audit_what ON audit (what);
         CREATE TRIGGER plain_log AFTER INSERT ON plain BEGIN INSERT INTO audit (what) VALUES (NEW.a); END;",
    )
    .unwrap();
    let m = rw("INSERT INTO plain (a) VALUES ('t')");
    assert_eq!((m.changes, m.rows_written), (1, 1 + 2));
}

#[test]
fn a_tenant_session_gets_no_database_size_and_counts_its_own_rows() {
    let db = Database::open_in_memory().unwrap();
    db.apply_migrations(&migrate::bundled()).unwrap();
    db.exec("INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('t_a','A','pro','eu')")
        .unwrap();
    let t = db.tenant("t_a").unwrap();
    let r = t
        .prepare("INSERT INTO campaigns (campaign_id, name) VALUES ('c1', 'one')")
        .run()
        .unwrap();
    assert_eq!(
        r.meta.size_after, 0,
        "the size moves with other tenants' writes"
    );
    assert_eq!(r.meta.changes, 1);
    let admin = db
        .prepare("INSERT INTO campaigns (campaign_id, tenant_id, name) VALUES ('c2', 't_a', 'two')")
        .run()
        .unwrap();
    assert!(admin.meta.size_after > 0);
    assert_eq!(
        r.meta.rows_written, admin.meta.rows_written,
        "the same row costs the same through a session as through the admin surface"
    );
    assert!(matches!(t.dump(), Err(Error::TenantViolation { .. })));
}

#[test]
fn the_database_size_limit_stops_a_write_and_keeps_the_database() {
    let limits = D1Limits {
        max_database_bytes: 256 * 1024,
        ..D1Limits::default()
    };
    let db = Database::builder().limits(limits).open_in_memory().unwrap();
    db.exec("CREATE TABLE b (x BLOB)").unwrap();
    let mut inserted = 0;
    let err = loop {
        match db.prepare("INSERT INTO b VALUES (zeroblob(20000))").run() {
            Ok(_) => inserted += 1,
            Err(e) => break e,
        }
        assert!(inserted < 100, "the limit never stopped the writes");
    };
    assert!(
        matches!(&err, Error::D1Limit { limit: 262_144, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("size"), "{err}");
    let n = db
        .prepare("SELECT count(*) AS n FROM b")
        .first_column("n")
        .unwrap();
    assert_eq!(n, Some(json!(inserted)), "the failed insert left nothing");
    // A batch past the limit is undone whole.
    db.exec("DELETE FROM b").unwrap();
    let batch: Vec<_> = (0..20)
        .map(|_| db.prepare("INSERT INTO b VALUES (zeroblob(20000))"))
        .collect();
    assert!(db.batch(&batch).is_err());
    let n = db
        .prepare("SELECT count(*) AS n FROM b")
        .first_column("n")
        .unwrap();
    assert_eq!(n, Some(json!(0)));
}

#[test]
fn each_d1_limit_can_be_changed_through_the_database_option() {
    let limits = D1Limits {
        max_columns: 8,
        max_function_args: 2,
        max_like_pattern_bytes: 4,
        max_statement_bytes: 60,
        max_bound_parameters: 1,
        ..D1Limits::default()
    };
    let db = Database::builder().limits(limits).open_in_memory().unwrap();
    for (sql, ok) in [
        ("CREATE TABLE a (c1, c2, c3, c4, c5, c6, c7, c8)", true),
        ("CREATE TABLE b (c1, c2, c3, c4, c5, c6, c7, c8, c9)", false),
        ("SELECT max(1, 2)", true),
        ("SELECT max(1, 2, 3)", false),
        ("SELECT 'a' LIKE '%%%%'", true),
        ("SELECT 'a' LIKE '%%%%%'", false),
        (&format!("SELECT '{}'", "x".repeat(51)), true),
        (&format!("SELECT '{}'", "x".repeat(52)), false),
    ] {
        let r = db.prepare(sql).all();
        assert_eq!(r.is_ok(), ok, "{sql}: {r:?}");
        if let Err(e) = r {
            assert!(
                matches!(e, Error::D1Limit { .. } | Error::LimitExceeded { .. }),
                "{sql}: {e:?}"
            );
        }
    }
    let r = db.prepare("SELECT ?1").bind([1]).all();
    assert!(r.is_ok(), "{r:?}");
    let r = db.prepare("SELECT ?1, ?2").bind([1, 2]).all();
    assert!(
        matches!(
            r,
            Err(Error::LimitExceeded {
                limit: 1,
                got: 2,
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn dump_returns_a_consistent_sqlite_file_without_the_cursor_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sqlite");
    let db = Database::open(&path).unwrap();
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, batch INTEGER, body TEXT); CREATE INDEX t_batch ON t (batch)")
        .unwrap();
    // Make the cursor key exist, as paging does.
    d1vec::sql::cursor::page(
        &db,
        "SELECT id, batch FROM t",
        &[],
        &d1vec::sql::cursor::PageSpec::descending("id", "id", 10),
        None,
    )
    .unwrap();
    let live: i64 = Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM d1vec_cursor_key", [], |r| r.get(0))
        .unwrap();
    assert_eq!(live, 1, "the database has a cursor key");
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || {
            let db = Database::open(&path).unwrap();
            for b in 0..30 {
                let stmts: Vec<_> = (0..10)
                    .map(|i| {
                        db.prepare("INSERT INTO t (batch, body) VALUES (?1, ?2)")
                            .bind_json(&[Value::from(b), Value::from(format!("row {i}"))])
                            .unwrap()
                    })
                    .collect();
                db.batch(&stmts).unwrap();
            }
        })
    };
    let mut dumps = Vec::new();
    for _ in 0..5 {
        dumps.push(db.dump().unwrap());
    }
    writer.join().unwrap();
    dumps.push(db.dump().unwrap());
    for (i, bytes) in dumps.iter().enumerate() {
        assert_eq!(&bytes[..16], b"SQLite format 3\0");
        let file = dir.path().join(format!("copy{i}.sqlite"));
        std::fs::write(&file, bytes).unwrap();
        let copy = Connection::open(&file).unwrap();
        let ok: String = copy
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        let n: i64 = copy
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n % 10, 0, "dump {i} holds a half-committed batch: {n} rows");
        let keys: i64 = copy
            .query_row("SELECT count(*) FROM d1vec_cursor_key", [], |r| r.get(0))
            .unwrap_or(0);
        assert_eq!(keys, 0, "the cursor key left the database");
    }
    let last = dir.path().join("copy5.sqlite");
    let copy = Connection::open(&last).unwrap();
    let n: i64 = copy
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 300);
    let same: i64 = copy
        .query_row(
            "SELECT count(*) FROM t WHERE body = 'row ' || ((id - 1) % 10)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(same, 300);
}
