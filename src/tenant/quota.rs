//! Per-tenant quotas (off by default): a token bucket for queries and one for writes,
//! sized by the tenant's plan (`tenants.plan`).
//!
//! A bucket holds at most `burst` tokens and refills at `per_second`; each call takes one.
//! A call that finds its bucket empty is refused before it does anything, with Vectorize's
//! own rate-limit error (code 40041, "Too Many Requests"). The buckets live in memory, one
//! per tenant per kind, shared by all of a database's sessions; they start full.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::vectorize::error::{codes, VectorizeError};

/// Where quotas read the time; swap in a [`ManualClock`] to test refills.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Time elapsed since some fixed start; never goes backwards.
    fn elapsed(&self) -> Duration;
}

/// The process's monotonic clock (the default).
#[derive(Debug)]
pub struct SystemClock(Instant);

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock(Instant::now())
    }
}

impl Clock for SystemClock {
    fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let add = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(add, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

/// One bucket's size: at most `burst` calls at once, refilled at `per_second` calls a second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens a full bucket holds (at least 1 to let any call through).
    pub burst: u32,
    /// Tokens added per second (0: never refills).
    pub per_second: f64,
}

/// A plan's quotas; `None` leaves that kind of call unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PlanQuota {
    /// SQL calls that only read, vector queries, keyword searches.
    pub queries: Option<Rate>,
    /// SQL calls that write, vector inserts, upserts and deletes.
    pub writes: Option<Rate>,
}

/// Quotas per plan, for [`crate::DatabaseBuilder::quotas`]. A plan not listed is unlimited.
///
/// ```
/// use d1vec::tenant::quota::{PlanQuota, Quotas, Rate};
/// let quotas = Quotas::new().plan(
///     "free",
///     PlanQuota { queries: Some(Rate { burst: 100, per_second: 10.0 }), writes: None },
/// );
/// let db = d1vec::Database::builder().quotas(quotas).open_in_memory()?;
/// # Ok::<(), d1vec::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Quotas {
    plans: BTreeMap<String, PlanQuota>,
    clock: Arc<dyn Clock>,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            plans: BTreeMap::new(),
            clock: Arc::new(SystemClock::default()),
        }
    }
}

impl Quotas {
    /// No plan limited yet, on the system clock.
    pub fn new() -> Quotas {
        Quotas::default()
    }

    /// Sets the quotas of tenants on `plan` (`free`, `starter`, `pro`, `enterprise`).
    pub fn plan(mut self, plan: &str, quota: PlanQuota) -> Quotas {
        self.plans.insert(plan.to_owned(), quota);
        self
    }

    /// Reads the time from `clock` instead of the system's.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Quotas {
        self.clock = clock;
        self
    }
}

/// Which bucket a call draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Bucket {
    /// Reads.
    Queries,
    /// Writes.
    Writes,
}

#[derive(Debug, Clone, Copy)]
struct Level {
    tokens: f64,
    at: Duration,
}

/// The buckets of every tenant of one database.
#[derive(Debug)]
pub(crate) struct QuotaBook {
    quotas: Quotas,
    levels: Mutex<HashMap<(String, Bucket), Level>>,
}

impl QuotaBook {
    /// Empty (every bucket starts full).
    pub fn new(quotas: Quotas) -> QuotaBook {
        QuotaBook {
            quotas,
            levels: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `tenant`'s `bucket` under `plan`'s quota, or refuses with 40041.
    pub fn take(&self, tenant: &str, plan: &str, bucket: Bucket) -> Result<()> {
        let Some(quota) = self.quotas.plans.get(plan) else {
            return Ok(());
        };
        let rate = match bucket {
            Bucket::Queries => quota.queries,
            Bucket::Writes => quota.writes,
        };
        let Some(rate) = rate else {
            return Ok(());
        };
        let now = self.quotas.clock.elapsed();
        let burst = f64::from(rate.burst);
        let mut levels = self.levels.lock().unwrap_or_else(|e| e.into_inner());
        let level = levels.entry((tenant.to_owned(), bucket)).or_insert(Level {
            tokens: burst,
            at: now,
        });
        let refill = now.saturating_sub(level.at).as_secs_f64() * rate.per_second.max(0.0);
        level.tokens = (level.tokens + refill).min(burst);
        level.at = now;
        if level.tokens >= 1.0 {
            level.tokens -= 1.0;
            Ok(())
        } else {
            Err(too_many_requests())
        }
    }
}

/// Vectorize's rate-limit error.
pub(crate) fn too_many_requests() -> Error {
    Error::Vectorize(VectorizeError::new(
        codes::TOO_MANY_REQUESTS,
        "Too Many Requests",
    ))
}
