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
//! The same marks put the state's updates in commit order: two writes commit one after the
//! other, but their threads may reach `apply` the other way round, and an update only
//! follows a state at exactly its starting sequence. Out of order, the later write was
//! skipped and the state stayed one behind for good. Now a write's update first waits for
//! the writes committed before it.
//!
//! Waiting never decides what a search sees: after the wait the search takes the state if
//! it is new enough, and rebuilds it from SQLite otherwise, exactly as before.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a search, or a write's state update, waits for earlier writes to settle before
/// going on without them (a search then rebuilds the state from SQLite; a write leaves it
/// behind, to be rebuilt). A settle is an in-memory insert of milliseconds; the bound only
/// matters if a writer died between its commit and its settle.
pub(crate) const SETTLE_WAIT: Duration = Duration::from_secs(1);

/// Per index, the sequences announced by this process's writes and not yet settled.
#[derive(Debug, Default)]
pub(crate) struct Settling {
    pending: Mutex<HashMap<i64, BTreeSet<i64>>>,
    settled: Condvar,
}

impl Settling {
    /// A write of `index_id` is about to commit sequence `seq` (called inside its
    /// transaction, before the commit).
    pub fn announce(&self, index_id: i64, seq: i64) {
        self.lock().entry(index_id).or_default().insert(seq);
    }

    /// The state has followed the write that committed `seq`, or given up on it.
    pub fn settle(&self, index_id: i64, seq: i64) {
        if let Some(set) = self.lock().get_mut(&index_id) {
            set.remove(&seq);
        }
        self.settled.notify_all();
    }

    /// A write of `index_id` whose transaction began at sequence `from` failed: whatever it
    /// announced above `from` was rolled back. (Writes of one process are serialized, so
    /// every other announced sequence is at most `from`.)
    pub fn withdraw_after(&self, index_id: i64, from: i64) {
        if let Some(set) = self.lock().get_mut(&index_id) {
            set.retain(|&seq| seq <= from);
        }
        self.settled.notify_all();
    }

    /// Waits, at most `bound`, while a write of this process that committed `seq` or an
    /// earlier sequence has not settled. Returns at once when there is none.
    pub fn wait(&self, index_id: i64, seq: i64, bound: Duration) {
        let deadline = Instant::now() + bound;
        let mut pending = self.lock();
        loop {
            let earliest = pending.get(&index_id).and_then(|set| set.first().copied());
            if earliest.is_none_or(|first| first > seq) {
                return;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            pending = self
                .settled
                .wait_timeout(pending, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Forgets an index (deleted).
    pub fn forget(&self, index_id: i64) {
        self.lock().remove(&index_id);
        self.settled.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, BTreeSet<i64>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
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
        // A rolled-back write is withdrawn: nothing waits for it any more.
        s.withdraw_after(1, 5);
        let t = Instant::now();
        s.wait(1, 7, Duration::from_secs(5));
        assert!(t.elapsed() < Duration::from_millis(500));
        // Only earlier writes hold a wait: a write waiting for its predecessor (from 7)
        // ignores its own announced 8, and a sequence below every pending one never waits.
        s.announce(1, 7);
        s.announce(1, 8);
        let t = Instant::now();
        s.wait(1, 6, Duration::from_secs(5));
        assert!(t.elapsed() < Duration::from_millis(500));
        s.settle(1, 7);
        let t = Instant::now();
        s.wait(1, 7, Duration::from_secs(5));
        assert!(t.elapsed() < Duration::from_millis(500));
    }
}
