//! The single integration-test binary: one module per concern.

mod cli;
mod d1;
mod export;
mod fixtures;
mod isolation;
mod isolation_diff;
mod migrations;
mod pagination;
mod schema;
mod split;
