//! Sealed fields (`platform_connections` tokens): no plaintext anywhere on disk or in any
//! text d1vec prints (the canary), tampering fails with typed errors, and the key file
//! and `D1VEC_MASTER_KEY` are checked.
//!
//! Oracle: the plaintext each test wrote (every sealed value must open to exactly it
//! through `open_secret`), and a byte scan of every file in the database folder for the
//! canary (raw, and as upper/lower hex, the form an export writes a BLOB in).

use std::path::{Path, PathBuf};
use std::process::Command;

use d1vec::keys::{Field, KeyError};
use d1vec::{Database, Error};
use rusqlite::params;

/// Every canary shares this marker; the scans look for it.
const MARK: &str = "CANARY-7f3a9c2e";

fn canary(path: &str) -> String {
    format!("tok_{MARK}_{path}")
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_d1vec"));
    c.env_remove("D1VEC_MASTER_KEY")
        .env_remove("D1VEC_TENANT")
        .env_remove("D1VEC_DB");
    c
}

/// A file database with the bundled schema and tenants `t1`, `t2`.
fn setup(dir: &Path) -> (Database, PathBuf) {
    let path = dir.join("app.sqlite");
    let db = Database::open(&path).unwrap();
    db.apply_bundled().unwrap();
    db.exec(
        "INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('t1','One','pro','eu'),('t2','Two','pro','us')",
    )
    .unwrap();
    (db, path)
}

fn insert_sql(tenant: Option<&str>, id: &str, platform: &str) -> String {
    match tenant {
        Some(t) => format!(
            "INSERT INTO platform_connections (connection_id, tenant_id, platform, handle, access_token_ct, refresh_token_ct) VALUES ('{id}', '{t}', '{platform}', '@{id}', ?1, ?2)"
        ),
        None => format!(
            "INSERT INTO platform_connections (connection_id, platform, handle, access_token_ct, refresh_token_ct) VALUES ('{id}', '{platform}', '@{id}', ?1, ?2)"
        ),
    }
}

