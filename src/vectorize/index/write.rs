//! Writes: insert, upsert and delete, validated for the caller, queued when a visibility
//! delay asks, applied in one SQLite transaction each, then followed by the in-memory state.

use super::*;

impl VectorIndex {
    /// Inserts vectors; an id that already exists keeps its stored vector (the first wins,
    /// also within one batch). At most 1,000 vectors per call.
    pub fn insert(&self, vectors: &[Vector]) -> Result<MutationResult> {
        self.write(vectors, false, limits::MAX_BATCH)
    }

    /// Inserts or replaces vectors in full (values, metadata and namespace); within one batch
    /// the last occurrence of an id wins. At most 1,000 vectors per call.
    pub fn upsert(&self, vectors: &[Vector]) -> Result<MutationResult> {
        self.write(vectors, true, limits::MAX_BATCH)
    }

    /// [`VectorIndex::insert`] with a caller-chosen batch cap (the CLI's file import allows 5,000).
    pub fn insert_batch(&self, vectors: &[Vector], max_batch: usize) -> Result<MutationResult> {
        self.write(vectors, false, max_batch.min(limits::MAX_FILE_BATCH))
    }

    /// [`VectorIndex::upsert`] with a caller-chosen batch cap (the CLI's file import allows 5,000).
    pub fn upsert_batch(&self, vectors: &[Vector], max_batch: usize) -> Result<MutationResult> {
        self.write(vectors, true, max_batch.min(limits::MAX_FILE_BATCH))
    }

    pub(super) fn write(
        &self,
        vectors: &[Vector],
        upsert: bool,
        max_batch: usize,
    ) -> Result<MutationResult> {
        self.drain_due()?;
        self.check_write()?;
        limits::check_batch(vectors.len(), max_batch)?;
        let accepted = self.validate_batch(vectors, upsert)?;
        let kind = if upsert { "upsert" } else { "insert" };
        if let Some(queued) = self.maybe_enqueue(kind, || Ok(serde_json::to_string(vectors)?))? {
            return Ok(queued);
        }
        self.apply_write(accepted, upsert, None)
    }

    /// Validates a batch for this caller (one bad vector rejects it all) and drops batch
    /// duplicates: insert keeps the first occurrence of an id, upsert the last.
    pub(super) fn validate_batch(
        &self,
        vectors: &[Vector],
        upsert: bool,
    ) -> Result<Vec<StoredVector>> {
        let mut accepted: Vec<StoredVector> = Vec::with_capacity(vectors.len());
        for v in vectors {
            limits::validate_id(&v.id)?;
            let namespace = match (self.forced_namespace(), v.namespace.as_deref()) {
                (Some(own), Some(ns)) if ns != own => {
                    return Err(
                        self.violation(format!("namespace `{ns}` of index `{}`", self.row.name))
                    )
                }
                (Some(own), _) => Some(own.to_owned()),
                (None, ns) => ns.map(str::to_owned),
            };
            if let Some(ns) = &namespace {
                limits::validate_namespace(ns)?;
            }
            let metadata = v.metadata.clone().map(Json::Object);
            if let Some(m) = &metadata {
                limits::validate_metadata(&v.id, m)?;
            }
            let values =
                limits::validate_values(&v.id, &v.values, self.row.dimensions, self.row.metric)?;
            accepted.push(StoredVector {
                vid: 0,
                id: v.id.clone(),
                namespace,
                values,
                metadata,
            });
        }
        // Batch duplicates (the same id in the same id space): insert keeps the first
        // occurrence, upsert the last.
        let scope = self.row.scope;
        let mut seen = HashSet::new();
        let mut first_seen = |v: &StoredVector| {
            seen.insert((
                store::space_of(scope, v.namespace.as_deref()).to_owned(),
                v.id.clone(),
            ))
        };
        if upsert {
            accepted.reverse();
            accepted.retain(|v| first_seen(v));
            accepted.reverse();
        } else {
            accepted.retain(|v| first_seen(v));
        }
        Ok(accepted)
    }

    /// Queues a write when this handle has a visibility delay or earlier writes are still
    /// queued (a write never overtakes one made before it); `None` when it is to be applied
    /// now.
    pub(super) fn maybe_enqueue(
        &self,
        kind: &str,
        payload: impl FnOnce() -> Result<String>,
    ) -> Result<Option<MutationResult>> {
        let wait = self.options.visibility_delay;
        let index_id = self.row.index_id;
        if wait.is_zero()
            && !self
                .shared
                .admin
                .internal(|c| delay::has_pending(c, index_id))?
        {
            return Ok(None);
        }
        let pending = Pending {
            pending_id: 0,
            mutation_id: mutation_id(),
            kind: kind.to_owned(),
            tenant: self.tenant().map(str::to_owned),
            payload: payload()?,
        };
        self.write_tx(|tx, row| Ok(delay::enqueue(tx, row.index_id, wait, &pending)?))?;
        Ok(Some(MutationResult {
            mutation_id: pending.mutation_id,
        }))
    }

