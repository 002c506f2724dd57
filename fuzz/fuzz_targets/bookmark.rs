//! Fuzzes the D1 Sessions bookmark parser (`with_session(SessionConstraint::Bookmark(..))`,
//! reached through `d1vec::fuzzing::parse_bookmark`). It must never panic; an accepted
//! bookmark is exactly `16 lower-case hex digits - 16 lower-case hex digits` and formats
//! back to the same text; anything else is `Error::Bookmark` quoting at most 80 characters.
//! `tests/it/fuzz_replay.rs` replays the corpus with the same checks.
#![no_main]

use d1vec::fuzzing::{format_bookmark, parse_bookmark};
use d1vec::Error;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse_bookmark(&text) {
        Ok((seq, tag)) => assert_eq!(format_bookmark(seq, &tag), text),
        Err(Error::Bookmark { bookmark, reason }) => {
            assert!(bookmark.chars().count() <= 80 && !reason.is_empty());
        }
        Err(e) => panic!("untyped bookmark error: {e}"),
    }
});
