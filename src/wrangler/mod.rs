//! wrangler's project files and local state, read the way wrangler reads them, so that
//! `d1vec d1 … DB --local` works on the same project (and the same SQLite file) as
//! `wrangler d1 … DB --local`.
//!
//! - [`config`]: finding and parsing `wrangler.json` / `wrangler.jsonc` / `wrangler.toml`,
//!   and resolving a `DB` argument to its `d1_databases` entry.
//! - [`state`]: where wrangler (miniflare) keeps a local D1 database's SQLite file.

pub mod config;
pub mod state;

pub use config::{D1Database, VectorizeBinding, WranglerConfig};
