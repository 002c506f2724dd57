//! Benchmark datasets: the field's standard `.fvecs`/`.ivecs` files and exact ground truth.
//!
//! - [`vecs`]: streaming readers and writers of `.fvecs` (base and query vectors) and
//!   `.ivecs` (ground-truth neighbour lists), the formats of the public ANN datasets
//!   (SIFT1M, GIST1M) and of faiss' and hnswlib's tooling. Every malformed file is a
//!   [`VecsError`] naming the file, the vector and the problem, never a panic.
//! - [`truth`]: the exact top-k neighbours of every query by d1vec's own metric convention,
//!   computed in parallel, optionally restricted to an allowed set of rows (a tenant).

pub mod truth;
pub mod vecs;

pub use truth::{ground_truth, ground_truth_with_progress};
pub use vecs::{
    read_fvecs, read_ivecs, write_fvecs, write_ivecs, FvecsReader, FvecsWriter, IvecsReader,
    IvecsWriter, VecsElement, VecsError, VecsReader, VecsWriter, MAX_DIMS,
};
