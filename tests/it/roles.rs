//! Users, roles and permissions (`TenantSession::as_user`), and per-tenant quotas.
//!
//! The `role_permissions` table is the oracle: every expectation about who may do what is
//! read from it, never written down here.

use std::sync::Arc;
use std::time::Duration;

use d1vec::index::Metric;
use d1vec::sql::export::ExportOptions;
use d1vec::sql::migrate;
use d1vec::tenant::policy::{permissions, Role};
use d1vec::tenant::quota::{ManualClock, PlanQuota, Quotas, Rate};
use d1vec::vectorize::types::{QueryOptions, Vector};
use d1vec::vectorize::{CreateIndex, Scope};
use d1vec::{Database, Error, TenantSession};
use proptest::prelude::*;

use crate::cli::d1vec;

/// Tenants `t1` (plan free) and `t2` (plan pro); in `t1` one active user per role
/// (`u_owner`, ...), a disabled owner and an invited admin; in `t2` an owner `u_other`.
fn seed(db: &Database) {
    db.apply_migrations(&migrate::bundled()).unwrap();
    db.exec(
        "INSERT INTO tenants (tenant_id, name, plan) VALUES ('t1', 'One', 'free'), ('t2', 'Two', 'pro'), ('t3', 'Three', 'free');
         INSERT INTO users (user_id, tenant_id, email, role, status) VALUES
           ('u_owner', 't1', 'o@one.io', 'owner', 'active'),
           ('u_admin', 't1', 'a@one.io', 'admin', 'active'),
           ('u_editor', 't1', 'e@one.io', 'editor', 'active'),
           ('u_viewer', 't1', 'v@one.io', 'viewer', 'active'),
           ('u_disabled', 't1', 'd@one.io', 'owner', 'disabled'),
           ('u_invited', 't1', 'i@one.io', 'admin', 'invited'),
           ('u_other', 't2', 'o@two.io', 'owner', 'active');
         INSERT INTO audit_logs (audit_id, tenant_id, actor, action, hash) VALUES ('a1', 't1', 'system', 'seed', 'h');",
    )
    .unwrap();
}

fn seeded() -> Database {
    let db = Database::open_in_memory().unwrap();
    seed(&db);
    db
}

fn user_of(role: Role) -> String {
    format!("u_{}", role.as_str())
}

/// Whether `role_permissions` gives `role` the permission `permission` (the oracle).
fn granted(db: &Database, role: Role, permission: &str) -> bool {
    let row = db
        .prepare("SELECT EXISTS (SELECT 1 FROM role_permissions WHERE role = ?1 AND permission = ?2) AS g")
        .bind([role.as_str(), permission])
        .first()
        .unwrap()
        .unwrap();
    row["g"] == 1
}

/// Every permission the table names, plus names it does not hold.
fn permission_names(db: &Database) -> Vec<String> {
    let rows = db
        .prepare("SELECT DISTINCT permission FROM role_permissions ORDER BY 1")
        .all()
        .unwrap();
    let mut names: Vec<String> = rows
        .results
        .iter()
        .map(|r| r["permission"].as_str().unwrap().to_owned())
        .collect();
    names.extend([
        "nope.never".to_owned(),
        "AUDIT.READ".to_owned(),
        String::new(),
    ]);
    names
}

/// The whole database as SQL text: equal before and after means nothing changed.
fn snapshot(db: &Database) -> Vec<u8> {
    let mut out = Vec::new();
    db.export_sql(&ExportOptions::default(), &mut out).unwrap();
    out
}

/// What a session does, and the permission it needs (`None`: every role may).
#[derive(Debug, Clone, Copy)]
enum Action {
    /// `SELECT` from `audit_logs`.
    ReadAudit,
    /// `INSERT` into `published_posts` (then rolled back by a failing second statement).
    Publish,
    /// `TenantSession::export_sql`.
    Export,
    /// `INSERT` into `campaigns` (ungated).
    WriteCampaign,
    /// `UPDATE users` to make the session's own user an owner (gated by `users.manage`:
    /// a user's row decides its permissions).
    PromoteSelf,
    /// A permission asked directly with `require` (key rotation, reading a secret, erase).
    Require(&'static str),
}

impl Action {
    fn permission(self) -> Option<&'static str> {
        match self {
            Action::ReadAudit => Some(permissions::AUDIT_READ),
            Action::Publish => Some(permissions::POSTS_PUBLISH),
            Action::Export => Some(permissions::DATA_EXPORT),
            Action::WriteCampaign => None,
            Action::PromoteSelf => Some(permissions::USERS_MANAGE),
            Action::Require(p) => Some(p),
        }
    }

