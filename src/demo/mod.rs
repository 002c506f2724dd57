//! The offline demo: a deterministic, seeded generator of a multi-tenant content app's rows
//! for the bundled schema ([`dataset`]), its committed copy ([`archive`]), and the `demo`
//! command's library side: build a demo folder ([`build`]) and take the guided tour
//! ([`tour`]).
//!
//! ```no_run
//! # fn main() -> d1vec::Result<()> {
//! use d1vec::{demo, sql::migrate, Database};
//! let db = Database::open_in_memory()?;
//! db.apply_migrations(&migrate::bundled())?;
//! let data = demo::generate(42, demo::Scale::Demo);
//! data.load(&db)?;
//!
//! // Or the whole demo: a fresh folder, rows, vectors, rollups, then the tour.
//! let (_db, tour) = demo::run(std::path::Path::new("d1vec-demo"), demo::Scale::Tiny, &demo::Quiet)?;
//! assert!(tour.step("cross_tenant").is_some());
//! # Ok(()) }
//! ```

pub mod archive;
pub mod build;
pub mod dataset;
pub mod folder;
pub mod progress;
pub mod tour;

use std::path::Path;
use std::time::Instant;

pub use archive::DEMO_SEED;
pub use build::BuildReport;
pub use dataset::{generate, Dataset, Scale, Table};
pub use progress::{Progress, Quiet};
pub use tour::{Step, Tour};

use crate::{Database, Result};

/// Builds the demo in `dir` from scratch with seed [`DEMO_SEED`] at `scale`, then runs the
/// tour; returns the open database (for further queries) and the tour, timed end to end.
pub fn run(dir: &Path, scale: Scale, progress: &dyn Progress) -> Result<(Database, Tour)> {
    let started = Instant::now();
    let (db, report) = build::build(dir, DEMO_SEED, scale, progress)?;
    let mut tour = tour::run(&db, report)?;
    tour.total_seconds = started.elapsed().as_secs_f64();
    Ok((db, tour))
}