    /// Applies the queued writes that are due, oldest first (see [`crate::vectorize::delay`]).
    pub(super) fn drain_due(&self) -> Result<()> {
        let index_id = self.row.index_id;
        let engine = &self.shared.vectors;
        loop {
            let now = delay::now_ms();
            // Known empty (or not due) since no transaction committed: no SQL.
            if engine.queue_idle(index_id, now) {
                return Ok(());
            }
            let moment = engine.moment();
            // On a pooled reader, so that queries do not queue on the admin connection.
            let due = self.shared.read_tx(|tx| {
                let due = delay::next_due(tx, index_id, now)?;
                if due.is_none() {
                    let earliest = store::earliest_pending_due(tx, index_id)?;
                    engine.queue_seen(index_id, moment, earliest);
                }
                Ok(due)
            })?;
            let Some(p) = due else {
                return Ok(());
            };
            // Applied as the caller that queued it, so its namespace rules hold.
            let applier = VectorIndex {
                shared: Arc::clone(&self.shared),
                row: self.row.clone(),
                caller: p.tenant.clone().map_or(Caller::Admin, |t| {
                    Caller::Scoped(Arc::new(QueuedWrite { tenant: t }))
                }),
                options: IndexOptions::default(),
            };
            match applier.apply_pending(&p) {
                Ok(()) => {}
                Err(e) if delay::is_already_applied(&e) => {}
                Err(_) => self
                    .shared
                    .admin
                    .internal(|c| delay::drop_failed(c, p.pending_id))?,
            }
        }
    }

    pub(super) fn apply_pending(&self, p: &Pending) -> Result<()> {
        if p.kind == "delete" {
            let ids: Vec<String> = serde_json::from_str(&p.payload)?;
            self.apply_delete(&ids, Some(p))?;
        } else {
            let upsert = p.kind == "upsert";
            let vectors: Vec<Vector> = serde_json::from_str(&p.payload)?;
            let accepted = self.validate_batch(&vectors, upsert)?;
            self.apply_write(accepted, upsert, Some(p))?;
        }
        Ok(())
    }

