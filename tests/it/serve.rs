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
