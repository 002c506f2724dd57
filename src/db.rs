//! [`Database`]: one SQLite file opened the way D1 runs it, and the door to tenant sessions.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sql::conn::{location_path, ConnOptions, Location, SqlConn};
use crate::sql::export::{export_sql, ExportOptions};
use crate::sql::migrate::{self, Migration, MigrationStatus};
use crate::sql::statement::{self, Statement};
use crate::sql::{D1Result, ExecResult};
use crate::tenant::TenantSession;

/// An open d1vec database: the admin (unscoped) SQL surface, and [`Database::tenant`] for
/// scoped sessions.
///
/// ```
/// # fn main() -> d1vec::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let db = d1vec::Database::open(dir.path().join("app.sqlite"))?;
/// db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('hi')")?;
/// let first = db.prepare("SELECT body FROM notes WHERE id = ?1").bind([1]).first()?;
/// assert_eq!(first.unwrap()["body"], "hi");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Database {
    shared: Arc<Shared>,
}

/// What a database and all its tenant sessions share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) location: Location,
    pub(crate) options: ConnOptions,
    /// The unscoped connection; the vector engine stores through it in internal mode.
    pub(crate) admin: SqlConn,
    /// The vector indexes' in-memory state.
    pub(crate) vectors: crate::vectorize::engine::Engine,
    /// Idle connections for the engine's reads (searches), opened on demand.
    pub(crate) readers: std::sync::Mutex<Vec<SqlConn>>,
    /// The text indexes' trigger names, trusted by every session's authorizer.
    pub(crate) text_triggers: Arc<crate::sql::auth::EngineTriggers>,
    /// The key cursors are signed with, read (or made) on first use.
    cursor_key: std::sync::OnceLock<crate::sql::token::CursorKey>,
    /// The tenants' quota buckets, when quotas are on ([`DatabaseBuilder::quotas`]).
    pub(crate) quotas: Option<Arc<crate::tenant::quota::QuotaBook>>,
    /// The master and data keys sealed fields need (`crate::keys`).
    pub(crate) keys: Arc<crate::keys::KeyRing>,
}

/// Idle reader connections kept open; more are opened while more searches run at once.
const IDLE_READERS: usize = 8;

impl Shared {
    /// Runs a read-only engine call in a deferred transaction on a pooled connection of its
    /// own, so that searches run in parallel and never wait for the admin connection (which
    /// a statement calling into the engine may be holding).
    pub(crate) fn read_tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let idle = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => SqlConn::open(&self.location, &self.options)?,
        };
        let out = conn.internal_read_tx(f);
        let mut idle = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        out
    }

    /// The database's cursor key (`sql::token`): read on a reader connection, or, the first
    /// time any process needs one, created on the admin connection; then kept for the life
    /// of the `Database`. Must not be called while this thread holds the admin connection.
    pub(crate) fn cursor_key(&self) -> Result<&crate::sql::token::CursorKey> {
        if let Some(key) = self.cursor_key.get() {
            return Ok(key);
        }
        let key = match self.read_tx(|tx| crate::sql::token::read_key(tx))? {
            Some(key) => key,
            None => self
                .admin
                .internal_tx(|tx| crate::sql::token::create_key(tx))?,
        };
        // Two threads may both get here; they read the same stored key.
        Ok(self.cursor_key.get_or_init(|| key))
    }
}

/// The default busy timeout; see [`DatabaseBuilder::busy_timeout`].
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(35);

/// Options for opening a [`Database`]; see [`Database::builder`].
#[derive(Debug, Clone)]
pub struct DatabaseBuilder {
    options: ConnOptions,
    quotas: Option<crate::tenant::quota::Quotas>,
    key_provider: Option<Arc<dyn crate::keys::KeyProvider>>,
}

impl Default for DatabaseBuilder {
    fn default() -> Self {
        DatabaseBuilder {
            options: ConnOptions {
                busy_timeout: DEFAULT_BUSY_TIMEOUT,
                synchronous_full: false,
                limits: crate::sql::D1Limits::default(),
                statements: Arc::default(),
            },
            quotas: None,
            key_provider: None,
        }
    }
}

