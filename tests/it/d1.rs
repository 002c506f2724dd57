//! D1's execution model: one transaction per call, D1's limits and refusals, and results
//! shaped like wrangler's. The oracle is SQLite itself, read back through the admin surface.

use d1vec::sql::split::SplitError;
use d1vec::{params, Database, Error};
use serde_json::{json, Value};

fn db() -> Database {
    let db = Database::open_in_memory().unwrap();
    db.exec(
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
         CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent(id), data BLOB);",
    )
    .unwrap();
    db
}

fn count(db: &Database, table: &str) -> i64 {
    db.prepare(&format!("SELECT count(*) AS n FROM {table}"))
        .first_column("n")
        .unwrap()
        .unwrap()
        .as_i64()
        .unwrap()
}

#[test]
fn a_script_is_all_or_nothing() {
    let db = db();
    let err = db
        .execute("INSERT INTO parent (name) VALUES ('a'); INSERT INTO parent (name) VALUES ('b'); INSERT INTO parent (name) VALUES ('a')")
        .unwrap_err();
    assert!(err.to_string().contains("UNIQUE"), "{err}");
    assert_eq!(count(&db, "parent"), 0);
    let ok = db
        .execute("INSERT INTO parent (name) VALUES ('a'); INSERT INTO parent (name) VALUES ('b')")
        .unwrap();
    assert_eq!(ok.len(), 2);
    assert_eq!(count(&db, "parent"), 2);
}

#[test]
fn a_sqlite_dump_runs_and_a_second_transaction_is_refused() {
    let db = db();
    db.execute("BEGIN TRANSACTION;\nINSERT INTO parent (name) VALUES ('x');\nCOMMIT;\n")
        .unwrap();
    assert_eq!(count(&db, "parent"), 1);
    let err = db
        .execute("BEGIN TRANSACTION; INSERT INTO parent (name) VALUES ('y'); COMMIT; BEGIN TRANSACTION; COMMIT;")
        .unwrap_err();
    assert!(
        matches!(err, Error::Split(SplitError::SeveralTransactions)),
        "{err:?}"
    );
    assert_eq!(count(&db, "parent"), 1);
    assert!(db.execute("-- only a comment\n").is_err());
}

#[test]
fn batches_are_atomic() {
    let db = db();
    let err = db
        .batch(&[
            db.prepare("INSERT INTO parent (id, name) VALUES (1, 'p')"),
            db.prepare("INSERT INTO child (parent_id) VALUES (99)"),
        ])
        .unwrap_err();
    assert!(
        err.to_string().contains("FOREIGN KEY"),
        "foreign keys are on: {err}"
    );
    assert_eq!(count(&db, "parent"), 0);
    let out = db
        .batch(&[
            db.prepare("INSERT INTO parent (id, name) VALUES (1, 'p')"),
            db.prepare("INSERT INTO child (parent_id, data) VALUES (?1, ?2)")
                .bind(params![1, vec![0u8, 255]]),
            db.prepare("SELECT data FROM child"),
        ])
        .unwrap();
    assert_eq!(
        out[2].results[0]["data"],
        json!([0, 255]),
        "BLOBs come back as byte arrays"
    );
    let other = Database::open_in_memory().unwrap();
    assert!(
        db.batch(&[other.prepare("SELECT 1")]).is_err(),
        "statements of another database are refused"
    );
}

#[test]
fn results_have_wranglers_shape_and_true_counters() {
    let db = db();
    let ins = db
        .prepare("INSERT INTO parent (name) VALUES ('a'), ('b'), ('c')")
        .run()
        .unwrap();
    let v = serde_json::to_value(&ins).unwrap();
    let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["meta", "results", "success"]);
    for k in [
        "changes",
        "last_row_id",
        "rows_read",
        "rows_written",
        "duration",
    ] {
        assert!(v["meta"].get(k).is_some(), "meta.{k} missing");
    }
    assert_eq!(ins.meta.changes, 3);
    // Each row and its entry in the UNIQUE index on `name`, as D1 bills them.
    assert_eq!(ins.meta.rows_written, 6);
    let max = db
        .prepare("SELECT max(rowid) AS m FROM parent")
        .first_column("m")
        .unwrap();
    assert_eq!(Some(Value::from(ins.meta.last_row_id)), max);
    let upd = db
        .prepare("UPDATE parent SET name = name || '!' WHERE name <> 'b'")
        .run()
        .unwrap();
    assert_eq!(upd.meta.changes, 2);
    let sel = db.prepare("SELECT * FROM parent").all().unwrap();
    assert_eq!(sel.meta.changes, 0);
    assert!(sel.meta.rows_read >= 3);
}

