//! Query planning, in one place: which vectors a query may return (its candidates: the
//! namespace, the filter, or every live vector) and how they are searched ([`Plan`]).
//!
//! [`candidates`] answers from memory: a namespace's set, a cached filter set, or the
//! in-memory filter index (no SQL, even for a filter never seen before). [`plan`] picks
//! the search path from sizes alone; the engine ([`super::engine::Engine::search`]) runs it.

use std::sync::Arc;

use super::engine::{EngineOptions, IndexState, Segments};
use super::error::codes;
use super::filter::parse::Filter;
use crate::error::Result;
use crate::index::IdBitset;

/// How a query is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Nothing can match (no candidates, or topK 0).
    Empty,
    /// A namespace alone, sealed segments holding it as contiguous ranges: each segment's
    /// range is scanned exactly, plus the namespace's members in the mutable segment.
    ExactNamespaceRanges,
    /// Exact scoring of the candidate set (or of every live vector).
    ExactCandidates,
    /// Graph search per segment with the candidates as the filter, candidate list `ef`.
    Graph { ef: usize },
}

/// What [`plan`] looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// topK.
    pub k: usize,
    /// How many vectors the query may return (candidates, or every live vector).
    pub allowed: usize,
    /// Live vectors in the index.
    pub live: usize,
    /// The candidates are one namespace, with no filter.
    pub namespace_only: bool,
    /// Every sealed segment stores namespaces as contiguous ranges.
    pub groups: bool,
}

/// Picks the path: nothing to search is [`Plan::Empty`]; at most
/// `exact_max_candidates` allowed vectors are scored exactly (by namespace range when the
/// segments allow it); more go through the graph, with `ef` widened as the candidates thin
/// out (by the square root of the inverse selectivity, at most 8x).
pub(crate) fn plan(options: &EngineOptions, shape: Shape) -> Plan {
    if shape.allowed == 0 || shape.k == 0 {
        return Plan::Empty;
    }
    if shape.allowed <= options.exact_max_candidates {
        if shape.namespace_only && shape.groups {
            return Plan::ExactNamespaceRanges;
        }
        return Plan::ExactCandidates;
    }
    let selectivity = shape.allowed as f64 / shape.live.max(1) as f64;
    let widen = (1.0 / selectivity.max(1e-6)).sqrt().min(8.0);
    let ef = ((options.ef_search.max(shape.k) as f64) * widen).ceil() as usize;
    Plan::Graph {
        ef: ef.max(shape.k + TIE_MARGIN),
    }
}

/// Extra graph results fetched beyond topK so that ties at the boundary are broken by id.
pub(crate) const TIE_MARGIN: usize = 8;

/// A query's candidates.
#[derive(Debug, Clone)]
pub(crate) enum Candidates {
    /// Every live vector.
    All,
    /// Exactly these vids (a subset of what is live may be stale: the search re-checks).
    Set(Arc<IdBitset>),
}

impl Candidates {
    /// The set, `None` for every live vector.
    pub fn set(&self) -> Option<&IdBitset> {
        match self {
            Candidates::All => None,
            Candidates::Set(s) => Some(s),
        }
    }
}

/// What a query asks for, as the planner needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask<'a> {
    pub namespace: Option<&'a str>,
    /// The parsed filter and the JSON it came from (the cache key).
    pub filter: Option<(&'a Filter, &'a serde_json::Value)>,
}

