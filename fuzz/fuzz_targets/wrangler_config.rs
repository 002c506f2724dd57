//! Fuzzes `d1vec::wrangler::config::WranglerConfig::parse` on `wrangler.toml` and
//! `wrangler.jsonc` text. It must never panic; errors are `Error::WranglerConfig` naming the
//! file. Byte 0 picks the format (bit 0: JSONC) and the environment (bit 1: `env.staging`).
//! `tests/it/fuzz_replay.rs` replays the corpus with the same checks.
#![no_main]

use std::path::Path;

use d1vec::wrangler::config::WranglerConfig;
use d1vec::Error;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let path = Path::new(if mode & 1 == 0 {
        "wrangler.toml"
    } else {
        "wrangler.jsonc"
    });
    let env = (mode & 2 != 0).then_some("staging");
    match WranglerConfig::parse(path, &text, env) {
        Ok(config) => {
            for db in &config.d1_databases {
                let _ = config.database(&db.binding);
                let _ = (db.local_id(), db.migrations_dir(), db.migrations_table());
            }
        }
        Err(Error::WranglerConfig { path: p, reason }) => {
            assert_eq!(p, path);
            assert!(!reason.is_empty());
        }
        Err(e) => panic!("untyped error {e}"),
    }
});
