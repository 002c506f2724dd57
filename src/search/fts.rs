//! The engine-owned FTS5 index of a source table's text column, and how it follows the
//! table.
//!
//! Tables, all in `main`, all named `d1vec_…` (so tenant sessions cannot reach them and
//! `d1 export` leaves them out):
//!
//! - `d1vec_text_indexes`: one row per text index: the source table, its key, text and
//!   vector-id columns, the vector index, and the random tag of its triggers;
//! - `d1vec_fts_<id>`: the FTS5 table, `ascii` tokenizer, columns `body` (the text),
//!   `scope` (one token naming the tenant, so a tenant's query intersects posting lists
//!   instead of filtering every match) and `tenant_id UNINDEXED`;
//! - `d1vec_text_docs`: one row per indexed source row: its key, tenant and token count;
//!   its `doc` is the FTS5 rowid. Per-tenant BM25 statistics are sums over it;
//! - `d1vec_text_log`: keys of source rows changed since the index last caught up.
//!
//! Keeping up: three `AFTER` triggers on the source table (`d1vec_text_<tag>_{ins,upd,del}`)
//! append the key of every inserted, updated or deleted row to the log, whichever connection
//! writes, a tenant session's included (the authorizer trusts them by name,
//! [`crate::sql::auth::EngineTriggers`]). They write nothing else: a tenant's connection
//! never touches FTS5, whose internal statements the authorizer could not tell from the
//! tenant's own. Before a search the engine applies the log on its admin connection, in
//! one transaction: each logged key's old entry is removed and the row, if it still
//! exists, indexed again. Rows that `REPLACE` deleted fire no delete trigger; a count per
//! touched tenant finds them and reconciles that tenant. A source table recreated by a
//! migration loses its triggers; the next search sees that, re-creates them and rebuilds
//! the index.

use std::collections::BTreeSet;

use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};

