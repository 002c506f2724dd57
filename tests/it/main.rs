//! The single integration-test binary: one module per concern.

mod bench_io;
mod cli;
mod cli_vectorize;
mod conformance;
mod d1;
mod demo_dataset;
mod embed;
mod export;
mod filter;
mod fixtures;
mod fuzz_replay;
mod hybrid;
mod isolation;
mod isolation_diff;
mod migrations;
mod mutable;
mod oracle;
mod pagination;
mod schema;
mod segment;
mod split;
mod vector_crash;
mod vector_model;
mod vector_recovery;
mod vectorize_types;
