//! Vectorize's JSON types, limits, errors and NDJSON reader.
//!
//! Oracles: the limits and messages quoted in the Vectorize reference (vectorize.md §1, §6, §8),
//! literal JSON for field names, Rust's own f64→f32 conversion for rounding, and for NDJSON the
//! generated vectors themselves (write → read must give them back).

use std::io::BufReader;

use d1vec::index::Metric;
use d1vec::vectorize::error::{codes, Op, VectorizeError};
use d1vec::vectorize::limits::{self, *};
use d1vec::vectorize::ndjson::{self, parse_line, write_vector, Unparsable, MAX_LINE_BYTES};
use d1vec::vectorize::types::*;
use proptest::prelude::*;
use serde_json::{json, Value};

#[track_caller]
fn check_err<T: std::fmt::Debug>(r: Result<T, VectorizeError>, code: u32, message: &str) {
    let e = r.expect_err("expected an error");
    assert_eq!((e.code, e.message.as_str()), (code, message));
}

#[track_caller]
fn check_code<T: std::fmt::Debug>(r: Result<T, VectorizeError>, code: u32) -> String {
    let e = r.expect_err("expected an error");
    assert_eq!(e.code, code, "{}", e.message);
    e.message
}

// ---------------------------------------------------------------------------------------------
// Errors

#[test]
fn error_renders_as_service_body_and_binding_message() {
    let e = VectorizeError::new(
        40006,
        "invalid query vector, expected 3 dimensions, and got 0 dimensions",
    );
    assert_eq!(
        e.to_json(),
        json!({"code": 40006, "error": "invalid query vector, expected 3 dimensions, and got 0 dimensions"})
    );
    assert_eq!(
        e.binding_message(Op::VectorQuery),
        "VECTOR_QUERY_ERROR (code = 40006): invalid query vector, expected 3 dimensions, and got 0 dimensions"
    );
    assert_eq!(e.to_string(), e.message);
    let prefixes = [
        (Op::IndexGet, "INDEX_GET_ERROR (code = 1): m"),
        (Op::VectorQuery, "VECTOR_QUERY_ERROR (code = 1): m"),
        (Op::VectorInsert, "VECTOR_INSERT_ERROR (code = 1): m"),
        (Op::VectorUpsert, "VECTOR_UPSERT_ERROR (code = 1): m"),
        (Op::VectorGet, "VECTOR_GET_ERROR (code = 1): m"),
        (Op::VectorDelete, "VECTOR_DELETE_ERROR (code = 1): m"),
        (Op::Other, "VECTORIZE_ERROR (code = 1): m"),
    ];
    for (op, want) in prefixes {
        assert_eq!(VectorizeError::new(1, "m").binding_message(op), want);
    }
    assert_eq!(
        VectorizeError::index_not_found("memory_messages").to_json(),
        json!({"code": 3000, "error": "vectorize.index.not_found - Index name \"memory_messages\""})
    );
    assert_eq!(
        VectorizeError::duplicate_index_name("memory_messages").to_json(),
        json!({"code": 3002, "error": "vectorize.index.duplicate_name - Index name \"memory_messages\""})
    );
}

#[test]
fn codes_match_the_design_note() {
    let all = [
        (codes::INDEX_NOT_FOUND, 3000),
        (codes::DUPLICATE_INDEX_NAME, 3002),
        (codes::METADATA_INDEX_NOT_FOUND, 40005),
        (codes::QUERY_VECTOR_DIMENSIONS, 40006),
        (codes::TOO_MANY_IDS, 40007),
        (codes::ID_TOO_LONG, 40008),
        (codes::VECTOR_DIMENSIONS, 40012),
        (codes::OVERSIZED_METADATA, 40016),
        (codes::UNPARSABLE_VECTORS, 40023),
        (codes::TOP_K, 40025),
        (codes::INVALID_REQUEST_BODY, 40026),
        (codes::INVALID_FILTER, 40030),
        (codes::FILTER_WITHOUT_METADATA_INDEX, 40031),
        (codes::INVALID_NAMESPACE, 40032),
        (codes::INVALID_METADATA, 40033),
        (codes::TOO_MANY_METADATA_INDEXES, 40034),
        (codes::INVALID_VECTOR, 40035),
        (codes::QUERY_ID_NOT_FOUND, 40036),
        (codes::BATCH_TOO_LARGE, 40037),
        (codes::INVALID_INDEX_CONFIG, 40038),
        (codes::DUPLICATE_METADATA_INDEX, 40039),
        (codes::TOO_MANY_NAMESPACES, 40040),
    ];
    for (got, want) in all {
        assert_eq!(got, want);
    }
}

// ---------------------------------------------------------------------------------------------
// Limits

#[test]
fn limit_constants() {
    assert_eq!(
        [
            MAX_DIMENSIONS,
            MAX_ID_BYTES,
            MAX_NAMESPACE_BYTES,
            MAX_METADATA_BYTES,
            MAX_TOP_K,
            MAX_TOP_K_WITH_DATA,
            DEFAULT_TOP_K,
            MAX_GET_IDS,
            MAX_DELETE_IDS,
            MAX_BATCH,
            MAX_FILE_BATCH,
            MAX_METADATA_INDEXES,
            MAX_NAMESPACES,
            MAX_INDEX_NAME_BYTES,
            MAX_LIST_COUNT,
            DEFAULT_LIST_COUNT,
        ],
        [1536, 64, 64, 10240, 100, 50, 5, 20, 100, 1000, 5000, 10, 50_000, 64, 1000, 100]
    );
}

