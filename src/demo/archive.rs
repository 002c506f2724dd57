//! The committed copy of the demo dataset: `data/demo-seed42.sql.gz`, the gzip of
//! [`Dataset::to_sql`] for seed [`DEMO_SEED`] at [`Scale::Demo`].
//!
//! The repository keeps it so that the rows can go to hosted D1 without building anything:
//! `gunzip -k data/demo-seed42.sql.gz` and `wrangler d1 execute DB --file
//! data/demo-seed42.sql` (after the bundled migrations). A test checks that it still
//! decompresses to exactly what the generator makes; an ignored test rewrites it.

use std::io::{Read, Write};
use std::path::Path;

use flate2::read::GzDecoder;
use flate2::{Compression, GzBuilder};

use super::dataset::{generate, Dataset, Scale};
use crate::error::{Error, Result};

/// The seed of the demo dataset (the committed file's and the `demo` command's).
pub const DEMO_SEED: u64 = 42;

/// The committed file's path, relative to the repository's root.
pub const COMMITTED_PATH: &str = "data/demo-seed42.sql.gz";

/// The dataset the committed file holds: `generate(DEMO_SEED, Scale::Demo)`.
pub fn committed_dataset() -> Dataset {
    generate(DEMO_SEED, Scale::Demo)
}

/// Writes `data.to_sql()` to `out` as gzip at the best compression level. The gzip header
/// carries no file name and a zero timestamp, so the bytes depend only on the SQL text and
/// the compressor's version.
pub fn write_sql_gz(data: &Dataset, out: impl Write) -> std::io::Result<()> {
    let mut encoder = GzBuilder::new().mtime(0).write(out, Compression::best());
    encoder.write_all(data.to_sql().as_bytes())?;
    encoder.finish()?.flush()
}

/// Reads a gzip file of SQL text (such as the committed one) back to text.
pub fn read_sql_gz(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).map_err(Error::io(path))?;
    let mut text = String::new();
    GzDecoder::new(std::io::BufReader::new(file))
        .read_to_string(&mut text)
        .map_err(Error::io(path))?;
    Ok(text)
}
