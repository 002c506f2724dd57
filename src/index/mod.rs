//! The approximate-nearest-neighbour layer: vectors addressed by internal ids, HNSW graphs,
//! the in-memory mutable segment and memory-mapped sealed segments.
//!
//! This layer knows nothing of SQLite, tenants or Vectorize's JSON: it sees `u64` internal
//! ids, prepared `f32` vectors (unit length for cosine) and allow-sets.

pub mod distance;
pub mod exact;
pub mod graph;
pub mod growing;
pub mod mutable;
pub mod quant;
pub mod segment;

pub use graph::{Allow, GraphParams, GraphParts, Hit, IdBitset, Metric};