#[test]
fn id_limit_counts_bytes_not_chars() {
    let e32 = "é".repeat(32); // 32 chars, 64 bytes
    assert_eq!(e32.len(), 64);
    validate_id(&e32).unwrap();
    validate_id(&"a".repeat(64)).unwrap();
    check_err(
        validate_id(&format!("{e32}a")),
        40008,
        "id too long; max is 64 bytes, got 65 bytes",
    );
    // 64 characters, 65 bytes.
    let s = format!("{}é", "a".repeat(63));
    assert_eq!(s.chars().count(), 64);
    check_err(
        validate_id(&s),
        40008,
        "id too long; max is 64 bytes, got 65 bytes",
    );
    check_err(
        validate_id(&"☃".repeat(30)),
        40008,
        "id too long; max is 64 bytes, got 90 bytes",
    );
    check_code(validate_id(""), 40035);
}

#[test]
fn namespace_limit() {
    validate_namespace(&"n".repeat(64)).unwrap();
    validate_namespace(&"ü".repeat(32)).unwrap();
    check_err(
        validate_namespace(&format!("{}ü", "n".repeat(63))),
        40032,
        "namespace too long; max is 64 bytes, got 65 bytes",
    );
    check_code(validate_namespace(""), 40032);
}

#[test]
fn dimensions_limit() {
    validate_dimensions(1).unwrap();
    validate_dimensions(1536).unwrap();
    check_err(
        validate_dimensions(1537),
        40038,
        "invalid dimensions; must be between 1 and 1536, got 1537",
    );
    check_code(validate_dimensions(0), 40038);
}

#[test]
fn index_name_rules() {
    for ok in [
        "a",
        "my-index",
        "memory_messages",
        "Index2",
        "0abc",
        &"x".repeat(64),
    ] {
        validate_index_name(ok).unwrap();
    }
    for bad in [
        "",
        "-lead",
        "_lead",
        "has space",
        "slash/no",
        "dot.no",
        "é",
        &"x".repeat(65),
    ] {
        let msg = check_code(validate_index_name(bad), 40038);
        assert!(msg.starts_with("invalid index name"), "{msg}");
    }
}

/// `{"k":"<n x's>"}` is n + 8 bytes of compact JSON.
fn metadata_of_size(bytes: usize) -> Value {
    json!({ "k": "x".repeat(bytes - 8) })
}

#[test]
fn metadata_size_limit_is_compact_json_bytes() {
    let at = metadata_of_size(10240);
    assert_eq!(serde_json::to_string(&at).unwrap().len(), 10240);
    assert_eq!(compact_json_len(&at), 10240);
    validate_metadata("v1", &at).unwrap();
    check_err(
        validate_metadata("v1", &metadata_of_size(10241)),
        40016,
        "oversized metadata for vector id=\"v1\"; the compact JSON representation of the \
         metadata must not exceed 10240 bytes, got 10241 bytes",
    );
    // Multibyte characters count as their UTF-8 bytes; pretty-printing does not count.
    let multi = json!({ "k": "é".repeat(5116) }); // 8 + 10232 bytes
    assert_eq!(compact_json_len(&multi), 10240);
    validate_metadata("v", &multi).unwrap();
    let multi = json!({ "k": "é".repeat(5117) });
    check_code(validate_metadata("v", &multi), 40016);
    assert!(serde_json::to_string_pretty(&at).unwrap().len() > 10240);
}

#[test]
fn metadata_key_rules_at_every_level() {
    validate_metadata(
        "v",
        &json!({"a": 1, "b$": "x", "c": {"d": [1, {"e": true}], "f-g": null}, "h": ["$x", "a.b"]}),
    )
    .unwrap();
    let bad = [
        json!({"": 1}),
        json!({"a.b": 1}),
        json!({"a\"b": 1}),
        json!({"$a": 1}),
        json!({"ok": {"": 1}}),
        json!({"ok": {"x": {"a.b": 1}}}),
        json!({"ok": {"$eq": 1}}),
        json!({"ok": [1, {"q\"": 2}]}),
        json!({"ok": [[{"$in": 2}]]}),
    ];
    for m in bad {
        let msg = check_code(validate_metadata("v9", &m), 40033);
        assert!(msg.starts_with("invalid metadata key"), "{msg}");
        assert!(msg.contains("id=\"v9\""), "{msg}");
    }
    for not_object in [json!([1]), json!("s"), json!(1), Value::Null] {
        check_code(validate_metadata("v", &not_object), 40033);
    }
    // Size is checked before keys.
    let both = json!({"$bad": "x".repeat(10240)});
    check_code(validate_metadata("v", &both), 40016);
}

#[test]
fn metadata_key_rules_reach_deep_levels() {
    // serde_json parses at most 128 levels; check a bad key near that depth, through objects
    // and arrays.
    let mut deep = json!({"$leaf": 1});
    for i in 0..120 {
        deep = if i % 2 == 0 {
            json!([deep])
        } else {
            json!({ "n": deep })
        };
    }
    let msg = check_code(
        validate_metadata("v", &json!({ "top": deep.clone() })),
        40033,
    );
    assert!(msg.contains("\"$leaf\""), "{msg}");
    let text = serde_json::to_string(&json!({ "top": deep })).unwrap();
    let parsed: Value = serde_json::from_str(&text.replace("$leaf", "leaf")).unwrap();
    validate_metadata("v", &parsed).unwrap();
}

