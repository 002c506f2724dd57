//! Fuzzes opening a sealed field's bytes (`d1vec::keys::envelope::open`, reached through
//! `d1vec::fuzzing::open_field`) under a fixed data key. It must never panic, and:
//! - raw bytes (mode bit 0 clear) open only if they are a genuine sealing: the fuzzer cannot
//!   forge the GCM tag, so every raw input must fail with `KeyError::Tampered`;
//! - sealed bytes (mode bit 0 set): the rest of the input is the plaintext and bytes 1..5
//!   the version; `open(seal(p)) == p`, opening at another row fails, and flipping any one
//!   byte (chosen by the input) fails.
//! `tests/it/fuzz_replay.rs` replays the corpus with the same checks.
#![no_main]

use d1vec::fuzzing::{open_field, seal_field, FIELD};
use d1vec::keys::KeyError;
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 32] = [9; 32];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        match open_field(&KEY, &FIELD, rest) {
            Ok(_) => panic!("forged a sealed field"),
            Err(KeyError::Tampered { location }) => assert!(!location.is_empty()),
            Err(e) => panic!("unexpected error {e}"),
        }
        return;
    }
    let mut v = [0u8; 4];
    let n = rest.len().min(4);
    v[..n].copy_from_slice(&rest[..n]);
    let version = u32::from_be_bytes(v).max(1);
    let plaintext = &rest[n..];
    let sealed = seal_field(&KEY, version, plaintext).unwrap();
    assert_eq!(open_field(&KEY, &FIELD, &sealed).unwrap(), plaintext);
    let mut other = FIELD.clone();
    other.row_key = "conn-2";
    assert!(open_field(&KEY, &other, &sealed).is_err());
    let mut flipped = sealed.clone();
    let at = usize::from(mode >> 1) * 7 % flipped.len();
    flipped[at] ^= 1 << (mode % 8);
    assert!(open_field(&KEY, &FIELD, &flipped).is_err());
    assert!(open_field(&KEY, &FIELD, &sealed[..sealed.len() - 1]).is_err());
});
