//! The one tenant policy: who is calling ([`Principal`]) and what that caller may reach and
//! do ([`Scope`]).
//!
//! Every tenant rule is decided here, and each surface asks through one hook of its own:
//!
//! - SQL: the authorizer (`sql::auth`) keeps D1's own refusals and asks [`SqlScope`] (its
//!   `ScopeHook`) about everything else: which names a statement may read or write, and which
//!   tables need a permission ([`TABLE_GATES`]);
//! - vectors: `VectorIndex` asks the [`Scope`] (its `VectorScope`) which namespace a call is
//!   confined to, whether it may write a shared index or manage an index, and spends quota;
//! - hybrid and keyword search read through the session's SQL and vector surfaces, so the
//!   same two hooks answer for them;
//! - the library's own operations (export, key rotation, reading a secret) call
//!   [`Scope::require`]; the CLI only opens a session and repeats none of these checks.
//!
//! A session opened without a user acts as the tenant's *service principal*: it holds every
//! permission, which is how every session behaved before users existed.

use std::collections::HashSet;
use std::sync::Arc;

use rusqlite::hooks::{AuthAction, AuthContext};

use super::guard::{is_sqlite_internal, SessionViews};
use super::quota::{Bucket, QuotaBook};
use crate::error::{Error, Result};
use crate::sql::auth::{Denial, ScopeHook, Trusted};
use crate::vectorize::index::{VectorAction, VectorScope};
use crate::vectorize::store::Scope as IndexScope;

/// The permission names the engine itself checks (the `role_permissions` table is the
/// source of truth for which role holds which).
pub mod permissions {
    /// Read the tenant's audit trail (`audit_logs`).
    pub const AUDIT_READ: &str = "audit.read";
    /// Record a publication (write `published_posts`).
    pub const POSTS_PUBLISH: &str = "posts.publish";
    /// Read a publishing token in the clear (`open_secret`).
    pub const CONNECTIONS_READ_SECRET: &str = "connections.read_secret";
    /// Export the tenant's data.
    pub const DATA_EXPORT: &str = "data.export";
    /// Erase the tenant's data (GDPR erasure).
    pub const DATA_ERASE: &str = "data.erase";
    /// Rotate the tenant's data keys.
    pub const KEYS_ROTATE: &str = "keys.rotate";
    /// Add, change or remove the tenant's users (write `users`: a user's role and status
    /// decide every other permission, so writing them is a permission of its own).
    pub const USERS_MANAGE: &str = "users.manage";
}

/// A role inside a tenant, as `users.role` and `role_permissions.role` spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Holds every permission of the tenant.
    Owner,
    /// Manages users, connections and content; not the tenant itself nor its keys.
    Admin,
    /// Creates and publishes content.
    Editor,
    /// Reads analytics.
    Viewer,
}

impl Role {
    /// The four roles.
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Editor, Role::Viewer];

    /// The role's name: `owner`, `admin`, `editor` or `viewer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }

    /// The role named `name` (exact, lower case), if any.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// A user of a tenant and the role the `users` table gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRole {
    /// `users.user_id`.
    pub user_id: String,
    /// `users.role`.
    pub role: Role,
}

/// Who is calling: a tenant, and optionally one of its users with a resolved role. Without
/// a user it is the tenant's service principal, which holds every permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    tenant: String,
    user: Option<UserRole>,
}

impl Principal {
    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The user and their role, if the session acts for one.
    pub fn user(&self) -> Option<&UserRole> {
        self.user.as_ref()
    }
}

/// What a [`Principal`] may reach and do: the permissions its role holds (all, for the
/// service principal) and the tenant's quotas. One `Scope` serves a session's SQL, its vector
/// indexes and its searches.
#[derive(Debug)]
pub struct Scope {
    principal: Principal,
    /// `tenants.plan`, which selects the quotas.
    plan: String,
    /// The permissions held; `None` for the service principal (all of them).
    granted: Option<HashSet<String>>,
    quotas: Option<Arc<QuotaBook>>,
}

impl Scope {
    /// The service principal of `tenant` (on `plan`).
    pub(crate) fn service(tenant: &str, plan: String, quotas: Option<Arc<QuotaBook>>) -> Scope {
        Scope {
            principal: Principal {
                tenant: tenant.to_owned(),
                user: None,
            },
            plan,
            granted: None,
            quotas,
        }
    }

    /// This scope narrowed to `user`, who holds exactly `granted`.
    pub(crate) fn for_user(&self, user: UserRole, granted: HashSet<String>) -> Scope {
        Scope {
            principal: Principal {
                tenant: self.principal.tenant.clone(),
                user: Some(user),
            },
            plan: self.plan.clone(),
            granted: Some(granted),
            quotas: self.quotas.clone(),
        }
    }