#[test]
fn write_vector_values() {
    let v = validate_values("a", &[58.8, -1.0, 0.0], 3, Metric::Cosine).unwrap();
    assert_eq!(v, vec![58.8f32, -1.0, 0.0]);
    assert_eq!(f32_rounded(v[0]), 58.79999923706055);
    check_err(
        validate_values("doc\"1", &[1.0, 2.0], 3, Metric::Euclidean),
        40012,
        "invalid vector for id=\"doc\\\"1\", expected 3 dimensions, and got 2 dimensions",
    );
    check_err(
        validate_values("a", &[], 3, Metric::Cosine),
        40012,
        "invalid vector for id=\"a\", expected 3 dimensions, and got 0 dimensions",
    );
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let msg = check_code(
            validate_values("a", &[1.0, bad], 2, Metric::Euclidean),
            40035,
        );
        assert!(msg.contains("index 1"), "{msg}");
    }
    // Finite as f64, infinite as f32.
    let msg = check_code(
        validate_values("a", &[1e39, 1.0], 2, Metric::DotProduct),
        40035,
    );
    assert!(msg.contains("float32 range"), "{msg}");
    validate_values("a", &[3.4028234e38, 1.0], 2, Metric::DotProduct).unwrap();
    // A zero vector has no direction under cosine; other metrics accept it.
    for zero in [[0.0, 0.0], [-0.0, 0.0], [1e-50, -1e-60]] {
        let msg = check_code(validate_values("z", &zero, 2, Metric::Cosine), 40035);
        assert!(msg.contains("zero"), "{msg}");
        validate_values("z", &zero, 2, Metric::Euclidean).unwrap();
        validate_values("z", &zero, 2, Metric::DotProduct).unwrap();
    }
}

#[test]
fn query_vector() {
    check_err(
        validate_query_vector(&[], 768, Metric::Cosine),
        40006,
        "invalid query vector, expected 768 dimensions, and got 0 dimensions",
    );
    check_err(
        validate_query_vector(&[1.0; 4], 3, Metric::Cosine),
        40006,
        "invalid query vector, expected 3 dimensions, and got 4 dimensions",
    );
    check_code(validate_query_vector(&[0.0; 3], 3, Metric::Cosine), 40035);
    check_code(
        validate_query_vector(&[f64::NAN, 1.0, 1.0], 3, Metric::Euclidean),
        40035,
    );
    assert_eq!(
        validate_query_vector(&[0.1, 0.2, 0.3], 3, Metric::Euclidean).unwrap(),
        vec![0.1f32, 0.2, 0.3]
    );
}

#[test]
fn top_k_caps() {
    use ReturnMetadata::*;
    check_top_k(1, false, None).unwrap();
    check_top_k(100, false, None).unwrap();
    check_top_k(100, false, Indexed).unwrap();
    check_err(
        check_top_k(101, false, None),
        40025,
        "max top K is 100, but got 101",
    );
    check_err(
        check_top_k(101, false, Indexed),
        40025,
        "max top K is 100, but got 101",
    );
    let capped = "with returnValues=true or returnMetadata=all, max top K is 50, but got";
    for (values, meta) in [(true, None), (true, Indexed), (false, All), (true, All)] {
        check_top_k(50, values, meta).unwrap();
        check_err(
            check_top_k(51, values, meta),
            40025,
            &format!("{capped} 51"),
        );
        check_err(
            check_top_k(101, values, meta),
            40025,
            &format!("{capped} 101"),
        );
        assert_eq!(top_k_cap(values, meta), 50);
    }
    assert_eq!(top_k_cap(false, Indexed), 100);
    check_code(check_top_k(0, false, None), 40025);
}

#[test]
fn id_count_and_batch_caps() {
    check_get_ids(20).unwrap();
    check_err(
        check_get_ids(21),
        40007,
        "too many ids in payload; max id count is 20, got 21",
    );
    check_delete_ids(100).unwrap();
    check_err(
        check_delete_ids(101),
        40007,
        "too many ids in payload; max id count is 100, got 101",
    );
    check_batch(1000, MAX_BATCH).unwrap();
    check_code(check_batch(1001, MAX_BATCH), 40037);
    check_batch(5000, MAX_FILE_BATCH).unwrap();
    check_code(check_batch(5001, MAX_FILE_BATCH), 40037);
    assert_eq!(check_list_count(None).unwrap(), 100);
    assert_eq!(check_list_count(Some(1000)).unwrap(), 1000);
    check_code(check_list_count(Some(0)), 40026);
    check_code(check_list_count(Some(1001)), 40026);
    check_metadata_index_count(9).unwrap();
    check_code(check_metadata_index_count(10), 40034);
    check_namespace_count(50_000).unwrap();
    check_code(check_namespace_count(50_001), 40040);
}

// ---------------------------------------------------------------------------------------------
// Types

#[test]
fn f32_rounding() {
    assert_eq!(f32_rounded(58.8), 58.79999923706055);
    assert_eq!(round_to_f32(58.8), 58.79999923706055);
    let v = Vector::new("a", vec![58.8, 0.1]);
    assert_eq!(
        serde_json::to_string(&v).unwrap(),
        r#"{"id":"a","values":[58.79999923706055,0.10000000149011612]}"#
    );
    let m = Match {
        id: "a".into(),
        score: 0.5,
        values: Some(vec![58.8]),
        namespace: None,
        metadata: None,
    };
    assert_eq!(
        serde_json::to_string(&m).unwrap(),
        r#"{"id":"a","score":0.5,"values":[58.79999923706055]}"#
    );
}

