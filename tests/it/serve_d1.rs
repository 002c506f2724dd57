//! The D1 part of `d1vec serve`'s API, driven directly (no HTTP): the registry against a
//! table oracle, `/query` and `/raw` against the library's own statements on a twin
//! database, tenant targets against the isolation rules, import and export against
//! `Database::export_sql`, and random bodies that must never panic nor change anything
//! when refused.

use std::sync::Arc;

use d1vec::error::D1Problem;
use d1vec::fuzzing::serve_d1::{
    export, import, query, D1Registry, RegistryOptions, TransferLimits, TransferStore, TABLE,
};
use d1vec::sql::migrate;
use d1vec::{Database, Error};
use proptest::prelude::*;
use serde_json::{json, Value as Json};

const BASE: &str = "http://127.0.0.1:8787/client/v4";

fn problem(e: &Error) -> Option<D1Problem> {
    match e {
        Error::D1Database { problem, .. } => Some(*problem),
        _ => None,
    }
}

/// The list as the model says it should be: `(uuid, name)` in creation order.
#[track_caller]
fn check_list(reg: &D1Registry, model: &[(String, String)], name: Option<&str>, per_page: usize) {
    let expected: Vec<&(String, String)> = model
        .iter()
        .filter(|(_, n)| name.is_none_or(|f| f == n))
        .collect();
    let pages = expected.len().div_ceil(per_page).max(1);
    for page in 1..=pages + 1 {
        let (items, info) = reg.list(name, page, per_page).unwrap();
        let want: Vec<&(String, String)> = expected
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .copied()
            .collect();
        let got: Vec<(String, String)> = items
            .iter()
            .map(|i| {
                assert_eq!(i["version"], "production");
                assert!(i["created_at"].as_str().unwrap().ends_with('Z'));
                (
                    i["uuid"].as_str().unwrap().to_owned(),
                    i["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(got.iter().collect::<Vec<_>>(), want, "page {page}");
        assert_eq!(
            info,
            json!({"page": page, "per_page": per_page, "count": want.len(), "total_count": expected.len()})
        );
    }
}

#[test]
fn registry_create_list_get_delete_follow_a_table_oracle_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sqlite");
    let primary = Arc::new(Database::open(&path).unwrap());
    primary
        .exec("CREATE TABLE a (x); CREATE TABLE b (y)")
        .unwrap();
    let reg = D1Registry::open(Arc::clone(&primary)).unwrap();
    let primary_id = reg.primary_id().to_owned();
    let mut model = vec![(primary_id.clone(), "app".to_owned())];

    let got = reg.get(&primary_id).unwrap();
    assert_eq!(got["name"], "app");
    assert_eq!(
        got["num_tables"], 2,
        "the registry's own table is not counted"
    );
    // D1's `meta.size_after` is the same measure (page_count * page_size).
    let size = primary.prepare("SELECT 1").all().unwrap().meta.size_after;
    assert_eq!(got["file_size"], size);
    assert_eq!(reg.get("app").unwrap(), got, "by name too");

    for i in 0..23 {
        let name = format!("db-{i:02}");
        let made = reg
            .create(&json!({"name": name, "primary_location_hint": "weur"}))
            .unwrap();
        assert_eq!(made["name"], name.as_str());
        assert_eq!(made["num_tables"], 0);
        let uuid = made["uuid"].as_str().unwrap().to_owned();
        assert!(dir
            .path()
            .join("d1vec-d1")
            .join(format!("{uuid}.sqlite"))
            .exists());
        model.push((uuid, name));
    }
    let dup = reg.create(&json!({"name": "db-03"})).unwrap_err();
    assert_eq!(problem(&dup), Some(D1Problem::NameTaken));
    let dup = reg.create(&json!({"name": "app"})).unwrap_err();
    assert_eq!(problem(&dup), Some(D1Problem::NameTaken));

    for per_page in [1, 7, 10, 11, 24, 1000] {
        check_list(&reg, &model, None, per_page);
    }
    check_list(&reg, &model, Some("db-07"), 10);
    check_list(&reg, &model, Some("nope"), 10);

    // Data written through one database stays in it.
    let (uuid5, name5) = model[6].clone();
    assert_eq!(name5, "db-05");
    let db5 = reg.database(&uuid5).unwrap();
    db5.exec("CREATE TABLE t (v); INSERT INTO t VALUES (5)")
        .unwrap();
    assert_eq!(reg.get(&uuid5).unwrap()["num_tables"], 1);
    assert_eq!(reg.get("db-04").unwrap()["num_tables"], 0);

    // Deletes, in an order unlike creation.
    for victim in [7usize, 1, 20] {
        let (uuid, _) = model.remove(victim);
        reg.delete(&uuid).unwrap();
        assert!(!dir
            .path()
            .join("d1vec-d1")
            .join(format!("{uuid}.sqlite"))
            .exists());
        assert_eq!(
            problem(&reg.get(&uuid).unwrap_err()),
            Some(D1Problem::NotFound)
        );
        assert_eq!(
            problem(&reg.delete(&uuid).unwrap_err()),
            Some(D1Problem::NotFound)
        );
    }
    reg.delete("db-10").unwrap();
    model.retain(|(_, n)| n != "db-10");
    assert_eq!(
        problem(&reg.delete(&primary_id).unwrap_err()),
        Some(D1Problem::Primary)
    );
    assert_eq!(
        problem(&reg.delete("app").unwrap_err()),
        Some(D1Problem::Primary)
    );
    check_list(&reg, &model, None, 10);

    // Reopen: same uuids, same names, same data.
    drop(db5);
    drop(reg);
    drop(primary);
    let primary = Arc::new(Database::open(&path).unwrap());
    let reg = D1Registry::open(Arc::clone(&primary)).unwrap();
    assert_eq!(reg.primary_id(), primary_id);
    check_list(&reg, &model, None, 10);
    let v = reg
        .database("db-05")
        .unwrap()
        .prepare("SELECT v FROM t")
        .first_column("v")
        .unwrap();
    assert_eq!(v, Some(5.into()));

    // A name and uuid override replace the stored ones.
    drop(reg);
    let wanted = "0f8b7c2e-1d3a-4b5c-8d9e-0a1b2c3d4e5f";
    let reg = D1Registry::open_with(
        Arc::clone(&primary),
        &RegistryOptions {
            name: Some("renamed".into()),
            uuid: Some(wanted.into()),
        },
    )
    .unwrap();
    assert_eq!(reg.primary_id(), wanted);
    assert_eq!(reg.get("renamed").unwrap()["uuid"], wanted);
    drop(reg);
    let taken = D1Registry::open_with(
        Arc::clone(&primary),
        &RegistryOptions {
            name: Some("db-05".into()),
            uuid: None,
        },
    )
    .unwrap_err();
    assert_eq!(problem(&taken), Some(D1Problem::NameTaken));
}

#[test]
fn registry_refuses_bad_bodies_and_pages_with_typed_errors_and_changes_nothing() {
    let reg = D1Registry::open(Arc::new(Database::open_in_memory().unwrap())).unwrap();
    let before = reg.list(None, 1, 1000).unwrap();
    let bad = [
        json!([]),
        json!({}),
        json!({"name": 5}),
        json!({"name": ""}),
        json!({"name": "x".repeat(65)}),
        json!({"name": "a/b"}),
        json!({"name": "tab\there"}),
        json!({"name": "0f8b7c2e-1d3a-4b5c-8d9e-0a1b2c3d4e5f"}),
        json!({"name": "ok", "primary_location_hint": "mars"}),
        json!({"name": "ok", "primary_location_hint": 3}),
        json!({"name": "ok", "jurisdiction": "moon"}),
    ];
    for body in bad {
        let e = reg.create(&body).unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }), "{body}: {e:?}");
    }
    for (page, per_page) in [(0, 10), (1, 10_001), (1, 0)] {
        let e = reg.list(None, page, per_page).unwrap_err();
        assert!(
            matches!(e, Error::InvalidInput { .. }),
            "{page}/{per_page}: {e:?}"
        );
    }
    assert_eq!(reg.list(None, 1, 1000).unwrap(), before);
    assert_eq!(
        problem(&reg.database("nope").unwrap_err()),
        Some(D1Problem::NotFound)
    );
    assert!(D1Registry::open_with(
        Arc::new(Database::open_in_memory().unwrap()),
        &RegistryOptions {
            name: None,
            uuid: Some("not-a-uuid".into())
        }
    )
    .is_err());
}

