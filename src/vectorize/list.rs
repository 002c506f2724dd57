//! list-vectors: id pages over a snapshot taken by the first call.
//!
//! The cursor carries the mutation sequence of the snapshot and the last id returned. A page
//! shows the vectors written at or before the snapshot that are still live, plus those
//! deleted or replaced after it (kept as tombstones until `compact`). Cursors expire after
//! an hour. A compaction during a listing clears those tombstones: the listing goes on,
//! without the vectors deleted or replaced after its snapshot.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::error::{codes, VectorizeError};
use super::limits;
use super::store::IndexRow;
use super::types::{ListVectorsResponse, ListedVector};
use crate::db::Shared;
use crate::error::{Error, Result};

/// How long a cursor stays valid, in seconds.
pub const CURSOR_TTL_SECONDS: u64 = 3600;

#[derive(Serialize, Deserialize)]
struct Cursor {
    index: i64,
    snapshot: i64,
    after: String,
    expires: u64,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn bad_cursor(why: &str) -> Error {
    Error::Vectorize(VectorizeError::new(
        codes::INVALID_REQUEST_BODY,
        format!("invalid cursor: {why}"),
    ))
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
        return Err(Error::Vectorize(VectorizeError::new(
            codes::INVALID_REQUEST_BODY,
            format!(
                "count must be between 1 and {}, got {count}",
                limits::MAX_LIST_COUNT
            ),
        )));
    }
    shared.admin.internal_tx(|tx| {
        let snapshot_now: i64 = tx.query_row("SELECT seq FROM d1vec_indexes WHERE index_id = ?1", [row.index_id], |r| r.get(0))?;
        let (snapshot, after, expires) = match cursor {
            None => (snapshot_now, String::new(), now_secs() + CURSOR_TTL_SECONDS),
            Some(c) => {
                let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad_cursor("not a cursor"))?;
                let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad_cursor("not a cursor"))?;
                if c.index != row.index_id {
                    return Err(bad_cursor("it belongs to another index"));
                }
                if c.expires < now_secs() {
                    return Err(bad_cursor("it has expired; start a new listing without a cursor"));
                }
                (c.snapshot, c.after, c.expires)
            }
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
        let ids: Vec<String> = stmt
            .query_map(rusqlite::params![row.index_id, snapshot, namespace, after, (count + 1) as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let truncated = ids.len() > count;
        let ids: Vec<String> = ids.into_iter().take(count).collect();
        let next_cursor = match ids.last() {
            Some(last) if truncated => Some(
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(&Cursor {
                    index: row.index_id,
                    snapshot,
                    after: last.clone(),
                    expires,
                })?),
            ),
            _ => None,
        };
        let expiry = humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(expires)).to_string();
        Ok(ListVectorsResponse {
            count: ids.len(),
            total_count: u64::try_from(total).unwrap_or(0),
            is_truncated: truncated,
            cursor_expiration_timestamp: next_cursor.as_ref().map(|_| expiry),
            next_cursor,
            vectors: ids.into_iter().map(|id| ListedVector { id }).collect(),
        })
    })
}