    /// Stores a validated batch in one transaction (removing its queue entry when it was
    /// queued, with the mutation id given then) and brings the in-memory state along.
    pub(super) fn apply_write(
        &self,
        accepted: Vec<StoredVector>,
        upsert: bool,
        pending: Option<&Pending>,
    ) -> Result<MutationResult> {
        let mid = pending.map_or_else(mutation_id, |p| p.mutation_id.clone());
        let now = crate::time::now_iso();
        let kind = if upsert { "upsert" } else { "insert" };
        let forced = self.forced_namespace();
        let batch_namespaces: BTreeSet<&str> = accepted
            .iter()
            .filter_map(|v| v.namespace.as_deref())
            .collect();
        let sealed_high = self.shared.vectors.highest_sealed_vid(self.row.index_id);
        let max_vectors = self.shared.vectors.max_vectors();
        let (row, (from_seq, seq, removed, added)) = self.write_tx(|tx, row| {
            if let Some(p) = pending {
                if !delay::take(tx, p.pending_id)? {
                    return Err(delay::already_applied());
                }
            }
            store::raise_next_vid(tx, row.index_id, sealed_high.saturating_add(1))?;
            // Whether the batch brings a namespace the index does not hold yet.
            let mut new_namespace = false;
            for ns in &batch_namespaces {
                if !store::namespace_exists(tx, row.index_id, ns)? {
                    new_namespace = true;
                    break;
                }
            }
            let seq = store::next_mutation(tx, row.index_id, kind, &mid, &now)?;
            let meta_indexes = store::metadata_indexes(tx, row.index_id)?;
            let mut touched: BTreeSet<String> = forced.map(str::to_owned).into_iter().collect();
            let mut removed: Vec<(u64, Option<String>)> = Vec::new();
            // (position in `accepted`, vid), in vid order.
            let mut added: Vec<(usize, u64)> = Vec::new();
            // One allocation for the batch: row `at` gets `first + at` (an insert that skips
            // an existing id leaves its vid unused; vids need only be unique and ascending).
            let first = store::allocate_vids(tx, row.index_id, accepted.len())?;
            for (at, v) in accepted.iter().enumerate() {
                let space = store::space_of(row.scope, v.namespace.as_deref());
                if let Some(old) = store::vector_in_space(tx, row.index_id, space, &v.id)? {
                    if !upsert {
                        continue;
                    }
                    store::delete_vector_with(tx, row.index_id, &old, seq)?;
                    touched.extend(old.namespace.clone());
                    removed.push((old.vid, old.namespace));
                }
                let vid = first + at as u64;
                store::insert_vector(tx, row.index_id, vid, v, space, seq, &meta_indexes)?;
                touched.extend(v.namespace.clone());
                added.push((at, vid));
            }
            // Vids are unique and start at 1, so the highest one bounds the vector count:
            // only an index that could be over the limit pays for an exact count.
            let highest = added.last().map_or(0, |&(_, vid)| vid);
            if usize::try_from(highest).unwrap_or(usize::MAX) > max_vectors {
                let count = store::count_vectors(tx, row.index_id)?;
                limits::check_vector_count(
                    &row.name,
                    usize::try_from(count).unwrap_or(usize::MAX),
                    max_vectors,
                )?;
            }
            if new_namespace
                && store::count_namespaces(tx, row.index_id, limits::MAX_NAMESPACES)?
                    > limits::MAX_NAMESPACES
            {
                return Err(verr(
                    codes::TOO_MANY_NAMESPACES,
                    format!(
                        "an index holds at most {} namespaces",
                        limits::MAX_NAMESPACES
                    ),
                ));
            }
            store::touch_namespaces(
                tx,
                row.index_id,
                touched.iter().map(String::as_str),
                seq,
                &mid,
                &now,
            )?;
            self.shared.vectors.announce(row.index_id, seq);
            Ok((row.seq, seq, removed, added))
        })?;
        let change = Change {
            from_seq,
            seq,
            removed,
            added: added
                .iter()
                .map(|&(at, vid)| {
                    let v = &accepted[at];
                    Added {
                        vid,
                        id: &v.id,
                        namespace: v.namespace.as_deref(),
                        values: &v.values,
                        metadata: v.metadata.as_ref(),
                    }
                })
                .collect(),
            meta_indexes: None,
        };
        self.shared.vectors.apply(&row, &change);
        Ok(MutationResult { mutation_id: mid })
    }

    /// Deletes vectors by id; unknown ids are ignored. At most 100 ids. On a private index a
    /// tenant deletes only in its own namespace; the admin surface deletes the id in every
    /// namespace that holds it.
    pub fn delete_by_ids(&self, ids: &[String]) -> Result<MutationResult> {
        self.drain_due()?;
        self.check_write()?;
        limits::check_delete_ids(ids.len())?;
        if let Some(queued) = self.maybe_enqueue("delete", || Ok(serde_json::to_string(ids)?))? {
            return Ok(queued);
        }
        self.apply_delete(ids, None)
    }

    pub(super) fn apply_delete(
        &self,
        ids: &[String],
        pending: Option<&Pending>,
    ) -> Result<MutationResult> {
        let mid = pending.map_or_else(mutation_id, |p| p.mutation_id.clone());
        let now = crate::time::now_iso();
        let forced = self.forced_namespace();
        let (row, (from_seq, seq, removed)) = self.write_tx(|tx, row| {
            if let Some(p) = pending {
                if !delay::take(tx, p.pending_id)? {
                    return Err(delay::already_applied());
                }
            }
            let seq = store::next_mutation(tx, row.index_id, "delete", &mid, &now)?;
            let mut touched: BTreeSet<String> = forced.map(str::to_owned).into_iter().collect();
            let mut removed: Vec<(u64, Option<String>)> = Vec::new();
            for id in ids {
                for old in self.lookup(tx, id)? {
                    store::delete_vector_with(tx, row.index_id, &old, seq)?;
                    touched.extend(old.namespace.clone());
                    removed.push((old.vid, old.namespace));
                }
            }
            store::touch_namespaces(
                tx,
                row.index_id,
                touched.iter().map(String::as_str),
                seq,
                &mid,
                &now,
            )?;
            self.shared.vectors.announce(row.index_id, seq);
            Ok((row.seq, seq, removed))
        })?;
        let change = Change {
            from_seq,
            seq,
            removed,
            added: Vec::new(),
            meta_indexes: None,
        };
        self.shared.vectors.apply(&row, &change);
        Ok(MutationResult { mutation_id: mid })
    }
}