#[test]
fn an_in_memory_primary_serves_in_memory_databases() {
    let reg = D1Registry::open(Arc::new(Database::open_in_memory().unwrap())).unwrap();
    assert_eq!(reg.get(reg.primary_id()).unwrap()["name"], "memory");
    let made = reg.create(&json!({"name": "scratch"})).unwrap();
    let db = reg.database("scratch").unwrap();
    assert!(db.path().is_none());
    query(
        db.as_ref(),
        &json!({"sql": "CREATE TABLE t (v); INSERT INTO t VALUES (?)", "params": [7]}),
        false,
    )
    .unwrap();
    let same = reg.database(made["uuid"].as_str().unwrap()).unwrap();
    let out = query(same.as_ref(), &json!({"sql": "SELECT v FROM t"}), false).unwrap();
    assert_eq!(out[0]["results"], json!([{"v": 7}]));
    reg.delete("scratch").unwrap();
    assert_eq!(
        problem(&reg.database("scratch").unwrap_err()),
        Some(D1Problem::NotFound)
    );
}

/// Two tenants' rows, as tests/it/isolation.rs sets them up (a subset).
fn tenants_db() -> Database {
    let db = Database::open_in_memory().unwrap();
    db.apply_migrations(&migrate::bundled()).unwrap();
    db.exec(
        "INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('t_a','A','pro','eu'),('t_b','B','pro','us');
         INSERT INTO campaigns (campaign_id, tenant_id, name) VALUES ('c_a1','t_a','A spring'),('c_a2','t_a','A fall'),('c_b1','t_b','B secret');",
    )
    .unwrap();
    db
}

