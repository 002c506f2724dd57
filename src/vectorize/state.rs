//! What a query answers from memory instead of SQLite: per vid, its Vectorize id and its
//! namespace (interned), kept by the engine at the index's mutation seq
//! ([`super::engine::Segments`] owns one and changes it only in its own methods).

use std::collections::HashMap;

/// No namespace.
const NO_NAMESPACE: u32 = u32::MAX;

/// Vid -> (id, namespace) for the live vectors of one index.
#[derive(Debug, Default)]
pub(crate) struct VidTable {
    by_vid: HashMap<u64, Entry>,
    /// Interned namespace names; entries stay for the life of the table (an index holds at
    /// most `limits::MAX_NAMESPACES` of them at once, and a name once seen usually returns).
    names: Vec<Box<str>>,
    lookup: HashMap<Box<str>, u32>,
}

#[derive(Debug)]
struct Entry {
    id: Box<str>,
    namespace: u32,
}

impl VidTable {
    /// Records a live vector.
    pub fn insert(&mut self, vid: u64, id: &str, namespace: Option<&str>) {
        let namespace = match namespace {
            None => NO_NAMESPACE,
            Some(ns) => self.intern(ns),
        };
        self.by_vid.insert(
            vid,
            Entry {
                id: id.into(),
                namespace,
            },
        );
    }

    /// Forgets a vector (deleted or replaced).
    pub fn remove(&mut self, vid: u64) {
        self.by_vid.remove(&vid);
    }

    /// The Vectorize id of a live vid.
    pub fn id(&self, vid: u64) -> Option<&str> {
        self.by_vid.get(&vid).map(|e| &*e.id)
    }

    /// The namespace of a live vid: `None` if the vid is unknown, `Some(None)` if it has none.
    pub fn namespace(&self, vid: u64) -> Option<Option<&str>> {
        let e = self.by_vid.get(&vid)?;
        Some(match e.namespace {
            NO_NAMESPACE => None,
            n => self.names.get(n as usize).map(|s| &**s),
        })
    }

    /// How many vids are recorded.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_vid.len()
    }

    fn intern(&mut self, ns: &str) -> u32 {
        if let Some(&n) = self.lookup.get(ns) {
            return n;
        }
        let n = u32::try_from(self.names.len()).unwrap_or(NO_NAMESPACE - 1);
        self.names.push(ns.into());
        self.lookup.insert(ns.into(), n);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_namespaces_follow_inserts_and_removes() {
        let mut t = VidTable::default();
        t.insert(1, "a", Some("x"));
        t.insert(2, "b", None);
        t.insert(3, "c", Some("x"));
        assert_eq!(t.id(1), Some("a"));
        assert_eq!(t.namespace(1), Some(Some("x")));
        assert_eq!(t.namespace(2), Some(None));
        assert_eq!(t.namespace(9), None);
        assert_eq!(t.names.len(), 1, "one name interned once");
        t.remove(1);
        assert_eq!(t.id(1), None);
        assert_eq!(t.namespace(3), Some(Some("x")));
        assert_eq!(t.len(), 2);
    }
}
