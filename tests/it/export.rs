//! `sql::export`: the dump, executed by SQLite itself into a fresh database, must give back
//! the same schema entries and the same typed rows; and it must pass a D1-like authorizer.

use std::sync::{Arc, Mutex};

use d1vec::sql::export::{export_sql, ExportError, ExportOptions};
use proptest::prelude::*;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;
use rusqlite::Connection;

/// A cell with its storage class; reals compared by their bits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Cell {
    Null,
    Int(i64),
    Real(u64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl From<ValueRef<'_>> for Cell {
    fn from(v: ValueRef<'_>) -> Self {
        match v {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(i) => Cell::Int(i),
            ValueRef::Real(f) => Cell::Real(f.to_bits()),
            ValueRef::Text(t) => Cell::Text(t.to_vec()),
            ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
        }
    }
}

/// The rows of a query, typed.
fn query_cells(conn: &Connection, sql: &str) -> Vec<Vec<Cell>> {
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    let mut rows = stmt.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        out.push(
            (0..n)
                .map(|i| Cell::from(row.get_ref(i).unwrap()))
                .collect(),
        );
    }
    out
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Every row of a plain table, its rowid first when it has one, in a stable order.
fn table_rows(conn: &Connection, table: &str) -> Vec<Vec<Cell>> {
    let wr: i64 = conn
        .query_row(
            "SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .unwrap();
    let cols: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_xinfo(?1)")
        .unwrap()
        .query_map([table], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let rowid = ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|r| !cols.iter().any(|c| c.eq_ignore_ascii_case(r)));
    let sql = match (wr, rowid) {
        (0, Some(r)) => format!("SELECT {r}, * FROM {} ORDER BY {r}", quote(table)),
        _ => format!("SELECT * FROM {} ORDER BY 1", quote(table)),
    };
    query_cells(conn, &sql)
}

/// The user tables (not `sqlite_`, `_cf_` or virtual-table shadow tables).
fn user_tables(conn: &Connection) -> Vec<String> {
    conn.prepare(
        "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' \
         AND lower(name) NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         AND lower(name) NOT LIKE '\\_cf\\_%' ESCAPE '\\' ORDER BY name",
    )
    .unwrap()
    .query_map([], |r| r.get(0))
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The `sqlite_schema` entries (type, name, tbl_name, sql), sorted, without `_cf_` ones and
/// without ANALYZE's statistics tables.
fn schema_entries(conn: &Connection) -> Vec<Vec<Cell>> {
    query_cells(
        conn,
        "SELECT type, name, tbl_name, sql FROM sqlite_schema \
         WHERE lower(name) NOT LIKE '\\_cf\\_%' ESCAPE '\\' \
         AND lower(tbl_name) NOT LIKE '\\_cf\\_%' ESCAPE '\\' \
         AND name NOT LIKE 'sqlite\\_stat%' ESCAPE '\\' ORDER BY 1, 2, 3, 4",
    )
}

fn export(conn: &Connection, opts: &ExportOptions) -> (String, u64) {
    let mut out = Vec::new();
    let rows = export_sql(conn, opts, &mut out).unwrap();
    (String::from_utf8(out).unwrap(), rows)
}

/// D1's PRAGMA allow-list (vectorize.md 12.2). FTS5 itself reads `page_size` when it creates
/// a table, which D1 allows.
fn d1_allows_pragma(name: &str, value: Option<&str>) -> bool {
    let name = name.to_ascii_lowercase();
    match name.as_str() {
        "data_version" | "page_size" => value.is_none(),
        "table_list" | "table_info" | "table_xinfo" | "foreign_key_check" | "foreign_key_list"
        | "index_info" | "index_list" | "index_xinfo" | "quick_check" | "optimize" => true,
        "case_sensitive_like"
        | "foreign_keys"
        | "defer_foreign_keys"
        | "ignore_check_constraints"
        | "legacy_alter_table"
        | "recursive_triggers"
        | "reverse_unordered_selects" => true,
        _ => false,
    }
}

/// D1's rules (vectorize.md 12.2), as an authorizer: no transaction control, no ATTACH,
/// no TEMP objects, no `_cf_` names, PRAGMAs from the allow-list. Refusals are recorded.
fn d1_authorizer(conn: &mut Connection) -> Arc<Mutex<Vec<String>>> {
    let refused = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&refused);
    let hook = move |ctx: AuthContext<'_>| {
        let cf = |name: &str| name.to_ascii_lowercase().starts_with("_cf_");
        let bad = match ctx.action {
            AuthAction::Transaction { .. }
            | AuthAction::Savepoint { .. }
            | AuthAction::Attach { .. }
            | AuthAction::Detach { .. }
            | AuthAction::CreateTempIndex { .. }
            | AuthAction::CreateTempTable { .. }
            | AuthAction::CreateTempTrigger { .. }
            | AuthAction::CreateTempView { .. } => true,
            AuthAction::Pragma {
                pragma_name,
                pragma_value,
            } => !d1_allows_pragma(pragma_name, pragma_value),
            AuthAction::CreateTable { table_name }
            | AuthAction::Insert { table_name }
            | AuthAction::Read { table_name, .. }
            | AuthAction::Update { table_name, .. }
            | AuthAction::Delete { table_name } => cf(table_name),
            AuthAction::CreateIndex {
                index_name,
                table_name,
            } => cf(index_name) || cf(table_name),
            AuthAction::CreateTrigger {
                trigger_name,
                table_name,
            } => cf(trigger_name) || cf(table_name),
            AuthAction::CreateView { view_name } => cf(view_name),
            AuthAction::CreateVtable { table_name, .. } => cf(table_name),
            _ => false,
        };
        if bad {
            log.lock().unwrap().push(format!("{:?}", ctx.action));
            Authorization::Deny
        } else {
            Authorization::Allow
        }
    };
    conn.authorizer(Some(hook)).unwrap();
    refused
}

