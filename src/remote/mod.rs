//! A remote backend: the same Vectorize and D1 calls, sent to Cloudflare's REST API (or to a
//! `d1vec serve` standing in for it).
//!
//! ```no_run
//! # fn main() -> d1vec::Result<()> {
//! use d1vec::remote::Cloudflare;
//! use d1vec::vectorize::types::{QueryOptions, Vector};
//! let token = std::env::var("CLOUDFLARE_API_TOKEN").unwrap_or_default();
//! let cf = Cloudflare::new("0123456789abcdef0123456789abcdef", token)
//!     .base_url("http://127.0.0.1:8787/client/v4"); // default: api.cloudflare.com
//! let index = cf.vectorize("docs");
//! index.upsert(&[Vector::new("a", vec![0.1, 0.2, 0.3])])?;
//! let hits = index.query(&[0.1, 0.2, 0.3], &QueryOptions::new().with_top_k(3))?;
//! let rows = cf.d1_query("db-uuid", "SELECT ?1 AS x", &[1.into()])?;
//! # let _ = (hits, rows); Ok(()) }
//! ```
//!
//! The client is synchronous (reqwest's blocking client, rustls, no OpenSSL), like the rest of
//! the library. Every call has a timeout (default 60 s; connect 10 s), follows the
//! [`RetryPolicy`] and the server's `Retry-After` and `Ratelimit` headers, and turns an error
//! envelope into [`crate::Error::Remote`] naming Cloudflare's code and message. The token is
//! held in a [`crate::keys::Secret`]: `Debug` prints `[redacted]`, and no error
//! carries it.
//!
//! # Mapping to the local API
//!
//! | local | remote |
//! |---|---|
//! | [`crate::Database::create_index`] / `get_index` / `list_indexes` / `delete_index` | [`Cloudflare::create_index`] / `get_index` / `list_indexes` / `delete_index` |
//! | [`crate::vectorize::VectorIndex`] (`Database::vectorize`) | [`RemoteIndex`] ([`Cloudflare::vectorize`]), the same method names, argument and result types |
//! | `VectorIndex::create_metadata_index` → `MetadataIndexCreated` | `RemoteIndex::create_metadata_index` → `MutationResult` (the service says nothing about coverage) |
//! | `Database::prepare(sql).bind_json(params)?.all()` | [`Cloudflare::d1_query`] → `Vec<D1Result>` (one per statement) |
//! | `D1Result::raw()` | [`Cloudflare::d1_raw`] → `Vec<D1RawResult>` |
//!
//! Both index types implement [`VectorBackend`], so code written against it runs on either.

mod backend;
mod d1;
mod http;
pub mod retry;
mod vectorize;

use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use backend::VectorBackend;
pub use d1::{D1Database, D1RawResult};
pub use retry::{Idempotency, RetryPolicy};
pub use vectorize::RemoteIndex;

use crate::keys::Secret;

/// Cloudflare's API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4";

/// A client for one Cloudflare account's D1 and Vectorize REST API. Cheap to share by
/// reference across threads (`Sync`); the HTTP connection pool is built on first use.
pub struct Cloudflare {
    account_id: String,
    token: Secret<String>,
    base_url: String,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    client: OnceLock<reqwest::blocking::Client>,
    next_allowed: Mutex<Option<Instant>>,
    attempts: AtomicU64,
}

impl std::fmt::Debug for Cloudflare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cloudflare")
            .field("account_id", &self.account_id)
            .field("token", &self.token)
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Cloudflare {
    /// A client for `account_id`, authenticating with the API token `token` (sent as
    /// `Authorization: Bearer`). Talks to [`DEFAULT_BASE_URL`] until [`Cloudflare::base_url`].
    pub fn new(account_id: impl Into<String>, token: impl Into<String>) -> Self {
        Cloudflare {
            account_id: account_id.into(),
            token: Secret::new(token.into()),
            base_url: DEFAULT_BASE_URL.to_owned(),
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            client: OnceLock::new(),
            next_allowed: Mutex::new(None),
            attempts: AtomicU64::new(0),
        }
    }

    /// The API's base URL, up to and including `/client/v4` (e.g. a `d1vec serve`'s
    /// `http://127.0.0.1:8787/client/v4`). Default [`DEFAULT_BASE_URL`].
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The timeout of each attempt, from connecting to the last byte of the answer.
    /// Default 60 s (uploads of large batches may need more).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The retry policy. Default [`RetryPolicy::default`].
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The account id calls are made for.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// How many HTTP attempts this client has made (retries included).
    pub fn attempts(&self) -> u64 {
        self.attempts.load(std::sync::atomic::Ordering::Relaxed)
    }
}