    /// Runs the action; the publication and campaign rows are kept out of the database by
    /// a second statement that always fails, so every case starts from the same state.
    fn run(self, s: &TenantSession) -> d1vec::Result<()> {
        let failing = "INSERT INTO campaigns (campaign_id, name) VALUES (NULL, NULL)";
        match self {
            Action::ReadAudit => s.prepare("SELECT * FROM audit_logs").all().map(|_| ()),
            Action::Publish => s
                .batch(&[
                    s.prepare(
                        "INSERT INTO published_posts (post_id, platform) VALUES ('p1', 'linkedin')",
                    ),
                    s.prepare(failing),
                ])
                .map(|_| ()),
            Action::Export => s
                .export_sql(&ExportOptions::default(), &mut std::io::sink())
                .map(|_| ()),
            Action::WriteCampaign => s
                .batch(&[
                    s.prepare("INSERT INTO campaigns (campaign_id, name) VALUES ('c1', 'x')"),
                    s.prepare(failing),
                ])
                .map(|_| ()),
            Action::PromoteSelf => s
                .batch(&[
                    s.prepare("UPDATE users SET role = 'owner', status = 'active'"),
                    s.prepare(failing),
                ])
                .map(|_| ()),
            Action::Require(p) => s.require(p),
        }
    }
}

