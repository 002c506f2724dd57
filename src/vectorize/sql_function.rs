//! `vectorize_query`: vector matches as rows, so that one SQL statement can join them with
//! the rows they were made from.
//!
//! ```sql
//! SELECT c.text, m.score
//! FROM vectorize_query('nds-knowledge', :vector, 10, :filter) AS m
//! JOIN knowledge_chunks c ON c.vector_id = m.id
//! ORDER BY m.rank
//! ```
//!
//! # Arguments
//!
//! `vectorize_query(index, vector [, topK [, filter [, namespace [, returnMetadata]]]])`;
//! a trailing argument may be left out or given as `NULL` for its default.
//!
//! - `index`: the index name (text).
//! - `vector`: the query vector, as JSON text (`'[0.1, 0.2]'`) or as a BLOB of little-endian
//!   float32 values (how d1vec stores vectors).
//! - `topK`: how many matches at most; default 5, as Vectorize.
//! - `filter`: a Vectorize metadata filter as JSON text (`'{"lang": "en"}'`).
//! - `namespace`: search only this namespace.
//! - `returnMetadata`: `'none'` (default), `'indexed'` or `'all'`; fills the `metadata`
//!   column, with Vectorize's caps (`'all'` limits `topK` to 50).
//!
//! # Columns
//!
//! `id` (text), `score` (real: cosine similarity, L2 distance or negative dot product, as
//! Vectorize reports it), `namespace` (text or `NULL`), `metadata` (JSON text, or `NULL` unless
//! `returnMetadata` asks for it) and `rank` (1 for the best match). Rows come out best first,
//! with exactly the ids, scores and order [`super::VectorIndex::query`] returns for the same
//! options; SQLite keeps that order only as long as nothing reorders, so say `ORDER BY m.rank`
//! when it matters. Values are not a column: they are what went in (use
//! [`super::VectorIndex::get_by_ids`] to read stored ones).
//!
//! # Scope
//!
//! The function is registered on every connection of a [`crate::Database`]: the admin one, where
//! it sees whole indexes, and each [`crate::TenantSession`]'s, where it is exactly
//! `session.vectorize(index)` — confined to the tenant's namespace on a private index (naming
//! another namespace is a [`crate::Error::TenantViolation`]) and reading a shared index in full.
//! The tenant comes from the session the connection belongs to; no argument can change it. The
//! function cannot be used inside views or triggers (`SQLITE_VTAB_DIRECTONLY`), so every use is
//! in SQL a session runs itself.
//!
//! # Errors
//!
//! A bad argument, an unknown index, wrong dimensions or a bad filter fail the statement. The
//! session returns the typed error ([`crate::Error::Vectorize`] with Vectorize's code, or
//! [`crate::Error::TenantViolation`]); SQLite's own message reads
//! `vectorize_query: VECTOR_QUERY_ERROR (code = N): ...`.
//!
//! # How it reaches the vectors
//!
//! On the admin connection the function runs inside a statement whose connection `Mutex` that
//! statement holds, inside its transaction: it queries through that same connection (nested
//! statements on one SQLite connection are allowed) with the authorizer in internal mode for
//! its own reads, and never touches the admin connection's lock. A tenant session's
//! connection reaches the database only through its scoped views (see ARCHITECTURE.md), so
//! there the function reads on a pooled reader connection, in a read transaction of its own,
//! and scopes the answer to the session's tenant itself.
//!
//! ```
//! # fn main() -> d1vec::Result<()> {
//! use d1vec::index::Metric;
//! use d1vec::vectorize::{types::Vector, CreateIndex, Scope};
//! let db = d1vec::Database::open_in_memory()?;
//! db.exec("CREATE TABLE tenants (tenant_id TEXT PRIMARY KEY); INSERT INTO tenants VALUES ('acme');
//!          CREATE TABLE notes (note_id TEXT PRIMARY KEY, tenant_id TEXT, body TEXT)")?;
//! db.create_index(&CreateIndex::new("notes", 2, Metric::Cosine).scope(Scope::Private))?;
//! let acme = db.tenant("acme")?;
//! acme.prepare("INSERT INTO notes (note_id, body) VALUES ('n1', 'east'), ('n2', 'north')")
//!     .run()?;
//! acme.vectorize("notes")?.upsert(&[
//!     Vector::new("n1", vec![1.0, 0.0]),
//!     Vector::new("n2", vec![0.0, 1.0]),
//! ])?;
//! let rows = acme
//!     .prepare(
//!         "SELECT n.body, m.score FROM vectorize_query('notes', ?1, 1) AS m
//!          JOIN notes n ON n.note_id = m.id ORDER BY m.rank",
//!     )
//!     .bind(["[0.9, 0.1]"])
//!     .all()?;
//! assert_eq!(rows.results.len(), 1);
//! assert_eq!(rows.results[0]["body"], "east");
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::ffi::{c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use rusqlite::ffi;
use rusqlite::types::Value;
use rusqlite::vtab::{
    Context, Filters, IndexConstraintOp, IndexInfo, Module, VTab, VTabConfig, VTabConnection,
    VTabCursor,
};
use rusqlite::Connection;
use serde_json::{Map, Value as Json};

use super::error::{codes, Op, VectorizeError};
use super::index::{not_found, Caller, VectorIndex};
use super::types::{Match, QueryOptions};
use crate::db::Shared;
use crate::error::{Error, Result};
use crate::sql::auth::AuthState;
use crate::sql::conn::{RaisedError, SqlConn};

/// The function's name in SQL.
pub const NAME: &str = "vectorize_query";

/// The table SQLite sees: five result columns, then one hidden column per argument.
const SCHEMA: &CStr = c"CREATE TABLE x(id TEXT, score REAL, namespace TEXT, metadata TEXT, rank INTEGER, index_name HIDDEN, query_vector HIDDEN, top_k HIDDEN, filter HIDDEN, query_namespace HIDDEN, return_metadata HIDDEN)";

/// The result columns.
const COL_ID: c_int = 0;
const COL_SCORE: c_int = 1;
const COL_NAMESPACE: c_int = 2;
const COL_METADATA: c_int = 3;
const COL_RANK: c_int = 4;
/// The first hidden (argument) column; arguments follow in order.
const FIRST_ARG: c_int = 5;
/// How many arguments there are.
const ARGS: usize = 6;
/// Bits of the arguments that must be given: the index name and the vector.
const REQUIRED: u32 = 0b11;

const USAGE: &str =
    "vectorize_query(index, vector [, topK [, filter [, namespace [, returnMetadata]]]])";

/// What the function needs from the connection it is registered on.
struct Binding {
    /// Weak: the admin connection lives inside `Shared` and must not keep it alive.
    shared: Weak<Shared>,
    /// The admin surface, or the tenant of the session owning the connection.
    caller: Caller,
    /// The connection's authorizer state, switched to internal mode for the function's reads.
    auth: Arc<AuthState>,
    /// Where the typed error goes for `SqlConn::map_err`.
    raised: RaisedError,
}

impl Binding {
    /// Keeps `e` for the session and gives SQLite its text.
    fn raise(&self, e: Error) -> rusqlite::Error {
        let text = match &e {
            Error::Vectorize(v) => v.binding_message(Op::VectorQuery),
            other => other.to_string(),
        };
        *self.raised.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        rusqlite::Error::ModuleError(format!("{NAME}: {text}"))
    }
}

/// Registers `vectorize_query` on `conn`, answering as `caller`.
pub(crate) fn register(conn: &SqlConn, shared: Weak<Shared>, caller: Caller) -> Result<()> {
    let binding = Arc::new(Binding {
        shared,
        caller,
        auth: Arc::clone(&conn.auth),
        raised: Arc::clone(&conn.raised),
    });
    const MODULE: Module<'static, QueryTab> = Module::eponymous_only_module();
    // It reads stored data, but scopes every answer to `caller` itself.
    conn.auth.allow_scoped_function(NAME);
    conn.internal(|c| c.create_module(NAME, &MODULE, Some(binding)))
}

/// The virtual table: one per connection (eponymous).
#[repr(C)]
struct QueryTab {
    /// SQLite's part; must come first.
    base: ffi::sqlite3_vtab,
    /// The connection the table belongs to; valid as long as the table.
    db: *mut ffi::sqlite3,
    binding: Arc<Binding>,
}

// SAFETY: `QueryTab` is `#[repr(C)]` with `sqlite3_vtab` first, as rusqlite requires.
unsafe impl<'vtab> VTab<'vtab> for QueryTab {
    type Aux = Arc<Binding>;
    type Cursor = QueryCursor<'vtab>;

    fn connect(
        db: &mut VTabConnection,
        aux: Option<&Arc<Binding>>,
        _module_name: &[u8],
        _database_name: &[u8],
        _table_name: &[u8],
        _args: &[&[u8]],
    ) -> rusqlite::Result<(Cow<'static, CStr>, Self)> {
        let binding = aux
            .cloned()
            .ok_or_else(|| rusqlite::Error::ModuleError(format!("{NAME}: not registered")))?;
        db.config(VTabConfig::DirectOnly)?;
        // SAFETY: only the pointer is kept; it is used solely from this table's cursors, which
        // SQLite runs on the connection's own thread while the connection is open.
        let handle = unsafe { db.handle() };
        let tab = QueryTab {
            base: ffi::sqlite3_vtab::default(),
            db: handle,
            binding,
        };
        Ok((Cow::Borrowed(SCHEMA), tab))
    }

    fn best_index(&self, info: &mut IndexInfo) -> rusqlite::Result<bool> {
        let mut given = 0u32;
        let mut unusable = 0u32;
        let mut source: [Option<usize>; ARGS] = [None; ARGS];
        for (i, c) in info.constraints().enumerate() {
            let Some(arg) = usize::try_from(c.column() - FIRST_ARG)
                .ok()
                .filter(|a| *a < ARGS)
            else {
                continue;
            };
            if c.operator() != IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ {
                continue;
            }
            if !c.is_usable() {
                unusable |= 1 << arg;
            } else if source[arg].is_none() {
                source[arg] = Some(i);
                given |= 1 << arg;
            }
        }
        if unusable & !given != 0 {
            // An argument taken from a table not yet read: not a usable plan.
            return Ok(false);
        }
        if given & REQUIRED != REQUIRED {
            return Err(self.binding.raise(Error::Vectorize(VectorizeError::new(
                codes::INVALID_REQUEST_BODY,
                format!("{USAGE}: the index name and the query vector are required"),
            ))));
        }
        let mut argv = 0;
        for i in source.iter().flatten() {
            argv += 1;
            let mut usage = info.constraint_usage(*i);
            usage.set_argv_index(argv);
            usage.set_omit(true);
        }
        info.set_idx_num(c_int::try_from(given).unwrap_or(0));
        info.set_estimated_cost(10.0);
        info.set_estimated_rows(10);
        Ok(true)
    }

    fn open(&'vtab mut self) -> rusqlite::Result<QueryCursor<'vtab>> {
        Ok(QueryCursor {
            base: ffi::sqlite3_vtab_cursor::default(),
            tab: self,
            args: std::array::from_fn(|_| Value::Null),
            rows: Vec::new(),
            pos: 0,
        })
    }
}

/// One scan: the matches of one query.
#[repr(C)]
struct QueryCursor<'vtab> {
    /// SQLite's part; must come first.
    base: ffi::sqlite3_vtab_cursor,
    tab: &'vtab QueryTab,
    /// The arguments, read back through the hidden columns.
    args: [Value; ARGS],
    rows: Vec<Match>,
    pos: usize,
}

// SAFETY: `QueryCursor` is `#[repr(C)]` with `sqlite3_vtab_cursor` first, as rusqlite requires.
unsafe impl VTabCursor for QueryCursor<'_> {
    fn filter(
        &mut self,
        idx_num: c_int,
        _idx_str: Option<&str>,
        filters: &Filters<'_>,
    ) -> rusqlite::Result<()> {
        let given = u32::try_from(idx_num).unwrap_or(0);
        let mut next = 0;
        for (arg, slot) in self.args.iter_mut().enumerate() {
            *slot = if given & (1 << arg) != 0 {
                next += 1;
                filters.get::<Value>(next - 1)?
            } else {
                Value::Null
            };
        }
        self.rows.clear();
        self.pos = 0;
        let tab = self.tab;
        // Nothing may unwind into SQLite.
        let outcome = catch_unwind(AssertUnwindSafe(|| run(tab, &self.args)))
            .unwrap_or_else(|_| Err(Error::invalid("vectorize_query", "internal failure")));
        match outcome {
            Ok(rows) => {
                self.rows = rows;
                Ok(())
            }
            Err(e) => Err(tab.binding.raise(e)),
        }
    }

    fn next(&mut self) -> rusqlite::Result<()> {
        self.pos += 1;
        Ok(())
    }

    fn eof(&self) -> bool {
        self.pos >= self.rows.len()
    }

    fn column(&self, ctx: &mut Context, i: c_int) -> rusqlite::Result<()> {
        if let Some(arg) = usize::try_from(i - FIRST_ARG).ok().filter(|a| *a < ARGS) {
            return ctx.set_result(&self.args[arg]);
        }
        let m = self
            .rows
            .get(self.pos)
            .ok_or_else(|| rusqlite::Error::ModuleError(format!("{NAME}: no current row")))?;
        match i {
            COL_ID => ctx.set_result(&m.id),
            COL_SCORE => ctx.set_result(m.score),
            COL_NAMESPACE => ctx.set_result(&m.namespace),
            COL_METADATA => ctx.set_result(
                m.metadata
                    .as_ref()
                    .map(|meta| Json::Object(meta.clone()).to_string()),
            ),
            COL_RANK => ctx.set_result(self.rowid()?),
            _ => ctx.set_result(Value::Null),
        }
    }

    fn rowid(&self) -> rusqlite::Result<i64> {
        Ok(i64::try_from(self.pos + 1).unwrap_or(i64::MAX))
    }
}