#[test]
fn the_registry_table_is_hidden_from_tenant_sessions() {
    let db = Arc::new(tenants_db());
    let reg = D1Registry::open(Arc::clone(&db)).unwrap();
    reg.create(&json!({"name": "other"})).unwrap();
    let t = db.tenant("t_a").unwrap();
    for sql in [
        format!("SELECT * FROM {TABLE}"),
        format!("SELECT * FROM main.{TABLE}"),
        format!("SELECT count(*) AS n FROM {TABLE}"),
        format!("INSERT INTO {TABLE} (uuid, name, seq, is_primary, created_at) VALUES ('u','n',9,0,'x')"),
        format!("DELETE FROM {TABLE}"),
    ] {
        match query(&t, &json!({ "sql": sql }), false) {
            Err(Error::TenantViolation { .. }) => {}
            Err(other) => panic!("{sql}: expected a tenant violation, got {other:?}"),
            Ok(out) => {
                let text = out.to_string();
                assert!(!text.contains(reg.primary_id()), "{sql} leaked {text}");
                assert!(!text.contains("other"), "{sql} leaked {text}");
                assert_eq!(out[0]["results"].as_array().map(Vec::len), Some(0), "{sql}");
            }
        }
    }
    assert_eq!(reg.list(None, 1, 10).unwrap().0.len(), 2);
}

/// `meta` without the wall-clock fields, which differ from run to run.
fn steady(mut v: Json) -> Json {
    for r in v.as_array_mut().unwrap() {
        let meta = r["meta"].as_object_mut().unwrap();
        meta.remove("duration");
        meta.remove("timings");
    }
    v
}

fn twin() -> Database {
    let db = Database::open_in_memory().unwrap();
    db.exec(
        "CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB);
         INSERT INTO p (name, score, data) VALUES ('a', 1.5, X'0102'), ('b', NULL, NULL), ('c', -2, X'');",
    )
    .unwrap();
    db
}

