//! Benchmark datasets: the field's standard `.fvecs`/`.ivecs` files and exact ground truth.
//!
//! - [`vecs`]: streaming readers and writers of `.fvecs` (base and query vectors) and
//!   `.ivecs` (ground-truth neighbour lists), the formats of the public ANN datasets
//!   (SIFT1M, GIST1M) and of faiss' and hnswlib's tooling. Every malformed file is a
//!   [`VecsError`] naming the file, the vector and the problem, never a panic.
//! - [`truth`]: the exact top-k neighbours of every query by d1vec's own metric convention,
//!   computed in parallel, optionally restricted to an allowed set of rows (a tenant).
//! - [`gen`]: `d1vec bench gen`, a seeded, text-embedding-like dataset in that layout.
//! - [`cases`] and [`folder`]: a dataset folder's query cases and reading (and completing)
//!   any folder in the layout.
//! - [`run`] and [`measure`]: `d1vec bench run`, ingest through the real write path, then
//!   searches in a fresh process; [`report`]: the merged table and plot.
//!
//! The folder layout and the result schema are in `docs/bench.md`.

pub mod cases;
pub mod folder;
pub mod gen;
pub mod measure;
pub mod pagecache;
pub mod progress;
pub mod report;
pub mod run;
pub mod truth;
pub mod vecs;

pub use truth::{ground_truth, ground_truth_with_progress};
pub use vecs::{
    read_fvecs, read_ivecs, write_fvecs, write_ivecs, FvecsReader, FvecsWriter, IvecsReader,
    IvecsWriter, VecsElement, VecsError, VecsReader, VecsWriter, MAX_DIMS,
};
