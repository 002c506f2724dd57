//! D1's per-statement limits, and the budget that enforces them while a statement runs.
//!
//! SQLite itself bounds the size of every value ([`D1Limits::max_value_bytes`], set as
//! `SQLITE_LIMIT_LENGTH`, so `zeroblob(1e8)` or `printf('%.*c', 1e9, 'x')` fail before they
//! allocate). Time and virtual-machine steps are bounded by SQLite's progress handler, which
//! SQLite calls every [`PROGRESS_PERIOD`] VM instructions of a running statement; it stops
//! the statement once a budget is spent, the statement's transaction is rolled back, and the
//! caller gets [`Error::LimitExceeded`] naming the limit. The rows turned into JSON are
//! counted as they are built ([`D1Limits::max_result_bytes`]), so a result never grows past
//! its cap in memory.
//!
//! Every value comes from D1's limits page (<https://developers.cloudflare.com/d1/platform/limits/>);
//! `docs/d1-fidelity.md` lists each with how it is enforced and the error it gives.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::Error;

/// How many SQLite VM instructions run between two checks of the budget.
pub(crate) const PROGRESS_PERIOD: u32 = 1_000;

/// The limits a statement runs under; [`D1Limits::default`] gives D1's documented values.
///
/// ```
/// use std::time::Duration;
/// let mut limits = d1vec::sql::D1Limits::default();
/// assert_eq!(limits.statement_timeout, Duration::from_secs(30));
/// limits.statement_timeout = Duration::from_millis(500);
/// let db = d1vec::Database::builder().limits(limits).open_in_memory()?;
/// let err = db
///     .prepare("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT max(n) FROM r")
///     .all()
///     .unwrap_err();
/// assert!(matches!(err, d1vec::Error::LimitExceeded { .. }), "{err}");
/// # Ok::<(), d1vec::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct D1Limits {
    /// Wall-clock time one statement may run. D1: 30 seconds.
    pub statement_timeout: Duration,
    /// SQLite VM instructions one statement may execute, counted in steps of
    /// [`PROGRESS_PERIOD`]; `None` for no count. D1 documents no such limit, so the default
    /// is `None` and time alone bounds a statement; set it for a bound that does not
    /// depend on the machine's speed.
    pub max_statement_steps: Option<u64>,
    /// The size of one statement's result, counted as the bytes of its JSON text (a BLOB
    /// byte counts as up to four, its JSON shape being an array of numbers). D1: 50 MB.
    pub max_result_bytes: usize,
    /// The longest string or BLOB (and so row) SQLite may build, as `SQLITE_LIMIT_LENGTH`
    /// (SQLite also checks each row's record against it). D1: "Maximum string, BLOB or
    /// table row size", 2,000,000 bytes.
    pub max_value_bytes: usize,
    /// The longest SQL statement, in bytes. D1: "Maximum SQL statement length",
    /// 100,000 bytes.
    pub max_statement_bytes: usize,
    /// Bound parameters one statement may declare. D1: "Maximum bound parameters per
    /// query", 100.
    pub max_bound_parameters: usize,
    /// Columns of a table (and of a result, an index, a GROUP BY or ORDER BY list), as
    /// `SQLITE_LIMIT_COLUMN`. D1: "Maximum number of columns per table", 100.
    pub max_columns: usize,
    /// Arguments of one SQL function call, as `SQLITE_LIMIT_FUNCTION_ARG`. D1: "Maximum
    /// arguments per SQL function", 32.
    pub max_function_args: usize,
    /// Bytes of a LIKE or GLOB pattern, as `SQLITE_LIMIT_LIKE_PATTERN_LENGTH`. D1:
    /// "Maximum characters (bytes) in a LIKE or GLOB pattern", 50 bytes.
    pub max_like_pattern_bytes: usize,
    /// The database file's size, enforced as `PRAGMA max_page_count` (the size divided by
    /// the page size, rounded down). D1: "Maximum database size", 10 GB on Workers Paid
    /// (read as 10,000,000,000 bytes; the Free plan's is 500 MB).
    pub max_database_bytes: u64,
}

