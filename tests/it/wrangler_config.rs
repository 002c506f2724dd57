//! wrangler's project files: `wrangler.toml` and `wrangler.jsonc` in the shapes Cloudflare
//! documents, found the way wrangler finds them, and the `d1vec d1 … DB --local` commands
//! that open wrangler's own local SQLite file. The file name is checked against one that
//! wrangler 4.85.0 created (see `src/wrangler/state.rs`); `tests/clients/wrangler_local.sh`
//! runs the real wrangler against the same files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use d1vec::wrangler::config::{find, WranglerConfig};
use d1vec::wrangler::state::{d1_sqlite_path, durable_object_id_from_name, D1_UNIQUE_KEY};
use serde_json::Value;

/// The TOML shape of Cloudflare's configuration docs: two databases, one with every
/// migrations key, a vectorize binding, and an environment with its own bindings.
const TOML: &str = r#"
name = "my-worker"
main = "src/index.ts"
compatibility_date = "2024-09-23"

[[d1_databases]]
binding = "DB"
database_name = "prod-d1-tutorial"
database_id = "4e1c28a9-90e4-41da-8b4b-6cf36e5abb29"

[[d1_databases]]
binding = "ANALYTICS"
database_name = "analytics"
database_id = "0f9b2c1e-6a1d-4c55-9d1b-3f2a8e7c6b10"
preview_database_id = "preview-analytics"
migrations_dir = "db/migrations"
migrations_table = "schema_history"
migrations_pattern = "db/migrations/*/migration.sql"

[[vectorize]]
binding = "VECTORIZE"
index_name = "embeddings-index"

[env.staging]
name = "my-worker-staging"

[[env.staging.d1_databases]]
binding = "DB"
database_name = "staging-db"
database_id = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
"#;

/// The JSONC shape of the same docs: comments and trailing commas.
const JSONC: &str = r#"
{
  // wrangler.jsonc
  "$schema": "node_modules/wrangler/config-schema.json",
  "name": "my-worker",
  "compatibility_date": "2024-09-23",
  /* D1 */
  "d1_databases": [
    {
      "binding": "DB", // available in the Worker on env.DB
      "database_name": "prod-d1-tutorial",
      "database_id": "4e1c28a9-90e4-41da-8b4b-6cf36e5abb29",
      "migrations_table": "",
    },
  ],
  "vectorize": [
    { "binding": "VECTORIZE", "index_name": "embeddings-index", },
  ],
}
"#;

#[test]
fn toml_fixture_reads_every_documented_key() {
    let c = WranglerConfig::parse(Path::new("/p/wrangler.toml"), TOML, None).unwrap();
    assert_eq!(c.d1_databases.len(), 2);
    let db = c.database("DB").unwrap();
    assert_eq!(c.database("prod-d1-tutorial").unwrap(), db);
    assert_eq!(db.local_id(), "4e1c28a9-90e4-41da-8b4b-6cf36e5abb29");
    assert_eq!(db.migrations_dir(), "migrations");
    assert_eq!(db.migrations_table(), "d1_migrations");
    let an = c.database("analytics").unwrap();
    assert_eq!(an.binding, "ANALYTICS");
    assert_eq!(
        an.local_id(),
        "preview-analytics",
        "preview id wins locally"
    );
    assert_eq!(an.migrations_dir(), "db/migrations");
    assert_eq!(an.migrations_table(), "schema_history");
    assert_eq!(
        an.migrations_pattern.as_deref(),
        Some("db/migrations/*/migration.sql")
    );
    assert_eq!(c.index_name("VECTORIZE"), "embeddings-index");
    assert_eq!(c.index_name("other-index"), "other-index");
    let err = c.database("nope").unwrap_err().to_string();
    assert!(
        err.contains("`nope`") && err.contains("DB, ANALYTICS"),
        "{err}"
    );
}

