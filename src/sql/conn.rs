//! One SQLite connection under d1vec's authorizer, and the D1 execution model on it: every
//! call is one transaction, every statement is checked against D1's limits, and results
//! come back as D1 shapes them.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, StatementStatus};
use serde_json::Map;

use super::auth::{self, AuthState, Denial};
use super::result::{D1Result, Meta};
use super::value::{column_to_json, Param};
use crate::error::{Error, Result};

/// D1's limit on bound parameters per statement.
pub const MAX_BOUND_PARAMETERS: usize = 100;
/// D1's limit on the length of one SQL statement, in bytes.
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
    /// timeout, D1's authorizer.
    pub fn open(location: &Location, opts: &ConnOptions) -> Result<SqlConn> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = match location {
            Location::File(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
                }
                Connection::open_with_flags(path, flags)?
            }
            Location::Memory(name) => {
                Connection::open_with_flags(format!("file:/{name}?vfs=memdb"), flags)?
            }
        };
        conn.busy_timeout(opts.busy_timeout)?;
        if matches!(location, Location::File(_)) {
            conn.pragma_update(None, "journal_mode", "wal")?;
        }
        conn.pragma_update(
            None,
            "synchronous",
            if opts.synchronous_full {
                "full"
            } else {
                "normal"
            },
        )?;
        conn.pragma_update(None, "foreign_keys", "on")?;
        let state = Arc::new(AuthState::default());
        auth::install(&mut conn, Arc::clone(&state))?;
        Ok(SqlConn {
            conn: Mutex::new(conn),
            auth: state,
            raised: RaisedError::default(),
            tenant: None,
        })
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
        conn.prepare_cached("SELECT coalesce(max(seq), 0) FROM d1vec_text_log")
            .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
            .map_or(0, |v| u64::try_from(v).unwrap_or(0))
    }

    /// Runs engine code with every authorizer check off.
    pub fn internal<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.lock();
        let _internal = self.auth.internal();
        f(&conn).map_err(Error::from)
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
    pub fn run_batch(&self, stmts: &[Bound]) -> Result<Vec<D1Result>> {
        let conn = self.lock();
        {
            let _internal = self.auth.internal();
            conn.execute_batch("BEGIN IMMEDIATE")?;
        }
        let mut results = Vec::with_capacity(stmts.len());
        for stmt in stmts {
            match self.run_one(&conn, stmt) {
                Ok(r) => results.push(r),
                Err(e) => {
                    let _internal = self.auth.internal();
                    // The rollback can only fail if the transaction is already gone.
                    let _ = conn.execute_batch("ROLLBACK");
                    return Err(e);
                }
            }
        }
        let _internal = self.auth.internal();
        if let Err(e) = conn.execute_batch("COMMIT") {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(self.map_err(e));
        }
        Ok(results)
    }

    fn run_one(&self, conn: &Connection, stmt: &Bound) -> Result<D1Result> {
        if stmt.sql.len() > MAX_STATEMENT_BYTES {
            return Err(Error::LimitExceeded {
                what: "SQL statement length in bytes",
                limit: MAX_STATEMENT_BYTES,
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
        let mut prepared = conn.prepare(&stmt.sql).map_err(|e| self.map_err(e))?;
        if self.tenant.is_some() && prepared.is_explain() != 0 {
            return Err(self.violation("EXPLAIN"));
        }
        let expected = prepared.parameter_count();
        if expected > MAX_BOUND_PARAMETERS {
            return Err(Error::LimitExceeded {
                what: "bound parameters in one statement",
                limit: MAX_BOUND_PARAMETERS,
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
        let scoped_write = self.tenant.is_some() && !readonly;
        // Only a table followed by a text index has log triggers to discount.
        let logging = scoped_write && self.auth.has_engine_triggers();
        let logged_before = if logging { self.text_log_seq(conn) } else { 0 };
        let total_before = conn.total_changes();
        let mut results = Vec::new();
        {
            let mut rows = prepared.raw_query();
            while let Some(row) = rows.next().map_err(|e| self.map_err(e))? {
                let mut obj = Map::with_capacity(columns.len());
                for (i, name) in columns.iter().enumerate() {
                    obj.insert(name.clone(), column_to_json(row.get_ref(i)?));
                }
                results.push(obj);
            }
        }
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
        } else {
            conn.changes()
        };
        let last_row_id = if self.auth.noted.load(Ordering::SeqCst) {
            self.auth.noted_rowid.load(Ordering::SeqCst)
        } else {
            conn.last_insert_rowid()
        };
        let scanned =
            u64::try_from(prepared.get_status(StatementStatus::FullscanStep)).unwrap_or(0);
        let returned = results.len() as u64;
        Ok(D1Result {
            results,
            success: true,
            meta: Meta {
                changes,
                last_row_id,
                rows_read: scanned + returned,
                rows_written: changes,
                duration: started.elapsed().as_secs_f64() * 1000.0,
                changed_db: changes > 0,
            },
            columns,
        })
    }

    fn violation(&self, object: &str) -> Error {
        Error::TenantViolation {
            tenant: self.tenant.clone().unwrap_or_default(),
            object: object.to_owned(),
        }
    }

    /// Turns a SQLite error into d1vec's: authorizer refusals become `TenantViolation` or
    /// `NotAllowed`, a tenant trigger's RAISE becomes `TenantViolation`, and no message
    /// carries the session's secret.
    pub fn map_err(&self, e: rusqlite::Error) -> Error {
        if let Some(denial) = self.auth.take_denial() {
            return match denial {
                Denial::D1(what) => Error::NotAllowed(what),
                Denial::Tenant(what) => self.violation(&what),
            };
        }
        if let Some(raised) = self.raised.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return raised;
        }
        let policy = self.auth.tenant();
        if let Some(policy) = policy {
            let text = e.to_string();
            if let Some(pos) = text.find("d1vec tenant guard: ") {
                let what = text[pos + "d1vec tenant guard: ".len()..].to_owned();
                return self.violation(&what);
            }
            if let Some(view) = text
                .strip_prefix("cannot modify ")
                .and_then(|t| t.strip_suffix(" because it is a view"))
            {
                return self.violation(&format!("writing `{view}` (read-only for tenants)"));
            }
            if text.contains(&policy.secret) {
                return Error::invalid("SQL", policy.scrub(&text));
            }
        }
        Error::Sql(e)
    }
}

/// The path of a file location, for messages.
pub(crate) fn location_path(location: &Location) -> Option<&Path> {
    match location {
        Location::File(p) => Some(p),
        Location::Memory(_) => None,
    }
}
