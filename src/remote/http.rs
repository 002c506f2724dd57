//! Sending one call: the request, the retry loop, the pacing from `Ratelimit`, and Cloudflare's
//! v4 envelope (`{"result", "success", "errors": [{"code", "message"}], "messages"}`).

use std::time::{Duration, Instant, SystemTime};

use reqwest::blocking::{Client, Response};
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::Method;
use serde_json::Value as Json;

use super::retry::{parse_ratelimit, parse_retry_after, Idempotency};
use super::Cloudflare;
use crate::error::{Error, Result};

/// The body of a call.
#[derive(Debug)]
pub(crate) enum Body {
    /// No body.
    None,
    /// A JSON document.
    Json(Json),
    /// NDJSON lines (Vectorize insert and upsert).
    Ndjson(Vec<u8>),
}

/// One call, before it is sent.
#[derive(Debug)]
pub(crate) struct Call {
    pub method: Method,
    /// The path below the account: `vectorize/v2/indexes/x/query`.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Body,
    pub idempotency: Idempotency,
}

impl Call {
    pub(crate) fn new(method: Method, path: String, idempotency: Idempotency) -> Self {
        Call {
            method,
            path,
            query: Vec::new(),
            body: Body::None,
            idempotency,
        }
    }

    pub(crate) fn json(mut self, body: Json) -> Self {
        self.body = Body::Json(body);
        self
    }

    pub(crate) fn ndjson(mut self, body: Vec<u8>) -> Self {
        self.body = Body::Ndjson(body);
        self
    }

    pub(crate) fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }
}

/// A successful envelope: `result` and, on paged lists, `result_info`.
#[derive(Debug)]
pub(crate) struct Answer {
    pub result: Json,
    pub result_info: Option<Json>,
}

fn remote(status: u16, code: u32, message: impl Into<String>) -> Error {
    Error::Remote {
        status,
        code,
        message: message.into(),
    }
}

/// Percent-encodes one path segment (an index name, a database id, a property).
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What one attempt came to.
enum Outcome {
    Done(Answer),
    /// Failed; `retry` says whether another attempt may be made and `wait` how long the
    /// server asked to wait (if it did).
    Failed {
        error: Error,
        retry: bool,
        wait: Option<Duration>,
    },
}

impl Cloudflare {
    fn client(&self) -> Result<&Client> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let built = Client::builder()
            .connect_timeout(self.connect_timeout)
            .user_agent(concat!("d1vec/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| remote(0, 0, format!("cannot build the HTTP client: {e}")))?;
        Ok(self.client.get_or_init(|| built))
    }

    /// Sends `call`, retrying as its idempotency and the policy allow, and returns the
    /// envelope's `result`.
    pub(crate) fn send(&self, call: &Call) -> Result<Answer> {
        let url = format!(
            "{}/accounts/{}/{}",
            self.base_url.trim_end_matches('/'),
            segment(&self.account_id),
            call.path
        );
        let policy = self.retry;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.pace();
            self.attempts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match self.attempt(call, &url)? {
                Outcome::Done(answer) => return Ok(answer),
                Outcome::Failed { error, retry, wait } => {
                    if !retry || attempt >= policy.max_attempts {
                        return Err(error);
                    }
                    let wait = match wait {
                        Some(w) if w > policy.max_wait => return Err(error),
                        Some(w) => w,
                        None => policy.backoff(attempt, self.jitter()),
                    };
                    std::thread::sleep(wait);
                }
            }
        }
    }

    fn attempt(&self, call: &Call, url: &str) -> Result<Outcome> {
        let mut req = self
            .client()?
            .request(call.method.clone(), url)
            .timeout(self.timeout)
            .header(AUTHORIZATION, format!("Bearer {}", self.token.expose()));
        if !call.query.is_empty() {
            req = req.query(&call.query);
        }
        req = match &call.body {
            Body::None => req,
            Body::Json(v) => req
                .header(CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(v)?),
            Body::Ndjson(bytes) => req
                .header(CONTENT_TYPE, "application/x-ndjson")
                .body(bytes.clone()),
        };
        let safe = call.idempotency == Idempotency::Safe;
        let resp = match req.send() {
            Ok(r) => r,
            Err(e) => {
                // A connection never made cannot have applied anything; any other failure
                // (timeout, reset mid-way) may have, so only safe calls go again.
                let retry = e.is_connect() || safe;
                // reqwest's message names the URL (account id and path), never a header.
                let error = remote(0, 0, format!("{} {}: {e}", call.method, call.path));
                return Ok(Outcome::Failed {
                    error,
                    retry,
                    wait: None,
                });
            }
        };
        Ok(self.read(call, resp))
    }