#[test]
fn json_field_names() {
    let meta = json!({"url": "/x", "n": 1}).as_object().unwrap().clone();
    let v = Vector::new("a", vec![1.0])
        .with_namespace("ns")
        .with_metadata(meta.clone());
    assert_eq!(
        serde_json::to_value(&v).unwrap(),
        json!({"id": "a", "values": [1.0], "namespace": "ns", "metadata": {"url": "/x", "n": 1}})
    );
    let back: Vector = serde_json::from_value(serde_json::to_value(&v).unwrap()).unwrap();
    assert_eq!(back, v);
    assert_eq!(
        serde_json::to_value(Vector::new("b", vec![])).unwrap(),
        json!({"id": "b", "values": []})
    );

    let m = Match {
        id: "a".into(),
        score: 0.25,
        values: None,
        namespace: Some("ns".into()),
        metadata: Some(meta),
    };
    assert_eq!(
        serde_json::to_value(Matches::new(vec![m])).unwrap(),
        json!({"count": 1, "matches": [{"id": "a", "score": 0.25, "namespace": "ns",
                                        "metadata": {"url": "/x", "n": 1}}]})
    );
    assert_eq!(
        serde_json::to_value(MutationResult {
            mutation_id: "m-1".into()
        })
        .unwrap(),
        json!({"mutationId": "m-1"})
    );
    let info = IndexInfo {
        dimensions: 3,
        metric: Metric::Cosine,
        vector_count: 7,
        processed_up_to_datetime: None,
        processed_up_to_mutation: None,
    };
    assert_eq!(
        serde_json::to_value(&info).unwrap(),
        json!({"dimensions": 3, "metric": "cosine", "vectorCount": 7, "processedUpToDatetime": null,
               "processedUpToMutation": null})
    );
    let info = IndexInfo {
        processed_up_to_datetime: Some("2024-07-19T13:11:44.064Z".into()),
        processed_up_to_mutation: Some("7f11d6e5-d126-4f76-936e-fbfec079e0be".into()),
        ..info
    };
    assert_eq!(
        serde_json::to_value(&info).unwrap(),
        json!({"dimensions": 3, "metric": "cosine", "vectorCount": 7,
               "processedUpToDatetime": "2024-07-19T13:11:44.064Z",
               "processedUpToMutation": "7f11d6e5-d126-4f76-936e-fbfec079e0be"})
    );
    for (metric, name) in [
        (Metric::Cosine, "cosine"),
        (Metric::Euclidean, "euclidean"),
        (Metric::DotProduct, "dot-product"),
    ] {
        let d = IndexDescription {
            name: "idx".into(),
            description: None,
            config: IndexConfig {
                dimensions: 768,
                metric,
            },
            created_on: "2024-01-01T00:00:00Z".into(),
            modified_on: "2024-01-02T00:00:00Z".into(),
        };
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"name": "idx", "config": {"dimensions": 768, "metric": name},
                   "created_on": "2024-01-01T00:00:00Z", "modified_on": "2024-01-02T00:00:00Z"})
        );
    }
    let mi = MetadataIndex {
        property_name: "pandas.nice".into(),
        index_type: d1vec::vectorize::filter::eval::IndexType::Number,
    };
    assert_eq!(
        serde_json::to_value(MetadataIndexList {
            metadata_indexes: vec![mi]
        })
        .unwrap(),
        json!({"metadataIndexes": [{"propertyName": "pandas.nice", "indexType": "number"}]})
    );
    assert_eq!(
        serde_json::to_value(DeleteMetadataIndexRequest {
            property_name: "p".into()
        })
        .unwrap(),
        json!({"propertyName": "p"})
    );
    assert_eq!(
        serde_json::to_value(IdsRequest {
            ids: vec!["a".into()]
        })
        .unwrap(),
        json!({"ids": ["a"]})
    );
    let page = ListVectorsResponse {
        count: 1,
        total_count: 3,
        is_truncated: true,
        next_cursor: Some("c1".into()),
        cursor_expiration_timestamp: Some("2025-08-13T20:32:52Z".into()),
        vectors: vec![ListedVector { id: "a".into() }],
    };
    assert_eq!(
        serde_json::to_value(&page).unwrap(),
        json!({"count": 1, "totalCount": 3, "isTruncated": true, "nextCursor": "c1",
               "cursorExpirationTimestamp": "2025-08-13T20:32:52Z", "vectors": [{"id": "a"}]})
    );
    let last = ListVectorsResponse {
        is_truncated: false,
        next_cursor: None,
        cursor_expiration_timestamp: None,
        ..page
    };
    assert_eq!(
        serde_json::to_value(&last).unwrap(),
        json!({"count": 1, "totalCount": 3, "isTruncated": false, "nextCursor": null,
               "cursorExpirationTimestamp": null, "vectors": [{"id": "a"}]})
    );
    assert_eq!(
        serde_json::to_value(QueryOptions::default()).unwrap(),
        json!({"topK": 5, "returnValues": false, "returnMetadata": "none"})
    );
    let q = QueryOptions::new()
        .with_top_k(7)
        .with_namespace("ns")
        .with_values(true)
        .with_metadata(ReturnMetadata::Indexed)
        .with_filter(json!({"a": 1}));
    let body = serde_json::to_value(&q).unwrap();
    assert_eq!(
        body,
        json!({"topK": 7, "namespace": "ns", "returnValues": true, "returnMetadata": "indexed",
               "filter": {"a": 1}})
    );
    assert_eq!(QueryOptions::from_json(&body).unwrap(), q);
}

