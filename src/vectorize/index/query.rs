//! Queries: by vector or by stored id, answered from the in-memory state when it is known
//! current (no SQL unless the answer returns rows), else on one read snapshot.

use super::*;

impl VectorIndex {
    /// The `topK` nearest vectors to `vector` that pass the options' namespace and filter.
    pub fn query(&self, vector: &[f64], options: &QueryOptions) -> Result<Matches> {
        self.drain_due()?;
        let values = limits::validate_query_vector(vector, self.row.dimensions, self.row.metric)?;
        self.query_prepared(&values, options)
    }

    /// [`VectorIndex::query`] run on `conn` instead of the admin connection: the path of the
    /// `vectorize_query` SQL function, which runs inside a statement on `conn`.
    pub(crate) fn query_on(
        &self,
        conn: &rusqlite::Connection,
        vector: &[f64],
        options: &QueryOptions,
    ) -> Result<Matches> {
        let values = limits::validate_query_vector(vector, self.row.dimensions, self.row.metric)?;
        self.query_prepared_on(Some(conn), &values, options)
    }

    /// [`VectorIndex::query`] with options given as Vectorize's JSON (`{"topK": 3, ...}`).
    pub fn query_json(&self, vector: &[f64], options: &Json) -> Result<Matches> {
        self.query(vector, &QueryOptions::from_json(options)?)
    }

    /// Queries with the stored vector `id` as the query vector. The `namespace` option
    /// applies as in [`VectorIndex::query`]; an unknown id is an error naming it.
    ///
    /// On a private index the admin surface finds `id` in the namespace the option names,
    /// or, without one, wherever it is; an id held in several namespaces then needs the
    /// option (error 40032 listing them).
    pub fn query_by_id(&self, id: &str, options: &QueryOptions) -> Result<Matches> {
        self.drain_due()?;
        let found = self.shared.read_tx(|tx| {
            match (self.row.scope, self.tenant(), options.namespace.as_deref()) {
                (Scope::Private, None, Some(ns)) => {
                    Ok(store::vector_in_space(tx, self.row.index_id, ns, id)?
                        .into_iter()
                        .collect::<Vec<_>>())
                }
                _ => self.lookup(tx, id),
            }
        })?;
        match found.as_slice() {
            [] => Err(verr(
                codes::QUERY_ID_NOT_FOUND,
                format!("no vector with id \"{id}\" in index `{}`", self.row.name),
            )),
            [v] => self.query_prepared(&v.values, options),
            several => {
                let namespaces: Vec<String> = several
                    .iter()
                    .map(|v| v.namespace.clone().unwrap_or_else(|| "(none)".to_owned()))
                    .collect();
                Err(verr(
                    codes::INVALID_NAMESPACE,
                    format!(
                        "id \"{id}\" is held in {} namespaces of private index `{}` ({}); give the namespace option to choose one",
                        several.len(),
                        self.row.name,
                        namespaces.join(", ")
                    ),
                ))
            }
        }
    }

    pub(super) fn query_prepared(&self, values: &[f32], options: &QueryOptions) -> Result<Matches> {
        self.query_prepared_on(None, values, options)
    }

