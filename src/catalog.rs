//! Which tables a tenant session may reach, and how.
//!
//! The bundled schema's 30 tables are classified here once. Tables an application adds
//! with its own migrations are classified by shape (see [`classify`]): a table with a
//! `tenant_id` column is private to each tenant, any other table is shared read-only.

/// How a tenant session may reach a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Rows carry `tenant_id`; a session reads and writes only its own rows.
    TenantPrivate,
    /// Rows carry `tenant_id`; a session reads only its own rows and writes none
    /// (the engine writes them: the tenant row itself, the audit trail).
    TenantReadOnly,
    /// Readable by every tenant, writable by none.
    Shared,
    /// A cross-tenant rollup: readable by every tenant only where `tenant_count >= 5`.
    SharedKAnonymous,
    /// Never reachable from a tenant session (wrapped keys, bookkeeping).
    Hidden,
}

/// The smallest number of distinct tenants behind a shared rollup row for a tenant to see it.
pub const K_ANONYMITY: i64 = 5;

/// One table of the bundled schema and how tenants reach it.
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    /// The table's name in `main`.
    pub name: &'static str,
    /// How a tenant session reaches it.
    pub access: Access,
    /// Columns a tenant session never sees (they are left out of its view of the table).
    pub hidden_columns: &'static [&'static str],
}

const fn spec(name: &'static str, access: Access) -> TableSpec {
    TableSpec {
        name,
        access,
        hidden_columns: &[],
    }
}

/// The 30 tables of the bundled migrations, in migration order.
pub const BUNDLED_TABLES: &[TableSpec] = &[
    // 0001 core
    spec("tenants", Access::TenantReadOnly),
    spec("users", Access::TenantPrivate),
    spec("brand_profiles", Access::TenantPrivate),
    // 0002 content generation
    spec("brand_assets", Access::TenantPrivate),
    spec("campaigns", Access::TenantPrivate),
    TableSpec {
        name: "skills",
        access: Access::Shared,
        hidden_columns: &["origin_tenant_id"],
    },
    spec("guards", Access::Shared),
    spec("content_requests", Access::TenantPrivate),
    spec("content_drafts", Access::TenantPrivate),
    spec("revision_events", Access::TenantPrivate),
    spec("workflow_runs", Access::TenantPrivate),
    spec("knowledge_documents", Access::TenantPrivate),
    spec("knowledge_chunks", Access::TenantPrivate),
    // 0003 publishing
    spec("platform_connections", Access::TenantPrivate),
    spec("scheduled_posts", Access::TenantPrivate),
    spec("published_posts", Access::TenantPrivate),
    // 0004 analytics, metrics and benchmarks
    spec("post_metrics", Access::TenantPrivate),
    spec("engagement_events", Access::TenantPrivate),
    spec("conversions", Access::TenantPrivate),
    spec("experiments", Access::TenantPrivate),
    spec("experiment_variants", Access::TenantPrivate),
    spec("skill_metrics_daily", Access::SharedKAnonymous),
    spec("guard_metrics_daily", Access::SharedKAnonymous),
    spec("platform_benchmarks", Access::SharedKAnonymous),
    spec("tenant_metrics_daily", Access::TenantPrivate),
    spec("campaign_metrics_daily", Access::TenantPrivate),
    spec("api_usage_daily", Access::TenantPrivate),
    // 0005 security and audit
    spec("audit_logs", Access::TenantReadOnly),
    spec("tenant_keys", Access::Hidden),
    spec("role_permissions", Access::Shared),
];

/// Finds a bundled table by name (case-insensitive, as SQLite resolves names).
pub fn bundled(name: &str) -> Option<&'static TableSpec> {
    BUNDLED_TABLES
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(name))
}

/// Classifies any table: bundled tables as listed; the migrations bookkeeping table, the
/// vector engine's `d1vec_` tables and SQLite's internal tables as hidden; an application's own table as tenant-private when it
/// has a `tenant_id` column and shared read-only otherwise.
pub fn classify(name: &str, has_tenant_id: bool) -> Access {
    if let Some(spec) = bundled(name) {
        return spec.access;
    }
    let lower = name.to_ascii_lowercase();
    if lower == "d1_migrations"
        || lower.starts_with("sqlite_")
        || lower.starts_with("_cf_")
        || lower.starts_with("d1vec_")
    {
        return Access::Hidden;
    }
    if has_tenant_id {
        Access::TenantPrivate
    } else {
        Access::Shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_tables_each_named_once() {
        let mut names: Vec<_> = BUNDLED_TABLES.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 30);
    }

    #[test]
    fn unknown_tables_classified_by_shape() {
        assert_eq!(classify("notes", true), Access::TenantPrivate);
        assert_eq!(classify("countries", false), Access::Shared);
        assert_eq!(classify("D1_MIGRATIONS", false), Access::Hidden);
        assert_eq!(classify("d1vec_vectors", false), Access::Hidden);
        assert_eq!(classify("Campaigns", false), Access::TenantPrivate);
    }
}
