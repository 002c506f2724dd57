//! `d1vec push --to cloudflare`: copies the database's schema and rows to a hosted D1 database
//! and each vector index to Vectorize, through [`crate::remote::Cloudflare`], resumably.
//!
//! # What is sent, in order
//!
//! 1. The D1 database: found by the state file's id, or created (`--d1 NAME`, default the
//!    database file's stem). A database of that name that this push did not create is
//!    refused, so rows are never mixed into someone else's data.
//! 2. `CREATE TABLE` statements from [`crate::Database::export_sql`] (schema only).
//! 3. Each table's rows as the export writes them (`INSERT INTO "t" (...) VALUES(...)`), the
//!    tables ordered so that a table comes after the tables its foreign keys name (cycles keep
//!    export order), each batch prefixed with `PRAGMA defer_foreign_keys=TRUE`.
//! 4. Indexes, views and triggers (after the rows, so triggers do not fire on the copy).
//! 5. Each vector index: created with the same dimensions, metric and description, its
//!    metadata indexes created *before* any vector (Vectorize does not index vectors stored
//!    before a metadata index exists), then every vector upserted in id order, at most 1,000
//!    a request and under the 100 MB body limit.
//!
//! SQL goes in batches of at most [`MAX_BATCH_BYTES`] bytes (D1's statement limit is 100 KB;
//! the whole request is kept under it) and [`MAX_BATCH_STATEMENTS`] statements, never mixing
//! tables. D1 runs one request's statements as one transaction: all or nothing.
//!
//! # Resuming
//!
//! Progress is kept in `<db>.push.json` beside the database, written (to a temporary file,
//! then renamed) before and after every request: the target ids, and for each unit (the
//! schema, each table, the post-schema objects, each vector index) how many statements or
//! which last vector id are done, with a SHA-256 of the statements already sent. A re-run
//! skips what is done, after checking that the skipped statements hash the same (a changed
//! source is refused: delete the state file to start again).
//!
//! A batch is recorded as done only after D1 answered success. The one uncertain case is a
//! batch that was sent but whose answer was lost (timeout, crash between answer and state
//! write): the state then says "in flight", and the re-run sends that batch once more in an
//! idempotent form: `INSERT OR IGNORE` and `CREATE ... IF NOT EXISTS`. Rows carry their
//! primary key or rowid, so a row already there is skipped rather than doubled. The exceptions
//! (at-least-once): a table whose rowid could not be carried (all of `rowid`, `_rowid_` and
//! `oid` are column names) and virtual tables (FTS rows have no uniqueness to ignore on) may
//! get that one batch twice. Vectors are upserted, so repeating a batch is harmless.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::remote::Cloudflare;
use crate::sql::export::ExportOptions;
use crate::vectorize::types::{CreateIndexConfig, CreateIndexRequest, Vector};
use crate::Database;

/// The largest SQL text sent in one D1 request, in bytes (D1's statement limit).
pub const MAX_BATCH_BYTES: usize = 100_000;
/// The most statements sent in one D1 request (d1vec's choice, to keep each transaction short).
pub const MAX_BATCH_STATEMENTS: usize = 500;
/// The most vectors in one upsert (Vectorize's per-request batch).
pub const MAX_VECTOR_BATCH: usize = 1000;
/// The largest upsert body, in bytes (Vectorize's 100 MB, with room for the last line).
pub const MAX_VECTOR_BODY: usize = 99_000_000;

const BATCH_PREFIX: &str = "PRAGMA defer_foreign_keys=TRUE;\n";

/// Where `push` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PushTarget {
    /// Cloudflare's hosted D1 and Vectorize (or anything speaking their REST API).
    Cloudflare,
}

