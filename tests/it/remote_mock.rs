//! A tiny scripted HTTP/1.1 server for the remote-backend tests: it records each request
//! (method, target, headers, body, arrival time) and answers from a queue of canned replies,
//! one connection per request (`Connection: close`).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query, e.g. `/client/v4/accounts/acc/d1/database?page=1`.
    pub target: String,
    /// Lower-cased header names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON request body")
    }
}

/// A canned reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn ok(body: &str) -> Self {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: body.to_owned(),
        }
    }

    pub fn status(status: u16, body: &str) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }
}

/// The fixture `tests/data/cloudflare/<name>`.
pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/data/cloudflare/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The running server.
pub struct Mock {
    pub base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    replies: Arc<Mutex<VecDeque<Reply>>>,
    _thread: JoinHandle<()>,
}

impl Mock {
    /// Starts a server that answers with `replies` in order, then 500 for any further
    /// request.
    pub fn start(replies: Vec<Reply>) -> Mock {
        let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
        let r = replies.clone();
        Self::with(replies, move |_| {
            r.lock().unwrap().pop_front().unwrap_or_else(|| {
                Reply::status(500, r#"{"success":false,"errors":[{"code":1,"message":"mock: no reply left"}],"messages":[],"result":null}"#)
            })
        })
    }

    /// Starts a server that answers each request with `handler`.
    pub fn serve(handler: impl Fn(&Seen) -> Reply + Send + 'static) -> Mock {
        Self::with(Arc::new(Mutex::new(VecDeque::new())), handler)
    }

    fn with(
        replies: Arc<Mutex<VecDeque<Reply>>>,
        handler: impl Fn(&Seen) -> Reply + Send + 'static,
    ) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(req) = read_request(&mut stream) else {
                    continue;
                };
                let reply = handler(&req);
                s.lock().unwrap().push(req);
                let mut out = format!(
                    "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                    reply.status,
                    reply.body.len()
                );
                for (k, v) in &reply.headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                out.push_str(&reply.body);
                let _ = stream.write_all(out.as_bytes());
                let _ = stream.flush();
            }
        });
        Mock {
            base_url: format!("http://{addr}/client/v4"),
            seen,
            replies,
            _thread: thread,
        }
    }

    /// The requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Replies not yet used.
    pub fn left(&self) -> usize {
        self.replies.lock().unwrap().len()
    }
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Seen> {
    let at = Instant::now();
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        method,
        target,
        headers,
        body,
        at,
    })
}
