//! `meta.rows_written` as D1 counts it: every row written to a table, plus one for each of
//! its indexes that the write changes.
//!
//! D1's pricing page: "Indexes will add an additional written row when writes include the
//! indexed column, as there are two rows written: one to the table itself, and one to the
//! index" (<https://developers.cloudflare.com/d1/platform/pricing/>). SQLite counts no index
//! writes, so they are derived: SQLite's update hook reports each row a statement inserts,
//! updates or deletes in a rowid table (triggers and foreign-key actions included), and the
//! authorizer reports which columns an UPDATE sets. A row then counts as
//!
//! - INSERT or DELETE: 1 + every index of its table;
//! - UPDATE: 1 + every index that holds a set column (an index on an expression or with a
//!   WHERE clause counts whenever any column is set; setting a primary-key column counts
//!   every index), which is the rule SQLite itself uses to decide which indexes to rewrite.
//!
//! Rows SQLite changes without calling the hook (WITHOUT ROWID tables, virtual tables, the
//! truncate optimization of `DELETE FROM t`) are the difference between its change counter
//! and the hooked rows; they are counted against the statement's own target table.
//! Rows of the engine's own `d1vec_` tables are the engine's, not the caller's, and never
//! count.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rusqlite::hooks::Action;
use rusqlite::Connection;

/// What a row write was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    Insert,
    Update,
    Delete,
}

/// Rows written during the current user statement, by schema, table and kind.
#[derive(Debug, Default)]
pub(crate) struct WriteLog {
    active: bool,
    rows: HashMap<(String, String, Op), u64>,
}

/// Shared between a connection's update hook and its executor.
pub(crate) type SharedWriteLog = Arc<Mutex<WriteLog>>;

impl WriteLog {
    /// Starts recording for one user statement.
    pub fn start(log: &SharedWriteLog) {
        let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
        l.rows.clear();
        l.active = true;
    }

    /// Stops recording and returns what was recorded.
    pub fn finish(log: &SharedWriteLog) -> HashMap<(String, String, Op), u64> {
        let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
        l.active = false;
        std::mem::take(&mut l.rows)
    }
}

/// Installs the update hook that feeds `log`.
pub(crate) fn install(conn: &mut Connection, log: SharedWriteLog) -> rusqlite::Result<()> {
    conn.update_hook(Some(
        move |action: Action, db: &str, table: &str, _rowid: i64| {
            let op = match action {
                Action::SQLITE_INSERT => Op::Insert,
                Action::SQLITE_UPDATE => Op::Update,
                Action::SQLITE_DELETE => Op::Delete,
                _ => return,
            };
            let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
            if l.active {
                *l.rows
                    .entry((db.to_owned(), table.to_owned(), op))
                    .or_insert(0) += 1;
            }
        },
    ))
}

/// One index of a table, as far as write counting needs it.
#[derive(Debug)]
struct IndexInfo {
    /// Lower-cased names of the table columns the index holds.
    columns: HashSet<String>,
    /// The index holds an expression or has a WHERE clause.
    opaque: bool,
}

/// A table's indexes and primary-key columns.
#[derive(Debug, Default)]
struct TableInfo {
    indexes: Vec<IndexInfo>,
    primary_key: HashSet<String>,
}

fn table_info(conn: &Connection, schema: &str, table: &str) -> rusqlite::Result<TableInfo> {
    let mut info = TableInfo::default();
    let without_rowid: bool = conn
        .prepare_cached("SELECT wr FROM pragma_table_list WHERE schema = ?1 AND name = ?2")?
        .query_row([schema, table], |r| r.get(0))
        .unwrap_or(false);
    {
        let mut stmt =
            conn.prepare_cached("SELECT lower(name) FROM pragma_table_info(?2, ?1) WHERE pk > 0")?;
        let names = stmt.query_map([schema, table], |r| r.get::<_, String>(0))?;
        for n in names {
            info.primary_key.insert(n?);
        }
    }
    let mut list = conn.prepare_cached(
        "SELECT name, origin, partial FROM pragma_index_list(?2, ?1) ORDER BY name",
    )?;
    let indexes: Vec<(String, String, bool)> = list
        .query_map([schema, table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (name, origin, partial) in indexes {
        // A WITHOUT ROWID table's primary key is the table's own b-tree, not an index.
        if without_rowid && origin == "pk" {
            continue;
        }
        let mut stmt = conn.prepare_cached(
            "SELECT cid, lower(coalesce(name, '')) FROM pragma_index_xinfo(?2, ?1) WHERE key",
        )?;
        let mut columns = HashSet::new();
        let mut opaque = partial;
        let cols = stmt.query_map([schema, name.as_str()], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        for c in cols {
            let (cid, col) = c?;
            if cid == -2 {
                opaque = true;
            } else {
                columns.insert(col);
            }
        }
        info.indexes.push(IndexInfo { columns, opaque });
    }
    Ok(info)
}

/// Rows one write of `op` to a table with `info` counts, given the columns an UPDATE sets.
fn weight(info: &TableInfo, op: Op, set: Option<&HashSet<String>>) -> u64 {
    let touched = match op {
        Op::Insert | Op::Delete => info.indexes.len(),
        Op::Update => {
            let Some(set) = set.filter(|s| !s.is_empty()) else {
                // Unknown columns: every index may be rewritten.
                return 1 + info.indexes.len() as u64;
            };
            let rowid_set = set.iter().any(|c| {
                info.primary_key.contains(c) || matches!(c.as_str(), "rowid" | "oid" | "_rowid_")
            });
            info.indexes
                .iter()
                .filter(|i| rowid_set || i.opaque || i.columns.iter().any(|c| set.contains(c)))
                .count()
        }
    };
    1 + touched as u64
}

/// What one statement wrote, for counting.
pub(crate) struct Counted<'a> {
    /// The schema the database's tables live under on this connection.
    pub schema: &'a str,
    /// The rows the update hook saw.
    pub hooked: HashMap<(String, String, Op), u64>,
    /// Columns set by UPDATE, by lower-cased table name (from the authorizer).
    pub set_columns: &'a HashMap<String, HashSet<String>>,
    /// Rows SQLite's change counter counted for the statement (triggers included).
    pub changed: u64,
    /// The statement's own target table and operation, when it writes one.
    pub target: Option<(String, Op)>,
}

/// `meta.rows_written` for one statement; see the module docs.
pub(crate) fn rows_written(conn: &Connection, c: &Counted<'_>) -> rusqlite::Result<u64> {
    let mut total = 0u64;
    let mut hooked_rows = 0u64;
    let mut cache: HashMap<String, TableInfo> = HashMap::new();
    for ((db, table, op), n) in &c.hooked {
        hooked_rows = hooked_rows.saturating_add(*n);
        let lower = table.to_ascii_lowercase();
        if !db.eq_ignore_ascii_case(c.schema) || lower.starts_with("d1vec_") {
            continue;
        }
        if !cache.contains_key(&lower) {
            cache.insert(lower.clone(), table_info(conn, c.schema, table)?);
        }
        let info = &cache[&lower];
        total =
            total.saturating_add(n.saturating_mul(weight(info, *op, c.set_columns.get(&lower))));
    }
    let unhooked = c.changed.saturating_sub(hooked_rows);
    if unhooked > 0 {
        let per_row = match &c.target {
            Some((table, op)) => {
                let info = table_info(conn, c.schema, table)?;
                weight(&info, *op, c.set_columns.get(&table.to_ascii_lowercase()))
            }
            None => 1,
        };
        total = total.saturating_add(unhooked.saturating_mul(per_row));
    }
    Ok(total)
}