const ACTIONS: [Action; 9] = [
    Action::ReadAudit,
    Action::Publish,
    Action::Export,
    Action::WriteCampaign,
    Action::PromoteSelf,
    Action::Require(permissions::KEYS_ROTATE),
    Action::Require(permissions::CONNECTIONS_READ_SECRET),
    Action::Require(permissions::DATA_ERASE),
    Action::Require("users.manage"),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// `require` agrees with `role_permissions` for every (role, permission) pair, and a
    /// refusal names the permission and the role.
    #[test]
    fn require_matches_the_table(role in 0usize..4, pick in any::<prop::sample::Index>()) {
        let db = shared_db();
        let role = Role::ALL[role];
        let names = permission_names(db);
        let permission = &names[pick.index(names.len())];
        let session = db.tenant("t1").unwrap().as_user(&user_of(role)).unwrap();
        match session.require(permission) {
            Ok(()) => prop_assert!(granted(db, role, permission)),
            Err(Error::Forbidden { permission: p, role: r }) => {
                prop_assert!(!granted(db, role, permission));
                prop_assert_eq!(&p, permission);
                prop_assert_eq!(r, role.as_str());
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    /// Each (role, action) pair is allowed exactly when the table grants the action's
    /// permission; a denied action is `Forbidden` and leaves the database as it was.
    #[test]
    fn actions_match_the_table(role in 0usize..4, action in 0usize..ACTIONS.len()) {
        let db = shared_db();
        let role = Role::ALL[role];
        let action = ACTIONS[action];
        let session = db.tenant("t1").unwrap().as_user(&user_of(role)).unwrap();
        let allowed = action.permission().is_none_or(|p| granted(db, role, p));
        let before = snapshot(db);
        let got = action.run(&session);
        prop_assert_eq!(snapshot(db), before);
        match got {
            Err(Error::Forbidden { permission, .. }) => {
                prop_assert!(!allowed, "{action:?} refused to {role:?}");
                prop_assert_eq!(Some(permission.as_str()), action.permission());
            }
            // Allowed, or refused for another reason than the role: the forced failure of
            // the batch (the writes), or the export no tenant may make yet.
            Ok(()) => prop_assert!(allowed, "{action:?} allowed to {role:?}"),
            Err(Error::Sql(_)) | Err(Error::TenantViolation { .. }) => {
                prop_assert!(allowed, "{action:?} reached the engine for {role:?}")
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }
}

/// One seeded database shared by the property tests (their actions leave it unchanged).
fn shared_db() -> &'static Database {
    static DB: std::sync::OnceLock<Database> = std::sync::OnceLock::new();
    DB.get_or_init(seeded)
}

#[test]
fn a_session_without_a_user_keeps_every_permission() {
    let db = seeded();
    let service = db.tenant("t1").unwrap();
    for permission in permission_names(&db) {
        service.require(&permission).unwrap();
    }
    let rows = service
        .prepare("SELECT audit_id FROM audit_logs")
        .all()
        .unwrap();
    assert_eq!(rows.results.len(), 1);
    service
        .prepare("INSERT INTO published_posts (post_id, platform) VALUES ('p1', 'linkedin')")
        .run()
        .unwrap();
}

#[test]
fn a_viewer_cannot_read_a_token_the_audit_trail_or_publish() {
    let db = seeded();
    assert!(!granted(
        &db,
        Role::Viewer,
        permissions::CONNECTIONS_READ_SECRET
    ));
    let viewer = db.tenant("t1").unwrap().as_user("u_viewer").unwrap();
    assert_eq!(
        viewer.scope().principal().user().unwrap().role,
        Role::Viewer
    );
    let refused = viewer
        .require(permissions::CONNECTIONS_READ_SECRET)
        .unwrap_err();
    assert!(matches!(&refused, Error::Forbidden { permission, role }
        if permission == "connections.read_secret" && role == "viewer"));
    assert_eq!(refused.json_code(), 403);
    // Every way of naming the audit trail is refused, counting it included.
    for sql in [
        "SELECT * FROM audit_logs",
        "SELECT count(*) FROM audit_logs",
        "SELECT a.action FROM campaigns JOIN audit_logs AS a ON 1",
        "SELECT * FROM temp.audit_logs",
        "WITH x AS (SELECT * FROM audit_logs) SELECT * FROM x",
    ] {
        let e = viewer.prepare(sql).all().unwrap_err();
        assert!(
            matches!(&e, Error::Forbidden { permission, .. } if permission == "audit.read"),
            "{sql}: {e}"
        );
    }
    // An editor may publish, a viewer may not, and the refusal changes nothing.
    let before = snapshot(&db);
    let e = viewer
        .batch(&[
            viewer.prepare("INSERT INTO campaigns (campaign_id, name) VALUES ('c9', 'ok')"),
            viewer.prepare(
                "INSERT INTO published_posts (post_id, platform) VALUES ('p9', 'linkedin')",
            ),
        ])
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden { .. }), "{e}");
    assert_eq!(snapshot(&db), before);
    for sql in [
        "UPDATE published_posts SET url = 'x'",
        "DELETE FROM published_posts",
    ] {
        let e = viewer.prepare(sql).run().unwrap_err();
        assert!(matches!(e, Error::Forbidden { .. }), "{sql}: {e}");
    }
    assert_eq!(snapshot(&db), before);
    let editor = db.tenant("t1").unwrap().as_user("u_editor").unwrap();
    editor
        .prepare("INSERT INTO published_posts (post_id, platform) VALUES ('p9', 'linkedin')")
        .run()
        .unwrap();
    // Reading what was published needs no permission.
    assert_eq!(
        viewer
            .prepare("SELECT post_id FROM published_posts")
            .all()
            .unwrap()
            .results
            .len(),
        1
    );
}

#[test]
fn as_user_refuses_unknown_inactive_and_foreign_users() {
    let db = seeded();
    let refusal = |user: &str| match db.tenant("t1").unwrap().as_user(user) {
        Err(Error::UserRefused {
            tenant,
            user: u,
            reason,
        }) => {
            assert_eq!(tenant, "t1");
            // The id is echoed, cut to 128 characters.
            assert!(user.starts_with(&u) && u.len() <= 128, "{u}");
            reason
        }
        Err(e) => panic!("{user}: unexpected {e}"),
        Ok(_) => panic!("{user}: accepted"),
    };
    let unknown = refusal("nobody");
    // Another tenant's user reads exactly as one that exists nowhere.
    assert_eq!(refusal("u_other"), unknown);
    assert_eq!(refusal(""), unknown);
    assert_eq!(refusal(&"u".repeat(1000)[..200]), unknown);
    assert_eq!(refusal("u_disabled"), "the user is disabled");
    assert_eq!(refusal("u_invited"), "the user is invited");
    // The same user is accepted in its own tenant.
    db.tenant("t2").unwrap().as_user("u_other").unwrap();
    let e = db.tenant("t1").unwrap().as_user("nobody").unwrap_err();
    assert_eq!(e.json_code(), 403);
}

#[test]
fn cli_user_flag_answers_403_for_a_forbidden_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    seed(&Database::open(&path).unwrap());
    let read = [
        "--json",
        "d1",
        "execute",
        "--command",
        "SELECT action FROM audit_logs",
    ];
    let as_user = |user: &str| {
        let mut args = vec!["--tenant", "t1", "--user", user];
        args.extend(read);
        d1vec(&path, &args)
    };
    let out = as_user("u_viewer");
    assert!(!out.status.success());
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["code"], 403, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("audit.read"),
        "{err}"
    );
    let out = as_user("u_admin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_user("u_other");
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["code"], 403, "{err}");
    // --user without --tenant is an argument error.
    let out = d1vec(
        &path,
        &[
            "--json",
            "--user",
            "u_admin",
            "d1",
            "execute",
            "--command",
            "SELECT 1",
        ],
    );
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["code"], 400, "{err}");
}