impl DatabaseBuilder {
    /// How long a call waits for another connection's write lock before failing with
    /// "database is locked". Default 35 s: longer than one statement may run
    /// ([`crate::sql::D1Limits::statement_timeout`], 30 s), so writers queue behind the
    /// one ahead of them rather than fail.
    pub fn busy_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.options.busy_timeout = timeout;
        self
    }

    /// The limits every statement runs under (time, VM steps, result and value size);
    /// default [`crate::sql::D1Limits::default`], D1's own.
    pub fn limits(&mut self, limits: crate::sql::D1Limits) -> &mut Self {
        self.options.limits = limits;
        self
    }

    /// `PRAGMA synchronous = FULL` (survives power loss) instead of the default `NORMAL`
    /// (survives a process crash; WAL mode).
    pub fn synchronous_full(&mut self, full: bool) -> &mut Self {
        self.options.synchronous_full = full;
        self
    }

    /// Per-tenant quotas by plan (see [`crate::tenant::quota`]); default none: no call is
    /// ever refused for its rate.
    pub fn quotas(&mut self, quotas: crate::tenant::quota::Quotas) -> &mut Self {
        self.quotas = Some(quotas);
        self
    }

    /// Where the master key of sealed fields comes from ([`crate::keys`]). Default: for a
    /// file database, [`crate::keys::KeyFile`] at `<database file>.key` (created, mode 0600,
    /// when a key is first needed); for an in-memory database, a random key held in memory
    /// ([`crate::keys::EphemeralKey`]).
    pub fn key_provider(&mut self, provider: Arc<dyn crate::keys::KeyProvider>) -> &mut Self {
        self.key_provider = Some(provider);
        self
    }

    /// Opens (creating if missing) the database file at `path`, and its parent folders.
    /// Fails with [`crate::keys::KeyError::KeyFilePermissions`] when the key file exists and
    /// group or others may read it.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Database> {
        let provider = match &self.key_provider {
            Some(p) => Arc::clone(p),
            None => Arc::new(crate::keys::KeyFile::beside(path.as_ref())),
        };
        Database::with(
            Location::File(path.as_ref().to_path_buf()),
            self.options.clone(),
            self.quotas.clone(),
            provider,
        )
    }

    /// Opens a new private in-memory database. Tenant sessions of it share its data.
    pub fn open_in_memory(&self) -> Result<Database> {
        let name = format!(
            "d1vec-{}",
            crate::tenant::guard::new_secret()
                .map_err(|e| Error::invalid("randomness", e.to_string()))?
        );
        let provider = match &self.key_provider {
            Some(p) => Arc::clone(p),
            None => Arc::new(crate::keys::EphemeralKey::new()),
        };
        Database::with(
            Location::Memory(name),
            self.options.clone(),
            self.quotas.clone(),
            provider,
        )
    }
}

impl Database {
    /// Options for opening a database.
    pub fn builder() -> DatabaseBuilder {
        DatabaseBuilder::default()
    }

