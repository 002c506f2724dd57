//! `d1vec d1 export`: a database written as SQL text that `wrangler d1 execute --file` (and hosted
//! D1's import) accepts, in the shape `wrangler d1 export` produces.
//!
//! # Layout of the output
//!
//! 1. `PRAGMA defer_foreign_keys=TRUE;` (on D1's PRAGMA allow-list), so rows may arrive in any
//!    order with respect to their foreign keys; violations still fail at the end of the import.
//! 2. Every `CREATE TABLE` / `CREATE VIRTUAL TABLE`, verbatim from `sqlite_schema.sql`, in
//!    `sqlite_schema` order.
//! 3. The rows of every table as `INSERT INTO "t" ("c1","c2") VALUES(…);`, one statement a row.
//! 4. Indexes, views and triggers, verbatim, in `sqlite_schema` order (triggers last so that
//!    they do not fire while the rows are loaded; indexes after the data is cheaper to build).
//!
//! All tables are created before any row is inserted. `wrangler d1 export` interleaves
//! "create table A, insert A, create table B", which fails on import with
//! `no such table: main.B` when A has a foreign key to B (workers-sdk issue 5683): SQLite
//! needs the parent table to exist when it prepares an `INSERT` into the child.
//!
//! There is no `BEGIN`/`COMMIT`/`SAVEPOINT` (D1 wraps the import in a transaction itself and
//! refuses explicit ones), no other PRAGMA, no TEMP object, and nothing named `_cf_…`.
//!
//! # What is exported
//!
//! - Tables, views, indexes and triggers of the `main` schema, except SQLite's own
//!   (`sqlite_…`: `sqlite_sequence`, `sqlite_stat1`, automatic indexes) and D1's reserved
//!   `_cf_…` names. The `d1_migrations` table is kept, schema and rows, so the applied
//!   migrations carry over.
//! - Rowids: a table's rows keep their rowids. An `INTEGER PRIMARY KEY` column carries it;
//!   a rowid table without one gets an extra `rowid` (or `_rowid_`, or `oid`, whichever is
//!   not a column name) in its `INSERT`s, so that external-content FTS5 indexes keyed on the
//!   rowid stay valid. (If all three names are columns, the rowids are renumbered.)
//! - Generated columns are not inserted; SQLite recomputes them.
//! - `AUTOINCREMENT` counters (`sqlite_sequence`) are not written: whether hosted D1 lets an
//!   import write `sqlite_sequence` is not documented, and one refused statement would fail
//!   the whole import. Inserting rows with explicit ids raises each counter to the largest
//!   id, so the only difference is that ids of rows deleted at the top end may be reused.
//! - Virtual tables: the `CREATE VIRTUAL TABLE` is exported; their shadow tables (FTS5
//!   `_data`, `_idx`, `_content`, `_docsize`, `_config`; FTS3/4 `_segments`, `_segdir`,
//!   `_content`, `_docsize`, `_stat`; R*Tree `_node`, `_parent`, `_rowid`) are not, because
//!   creating the virtual table creates them. Rows are re-inserted through the virtual table:
//!   FTS3/4/5 tables with their rowid and their columns (for an external-content table this
//!   rebuilds the index from the content table's rows), R*Tree tables with their columns.
//!   Contentless FTS tables (`content=''`) have no readable rows and other modules are not
//!   known; both are exported as schema only.
//!
//! # Values
//!
//! Every value reads back as the same value with the same storage class:
//! - `NULL`; integers in decimal (`i64::MIN` included: SQLite folds `-9223372036854775808`).
//! - Reals in the shortest decimal form that parses back to the same `f64`, always with a
//!   `.` or an exponent so that SQLite reads a REAL; infinities as `9e999` / `-9e999`.
//!   SQLite never stores NaN. `-0.0` is written as `-0.0`; whether the sign survives depends
//!   on SQLite's storage (a REAL-affinity column stores it as integer 0), as in the source.
//! - Text as `'…'` with `''` for a quote. Text with a control character other than tab and
//!   newline (NUL and carriage return included), text that is not valid UTF-8, and text
//!   containing `BEGIN TRANSACTION` or `COMMIT;` (which older wrangler versions look for
//!   without regard to quoting) is written as `CAST(X'…' AS TEXT)`, exact for a UTF-8
//!   database such as D1.
//! - Blobs as `X'…'`.
//!
//! Identifiers are always double-quoted with `""` for a quote. The schema text itself is
//! copied verbatim from `sqlite_schema`; a string literal *inside* it that contains
//! `BEGIN TRANSACTION` would still trip an old wrangler.
//!
//! # Limits
//!
//! - One `INSERT` a row, never split: a row whose statement exceeds hosted D1's 100 KB
//!   statement limit is refused there, as it is with `wrangler d1 export`'s own output.
//! - With [`ExportOptions::tables`], rows referring to a table that is not exported need that
//!   table (and the referenced rows) in the target, or the import fails on its foreign keys.
//!
//! The export reads inside one read transaction when the connection has none open, so the
//! output is a consistent snapshot.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{BufWriter, Write};