#[test]
fn environments_do_not_inherit_bindings() {
    let c = WranglerConfig::parse(Path::new("/p/wrangler.toml"), TOML, Some("staging")).unwrap();
    assert_eq!(c.d1_databases.len(), 1);
    assert_eq!(
        c.database("DB").unwrap().local_id(),
        "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    );
    assert!(c.database("analytics").is_err());
    assert!(c.vectorize.is_empty());
    let err = WranglerConfig::parse(Path::new("/p/wrangler.toml"), TOML, Some("prod"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no environment `prod`"), "{err}");
}

#[test]
fn jsonc_fixture_with_comments_and_trailing_commas() {
    let c = WranglerConfig::parse(Path::new("/p/wrangler.jsonc"), JSONC, None).unwrap();
    let db = c.database("prod-d1-tutorial").unwrap();
    assert_eq!(db.binding, "DB");
    // An empty migrations_table means the default, as in wrangler (`||`).
    assert_eq!(db.migrations_table(), "d1_migrations");
    assert_eq!(c.index_name("VECTORIZE"), "embeddings-index");
    // The same text as plain JSON (comments stripped) gives the same config.
    let json: String = JSONC
        .lines()
        .map(|l| l.split("//").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
        .replace("/* D1 */", "")
        .replace(",\n    },", "\n    }")
        .replace("\"\",\n", "\"\"\n")
        .replace(", }", " }")
        .replace("},\n  ],", "}\n  ],")
        .replace("],\n}", "]\n}");
    assert!(serde_json::from_str::<Value>(&json).is_ok(), "{json}");
    let plain = WranglerConfig::parse(Path::new("/p/wrangler.json"), &json, None).unwrap();
    assert_eq!(plain.d1_databases, c.d1_databases);
    assert_eq!(plain.vectorize, c.vectorize);
}

#[test]
fn broken_config_is_a_typed_error_naming_the_file() {
    for (name, text) in [
        ("wrangler.toml", "[[d1_databases]]\nbinding = 3\n"),
        (
            "wrangler.jsonc",
            "{ \"d1_databases\": [ { \"binding\": \"DB\" } ",
        ),
        (
            "wrangler.json",
            "{ \"d1_databases\": { \"binding\": \"DB\" } }",
        ),
    ] {
        let err = WranglerConfig::parse(Path::new(name), text, None).unwrap_err();
        assert!(
            matches!(err, d1vec::error::Error::WranglerConfig { ref path, .. } if path == Path::new(name)),
            "{name}: {err}"
        );
    }
}

/// wrangler looks for wrangler.json up the tree first, then wrangler.jsonc, then
/// wrangler.toml: a parent's wrangler.json beats a wrangler.toml in the current folder.
#[test]
fn found_the_way_wrangler_finds_it() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("a/b");
    std::fs::create_dir_all(&sub).unwrap();
    assert_eq!(find(&sub), None);
    std::fs::write(dir.path().join("a/b/wrangler.toml"), "").unwrap();
    assert_eq!(find(&sub), Some(sub.join("wrangler.toml")));
    std::fs::write(dir.path().join("a/wrangler.jsonc"), "{}").unwrap();
    assert_eq!(find(&sub), Some(dir.path().join("a/wrangler.jsonc")));
    std::fs::write(dir.path().join("wrangler.json"), "{}").unwrap();
    assert_eq!(find(&sub), Some(dir.path().join("wrangler.json")));
}

#[test]
fn migrations_follow_dir_and_pattern_named_relative_to_the_dir() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    for f in [
        "migrations/0001_a.sql",
        "migrations/0002_b.sql",
        "migrations/notes.txt",
        "db/migrations/0001_init/migration.sql",
        "db/migrations/0002_more/migration.sql",
        "db/migrations/0003_skip/other.sql",
    ] {
        std::fs::create_dir_all(p.join(f).parent().unwrap()).unwrap();
        std::fs::write(p.join(f), format!("-- {f}")).unwrap();
    }
    std::fs::write(p.join("wrangler.toml"), TOML).unwrap();
    let c = WranglerConfig::load(&p.join("wrangler.toml"), None).unwrap();
    let names = |db: &str| -> Vec<String> {
        c.migrations(c.database(db).unwrap())
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect()
    };
    assert_eq!(names("DB"), ["0001_a.sql", "0002_b.sql"]);
    assert_eq!(
        names("ANALYTICS"),
        ["0001_init/migration.sql", "0002_more/migration.sql"]
    );
}

#[test]
fn sqlite_path_is_miniflares() {
    // The id wrangler 4.85.0 gave this database on disk.
    let id = "11111111-2222-3333-4444-555555555555";
    assert_eq!(
        d1_sqlite_path(Path::new("/s"), id),
        PathBuf::from(
            "/s/v3/d1/miniflare-D1DatabaseObject/f023adf8de81e80d62670e09f086149af129cccda34c51f26517069258c53e8c.sqlite"
        )
    );
    // Distinct names, distinct 64-hex-digit ids.
    let a = durable_object_id_from_name(D1_UNIQUE_KEY, "a");
    let b = durable_object_id_from_name(D1_UNIQUE_KEY, "b");
    assert_ne!(a, b);
    assert!(a.len() == 64 && a.bytes().all(|c| c.is_ascii_hexdigit()));
}

fn run_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_d1vec"))
        .current_dir(cwd)
        .args(args)
        .env_remove("D1VEC_TENANT")
        .env_remove("D1VEC_DB")
        .env_remove("D1VEC_PERSIST_TO")
        .env_remove("D1VEC_WRANGLER_CONFIG")
        .output()
        .unwrap()
}

#[track_caller]
fn ok_in(cwd: &Path, args: &[&str]) -> Value {
    let out = run_in(cwd, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The commands as Cloudflare's docs write them work in a wrangler project, on the file
/// wrangler would use, with the migrations folder and table from the config.
#[test]
fn cli_drop_in_uses_wranglers_file_and_table() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("wrangler.toml"), TOML).unwrap();
    std::fs::create_dir_all(p.join("migrations")).unwrap();
    std::fs::write(
        p.join("migrations/0001_t.sql"),
        "CREATE TABLE t (x INTEGER);",
    )
    .unwrap();
    std::fs::create_dir_all(p.join("src")).unwrap();
    let cwd = p.join("src"); // found upward, state next to the config
    let applied = ok_in(
        &cwd,
        &[
            "--json",
            "d1",
            "migrations",
            "apply",
            "DB",
            "--local",
            "--yes",
        ],
    );
    assert_eq!(applied["applied"], serde_json::json!(["0001_t.sql"]));
    ok_in(
        &cwd,
        &[
            "d1",
            "execute",
            "prod-d1-tutorial",
            "--command",
            "INSERT INTO t VALUES (41), (1)",
            "--json",
        ],
    );
    let file = d1_sqlite_path(
        &p.join(".wrangler/state"),
        "4e1c28a9-90e4-41da-8b4b-6cf36e5abb29",
    );
    // The oracle: SQLite itself, on the file wrangler would open.
    let conn = rusqlite::Connection::open(&file).unwrap();
    let sum: i64 = conn
        .query_row("SELECT sum(x) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sum, 42);
    let name: String = conn
        .query_row("SELECT name FROM d1_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(name, "0001_t.sql");
    // Nothing went to --db's default.
    assert!(!cwd.join(".d1vec").exists());

    // --persist-to: another root, relative to the current folder.
    ok_in(
        &cwd,
        &[
            "--json",
            "d1",
            "execute",
            "DB",
            "--persist-to",
            "st",
            "--command",
            "CREATE TABLE u (y)",
        ],
    );
    assert!(d1_sqlite_path(&cwd.join("st"), "4e1c28a9-90e4-41da-8b4b-6cf36e5abb29").is_file());

    // A custom migrations_table holds the bookkeeping; d1_migrations is not created.
    std::fs::create_dir_all(p.join("db/migrations/0001_init")).unwrap();
    std::fs::write(
        p.join("db/migrations/0001_init/migration.sql"),
        "CREATE TABLE a (z);",
    )
    .unwrap();
    ok_in(&cwd, &["--json", "d1", "migrations", "apply", "ANALYTICS"]);
    let listed = ok_in(&cwd, &["--json", "d1", "migrations", "list", "analytics"]);
    assert_eq!(listed[0]["name"], "0001_init/migration.sql");
    assert!(listed[0]["applied_at"].is_string());
    let file = d1_sqlite_path(&p.join(".wrangler/state"), "preview-analytics");
    let conn = rusqlite::Connection::open(&file).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tables, ["a", "schema_history"]);

    // export by DB, and --env.
    let out = p.join("dump.sql");
    ok_in(
        &cwd,
        &[
            "--json",
            "d1",
            "export",
            "DB",
            "--output",
            out.to_str().unwrap(),
        ],
    );
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .contains("INSERT INTO \"t\""));
    ok_in(
        &cwd,
        &[
            "--json",
            "d1",
            "execute",
            "DB",
            "--env",
            "staging",
            "--command",
            "CREATE TABLE s (q)",
        ],
    );
    assert!(d1_sqlite_path(
        &p.join(".wrangler/state"),
        "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    )
    .is_file());
}

#[test]
fn remote_and_unknown_databases_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("wrangler.jsonc"), JSONC).unwrap();
    for args in [
        &[
            "d1",
            "execute",
            "DB",
            "--remote",
            "--command",
            "CREATE TABLE x (a)",
        ][..],
        &["d1", "migrations", "apply", "DB", "--remote"],
        &["d1", "export", "DB", "--remote", "--output", "x.sql"],
    ] {
        let out = run_in(p, &[&["--json"], args].concat());
        assert!(!out.status.success());
        let err: Value = serde_json::from_slice(&out.stderr).unwrap();
        let msg = err["error"].as_str().unwrap();
        assert!(
            msg.contains("hosted Cloudflare D1") && msg.contains("d1vec d1 export"),
            "{msg}"
        );
        assert!(
            msg.contains("wrangler d1 execute DB --remote --file"),
            "{msg}"
        );
    }
    let out = run_in(p, &["d1", "execute", "NOPE", "--command", "SELECT 1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`NOPE`"));
    assert!(!p.join(".wrangler").exists(), "nothing was created");
    // Without a config anywhere above, a DB argument is an error that says so.
    let bare = tempfile::tempdir().unwrap();
    let out = run_in(
        bare.path(),
        &["d1", "execute", "DB", "--command", "SELECT 1"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no wrangler.json"));
}
