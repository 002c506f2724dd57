//! list-vectors: id pages over a snapshot taken by the first call.
//!
//! The cursor carries the mutation sequence of the snapshot and the last id returned. A page
//! shows the vectors written at or before the snapshot that are still live, plus those
//! deleted or replaced after it (kept as tombstones until `compact`). Cursors expire an
//! hour after the listing's first page. A compaction during a listing clears those
//! tombstones: the listing goes on, without the vectors deleted or replaced after its
//! snapshot.
//!
//! A cursor is signed under the database's key ([`crate::sql::token`]) and bound to the
//! index (its id, name and creation time, so a deleted and re-created index refuses the old
//! one's cursors) and to the caller's forced namespace (a tenant's, on a private index). An
//! altered, expired or foreign cursor is a 400 "invalid cursor: …" error naming why.

use super::error::{codes, VectorizeError};
use super::limits;
use super::store::IndexRow;
use super::types::{ListVectorsResponse, ListedVector};
use crate::db::Shared;
use crate::error::{Error, Result};
use crate::sql::token::{self, CursorError, CursorKind, Expect, Position};

/// How long a cursor stays valid, in seconds, counted from the listing's first page.
pub const CURSOR_TTL_SECONDS: u64 = CursorKind::ListVectors.ttl_seconds();

fn invalid_request(message: String) -> Error {
    Error::Vectorize(VectorizeError::new(codes::INVALID_REQUEST_BODY, message))
}

fn bad_cursor(why: impl std::fmt::Display) -> Error {
    invalid_request(format!("invalid cursor: {why}"))
}

pub(crate) fn list_vectors(
    shared: &Shared,
    row: &IndexRow,
    namespace: Option<&str>,
    count: Option<usize>,
    cursor: Option<&str>,
) -> Result<ListVectorsResponse> {
    let count = count.unwrap_or(limits::DEFAULT_LIST_COUNT);
    if count == 0 || count > limits::MAX_LIST_COUNT {
        return Err(invalid_request(format!(
            "count must be between 1 and {}, got {count}",
            limits::MAX_LIST_COUNT
        )));
    }
    // Before any transaction: loading the key may take the admin connection.
    let key = shared.cursor_key()?;
    let namespace_part = match namespace {
        None => vec![0],
        Some(ns) => [&[1u8][..], ns.as_bytes()].concat(),
    };
    let expect = Expect {
        kind: CursorKind::ListVectors,
        scope: key.scope(
            CursorKind::ListVectors,
            &[
                &row.index_id.to_le_bytes(),
                row.name.as_bytes(),
                row.created_on.as_bytes(),
                &namespace_part,
            ],
        ),
        scope_name: "index or tenant scope",
        now: token::now_secs(),
    };
    // The MAC, scope and expiry are checked before any SQL runs.
    let resumed = match cursor {
        None => None,
        Some(c) => match key.decode(c, &expect).map_err(bad_cursor)? {
            (Position::List { snapshot, after }, expires) => Some((snapshot, after, expires)),
            (Position::Page { .. }, _) => {
                return Err(bad_cursor(CursorError::BadPosition("not a list position")))
            }
        },
    };
    shared.read_tx(|tx| {
        let snapshot_now: i64 = tx.query_row(
            "SELECT seq FROM d1vec_indexes WHERE index_id = ?1",
            [row.index_id],
            |r| r.get(0),
        )?;
        let (snapshot, after, expires) = match resumed {
            None => {
                let expires = expect
                    .now
                    .checked_add(CURSOR_TTL_SECONDS)
                    .ok_or_else(|| bad_cursor("the clock is past the end of time"))?;
                (snapshot_now, String::new(), expires)
            }
            Some((snapshot, _, _)) if snapshot > snapshot_now => {
                return Err(bad_cursor(format!(
                    "its snapshot {snapshot} is ahead of the index (at {snapshot_now})"
                )))
            }
            Some(resumed) => resumed,
        };
        let view = "SELECT id, namespace, seq AS row_seq FROM d1vec_vectors WHERE index_id = ?1
                    UNION ALL
                    SELECT id, namespace, row_seq FROM d1vec_tombstones WHERE index_id = ?1 AND seq > ?2";
        let filter = "row_seq <= ?2 AND (?3 IS NULL OR namespace = ?3)";
        let total: i64 = tx.query_row(
            &format!("SELECT count(DISTINCT id) FROM ({view}) WHERE {filter}"),
            rusqlite::params![row.index_id, snapshot, namespace],
            |r| r.get(0),
        )?;
        let mut stmt = tx.prepare(&format!(
            "SELECT DISTINCT id FROM ({view}) WHERE {filter} AND id > ?4 ORDER BY id LIMIT ?5"
        ))?;
        // count <= MAX_LIST_COUNT, so count + 1 fits in i64.
        let fetch = i64::try_from(count.saturating_add(1)).unwrap_or(i64::MAX);
        let ids: Vec<String> = stmt
            .query_map(
                rusqlite::params![row.index_id, snapshot, namespace, after, fetch],
                |r| r.get(0),
            )?
            .collect::<rusqlite::Result<_>>()?;
        let truncated = ids.len() > count;
        let ids: Vec<String> = ids.into_iter().take(count).collect();
        let next_cursor = match ids.last() {
            Some(last) if truncated => Some(
                key.encode(
                    &Position::List {
                        snapshot,
                        after: last.clone(),
                    },
                    expect.scope,
                    expires,
                )
                .map_err(bad_cursor)?,
            ),
            _ => None,
        };
        Ok(ListVectorsResponse {
            count: ids.len(),
            total_count: u64::try_from(total).unwrap_or(0),
            is_truncated: truncated,
            cursor_expiration_timestamp: next_cursor
                .as_ref()
                .map(|_| token::format_unix_seconds(expires)),
            next_cursor,
            vectors: ids.into_iter().map(|id| ListedVector { id }).collect(),
        })
    })
}