    /// Who is calling.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Whether the caller holds `permission`.
    pub fn may(&self, permission: &str) -> bool {
        self.granted.as_ref().is_none_or(|g| g.contains(permission))
    }

    /// Refuses, with [`Error::Forbidden`], a caller that does not hold `permission`. Call it
    /// before the operation changes anything.
    pub fn require(&self, permission: &str) -> Result<()> {
        if self.may(permission) {
            Ok(())
        } else {
            Err(Error::Forbidden {
                permission: permission.to_owned(),
                role: self.role_name().to_owned(),
            })
        }
    }

    fn role_name(&self) -> &'static str {
        self.principal
            .user
            .as_ref()
            .map_or("service", |u| u.role.as_str())
    }

    /// Refuses `object` to this tenant.
    pub(crate) fn violation(&self, object: impl Into<String>) -> Error {
        Error::TenantViolation {
            tenant: self.principal.tenant.clone(),
            object: object.into(),
        }
    }

    /// Operations on the whole database (migrations, rollups, creating and deleting vector
    /// indexes, a whole-database export) belong to the admin surface: a tenant scope refuses
    /// them with [`Error::TenantViolation`] naming `what`.
    pub fn database_admin(&self, what: &str) -> Error {
        self.violation(what)
    }

    /// Takes one token from the tenant's `bucket` (a no-op without quotas).
    pub(crate) fn admit(&self, bucket: Bucket) -> Result<()> {
        match &self.quotas {
            Some(book) => book.take(&self.principal.tenant, &self.plan, bucket),
            None => Ok(()),
        }
    }
}

impl VectorScope for Scope {
    fn tenant(&self) -> &str {
        &self.principal.tenant
    }

    fn namespace(&self, index: IndexScope) -> Option<&str> {
        match index {
            IndexScope::Private => Some(&self.principal.tenant),
            IndexScope::Shared => None,
        }
    }

    fn check(&self, action: VectorAction<'_>, index: &str, scope: IndexScope) -> Result<()> {
        match action {
            VectorAction::Read => self.admit(Bucket::Queries),
            VectorAction::Write if scope == IndexScope::Shared => {
                Err(self.violation(format!("writing the shared index `{index}`")))
            }
            VectorAction::Write => self.admit(Bucket::Writes),
            VectorAction::Admin(what) => Err(self.violation(format!("{what} of index `{index}`"))),
        }
    }
}

/// What a statement does with a gated table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Read,
    Write,
}

/// A table a user session reaches only with a permission.
#[derive(Debug, Clone, Copy)]
struct Gate {
    table: &'static str,
    verb: Verb,
    permission: &'static str,
}

/// The tables whose SQL access checks a permission: reading the audit trail, and recording
/// a publication. Everything else a session's views allow, every role may do.
const TABLE_GATES: &[Gate] = &[
    Gate {
        table: "audit_logs",
        verb: Verb::Read,
        permission: permissions::AUDIT_READ,
    },
    Gate {
        table: "published_posts",
        verb: Verb::Write,
        permission: permissions::POSTS_PUBLISH,
    },
    // Without this gate any role could write its own `users.role` and be re-resolved as
    // owner by its next session (found by review of `d1vec serve`, where every pooled
    // session opens as its token's user).
    Gate {
        table: "users",
        verb: Verb::Write,
        permission: permissions::USERS_MANAGE,
    },
];

/// Table-valued functions that read only their arguments, never stored data.
const SAFE_TABLE_FUNCTIONS: &[&str] = &["json_each", "json_tree", "jsonb_each", "jsonb_tree"];

/// SQLite's eponymous tables that describe the connection's databases (`pragma_*`,
/// `dbstat`): never the user's own CTE, whatever the column.
fn introspection_table(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("pragma_") || lower == "dbstat"
}

/// The SQL side of a session's scope: its views (built by `tenant::guard`) and its
/// [`Scope`]. The authorizer's one hook.
#[derive(Debug)]
pub(crate) struct SqlScope {
    views: SessionViews,
    scope: Arc<Scope>,
}

impl SqlScope {
    /// The hook for a session whose objects are `views`, acting as `scope`.
    pub fn new(views: SessionViews, scope: Arc<Scope>) -> SqlScope {
        SqlScope { views, scope }
    }

