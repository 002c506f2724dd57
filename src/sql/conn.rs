//! One SQLite connection under d1vec's authorizer, and the D1 execution model on it: every
//! call is one transaction, every statement is checked against D1's limits, and results
//! come back as D1 shapes them.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, StatementStatus, TransactionBehavior};
use serde_json::Map;

use super::auth::{self, AuthState, Denial};
use super::bookmark::{self, SessionState};
use super::limits::{self, Budget, D1Limits};
use super::result::{D1Result, Meta, Timings};
use super::value::{column_to_json, Param};
use super::writes::{self, SharedWriteLog, WriteLog};
use crate::error::{Error, Result};

/// D1's limit on bound parameters per statement (the default of
/// [`D1Limits::max_bound_parameters`]).
pub const MAX_BOUND_PARAMETERS: usize = 100;
/// D1's limit on the length of one SQL statement, in bytes (the default of
/// [`D1Limits::max_statement_bytes`]).
pub const MAX_STATEMENT_BYTES: usize = 100_000;

/// Where a database lives.
#[derive(Debug, Clone)]
pub(crate) enum Location {
    /// A file on disk (WAL mode).
    File(PathBuf),
    /// A private in-memory database shared by this process's connections to `name`.
    Memory(String),
}

/// Connection settings.
#[derive(Debug, Clone)]
pub(crate) struct ConnOptions {
    pub busy_timeout: Duration,
    pub synchronous_full: bool,
    pub limits: D1Limits,
    /// Counts every SQL statement run on the connections opened with these options (one
    /// [`crate::Database`]'s): a test hook, read through `Stats::sql_statements`.
    pub statements: Arc<StatementCount>,
}

/// The number of SQL statements the connections of one database ran (see
/// [`SqlConn::open`]): counted by SQLite's statement trace, so every statement counts,
/// whoever prepared it (the engine, user SQL, pragmas), but not trigger sub-programs.
#[derive(Debug, Default)]
pub(crate) struct StatementCount(std::sync::atomic::AtomicU64);

impl StatementCount {
    /// Statements run so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// SQLite's statement trace callback: counts statements into the [`StatementCount`] that
/// `ctx` points to. Trigger sub-programs (whose text SQLite passes as `-- TRIGGER ...`) are
/// part of their statement and not counted.
unsafe extern "C" fn count_statement(
    _event: std::ffi::c_uint,
    ctx: *mut std::ffi::c_void,
    _stmt: *mut std::ffi::c_void,
    sql: *mut std::ffi::c_void,
) -> std::ffi::c_int {
    // SAFETY: SQLite passes the NUL-terminated text of the statement (or of a trigger
    // sub-program) as `sql` for SQLITE_TRACE_STMT events, valid for this call; reading its
    // first two bytes stops at the terminator.
    let nested = unsafe {
        let text = sql.cast::<u8>();
        !text.is_null() && *text == b'-' && *text.add(1) == b'-'
    };
    if !nested {
        // SAFETY: `ctx` is the `StatementCount` of an `Arc` the connection's `SqlConn` holds
        // (field `statements`), dropped only after the connection is closed.
        let count = unsafe { &*ctx.cast::<StatementCount>() };
        count.0.fetch_add(1, Ordering::Relaxed);
    }
    0
}

/// Installs [`count_statement`] on `conn`.
fn install_statement_count(conn: &Connection, count: &Arc<StatementCount>) -> Result<()> {
    let ctx = Arc::as_ptr(count).cast_mut().cast::<std::ffi::c_void>();
    // SAFETY: `conn.handle()` is the live connection; the callback and `ctx` stay valid
    // while it is open (see `count_statement`), and the trace is a plain C callback that
    // touches nothing of rusqlite's.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_trace_v2(
            conn.handle(),
            rusqlite::ffi::SQLITE_TRACE_STMT as std::ffi::c_uint,
            Some(count_statement),
            ctx,
        )
    };
    if rc != rusqlite::ffi::SQLITE_OK {
        return Err(Error::invalid(
            "sqlite statement trace",
            format!("sqlite3_trace_v2 returned {rc}"),
        ));
    }
    Ok(())
}

