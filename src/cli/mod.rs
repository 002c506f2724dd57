//! The `d1vec` command line: parse flags, run one command, print its result.

pub mod args;
pub mod bench;
pub mod demo;
pub mod keys;
pub mod output;
pub mod search;
pub mod serve;
pub mod vectorize;

use std::io::Write;

use serde_json::{json, Value as Json};

use crate::error::{Error, Result};
use crate::rollup::{parse_date, RollupRange};
use crate::sql::cursor::{page, PageSpec};
use crate::sql::export::ExportOptions;
use crate::sql::migrate::{self, Migration};
use crate::sql::{D1Result, Session};
use crate::Database;
use args::{Cli, Command, D1Command, MigrationsCommand};

/// What a command printed, before it is written out.
enum Printed {
    Json(Json),
    Text(String),
    /// The command wrote its own output.
    Nothing,
}

/// Runs a parsed command line; returns the process's exit status.
pub fn main_with(cli: Cli) -> std::process::ExitCode {
    let json = cli.json;
    match run(cli) {
        Ok(out) => {
            let text = match out {
                Printed::Json(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
                Printed::Text(t) => t,
                Printed::Nothing => return std::process::ExitCode::SUCCESS,
            };
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{text}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            let mut stderr = std::io::stderr().lock();
            if json {
                let _ = writeln!(stderr, "{}", output::error_json(&e));
            } else {
                let _ = writeln!(stderr, "error: {e}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<Printed> {
    // Commands that need no database run before one is opened (or created).
    let cli = match cli.command {
        Command::Embed(a) => return embed(&a),
        Command::Bench { command } => {
            let (value, text) = bench::run(command, cli.json)?;
            return Ok(match value {
                Json::Null => Printed::Nothing,
                v if cli.json => Printed::Json(v),
                _ => Printed::Text(text),
            });
        }
        Command::Demo(a) => return demo::run(&a, cli.json, cli.tenant.as_deref()),
        command => Cli { command, ..cli },
    };
    let wrangler = wrangler_target(&cli.command)?;
    let path = match &wrangler {
        Some(w) => w.path.clone(),
        None => cli.db.clone(),
    };
    let mut builder = Database::builder();
    if let Some(env) = crate::keys::EnvKey::from_env()? {
        builder.key_provider(std::sync::Arc::new(env));
    }
    let db = builder.open(&path)?;
    let tenant = match (cli.tenant.as_deref(), cli.user.as_deref()) {
        (Some(t), Some(u)) => Some(db.tenant(t)?.as_user(u)?),
        (Some(t), None) => Some(db.tenant(t)?),
        (None, Some(_)) => return Err(Error::invalid("arguments", "--user needs --tenant")),
        (None, None) => None,
    };
    match cli.command {
        Command::D1 { command } => match command {
            D1Command::Execute(a) => {
                let script = match (a.source.command, a.source.file) {
                    (Some(sql), _) => sql,
                    (None, Some(path)) => {
                        std::fs::read_to_string(&path).map_err(Error::io(&path))?
                    }
                    (None, None) => {
                        return Err(Error::invalid("arguments", "give --command or --file"))
                    }
                };
                let results = match &tenant {
                    Some(t) => t.execute(&script)?,
                    None => db.execute(&script)?,
                };
                Ok(print_results(&results, cli.json))
            }
            D1Command::Migrations { command } => {
                if let Some(t) = &tenant {
                    return Err(t.scope().database_admin("migrations"));
                }
                migrations(&db, wrangler.as_ref(), command, cli.json)
            }
            D1Command::Export(a) => {
                let opts = ExportOptions {
                    no_data: a.no_data,
                    no_schema: a.no_schema,
                    tables: a.tables,
                };
                if let Some(t) = &tenant {
                    // The session decides (permission, then scope); nothing is written.
                    t.export_sql(&opts, &mut std::io::sink())?;
                }
                let file = std::fs::File::create(&a.output).map_err(Error::io(&a.output))?;
                let mut out = std::io::BufWriter::new(file);
                let rows = db.export_sql(&opts, &mut out)?;
                out.flush().map_err(Error::io(&a.output))?;
                Ok(if cli.json {
                    Printed::Json(json!({"output": a.output, "rows": rows}))
                } else {
                    Printed::Text(format!("Exported {rows} rows to {}", a.output.display()))
                })
            }
            D1Command::Page(a) => {
                let spec = PageSpec {
                    sort_column: a.order_by,
                    id_column: a.id_column,
                    descending: !a.asc,
                    limit: a.limit,
                };
                let session: &dyn PageOn = match &tenant {
                    Some(t) => t,
                    None => &db,
                };
                let p = session.page_of(&a.command, &spec, a.cursor.as_deref())?;
                Ok(if cli.json {
                    Printed::Json(serde_json::to_value(&p)?)
                } else {
                    let columns: Vec<String> = p
                        .rows
                        .first()
                        .map(|r| r.keys().cloned().collect())
                        .unwrap_or_default();
                    let rows: Vec<Vec<Json>> = p
                        .rows
                        .iter()
                        .map(|r| r.values().cloned().collect())
                        .collect();
                    let next = p
                        .next_cursor
                        .map_or("(last page)".to_owned(), |c| format!("next cursor: {c}"));
                    Printed::Text(format!("{}\n{next}", output::table(&columns, &rows)))
                })
            }
        },
        Command::Vectorize { command } => Ok(
            match vectorize::run(&db, tenant.as_ref(), cli.json, command)? {
                vectorize::Out::Json(v) => Printed::Json(v),
                vectorize::Out::Text(t) => Printed::Text(t),
            },
        ),
        Command::Rollup(a) => {
            if let Some(t) = &tenant {
                return Err(t.scope().database_admin("rollups"));
            }
            let date = |s: String| {
                parse_date(&s)
                    .ok_or_else(|| Error::invalid("date", format!("`{s}` is not YYYY-MM-DD")))
            };
            let range = match (a.date, a.since) {
                (Some(d), _) => RollupRange::Day(date(d)?),
                (None, Some(s)) => RollupRange::Since(date(s)?),
                (None, None) => RollupRange::All,
            };
            let report = db.rollup(&range)?;
            Ok(if cli.json {
                Printed::Json(serde_json::to_value(&report)?)
            } else {
                let rows: Vec<Vec<Json>> = report
                    .tables
                    .iter()
                    .map(|(t, n)| vec![json!(t), json!(n)])
                    .collect();
                Printed::Text(output::table(&["table".into(), "rows".into()], &rows))
            })
        }
        Command::Serve(a) => serve::run(db, tenant.is_some(), a).map(|()| Printed::Nothing),
        Command::Embed(_) | Command::Bench { .. } | Command::Demo(_) => {
            Err(Error::invalid("command", "runs without a database"))
        }
        Command::Keys { command } => {
            // A session (`--tenant`, with or without `--user`) needs the permission for key
            // operations; the database's own operator (no `--tenant`) holds it.
            if let Some(t) = &tenant {
                t.require(crate::tenant::policy::permissions::KEYS_ROTATE)?;
            }
            let (value, text) = keys::run(&db, cli.tenant.as_deref(), command)?;
            Ok(if cli.json {
                Printed::Json(value)
            } else {
                Printed::Text(text)
            })
        }
        Command::Search(a) => Ok(match search::run(&db, tenant.as_ref(), cli.json, a)? {
            search::Out::Json(v) => Printed::Json(v),
            search::Out::Text(t) => Printed::Text(t),
        }),
    }
}

/// `embed`: the vector as one compact JSON array, with or without `--json`, so it can be
/// piped into `vectorize query --vector-file -`. Each value is printed in the shortest form
/// that reads back as the same `f32`.
fn embed(a: &args::EmbedArgs) -> Result<Printed> {
    use crate::embed::{Embedder, HashingEmbedder};
    let vector = HashingEmbedder::new(a.dims)?.embed(&a.text);
    Ok(Printed::Text(serde_json::to_string(&vector)?))
}

/// Paging on either kind of session, for the CLI's `dyn` dispatch.
trait PageOn {
    fn page_of(
        &self,
        sql: &str,
        spec: &PageSpec,
        cursor: Option<&str>,
    ) -> Result<crate::sql::cursor::Page>;
}
impl<S: Session> PageOn for S {
    fn page_of(
        &self,
        sql: &str,
        spec: &PageSpec,
        cursor: Option<&str>,
    ) -> Result<crate::sql::cursor::Page> {
        page(self, sql, &[], spec, cursor)
    }
}

/// A database named the wrangler way (`DB` argument): its local SQLite file, and its
/// `d1_databases` entry with the config it came from.
struct WranglerDb {
    path: std::path::PathBuf,
    config: crate::wrangler::WranglerConfig,
    entry: crate::wrangler::D1Database,
}

/// The wrangler flags of a D1 command, if it has them.
fn target_of(command: &Command) -> Option<(&'static str, &args::WranglerTarget)> {
    let Command::D1 { command } = command else {
        return None;
    };
    Some(match command {
        D1Command::Execute(a) => ("d1 execute", &a.target),
        D1Command::Migrations { command } => match command {
            MigrationsCommand::List(a) => ("d1 migrations list", &a.target),
            MigrationsCommand::Apply(a) => ("d1 migrations apply", &a.target),
            MigrationsCommand::Create { .. } => return None,
        },
        D1Command::Export(a) => ("d1 export", &a.target),
        D1Command::Page(_) => return None,
    })
}

/// Resolves a D1 command's `DB` argument through the wrangler config, as wrangler does;
/// refuses `--remote`. `None` when the command names no `DB` (it then uses `--db`).
fn wrangler_target(command: &Command) -> Result<Option<WranglerDb>> {
    let Some((name, target)) = target_of(command) else {
        return Ok(None);
    };
    if target.remote {
        return Err(Error::RemoteRefused { command: name });
    }
    let Some(database) = &target.database else {
        return Ok(None);
    };
    let cwd = std::env::current_dir().map_err(Error::io("."))?;
    let config_path = match &target.config {
        Some(p) => cwd.join(p),
        None => crate::wrangler::config::find(&cwd).ok_or_else(|| Error::WranglerConfig {
            path: cwd.clone(),
            reason: format!(
                "`{database}` names a database, but no wrangler.json, wrangler.jsonc or \
                 wrangler.toml was found here or in a parent folder (use --db PATH for a \
                 plain database file)"
            ),
        })?,
    };
    let config = crate::wrangler::WranglerConfig::load(&config_path, target.env.as_deref())?;
    let entry = config.database(database)?.clone();
    let root = crate::wrangler::state::persistence_root(
        target.persist_to.as_deref(),
        &cwd,
        Some(&config.path),
    );
    let path = crate::wrangler::state::d1_sqlite_path(&root, entry.local_id());
    Ok(Some(WranglerDb {
        path,
        config,
        entry,
    }))
}

fn migrations(
    db: &Database,
    wrangler: Option<&WranglerDb>,
    command: MigrationsCommand,
    json: bool,
) -> Result<Printed> {
    let table = wrangler.map_or(migrate::MIGRATIONS_TABLE, |w| w.entry.migrations_table());
    let source = |dir: Option<std::path::PathBuf>| -> Result<Vec<Migration>> {
        match (dir, wrangler) {
            (Some(d), _) => migrate::discover(&d),
            (None, Some(w)) => w.config.migrations(&w.entry),
            (None, None) => Ok(migrate::bundled()),
        }
    };
    match command {
        MigrationsCommand::List(a) => {
            let status = db.migration_status_in(table, &source(a.dir)?)?;
            Ok(if json {
                Printed::Json(serde_json::to_value(&status)?)
            } else {
                let rows: Vec<Vec<Json>> = status
                    .iter()
                    .map(|s| {
                        vec![
                            json!(s.name),
                            json!(s.applied_at.clone().unwrap_or_else(|| "pending".into())),
                        ]
                    })
                    .collect();
                Printed::Text(output::table(&["name".into(), "applied_at".into()], &rows))
            })
        }
        MigrationsCommand::Apply(a) => {
            let setup = match a.dir {
                // The bundled schema comes with the application's three vector indexes.
                None if wrangler.is_none() => db.apply_bundled()?,
                dir => crate::BundledSetup {
                    migrations: db.apply_migrations_in(table, &source(dir)?)?,
                    indexes: Vec::new(),
                },
            };
            let applied = &setup.migrations;
            Ok(if json {
                Printed::Json(json!({"applied": applied, "indexes_created": setup.indexes}))
            } else {
                let mut text = if applied.is_empty() {
                    "No migrations to apply.".to_owned()
                } else {
                    format!(
                        "Applied {} migration(s): {}",
                        applied.len(),
                        applied.join(", ")
                    )
                };
                if !setup.indexes.is_empty() {
                    text.push_str(&format!(
                        "\nCreated vector index(es): {}",
                        setup.indexes.join(", ")
                    ));
                }
                Printed::Text(text)
            })
        }
        MigrationsCommand::Create { name, dir } => {
            let path = migrate::create(&dir, &name)?;
            Ok(if json {
                Printed::Json(json!({"created": path}))
            } else {
                Printed::Text(format!("Created {}", path.display()))
            })
        }
    }
}

fn print_results(results: &[D1Result], json: bool) -> Printed {
    if json {
        return Printed::Json(serde_json::to_value(results).unwrap_or(Json::Null));
    }
    let mut parts = Vec::new();
    for r in results {
        if !r.columns.is_empty() {
            parts.push(output::table(&r.columns, &r.raw()));
        }
    }
    let changes: u64 = results.iter().map(|r| r.meta.changes).sum();
    parts.push(format!(
        "Executed {} statement(s); {changes} row(s) changed.",
        results.len()
    ));
    Printed::Text(parts.join("\n"))
}