/// Where the canary was found, if anywhere: every file under `dir`, searched for the
/// marker raw and in hex. The files are read by `grep` in a child process: this process
/// holds the database open, and opening and closing one of its files here would drop
/// SQLite's POSIX locks on it (see sqlite.org, "How To Corrupt An SQLite Database File",
/// section 2.2).
fn scan_folder(dir: &Path) -> Vec<String> {
    let mut files = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files += 1;
            }
        }
    }
    assert!(files >= 3, "the scan saw only {files} files");
    let hex_mark = hex(MARK.as_bytes());
    let out = Command::new("grep")
        .args([
            "-r",
            "-l",
            "-a",
            "-F",
            "-e",
            MARK,
            "-e",
            &hex_mark,
            "-e",
            &hex_mark.to_uppercase(),
        ])
        .arg(dir)
        .output()
        .unwrap();
    match out.status.code() {
        Some(0) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
        Some(1) => Vec::new(),
        _ => panic!("grep failed: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[track_caller]
fn check_no_canary_text(what: &str, text: &str) {
    assert!(!text.contains(MARK), "{what} leaks the canary: {text}");
}

#[track_caller]
fn check_opens(db: &Database, tenant: &str, id: &str, access: &str, refresh: &str) {
    let s = db.tenant(tenant).unwrap();
    let a = s.open_secret(id, Field::AccessToken).unwrap();
    let r = s.open_secret(id, Field::RefreshToken).unwrap();
    assert_eq!(a.expose(), access, "{tenant}/{id} access");
    assert_eq!(r.expose(), refresh, "{tenant}/{id} refresh");
    assert_eq!(format!("{a} {a:?}"), "[redacted] [redacted]");
}

/// The stored bytes of one field, read with plain SQLite (as `sqlite3` would).
fn stored(path: &Path, id: &str, column: &str) -> rusqlite::types::Value {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        &format!("SELECT {column} FROM platform_connections WHERE connection_id = ?1"),
        [id],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn canary_never_reaches_disk_logs_or_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (db, path) = setup(dir.path());
    // A text index, so that FTS tables are part of the scan.
    db.create_text_index(&d1vec::search::TextSource {
        table: "platform_connections".into(),
        key_column: "connection_id".into(),
        text_column: "handle".into(),
        vector_id_column: None,
        vector_index: None,
    })
    .unwrap();
    let mut expected: Vec<(String, String, String, String)> = Vec::new();
    let mut errors: Vec<String> = Vec::new();

    // 1. Session SQL (INSERT through the tenant's INSTEAD OF triggers), then UPDATE.
    let t1 = db.tenant("t1").unwrap();
    let (a, r) = (canary("session_a"), canary("session_r"));
    t1.prepare(&insert_sql(None, "c_sess", "linkedin"))
        .bind([a.as_str(), r.as_str()])
        .run()
        .unwrap();
    let a2 = canary("session_update");
    t1.prepare(
        "UPDATE platform_connections SET access_token_ct = ?1 WHERE connection_id = 'c_sess'",
    )
    .bind([a2.as_str()])
    .run()
    .unwrap();
    expected.push(("t1".into(), "c_sess".into(), a2, r));
    // A session's script (`d1 execute --tenant`).
    let (a, r) = (canary("session_script_a"), canary("session_script_r"));
    t1.execute(&format!(
        "INSERT INTO platform_connections (connection_id, platform, handle, access_token_ct, refresh_token_ct) VALUES ('c_sess2', 'twitter', '@s2', '{a}', '{r}')"
    ))
    .unwrap();
    expected.push(("t1".into(), "c_sess2".into(), a, r));

    // 2. Admin SQL: prepare/bind, exec with literals.
    let (a, r) = (canary("admin_a"), canary("admin_r"));
    db.prepare(&insert_sql(Some("t2"), "c_admin", "linkedin"))
        .bind([a.as_str(), r.as_str()])
        .run()
        .unwrap();
    expected.push(("t2".into(), "c_admin".into(), a, r));
    let (a, r) = (canary("exec_a"), canary("exec_r"));
    db.exec(&format!(
        "INSERT INTO platform_connections (connection_id, tenant_id, platform, handle, access_token_ct, refresh_token_ct) VALUES ('c_exec', 't2', 'twitter', '@e', '{a}', '{r}')"
    ))
    .unwrap();
    expected.push(("t2".into(), "c_exec".into(), a, r));

    // 3. Import: `d1vec d1 execute --file`, in a child process (its first seal in this
    // folder was made above, so the key file exists already).
    let (a, r) = (canary("import_a"), canary("import_r"));
    let script = dir.path().join("import.sql");
    std::fs::write(
        &script,
        format!(
            "BEGIN TRANSACTION;\nINSERT INTO platform_connections (connection_id, tenant_id, platform, handle, access_token_ct, refresh_token_ct) VALUES ('c_import', 't1', 'facebook', '@i', '{a}', '{r}');\nCOMMIT;\n"
        ),
    )
    .unwrap();
    let out = bin()
        .args(["--db", path.to_str().unwrap(), "d1", "execute", "--file"])
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&script).unwrap();
    let mut logs = String::from_utf8_lossy(&out.stdout).into_owned();
    logs.push_str(&String::from_utf8_lossy(&out.stderr));
    expected.push(("t1".into(), "c_import".into(), a, r));
    // And a tenant's import through the CLI.
    let (a, r) = (canary("cli_tenant_a"), canary("cli_tenant_r"));
    let out = bin()
        .args(["--db", path.to_str().unwrap(), "--tenant", "t2", "--json", "d1", "execute", "--command"])
        .arg(format!(
            "INSERT INTO platform_connections (connection_id, platform, handle, access_token_ct, refresh_token_ct) VALUES ('c_cli', 'tiktok', '@c', '{a}', '{r}'); SELECT * FROM platform_connections"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    logs.push_str(&String::from_utf8_lossy(&out.stdout));
    logs.push_str(&String::from_utf8_lossy(&out.stderr));
    expected.push(("t2".into(), "c_cli".into(), a, r));

    // Plain SELECT shows sealed bytes, never the plaintext (admin and session).
    for (tenant, id, a, _) in &expected {
        let rows = db
            .prepare("SELECT * FROM platform_connections WHERE connection_id = ?1")
            .bind([id.as_str()])
            .all()
            .unwrap();
        check_no_canary_text(
            "admin SELECT",
            &serde_json::to_string(&rows.results).unwrap(),
        );
        let rows = db.tenant(tenant).unwrap().prepare("SELECT access_token_ct, CAST(access_token_ct AS TEXT) AS t, hex(access_token_ct) AS h FROM platform_connections WHERE connection_id = ?1").bind([id.as_str()]).all().unwrap();
        let text = serde_json::to_string(&rows.results).unwrap();
        check_no_canary_text("session SELECT", &text);
        assert!(!text.contains(&hex(a.as_bytes()).to_uppercase()));
        assert!(matches!(
            stored(&path, id, "access_token_ct"),
            rusqlite::types::Value::Blob(_)
        ));
    }

    // Errors the canary can be part of.
    let t2 = db.tenant("t2").unwrap();
    let c = canary("error");
    let attempts: Vec<d1vec::Result<_>> = vec![
        // UNIQUE: the same connection id again.
        t1.prepare(&insert_sql(None, "c_sess", "linkedin")).bind([c.as_str(), c.as_str()]).run(),
        db.prepare(&insert_sql(Some("t2"), "c_admin", "linkedin")).bind([c.as_str(), c.as_str()]).run(),
        // CHECK: a platform that does not exist.
        t1.prepare(&insert_sql(None, "c_bad", "myspace")).bind([c.as_str(), c.as_str()]).run(),
        // Another tenant's row.
        t1.prepare(&insert_sql(Some("t2"), "c_x", "linkedin")).bind([c.as_str(), c.as_str()]).run(),
        t1.prepare("UPDATE platform_connections SET access_token_ct = ?1 WHERE connection_id = 'c_admin' RETURNING nope").bind([c.as_str()]).run(),
        // Unknown table and a foreign key failure (tenant that does not exist).
        db.prepare("INSERT INTO platform_connection (access_token_ct) VALUES (?1)").bind([c.as_str()]).run(),
        db.prepare(&insert_sql(Some("t_none"), "c_fk", "linkedin")).bind([c.as_str(), c.as_str()]).run(),
        // Reading the keys table from a session.
        t2.prepare("SELECT * FROM tenant_keys").all(),
    ];
    for e in attempts {
        errors.push(e.unwrap_err().to_string());
    }
    errors.push(
        t1.open_secret("c_admin", Field::AccessToken)
            .unwrap_err()
            .to_string(),
    );
    errors.push(
        t1.open_secret("c_nope", Field::AccessToken)
            .unwrap_err()
            .to_string(),
    );
    let out = bin()
        .args(["--db", path.to_str().unwrap(), "--json", "d1", "execute", "--command"])
        .arg(format!("INSERT INTO platform_connections (connection_id, tenant_id, platform, handle, access_token_ct) VALUES ('c_admin', 't2', 'linkedin', '@z', '{c}')"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    logs.push_str(&String::from_utf8_lossy(&out.stderr));

    let export = dir.path().join("export.sql");
    let mut file = std::fs::File::create(&export).unwrap();
    db.export_sql(&Default::default(), &mut file).unwrap();
    drop(file);

    // Every value opens to what was written; nothing leaked.
    let check_all = |db: &Database, logs: &str, errors: &[String], when: &str| {
        for (tenant, id, a, r) in &expected {
            check_opens(db, tenant, id, a, r);
        }
        for e in errors {
            check_no_canary_text(when, e);
        }
        check_no_canary_text(when, logs);
        assert_eq!(scan_folder(dir.path()), Vec::<String>::new(), "{when}");
    };
    check_all(&db, &logs, &errors, "after writes");

    // After rotation (a tenant, then the master key).
    let rot = db.rotate_tenant_key("t1").unwrap();
    assert_eq!(rot.fields_resealed, 6);
    db.rotate_master_key().unwrap();
    let out = bin()
        .args(["--db", path.to_str().unwrap(), "keys", "rotate", "--all"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    logs.push_str(&String::from_utf8_lossy(&out.stdout));
    logs.push_str(&String::from_utf8_lossy(&out.stderr));
    check_all(&db, &logs, &errors, "after rotation");
    drop((t1, t2));
    drop(db);

    // After a crash: a child rotating every key, killed mid-way, then reopened.
    for delay_ms in [0u64, 3, 10, 30] {
        let mut child = bin()
            .args(["--db", path.to_str().unwrap(), "keys", "rotate", "--all"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        logs.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(
        scan_folder(dir.path()),
        Vec::<String>::new(),
        "after the crash, before reopening"
    );
    let db = Database::open(&path).unwrap();
    check_all(&db, &logs, &errors, "after a crash");
}

#[test]
fn export_and_import_keep_tokens_sealed_and_openable() {
    let dir = tempfile::tempdir().unwrap();
    let (db, path) = setup(dir.path());
    let (a, r) = (canary("export_a"), canary("export_r"));
    db.prepare(&insert_sql(Some("t1"), "c1", "linkedin"))
        .bind([a.as_str(), r.as_str()])
        .run()
        .unwrap();
    let mut dump = Vec::new();
    db.export_sql(&Default::default(), &mut dump).unwrap();
    let dump = String::from_utf8(dump).unwrap();
    check_no_canary_text("export", &dump);
    assert!(!dump.to_lowercase().contains(&hex(MARK.as_bytes())));
    // Restore into another folder with the same key file: everything opens.
    let other = tempfile::tempdir().unwrap();
    let restored = other.path().join("restored.sqlite");
    std::fs::copy(
        dir.path().join("app.sqlite.key"),
        other.path().join("restored.sqlite.key"),
    )
    .unwrap();
    let db2 = Database::open(&restored).unwrap();
    db2.execute(&dump).unwrap();
    check_opens(&db2, "t1", "c1", &a, &r);
    // The same bytes: the import did not seal the sealed values again.
    assert_eq!(
        stored(&path, "c1", "access_token_ct"),
        stored(&restored, "c1", "access_token_ct")
    );
    // Without the key file, the values stay sealed and fail with a typed error.
    let third = tempfile::tempdir().unwrap();
    let db3 = Database::open(third.path().join("x.sqlite")).unwrap();
    db3.execute(&dump).unwrap();
    let e = db3
        .tenant("t1")
        .unwrap()
        .open_secret("c1", Field::AccessToken)
        .unwrap_err();
    assert!(matches!(e, Error::Key(KeyError::MissingKey { .. })), "{e}");
    check_no_canary_text("missing key error", &e.to_string());
}

/// Two tenants, two connections each, sealed; then one rotation so that versions 1
/// (retired) and 2 (active) exist for `t1`.
fn tamper_setup(dir: &Path) -> (Database, PathBuf) {
    let (db, path) = setup(dir);
    for (t, id) in [("t1", "a1"), ("t1", "a2"), ("t2", "b1")] {
        db.prepare(&insert_sql(Some(t), id, "linkedin"))
            .bind([format!("{id}-access"), format!("{id}-refresh")])
            .run()
            .unwrap();
    }
    (db, path)
}

#[track_caller]
fn check_tampered(db: &Database, tenant: &str, id: &str, field: Field) {
    let e = db
        .tenant(tenant)
        .unwrap()
        .open_secret(id, field)
        .unwrap_err();
    assert!(
        matches!(e, Error::Key(KeyError::Tampered { .. })),
        "{tenant}/{id}: {e}"
    );
    assert_eq!(e.code(), d1vec::ErrorCode::Internal);
    for secret in ["a1-", "a2-", "b1-"] {
        assert!(!e.to_string().contains(secret), "{e}");
    }
}

/// Runs `sql` on the database file with plain SQLite: an attacker (or a bug) editing the
/// stored bytes, outside d1vec's triggers.
fn raw(path: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(sql).unwrap();
}

#[test]
fn ciphertext_swapped_between_rows_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (db, path) = tamper_setup(dir.path());
    let (a1, a2) = (
        stored(&path, "a1", "access_token_ct"),
        stored(&path, "a2", "access_token_ct"),
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    let put = "UPDATE platform_connections SET access_token_ct = ?1 WHERE connection_id = ?2";
    conn.execute(put, params![a2, "a1"]).unwrap();
    conn.execute(put, params![a1, "a2"]).unwrap();
    drop(conn);
    check_tampered(&db, "t1", "a1", Field::AccessToken);
    check_tampered(&db, "t1", "a2", Field::AccessToken);
    // The untouched column still opens.
    assert_eq!(
        db.tenant("t1")
            .unwrap()
            .open_secret("a1", Field::RefreshToken)
            .unwrap()
            .expose(),
        "a1-refresh"
    );
}

#[test]
fn ciphertext_swapped_between_columns_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (db, path) = tamper_setup(dir.path());
    raw(&path, "UPDATE platform_connections SET access_token_ct = refresh_token_ct, refresh_token_ct = access_token_ct WHERE connection_id = 'a1'");
    check_tampered(&db, "t1", "a1", Field::AccessToken);
    check_tampered(&db, "t1", "a1", Field::RefreshToken);
}

#[test]
fn ciphertext_moved_between_tenants_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (db, path) = tamper_setup(dir.path());
    raw(&path, "UPDATE platform_connections SET access_token_ct = (SELECT access_token_ct FROM platform_connections WHERE connection_id = 'a1') WHERE connection_id = 'b1'");
    check_tampered(&db, "t2", "b1", Field::AccessToken);
    // Same through admin SQL: a sealed value is never sealed again, so it stays moved.
    db.exec("UPDATE platform_connections SET refresh_token_ct = (SELECT refresh_token_ct FROM platform_connections WHERE connection_id = 'a1') WHERE connection_id = 'b1'").unwrap();
    check_tampered(&db, "t2", "b1", Field::RefreshToken);
    // Wrapped data keys swapped between tenants do not unwrap either.
    raw(&path, "UPDATE tenant_keys SET wrapped_key = (SELECT wrapped_key FROM tenant_keys k WHERE k.tenant_id != tenant_keys.tenant_id)");
    let db = Database::open(&path).unwrap();
    let e = db
        .tenant("t1")
        .unwrap()
        .open_secret("a2", Field::AccessToken)
        .unwrap_err();
    assert!(matches!(e, Error::Key(KeyError::Tampered { .. })), "{e}");
}

#[test]
fn flipped_bit_fails_anywhere_in_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let (db, path) = tamper_setup(dir.path());
    let rusqlite::types::Value::Blob(original) = stored(&path, "a1", "access_token_ct") else {
        panic!("not sealed")
    };
    // Every byte after the version (version changes are their own test), one bit each.
    for at in 4..original.len() {
        let mut bytes = original.clone();
        bytes[at] ^= 1 << (at % 8);
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE platform_connections SET access_token_ct = ?1 WHERE connection_id = 'a1'",
            params![bytes],
        )
        .unwrap();
        drop(conn);
        check_tampered(&db, "t1", "a1", Field::AccessToken);
    }
}

#[test]
fn changed_key_version_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (db, path) = tamper_setup(dir.path());
    db.rotate_tenant_key("t1").unwrap();
    // Sealed under version 2 now; claim version 1 (which exists, retired).
    raw(&path, "UPDATE platform_connections SET access_token_ct = CAST(X'00000001' || substr(access_token_ct, 5) AS BLOB) WHERE connection_id = 'a1'");
    check_tampered(&db, "t1", "a1", Field::AccessToken);
    // A version that does not exist: a missing key.
    raw(&path, "UPDATE platform_connections SET access_token_ct = CAST(X'00000063' || substr(access_token_ct, 5) AS BLOB) WHERE connection_id = 'a2'");
    let e = db
        .tenant("t1")
        .unwrap()
        .open_secret("a2", Field::AccessToken)
        .unwrap_err();
    assert!(matches!(e, Error::Key(KeyError::MissingKey { .. })), "{e}");
    // A plaintext put in by another program is not taken as a sealed value.
    raw(&path, "UPDATE platform_connections SET refresh_token_ct = 'a2-refresh' WHERE connection_id = 'a2'");
    check_tampered(&db, "t1", "a2", Field::RefreshToken);
    // Every attempt was audited, none with a secret in it.
    let audit = db
        .prepare("SELECT outcome, details FROM audit_logs WHERE tenant_id = 't1' AND action = 'connections.read_secret' ORDER BY rowid")
        .raw(false)
        .unwrap();
    assert_eq!(audit.len(), 3);
    assert!(audit.iter().all(|r| r[0] == "error"));
}

#[test]
fn open_secret_is_audited_and_scoped_to_the_tenant() {
    let db = Database::open_in_memory().unwrap();
    db.apply_migrations(&d1vec::sql::migrate::bundled())
        .unwrap();
    db.exec("INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('t1','One','pro','eu'),('t2','Two','pro','us')").unwrap();
    db.prepare(&insert_sql(Some("t1"), "c1", "linkedin"))
        .bind(["acc", "ref"])
        .run()
        .unwrap();
    let t1 = db.tenant("t1").unwrap();
    assert_eq!(
        t1.open_secret("c1", Field::AccessToken).unwrap().expose(),
        "acc"
    );
    assert_eq!(
        t1.open_secret("c1", Field::RefreshToken).unwrap().expose(),
        "ref"
    );
    // Another tenant cannot name the row.
    let e = db
        .tenant("t2")
        .unwrap()
        .open_secret("c1", Field::AccessToken)
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    let audit = db
        .prepare("SELECT tenant_id, action, resource_id, outcome, prev_hash IS NULL AS first FROM audit_logs ORDER BY rowid")
        .raw(false)
        .unwrap();
    assert_eq!(audit.len(), 3, "{audit:?}");
    assert_eq!(audit[0][0], "t1");
    assert_eq!(audit[0][1], "connections.read_secret");
    assert_eq!(audit[0][2], "c1");
    assert_eq!(audit[0][4], 1);
    assert_eq!(audit[1][4], 0, "the second row chains to the first");
    // The session sees the sealed bytes, and the key version of its row.
    let rows = t1
        .prepare("SELECT typeof(access_token_ct) AS t, length(access_token_ct) AS n, key_version FROM platform_connections")
        .all()
        .unwrap();
    assert_eq!(rows.results[0]["t"], "blob");
    assert_eq!(rows.results[0]["n"], 4 + 12 + 3 + 16);
    assert_eq!(rows.results[0]["key_version"], 1);
    // A session write of an unchanged token leaves it alone; a new one is sealed.
    let before = db
        .prepare("SELECT access_token_ct FROM platform_connections")
        .raw(false)
        .unwrap();
    t1.exec("UPDATE platform_connections SET handle = '@new'")
        .unwrap();
    let after = db
        .prepare("SELECT access_token_ct FROM platform_connections")
        .raw(false)
        .unwrap();
    assert_eq!(before, after);
    t1.exec("UPDATE platform_connections SET access_token_ct = 'acc2'")
        .unwrap();
    assert_eq!(
        t1.open_secret("c1", Field::AccessToken).unwrap().expose(),
        "acc2"
    );
}

#[test]
fn rotation_reseals_and_retires() {
    let dir = tempfile::tempdir().unwrap();
    let (db, path) = tamper_setup(dir.path());
    let before = db.key_status().unwrap();
    assert_eq!(before.len(), 2);
    assert!(before
        .iter()
        .all(|s| s.active_version == 1 && !s.due && s.age_days == 0));
    let r = db.rotate_tenant_key("t1").unwrap();
    assert_eq!(
        (r.from_version, r.to_version, r.fields_resealed),
        (Some(1), 2, 4)
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    let versions: Vec<(String, u32, String)> = conn
        .prepare("SELECT tenant_id, version, status FROM tenant_keys ORDER BY tenant_id, version")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        versions,
        vec![
            ("t1".into(), 1, "retired".into()),
            ("t1".into(), 2, "active".into()),
            ("t2".into(), 1, "active".into())
        ]
    );
    let v: Vec<u32> = conn
        .prepare("SELECT DISTINCT substr(hex(access_token_ct), 1, 8) = '00000002' AND key_version = 2 FROM platform_connections WHERE tenant_id = 't1'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(v, vec![1]);
    // Nothing is due yet; make t2's key due and rotate the due ones.
    assert!(db.rotate_due_keys(false).unwrap().is_empty());
    conn.execute(
        "UPDATE tenant_keys SET rotate_after = '2000-01-01T00:00:00.000Z' WHERE tenant_id = 't2'",
        [],
    )
    .unwrap();
    let due = db.key_status().unwrap();
    assert_eq!(
        due.iter()
            .filter(|s| s.due)
            .map(|s| s.tenant.as_str())
            .collect::<Vec<_>>(),
        vec!["t2"]
    );
    let rotated = db.rotate_due_keys(false).unwrap();
    assert_eq!(
        rotated
            .iter()
            .map(|r| r.tenant.as_str())
            .collect::<Vec<_>>(),
        vec!["t2"]
    );
    // The master key: a second key in the file, then only it.
    let m = db.rotate_master_key().unwrap();
    // t1: versions 1 and 2; t2: versions 1 and 2.
    assert_eq!(m.data_keys_rewrapped, 4);
    assert_eq!(m.retired_master_key_ids.len(), 1);
    let file = std::fs::read_to_string(dir.path().join("app.sqlite.key")).unwrap();
    assert_eq!(file.lines().count(), 2, "header and one key");
    assert!(file.lines().nth(1).unwrap().starts_with(&m.master_key_id));
    drop(db);
    let db = Database::open(&path).unwrap();
    for (t, id) in [("t1", "a1"), ("t1", "a2"), ("t2", "b1")] {
        check_opens(
            &db,
            t,
            id,
            &format!("{id}-access"),
            &format!("{id}-refresh"),
        );
    }
    // A tenant that does not exist.
    let e = db.rotate_tenant_key("t_none").unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
}

#[cfg(unix)]
#[test]
fn readable_key_file_is_refused_at_open() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let (db, path) = tamper_setup(dir.path());
    drop(db);
    let key = dir.path().join("app.sqlite.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Database::open(&path).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Key(KeyError::KeyFilePermissions { mode: 0o644, .. })
        ),
        "{e}"
    );
    let out = bin()
        .args(["--db", path.to_str().unwrap(), "--json", "keys", "status"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["code"], 500);
    assert!(err["error"].as_str().unwrap().contains("chmod 600"));
}

#[test]
fn key_file_is_created_only_when_a_key_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quiet.sqlite");
    let out = bin()
        .args(["--db", path.to_str().unwrap(), "d1", "migrations", "apply"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!dir.path().join("quiet.sqlite.key").exists());
    assert!(String::from_utf8_lossy(&out.stderr).is_empty());
    let out = bin()
        .args(["--db", path.to_str().unwrap(), "d1", "execute", "--command"])
        .arg("INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('t1','One','pro','eu'); INSERT INTO platform_connections (connection_id, tenant_id, platform, handle, access_token_ct) VALUES ('c1','t1','linkedin','@a','tok')")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("created the master key file").count(),
        1,
        "{stderr}"
    );
    assert!(dir.path().join("quiet.sqlite.key").exists());
}

#[test]
fn bad_master_key_variable_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("env.sqlite");
    let secretish = "c2VjcmV0LXRoYXQtaXMtdG9vLXNob3J0";
    for value in [secretish, "###"] {
        let out = bin()
            .env("D1VEC_MASTER_KEY", value)
            .args(["--db", path.to_str().unwrap(), "--json", "keys", "status"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("D1VEC_MASTER_KEY"), "{stderr}");
        assert!(!stderr.contains(value), "{stderr}");
        let err: serde_json::Value = serde_json::from_str(stderr.trim()).unwrap();
        assert_eq!(err["code"], 400, "{stderr}");
    }
    // A good key: tokens sealed under it, no key file written, and the same key opens them.
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    for args in [
        vec!["d1", "migrations", "apply"],
        vec!["d1", "execute", "--command", "INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('t1','One','pro','eu'); INSERT INTO platform_connections (connection_id, tenant_id, platform, handle, access_token_ct) VALUES ('c1','t1','linkedin','@a','tok-env')"],
    ] {
        let out = bin()
            .env("D1VEC_MASTER_KEY", &key)
            .args(["--db", path.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(!dir.path().join("env.sqlite.key").exists());
    let db = Database::builder()
        .key_provider(std::sync::Arc::new(
            d1vec::keys::EnvKey::parse(&key).unwrap(),
        ))
        .open(&path)
        .unwrap();
    let t1 = db.tenant("t1").unwrap();
    assert_eq!(
        t1.open_secret("c1", Field::AccessToken).unwrap().expose(),
        "tok-env"
    );
    // Another key cannot open them.
    let other = base64::engine::general_purpose::STANDARD.encode([43u8; 32]);
    let db = Database::builder()
        .key_provider(std::sync::Arc::new(
            d1vec::keys::EnvKey::parse(&other).unwrap(),
        ))
        .open(&path)
        .unwrap();
    let e = db
        .tenant("t1")
        .unwrap()
        .open_secret("c1", Field::AccessToken)
        .unwrap_err();
    assert!(matches!(e, Error::Key(KeyError::MissingKey { .. })), "{e}");
}