/// The cases: a body's statements as (sql, params) runs, in order.
fn cases() -> Vec<Vec<(&'static str, Json)>> {
    vec![
        vec![("SELECT * FROM p ORDER BY id", json!([]))],
        vec![(
            "SELECT name, score FROM p WHERE id > ?1 ORDER BY id",
            json!([1]),
        )],
        vec![("SELECT ? AS s, ? AS n, ? AS z", json!(["text", 2.5, null]))],
        vec![(
            "INSERT INTO p (name, score) VALUES (?, ?)",
            json!(["new", 9]),
        )],
        vec![(
            "UPDATE p SET score = score + 1 WHERE score IS NOT NULL",
            json!([]),
        )],
        vec![
            ("INSERT INTO p (name) VALUES ('x')", json!([])),
            ("DELETE FROM p WHERE name = ?", json!(["a"])),
            ("SELECT count(*) AS n FROM p", json!([])),
        ],
        vec![
            ("CREATE TABLE q (k TEXT PRIMARY KEY, v)", json!([])),
            ("INSERT INTO q VALUES ('k1', 1), ('k2', 2)", json!([])),
            ("SELECT * FROM q ORDER BY k", json!([])),
        ],
        vec![("SELECT 1 AS one WHERE 0", json!([]))],
    ]
}

#[test]
fn query_and_raw_equal_the_library_on_the_same_statements() {
    for raw in [false, true] {
        for case in cases() {
            let served = twin();
            let oracle = twin();
            // As one `sql` when only the last statement has params, else as a `batch`.
            let joined = case[..case.len() - 1]
                .iter()
                .all(|(_, p)| p.as_array().unwrap().is_empty());
            let body = if joined {
                json!({
                    "sql": case.iter().map(|(s, _)| *s).collect::<Vec<_>>().join(";\n"),
                    "params": case.last().unwrap().1,
                })
            } else {
                json!({"batch": case.iter().map(|(s, p)| json!({"sql": s, "params": p})).collect::<Vec<_>>()})
            };
            let got = query(&served, &body, raw).unwrap();
            let stmts: Vec<_> = case
                .iter()
                .map(|(s, p)| oracle.prepare(s).bind_json(p.as_array().unwrap()).unwrap())
                .collect();
            let want = oracle.batch(&stmts).unwrap();
            let want: Vec<Json> = want
                .iter()
                .map(|r| {
                    if raw {
                        json!({
                            "results": {"columns": r.columns, "rows": r.raw()},
                            "success": true,
                            "meta": serde_json::to_value(&r.meta).unwrap(),
                        })
                    } else {
                        serde_json::to_value(r).unwrap()
                    }
                })
                .collect();
            assert_eq!(steady(got.clone()), steady(Json::Array(want)), "{body}");
            for r in got.as_array().unwrap() {
                assert_eq!(
                    r["meta"].as_object().unwrap().len(),
                    12,
                    "D1's twelve meta fields"
                );
            }
            // And the databases agree afterwards.
            let dump = |db: &Database| db.prepare("SELECT * FROM p ORDER BY id").raw(true).unwrap();
            assert_eq!(dump(&served), dump(&oracle));
        }
    }
}

#[test]
fn params_bind_to_the_last_statement_of_a_multi_statement_sql() {
    let db = twin();
    let out = query(
        &db,
        &json!({"sql": "INSERT INTO p (name) VALUES ('m'); SELECT name FROM p WHERE name = ?", "params": ["m"]}),
        false,
    )
    .unwrap();
    assert_eq!(out.as_array().unwrap().len(), 2);
    assert_eq!(out[1]["results"], json!([{"name": "m"}]));
    // A placeholder in an earlier statement has nothing bound: refused, nothing kept.
    let e = query(
        &db,
        &json!({"sql": "INSERT INTO p (name) VALUES (?); SELECT 1", "params": ["z"]}),
        false,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidInput {
                what: "bound values",
                ..
            }
        ),
        "{e:?}"
    );
    let n = db
        .prepare("SELECT count(*) AS n FROM p")
        .first_column("n")
        .unwrap();
    assert_eq!(n, Some(4.into()));
}

