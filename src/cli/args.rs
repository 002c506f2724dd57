//! The command line's flags, as clap parses them. Help text comes from these doc comments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// d1vec: Cloudflare D1 and Vectorize, embedded and offline.
#[derive(Debug, Parser)]
#[command(name = "d1vec", version, about, long_about = None)]
pub struct Cli {
    /// The database file (created if missing), like wrangler's local state.
    #[arg(
        long,
        global = true,
        env = "D1VEC_DB",
        default_value = ".d1vec/db.sqlite"
    )]
    pub db: PathBuf,
    /// Run the command inside this tenant's session: only its rows are reachable.
    #[arg(long, global = true, env = "D1VEC_TENANT")]
    pub tenant: Option<String>,
    /// Act as this user of the tenant (needs --tenant): the user's role decides what the
    /// command may do; without it the session holds every permission of the tenant.
    #[arg(long, global = true, env = "D1VEC_USER")]
    pub user: Option<String>,
    /// Print machine-readable JSON on stdout (errors as {"code", "error"} on stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// D1 commands, as `wrangler d1`.
    D1 {
        /// The D1 command.
        #[command(subcommand)]
        command: D1Command,
    },
    /// Vectorize commands, as `wrangler vectorize`.
    Vectorize {
        /// The Vectorize command.
        #[command(subcommand)]
        command: super::vectorize::VectorizeCommand,
    },
    /// Recompute the daily rollup tables from raw events (idempotent).
    Rollup(RollupArgs),
    /// Print a text's vector from the offline embedder, as a JSON array. The embedder is
    /// lexical (feature hashing of words and character 3-grams), a stand-in for a semantic
    /// model; it needs no database.
    Embed(EmbedArgs),
    /// The benchmark harness: generate a dataset, measure d1vec on it, report against
    /// hnswlib, faiss and numpy (docs/bench.md). Needs no database.
    Bench {
        /// The bench command.
        #[command(subcommand)]
        command: super::bench::BenchCommand,
    },
    /// Build an offline demo (tenants, knowledge, vectors, rollups) in a fresh folder and take
    /// a guided tour of it: tenant-scoped vector search, isolation, brand voice, k-anonymous
    /// shared skills, ROI, cursor paging. Ignores --db; refuses --tenant.
    Demo(DemoArgs),
    /// Hybrid search of the tenant's rows (needs --tenant): keywords (SQLite FTS5, BM25 over
    /// the tenant's rows) and vector similarity, fused by Reciprocal Rank Fusion.
    Search(super::search::SearchArgs),
    /// Tenant data keys and the master key: status and rotation (docs: README, "Keys").
    Keys {
        /// The keys command.
        #[command(subcommand)]
        command: super::keys::KeysCommand,
    },
    /// Serve Cloudflare's D1 and Vectorize REST API on localhost, for wrangler and the
    /// `cloudflare` SDK (README, "d1vec serve"). Runs until SIGTERM or Ctrl-C.
    Serve(super::serve::ServeArgs),
}

/// `d1vec d1 …`
#[derive(Debug, Subcommand)]
pub enum D1Command {
    /// Run SQL in one transaction: all statements or none.
    Execute(ExecuteArgs),
    /// Manage migrations, as `wrangler d1 migrations`.
    Migrations {
        /// The migrations command.
        #[command(subcommand)]
        command: MigrationsCommand,
    },
    /// Write the database as SQL that `wrangler d1 execute --file` accepts.
    Export(ExportArgs),
    /// Page through a query's rows with an opaque cursor.
    Page(PageArgs),
}

