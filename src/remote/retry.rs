//! When to try a call again, and how long to wait first: the retry policy and the parsers of
//! Cloudflare's `Retry-After`, `Ratelimit` and `Ratelimit-Policy` headers.
//!
//! Cloudflare documents (API reference, "Rate limits"): every REST answer carries
//! `Ratelimit: "default";r=50;t=30` (remaining quota `r`, seconds to the window's reset `t`)
//! and `Ratelimit-Policy: "burst";q=100;w=60` (quota `q` per window of `w` seconds); a 429
//! adds `Retry-After` (seconds, rounded up). HTTP also allows `Retry-After` as an HTTP date.

use std::time::{Duration, SystemTime};

/// Whether a call may be sent again when its first attempt may have been applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Sending it twice leaves the same state as once (reads, upsert, delete by ids): retried
    /// on 429, on 5xx, on timeouts and on connection failures.
    Safe,
    /// Sending it twice may differ (SQL, creates, deletes of named objects, insert): retried
    /// only when the request certainly was not applied: a 429 (Cloudflare refuses a
    /// rate-limited request before running it) or a connection that was never made.
    Unsafe,
}

/// How many times to try a call and how long to wait in between. Defaults: 5 attempts,
/// backoff from 250 ms doubling to at most 8 s (with jitter), and at most 60 s for any
/// single wait the server asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1 = never retry). Default 5.
    pub max_attempts: u32,
    /// The first backoff (doubled each attempt). Default 250 ms.
    pub base_delay: Duration,
    /// The longest backoff. Default 8 s.
    pub max_delay: Duration,
    /// The longest wait honoured from `Retry-After` or `Ratelimit`; a server asking for more
    /// fails the call at once with its error rather than blocking longer. Default 60 s.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The backoff before attempt `attempt + 1` (attempt counts from 1): `base * 2^(attempt-1)`
    /// capped at `max_delay`, then a uniform draw from its upper half (`jitter` in [0, 1)),
    /// so clients that failed together do not retry together.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let full = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let half = full / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// Reads `Retry-After`: delay-seconds (`"30"`) or an HTTP date (`"Wed, 21 Oct 2015 07:28:00
/// GMT"`, measured from `now`; a date in the past means no wait). Anything else is `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Reads Cloudflare's `Ratelimit` header (`"default";r=0;t=30`, items separated by commas;
/// also the IETF draft's older `limit=100, remaining=0, reset=30`) and returns how long to
/// wait before the next call: the longest reset among items whose remaining quota is 0.
/// `None` when quota remains or the header says nothing usable.
pub fn parse_ratelimit(value: &str) -> Option<Duration> {
    // The older draft form: one set of comma-separated key=value pairs.
    if value.contains("remaining=") {
        let mut remaining = None;
        let mut reset = None;
        for part in value.split([',', ';']) {
            let (k, v) = part.split_once('=')?;
            match k.trim() {
                "remaining" => remaining = v.trim().parse::<u64>().ok(),
                "reset" => reset = v.trim().parse::<u64>().ok(),
                _ => {}
            }
        }
        return match (remaining, reset) {
            (Some(0), Some(t)) => Some(Duration::from_secs(t)),
            _ => None,
        };
    }
    let mut wait: Option<Duration> = None;
    for item in value.split(',') {
        let mut remaining = None;
        let mut reset = None;
        for param in item.split(';').skip(1) {
            let Some((k, v)) = param.split_once('=') else {
                continue;
            };
            match k.trim() {
                "r" => remaining = v.trim().parse::<u64>().ok(),
                "t" => reset = v.trim().parse::<u64>().ok(),
                _ => {}
            }
        }
        if let (Some(0), Some(t)) = (remaining, reset) {
            let t = Duration::from_secs(t);
            wait = Some(wait.map_or(t, |w| w.max(t)));
        }
    }
    wait
}

/// Reads `Ratelimit-Policy` (`"burst";q=100;w=60`) into `(quota, window)` pairs, for
/// reporting (d1vec paces itself from `Ratelimit`, which says what is left now).
pub fn parse_ratelimit_policy(value: &str) -> Vec<(u64, Duration)> {
    value
        .split(',')
        .filter_map(|item| {
            let mut q = None;
            let mut w = None;
            for param in item.split(';').skip(1) {
                let (k, v) = param.split_once('=')?;
                match k.trim() {
                    "q" => q = v.trim().parse::<u64>().ok(),
                    "w" => w = v.trim().parse::<u64>().ok(),
                    _ => {}
                }
            }
            Some((q?, Duration::from_secs(w?)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn ratelimit_waits_only_when_a_quota_is_spent() {
        assert_eq!(parse_ratelimit("\"default\";r=50;t=30"), None);
        assert_eq!(
            parse_ratelimit("\"default\";r=0;t=30"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_ratelimit("\"burst\";r=0;t=5, \"default\";r=0;t=40"),
            Some(Duration::from_secs(40))
        );
        assert_eq!(
            parse_ratelimit("\"burst\";r=3;t=5, \"default\";r=0;t=40"),
            Some(Duration::from_secs(40))
        );
        assert_eq!(
            parse_ratelimit("limit=100, remaining=0, reset=7"),
            Some(Duration::from_secs(7))
        );
        assert_eq!(parse_ratelimit("garbage"), None);
        assert_eq!(
            parse_ratelimit_policy("\"burst\";q=100;w=60"),
            vec![(100, Duration::from_secs(60))]
        );
    }

    #[test]
    fn backoff_doubles_within_bounds() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1, 1.0), Duration::from_millis(250));
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(125));
        assert_eq!(p.backoff(3, 1.0), Duration::from_secs(1));
        assert_eq!(p.backoff(30, 1.0), Duration::from_secs(8));
        for attempt in 1..40 {
            for j in [0.0, 0.3, 0.999] {
                let d = p.backoff(attempt, j);
                assert!(
                    d <= p.max_delay && d >= p.base_delay / 2,
                    "{attempt} {j} {d:?}"
                );
            }
        }
    }
}