/// `d1vec push --to cloudflare`: copy the database's schema, rows and vectors to hosted D1 and
/// Vectorize, resumably (progress in `<db>.push.json`).
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The target.
    #[arg(long = "to", value_enum)]
    pub to: PushTarget,
    /// The Cloudflare account id.
    #[arg(long, env = "CLOUDFLARE_ACCOUNT_ID")]
    pub account_id: Option<String>,
    /// The environment variable holding the API token (never give the token itself).
    #[arg(long, default_value = "CLOUDFLARE_API_TOKEN")]
    pub token_env: String,
    /// The API base URL (e.g. a `d1vec serve`'s http://127.0.0.1:8787/client/v4).
    #[arg(long, env = "CLOUDFLARE_API_BASE_URL", default_value = crate::remote::DEFAULT_BASE_URL)]
    pub base_url: String,
    /// Print what would be sent (databases, tables and row counts, indexes and vector
    /// counts, number of requests) and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The hosted D1 database's name (default: the database file's stem).
    #[arg(long)]
    pub d1: Option<String>,
}

/// What to push and how.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The hosted D1 database's name.
    pub d1_name: String,
    /// Count everything, send nothing.
    pub dry_run: bool,
    /// The progress file.
    pub state_path: PathBuf,
    /// Test hook: stop after this many batches (SQL or vectors) were sent in this run.
    #[doc(hidden)]
    pub interrupt_after: Option<usize>,
    /// Test hook: with `interrupt_after`, send the next batch too but do not record it (an
    /// answer lost in transit).
    #[doc(hidden)]
    pub interrupt_after_send: bool,
}

impl PushOptions {
    /// Options for `db_path`: D1 name from its stem, state beside it.
    pub fn for_path(db_path: &Path) -> Self {
        let stem = db_path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("d1vec")
            .to_owned();
        PushOptions {
            d1_name: stem,
            dry_run: false,
            state_path: state_path(db_path),
            interrupt_after: None,
            interrupt_after_send: false,
        }
    }
}

/// `<db>.push.json`.
pub fn state_path(db_path: &Path) -> PathBuf {
    let mut s = db_path.as_os_str().to_owned();
    s.push(".push.json");
    PathBuf::from(s)
}

/// One table in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableReport {
    /// The table.
    pub name: String,
    /// Its rows.
    pub rows: u64,
    /// Rows sent in this run (the rest were done before).
    pub sent: u64,
}

/// One vector index in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexReport {
    /// The index.
    pub name: String,
    /// Its vectors.
    pub vectors: u64,
    /// Vectors sent in this run.
    pub sent: u64,
    /// Its metadata indexes.
    pub metadata_indexes: usize,
}

/// What a push did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushReport {
    /// Nothing was sent.
    pub dry_run: bool,
    /// The D1 database's name.
    pub d1_name: String,
    /// Its id on the target (`None` in a dry run that has no state).
    pub d1_id: Option<String>,
    /// Schema statements (tables, then indexes, views, triggers).
    pub schema_statements: usize,
    /// The tables.
    pub tables: Vec<TableReport>,
    /// The vector indexes.
    pub indexes: Vec<IndexReport>,
    /// Requests made (dry: that would be made, before retries).
    pub requests: u64,
    /// Whether this run continued an earlier one.
    pub resumed: bool,
}

/// The progress file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    version: u32,
    base_url: String,
    account_id: String,
    d1_name: String,
    d1_id: Option<String>,
    d1_create_sent: bool,
    units: BTreeMap<String, Unit>,
    indexes: BTreeMap<String, IndexState>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Unit {
    /// Statements done.
    done: u64,
    /// SHA-256 (hex) of the done statements, each followed by a NUL.
    hash: String,
    /// A batch was sent and its answer not recorded.
    in_flight: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct IndexState {
    create_sent: bool,
    created: bool,
    metadata_done: Vec<String>,
    /// The last vector id upserted (ids go in order).
    last_id: Option<String>,
}

impl State {
    fn load(path: &Path) -> Result<Option<State>> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|e| {
                Error::invalid("push state file", format!("{}: {e}", path.display()))
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path)(e)),
        }
    }

    fn save(&self, path: &Path) -> Result<()> {
        let tmp = {
            let mut s = path.as_os_str().to_owned();
            s.push(".tmp");
            PathBuf::from(s)
        };
        let bytes = serde_json::to_vec_pretty(self)?;
        let mut f = std::fs::File::create(&tmp).map_err(Error::io(&tmp))?;
        f.write_all(&bytes).map_err(Error::io(&tmp))?;
        f.sync_all().map_err(Error::io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(Error::io(path))
    }
}