/// wrangler's way of naming a database: `DB` from the wrangler config, and where its local
/// state lives. Without `DB`, the command works on `--db` as before.
#[derive(Debug, Args)]
pub struct WranglerTarget {
    /// The `binding` or `database_name` of a `d1_databases` entry in the wrangler config
    /// (`wrangler.json`, `wrangler.jsonc` or `wrangler.toml`, searched upward from the
    /// current folder). The command then opens the SQLite file `wrangler dev` uses for it
    /// under `.wrangler/state/v3/d1/`, and ignores `--db`.
    pub database: Option<String>,
    /// Use the local database (the default; accepted for wrangler compatibility).
    #[arg(long, conflicts_with = "remote")]
    pub local: bool,
    /// Refused: d1vec cannot reach hosted D1 (the error says how to move data there).
    #[arg(long)]
    pub remote: bool,
    /// Accepted for wrangler compatibility (d1vec never prompts).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// The folder wrangler keeps local state in (its `--persist-to`), relative to the
    /// current folder; default `.wrangler/state` next to the wrangler config.
    #[arg(long, env = "D1VEC_PERSIST_TO")]
    pub persist_to: Option<PathBuf>,
    /// Use the bindings of this `env.<name>` section of the wrangler config.
    #[arg(long, short = 'e')]
    pub env: Option<String>,
    /// The wrangler config file (default: searched as wrangler does).
    #[arg(long, short = 'c', env = "D1VEC_WRANGLER_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `d1 execute`
#[derive(Debug, Args)]
pub struct ExecuteArgs {
    /// What to run.
    #[command(flatten)]
    pub source: ExecuteSource,
    /// Which database.
    #[command(flatten)]
    pub target: WranglerTarget,
}

/// `d1 execute`'s SQL: exactly one of `--command` and `--file`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ExecuteSource {
    /// SQL to run.
    #[arg(long)]
    pub command: Option<String>,
    /// A file of SQL to run (a `sqlite3 .dump` works: its BEGIN/COMMIT pair is stripped).
    #[arg(long)]
    pub file: Option<PathBuf>,
}

/// Where migrations come from.
#[derive(Debug, Args)]
pub struct MigrationsDir {
    /// A folder of `NNNN_name.sql` files. Default: with `DB`, the entry's `migrations_dir`
    /// / `migrations_pattern`; without, the bundled 30-table schema.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Which database.
    #[command(flatten)]
    pub target: WranglerTarget,
}

/// `d1 migrations …`
#[derive(Debug, Subcommand)]
pub enum MigrationsCommand {
    /// List migrations and whether each is applied.
    List(MigrationsDir),
    /// Apply pending migrations in order; stop at the first failure.
    Apply(MigrationsDir),
    /// Create the next numbered migration file.
    Create {
        /// The migration's message (spaces become `_`).
        name: String,
        /// The folder to create it in.
        #[arg(long, default_value = "migrations")]
        dir: PathBuf,
    },
}

/// `d1 export`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Which database.
    #[command(flatten)]
    pub target: WranglerTarget,
    /// The file to write.
    #[arg(long)]
    pub output: PathBuf,
    /// Only the schema.
    #[arg(long, conflicts_with = "no_schema")]
    pub no_data: bool,
    /// Only the data.
    #[arg(long)]
    pub no_schema: bool,
    /// Only these tables (repeatable).
    #[arg(long = "table")]
    pub tables: Vec<String>,
}

/// `d1 page`
#[derive(Debug, Args)]
pub struct PageArgs {
    /// The query to page (without ORDER BY or LIMIT).
    #[arg(long)]
    pub command: String,
    /// The column to order by.
    #[arg(long)]
    pub order_by: String,
    /// A unique column that breaks ties.
    #[arg(long)]
    pub id_column: String,
    /// Smallest first (default: largest first).
    #[arg(long)]
    pub asc: bool,
    /// Rows per page.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// The cursor a previous page printed.
    #[arg(long, allow_hyphen_values = true)]
    pub cursor: Option<String>,
}

/// `rollup`
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct RollupArgs {
    /// Recompute one day (YYYY-MM-DD).
    #[arg(long)]
    pub date: Option<String>,
    /// Recompute every day from this one on (YYYY-MM-DD).
    #[arg(long)]
    pub since: Option<String>,
}

/// `embed`
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Dimensions of the vector (1..=1536).
    #[arg(long, default_value_t = crate::embed::DEFAULT_DIMENSIONS)]
    pub dims: usize,
    /// The text to embed (quote it; put `--` before a text that starts with `-`).
    pub text: String,
}

/// `demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The demo folder, rebuilt from scratch on every run. An existing folder must be empty
    /// or a previous demo's (it holds a `.d1vec-demo` marker); anything else is refused.
    #[arg(long, default_value = "./d1vec-demo")]
    pub dir: PathBuf,
    /// How much data: `demo` (12 tenants, ~3,300 vectors) or `tiny` (3 tenants, for tests).
    #[arg(long, value_enum, default_value_t = DemoScale::Demo)]
    pub scale: DemoScale,
}

/// The demo's dataset size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoScale {
    /// 12 tenants, 120 days of activity.
    Demo,
    /// 3 tenants, 5 days.
    Tiny,
}

impl From<DemoScale> for crate::demo::Scale {
    fn from(s: DemoScale) -> Self {
        match s {
            DemoScale::Demo => crate::demo::Scale::Demo,
            DemoScale::Tiny => crate::demo::Scale::Tiny,
        }
    }
}
