//! `d1vec::remote::Cloudflare` against recorded Cloudflare answers (tests/data/cloudflare,
//! see its README for where each came from), served by the scripted server in
//! `remote_mock.rs`: what the client sends (method, path, headers, body) is checked against
//! the API reference, and what it reads against the recorded bodies. Retries are checked by
//! counting the requests the server saw and timing the gaps between them.

use std::time::{Duration, Instant};

use d1vec::remote::{Cloudflare, RetryPolicy, VectorBackend};
use d1vec::vectorize::filter::eval::IndexType;
use d1vec::vectorize::types::{
    CreateIndexConfig, CreateIndexRequest, QueryOptions, ReturnMetadata, Vector,
};
use d1vec::Error;
use serde_json::json;

use super::remote_mock::{fixture, Mock, Reply};

const TOKEN: &str = "canary-token-7f3a9c";
const ACCOUNT: &str = "023e105f4ecef8ad9ca31a8372d0c353";

fn client(mock: &Mock) -> Cloudflare {
    Cloudflare::new(ACCOUNT, TOKEN)
        .base_url(&mock.base_url)
        .timeout(Duration::from_secs(10))
        .retry(RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            max_wait: Duration::from_secs(5),
        })
}

fn path(rest: &str) -> String {
    format!("/client/v4/accounts/{ACCOUNT}/{rest}")
}

#[test]
fn list_indexes_reads_the_documented_example_and_sends_the_token() {
    let mock = Mock::start(vec![Reply::ok(&fixture("vectorize_list_indexes.json"))]);
    let cf = client(&mock);
    // The documented example carries placeholder `errors` next to `"success": true`: the
    // result is what counts.
    let list = cf.list_indexes().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, "example-index");
    assert_eq!(list[0].config.dimensions, 768);
    assert_eq!(list[0].config.metric, d1vec::index::Metric::Cosine);
    assert_eq!(
        list[0].description.as_deref(),
        Some("This is my example index.")
    );
    assert_eq!(list[0].created_on, "2022-11-15T18:25:44.442097Z");
    let seen = mock.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].target, path("vectorize/v2/indexes"));
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[test]
fn create_index_sends_the_documented_body() {
    let mock = Mock::start(vec![Reply::ok(&fixture("vectorize_get_index.json"))]);
    let cf = client(&mock);
    let req = CreateIndexRequest {
        name: "example-index".into(),
        description: Some("This is my example index.".into()),
        config: CreateIndexConfig::Dimensions {
            dimensions: 768,
            metric: d1vec::index::Metric::Cosine,
        },
    };
    let made = cf.create_index(&req).unwrap();
    assert_eq!(made.name, "example-index");
    let seen = &mock.seen()[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, path("vectorize/v2/indexes"));
    assert_eq!(
        seen.json(),
        json!({"name": "example-index", "description": "This is my example index.",
               "config": {"dimensions": 768, "metric": "cosine"}})
    );
}

#[test]
fn query_and_query_by_id_send_vector_or_vector_id() {
    let body = fixture("vectorize_query.json");
    let mock = Mock::start(vec![Reply::ok(&body), Reply::ok(&body)]);
    let cf = client(&mock);
    let index = cf.vectorize("my index");
    let opts = QueryOptions::new()
        .with_top_k(5)
        .with_values(true)
        .with_metadata(ReturnMetadata::All)
        .with_namespace("my-namespace")
        .with_filter(json!({"streaming_platform": "netflix"}));
    let hits = index.query(&[0.5, 0.5, 0.5], &opts).unwrap();
    assert_eq!(hits.count, 2);
    assert_eq!(hits.matches[0].id, "some-vector-id-023988");
    assert_eq!(hits.matches[0].score, 0.962);
    assert_eq!(
        hits.matches[0].values.as_deref(),
        Some(&[0.5, 0.5, 0.5][..])
    );
    assert_eq!(hits.matches[0].namespace.as_deref(), Some("my-namespace"));
    assert_eq!(
        hits.matches[0].metadata.as_ref().unwrap()["streaming_platform"],
        "netflix"
    );
    assert_eq!(hits.matches[1].values, None);
    let by_id = index.query_by_id("some-vector-id-023988", &opts).unwrap();
    assert_eq!(by_id, hits);
    let seen = mock.seen();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(
        seen[0].target,
        path("vectorize/v2/indexes/my%20index/query")
    );
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    let expected_opts = json!({"topK": 5, "namespace": "my-namespace", "returnValues": true,
        "returnMetadata": "all", "filter": {"streaming_platform": "netflix"}});
    let mut with_vector = expected_opts.clone();
    with_vector["vector"] = json!([0.5, 0.5, 0.5]);
    assert_eq!(seen[0].json(), with_vector);
    let mut with_id = expected_opts;
    with_id["vectorId"] = json!("some-vector-id-023988");
    assert_eq!(seen[1].json(), with_id);
}

