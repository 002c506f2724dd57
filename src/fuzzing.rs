//! Entry points for the fuzz targets in `fuzz/` and their corpus replay in `tests/it`.
//! Not part of the API: each function is a thin wrapper over a crate-private parser of
//! outside input, with the same behaviour, so the fuzzers reach exactly the code users do.

use crate::error::Result;
use crate::keys::envelope::{self, FieldRef, KEY_BYTES};
use crate::keys::{KeyError, KeyFile, MasterKeys};

/// Parses a D1 Sessions bookmark as `with_session(SessionConstraint::Bookmark(..))` does:
/// its commit and tag, or [`crate::Error::Bookmark`].
pub fn parse_bookmark(text: &str) -> Result<(u64, String)> {
    crate::sql::bookmark::parse(text).map(|(seq, tag)| (seq, tag.to_owned()))
}

/// Formats a bookmark the way every session hands one out.
pub fn format_bookmark(seq: u64, tag: &str) -> String {
    crate::sql::bookmark::format(seq, tag)
}

/// The fixed place the field targets seal at.
pub const FIELD: FieldRef<'static> = FieldRef {
    tenant: "fuzz-tenant",
    table: "platform_connections",
    column: "access_token_ct",
    row_key: "conn-1",
};

/// Seals `plaintext` at [`FIELD`] under `data_key`, version `version` (random nonce).
pub fn seal_field(
    data_key: &[u8; KEY_BYTES],
    version: u32,
    plaintext: &[u8],
) -> std::result::Result<Vec<u8>, KeyError> {
    envelope::seal(data_key, version, &FIELD, plaintext)
}

/// Opens a sealed field's bytes at `field` under `data_key`, as reading a secret does.
pub fn open_field(
    data_key: &[u8; KEY_BYTES],
    field: &FieldRef<'_>,
    sealed: &[u8],
) -> std::result::Result<Vec<u8>, KeyError> {
    envelope::open(data_key, field, sealed).map(|p| p.to_vec())
}

/// Parses the contents of a `<db>.key` file as loading it does (errors name `fuzz.key`).
pub fn parse_key_file(text: &str) -> Result<MasterKeys> {
    KeyFile::new("fuzz.key").parse(text)
}

/// What [`KeyFile`] writes for `keys`.
pub fn key_file_text(keys: &MasterKeys) -> String {
    crate::keys::provider::render_key_file(keys).to_string()
}

/// The D1 part of `d1vec serve`'s API (`crate::serve::d1`, crate-private), for
/// `tests/it/serve_d1.rs` and fuzz targets over request bodies: the same functions the
/// server routes to.
pub mod serve_d1 {
    pub use crate::serve::d1::{
        export, import, query, D1Registry, D1Target, RegistryOptions, TransferLimits,
        TransferStore, DEFAULT_PER_PAGE, FOLDER, MAX_NAME_BYTES, MAX_STATEMENTS, PER_PAGE, TABLE,
        TRANSFER_PATH,
    };
}
