//! Delayed visibility: writes that become visible to queries only after a delay, as on
//! hosted Vectorize, where mutations are applied asynchronously.
//!
//! With [`IndexOptions::visibility_delay`] above zero, an insert, upsert or delete is
//! validated at once (a bad batch still fails at once and changes nothing), given its
//! mutation id, and stored in `d1vec_pending_writes` with a due time. Every later call on
//! the index (query, getByIds, describe, list, write) first applies the due writes, oldest
//! first, each in its own transaction that also removes it from the queue, so a write is
//! applied once even with several processes draining. Due times never decrease within an
//! index (a write is due no earlier than the one queued before it), so writes become
//! visible in mutation order; `describe().processedUpToMutation` names the last one applied.
//!
//! The queue lives in SQLite, so a delayed write outlives the process that made it (a
//! `d1vec vectorize insert --visibility-delay 5s` is applied by the first command that
//! touches the index after five seconds). A queued write that fails when applied (an index
//! that has meanwhile filled up, or was deleted) is dropped: hosted Vectorize reports such
//! failures nowhere either.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Error;

/// Per-handle options of a [`super::VectorIndex`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexOptions {
    /// How long after a write it becomes visible to queries. Default zero: visible to the
    /// next call, the behaviour of earlier d1vec versions. Turn it on (a few seconds, as
    /// hosted Vectorize takes) to find code that queries right after writing.
    pub visibility_delay: Duration,
}

impl IndexOptions {
    /// Options with this visibility delay.
    pub fn with_visibility_delay(mut self, delay: Duration) -> Self {
        self.visibility_delay = delay;
        self
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS d1vec_pending_writes (
    pending_id INTEGER PRIMARY KEY AUTOINCREMENT,
    index_id INTEGER NOT NULL,
    due_ms INTEGER NOT NULL,
    mutation_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('insert', 'upsert', 'delete')),
    tenant TEXT,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS d1vec_pending_writes_due ON d1vec_pending_writes (index_id, pending_id);
";

/// One queued write.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// Its row in `d1vec_pending_writes`.
    pub pending_id: i64,
    /// The mutation id returned when it was queued.
    pub mutation_id: String,
    /// `insert`, `upsert` or `delete`.
    pub kind: String,
    /// The tenant whose session queued it, if any.
    pub tenant: Option<String>,
    /// The vectors (insert/upsert) or ids (delete), as JSON.
    pub payload: String,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn table_exists(conn: &Connection) -> rusqlite::Result<bool> {
    super::store::table_exists(conn, "d1vec_pending_writes")
}

/// Queues a write of index `index_id`, due `delay` from now but no earlier than the last
/// write queued before it.
pub(crate) fn enqueue(
    conn: &Connection,
    index_id: i64,
    delay: Duration,
    p: &Pending,
) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    let due = now_ms().saturating_add(delay_ms);
    let last: Option<i64> = conn.query_row(
        "SELECT max(due_ms) FROM d1vec_pending_writes WHERE index_id = ?1",
        [index_id],
        |r| r.get(0),
    )?;
    conn.execute(
        "INSERT INTO d1vec_pending_writes (index_id, due_ms, mutation_id, kind, tenant, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            index_id,
            due.max(last.unwrap_or(i64::MIN)),
            p.mutation_id,
            p.kind,
            p.tenant,
            p.payload
        ],
    )?;
    Ok(())
}

/// Whether index `index_id` has queued writes (a new write must then queue behind them).
pub(crate) fn has_pending(conn: &Connection, index_id: i64) -> rusqlite::Result<bool> {
    if !table_exists(conn)? {
        return Ok(false);
    }
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM d1vec_pending_writes WHERE index_id = ?1)",
        [index_id],
        |r| r.get(0),
    )
}

/// The oldest queued write of `index_id`, if it is due at `now` (a later one never is
/// due before it: due times do not decrease).
pub(crate) fn next_due(
    conn: &Connection,
    index_id: i64,
    now: i64,
) -> rusqlite::Result<Option<Pending>> {
    if !table_exists(conn)? {
        return Ok(None);
    }
    conn.query_row(
        "SELECT pending_id, mutation_id, kind, tenant, payload FROM d1vec_pending_writes
         WHERE index_id = ?1 AND due_ms <= ?2
           AND pending_id = (SELECT min(pending_id) FROM d1vec_pending_writes WHERE index_id = ?1)",
        params![index_id, now],
        |r| {
            Ok(Pending {
                pending_id: r.get(0)?,
                mutation_id: r.get(1)?,
                kind: r.get(2)?,
                tenant: r.get(3)?,
                payload: r.get(4)?,
            })
        },
    )
    .optional()
}

/// Removes a queued write inside the transaction that applies it; `false` when another
/// drainer already took it (the caller then rolls back and skips it).
pub(crate) fn take(conn: &Connection, pending_id: i64) -> rusqlite::Result<bool> {
    Ok(conn.execute(
        "DELETE FROM d1vec_pending_writes WHERE pending_id = ?1",
        [pending_id],
    )? == 1)
}

/// Removes a queued write without applying it (it failed when applied).
pub(crate) fn drop_failed(conn: &Connection, pending_id: i64) -> rusqlite::Result<()> {
    take(conn, pending_id).map(|_| ())
}

/// Removes every queued write of a deleted index.
pub(crate) fn forget_index(conn: &Connection, index_id: i64) -> rusqlite::Result<()> {
    if table_exists(conn)? {
        conn.execute(
            "DELETE FROM d1vec_pending_writes WHERE index_id = ?1",
            [index_id],
        )?;
    }
    Ok(())
}

/// The error a write's transaction returns when its queued write was already applied by
/// another drainer.
pub(crate) fn already_applied() -> Error {
    Error::invalid("pending write", "already applied by another caller")
}

/// Whether `e` is [`already_applied`].
pub(crate) fn is_already_applied(e: &Error) -> bool {
    matches!(
        e,
        Error::InvalidInput {
            what: "pending write",
            ..
        }
    )
}
