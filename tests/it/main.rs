//! The single integration-test binary: one module per concern.

mod cli;
mod conformance;
mod d1;
mod export;
mod filter;
mod fixtures;
mod isolation;
mod isolation_diff;
mod migrations;
mod mutable;
mod pagination;
mod schema;
mod segment;
mod split;
mod vectorize_types;