/// Runs the dump the way D1 does: in one transaction, foreign keys on, D1's authorizer on.
fn import_into(conn: &mut Connection, dump: &str) {
    conn.execute_batch("PRAGMA foreign_keys = ON; BEGIN")
        .unwrap();
    let refused = d1_authorizer(conn);
    let result = conn.execute_batch(dump);
    conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>)
        .unwrap();
    assert_eq!(
        *refused.lock().unwrap(),
        Vec::<String>::new(),
        "D1 would refuse"
    );
    result.unwrap();
    conn.execute_batch("COMMIT").unwrap();
}

fn import(dump: &str) -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    import_into(&mut conn, dump);
    conn
}

/// Asserts that `copy` holds the same schema entries and the same rows as `src`.
#[track_caller]
fn check_same(src: &Connection, copy: &Connection) {
    assert_eq!(schema_entries(src), schema_entries(copy), "schema differs");
    let tables = user_tables(src);
    assert_eq!(tables, user_tables(copy));
    for table in &tables {
        assert_eq!(
            table_rows(src, table),
            table_rows(copy, table),
            "rows of {table} differ"
        );
    }
}

/// Transaction words wrangler and D1 object to, and `_cf_`, must not appear at all.
#[track_caller]
fn check_d1_text(dump: &str) {
    let upper = dump.to_ascii_uppercase();
    for word in [
        "TRANSACTION",
        "COMMIT",
        "SAVEPOINT",
        "RELEASE",
        "ROLLBACK",
        "ATTACH",
        "_CF_",
    ] {
        assert!(!upper.contains(word), "dump contains {word}:\n{dump}");
    }
    let pragmas: Vec<&str> = dump
        .lines()
        .filter(|l| l.trim_start().to_ascii_uppercase().starts_with("PRAGMA"))
        .collect();
    assert_eq!(pragmas, ["PRAGMA defer_foreign_keys=TRUE;"]);
    assert!(dump.starts_with("PRAGMA defer_foreign_keys=TRUE;\n"));
}

const FLOATS: &[f64] = &[
    0.1,
    0.30000000000000004,
    1.0,
    -1.5,
    1e16,
    123_456_789_012_345_680.0,
    1e300,
    -1e-300,
    f64::MAX,
    f64::MIN,
    f64::MIN_POSITIVE,
    2.225_073_858_507_201e-308, // largest subnormal
    5e-324,                     // smallest subnormal
    -0.0,
    0.0,
    f64::INFINITY,
    f64::NEG_INFINITY,
    std::f64::consts::PI,
];