use rusqlite::types::ValueRef;
use rusqlite::Connection;

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Leave out the data (schema only). Default false.
    pub no_data: bool,
    /// Leave out the schema (data only). Default false.
    pub no_schema: bool,
    /// Only these tables (all user tables when empty). Names are matched like SQLite matches
    /// identifiers (ASCII case-insensitive). A view may be named too; it is then exported as
    /// schema. With a list, only the listed tables' indexes and triggers are exported, and
    /// views only when listed.
    pub tables: Vec<String>,
}

/// Export errors.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the database failed.
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    /// Writing the output failed.
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    /// A table named in [`ExportOptions::tables`] does not exist or cannot be exported
    /// (SQLite's own tables, `_cf_` tables, virtual-table shadow tables).
    #[error("no such table: {0}")]
    NoSuchTable(String),
}

/// Writes the database reachable through `conn` (its `main` schema) as SQL text that
/// `wrangler d1 execute --file` accepts; see the [module documentation](self) for the layout
/// and what is left out. Returns the number of rows written.
///
/// # Errors
/// [`ExportError::NoSuchTable`] for a name in `opts.tables` that is not an exportable table
/// or view (checked before anything is written), [`ExportError::Sql`] when reading fails and
/// [`ExportError::Io`] when writing fails.
pub fn export_sql(
    conn: &Connection,
    opts: &ExportOptions,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    // A read transaction for a consistent snapshot; rolled back on drop (nothing is written).
    let snapshot = if conn.is_autocommit() {
        Some(conn.unchecked_transaction()?)
    } else {
        None
    };

    let objects = read_schema(conn)?;
    let selected = select_objects(&objects, &opts.tables)?;

    let mut w = BufWriter::new(out);
    w.write_all(b"PRAGMA defer_foreign_keys=TRUE;\n")?;

    let tables: Vec<&SchemaObject> = objects
        .iter()
        .filter(|o| o.kind == Kind::Table && selected.contains(&o.name.to_ascii_lowercase()))
        .collect();

    if !opts.no_schema {
        for table in &tables {
            write_statement(&mut w, &table.sql)?;
        }
    }

    let mut rows = 0u64;
    if !opts.no_data {
        for table in &tables {
            rows += write_rows(conn, table, &mut w)?;
        }
    }

    if !opts.no_schema {
        for object in &objects {
            let wanted = match object.kind {
                Kind::Table | Kind::Skipped => false,
                Kind::View => selected.contains(&object.name.to_ascii_lowercase()),
                Kind::Index | Kind::Trigger => {
                    selected.contains(&object.tbl_name.to_ascii_lowercase())
                }
            };
            if wanted {
                write_statement(&mut w, &object.sql)?;
            }
        }
    }

    w.flush()?;
    if let Some(tx) = snapshot {
        tx.commit()?;
    }
    Ok(rows)
}

/// The kind of a `sqlite_schema` entry, as far as the export cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An exportable table (plain, `WITHOUT ROWID` or virtual).
    Table,
    /// An exportable view.
    View,
    /// An index with SQL text (automatic indexes have none and are [`Kind::Skipped`]).
    Index,
    /// A trigger.
    Trigger,
    /// Never exported: SQLite's own objects, `_cf_` names, shadow tables, automatic indexes.
    Skipped,
}