impl Default for D1Limits {
    fn default() -> Self {
        D1Limits {
            statement_timeout: Duration::from_secs(30),
            max_statement_steps: None,
            max_result_bytes: 50_000_000,
            max_value_bytes: 2_000_000,
            max_statement_bytes: 100_000,
            max_bound_parameters: 100,
            max_columns: 100,
            max_function_args: 32,
            max_like_pattern_bytes: 50,
            max_database_bytes: 10_000_000_000,
        }
    }
}

/// Why the progress handler stopped a statement.
const STOPPED_NONE: u8 = 0;
const STOPPED_TIME: u8 = 1;
const STOPPED_STEPS: u8 = 2;

/// The running statement's budget, shared between a connection's progress handler and the
/// code that runs statements. Disarmed (every check passes) between user statements.
#[derive(Debug)]
pub(crate) struct Budget {
    limits: D1Limits,
    /// When the armed statement started; `None` while disarmed.
    started: Mutex<Option<Instant>>,
    /// Progress-handler calls since the statement was armed.
    ticks: AtomicU64,
    stopped: AtomicU8,
}

impl Budget {
    pub fn new(limits: D1Limits) -> Self {
        Budget {
            limits,
            started: Mutex::new(None),
            ticks: AtomicU64::new(0),
            stopped: AtomicU8::new(STOPPED_NONE),
        }
    }

    /// The limits this budget enforces.
    pub fn limits(&self) -> &D1Limits {
        &self.limits
    }

    /// Starts counting for one user statement; the guard disarms when dropped.
    pub fn arm(&self) -> Armed<'_> {
        *self.started.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        self.ticks.store(0, Ordering::SeqCst);
        self.stopped.store(STOPPED_NONE, Ordering::SeqCst);
        Armed(self)
    }

    /// The progress handler: `true` stops the running statement.
    pub fn over(&self) -> bool {
        let Some(started) = *self.started.lock().unwrap_or_else(|e| e.into_inner()) else {
            return false;
        };
        let ticks = self.ticks.fetch_add(1, Ordering::SeqCst).saturating_add(1);
        if let Some(max) = self.limits.max_statement_steps {
            if ticks.saturating_mul(u64::from(PROGRESS_PERIOD)) > max {
                self.stopped.store(STOPPED_STEPS, Ordering::SeqCst);
                return true;
            }
        }
        if started.elapsed() > self.limits.statement_timeout {
            self.stopped.store(STOPPED_TIME, Ordering::SeqCst);
            return true;
        }
        false
    }

    /// The typed error for a statement the handler stopped, if it did.
    pub fn take_stop(&self) -> Option<Error> {
        let started = *self.started.lock().unwrap_or_else(|e| e.into_inner());
        match self.stopped.swap(STOPPED_NONE, Ordering::SeqCst) {
            STOPPED_TIME => Some(Error::LimitExceeded {
                what: "statement run time in milliseconds",
                limit: millis(self.limits.statement_timeout),
                got: started.map_or(0, |s| millis(s.elapsed())),
            }),
            STOPPED_STEPS => Some(Error::LimitExceeded {
                what: "SQLite VM steps in one statement",
                limit: usize::try_from(self.limits.max_statement_steps.unwrap_or(0))
                    .unwrap_or(usize::MAX),
                got: usize::try_from(
                    self.ticks
                        .load(Ordering::SeqCst)
                        .saturating_mul(u64::from(PROGRESS_PERIOD)),
                )
                .unwrap_or(usize::MAX),
            }),
            _ => None,
        }
    }
}

/// Keeps a [`Budget`] armed; disarms it when dropped.
pub(crate) struct Armed<'a>(&'a Budget);

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        *self.0.started.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

fn millis(d: Duration) -> usize {
    usize::try_from(d.as_millis()).unwrap_or(usize::MAX)
}

/// The bytes a column value takes as JSON text, escapes aside (a BLOB byte is up to three digits
/// and a comma): what [`D1Limits::max_result_bytes`] is measured in. Measured before the
/// value is converted, so an oversized result is refused before it is built.
pub(crate) fn json_size(value: rusqlite::types::ValueRef<'_>) -> usize {
    use rusqlite::types::ValueRef as V;
    match value {
        V::Null => 4,
        V::Integer(_) => 20,
        V::Real(_) => 24,
        V::Text(t) => t.len().saturating_add(2),
        V::Blob(b) => b.len().saturating_mul(4).saturating_add(2),
    }
}