#[test]
fn describe_fills_the_metric_that_info_leaves_out() {
    let mock = Mock::start(vec![
        Reply::ok(&fixture("vectorize_info.json")),
        Reply::ok(&fixture("vectorize_get_index.json")),
    ]);
    let cf = client(&mock);
    let info = cf.vectorize("example-index").describe().unwrap();
    assert_eq!(info.dimensions, 768);
    assert_eq!(info.vector_count, 1000);
    assert_eq!(info.metric, d1vec::index::Metric::Cosine);
    assert_eq!(
        info.processed_up_to_mutation.as_deref(),
        Some("b5f5ff0c-2c64-4a4e-9c7d-2c1b6f0e3a6d")
    );
    let seen = mock.seen();
    assert_eq!(
        seen[0].target,
        path("vectorize/v2/indexes/example-index/info")
    );
    assert_eq!(seen[1].target, path("vectorize/v2/indexes/example-index"));
}

#[test]
fn writes_send_ndjson_and_ids() {
    let m = fixture("vectorize_mutation.json");
    let mock = Mock::start(vec![Reply::ok(&m), Reply::ok(&m), Reply::ok(&m)]);
    let cf = client(&mock);
    let index = cf.vectorize("ix");
    let mut meta = serde_json::Map::new();
    meta.insert("url".into(), json!("/products/sku/918318313"));
    let vectors = vec![
        Vector::new("4444", vec![175.1, 167.1, 129.9]).with_metadata(meta),
        Vector::new("5555", vec![1.0, 2.0, 3.0]).with_namespace("ns"),
    ];
    let r = index.upsert(&vectors).unwrap();
    assert_eq!(r.mutation_id, "b5f5ff0c-2c64-4a4e-9c7d-2c1b6f0e3a6d");
    index.insert(&vectors[..1]).unwrap();
    index
        .delete_by_ids(&["4444".to_owned(), "5555".to_owned()])
        .unwrap();
    let seen = mock.seen();
    assert_eq!(seen[0].target, path("vectorize/v2/indexes/ix/upsert"));
    assert_eq!(seen[0].header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<Vector> = std::str::from_utf8(&seen[0].body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Values travel as float32, as Vectorize stores them.
    let as_f32 = |v: &[f64]| v.iter().map(|&x| f64::from(x as f32)).collect::<Vec<_>>();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].id, "4444");
    assert_eq!(lines[0].values, as_f32(&vectors[0].values));
    assert_eq!(lines[0].metadata, vectors[0].metadata);
    assert_eq!(lines[1].namespace.as_deref(), Some("ns"));
    assert_eq!(seen[1].target, path("vectorize/v2/indexes/ix/insert"));
    assert_eq!(
        seen[2].target,
        path("vectorize/v2/indexes/ix/delete_by_ids")
    );
    assert_eq!(seen[2].json(), json!({"ids": ["4444", "5555"]}));
}

