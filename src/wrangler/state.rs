//! Where `wrangler dev` and `wrangler d1 … --local` keep a D1 database.
//!
//! wrangler runs D1 locally as a miniflare Durable Object (class `D1DatabaseObject`, unique
//! key `miniflare-D1DatabaseObject`) whose object id is derived from the database's id
//! with `idFromName`. miniflare stores each object's SQLite file as
//! `<persist>/v3/d1/miniflare-D1DatabaseObject/<object id as hex>.sqlite`, where `<persist>`
//! is `--persist-to` (relative to the current folder) or `.wrangler/state` next to the
//! wrangler config file (or in the current folder when there is none).
//!
//! The derivation, as miniflare 4 implements it (`durableObjectNamespaceIdFromName`):
//! `key = SHA-256(unique key)`, `a = HMAC-SHA-256(key, name)[..16]`,
//! `b = HMAC-SHA-256(key, a)[..16]`, id = hex(a ‖ b), 64 hex digits.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// miniflare's unique key for the D1 Durable Object namespace.
pub const D1_UNIQUE_KEY: &str = "miniflare-D1DatabaseObject";

/// The Durable Object id miniflare derives from `name` in the namespace `unique_key`, as
/// 64 lowercase hex digits.
pub fn durable_object_id_from_name(unique_key: &str, name: &str) -> String {
    let key = Sha256::digest(unique_key.as_bytes());
    // HMAC takes a key of any length (`InvalidLength` is never returned for it), so the
    // fallback below is never used; it keeps this function free of panics.
    let mac = |data: &[u8]| {
        <Hmac<Sha256> as Mac>::new_from_slice(&key).map(|mut m| {
            m.update(data);
            m.finalize().into_bytes()
        })
    };
    let Ok(a) = mac(name.as_bytes()) else {
        return String::new();
    };
    let Ok(b) = mac(&a[..16]) else {
        return String::new();
    };
    let mut hex = String::with_capacity(64);
    for byte in a[..16].iter().chain(&b[..16]) {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// The persistence root wrangler uses: `persist_to` resolved against `cwd`, else
/// `.wrangler/state` next to the config file, else in `cwd`.
pub fn persistence_root(persist_to: Option<&Path>, cwd: &Path, config: Option<&Path>) -> PathBuf {
    match persist_to {
        Some(p) => cwd.join(p),
        None => config
            .and_then(Path::parent)
            .unwrap_or(cwd)
            .join(".wrangler")
            .join("state"),
    }
}

/// The SQLite file of the local D1 database whose local id is `local_id` (its
/// `preview_database_id`, else `database_id`, else its binding), under `root`
/// (see [`persistence_root`]).
pub fn d1_sqlite_path(root: &Path, local_id: &str) -> PathBuf {
    root.join("v3").join("d1").join(D1_UNIQUE_KEY).join(format!(
        "{}.sqlite",
        durable_object_id_from_name(D1_UNIQUE_KEY, local_id)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file name wrangler 4.85.0 created for this database id (observed on disk).
    #[test]
    fn matches_a_file_wrangler_created() {
        assert_eq!(
            durable_object_id_from_name(D1_UNIQUE_KEY, "11111111-2222-3333-4444-555555555555"),
            "f023adf8de81e80d62670e09f086149af129cccda34c51f26517069258c53e8c"
        );
    }

    #[test]
    fn root_follows_persist_to_then_config_then_cwd() {
        let cwd = Path::new("/p/sub");
        assert_eq!(
            persistence_root(
                Some(Path::new("st")),
                cwd,
                Some(Path::new("/p/wrangler.toml"))
            ),
            PathBuf::from("/p/sub/st")
        );
        assert_eq!(
            persistence_root(None, cwd, Some(Path::new("/p/wrangler.toml"))),
            PathBuf::from("/p/.wrangler/state")
        );
        assert_eq!(
            persistence_root(None, cwd, None),
            PathBuf::from("/p/sub/.wrangler/state")
        );
    }
}
