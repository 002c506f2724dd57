//! A small cache of filter candidate sets, per index.
//!
//! A filtered query first asks SQLite which vectors pass its namespace and filter; for a
//! filter passing tens of thousands of vectors that costs more than the search itself.
//! Apps repeat their filters (a tenant's category, a date window), so the sets are kept,
//! keyed by the namespace and the filter's canonical JSON, and valid only at the mutation
//! sequence they were computed at: any write to the index (vectors or metadata indexes)
//! empties the cache.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::index::IdBitset;

/// How many candidate sets an index keeps (least recently computed go first).
const CAPACITY: usize = 64;

/// The cache; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct CandidateCache {
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    seq: i64,
    sets: HashMap<String, Arc<IdBitset>>,
    order: VecDeque<String>,
}

/// The cache key of a namespace and a filter.
pub(crate) fn key(namespace: Option<&str>, filter: &serde_json::Value) -> String {
    // serde_json's maps are ordered by key, so equal filters print equally.
    format!("{}\u{0}{filter}", namespace.unwrap_or("\u{0}"))
}

impl CandidateCache {
    /// The set cached for `key` at mutation sequence `seq`.
    pub(crate) fn get(&self, seq: i64, key: &str) -> Option<Arc<IdBitset>> {
        let entries = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if entries.seq != seq {
            return None;
        }
        entries.sets.get(key).cloned()
    }

    /// Keeps `set` for `key` at `seq`; a different `seq` first empties the cache.
    pub(crate) fn put(&self, seq: i64, key: String, set: Arc<IdBitset>) {
        let mut entries = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if entries.seq != seq {
            if seq < entries.seq {
                // An older snapshot's answer: never let it displace newer ones.
                return;
            }
            entries.sets.clear();
            entries.order.clear();
            entries.seq = seq;
        }
        if entries.sets.insert(key.clone(), set).is_none() {
            entries.order.push_back(key);
            while entries.order.len() > CAPACITY {
                if let Some(old) = entries.order.pop_front() {
                    entries.sets.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u64]) -> Arc<IdBitset> {
        Arc::new(ids.iter().copied().collect())
    }

    #[test]
    fn a_new_sequence_empties_the_cache_and_an_old_one_is_ignored() {
        let c = CandidateCache::default();
        c.put(3, "a".into(), set(&[1, 2]));
        assert_eq!(c.get(3, "a").unwrap().len(), 2);
        assert!(c.get(4, "a").is_none());
        c.put(4, "b".into(), set(&[5]));
        assert!(
            c.get(4, "a").is_none(),
            "seq 4 must have dropped seq 3's sets"
        );
        c.put(3, "a".into(), set(&[1]));
        assert!(c.get(3, "a").is_none() && c.get(4, "b").is_some());
    }

    #[test]
    fn capacity_evicts_the_oldest() {
        let c = CandidateCache::default();
        for i in 0..(CAPACITY + 1) {
            c.put(1, format!("k{i}"), set(&[i as u64]));
        }
        assert!(c.get(1, "k0").is_none());
        assert!(c.get(1, &format!("k{CAPACITY}")).is_some());
    }

    #[test]
    fn keys_tell_namespaces_and_filters_apart() {
        let f = serde_json::json!({"a": 1, "b": 2});
        let g = serde_json::json!({"b": 2, "a": 1});
        assert_eq!(key(Some("x"), &f), key(Some("x"), &g));
        assert_ne!(key(Some("x"), &f), key(None, &f));
        assert_ne!(key(Some(""), &f), key(None, &f));
    }
}