#[test]
fn reads_get_by_ids_list_and_metadata_indexes() {
    let m = fixture("vectorize_mutation.json");
    let mock = Mock::start(vec![
        Reply::ok(&fixture("vectorize_get_by_ids.json")),
        Reply::ok(&fixture("vectorize_list_vectors.json")),
        Reply::ok(&fixture("vectorize_metadata_index_list.json")),
        Reply::ok(&m),
        Reply::ok(&m),
    ]);
    let cf = client(&mock);
    let index = cf.vectorize("ix");
    let got = index
        .get_by_ids(&["some-vector-id-023988".to_owned()])
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].values, vec![175.1, 167.1, 129.9]);
    assert_eq!(got[0].namespace.as_deref(), Some("my-namespace"));
    let page = index.list_vectors(Some(2), Some("abc+/=")).unwrap();
    assert_eq!(page.count, 2);
    assert_eq!(page.total_count, 3);
    assert!(page.is_truncated);
    assert_eq!(
        page.next_cursor.as_deref(),
        Some("AAAAAQAAAAIAAAABAAAAAg==")
    );
    assert_eq!(page.vectors[1].id, "vector-id-2");
    let mi = index.list_metadata_indexes().unwrap();
    assert_eq!(mi.len(), 3);
    assert_eq!(mi[0].property_name, "some-num-prop");
    assert_eq!(mi[0].index_type, IndexType::Number);
    index
        .create_metadata_index("genre", IndexType::String)
        .unwrap();
    index.delete_metadata_index("genre").unwrap();
    let seen = mock.seen();
    assert_eq!(seen[0].target, path("vectorize/v2/indexes/ix/get_by_ids"));
    assert_eq!(seen[0].json(), json!({"ids": ["some-vector-id-023988"]}));
    assert_eq!(seen[1].method, "GET");
    assert_eq!(
        seen[1].target,
        path("vectorize/v2/indexes/ix/list?count=2&cursor=abc%2B%2F%3D")
    );
    assert_eq!(
        seen[2].target,
        path("vectorize/v2/indexes/ix/metadata_index/list")
    );
    assert_eq!(
        seen[3].target,
        path("vectorize/v2/indexes/ix/metadata_index/create")
    );
    assert_eq!(
        seen[3].json(),
        json!({"propertyName": "genre", "indexType": "string"})
    );
    assert_eq!(
        seen[4].target,
        path("vectorize/v2/indexes/ix/metadata_index/delete")
    );
    assert_eq!(seen[4].json(), json!({"propertyName": "genre"}));
}

#[test]
fn limits_are_checked_before_sending() {
    let mock = Mock::start(vec![]);
    let cf = client(&mock);
    let ids: Vec<String> = (0..21).map(|i| i.to_string()).collect();
    let err = cf.vectorize("ix").get_by_ids(&ids).unwrap_err();
    assert_eq!(err.json_code(), 40007, "{err}");
    assert!(mock.seen().is_empty());
}

