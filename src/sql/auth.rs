//! The SQLite authorizer every d1vec connection runs under.
//!
//! SQLite calls the authorizer while it compiles a statement, once per table column read,
//! row written, function called or schema object touched, and names the innermost view or
//! trigger responsible for the access. Two policies stack here:
//!
//! - **D1's rules**, on every connection: no `BEGIN`/`COMMIT`/`SAVEPOINT` in user SQL (the
//!   engine wraps each call in one transaction), no `ATTACH`/`DETACH`, no `TEMP` objects,
//!   no names starting with `_cf_`, only D1's allow-listed PRAGMAs, no `load_extension`.
//! - **A tenant's scope**, on a tenant session's connection, through one hook
//!   ([`ScopeHook`]) that the tenant layer implements (`tenant::policy`): a base table may be
//!   read or written only by the session's own views and triggers, and a user session only
//!   with the permissions its role holds. This module holds no tenant rule itself.
//!
//! The engine's own statements (transaction control, building the session's views) run in
//! *internal* mode, where everything is allowed.
//!
//! One more kind of accessor counts as the session's own: the engine's *persistent* triggers
//! on base tables ([`EngineTriggers`]; the text indexes' change logs, `crate::search`). A
//! tenant's write to a base table fires them inside the tenant's statement, so SQLite asks
//! about their reads of `NEW`/`OLD` and their writes to the log with their name as the
//! accessor. Their names carry a random tag kept in `main` (unreadable from a session), for
//! the same reason the session's objects carry the session secret: a user's CTE is named by
//! the user, and SQLite reports a CTE's name as the accessor of what it reads.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

/// PRAGMAs D1 allows in user SQL (workerd's allow-list).
const D1_PRAGMAS: &[&str] = &[
    "data_version",
    "page_size",
    "table_list",
    "table_info",
    "table_xinfo",
    "case_sensitive_like",
    "foreign_keys",
    "defer_foreign_keys",
    "ignore_check_constraints",
    "legacy_alter_table",
    "recursive_triggers",
    "reverse_unordered_selects",
    "foreign_key_check",
    "foreign_key_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "quick_check",
    "optimize",
];

/// Virtual-table modules D1 documents: "D1 supports a subset of SQLite extensions ...
/// Default SQLite extensions, FTS5 module"
/// (<https://developers.cloudflare.com/d1/sql-api/sql-statements/>). `fts5vocab` is part of
/// the FTS5 module. FTS3/FTS4, R*Tree and the rest are compiled into the bundled SQLite but
/// not listed by D1, so they are refused.
pub(crate) const D1_VTABLE_MODULES: &[&str] = &["fts5", "fts5vocab"];

/// Functions the bundled SQLite has that D1 does not document (they come from extensions
/// D1 does not list: SOUNDEX, FTS3, R*Tree), plus `load_extension`.
pub(crate) const NON_D1_FUNCTIONS: &[&str] = &[
    "load_extension",
    "soundex",
    "fts3_tokenizer",
    "rtreecheck",
    "rtreenode",
    "rtreedepth",
];

/// Eponymous virtual tables of the bundled SQLite that D1 does not document.
pub(crate) const NON_D1_TABLES: &[&str] = &["dbstat"];

/// Why the authorizer refused a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Denial {
    /// D1 itself refuses this SQL.
    D1(String),
    /// The statement reaches outside the tenant's scope; names what it reached for (with
    /// no secret in it).
    Tenant(String),
    /// The session's user lacks a permission the statement needs.
    Forbidden {
        /// The permission (`audit.read`, `posts.publish`, ...).
        permission: String,
        /// The user's role.
        role: String,
    },
}

/// What the connection trusts about one access besides the session's own objects.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trusted {
    /// The accessor is one of the engine's own triggers, whose fixed bodies touch only the
    /// row being written and the engine's log.
    pub engine_trigger: bool,
    /// The table read is a table-valued function that enforces the scope itself.
    pub scoped_function: bool,
}

/// The one hook from the authorizer into a session's scope. The tenant layer implements it
/// (`tenant::policy`); this module knows nothing of tenants beyond it.
pub(crate) trait ScopeHook: Send + Sync + std::fmt::Debug {
    /// Why the access `ctx` lies outside the scope, or `None` when it is allowed. Asked
    /// only after D1's own refusals passed, and never in internal mode.
    fn refusal(&self, ctx: &AuthContext<'_>, trusted: Trusted) -> Option<Denial>;
    /// Whether `text` (an SQLite message) carries something the session must not see.
    fn leaks(&self, text: &str) -> bool;
    /// `text` with that taken out, fit for an error message.
    fn scrub(&self, text: &str) -> String;
}

/// The names of the engine's persistent triggers on base tables, shared by a database and
/// all its sessions so that a trigger created after a session opened is known to it too.
/// A name is only ever trusted as an *accessor*: users cannot create triggers, and cannot
/// learn these names to give a CTE.
#[derive(Debug, Default)]
pub(crate) struct EngineTriggers {
    names: RwLock<HashSet<String>>,
}

impl EngineTriggers {
    /// Adds `names`. Names are never removed: a dropped trigger's name can only come back
    /// as a CTE's, which would need its secret tag.
    pub fn extend(&self, names: impl IntoIterator<Item = String>) {
        let mut set = self.names.write().unwrap_or_else(|e| e.into_inner());
        set.extend(names.into_iter().map(|n| n.to_ascii_lowercase()));
    }

