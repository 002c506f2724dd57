//! Vectorize-compatible vector indexes stored beside the D1 data.
//!
//! SQLite holds every vector (values as little-endian f32 BLOBs, metadata JSON, the
//! indexed metadata values, a mutation sequence); the search structures — an in-memory
//! graph segment and memory-mapped sealed segments under `<db>.vectors/` — are derived from
//! it. See [`VectorIndex`] for the API and `docs/format.md` for the files.

mod candidates;
pub mod delay;
pub mod engine;
pub mod error;
pub mod filter;
pub mod index;
pub mod limits;
pub mod list;
pub mod manage;
pub mod ndjson;
mod planner;
mod settle;
pub mod sql_function;
mod state;
mod state_wal;
pub mod store;
pub mod types;

pub use crate::index::segment::Memory;
pub use delay::IndexOptions;
pub use engine::{EngineOptions, Stats};
pub use error::VectorizeError;
pub use index::{MetadataIndexCreated, VectorIndex};
pub use manage::{AppIndex, CreateIndex, APP_INDEXES};
pub use store::Scope;