#[test]
fn errors_are_the_library_errors_and_a_failed_request_changes_nothing() {
    let db = twin();
    let snapshot = |db: &Database| {
        db.prepare("SELECT * FROM p ORDER BY id")
            .raw(false)
            .unwrap()
    };
    let before = snapshot(&db);
    type Check = fn(&Error) -> bool;
    let cases: Vec<(Json, Check)> = vec![
        (json!({"sql": "SELECT * FROM nowhere"}), |e| {
            matches!(e, Error::Sql(_))
        }),
        (
            json!({"sql": "INSERT INTO p (name) VALUES ('gone'); SELECT * FROM nowhere"}),
            |e| matches!(e, Error::Sql(_)),
        ),
        (json!({"sql": "ATTACH DATABASE 'x' AS x"}), |e| {
            matches!(e, Error::NotAllowed(_))
        }),
        (
            json!({"sql": format!("SELECT '{}'", "x".repeat(100_001))}),
            |e| matches!(e, Error::LimitExceeded { .. }),
        ),
        (json!({"sql": "SELECT ?", "params": [1, 2]}), |e| {
            matches!(e, Error::InvalidInput { .. })
        }),
        (json!({"sql": ""}), |e| {
            matches!(e, Error::InvalidInput { .. })
        }),
        (json!({"sql": "  ;  "}), |e| {
            matches!(e, Error::InvalidInput { .. })
        }),
        (json!({}), |e| matches!(e, Error::InvalidInput { .. })),
        (json!({"sql": 1}), |e| {
            matches!(e, Error::InvalidInput { .. })
        }),
        (json!({"sql": "SELECT 1", "params": "x"}), |e| {
            matches!(e, Error::InvalidInput { .. })
        }),
        (json!({"sql": "SELECT ?", "params": [{"a": 1}]}), |e| {
            matches!(e, Error::InvalidInput { .. })
        }),
        (json!({"batch": []}), |e| {
            matches!(e, Error::InvalidInput { .. })
        }),
        (json!({"batch": [1]}), |e| {
            matches!(e, Error::InvalidInput { .. })
        }),
        (json!({"sql": "SELECT 1", "batch": []}), |e| {
            matches!(e, Error::InvalidInput { .. })
        }),
        (
            json!({"batch": [{"sql": "DELETE FROM p"}, {"sql": "SELECT * FROM nowhere"}]}),
            |e| matches!(e, Error::Sql(_)),
        ),
        (
            json!({"sql": "BEGIN; DELETE FROM p; COMMIT; BEGIN; COMMIT"}),
            |e| matches!(e, Error::Split(_)),
        ),
    ];
    for (body, is_expected) in cases {
        for raw in [false, true] {
            let e = query(&db, &body, raw).unwrap_err();
            assert!(is_expected(&e), "{body}: {e:?}");
            assert_eq!(snapshot(&db), before, "{body} changed the database");
        }
    }
}