fn quota_db(clock: Arc<ManualClock>) -> Database {
    let free = PlanQuota {
        queries: Some(Rate {
            burst: 3,
            per_second: 1.0,
        }),
        writes: Some(Rate {
            burst: 2,
            per_second: 0.5,
        }),
    };
    let db = Database::builder()
        .quotas(Quotas::new().plan("free", free).clock(clock))
        .open_in_memory()
        .unwrap();
    seed(&db);
    db
}

#[track_caller]
fn assert_rate_limited(got: d1vec::Result<impl std::fmt::Debug>) {
    let e = got.expect_err("the bucket is empty");
    assert_eq!(e.json_code(), 40041, "{e}");
    assert_eq!(e.to_string(), "Too Many Requests");
    assert_eq!(
        d1vec::cli::output::error_json(&e),
        serde_json::json!({"code": 40041, "error": "Too Many Requests"})
    );
}

#[test]
fn an_empty_query_bucket_refuses_with_vectorize_40041_until_it_refills() {
    let clock = Arc::new(ManualClock::default());
    let db = quota_db(Arc::clone(&clock));
    let t1 = db.tenant("t1").unwrap();
    for _ in 0..3 {
        t1.prepare("SELECT 1").all().unwrap();
    }
    assert_rate_limited(t1.prepare("SELECT 1").all());
    // Another tenant on the same plan has its own bucket; a plan without quota has none.
    let t3 = db.tenant("t3").unwrap();
    t3.prepare("SELECT 1").all().unwrap();
    let t2 = db.tenant("t2").unwrap();
    for _ in 0..20 {
        t2.prepare("SELECT 1").all().unwrap();
    }
    // The bucket is shared by the tenant's sessions, and refills at one token a second.
    let again = db.tenant("t1").unwrap();
    assert_rate_limited(again.prepare("SELECT 1").all());
    clock.advance(Duration::from_millis(999));
    assert_rate_limited(again.prepare("SELECT 1").all());
    clock.advance(Duration::from_millis(1));
    again.prepare("SELECT 1").all().unwrap();
    assert_rate_limited(t1.prepare("SELECT 1").all());
    // Vector queries draw on the same bucket.
    db.create_index(&CreateIndex::new("ix", 2, Metric::Cosine).scope(Scope::Private))
        .unwrap();
    let ix = t1.vectorize("ix").unwrap();
    assert_rate_limited(ix.query(&[1.0, 0.0], &QueryOptions::new()));
    clock.advance(Duration::from_secs(10));
    for _ in 0..3 {
        ix.query(&[1.0, 0.0], &QueryOptions::new()).unwrap();
    }
    assert_rate_limited(ix.query(&[1.0, 0.0], &QueryOptions::new()));
}