/// One `sqlite_schema` entry.
#[derive(Debug)]
struct SchemaObject {
    kind: Kind,
    name: String,
    tbl_name: String,
    sql: String,
    /// For tables: how to read and re-insert the rows.
    table_kind: TableKind,
}

/// How a table stores its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TableKind {
    /// A rowid table.
    Rowid,
    /// A `WITHOUT ROWID` table.
    WithoutRowid,
    /// A virtual table using this module (lower-cased).
    Virtual(String),
}

/// True for names SQLite reserves (`sqlite_…`), D1 reserves (`_cf_…`) or d1vec keeps for its
/// vector indexes (`d1vec_…`, which hosted D1 has no use for: `vectorize export` moves
/// vectors), case-insensitively.
fn is_reserved(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("sqlite_") || lower.starts_with("_cf_") || lower.starts_with("d1vec_")
}

/// Shadow-table suffixes of the virtual-table modules D1 (or SQLite's FTS3/4) knows.
fn shadow_suffixes(module: &str) -> &'static [&'static str] {
    match module {
        "fts5" => &["data", "idx", "content", "docsize", "config"],
        "fts3" | "fts4" => &["content", "docsize", "segdir", "segments", "stat"],
        "rtree" | "rtree_i32" | "geopoly" => &["node", "parent", "rowid"],
        _ => &[],
    }
}

/// The module name of a `CREATE VIRTUAL TABLE … USING module(…)` statement, lower-cased.
fn virtual_module(sql: &str) -> Option<String> {
    let lower = sql.to_ascii_lowercase();
    let mut search = 0;
    while let Some(found) = lower[search..].find("using") {
        let at = search + found;
        let end = at + "using".len();
        let before_ok = lower[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_whitespace() || c == '"' || c == '`' || c == ']');
        let after_ok = lower[end..].chars().next().is_some_and(char::is_whitespace);
        if before_ok && after_ok {
            let rest = lower[end..].trim_start();
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                return Some(name);
            }
        }
        search = end;
    }
    None
}

/// True when an FTS table's arguments say `content=''` (a contentless table).
fn is_contentless(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    let mut search = 0;
    while let Some(found) = lower[search..].find("content") {
        let at = search + found;
        let end = at + "content".len();
        search = end;
        let before = lower[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = lower[end..].trim_start();
        let Some(value) = rest.strip_prefix('=') else {
            continue;
        };
        let value = value.trim_start();
        if value.starts_with("''") || value.starts_with("\"\"") {
            return true;
        }
    }
    false
}

/// Reads `sqlite_schema` in rowid order and classifies every entry.
fn read_schema(conn: &Connection) -> Result<Vec<SchemaObject>, ExportError> {
    let mut raw: Vec<(String, String, String, Option<String>)> = Vec::new();
    {
        let mut stmt = conn
            .prepare("SELECT type, name, tbl_name, sql FROM main.sqlite_schema ORDER BY rowid")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            raw.push((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?));
        }
    }

    // `PRAGMA table_list` connects every virtual table first, so it marks shadow tables and
    // knows which tables are WITHOUT ROWID.
    let mut shadow: HashSet<String> = HashSet::new();
    let mut without_rowid: HashSet<String> = HashSet::new();
    {
        let mut stmt = conn.prepare("PRAGMA main.table_list")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let name: String = row.get("name")?;
            let kind: String = row.get("type")?;
            let wr: i64 = row.get("wr")?;
            if kind == "shadow" {
                shadow.insert(name.to_ascii_lowercase());
            }
            if wr != 0 {
                without_rowid.insert(name.to_ascii_lowercase());
            }
        }
    }

    // Shadow tables by name too, in case a module could not be connected.
    let mut modules: Vec<(String, String)> = Vec::new();
    for (kind, name, _, sql) in &raw {
        if kind == "table" {
            if let Some(module) = sql.as_deref().and_then(virtual_module) {
                if sql.as_deref().is_some_and(|s| {
                    s.trim_start()
                        .to_ascii_lowercase()
                        .starts_with("create virtual")
                }) {
                    for suffix in shadow_suffixes(&module) {
                        shadow.insert(format!("{name}_{suffix}").to_ascii_lowercase());
                    }
                    modules.push((name.to_ascii_lowercase(), module));
                }
            }
        }
    }

    let mut objects = Vec::with_capacity(raw.len());
    for (kind, name, tbl_name, sql) in raw {
        let lower = name.to_ascii_lowercase();
        let reserved = is_reserved(&name) || is_reserved(&tbl_name);
        let table_kind = match modules.iter().find(|(n, _)| *n == lower) {
            Some((_, module)) => TableKind::Virtual(module.clone()),
            None if without_rowid.contains(&lower) => TableKind::WithoutRowid,
            None => TableKind::Rowid,
        };
        let kind = match (kind.as_str(), &sql) {
            (_, None) => Kind::Skipped,
            _ if reserved => Kind::Skipped,
            ("table", Some(_)) if shadow.contains(&lower) => Kind::Skipped,
            ("table", Some(_)) => Kind::Table,
            ("view", Some(_)) => Kind::View,
            ("index", Some(_)) => Kind::Index,
            ("trigger", Some(_)) => Kind::Trigger,
            _ => Kind::Skipped,
        };
        objects.push(SchemaObject {
            kind,
            name,
            tbl_name,
            sql: sql.unwrap_or_default(),
            table_kind,
        });
    }
    Ok(objects)
}

