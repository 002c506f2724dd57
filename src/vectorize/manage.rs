//! Creating, listing and deleting vector indexes, and the three application indexes.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::error::{codes, VectorizeError};
use super::index::{describe_row, not_found, Caller, VectorIndex};
use super::limits;
use super::store::{self, Scope, TablesFound};
use super::types::{IndexDescription, Preset};
use crate::db::Shared;
use crate::error::{Error, Result};
use crate::index::Metric;

/// What to create: Vectorize's `{name, description, config: {dimensions, metric} | {preset}}`
/// plus d1vec's tenant scope.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateIndex {
    /// The index name (at most 64 bytes).
    pub name: String,
    /// A free-text description.
    pub description: Option<String>,
    /// Dimensions (1..=1536) and metric.
    pub dimensions: usize,
    /// The distance metric.
    pub metric: Metric,
    /// Private (each tenant confined to its namespace) or shared (read by all tenants).
    pub scope: Scope,
}

impl CreateIndex {
    /// A shared index with explicit dimensions and metric.
    pub fn new(name: &str, dimensions: usize, metric: Metric) -> Self {
        CreateIndex {
            name: name.to_owned(),
            description: None,
            dimensions,
            metric,
            scope: Scope::Shared,
        }
    }

    /// A shared index whose dimensions and metric come from a model preset.
    pub fn from_preset(name: &str, preset: Preset) -> Self {
        Self::new(name, preset.dimensions(), preset.metric())
    }

    /// The same request with another scope.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }
}

/// One of the application's vector indexes, created with the bundled migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppIndex {
    /// Its name.
    pub name: &'static str,
    /// Its dimensions.
    pub dimensions: usize,
    /// Its metric.
    pub metric: Metric,
    /// Its tenant scope.
    pub scope: Scope,
}

/// `nds-brand-voice` (private), `nds-skills` (shared) and `nds-knowledge` (private).
pub const APP_INDEXES: &[AppIndex] = &[
    AppIndex {
        name: "nds-brand-voice",
        dimensions: 1536,
        metric: Metric::Cosine,
        scope: Scope::Private,
    },
    AppIndex {
        name: "nds-skills",
        dimensions: 1024,
        metric: Metric::Cosine,
        scope: Scope::Shared,
    },
    AppIndex {
        name: "nds-knowledge",
        dimensions: 1536,
        metric: Metric::Cosine,
        scope: Scope::Private,
    },
];

/// Makes sure the vector tables exist at a format version this code reads, once per
/// process: creates them when missing, upgrades an older version in place (one write
/// transaction, retried while busy), and refuses a newer one without changing anything.
/// Only a database that needs creating or upgrading is written to.
fn ensure_schema(shared: &Shared) -> Result<()> {
    if shared.vectors.schema_ready.load(Ordering::Acquire) {
        return Ok(());
    }
    let found = shared.admin.internal(store::tables_found)?;
    if !matches!(found, TablesFound::Version(v) if store::READABLE_VERSIONS.contains(&v)) {
        store::retry_busy(shared.options.busy_timeout, || {
            shared.admin.internal_tx(|tx| {
                // Another process may have created or upgraded them since the look above.
                match store::tables_found(tx)? {
                    TablesFound::Missing => store::create_tables(tx)?,
                    TablesFound::Version(v) if store::READABLE_VERSIONS.contains(&v) => {}
                    TablesFound::Version(v)
                        if (store::OLDEST_UPGRADABLE..store::TABLES_VERSION).contains(&v) =>
                    {
                        store::upgrade_from_v1(tx)?
                    }
                    TablesFound::Version(v) => return Err(unreadable_version(v)),
                }
                Ok(())
            })
        })?;
    }
    shared.vectors.schema_ready.store(true, Ordering::Release);
    Ok(())
}

/// The error for vector tables at a format version this code neither reads nor upgrades.
fn unreadable_version(found: i64) -> Error {
    let reads = format!(
        "{}..={}",
        store::READABLE_VERSIONS.start(),
        store::READABLE_VERSIONS.end()
    );
    let why = if found > *store::READABLE_VERSIONS.end() {
        "it was written by a newer d1vec; open it with that version (nothing was changed)"
    } else {
        "it is not a version d1vec ever wrote (nothing was changed)"
    };
    Error::invalid(
        "vector tables",
        format!(
            "format version {found} (this d1vec reads {reads}, upgrades from {}): {why}",
            store::OLDEST_UPGRADABLE
        ),
    )
}

pub(crate) fn create_index(shared: &Shared, req: &CreateIndex) -> Result<IndexDescription> {
    ensure_schema(shared)?;
    limits::validate_index_name(&req.name)?;
    limits::validate_dimensions(req.dimensions)?;
    let now = crate::time::now_iso();
    store::retry_busy(shared.options.busy_timeout, || {
        shared.admin.internal_tx(|tx| {
            if store::index_by_name(tx, &req.name)?.is_some() {
                return Err(Error::Vectorize(VectorizeError::new(
                    codes::DUPLICATE_INDEX_NAME,
                    format!(
                        "vectorize.index.duplicate_name - Index name \"{}\"",
                        req.name
                    ),
                )));
            }
            store::create_index(
                tx,
                &req.name,
                req.description.as_deref(),
                req.dimensions,
                req.metric,
                req.scope,
                &now,
            )?;
            let row = store::index_by_name(tx, &req.name)?.ok_or_else(|| not_found(&req.name))?;
            shared.vectors.remove_files(row.index_id)?;
            Ok(describe_row(&row))
        })
    })
}

pub(crate) fn get_index(shared: &Shared, name: &str) -> Result<IndexDescription> {
    ensure_schema(shared)?;
    let row = shared
        .admin
        .internal(|c| store::index_by_name(c, name))?
        .ok_or_else(|| not_found(name))?;
    Ok(describe_row(&row))
}

pub(crate) fn list_indexes(shared: &Shared) -> Result<Vec<IndexDescription>> {
    ensure_schema(shared)?;
    let rows = shared.admin.internal(store::list_indexes)?;
    Ok(rows.iter().map(describe_row).collect())
}

pub(crate) fn delete_index(shared: &Shared, name: &str) -> Result<()> {
    ensure_schema(shared)?;
    store::retry_busy(shared.options.busy_timeout, || {
        shared.admin.internal_tx(|tx| {
            let row = store::index_by_name(tx, name)?.ok_or_else(|| not_found(name))?;
            store::delete_index(tx, row.index_id)?;
            super::delay::forget_index(tx, row.index_id)?;
            shared.vectors.remove_files(row.index_id)
        })
    })
}

pub(crate) fn open_index(shared: &Arc<Shared>, name: &str, caller: Caller) -> Result<VectorIndex> {
    ensure_schema(shared)?;
    VectorIndex::open(Arc::clone(shared), name, caller)
}

/// Creates whichever of the application indexes are missing; returns the names created.
pub(crate) fn ensure_app_indexes(shared: &Shared) -> Result<Vec<String>> {
    ensure_schema(shared)?;
    let mut created = Vec::new();
    for app in APP_INDEXES {
        let exists = shared
            .admin
            .internal(|c| store::index_by_name(c, app.name))?
            .is_some();
        if !exists {
            create_index(
                shared,
                &CreateIndex::new(app.name, app.dimensions, app.metric).scope(app.scope),
            )?;
            created.push(app.name.to_owned());
        }
    }
    Ok(created)
}