#[test]
fn an_empty_write_bucket_refuses_and_writes_nothing() {
    let clock = Arc::new(ManualClock::default());
    let db = quota_db(Arc::clone(&clock));
    db.create_index(&CreateIndex::new("ix", 2, Metric::Cosine).scope(Scope::Private))
        .unwrap();
    let t1 = db.tenant("t1").unwrap();
    t1.prepare("INSERT INTO campaigns (campaign_id, name) VALUES ('c1', 'a')")
        .run()
        .unwrap();
    t1.vectorize("ix")
        .unwrap()
        .upsert(&[Vector::new("v1", vec![1.0, 0.0])])
        .unwrap();
    let before = snapshot(&db);
    assert_rate_limited(
        t1.prepare("INSERT INTO campaigns (campaign_id, name) VALUES ('c2', 'b')")
            .run(),
    );
    assert_rate_limited(
        t1.vectorize("ix")
            .unwrap()
            .upsert(&[Vector::new("v2", vec![0.0, 1.0])]),
    );
    assert_eq!(snapshot(&db), before);
    // Reads still have tokens of their own.
    assert_eq!(
        t1.prepare("SELECT campaign_id FROM campaigns")
            .all()
            .unwrap()
            .results
            .len(),
        1
    );
    clock.advance(Duration::from_secs(2));
    t1.prepare("INSERT INTO campaigns (campaign_id, name) VALUES ('c2', 'b')")
        .run()
        .unwrap();
}

#[test]
fn quotas_are_off_by_default() {
    let db = seeded();
    let t1 = db.tenant("t1").unwrap();
    for _ in 0..200 {
        t1.prepare("SELECT 1").all().unwrap();
    }
}

/// `open_secret` and `rotate_key`, the two key operations a session can call, for every
/// role: allowed exactly when `role_permissions` grants the permission, and a refusal
/// changes nothing (no key version, no audit row, the same sealed bytes).
#[test]
fn opening_a_token_and_rotating_keys_follow_role_permissions() {
    use d1vec::keys::Field;
    let db = seeded();
    let service = db.tenant("t1").unwrap();
    service
        .prepare("INSERT INTO platform_connections (connection_id, platform, handle, access_token_ct) VALUES ('c1', 'linkedin', '@one', ?1)")
        .bind(["tok-secret-1"])
        .run()
        .unwrap();
    for role in Role::ALL {
        let session = db.tenant("t1").unwrap().as_user(&user_of(role)).unwrap();
        let before = snapshot(&db);
        let opened = session.open_secret("c1", Field::AccessToken);
        if granted(&db, role, permissions::CONNECTIONS_READ_SECRET) {
            assert_eq!(opened.unwrap().expose(), "tok-secret-1", "{role:?}");
        } else {
            let e = opened.unwrap_err();
            assert!(
                matches!(&e, Error::Forbidden { permission, .. } if permission == "connections.read_secret"),
                "{role:?}: {e}"
            );
            assert_eq!(
                snapshot(&db),
                before,
                "{role:?}: a refused open changed the database"
            );
        }
        let before = snapshot(&db);
        let rotated = session.rotate_key();
        if granted(&db, role, permissions::KEYS_ROTATE) {
            rotated.unwrap();
            assert_ne!(snapshot(&db), before, "{role:?}: rotation changed nothing");
        } else {
            let e = rotated.unwrap_err();
            assert!(
                matches!(&e, Error::Forbidden { permission, .. } if permission == "keys.rotate"),
                "{role:?}: {e}"
            );
            assert_eq!(
                snapshot(&db),
                before,
                "{role:?}: a refused rotation changed the database"
            );
        }
    }
    // Whatever was rotated, the service principal still opens the token.
    assert_eq!(
        service
            .open_secret("c1", Field::AccessToken)
            .unwrap()
            .expose(),
        "tok-secret-1"
    );
}

/// Rows of every table with a `tenant_id` that belong to `tenant`, read by the admin surface
/// (the oracle the session's export and erasure are compared with).
fn admin_rows_of(db: &Database, tenant: &str) -> Vec<(String, Vec<serde_json::Value>)> {
    let tables = db
        .prepare("SELECT m.name FROM sqlite_schema AS m WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite%' AND m.name NOT LIKE 'd1vec%' AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) WHERE name = 'tenant_id') ORDER BY 1")
        .all()
        .unwrap();
    tables
        .results
        .iter()
        .map(|t| {
            let name = t["name"].as_str().unwrap().to_owned();
            let rows = db
                .prepare(&format!(
                    "SELECT * FROM \"{name}\" WHERE tenant_id = ?1 ORDER BY rowid"
                ))
                .bind([tenant])
                .all()
                .unwrap();
            (
                name,
                rows.results
                    .into_iter()
                    .map(serde_json::Value::Object)
                    .collect(),
            )
        })
        .collect()
}