/// A scoped connection's view of the database, kept in step with the database's schema.
/// Implemented by the tenant layer; the executor calls it at the start of every call.
pub(crate) trait ScopeRefresh: Send + Sync + std::fmt::Debug {
    /// Runs inside the call's transaction (internal mode) before its first statement:
    /// rebuilds the scope's objects when the database's schema moved since they were built.
    /// Returns whether it rebuilt (a rollback then undoes the rebuild).
    fn refresh(&self, conn: &Connection) -> Result<bool>;
    /// The transaction that rebuilt the scope was rolled back: rebuild on the next call.
    fn invalidate(&self);
    /// Admits a call before it starts (`writes`: whether it plainly writes); an error refuses
    /// it before anything runs (quotas).
    fn admit(&self, writes: bool) -> Result<()>;
}

/// A statement plus its bound values.
#[derive(Debug, Clone)]
pub(crate) struct Bound {
    pub sql: String,
    pub params: Vec<Param>,
}

/// The typed error a d1vec SQL function (`vectorize_query`) raised during the current
/// statement. SQLite only carries text back; [`SqlConn::map_err`] returns this instead.
pub(crate) type RaisedError = Arc<Mutex<Option<Error>>>;

/// A connection and the authorizer state it runs under.
pub(crate) struct SqlConn {
    conn: Mutex<Connection>,
    pub(crate) auth: Arc<AuthState>,
    /// Shared with the SQL functions registered on this connection.
    pub(crate) raised: RaisedError,
    tenant: Option<String>,
    /// The schema name the database's own tables live under on this connection: `main`,
    /// or a scoped connection's secret name (its `main` is then an empty private database).
    schema: String,
    budget: Arc<Budget>,
    scope: Option<Box<dyn ScopeRefresh>>,
    /// Rows the update hook saw during the current user statement.
    writes: SharedWriteLog,
    /// Whether the connection runs in WAL mode (`PRAGMA journal_mode` said `wal`).
    wal: bool,
    /// The statement counter the trace callback writes; declared after `conn`, so it is
    /// dropped after the connection is closed.
    _statements: Arc<StatementCount>,
}

