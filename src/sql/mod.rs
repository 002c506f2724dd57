//! The D1-compatible SQL layer: statements, results, limits, migrations, export, cursors.

pub(crate) mod auth;
pub(crate) mod bookmark;
pub(crate) mod conn;
pub mod cursor;
pub(crate) mod dump;
pub mod export;
pub(crate) mod limits;
pub mod migrate;
pub mod result;
pub mod session;
pub mod split;
pub mod statement;
pub mod token;
pub mod value;
pub(crate) mod writes;

pub use conn::{MAX_BOUND_PARAMETERS, MAX_STATEMENT_BYTES};
pub use limits::D1Limits;
pub use result::{D1Result, ExecResult, Meta, Row, Timings};
pub use session::{D1Session, SessionConstraint};
pub use statement::{Session, Statement};
pub use value::Param;

/// Quotes an identifier for SQL.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal for SQL.
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