#[test]
fn first_raw_and_typed_rows() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Parent {
        id: i64,
        name: String,
    }
    let db = db();
    db.exec("INSERT INTO parent (id, name) VALUES (1, 'one'), (2, 'two')")
        .unwrap();
    let s = db.prepare("SELECT id, name FROM parent ORDER BY id");
    assert_eq!(s.first().unwrap().unwrap()["name"], "one");
    assert_eq!(s.first_column("id").unwrap(), Some(json!(1)));
    assert!(matches!(
        s.first_column("nope"),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(
        s.raw(true).unwrap(),
        vec![
            vec![json!("id"), json!("name")],
            vec![json!(1), json!("one")],
            vec![json!(2), json!("two")]
        ]
    );
    assert_eq!(
        s.all_as::<Parent>().unwrap()[1],
        Parent {
            id: 2,
            name: "two".into()
        }
    );
    let none = db.prepare("SELECT * FROM parent WHERE id = ?1").bind([42]);
    assert_eq!(none.first().unwrap(), None);
    assert_eq!(none.first_as::<Parent>().unwrap(), None);
    let json_bound = db
        .prepare("SELECT ?1 AS a, ?2 AS b, ?3 AS c")
        .bind_json(&[json!(true), json!(1.5), json!(null)])
        .unwrap();
    assert_eq!(
        json_bound.first().unwrap().unwrap(),
        json!({"a": 1, "b": 1.5, "c": null})
            .as_object()
            .unwrap()
            .clone()
    );
}

#[test]
fn d1_limits_are_enforced_with_the_limit_named() {
    let db = db();
    let placeholders = |n: usize| {
        (1..=n)
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let ok = db
        .prepare(&format!("SELECT 1 WHERE 1 IN ({})", placeholders(100)))
        .bind(vec![1; 100])
        .all();
    assert!(ok.is_ok(), "{ok:?}");
    let err = db
        .prepare(&format!("SELECT 1 WHERE 1 IN ({})", placeholders(101)))
        .bind(vec![1; 101])
        .all()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                limit: 100,
                got: 101,
                ..
            }
        ),
        "{err:?}"
    );
    let long = format!("SELECT '{}'", "x".repeat(100_000));
    let err = db.prepare(&long).all().unwrap_err();
    assert!(
        matches!(err, Error::LimitExceeded { limit: 100_000, .. }),
        "{err:?}"
    );
    let err = db.prepare("SELECT ?1, ?2").bind([1]).all().unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
}

#[test]
fn d1_refusals_are_not_allowed_errors_and_change_nothing() {
    let db = db();
    for sql in [
        "ATTACH DATABASE ':memory:' AS other",
        "BEGIN",
        "SAVEPOINT s",
        "RELEASE s",
        "ROLLBACK",
        "CREATE TABLE _cf_KV (k TEXT)",
        "CREATE TABLE _CF_x (k TEXT)",
        "CREATE TEMP TABLE t (x)",
        "CREATE TEMP VIEW v AS SELECT 1",
        "PRAGMA journal_mode = delete",
        "PRAGMA page_size = 1024",
        "PRAGMA writable_schema = 1",
        "SELECT load_extension('x')",
    ] {
        let err = db.prepare(sql).all().unwrap_err();
        assert!(matches!(err, Error::NotAllowed(_)), "{sql}: {err:?}");
    }
    for sql in [
        "PRAGMA foreign_keys",
        "PRAGMA table_list",
        "PRAGMA table_info(parent)",
        "PRAGMA defer_foreign_keys = on",
        "PRAGMA foreign_key_check",
    ] {
        assert!(db.prepare(sql).all().is_ok(), "{sql} is on D1's allow-list");
    }
    assert_eq!(
        db.prepare("PRAGMA foreign_keys")
            .first_column("foreign_keys")
            .unwrap(),
        Some(json!(1))
    );
}

#[test]
fn a_file_database_is_wal_and_durable_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/app.sqlite");
    {
        let db = Database::open(&path).unwrap();
        db.exec("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2)")
            .unwrap();
    }
    let raw = rusqlite::Connection::open(&path).unwrap();
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let db = Database::open(&path).unwrap();
    assert_eq!(count(&db, "t"), 2);
    assert_eq!(db.path().as_deref(), Some(path.as_path()));
}
