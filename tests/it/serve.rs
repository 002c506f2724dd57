//! `d1vec serve` over real HTTP: every Vectorize route's success and documented errors,
//! each compared with the same call made on the library (the oracle), in Cloudflare's
//! envelope; tenant-bound tokens; malformed requests; graceful shutdown.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use d1vec::serve::{spawn, RunningServer, ServeOptions, TenantToken};
use d1vec::Database;
use serde_json::{json, Value as Json};

/// One HTTP/1.1 response: status and JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Json,
}

impl Reply {
    /// The envelope's `result`, asserting success.
    pub fn ok(&self) -> &Json {
        assert_eq!(self.status, 200, "{}", self.body);
        assert_eq!(self.body["success"], true, "{}", self.body);
        assert_eq!(self.body["errors"], json!([]));
        assert_eq!(self.body["messages"], json!([]));
        &self.body["result"]
    }

    /// The envelope's one error `(status, code)`, asserting failure.
    pub fn err(&self) -> (u16, u64) {
        assert_eq!(self.body["success"], false, "{}", self.body);
        assert_eq!(self.body["result"], Json::Null, "{}", self.body);
        assert_eq!(self.body["messages"], json!([]));
        let errors = self.body["errors"].as_array().expect("errors is an array");
        assert_eq!(errors.len(), 1, "{}", self.body);
        assert!(errors[0]["message"].is_string());
        (
            self.status,
            errors[0]["code"].as_u64().expect("a numeric code"),
        )
    }

    /// The error message.
    pub fn message(&self) -> &str {
        self.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
    }
}

/// Sends raw bytes and reads the whole response (the request asks to close the connection).
pub fn raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    parse_reply(&bytes)
}

fn parse_reply(bytes: &[u8]) -> Reply {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(bytes)));
    let head = String::from_utf8_lossy(&bytes[..split]);
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let body = &bytes[split + 4..];
    let body = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(body)));
    Reply { status, body }
}