    fn is_empty(&self) -> bool {
        self.names
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    fn contains(&self, name: &str) -> bool {
        self.names
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&name.to_ascii_lowercase())
    }
}

/// Shared between a connection's authorizer callback and the code that runs statements.
#[derive(Debug, Default)]
pub(crate) struct AuthState {
    internal: AtomicBool,
    denial: Mutex<Option<Denial>>,
    tenant: Mutex<Option<Arc<dyn ScopeHook>>>,
    engine_triggers: Mutex<Option<Arc<EngineTriggers>>>,
    /// Lower-cased names of table-valued functions registered on this connection that read
    /// stored data but enforce the connection's scope themselves (`vectorize_query`).
    scoped_functions: RwLock<HashSet<String>>,
    /// The rowid most recently inserted by a tenant session's INSTEAD OF trigger.
    pub noted_rowid: AtomicI64,
    /// Whether a trigger noted a rowid during the current statement.
    pub noted: AtomicBool,
    /// What the current statement writes, for `meta.rows_written` (`sql::writes`).
    pub writes: Mutex<StatementWrites>,
}

/// What the authorizer saw a statement write: the columns each UPDATE sets, and the
/// statement's own (top-level) target.
#[derive(Debug, Default)]
pub(crate) struct StatementWrites {
    /// Lower-cased column names set by UPDATE, by lower-cased table name.
    pub set_columns: std::collections::HashMap<String, HashSet<String>>,
    /// The first table the statement itself (not a trigger) inserts into, updates or
    /// deletes from.
    pub target: Option<(String, crate::sql::writes::Op)>,
}

/// Restores the previous mode when dropped (guards nest: a SQL function's internal SQL can
/// run inside a statement that is itself internal).
pub(crate) struct InternalGuard<'a>(&'a AuthState, bool);

impl Drop for InternalGuard<'_> {
    fn drop(&mut self) {
        self.0.internal.store(self.1, Ordering::SeqCst);
    }
}

impl AuthState {
    /// Runs the engine's own statements until the guard drops.
    pub fn internal(&self) -> InternalGuard<'_> {
        let before = self.internal.swap(true, Ordering::SeqCst);
        InternalGuard(self, before)
    }

    /// Puts the connection under a tenant's scope.
    pub fn set_tenant(&self, policy: Arc<dyn ScopeHook>) {
        *self.tenant.lock().unwrap_or_else(|e| e.into_inner()) = Some(policy);
    }

    /// Trusts the engine's triggers named in `triggers` as the session's own accessors.
    pub fn set_engine_triggers(&self, triggers: Arc<EngineTriggers>) {
        *self
            .engine_triggers
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(triggers);
    }

    /// Trusts the table-valued function `name`, registered on this connection, to enforce
    /// the connection's scope itself.
    pub fn allow_scoped_function(&self, name: &str) {
        self.scoped_functions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_ascii_lowercase());
    }

    fn is_scoped_function(&self, name: &str) -> bool {
        self.scoped_functions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&name.to_ascii_lowercase())
    }

    /// Whether any engine trigger is known to this connection (a text index exists).
    pub fn has_engine_triggers(&self) -> bool {
        self.engine_triggers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    }

    fn is_engine_trigger(&self, accessor: Option<&str>) -> bool {
        let Some(name) = accessor else {
            return false;
        };
        self.engine_triggers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|t| t.contains(name))
    }

    /// The scope hook, if this is a tenant session's connection.
    pub fn tenant(&self) -> Option<Arc<dyn ScopeHook>> {
        self.tenant
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets the previous statement's refusal and noted rowid.
    pub fn begin_statement(&self) {
        *self.denial.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.noted.store(false, Ordering::SeqCst);
        *self.writes.lock().unwrap_or_else(|e| e.into_inner()) = StatementWrites::default();
    }

    fn note_write(&self, ctx: &AuthContext<'_>) {
        use crate::sql::writes::Op;
        let (table, op) = match ctx.action {
            AuthAction::Insert { table_name } => (table_name, Op::Insert),
            AuthAction::Update {
                table_name,
                column_name,
            } => {
                let mut w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
                w.set_columns
                    .entry(table_name.to_ascii_lowercase())
                    .or_default()
                    .insert(column_name.to_ascii_lowercase());
                drop(w);
                (table_name, Op::Update)
            }
            AuthAction::Delete { table_name } => (table_name, Op::Delete),
            _ => return,
        };
        if ctx.accessor.is_none() {
            let mut w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
            if w.target.is_none() {
                w.target = Some((table.to_owned(), op));
            }
        }
    }

    /// The first refusal since [`AuthState::begin_statement`].
    pub fn take_denial(&self) -> Option<Denial> {
        self.denial.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn deny(&self, why: Denial) -> Authorization {
        let mut slot = self.denial.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(why);
        }
        Authorization::Deny
    }

    /// The authorizer callback.
    pub fn authorize(&self, ctx: &AuthContext<'_>) -> Authorization {
        if self.internal.load(Ordering::SeqCst) {
            return Authorization::Allow;
        }
        self.note_write(ctx);
        if let Some(why) = d1_refusal(ctx) {
            return self.deny(Denial::D1(why));
        }
        match self.tenant() {
            None => Authorization::Allow,
            Some(policy) => {
                let trusted = Trusted {
                    engine_trigger: self.is_engine_trigger(ctx.accessor),
                    scoped_function: match ctx.action {
                        AuthAction::Read { table_name, .. } => self.is_scoped_function(table_name),
                        _ => false,
                    },
                };
                match policy.refusal(ctx, trusted) {
                    None => Authorization::Allow,
                    Some(why) => self.deny(why),
                }
            }
        }
    }
}