#[test]
fn return_metadata_parsing() {
    assert_eq!(
        parse_return_metadata(&json!(true)).unwrap(),
        ReturnMetadata::All
    );
    assert_eq!(
        parse_return_metadata(&json!("all")).unwrap(),
        ReturnMetadata::All
    );
    assert_eq!(
        parse_return_metadata(&json!("indexed")).unwrap(),
        ReturnMetadata::Indexed
    );
    assert_eq!(
        parse_return_metadata(&json!("none")).unwrap(),
        ReturnMetadata::None
    );
    assert_eq!(
        parse_return_metadata(&Value::Null).unwrap(),
        ReturnMetadata::None
    );
    let false_msg = "Failed to parse the request body as JSON: returnMetadata: expected value";
    check_err(parse_return_metadata(&json!(false)), 40026, false_msg);
    check_err(
        parse_return_metadata(&json!("bogus")),
        40026,
        "Invalid returnMetadata option. Expected: true, false, \"none\", \"indexed\" or \"all\"; got: bogus",
    );
    check_code(parse_return_metadata(&json!("ALL")), 40026);
    check_code(parse_return_metadata(&json!(1)), 40026);
    check_code(parse_return_metadata(&json!({})), 40026);
    // Through the query body and through serde.
    check_err(
        QueryOptions::from_json(&json!({"returnMetadata": false})),
        40026,
        false_msg,
    );
    let q = QueryOptions::from_json(&json!({"returnMetadata": true})).unwrap();
    assert_eq!(q.return_metadata, ReturnMetadata::All);
    let q: QueryOptions = serde_json::from_value(json!({"returnMetadata": "indexed"})).unwrap();
    assert_eq!(q.return_metadata, ReturnMetadata::Indexed);
    let e = serde_json::from_value::<ReturnMetadata>(json!(false)).unwrap_err();
    assert!(
        e.to_string().contains("returnMetadata: expected value"),
        "{e}"
    );
    let r: ReturnMetadata = serde_json::from_value(json!(true)).unwrap();
    assert_eq!(r, ReturnMetadata::All);
}

#[test]
fn query_options_defaults_and_types() {
    let d = QueryOptions::from_json(&json!({})).unwrap();
    assert_eq!(d, QueryOptions::default());
    assert_eq!(
        (
            d.top_k,
            d.namespace,
            d.return_values,
            d.return_metadata,
            d.filter
        ),
        (5, None, false, ReturnMetadata::None, None)
    );
    // null is the default; unknown fields such as vector / vectorId are ignored.
    let q = QueryOptions::from_json(&json!({
        "topK": null, "namespace": null, "returnValues": null, "returnMetadata": null,
        "filter": null, "vector": [1, 2], "vectorId": "x"
    }))
    .unwrap();
    assert_eq!(q, QueryOptions::default());
    let q = QueryOptions::from_json(&json!({"topK": 5.0})).unwrap();
    assert_eq!(q.top_k, 5);
    // topK is parsed, not capped, here.
    assert_eq!(
        QueryOptions::from_json(&json!({"topK": 1000}))
            .unwrap()
            .top_k,
        1000
    );
    for bad in [
        json!({"topK": "5"}),
        json!({"topK": -1}),
        json!({"topK": 2.5}),
        json!({"namespace": 1}),
        json!({"returnValues": "true"}),
        json!({"returnValues": 1}),
        json!([]),
        json!("x"),
    ] {
        let msg = check_code(QueryOptions::from_json(&bad), 40026);
        assert!(
            msg.starts_with("Failed to parse the request body as JSON: "),
            "{msg}"
        );
    }
}

#[test]
fn presets_and_create_index_requests() {
    let want = [
        ("@cf/baai/bge-small-en-v1.5", 384),
        ("@cf/baai/bge-base-en-v1.5", 768),
        ("@cf/baai/bge-large-en-v1.5", 1024),
        ("openai/text-embedding-ada-002", 1536),
        ("cohere/embed-multilingual-v2.0", 768),
    ];
    assert_eq!(Preset::ALL.len(), want.len());
    for (name, dims) in want {
        let p = Preset::parse(name).unwrap();
        assert_eq!(
            (p.name(), p.dimensions(), p.metric()),
            (name, dims, Metric::Cosine)
        );
        assert_eq!(serde_json::to_value(p).unwrap(), json!(name));
        let req = CreateIndexRequest::from_json(&json!({"name": "i", "config": {"preset": name}}))
            .unwrap();
        assert_eq!(
            req.validate().unwrap(),
            IndexConfig {
                dimensions: dims,
                metric: Metric::Cosine
            }
        );
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"name": "i", "config": {"preset": name}})
        );
        let via_serde: CreateIndexRequest =
            serde_json::from_value(json!({"name": "i", "config": {"preset": name}})).unwrap();
        assert_eq!(via_serde, req);
    }
    assert_eq!(Preset::parse("@cf/baai/bge-m3"), None);

    let body = json!({"name": "docs", "description": "d",
                      "config": {"dimensions": 32, "metric": "dot-product"}});
    let req = CreateIndexRequest::from_json(&body).unwrap();
    assert_eq!(
        req,
        CreateIndexRequest {
            name: "docs".into(),
            description: Some("d".into()),
            config: CreateIndexConfig::Dimensions {
                dimensions: 32,
                metric: Metric::DotProduct
            },
        }
    );
    assert_eq!(serde_json::to_value(&req).unwrap(), body);
    assert_eq!(
        serde_json::from_value::<CreateIndexRequest>(body).unwrap(),
        req
    );
    assert_eq!(
        req.validate().unwrap(),
        IndexConfig {
            dimensions: 32,
            metric: Metric::DotProduct
        }
    );

    for bad in [
        json!({"config": {"preset": "@cf/baai/bge-small-en-v1.5"}}),
        json!({"name": 1, "config": {"dimensions": 3, "metric": "cosine"}}),
        json!({"name": "a"}),
        json!({"name": "a", "config": []}),
        json!({"name": "a", "config": {}}),
        json!({"name": "a", "config": {"dimensions": 3}}),
        json!({"name": "a", "config": {"metric": "cosine"}}),
        json!({"name": "a", "config": {"dimensions": 3, "metric": "manhattan"}}),
        json!({"name": "a", "config": {"dimensions": -3, "metric": "cosine"}}),
        json!({"name": "a", "config": {"dimensions": "3", "metric": "cosine"}}),
        json!({"name": "a", "config": {"preset": "nope"}}),
        json!({"name": "a", "config": {"preset": "openai/text-embedding-ada-002", "dimensions": 3}}),
        json!({"name": "a", "description": 5, "config": {"dimensions": 3, "metric": "cosine"}}),
    ] {
        check_code(CreateIndexRequest::from_json(&bad), 40038);
    }
    for (body, code) in [
        (
            json!({"name": "a", "config": {"dimensions": 1537, "metric": "cosine"}}),
            40038,
        ),
        (
            json!({"name": "a", "config": {"dimensions": 0, "metric": "cosine"}}),
            40038,
        ),
        (
            json!({"name": "bad name", "config": {"dimensions": 3, "metric": "cosine"}}),
            40038,
        ),
    ] {
        let req = CreateIndexRequest::from_json(&body).unwrap();
        check_code(req.validate(), code);
    }
}

