//! The offline demo's data: a deterministic, seeded generator of a multi-tenant content
//! app's rows for the bundled schema (see [`dataset`]), and its committed copy
//! ([`archive`]).
//!
//! ```no_run
//! # fn main() -> d1vec::Result<()> {
//! use d1vec::{demo, sql::migrate, Database};
//! let db = Database::open_in_memory()?;
//! db.apply_migrations(&migrate::bundled())?;
//! let data = demo::generate(42, demo::Scale::Demo);
//! data.load(&db)?;
//! # Ok(()) }
//! ```

pub mod archive;
pub mod dataset;

pub use archive::DEMO_SEED;
pub use dataset::{generate, Dataset, Scale, Table};