/// A database with every feature the export has to carry.
fn fixture() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(
        r#"
        PRAGMA foreign_keys = ON;
        -- child is created first and refers forward to parent
        CREATE TABLE child (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            parent_id INTEGER NOT NULL REFERENCES parent(id),
            note TEXT
        );
        CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, kids INTEGER NOT NULL DEFAULT 0);
        CREATE INDEX child_by_parent ON child(parent_id, note);
        CREATE TRIGGER count_kids AFTER INSERT ON child BEGIN
            UPDATE parent SET kids = kids + 1 WHERE id = NEW.parent_id;
        END;
        CREATE VIEW parent_kids AS SELECT p.name, count(c.id) AS n FROM parent p LEFT JOIN child c ON c.parent_id = p.id GROUP BY p.id;
        CREATE TABLE vals (id INTEGER PRIMARY KEY, v, note TEXT);
        CREATE TABLE reals (id INTEGER PRIMARY KEY, r REAL, n NUMERIC, i INTEGER, t TEXT);
        CREATE TABLE plain (a, b);
        CREATE TABLE "we""ird tbl" ("col ""q""" TEXT, "rowid" INTEGER, "select" BLOB);
        CREATE TABLE kv (k TEXT PRIMARY KEY, v ANY) STRICT, WITHOUT ROWID;
        CREATE TABLE gen (a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL, c TEXT GENERATED ALWAYS AS (a || 'x') STORED);
        CREATE TABLE multi_pk (a TEXT, b INTEGER, c, PRIMARY KEY (a, b));
        CREATE TABLE desc_pk (x INTEGER PRIMARY KEY DESC, y);
        CREATE TABLE IF NOT EXISTS "d1_migrations"(
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            name       TEXT UNIQUE,
            applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL
        );
        CREATE TABLE _cf_KV (key TEXT PRIMARY KEY, value BLOB);
        INSERT INTO _cf_KV VALUES ('secret', X'00');

        INSERT INTO parent (id, name) VALUES (1, 'one'), (2, 'it''s two'), (3, 'three');
        INSERT INTO child (parent_id, note) VALUES (1, 'a'), (2, NULL), (2, ''), (3, 'x');
        INSERT INTO child (id, parent_id, note) VALUES (100, 1, 'jump');
        DELETE FROM child WHERE id = 2;
        INSERT INTO plain VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd');
        DELETE FROM plain WHERE a IN (1, 3);
        INSERT INTO plain VALUES (5, 'e');
        INSERT INTO "we""ird tbl" VALUES ('q''uote"d', 7, X'01'), (NULL, NULL, NULL);
        INSERT INTO kv VALUES ('int', 1), ('real', 1.5), ('text', '1'), ('blob', X'31'), ('null', NULL);
        INSERT INTO gen (a) VALUES (1), (2), (NULL);
        INSERT INTO multi_pk VALUES ('b', 2, 'x'), ('a', 1, 'y'), ('a', 2, NULL);
        INSERT INTO desc_pk VALUES (10, 'ten'), (5, 'five');
        DELETE FROM desc_pk WHERE x = 5;
        INSERT INTO desc_pk VALUES (1, 'one');
        INSERT INTO d1_migrations (name) VALUES ('0001_init.sql'), ('0002_more.sql');
        ANALYZE;
        "#,
    )
    .unwrap();

    let texts: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"it's \"quoted\"".to_vec(),
        b"line1\nline2\ttab".to_vec(),
        b"crlf\r\n".to_vec(),
        b"nul\0inside".to_vec(),
        b"\x01\x02\x1b\x1f\x7f".to_vec(),
        "unicode: \u{e9}\u{4e2d}\u{1f600} \u{2028} \u{feff}"
            .as_bytes()
            .to_vec(),
        b"BEGIN TRANSACTION; COMMIT;".to_vec(),
        b"-- not a comment; /* nor this */ ; END;".to_vec(),
        b"\xff\xfe not utf-8".to_vec(),
    ];
    let mut insert = conn
        .prepare("INSERT INTO vals (v, note) VALUES (?1, ?2)")
        .unwrap();
    for t in &texts {
        // bind as TEXT even when not valid UTF-8
        conn.execute(
            "INSERT INTO vals (v, note) VALUES (CAST(?1 AS TEXT), 'text')",
            [t],
        )
        .unwrap();
    }
    insert
        .execute(rusqlite::params![rusqlite::types::Null, "null"])
        .unwrap();
    for i in [i64::MIN, i64::MAX, 0, -1, 1 << 53, (1 << 53) + 1] {
        insert.execute(rusqlite::params![i, "int"]).unwrap();
    }
    for f in FLOATS {
        insert.execute(rusqlite::params![f, "real"]).unwrap();
    }
    for b in [vec![], vec![0u8], vec![0, 255, 39, 34], vec![7; 300]] {
        insert.execute(rusqlite::params![b, "blob"]).unwrap();
    }
    drop(insert);
    let mut insert = conn
        .prepare("INSERT INTO reals (r, n, i, t) VALUES (?1, ?1, ?1, ?1)")
        .unwrap();
    for f in FLOATS {
        insert.execute([f]).unwrap();
    }
    insert.execute(["12"]).unwrap();
    insert.execute(["1.5e3"]).unwrap();
    insert.execute(["abc"]).unwrap();
    drop(insert);
    conn
}

