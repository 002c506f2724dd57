//! Fuzzes the NDJSON vector reader: it must never panic; with `discard` it must read every
//! line; with `error` it must yield a prefix of what `discard` yields and fail exactly when
//! `discard` skipped something; and every vector it reads must survive `write_vector` and a
//! second read (values compared as float32).
#![no_main]

use d1vec::vectorize::ndjson::{parse_line, reader, write_vector, Unparsable};
use d1vec::vectorize::types::{Metadata, Vector};
use libfuzzer_sys::fuzz_target;

/// serde_json's `Value`, named through d1vec's `Metadata` (the fuzz crate depends on d1vec
/// and libfuzzer-sys only).
type Value = <Metadata as std::ops::Index<&'static str>>::Output;

/// JSON equality where floats may differ in the last bits (serde_json's default float parser
/// is not always correctly rounded).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| same_json(a, b)))
        }
        _ => a == b,
    }
}

fn read(data: &[u8], batch: usize, mode: Unparsable) -> (Vec<Vector>, bool, usize, usize) {
    let mut r = reader(data, batch, mode);
    let mut out = Vec::new();
    let mut failed = false;
    for item in r.by_ref() {
        match item {
            Ok(b) => {
                assert!(!b.is_empty() && b.len() <= batch.max(1));
                out.extend(b);
            }
            Err(e) => {
                assert!(!failed, "two errors");
                assert_eq!(e.code, 40023);
                failed = true;
            }
        }
    }
    assert!(r.next().is_none());
    (out, failed, r.discarded(), r.lines_read())
}

fuzz_target!(|data: &[u8]| {
    let batch = data.first().map_or(1, |&b| usize::from(b % 7));
    let (all, failed, discarded, lines) = read(data, batch, Unparsable::Discard);
    assert!(!failed);
    assert!(all.len() + discarded <= lines);
    let (prefix, failed, _, _) = read(data, batch, Unparsable::Error);
    assert_eq!(failed, discarded > 0);
    assert_eq!(all[..prefix.len()], prefix[..]);

    for v in &all {
        // Values outside the float32 range are written as null and cannot come back.
        if v.values.iter().any(|&x| !(x as f32).is_finite()) {
            continue;
        }
        let mut line = Vec::new();
        write_vector(&mut line, v).unwrap();
        let back = parse_line(&line[..line.len() - 1], 1).unwrap().unwrap();
        assert_eq!(back.id, v.id);
        assert_eq!(back.namespace, v.namespace);
        let a: Vec<f32> = back.values.iter().map(|&x| x as f32).collect();
        let b: Vec<f32> = v.values.iter().map(|&x| x as f32).collect();
        assert_eq!(a, b);
        match (back.metadata, &v.metadata) {
            (None, None) => {}
            (Some(a), Some(b)) => assert!(same_json(&Value::Object(a), &Value::Object(b.clone()))),
            (a, b) => panic!("metadata {b:?} came back as {a:?}"),
        }
    }
    let _ = parse_line(data, 1);
});