/// Runs a push of `db` through `cf` (`None` only for a dry run).
pub fn push(db: &Database, cf: Option<&Cloudflare>, opts: &PushOptions) -> Result<PushReport> {
    let loaded = State::load(&opts.state_path)?;
    let resumed = loaded.is_some();
    let mut state = loaded.unwrap_or_else(|| State {
        version: 1,
        d1_name: opts.d1_name.clone(),
        ..State::default()
    });
    if let Some(cf) = cf {
        if resumed && (state.account_id != cf.account_id() || state.d1_name != opts.d1_name) {
            return Err(Error::invalid(
                "push state file",
                format!(
                    "{} records a push of D1 database `{}` for another account or name; \
                     delete it to start a new push",
                    opts.state_path.display(),
                    state.d1_name
                ),
            ));
        }
        state.account_id = cf.account_id().to_owned();
    }
    let mut run = Run {
        db,
        cf: if opts.dry_run { None } else { cf },
        opts,
        state,
        requests: 0,
        batches: 0,
    };
    if run.cf.is_none() && !opts.dry_run {
        return Err(Error::invalid("push", "no Cloudflare client given"));
    }
    run.ensure_d1()?;

    let (tables_sql, post_sql) = schema_statements(db)?;
    let schema_statements = tables_sql.len() + post_sql.len();
    run.send_unit("schema", tables_sql.into_iter().map(Ok))?;
    let mut tables = Vec::new();
    for table in table_order(db)? {
        let unit = format!("rows:{table}");
        let before = run.state.units.get(&unit).map_or(0, |u| u.done);
        let rows = run.send_table(&table, &unit)?;
        tables.push(TableReport {
            name: table,
            rows,
            sent: rows.saturating_sub(before),
        });
    }
    run.send_unit("post", post_sql.into_iter().map(Ok))?;

    let mut indexes = Vec::new();
    for desc in db.list_indexes()? {
        indexes.push(run.send_index(&desc)?);
    }
    Ok(PushReport {
        dry_run: opts.dry_run,
        d1_name: run.state.d1_name.clone(),
        d1_id: run.state.d1_id.clone(),
        schema_statements,
        tables,
        indexes,
        requests: run.requests,
        resumed,
    })
}

struct Run<'a> {
    db: &'a Database,
    cf: Option<&'a Cloudflare>,
    opts: &'a PushOptions,
    state: State,
    requests: u64,
    batches: usize,
}

fn not_found(e: &Error) -> bool {
    matches!(
        e,
        Error::Remote { status: 404, .. } | Error::Remote { code: 3000, .. }
    )
}

