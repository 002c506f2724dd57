//! Typed failures of the key hierarchy. No message ever carries a key or a plaintext: they
//! name places (tenant, table, column, row key, key version, file path) only.

use std::path::PathBuf;

/// What went wrong with a key or a sealed value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A sealed value (or a wrapped data key) failed authentication: it was changed in any
    /// bit, moved from another row, column or tenant, or its stored key version was changed.
    #[error("{location} does not open: it was altered, moved from another row, column or tenant, or sealed under another key")]
    Tampered {
        /// Where the value sits (names only).
        location: String,
    },
    /// A key a value needs is not available.
    #[error("missing key: {what}")]
    MissingKey {
        /// Which key (tenant and version, or a master key id).
        what: String,
    },
    /// The master key file may be read by others than its owner.
    #[error("master key file {path} is readable by group or others (mode {mode:03o}); refusing to use it: run `chmod 600` on it")]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The master key file is malformed.
    #[error("master key file {path}: {reason}")]
    BadKeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong (never its contents).
        reason: String,
    },
    /// `D1VEC_MASTER_KEY` does not hold base64 of 32 bytes.
    #[error("D1VEC_MASTER_KEY: {reason}")]
    BadEnvKey {
        /// What is wrong (never the value).
        reason: &'static str,
    },
    /// The operating system gave no random bytes.
    #[error("the operating system's random number generator failed")]
    Randomness,
}