impl std::fmt::Debug for SqlConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlConn")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl SqlConn {
    /// Opens a connection: creates the file if missing, WAL mode, foreign keys on, busy
    /// timeout, D1's limits and authorizer.
    pub fn open(location: &Location, opts: &ConnOptions) -> Result<SqlConn> {
        let conn = match location {
            Location::File(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
                }
                Connection::open_with_flags(path, open_flags())?
            }
            Location::Memory(name) => {
                Connection::open_with_flags(format!("file:/{name}?vfs=memdb"), open_flags())?
            }
        };
        Self::configure(conn, location, opts, "main")
    }

    /// Opens a connection whose `main` is an empty private in-memory database and that
    /// reaches the database at `location` only under the schema name `schema` (attached).
    /// A statement can then name the database's tables only by knowing `schema`; see
    /// ARCHITECTURE.md, "Tenant isolation".
    pub fn open_hidden(location: &Location, opts: &ConnOptions, schema: &str) -> Result<SqlConn> {
        let conn = Connection::open_with_flags(":memory:", open_flags())?;
        let target = match location {
            Location::File(path) => {
                if !path.exists() {
                    return Err(Error::invalid(
                        "database",
                        format!("{} does not exist", path.display()),
                    ));
                }
                path.to_string_lossy().into_owned()
            }
            Location::Memory(name) => format!("file:/{name}?vfs=memdb"),
        };
        conn.execute(
            &format!("ATTACH DATABASE ?1 AS {}", crate::sql::quote_ident(schema)),
            [&target],
        )?;
        Self::configure(conn, location, opts, schema)
    }

    fn configure(
        mut conn: Connection,
        location: &Location,
        opts: &ConnOptions,
        schema: &str,
    ) -> Result<SqlConn> {
        let quoted = crate::sql::quote_ident(schema);
        conn.busy_timeout(opts.busy_timeout)?;
        install_statement_count(&conn, &opts.statements)?;
        let mut wal = false;
        if matches!(location, Location::File(_)) {
            let mode: String =
                conn.query_row(&format!("PRAGMA {quoted}.journal_mode = wal"), [], |r| {
                    r.get(0)
                })?;
            wal = mode.eq_ignore_ascii_case("wal");
        }
        let sync = if opts.synchronous_full {
            "full"
        } else {
            "normal"
        };
        conn.execute_batch(&format!("PRAGMA {quoted}.synchronous = {sync}"))?;
        conn.pragma_update(None, "foreign_keys", "on")?;
        apply_limits(&conn, &opts.limits, &quoted)?;
        let write_log = SharedWriteLog::default();
        writes::install(&mut conn, Arc::clone(&write_log))?;
        let budget = Arc::new(Budget::new(opts.limits.clone()));
        let handler = Arc::clone(&budget);
        conn.progress_handler(
            i32::try_from(limits::PROGRESS_PERIOD).unwrap_or(i32::MAX),
            Some(move || handler.over()),
        )?;
        let state = Arc::new(AuthState::default());
        auth::install(&mut conn, Arc::clone(&state))?;
        Ok(SqlConn {
            conn: Mutex::new(conn),
            auth: state,
            raised: RaisedError::default(),
            tenant: None,
            schema: schema.to_owned(),
            budget,
            scope: None,
            writes: write_log,
            wal,
            _statements: Arc::clone(&opts.statements),
        })
    }

    /// Whether the connection runs in WAL mode (a file database whose journal mode could
    /// be set to WAL).
    pub(crate) fn is_wal(&self) -> bool {
        self.wal
    }

    /// The schema name the database's tables live under on this connection.
    pub(crate) fn schema(&self) -> &str {
        &self.schema
    }

    /// The tenant this connection is scoped to, if any.
    pub(crate) fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// Locks the connection for engine code that needs `&mut Connection` (`dump`), with
    /// every authorizer check off while `f` runs.
    pub(crate) fn internal_mut<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.lock();
        let _internal = self.auth.internal();
        f(&mut conn)
    }

    /// Keeps `scope` current at the start of every call.
    pub fn set_scope(&mut self, scope: Box<dyn ScopeRefresh>) {
        self.scope = Some(scope);
    }

    /// Marks this connection as a tenant session's (for error reports).
    pub fn set_tenant_name(&mut self, tenant: &str) {
        self.tenant = Some(tenant.to_owned());
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The text indexes' change log's highest sequence number (0 when there is none): within
    /// one statement it grows by exactly the rows the log triggers add.
    fn text_log_seq(&self, conn: &Connection) -> u64 {
        let _internal = self.auth.internal();
        let sql = format!(
            "SELECT coalesce(max(seq), 0) FROM {}.d1vec_text_log",
            crate::sql::quote_ident(&self.schema)
        );
        conn.prepare_cached(&sql)
            .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
            .map_or(0, |v| u64::try_from(v).unwrap_or(0))
    }

    /// Runs engine code with every authorizer check off.
    pub fn internal<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.lock();
        let _internal = self.auth.internal();
        f(&conn).map_err(Error::from)
    }

    /// Runs engine code with every authorizer check off; `f` returns d1vec's errors.
    pub fn internal_with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.lock();
        let _internal = self.auth.internal();
        f(&conn)
    }

    /// Runs engine code inside one transaction, committing on success.
    pub fn internal_tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.lock();
        let _internal = self.auth.internal();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs engine code inside one deferred (read) transaction: it sees one snapshot and
    /// takes no write lock, so readers run beside each other and beside a writer.
    pub fn internal_read_tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.lock();
        let _internal = self.auth.internal();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `stmts` in one transaction, as D1's `batch()` does: in order, and all rolled
    /// back if any fails.
    ///
    /// The transaction is deferred unless the first statement plainly writes, so reads take
    /// no write lock and never wait for writers (WAL). A deferred transaction that then has
    /// to write while another connection holds the write lock (or has committed since its
    /// snapshot) fails with `SQLITE_BUSY` at once, without waiting; it is rolled back and run
    /// again from the start under `BEGIN IMMEDIATE`, which waits up to the busy timeout.
    pub fn run_batch(&self, stmts: &[Bound]) -> Result<Vec<D1Result>> {
        self.run_batch_in(stmts, None)
    }

    /// [`SqlConn::run_batch`] inside a D1 session: the call reads no state older than the
    /// session's bookmark, and moves the bookmark to the commit it read or wrote.
    pub fn run_batch_in(
        &self,
        stmts: &[Bound],
        session: Option<&SessionState>,
    ) -> Result<Vec<D1Result>> {
        let plainly_writes =
            |s: &Bound| super::split::leading_keyword(&s.sql).is_some_and(|k| writes(&k));
        let writes_first = stmts.first().is_some_and(plainly_writes);
        if let Some(scope) = &self.scope {
            scope.admit(writes_first || stmts.iter().skip(1).any(plainly_writes))?;
        }
        let conn = self.lock();
        if writes_first {
            return self.attempt(&conn, stmts, TransactionBehavior::Immediate, session, 1);
        }
        match self.attempt(&conn, stmts, TransactionBehavior::Deferred, session, 1) {
            Err(e) if is_busy(&e) => {
                self.attempt(&conn, stmts, TransactionBehavior::Immediate, session, 2)
            }
            other => other,
        }
    }

    fn attempt(
        &self,
        conn: &Connection,
        stmts: &[Bound],
        behavior: TransactionBehavior,
        session: Option<&SessionState>,
        attempt: u32,
    ) -> Result<Vec<D1Result>> {
        let rebuilt = std::cell::Cell::new(false);
        {
            let _internal = self.auth.internal();
            conn.execute_batch(match behavior {
                TransactionBehavior::Immediate => "BEGIN IMMEDIATE",
                _ => "BEGIN DEFERRED",
            })?;
            if let Some(scope) = &self.scope {
                match scope.refresh(conn) {
                    Ok(r) => rebuilt.set(r),
                    Err(e) => {
                        let _ = conn.execute_batch("ROLLBACK");
                        scope.invalidate();
                        return Err(e);
                    }
                }
            }
        }
        let rollback = |e: Error| {
            let _internal = self.auth.internal();
            // The rollback can only fail if the transaction is already gone.
            let _ = conn.execute_batch("ROLLBACK");
            if rebuilt.get() {
                if let Some(scope) = &self.scope {
                    scope.invalidate();
                }
            }
            e
        };
        let mut results = Vec::with_capacity(stmts.len());
        let mut wrote = false;
        for (i, stmt) in stmts.iter().enumerate() {
            // A statement may have changed the schema (created a table the scope covers):
            // the scope is brought up to date before the next one runs.
            if i > 0 {
                if let Some(scope) = &self.scope {
                    let refreshed = {
                        let _internal = self.auth.internal();
                        scope.refresh(conn)
                    };
                    match refreshed {
                        Ok(r) => rebuilt.set(rebuilt.get() || r),
                        Err(e) => return Err(rollback(e)),
                    }
                }
            }
            match self.run_one(conn, stmt) {
                Ok((mut r, readonly)) => {
                    wrote |= !readonly;
                    r.meta.total_attempts = attempt;
                    results.push(r);
                }
                Err(e) => return Err(rollback(e)),
            }
        }
        // The commit counter names this transaction's commit (see `sql::bookmark`); a
        // session reads it to move its bookmark, and checks it is not behind.
        let seq = {
            let _internal = self.auth.internal();
            let bumped = if wrote {
                bookmark::bump(conn, &self.schema, self.tenant.as_deref())
            } else {
                Ok(())
            };
            let read = bumped.and_then(|()| match session {
                Some(s) => bookmark::current(conn, &self.schema, s.scope()).map(Some),
                None => Ok(None),
            });
            match read {
                Ok(seq) => seq,
                Err(e) => return Err(rollback(self.map_err(e))),
            }
        };
        if let (Some(s), Some(seq)) = (session, seq) {
            if let Err(e) = s.check_not_behind(seq) {
                return Err(rollback(e));
            }
        }
        let committed = {
            let _internal = self.auth.internal();
            conn.execute_batch("COMMIT")
        };
        if let Err(e) = committed {
            return Err(rollback(self.map_err(e)));
        }
        if let (Some(s), Some(seq)) = (session, seq) {
            s.advance(seq);
        }
        Ok(results)
    }

    /// Runs one statement; returns its result and whether it was read-only.
    fn run_one(&self, conn: &Connection, stmt: &Bound) -> Result<(D1Result, bool)> {
        let limits = self.budget.limits();
        if stmt.sql.len() > limits.max_statement_bytes {
            return Err(Error::LimitExceeded {
                what: "SQL statement length in bytes",
                limit: limits.max_statement_bytes,
                got: stmt.sql.len(),
            });
        }
        let started = Instant::now();
        if self.tenant.is_some() {
            let keyword = super::split::leading_keyword(&stmt.sql).unwrap_or_default();
            if keyword == "VACUUM" {
                return Err(self.violation("VACUUM"));
            }
        }
        self.auth.begin_statement();
        self.raised.lock().unwrap_or_else(|e| e.into_inner()).take();
        let armed = self.budget.arm();
        let mut prepared = conn.prepare(&stmt.sql).map_err(|e| self.map_err(e))?;
        if self.tenant.is_some() && prepared.is_explain() != 0 {
            return Err(self.violation("EXPLAIN"));
        }
        let expected = prepared.parameter_count();
        if expected > limits.max_bound_parameters {
            return Err(Error::LimitExceeded {
                what: "bound parameters in one statement",
                limit: limits.max_bound_parameters,
                got: expected,
            });
        }
        if stmt.params.len() != expected {
            return Err(Error::invalid(
                "bound values",
                format!(
                    "the statement has {expected} parameters but {} values were bound",
                    stmt.params.len()
                ),
            ));
        }
        for (i, p) in stmt.params.iter().enumerate() {
            prepared
                .raw_bind_parameter(i + 1, p)
                .map_err(|e| self.map_err(e))?;
        }
        let columns: Vec<String> = prepared.column_names().map(str::to_owned).collect();
        let readonly = prepared.readonly();
        let scoped = self.tenant.is_some();
        let scoped_write = scoped && !readonly;
        // Only a table followed by a text index has log triggers to discount.
        let logging = scoped_write && self.auth.has_engine_triggers();
        let logged_before = if logging { self.text_log_seq(conn) } else { 0 };
        let total_before = conn.total_changes();
        let schema_before = if readonly || scoped {
            None
        } else {
            Some(self.schema_version(conn)?)
        };
        let max_bytes = limits.max_result_bytes;
        WriteLog::start(&self.writes);
        let _stop_log = StopLog(&self.writes);
        let mut result_bytes = 0usize;
        let mut results = Vec::new();
        {
            let mut rows = prepared.raw_query();
            while let Some(row) = rows.next().map_err(|e| self.map_err(e))? {
                let mut obj = Map::with_capacity(columns.len());
                for (i, name) in columns.iter().enumerate() {
                    let value = row.get_ref(i)?;
                    result_bytes = result_bytes
                        .saturating_add(limits::json_size(value))
                        .saturating_add(name.len() + 4);
                    if result_bytes > max_bytes {
                        return Err(Error::LimitExceeded {
                            what: "result size in bytes of JSON",
                            limit: max_bytes,
                            got: result_bytes,
                        });
                    }
                    obj.insert(name.clone(), column_to_json(value));
                }
                results.push(obj);
            }
        }
        drop(armed);
        let hooked = WriteLog::finish(&self.writes);
        let total_delta = conn.total_changes().saturating_sub(total_before);
        let changes = if readonly {
            0
        } else if scoped_write {
            // Through the session's views every row is written by a trigger, so SQLite's
            // `changes()` is 0 and the total is counted instead; the rows the text indexes'
            // own triggers log are the engine's, not the caller's.
            let logged = if logging {
                self.text_log_seq(conn).saturating_sub(logged_before)
            } else {
                0
            };
            (conn.total_changes() - total_before).saturating_sub(logged)
        } else if total_delta == 0 {
            // `changes()` keeps the count of the connection's last write (DDL does not
            // reset it), so a statement that changed no row reports 0 itself.
            0
        } else {
            conn.changes()
        };
        let returned = results.len() as u64;
        // A scoped connection reports only what it may see: the rows it returned and wrote
        // (SQLite's scan counter also counts other tenants' rows the views filtered out),
        // and the rowid its own triggers noted (see `tenant::guard`), never the table-wide
        // `last_insert_rowid()`.
        let (rows_read, last_row_id) = if scoped {
            (
                returned.saturating_add(changes),
                self.auth.noted_rowid.load(Ordering::SeqCst),
            )
        } else {
            let scanned =
                u64::try_from(prepared.get_status(StatementStatus::FullscanStep)).unwrap_or(0);
            (scanned + returned, conn.last_insert_rowid())
        };
        drop(prepared);
        let rows_written = if readonly {
            0
        } else {
            let w =
                std::mem::take(&mut *self.auth.writes.lock().unwrap_or_else(|e| e.into_inner()));
            let _internal = self.auth.internal();
            writes::rows_written(
                conn,
                &writes::Counted {
                    schema: &self.schema,
                    hooked,
                    set_columns: &w.set_columns,
                    changed: total_delta,
                    target: w.target,
                },
            )?
        };
        // A scoped connection learns nothing of the database's size, which other tenants'
        // writes move (README, "Deliberate differences from D1").
        let size_after = if scoped { 0 } else { self.size_bytes(conn)? };
        let schema_changed = match schema_before {
            Some(before) => self.schema_version(conn)? != before,
            None => false,
        };
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        Ok((
            D1Result {
                results,
                success: true,
                meta: Meta {
                    served_by: SERVED_BY.to_owned(),
                    served_by_region: SERVED_BY_REGION.to_owned(),
                    served_by_primary: true,
                    timings: Timings {
                        sql_duration_ms: elapsed,
                    },
                    duration: elapsed,
                    changes,
                    last_row_id,
                    changed_db: changes > 0 || rows_written > 0 || schema_changed,
                    size_after,
                    rows_read,
                    rows_written,
                    total_attempts: 1,
                },
                columns,
            },
            readonly,
        ))
    }

    /// The database's size in bytes: `page_count * page_size` as this transaction sees it.
    fn size_bytes(&self, conn: &Connection) -> Result<u64> {
        let _internal = self.auth.internal();
        let quoted = crate::sql::quote_ident(&self.schema);
        let pages: i64 = conn
            .prepare_cached(&format!("PRAGMA {quoted}.page_count"))?
            .query_row([], |r| r.get(0))?;
        let size: i64 = conn
            .prepare_cached(&format!("PRAGMA {quoted}.page_size"))?
            .query_row([], |r| r.get(0))?;
        Ok(u64::try_from(pages.saturating_mul(size)).unwrap_or(0))
    }

    fn schema_version(&self, conn: &Connection) -> Result<i64> {
        let _internal = self.auth.internal();
        let quoted = crate::sql::quote_ident(&self.schema);
        Ok(conn
            .prepare_cached(&format!("PRAGMA {quoted}.schema_version"))?
            .query_row([], |r| r.get(0))?)
    }

    fn violation(&self, object: &str) -> Error {
        Error::TenantViolation {
            tenant: self.tenant.clone().unwrap_or_default(),
            object: object.to_owned(),
        }
    }

    /// Turns a SQLite error into d1vec's: authorizer refusals become `TenantViolation`,
    /// `Forbidden` or `NotAllowed`, a typed error a d1vec SQL function raised (a session
    /// trigger's refusal, `vectorize_query`) is returned as raised, and no message carries
    /// the session's secret.
    pub fn map_err(&self, e: rusqlite::Error) -> Error {
        if let Some(stop) = self.budget.take_stop() {
            return stop;
        }
        if let Some(denial) = self.auth.take_denial() {
            return match denial {
                Denial::D1(what) => Error::NotAllowed(what),
                Denial::Tenant(what) => self.violation(&what),
                Denial::Forbidden { permission, role } => Error::Forbidden { permission, role },
            };
        }
        if let Some(raised) = self.raised.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return raised;
        }
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::TooBig) {
            return Error::ValueTooLarge {
                limit: self.budget.limits().max_value_bytes,
            };
        }
        if let Some(limit) = limit_error(&e, self.budget.limits()) {
            return limit;
        }
        // The session's triggers refuse through a typed SQL function (`raised`, above);
        // what is left is SQLite's own error, which must not carry the session's secret.
        if let Some(hook) = self.auth.tenant() {
            let text = e.to_string();
            if hook.leaks(&text) {
                return Error::invalid("SQL", hook.scrub(&text));
            }
        }
        Error::Sql(e)
    }
}