    /// Opens (creating if missing) the database file at `path`: WAL mode, foreign keys on,
    /// a 35 s busy timeout, D1's limits.
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        Self::builder().open(path)
    }

    /// Opens a new private in-memory database.
    pub fn open_in_memory() -> Result<Database> {
        Self::builder().open_in_memory()
    }

    fn with(
        location: Location,
        mut options: ConnOptions,
        quotas: Option<crate::tenant::quota::Quotas>,
        provider: Arc<dyn crate::keys::KeyProvider>,
    ) -> Result<Database> {
        provider.check()?;
        // Each database counts its own statements, also when opened from one builder.
        options.statements = Arc::default();
        let keys = Arc::new(crate::keys::KeyRing::new(provider));
        let mut admin = SqlConn::open(&location, &options)?;
        // Seals tokens written through admin SQL (`crate::keys::fields`).
        let seal = crate::keys::fields::AdminSeal::install(&admin, &keys)?;
        admin.set_scope(Box::new(seal));
        let vectors = crate::vectorize::engine::Engine::new(
            location_path(&location),
            Arc::clone(&options.statements),
            admin.is_wal(),
        );
        let shared = Arc::new(Shared {
            location,
            options,
            admin,
            vectors,
            readers: std::sync::Mutex::new(Vec::new()),
            text_triggers: Arc::default(),
            cursor_key: std::sync::OnceLock::new(),
            quotas: quotas.map(|q| Arc::new(crate::tenant::quota::QuotaBook::new(q))),
            keys,
        });
        // `vectorize_query` in admin SQL; it holds `shared` weakly (the connection lives in it).
        crate::vectorize::sql_function::register(
            &shared.admin,
            Arc::downgrade(&shared),
            crate::vectorize::index::Caller::Admin,
        )?;
        Ok(Database { shared })
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The database file, or `None` for an in-memory database.
    pub fn path(&self) -> Option<PathBuf> {
        location_path(&self.shared.location).map(Path::to_path_buf)
    }

    /// Prepares a statement, as D1's `db.prepare(sql)`.
    pub fn prepare(&self, sql: &str) -> Statement<'_> {
        Statement::new(&self.shared.admin, sql)
    }

    /// Runs statements atomically, as D1's `db.batch([...])`.
    pub fn batch(&self, statements: &[Statement<'_>]) -> Result<Vec<D1Result>> {
        statement::batch(&self.shared.admin, statements)
    }

    /// Runs a script atomically, as D1's `db.exec(sql)`.
    pub fn exec(&self, script: &str) -> Result<ExecResult> {
        statement::exec(&self.shared.admin, script)
    }

    /// Starts a D1 session, as D1's `db.withSession(constraint | bookmark)`: see
    /// [`D1Session`](crate::sql::D1Session). A bookmark that is malformed, from another
    /// database or a tenant session, or newer than this database's latest commit is refused.
    pub fn with_session(
        &self,
        start: impl Into<crate::sql::SessionConstraint>,
    ) -> Result<crate::sql::D1Session<'_>> {
        crate::sql::D1Session::start(&self.shared.admin, start.into())
    }

    /// The whole database as the bytes of one SQLite file, as D1's `db.dump()`: a
    /// consistent snapshot, compacted, without d1vec's cursor-signing key (see
    /// `sql::dump`).
    pub fn dump(&self) -> Result<Vec<u8>> {
        self.shared
            .admin
            .internal_mut(|conn| crate::sql::dump::dump(conn, "main"))
    }

    /// Runs a script atomically and returns every statement's result, as
    /// `wrangler d1 execute` does: one `BEGIN`/`COMMIT` pair from `sqlite3 .dump` is
    /// stripped, and any failure rolls back every statement.
    pub fn execute(&self, script: &str) -> Result<Vec<D1Result>> {
        statement::execute_script(&self.shared.admin, script)
    }

    /// A session scoped to `tenant`, acting as its service principal (every permission);
    /// narrow it to a user with [`TenantSession::as_user`]. See [`TenantSession`].
    pub fn tenant(&self, tenant: &str) -> Result<TenantSession> {
        TenantSession::open(Arc::clone(&self.shared), tenant)
    }

    /// Applies the pending migrations of `migrations` (see [`crate::sql::migrate`]);
    /// returns the names applied.
    pub fn apply_migrations(&self, migrations: &[Migration]) -> Result<Vec<String>> {
        self.apply_migrations_in(migrate::MIGRATIONS_TABLE, migrations)
    }

    /// Every migration of `migrations` and when it was applied.
    pub fn migration_status(&self, migrations: &[Migration]) -> Result<Vec<MigrationStatus>> {
        self.migration_status_in(migrate::MIGRATIONS_TABLE, migrations)
    }

    /// [`Database::apply_migrations`], recording them in the bookkeeping table `table`
    /// (wrangler's `migrations_table`, same shape as `d1_migrations`).
    pub fn apply_migrations_in(
        &self,
        table: &str,
        migrations: &[Migration],
    ) -> Result<Vec<String>> {
        migrate::apply(&self.shared.admin, table, migrations)
    }

    /// [`Database::migration_status`] as recorded in the bookkeeping table `table`.
    pub fn migration_status_in(
        &self,
        table: &str,
        migrations: &[Migration],
    ) -> Result<Vec<MigrationStatus>> {
        migrate::list(&self.shared.admin, table, migrations)
    }

    /// Writes the database as SQL that `wrangler d1 execute --file` accepts; returns the
    /// number of rows written.
    pub fn export_sql(&self, options: &ExportOptions, out: &mut dyn std::io::Write) -> Result<u64> {
        self.shared
            .admin
            .internal_tx(|tx| Ok(export_sql(tx, options, out)?))
    }

    /// Each tenant's active data key: version, age, and when it falls due for rotation.
    pub fn key_status(&self) -> Result<Vec<crate::keys::KeyStatus>> {
        crate::keys::rotate::status(&self.shared)
    }

    /// Rotates `tenant`'s data key: a new version, every sealed field of the tenant
    /// re-encrypted under it and the old version retired, in one transaction.
    pub fn rotate_tenant_key(&self, tenant: &str) -> Result<crate::keys::Rotation> {
        crate::keys::rotate::rotate_tenant(&self.shared, tenant)
    }

    /// Rotates every tenant whose active key is past `rotate_after` (`all`: every tenant
    /// with a key or a stored token), one transaction each.
    pub fn rotate_due_keys(&self, all: bool) -> Result<Vec<crate::keys::Rotation>> {
        crate::keys::rotate::rotate_many(&self.shared, all)
    }

    /// Re-wraps every data key under a new master key (see [`crate::keys::KeyProvider`]).
    pub fn rotate_master_key(&self) -> Result<crate::keys::MasterRotation> {
        crate::keys::rotate::rotate_master(&self.shared)
    }

    /// Recomputes the daily rollup tables for `range` in one transaction.
    pub fn rollup(
        &self,
        range: &crate::rollup::RollupRange,
    ) -> Result<crate::rollup::RollupReport> {
        self.shared
            .admin
            .internal_tx(|tx| Ok(crate::rollup::recompute(tx, range)?))
    }

    /// Creates a vector index, as `wrangler vectorize create`.
    pub fn create_index(
        &self,
        request: &crate::vectorize::CreateIndex,
    ) -> Result<crate::vectorize::types::IndexDescription> {
        crate::vectorize::manage::create_index(&self.shared, request)
    }

    /// A vector index's name, description and configuration.
    pub fn get_index(&self, name: &str) -> Result<crate::vectorize::types::IndexDescription> {
        crate::vectorize::manage::get_index(&self.shared, name)
    }

    /// Every vector index, by name.
    pub fn list_indexes(&self) -> Result<Vec<crate::vectorize::types::IndexDescription>> {
        crate::vectorize::manage::list_indexes(&self.shared)
    }

    /// Deletes a vector index, its vectors and its files.
    pub fn delete_index(&self, name: &str) -> Result<()> {
        crate::vectorize::manage::delete_index(&self.shared, name)
    }

    /// The vector index `name`, unscoped (the admin surface).
    pub fn vectorize(&self, name: &str) -> Result<crate::vectorize::VectorIndex> {
        crate::vectorize::manage::open_index(
            &self.shared,
            name,
            crate::vectorize::index::Caller::Admin,
        )
    }

    /// Applies the bundled migrations and creates the application's three vector indexes
    /// (`nds-brand-voice`, `nds-skills`, `nds-knowledge`) where missing.
    pub fn apply_bundled(&self) -> Result<BundledSetup> {
        let migrations = self.apply_migrations(&migrate::bundled())?;
        let indexes = crate::vectorize::manage::ensure_app_indexes(&self.shared)?;
        Ok(BundledSetup {
            migrations,
            indexes,
        })
    }

    /// Sets the vector engine's tuning knobs (thresholds, `ef`, HNSW parameters).
    pub fn set_vector_options(&self, options: crate::vectorize::EngineOptions) {
        self.shared.vectors.set_options(options);
    }

    /// Sets the most vectors one index may hold, default Vectorize's 20,000,000
    /// ([`crate::vectorize::limits::MAX_VECTORS_PER_INDEX`]). A write that would pass it
    /// fails with error 40043 and changes nothing. Lower it to test the limit.
    pub fn set_max_vectors_per_index(&self, max: usize) {
        self.shared.vectors.set_max_vectors(max);
    }

    /// Counters of the vector query paths taken so far.
    pub fn vector_stats(&self) -> crate::vectorize::Stats {
        self.shared.vectors.stats()
    }

    /// Creates the text index of `source` (an FTS5 index the engine owns, searched per
    /// tenant; see [`crate::search`]), indexing the rows already there; from then on it
    /// follows every write to the table. Returns the existing index when one with the same
    /// definition exists; refuses another definition for the same table, a table without
    /// `tenant_id`, a key column that is not unique, and an unknown vector index.
    pub fn create_text_index(
        &self,
        source: &crate::search::TextSource,
    ) -> Result<crate::search::TextIndexInfo> {
        // A sealed column's text is ciphertext; indexing it would be useless at best.
        if source
            .table
            .eq_ignore_ascii_case(crate::keys::fields::TABLE)
            && crate::keys::fields::COLUMNS
                .iter()
                .any(|c| c.eq_ignore_ascii_case(&source.text_column))
        {
            return Err(Error::invalid(
                "text index",
                format!("`{}` holds sealed values", source.text_column),
            ));
        }
        crate::search::fts::create(&self.shared, source)
    }

    /// Drops the text index on `table`: its triggers, its FTS5 table, its bookkeeping.
    pub fn drop_text_index(&self, table: &str) -> Result<()> {
        crate::search::fts::drop_index(&self.shared, table)
    }

    /// Every text index, by table, with how many rows it holds and changes it has pending.
    pub fn text_indexes(&self) -> Result<Vec<crate::search::TextIndexInfo>> {
        crate::search::fts::list(&self.shared)
    }
}

/// What [`Database::apply_bundled`] did: both lists are empty when everything was in place.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BundledSetup {
    /// Names of the migrations applied by this call, in order.
    pub migrations: Vec<String>,
    /// Names of the vector indexes created by this call.
    pub indexes: Vec<String>,
}