    /// A user session's refusal of `table` for lack of a permission its gate needs.
    /// `table` may be the session's outer view (`audit_logs`) or its inner view
    /// (`d1vec_<secret>_audit_logs`): SQLite flattens the outer view into a query that uses
    /// none of its columns (`SELECT count(*) FROM audit_logs`) and then names only the inner.
    fn gated(&self, table: &str, verb: Verb) -> Option<Denial> {
        let prefix = self.views.prefix();
        let table = match table.get(..prefix.len()) {
            Some(head) if head.eq_ignore_ascii_case(prefix) => &table[prefix.len()..],
            _ => table,
        };
        let gate = TABLE_GATES
            .iter()
            .find(|g| g.verb == verb && g.table.eq_ignore_ascii_case(table))?;
        (!self.scope.may(gate.permission)).then(|| Denial::Forbidden {
            permission: gate.permission.to_owned(),
            role: self.scope.role_name().to_owned(),
        })
    }

    /// What `ctx` reaches that lies outside the tenant's views.
    ///
    /// The database's tables are attached under [`SessionViews::schema`]; they may be
    /// touched only by the session's own (secret-named) views and triggers. `main` is an
    /// empty private database holding stand-ins for every table name, which nothing may read.
    fn outside(&self, ctx: &AuthContext<'_>, trusted: Trusted) -> Option<String> {
        use AuthAction as A;
        let views = &self.views;
        let db = ctx.database_name.unwrap_or("main");
        let in_database = db.eq_ignore_ascii_case(&views.schema);
        let ours = views.is_ours(ctx.accessor) || trusted.engine_trigger;
        match ctx.action {
            A::Select | A::Recursive => None,
            A::Function { .. } => None,
            // SQLite asks about a FROM item none of whose columns are used (`SELECT count(*)
            // FROM r AS x, r AS y`) with an empty column name and, for a subquery, CTE or
            // unqualified name, no database. Such an item is a CTE or subquery of the user's
            // own, one of the session's views, or a stand-in; only a name that is neither a
            // view nor a stand-in is known to be the user's own CTE or subquery, and reading
            // it reads nothing stored.
            A::Read {
                table_name,
                column_name: "",
            } if ctx.database_name.is_none()
                && !is_sqlite_internal(table_name)
                && !introspection_table(table_name)
                && !views.stand_ins.contains(&table_name.to_ascii_lowercase()) =>
            {
                None
            }
            A::Read { table_name, .. } => {
                let through_our_views = (in_database && ours)
                    || (db.eq_ignore_ascii_case("temp") && views.is_view(table_name));
                let safe_function = trusted.scoped_function
                    || SAFE_TABLE_FUNCTIONS
                        .iter()
                        .any(|f| f.eq_ignore_ascii_case(table_name));
                if is_sqlite_internal(table_name) {
                    Some(format!("SQLite's internal table `{table_name}`"))
                } else if through_our_views || safe_function {
                    None
                } else {
                    Some(format!("table `{table_name}` outside the tenant's views"))
                }
            }
            A::Insert { table_name } | A::Update { table_name, .. } | A::Delete { table_name } => {
                let lower = table_name.to_ascii_lowercase();
                let in_temp = db.eq_ignore_ascii_case("temp") && ctx.accessor.is_none();
                let to_view = in_temp && views.writable_views.contains(&lower);
                let from_trigger = in_database && ours;
                if is_sqlite_internal(table_name) {
                    Some("schema changes".into())
                } else if to_view || from_trigger {
                    None
                } else if in_temp && views.readable_views.contains(&lower) {
                    Some(format!("writing `{table_name}` (read-only for tenants)"))
                } else {
                    Some(format!("writing `{table_name}`"))
                }
            }
            A::Pragma { pragma_name, .. } => Some(format!("PRAGMA {pragma_name}")),
            A::Analyze { .. } => Some("ANALYZE".into()),
            A::Reindex { .. } => Some("REINDEX".into()),
            _ => Some("schema changes".into()),
        }
    }
}

impl ScopeHook for SqlScope {
    fn refusal(&self, ctx: &AuthContext<'_>, trusted: Trusted) -> Option<Denial> {
        if let Some(what) = self.outside(ctx, trusted) {
            return Some(Denial::Tenant(self.views.scrub(&what)));
        }
        // A gate concerns what the user's statement names; the session's own views and
        // triggers then read and write the attached tables on its behalf.
        let in_database = ctx
            .database_name
            .is_some_and(|d| d.eq_ignore_ascii_case(&self.views.schema));
        if in_database || self.scope.granted.is_none() {
            return None;
        }
        match ctx.action {
            AuthAction::Read { table_name, .. } => self.gated(table_name, Verb::Read),
            AuthAction::Insert { table_name }
            | AuthAction::Update { table_name, .. }
            | AuthAction::Delete { table_name } => self.gated(table_name, Verb::Write),
            _ => None,
        }
    }

    fn leaks(&self, text: &str) -> bool {
        text.contains(&self.views.secret)
    }

    fn scrub(&self, text: &str) -> String {
        self.views.scrub(text)
    }
}