impl Run<'_> {
    fn save(&self) -> Result<()> {
        if self.cf.is_some() {
            self.state.save(&self.opts.state_path)?;
        }
        Ok(())
    }

    /// Counts a batch against the test hook; `Ok(true)` means "send it but do not record it".
    fn hook(&mut self) -> Result<bool> {
        if let Some(n) = self.opts.interrupt_after {
            if self.batches >= n {
                if self.opts.interrupt_after_send && self.batches == n {
                    self.batches += 1;
                    return Ok(true);
                }
                return Err(Error::Remote {
                    status: 0,
                    code: 0,
                    message: format!("push interrupted after {n} batches (test hook)"),
                });
            }
        }
        self.batches += 1;
        Ok(false)
    }

    fn lost(&self) -> Error {
        Error::Remote {
            status: 0,
            code: 0,
            message: "push interrupted: the answer to the last batch was lost (test hook)".into(),
        }
    }

    fn ensure_d1(&mut self) -> Result<()> {
        let Some(cf) = self.cf else {
            self.requests += u64::from(self.state.d1_id.is_none()) * 2;
            return Ok(());
        };
        if self.state.d1_id.is_some() {
            return Ok(());
        }
        self.requests += 1;
        let found = cf.d1_list(Some(&self.state.d1_name))?;
        let found = found.into_iter().find(|d| d.name == self.state.d1_name);
        match found {
            Some(d) if self.state.d1_create_sent => self.state.d1_id = Some(d.uuid),
            Some(d) => {
                return Err(Error::invalid(
                    "push target",
                    format!(
                        "a D1 database named `{}` ({}) already exists and was not created by \
                         this push; choose another name with --d1, or delete it",
                        d.name, d.uuid
                    ),
                ))
            }
            None => {
                self.state.d1_create_sent = true;
                self.save()?;
                self.requests += 1;
                let made = cf.d1_create(&self.state.d1_name)?;
                self.state.d1_id = Some(made.uuid);
            }
        }
        self.save()
    }

    /// Sends one batch of SQL for `unit` (statements `stmts`), recording it before and after.
    fn send_sql(&mut self, unit: &str, stmts: &[String], hasher: &mut Sha256) -> Result<()> {
        if stmts.is_empty() {
            return Ok(());
        }
        let Some(cf) = self.cf else {
            self.requests += 1;
            return Ok(());
        };
        let retry_form = self.state.units.get(unit).is_some_and(|u| u.in_flight);
        let mut sql = String::from(BATCH_PREFIX);
        for s in stmts {
            if retry_form {
                sql.push_str(&idempotent(s));
            } else {
                sql.push_str(s);
            }
            sql.push_str(";\n");
        }
        let lose = self.hook()?;
        let id = self.state.d1_id.clone().unwrap_or_default();
        self.state
            .units
            .entry(unit.to_owned())
            .or_default()
            .in_flight = true;
        self.save()?;
        self.requests += 1;
        cf.d1_query(&id, &sql, &[])?;
        if lose {
            return Err(self.lost());
        }
        for s in stmts {
            hash_statement(hasher, s);
        }
        let u = self.state.units.entry(unit.to_owned()).or_default();
        u.done += stmts.len() as u64;
        u.hash = hex(&hasher.clone().finalize());
        u.in_flight = false;
        self.save()
    }

    /// Sends the statements of `unit`, skipping (and checking) those already done. Returns how
    /// many statements the unit has.
    fn send_unit(
        &mut self,
        unit: &str,
        stmts: impl Iterator<Item = Result<String>>,
    ) -> Result<u64> {
        let recorded = self.state.units.get(unit).cloned().unwrap_or_default();
        let mut hasher = Sha256::new();
        let mut seen = 0u64;
        let mut batch: Vec<String> = Vec::new();
        let mut batch_bytes = BATCH_PREFIX.len();
        for stmt in stmts {
            let stmt = stmt?;
            seen += 1;
            if seen <= recorded.done {
                hash_statement(&mut hasher, &stmt);
                if seen == recorded.done && hex(&hasher.clone().finalize()) != recorded.hash {
                    return Err(changed(unit, &self.opts.state_path));
                }
                continue;
            }
            let len = stmt.len() + 2;
            if BATCH_PREFIX.len() + len > MAX_BATCH_BYTES {
                return Err(Error::invalid(
                    "push",
                    format!(
                        "statement {seen} of {unit} is {} bytes; D1 takes at most {MAX_BATCH_BYTES}",
                        stmt.len()
                    ),
                ));
            }
            if batch_bytes + len > MAX_BATCH_BYTES || batch.len() == MAX_BATCH_STATEMENTS {
                self.send_sql(unit, &batch, &mut hasher)?;
                batch.clear();
                batch_bytes = BATCH_PREFIX.len();
            }
            batch_bytes += len;
            batch.push(stmt);
        }
        if seen < recorded.done {
            return Err(changed(unit, &self.opts.state_path));
        }
        self.send_sql(unit, &batch, &mut hasher)?;
        Ok(seen)
    }

    /// Streams one table's rows from the export into batches.
    fn send_table(&mut self, table: &str, unit: &str) -> Result<u64> {
        let opts = ExportOptions {
            no_schema: true,
            no_data: false,
            tables: vec![table.to_owned()],
        };
        // The export is written into a buffer and split into statements; a table's rows are
        // held in memory once (as SQL text).
        let mut buf = Vec::new();
        self.db.export_sql(&opts, &mut buf)?;
        let text = String::from_utf8(buf)
            .map_err(|_| Error::invalid("export", "the export is not UTF-8"))?;
        let stmts = split_inserts(&text);
        self.send_unit(unit, stmts.into_iter().map(Ok))
    }

    fn send_index(
        &mut self,
        desc: &crate::vectorize::types::IndexDescription,
    ) -> Result<IndexReport> {
        let local = self.db.vectorize(&desc.name)?;
        let total = local.describe()?.vector_count;
        let metadata = local.list_metadata_indexes()?;
        let mut st = self
            .state
            .indexes
            .get(&desc.name)
            .cloned()
            .unwrap_or_default();
        if let Some(cf) = self.cf {
            if !st.created {
                self.requests += 1;
                match cf.get_index(&desc.name) {
                    Ok(existing) if st.create_sent && existing.config == desc.config => {}
                    Ok(_) => {
                        return Err(Error::invalid(
                            "push target",
                            format!(
                                "Vectorize index `{}` already exists and was not created by this \
                                 push (or has another configuration); delete it first",
                                desc.name
                            ),
                        ))
                    }
                    Err(e) if not_found(&e) => {
                        st.create_sent = true;
                        self.state.indexes.insert(desc.name.clone(), st.clone());
                        self.save()?;
                        self.requests += 1;
                        cf.create_index(&CreateIndexRequest {
                            name: desc.name.clone(),
                            description: desc.description.clone(),
                            config: CreateIndexConfig::Dimensions {
                                dimensions: desc.config.dimensions,
                                metric: desc.config.metric,
                            },
                        })?;
                    }
                    Err(e) => return Err(e),
                }
                st.created = true;
                self.state.indexes.insert(desc.name.clone(), st.clone());
                self.save()?;
            }
            let remote = cf.vectorize(&desc.name);
            let pending: Vec<_> = metadata
                .iter()
                .filter(|m| !st.metadata_done.contains(&m.property_name))
                .collect();
            if !pending.is_empty() {
                self.requests += 1;
                let there = remote.list_metadata_indexes()?;
                for m in pending {
                    if !there.contains(m) {
                        self.requests += 1;
                        remote.create_metadata_index(&m.property_name, m.index_type)?;
                    }
                    st.metadata_done.push(m.property_name.clone());
                    self.state.indexes.insert(desc.name.clone(), st.clone());
                    self.save()?;
                }
            }
        } else if !st.created {
            // get, create, then (when there are metadata indexes) one list and a create each.
            let md = metadata.len() as u64;
            self.requests += 2 + if md > 0 { 1 + md } else { 0 };
        }

        // Vectors, in id order, from after the last one recorded.
        let mut sent = 0u64;
        let mut batch: Vec<Vector> = Vec::new();
        let mut batch_bytes = 0usize;
        let mut cursor: Option<String> = None;
        loop {
            let page = local.list_vectors(Some(1000), cursor.as_deref())?;
            let ids: Vec<String> = page
                .vectors
                .into_iter()
                .map(|v| v.id)
                .filter(|id| st.last_id.as_ref().is_none_or(|last| id > last))
                .collect();
            for chunk in ids.chunks(crate::vectorize::limits::MAX_GET_IDS) {
                let vectors = local.get_by_ids(chunk)?;
                let mut seen = HashSet::new();
                for v in &vectors {
                    if !seen.insert(v.id.clone()) {
                        return Err(Error::invalid(
                            "push",
                            format!(
                                "vector id `{}` of index `{}` is held in several namespaces; \
                                 Vectorize ids are unique per index",
                                v.id, desc.name
                            ),
                        ));
                    }
                }
                for v in vectors {
                    let len = serde_json::to_vec(&v)?.len() + 1;
                    if batch.len() == MAX_VECTOR_BATCH || batch_bytes + len > MAX_VECTOR_BODY {
                        sent += self.send_vectors(&desc.name, &mut st, &batch)?;
                        batch.clear();
                        batch_bytes = 0;
                    }
                    batch_bytes += len;
                    batch.push(v);
                }
            }
            if !page.is_truncated {
                break;
            }
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        sent += self.send_vectors(&desc.name, &mut st, &batch)?;
        Ok(IndexReport {
            name: desc.name.clone(),
            vectors: total,
            sent,
            metadata_indexes: metadata.len(),
        })
    }

    fn send_vectors(&mut self, index: &str, st: &mut IndexState, batch: &[Vector]) -> Result<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        let Some(cf) = self.cf else {
            self.requests += 1;
            return Ok(batch.len() as u64);
        };
        let lose = self.hook()?;
        self.requests += 1;
        cf.vectorize(index).upsert(batch)?;
        if lose {
            return Err(self.lost());
        }
        st.last_id = batch.last().map(|v| v.id.clone());
        self.state.indexes.insert(index.to_owned(), st.clone());
        self.save()?;
        Ok(batch.len() as u64)
    }
}