/// The lower-cased names of the tables and views to export.
fn select_objects(
    objects: &[SchemaObject],
    wanted: &[String],
) -> Result<HashSet<String>, ExportError> {
    let exportable: HashSet<String> = objects
        .iter()
        .filter(|o| matches!(o.kind, Kind::Table | Kind::View))
        .map(|o| o.name.to_ascii_lowercase())
        .collect();
    if wanted.is_empty() {
        return Ok(exportable);
    }
    let mut selected = HashSet::new();
    for name in wanted {
        let lower = name.to_ascii_lowercase();
        if !exportable.contains(&lower) {
            return Err(ExportError::NoSuchTable(name.clone()));
        }
        selected.insert(lower);
    }
    Ok(selected)
}

/// Writes one schema statement followed by `;` and a newline.
fn write_statement(w: &mut impl Write, sql: &str) -> std::io::Result<()> {
    w.write_all(sql.as_bytes())?;
    w.write_all(b";\n")
}

/// `name` as a double-quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One column of `PRAGMA table_xinfo`.
struct Column {
    name: String,
    /// 1-based position in the primary key, 0 when not part of it.
    pk: i64,
    /// 0 normal, 1 hidden (virtual tables), 2/3 generated.
    hidden: i64,
}

/// The columns of `table`, hidden and generated ones included.
fn columns(conn: &Connection, table: &str) -> Result<Vec<Column>, ExportError> {
    let mut stmt = conn.prepare("SELECT name, pk, hidden FROM pragma_table_xinfo(?1, 'main')")?;
    let mut rows = stmt.query([table])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(Column {
            name: row.get(0)?,
            pk: row.get(1)?,
            hidden: row.get(2)?,
        });
    }
    Ok(out)
}

/// True when a rowid table's primary key is an `INTEGER PRIMARY KEY` (an alias of the rowid):
/// it has a primary key but no index made for it.
fn has_rowid_alias(conn: &Connection, table: &str, cols: &[Column]) -> Result<bool, ExportError> {
    if !cols.iter().any(|c| c.pk > 0) {
        return Ok(false);
    }
    let pk_indexes: i64 = conn.query_row(
        "SELECT count(*) FROM pragma_index_list(?1, 'main') WHERE origin = 'pk'",
        [table],
        |row| row.get(0),
    )?;
    Ok(pk_indexes == 0)
}

/// The first of SQLite's rowid names that no column uses.
fn free_rowid_name(cols: &[Column]) -> Option<&'static str> {
    ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|r| !cols.iter().any(|c| c.name.eq_ignore_ascii_case(r)))
}

