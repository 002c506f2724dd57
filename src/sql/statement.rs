//! Prepared statements in the shape of D1's Worker API: `prepare(sql).bind(..)` then
//! `first`, `all`, `run` or `raw`; `batch` and `exec`.

use std::time::Instant;

use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use super::bookmark::SessionState;
use super::conn::{Bound, SqlConn};
use super::result::{D1Result, ExecResult, Row};
use super::split::split_statements;
use super::value::Param;
use crate::error::{Error, Result};

/// A statement and its bound values, ready to run on the session that prepared it.
///
/// Each of `all`, `run`, `first` and `raw` runs the statement in its own transaction, as
/// D1 does; use `batch` on the session to run several atomically.
#[derive(Debug, Clone)]
pub struct Statement<'s> {
    conn: &'s SqlConn,
    bound: Bound,
    /// The D1 session it was prepared in, if any.
    session: Option<&'s SessionState>,
}

impl<'s> Statement<'s> {
    pub(crate) fn new(conn: &'s SqlConn, sql: &str) -> Self {
        Statement {
            conn,
            bound: Bound {
                sql: sql.to_owned(),
                params: Vec::new(),
            },
            session: None,
        }
    }

    pub(crate) fn in_session(conn: &'s SqlConn, sql: &str, session: &'s SessionState) -> Self {
        Statement {
            session: Some(session),
            ..Statement::new(conn, sql)
        }
    }

    /// Binds values to the statement's parameters, in order (replacing earlier bindings).
    pub fn bind<I, P>(mut self, values: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<Param>,
    {
        self.bound.params = values.into_iter().map(Into::into).collect();
        self
    }

    /// Binds JSON values as D1 does (see [`Param::from_json`]).
    pub fn bind_json(mut self, values: &[Json]) -> Result<Self> {
        self.bound.params = values.iter().map(Param::from_json).collect::<Result<_>>()?;
        Ok(self)
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.bound.sql
    }

    /// Runs the statement and returns every row with `meta`.
    pub fn all(&self) -> Result<D1Result> {
        let mut out = self
            .conn
            .run_batch_in(std::slice::from_ref(&self.bound), self.session)?;
        out.pop()
            .ok_or_else(|| Error::invalid("SQL", "the statement produced no result"))
    }

    /// Runs the statement for its effect; D1 returns the same object as [`Statement::all`].
    pub fn run(&self) -> Result<D1Result> {
        self.all()
    }

    /// The first row, or `None` when there is none.
    pub fn first(&self) -> Result<Option<Row>> {
        Ok(self.all()?.results.into_iter().next())
    }

    /// One column of the first row; an error if the statement has no such column.
    pub fn first_column(&self, column: &str) -> Result<Option<Json>> {
        let result = self.all()?;
        if !result.columns.iter().any(|c| c == column) {
            return Err(Error::invalid(
                "column",
                format!("D1_COLUMN_NOTFOUND: column `{column}` is not in the result"),
            ));
        }
        Ok(result
            .results
            .into_iter()
            .next()
            .and_then(|mut r| r.remove(column)))
    }

    /// The rows as arrays; with `column_names` the first array holds the column names.
    pub fn raw(&self, column_names: bool) -> Result<Vec<Vec<Json>>> {
        let result = self.all()?;
        let mut rows = Vec::with_capacity(result.results.len() + 1);
        if column_names {
            rows.push(
                result
                    .columns
                    .iter()
                    .map(|c| Json::from(c.as_str()))
                    .collect(),
            );
        }
        rows.extend(result.raw());
        Ok(rows)
    }

    /// Every row converted to `T` through serde.
    pub fn all_as<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.all()?.rows_as()
    }

    /// The first row converted to `T`, or `None`.
    pub fn first_as<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.first()?
            .map(|r| Ok(serde_json::from_value(Json::Object(r))?))
            .transpose()
    }
}

/// Runs statements prepared on `conn` in one transaction.
pub(crate) fn batch(conn: &SqlConn, stmts: &[Statement<'_>]) -> Result<Vec<D1Result>> {
    batch_in(conn, stmts, None)
}

/// Runs statements prepared on `conn` in one transaction, in `session` if given.
pub(crate) fn batch_in(
    conn: &SqlConn,
    stmts: &[Statement<'_>],
    session: Option<&SessionState>,
) -> Result<Vec<D1Result>> {
    if let Some(foreign) = stmts.iter().find(|s| !std::ptr::eq(s.conn, conn)) {
        return Err(Error::invalid(
            "batch",
            format!("`{}` was prepared on another session", foreign.bound.sql),
        ));
    }
    let bound: Vec<Bound> = stmts.iter().map(|s| s.bound.clone()).collect();
    conn.run_batch_in(&bound, session)
}

/// Splits a script and runs every statement in one transaction; returns each result.
pub(crate) fn execute_script(conn: &SqlConn, script: &str) -> Result<Vec<D1Result>> {
    let bound: Vec<Bound> = split_statements(script)?
        .into_iter()
        .map(|sql| Bound {
            sql,
            params: Vec::new(),
        })
        .collect();
    if bound.is_empty() {
        return Err(Error::invalid("SQL", "No SQL statements detected."));
    }
    conn.run_batch(&bound)
}

/// D1's `exec()`: runs a script without bindings, atomically.
pub(crate) fn exec(conn: &SqlConn, script: &str) -> Result<ExecResult> {
    let started = Instant::now();
    let results = execute_script(conn, script)?;
    Ok(ExecResult {
        count: results.len(),
        duration: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// Anything statements can be prepared on: a [`crate::Database`] or a
/// [`crate::TenantSession`]. Lets helpers such as [`super::cursor::page`] work on both.
pub trait Session {
    /// Prepares a statement, as D1's `db.prepare(sql)`.
    fn prepare(&self, sql: &str) -> Statement<'_>;

    /// The database whose key signs this session's cursors, and the tenant they are bound
    /// to. Only d1vec's own sessions can build one.
    #[doc(hidden)]
    fn cursor_scope(&self) -> super::cursor::CursorScope<'_>;
}

impl Session for crate::Database {
    fn prepare(&self, sql: &str) -> Statement<'_> {
        crate::Database::prepare(self, sql)
    }

    fn cursor_scope(&self) -> super::cursor::CursorScope<'_> {
        super::cursor::CursorScope::new(self.shared(), None)
    }
}

impl Session for crate::TenantSession {
    fn prepare(&self, sql: &str) -> Statement<'_> {
        crate::TenantSession::prepare(self, sql)
    }

    fn cursor_scope(&self) -> super::cursor::CursorScope<'_> {
        super::cursor::CursorScope::new(self.shared(), Some(self.tenant_id()))
    }
}