/// `meta.served_by`: this engine, as D1 names the backend that answered.
pub(crate) const SERVED_BY: &str = concat!("d1vec-", env!("CARGO_PKG_VERSION"));
/// `meta.served_by_region`: the local primary has no Cloudflare region.
pub(crate) const SERVED_BY_REGION: &str = "local";

/// Clears the write log even when a statement fails midway.
struct StopLog<'a>(&'a SharedWriteLog);

impl Drop for StopLog<'_> {
    fn drop(&mut self) {
        WriteLog::finish(self.0);
    }
}

/// Sets D1's limits that SQLite enforces itself on a new connection (see
/// [`D1Limits`]): value and row size, columns, function arguments, LIKE/GLOB pattern
/// length, and the database's size as `max_page_count`.
fn apply_limits(conn: &Connection, limits: &D1Limits, schema: &str) -> Result<()> {
    use rusqlite::limits::Limit;
    let clamp = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, clamp(limits.max_value_bytes))?;
    conn.set_limit(Limit::SQLITE_LIMIT_COLUMN, clamp(limits.max_columns))?;
    conn.set_limit(
        Limit::SQLITE_LIMIT_FUNCTION_ARG,
        clamp(limits.max_function_args),
    )?;
    conn.set_limit(
        Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH,
        clamp(limits.max_like_pattern_bytes),
    )?;
    let page_size: i64 = conn.query_row(&format!("PRAGMA {schema}.page_size"), [], |r| r.get(0))?;
    let pages = limits.max_database_bytes / u64::try_from(page_size.max(1)).unwrap_or(4096);
    // SQLite keeps the larger of this and the current page count.
    conn.query_row(
        &format!("PRAGMA {schema}.max_page_count = {}", pages.max(1)),
        [],
        |_| Ok(()),
    )?;
    Ok(())
}