fn changed(unit: &str, state: &Path) -> Error {
    Error::invalid(
        "push state file",
        format!(
            "the source changed since the interrupted push ({unit} differs from what was sent); \
             delete {} and push to a new D1 database to start again",
            state.display()
        ),
    )
}

fn hash_statement(h: &mut Sha256, s: &str) {
    h.update(s.as_bytes());
    h.update([0u8]);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The schema as two lists: the `CREATE TABLE`s, and everything after the rows (indexes,
/// views, triggers). The export's `PRAGMA` is left out (each batch carries its own).
fn schema_statements(db: &Database) -> Result<(Vec<String>, Vec<String>)> {
    let mut buf = Vec::new();
    db.export_sql(
        &ExportOptions {
            no_data: true,
            ..ExportOptions::default()
        },
        &mut buf,
    )?;
    let text =
        String::from_utf8(buf).map_err(|_| Error::invalid("export", "the schema is not UTF-8"))?;
    let mut tables = Vec::new();
    let mut post = Vec::new();
    for stmt in crate::sql::split::split_statements(&text)? {
        let words = keywords(&stmt, 3);
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        match w.as_slice() {
            ["PRAGMA", ..] => {}
            ["CREATE", "TABLE", ..] | ["CREATE", "VIRTUAL", "TABLE"] => tables.push(stmt),
            _ => post.push(stmt),
        }
    }
    Ok((tables, post))
}

/// The first `n` bare words of a statement, upper-cased.
fn keywords(stmt: &str, n: usize) -> Vec<String> {
    stmt.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .take(n)
        .map(str::to_ascii_uppercase)
        .collect()
}

/// A statement in a form that does nothing if it already ran: `INSERT OR IGNORE INTO` for the
/// export's `INSERT INTO`, `CREATE <kind> IF NOT EXISTS` for the schema (SQLite stores schema
/// text without `IF NOT EXISTS`).
fn idempotent(stmt: &str) -> String {
    if let Some(rest) = stmt.strip_prefix("INSERT INTO ") {
        return format!("INSERT OR IGNORE INTO {rest}");
    }
    // Find the kind word (TABLE, INDEX, VIEW, TRIGGER) among the first three words.
    let upper = stmt.to_ascii_uppercase();
    if !upper.trim_start().starts_with("CREATE") || upper.contains("IF NOT EXISTS") {
        return stmt.to_owned();
    }
    for kind in ["TABLE", "INDEX", "VIEW", "TRIGGER"] {
        let mut from = 0;
        while let Some(pos) = upper[from..].find(kind) {
            let at = from + pos;
            let end = at + kind.len();
            let before_ok = at > 0 && upper.as_bytes()[at - 1].is_ascii_whitespace();
            let after_ok = upper
                .as_bytes()
                .get(end)
                .is_some_and(u8::is_ascii_whitespace);
            let head = keywords(&upper[..end], 4);
            if before_ok && after_ok && head.len() <= 3 {
                return format!("{} IF NOT EXISTS{}", &stmt[..end], &stmt[end..]);
            }
            from = end;
        }
    }
    stmt.to_owned()
}

/// Splits the export's data section into its `INSERT` statements (without the `;`): a `;`
/// ends a statement only outside quotes (`'…'` strings with `''`, `"…"` identifiers). The
/// leading `PRAGMA` is dropped.
fn split_inserts(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quote: Option<u8> = None;
    for (i, &b) in text.as_bytes().iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b == b';' => {
                let stmt = text[start..i].trim();
                if !stmt.is_empty() && !stmt.starts_with("PRAGMA") {
                    out.push(stmt.to_owned());
                }
                start = i + 1;
            }
            None => {}
        }
    }
    out
}

