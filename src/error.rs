//! The one public error type, and its stable codes for the command line.

use std::path::PathBuf;

/// The result of every fallible d1vec call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a d1vec call can report. Each variant names the problem (the limit, the
/// given value, the object) so that a user can act on it without reading the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tenant session tried to reach something outside its scope. Nothing was changed.
    #[error("tenant `{tenant}` may not access {object}")]
    TenantViolation {
        /// The session's tenant.
        tenant: String,
        /// What was refused (a table, a statement kind, another tenant's rows).
        object: String,
    },
    /// The session's user lacks a permission the call needs (`role_permissions`). Nothing
    /// was changed.
    #[error("role `{role}` lacks the permission `{permission}`")]
    Forbidden {
        /// The permission checked.
        permission: String,
        /// The user's role.
        role: String,
    },
    /// A session could not act as the user: unknown in the tenant (or another tenant's), or
    /// not active. Nothing was opened.
    #[error("user `{user}` cannot act in tenant `{tenant}`: {reason}")]
    UserRefused {
        /// The tenant.
        tenant: String,
        /// The user id given.
        user: String,
        /// Why (`not a user of this tenant`, `the user is disabled`, ...).
        reason: String,
    },
    /// A D1 limit was exceeded.
    #[error("{what} is {got}, limit is {limit}")]
    LimitExceeded {
        /// What was measured.
        what: &'static str,
        /// The limit.
        limit: usize,
        /// The value given.
        got: usize,
    },
    /// A statement would have built a string or BLOB (or row) longer than D1 allows
    /// (`zeroblob`, `randomblob`, `printf` widths, concatenation); nothing was changed.
    #[error("a string or BLOB would be longer than {limit} bytes, D1's limit")]
    ValueTooLarge {
        /// The limit in bytes ([`crate::sql::D1Limits::max_value_bytes`]).
        limit: usize,
    },
    /// SQLite stopped a statement at one of D1's limits, set as a SQLite limit
    /// ([`crate::sql::D1Limits`]): too many columns or function arguments, a LIKE or GLOB
    /// pattern too long, a database grown past its size. Nothing was changed.
    #[error("{message} (D1's limit on {what} is {limit})")]
    D1Limit {
        /// Which of D1's limits.
        what: &'static str,
        /// Its value.
        limit: u64,
        /// SQLite's own message, which D1 reports too.
        message: String,
    },
    /// A D1 Sessions bookmark that cannot be used: malformed, issued by another database or
    /// scope, or naming a commit this database has not reached. Nothing was run.
    #[error("invalid bookmark `{bookmark}`: {reason}")]
    Bookmark {
        /// The bookmark given (a bookmark carries no secret).
        bookmark: String,
        /// Why it was refused.
        reason: String,
    },
    /// SQL that D1 refuses (transactions in user SQL, ATTACH, reserved `_cf_` names, …).
    #[error("not allowed on D1: {0}")]
    NotAllowed(String),
    /// The SQL could not be split into statements.
    #[error("invalid SQL script: {0}")]
    Split(#[from] crate::sql::split::SplitError),
    /// An input value was not valid (a tenant id, a cursor, a date, a bound value).
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// Which input.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A migration failed; it was rolled back and later migrations were not applied.
    #[error("migration `{name}` failed: {source}")]
    Migration {
        /// The migration's name, relative to its folder.
        name: String,
        /// The underlying failure.
        #[source]
        source: Box<Error>,
    },
    /// An I/O failure, with the path it concerned.
    #[error("I/O on {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: std::io::Error,
    },
    /// SQLite reported an error (syntax, constraint, missing table, …).
    #[error("{0}")]
    Sql(#[from] rusqlite::Error),
    /// A row could not be converted to the requested Rust type.
    #[error("cannot convert row: {0}")]
    Decode(#[from] serde_json::Error),
    /// A Vectorize error, with Vectorize's code (see `vectorize::error::codes`).
    #[error("{0}")]
    Vectorize(#[from] crate::vectorize::VectorizeError),
    /// A key or a sealed value failed: tampered or moved ciphertext, a missing key, a bad
    /// key file or `D1VEC_MASTER_KEY` (see [`crate::keys::KeyError`]).
    #[error(transparent)]
    Key(crate::keys::KeyError),
    /// Writing an export failed.
    #[error(transparent)]
    Export(#[from] crate::sql::export::ExportError),
    /// A wrangler configuration file could not be read or does not say what was asked.
    #[error("wrangler config {path}: {reason}")]
    WranglerConfig {
        /// The configuration file (or the folder searched when none was found).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A D1 database named in a request of `d1vec serve`'s API cannot be used as asked
    /// (see [`D1Problem`]). Nothing was changed.
    #[error("D1 database `{database}`: {problem}")]
    D1Database {
        /// The id or name given.
        database: String,
        /// What is wrong.
        problem: D1Problem,
    },
    /// `--remote` was given: d1vec only has the local database.
    #[error(
        "--remote is not supported: `{command}` would run against hosted Cloudflare D1, which \
         d1vec cannot reach. To move local data there, run `d1vec d1 export DB --output \
         dump.sql`, then `wrangler d1 execute DB --remote --file dump.sql`."
    )]
    RemoteRefused {
        /// The command that was refused (`d1 execute`, `d1 migrations apply`, …).
        command: &'static str,
    },
}

/// What is wrong with a D1 database named in a request of `d1vec serve`'s API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum D1Problem {
    /// No database has that uuid or name (HTTP 404).
    #[error("no such database")]
    NotFound,
    /// Creating a database whose name another database has.
    #[error("a database with that name already exists")]
    NameTaken,
    /// Deleting the served database file itself, which the API cannot do.
    #[error("the served database (the --db file) cannot be deleted through the API")]
    Primary,
}

impl D1Problem {
    /// Cloudflare's error code for it: 7404 (not found) and 7502 (name taken) are the codes
    /// Cloudflare's API answers and wrangler recognises; 7400 is d1vec's for a refused delete
    /// of the served file, which hosted D1 has no counterpart of.
    pub fn cloudflare_code(self) -> u32 {
        match self {
            D1Problem::NotFound => 7404,
            D1Problem::NameTaken => 7502,
            D1Problem::Primary => 7400,
        }
    }
}

/// Stable numeric codes for the command line's JSON errors (`{"code": N, "error": "..."}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Input the caller can fix.
    BadRequest = 400,
    /// A tenant reached outside its scope, or a user lacks a permission.
    Forbidden = 403,
    /// Something went wrong inside (I/O, corrupt state).
    Internal = 500,
}

impl Error {
    /// The number the command line prints as `code`: Vectorize's code for Vectorize errors,
    /// otherwise the HTTP-like [`ErrorCode`].
    pub fn json_code(&self) -> u32 {
        match self {
            Error::Vectorize(e) => e.code,
            other => other.code() as u32,
        }
    }

    /// The stable code the command line prints with this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::TenantViolation { .. } | Error::Forbidden { .. } | Error::UserRefused { .. } => {
                ErrorCode::Forbidden
            }
            Error::Io { .. } => ErrorCode::Internal,
            Error::Key(crate::keys::KeyError::BadEnvKey { .. }) => ErrorCode::BadRequest,
            Error::Key(_) => ErrorCode::Internal,
            Error::Migration { source, .. } => source.code(),
            _ => ErrorCode::BadRequest,
        }
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