#[test]
fn a_tenant_target_is_confined_as_tests_it_isolation_requires() {
    let db = tenants_db();
    let admin_rows = |db: &Database| {
        db.prepare("SELECT * FROM campaigns ORDER BY campaign_id")
            .raw(false)
            .unwrap()
    };
    let before = admin_rows(&db);
    let t = db.tenant("t_a").unwrap();
    for sql in [
        "SELECT * FROM main.campaigns",
        "SELECT c.name FROM campaigns c JOIN main.campaigns m ON m.tenant_id = 't_b'",
        "SELECT * FROM sqlite_schema",
        "UPDATE main.campaigns SET name = 'x'",
        "INSERT INTO campaigns (campaign_id, tenant_id, name) VALUES ('c_x', 't_b', 'planted')",
        "PRAGMA table_list",
    ] {
        for raw in [false, true] {
            let e = query(&t, &json!({ "sql": sql }), raw).unwrap_err();
            assert!(
                matches!(e, Error::TenantViolation { .. } | Error::NotAllowed(_)),
                "{sql}: {e:?}"
            );
            assert_eq!(admin_rows(&db), before, "{sql}");
        }
    }
    // Scoped reads: exactly the tenant's rows, as the admin sees them with a filter.
    let got = query(
        &t,
        &json!({"sql": "SELECT campaign_id, name FROM campaigns ORDER BY campaign_id"}),
        true,
    )
    .unwrap();
    let want = db
        .prepare(
            "SELECT campaign_id, name FROM campaigns WHERE tenant_id = 't_a' ORDER BY campaign_id",
        )
        .raw(false)
        .unwrap();
    assert_eq!(got[0]["results"]["rows"], json!(want));
    assert!(!got.to_string().contains("B secret"));
    // A write is stamped with the tenant.
    query(
        &t,
        &json!({"sql": "INSERT INTO campaigns (campaign_id, name) VALUES (?, ?)", "params": ["c_a3", "A new"]}),
        false,
    )
    .unwrap();
    let owner = db
        .prepare("SELECT tenant_id FROM campaigns WHERE campaign_id = 'c_a3'")
        .first_column("tenant_id")
        .unwrap();
    assert_eq!(owner, Some("t_a".into()));
    // A whole-database export is refused to a tenant.
    let store = TransferStore::default();
    let e = export(&t, &store, "id", &json!({"output_format": "polling"}), BASE).unwrap_err();
    assert!(
        matches!(e, Error::TenantViolation { .. } | Error::Forbidden { .. }),
        "{e:?}"
    );
}

/// The key of a transfer URL.
fn key_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

fn md5_of(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What `wrangler d1 execute --remote --file` does, step by step.
fn wrangler_import(
    db: &Database,
    store: &TransferStore,
    uuid: &str,
    sql: &str,
) -> d1vec::Result<Json> {
    let etag = md5_of(sql.as_bytes());
    let init = import(
        db,
        store,
        uuid,
        &json!({"action": "init", "etag": etag}),
        BASE,
    )?;
    let url = init["upload_url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{BASE}/d1vec/transfer/")), "{url}");
    let returned = store.put(key_of(url), sql.as_bytes().to_vec())?;
    assert_eq!(returned, etag, "the ETag wrangler compares with its md5");
    let first = import(
        db,
        store,
        uuid,
        &json!({"action": "ingest", "etag": etag, "filename": init["filename"]}),
        BASE,
    )?;
    let polled = import(
        db,
        store,
        uuid,
        &json!({"action": "poll", "current_bookmark": first["at_bookmark"]}),
        BASE,
    )?;
    assert_eq!(polled, first);
    Ok(first)
}

/// What `wrangler d1 export --remote` does: the downloaded text.
fn wrangler_export(db: &Database, store: &TransferStore, uuid: &str, options: Json) -> String {
    let out = export(
        db,
        store,
        uuid,
        &json!({"output_format": "polling", "dump_options": options}),
        BASE,
    )
    .unwrap();
    assert_eq!(out["status"], "complete");
    assert_eq!(out["success"], true);
    assert!(out["messages"].is_array());
    let url = out["result"]["signed_url"].as_str().unwrap();
    assert!(out["result"]["filename"]
        .as_str()
        .unwrap()
        .ends_with(".sql"));
    String::from_utf8(store.get(key_of(url)).unwrap().to_vec()).unwrap()
}