    /// The one query path; `on` as in [`VectorIndex::with_state_on`].
    ///
    /// First from memory ([`VectorIndex::query_from_memory`]) when the state is known to be
    /// current; otherwise against a read snapshot, which also validates the state for the
    /// queries after it.
    pub(super) fn query_prepared_on(
        &self,
        on: Option<&rusqlite::Connection>,
        values: &[f32],
        options: &QueryOptions,
    ) -> Result<Matches> {
        limits::check_top_k(
            options.top_k,
            options.return_values,
            options.return_metadata,
        )?;
        let namespace = self.read_namespace(options.namespace.as_deref())?;
        if let Some(ns) = &namespace {
            limits::validate_namespace(ns)?;
        }
        let filter = options
            .filter
            .as_ref()
            .map(parse_filter)
            .transpose()
            .map_err(|e| verr(codes::INVALID_FILTER, e.to_string()))?;
        self.check(VectorAction::Read)?;
        let query = prepare(self.row.metric, values);
        let ask = Ask {
            namespace: namespace.as_deref(),
            filter: filter.as_ref().zip(options.filter.as_ref()),
        };
        if on.is_none() {
            if let Some(answer) = self.query_from_memory(&query, options, ask)? {
                return Ok(answer);
            }
        }
        let engine = &self.shared.vectors;
        self.with_state_on(on, |tx, row, state, last| {
            let segs = state.inner.read().unwrap_or_else(|e| e.into_inner());
            // The state's seq moves only under its write lock: stable while `segs` is held.
            let newer = state.seq() > row.seq;
            if newer && !last {
                return Ok(None);
            }
            // At the snapshot's seq the state's metadata indexes are the snapshot's.
            let meta = if newer {
                store::metadata_indexes(tx, row.index_id)?
            } else {
                segs.meta_indexes().to_vec()
            };
            let candidates =
                planner::candidates(state, &segs, row.seq, ask)?.unwrap_or(Candidates::All);
            let hits = engine.search(
                &segs,
                row.metric,
                &query,
                options.top_k,
                candidates.set(),
                if ask.filter.is_none() {
                    ask.namespace
                } else {
                    None
                },
            );
            let mut found = from_memory(&segs, &hits);
            drop(segs);
            // A newer state's hits are re-checked against the snapshot's rows (a hit it
            // lacks is dropped); at the snapshot's seq, rows are read only for what the
            // answer returns.
            if newer || needs_rows(options) {
                let vids: Vec<u64> = hits.iter().map(|h| h.id).collect();
                let rows = store::vectors_by_vid(tx, row.index_id, &vids)?;
                found = from_rows(rows);
            }
            Ok(Some(finish(
                row.metric,
                &hits,
                found,
                options,
                &meta,
                ask.namespace,
                &candidates,
            )))
        })
    }

    /// Answers a query from the in-memory state alone when it is known to be current
    /// ([`crate::vectorize::engine::Engine::fresh_state`]) and its candidates need no SQL: no SQLite
    /// at all, unless the answer returns values or metadata (then only the hits' rows, in a
    /// read transaction). `None`: take the snapshot path (not known current, a filter not
    /// in memory, or a hit's row gone since: a write committed meanwhile).
    pub(super) fn query_from_memory(
        &self,
        query: &[f32],
        options: &QueryOptions,
        ask: Ask<'_>,
    ) -> Result<Option<Matches>> {
        let engine = &self.shared.vectors;
        let Some(state) = engine.fresh_state(&self.row) else {
            return Ok(None);
        };
        let segs = state.inner.read().unwrap_or_else(|e| e.into_inner());
        let seq = state.seq();
        let Some(candidates) = planner::candidates(&state, &segs, seq, ask)? else {
            return Ok(None);
        };
        let hits = engine.search(
            &segs,
            self.row.metric,
            query,
            options.top_k,
            candidates.set(),
            if ask.filter.is_none() {
                ask.namespace
            } else {
                None
            },
        );
        let mut found = from_memory(&segs, &hits);
        let meta = if options.return_metadata == ReturnMetadata::Indexed {
            segs.meta_indexes().to_vec()
        } else {
            Vec::new()
        };
        drop(segs);
        if needs_rows(options) {
            let vids: Vec<u64> = hits.iter().map(|h| h.id).collect();
            let index_id = self.row.index_id;
            let rows = self
                .shared
                .read_tx(|tx| Ok(store::vectors_by_vid(tx, index_id, &vids)?))?;
            if rows.len() != vids.len() {
                return Ok(None);
            }
            found = from_rows(rows);
        }
        Ok(Some(finish(
            self.row.metric,
            &hits,
            found,
            options,
            &meta,
            ask.namespace,
            &candidates,
        )))
    }
}