/// Writes the rows of one table as `INSERT` statements; returns how many.
fn write_rows(
    conn: &Connection,
    table: &SchemaObject,
    w: &mut impl Write,
) -> Result<u64, ExportError> {
    let cols = columns(conn, &table.name)?;
    let plain: Vec<&str> = cols
        .iter()
        .filter(|c| c.hidden == 0)
        .map(|c| c.name.as_str())
        .collect();

    // The rowid column to carry explicitly (if any) and the ORDER BY.
    let (rowid, order_by): (Option<&str>, Option<String>) = match &table.table_kind {
        TableKind::WithoutRowid => (None, None),
        TableKind::Rowid => {
            if has_rowid_alias(conn, &table.name, &cols)? {
                let alias = cols.iter().find(|c| c.pk > 0).map(|c| quote_ident(&c.name));
                (None, alias)
            } else {
                let free = free_rowid_name(&cols);
                (free, free.map(str::to_owned))
            }
        }
        TableKind::Virtual(module) => match module.as_str() {
            "fts3" | "fts4" | "fts5" => {
                if is_contentless(&table.sql) {
                    return Ok(0);
                }
                let free = free_rowid_name(&cols);
                (free, free.map(str::to_owned))
            }
            "rtree" | "rtree_i32" => (None, None),
            _ => return Ok(0),
        },
    };
    if plain.is_empty() && rowid.is_none() {
        return Ok(0);
    }

    let mut names: Vec<String> = Vec::with_capacity(plain.len() + 1);
    if let Some(r) = rowid {
        names.push(r.to_owned());
    }
    names.extend(plain.iter().map(|c| quote_ident(c)));
    let list = names.join(",");

    let mut select = format!("SELECT {list} FROM main.{}", quote_ident(&table.name));
    if let Some(order) = order_by {
        select.push_str(" ORDER BY ");
        select.push_str(&order);
    }
    let head = format!("INSERT INTO {} ({list}) VALUES(", quote_ident(&table.name));

    let mut stmt = conn.prepare(&select)?;
    let width = names.len();
    let mut rows = stmt.query([])?;
    let mut line = String::new();
    let mut count = 0u64;
    while let Some(row) = rows.next()? {
        line.clear();
        line.push_str(&head);
        for i in 0..width {
            if i > 0 {
                line.push(',');
            }
            push_literal(&mut line, row.get_ref(i)?);
        }
        line.push_str(");\n");
        w.write_all(line.as_bytes())?;
        count += 1;
    }
    Ok(count)
}

/// Appends `value` as an SQL literal that SQLite reads back as the same value and type.
fn push_literal(out: &mut String, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => out.push_str("NULL"),
        ValueRef::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        ValueRef::Real(f) => push_real(out, f),
        ValueRef::Text(bytes) => push_text(out, bytes),
        ValueRef::Blob(bytes) => {
            out.push_str("X'");
            push_hex(out, bytes);
            out.push('\'');
        }
    }
}

/// Appends a REAL literal: shortest round-trip decimal, with a `.` or exponent.
fn push_real(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NULL");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "9e999" } else { "-9e999" });
    } else {
        let start = out.len();
        let _ = write!(out, "{f:?}");
        if !out[start..].contains(['.', 'e', 'E']) {
            out.push_str(".0");
        }
    }
}

/// True when text must be written as hex rather than as a quoted literal.
fn text_needs_hex(s: &str) -> bool {
    s.chars().any(|c| c < ' ' && c != '\t' && c != '\n')
        || s.contains("BEGIN TRANSACTION")
        || s.contains("COMMIT;")
}

/// Appends a TEXT literal (see the module documentation for when it is hex).
fn push_text(out: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) if !text_needs_hex(s) => {
            out.reserve(s.len() + 2);
            out.push('\'');
            for c in s.chars() {
                if c == '\'' {
                    out.push_str("''");
                } else {
                    out.push(c);
                }
            }
            out.push('\'');
        }
        _ => {
            out.push_str("CAST(X'");
            push_hex(out, bytes);
            out.push_str("' AS TEXT)");
        }
    }
}

