//! The migration runner against wrangler's rules; the oracle is the schema SQLite reports.

use std::fs;

use d1vec::sql::migrate::{self, Migration};
use d1vec::{Database, Error};
use serde_json::Value;

fn names(db: &Database, kind: &str) -> Vec<String> {
    db.prepare(
        "SELECT name FROM sqlite_schema WHERE type = ?1 AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .bind([kind])
    .raw(false)
    .unwrap()
    .into_iter()
    .map(|r| r[0].as_str().unwrap().to_owned())
    .collect()
}

#[test]
fn bundled_migrations_build_thirty_tables_and_forty_indexes_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("fresh.sqlite")).unwrap();
    let applied = db.apply_migrations(&migrate::bundled()).unwrap();
    assert_eq!(applied.len(), 6); // 0001-0005 build the schema, 0006 seeds permissions
    let mut tables = names(&db, "table");
    tables.retain(|t| t != "d1_migrations");
    let mut expected: Vec<String> = d1vec::catalog::BUNDLED_TABLES
        .iter()
        .map(|t| t.name.to_owned())
        .collect();
    expected.sort();
    assert_eq!(tables, expected);
    let indexes = names(&db, "index");
    assert!(indexes.len() >= 40, "{} indexes", indexes.len());

    let schema_before = db
        .prepare("SELECT type, name, sql FROM sqlite_schema ORDER BY name")
        .raw(false)
        .unwrap();
    assert!(
        db.apply_migrations(&migrate::bundled()).unwrap().is_empty(),
        "re-apply is a no-op"
    );
    let schema_after = db
        .prepare("SELECT type, name, sql FROM sqlite_schema ORDER BY name")
        .raw(false)
        .unwrap();
    assert_eq!(schema_before, schema_after);

    let status = db.migration_status(&migrate::bundled()).unwrap();
    assert!(status.iter().all(|s| s.applied_at.is_some()));
    let recorded = db
        .prepare("SELECT id, name FROM d1_migrations ORDER BY id")
        .raw(false)
        .unwrap();
    assert_eq!(
        recorded[0],
        vec![Value::from(1), Value::from("0001_core.sql")]
    );
    assert_eq!(recorded.len(), 6);
}

#[test]
fn a_failing_user_migration_rolls_back_alone_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mig = dir.path().join("migrations");
    fs::create_dir_all(&mig).unwrap();
    fs::write(
        mig.join("0001_users.sql"),
        "CREATE TABLE users (id TEXT PRIMARY KEY);\n",
    )
    .unwrap();
    fs::write(
        mig.join("0002_broken.sql"),
        "CREATE TABLE posts (id TEXT PRIMARY KEY);\nINSERT INTO users VALUES ('a');\nINSERT INTO nope VALUES (1);\n",
    )
    .unwrap();
    fs::write(
        mig.join("0003_later.sql"),
        "CREATE TABLE later (id TEXT);\n",
    )
    .unwrap();
    let db = Database::open(dir.path().join("db.sqlite")).unwrap();
    let list = migrate::discover(&mig).unwrap();
    let err = db.apply_migrations(&list).unwrap_err();
    match &err {
        Error::Migration { name, .. } => assert_eq!(name, "0002_broken.sql"),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("nope"), "{err}");
    assert_eq!(names(&db, "table"), ["d1_migrations", "users"]);
    let users = db
        .prepare("SELECT count(*) AS n FROM users")
        .first_column("n")
        .unwrap();
    assert_eq!(
        users,
        Some(Value::from(0)),
        "the failed migration's insert is rolled back"
    );
    let status = db.migration_status(&list).unwrap();
    let applied: Vec<_> = status.iter().map(|s| s.applied_at.is_some()).collect();
    assert_eq!(applied, [true, false, false]);

    fs::write(
        mig.join("0002_broken.sql"),
        "CREATE TABLE posts (id TEXT PRIMARY KEY);\n",
    )
    .unwrap();
    let applied = db
        .apply_migrations(&migrate::discover(&mig).unwrap())
        .unwrap();
    assert_eq!(applied, ["0002_broken.sql", "0003_later.sql"]);
}

#[test]
fn migrations_run_under_d1_rules() {
    let db = Database::open_in_memory().unwrap();
    let bad = [Migration {
        name: "0001_tx.sql".into(),
        sql: "CREATE TABLE a (x);\nCREATE TABLE _cf_secret (x);".into(),
    }];
    let err = db.apply_migrations(&bad).unwrap_err();
    assert!(err.to_string().contains("_cf_"), "{err}");
    assert!(names(&db, "table").iter().all(|t| t != "a"));
}

#[test]
fn create_numbers_files_like_wrangler() {
    let dir = tempfile::tempdir().unwrap();
    let first = migrate::create(dir.path(), "create users").unwrap();
    assert_eq!(first.file_name().unwrap(), "0001_create_users.sql");
    let text = fs::read_to_string(&first).unwrap();
    assert!(
        text.starts_with("-- Migration number: 0001 \t "),
        "{text:?}"
    );
    fs::write(dir.path().join("0009_manual.sql"), "").unwrap();
    let next = migrate::create(dir.path(), "add posts").unwrap();
    assert_eq!(next.file_name().unwrap(), "0010_add_posts.sql");
    assert!(migrate::create(dir.path(), "a/b").is_err());
    let order: Vec<_> = migrate::discover(dir.path())
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(
        order,
        [
            "0001_create_users.sql",
            "0009_manual.sql",
            "0010_add_posts.sql"
        ]
    );
}
