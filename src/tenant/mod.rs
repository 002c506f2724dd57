//! Tenant sessions: SQL that reads and writes only one tenant's rows.
//!
//! A [`TenantSession`] owns its own SQLite connection. When it opens, it builds views and
//! triggers in that connection's `temp` schema that shadow every table (`tenant::guard`), then
//! puts the connection under an authorizer that lets base tables be reached only through
//! them (`sql::auth`, see ARCHITECTURE.md). Isolation therefore does not depend on the caller writing
//! `WHERE tenant_id = ?`: the application's SQL runs unchanged and sees one tenant.

pub(crate) mod guard;
pub mod policy;
pub mod quota;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;

use crate::db::Shared;
use crate::error::{Error, Result};
use crate::sql::auth::{AuthState, EngineTriggers};
use crate::sql::conn::{ScopeRefresh, SqlConn};
use crate::sql::quote_ident;
use crate::sql::statement::{self, Statement};
use crate::sql::{D1Result, ExecResult};
use policy::{Role, Scope, UserRole};
use quota::Bucket;

/// The longest tenant id accepted, in bytes.
pub const MAX_TENANT_ID_BYTES: usize = 128;

/// Checks a tenant id: 1 to 128 bytes, no control characters.
pub fn validate_tenant_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_TENANT_ID_BYTES {
        return Err(Error::invalid(
            "tenant id",
            format!("must be 1 to {MAX_TENANT_ID_BYTES} bytes, got {}", id.len()),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(Error::invalid(
            "tenant id",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A connection scoped to one tenant. Everything run through it sees only that tenant's
/// rows of tenant-owned tables, the shared tables, and the shared rollups where at least
/// [`crate::catalog::K_ANONYMITY`] tenants stand behind a row. Anything that would reach
/// further fails with [`Error::TenantViolation`] and changes nothing.
///
/// ```
/// # fn main() -> d1vec::Result<()> {
/// let db = d1vec::Database::open_in_memory()?;
/// db.apply_migrations(&d1vec::sql::migrate::bundled())?;
/// db.prepare("INSERT INTO tenants (tenant_id, name, plan, region) VALUES (?1, ?2, 'pro', 'eu')")
///     .bind(["t_acme", "Acme"]).run()?;
/// let acme = db.tenant("t_acme")?;
/// acme.prepare("INSERT INTO campaigns (campaign_id, name) VALUES ('c1', 'Launch')").run()?;
/// let rows = acme.prepare("SELECT tenant_id, name FROM campaigns").all()?;
/// assert_eq!(rows.results[0]["tenant_id"], "t_acme");
/// assert!(acme.prepare("SELECT * FROM main.campaigns").all().is_err());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TenantSession {
    tenant: String,
    conn: SqlConn,
    shared: Arc<Shared>,
    scope: Arc<Scope>,
}

impl TenantSession {
    pub(crate) fn open(shared: Arc<Shared>, tenant: &str) -> Result<Self> {
        Self::open_as(shared, tenant, None)
    }

    fn open_as(shared: Arc<Shared>, tenant: &str, user: Option<&str>) -> Result<Self> {
        validate_tenant_id(tenant)?;
        let secret =
            guard::new_secret().map_err(|e| Error::invalid("randomness", e.to_string()))?;
        let schema = format!("d1vec_{secret}");
        let mut conn = SqlConn::open_hidden(&shared.location, &shared.options, &schema)?;
        conn.set_tenant_name(tenant);
        let plan = conn.internal_with(|c| require_tenant(c, &schema, tenant))?;
        let service = Scope::service(tenant, plan, shared.quotas.clone());
        let scope = Arc::new(match user {
            None => service,
            Some(user) => conn.internal_with(|c| resolve_user(c, &schema, &service, user))?,
        });
        // The guard's triggers refuse through this function, which hands the executor the
        // typed error (`guard::Refusal`) instead of text to be recognised.
        let raised = Arc::clone(&conn.raised);
        let who = tenant.to_owned();
        let refuse_name = format!("d1vec_{secret}_refuse");
        conn.internal(|c| {
            c.create_scalar_function(
                refuse_name.as_str(),
                2,
                FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DIRECTONLY,
                move |ctx| {
                    let kind: String = ctx.get(0)?;
                    let what: String = ctx.get(1)?;
                    let error = guard::Refusal::error(&who, &kind, what);
                    let text = error.to_string();
                    *raised.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
                    Err::<i64, _>(rusqlite::Error::UserFunctionError(text.into()))
                },
            )
        })?;
        let state = Arc::clone(&conn.auth);
        let note_name = format!("d1vec_{secret}_note");
        conn.internal(|c| {
            c.create_scalar_function(
                note_name.as_str(),
                1,
                FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DIRECTONLY,
                move |ctx| {
                    let rowid: i64 = ctx.get(0)?;
                    state.noted_rowid.store(rowid, Ordering::SeqCst);
                    state.noted.store(true, Ordering::SeqCst);
                    Ok(rowid)
                },
            )
        })?;
        // `vectorize_query` answering as this tenant, as `TenantSession::vectorize` does.
        crate::vectorize::sql_function::register(
            &conn,
            Arc::downgrade(&shared),
            crate::vectorize::index::Caller::Scoped(scope.clone()),
        )?;
        // Seals tokens this session writes (`crate::keys::fields`).
        conn.internal_with(|c| {
            crate::keys::fields::register(
                c,
                &shared.keys,
                &conn.raised,
                &format!("d1vec_{secret}_"),
                &schema,
            )
        })?;
        conn.auth
            .set_engine_triggers(Arc::clone(&shared.text_triggers));
        let views = SessionScope {
            tenant: tenant.to_owned(),
            secret,
            schema,
            auth: Arc::clone(&conn.auth),
            text_triggers: Arc::clone(&shared.text_triggers),
            built: Mutex::new(None),
            scope: Arc::clone(&scope),
        };
        conn.internal_with(|c| views.refresh(c).map(|_| ()))?;
        conn.set_scope(Box::new(views));
        Ok(TenantSession {
            tenant: tenant.to_owned(),
            conn,
            shared,
            scope,
        })
    }

    /// This tenant's session acting as `user`: the user's role (`users.role`) decides what
    /// the session may do, by the permissions `role_permissions` gives that role.
    ///
    /// Refused with [`Error::UserRefused`] when `user` is not a user of this tenant (another
    /// tenant's user reads as unknown) or is not `active` (`invited`, `disabled`). A session
    /// opened without a user ([`crate::Database::tenant`]) acts as the tenant's service
    /// principal, which holds every permission.
    ///
    /// ```
    /// # fn main() -> d1vec::Result<()> {
    /// let db = d1vec::Database::open_in_memory()?;
    /// db.apply_migrations(&d1vec::sql::migrate::bundled())?;
    /// db.exec("INSERT INTO tenants (tenant_id, name) VALUES ('t1', 'One');
    ///          INSERT INTO users (user_id, tenant_id, email, role) VALUES ('u1', 't1', 'v@x.io', 'viewer')")?;
    /// let viewer = db.tenant("t1")?.as_user("u1")?;
    /// assert!(viewer.require("audit.read").is_err());
    /// assert!(viewer.prepare("SELECT * FROM audit_logs").all().is_err());
    /// # Ok(()) }
    /// ```
    pub fn as_user(self, user: &str) -> Result<TenantSession> {
        TenantSession::open_as(Arc::clone(&self.shared), &self.tenant, Some(user))
    }

    /// Refuses, with [`Error::Forbidden`] (403 in the CLI's JSON), a session whose user lacks
    /// `permission` (see [`policy::permissions`]); the service principal holds all. Library
    /// operations call it before they change anything (reading a secret, rotating keys).
    pub fn require(&self, permission: &str) -> Result<()> {
        self.scope.require(permission)
    }

    /// The session's scope: who it acts as and what it may do.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The tenant this session is scoped to.
    pub fn tenant_id(&self) -> &str {
        &self.tenant
    }

    /// Creating a vector index belongs to the admin surface: always refused with
    /// [`Error::TenantViolation`] (see [`Scope::database_admin`]).
    pub fn create_index(
        &self,
        _request: &crate::vectorize::CreateIndex,
    ) -> Result<crate::vectorize::types::IndexDescription> {
        Err(self.scope.database_admin("creating vector indexes"))
    }

    /// Deleting a vector index belongs to the admin surface: always refused with
    /// [`Error::TenantViolation`] (see [`Scope::database_admin`]).
    pub fn delete_index(&self, _name: &str) -> Result<()> {
        Err(self.scope.database_admin("deleting vector indexes"))
    }

    /// Exporting data: needs [`policy::permissions::DATA_EXPORT`] ([`Error::Forbidden`]
    /// otherwise). The file holds every tenant, so a session holding the permission is then
    /// refused it with [`Error::TenantViolation`]: a tenant's own rows come from
    /// [`TenantSession::export_data`]; the admin surface exports the file
    /// ([`crate::Database::export_sql`]).
    pub fn export_sql(
        &self,
        _options: &crate::sql::export::ExportOptions,
        _out: &mut dyn std::io::Write,
    ) -> Result<u64> {
        self.scope.require(policy::permissions::DATA_EXPORT)?;
        Err(self.scope.database_admin("a whole-database export"))
    }

    /// GDPR's right of access: every row this tenant owns, as
    /// `{"tenant_id": …, "tables": {"<table>": [row, …], …}}`, read through this session's
    /// own scope (so nothing of another tenant can appear). Tables are the tenant-owned ones
    /// ([`crate::catalog::Access::TenantPrivate`] and `TenantReadOnly`), in name order;
    /// sealed tokens appear sealed. Needs [`policy::permissions::DATA_EXPORT`].
    pub fn export_data(&self) -> Result<serde_json::Value> {
        self.scope.require(policy::permissions::DATA_EXPORT)?;
        let mut tables = serde_json::Map::new();
        for table in owned_tables(&self.shared)? {
            let rows = self
                .prepare(&format!("SELECT * FROM {}", quote_ident(&table)))
                .all()?;
            tables.insert(table, serde_json::Value::from(rows.results));
        }
        Ok(serde_json::json!({ "tenant_id": self.tenant, "tables": tables }))
    }

    /// GDPR's right to erasure: deletes the tenant's vectors from every private index, then
    /// the tenant's row and, in the same transaction, every row of a tenant-owned table (the
    /// bundled schema cascades from `tenants`; an application's own tables are cleared by
    /// `tenant_id`), its data keys included, so a backup's sealed tokens can no longer be
    /// opened with this database's keys. Needs [`policy::permissions::DATA_ERASE`]; a
    /// refusal changes nothing. Returns how many rows and vectors were deleted.
    pub fn erase(self) -> Result<Erasure> {
        self.scope.require(policy::permissions::DATA_ERASE)?;
        let mut vectors = 0u64;
        for description in self.list_indexes()? {
            let index = self.vectorize(&description.name)?;
            if index.scope() != crate::vectorize::Scope::Private {
                continue;
            }
            let mut left = u64::MAX;
            loop {
                let page = index.list_vectors(Some(100), None)?;
                // Each round must shrink the namespace, or erasure would never end.
                if page.count == 0 || page.total_count >= left {
                    break;
                }
                left = page.total_count;
                let ids: Vec<String> = page.vectors.into_iter().map(|v| v.id).collect();
                index.delete_by_ids(&ids)?;
                vectors += ids.len() as u64;
            }
        }
        let tenant = self.tenant.clone();
        let tables = all_tenant_tables(&self.shared)?;
        let rows = self.shared.admin.internal_tx(|tx| {
            let mut rows = 0u64;
            for table in &tables {
                if table.eq_ignore_ascii_case("tenants") {
                    continue;
                }
                rows += tx.execute(
                    &format!(
                        "DELETE FROM main.{} WHERE tenant_id = ?1",
                        quote_ident(table)
                    ),
                    [&tenant],
                )? as u64;
            }
            rows += tx.execute("DELETE FROM main.tenants WHERE tenant_id = ?1", [&tenant])? as u64;
            Ok(rows)
        })?;
        Ok(Erasure { rows, vectors })
    }

    /// What this session shares with its database (cursor signing reaches the key here).
    pub(crate) fn shared(&self) -> &crate::db::Shared {
        &self.shared
    }

    /// Prepares a statement, as D1's `db.prepare(sql)`.
    pub fn prepare(&self, sql: &str) -> Statement<'_> {
        Statement::new(&self.conn, sql)
    }

    /// Runs statements atomically, as D1's `db.batch([...])`.
    pub fn batch(&self, statements: &[Statement<'_>]) -> Result<Vec<D1Result>> {
        statement::batch(&self.conn, statements)
    }

    /// Runs a script of statements atomically, as D1's `db.exec(sql)`.
    pub fn exec(&self, script: &str) -> Result<ExecResult> {
        statement::exec(&self.conn, script)
    }

    /// Starts a D1 session on this tenant's scope (D1's `withSession`). Its bookmarks count
    /// this tenant's own commits only, so they reveal nothing of other tenants' writes; a
    /// bookmark of the database or of another tenant is refused.
    pub fn with_session(
        &self,
        start: impl Into<crate::sql::SessionConstraint>,
    ) -> Result<crate::sql::D1Session<'_>> {
        crate::sql::D1Session::start(&self.conn, start.into())
    }

    /// Refused: D1's `dump()` returns the whole database file, which holds every tenant's
    /// rows. Always [`Error::TenantViolation`].
    pub fn dump(&self) -> Result<Vec<u8>> {
        Err(Error::TenantViolation {
            tenant: self.tenant.clone(),
            object: "dump() (the whole database file)".into(),
        })
    }

    /// Runs a script atomically and returns every statement's result (`d1 execute`).
    pub fn execute(&self, script: &str) -> Result<Vec<D1Result>> {
        statement::execute_script(&self.conn, script)
    }

    /// Rotates this tenant's data key (see [`crate::Database::rotate_tenant_key`]) after
    /// checking the permission `keys.rotate`; a refusal changes nothing.
    pub fn rotate_key(&self) -> Result<crate::keys::Rotation> {
        self.require(policy::permissions::KEYS_ROTATE)?;
        crate::keys::rotate::rotate_tenant(&self.shared, &self.tenant)
    }

    /// Opens a sealed token of one of this tenant's `platform_connections` rows. Checks the
    /// permission `connections.read_secret` and appends an audit row
    /// (`connections.read_secret`, with outcome `success` or `error`) in the same
    /// transaction. Fails with [`crate::keys::KeyError::Tampered`] when the stored value was
    /// altered or moved from another row, column or tenant.
    pub fn open_secret(
        &self,
        connection_id: &str,
        field: crate::keys::Field,
    ) -> Result<crate::keys::Secret<String>> {
        self.require("connections.read_secret")?;
        let actor = match self.scope.principal().user() {
            Some(u) => format!("user:{}", u.user_id),
            None => format!("tenant:{}", self.tenant),
        };
        crate::keys::access::open_secret(
            &self.conn,
            &self.shared.keys,
            &self.tenant,
            &actor,
            connection_id,
            field,
        )
    }

    /// The vector index `name` as this tenant sees it: on a private index, confined to the
    /// namespace named after the tenant; a shared index is read-only.
    pub fn vectorize(&self, name: &str) -> Result<crate::vectorize::VectorIndex> {
        crate::vectorize::manage::open_index(
            &self.shared,
            name,
            crate::vectorize::index::Caller::Scoped(self.scope.clone()),
        )
    }

    /// Every vector index, by name.
    pub fn list_indexes(&self) -> Result<Vec<crate::vectorize::types::IndexDescription>> {
        crate::vectorize::manage::list_indexes(&self.shared)
    }

    /// Hybrid search of this tenant's rows: keywords (FTS5, BM25 over the tenant's rows) and
    /// vector similarity, filtered and fused by Reciprocal Rank Fusion; best first. The
    /// query vector is `query.vector`, or `query.text` through `embedder`. See
    /// [`crate::search`] for the steps, defaults and a worked example.
    pub fn hybrid_search(
        &self,
        query: &crate::search::HybridQuery,
        embedder: Option<&dyn crate::embed::Embedder>,
    ) -> Result<Vec<crate::search::HybridHit>> {
        crate::search::hybrid_search(self, &self.shared, query, embedder)
    }

    /// Keyword-only search of this tenant's rows in the text index of `source` (a table):
    /// at most `limit` rows, best BM25 first (ties by key). `query` as in
    /// [`crate::search::query`].
    pub fn text_search(
        &self,
        source: &str,
        query: &str,
        limit: usize,
    ) -> Result<Vec<crate::search::TextHit>> {
        self.scope.admit(Bucket::Queries)?;
        crate::search::text_search(&self.shared, &self.tenant, source, query, limit)
    }
}

/// Refuses a tenant the database does not know: a session opens only for a row of
/// `tenants`. Returns the tenant's plan (`tenants.plan`; empty where the table has none).
fn require_tenant(conn: &Connection, schema: &str, tenant: &str) -> Result<String> {
    let schema = quote_ident(schema);
    let has_table: bool = conn.query_row(
        &format!("SELECT EXISTS (SELECT 1 FROM {schema}.sqlite_schema WHERE type = 'table' AND name = 'tenants')"),
        [],
        |r| r.get(0),
    )?;
    if !has_table {
        return Err(Error::invalid(
            "tenant id",
            format!("`{tenant}`: the database has no `tenants` table (apply the migrations first)"),
        ));
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT * FROM {schema}.tenants WHERE tenant_id = ?1"
    ))?;
    let mut rows = stmt.query([tenant])?;
    let Some(row) = rows.next()? else {
        return Err(Error::invalid(
            "tenant id",
            format!("`{tenant}` is not a row of `tenants`"),
        ));
    };
    Ok(row
        .get::<_, Option<String>>("plan")
        .ok()
        .flatten()
        .unwrap_or_default())
}

/// Resolves `user` inside `service`'s tenant: its role from `users`, that role's
/// permissions from `role_permissions`.
fn resolve_user(conn: &Connection, schema: &str, service: &Scope, user: &str) -> Result<Scope> {
    let tenant = service.principal().tenant();
    let refused = |reason: &str| Error::UserRefused {
        tenant: tenant.to_owned(),
        user: user.chars().take(MAX_TENANT_ID_BYTES).collect(),
        reason: reason.to_owned(),
    };
    if user.is_empty() || user.len() > MAX_TENANT_ID_BYTES {
        return Err(refused("not a user of this tenant"));
    }
    let schema = quote_ident(schema);
    let has = |table: &str| -> Result<bool> {
        Ok(conn.query_row(
            &format!("SELECT EXISTS (SELECT 1 FROM {schema}.sqlite_schema WHERE type = 'table' AND name = ?1)"),
            [table],
            |r| r.get(0),
        )?)
    };
    if !has("users")? || !has("role_permissions")? {
        return Err(refused(
            "the database has no `users` or `role_permissions` table (apply the migrations first)",
        ));
    }
    let found: Option<(String, String)> = conn
        .query_row(
            &format!(
                "SELECT role, status FROM {schema}.users WHERE tenant_id = ?1 AND user_id = ?2"
            ),
            [tenant, user],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    let Some((role, status)) = found else {
        return Err(refused("not a user of this tenant"));
    };
    if status != "active" {
        return Err(refused(&format!("the user is {status}")));
    }
    let role = Role::parse(&role).ok_or_else(|| refused("the user has no known role"))?;
    let mut stmt = conn.prepare(&format!(
        "SELECT permission FROM {schema}.role_permissions WHERE role = ?1"
    ))?;
    let granted = stmt
        .query_map([role.as_str()], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(service.for_user(
        UserRole {
            user_id: user.to_owned(),
            role,
        },
        granted,
    ))
}

/// A session's scope over its connection: the secret names, and the schema version its
/// stand-ins, views and triggers were built for (see [`guard::build_scope`]).
#[derive(Debug)]
struct SessionScope {
    tenant: String,
    secret: String,
    schema: String,
    auth: Arc<AuthState>,
    text_triggers: Arc<EngineTriggers>,
    built: Mutex<Option<i64>>,
    scope: Arc<Scope>,
}

impl SessionScope {
    /// Drops every object a previous build made: the views and triggers in `temp`, the
    /// stand-ins in `main` (SQLite's own tables stay; they are empty and rebuilt alike).
    fn tear_down(conn: &Connection) -> Result<()> {
        let mut drops = String::new();
        {
            let mut stmt = conn.prepare(
                "SELECT 'DROP VIEW IF EXISTS temp.' || quote(name) || ';' FROM temp.sqlite_schema WHERE type = 'view'
                 UNION ALL
                 SELECT 'DROP TABLE IF EXISTS main.' || quote(name) || ';' FROM main.sqlite_schema
                   WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                drops.push_str(&row.get::<_, String>(0)?);
                drops.push('\n');
            }
        }
        conn.execute_batch(&drops)?;
        Ok(())
    }
}

impl ScopeRefresh for SessionScope {
    fn refresh(&self, conn: &Connection) -> Result<bool> {
        let version: i64 = conn
            .prepare_cached(&format!(
                "PRAGMA {}.schema_version",
                quote_ident(&self.schema)
            ))?
            .query_row([], |r| r.get(0))?;
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if *built == Some(version) {
            return Ok(false);
        }
        Self::tear_down(conn)?;
        let script = guard::build_scope(conn, &self.tenant, &self.secret, &self.schema)?;
        conn.execute_batch(&script.sql)?;
        conn.execute_batch(&crate::keys::fields::trigger_sql(
            conn,
            &self.schema,
            &format!("d1vec_{}_", self.secret),
        )?)?;
        // The text indexes' triggers fire inside this session's writes (crate::search).
        self.text_triggers
            .extend(crate::search::fts::engine_trigger_names(
                conn,
                &self.schema,
            )?);
        let views = guard::SessionViews::new(&self.secret, &self.schema, script);
        self.auth.set_tenant(Arc::new(policy::SqlScope::new(
            views,
            Arc::clone(&self.scope),
        )));
        *built = Some(version);
        Ok(true)
    }

    fn invalidate(&self) {
        *self.built.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn admit(&self, writes: bool) -> Result<()> {
        self.scope.admit(if writes {
            Bucket::Writes
        } else {
            Bucket::Queries
        })
    }
}

/// What [`TenantSession::erase`] deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erasure {
    /// Rows deleted from tables with a `tenant_id` (cascaded rows not counted twice).
    pub rows: u64,
    /// Vectors deleted from the tenant's namespaces of private indexes.
    pub vectors: u64,
}

/// Every table of the database with a `tenant_id` column, in name order.
fn all_tenant_tables(shared: &Shared) -> Result<Vec<String>> {
    shared.admin.internal(|c| {
        let mut stmt = c.prepare(
            "SELECT m.name FROM main.sqlite_schema AS m
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
               AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) WHERE name = 'tenant_id')
             ORDER BY m.name",
        )?;
        let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
        names.collect()
    })
}

/// The tables a tenant owns rows of and may read: tenant-private and tenant-read-only.
fn owned_tables(shared: &Shared) -> Result<Vec<String>> {
    use crate::catalog::{classify, Access};
    Ok(all_tenant_tables(shared)?
        .into_iter()
        .filter(|t| {
            matches!(
                classify(t, true),
                Access::TenantPrivate | Access::TenantReadOnly
            )
        })
        .collect())
}