/// Appends `bytes` as upper-case hex digits.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(value: ValueRef<'_>) -> String {
        let mut s = String::new();
        push_literal(&mut s, value);
        s
    }

    #[test]
    fn literals_have_the_expected_shape() {
        assert_eq!(literal(ValueRef::Null), "NULL");
        assert_eq!(literal(ValueRef::Integer(-42)), "-42");
        assert_eq!(literal(ValueRef::Real(1.0)), "1.0");
        assert_eq!(literal(ValueRef::Real(0.1)), "0.1");
        assert_eq!(literal(ValueRef::Real(1e300)), "1e300");
        assert_eq!(literal(ValueRef::Real(f64::INFINITY)), "9e999");
        assert_eq!(literal(ValueRef::Real(f64::NEG_INFINITY)), "-9e999");
        assert_eq!(literal(ValueRef::Real(f64::NAN)), "NULL");
        assert_eq!(literal(ValueRef::Text(b"it's")), "'it''s'");
        assert_eq!(literal(ValueRef::Text(b"a\tb\nc")), "'a\tb\nc'");
        assert_eq!(literal(ValueRef::Text(b"a\0b")), "CAST(X'610062' AS TEXT)");
        assert_eq!(literal(ValueRef::Text(b"\r")), "CAST(X'0D' AS TEXT)");
        assert_eq!(literal(ValueRef::Text(b"\xff")), "CAST(X'FF' AS TEXT)");
        assert_eq!(literal(ValueRef::Blob(b"")), "X''");
        assert_eq!(literal(ValueRef::Blob(&[0, 0xab])), "X'00AB'");
    }

    #[test]
    fn literals_round_trip_through_sqlite() {
        let conn = Connection::open_in_memory().unwrap();
        let values: Vec<rusqlite::types::Value> = vec![
            rusqlite::types::Value::Null,
            rusqlite::types::Value::Integer(i64::MIN),
            rusqlite::types::Value::Integer(i64::MAX),
            rusqlite::types::Value::Real(0.1),
            rusqlite::types::Value::Real(f64::MIN_POSITIVE / 3.0),
            rusqlite::types::Value::Real(5e-324),
            rusqlite::types::Value::Real(f64::MAX),
            rusqlite::types::Value::Real(-1e-300),
            rusqlite::types::Value::Real(f64::INFINITY),
            rusqlite::types::Value::Real(f64::NEG_INFINITY),
            rusqlite::types::Value::Text("x\0y\r\n'\"BEGIN TRANSACTION".into()),
            rusqlite::types::Value::Text(String::new()),
            rusqlite::types::Value::Blob(vec![]),
            rusqlite::types::Value::Blob(vec![0, 1, 255]),
        ];
        for v in values {
            let sql = format!("SELECT {}", literal(ValueRef::from(&v)));
            let got: rusqlite::types::Value = conn.query_row(&sql, [], |r| r.get(0)).unwrap();
            match (&v, &got) {
                (rusqlite::types::Value::Real(a), rusqlite::types::Value::Real(b)) => {
                    assert_eq!(a.to_bits(), b.to_bits(), "{sql}");
                }
                _ => assert_eq!(v, got, "{sql}"),
            }
        }
    }

    #[test]
    fn finds_the_virtual_table_module() {
        assert_eq!(
            virtual_module("CREATE VIRTUAL TABLE t USING fts5(a, b)").as_deref(),
            Some("fts5")
        );
        assert_eq!(
            virtual_module("CREATE VIRTUAL TABLE \"using\" USING  rtree(id, x0, x1)").as_deref(),
            Some("rtree")
        );
        assert_eq!(virtual_module("CREATE TABLE t(a)"), None);
    }

    #[test]
    fn detects_contentless_fts() {
        assert!(is_contentless(
            "CREATE VIRTUAL TABLE t USING fts5(a, content='')"
        ));
        assert!(is_contentless(
            "CREATE VIRTUAL TABLE t USING fts5(a, content = \"\")"
        ));
        assert!(!is_contentless(
            "CREATE VIRTUAL TABLE t USING fts5(a, content='docs')"
        ));
        assert!(!is_contentless(
            "CREATE VIRTUAL TABLE t USING fts5(content, body)"
        ));
        assert!(!is_contentless(
            "CREATE VIRTUAL TABLE t USING fts5(a, content_rowid='')"
        ));
    }
}