/// The typed error for a statement SQLite stopped at one of D1's limits.
fn limit_error(e: &rusqlite::Error, limits: &D1Limits) -> Option<Error> {
    let (f, text) = match e {
        rusqlite::Error::SqliteFailure(f, message) => (f, message.clone().unwrap_or_default()),
        rusqlite::Error::SqlInputError { error, msg, .. } => (error, msg.clone()),
        _ => return None,
    };
    let as_u64 = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
    let (what, limit) = if f.code == rusqlite::ErrorCode::DiskFull {
        ("the database's size in bytes", limits.max_database_bytes)
    } else if text.starts_with("too many columns") {
        ("columns per table", as_u64(limits.max_columns))
    } else if text.starts_with("too many arguments on function") {
        (
            "arguments per SQL function",
            as_u64(limits.max_function_args),
        )
    } else if text.starts_with("LIKE or GLOB pattern too complex") {
        (
            "bytes in a LIKE or GLOB pattern",
            as_u64(limits.max_like_pattern_bytes),
        )
    } else {
        return None;
    };
    Some(Error::D1Limit {
        what,
        limit,
        message: if text.is_empty() { e.to_string() } else { text },
    })
}

pub(super) fn open_flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
}

/// Whether a statement starting with `keyword` plainly writes (only a hint for taking the
/// write lock up front; a statement that writes anyway is retried, see `run_batch`).
fn writes(keyword: &str) -> bool {
    matches!(
        keyword,
        "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "CREATE" | "DROP" | "ALTER"
    )
}

/// Whether `e` is SQLite's "database is locked" (any `SQLITE_BUSY` variant).
fn is_busy(e: &Error) -> bool {
    matches!(
        e,
        Error::Sql(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::DatabaseBusy
    )
}

/// The path of a file location, for messages.
pub(crate) fn location_path(location: &Location) -> Option<&Path> {
    match location {
        Location::File(p) => Some(p),
        Location::Memory(_) => None,
    }
}
