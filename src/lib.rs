//! d1vec: an embedded, offline twin of Cloudflare D1 (SQLite) and Vectorize.
//!
//! Open one database path, apply the bundled migrations (or your own), run SQL exactly as
//! on D1, and scope work to one tenant with [`Database::tenant`]:
//!
//! ```
//! # fn main() -> d1vec::Result<()> {
//! use d1vec::{Database, sql::migrate};
//! let db = Database::open_in_memory()?;
//! db.apply_migrations(&migrate::bundled())?;
//! db.prepare("INSERT INTO tenants (tenant_id, name, plan, region) VALUES (?1, ?2, 'pro', 'us')")
//!     .bind(["t1", "First"]).run()?;
//! let t1 = db.tenant("t1")?;
//! t1.prepare("INSERT INTO campaigns (campaign_id, name) VALUES (?1, ?2)")
//!     .bind(["c1", "Spring"]).run()?;
//! let n = t1.prepare("SELECT count(*) AS n FROM campaigns").first_column("n")?;
//! assert_eq!(n, Some(1.into()));
//! # Ok(()) }
//! ```
//!
//! Core concepts:
//! - [`Database`]: the file (WAL mode, foreign keys on) and the unscoped admin surface.
//! - [`TenantSession`]: the same API, confined to one tenant by the engine.
//! - [`Statement`]: D1's prepared statement (`bind`, `all`, `run`, `first`, `raw`).
//! - [`sql::migrate`]: `wrangler d1 migrations`-compatible runner and the bundled schema.
//! - [`sql::cursor`]: opaque-cursor pagination of any ordered query.
//! - [`rollup`]: daily rollups and their k-anonymity rule ([`catalog::K_ANONYMITY`]).
#![warn(missing_docs)]

pub mod bench;
pub mod catalog;
pub mod cli;
mod db;
pub mod demo;
pub mod embed;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod index;
pub mod keys;
mod rng;
pub mod rollup;
pub mod search;
pub mod serve;
pub mod sql;
pub mod tenant;
mod time;
pub mod vectorize;
pub mod wrangler;

pub use db::{BundledSetup, Database, DatabaseBuilder};
pub use error::{Error, ErrorCode, Result};
pub use sql::{D1Result, Param, Statement};
pub use tenant::TenantSession;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