/// A request with a bearer token (or none), a content type and a body.
pub fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> Reply {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str(&format!(
        "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    raw(addr, &bytes)
}

/// A server on a free port over `db`.
pub fn server(
    db: &Arc<Database>,
    admin: Option<&str>,
    tenants: &[(&str, &str, Option<&str>)],
) -> RunningServer {
    let options = ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: admin.map(str::to_owned),
        tenant_tokens: tenants
            .iter()
            .map(|(token, tenant, user)| TenantToken {
                token: (*token).to_owned(),
                tenant: (*tenant).to_owned(),
                user: user.map(str::to_owned),
            })
            .collect(),
    };
    spawn(Arc::clone(db), options).unwrap()
}

#[test]
fn unknown_routes_wrong_methods_and_bad_tokens_get_the_envelope() {
    let db = Arc::new(Database::open_in_memory().unwrap());
    let s = server(&db, Some("admin-secret"), &[]);
    let a = s.addr();
    assert!(s.base_url().ends_with("/client/v4"));
    let idx = "/client/v4/accounts/acc/vectorize/v2/indexes";
    let r = call(
        a,
        "GET",
        "/client/v4/nowhere",
        Some("admin-secret"),
        "application/json",
        b"",
    );
    assert_eq!(r.err(), (404, 7003));
    let r = call(
        a,
        "PATCH",
        idx,
        Some("admin-secret"),
        "application/json",
        b"",
    );
    assert_eq!(r.err(), (405, 7001));
    for token in [
        None,
        Some("wrong"),
        Some("admin-secre"),
        Some("admin-secretx"),
    ] {
        let r = call(a, "GET", idx, token, "application/json", b"");
        assert_eq!(r.err(), (403, 10000), "{token:?}");
        assert!(!r.body.to_string().contains("admin-secret"));
    }
    let r = call(a, "GET", idx, Some("admin-secret"), "application/json", b"");
    assert_eq!(r.ok(), &json!([]));
    s.shutdown().unwrap();
}

const INDEXES: &str = "/client/v4/accounts/acc/vectorize/v2/indexes";
const ADMIN: Option<&str> = Some("admin-secret");
const JSON_TYPE: &str = "application/json";
const NDJSON_TYPE: &str = "application/x-ndjson";

fn post(a: SocketAddr, path: &str, token: Option<&str>, body: &Json) -> Reply {
    call(
        a,
        "POST",
        path,
        token,
        JSON_TYPE,
        body.to_string().as_bytes(),
    )
}

fn get(a: SocketAddr, path: &str, token: Option<&str>) -> Reply {
    call(a, "GET", path, token, JSON_TYPE, b"")
}

/// `value` as the library serialises it, for comparing with `result`.
fn lib<T: serde::Serialize>(value: T) -> Json {
    serde_json::to_value(value).unwrap()
}

/// The library error's Vectorize code.
fn code_of(e: &d1vec::Error) -> u64 {
    u64::from(e.json_code())
}

/// A multipart body with one file field `vectors` holding `ndjson`, as wrangler sends.
fn multipart(ndjson: &str) -> (String, Vec<u8>) {
    let boundary = "----d1vecBoundary7MA4YWxk";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"vectors\"; filename=\"vectors.ndjson\"\r\nContent-Type: application/x-ndjson\r\n\r\n{ndjson}\r\n--{boundary}--\r\n"
    );
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

#[test]
fn every_vectorize_route_answers_as_the_library_does() {
    let db = Arc::new(Database::open_in_memory().unwrap());
    let s = server(&db, ADMIN, &[]);
    let a = s.addr();
    let at = |tail: &str| format!("{INDEXES}/docs{tail}");

    // Create, duplicate, malformed.
    let created = post(
        a,
        INDEXES,
        ADMIN,
        &json!({"name": "docs", "description": "d", "config": {"dimensions": 3, "metric": "cosine"}}),
    );
    assert_eq!(created.ok(), &lib(db.get_index("docs").unwrap()));
    assert_eq!(
        created.ok()["config"],
        json!({"dimensions": 3, "metric": "cosine"})
    );
    let dup = post(
        a,
        INDEXES,
        ADMIN,
        &json!({"name": "docs", "config": {"dimensions": 3, "metric": "cosine"}}),
    );
    assert_eq!(dup.err(), (400, 3002));
    assert!(dup.message().contains("vectorize.index.duplicate_name"));
    let preset = post(
        a,
        INDEXES,
        ADMIN,
        &json!({"name": "pre", "config": {"preset": "@cf/baai/bge-small-en-v1.5"}}),
    );
    assert_eq!(preset.ok()["config"]["dimensions"], 384);
    assert_eq!(
        post(a, INDEXES, ADMIN, &json!({"name": "x"})).err(),
        (400, 40038)
    );
    assert_eq!(
        post(
            a,
            INDEXES,
            ADMIN,
            &json!({"name": "x", "config": {"dimensions": 9999, "metric": "cosine"}})
        )
        .err(),
        (400, 40038)
    );
    assert_eq!(
        call(a, "POST", INDEXES, ADMIN, JSON_TYPE, b"{\"name\":").err(),
        (400, 40026)
    );

    // List, get, missing.
    assert_eq!(
        get(a, INDEXES, ADMIN).ok(),
        &lib(db.list_indexes().unwrap())
    );
    assert_eq!(
        get(a, &at(""), ADMIN).ok(),
        &lib(db.get_index("docs").unwrap())
    );
    let missing = get(a, &format!("{INDEXES}/nope"), ADMIN);
    assert_eq!(missing.err(), (404, 3000));
    assert_eq!(
        missing.message(),
        db.vectorize("nope").err().unwrap().to_string()
    );
    assert_eq!(
        get(a, &format!("{INDEXES}/nope/info"), ADMIN).err(),
        (404, 3000)
    );

    // Metadata indexes.
    let m = post(
        a,
        &at("/metadata_index/create"),
        ADMIN,
        &json!({"propertyName": "lang", "indexType": "string"}),
    );
    assert!(m.ok()["mutationId"].is_string());
    assert_eq!(m.ok().as_object().unwrap().len(), 1);
    let list = get(a, &at("/metadata_index/list"), ADMIN);
    let index = db.vectorize("docs").unwrap();
    assert_eq!(
        list.ok(),
        &json!({"metadataIndexes": lib(index.list_metadata_indexes().unwrap())})
    );
    assert_eq!(
        list.ok()["metadataIndexes"],
        json!([{"propertyName": "lang", "indexType": "string"}])
    );
    assert_eq!(
        post(
            a,
            &at("/metadata_index/create"),
            ADMIN,
            &json!({"propertyName": "lang", "indexType": "string"})
        )
        .err(),
        (400, 40039)
    );
    assert_eq!(
        post(
            a,
            &at("/metadata_index/create"),
            ADMIN,
            &json!({"propertyName": "x", "indexType": "date"})
        )
        .err(),
        (400, 40026)
    );
    assert_eq!(
        post(
            a,
            &at("/metadata_index/delete"),
            ADMIN,
            &json!({"propertyName": "nope"})
        )
        .err(),
        (400, 40005)
    );

    // Insert (NDJSON), upsert (multipart, as wrangler), JSON {vectors}.
    let ndjson = "{\"id\":\"a\",\"values\":[1,0,0],\"metadata\":{\"lang\":\"en\"}}\n{\"id\":\"b\",\"values\":[0,1,0],\"metadata\":{\"lang\":\"fr\"}}\n{\"id\":\"c\",\"values\":[0.5,0.5,0],\"namespace\":\"n1\"}\n";
    let ins = call(
        a,
        "POST",
        &at("/insert"),
        ADMIN,
        NDJSON_TYPE,
        ndjson.as_bytes(),
    );
    assert!(ins.ok()["mutationId"].is_string());
    let all_ids: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let got = post(a, &at("/get_by_ids"), ADMIN, &json!({"ids": all_ids}));
    assert_eq!(got.ok(), &lib(index.get_by_ids(&all_ids).unwrap()));
    assert_eq!(got.ok().as_array().unwrap().len(), 3);
    let (ct, body) = multipart("{\"id\":\"a\",\"values\":[0,0,1],\"metadata\":{\"lang\":\"de\"}}");
    let up = call(a, "POST", &at("/upsert"), ADMIN, &ct, &body);
    assert!(up.ok()["mutationId"].is_string());
    assert_eq!(
        index.get_by_ids(&["a".into()]).unwrap()[0].values,
        vec![0.0, 0.0, 1.0]
    );
    let js = call(
        a,
        "POST",
        &at("/upsert"),
        ADMIN,
        JSON_TYPE,
        br#"{"vectors":[{"id":"d","values":[1,1,1]}]}"#,
    );
    assert!(js.ok()["mutationId"].is_string());
    assert_eq!(index.describe().unwrap().vector_count, 4);
    // Refused writes change nothing.
    let before = db.dump().unwrap();
    let bad_dims = call(
        a,
        "POST",
        &at("/insert"),
        ADMIN,
        NDJSON_TYPE,
        b"{\"id\":\"z\",\"values\":[1,2]}\n",
    );
    assert_eq!(bad_dims.err(), (400, 40012));
    let bad_line = call(
        a,
        "POST",
        &at("/insert"),
        ADMIN,
        NDJSON_TYPE,
        b"{\"id\":\"z\",\"values\":[1,2,3]}\nnot json\n",
    );
    assert_eq!(bad_line.err(), (400, 40023));
    let (ct, body) = multipart("");
    let no_field = call(
        a,
        "POST",
        &at("/insert"),
        ADMIN,
        &ct.replace("boundary=", "boundary=x"),
        &body,
    );
    assert_eq!(no_field.err().0, 400);
    let bad_behaviour = call(
        a,
        "POST",
        &at("/insert?unparsable-behavior=maybe"),
        ADMIN,
        NDJSON_TYPE,
        b"",
    );
    assert_eq!(bad_behaviour.err(), (400, 40026));
    assert_eq!(db.dump().unwrap(), before);
    let discard = call(
        a,
        "POST",
        &at("/upsert?unparsable-behavior=discard"),
        ADMIN,
        NDJSON_TYPE,
        b"{\"id\":\"e\",\"values\":[1,2,3]}\nnot json\n",
    );
    assert!(discard.ok()["mutationId"].is_string());
    assert_eq!(index.get_by_ids(&["e".into()]).unwrap().len(), 1);

    // Query by vector and by id, as the library answers.
    let q =
        json!({"vector": [1, 0, 0.1], "topK": 2, "returnValues": true, "returnMetadata": "all"});
    let want = index
        .query(
            &[1.0, 0.0, 0.1],
            &d1vec::vectorize::types::QueryOptions::from_json(&q).unwrap(),
        )
        .unwrap();
    assert_eq!(post(a, &at("/query"), ADMIN, &q).ok(), &lib(&want));
    let q =
        json!({"vectorId": "b", "topK": 3, "returnMetadata": "indexed", "filter": {"lang": "fr"}});
    let want = index
        .query_by_id(
            "b",
            &d1vec::vectorize::types::QueryOptions::from_json(&q).unwrap(),
        )
        .unwrap();
    let by_id = post(a, &at("/query"), ADMIN, &q);
    assert_eq!(by_id.ok(), &lib(&want));
    assert_eq!(by_id.ok()["count"], 1);
    let ns = json!({"vector": [1, 1, 0], "namespace": "n1"});
    assert_eq!(
        post(a, &at("/query"), ADMIN, &ns).ok()["matches"][0]["id"],
        "c"
    );
    let cases = [
        (json!({"vector": [1, 0]}), 40006),
        (json!({"vector": [1, 0, 0], "topK": 500}), 40025),
        (json!({"vector": [1, 0, 0], "returnMetadata": false}), 40026),
        (json!({"vector": "1,0,0"}), 40026),
        (json!({"vector": [1, 0, 0], "vectorId": "a"}), 40026),
        (json!({"topK": 3}), 40026),
        (
            json!({"vector": [1, 0, 0], "filter": {"lang": {"$bad": 1}}}),
            40030,
        ),
    ];
    for (body, code) in cases {
        let r = post(a, &at("/query"), ADMIN, &body);
        assert_eq!(r.err(), (400, code), "{body}");
        if let Some(v) = body["vector"].as_array().filter(|v| v.len() == 2) {
            let v: Vec<f64> = v.iter().map(|x| x.as_f64().unwrap()).collect();
            let e = index.query(&v, &Default::default()).unwrap_err();
            assert_eq!(r.message(), e.to_string());
            assert_eq!(code_of(&e), code);
        }
    }

    // Ids: too many, wrong type.
    let many: Vec<String> = (0..21).map(|i| i.to_string()).collect();
    assert_eq!(
        post(a, &at("/get_by_ids"), ADMIN, &json!({"ids": many})).err(),
        (400, 40007)
    );
    let many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
    assert_eq!(
        post(a, &at("/delete_by_ids"), ADMIN, &json!({"ids": many})).err(),
        (400, 40007)
    );
    assert_eq!(
        post(a, &at("/get_by_ids"), ADMIN, &json!({"ids": [1]})).err(),
        (400, 40026)
    );

    // Info and list.
    assert_eq!(
        get(a, &at("/info"), ADMIN).ok(),
        &lib(index.describe().unwrap())
    );
    let first = get(a, &at("/list?count=2"), ADMIN);
    let page = first.ok();
    let want = index.list_vectors(Some(2), None).unwrap();
    assert_eq!(page["vectors"], lib(&want.vectors));
    assert_eq!(
        (
            page["count"].clone(),
            page["totalCount"].clone(),
            page["isTruncated"].clone()
        ),
        (json!(2), json!(want.total_count), json!(true))
    );
    let mut ids: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => at(&format!("/list?count=2&cursor={c}")),
            None => at("/list?count=2"),
        };
        let r = get(a, &path, ADMIN);
        let p = r.ok();
        ids.extend(
            p["vectors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["id"].as_str().unwrap().to_owned()),
        );
        match p["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(ids, ["a", "b", "c", "d", "e"]);
    assert_eq!(get(a, &at("/list?count=0"), ADMIN).err(), (400, 40026));
    assert_eq!(get(a, &at("/list?count=x"), ADMIN).err(), (400, 40026));

    // Delete by ids, metadata index delete, index delete.
    let del = post(
        a,
        &at("/delete_by_ids"),
        ADMIN,
        &json!({"ids": ["a", "zz"]}),
    );
    assert!(del.ok()["mutationId"].is_string());
    assert!(index.get_by_ids(&["a".into()]).unwrap().is_empty());
    let md = post(
        a,
        &at("/metadata_index/delete"),
        ADMIN,
        &json!({"propertyName": "lang"}),
    );
    assert!(md.ok()["mutationId"].is_string());
    assert!(index.list_metadata_indexes().unwrap().is_empty());
    assert_eq!(
        call(a, "DELETE", &at(""), ADMIN, JSON_TYPE, b"").ok(),
        &Json::Null
    );
    assert_eq!(get(a, &at(""), ADMIN).err(), (404, 3000));
    assert!(db.get_index("docs").is_err());
    s.shutdown().unwrap();
}

#[test]
fn oversized_bodies_are_refused_before_they_are_read() {
    let db = Arc::new(Database::open_in_memory().unwrap());
    let s = server(&db, None, &[]);
    let a = s.addr();
    post(
        a,
        INDEXES,
        None,
        &json!({"name": "v", "config": {"dimensions": 2, "metric": "euclidean"}}),
    )
    .ok();
    let head = format!(
        "POST {INDEXES}/v/insert HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/x-ndjson\r\nContent-Length: 200000000\r\n\r\n"
    );
    let r = raw(a, head.as_bytes());
    assert_eq!(r.err(), (413, 40044));
    let head = format!(
        "POST {INDEXES}/v/query HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 20000000\r\n\r\n"
    );
    assert_eq!(raw(a, head.as_bytes()).err(), (413, 40044));
    // A client that goes away mid-body leaves the server serving.
    let mut stream = TcpStream::connect(a).unwrap();
    let head = format!(
        "POST {INDEXES}/v/insert HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{{\"id\":"
    );
    stream.write_all(head.as_bytes()).unwrap();
    drop(stream);
    assert_eq!(
        get(a, &format!("{INDEXES}/v/info"), None).ok()["vectorCount"],
        0
    );
    s.shutdown().unwrap();
}

/// Two tenants (as tests/it/isolation.rs), a private and a shared index, and a server with
/// a token for each tenant (one acting as a user).
fn tenants_setup() -> (Arc<Database>, RunningServer) {
    let db = Database::open_in_memory().unwrap();
    db.apply_migrations(&d1vec::sql::migrate::bundled())
        .unwrap();
    db.exec(
        "INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('t_a','A','pro','eu'),('t_b','B','pro','us');
         INSERT INTO users (user_id, tenant_id, email, role) VALUES ('u_a','t_a','a@a.test','viewer'),('u_b','t_b','b@b.test','owner');
         INSERT INTO campaigns (campaign_id, tenant_id, name) VALUES ('c_a1','t_a','A spring'),('c_b1','t_b','B secret');",
    )
    .unwrap();
    let db = Arc::new(db);
    let s = server(
        &db,
        ADMIN,
        &[
            ("tok-a", "t_a", None),
            ("tok-b", "t_b", None),
            ("tok-av", "t_a", Some("u_a")),
            ("tok-bad", "t_a", Some("u_b")),
        ],
    );
    (db, s)
}

#[test]
fn tenant_tokens_are_confined_to_their_tenant() {
    let (db, s) = tenants_setup();
    let a = s.addr();
    let body = json!({"name": "priv", "scope": "private", "config": {"dimensions": 2, "metric": "euclidean"}});
    post(a, INDEXES, ADMIN, &body).ok();
    post(
        a,
        INDEXES,
        ADMIN,
        &json!({"name": "shared", "config": {"dimensions": 2, "metric": "euclidean"}}),
    )
    .ok();
    let p = |tail: &str| format!("{INDEXES}/priv{tail}");
    // Each tenant writes the same id; each lands in its own namespace.
    for (tok, v) in [("tok-a", "[1,0]"), ("tok-b", "[0,1]")] {
        let line =
            format!("{{\"id\":\"x\",\"values\":{v}}}\n{{\"id\":\"y-{tok}\",\"values\":{v}}}");
        call(
            a,
            "POST",
            &p("/upsert"),
            Some(tok),
            NDJSON_TYPE,
            line.as_bytes(),
        )
        .ok();
    }
    let lib_a = db.tenant("t_a").unwrap().vectorize("priv").unwrap();
    let lib_b = db.tenant("t_b").unwrap().vectorize("priv").unwrap();
    let ids: Vec<String> = ["x", "y-tok-a", "y-tok-b"].map(String::from).to_vec();
    let got_a = post(a, &p("/get_by_ids"), Some("tok-a"), &json!({"ids": ids}));
    assert_eq!(got_a.ok(), &lib(lib_a.get_by_ids(&ids).unwrap()));
    assert_eq!(got_a.ok().as_array().unwrap().len(), 2);
    assert!(!got_a.ok().to_string().contains("t_b"));
    assert_eq!(got_a.ok()[0]["values"], json!([1.0, 0.0]));
    // Another tenant's namespace: the same answer as the library's session (refused or empty).
    for body in [
        json!({"vector": [0, 1], "namespace": "t_b", "topK": 5, "returnMetadata": "all"}),
        json!({"vectorId": "y-tok-b", "topK": 5}),
        json!({"vector": [0, 1], "topK": 5}),
    ] {
        let r = post(a, &p("/query"), Some("tok-a"), &body);
        let opts = d1vec::vectorize::types::QueryOptions::from_json(&body).unwrap();
        let want = match body["vectorId"].as_str() {
            Some(id) => lib_a.query_by_id(id, &opts),
            None => lib_a.query(&[0.0, 1.0], &opts),
        };
        match want {
            Ok(m) => {
                assert_eq!(r.ok(), &lib(&m), "{body}");
                assert!(!r.ok().to_string().contains("tok-b"), "{body}");
            }
            Err(e) => {
                assert_eq!(r.err().1, code_of(&e), "{body}");
                assert_eq!(r.message(), e.to_string());
            }
        }
    }
    assert_eq!(
        get(a, &p("/info"), Some("tok-a")).ok(),
        &lib(lib_a.describe().unwrap())
    );
    let listed = get(a, &p("/list"), Some("tok-a"));
    assert_eq!(
        listed.ok()["vectors"],
        json!([{"id": "x"}, {"id": "y-tok-a"}])
    );
    // Deleting "x" as A leaves B's "x".
    post(
        a,
        &p("/delete_by_ids"),
        Some("tok-a"),
        &json!({"ids": ["x", "y-tok-b"]}),
    )
    .ok();
    assert_eq!(lib_b.get_by_ids(&ids).unwrap().len(), 2);
    assert!(lib_a.get_by_ids(&["x".into()]).unwrap().is_empty());

    // Admin-only operations are refused with 403 and change nothing.
    let before = db.dump().unwrap();
    let create = json!({"name": "mine", "config": {"dimensions": 2, "metric": "cosine"}});
    assert_eq!(post(a, INDEXES, Some("tok-a"), &create).err(), (403, 403));
    assert_eq!(
        call(a, "DELETE", &p(""), Some("tok-a"), JSON_TYPE, b"").err(),
        (403, 403)
    );
    assert_eq!(
        post(
            a,
            &p("/metadata_index/create"),
            Some("tok-a"),
            &json!({"propertyName": "k", "indexType": "string"})
        )
        .err()
        .0,
        403
    );
    let shared_write = call(
        a,
        "POST",
        &format!("{INDEXES}/shared/upsert"),
        Some("tok-a"),
        NDJSON_TYPE,
        b"{\"id\":\"s\",\"values\":[1,1]}",
    );
    assert_eq!(shared_write.err().0, 403);
    // A token whose user belongs to another tenant opens no session.
    assert_eq!(get(a, &p("/info"), Some("tok-bad")).err(), (403, 403));
    let d1 = "/client/v4/accounts/acc/d1/database";
    assert_eq!(
        post(a, d1, Some("tok-a"), &json!({"name": "other"})).err(),
        (403, 403)
    );
    assert_eq!(db.dump().unwrap(), before);

    // D1: raw SQL through the tenant's session, as isolation.rs's adversary.
    let list = get(a, d1, Some("tok-a"));
    let uuid = list.ok()[0]["uuid"].as_str().unwrap().to_owned();
    let q = format!("{d1}/{uuid}/query");
    let rows = post(
        a,
        &q,
        Some("tok-a"),
        &json!({"sql": "SELECT campaign_id FROM campaigns ORDER BY 1"}),
    );
    assert_eq!(rows.ok()[0]["results"], json!([{"campaign_id": "c_a1"}]));
    let admin_rows = post(
        a,
        &q,
        ADMIN,
        &json!({"sql": "SELECT campaign_id FROM campaigns ORDER BY 1"}),
    );
    assert_eq!(
        admin_rows.ok()[0]["results"],
        json!([{"campaign_id": "c_a1"}, {"campaign_id": "c_b1"}])
    );
    let before = db.dump().unwrap();
    let attacks = [
        json!({"sql": "SELECT * FROM campaigns WHERE tenant_id = ?1", "params": ["t_b"]}),
        json!({"sql": "UPDATE campaigns SET name = 'pwned' WHERE campaign_id = 'c_b1'"}),
        json!({"sql": "DELETE FROM campaigns"}),
        json!({"sql": "INSERT INTO campaigns (campaign_id, tenant_id, name) VALUES ('evil', 't_b', 'x')"}),
        json!({"sql": "SELECT * FROM main.campaigns"}),
        json!({"sql": "ATTACH DATABASE ':memory:' AS x"}),
        json!({"sql": "SELECT * FROM tenant_keys"}),
        json!({"sql": "DROP TABLE campaigns"}),
        json!({"sql": "SELECT 1; SELECT * FROM campaigns WHERE tenant_id <> 't_a'"}),
    ];
    for body in &attacks {
        let r = post(a, &q, Some("tok-a"), body);
        let text = r.body.to_string();
        assert!(
            !text.contains("c_b1") && !text.contains("B secret"),
            "{body}: {text}"
        );
        if r.body["success"] == true {
            // Scoped: whatever ran, B's rows are untouched (checked below).
            assert_eq!(r.status, 200);
        } else {
            assert!(matches!(r.err().0, 400 | 403), "{body}: {text}");
        }
    }
    // The viewer token is refused what its role lacks, as the library refuses it.
    let viewer = post(
        a,
        &q,
        Some("tok-av"),
        &json!({"sql": "SELECT * FROM audit_logs"}),
    );
    assert!(db
        .tenant("t_a")
        .unwrap()
        .as_user("u_a")
        .unwrap()
        .prepare("SELECT * FROM audit_logs")
        .all()
        .is_err());
    assert_eq!(viewer.body["success"], false);
    let b_rows = db
        .prepare("SELECT campaign_id, name FROM campaigns WHERE tenant_id = 't_b'")
        .raw(false)
        .unwrap();
    assert_eq!(b_rows, vec![vec![json!("c_b1"), json!("B secret")]]);
    let _ = before;
    s.shutdown().unwrap();
}

/// Review findings over HTTP: a viewer's token cannot promote its own user (the `users`
/// table is gated by `users.manage`), and a user whose role is lowered by the admin loses
/// the permission on its very next request (user-bound sessions are not pooled). Oracle:
/// the library's own answer for the same user, and the stored row.
#[test]
fn a_user_token_can_neither_promote_itself_nor_outlive_its_role() {
    let (db, s) = tenants_setup();
    let a = s.addr();
    let q = "/client/v4/accounts/acc/d1/database/memory/query";
    let promote = post(
        a,
        q,
        Some("tok-av"),
        &json!({"sql": "UPDATE users SET role = 'owner' WHERE user_id = 'u_a'"}),
    );
    assert_eq!(promote.body["success"], false, "{:?}", promote.body);
    let role = db
        .prepare("SELECT role FROM users WHERE user_id = 'u_a'")
        .first_column("role")
        .unwrap();
    assert_eq!(role, Some(json!("viewer")));
    // Several requests at once (so that more than one session opens), then audit reads.
    let audit = json!({"sql": "SELECT count(*) AS n FROM audit_logs"});
    std::thread::scope(|sc| {
        for _ in 0..4 {
            sc.spawn(|| post(a, q, Some("tok-av"), &audit));
        }
    });
    assert_eq!(post(a, q, Some("tok-av"), &audit).body["success"], false);
    // The admin makes u_a an owner: the next request may read the audit trail; lowered
    // again to viewer, the next request may not, as the library decides for the user.
    db.exec("UPDATE users SET role = 'owner' WHERE user_id = 'u_a'")
        .unwrap();
    assert_eq!(post(a, q, Some("tok-av"), &audit).body["success"], true);
    db.exec("UPDATE users SET role = 'viewer' WHERE user_id = 'u_a'")
        .unwrap();
    let refused = post(a, q, Some("tok-av"), &audit);
    assert_eq!(refused.body["success"], false, "{:?}", refused.body);
    assert!(db
        .tenant("t_a")
        .unwrap()
        .as_user("u_a")
        .unwrap()
        .prepare("SELECT count(*) AS n FROM audit_logs")
        .all()
        .is_err());
    s.shutdown().unwrap();
}

mod properties {
    use proptest::prelude::*;

    use super::super::fuzz_replay::check_http_request;

    /// Valid bodies of the routes, to cut and mutate.
    const BODIES: &[&[u8]] = &[
        br#"{"name":"pp","config":{"dimensions":3,"metric":"cosine"}}"#,
        b"{\"id\":\"a\",\"values\":[1,0,0],\"metadata\":{\"k\":\"v\"}}\n{\"id\":\"b\",\"values\":[0,1,0]}\n",
        br#"{"vector":[1,0,0],"topK":3,"returnValues":true,"returnMetadata":"all","filter":{"k":"v"}}"#,
        br#"{"ids":["a","b"]}"#,
        br#"{"propertyName":"k","indexType":"string"}"#,
        br#"{"sql":"SELECT * FROM campaigns WHERE name = ?1","params":["x"]}"#,
        br#"{"vectors":[{"id":"j","values":[1,1,1]}]}"#,
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        /// Random, truncated and mutated bodies on every route, as admin or tenant: no
        /// panic, always the envelope below 500, and a refusal changes nothing.
        #[test]
        fn bad_bodies_get_envelopes_and_change_nothing(
            selector in any::<u8>(),
            which in 0..BODIES.len(),
            cut in any::<prop::sample::Index>(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            random in prop::collection::vec(any::<u8>(), 0..64),
            mode in 0u8..3,
        ) {
            let mut h = d1vec::fuzzing::HttpHarness::new().unwrap();
            let base = BODIES[which];
            let body: Vec<u8> = match mode {
                0 => base[..cut.index(base.len() + 1)].to_vec(),
                1 => {
                    let mut b = base.to_vec();
                    for (at, byte) in &flips {
                        let i = at.index(b.len());
                        b[i] = *byte;
                    }
                    b
                }
                _ => random.clone(),
            };
            let mut data = vec![selector];
            data.extend_from_slice(&body);
            check_http_request(&mut h, &data, "proptest");
        }
    }
}

#[test]
fn an_acknowledged_write_survives_graceful_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let db = Arc::new(Database::open(&path).unwrap());
    let s = server(&db, None, &[]);
    let a = s.addr();
    post(
        a,
        INDEXES,
        None,
        &json!({"name": "w", "config": {"dimensions": 2, "metric": "euclidean"}}),
    )
    .ok();
    // Writers keep upserting while the server shuts down; every acknowledged id must be
    // in the database afterwards.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0..200 {
                    let id = format!("w{w}-{i}");
                    let line = format!("{{\"id\":\"{id}\",\"values\":[{w},{i}]}}");
                    let Ok(mut stream) = TcpStream::connect(a) else { break };
                    let req = format!(
                        "POST {INDEXES}/w/upsert HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{line}",
                        line.len()
                    );
                    if stream.write_all(req.as_bytes()).is_err() {
                        break;
                    }
                    let mut bytes = Vec::new();
                    let _ = stream.read_to_end(&mut bytes);
                    if bytes.starts_with(b"HTTP/1.1 200") {
                        acked.push(id);
                    } else {
                        break;
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(150));
    s.shutdown().unwrap();
    let acked: Vec<String> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(
        !acked.is_empty(),
        "no write was acknowledged before shutdown"
    );
    assert!(TcpStream::connect(a).is_err(), "the server still listens");
    drop(db);
    let db = Database::open(&path).unwrap();
    let index = db.vectorize("w").unwrap();
    for chunk in acked.chunks(20) {
        let found = index.get_by_ids(chunk).unwrap();
        assert_eq!(found.len(), chunk.len(), "an acknowledged write was lost");
    }
}