use super::bm25::{self, Collection};
use super::query::{tokens, KeywordQuery};
use super::TextSource;
use crate::catalog::{classify, Access};
use crate::db::Shared;
use crate::error::{Error, Result};
use crate::tenant::guard::ident;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS d1vec_text_indexes (
    text_index_id    INTEGER PRIMARY KEY,
    source_table     TEXT NOT NULL UNIQUE COLLATE NOCASE,
    key_column       TEXT NOT NULL,
    text_column      TEXT NOT NULL,
    vector_id_column TEXT,
    vector_index     TEXT,
    trigger_tag      TEXT NOT NULL,
    created_on       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS d1vec_text_docs (
    doc           INTEGER PRIMARY KEY,
    text_index_id INTEGER NOT NULL,
    source_key    NOT NULL,
    tenant_id     TEXT NOT NULL,
    tokens        INTEGER NOT NULL,
    UNIQUE (text_index_id, source_key)
);
CREATE INDEX IF NOT EXISTS d1vec_text_docs_tenant ON d1vec_text_docs (text_index_id, tenant_id, tokens);
CREATE TABLE IF NOT EXISTS d1vec_text_log (
    seq           INTEGER PRIMARY KEY,
    text_index_id INTEGER NOT NULL,
    source_key
);
CREATE INDEX IF NOT EXISTS d1vec_text_log_index ON d1vec_text_log (text_index_id, seq);
";

/// One text index, as registered.
#[derive(Debug, Clone)]
pub(crate) struct TextIndexRow {
    pub id: i64,
    pub source: TextSource,
    tag: String,
}

impl TextIndexRow {
    fn fts(&self) -> String {
        ident(&format!("d1vec_fts_{}", self.id))
    }

    fn table(&self) -> String {
        ident(&self.source.table)
    }

    fn key(&self) -> String {
        ident(&self.source.key_column)
    }

    fn text(&self) -> String {
        ident(&self.source.text_column)
    }

    /// The names of the index's triggers on the source table.
    pub fn trigger_names(&self) -> [String; 3] {
        ["ins", "upd", "del"].map(|op| format!("d1vec_text_{}_{op}", self.tag))
    }
}

/// A row's key as the engine reports it: text as is, numbers in decimal.
pub(crate) fn key_string(key: &Value) -> String {
    match key {
        Value::Text(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => r.to_string(),
        Value::Blob(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Null => String::new(),
    }
}

/// The single FTS5 token that stands for `tenant` in the `scope` column.
fn scope_token(tenant: &str) -> String {
    use std::fmt::Write as _;
    tenant.bytes().fold(String::from("t"), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE)",
        [name],
        |r| r.get(0),
    )
}

/// The names of every text-index trigger in the database, for a new tenant session.
pub(crate) fn engine_trigger_names(
    conn: &Connection,
    schema: &str,
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT name FROM {}.sqlite_schema WHERE type = 'trigger' AND name LIKE 'd1vec\\_text\\_%' ESCAPE '\\'",
        crate::sql::quote_ident(schema)
    ))?;
    let names = stmt.query_map([], |r| r.get(0))?;
    names.collect()
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TextIndexRow> {
    Ok(TextIndexRow {
        id: r.get("text_index_id")?,
        source: TextSource {
            table: r.get("source_table")?,
            key_column: r.get("key_column")?,
            text_column: r.get("text_column")?,
            vector_id_column: r.get("vector_id_column")?,
            vector_index: r.get("vector_index")?,
        },
        tag: r.get("trigger_tag")?,
    })
}

fn lookup(conn: &Connection, table: &str) -> rusqlite::Result<Option<TextIndexRow>> {
    if !table_exists(conn, "d1vec_text_indexes")? {
        return Ok(None);
    }
    conn.query_row(
        "SELECT * FROM d1vec_text_indexes WHERE source_table = ?1",
        [table],
        read_row,
    )
    .optional()
}

fn no_index(table: &str) -> Error {
    Error::invalid("text index", format!("there is no text index on `{table}`"))
}

/// The text index on `table` (case-insensitive).
pub(crate) fn index_for(shared: &Shared, table: &str) -> Result<TextIndexRow> {
    shared
        .admin
        .internal(|c| lookup(c, table))?
        .ok_or_else(|| no_index(table))
}

/// Every text index with its row and pending-change counts.
pub(crate) fn list(shared: &Shared) -> Result<Vec<super::TextIndexInfo>> {
    shared.admin.internal(|c| {
        if !table_exists(c, "d1vec_text_indexes")? {
            return Ok(Vec::new());
        }
        let mut stmt = c.prepare("SELECT * FROM d1vec_text_indexes ORDER BY source_table")?;
        let rows = stmt
            .query_map([], read_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(|row| info(c, row)).collect()
    })
}

fn info(conn: &Connection, row: TextIndexRow) -> rusqlite::Result<super::TextIndexInfo> {
    let count = |sql: &str| -> rusqlite::Result<u64> {
        conn.query_row(sql, [row.id], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
    };
    Ok(super::TextIndexInfo {
        rows: count("SELECT count(*) FROM d1vec_text_docs WHERE text_index_id = ?1")?,
        pending: count("SELECT count(*) FROM d1vec_text_log WHERE text_index_id = ?1")?,
        source: row.source,
    })
}

/// The columns of a `main` table: `(name, primary-key position)`.
fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare("SELECT name, pk FROM pragma_table_info(?1, 'main')")?;
    let cols = stmt.query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?;
    cols.collect()
}

/// Whether `column` alone is the primary key or a unique index of `table`.
fn is_unique(conn: &Connection, table: &str, pk: &[&str], column: &str) -> rusqlite::Result<bool> {
    if pk.len() == 1 && pk[0].eq_ignore_ascii_case(column) {
        return Ok(true);
    }
    let mut list =
        conn.prepare("SELECT name FROM pragma_index_list(?1, 'main') WHERE \"unique\" = 1")?;
    let indexes: Vec<String> = list
        .query_map([table], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut cols = conn.prepare("SELECT name FROM pragma_index_info(?1, 'main')")?;
    for index in indexes {
        let key: Vec<Option<String>> = cols
            .query_map([&index], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if let [Some(only)] = key.as_slice() {
            if only.eq_ignore_ascii_case(column) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Checks `source` against the schema; returns it with names spelled as the schema does.
fn validate(conn: &Connection, source: &TextSource) -> Result<TextSource> {
    let bad = |reason: String| Error::invalid("text source", reason);
    let lower = source.table.to_ascii_lowercase();
    if ["d1vec_", "sqlite_", "_cf_"]
        .iter()
        .any(|p| lower.starts_with(p))
        || lower == "d1_migrations"
    {
        return Err(bad(format!("`{}` is a reserved table", source.table)));
    }
    let found: Option<(String, String)> = conn
        .query_row(
            "SELECT name, sql FROM main.sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
            [&source.table],
            |r| Ok((r.get(0)?, r.get::<_, Option<String>>(1)?.unwrap_or_default())),
        )
        .optional()?;
    let Some((table, sql)) = found else {
        return Err(bad(format!("there is no table `{}`", source.table)));
    };
    if sql
        .trim_start()
        .get(..14)
        .is_some_and(|s| s.eq_ignore_ascii_case("create virtual"))
    {
        return Err(bad(format!("`{table}` is a virtual table")));
    }
    let cols = columns(conn, &table)?;
    let find = |name: &str| -> Result<String> {
        cols.iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(name))
            .map(|(c, _)| c.clone())
            .ok_or_else(|| bad(format!("table `{table}` has no column `{name}`")))
    };
    find("tenant_id")?;
    if !matches!(
        classify(&table, true),
        Access::TenantPrivate | Access::TenantReadOnly
    ) {
        return Err(bad(format!(
            "`{table}` is not a tenant table (a text index is searched per tenant)"
        )));
    }
    let hidden: &[&str] = crate::catalog::bundled(&table).map_or(&[], |s| s.hidden_columns);
    let key_column = find(&source.key_column)?;
    let text_column = find(&source.text_column)?;
    let vector_id_column = source.vector_id_column.as_deref().map(find).transpose()?;
    for c in [
        Some(&key_column),
        Some(&text_column),
        vector_id_column.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        if hidden.iter().any(|h| h.eq_ignore_ascii_case(c)) {
            return Err(bad(format!(
                "column `{c}` of `{table}` is hidden from tenants"
            )));
        }
    }
    let mut pk: Vec<(&str, i64)> = cols
        .iter()
        .filter(|(_, p)| *p > 0)
        .map(|(c, p)| (c.as_str(), *p))
        .collect();
    pk.sort_by_key(|(_, p)| *p);
    let pk: Vec<&str> = pk.into_iter().map(|(c, _)| c).collect();
    if !is_unique(conn, &table, &pk, &key_column)? {
        return Err(bad(format!(
            "key column `{key_column}` is not unique in `{table}` (it must be the primary key or have a unique index of its own)"
        )));
    }
    if source.vector_id_column.is_some() != source.vector_index.is_some() {
        return Err(bad(
            "give both a vector-id column and a vector index, or neither".into(),
        ));
    }
    Ok(TextSource {
        table,
        key_column,
        text_column,
        vector_id_column,
        vector_index: source.vector_index.clone(),
    })
}

fn create_triggers(conn: &Connection, row: &TextIndexRow) -> rusqlite::Result<()> {
    let [ins, upd, del] = row.trigger_names().map(|n| ident(&n));
    let (table, key, text, id) = (row.table(), row.key(), row.text(), row.id);
    let log = "INSERT INTO d1vec_text_log (text_index_id, source_key)";
    conn.execute_batch(&format!(
        "DROP TRIGGER IF EXISTS main.{ins};
         DROP TRIGGER IF EXISTS main.{upd};
         DROP TRIGGER IF EXISTS main.{del};
         CREATE TRIGGER main.{ins} AFTER INSERT ON {table} BEGIN
             {log} VALUES ({id}, NEW.{key});
         END;
         CREATE TRIGGER main.{upd} AFTER UPDATE OF {key}, {text}, tenant_id ON {table} BEGIN
             {log} VALUES ({id}, OLD.{key});
             {log} SELECT {id}, NEW.{key} WHERE NEW.{key} IS NOT OLD.{key};
         END;
         CREATE TRIGGER main.{del} AFTER DELETE ON {table} BEGIN
             {log} VALUES ({id}, OLD.{key});
         END;"
    ))
}

fn triggers_present(conn: &Connection, row: &TextIndexRow) -> rusqlite::Result<bool> {
    let names = row.trigger_names();
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM main.sqlite_schema WHERE type = 'trigger' AND name IN (?1, ?2, ?3) AND tbl_name = ?4 COLLATE NOCASE",
        params![names[0], names[1], names[2], row.source.table],
        |r| r.get(0),
    )?;
    Ok(n == 3)
}

fn create_fts(conn: &Connection, row: &TextIndexRow) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "CREATE VIRTUAL TABLE main.{} USING fts5(body, scope, tenant_id UNINDEXED, tokenize = 'ascii');",
        row.fts()
    ))
}

/// Indexes one source row.
fn insert_doc(
    conn: &Connection,
    row: &TextIndexRow,
    key: &Value,
    text: &str,
    tenant: &str,
) -> rusqlite::Result<()> {
    let n = tokens(text).len() as i64;
    conn.prepare_cached(
        "INSERT INTO d1vec_text_docs (text_index_id, source_key, tenant_id, tokens) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![row.id, key, tenant, n])?;
    let doc = conn.last_insert_rowid();
    conn.prepare_cached(&format!(
        "INSERT INTO {} (rowid, body, scope, tenant_id) VALUES (?1, ?2, ?3, ?4)",
        row.fts()
    ))?
    .execute(params![doc, text, scope_token(tenant), tenant])?;
    Ok(())
}

/// Removes one indexed row; returns its tenant.
fn remove_doc(
    conn: &Connection,
    row: &TextIndexRow,
    key: &Value,
) -> rusqlite::Result<Option<String>> {
    let found: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT doc, tenant_id FROM d1vec_text_docs WHERE text_index_id = ?1 AND source_key = ?2",
        )?
        .query_row(params![row.id, key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((doc, tenant)) = found else {
        return Ok(None);
    };
    conn.prepare_cached(&format!("DELETE FROM {} WHERE rowid = ?1", row.fts()))?
        .execute([doc])?;
    conn.prepare_cached("DELETE FROM d1vec_text_docs WHERE doc = ?1")?
        .execute([doc])?;
    Ok(Some(tenant))
}

/// The source row with `key`: its text and tenant, if it exists and has a tenant.
fn source_row(
    conn: &Connection,
    row: &TextIndexRow,
    key: &Value,
) -> rusqlite::Result<Option<(String, String)>> {
    conn.prepare_cached(&format!(
        "SELECT coalesce(CAST({text} AS TEXT), ''), CAST(tenant_id AS TEXT) FROM main.{table} WHERE {key} = ?1 AND tenant_id IS NOT NULL",
        text = row.text(),
        table = row.table(),
        key = row.key(),
    ))?
    .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
}

/// Empties the index and indexes every source row again.
fn rebuild(conn: &Connection, row: &TextIndexRow) -> rusqlite::Result<()> {
    conn.execute_batch(&format!("DROP TABLE IF EXISTS main.{};", row.fts()))?;
    create_fts(conn, row)?;
    conn.execute(
        "DELETE FROM d1vec_text_docs WHERE text_index_id = ?1",
        [row.id],
    )?;
    conn.execute(
        "DELETE FROM d1vec_text_log WHERE text_index_id = ?1",
        [row.id],
    )?;
    let mut stmt = conn.prepare(&format!(
        "SELECT {key}, coalesce(CAST({text} AS TEXT), ''), CAST(tenant_id AS TEXT) FROM main.{table} WHERE {key} IS NOT NULL AND tenant_id IS NOT NULL",
        key = row.key(),
        text = row.text(),
        table = row.table(),
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let key: Value = r.get(0)?;
        let text: String = r.get(1)?;
        let tenant: String = r.get(2)?;
        insert_doc(conn, row, &key, &text, &tenant)?;
    }
    Ok(())
}

/// Makes `tenant`'s entries equal to its source rows when their counts differ (rows that
/// `REPLACE` deleted without firing the delete trigger).
fn reconcile_tenant(conn: &Connection, row: &TextIndexRow, tenant: &str) -> rusqlite::Result<()> {
    let (table, key, text) = (row.table(), row.key(), row.text());
    let in_source: i64 = conn.query_row(
        &format!("SELECT count(*) FROM main.{table} WHERE tenant_id = ?1 AND {key} IS NOT NULL"),
        [tenant],
        |r| r.get(0),
    )?;
    let indexed: i64 = conn.query_row(
        "SELECT count(*) FROM d1vec_text_docs WHERE text_index_id = ?1 AND tenant_id = ?2",
        params![row.id, tenant],
        |r| r.get(0),
    )?;
    if in_source == indexed {
        return Ok(());
    }
    let gone: Vec<Value> = conn
        .prepare(&format!(
            "SELECT d.source_key FROM d1vec_text_docs AS d WHERE d.text_index_id = ?1 AND d.tenant_id = ?2
               AND NOT EXISTS (SELECT 1 FROM main.{table} AS s WHERE s.{key} = d.source_key AND s.tenant_id = ?2)"
        ))?
        .query_map(params![row.id, tenant], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for k in &gone {
        remove_doc(conn, row, k)?;
    }
    let missing: Vec<(Value, String)> = conn
        .prepare(&format!(
            "SELECT s.{key}, coalesce(CAST(s.{text} AS TEXT), '') FROM main.{table} AS s WHERE s.tenant_id = ?2 AND s.{key} IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM d1vec_text_docs AS d WHERE d.text_index_id = ?1 AND d.source_key = s.{key})"
        ))?
        .query_map(params![row.id, tenant], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (k, t) in &missing {
        remove_doc(conn, row, k)?; // indexed under another tenant before
        insert_doc(conn, row, k, t, tenant)?;
    }
    Ok(())
}

/// Applies the change log; returns the number of keys applied.
fn apply_log(conn: &Connection, row: &TextIndexRow) -> rusqlite::Result<usize> {
    let last: Option<i64> = conn.query_row(
        "SELECT max(seq) FROM d1vec_text_log WHERE text_index_id = ?1",
        [row.id],
        |r| r.get(0),
    )?;
    let Some(last) = last else {
        return Ok(0);
    };
    let keys: Vec<Value> = conn
        .prepare(
            "SELECT DISTINCT source_key FROM d1vec_text_log WHERE text_index_id = ?1 AND seq <= ?2 AND source_key IS NOT NULL",
        )?
        .query_map(params![row.id, last], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut touched = BTreeSet::new();
    for key in &keys {
        touched.extend(remove_doc(conn, row, key)?);
        if let Some((text, tenant)) = source_row(conn, row, key)? {
            insert_doc(conn, row, key, &text, &tenant)?;
            touched.insert(tenant);
        }
    }
    conn.execute(
        "DELETE FROM d1vec_text_log WHERE text_index_id = ?1 AND seq <= ?2",
        params![row.id, last],
    )?;
    for tenant in &touched {
        reconcile_tenant(conn, row, tenant)?;
    }
    Ok(keys.len())
}

/// Creates the text index of `source`, or returns the one that exists with the same
/// definition. Indexes every existing row.
pub(crate) fn create(shared: &Shared, source: &TextSource) -> Result<super::TextIndexInfo> {
    if let Some(name) = &source.vector_index {
        crate::vectorize::manage::get_index(shared, name)?;
    }
    let (row, created) = shared.admin.internal_tx(|tx| {
        tx.execute_batch(SCHEMA)?;
        let source = validate(tx, source)?;
        if let Some(existing) = lookup(tx, &source.table)? {
            if existing.source != source {
                return Err(Error::invalid(
                    "text source",
                    format!(
                        "`{}` already has a text index with another definition; drop it first",
                        source.table
                    ),
                ));
            }
            return Ok((existing, false));
        }
        let tag = crate::tenant::guard::new_secret()
            .map_err(|e| Error::invalid("randomness", e.to_string()))?;
        tx.execute(
            "INSERT INTO d1vec_text_indexes (source_table, key_column, text_column, vector_id_column, vector_index, trigger_tag, created_on)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                source.table,
                source.key_column,
                source.text_column,
                source.vector_id_column,
                source.vector_index,
                tag,
                crate::time::now_iso()
            ],
        )?;
        let row = TextIndexRow {
            id: tx.last_insert_rowid(),
            source,
            tag,
        };
        create_triggers(tx, &row)?;
        rebuild(tx, &row)?;
        Ok((row, true))
    })?;
    shared.text_triggers.extend(row.trigger_names());
    if !created {
        sync(shared, &row)?;
    }
    shared.admin.internal(|c| info(c, row))
}

/// Drops the text index on `table`: its triggers, FTS5 table and bookkeeping.
pub(crate) fn drop_index(shared: &Shared, table: &str) -> Result<()> {
    shared.admin.internal_tx(|tx| {
        let row = lookup(tx, table)?.ok_or_else(|| no_index(table))?;
        for name in row.trigger_names() {
            tx.execute_batch(&format!("DROP TRIGGER IF EXISTS main.{};", ident(&name)))?;
        }
        tx.execute_batch(&format!("DROP TABLE IF EXISTS main.{};", row.fts()))?;
        for t in ["d1vec_text_docs", "d1vec_text_log", "d1vec_text_indexes"] {
            tx.execute(
                &format!("DELETE FROM {t} WHERE text_index_id = ?1"),
                [row.id],
            )?;
        }
        Ok(())
    })
}

/// Brings the index up to date with its source table: applies the change log, or, if the
/// triggers are gone, re-creates them and rebuilds. A no-op (one read) when nothing changed.
pub(crate) fn sync(shared: &Shared, row: &TextIndexRow) -> Result<()> {
    let current = shared.admin.internal(|c| {
        let pending: bool = c.query_row(
            "SELECT EXISTS (SELECT 1 FROM d1vec_text_log WHERE text_index_id = ?1)",
            [row.id],
            |r| r.get(0),
        )?;
        Ok(!pending && triggers_present(c, row)?)
    })?;
    if current {
        return Ok(());
    }
    shared.admin.internal_tx(|tx| {
        let Some(row) = lookup(tx, &row.source.table)?.filter(|r| r.id == row.id) else {
            return Err(no_index(&row.source.table));
        };
        if triggers_present(tx, &row)? {
            apply_log(tx, &row)?;
        } else {
            if !table_exists(tx, &row.source.table)? {
                return Err(Error::invalid(
                    "text index",
                    format!(
                        "its source table `{}` no longer exists; drop the text index",
                        row.source.table
                    ),
                ));
            }
            create_triggers(tx, &row)?;
            rebuild(tx, &row)?;
        }
        Ok(())
    })
}

/// One row that matched a keyword query.
#[derive(Debug, Clone)]
pub(crate) struct KeywordHit {
    /// The row's key, as stored.
    pub key: Value,
    /// The key as reported ([`key_string`]).
    pub id: String,
    /// Its BM25 score over the tenant's rows (higher is better).
    pub bm25: f64,
    /// Its text, as indexed.
    pub text: String,
}

/// Every row of `tenant` that matches `query`, best first (ties by key), scored by BM25
/// over the tenant's rows alone. The tenant comes from the caller's session, never from
/// input. Run [`sync`] first.
pub(crate) fn keyword_hits(
    shared: &Shared,
    row: &TextIndexRow,
    tenant: &str,
    query: &KeywordQuery,
) -> Result<Vec<KeywordHit>> {
    let found = shared.admin.internal(|c| {
        // One read transaction, so the statistics and the matches agree.
        let tx = c.unchecked_transaction()?;
        let (rows, toks): (i64, i64) = tx.query_row(
            "SELECT count(*), coalesce(sum(tokens), 0) FROM d1vec_text_docs WHERE text_index_id = ?1 AND tenant_id = ?2",
            params![row.id, tenant],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if rows == 0 {
            return Ok((Collection { rows: 0, tokens: 0 }, Vec::new()));
        }
        let expr = format!(
            "scope : \"{}\" AND body : ( {} )",
            scope_token(tenant),
            query.to_fts5()
        );
        let fts = row.fts();
        let mut stmt = tx.prepare(&format!(
            "SELECT d.source_key, m.body FROM (SELECT rowid AS doc, body FROM {fts} WHERE {fts} MATCH ?1 AND tenant_id = ?2) AS m
               JOIN d1vec_text_docs AS d ON d.doc = m.doc WHERE d.text_index_id = ?3 AND d.tenant_id = ?2"
        ))?;
        let matched = stmt
            .query_map(params![expr, tenant, row.id], |r| {
                Ok((r.get::<_, Value>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let collection = Collection {
            rows: u64::try_from(rows).unwrap_or(0),
            tokens: u64::try_from(toks).unwrap_or(0),
        };
        Ok((collection, matched))
    })?;
    let (collection, matched) = found;
    let phrases = query.phrases();
    let counted: Vec<(Value, String, Vec<usize>, usize)> = matched
        .into_iter()
        .map(|(key, text)| {
            let toks = tokens(&text);
            let freqs: Vec<usize> = phrases.iter().map(|p| p.count_in(&toks)).collect();
            (key, text, freqs, toks.len())
        })
        // FTS5 and `tokens` tokenize alike, so every match holds a phrase; keep to that.
        .filter(|(_, _, freqs, _)| freqs.iter().any(|&f| f > 0))
        .collect();
    let idfs: Vec<f64> = (0..phrases.len())
        .map(|i| {
            let hits = counted.iter().filter(|(_, _, f, _)| f[i] > 0).count();
            bm25::idf(collection, hits as u64)
        })
        .collect();
    let mut hits: Vec<KeywordHit> = counted
        .into_iter()
        .map(|(key, text, freqs, len)| KeywordHit {
            bm25: bm25::score(collection, &idfs, &freqs, len),
            id: key_string(&key),
            key,
            text,
        })
        .collect();
    hits.sort_by(|a, b| b.bm25.total_cmp(&a.bm25).then_with(|| a.id.cmp(&b.id)));
    Ok(hits)
}