#[test]
fn import_then_export_round_trips_and_equals_export_sql() {
    let source = twin();
    source
        .exec("CREATE INDEX p_name ON p (name); CREATE VIEW v AS SELECT name FROM p")
        .unwrap();
    let mut script = Vec::new();
    source.export_sql(&Default::default(), &mut script).unwrap();
    let script = String::from_utf8(script).unwrap();

    let target = Database::open_in_memory().unwrap();
    let store = TransferStore::default();
    let done = wrangler_import(&target, &store, "u1", &script).unwrap();
    assert_eq!(done["status"], "complete");
    assert_eq!(done["success"], true);
    let result = &done["result"];
    let statements = d1vec::sql::split::split_statements(&script).unwrap().len();
    assert_eq!(result["num_queries"], statements);
    assert_eq!(result["final_bookmark"], done["at_bookmark"]);
    for field in ["duration", "rows_read", "rows_written", "size_after"] {
        assert!(result["meta"][field].is_number(), "{field}");
    }
    assert!(result["meta"]["rows_written"].as_u64().unwrap() >= 3);

    // The exported text equals the library's, and the data round-tripped.
    let exported = wrangler_export(&target, &store, "u1", json!({}));
    let mut direct = Vec::new();
    target.export_sql(&Default::default(), &mut direct).unwrap();
    assert_eq!(exported.as_bytes(), direct.as_slice());
    assert_eq!(
        exported, script,
        "source and imported copy export the same SQL"
    );

    // dump_options reach the library's options.
    let schema_only = wrangler_export(
        &target,
        &store,
        "u1",
        json!({"no_data": true, "tables": ["p"]}),
    );
    let mut direct = Vec::new();
    target
        .export_sql(
            &d1vec::sql::export::ExportOptions {
                no_data: true,
                no_schema: false,
                tables: vec!["p".into()],
            },
            &mut direct,
        )
        .unwrap();
    assert_eq!(schema_only.as_bytes(), direct.as_slice());
    assert!(!schema_only.contains("INSERT"));
}

#[test]
fn a_failing_import_changes_nothing_and_bad_steps_are_refused() {
    let db = twin();
    let store = TransferStore::default();
    let snapshot = |db: &Database| {
        db.prepare("SELECT * FROM p ORDER BY id")
            .raw(false)
            .unwrap()
    };
    let before = snapshot(&db);
    let e = wrangler_import(
        &db,
        &store,
        "u",
        "INSERT INTO p (name) VALUES ('one');\nINSERT INTO nowhere VALUES (1);\n",
    )
    .unwrap_err();
    assert!(matches!(e, Error::Sql(_)), "{e:?}");
    assert_eq!(snapshot(&db), before);

    let etag = md5_of(b"SELECT 1;");
    let init = import(
        &db,
        &store,
        "u",
        &json!({"action": "init", "etag": etag}),
        BASE,
    )
    .unwrap();
    let key = key_of(init["upload_url"].as_str().unwrap()).to_owned();
    let ingest = |etag: &str, filename: &Json| {
        import(
            &db,
            &store,
            "u",
            &json!({"action": "ingest", "etag": etag, "filename": filename}),
            BASE,
        )
    };
    // Ingest before the upload.
    assert!(matches!(
        ingest(&etag, &init["filename"]),
        Err(Error::InvalidInput { .. })
    ));
    // Contents that do not match the announced md5 are refused by the upload URL.
    let e = store.put(&key, b"DELETE FROM p;".to_vec()).unwrap_err();
    assert!(
        matches!(e, Error::InvalidInput { what: "upload", .. }),
        "{e:?}"
    );
    assert!(matches!(
        ingest(&etag, &init["filename"]),
        Err(Error::InvalidInput { .. })
    ));
    // The right file, once; the URL is then used up.
    store.put(&key, b"SELECT 1;".to_vec()).unwrap();
    assert!(store.put(&key, b"SELECT 1;".to_vec()).is_err());
    // An ingest naming another md5 than the upload's.
    let other = md5_of(b"SELECT 2;");
    assert!(matches!(
        ingest(&other, &init["filename"]),
        Err(Error::InvalidInput { what: "etag", .. })
    ));
    // Another database's upload.
    let e = import(
        &db,
        &store,
        "other",
        &json!({"action": "ingest", "etag": etag, "filename": init["filename"]}),
        BASE,
    );
    assert!(matches!(e, Err(Error::InvalidInput { .. })));
    assert_eq!(snapshot(&db), before);
    for body in [
        json!({"action": "init"}),
        json!({"action": "init", "etag": "xyz"}),
        json!({"action": "launch"}),
        json!({"action": "poll", "current_bookmark": "nope"}),
        json!({"etag": etag}),
        json!("init"),
    ] {
        let e = import(&db, &store, "u", &body, BASE).unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }), "{body}: {e:?}");
    }
    assert!(store.put("unknown-key", b"x".to_vec()).is_err());
    assert!(store.get(&key).is_err(), "an upload URL does not download");
    for body in [
        json!({}),
        json!({"output_format": "file"}),
        json!({"output_format": "polling", "dump_options": {"tables": [1]}}),
        json!({"output_format": "polling", "dump_options": {"no_data": "yes"}}),
        json!({"output_format": "polling", "dump_options": {"tables": ["nowhere"]}}),
    ] {
        assert!(export(&db, &store, "u", &body, BASE).is_err(), "{body}");
    }
    assert_eq!(snapshot(&db), before);
}