/// Two tenants with rows, a token and vectors in a private index.
fn seeded_with_data() -> Database {
    let db = seeded();
    db.create_index(&CreateIndex::new("ix", 2, Metric::Cosine).scope(Scope::Private))
        .unwrap();
    for t in ["t1", "t2"] {
        let s = db.tenant(t).unwrap();
        s.exec(&format!(
            "INSERT INTO campaigns (campaign_id, name) VALUES ('{t}-c1', 'a'), ('{t}-c2', 'b');
             INSERT INTO platform_connections (connection_id, platform, handle, access_token_ct) VALUES ('{t}-p', 'linkedin', '@x', 'tok-{t}');"
        ))
        .unwrap();
        let vectors: Vec<Vector> = (0..130)
            .map(|i| Vector::new(format!("{t}-v{i}"), vec![1.0, i as f64]))
            .collect();
        s.vectorize("ix").unwrap().upsert(&vectors).unwrap();
    }
    db
}

/// The right of access: allowed exactly to the roles `role_permissions` grants
/// `data.export`; what it returns is, table by table, exactly the tenant's rows as the admin
/// surface reads them (so nothing of `t2` appears), with tokens sealed.
#[test]
fn export_data_returns_exactly_the_tenants_rows_for_roles_that_may_export() {
    let db = seeded_with_data();
    let oracle: std::collections::BTreeMap<String, Vec<serde_json::Value>> =
        admin_rows_of(&db, "t1").into_iter().collect();
    for role in Role::ALL {
        let session = db.tenant("t1").unwrap().as_user(&user_of(role)).unwrap();
        let got = session.export_data();
        if !granted(&db, role, permissions::DATA_EXPORT) {
            assert!(
                matches!(got, Err(Error::Forbidden { ref permission, .. }) if permission == "data.export"),
                "{role:?}"
            );
            continue;
        }
        let got = got.unwrap();
        assert_eq!(got["tenant_id"], "t1");
        let tables = got["tables"].as_object().unwrap();
        assert!(tables.contains_key("campaigns") && tables.contains_key("tenants"));
        for (table, rows) in tables {
            let mut rows = rows.as_array().unwrap().clone();
            let mut want = oracle[table].clone();
            let key = |v: &serde_json::Value| v.to_string();
            rows.sort_by_key(key);
            want.sort_by_key(key);
            assert_eq!(rows, want, "{role:?}: table {table}");
        }
        let text = got.to_string();
        assert!(
            !text.contains("t2-") && !text.contains("tok-t1"),
            "{role:?}: {text}"
        );
    }
}

/// The right to erasure: refused (changing nothing) for roles without `data.erase`; for a
/// role with it, afterwards no table holds a row of `t1`, `t1` has no vector left, and `t2`'s
/// rows and vectors are exactly as before.
#[test]
fn erase_removes_every_row_and_vector_of_the_tenant_and_nothing_else() {
    let db = seeded_with_data();
    let t2_before = admin_rows_of(&db, "t2");
    let t2_vectors = || {
        db.tenant("t2")
            .unwrap()
            .vectorize("ix")
            .unwrap()
            .list_vectors(Some(1000), None)
            .unwrap()
            .total_count
    };
    assert_eq!(t2_vectors(), 130);
    for role in [Role::Viewer, Role::Editor, Role::Admin, Role::Owner] {
        let session = db.tenant("t1").unwrap().as_user(&user_of(role)).unwrap();
        let before = snapshot(&db);
        let got = session.erase();
        if !granted(&db, role, permissions::DATA_ERASE) {
            assert!(
                matches!(got, Err(Error::Forbidden { ref permission, .. }) if permission == "data.erase"),
                "{role:?}"
            );
            assert_eq!(
                snapshot(&db),
                before,
                "{role:?}: a refused erase changed the database"
            );
            continue;
        }
        let erasure = got.unwrap();
        assert_eq!(erasure.vectors, 130, "{role:?}");
        assert!(erasure.rows >= 1);
        for (table, rows) in admin_rows_of(&db, "t1") {
            assert!(rows.is_empty(), "{table} still holds t1 rows: {rows:?}");
        }
        assert!(db.tenant("t1").is_err(), "the erased tenant still opens");
        assert_eq!(admin_rows_of(&db, "t2"), t2_before);
        assert_eq!(t2_vectors(), 130);
        return;
    }
    panic!("no role may erase: role_permissions lost data.erase");
}