/// Runs one query with the cursor's arguments.
fn run(tab: &QueryTab, args: &[Value; ARGS]) -> Result<Vec<Match>> {
    let [index, vector, top_k, filter, namespace, return_metadata] = args;
    let Value::Text(name) = index else {
        return Err(bad_argument(format!(
            "index: expected the index name as text, got {}",
            kind(index)
        )));
    };
    let vector = query_vector(vector)?;
    let options = query_options(top_k, filter, namespace, return_metadata)?;
    let binding = &tab.binding;
    let shared = binding
        .shared
        .upgrade()
        .ok_or_else(|| Error::invalid("database", "it is closed"))?;
    if binding.caller.is_scoped() {
        // A tenant session's connection reaches the database only through its scoped views
        // (its `main` is empty, see `tenant::guard`): the engine reads on a pooled reader
        // connection instead, and scopes the answer itself (`Caller::Scoped`).
        return shared.read_tx(|tx| {
            if !shared.vectors.schema_ready.load(Ordering::Acquire) && !has_vector_tables(tx)? {
                return Err(not_found(name));
            }
            let index =
                VectorIndex::open_on(tx, Arc::clone(&shared), name, binding.caller.clone())?;
            Ok(index.query_on(tx, &vector, &options)?.matches)
        });
    }
    // SAFETY: `tab.db` is the connection this table belongs to, open for the table's whole
    // life; xFilter runs on the thread that is stepping a statement on it, and SQLite allows
    // nested statements on one connection. The wrapper is not owned: dropping it leaves the
    // connection (and its authorizer) as it was.
    let conn = unsafe { Connection::from_handle(tab.db) }?;
    // The function's own reads of the `d1vec_` tables; the user's statement was authorized
    // when it was prepared, and nothing else is prepared until this guard drops.
    let _internal = binding.auth.internal();
    if !shared.vectors.schema_ready.load(Ordering::Acquire) && !has_vector_tables(&conn)? {
        return Err(not_found(name));
    }
    let index = VectorIndex::open_on(&conn, Arc::clone(&shared), name, binding.caller.clone())?;
    Ok(index.query_on(&conn, &vector, &options)?.matches)
}