#[test]
fn an_error_envelope_is_a_typed_error_without_the_token() {
    let mock = Mock::start(vec![Reply::status(
        400,
        &fixture("vectorize_error_not_found.json"),
    )]);
    let cf = client(&mock);
    let err = cf.get_index("missing-index").unwrap_err();
    match &err {
        Error::Remote {
            status,
            code,
            message,
        } => {
            assert_eq!((*status, *code), (400, 3000));
            assert_eq!(
                message,
                "vectorize.index.not_found - Index name \"missing-index\""
            );
        }
        other => panic!("expected Error::Remote, got {other:?}"),
    }
    assert_eq!(err.json_code(), 3000);
    assert!(!err.to_string().contains(TOKEN));
    assert!(!format!("{err:?}").contains(TOKEN));
    // A client error is not retried.
    assert_eq!(mock.seen().len(), 1);
    let shown = format!("{cf:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("[redacted]"));
}

#[test]
fn a_429_waits_for_retry_after_then_succeeds() {
    let mock = Mock::start(vec![
        Reply::status(429, &fixture("rate_limited.json"))
            .header("retry-after", "1")
            .header("ratelimit", "\"default\";r=0;t=1")
            .header("ratelimit-policy", "\"burst\";q=100;w=60"),
        Reply::ok(&fixture("vectorize_list_indexes.json")),
    ]);
    let cf = client(&mock);
    let started = Instant::now();
    cf.list_indexes().unwrap();
    let seen = mock.seen();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at.duration_since(seen[0].at);
    assert!(gap >= Duration::from_millis(950), "waited only {gap:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(cf.attempts(), 2);
}

#[test]
fn a_retry_after_beyond_the_bound_fails_at_once() {
    let mock = Mock::start(vec![
        Reply::status(429, &fixture("rate_limited.json")).header("retry-after", "3600"),
        Reply::ok(&fixture("vectorize_list_indexes.json")),
    ]);
    let cf = client(&mock);
    let started = Instant::now();
    let err = cf.list_indexes().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(
            err,
            Error::Remote {
                status: 429,
                code: 971,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(mock.seen().len(), 1);
}

#[test]
fn retries_stop_at_the_attempt_limit() {
    let limited = || Reply::status(429, &fixture("rate_limited.json")).header("retry-after", "0");
    let mock = Mock::start(vec![limited(), limited(), limited(), limited()]);
    let cf = client(&mock);
    let err = cf.list_indexes().unwrap_err();
    assert!(matches!(err, Error::Remote { status: 429, .. }), "{err:?}");
    assert_eq!(mock.seen().len(), 3);
    assert_eq!(mock.left(), 1);
}

#[test]
fn a_5xx_is_retried_for_safe_calls_only() {
    let e500 = || {
        Reply::status(
            503,
            r#"{"success":false,"errors":[{"code":10000,"message":"upstream"}],"messages":[],"result":null}"#,
        )
    };
    // A query is a read: retried, with backoff, and succeeds.
    let mock = Mock::start(vec![e500(), Reply::ok(&fixture("vectorize_query.json"))]);
    let cf = client(&mock);
    cf.vectorize("ix")
        .query(&[1.0], &QueryOptions::new())
        .unwrap();
    assert_eq!(mock.seen().len(), 2);
    // SQL may have been applied: a 5xx is reported, not repeated.
    let mock = Mock::start(vec![e500(), Reply::ok(&fixture("d1_query.json"))]);
    let cf = client(&mock);
    let err = cf
        .d1_query("db", "INSERT INTO t VALUES (1)", &[])
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote {
                status: 503,
                code: 10000,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(mock.seen().len(), 1);
    // Nor is an insert (upsert is: see writes above).
    let mock = Mock::start(vec![e500(), Reply::ok(&fixture("vectorize_mutation.json"))]);
    let cf = client(&mock);
    assert!(cf
        .vectorize("ix")
        .insert(&[Vector::new("a", vec![1.0])])
        .is_err());
    assert_eq!(mock.seen().len(), 1);
    // But a 429 is retried for SQL too: Cloudflare refused it before running it.
    let mock = Mock::start(vec![
        Reply::status(429, &fixture("rate_limited.json")).header("retry-after", "0"),
        Reply::ok(&fixture("d1_query.json")),
    ]);
    let cf = client(&mock);
    cf.d1_query("db", "INSERT INTO t VALUES (1)", &[]).unwrap();
    assert_eq!(mock.seen().len(), 2);
}

#[test]
fn a_spent_ratelimit_paces_the_next_call() {
    let mock = Mock::start(vec![
        Reply::ok(&fixture("vectorize_list_indexes.json"))
            .header("ratelimit", "\"default\";r=0;t=1"),
        Reply::ok(&fixture("vectorize_list_indexes.json"))
            .header("ratelimit", "\"default\";r=9;t=1"),
    ]);
    let cf = client(&mock);
    cf.list_indexes().unwrap();
    cf.list_indexes().unwrap();
    let seen = mock.seen();
    let gap = seen[1].at.duration_since(seen[0].at);
    assert!(gap >= Duration::from_millis(950), "paced only {gap:?}");
}

#[test]
fn every_request_has_a_timeout() {
    // A server that accepts and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let _hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().take(4) {
            held.push(s);
        }
        std::thread::sleep(Duration::from_secs(10));
    });
    let cf = Cloudflare::new(ACCOUNT, TOKEN)
        .base_url(format!("http://{addr}/client/v4"))
        .timeout(Duration::from_millis(300))
        .retry(RetryPolicy::none());
    let started = Instant::now();
    let err = cf.list_indexes().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(matches!(err, Error::Remote { status: 0, .. }), "{err:?}");
    assert!(!err.to_string().contains(TOKEN));
}

#[test]
fn d1_query_raw_list_and_create_read_the_documented_shapes() {
    let mock = Mock::start(vec![
        Reply::ok(&fixture("d1_query.json")),
        Reply::ok(&fixture("d1_raw.json")),
        Reply::ok(&fixture("d1_list.json")),
        Reply::ok(&fixture("d1_create.json")),
        Reply::status(400, &fixture("d1_error_sql.json")),
    ]);
    let cf = client(&mock);
    let sql = "SELECT * FROM Customers WHERE CompanyName = ?";
    let res = cf.d1_query("db-1", sql, &[json!("Bs Beverages")]).unwrap();
    assert_eq!(res.len(), 1);
    assert_eq!(res[0].results.len(), 2);
    assert_eq!(res[0].results[0]["CustomerId"], 11);
    assert_eq!(res[0].meta.rows_read, 2);
    assert_eq!(res[0].meta.size_after, 16384);
    assert!(res[0].meta.served_by_primary);
    assert_eq!(res[0].meta.served_by_region, "WNAM");
    let raw = cf.d1_raw("db-1", sql, &[json!("Bs Beverages")]).unwrap();
    assert_eq!(raw[0].columns, ["CustomerId", "CompanyName", "ContactName"]);
    assert_eq!(
        raw[0].rows[1],
        vec![json!(13), json!("Bs Beverages"), json!("Random Name")]
    );
    // The object rows and the raw rows say the same thing.
    for (obj, arr) in res[0].results.iter().zip(&raw[0].rows) {
        for (c, v) in raw[0].columns.iter().zip(arr) {
            assert_eq!(&obj[c], v);
        }
    }
    let dbs = cf.d1_list(Some("my-database")).unwrap();
    assert_eq!(dbs.len(), 1);
    assert_eq!(dbs[0].uuid, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx");
    let made = cf.d1_create("my-database").unwrap();
    assert_eq!(made.name, "my-database");
    let err = cf.d1_query("db-1", "SELEC 1", &[]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote {
                status: 400,
                code: 7500,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("syntax error"));
    let seen = mock.seen();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].target, path("d1/database/db-1/query"));
    assert_eq!(
        seen[0].json(),
        json!({"sql": sql, "params": ["Bs Beverages"]})
    );
    assert_eq!(seen[1].target, path("d1/database/db-1/raw"));
    assert_eq!(seen[2].method, "GET");
    assert_eq!(
        seen[2].target,
        path("d1/database?page=1&per_page=100&name=my-database")
    );
    assert_eq!(seen[3].target, path("d1/database"));
    assert_eq!(seen[3].json(), json!({"name": "my-database"}));
    assert_eq!(seen[4].json(), json!({"sql": "SELEC 1"}));
}

/// The trait takes either backend.
#[test]
fn the_backend_trait_takes_a_remote_index() {
    fn count(ix: &dyn VectorBackend) -> usize {
        ix.query(&[0.5, 0.5, 0.5], &QueryOptions::new())
            .unwrap()
            .count
    }
    let mock = Mock::start(vec![Reply::ok(&fixture("vectorize_query.json"))]);
    let cf = client(&mock);
    assert_eq!(count(&cf.vectorize("ix")), 2);
}