/// The exportable tables, each after the tables its foreign keys name (a cycle or a
/// self-reference keeps export order).
fn table_order(db: &Database) -> Result<Vec<String>> {
    let rows = db
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY rowid")
        .all()?;
    let mut tables = Vec::new();
    for row in rows.results {
        let Some(name) = row.get("name").and_then(Json::as_str) else {
            continue;
        };
        // Only what the export writes (it refuses SQLite's, D1's, d1vec's and shadow tables).
        let probe = ExportOptions {
            no_schema: true,
            no_data: true,
            tables: vec![name.to_owned()],
        };
        match db.export_sql(&probe, &mut std::io::sink()) {
            Ok(_) => tables.push(name.to_owned()),
            Err(Error::Export(crate::sql::export::ExportError::NoSuchTable(_))) => {}
            Err(e) => return Err(e),
        }
    }
    let mut deps: HashMap<String, Vec<String>> = HashMap::new();
    for t in &tables {
        let fks = db
            .prepare("SELECT DISTINCT \"table\" AS parent FROM pragma_foreign_key_list(?1)")
            .bind_json(&[json!(t)])?
            .all()?;
        let parents = fks
            .results
            .iter()
            .filter_map(|r| r.get("parent").and_then(Json::as_str))
            .filter_map(|p| tables.iter().find(|x| x.eq_ignore_ascii_case(p)).cloned())
            .filter(|p| p != t)
            .collect();
        deps.insert(t.clone(), parents);
    }
    // Depth-first, in export order; a table on the current path (a cycle) is not waited for.
    let mut order = Vec::new();
    let mut done = HashSet::new();
    fn visit(
        t: &str,
        deps: &HashMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut HashSet<String>,
        order: &mut Vec<String>,
    ) {
        if done.contains(t) || path.iter().any(|p| p == t) {
            return;
        }
        path.push(t.to_owned());
        for p in deps.get(t).into_iter().flatten() {
            visit(p, deps, path, done, order);
        }
        path.pop();
        done.insert(t.to_owned());
        order.push(t.to_owned());
    }
    for t in &tables {
        visit(t, &deps, &mut Vec::new(), &mut done, &mut order);
    }
    Ok(order)
}

