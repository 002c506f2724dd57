//! Writes this process has committed but its in-memory state has not followed yet.
//!
//! A write commits its rows first and then makes the loaded state follow
//! ([`super::engine::Engine::apply`]). A search that begins in between sees the new
//! mutation sequence in its snapshot while the state still shows the old one; without this
//! it would rebuild the whole state from SQLite, and under a steady mix of writes and
//! searches every write cost every concurrent search a rebuild. A write announces the
//! sequence it is about to commit; a search that finds the state behind a sequence this
//! process announced waits, bounded, for the write to settle instead.
//!
//! Waiting never decides what a search sees: after the wait the search takes the state if
//! it is new enough, and rebuilds it from SQLite otherwise, exactly as before.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a search waits for a write to settle before it rebuilds the state itself. A
/// settle is an in-memory insert (milliseconds); the bound only matters if a writer died.
pub(crate) const SETTLE_WAIT: Duration = Duration::from_secs(1);

/// Per index: the highest sequence announced and the highest settled by this process.
#[derive(Debug, Default)]
pub(crate) struct Settling {
    marks: Mutex<HashMap<i64, Marks>>,
    settled: Condvar,
}

#[derive(Debug, Default, Clone, Copy)]
struct Marks {
    announced: i64,
    settled: i64,
}

impl Settling {
    /// A write of `index_id` is about to commit sequence `seq` (called inside its
    /// transaction). A transaction that then rolls back leaves a mark no snapshot ever
    /// shows, so no search waits for it.
    pub fn announce(&self, index_id: i64, seq: i64) {
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        let m = marks.entry(index_id).or_default();
        m.announced = m.announced.max(seq);
    }

    /// The state has followed the write that committed `seq`, or given up on it.
    pub fn settle(&self, index_id: i64, seq: i64) {
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        let m = marks.entry(index_id).or_default();
        m.settled = m.settled.max(seq);
        drop(marks);
        self.settled.notify_all();
    }

    /// Waits, at most `bound`, while a write of this process that committed `seq` (or an
    /// earlier one) has not settled. Returns at once when no such write is known.
    pub fn wait(&self, index_id: i64, seq: i64, bound: Duration) {
        let deadline = Instant::now() + bound;
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let m = marks.get(&index_id).copied().unwrap_or_default();
            if m.announced < seq || m.settled >= seq {
                return;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            marks = self
                .settled
                .wait_timeout(marks, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Forgets an index (deleted).
    pub fn forget(&self, index_id: i64) {
        self.marks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&index_id);
        self.settled.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_search_waits_for_an_announced_write_and_no_longer() {
        let s = Arc::new(Settling::default());
        // Nothing announced: no wait.
        let t = Instant::now();
        s.wait(1, 5, Duration::from_secs(5));
        assert!(t.elapsed() < Duration::from_millis(500));
        // Announced, settled by another thread after 100 ms: the wait ends then.
        s.announce(1, 5);
        let settler = {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                s.settle(1, 5);
            })
        };
        let t = Instant::now();
        s.wait(1, 5, Duration::from_secs(5));
        let waited = t.elapsed();
        settler.join().unwrap();
        assert!(waited >= Duration::from_millis(90), "{waited:?}");
        assert!(waited < Duration::from_secs(4), "{waited:?}");
        // A write that never settles (rolled back, or its writer died) holds a search for
        // the bound only.
        s.announce(1, 6);
        let t = Instant::now();
        s.wait(1, 6, Duration::from_millis(150));
        assert!(t.elapsed() >= Duration::from_millis(140));
        // A sequence above anything announced (another process wrote it): no wait.
        let t = Instant::now();
        s.wait(1, 7, Duration::from_secs(5));
        assert!(t.elapsed() < Duration::from_millis(500));
    }
}