/// Metadata as `returnMetadata` asks: nothing, the indexed properties (strings truncated to
/// their indexed 64 bytes), or everything.
pub(super) fn project_metadata(
    metadata: Option<&Json>,
    level: ReturnMetadata,
    meta_indexes: &[(String, IndexType, i64)],
) -> Option<Map<String, Json>> {
    match level {
        ReturnMetadata::None => None,
        ReturnMetadata::All => metadata.and_then(|m| m.as_object().cloned()),
        ReturnMetadata::Indexed => {
            let mut out = Map::new();
            for (property, ty, _) in meta_indexes {
                let value = match indexed_value(metadata, property, *ty) {
                    Indexed::Absent => continue,
                    Indexed::Null => Json::Null,
                    Indexed::Value(Scalar::String(s)) => Json::String(s),
                    Indexed::Value(Scalar::Number(n)) => {
                        serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number)
                    }
                    Indexed::Value(Scalar::Bool(b)) => Json::Bool(b),
                    Indexed::Value(Scalar::Null) => Json::Null,
                };
                insert_path(&mut out, property, value);
            }
            Some(out)
        }
    }
}

pub(super) fn insert_path(obj: &mut Map<String, Json>, path: &str, value: Json) {
    match path.split_once('.') {
        None => {
            obj.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let child = obj
                .entry(head.to_owned())
                .or_insert_with(|| Json::Object(Map::new()));
            if let Json::Object(m) = child {
                insert_path(m, rest, value);
            }
        }
    }
}

/// Whether the answer returns something only the vectors' rows hold.
pub(super) fn needs_rows(options: &QueryOptions) -> bool {
    options.return_values || options.return_metadata != ReturnMetadata::None
}

/// A hit as the answer needs it: from memory (id, namespace) or from its row (everything).
pub(super) struct Found {
    vid: u64,
    id: String,
    namespace: Option<String>,
    values: Vec<f32>,
    metadata: Option<Json>,
}

/// The hits' ids and namespaces from the state (hits not live in it are left out).
pub(super) fn from_memory(
    segs: &crate::vectorize::engine::Segments,
    hits: &[crate::index::Hit],
) -> Vec<Found> {
    hits.iter()
        .filter_map(|h| {
            Some(Found {
                vid: h.id,
                id: segs.id_of(h.id)?.to_owned(),
                namespace: segs.namespace_of(h.id)?.map(str::to_owned),
                values: Vec::new(),
                metadata: None,
            })
        })
        .collect()
}

/// The hits as their rows hold them.
pub(super) fn from_rows(rows: Vec<StoredVector>) -> Vec<Found> {
    rows.into_iter()
        .map(|v| Found {
            vid: v.vid,
            id: v.id,
            namespace: v.namespace,
            values: v.values,
            metadata: v.metadata,
        })
        .collect()
}

/// The matches of `hits` (in Vectorize's order, at most topK), each re-checked against
/// what the search promised: found (live), in the namespace, through the filter.
pub(super) fn finish(
    metric: Metric,
    hits: &[crate::index::Hit],
    found: Vec<Found>,
    options: &QueryOptions,
    meta: &[(String, IndexType, i64)],
    namespace: Option<&str>,
    candidates: &Candidates,
) -> Matches {
    let mut matches = Vec::with_capacity(found.len());
    for hit in hits {
        let Some(v) = found.iter().find(|r| r.vid == hit.id) else {
            continue;
        };
        if namespace.is_some() && v.namespace.as_deref() != namespace {
            continue;
        }
        if candidates.set().is_some_and(|c| !c.contains(v.vid)) {
            continue;
        }
        matches.push(Match {
            id: v.id.clone(),
            score: metric.score(hit.distance),
            values: options
                .return_values
                .then(|| v.values.iter().map(|&x| f32_rounded(x)).collect()),
            namespace: v.namespace.clone(),
            metadata: project_metadata(v.metadata.as_ref(), options.return_metadata, meta),
        });
    }
    let better = |a: &Match, b: &Match| {
        let by_score = if metric.higher_is_better() {
            b.score.total_cmp(&a.score)
        } else {
            a.score.total_cmp(&b.score)
        };
        by_score.then_with(|| a.id.cmp(&b.id))
    };
    matches.sort_by(better);
    matches.truncate(options.top_k);
    Matches {
        count: matches.len(),
        matches,
    }
}