/// `d1vec push`: builds the client from the flags and the token's environment variable, runs
/// the push and returns its report as JSON and as text. Refused in a tenant session: a push
/// copies the whole database.
pub fn dispatch(
    db: &Database,
    db_path: &Path,
    in_tenant: bool,
    args: &PushArgs,
) -> Result<(Json, String)> {
    if in_tenant {
        return Err(Error::invalid(
            "arguments",
            "push copies the whole database; run it without --tenant",
        ));
    }
    let PushTarget::Cloudflare = args.to;
    let mut opts = PushOptions::for_path(db_path);
    if let Some(name) = &args.d1 {
        opts.d1_name = name.clone();
    }
    opts.dry_run = args.dry_run;
    let cf = if args.dry_run {
        None
    } else {
        let account = args.account_id.clone().ok_or_else(|| {
            Error::invalid(
                "arguments",
                "give --account-id or set CLOUDFLARE_ACCOUNT_ID",
            )
        })?;
        let token = std::env::var(&args.token_env).map_err(|_| {
            Error::invalid(
                "arguments",
                format!("the API token variable `{}` is not set", args.token_env),
            )
        })?;
        Some(
            Cloudflare::new(account, token)
                .base_url(&args.base_url)
                .timeout(std::time::Duration::from_secs(300)),
        )
    };
    let report = push(db, cf.as_ref(), &opts)?;
    let value = serde_json::to_value(&report)?;
    Ok((value, render(&report)))
}