/// Whether the vector tables exist (no index was ever created if not).
fn has_vector_tables(conn: &Connection) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = 'd1vec_indexes')",
        [],
        |r| r.get(0),
    )?)
}

/// A 40026 error about an argument.
fn bad_argument(what: String) -> Error {
    Error::Vectorize(VectorizeError::new(
        codes::INVALID_REQUEST_BODY,
        format!("{USAGE}: {what}"),
    ))
}

/// The SQL type of a value, for messages (never the value itself).
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Integer(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "a BLOB",
    }
}

/// The query vector from JSON text or a little-endian float32 BLOB.
fn query_vector(v: &Value) -> Result<Vec<f64>> {
    let bad = |why: String| {
        bad_argument(format!(
            "vector: expected a JSON array of numbers or a BLOB of little-endian float32, {why}"
        ))
    };
    match v {
        Value::Text(text) => {
            let json: Json = serde_json::from_str(text)
                .map_err(|e| bad(format!("got text that is not JSON ({e})")))?;
            let Json::Array(items) = json else {
                return Err(bad("got JSON that is not an array".into()));
            };
            items
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    x.as_f64()
                        .ok_or_else(|| bad(format!("element {i} is not a number")))
                })
                .collect()
        }
        Value::Blob(bytes) if bytes.len() % 4 == 0 => Ok(bytes
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect()),
        Value::Blob(bytes) => Err(bad(format!(
            "got a BLOB of {} bytes, not a multiple of 4",
            bytes.len()
        ))),
        other => Err(bad(format!("got {}", kind(other)))),
    }
}