#[test]
fn the_transfer_store_is_bounded_and_expires() {
    let db = twin();
    let store = TransferStore::new(TransferLimits {
        max_object_bytes: 64,
        max_total_bytes: 100,
        max_entries: 3,
        ttl: std::time::Duration::from_millis(300),
    });
    let etag = md5_of(&[b'-'; 60]);
    let url = |v: &Json| key_of(v["upload_url"].as_str().unwrap()).to_owned();
    let a = url(&import(
        &db,
        &store,
        "u",
        &json!({"action": "init", "etag": etag}),
        BASE,
    )
    .unwrap());
    let b = url(&import(
        &db,
        &store,
        "u",
        &json!({"action": "init", "etag": etag}),
        BASE,
    )
    .unwrap());
    assert!(matches!(
        store.put(&a, vec![b'-'; 65]),
        Err(Error::LimitExceeded { .. })
    ));
    store.put(&a, vec![b'-'; 60]).unwrap();
    assert!(matches!(
        store.put(&b, vec![b'-'; 60]),
        Err(Error::LimitExceeded { .. })
    ));
    import(
        &db,
        &store,
        "u",
        &json!({"action": "init", "etag": etag}),
        BASE,
    )
    .unwrap();
    let e = import(
        &db,
        &store,
        "u",
        &json!({"action": "init", "etag": etag}),
        BASE,
    )
    .unwrap_err();
    assert!(matches!(e, Error::LimitExceeded { .. }), "{e:?}");
    let e = export(&db, &store, "u", &json!({"output_format": "polling"}), BASE).unwrap_err();
    assert!(
        matches!(e, Error::LimitExceeded { .. }),
        "an export past 64 bytes: {e:?}"
    );
    std::thread::sleep(std::time::Duration::from_millis(350));
    assert!(store.put(&a, b"x".to_vec()).is_err(), "expired");
    import(
        &db,
        &store,
        "u",
        &json!({"action": "init", "etag": etag}),
        BASE,
    )
    .unwrap();
}

/// Random JSON, biased towards the shapes a query body has.
fn arb_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)),
        "[a-z ;?'()*0-9]{0,12}".prop_map(Json::from),
        prop_oneof![
            Just("SELECT 1"),
            Just("SELECT ?"),
            Just("DELETE FROM p"),
            Just("INSERT INTO p (name) VALUES (?)"),
            Just("SELECT * FROM p; DELETE FROM p WHERE id = ?"),
            Just("DROP TABLE p; SELECT * FROM nowhere"),
            Just("UPDATE p SET name = ?1 WHERE id = ?2"),
        ]
        .prop_map(Json::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::vec(
                (
                    prop_oneof![Just("sql"), Just("params"), Just("batch"), Just("x")],
                    inner
                ),
                0..4
            )
            .prop_map(|kv| Json::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Any body: no panic; an error leaves the rows exactly as they were; a success equals
    /// running the same body on a twin through the library's batch.
    #[test]
    fn random_query_bodies_never_panic_and_refusals_change_nothing(body in arb_json(), raw in any::<bool>()) {
        let db = twin();
        let snapshot = |db: &Database| db.prepare("SELECT * FROM p ORDER BY id").raw(true).unwrap();
        let before = snapshot(&db);
        match query(&db, &body, raw) {
            Err(_) => prop_assert_eq!(snapshot(&db), before),
            Ok(out) => prop_assert!(out.as_array().is_some_and(|a| !a.is_empty())),
        }
    }
}