#[test]
fn full_export_round_trips() {
    let src = fixture();
    let (dump, rows) = export(&src, &ExportOptions::default());
    check_d1_text(&dump);
    let copy = import(&dump);
    check_same(&src, &copy);

    let expected: i64 = user_tables(&src)
        .iter()
        .map(|t| {
            src.query_row(&format!("SELECT count(*) FROM {}", quote(t)), [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
        })
        .sum();
    assert_eq!(rows, u64::try_from(expected).unwrap());
    assert_eq!(
        dump.matches("\nINSERT INTO ").count(),
        usize::try_from(expected).unwrap()
    );

    // The view works on the copy as on the source.
    let view = "SELECT * FROM parent_kids ORDER BY name";
    assert_eq!(query_cells(&src, view), query_cells(&copy, view));
    // No foreign-key violations were let through.
    assert!(query_cells(&copy, "PRAGMA foreign_key_check").is_empty());
    // The trigger is live on the copy.
    copy.execute("INSERT INTO child (parent_id) VALUES (3)", [])
        .unwrap();
    let kids: i64 = copy
        .query_row("SELECT kids FROM parent WHERE id = 3", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kids, 2);
}

#[test]
fn autoincrement_counter_follows_the_largest_id() {
    // sqlite_sequence is not written: the copy's counter is the largest id present.
    let src = fixture();
    src.execute_batch(
        "INSERT INTO child (parent_id) VALUES (1); DELETE FROM child WHERE id = 101;",
    )
    .unwrap();
    let (dump, _) = export(&src, &ExportOptions::default());
    assert!(!dump.contains("sqlite_sequence"));
    let copy = import(&dump);
    let seq = |c: &Connection| -> i64 {
        c.query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'child'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(seq(&src), 101);
    assert_eq!(seq(&copy), 100);
    let max: i64 = copy
        .query_row("SELECT max(id) FROM child", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seq(&copy), max);
}

#[test]
fn tables_come_before_rows_and_rows_before_triggers() {
    let src = fixture();
    let (dump, _) = export(&src, &ExportOptions::default());
    let last_create_table = dump.rfind("\nCREATE TABLE").unwrap();
    let first_insert = dump.find("\nINSERT INTO").unwrap();
    let last_insert = dump.rfind("\nINSERT INTO").unwrap();
    let first_other = ["\nCREATE INDEX", "\nCREATE TRIGGER", "\nCREATE VIEW"]
        .iter()
        .map(|k| dump.find(k).unwrap())
        .min()
        .unwrap();
    assert!(last_create_table < first_insert);
    assert!(last_insert < first_other);
}

#[test]
fn real_edge_values_keep_their_bits() {
    let src = fixture();
    let (dump, _) = export(&src, &ExportOptions::default());
    let copy = import(&dump);
    let sql = "SELECT v FROM vals WHERE note = 'real' ORDER BY id";
    let got = query_cells(&copy, sql);
    let want: Vec<Vec<Cell>> = FLOATS
        .iter()
        .map(|f| vec![Cell::Real(f.to_bits())])
        .collect();
    // -0.0 keeps its sign in a column without affinity.
    assert_eq!(got, want);
    assert_eq!(query_cells(&src, sql), want);
}

#[test]
fn no_data_writes_schema_only() {
    let src = fixture();
    let (dump, rows) = export(
        &src,
        &ExportOptions {
            no_data: true,
            ..ExportOptions::default()
        },
    );
    check_d1_text(&dump);
    assert_eq!(rows, 0);
    assert!(!dump.lines().any(|l| l.starts_with("INSERT")));
    let copy = import(&dump);
    assert_eq!(schema_entries(&src), schema_entries(&copy));
    for table in user_tables(&copy) {
        assert!(table_rows(&copy, &table).is_empty(), "{table} has rows");
    }
}

#[test]
fn no_schema_writes_data_that_fills_an_existing_schema() {
    let src = fixture();
    let schema_only = ExportOptions {
        no_data: true,
        ..ExportOptions::default()
    };
    let data_only = ExportOptions {
        no_schema: true,
        ..ExportOptions::default()
    };
    let (schema, _) = export(&src, &schema_only);
    let (data, rows) = export(&src, &data_only);
    check_d1_text(&data);
    assert!(rows > 0);
    assert!(!data.contains("CREATE "));
    // Triggers exist in the target here, so load the data before them, as a user would by
    // applying migrations that create tables first: split the schema dump at its first
    // non-table statement.
    let cut = ["\nCREATE INDEX", "\nCREATE TRIGGER", "\nCREATE VIEW"]
        .iter()
        .filter_map(|k| schema.find(k))
        .min()
        .unwrap();
    let mut copy = import(&schema[..=cut]);
    import_into(&mut copy, &data);
    import_into(&mut copy, &schema[cut + 1..]);
    check_same(&src, &copy);
}

#[test]
fn tables_option_limits_the_export() {
    let src = fixture();
    let (dump, rows) = export(
        &src,
        &ExportOptions {
            tables: vec!["PARENT".into(), "plain".into()],
            ..ExportOptions::default()
        },
    );
    check_d1_text(&dump);
    assert_eq!(rows, 3 + 3);
    let copy = import(&dump);
    assert_eq!(user_tables(&copy), ["parent", "plain"]);
    for table in ["parent", "plain"] {
        assert_eq!(table_rows(&src, table), table_rows(&copy, table));
    }
    // parent's own objects only: its autoindex, no child index/trigger, no view.
    let names: Vec<Vec<Cell>> = query_cells(&copy, "SELECT name FROM sqlite_schema ORDER BY name");
    let names: Vec<&Cell> = names.iter().map(|r| &r[0]).collect();
    assert_eq!(
        names,
        [
            &Cell::Text(b"parent".to_vec()),
            &Cell::Text(b"plain".to_vec()),
            &Cell::Text(b"sqlite_autoindex_parent_1".to_vec()),
        ]
    );

    // The trigger on child comes with child.
    let (dump, _) = export(
        &src,
        &ExportOptions {
            tables: vec!["child".into(), "parent".into(), "parent_kids".into()],
            ..ExportOptions::default()
        },
    );
    assert!(dump.contains("CREATE TRIGGER count_kids"));
    assert!(dump.contains("CREATE INDEX child_by_parent"));
    assert!(dump.contains("CREATE VIEW parent_kids"));
}

#[test]
fn tables_option_refuses_unknown_and_reserved_names() {
    let src = fixture();
    for name in [
        "nope",
        "_cf_KV",
        "sqlite_sequence",
        "sqlite_stat1",
        "sqlite_schema",
    ] {
        let mut out = Vec::new();
        let err = export_sql(
            &src,
            &ExportOptions {
                tables: vec!["parent".into(), name.into()],
                ..ExportOptions::default()
            },
            &mut out,
        )
        .unwrap_err();
        assert!(
            matches!(&err, ExportError::NoSuchTable(n) if n == name),
            "{name}: {err:?}"
        );
        assert_eq!(err.to_string(), format!("no such table: {name}"));
        assert!(out.is_empty(), "nothing is written before the check");
    }
}

#[test]
fn virtual_tables_are_rebuilt_through_the_module() {
    let src = Connection::open_in_memory().unwrap();
    src.execute_batch(
        r#"
        CREATE VIRTUAL TABLE docs USING fts5(title, body);
        INSERT INTO docs (rowid, title, body) VALUES
            (1, 'alpha', 'the quick brown fox'),
            (5, 'beta', 'jumps over the lazy dog'),
            (9, 'gamma', 'fox and dog''s friend');
        DELETE FROM docs WHERE rowid = 5;
        CREATE TABLE notes (body TEXT);
        INSERT INTO notes VALUES ('red apple'), ('green pear'), ('red cherry');
        DELETE FROM notes WHERE body = 'red apple';
        INSERT INTO notes VALUES ('yellow apple');
        CREATE VIRTUAL TABLE notes_fts USING fts5(body, content='notes');
        INSERT INTO notes_fts (notes_fts) VALUES ('rebuild');
        CREATE VIRTUAL TABLE bare USING fts5(x, content='');
        INSERT INTO bare (rowid, x) VALUES (1, 'lost words');
        CREATE VIRTUAL TABLE boxes USING rtree(id, x0, x1, y0, y1, +label);
        INSERT INTO boxes VALUES (1, 0, 1, 0, 1, 'unit'), (7, -5.5, 5.5, 2, 3, NULL);
        "#,
    )
    .unwrap();
    let (dump, rows) = export(&src, &ExportOptions::default());
    check_d1_text(&dump);
    for shadow in [
        "docs_data",
        "docs_idx",
        "docs_content",
        "docs_config",
        "boxes_node",
    ] {
        assert!(!dump.contains(shadow), "{shadow} exported:\n{dump}");
    }
    assert!(!dump.contains("INSERT INTO \"bare\""));
    // docs 2 + notes 3 + notes_fts 3 + boxes 2
    assert_eq!(rows, 10);
    let copy = import(&dump);
    // Shadow tables are recreated by the modules with the same definitions.
    assert_eq!(schema_entries(&src), schema_entries(&copy));
    for sql in [
        "SELECT rowid, title, body FROM docs ORDER BY rowid",
        "SELECT rowid, title FROM docs WHERE docs MATCH 'fox' ORDER BY rowid",
        "SELECT rowid, body FROM notes ORDER BY rowid",
        "SELECT rowid, body FROM notes_fts WHERE notes_fts MATCH 'apple' ORDER BY rowid",
        "SELECT rowid, body FROM notes_fts WHERE notes_fts MATCH 'red' ORDER BY rowid",
        "SELECT * FROM boxes ORDER BY id",
        "SELECT id FROM boxes WHERE x0 <= 0 AND x1 >= 0.5 ORDER BY id",
    ] {
        assert_eq!(query_cells(&src, sql), query_cells(&copy, sql), "{sql}");
    }
    // The index agrees with its content after the import.
    let check = "INSERT INTO notes_fts (notes_fts) VALUES ('integrity-check')";
    copy.execute(check, []).unwrap();
    copy.execute("INSERT INTO docs (docs) VALUES ('integrity-check')", [])
        .unwrap();
}

/// A value of any storage class, with awkward texts more likely than `any::<String>()` gives.
fn value_strategy() -> impl Strategy<Value = rusqlite::types::Value> {
    use rusqlite::types::Value;
    prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Integer),
        prop_oneof![
            any::<f64>(),
            prop::num::f64::NORMAL
                | prop::num::f64::SUBNORMAL
                | prop::num::f64::ZERO
                | prop::num::f64::POSITIVE
                | prop::num::f64::NEGATIVE,
            Just(-0.0),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
        ]
        .prop_filter("SQLite stores NaN as NULL", |f| !f.is_nan())
        .prop_map(Value::Real),
        any::<String>().prop_map(Value::Text),
        "[a-z' \"\\r\\n\\t\\x00;\\-/*]{0,12}".prop_map(Value::Text),
        Just(Value::Text("BEGIN TRANSACTION;".into())),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(Value::Blob),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_rows_round_trip(
        rows in prop::collection::vec(
            (value_strategy(), value_strategy(), value_strategy()),
            0..16,
        )
    ) {
        let src = Connection::open_in_memory().unwrap();
        src.execute_batch("CREATE TABLE t (a, b, c)").unwrap();
        for (a, b, c) in &rows {
            src.execute("INSERT INTO t VALUES (?1, ?2, ?3)", rusqlite::params![a, b, c])
                .unwrap();
        }
        let (dump, written) = export(&src, &ExportOptions::default());
        prop_assert_eq!(written, rows.len() as u64);
        prop_assert!(!dump.contains("BEGIN TRANSACTION"));
        let copy = import(&dump);
        prop_assert_eq!(table_rows(&src, "t"), table_rows(&copy, "t"));
    }
}