/// The candidates of `ask` at mutation seq `seq` of `state` (whose segments are `segs`),
/// from memory alone: a namespace's set, a cached filter set, or the in-memory filter index
/// ([`super::filter::bitmap::FilterIndex`]), so a filter never seen before costs no SQL.
/// (Always `Some`; the `Option` is kept for callers that could not answer from memory.)
pub(crate) fn candidates(
    state: &IndexState,
    segs: &Segments,
    seq: i64,
    ask: Ask<'_>,
) -> Result<Option<Candidates>> {
    let Some((filter, json)) = ask.filter else {
        return Ok(Some(match ask.namespace {
            None => Candidates::All,
            Some(ns) => Candidates::Set(segs.namespace(ns).cloned().unwrap_or_default()),
        }));
    };
    let key = super::candidates::key(ask.namespace, json);
    if let Some(hit) = state.candidates.get(seq, &key) {
        return Ok(Some(Candidates::Set(hit)));
    }
    let universe = segs.universe(ask.namespace);
    let passing = segs.filter().candidates(filter, &universe).map_err(|e| {
        let code = if e.reason.contains("metadata index") {
            codes::FILTER_WITHOUT_METADATA_INDEX
        } else {
            codes::INVALID_FILTER
        };
        crate::error::Error::Vectorize(super::error::VectorizeError::new(code, e.to_string()))
    })?;
    let set: Arc<IdBitset> = Arc::new(passing.iter().collect());
    state.candidates.put(seq, key, Arc::clone(&set));
    Ok(Some(Candidates::Set(set)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(k: usize, allowed: usize, live: usize) -> Shape {
        Shape {
            k,
            allowed,
            live,
            namespace_only: false,
            groups: false,
        }
    }

    #[test]
    fn nothing_to_search_is_empty() {
        let o = EngineOptions::default();
        assert_eq!(plan(&o, shape(10, 0, 1000)), Plan::Empty);
        assert_eq!(plan(&o, shape(0, 50, 1000)), Plan::Empty);
    }

    #[test]
    fn small_candidate_sets_are_exact_and_large_ones_use_the_graph() {
        let o = EngineOptions::default();
        let max = o.exact_max_candidates;
        // A small filter, a small index, the boundary itself: exact.
        assert_eq!(plan(&o, shape(10, 20, 100_000)), Plan::ExactCandidates);
        assert_eq!(plan(&o, shape(10, max, max)), Plan::ExactCandidates);
        // One past it: the graph, unfiltered at the default ef.
        assert_eq!(
            plan(&o, shape(10, max + 1, max + 1)),
            Plan::Graph { ef: o.ef_search }
        );
        // A large filter passing a quarter: ef doubled (sqrt(4)).
        assert_eq!(
            plan(&o, shape(10, 40_000, 160_000)),
            Plan::Graph {
                ef: o.ef_search * 2
            }
        );
        // A very selective large set: widened at most 8x.
        assert_eq!(
            plan(&o, shape(10, 20_000, 100_000_000)),
            Plan::Graph {
                ef: o.ef_search * 8
            }
        );
        // topK above ef: ef follows topK, with the tie margin.
        assert_eq!(
            plan(&o, shape(100, 50_000, 50_000)),
            Plan::Graph {
                ef: 100 + TIE_MARGIN
            }
        );
    }

    #[test]
    fn a_namespace_alone_scans_ranges_only_when_the_segments_carry_groups() {
        let o = EngineOptions::default();
        let ns = |groups| Shape {
            namespace_only: true,
            groups,
            ..shape(10, 210, 100_000)
        };
        assert_eq!(plan(&o, ns(true)), Plan::ExactNamespaceRanges);
        assert_eq!(plan(&o, ns(false)), Plan::ExactCandidates);
        // A namespace with a filter is a candidate set, groups or not.
        let filtered = Shape {
            namespace_only: false,
            groups: true,
            ..shape(10, 210, 100_000)
        };
        assert_eq!(plan(&o, filtered), Plan::ExactCandidates);
        // A namespace too large for exact scoring goes through the graph.
        let big = Shape {
            namespace_only: true,
            groups: true,
            ..shape(10, 50_000, 100_000)
        };
        assert!(matches!(plan(&o, big), Plan::Graph { .. }));
    }

    #[test]
    fn the_exact_limit_is_the_option() {
        let o = EngineOptions {
            exact_max_candidates: 5,
            ..EngineOptions::default()
        };
        assert_eq!(plan(&o, shape(3, 5, 10)), Plan::ExactCandidates);
        assert!(matches!(plan(&o, shape(3, 6, 10)), Plan::Graph { .. }));
    }
}
