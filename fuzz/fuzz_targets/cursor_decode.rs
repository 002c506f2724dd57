//! Fuzzes cursor decoding (`d1vec::sql::token`), the parser every `list-vectors` and
//! `d1 page` cursor from outside goes through. It must never panic, and:
//! - raw text (mode bit 1 clear): whatever it holds, a cursor is accepted only if it is
//!   exactly what the key seals for the envelope it opened to (no second spelling of a
//!   cursor passes the tag);
//! - fields the fuzzer chooses, signed with the key (mode bit 1 set), reach the checks after
//!   the tag: an accepted cursor has the right version, kind and scope, an expiry inside
//!   its lifetime, a position of its kind, and encodes back to the same cursor.
//!
//! Input: byte 0 is the mode (bit 0: page rather than list-vectors; bit 1: sealed; bit 2:
//! right version; bit 3: right scope; bit 4: expiry relative to now; bit 5: fuzzer's kind
//! byte), then for sealed inputs the version, the kind byte and 8 expiry bytes, then the
//! body. `tests/it/cursors_signed.rs` replays the corpus with the same checks.
#![no_main]

use d1vec::sql::token::{CursorKey, CursorKind, Envelope, Expect, VERSION};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = CursorKey::from_bytes([7; 32]);
    let kind = if mode & 1 == 0 {
        CursorKind::ListVectors
    } else {
        CursorKind::Page
    };
    let expect = Expect {
        kind,
        scope: key.scope(kind, &[b"fuzz"]),
        scope_name: "fuzz scope",
        now: NOW,
    };
    if mode & 2 == 0 {
        let text = String::from_utf8_lossy(rest);
        if let Ok(envelope) = key.open(&text, &expect) {
            assert_eq!(key.seal(&envelope), text);
        }
        let _ = key.decode(&text, &expect);
        return;
    }
    let mut header = [0u8; 10];
    let n = rest.len().min(header.len());
    header[..n].copy_from_slice(&rest[..n]);
    let body = &rest[n..];
    let raw_expires = u64::from_le_bytes([
        header[2], header[3], header[4], header[5], header[6], header[7], header[8], header[9],
    ]);
    let envelope = Envelope {
        version: if mode & 4 != 0 { VERSION } else { header[0] },
        kind: if mode & 32 != 0 { header[1] } else { kind.byte() },
        expires: if mode & 16 != 0 {
            NOW + raw_expires % (kind.ttl_seconds() + 2)
        } else {
            raw_expires
        },
        scope: if mode & 8 != 0 { expect.scope } else { [header[0]; 16] },
        body: body.to_vec(),
    };
    let cursor = key.seal(&envelope);
    match key.decode(&cursor, &expect) {
        Ok((position, expires)) => {
            assert_eq!(envelope.version, VERSION);
            assert_eq!(envelope.kind, kind.byte());
            assert_eq!(envelope.scope, expect.scope);
            assert_eq!(expires, envelope.expires);
            assert!(expires >= NOW && expires - NOW <= kind.ttl_seconds());
            assert_eq!(position.kind(), kind);
            if let Ok(again) = key.encode(&position, expect.scope, expires) {
                assert_eq!(key.decode(&again, &expect).unwrap().0, position);
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