fn reserved(name: &str) -> bool {
    name.len() >= 4 && name[..4].eq_ignore_ascii_case("_cf_")
}

/// D1's own refusals, applied on every connection.
fn d1_refusal(ctx: &AuthContext<'_>) -> Option<String> {
    use AuthAction as A;
    let named = |name: &str| {
        reserved(name).then(|| format!("`{name}`: names starting with _cf_ are reserved"))
    };
    match ctx.action {
        A::Transaction { .. } | A::Savepoint { .. } => Some(
            "transaction statements (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE); each call already runs in one transaction, use batch() to group statements".into(),
        ),
        A::Attach { .. } | A::Detach { .. } => Some("ATTACH and DETACH".into()),
        A::CreateTempTable { .. }
        | A::CreateTempIndex { .. }
        | A::CreateTempTrigger { .. }
        | A::CreateTempView { .. } => Some("TEMP tables, views, triggers and indexes".into()),
        A::Function { function_name }
            if NON_D1_FUNCTIONS
                .iter()
                .any(|f| f.eq_ignore_ascii_case(function_name)) =>
        {
            Some(format!(
                "{}(): not among the SQLite functions D1 supports",
                function_name.to_ascii_lowercase()
            ))
        }
        A::CreateVtable {
            table_name,
            module_name,
        } if !D1_VTABLE_MODULES
            .iter()
            .any(|m| m.eq_ignore_ascii_case(module_name)) =>
        {
            named(table_name).or_else(|| {
                Some(format!(
                    "virtual table module `{}`: D1 supports only FTS5 (fts5, fts5vocab)",
                    module_name.to_ascii_lowercase()
                ))
            })
        }
        A::Read { table_name, .. }
            if NON_D1_TABLES.iter().any(|t| t.eq_ignore_ascii_case(table_name)) =>
        {
            Some(format!(
                "`{}`: not among the virtual tables D1 supports",
                table_name.to_ascii_lowercase()
            ))
        }
        A::Pragma { pragma_name, pragma_value } => {
            let name = pragma_name.to_ascii_lowercase();
            if !D1_PRAGMAS.contains(&name.as_str())
                || (name == "page_size" && pragma_value.is_some())
            {
                Some(format!("PRAGMA {name}"))
            } else {
                None
            }
        }
        A::Read { table_name, .. }
        | A::Insert { table_name }
        | A::Update { table_name, .. }
        | A::Delete { table_name }
        | A::CreateTable { table_name }
        | A::DropTable { table_name }
        | A::Analyze { table_name }
        | A::AlterTable { table_name, .. }
        | A::CreateVtable { table_name, .. }
        | A::DropVtable { table_name, .. } => named(table_name),
        A::CreateIndex { index_name, table_name } | A::DropIndex { index_name, table_name } => {
            named(index_name).or_else(|| named(table_name))
        }
        A::CreateTrigger { trigger_name, table_name } | A::DropTrigger { trigger_name, table_name } => {
            named(trigger_name).or_else(|| named(table_name))
        }
        A::CreateView { view_name } | A::DropView { view_name } => named(view_name),
        _ => None,
    }
}

/// Installs `state`'s authorizer on `conn`.
pub(crate) fn install(
    conn: &mut rusqlite::Connection,
    state: Arc<AuthState>,
) -> rusqlite::Result<()> {
    conn.authorizer(Some(move |ctx: AuthContext<'_>| state.authorize(&ctx)))
}