    fn read(&self, call: &Call, resp: Response) -> Outcome {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let ratelimit_wait = self.note_ratelimit(&headers);
        let text = match resp.text() {
            Ok(t) => t,
            Err(e) => {
                return Outcome::Failed {
                    error: remote(status, 0, format!("reading the answer: {e}")),
                    retry: call.idempotency == Idempotency::Safe,
                    wait: None,
                }
            }
        };
        let parsed: Option<Json> = serde_json::from_str(&text).ok();
        let ok_status = (200..300).contains(&status);
        if let Some(Json::Object(env)) = &parsed {
            let success = env.get("success").and_then(Json::as_bool);
            if ok_status && success != Some(false) && env.contains_key("result") {
                return Outcome::Done(Answer {
                    result: env.get("result").cloned().unwrap_or(Json::Null),
                    result_info: env.get("result_info").cloned(),
                });
            }
        }
        let (code, message) = match &parsed {
            Some(env) => envelope_error(env),
            None => (0, String::new()),
        };
        let message = if message.is_empty() {
            let snippet: String = text.chars().take(200).collect();
            format!("HTTP {status} without Cloudflare's envelope: {snippet}")
        } else {
            message
        };
        let error = remote(status, code, message);
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let (retry, wait) = match status {
            429 => (true, retry_after.or(ratelimit_wait)),
            500..=599 if call.idempotency == Idempotency::Safe => (true, retry_after),
            // Other statuses, and a 2xx without an envelope (a broken answer), are final.
            _ => (false, None),
        };
        Outcome::Failed { error, retry, wait }
    }

    /// Records a spent quota from `Ratelimit` so the next call waits for the reset (bounded
    /// by the policy's `max_wait`); returns the wait it read.
    fn note_ratelimit(&self, headers: &HeaderMap) -> Option<Duration> {
        let wait = headers
            .get("ratelimit")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_ratelimit)?;
        let until = Instant::now() + wait.min(self.retry.max_wait);
        if let Ok(mut next) = self.next_allowed.lock() {
            *next = Some(next.map_or(until, |n| n.max(until)));
        }
        Some(wait)
    }

    /// Sleeps until a spent quota has reset.
    fn pace(&self) {
        let until = self.next_allowed.lock().ok().and_then(|mut n| n.take());
        if let Some(until) = until {
            let now = Instant::now();
            if until > now {
                std::thread::sleep(until - now);
            }
        }
    }

    fn jitter(&self) -> f64 {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut rng = crate::rng::Rng(u64::from(nanos) ^ 0x9E37_79B9_7F4A_7C15);
        rng.unit()
    }
}

/// The code and messages of an error envelope (`errors: [{code, message}]`); also reads the
/// bare Vectorize shape `{"code", "error"}`.
fn envelope_error(env: &Json) -> (u32, String) {
    if let Some(errors) = env.get("errors").and_then(Json::as_array) {
        let code = errors
            .first()
            .and_then(|e| e.get("code"))
            .and_then(Json::as_u64)
            .and_then(|c| u32::try_from(c).ok())
            .unwrap_or(0);
        let messages: Vec<String> = errors
            .iter()
            .filter_map(|e| e.get("message").and_then(Json::as_str))
            .map(str::to_owned)
            .collect();
        if !errors.is_empty() {
            return (code, messages.join("; "));
        }
    }
    let code = env
        .get("code")
        .and_then(Json::as_u64)
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(0);
    let message = env
        .get("error")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    (code, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_errors_name_code_and_messages() {
        let env = json!({"success": false, "errors": [
            {"code": 3000, "message": "vectorize.index.not_found - Index name \"x\""},
            {"code": 1001, "message": "second"}
        ], "messages": [], "result": null});
        assert_eq!(
            envelope_error(&env),
            (
                3000,
                "vectorize.index.not_found - Index name \"x\"; second".into()
            )
        );
        assert_eq!(
            envelope_error(&json!({"code": 40006, "error": "bad dims"})),
            (40006, "bad dims".into())
        );
        assert_eq!(envelope_error(&json!({})), (0, String::new()));
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(segment("my-index_1.v2"), "my-index_1.v2");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
