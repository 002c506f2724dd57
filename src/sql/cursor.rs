//! Keyset pagination of any query with an opaque cursor.
//!
//! A page is the query's rows ordered by a sort key and then an id (the tie-breaker), taken
//! after the position the cursor names. Unlike `LIMIT … OFFSET`, the position is a value,
//! not a count, so rows inserted while a caller walks the pages never shift it: every row
//! that existed when the walk started is seen exactly once, and each page costs an index
//! seek rather than a scan of the rows before it.
//!
//! A cursor is signed (HMAC-SHA256 under the database's own key, see [`super::token`]) and
//! bound to the tenant, the query, its bound values and its order, and expires
//! [`CURSOR_TTL_SECONDS`] after the page that issued it. A cursor that was altered, comes
//! from another database, query, order or tenant, has expired, or is longer than 8,192
//! characters is refused with [`Error::InvalidInput`] naming `cursor` and why.
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

use serde_json::Value as Json;

use super::result::Row;
use super::statement::Session;
use super::token::{self, CursorError, CursorKind, Expect, Position, SCOPE_BYTES};
use super::value::Param;
use crate::db::Shared;
use crate::error::{Error, Result};
use crate::sql::quote_ident as ident;

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

/// The database and tenant a session's cursors belong to; see [`Session`]. Opaque: only
/// d1vec's own sessions make one.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct CursorScope<'a> {
    shared: &'a Shared,
    tenant: Option<&'a str>,
}

impl<'a> CursorScope<'a> {
    pub(crate) fn new(shared: &'a Shared, tenant: Option<&'a str>) -> Self {
        CursorScope { shared, tenant }
    }
}

/// How long a page cursor stays valid after the page that issued it, in seconds.
pub const CURSOR_TTL_SECONDS: u64 = CursorKind::Page.ttl_seconds();

/// The bytes a cursor's scope digest is taken over: the tenant (or none, for the admin
/// surface), the query, its bound values and its order. The page size is left out: a
/// position means the same at any page size, and a walk may change it.
fn scope_parts(tenant: Option<&str>, sql: &str, params: &[Param], spec: &PageSpec) -> Vec<Vec<u8>> {
    let tenant = match tenant {
        None => vec![0],
        Some(t) => [&[1u8][..], t.as_bytes()].concat(),
    };
    let mut bound = Vec::new();
    for p in params {
        let (tag, bytes): (u8, std::borrow::Cow<'_, [u8]>) = match p {
            Param::Null => (0, (&[][..]).into()),
            Param::Integer(i) => (1, i.to_le_bytes().to_vec().into()),
            Param::Real(f) => (2, f.to_bits().to_le_bytes().to_vec().into()),
            Param::Text(t) => (3, t.as_bytes().into()),
            Param::Blob(b) => (4, b.as_slice().into()),
        };
        bound.push(tag);
        bound.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        bound.extend_from_slice(&bytes);
    }
    vec![
        tenant,
        sql.as_bytes().to_vec(),
        bound,
        spec.sort_column.as_bytes().to_vec(),
        spec.id_column.as_bytes().to_vec(),
        vec![u8::from(spec.descending)],
    ]
}

fn bad_cursor(e: CursorError) -> Error {
    Error::invalid("cursor", e.to_string())
}

fn decode(key: &token::CursorKey, expect: &Expect, cursor: &str) -> Result<(Param, Param)> {
    match key.decode(cursor, expect).map_err(bad_cursor)? {
        (Position::Page { key, id }, _) => {
            let param = |v: &Json| {
                Param::from_json(v)
                    .map_err(|_| bad_cursor(CursorError::BadPosition("not a bindable value")))
            };
            Ok((param(&key)?, param(&id)?))
        }
        (Position::List { .. }, _) => {
            Err(bad_cursor(CursorError::BadPosition("not a page position")))
        }
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
    let scope = session.cursor_scope();
    let signer = scope.shared.cursor_key()?;
    let parts = scope_parts(scope.tenant, sql, params, spec);
    let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let expect = Expect {
        kind: CursorKind::Page,
        scope: signer.scope(CursorKind::Page, &parts),
        scope_name: "query, order or tenant",
        now: token::now_secs(),
    };
    let (key, id) = (ident(&spec.sort_column), ident(&spec.id_column));
    let (cmp, dir) = if spec.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let mut bound = params.to_vec();
    let after = match cursor {
        Some(c) => {
            let (k, i) = decode(signer, &expect, c)?;
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
            Some(encode(signer, expect.scope, expect.now, k, i)?)
        }
        _ => None,
    };
    Ok(Page { rows, next_cursor })
}

/// Signs the position after `key`/`id`, valid for [`CURSOR_TTL_SECONDS`] from `now`.
fn encode(
    key: &token::CursorKey,
    scope: [u8; SCOPE_BYTES],
    now: u64,
    sort_key: Json,
    id: Json,
) -> Result<String> {
    let expires = now
        .checked_add(CURSOR_TTL_SECONDS)
        .ok_or_else(|| Error::invalid("clock", format!("{now} s is past the end of time")))?;
    key.encode(&Position::Page { key: sort_key, id }, scope, expires)
        .map_err(|e| match e {
            CursorError::TooLong { got, limit } => Error::invalid(
                "page order",
                format!(
                    "the last row's sort key and id make a cursor of {got} characters, the limit is {limit}"
                ),
            ),
            other => bad_cursor(other),
        })
}
