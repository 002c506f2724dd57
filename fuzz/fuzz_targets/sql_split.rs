//! Fuzzes the SQL script splitter: it must never panic, and when it accepts a script, joining
//! its statements with ";\n" and splitting again must give the same statements back.
#![no_main]

use d1vec::sql::split::{leading_keyword, split_statements};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The splitter takes &str; non-UTF-8 inputs say nothing about it.
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(statements) = split_statements(sql) else {
        return;
    };
    for s in &statements {
        assert!(!s.is_empty(), "empty statement from {sql:?}");
        assert!(!s.ends_with(';'), "statement {s:?} keeps its `;`");
        assert_eq!(
            s.trim_matches([' ', '\t', '\n', '\r', '\x0c']),
            s,
            "statement {s:?} is not trimmed"
        );
        assert!(!s.contains("\r\n"), "statement {s:?} keeps a CRLF");
        let _ = leading_keyword(s);
    }
    let again = split_statements(&statements.join(";\n"));
    assert_eq!(again.as_ref(), Ok(&statements), "rejoin of {sql:?}");
});
