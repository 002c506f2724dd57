//! Commit counters, and the bookmarks of D1's Sessions API that name them.
//!
//! D1: "A bookmark represents the state of a database at a specific point in time" and
//! bookmarks "are lexicographically sortable"
//! (<https://developers.cloudflare.com/d1/reference/time-travel/#bookmarks>); a session
//! started from one reads no older state
//! (<https://developers.cloudflare.com/d1/best-practices/read-replication/>).
//!
//! On one node a commit is named by a counter kept in the database itself, in the table
//! `d1vec_commits` (one row per scope: `''` for the whole database, `tenant:<id>` for a
//! tenant's own writes; created when the first session starts), so it survives reopening and is shared by every process that opens
//! the file. Every call that runs a writing statement bumps its counters inside its own
//! transaction, so the counter and the data commit together. A bookmark is the counter in
//! 16 hex digits (so bookmarks sort as commits do), a dash, and a 16-hex-digit tag that binds
//! it to one database and one scope: a hash of the database's random id (in the same table,
//! which no tenant can read) and the scope. A tenant session's bookmarks count its own
//! commits only, so they tell it nothing about other tenants' writes.

use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::sql::quote_ident;

/// The table that holds the counters.
pub(crate) const TABLE: &str = "d1vec_commits";

/// Creates the counter table and the database's id where missing, in a write transaction.
/// Run when the first session starts: a database that never uses sessions never gets the
/// table, and writes made before it existed are older than every bookmark, which is all a
/// bookmark needs. The table is WITHOUT ROWID so that writing it never moves SQLite's
/// `last_insert_rowid()`, which `meta.last_row_id` reports.
pub(crate) fn ensure(conn: &Connection, schema: &str) -> Result<()> {
    let schema = quote_ident(schema);
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {schema}.{TABLE} (
             scope TEXT PRIMARY KEY,
             seq INTEGER NOT NULL CHECK (seq >= 0),
             id TEXT
         ) WITHOUT ROWID"
    ))?;
    let has: bool = conn.query_row(
        &format!("SELECT EXISTS (SELECT 1 FROM {schema}.{TABLE} WHERE scope = '')"),
        [],
        |r| r.get(0),
    )?;
    if !has {
        let id = crate::tenant::guard::new_secret()
            .map_err(|e| Error::invalid("randomness", e.to_string()))?;
        conn.execute(
            &format!("INSERT OR IGNORE INTO {schema}.{TABLE} (scope, seq, id) VALUES ('', 0, ?1)"),
            [id],
        )?;
    }
    Ok(())
}

/// The counter scope of a connection: the database's, or a tenant's.
pub(crate) fn scope_of(tenant: Option<&str>) -> String {
    match tenant {
        None => String::new(),
        Some(t) => format!("tenant:{t}"),
    }
}

/// Counts one commit of the current transaction: the database's counter, and the
/// tenant's when a tenant session wrote. Nothing while no session ever started (no table).
pub(crate) fn bump(conn: &Connection, schema: &str, tenant: Option<&str>) -> rusqlite::Result<()> {
    let exists: bool = conn
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM {}.sqlite_schema WHERE type = 'table' AND name = '{TABLE}')",
            quote_ident(schema)
        ))?
        .query_row([], |r| r.get(0))?;
    if !exists {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO {}.{TABLE} (scope, seq) VALUES (?1, 1)
         ON CONFLICT (scope) DO UPDATE SET seq = seq + 1",
        quote_ident(schema)
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    stmt.execute([""])?;
    if tenant.is_some() {
        stmt.execute([scope_of(tenant)])?;
    }
    Ok(())
}

/// The latest commit of `scope` this transaction sees (0 before the first). The table must
/// exist (a session started).
pub(crate) fn current(conn: &Connection, schema: &str, scope: &str) -> rusqlite::Result<u64> {
    let seq: Option<i64> = conn
        .prepare_cached(&format!(
            "SELECT seq FROM {}.{TABLE} WHERE scope = ?1",
            quote_ident(schema)
        ))?
        .query_row([scope], |r| r.get(0))
        .optional()?;
    Ok(seq.map_or(0, |s| u64::try_from(s).unwrap_or(0)))
}

/// The tag of `scope`'s bookmarks in this database.
pub(crate) fn tag(conn: &Connection, schema: &str, scope: &str) -> Result<String> {
    let id: Option<String> = conn
        .query_row(
            &format!(
                "SELECT id FROM {}.{TABLE} WHERE scope = ''",
                quote_ident(schema)
            ),
            [],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let id = id.ok_or_else(|| Error::invalid("database", format!("{TABLE} holds no id")))?;
    let mut h = Sha256::new();
    h.update(id.as_bytes());
    h.update([0u8]);
    h.update(scope.as_bytes());
    Ok(h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Splits a bookmark into its commit and tag; a typed error for anything else.
pub(crate) fn parse(text: &str) -> Result<(u64, &str)> {
    let bad = |reason: &str| Error::Bookmark {
        bookmark: text.chars().take(80).collect(),
        reason: reason.to_owned(),
    };
    let (seq, tag) = text
        .split_once('-')
        .ok_or_else(|| bad("expected 16 hex digits, `-`, 16 hex digits"))?;
    let hex16 =
        |s: &str| s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !hex16(seq) || !hex16(tag) {
        return Err(bad(
            "expected 16 lower-case hex digits, `-`, 16 lower-case hex digits",
        ));
    }
    let seq = u64::from_str_radix(seq, 16).map_err(|_| bad("the commit is not a number"))?;
    Ok((seq, tag))
}

/// Formats a bookmark.
pub(crate) fn format(seq: u64, tag: &str) -> String {
    format!("{seq:016x}-{tag}")
}

/// The state of one D1 session: its scope and the latest commit it has read or written.
#[derive(Debug)]
pub(crate) struct SessionState {
    scope: String,
    tag: String,
    seq: Mutex<Option<u64>>,
}

impl SessionState {
    pub fn new(scope: String, tag: String, seq: Option<u64>) -> Self {
        SessionState {
            scope,
            tag,
            seq: Mutex::new(seq),
        }
    }

    /// The counter scope this session's bookmarks count.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// Refuses to go on when the state a call sees (`seen`) is older than the session's
    /// bookmark. On one node a new transaction always sees the latest commit, so this
    /// fails only if the database was replaced by an older copy while the session lived.
    pub fn check_not_behind(&self, seen: u64) -> Result<()> {
        let want = *self.seq.lock().unwrap_or_else(|e| e.into_inner());
        match want {
            Some(w) if seen < w => Err(Error::Bookmark {
                bookmark: format(w, &self.tag),
                reason: format!(
                    "the database's latest commit is {seen}, older than the session's bookmark (was the database file replaced?)"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Moves the bookmark to `seq` (never backwards).
    pub fn advance(&self, seq: u64) {
        let mut s = self.seq.lock().unwrap_or_else(|e| e.into_inner());
        *s = Some(s.map_or(seq, |old| old.max(seq)));
    }

    /// The latest bookmark, or `None` before the session's first call.
    pub fn bookmark(&self) -> Option<String> {
        self.seq
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|s| format(s, &self.tag))
    }
}
