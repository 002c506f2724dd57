//! Fuzzes `d1vec serve`'s request handling over request bodies: byte 0 picks the route
//! (and bit 7 the tenant-bound token instead of admin), the rest is the body, sent through
//! the server's router (`d1vec::fuzzing::HttpHarness`: routes, middleware, auth). Nothing
//! may panic; every answer is Cloudflare's envelope with a 2xx, 4xx or 413 status (never a
//! 5xx), and a refused request changes nothing in the database.
//! `tests/it/fuzz_replay.rs` replays the corpus with the same checks.
#![no_main]

use std::cell::RefCell;

use d1vec::fuzzing::HttpHarness;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static HARNESS: RefCell<HttpHarness> = RefCell::new(HttpHarness::new().unwrap());
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    HARNESS.with(|h| {
        let mut h = h.borrow_mut();
        let before = h.database().dump().unwrap();
        let (status, reply) = h.request(usize::from(selector & 0x7f), selector & 0x80 != 0, body);
        assert!((200..500).contains(&status), "status {status}: {reply}");
        let success = reply["success"].as_bool().expect("an envelope");
        assert!(reply["errors"].is_array() && reply["messages"].is_array());
        assert_eq!(success, status == 200, "{reply}");
        if !success {
            assert_eq!(h.database().dump().unwrap(), before, "a refused request changed the database");
        }
    });
});