#[test]
fn vector_from_json_names_the_problem() {
    let v = Vector::from_json(&json!({"id": "a", "values": [1, 2.5], "namespace": null,
                                      "metadata": {"k": 1}, "other": 1}))
    .unwrap();
    assert_eq!(v.values, vec![1.0, 2.5]);
    assert_eq!(v.namespace, None);
    assert_eq!(v.metadata.unwrap()["k"], json!(1));
    for (body, what) in [
        (json!([1]), "expected a JSON object, got an array"),
        (json!({"values": [1]}), "missing \"id\""),
        (
            json!({"id": 1, "values": [1]}),
            "\"id\" must be a string, got a number",
        ),
        (json!({"id": "a"}), "missing \"values\""),
        (
            json!({"id": "a", "values": "1"}),
            "\"values\" must be an array of numbers, got a string",
        ),
        (
            json!({"id": "a", "values": [1, null]}),
            "\"values\"[1] must be a number, got null",
        ),
        (
            json!({"id": "a", "values": [1], "namespace": 1}),
            "\"namespace\" must be a string, got a number",
        ),
        (
            json!({"id": "a", "values": [1], "metadata": []}),
            "\"metadata\" must be an object, got an array",
        ),
    ] {
        check_err(
            Vector::from_json(&body),
            40023,
            &format!("invalid vector: {what}"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// NDJSON

fn read_all(
    bytes: &[u8],
    batch: usize,
    mode: Unparsable,
) -> (Vec<Vec<Vector>>, Option<VectorizeError>, usize, usize) {
    // A tiny buffer, so lines straddle buffer refills.
    let mut r = ndjson::reader(BufReader::with_capacity(7, bytes), batch, mode);
    let mut batches = Vec::new();
    let mut err = None;
    for item in r.by_ref() {
        match item {
            Ok(b) => batches.push(b),
            Err(e) => {
                assert!(err.is_none(), "two errors");
                err = Some(e);
            }
        }
    }
    assert!(r.next().is_none(), "the reader must stay finished");
    (batches, err, r.discarded(), r.lines_read())
}

fn rounded(v: &Vector) -> Vector {
    Vector {
        values: v.values.iter().map(|&x| round_to_f32(x)).collect(),
        ..v.clone()
    }
}

/// Values compared as float32, everything else exactly.
#[track_caller]
fn assert_same_vectors(got: &[Vector], want: &[Vector]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(
            (&g.id, &g.namespace, &g.metadata),
            (&w.id, &w.namespace, &w.metadata)
        );
        let gf: Vec<f32> = g.values.iter().map(|&x| x as f32).collect();
        let wf: Vec<f32> = w.values.iter().map(|&x| x as f32).collect();
        assert_eq!(gf, wf, "values of {}", g.id);
    }
}

fn metadata_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        "[a-z é☃\"\\\\/\n]{0,12}".prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1000i32..1000).prop_map(|n| Value::from(f64::from(n) / 8.0)),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn vector() -> impl Strategy<Value = Vector> {
    let value = prop_oneof![
        4 => -1e6f64..1e6,
        1 => Just(58.8),
        1 => Just(-0.0),
        1 => -1e30f64..1e30,
        1 => any::<f32>().prop_filter("finite", |f| f.is_finite()).prop_map(f64::from),
    ];
    (
        "[a-zA-Z0-9_é☃\\-]{1,20}",
        prop::collection::vec(value, 0..12),
        prop::option::of("[a-z0-9é]{1,10}"),
        prop::option::of(prop::collection::btree_map(
            "[a-z_]{1,8}",
            metadata_value(),
            0..4,
        )),
    )
        .prop_map(|(id, values, namespace, metadata)| Vector {
            id,
            values,
            namespace,
            metadata: metadata.map(|m| m.into_iter().collect()),
        })
}

/// What goes between (and around) vector lines.
#[derive(Debug, Clone, Copy)]
enum Filler {
    None,
    Blank,
    Spaces,
    BlankCrlf,
}

fn filler() -> impl Strategy<Value = Filler> {
    prop_oneof![
        4 => Just(Filler::None),
        1 => Just(Filler::Blank),
        1 => Just(Filler::Spaces),
        1 => Just(Filler::BlankCrlf),
    ]
}

/// Writes `vectors` as NDJSON with fillers and line endings; returns the bytes and the line
/// number of each vector.
fn write_file(
    vectors: &[(Vector, Filler, bool)],
    bom: bool,
    final_newline: bool,
) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    if bom {
        out.extend_from_slice(b"\xEF\xBB\xBF");
    }
    let mut lines = Vec::new();
    let mut line = 0;
    for (i, (v, fill, crlf)) in vectors.iter().enumerate() {
        match fill {
            Filler::None => {}
            Filler::Blank => out.extend_from_slice(b"\n"),
            Filler::Spaces => out.extend_from_slice(b"  \t \n"),
            Filler::BlankCrlf => out.extend_from_slice(b"\r\n"),
        }
        if !matches!(fill, Filler::None) {
            line += 1;
        }
        let mut buf = Vec::new();
        write_vector(&mut buf, v).unwrap();
        assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(buf.last(), Some(&b'\n'));
        if *crlf {
            buf.pop();
            buf.extend_from_slice(b"\r\n");
        }
        if i + 1 == vectors.len() && !final_newline {
            while matches!(buf.last(), Some(b'\n' | b'\r')) {
                buf.pop();
            }
        }
        out.extend_from_slice(&buf);
        line += 1;
        lines.push(line);
    }
    (out, lines)
}

const MALFORMED: [&str; 10] = [
    "{",
    "not json at all",
    "{\"id\": 5, \"values\": []}",
    "[1,2]",
    "{\"id\":\"a\"}",
    "{\"id\":\"a\",\"values\":[1,\"x\"]}",
    "{\"id\":\"a\",\"values\":[1],\"metadata\":[]}",
    "{\"id\":\"a\",\"values\":[1e999]}",
    "{\"id\":\"a\",\"values\":[1]} {}",
    "null",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn ndjson_round_trip(
        items in prop::collection::vec((vector(), filler(), any::<bool>()), 0..25),
        batch in 1usize..8,
        bom in any::<bool>(),
        final_newline in any::<bool>(),
    ) {
        let (bytes, _) = write_file(&items, bom, final_newline);
        let want: Vec<Vector> = items.iter().map(|(v, _, _)| rounded(v)).collect();
        let (batches, err, discarded, lines) = read_all(&bytes, batch, Unparsable::Error);
        prop_assert!(err.is_none(), "{err:?}");
        prop_assert_eq!(discarded, 0);
        // Every batch is full but the last.
        for (i, b) in batches.iter().enumerate() {
            prop_assert!(!b.is_empty() && b.len() <= batch);
            if i + 1 < batches.len() {
                prop_assert_eq!(b.len(), batch);
            }
        }
        let got: Vec<Vector> = batches.concat();
        assert_same_vectors(&got, &want);
        let newlines = bytes.iter().filter(|&&b| b == b'\n').count();
        let unterminated = usize::from(!bytes.is_empty() && !bytes.ends_with(b"\n"));
        prop_assert_eq!(lines, newlines + unterminated);
    }

    #[test]
    fn ndjson_malformed_line(
        items in prop::collection::vec((vector(), filler(), any::<bool>()), 1..15),
        at in any::<prop::sample::Index>(),
        bad in prop::sample::select(&MALFORMED[..]),
        batch in 1usize..6,
    ) {
        let (good, _) = write_file(&items, false, true);
        let want: Vec<Vector> = items.iter().map(|(v, _, _)| rounded(v)).collect();
        // Insert the malformed line before vector `k`.
        let k = at.index(items.len() + 1);
        let (before, lines_before) = write_file(&items[..k], false, true);
        let bad_line_no = lines_before.last().copied().unwrap_or(0) + 1;
        let mut bytes = before.clone();
        bytes.extend_from_slice(bad.as_bytes());
        bytes.push(b'\n');
        bytes.extend_from_slice(&good[before.len()..]);

        let (batches, err, _, _) = read_all(&bytes, batch, Unparsable::Error);
        let err = err.expect("the malformed line must fail");
        prop_assert_eq!(err.code, 40023);
        let prefix = format!("failed to parse vectors in NDJSON format: line {bad_line_no}");
        prop_assert!(err.message.starts_with(&prefix), "{} / {}", err.message, prefix);
        let rest = &err.message[prefix.len()..];
        prop_assert!(rest.starts_with(':') || rest.starts_with(", column"), "{}", err.message);
        if bad.len() > 8 {
            prop_assert!(!err.message.contains(bad), "the message repeats the line: {}", err.message);
        }
        // The batches completed before the bad line were yielded, nothing after it.
        let got: Vec<Vector> = batches.concat();
        assert_same_vectors(&got, &want[..k / batch * batch]);

        let (batches, err, discarded, _) = read_all(&bytes, batch, Unparsable::Discard);
        prop_assert!(err.is_none());
        prop_assert_eq!(discarded, 1);
        assert_same_vectors(&batches.concat(), &want);
    }
}

#[test]
fn ndjson_edge_cases() {
    // Empty input, only blank lines, a lone BOM.
    for input in [
        &b""[..],
        b"\n\n\r\n  \n",
        b"\xEF\xBB\xBF",
        b"\xEF\xBB\xBF\r\n",
    ] {
        let (batches, err, discarded, _) = read_all(input, 3, Unparsable::Error);
        assert!(batches.is_empty() && err.is_none() && discarded == 0);
    }
    // A BOM is only allowed at the very start.
    let input = b"{\"id\":\"a\",\"values\":[1]}\n\xEF\xBB\xBF{\"id\":\"b\",\"values\":[1]}\n";
    let (batches, err, _, _) = read_all(input, 3, Unparsable::Error);
    assert!(batches.is_empty());
    assert!(err.unwrap().message.contains("line 2"));
    // Batch size 0 behaves as 1.
    let input = b"{\"id\":\"a\",\"values\":[1]}\n{\"id\":\"b\",\"values\":[2]}";
    let (batches, _, _, lines) = read_all(input, 0, Unparsable::Error);
    assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1]);
    assert_eq!(lines, 2);
    // The docs' example line.
    let line = br#"{ "id": "4444", "values": [175.1, 167.1, 129.9], "metadata": {"url": "/products/sku/918318313"}}"#;
    let v = parse_line(line, 1).unwrap().unwrap();
    assert_eq!(v.id, "4444");
    assert_eq!(v.values, vec![175.1, 167.1, 129.9]);
    assert_eq!(parse_line(b"  \r", 4), Ok(None));
    assert_eq!(
        parse_line(b"{\"id\":\"a\"}\r", 9),
        Err("line 9: missing \"values\"".to_string())
    );
    assert_eq!(
        parse_line(b"{\"id\":\"a\",\"values\":[1,]}", 3),
        Err("line 3, column 23: invalid JSON: trailing comma".to_string())
    );
}