/// The options, checked by [`QueryOptions::from_json`] as a Vectorize request body would be.
fn query_options(
    top_k: &Value,
    filter: &Value,
    namespace: &Value,
    return_metadata: &Value,
) -> Result<QueryOptions> {
    let mut body = Map::new();
    body.insert("topK".into(), scalar("topK", top_k)?);
    body.insert("namespace".into(), scalar("namespace", namespace)?);
    body.insert(
        "returnMetadata".into(),
        scalar("returnMetadata", return_metadata)?,
    );
    match filter {
        Value::Null => {}
        Value::Text(text) => {
            let json: Json = serde_json::from_str(text).map_err(|e| {
                Error::Vectorize(VectorizeError::new(
                    codes::INVALID_FILTER,
                    format!("filter: not JSON ({e})"),
                ))
            })?;
            body.insert("filter".into(), json);
        }
        other => {
            return Err(Error::Vectorize(VectorizeError::new(
                codes::INVALID_FILTER,
                format!("filter: expected JSON text, got {}", kind(other)),
            )))
        }
    }
    Ok(QueryOptions::from_json(&Json::Object(body))?)
}

/// A scalar argument as the JSON a request body would carry.
fn scalar(what: &str, v: &Value) -> Result<Json> {
    Ok(match v {
        Value::Null => Json::Null,
        Value::Integer(i) => Json::from(*i),
        Value::Real(r) => serde_json::Number::from_f64(*r).map_or(Json::Null, Json::Number),
        Value::Text(t) => Json::String(t.clone()),
        Value::Blob(_) => return Err(bad_argument(format!("{what}: got a BLOB"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_parse_from_json_text_and_f32_blobs() {
        let text = Value::Text("[0.5, -1, 2e0]".into());
        assert_eq!(query_vector(&text).unwrap(), vec![0.5, -1.0, 2.0]);
        let blob: Vec<u8> = [0.5f32, -1.0, 2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            query_vector(&Value::Blob(blob)).unwrap(),
            vec![0.5, -1.0, 2.0]
        );
        for bad in [
            Value::Text("[1, \"x\"]".into()),
            Value::Text("{\"a\": 1}".into()),
            Value::Text("not json".into()),
            Value::Blob(vec![0; 5]),
            Value::Null,
            Value::Integer(3),
        ] {
            let e = query_vector(&bad).unwrap_err();
            assert_eq!(e.json_code(), codes::INVALID_REQUEST_BODY, "{e}");
        }
    }

    #[test]
    fn options_default_and_check_like_a_request_body() {
        let o = query_options(&Value::Null, &Value::Null, &Value::Null, &Value::Null).unwrap();
        assert_eq!(o, QueryOptions::default());
        let o = query_options(
            &Value::Integer(7),
            &Value::Text("{\"k\": 1}".into()),
            &Value::Text("ns".into()),
            &Value::Text("indexed".into()),
        )
        .unwrap();
        assert_eq!(o.top_k, 7);
        assert_eq!(o.filter, Some(serde_json::json!({"k": 1})));
        assert_eq!(o.namespace.as_deref(), Some("ns"));
        assert_eq!(
            o.return_metadata,
            crate::vectorize::types::ReturnMetadata::Indexed
        );
        let code = |r: Result<QueryOptions>| r.unwrap_err().json_code();
        let null = Value::Null;
        assert_eq!(
            code(query_options(&Value::Integer(-1), &null, &null, &null)),
            40026
        );
        assert_eq!(
            code(query_options(&Value::Text("5".into()), &null, &null, &null)),
            40026
        );
        assert_eq!(
            code(query_options(&null, &Value::Text("{".into()), &null, &null)),
            codes::INVALID_FILTER
        );
        assert_eq!(
            code(query_options(&null, &Value::Integer(1), &null, &null)),
            codes::INVALID_FILTER
        );
        assert_eq!(
            code(query_options(&null, &null, &Value::Integer(1), &null)),
            40026
        );
    }
}
