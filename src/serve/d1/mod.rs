//! The D1 part of `d1vec serve`'s REST API, as plain functions over parsed JSON: the
//! server (`crate::serve`) routes requests to them and wraps their answers in Cloudflare's
//! envelope. Nothing here knows about HTTP.
//!
//! - [`D1Registry`]: `d1/database` list, get, create, delete, and which database an id names.
//! - [`query()`]: `…/query` and `…/raw` on a [`D1Target`] (the admin database, or a tenant
//!   session for a tenant-bound token).
//! - [`import()`], [`export()`] and [`TransferStore`]: what `wrangler d1 execute --remote
//!   --file` and `wrangler d1 export --remote` call, with the upload and download URLs
//!   pointing back at the server.

mod query;
mod registry;
mod transfer;

pub use query::{query, MAX_STATEMENTS};
pub use registry::{
    D1Registry, RegistryOptions, DEFAULT_PER_PAGE, FOLDER, MAX_NAME_BYTES, PER_PAGE, TABLE,
};
pub use transfer::{export, import, TransferLimits, TransferStore, TRANSFER_PATH};

use crate::error::Result;
use crate::sql::export::ExportOptions;
use crate::sql::{D1Result, D1Session, SessionConstraint, Statement};

/// What a D1 request runs on: the admin surface of a [`crate::Database`], or a
/// [`crate::TenantSession`] (every rule of the library applies to it unchanged).
pub trait D1Target {
    /// Prepares a statement, as D1's `db.prepare(sql)`.
    fn prepare(&self, sql: &str) -> Statement<'_>;
    /// Runs statements atomically, as D1's `db.batch([...])`.
    fn batch(&self, statements: &[Statement<'_>]) -> Result<Vec<D1Result>>;
    /// Runs a script atomically and returns every statement's result (`d1 execute --file`).
    fn execute(&self, script: &str) -> Result<Vec<D1Result>>;
    /// Writes the database as SQL (`d1 export`).
    fn export_sql(&self, options: &ExportOptions, out: &mut dyn std::io::Write) -> Result<u64>;
    /// Starts a D1 session (`withSession`), for the bookmarks import and export report.
    fn with_session(&self, start: SessionConstraint) -> Result<D1Session<'_>>;
}

impl D1Target for crate::Database {
    fn prepare(&self, sql: &str) -> Statement<'_> {
        crate::Database::prepare(self, sql)
    }
    fn batch(&self, statements: &[Statement<'_>]) -> Result<Vec<D1Result>> {
        crate::Database::batch(self, statements)
    }
    fn execute(&self, script: &str) -> Result<Vec<D1Result>> {
        crate::Database::execute(self, script)
    }
    fn export_sql(&self, options: &ExportOptions, out: &mut dyn std::io::Write) -> Result<u64> {
        crate::Database::export_sql(self, options, out)
    }
    fn with_session(&self, start: SessionConstraint) -> Result<D1Session<'_>> {
        crate::Database::with_session(self, start)
    }
}

impl D1Target for crate::TenantSession {
    fn prepare(&self, sql: &str) -> Statement<'_> {
        crate::TenantSession::prepare(self, sql)
    }
    fn batch(&self, statements: &[Statement<'_>]) -> Result<Vec<D1Result>> {
        crate::TenantSession::batch(self, statements)
    }
    fn execute(&self, script: &str) -> Result<Vec<D1Result>> {
        crate::TenantSession::execute(self, script)
    }
    fn export_sql(&self, options: &ExportOptions, out: &mut dyn std::io::Write) -> Result<u64> {
        crate::TenantSession::export_sql(self, options, out)
    }
    fn with_session(&self, start: SessionConstraint) -> Result<D1Session<'_>> {
        crate::TenantSession::with_session(self, start)
    }
}