#[test]
fn ndjson_overlong_line() {
    let long = format!(
        "{{\"id\":\"a\",\"values\":[1],\"metadata\":{{\"k\":\"{}\"}}}}",
        "x".repeat(MAX_LINE_BYTES)
    );
    let input = format!("{long}\n{{\"id\":\"b\",\"values\":[2]}}\n{long}");
    let (batches, err, _, _) = read_all(input.as_bytes(), 10, Unparsable::Error);
    assert!(batches.is_empty());
    let err = err.unwrap();
    assert_eq!(err.code, 40023);
    assert!(
        err.message
            .starts_with("failed to parse vectors in NDJSON format: line 1: the line is"),
        "{}",
        err.message
    );
    assert!(err.message.len() < 200);
    let (batches, err, discarded, lines) = read_all(input.as_bytes(), 10, Unparsable::Discard);
    assert!(err.is_none());
    assert_eq!(
        batches
            .concat()
            .iter()
            .map(|v| v.id.as_str())
            .collect::<Vec<_>>(),
        ["b"]
    );
    assert_eq!((discarded, lines), (2, 3));
    // A line of exactly MAX_LINE_BYTES (with CRLF) is read.
    let pad = MAX_LINE_BYTES - "{\"id\":\"c\",\"values\":[3]}".len();
    let exact = format!("{{\"id\":\"c\",\"values\":[3]}}{}\r\n", " ".repeat(pad));
    let (batches, err, _, _) = read_all(exact.as_bytes(), 10, Unparsable::Error);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(batches.concat()[0].id, "c");
}

