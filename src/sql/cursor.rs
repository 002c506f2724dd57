//! Keyset pagination of any query with an opaque cursor.
//!
//! A page is the query's rows ordered by a sort key and then an id (the tie-breaker), taken
//! after the position the cursor names. Unlike `LIMIT … OFFSET`, the position is a value,
//! not a count, so rows inserted while a caller walks the pages never shift it: every row
//! that existed when the walk started is seen exactly once, and each page costs an index
//! seek rather than a scan of the rows before it.
//!
//! ```
//! # fn main() -> d1vec::Result<()> {
//! use d1vec::sql::cursor::{page, PageSpec};
//! let db = d1vec::Database::open_in_memory()?;
//! db.exec("CREATE TABLE t (id TEXT PRIMARY KEY, at TEXT NOT NULL);
//!          INSERT INTO t VALUES ('a','1'),('b','2'),('c','2'),('d','3')")?;
//! let spec = PageSpec::descending("at", "id", 2);
//! let first = page(&db, "SELECT * FROM t", &[], &spec, None)?;
//! assert_eq!(first.rows.len(), 2);
//! let second = page(&db, "SELECT * FROM t", &[], &spec, first.next_cursor.as_deref())?;
//! assert_eq!(second.rows[1]["id"], "a");
//! assert!(second.next_cursor.is_none());
//! # Ok(()) }
//! ```

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value as Json;

use super::result::Row;
use super::statement::Session;
use super::value::Param;
use crate::error::{Error, Result};
use crate::tenant::guard::ident;

/// The most rows one page may hold.
pub const MAX_PAGE_ROWS: usize = 1000;

/// How to order and cut a paged query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSpec {
    /// The column (of the query's result) to order by. Its values must not be `NULL`.
    pub sort_column: String,
    /// A column whose values are unique within the result, ordering rows with equal keys.
    pub id_column: String,
    /// Newest first (`DESC`) when `true`.
    pub descending: bool,
    /// Rows per page, 1 to [`MAX_PAGE_ROWS`].
    pub limit: usize,
}

impl PageSpec {
    /// Pages of `limit` rows, largest `sort_column` first.
    pub fn descending(sort_column: &str, id_column: &str, limit: usize) -> Self {
        PageSpec {
            sort_column: sort_column.to_owned(),
            id_column: id_column.to_owned(),
            descending: true,
            limit,
        }
    }

    /// Pages of `limit` rows, smallest `sort_column` first.
    pub fn ascending(sort_column: &str, id_column: &str, limit: usize) -> Self {
        PageSpec {
            descending: false,
            ..Self::descending(sort_column, id_column, limit)
        }
    }
}

/// One page of rows and the cursor of the next one.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Page {
    /// The rows, in page order.
    pub rows: Vec<Row>,
    /// Pass this back for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A fingerprint binding a cursor to the query and order it came from.
fn fingerprint(sql: &str, spec: &PageSpec) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let parts = [
        sql,
        &spec.sort_column,
        &spec.id_column,
        if spec.descending { "d" } else { "a" },
    ];
    for part in parts {
        for b in part.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn encode(key: &Json, id: &Json, fp: u64) -> String {
    let body = serde_json::json!([key, id, format!("{fp:016x}")]);
    URL_SAFE_NO_PAD.encode(body.to_string())
}

fn decode(cursor: &str, fp: u64) -> Result<(Param, Param)> {
    let bad = |why: &str| Error::invalid("cursor", why.to_owned());
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad("not a cursor this query returned"))?;
    let parts: Vec<Json> =
        serde_json::from_slice(&bytes).map_err(|_| bad("not a cursor this query returned"))?;
    match parts.as_slice() {
        [key, id, Json::String(f)] if *f == format!("{fp:016x}") => {
            Ok((Param::from_json(key)?, Param::from_json(id)?))
        }
        [_, _, Json::String(_)] => Err(bad("it belongs to a different query or order")),
        _ => Err(bad("not a cursor this query returned")),
    }
}

/// Fetches the page of `sql` (with its `params`) that follows `cursor` (the first page when
/// `None`), on any session: a [`crate::Database`] or a [`crate::TenantSession`].
///
/// `sql` should have no `ORDER BY` or `LIMIT` of its own; d1vec wraps it.
pub fn page(
    session: &impl Session,
    sql: &str,
    params: &[Param],
    spec: &PageSpec,
    cursor: Option<&str>,
) -> Result<Page> {
    if spec.limit == 0 || spec.limit > MAX_PAGE_ROWS {
        return Err(Error::LimitExceeded {
            what: "rows per page",
            limit: MAX_PAGE_ROWS,
            got: spec.limit,
        });
    }
    let fp = fingerprint(sql, spec);
    let (key, id) = (ident(&spec.sort_column), ident(&spec.id_column));
    let (cmp, dir) = if spec.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let mut bound = params.to_vec();
    let after = match cursor {
        Some(c) => {
            let (k, i) = decode(c, fp)?;
            let n = bound.len();
            bound.push(k);
            bound.push(i);
            format!(" WHERE ({key}, {id}) {cmp} (?{}, ?{})", n + 1, n + 2)
        }
        None => String::new(),
    };
    let paged = format!(
        "SELECT * FROM ({sql}) AS d1vec_page{after} ORDER BY {key} {dir}, {id} {dir} LIMIT {}",
        spec.limit + 1
    );
    let mut rows = session.prepare(&paged).bind(bound).all()?.results;
    let more = rows.len() > spec.limit;
    rows.truncate(spec.limit);
    let next_cursor = match rows.last() {
        Some(last) if more => {
            let k = last.get(&spec.sort_column).cloned().unwrap_or(Json::Null);
            let i = last.get(&spec.id_column).cloned().unwrap_or(Json::Null);
            if k.is_null() || i.is_null() {
                return Err(Error::invalid(
                    "page order",
                    format!(
                        "`{}` and `{}` must be non-NULL columns of the query",
                        spec.sort_column, spec.id_column
                    ),
                ));
            }
            Some(encode(&k, &i, fp))
        }
        _ => None,
    };
    Ok(Page { rows, next_cursor })
}
