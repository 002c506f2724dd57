//! Fuzzes the master-key parsers: a `<db>.key` file's contents
//! (`d1vec::fuzzing::parse_key_file`) and the `D1VEC_MASTER_KEY` value
//! (`d1vec::keys::EnvKey::parse`). Neither may panic; errors are typed (`Error::Key`);
//! an accepted key file holds at least one key, and writing those keys again gives a file
//! that parses to the same keys (ids, in order). Byte 0 picks the parser (bit 0: env).
//! `tests/it/fuzz_replay.rs` replays the corpus with the same checks.
#![no_main]

use d1vec::fuzzing::{key_file_text, parse_key_file};
use d1vec::keys::{EnvKey, KeyProvider};
use d1vec::Error;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    if mode & 1 == 1 {
        match EnvKey::parse(&text) {
            Ok(env) => assert!(!env.load().unwrap().all().is_empty()),
            Err(Error::Key(e)) => assert!(!e.to_string().is_empty()),
            Err(e) => panic!("untyped error {e}"),
        }
        return;
    }
    match parse_key_file(&text) {
        Ok(keys) => {
            let ids: Vec<_> = keys.all().iter().map(|k| k.id()).collect();
            assert!(!ids.is_empty());
            let again = parse_key_file(&key_file_text(&keys)).unwrap();
            let back: Vec<_> = again.all().iter().map(|k| k.id()).collect();
            assert_eq!(ids, back);
        }
        Err(Error::Key(e)) => assert!(!e.to_string().is_empty()),
        Err(e) => panic!("untyped error {e}"),
    }
});