/// Expected outcome of the hand-written corpus files: (vectors read with Discard, lines
/// discarded, first bad line).
const CORPUS: [(&str, usize, usize, Option<usize>); 11] = [
    ("ok_basic", 2, 0, None),
    ("ok_crlf_bom", 2, 0, None),
    ("ok_namespace_metadata", 2, 0, None),
    ("ok_no_final_newline", 1, 0, None),
    ("ok_unicode_exponents", 1, 0, None),
    ("bad_truncated_json", 2, 1, Some(2)),
    ("bad_values_type", 0, 1, Some(1)),
    ("bad_not_object", 1, 2, Some(1)),
    ("bad_number_range", 0, 1, Some(1)),
    ("bad_field_types", 0, 5, Some(1)),
    ("bad_trailing_and_utf8", 0, 3, Some(1)),
];

#[test]
fn fuzz_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/ndjson_line");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for batch in [1, 3] {
            let (ok_batches, err, _, lines_e) = read_all(&bytes, batch, Unparsable::Error);
            let (all, none, discarded, lines) = read_all(&bytes, batch, Unparsable::Discard);
            assert!(none.is_none(), "{name}");
            let all = all.concat();
            assert!(all.len() + discarded <= lines, "{name}");
            // Error mode yields a prefix of what Discard mode yields, and fails iff something
            // was discarded.
            let ok = ok_batches.concat();
            assert_eq!(all[..ok.len()], ok[..], "{name}");
            assert_eq!(err.is_some(), discarded > 0, "{name}");
            if err.is_none() {
                assert_eq!(lines_e, lines, "{name}");
            }
            if let Some(&(_, n, d, bad)) = CORPUS.iter().find(|c| c.0 == name) {
                seen += 1;
                assert_eq!((all.len(), discarded), (n, d), "{name}");
                let line = err.map(|e| {
                    let rest = e
                        .message
                        .strip_prefix("failed to parse vectors in NDJSON format: line ")
                        .unwrap()
                        .to_string();
                    rest[..rest.find([':', ',']).unwrap()]
                        .parse::<usize>()
                        .unwrap()
                });
                assert_eq!(line, bad, "{name}");
            }
        }
    }
    assert_eq!(seen, 2 * CORPUS.len(), "corpus files missing");
}

#[test]
fn corpus_vectors_have_the_expected_content() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/ndjson_line");
    let bytes = std::fs::read(dir.join("ok_namespace_metadata")).unwrap();
    let (batches, _, _, _) = read_all(&bytes, 10, Unparsable::Error);
    let v = &batches[0];
    assert_eq!(v[0].namespace.as_deref(), Some("tenant-a"));
    assert_eq!(v[0].metadata.as_ref().unwrap()["pandas"]["nice"], json!(42));
    assert_eq!(
        (v[1].namespace.as_ref(), v[1].metadata.as_ref()),
        (None, None)
    );
    let bytes = std::fs::read(dir.join("ok_unicode_exponents")).unwrap();
    let (batches, _, _, _) = read_all(&bytes, 10, Unparsable::Error);
    let v = &batches[0][0];
    assert_eq!(v.id, "été ☃");
    assert_eq!(v.values, vec![1e-3, -0.0, 3.4028235e38, -100.0]);
    limits::validate_values(&v.id, &v.values, 4, Metric::Euclidean).unwrap();
}
