//! The D1-compatible SQL layer: statements, results, limits, migrations, export, cursors.

pub(crate) mod auth;
pub(crate) mod conn;
pub mod cursor;
pub mod export;
pub mod migrate;
pub mod result;
pub mod split;
pub mod statement;
pub mod token;
pub mod value;

pub use conn::{MAX_BOUND_PARAMETERS, MAX_STATEMENT_BYTES};
pub use result::{D1Result, ExecResult, Meta, Row};
pub use statement::{Session, Statement};
pub use value::Param;