fn render(r: &PushReport) -> String {
    let mut s = String::new();
    let verb = if r.dry_run { "Would push" } else { "Pushed" };
    s.push_str(&format!(
        "{verb} to D1 database `{}`{}{}\n",
        r.d1_name,
        r.d1_id
            .as_ref()
            .map(|id| format!(" ({id})"))
            .unwrap_or_default(),
        if r.resumed {
            ", resuming an earlier push"
        } else {
            ""
        }
    ));
    s.push_str(&format!("  schema: {} statements\n", r.schema_statements));
    for t in &r.tables {
        s.push_str(&format!(
            "  table {}: {} rows ({} sent now)\n",
            t.name, t.rows, t.sent
        ));
    }
    for i in &r.indexes {
        s.push_str(&format!(
            "  vector index {}: {} vectors, {} metadata indexes ({} sent now)\n",
            i.name, i.vectors, i.metadata_indexes, i.sent
        ));
    }
    s.push_str(&format!("  requests: {}", r.requests));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_split_outside_quotes_only() {
        let text = "PRAGMA defer_foreign_keys=TRUE;\nINSERT INTO \"a;b\" (\"x\") VALUES('it''s; fine');\nINSERT INTO \"t\" (\"x\") VALUES(X'3b');\n";
        assert_eq!(
            split_inserts(text),
            [
                "INSERT INTO \"a;b\" (\"x\") VALUES('it''s; fine')",
                "INSERT INTO \"t\" (\"x\") VALUES(X'3b')"
            ]
        );
    }

    #[test]
    fn idempotent_forms() {
        assert_eq!(
            idempotent("INSERT INTO \"t\" (\"a\") VALUES(1)"),
            "INSERT OR IGNORE INTO \"t\" (\"a\") VALUES(1)"
        );
        assert_eq!(
            idempotent("CREATE TABLE t (a)"),
            "CREATE TABLE IF NOT EXISTS t (a)"
        );
        assert_eq!(
            idempotent("CREATE UNIQUE INDEX i ON t(a)"),
            "CREATE UNIQUE INDEX IF NOT EXISTS i ON t(a)"
        );
        assert_eq!(
            idempotent("CREATE VIRTUAL TABLE f USING fts5(x)"),
            "CREATE VIRTUAL TABLE IF NOT EXISTS f USING fts5(x)"
        );
        assert_eq!(
            idempotent("CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END"),
            "CREATE TRIGGER IF NOT EXISTS tr AFTER INSERT ON t BEGIN SELECT 1; END"
        );
        assert_eq!(
            idempotent("CREATE VIEW \"table\" AS SELECT 1"),
            "CREATE VIEW IF NOT EXISTS \"table\" AS SELECT 1"
        );
    }
}
